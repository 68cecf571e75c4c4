//! The tree a pull request would put on the deploy branch.
//!
//! We fetch `refs/pull/N/head` (GitHub keeps it for every PR, forks included)
//! and the base branch from the repository's git remote into a local bare
//! mirror, then merge them with libgit2's `merge_trees`. The ids posted on the
//! PR are computed here from git objects, not taken from the API: the API
//! only says *which* PR and base branch to look at.
//!
//! When the PR is up to date with its base (the base head is an ancestor of
//! the PR head), the merge result is the PR head's own tree, which a merge
//! commit, a squash or a fast-forward all reproduce.

use std::path::Path;

use collective_tree::TreeIds;
use git2::{FetchOptions, Oid, RemoteCallbacks, Repository};
use octocrab::secrecy::{ExposeSecret, SecretString};
use tracing::{debug, instrument};

use crate::GithubError;

/// What merging a PR into its base gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The merge is clean; `tree` is its tree.
    Clean {
        tree: TreeIds,
        /// The PR head commit that was fetched.
        head_sha: String,
        /// The base branch head it was merged with.
        base_sha: String,
        /// True when the base head is already in the PR (merge result = PR head tree).
        up_to_date: bool,
    },
    /// The PR conflicts with its base: no tree exists to approve yet.
    Conflict {
        head_sha: String,
        base_sha: String,
        paths: Vec<String>,
    },
}

fn git_err(op: &str, detail: impl Into<String>) -> impl FnOnce(git2::Error) -> GithubError {
    let op = op.to_string();
    let detail = detail.into();
    move |source| GithubError::Git { op, detail, source }
}

/// Fetches PR `number` and branch `base_ref` from `remote` (a path or URL)
/// into the bare mirror at `mirror_dir` (created if missing), merges them, and
/// returns the merge result's tree ids.
///
/// `token`, when given, is offered as basic-auth password (`x-access-token`)
/// to `https://` remotes only (never over plain http); it is never logged,
/// and neither is any `user:password@` part of `remote`.
/// Blocking (libgit2): call it from `spawn_blocking` in async code.
#[instrument(skip(token, remote), fields(remote = %redact_url(remote)))]
pub fn merge_tree_ids(
    mirror_dir: &Path,
    remote: &str,
    number: u64,
    base_ref: &str,
    token: Option<&SecretString>,
) -> Result<MergeOutcome, GithubError> {
    let base_local = format!("refs/collective/base/{base_ref}");
    if !git2::Reference::is_valid_name(&format!("refs/heads/{base_ref}"))
        || !git2::Reference::is_valid_name(&base_local)
    {
        return Err(GithubError::Git {
            op: "fetch".into(),
            detail: format!("invalid base branch name {base_ref:?}"),
            source: git2::Error::from_str("invalid reference name"),
        });
    }
    let repo = match Repository::open_bare(mirror_dir) {
        Ok(r) => r,
        Err(_) => Repository::init_bare(mirror_dir).map_err(git_err(
            "init",
            format!("mirror at {}", mirror_dir.display()),
        ))?,
    };
    let head_local = format!("refs/collective/pull/{number}/head");
    let refspecs = [
        format!("+refs/pull/{number}/head:{head_local}"),
        format!("+refs/heads/{base_ref}:{base_local}"),
    ];
    {
        let shown = redact_url(remote);
        let mut remote_handle = repo
            .remote_anonymous(remote)
            .map_err(git_err("remote", format!("remote {shown}")))?;
        let mut callbacks = RemoteCallbacks::new();
        let mut offered = false;
        let token = token.filter(|_| remote.starts_with("https://")).cloned();
        callbacks.credentials(move |_url, _user, allowed| {
            // Offer the token once; libgit2 calls again after a rejection and
            // would loop forever otherwise.
            match (&token, offered) {
                (Some(t), false) if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) => {
                    offered = true;
                    git2::Cred::userpass_plaintext("x-access-token", t.expose_secret())
                }
                _ => Err(git2::Error::from_str(
                    "no (more) credentials to offer: set GITHUB_TOKEN for private repositories",
                )),
            }
        });
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks);
        remote_handle
            .fetch(&refspecs, Some(&mut opts), None)
            .map_err(git_err(
                "fetch",
                format!("refs/pull/{number}/head and refs/heads/{base_ref} from {remote}"),
            ))?;
    }
    let head = peel_commit(&repo, &head_local)?;
    let base = peel_commit(&repo, &base_local)?;
    let head_sha = head.id().to_string();
    let base_sha = base.id().to_string();
    debug!(%head_sha, %base_sha, "fetched PR and base");

    let up_to_date = head.id() == base.id()
        || repo
            .graph_descendant_of(head.id(), base.id())
            .map_err(git_err("merge-base", format!("{head_sha} vs {base_sha}")))?;
    let tree_oid: Oid = if up_to_date {
        head.tree_id()
    } else {
        let ancestor = match repo.merge_base(head.id(), base.id()) {
            Ok(oid) => repo
                .find_commit(oid)
                .and_then(|c| c.tree())
                .map_err(git_err("merge-base", format!("{oid}")))?,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Ok(MergeOutcome::Conflict {
                    head_sha,
                    base_sha,
                    paths: vec!["(no common history with the base branch)".into()],
                })
            }
            Err(e) => {
                return Err(git_err("merge-base", format!("{head_sha} vs {base_sha}"))(
                    e,
                ))
            }
        };
        let base_tree = base.tree().map_err(git_err("merge", "base tree"))?;
        let head_tree = head.tree().map_err(git_err("merge", "head tree"))?;
        let mut index = repo
            .merge_trees(&ancestor, &base_tree, &head_tree, None)
            .map_err(git_err("merge", format!("PR #{number} into {base_ref}")))?;
        if index.has_conflicts() {
            let mut paths: Vec<String> = index
                .conflicts()
                .map_err(git_err("merge", "listing conflicts"))?
                .filter_map(Result::ok)
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                .collect();
            paths.sort();
            paths.dedup();
            return Ok(MergeOutcome::Conflict {
                head_sha,
                base_sha,
                paths,
            });
        }
        index
            .write_tree_to(&repo)
            .map_err(git_err("merge", "writing the merged tree"))?
    };
    let tree =
        collective_tree::tree_ids_of_tree(&repo, tree_oid).map_err(|source| GithubError::Tree {
            what: format!("merge of PR #{number} into {base_ref}"),
            source,
        })?;
    Ok(MergeOutcome::Clean {
        tree,
        head_sha,
        base_sha,
        up_to_date,
    })
}

/// `remote` without any `user:password@` part, for logs and messages.
pub(crate) fn redact_url(remote: &str) -> String {
    match remote.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}/{path}"),
                None => remote.to_string(),
            }
        }
        None => remote.to_string(),
    }
}

fn peel_commit<'r>(repo: &'r Repository, name: &str) -> Result<git2::Commit<'r>, GithubError> {
    repo.find_reference(name)
        .and_then(|r| r.peel_to_commit())
        .map_err(git_err("fetch", format!("{name} missing after fetch")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_remote_urls_are_redacted() {
        assert_eq!(
            redact_url("https://x-access-token:ghp_abc@github.com/o/r.git"),
            "https://***@github.com/o/r.git"
        );
        assert_eq!(
            redact_url("https://github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(redact_url("/srv/git/r.git"), "/srv/git/r.git");
    }
}
