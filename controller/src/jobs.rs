//! The job supervisor: starts jobs, stops them, and logs how each ended.
//!
//! Argument. A job is in the running set before its `job-started` entry is
//! appended (so replay never mistakes it for an interrupted one) and its
//! sandbox starts only after that entry is durable. Every job runs as a
//! task of one [`TaskTracker`], inside a second task whose panic is caught:
//! whatever happens to the job's code path (an error, a panic, the node
//! shutting down), exactly one end entry is appended and the job leaves the
//! running set, so nothing is "running" forever and no lock is left
//! poisoned (the locks here do not poison). Shutdown asks every job to stop
//! and waits for the tracker, with a deadline, instead of polling.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use collective_attest::{ApprovalRef, Decision, OutputDigest, Predicate};
use collective_policy::JobManifest;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::journal::Journal;
use crate::reconcile::{Running, StopKind, TreeRef, Why};
use crate::status::{Metrics, StatusBoard};
use crate::ControllerError;

/// What one job run needs.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The tree the job runs from (deployed, verified).
    pub tree: TreeRef,
    /// The job's name.
    pub job: String,
    /// Its manifest.
    pub manifest: JobManifest,
    /// sha256 digests of the datasets it reads.
    pub datasets: Vec<String>,
    /// Who its outputs are encrypted to (the approval's recipients).
    pub recipients: Vec<String>,
    /// The job's own uid.
    pub uid: u32,
}

/// How a job ended, before it is logged.
#[derive(Debug)]
pub enum JobEnd {
    /// A batch job ran to its end.
    Finished {
        /// Digests of the sealed outputs.
        outputs: Vec<OutputDigest>,
        /// The exit status.
        exit_status: i32,
        /// The summary for the log.
        reason: String,
    },
    /// An export re-encrypted its datasets.
    Exported {
        /// Digests of the re-encrypted files.
        outputs: Vec<OutputDigest>,
    },
    /// It was stopped before it ended.
    Cancelled,
}

/// Runs one job (the sandbox, or a double in tests).
pub trait JobRunner: Send + Sync + 'static {
    /// Run `spec` until it ends or `cancel` fires.
    fn run(
        &self,
        spec: JobSpec,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<JobEnd, ControllerError>>;
}

#[derive(Debug)]
struct RunningJob {
    tree: TreeRef,
    cancel: CancellationToken,
    uid: u32,
    stop: Option<(StopKind, Why)>,
    datasets: Vec<String>,
    started: Instant,
}

type Key = (String, String);

/// The running jobs.
pub struct Jobs {
    running: Mutex<BTreeMap<Key, RunningJob>>,
    tracker: TaskTracker,
    journal: Arc<Journal>,
    runner: Arc<dyn JobRunner>,
    wake: Arc<Notify>,
    board: Arc<StatusBoard>,
    metrics: Arc<Metrics>,
    uids: Vec<u32>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("running", &self.running.lock().len())
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// A supervisor; `uids` are the job uids it may hand out (one per job
    /// at a time when it has several).
    pub fn new(
        journal: Arc<Journal>,
        runner: Arc<dyn JobRunner>,
        wake: Arc<Notify>,
        board: Arc<StatusBoard>,
        metrics: Arc<Metrics>,
        uids: Vec<u32>,
    ) -> Arc<Jobs> {
        Arc::new(Jobs {
            running: Mutex::new(BTreeMap::new()),
            tracker: TaskTracker::new(),
            journal,
            runner,
            wake,
            board,
            metrics,
            uids,
        })
    }

    /// The running set as the reconciler sees it.
    pub fn observed(&self) -> Vec<Running> {
        self.running
            .lock()
            .iter()
            .map(|((t, j), r)| Running {
                tree_sha256: t.clone(),
                job: j.clone(),
                datasets: r.datasets.clone(),
                stopping: r.stop.is_some(),
            })
            .collect()
    }

    /// Whether (tree, job) is running.
    pub fn contains(&self, tree: &str, job: &str) -> bool {
        self.running
            .lock()
            .contains_key(&(tree.to_string(), job.to_string()))
    }

    /// Trees with a running job.
    pub fn trees(&self) -> Vec<TreeRef> {
        let mut seen = BTreeSet::new();
        self.running
            .lock()
            .values()
            .filter(|r| seen.insert(r.tree.sha256.clone()))
            .map(|r| r.tree.clone())
            .collect()
    }

    /// `job@<tree prefix>` for the status page.
    pub fn labels(&self) -> Vec<String> {
        self.running
            .lock()
            .keys()
            .map(|(t, j)| format!("{j}@{}", &t[..t.len().min(12)]))
            .collect()
    }

    /// Ask a job to stop; its end entry records `kind` and `why`.
    pub fn stop(&self, tree: &str, job: &str, kind: StopKind, why: Why) {
        if let Some(r) = self
            .running
            .lock()
            .get_mut(&(tree.to_string(), job.to_string()))
        {
            if r.stop.is_none() {
                info!(job, tree, reason = %why.reason, "stopping job");
                r.stop = Some((kind, why));
                r.cancel.cancel();
            }
        }
    }

