//! One snapshot of the truth: what the reconciler decides on.
//!
//! Security argument. Everything that allows a deployment or a job start
//! is read in one block, `at = head - confirmations`, named by its hash, so
//! a snapshot never mixes heights (an approval from one block with a pause
//! flag from another). Everything that *stops* work (a revocation, a
//! pause, a withdrawal, an expiry by the chain's clock) is read at the head
//! block as well and wins: stopping is the fail-closed direction, so it
//! does not wait for the confirmation depth. A chain shorter than the depth
//! is an error (nothing is allowed, nothing is stopped), named as such. Any
//! chain read failing fails the whole snapshot: the caller takes no action.
//! A repository that cannot be read makes the snapshot have no head (nothing
//! new deploys; what runs keeps being judged) and is reported.
//!
//! Not covered: an RPC that lies consistently (it is trusted for the chain's
//! content); the auditor catches a node that acted on such lies by checking
//! every cited approval against its own RPC.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use collective_chain::{Approval, BlockRef, ChainClient, ChainError, Contribution, B256};
use collective_policy::NodePolicy;
use collective_tree::TreeIdCache;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::deploy::TreeStore;
use crate::gate::{self, ApprovalFacts, Manifests};
use crate::reconcile::{Desired, JobPlan, TreeRef, Verdict, Why};
use crate::repo::{Head, RepoSource};
use crate::ControllerError;

/// The chain reads a snapshot needs, so the loop can be tested against a
/// chain double in paused time.
pub trait ChainRead: Send + Sync {
    /// The head block.
    fn head(&self) -> BoxFuture<'_, Result<BlockRef, ChainError>>;
    /// Canonical block `n`.
    fn block(&self, n: u64) -> BoxFuture<'_, Result<Option<BlockRef>, ChainError>>;
    /// A tree's approval in block `at`.
    fn approval(
        &self,
        tree: B256,
        at: BlockRef,
    ) -> BoxFuture<'_, Result<Option<Approval>, ChainError>>;
    /// Whether the code registry is paused in block `at`.
    fn paused(&self, at: BlockRef) -> BoxFuture<'_, Result<bool, ChainError>>;
    /// The contributions to `node` in block `at`.
    fn contributions(
        &self,
        node: B256,
        at: BlockRef,
    ) -> BoxFuture<'_, Result<Vec<Contribution>, ChainError>>;
}

impl ChainRead for ChainClient {
    fn head(&self) -> BoxFuture<'_, Result<BlockRef, ChainError>> {
        Box::pin(self.head_block())
    }
    fn block(&self, n: u64) -> BoxFuture<'_, Result<Option<BlockRef>, ChainError>> {
        Box::pin(self.block_ref(n))
    }
    fn approval(
        &self,
        tree: B256,
        at: BlockRef,
    ) -> BoxFuture<'_, Result<Option<Approval>, ChainError>> {
        Box::pin(async move { self.approval_in(tree, &at).await })
    }
    fn paused(&self, at: BlockRef) -> BoxFuture<'_, Result<bool, ChainError>> {
        Box::pin(async move { self.paused_in(&at).await })
    }
    fn contributions(
        &self,
        node: B256,
        at: BlockRef,
    ) -> BoxFuture<'_, Result<Vec<Contribution>, ChainError>> {
        Box::pin(async move { self.contributions_in(node, &at).await })
    }
}

/// The truth as read on one pass, with what the actions need.
#[derive(Debug, Clone)]
pub struct World {
    /// What the reconciler is given.
    pub desired: Desired,
    /// The deploy branch head (for materializing it).
    pub head_tree: Option<Head>,
    /// Approvals at `at`, by tree sha256 (trees without one are absent).
    pub approvals: BTreeMap<String, Approval>,
    /// Datasets registered at `at` and not withdrawn at head: what a job
    /// may read.
    pub live_datasets: Vec<String>,
    /// Every dataset registered to this node at head, withdrawn or not.
    pub registered: BTreeSet<String>,
    /// The block allowing decisions were read at.
    pub at: BlockRef,
    /// The head block stop conditions were read at.
    pub head: BlockRef,
    /// Paused at `at` or at head.
    pub paused: bool,
    /// The repository could not be read (the snapshot then has no head).
    pub repo_error: Option<String>,
}

