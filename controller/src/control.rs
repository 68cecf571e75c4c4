//! The control loop: when to look, and what to do about what was seen.
//!
//! Level-triggered, as in kube-runtime: triggers (a new block or a
//! same-height reorg seen by the probe, a repository change, a
//! `/v1/refresh`, a timer) are only hints. Each pass reads one snapshot
//! ([`crate::world`]), asks the pure [`reconcile`] for the next action
//! until it says `Idle`, and re-reads after a deploy. A pass whose read
//! fails takes no action at all.
//!
//! Error policy. A failed pass sets a problem and, when retryable, backs
//! off exponentially (so an outage costs one probe per poll, not a full
//! pass). A failed deploy is held back per tree with its own backoff and is
//! logged once per cause (its reason code), with the whole error chain in
//! the reason: a full disk writes one entry, not one per block. An
//! unchanged verdict writes nothing, whatever the clock says: refusals are
//! keyed by reason code.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use collective_attest::ApprovalRef;
use collective_chain::{Approval, BlockRef};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};

use crate::deploy::TreeStore;
use crate::error::causes;
use crate::jobs::Jobs;
use crate::journal::Journal;
use crate::reconcile::{reconcile, Action, Observed};
use crate::repo::RepoSource;
use crate::status::{Metrics, StatusBoard, PASS_PROBLEMS, PENDING_KEPT};
use crate::world::{Held, World, WorldReader};
use crate::ControllerError;

mod act;

/// Exponential backoff: 1 s, 2 s, 4 s, ... up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    failures: u32,
    until: Instant,
}

impl Backoff {
    /// The backoff after one more failure at `now`.
    pub fn after(prev: Option<Backoff>, now: Instant, max: Duration) -> Backoff {
        let failures = prev.map_or(1, |b| b.failures.saturating_add(1));
        let delay = Duration::from_secs(1u64 << (failures - 1).min(16)).min(max);
        Backoff {
            failures,
            until: now + delay,
        }
    }

    /// Whether it is over at `now`.
    pub fn over(&self, now: Instant) -> bool {
        now >= self.until
    }

    /// How long until it is over.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.until.saturating_duration_since(now)
    }
}

/// Longest wait between two attempts of a failing deploy or pass.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Timing of the loop (from `node.yaml`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Chain probe interval.
    pub poll: Duration,
    /// Full pass at least this often even with no hint.
    pub resync: Duration,
    /// Remote repository fetch interval.
    pub fetch_every: Duration,
    /// Anchoring interval (zero: off).
    pub anchor_every: Duration,
}

/// Who approvals are cited as (for `ApprovalRef`).
#[derive(Debug, Clone)]
pub struct Citation {
    /// The chain id.
    pub chain_id: u64,
    /// The code registry's address.
    pub code_registry: String,
}

impl Citation {
    /// The reference a log entry cites.
    pub fn of(&self, a: &Approval) -> ApprovalRef {
        ApprovalRef {
            chain_id: self.chain_id,
            contract: self.code_registry.clone(),
            tx_hash: format!("{:#x}", a.approved_tx),
            block_number: a.approved_block,
            block_hash: format!("{:#x}", a.approved_block_hash),
        }
    }
}

/// The loop and what it acts through.
pub struct Control {
    /// Snapshot reader.
    pub world: WorldReader,
    /// The log writer.
    pub journal: Arc<Journal>,
    /// The job supervisor.
    pub jobs: Arc<Jobs>,
    /// Deployed trees.
    pub trees: Arc<TreeStore>,
    /// The repository.
    pub repo: RepoSource,
    /// Status and problems.
    pub board: Arc<StatusBoard>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Wake hints.
    pub wake: Arc<Notify>,
    /// Set by `/v1/refresh`: fetch a remote repository now.
    pub fetch_requested: Arc<AtomicBool>,
    /// Checkpoint anchoring, when the operator key is set.
    pub anchor: Option<crate::anchor::Anchorer>,
    /// How approvals are cited.
    pub citation: Citation,
    /// Node policy.
    pub policy: collective_policy::NodePolicy,
    /// `chain.confirmations`.
    pub confirmations: u64,
    /// Loop timing.
    pub timing: Timing,
    /// Failing deploys by tree sha256.
    held: Mutex<BTreeMap<String, Backoff>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

/// The name of an action, for metrics.
fn action_name(a: &Action) -> &'static str {
    match a {
        Action::ResolveInterrupted { .. } => "resolve-interrupted",
        Action::StopJob { .. } => "stop-job",
        Action::Undeploy { .. } => "undeploy",
        Action::Deploy { .. } => "deploy",
        Action::Refuse { .. } => "refuse",
        Action::StartJob { .. } => "start-job",
        Action::Idle => "idle",
    }
}

