//! `collective github ...`: keep a repository's pull requests told which
//! tree the DAO has to approve, and how far it has come.
//!
//! `watch` is the standalone form of what a node does in-process: for every
//! open PR it computes the merge tree ids, posts a `collective/approval`
//! commit status and keeps one comment with the exact
//! `collective proposal submit` command. With `--deployment` it reads
//! approvals from the chain (past `--confirmations` blocks); without it every
//! tree shows "awaiting DAO approval". Deployment state (with the log index)
//! is only known to a node, which runs the same watcher with its own lookup.
//!
//! The token is read from `GITHUB_TOKEN` only, never from the command line
//! (which other users can see in the process list).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use collective_chain::{ChainClient, Deployment, B256};
use collective_github::{
    pr_proposal, GithubConfig, PrOutcome, PrSource, PrWatcher, RetryPolicy, StateLookup,
    SyncReport, TreeIds, TreeState, WatchConfig, STATUS_CONTEXT,
};

use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum GithubCommand {
    /// Post tree ids, a status and the proposal command on every open pull request.
    Watch(WatchArgs),
    /// Print the tree ids and proposal description of one pull request.
    Pr(PrArgs),
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The repository, `https://github.com/OWNER/NAME` (or use --owner and --name).
    #[arg(long, value_name = "URL", conflicts_with_all = ["owner", "name"])]
    pub repo_url: Option<String>,
    #[arg(long, requires = "name")]
    pub owner: Option<String>,
    #[arg(long, requires = "owner")]
    pub name: Option<String>,
    /// GitHub REST API root (GitHub Enterprise: https://HOST/api/v3).
    #[arg(long, value_name = "URL", default_value = "https://api.github.com")]
    pub api_url: String,
    /// Where to fetch `refs/pull/N/head` from (path or URL); default: the repository's clone URL.
    #[arg(long, value_name = "PATH_OR_URL")]
    pub git_remote: Option<String>,
    /// Local bare repository used as fetch cache; default: a directory under the system temp dir.
    #[arg(long, value_name = "DIR")]
    pub mirror_dir: Option<PathBuf>,
    /// Deployment file (devnet.yaml or a deployment YAML): read approvals from the chain.
    #[arg(long, value_name = "FILE")]
    pub deployment: Option<PathBuf>,
    /// Blocks an approval must be buried under before it is shown as approved.
    #[arg(long, default_value_t = 2)]
    pub confirmations: u64,
    /// Commit status context.
    #[arg(long, default_value = STATUS_CONTEXT)]
    pub context: String,
    /// Link from the status (a node's status page).
    #[arg(long, value_name = "URL")]
    pub target_url: Option<String>,
    /// One pass, then exit (exit code 1 if any PR failed).
    #[arg(long)]
    pub once: bool,
    /// Seconds between passes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
}

#[derive(Debug, clap::Args)]
pub struct PrArgs {
    /// `https://github.com/OWNER/NAME/pull/N`
    pub pr_url: String,
    /// GitHub REST API root; default from the PR URL's host.
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// Where to fetch `refs/pull/N/head` from; default: the repository's clone URL.
    #[arg(long, value_name = "PATH_OR_URL")]
    pub git_remote: Option<String>,
    /// Local bare repository used as fetch cache.
    #[arg(long, value_name = "DIR")]
    pub mirror_dir: Option<PathBuf>,
}

pub async fn run(c: GithubCommand, out: Output) -> anyhow::Result<u8> {
    match c {
        GithubCommand::Watch(a) => watch(a, out).await,
        GithubCommand::Pr(a) => pr(a, out).await,
    }
}

/// `OWNER`, `NAME` from `https://HOST/OWNER/NAME[.git][/]`.
fn parse_repo_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            Exit::usage(format!(
                "--repo-url {url}: expected https://github.com/OWNER/NAME"
            ))
        })?;
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        [_host, owner, name] if !owner.is_empty() && !name.is_empty() => {
            Ok((owner.to_string(), name.trim_end_matches(".git").to_string()))
        }
        _ => Err(Exit::usage(format!(
            "--repo-url {url}: expected https://github.com/OWNER/NAME"
        ))),
    }
}

fn default_mirror(owner: &str, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("collective-github-{owner}-{name}.git"))
}

/// Approval state from the chain: approved (live, matching sha1), refused
/// (revoked, expired, sha1 mismatch) or awaiting approval.
struct ChainLookup {
    chain: ChainClient,
    confirmations: u64,
}

