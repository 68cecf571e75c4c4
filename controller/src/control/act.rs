//! What each [`Action`] does: log it, deploy, start or stop a job. The
//! loop in [`super`] decides when; this module only carries it out, and
//! keeps a failing deploy from being logged more than once per cause.

use collective_attest::{Decision, Predicate};
use collective_policy::JobKind;
use tokio::time::Instant;
use tracing::warn;

use super::{Backoff, Control, MAX_BACKOFF};
use crate::config::InterruptedPolicy;
use crate::deploy::{self, Outcome};
use crate::error::causes;
use crate::jobs::JobSpec;
use crate::reconcile::{Action, TreeRef};
use crate::world::World;
use crate::ControllerError;

impl Control {
    fn tree_of(&self, sha256: &str) -> TreeRef {
        self.journal.state(|st| {
            st.runs
                .iter()
                .rev()
                .find(|e| e.tree_sha256 == sha256)
                .map(|e| TreeRef {
                    sha1: e.tree_sha1.clone(),
                    sha256: sha256.to_string(),
                    commit: e.commit.clone(),
                })
                .unwrap_or_else(|| TreeRef {
                    sha1: String::new(),
                    sha256: sha256.to_string(),
                    commit: None,
                })
        })
    }

    pub(super) async fn apply(&self, action: Action, world: &World) -> Result<(), ControllerError> {
        match action {
            Action::Idle => Ok(()),
            Action::ResolveInterrupted { tree_sha256, job } => {
                let tree = self.tree_of(&tree_sha256);
                let mut p = Predicate::new(
                    Decision::Interrupted,
                    format!(
                        "job-started without an end (the node stopped during the job); resolution: {}",
                        match self.journal.on_interrupted() {
                            InterruptedPolicy::Fail => "marked failed, not rerun",
                            InterruptedPolicy::RerunOnce => "rerun once",
                        }
                    ),
                );
                p.job = Some(job);
                p.reason_code = Some("interrupted".into());
                self.journal.record(&tree, p).map(drop)
            }
            Action::StopJob {
                tree_sha256,
                job,
                kind,
                why,
            } => {
                self.jobs.stop(&tree_sha256, &job, kind, why);
                Ok(())
            }
            Action::Undeploy { tree, kind, why } => {
                let mut p = Predicate::new(kind.decision(), why.reason);
                p.reason_code = Some(why.code);
                self.journal.record(&tree, p).map(drop)
            }
            Action::Refuse { tree, why } => {
                let mut p = Predicate::new(Decision::Refused, why.reason);
                p.reason_code = Some(why.code);
                self.journal.record(&tree, p).map(drop)
            }
            Action::Deploy { tree } => self.deploy(tree, world).await,
            Action::StartJob { tree_sha256, job } => {
                self.start_job(&tree_sha256, &job, world).await
            }
        }
    }

    /// Log a refusal of `tree` unless one with this code is already logged.
    fn refuse_once(
        &self,
        tree: &TreeRef,
        mut p: Predicate,
        code: String,
    ) -> Result<(), ControllerError> {
        let key = (tree.sha256.clone(), code.clone());
        if self.journal.state(|s| s.refused.contains(&key)) {
            return Ok(());
        }
        p.reason_code = Some(code);
        self.journal.record(tree, p).map(drop)
    }

    async fn deploy(&self, tree: TreeRef, world: &World) -> Result<(), ControllerError> {
        let Some(approval) = world.approvals.get(&tree.sha256) else {
            return Err(ControllerError::Raced {
                what: "the approval",
            });
        };
        let aref = self.citation.of(approval);
        let outcome = deploy::deploy(
            &self.repo,
            &self.trees,
            &tree,
            world,
            &self.policy,
            self.confirmations,
            aref.clone(),
        )
        .await;
        let now = Instant::now();
        match outcome {
            Outcome::Deployed(p) => {
                self.journal.record(&tree, p)?;
                self.held.lock().remove(&tree.sha256);
                self.board.clear("deploy");
            }
            Outcome::Refused(p) => {
                self.hold(&tree, now);
                self.board.set_problem("deploy", p.reason.clone());
                let code = p.reason_code.clone().unwrap_or_default();
                self.refuse_once(&tree, p, code)?;
            }
            Outcome::Failed(e) => {
                let b = self.hold(&tree, now);
                let text = causes(&e);
                warn!(tree = %tree.sha256, error = %text, retry_in_s = b.remaining(now).as_secs(), "deploy failed");
                self.board.set_problem(
                    "deploy",
                    format!("deploying {}: {text} (retrying with backoff)", tree.sha256),
                );
                let mut p = Predicate::new(
                    Decision::Refused,
                    format!("deployment failed, will be retried: {text}"),
                );
                p.approval = Some(aref);
                self.refuse_once(&tree, p, format!("deploy-failed-{}", e.code()))?;
            }
        }
        Ok(())
    }

