//! Pull request annotations (see `collective-github`): for each open pull
//! request, its tree ids, the proposal to submit, and the tree's state on
//! this node. Read-only towards the node: it reads the journal and the
//! chain and never touches the deploy path; failures are logged and
//! retried on the next interval.

use std::path::PathBuf;
use std::time::Duration;

use collective_chain::{ChainClient, B256};
use collective_github::TreeState;
use collective_vault::SecretString;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::GithubSection;
use crate::journal::JournalReader;

/// What the GitHub task reads.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The node's decisions.
    pub journal: JournalReader,
    /// The chain (approvals at depth).
    pub chain: ChainClient,
    /// `chain.confirmations`.
    pub confirmations: u64,
}

impl Lookup {
    /// The state of a tree for a pull request's status: deployed (with its
    /// log index), approved, refused/revoked, or awaiting approval.
    async fn tree_state(&self, sha256: &str) -> Result<TreeState, String> {
        let deployed = self
            .journal
            .state(|st| match (&st.deployed, &st.deployed_entry) {
                (Some(d), Some(e)) if d.sha256 == sha256 => Some(e.index),
                _ => None,
            });
        if let Some(log_index) = deployed {
            return Ok(TreeState::Deployed { log_index });
        }
        let id: B256 = sha256
            .parse()
            .map_err(|e| format!("tree id {sha256:?}: {e}"))?;
        let a = self
            .chain
            .approval(id, self.confirmations)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match a {
            None => TreeState::AwaitingApproval,
            Some(a) if a.revoked => TreeState::Refused {
                reason: format!("approval revoked: {}", a.revoke_reason),
            },
            Some(_) => {
                // Refused for something other than the missing approval
                // (which the approval now supplies): say it in the node's
                // words when the entry is recent, by its code otherwise.
                let refused =
                    self.journal.state(|st| {
                        let code = st
                            .refused
                            .iter()
                            .find(|(t, c)| {
                                t == sha256
                                    && !c.starts_with("not-approved")
                                    && !c.starts_with("no approval")
                            })
                            .map(|(_, c)| c.clone())?;
                        let text = st
                            .recent
                            .iter()
                            .rev()
                            .find(|e| e.tree_sha256 == sha256 && e.decision == "refused")
                            .map(|e| e.reason.clone());
                        Some(text.unwrap_or_else(|| {
                            format!("refused by the node ({code}); see its log")
                        }))
                    });
                match refused {
                    Some(reason) => TreeState::Refused { reason },
                    None => TreeState::Approved,
                }
            }
        })
    }
}

impl collective_github::StateLookup for Lookup {
    fn state(
        &self,
        tree: &collective_github::TreeIds,
    ) -> impl std::future::Future<Output = Result<TreeState, String>> + Send {
        let me = self.clone();
        let sha = tree.sha256.clone();
        async move { me.tree_state(&sha).await }
    }
}

/// Annotate open pull requests every `g.interval_secs` until `shutdown`.
pub async fn run(g: GithubSection, mirror: PathBuf, lookup: Lookup, shutdown: CancellationToken) {
    let token = std::env::var(&g.token_env)
        .ok()
        .filter(|t| !t.is_empty())
        .map(SecretString::from);
    let cfg = collective_github::GithubConfig {
        api_url: g.api_url.clone(),
        owner: g.owner.clone(),
        repo: g.repo.clone(),
        token,
        retry: collective_github::RetryPolicy::default(),
    };
    let mut wc = collective_github::WatchConfig::new(cfg, mirror);
    wc.git_remote = g.git_remote.clone();
    wc.target_url = g.target_url.clone();
    let watcher = match collective_github::PrWatcher::new(wc) {
        Ok(w) => w,
        Err(e) => {
            error!(error = %e, "GitHub watcher disabled");
            return;
        }
    };
    loop {
        tokio::select! {
            r = watcher.sync_once(&lookup) => match r {
                Ok(r) => info!(prs = r.prs.len(), "GitHub pull requests synced"),
                Err(e) => warn!(error = %e, "GitHub sync failed"),
            },
            _ = shutdown.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(g.interval_secs)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