impl Control {
    /// Wire a loop.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        world: WorldReader,
        journal: Arc<Journal>,
        jobs: Arc<Jobs>,
        trees: Arc<TreeStore>,
        repo: RepoSource,
        board: Arc<StatusBoard>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        anchor: Option<crate::anchor::Anchorer>,
        citation: Citation,
        policy: collective_policy::NodePolicy,
        confirmations: u64,
        timing: Timing,
    ) -> Control {
        Control {
            world,
            journal,
            jobs,
            trees,
            repo,
            board,
            metrics,
            wake,
            fetch_requested: Arc::new(AtomicBool::new(false)),
            anchor,
            citation,
            policy,
            confirmations,
            timing,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// Run until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        let t = self.timing;
        let mut last_fetch: Option<Instant> = None;
        let mut last_anchor = Instant::now();
        let mut last_seen: Option<BlockRef> = None;
        let mut last_full: Option<Instant> = None;
        let mut pass_backoff: Option<Backoff> = None;
        let mut woken = true;
        loop {
            let requested = self.fetch_requested.swap(false, Ordering::Relaxed);
            if self.repo.is_remote()
                && (requested || last_fetch.is_none_or(|f| f.elapsed() >= t.fetch_every))
            {
                let repo = self.repo.clone();
                let r = tokio::task::spawn_blocking(move || repo.refresh()).await;
                last_fetch = Some(Instant::now());
                match r {
                    Ok(Err(e)) => self.board.set_problem("fetch", causes(&e)),
                    Ok(Ok(())) => self.board.clear("fetch"),
                    Err(_) => {}
                }
                woken = true;
            }
            // The probe: one request. A new block, or a new hash at the
            // same height (a reorg), means a pass.
            match self.world.probe().await {
                Ok(b) => {
                    let changed = last_seen != Some(b);
                    last_seen = Some(b);
                    self.board.update(|s| {
                        s.chain_block = Some(b.number);
                        s.chain_block_hash = Some(format!("{:#x}", b.hash));
                    });
                    let now = Instant::now();
                    let resync = last_full.is_none_or(|f| f.elapsed() >= t.resync);
                    let backing_off = pass_backoff.is_some_and(|b| !b.over(now));
                    let deploy_due = self.held.lock().values().any(|b| b.over(now));
                    if (changed || woken || resync || deploy_due) && !backing_off {
                        last_full = Some(now);
                        match self.pass(b).await {
                            Ok(()) => {
                                pass_backoff = None;
                                for p in PASS_PROBLEMS {
                                    self.board.clear(p);
                                }
                            }
                            Err(e) => {
                                self.metrics.read_errors.inc();
                                let source = match e {
                                    ControllerError::Chain(_)
                                    | ControllerError::ChainTooShort { .. } => "chain",
                                    _ => "action",
                                };
                                self.board.set_problem(source, causes(&e));
                                if e.is_retryable() {
                                    pass_backoff =
                                        Some(Backoff::after(pass_backoff, now, t.resync));
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    self.metrics.read_errors.inc();
                    self.board.set_problem("chain", causes(&e));
                }
            }
            if !t.anchor_every.is_zero() && last_anchor.elapsed() >= t.anchor_every {
                last_anchor = Instant::now();
                self.anchor_now().await;
            }
            tokio::select! {
                _ = self.wake.notified() => woken = true,
                _ = tokio::time::sleep(t.poll) => woken = false,
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Anchor the log's checkpoint if it grew.
    pub async fn anchor_now(&self) {
        let Some(a) = &self.anchor else { return };
        let (size, root) = self.journal.head();
        match a.anchor(size, root).await {
            Ok(Some(info)) => {
                self.metrics.anchors.inc();
                info!(size, tx = %info.tx_hash, "checkpoint anchored");
                self.board.update(|s| s.last_anchor = Some(info));
                self.board.clear("anchor");
            }
            Ok(None) => self.board.clear("anchor"),
            Err(e) => self.board.set_problem("anchor", causes(&e)),
        }
    }

    fn observed(&self) -> Observed {
        let now = Instant::now();
        let running = self.jobs.observed();
        let held = self
            .held
            .lock()
            .iter()
            .filter(|(_, b)| !b.over(now))
            .map(|(t, _)| t.clone())
            .collect();
        self.journal.state(|st| Observed {
            deployed: st.deployed.clone(),
            refused: st.refused.clone(),
            finished: st.finished.clone(),
            interrupted: st
                .started
                .keys()
                .filter(|(t, j)| !self.jobs.contains(t, j))
                .cloned()
                .collect(),
            running,
            held,
        })
    }

    /// One pass: read a snapshot at `head`, act until idle.
    #[instrument(skip(self), fields(block = head.number))]
    pub async fn pass(&self, head: BlockRef) -> Result<(), ControllerError> {
        let mut steps = 0;
        'read: loop {
            let held = Held {
                deployed: self.journal.state(|s| s.deployed.clone()),
                running: self.jobs.trees(),
            };
            let world = self.world.read(head, &held).await?;
            match &world.repo_error {
                Some(e) => self.board.set_problem("repo", e.clone()),
                None => self.board.clear("repo"),
            }
            loop {
                steps += 1;
                if steps > 64 {
                    warn!("reconcile did not converge in 64 steps");
                    return Ok(());
                }
                let action = reconcile(&world.desired, &self.observed());
                self.update_status(&world);
                if action == Action::Idle {
                    self.metrics.reconciles.inc();
                    let n = self.metrics.reconciles.get();
                    self.board.update(|s| {
                        s.reconciles = n;
                        s.last_pass_block = Some(head.number);
                        s.last_reconcile = Some(collective_attest::entry::now_rfc3339());
                    });
                    return Ok(());
                }
                self.metrics.action(action_name(&action));
                info!(?action, "reconcile");
                let deployed = matches!(action, Action::Deploy { .. });
                self.apply(action, &world).await?;
                if deployed {
                    // The deployed tree changed: its jobs are in the next
                    // snapshot.
                    continue 'read;
                }
            }
        }
    }

    fn update_status(&self, world: &World) {
        let (deployed, recent_size) = self.journal.state(|s| (s.deployed.clone(), s.size));
        let (log_size, root) = self.journal.head();
        let dep_approval = deployed
            .as_ref()
            .and_then(|d| world.approvals.get(&d.sha256));
        let running = self.jobs.labels();
        self.metrics.deployed.set(i64::from(deployed.is_some()));
        self.board.update(|s| {
            s.head = world.desired.head.as_ref().map(|(t, _)| t.clone());
            s.head_verdict = world.desired.head.as_ref().map(|(_, v)| v.clone());
            s.deployed_approval = dep_approval.map(|a| self.citation.of(a));
            s.deployed_recipients = dep_approval
                .map(|a| a.recipients.clone())
                .unwrap_or_default();
            if let Some((t, v)) = &world.desired.head {
                if v.allowed() {
                    s.pending.remove(&t.sha256);
                } else if deployed.as_ref().is_none_or(|d| d.sha256 != t.sha256) {
                    s.pending.insert(t.sha256.clone(), v.reason().to_string());
                    while s.pending.len() > PENDING_KEPT {
                        let k = s.pending.keys().find(|k| **k != t.sha256).cloned();
                        match k {
                            Some(k) => s.pending.remove(&k),
                            None => break,
                        };
                    }
                }
            }
            if let Some(d) = &deployed {
                s.pending.remove(&d.sha256);
            }
            s.deployed = deployed.clone();
            s.running = running;
            s.chain_block = Some(world.head.number);
            s.snapshot_block = Some(world.at.number);
            s.log_size = log_size.max(recent_size);
            s.log_root = hex::encode(root);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let now = Instant::now();
        let mut b = Backoff::after(None, now, Duration::from_secs(5));
        assert_eq!(b.remaining(now), Duration::from_secs(1));
        let mut seen = vec![];
        for _ in 0..5 {
            b = Backoff::after(Some(b), now, Duration::from_secs(5));
            seen.push(b.remaining(now).as_secs());
        }
        assert_eq!(seen, [2, 4, 5, 5, 5]);
        assert!(!b.over(now) && b.over(now + Duration::from_secs(5)));
    }
}
