//! GitHub integration: tell requesters, on their pull request, which tree the
//! DAO has to approve, and show them how far their code has come.
//!
//! Security argument. Nothing here can make the node deploy anything: the
//! controller deploys only trees approved on-chain, and this crate only
//! *reports* on pull requests. What it must get right is:
//! - the tree ids it posts are those of the PR's **merge result** (what the
//!   deploy branch will hold after a merge of an up-to-date PR), computed
//!   locally with git from the repository's own refs, never taken from the
//!   API's word;
//! - the API token (`GITHUB_TOKEN`) never reaches a log line, an error
//!   message or a comment: it is held as a [`SecretString`] and only
//!   octocrab's auth layer sees it;
//! - it keeps exactly one comment per PR (found by [`COMMENT_MARKER`] and
//!   written by the token's own user), so a third party cannot make the node
//!   edit their comment or hide the node's one.

mod client;
#[cfg(feature = "fake")]
pub mod fake;
mod merge;
mod watch;

pub use client::{parse_pr_url, GithubClient, GithubConfig, PullRequest, RetryPolicy};
pub use collective_tree::TreeIds;
pub use merge::{merge_tree_ids, MergeOutcome};
pub use octocrab::secrecy::SecretString;
pub use watch::{
    pr_proposal, proposal_command, render_comment, CommentAction, PrOutcome, PrProposal, PrReport,
    PrSource, PrWatcher, StateLookup, StatusUpdate, SyncReport, TreeState, WatchConfig,
    COMMENT_MARKER, STATUS_CONTEXT,
};

/// Everything that can go wrong talking to GitHub or computing a PR's tree.
///
/// Messages name the URL and what to do; they never contain the token
/// (requests and their headers are never formatted into an error).
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// The token was rejected (HTTP 401).
    #[error("GitHub rejected the credentials for {url} (HTTP 401): check GITHUB_TOKEN")]
    Unauthorized { url: String },
    /// 404: wrong owner/repo/number, or a token without access to a private repository.
    #[error("not found on GitHub: {url} (HTTP 404): check owner, repository and PR number, and that the token can read the repository")]
    NotFound { url: String },
    /// Rate limited and the wait GitHub asks for is longer than we are willing to wait, or retries ran out.
    #[error("GitHub rate limit for {url}: {detail}")]
    RateLimited { url: String, detail: String },
    /// 5xx or transport failures that persisted through every retry.
    #[error("GitHub API unavailable for {url} after {attempts} attempts: {last}")]
    Unavailable {
        url: String,
        attempts: u32,
        last: String,
    },
    /// Any other non-success answer (403 without rate-limit headers, 422, ...).
    #[error("GitHub API error for {url}: HTTP {status}: {message}")]
    Api {
        url: String,
        status: u16,
        message: String,
    },
    /// The body did not have the shape of GitHub's documented response.
    #[error("unexpected response from {url}: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// Building the octocrab client failed (bad base URL, ...).
    #[error("cannot configure the GitHub client ({what}): {source}")]
    Client {
        what: String,
        #[source]
        source: octocrab::Error,
    },
    /// A pull request URL that is not `https://<host>/<owner>/<repo>/pull/<n>`.
    #[error("not a pull request URL: {url} (expected https://github.com/OWNER/REPO/pull/NUMBER)")]
    BadPrUrl { url: String },
    /// git fetch/merge failed in the local mirror.
    #[error("git {op} failed ({detail}): {source}")]
    Git {
        op: String,
        detail: String,
        #[source]
        source: git2::Error,
    },
    /// The merge result could not be hashed.
    #[error("computing tree ids of {what}: {source}")]
    Tree {
        what: String,
        #[source]
        source: collective_tree::TreeError,
    },
    /// The caller's state lookup (chain) failed for a tree.
    #[error("looking up the on-chain state of tree {tree_sha256}: {message}")]
    StateLookup {
        tree_sha256: String,
        message: String,
    },
    /// The PR does not merge cleanly into its base, so there is no tree to propose.
    #[error("pull request {url} conflicts with its base branch {base} in: {}", paths.join(", "))]
    Conflict {
        url: String,
        base: String,
        paths: Vec<String>,
    },
    /// A blocking git task panicked or was cancelled.
    #[error("background git task failed: {detail}")]
    Task { detail: String },
}
