//! What the node shows about itself: the public status, its current
//! problems, and the Prometheus metrics.
//!
//! Health argument. A problem is set where it is seen (a failed chain read,
//! a failed deploy, a log that cannot be appended to) and stays in
//! `/v1/status`, on the status page, in `/metrics` and, once, on stderr
//! until the thing that cleared it happened: for the read problems
//! (`chain`, `repo`) and the loop's own (`action`), a complete successful
//! pass, not merely a cheap probe that answered. The status is published
//! through a `watch` channel: HTTP handlers read a snapshot and never hold
//! a lock the loop needs.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use collective_attest::ApprovalRef;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::reconcile::{TreeRef, Verdict};

/// Trees shown as pending at most: a branch pushed to many times must not
/// grow the status without bound.
pub const PENDING_KEPT: usize = 64;

/// Public status, served at `/v1/status` and rendered at `/`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// This node's id (0x-hex), as registered in `NodeRegistry`.
    pub node_id: String,
    /// The tree at the deploy branch head, as last read.
    pub head: Option<TreeRef>,
    /// Whether the head tree may run, and why not if it may not.
    pub head_verdict: Option<Verdict>,
    /// The tree currently deployed (from the log).
    pub deployed: Option<TreeRef>,
    /// The on-chain approval the deployed tree runs under.
    pub deployed_approval: Option<ApprovalRef>,
    /// Recipients the approval names: job outputs are encrypted to them only.
    pub deployed_recipients: Vec<String>,
    /// Trees seen at the branch head and not deployable yet, with why
    /// (the latest [`PENDING_KEPT`]).
    pub pending: BTreeMap<String, String>,
    /// Running jobs as `job@<tree sha256 prefix>`.
    pub running: Vec<String>,
    /// The latest chain block seen.
    pub chain_block: Option<u64>,
    /// Its hash (0x-hex): a same-height reorg changes it.
    pub chain_block_hash: Option<String>,
    /// The block the last snapshot was pinned at (`head - confirmations`).
    pub snapshot_block: Option<u64>,
    /// The chain problem, if any (also in `problems`).
    pub chain_error: Option<String>,
    /// The repository problem, if any (also in `problems`).
    pub repo_error: Option<String>,
    /// The loop's last failed action or log append, if not yet resolved.
    pub last_error: Option<String>,
    /// Every current problem by source (`chain`, `repo`, `action`, `log`,
    /// `deploy`, `anchor`, ...), until what clears it happens.
    pub problems: BTreeMap<String, Problem>,
    /// When the last complete pass ended (RFC 3339).
    pub last_reconcile: Option<String>,
    /// Number of entries in the transparency log.
    pub log_size: u64,
    /// Merkle root of the log at `log_size` (hex).
    pub log_root: String,
    /// The last checkpoint anchored on chain, if anchoring is on.
    pub last_anchor: Option<AnchorInfo>,
    /// Reconcile passes since start.
    pub reconciles: u64,
    /// The head block of the last pass that ended with nothing left to do:
    /// a client that waits for it to reach block `n` knows the node has
    /// judged everything up to `n` (negative checks wait on this).
    pub last_pass_block: Option<u64>,
}

/// One current problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong, with its causes.
    pub message: String,
    /// When it was first seen (RFC 3339).
    pub since: String,
}

/// The last checkpoint anchored on chain.
#[derive(Debug, Clone, Serialize)]
pub struct AnchorInfo {
    /// Log size the anchored checkpoint commits to.
    pub size: u64,
    /// Its Merkle root (hex).
    pub root: String,
    /// The anchoring transaction (0x-hex).
    pub tx_hash: String,
    /// The block it was included in.
    pub block_number: u64,
}

/// The problems a complete successful pass clears.
pub const PASS_PROBLEMS: [&str; 3] = ["chain", "repo", "action"];

/// The writer side of the status; HTTP holds receivers.
#[derive(Debug)]
pub struct StatusBoard {
    tx: watch::Sender<Status>,
    metrics: std::sync::Arc<Metrics>,
}

impl StatusBoard {
    /// A board for node `node_id`.
    pub fn new(node_id: String, metrics: std::sync::Arc<Metrics>) -> StatusBoard {
        let (tx, _) = watch::channel(Status {
            node_id,
            ..Default::default()
        });
        StatusBoard { tx, metrics }
    }

    /// A reader (HTTP).
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.tx.subscribe()
    }

    /// The current status.
    pub fn get(&self) -> Status {
        self.tx.borrow().clone()
    }

    /// Change the status in place.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        self.tx.send_modify(f);
    }

    /// Record a problem. Said once on stderr per new message; the status
    /// and metrics keep showing it until [`clear`](Self::clear).
    pub fn set_problem(&self, source: &str, message: String) {
        let mut changed = false;
        self.tx.send_modify(|s| {
            let fresh = s.problems.get(source).is_none_or(|p| p.message != message);
            if fresh {
                changed = true;
                s.problems.insert(
                    source.to_string(),
                    Problem {
                        message: message.clone(),
                        since: collective_attest::entry::now_rfc3339(),
                    },
                );
                mirror(s);
            }
        });
        if changed {
            warn!(source, problem = %message, "problem");
            self.metrics
                .problems
                .get_or_create(&ProblemLabel {
                    source: source.to_string(),
                })
                .set(1);
        }
    }

    /// Clear a problem (a no-op when there is none).
    pub fn clear(&self, source: &str) {
        let mut had = false;
        self.tx.send_if_modified(|s| {
            had = s.problems.remove(source).is_some();
            if had {
                mirror(s);
            }
            had
        });
        if had {
            info!(source, "problem resolved");
            self.metrics
                .problems
                .get_or_create(&ProblemLabel {
                    source: source.to_string(),
                })
                .set(0);
        }
    }

    /// Whether a problem of this source is current.
    pub fn has(&self, source: &str) -> bool {
        self.tx.borrow().problems.contains_key(source)
    }
}