/// Trees the node holds right now, besides the branch head.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// The deployed tree, from the log.
    pub deployed: Option<TreeRef>,
    /// Trees with a running job.
    pub running: Vec<TreeRef>,
}

/// Reads snapshots. One per node: it keeps the tree id cache, so a new
/// commit on the branch costs only the objects it changed.
pub struct WorldReader {
    chain: Arc<dyn ChainRead>,
    repo: RepoSource,
    ids: Arc<Mutex<TreeIdCache>>,
    trees: Arc<TreeStore>,
    confirmations: u64,
    node_id: B256,
    policy: NodePolicy,
}

impl std::fmt::Debug for WorldReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldReader")
            .field("confirmations", &self.confirmations)
            .finish_non_exhaustive()
    }
}

fn b256_of_hex(s: &str) -> Option<B256> {
    let bytes = hex::decode(s).ok()?;
    (bytes.len() == 32).then(|| B256::from_slice(&bytes))
}

/// The approval as the gate sees it.
pub fn approval_facts(a: &Approval) -> ApprovalFacts {
    ApprovalFacts {
        tree_sha256: hex::encode(a.tree_sha256.as_slice()),
        tree_sha1: hex::encode(a.tree_sha1.as_slice()),
        recipients: a.recipients.clone(),
        expires_at: a.expires_at,
        revoked: a.revoked,
        revoke_reason: a.revoke_reason.clone(),
    }
}

/// The deploy branch head with its `(job name, job.yaml)` pairs.
type HeadRead = Option<(Head, Vec<(String, String)>)>;

impl WorldReader {
    /// A reader over these sources.
    pub fn new(
        chain: Arc<dyn ChainRead>,
        repo: RepoSource,
        trees: Arc<TreeStore>,
        confirmations: u64,
        node_id: [u8; 32],
        policy: NodePolicy,
    ) -> WorldReader {
        WorldReader {
            chain,
            repo,
            ids: Arc::new(Mutex::new(TreeIdCache::default())),
            trees,
            confirmations,
            node_id: B256::from(node_id),
            policy,
        }
    }

    /// The chain's head block (the loop's cheap probe).
    pub async fn probe(&self) -> Result<BlockRef, ControllerError> {
        Ok(self.chain.head().await?)
    }

    /// The block snapshots are pinned at for head `head`.
    async fn pinned(&self, head: BlockRef) -> Result<BlockRef, ControllerError> {
        let Some(n) = head.number.checked_sub(self.confirmations) else {
            return Err(ControllerError::ChainTooShort {
                height: head.number,
                confirmations: self.confirmations,
            });
        };
        if n == head.number {
            return Ok(head);
        }
        self.chain
            .block(n)
            .await?
            .ok_or(ControllerError::Raced { what: "the chain" })
    }

    async fn read_head(&self) -> Result<HeadRead, ControllerError> {
        let (repo, ids) = (self.repo.clone(), self.ids.clone());
        tokio::task::spawn_blocking(move || -> Result<HeadRead, ControllerError> {
            match repo.head_cached(&mut ids.lock())? {
                Some(h) => {
                    let m = repo.manifests_in_tree(h.tree)?;
                    Ok(Some((h, m)))
                }
                None => Ok(None),
            }
        })
        .await
        .map_err(|e| ControllerError::Panicked {
            task: "reading the repository".into(),
            message: e.to_string(),
        })?
    }

    /// Approvals of `trees` at `at`, with stop facts from `head` folded in:
    /// revoked at head counts as revoked.
    async fn approvals(
        &self,
        trees: &BTreeSet<String>,
        at: BlockRef,
        head: BlockRef,
    ) -> Result<BTreeMap<String, Approval>, ControllerError> {
        let mut out = BTreeMap::new();
        for t in trees {
            let Some(id) = b256_of_hex(t) else { continue };
            let Some(mut a) = self.chain.approval(id, at).await? else {
                continue;
            };
            if head != at && !a.revoked {
                if let Some(h) = self.chain.approval(id, head).await? {
                    if h.revoked {
                        a.revoked = true;
                        a.revoke_reason = h.revoke_reason;
                    }
                }
            }
            out.insert(t.clone(), a);
        }
        Ok(out)
    }

