//! Keeping each open pull request told which tree the DAO has to approve and
//! how far that tree has come (awaiting approval, approved, deployed).
//!
//! The watcher is level-triggered like the controller: every `sync_once`
//! re-reads the open PRs, recomputes each merge tree, asks the caller's
//! [`StateLookup`] (the chain) about it, and makes GitHub show exactly that:
//! one commit status per head commit and one comment per PR, posted only when
//! they differ from what is already there, so repeated syncs are free of
//! noise and never duplicate anything.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

use collective_tree::TreeIds;
use octocrab::secrecy::SecretString;
use serde::Serialize;
use tracing::{info, instrument, warn};

use crate::client::{parse_pr_url, GithubClient, GithubConfig, PullRequest, RetryPolicy};
use crate::merge::{merge_tree_ids, MergeOutcome};
use crate::GithubError;

/// Hidden marker that identifies the node's comment on a PR.
pub const COMMENT_MARKER: &str = "<!-- collective -->";
/// Default commit status context.
pub const STATUS_CONTEXT: &str = "collective/approval";
/// GitHub rejects status descriptions longer than this.
const MAX_STATUS_DESCRIPTION: usize = 140;

/// What the chain (or the node's log) says about a tree. The github crate
/// does not know about the chain: the caller answers through [`StateLookup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum TreeState {
    /// No approval (yet).
    AwaitingApproval,
    /// Approved on-chain (past the confirmation depth), not deployed yet.
    Approved,
    /// Deployed by the node; `log_index` is the log entry that records it.
    Deployed { log_index: u64 },
    /// Approved once but now unusable: revoked, expired, or refused by node policy.
    Refused { reason: String },
}

/// Answers "what is the state of this tree?", keyed by its ids (the sha256 id
/// is what approvals are keyed by on-chain).
pub trait StateLookup: Send + Sync {
    /// The state of `tree`; an `Err` message aborts this PR's update (its
    /// status is left as it was) and is reported.
    fn state(&self, tree: &TreeIds) -> impl Future<Output = Result<TreeState, String>> + Send;
}

/// A fixed table, sha256 tree id -> state; absent trees await approval.
impl StateLookup for HashMap<String, TreeState> {
    fn state(&self, tree: &TreeIds) -> impl Future<Output = Result<TreeState, String>> + Send {
        let s = self
            .get(&tree.sha256)
            .cloned()
            .unwrap_or(TreeState::AwaitingApproval);
        std::future::ready(Ok(s))
    }
}

/// A commit status as posted (or found already posted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusUpdate {
    /// `pending`, `success`, `failure` or `error`.
    pub state: String,
    pub description: String,
    pub context: String,
}

/// What happened to the PR's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "id", rename_all = "kebab-case")]
pub enum CommentAction {
    Created(u64),
    Updated(u64),
    Unchanged(u64),
}

/// The result of syncing one PR.
#[derive(Debug, Clone, Serialize)]
pub struct PrReport {
    pub number: u64,
    pub html_url: String,
    pub head_sha: String,
    pub base_ref: String,
    /// Merge result tree ids; `None` when the PR conflicts.
    pub tree_sha1: Option<String>,
    pub tree_sha256: Option<String>,
    /// Conflicting paths when the PR does not merge cleanly.
    pub conflicts: Vec<String>,
    pub state: Option<TreeState>,
    pub status: StatusUpdate,
    /// False when the same status was already the latest one.
    pub status_posted: bool,
    pub comment: CommentAction,
}

impl PrReport {
    /// The merge tree ids, when there is a clean merge.
    pub fn tree(&self) -> Option<TreeIds> {
        Some(TreeIds {
            sha1: self.tree_sha1.clone()?,
            sha256: self.tree_sha256.clone()?,
        })
    }
}

/// One PR's outcome in a sync.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum PrOutcome {
    Synced(Box<PrReport>),
    /// This PR could not be processed this round (fetch failed, ...); others were.
    Failed {
        number: u64,
        html_url: String,
        error: String,
    },
}

/// Everything one `sync_once` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub prs: Vec<PrOutcome>,
}

impl SyncReport {
    /// Trees of open PRs not approved yet (for the node's status page).
    pub fn awaiting_approval(&self) -> Vec<(u64, TreeIds)> {
        self.prs
            .iter()
            .filter_map(|o| match o {
                PrOutcome::Synced(r) if r.state == Some(TreeState::AwaitingApproval) => {
                    Some((r.number, r.tree()?))
                }
                _ => None,
            })
            .collect()
    }
}

