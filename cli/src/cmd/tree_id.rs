//! `collective tree-id`: the two ids that name a deployable tree.
//!
//! Requesters put these in a proposal; auditors recompute them. The sha256
//! id equals `git add -A && git write-tree` in a sha256 repository.

use std::path::PathBuf;

use collective_tree::TreeError;
use serde::Serialize;

use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Commit to read (branch, tag, hash, `HEAD~1`...), or a tree
    /// (`HEAD^{tree}`, a tree hash). Defaults to HEAD.
    #[arg(conflicts_with = "dir")]
    pub rev: Option<String>,
    /// Hash the files in this directory instead of a commit (as `git add -A`
    /// would see them; `.git` at its root is skipped).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Repository to read REV from (this directory or one containing it).
    #[arg(long, value_name = "PATH", default_value = ".", conflicts_with = "dir")]
    pub repo: PathBuf,
}

#[derive(Debug, Serialize)]
struct Ids {
    tree_sha1: String,
    tree_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
}

pub async fn run(args: Args, out: Output) -> anyhow::Result<u8> {
    // Hashing is CPU and disk work; keep it off the async runtime's threads.
    let ids = tokio::task::spawn_blocking(move || compute(args)).await??;
    let mut human = format!(
        "tree sha1   {}\ntree sha256 {}",
        ids.tree_sha1, ids.tree_sha256
    );
    if let Some(c) = &ids.commit {
        human.push_str(&format!("\ncommit      {c}"));
    }
    out.result(&ids, human)?;
    Ok(crate::exit::OK)
}

fn compute(args: Args) -> anyhow::Result<Ids> {
    if let Some(dir) = args.dir {
        let ids = collective_tree::tree_ids_of_dir(&dir).map_err(classify)?;
        return Ok(Ids {
            tree_sha1: ids.sha1,
            tree_sha256: ids.sha256,
            commit: None,
        });
    }
    let repo = collective_tree::open_repo(&args.repo).map_err(classify)?;
    let rev = args.rev.as_deref().unwrap_or("HEAD");
    match collective_tree::tree_ids_of_rev(&repo, rev) {
        Ok((ids, commit)) => Ok(Ids {
            tree_sha1: ids.sha1,
            tree_sha256: ids.sha256,
            commit: Some(commit.to_string()),
        }),
        // A tree itself (`HEAD^{tree}`, a tree hash) names the code too.
        Err(e @ collective_tree::TreeError::NotACommit { .. }) => {
            let tree = repo
                .revparse_single(rev)
                .ok()
                .filter(|o| o.kind() == Some(collective_tree::git2::ObjectType::Tree))
                .ok_or_else(|| classify(e))?;
            let ids = collective_tree::tree_ids_of_tree(&repo, tree.id()).map_err(classify)?;
            Ok(Ids {
                tree_sha1: ids.sha1,
                tree_sha256: ids.sha256,
                commit: None,
            })
        }
        Err(e) => Err(classify(e)),
    }
}

/// Picks the exit code: what the user typed is wrong (64), or the tree is
/// one that cannot be named by a tree id (2), or anything else (1). The
/// message is the error and its causes on one line.
fn classify(e: TreeError) -> anyhow::Error {
    let message = one_line(&e);
    match e {
        TreeError::BadRevision { .. }
        | TreeError::NotACommit { .. }
        | TreeError::NotARepository { .. }
        | TreeError::NotADirectory { .. } => Exit::usage(message),
        TreeError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Exit::usage(message)
        }
        TreeError::Gitlink { .. }
        | TreeError::NestedRepository { .. }
        | TreeError::NonCanonicalTree { .. }
        | TreeError::EmptySubtree { .. }
        | TreeError::UnsupportedFileType { .. }
        | TreeError::ReservedName { .. } => Exit::refused(message),
        other => anyhow::Error::new(other),
    }
}

fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        // libgit2 appends its error class and code; people need the message.
        match c.downcast_ref::<collective_tree::git2::Error>() {
            Some(g) => s.push_str(g.message()),
            None => s.push_str(&c.to_string()),
        }
        cause = c.source();
    }
    s.replace('\n', " ")
}