/// The older single-field views of `problems`.
fn mirror(s: &mut Status) {
    let get = |k: &str| s.problems.get(k).map(|p| p.message.clone());
    s.chain_error = get("chain");
    s.repo_error = get("repo");
    s.last_error = get("action").or_else(|| get("log"));
}

/// Label of a per-kind counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// The action (`deploy`, `start-job`, ...).
    pub action: String,
}

/// Label of a per-decision counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    /// The decision (`deployed`, `refused`, ...).
    pub decision: String,
}

/// Label of a problem gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProblemLabel {
    /// The problem's source (`chain`, `repo`, ...).
    pub source: String,
}

/// Counters and gauges for `/metrics` (prometheus-client).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Complete reconcile passes.
    pub reconciles: Counter,
    /// Failed reads of the chain or repository.
    pub read_errors: Counter,
    /// Jobs started.
    pub jobs_started: Counter,
    /// Checkpoints anchored on chain.
    pub anchors: Counter,
    /// Actions taken, by kind.
    pub actions: Family<ActionLabel, Counter>,
    /// Log entries, by decision.
    pub decisions: Family<DecisionLabel, Counter>,
    /// 1 for each current problem, by source.
    pub problems: Family<ProblemLabel, Gauge>,
    /// Entries in the log.
    pub log_size: Gauge,
    /// Jobs running now.
    pub jobs_running: Gauge,
    /// 1 if a tree is deployed.
    pub deployed: Gauge,
    /// Seconds since start (set when scraped).
    pub uptime: Gauge<u64, AtomicU64>,
    /// Wake-ups (`/v1/refresh`, repository events) refused by the rate limit.
    pub refresh_limited: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("collective");
        let m = Metrics {
            reconciles: Counter::default(),
            read_errors: Counter::default(),
            jobs_started: Counter::default(),
            anchors: Counter::default(),
            actions: Family::default(),
            decisions: Family::default(),
            problems: Family::default(),
            log_size: Gauge::default(),
            jobs_running: Gauge::default(),
            deployed: Gauge::default(),
            uptime: Gauge::default(),
            refresh_limited: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "reconciles",
            "Complete reconcile passes",
            m.reconciles.clone(),
        );
        registry.register(
            "read_errors",
            "Failed reads of chain or repository",
            m.read_errors.clone(),
        );
        registry.register("jobs_started", "Jobs started", m.jobs_started.clone());
        registry.register(
            "anchors",
            "Checkpoints anchored on chain",
            m.anchors.clone(),
        );
        registry.register(
            "actions",
            "Reconcile actions taken, by kind",
            m.actions.clone(),
        );
        registry.register("decisions", "Log entries, by decision", m.decisions.clone());
        registry.register(
            "problems",
            "Current problems, by source (1 while present)",
            m.problems.clone(),
        );
        registry.register(
            "log_size",
            "Entries in the decision log",
            m.log_size.clone(),
        );
        registry.register("jobs_running", "Jobs running now", m.jobs_running.clone());
        registry.register("deployed", "1 if a tree is deployed", m.deployed.clone());
        registry.register("uptime_seconds", "Seconds since start", m.uptime.clone());
        registry.register(
            "refresh_limited",
            "Refresh requests refused by the rate limit",
            m.refresh_limited.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Count one action of this kind.
    pub fn action(&self, kind: &str) {
        self.actions
            .get_or_create(&ActionLabel {
                action: kind.to_string(),
            })
            .inc();
    }

    /// Count one log entry of this decision.
    pub fn decision(&self, decision: &str) {
        self.decisions
            .get_or_create(&DecisionLabel {
                decision: decision.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_problem_stays_until_cleared_and_shows_in_metrics() {
        let m = Arc::new(Metrics::default());
        let b = StatusBoard::new("0x1".into(), m.clone());
        b.set_problem("chain", "RPC down".into());
        let since = b.get().problems["chain"].since.clone();
        b.set_problem("chain", "RPC down".into());
        assert_eq!(
            b.get().problems["chain"].since,
            since,
            "same problem, same start"
        );
        assert_eq!(b.get().chain_error.as_deref(), Some("RPC down"));
        assert!(m
            .encode()
            .contains("collective_problems{source=\"chain\"} 1"));
        b.clear("chain");
        assert!(b.get().chain_error.is_none() && !b.has("chain"));
        assert!(m
            .encode()
            .contains("collective_problems{source=\"chain\"} 0"));
    }

    #[test]
    fn metric_names_are_stable() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.action("deploy");
        m.decision("refused");
        let text = m.encode();
        for name in [
            "collective_reconciles_total 1",
            "collective_actions_total{action=\"deploy\"} 1",
            "collective_decisions_total{decision=\"refused\"} 1",
            "collective_log_size 0",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