/// What a `collective proposal submit --pr URL` needs from the PR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrProposal {
    pub number: u64,
    pub title: String,
    pub html_url: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub tree_sha1: String,
    pub tree_sha256: String,
    /// The proposal description (one line: title, PR number and URL), the same one the PR comment shows.
    pub description: String,
    /// Recipients named in the PR description (`Recipient: age1...` lines); may be empty.
    pub recipients: Vec<String>,
}

impl PrProposal {
    pub fn tree(&self) -> TreeIds {
        TreeIds {
            sha1: self.tree_sha1.clone(),
            sha256: self.tree_sha256.clone(),
        }
    }
}

/// Configuration of a [`PrWatcher`].
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub github: GithubConfig,
    /// Local bare repository used as fetch cache (created if missing).
    pub mirror_dir: PathBuf,
    /// Git remote (path or URL) holding `refs/pull/N/head`; default: the base repository's clone URL from the API.
    pub git_remote: Option<String>,
    /// Commit status context.
    pub context: String,
    /// Link from the status to the node's status page, if public.
    pub target_url: Option<String>,
}

impl WatchConfig {
    pub fn new(github: GithubConfig, mirror_dir: impl Into<PathBuf>) -> Self {
        Self {
            github,
            mirror_dir: mirror_dir.into(),
            git_remote: None,
            context: STATUS_CONTEXT.to_string(),
            target_url: None,
        }
    }
}

/// Watches the open PRs of one repository.
#[derive(Debug)]
pub struct PrWatcher {
    client: GithubClient,
    git_token: Option<SecretString>,
    has_token: bool,
    mirror_dir: PathBuf,
    git_remote: Option<String>,
    context: String,
    target_url: Option<String>,
    login: tokio::sync::OnceCell<Option<String>>,
    /// PRs with a clean merge seen open, by number, with that merge: when one
    /// leaves the open list merged, its status and comment keep following its
    /// tree (approved, then deployed) until it is deployed. In memory only: a
    /// node restarted between merge and deploy does not post the final status.
    followed: std::sync::Mutex<std::collections::BTreeMap<u64, (PullRequest, MergeOutcome)>>,
}

/// The most merged PRs followed at once (the oldest numbers are dropped).
const MAX_FOLLOWED: usize = 100;

fn is_fatal(e: &GithubError) -> bool {
    matches!(
        e,
        GithubError::Unauthorized { .. }
            | GithubError::RateLimited { .. }
            | GithubError::Unavailable { .. }
            | GithubError::Client { .. }
    )
}

impl PrWatcher {
    pub fn new(config: WatchConfig) -> Result<Self, GithubError> {
        let git_token = config.github.token.clone();
        let has_token = git_token.is_some();
        Ok(Self {
            client: GithubClient::new(config.github)?,
            git_token,
            has_token,
            mirror_dir: config.mirror_dir,
            git_remote: config.git_remote,
            context: config.context,
            target_url: config.target_url,
            login: tokio::sync::OnceCell::new(),
            followed: Default::default(),
        })
    }

    pub fn client(&self) -> &GithubClient {
        &self.client
    }