    /// Read a snapshot for chain head `head`, given what the node holds.
    pub async fn read(&self, head: BlockRef, held: &Held) -> Result<World, ControllerError> {
        let at = self.pinned(head).await?;
        let (head_read, repo_error) = match self.read_head().await {
            Ok(h) => (h, None),
            Err(e) => (None, Some(crate::error::causes(&e))),
        };
        let paused =
            self.chain.paused(at).await? || (head != at && self.chain.paused(head).await?);
        let mut trees: BTreeSet<String> = BTreeSet::new();
        if let Some((h, _)) = &head_read {
            trees.insert(h.ids.sha256.clone());
        }
        trees.extend(held.deployed.iter().map(|d| d.sha256.clone()));
        trees.extend(held.running.iter().map(|t| t.sha256.clone()));
        let approvals = self.approvals(&trees, at, head).await?;

        // Expiry is judged by the head block's clock: later than `at`'s, so
        // an approval stops no later than the chain says it ends.
        let now = head.timestamp;
        let verdict_for = |tree: &TreeRef, recomputed: &str, manifests: &Manifests| {
            let facts = approvals.get(&tree.sha256).map(approval_facts);
            gate::verdict(&gate::GateInput {
                tree,
                sha256_recomputed: Some(recomputed),
                approval: facts.as_ref(),
                paused,
                now,
                manifests,
                policy: &self.policy,
                confirmations: self.confirmations,
            })
        };
        let mut desired = Desired::default();
        if let Some((h, pairs)) = &head_read {
            let t = h.tree_ref();
            let v = verdict_for(&t, &h.ids.sha256, &gate::parse_manifests(pairs));
            desired.verdicts.insert(t.sha256.clone(), v.clone());
            desired.head = Some((t, v));
        }
        // Deployed and running trees are judged on their on-disk manifests
        // (the deployed, verified copy).
        let mut others: Vec<&TreeRef> = held.deployed.iter().collect();
        others.extend(held.running.iter());
        for t in others {
            let v = match self.trees.manifests(&t.sha256) {
                Some(m) => verdict_for(t, &t.sha256, &m),
                None => Verdict::Refused(Why::new(
                    "tree-missing-on-disk",
                    format!(
                        "deployed tree {} is missing from {}",
                        t.sha256,
                        self.trees.path(&t.sha256).display()
                    ),
                )),
            };
            desired.verdicts.insert(t.sha256.clone(), v);
        }
        if let Some(d) = &held.deployed {
            if let Some(m) = self.trees.manifests(&d.sha256) {
                desired.jobs = m
                    .iter()
                    .filter(|(_, r)| r.is_ok())
                    .map(|(n, _)| JobPlan { name: n.clone() })
                    .collect();
            }
        }

        // Datasets: what may be read comes from `at`; withdrawals count
        // from the head.
        let at_c = self.chain.contributions(self.node_id, at).await?;
        let head_c = if head == at {
            at_c.clone()
        } else {
            self.chain.contributions(self.node_id, head).await?
        };
        let sha = |c: &Contribution| hex::encode(c.sha256.as_slice());
        desired.withdrawn = at_c
            .iter()
            .chain(&head_c)
            .filter(|c| c.withdrawn)
            .map(sha)
            .collect();
        let mut live: Vec<String> = at_c
            .iter()
            .filter(|c| !c.withdrawn)
            .map(sha)
            .filter(|s| !desired.withdrawn.contains(s))
            .collect();
        live.dedup();
        let registered = at_c.iter().chain(&head_c).map(sha).collect();
        Ok(World {
            desired,
            head_tree: head_read.map(|(h, _)| h),
            approvals,
            live_datasets: live,
            registered,
            at,
            head,
            paused,
            repo_error,
        })
    }
}