    fn hold(&self, tree: &TreeRef, now: Instant) -> Backoff {
        let mut held = self.held.lock();
        let b = Backoff::after(held.get(&tree.sha256).copied(), now, MAX_BACKOFF);
        held.insert(tree.sha256.clone(), b);
        b
    }

    async fn start_job(
        &self,
        tree_sha256: &str,
        job: &str,
        world: &World,
    ) -> Result<(), ControllerError> {
        let tree = self
            .journal
            .state(|s| s.deployed.clone())
            .filter(|d| d.sha256 == tree_sha256)
            .ok_or(ControllerError::Raced {
                what: "the deployed tree",
            })?;
        let approval = world
            .approvals
            .get(tree_sha256)
            .ok_or(ControllerError::Raced {
                what: "the approval",
            })?;
        let aref = self.citation.of(approval);
        let refuse = |code: &str, reason: String| {
            let mut p = Predicate::new(Decision::Refused, reason);
            p.job = Some(job.to_string());
            p.approval = Some(aref.clone());
            p.reason_code = Some(code.to_string());
            self.journal.record(&tree, p).map(drop)
        };
        let Some(manifest) = self
            .trees
            .manifests(tree_sha256)
            .and_then(|m| m.into_iter().find(|(n, _)| n == job))
            .and_then(|(_, r)| r.ok())
        else {
            return refuse(
                "manifest-missing",
                format!("job {job} has no valid manifest on disk"),
            );
        };
        // Verify the deployed tree again right before running it.
        let dir = self.trees.path(tree_sha256);
        let recomputed =
            tokio::task::spawn_blocking(move || collective_tree::sha256_tree_of_dir(&dir))
                .await
                .map_err(|e| ControllerError::Panicked {
                    task: "hashing the deployed tree".into(),
                    message: e.to_string(),
                })?;
        if recomputed.as_deref().ok() != Some(tree_sha256) {
            self.trees.forget(tree_sha256);
            let got = match &recomputed {
                Ok(s) => s.clone(),
                Err(e) => causes(e),
            };
            return refuse(
                "tree-changed-on-disk",
                format!("deployed tree on disk no longer hashes to {tree_sha256}: {got}"),
            );
        }
        // A job that names data this node never had is refused, not run on
        // nothing: the requester learns the ids are wrong.
        if let collective_policy::DatasetSelector::List(ids) = &manifest.datasets {
            let unknown: Vec<&String> = ids
                .iter()
                .filter(|i| !world.registered.contains(*i))
                .collect();
            if !unknown.is_empty() {
                return refuse(
                    "dataset-not-registered",
                    format!(
                        "job {job} names {} dataset(s) never registered to this node: {}",
                        unknown.len(),
                        unknown
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        let datasets = manifest.datasets.select(&world.live_datasets);
        let mut started = Predicate::new(
            Decision::JobStarted,
            format!(
                "{} job; {} dataset(s)",
                match manifest.kind {
                    JobKind::Batch => "batch",
                    JobKind::Export => "export",
                },
                datasets.len()
            ),
        );
        started.job = Some(job.to_string());
        started.approval = Some(aref.clone());
        let spec = JobSpec {
            tree,
            job: job.to_string(),
            manifest,
            datasets,
            recipients: approval.recipients.clone(),
            uid: 0,
        };
        self.jobs.start(spec, aref, started)
    }
}