    /// One pass over all open PRs. API-wide failures (bad token, rate limit
    /// beyond the wait budget, GitHub down) abort the pass with that error;
    /// a failure specific to one PR is reported in its [`PrOutcome`].
    #[instrument(skip_all, fields(repo = %format!("{}/{}", self.client.owner(), self.client.repo())))]
    pub async fn sync_once<L: StateLookup>(&self, lookup: &L) -> Result<SyncReport, GithubError> {
        let pulls = self.client.list_open_pulls().await?;
        let login = self.login().await?;
        let mut report = SyncReport::default();
        for pr in &pulls {
            match self.sync_pr(pr, lookup, login.as_deref()).await {
                Ok(r) => report.prs.push(PrOutcome::Synced(Box::new(r))),
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => {
                    warn!(pr = pr.number, error = %e, "could not sync pull request");
                    report.prs.push(PrOutcome::Failed {
                        number: pr.number,
                        html_url: pr.html_url.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
        self.sync_merged(&pulls, lookup, login.as_deref(), &mut report)
            .await?;
        Ok(report)
    }

    /// Followed PRs no longer open: merged ones get their status and comment
    /// updated from their last merge tree (a merge of an up-to-date PR has
    /// that tree) and are dropped once deployed; closed unmerged ones are
    /// dropped.
    async fn sync_merged<L: StateLookup>(
        &self,
        open: &[PullRequest],
        lookup: &L,
        login: Option<&str>,
        report: &mut SyncReport,
    ) -> Result<(), GithubError> {
        let gone: Vec<(u64, PullRequest, MergeOutcome)> = {
            let f = self.followed.lock().unwrap_or_else(|p| p.into_inner());
            f.iter()
                .filter(|(n, _)| !open.iter().any(|p| p.number == **n))
                .map(|(n, (p, m))| (*n, p.clone(), m.clone()))
                .collect()
        };
        for (number, last, merge) in gone {
            let forget = match self.client.get_pull(number).await {
                Ok(now) if now.merged => match self.annotate(&last, &merge, lookup, login).await {
                    Ok(r) => {
                        let deployed = matches!(r.state, Some(TreeState::Deployed { .. }));
                        report.prs.push(PrOutcome::Synced(Box::new(r)));
                        deployed
                    }
                    Err(e) if is_fatal(&e) => return Err(e),
                    Err(e) => {
                        warn!(pr = number, error = %e, "could not sync merged pull request");
                        false
                    }
                },
                Ok(_) => true,
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => {
                    warn!(pr = number, error = %e, "could not read closed pull request");
                    false
                }
            };
            if forget {
                self.followed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&number);
            }
        }
        Ok(())
    }

    async fn login(&self) -> Result<Option<String>, GithubError> {
        if !self.has_token {
            return Ok(None);
        }
        self.login
            .get_or_try_init(|| self.client.current_login())
            .await
            .cloned()
    }

    async fn merge(&self, pr: &PullRequest) -> Result<MergeOutcome, GithubError> {
        let remote = self
            .git_remote
            .clone()
            .or_else(|| pr.base_clone_url.clone())
            .ok_or_else(|| GithubError::Api {
                url: pr.html_url.clone(),
                status: 0,
                message: "the pull request has no base repository clone URL; pass a git remote"
                    .into(),
            })?;
        let mirror = self.mirror_dir.clone();
        let token = self.git_token.clone();
        let (number, base_ref) = (pr.number, pr.base_ref.clone());
        tokio::task::spawn_blocking(move || {
            merge_tree_ids(&mirror, &remote, number, &base_ref, token.as_ref())
        })
        .await
        .map_err(|e| GithubError::Task {
            detail: e.to_string(),
        })?
    }

    #[instrument(skip_all, fields(pr = pr.number))]
    async fn sync_pr<L: StateLookup>(
        &self,
        pr: &PullRequest,
        lookup: &L,
        login: Option<&str>,
    ) -> Result<PrReport, GithubError> {
        let merge = self.merge(pr).await?;
        let fetched_head = match &merge {
            MergeOutcome::Clean { head_sha, .. } | MergeOutcome::Conflict { head_sha, .. } => {
                head_sha.clone()
            }
        };
        if fetched_head != pr.head_sha {
            // A push landed between the API read and the fetch: the next pass sees a consistent pair.
            return Err(GithubError::Api {
                url: pr.html_url.clone(),
                status: 0,
                message: format!(
                    "PR head moved while syncing (API says {}, git has {}); will retry next pass",
                    pr.head_sha, fetched_head
                ),
            });
        }
        if matches!(merge, MergeOutcome::Clean { .. }) {
            let mut f = self.followed.lock().unwrap_or_else(|p| p.into_inner());
            f.insert(pr.number, (pr.clone(), merge.clone()));
            while f.len() > MAX_FOLLOWED {
                f.pop_first();
            }
        }
        self.annotate(pr, &merge, lookup, login).await
    }

    /// Post the status and the one comment for `pr` with merge result `merge`.
    async fn annotate<L: StateLookup>(
        &self,
        pr: &PullRequest,
        merge: &MergeOutcome,
        lookup: &L,
        login: Option<&str>,
    ) -> Result<PrReport, GithubError> {
        let state = match merge {
            MergeOutcome::Clean { tree, .. } => Some(lookup.state(tree).await.map_err(
                |message| GithubError::StateLookup {
                    tree_sha256: tree.sha256.clone(),
                    message,
                },
            )?),
            MergeOutcome::Conflict { .. } => None,
        };
        let status = status_for(merge, state.as_ref(), &pr.base_ref, &self.context);

        let latest = self
            .client
            .list_statuses(&pr.head_sha)
            .await?
            .into_iter()
            .find(|s| s.context == self.context);
        let status_posted = match latest {
            Some(s) if s.state == status.state && s.description == status.description => false,
            _ => {
                self.client
                    .create_status(
                        &pr.head_sha,
                        &status.state,
                        &status.description,
                        &status.context,
                        self.target_url.as_deref(),
                    )
                    .await?;
                info!(pr = pr.number, state = %status.state, description = %status.description, "posted commit status");
                true
            }
        };

        let body = render_comment(pr, merge, state.as_ref());
        let existing = self
            .client
            .list_issue_comments(pr.number)
            .await?
            .into_iter()
            .find(|c| c.body.contains(COMMENT_MARKER) && login.is_none_or(|l| c.user_login == l));
        let comment = match existing {
            Some(c) if c.body == body => CommentAction::Unchanged(c.id),
            Some(c) => {
                self.client.update_comment(c.id, &body).await?;
                CommentAction::Updated(c.id)
            }
            None => CommentAction::Created(self.client.create_comment(pr.number, &body).await?),
        };

        let (tree_sha1, tree_sha256, conflicts) = match &merge {
            MergeOutcome::Clean { tree, .. } => {
                (Some(tree.sha1.clone()), Some(tree.sha256.clone()), vec![])
            }
            MergeOutcome::Conflict { paths, .. } => (None, None, paths.clone()),
        };
        Ok(PrReport {
            number: pr.number,
            html_url: pr.html_url.clone(),
            head_sha: pr.head_sha.clone(),
            base_ref: pr.base_ref.clone(),
            tree_sha1,
            tree_sha256,
            conflicts,
            state,
            status,
            status_posted,
            comment,
        })
    }

    /// The proposal for PR `number` of the watched repository.
    pub async fn proposal(&self, number: u64) -> Result<PrProposal, GithubError> {
        let pr = self.client.get_pull(number).await?;
        match self.merge(&pr).await? {
            MergeOutcome::Clean {
                tree,
                head_sha,
                base_sha,
                ..
            } => Ok(PrProposal {
                number,
                description: proposal_description(&pr),
                recipients: recipients_from_body(&pr.body),
                title: pr.title,
                html_url: pr.html_url,
                head_sha,
                base_ref: pr.base_ref,
                base_sha,
                tree_sha1: tree.sha1,
                tree_sha256: tree.sha256,
            }),
            MergeOutcome::Conflict { paths, .. } => Err(GithubError::Conflict {
                url: pr.html_url,
                base: pr.base_ref,
                paths,
            }),
        }
    }
}

/// Where a PR named by URL is fetched from, for [`pr_proposal`].
#[derive(Debug, Clone, Default)]
pub struct PrSource {
    /// REST API root; default `https://api.github.com` for github.com URLs, `https://HOST/api/v3` otherwise.
    pub api_url: Option<String>,
    pub token: Option<SecretString>,
    /// Local bare mirror used for the fetch (created if missing).
    pub mirror_dir: PathBuf,
    /// Git remote; default: the base repository's clone URL from the API.
    pub git_remote: Option<String>,
    pub retry: RetryPolicy,
}

/// Tree ids, description, title and head of the PR at `pr_url`, for
/// `collective proposal submit --pr URL`. A conflicting PR is an error
/// ([`GithubError::Conflict`]): there is no tree to approve.
pub async fn pr_proposal(pr_url: &str, source: &PrSource) -> Result<PrProposal, GithubError> {
    let (owner, repo, number) = parse_pr_url(pr_url)?;
    let api_url = match &source.api_url {
        Some(u) => u.clone(),
        None => {
            let host = pr_url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or("github.com");
            if host == "github.com" || host == "api.github.com" {
                "https://api.github.com".to_string()
            } else {
                format!("https://{host}/api/v3")
            }
        }
    };
    let github = GithubConfig {
        api_url,
        owner,
        repo,
        token: source.token.clone(),
        retry: source.retry.clone(),
    };
    let mut config = WatchConfig::new(github, source.mirror_dir.clone());
    config.git_remote = source.git_remote.clone();
    PrWatcher::new(config)?.proposal(number).await
}

fn status_for(
    merge: &MergeOutcome,
    state: Option<&TreeState>,
    base_ref: &str,
    context: &str,
) -> StatusUpdate {
    let (s, d) = match (merge, state) {
        (MergeOutcome::Conflict { .. }, _) => (
            "failure",
            format!("conflicts with {base_ref}: rebase to get a tree to approve"),
        ),
        (_, Some(TreeState::Approved)) => ("success", "approved on-chain".to_string()),
        (_, Some(TreeState::Deployed { log_index })) => {
            ("success", format!("deployed, log index {log_index}"))
        }
        (_, Some(TreeState::Refused { reason })) => ("failure", format!("refused: {reason}")),
        (_, Some(TreeState::AwaitingApproval) | None) => {
            ("pending", "awaiting DAO approval".to_string())
        }
    };
    StatusUpdate {
        state: s.to_string(),
        description: truncate(&d, MAX_STATUS_DESCRIPTION),
        context: context.to_string(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// One-line proposal description: the PR title, number and URL. Control
/// characters become spaces so it survives shells and on-chain storage.
fn proposal_description(pr: &PullRequest) -> String {
    let title: String = pr
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{} (PR #{}: {})", title.trim(), pr.number, pr.html_url)
}

/// Recipients named in a PR description by lines like `Recipient: age1...`
/// (also `ssh-ed25519 ...`/`ssh-rsa ...`), with optional list marker and backticks.
fn recipients_from_body(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in body.lines() {
        let l = line.trim().trim_start_matches(['-', '*', ' ']);
        let Some(idx) = l.find(':') else { continue };
        let (key, value) = l.split_at(idx);
        if !key
            .trim()
            .trim_matches('*')
            .eq_ignore_ascii_case("recipient")
        {
            continue;
        }
        let v = value[1..].trim().trim_matches('`').trim();
        let ok =
            v.starts_with("age1") || v.starts_with("ssh-ed25519 ") || v.starts_with("ssh-rsa ");
        if ok && !v.chars().any(|c| c.is_control()) && !out.iter().any(|x| x == v) {
            out.push(v.to_string());
        }
    }
    out
}

/// Quotes for POSIX shells when needed.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The exact `collective proposal submit` command for a tree.
pub fn proposal_command(tree: &TreeIds, recipients: &[String], description: &str) -> String {
    let mut cmd = format!(
        "collective proposal submit --tree-sha256 {} --tree-sha1 {}",
        tree.sha256, tree.sha1
    );
    if recipients.is_empty() {
        cmd.push_str(" --recipient '<YOUR AGE RECIPIENT>'");
    }
    for r in recipients {
        cmd.push_str(" --recipient ");
        cmd.push_str(&shell_quote(r));
    }
    cmd.push_str(" --description ");
    cmd.push_str(&shell_quote(description));
    cmd
}

/// The body of the node's PR comment (starts with [`COMMENT_MARKER`]).
pub fn render_comment(pr: &PullRequest, merge: &MergeOutcome, state: Option<&TreeState>) -> String {
    let short = |s: &str| s.chars().take(12).collect::<String>();
    let mut b = format!("{COMMENT_MARKER}\n### collective: code identity of this pull request\n\n");
    match merge {
        MergeOutcome::Conflict {
            head_sha,
            base_sha,
            paths,
        } => {
            b.push_str(&format!(
                "Merging this PR (head `{}`) into `{}` (`{}`) **conflicts**, so there is no tree the DAO could approve yet.\n\n\
                 Conflicting paths:\n",
                short(head_sha),
                pr.base_ref,
                short(base_sha)
            ));
            for p in paths {
                b.push_str(&format!("- `{p}`\n"));
            }
            b.push_str(
                "\nRebase the PR on its base branch; this comment updates on the next push.\n",
            );
        }
        MergeOutcome::Clean {
            tree,
            head_sha,
            base_sha,
            up_to_date,
        } => {
            b.push_str(&format!(
                "Merging this PR (head `{}`) into `{}` (`{}`) gives this tree{}:\n\n\
                 | id | value |\n|---|---|\n| tree sha256 | `{}` |\n| tree sha1 | `{}` |\n\n",
                short(head_sha),
                pr.base_ref,
                short(base_sha),
                if *up_to_date {
                    " (the PR is up to date: it is the head commit's own tree)"
                } else {
                    ""
                },
                tree.sha256,
                tree.sha1
            ));
            let status = match state {
                Some(TreeState::Approved) => {
                    "approved on-chain; the node deploys it once it is on the deploy branch."
                        .to_string()
                }
                Some(TreeState::Deployed { log_index }) => {
                    format!("deployed by the node (log index {log_index}).")
                }
                Some(TreeState::Refused { reason }) => format!("refused: {reason}."),
                Some(TreeState::AwaitingApproval) | None => "awaiting DAO approval.".to_string(),
            };
            b.push_str(&format!("**Status:** {status}\n\n"));
            let recipients = recipients_from_body(&pr.body);
            b.push_str("To ask the DAO to approve exactly this code, submit:\n\n```sh\n");
            b.push_str(&proposal_command(
                tree,
                &recipients,
                &proposal_description(pr),
            ));
            b.push_str(&format!(
                "\n```\n\n(or `collective proposal submit --pr {}`)\n\n",
                pr.html_url
            ));
            if recipients.is_empty() {
                b.push_str(
                    "`--recipient` is the age recipient that may receive this code's outputs. \
                     Add a line `Recipient: age1...` to the PR description and this command fills it in.\n\n",
                );
            } else {
                b.push_str("`--recipient` comes from the `Recipient:` lines of the PR description: the DAO votes on who receives the outputs.\n\n");
            }
        }
    }
    b.push_str(&format!(
        "Any push to this PR or to `{}` changes the tree: this comment and the `collective/approval` status follow, \
         and an approval of an older tree does not cover the new one.\n",
        pr.base_ref
    ));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(body: &str) -> PullRequest {
        PullRequest {
            number: 3,
            title: "Train it's model".into(),
            body: body.into(),
            html_url: "https://github.com/acme/data/pull/3".into(),
            user_login: "req".into(),
            head_sha: "a".repeat(40),
            head_ref: "train".into(),
            base_ref: "main".into(),
            base_sha: "b".repeat(40),
            base_clone_url: None,
            merged: false,
        }
    }

    #[test]
    fn recipients_parsed_from_body() {
        let body = "Hello\n- Recipient: `age1qqqq`\nrecipient: ssh-ed25519 AAAAC3 me@host\nRecipient: http://evil\n";
        assert_eq!(
            recipients_from_body(body),
            vec![
                "age1qqqq".to_string(),
                "ssh-ed25519 AAAAC3 me@host".to_string()
            ]
        );
        assert!(recipients_from_body("no recipients here").is_empty());
    }

    #[test]
    fn command_is_shell_safe() {
        let tree = TreeIds {
            sha1: "1".repeat(40),
            sha256: "2".repeat(64),
        };
        let cmd = proposal_command(&tree, &["ssh-ed25519 AAAA x".into()], "it's $(rm -rf /)");
        assert!(cmd.contains("--recipient 'ssh-ed25519 AAAA x'"), "{cmd}");
        assert!(
            cmd.ends_with(r"--description 'it'\''s $(rm -rf /)'"),
            "{cmd}"
        );
    }

    #[test]
    fn description_is_one_line() {
        let mut p = pr("");
        p.title = "a\nb".into();
        assert_eq!(
            proposal_description(&p),
            "a b (PR #3: https://github.com/acme/data/pull/3)"
        );
    }

    #[test]
    fn status_description_fits_github_limit() {
        let merge = MergeOutcome::Clean {
            tree: TreeIds {
                sha1: "1".repeat(40),
                sha256: "2".repeat(64),
            },
            head_sha: "a".into(),
            base_sha: "b".into(),
            up_to_date: true,
        };
        let s = status_for(
            &merge,
            Some(&TreeState::Refused {
                reason: "x".repeat(500),
            }),
            "main",
            STATUS_CONTEXT,
        );
        assert_eq!(s.state, "failure");
        assert_eq!(s.description.chars().count(), MAX_STATUS_DESCRIPTION);
        let c = MergeOutcome::Conflict {
            head_sha: "a".into(),
            base_sha: "b".into(),
            paths: vec!["f".into()],
        };
        assert_eq!(
            status_for(&c, None, "main", STATUS_CONTEXT).state,
            "failure"
        );
    }

    #[test]
    fn comment_has_marker_and_command() {
        let merge = MergeOutcome::Clean {
            tree: TreeIds {
                sha1: "1".repeat(40),
                sha256: "2".repeat(64),
            },
            head_sha: "a".repeat(40),
            base_sha: "b".repeat(40),
            up_to_date: true,
        };
        let body = render_comment(
            &pr("Recipient: age1xyz"),
            &merge,
            Some(&TreeState::AwaitingApproval),
        );
        assert!(body.starts_with(COMMENT_MARKER));
        assert!(body.contains(&format!(
            "--tree-sha256 {} --tree-sha1 {} --recipient age1xyz",
            "2".repeat(64),
            "1".repeat(40)
        )));
        assert!(body.contains("awaiting DAO approval"));
    }
}