    /// Log `job-started` and start the job. `spec.uid` is replaced by a
    /// free job uid.
    pub fn start(
        self: &Arc<Self>,
        mut spec: JobSpec,
        approval: ApprovalRef,
        started: Predicate,
    ) -> Result<(), ControllerError> {
        let key = (spec.tree.sha256.clone(), spec.job.clone());
        let cancel = CancellationToken::new();
        {
            let mut running = self.running.lock();
            let used: BTreeSet<u32> = running.values().map(|r| r.uid).collect();
            spec.uid = self
                .uids
                .iter()
                .copied()
                .find(|u| !used.contains(u))
                .ok_or_else(|| ControllerError::Refused {
                    reason: format!("no free job uid ({} jobs running)", running.len()),
                })?;
            running.insert(
                key.clone(),
                RunningJob {
                    tree: spec.tree.clone(),
                    cancel: cancel.clone(),
                    uid: spec.uid,
                    stop: None,
                    datasets: spec.datasets.clone(),
                    started: Instant::now(),
                },
            );
        }
        if let Err(e) = self.journal.record(&spec.tree, started) {
            self.running.lock().remove(&key);
            return Err(e);
        }
        self.metrics.jobs_started.inc();
        self.metrics
            .jobs_running
            .set(self.running.lock().len() as i64);
        let jobs = self.clone();
        let tree = spec.tree.clone();
        let job = spec.job.clone();
        let runner = self.runner.clone();
        self.tracker.spawn(async move {
            // The job's own task: a panic in it (even in `run` itself,
            // before its future is polled) ends here, as an error.
            let result = match tokio::spawn(async move { runner.run(spec, cancel).await }).await {
                Ok(r) => r,
                Err(e) => Err(ControllerError::Panicked {
                    task: format!("job {job}"),
                    message: panic_text(e),
                }),
            };
            jobs.finish(&tree, &job, approval, result);
        });
        Ok(())
    }

    fn finish(
        &self,
        tree: &TreeRef,
        job: &str,
        aref: ApprovalRef,
        result: Result<JobEnd, ControllerError>,
    ) {
        let key = (tree.sha256.clone(), job.to_string());
        let stop = self.running.lock().get(&key).and_then(|r| r.stop.clone());
        let p = end_predicate(job, aref, result, stop);
        if let Err(e) = self.journal.record(tree, p) {
            error!(error = %crate::error::causes(&e), "could not log the end of a job");
            self.board.set_problem(
                "log",
                format!("logging the end of job {job}: {}", crate::error::causes(&e)),
            );
        }
        if let Some(r) = self.running.lock().remove(&key) {
            info!(
                job,
                elapsed_ms = r.started.elapsed().as_millis() as u64,
                "job ended"
            );
        }
        self.metrics
            .jobs_running
            .set(self.running.lock().len() as i64);
        self.wake.notify_one();
    }

    /// Stop every job (recording `why`) and wait for their end entries, at
    /// most `deadline`.
    pub async fn drain(&self, why: Why, deadline: Duration) {
        let keys: Vec<Key> = self.running.lock().keys().cloned().collect();
        for (t, j) in keys {
            self.stop(&t, &j, StopKind::Suspended, why.clone());
        }
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            error!(
                left = self.running.lock().len(),
                "jobs did not stop in time"
            );
        }
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "the task was cancelled".into();
    }
    let p = e.into_panic();
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The end entry of a job. A job that ended on its own before a stop
/// reached it is logged as what it was; a stopped one as the stop's kind.
fn end_predicate(
    job: &str,
    aref: ApprovalRef,
    result: Result<JobEnd, ControllerError>,
    stop: Option<(StopKind, Why)>,
) -> Predicate {
    let mut p = match (result, stop) {
        (
            Ok(JobEnd::Finished {
                outputs,
                exit_status,
                reason,
            }),
            _,
        ) => {
            let mut p = Predicate::new(Decision::JobFinished, reason);
            p.outputs = outputs;
            p.exit_status = Some(exit_status);
            p
        }
        (Ok(JobEnd::Exported { outputs }), _) => {
            let mut p = Predicate::new(
                Decision::Exported,
                format!(
                    "{} dataset(s) re-encrypted to the export recipient",
                    outputs.len()
                ),
            );
            p.outputs = outputs;
            p
        }
        (Err(e), None) => {
            let mut p = Predicate::new(
                Decision::JobFinished,
                format!("failed: {}", crate::error::causes(&e)),
            );
            p.reason_code = Some(format!("job-failed-{}", e.code()));
            p.exit_status = Some(-1);
            p
        }
        (_, stop) => {
            let (kind, why) = stop.unwrap_or((StopKind::Suspended, Why::from("stopped")));
            let mut p = Predicate::new(kind.decision(), format!("job killed: {}", why.reason));
            p.reason_code = Some(why.code);
            p
        }
    };
    p.job = Some(job.to_string());
    if p.decision.needs_approval() {
        p.approval = Some(aref);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aref() -> ApprovalRef {
        ApprovalRef {
            chain_id: 1,
            contract: "0x0".into(),
            tx_hash: "0x1".into(),
            block_number: 1,
            block_hash: "0x2".into(),
        }
    }

    #[test]
    fn end_entries() {
        let p = end_predicate(
            "a",
            aref(),
            Err(ControllerError::Panicked {
                task: "job a".into(),
                message: "boom".into(),
            }),
            None,
        );
        assert_eq!(p.decision, Decision::JobFinished);
        assert_eq!(p.exit_status, Some(-1));
        assert!(p.reason.contains("boom"), "{}", p.reason);
        let p = end_predicate(
            "a",
            aref(),
            Ok(JobEnd::Cancelled),
            Some((StopKind::Paused, Why::new("registry-paused", "paused"))),
        );
        assert_eq!(p.decision, Decision::Paused);
        assert!(p.approval.is_none());
        assert_eq!(p.reason_code.as_deref(), Some("registry-paused"));
        // Ended on its own while a stop was on its way: what it was.
        let p = end_predicate(
            "a",
            aref(),
            Ok(JobEnd::Exported { outputs: vec![] }),
            Some((StopKind::Revoked, Why::from("r"))),
        );
        assert_eq!(p.decision, Decision::Exported);
        assert!(p.approval.is_some());
    }
}