impl StateLookup for ChainLookup {
    async fn state(&self, tree: &TreeIds) -> Result<TreeState, String> {
        let key: B256 = format!("0x{}", tree.sha256)
            .parse()
            .map_err(|e| format!("bad sha256 tree id: {e}"))?;
        let approval = self
            .chain
            .approval(key, self.confirmations)
            .await
            .map_err(|e| e.to_string())?;
        let Some(a) = approval else {
            return Ok(TreeState::AwaitingApproval);
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if a.revoked {
            return Ok(TreeState::Refused {
                reason: format!("approval revoked: {}", a.revoke_reason),
            });
        }
        if !a.is_live(now) {
            return Ok(TreeState::Refused {
                reason: "approval expired".into(),
            });
        }
        if hex::encode(a.tree_sha1.as_slice()) != tree.sha1 {
            return Ok(TreeState::Refused {
                reason: "the approval names a different sha1 tree id".into(),
            });
        }
        Ok(TreeState::Approved)
    }
}

/// No chain configured: everything awaits approval.
struct NoChain;
impl StateLookup for NoChain {
    async fn state(&self, _tree: &TreeIds) -> Result<TreeState, String> {
        Ok(TreeState::AwaitingApproval)
    }
}

async fn watch(a: WatchArgs, out: Output) -> anyhow::Result<u8> {
    let (owner, name) = match (&a.repo_url, &a.owner, &a.name) {
        (Some(url), _, _) => parse_repo_url(url)?,
        (None, Some(o), Some(n)) => (o.clone(), n.clone()),
        _ => return Err(Exit::usage(
            "name the repository: --repo-url https://github.com/OWNER/NAME, or --owner and --name",
        )),
    };
    let token = GithubConfig::token_from_env();
    if token.is_none() {
        return Err(Exit::usage(
            "GITHUB_TOKEN is not set: posting statuses and comments needs a token (repo:status and pull request write access)",
        ));
    }
    let github = GithubConfig {
        api_url: a.api_url.clone(),
        owner: owner.clone(),
        repo: name.clone(),
        token,
        retry: RetryPolicy::default(),
    };
    let mut config = WatchConfig::new(
        github,
        a.mirror_dir
            .clone()
            .unwrap_or_else(|| default_mirror(&owner, &name)),
    );
    config.git_remote = a.git_remote.clone();
    config.context = a.context.clone();
    config.target_url = a.target_url.clone();
    let watcher = PrWatcher::new(config).map_err(|e| Exit::usage(e.to_string()))?;

    match &a.deployment {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let d: Deployment = serde_norway::from_str(&text).map_err(|e| {
                Exit::usage(format!("{}: not a deployment file: {e}", path.display()))
            })?;
            let chain = ChainClient::connect_deployment(&d, None)
                .await
                .with_context(|| format!("connecting to the chain at {}", d.rpc_url))?;
            let lookup = ChainLookup {
                chain,
                confirmations: a.confirmations,
            };
            watch_loop(&watcher, &lookup, &a, out).await
        }
        None => watch_loop(&watcher, &NoChain, &a, out).await,
    }
}

async fn watch_loop<L: StateLookup>(
    watcher: &PrWatcher,
    lookup: &L,
    a: &WatchArgs,
    out: Output,
) -> anyhow::Result<u8> {
    loop {
        match watcher.sync_once(lookup).await {
            Ok(report) => {
                let failed = report
                    .prs
                    .iter()
                    .any(|p| matches!(p, PrOutcome::Failed { .. }));
                if a.once {
                    out.result(&report, human(&report))?;
                    return Ok(if failed {
                        crate::exit::FAILURE
                    } else {
                        crate::exit::OK
                    });
                }
                out.say(human(&report));
            }
            Err(e) if a.once => return Err(anyhow::Error::new(e).context("syncing pull requests")),
            Err(e) => {
                tracing::warn!(error = %e, "sync failed; retrying after the interval");
                out.say(format!("sync failed: {e}"));
            }
        }
        tokio::time::sleep(Duration::from_secs(a.interval)).await;
    }
}

fn human(report: &SyncReport) -> String {
    if report.prs.is_empty() {
        return "no open pull requests".into();
    }
    let mut lines = Vec::new();
    for p in &report.prs {
        match p {
            PrOutcome::Synced(r) => {
                let tree = r
                    .tree_sha256
                    .as_deref()
                    .map_or("conflicts".to_string(), |t| format!("tree sha256 {t}"));
                lines.push(format!(
                    "#{} {}: {} — {} ({})",
                    r.number, r.html_url, tree, r.status.description, r.status.state
                ));
            }
            PrOutcome::Failed { number, error, .. } => {
                lines.push(format!("#{number}: failed: {error}"))
            }
        }
    }
    lines.join("\n")
}

async fn pr(a: PrArgs, out: Output) -> anyhow::Result<u8> {
    let (owner, name, _) =
        collective_github::parse_pr_url(&a.pr_url).map_err(|e| Exit::usage(e.to_string()))?;
    let source = PrSource {
        api_url: a.api_url,
        token: GithubConfig::token_from_env(),
        mirror_dir: a
            .mirror_dir
            .unwrap_or_else(|| default_mirror(&owner, &name)),
        git_remote: a.git_remote,
        retry: RetryPolicy::default(),
    };
    let p = pr_proposal(&a.pr_url, &source)
        .await
        .context("reading the pull request")?;
    let command = collective_github::proposal_command(&p.tree(), &p.recipients, &p.description);
    let human = format!(
        "PR #{} {}\nhead   {}\nsha1   {}\nsha256 {}\n\n{}",
        p.number, p.title, p.head_sha, p.tree_sha1, p.tree_sha256, command
    );
    out.result(&p, human)?;
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_urls() {
        assert_eq!(
            parse_repo_url("https://github.com/acme/jobs.git").unwrap(),
            ("acme".into(), "jobs".into())
        );
        assert_eq!(
            parse_repo_url("https://github.com/acme/jobs/").unwrap(),
            ("acme".into(), "jobs".into())
        );
        assert!(parse_repo_url("github.com/acme/jobs").is_err());
        assert!(parse_repo_url("https://github.com/acme").is_err());
    }
}
