//! The reconciler: a pure function from (what should be, what is) to the
//! next action.
//!
//! Security argument. The only path to running code is [`Action::Deploy`]
//! followed by [`Action::StartJob`], and `reconcile` emits them only for a
//! tree whose [`Verdict`] is `Allowed`; the verdict is computed by the I/O
//! loop from `collective_policy::decide` over the on-chain approval read at
//! the configured confirmation depth. There is no input to this function
//! that says "deploy anyway": fail-closed is the absence of such a path.
//! Running jobs whose tree stops being allowed (revoked, paused, expired)
//! or whose data was withdrawn are stopped before anything else happens.
//!
//! Level-triggered, as in kube-rs: the caller re-reads the truth (branch
//! head, chain, log-derived state) on every wake and calls `reconcile`
//! until it returns [`Action::Idle`]. Repeating a call with the same inputs
//! yields the same action, and every action changes the observed state (by
//! appending to the log or changing the running set), so the loop
//! terminates.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// A tree by its two ids (and the commit it came from, if known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeRef {
    /// sha1 tree id (hex), as found in the commit.
    pub sha1: String,
    /// sha256 tree id (hex): the id approvals name and the node recomputes
    /// from disk.
    pub sha256: String,
    /// The commit the tree was taken from, for the log; not part of identity.
    pub commit: Option<String>,
}

/// Why something is not allowed: a stable code (what refusals are
/// deduplicated by) and the sentence for people (which may carry times,
/// ids and error details that change from one reading to the next).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Why {
    /// Stable, kebab-case (`not-approved`, `expired`, `revoked`, ...).
    pub code: String,
    /// The sentence for the log and the status page.
    pub reason: String,
}

impl Why {
    /// A reason with its code.
    pub fn new(code: impl Into<String>, reason: impl Into<String>) -> Why {
        Why {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

impl From<&str> for Why {
    /// A reason whose text is its own code (tests and fixed sentences).
    fn from(s: &str) -> Why {
        Why::new(s, s)
    }
}

/// Why a tree may not run now. The variant decides which log decision a
/// stop records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Verdict {
    /// Approved (at depth), live, and within node policy.
    Allowed,
    /// No approval on chain yet (a pending tree).
    NotApproved(Why),
    /// Approval revoked.
    Revoked(Why),
    /// The guardian paused the code registry.
    Paused(Why),
    /// The approval expired: temporarily not allowed.
    Suspended(Why),
    /// Refused for any other reason (policy, manifests, mismatch).
    Refused(Why),
}

impl Verdict {
    /// Whether the tree may run; the single test every start goes through.
    pub fn allowed(&self) -> bool {
        matches!(self, Verdict::Allowed)
    }

    /// The reason, `None` when allowed.
    pub fn why(&self) -> Option<&Why> {
        match self {
            Verdict::Allowed => None,
            Verdict::NotApproved(w)
            | Verdict::Revoked(w)
            | Verdict::Paused(w)
            | Verdict::Suspended(w)
            | Verdict::Refused(w) => Some(w),
        }
    }

    /// The human reason recorded in the log (`"allowed"` when allowed).
    pub fn reason(&self) -> &str {
        self.why().map_or("allowed", |w| w.reason.as_str())
    }

    /// The stable reason code (`"allowed"` when allowed).
    pub fn code(&self) -> &str {
        self.why().map_or("allowed", |w| w.code.as_str())
    }
}

/// The log decision recorded when something is stopped: one per cause, so
/// the log says why without parsing sentences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopKind {
    /// The tree's approval was revoked.
    Revoked,
    /// The guardian paused the registry.
    Paused,
    /// The approval expired, or is no longer visible at depth (a reorg):
    /// it may run again once allowed again.
    Suspended,
    /// A dataset the job reads was withdrawn by its contributor.
    Withdrawn,
    /// Anything else: the tree no longer verifies on disk, or fails policy.
    Refused,
}

impl StopKind {
    fn of(v: &Verdict) -> StopKind {
        match v {
            Verdict::Revoked(_) => StopKind::Revoked,
            Verdict::Paused(_) => StopKind::Paused,
            Verdict::Suspended(_) | Verdict::NotApproved(_) => StopKind::Suspended,
            Verdict::Refused(_) | Verdict::Allowed => StopKind::Refused,
        }
    }

    /// The decision a stop of this kind is logged as.
    pub fn decision(self) -> collective_attest::Decision {
        use collective_attest::Decision;
        match self {
            StopKind::Revoked => Decision::Revoked,
            StopKind::Paused => Decision::Paused,
            StopKind::Suspended => Decision::Suspended,
            StopKind::Withdrawn => Decision::Withdrawn,
            StopKind::Refused => Decision::Refused,
        }
    }
}

/// A job of the deployed tree the node may run (manifest valid, kind
/// allowed, within limits: filtered by the caller through policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobPlan {
    /// The job's name in the tree's manifest.
    pub name: String,
}

/// The truth, re-read on every wake.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The deploy branch head and its verdict.
    pub head: Option<(TreeRef, Verdict)>,
    /// Current verdicts of the deployed tree and of every tree with a
    /// running job (keyed by sha256).
    pub verdicts: BTreeMap<String, Verdict>,
    /// Runnable jobs of the deployed tree.
    pub jobs: Vec<JobPlan>,
    /// Withdrawn dataset digests (sha256 hex).
    pub withdrawn: BTreeSet<String>,
}

/// A job running right now (in memory, not from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// sha256 id of the tree the job runs from.
    pub tree_sha256: String,
    /// The job's name.
    pub job: String,
    /// sha256 digests of the datasets it reads, so a withdrawal stops it.
    pub datasets: Vec<String>,
    /// A stop was already requested; do not request again.
    pub stopping: bool,
}

/// What the node has done, as replayed from the log, plus the running set.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The tree last logged `deployed` and not since undeployed.
    pub deployed: Option<TreeRef>,
    /// (tree sha256, reason code) already logged as refused or stopped.
    pub refused: BTreeSet<(String, String)>,
    /// Trees whose deployment failed and is backing off: not retried
    /// until the backoff ends (the failure is already logged).
    pub held: BTreeSet<String>,
    /// (tree sha256, job) that need not run again.
    pub finished: BTreeSet<(String, String)>,
    /// (tree sha256, job) with `job-started` in the log and no end, not
    /// running now: a crash interrupted them.
    pub interrupted: BTreeSet<(String, String)>,
    /// Jobs running right now.
    pub running: Vec<Running>,
}

/// The one next step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// Log `interrupted` for a job a crash cut short and resolve it.
    ResolveInterrupted {
        /// sha256 id of the job's tree.
        tree_sha256: String,
        /// The job's name.
        job: String,
    },
    /// Kill a running job and log why.
    StopJob {
        /// sha256 id of the job's tree.
        tree_sha256: String,
        /// The job's name.
        job: String,
        /// The log decision to record.
        kind: StopKind,
        /// Why, for the log.
        why: Why,
    },
    /// The deployed tree is no longer allowed: log and forget it.
    Undeploy {
        /// The tree being undeployed.
        tree: TreeRef,
        /// The log decision to record.
        kind: StopKind,
        /// Why, for the log.
        why: Why,
    },
    /// Materialize, verify from disk, and (if it verifies) log `deployed`.
    Deploy {
        /// The allowed head tree.
        tree: TreeRef,
    },
    /// Log that the head tree is refused (once per tree and reason code).
    Refuse {
        /// The refused head tree.
        tree: TreeRef,
        /// Why; its code with the tree is the dedup key.
        why: Why,
    },
    /// Start a job of the deployed tree.
    StartJob {
        /// sha256 id of the deployed tree.
        tree_sha256: String,
        /// The job's name.
        job: String,
    },

    /// Nothing to do until the next wake.
    Idle,
}

/// A tree with no verdict is treated as refused (fail closed).
fn unknown() -> Verdict {
    Verdict::Refused(Why::new(
        "tree-state-unknown",
        "tree state unknown (no verdict was computed for it)",
    ))
}

/// Decide the next action. Pure and deterministic.
pub fn reconcile(desired: &Desired, observed: &Observed) -> Action {
    // 1. A crash left jobs started but unfinished: resolve before anything.
    if let Some((tree, job)) = observed.interrupted.iter().next() {
        return Action::ResolveInterrupted {
            tree_sha256: tree.clone(),
            job: job.clone(),
        };
    }
    // 2. Stop running jobs that may no longer run. A tree without a
    //    verdict is treated as not allowed (fail closed).
    for r in observed.running.iter().filter(|r| !r.stopping) {
        let verdict = desired
            .verdicts
            .get(&r.tree_sha256)
            .cloned()
            .unwrap_or_else(unknown);
        if let Some(why) = verdict.why() {
            return Action::StopJob {
                tree_sha256: r.tree_sha256.clone(),
                job: r.job.clone(),
                kind: StopKind::of(&verdict),
                why: why.clone(),
            };
        }
        if let Some(d) = r.datasets.iter().find(|d| desired.withdrawn.contains(*d)) {
            return Action::StopJob {
                tree_sha256: r.tree_sha256.clone(),
                job: r.job.clone(),
                kind: StopKind::Withdrawn,
                why: Why::new("dataset-withdrawn", format!("dataset {d} withdrawn")),
            };
        }
    }
    // 3. The deployed tree stopped being allowed: undeploy once its jobs
    //    have stopped.
    if let Some(dep) = &observed.deployed {
        let verdict = desired
            .verdicts
            .get(&dep.sha256)
            .cloned()
            .unwrap_or_else(unknown);
        if let Some(why) = verdict.why() {
            let busy = observed.running.iter().any(|r| r.tree_sha256 == dep.sha256);
            if !busy {
                return Action::Undeploy {
                    tree: dep.clone(),
                    kind: StopKind::of(&verdict),
                    why: why.clone(),
                };
            }
            return Action::Idle;
        }
    }
    // 4. A new head: deploy it if allowed, otherwise log the refusal once.
    //    A refused head leaves the deployed tree alone.
    if let Some((head, verdict)) = &desired.head {
        let is_deployed = observed
            .deployed
            .as_ref()
            .is_some_and(|d| d.sha256 == head.sha256);
        if !is_deployed {
            match verdict.why() {
                // A deployment that failed waits out its backoff.
                None if observed.held.contains(&head.sha256) => {}
                None => return Action::Deploy { tree: head.clone() },
                Some(why) => {
                    let key = (head.sha256.clone(), why.code.clone());
                    if !observed.refused.contains(&key) {
                        return Action::Refuse {
                            tree: head.clone(),
                            why: why.clone(),
                        };
                    }
                }
            }
        }
    }
    // 5. Run each job of the deployed tree once.
    if let Some(dep) = &observed.deployed {
        for job in &desired.jobs {
            let key = (dep.sha256.clone(), job.name.clone());
            let running = observed
                .running
                .iter()
                .any(|r| r.tree_sha256 == dep.sha256 && r.job == job.name);
            if !running && !observed.finished.contains(&key) {
                return Action::StartJob {
                    tree_sha256: dep.sha256.clone(),
                    job: job.name.clone(),
                };
            }
        }
    }
    Action::Idle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(n: u8) -> TreeRef {
        TreeRef {
            sha1: format!("{n:040}"),
            sha256: format!("{n:064}"),
            commit: None,
        }
    }

    fn desired_with(
        head: Option<(TreeRef, Verdict)>,
        verdicts: &[(u8, Verdict)],
        jobs: &[&str],
    ) -> Desired {
        Desired {
            head,
            verdicts: verdicts
                .iter()
                .map(|(n, v)| (tree(*n).sha256, v.clone()))
                .collect(),
            jobs: jobs
                .iter()
                .map(|j| JobPlan {
                    name: j.to_string(),
                })
                .collect(),
            withdrawn: BTreeSet::new(),
        }
    }

    fn running(n: u8, job: &str) -> Running {
        Running {
            tree_sha256: tree(n).sha256,
            job: job.into(),
            datasets: vec!["d1".into()],
            stopping: false,
        }
    }

    #[test]
    fn approved_head_deploys() {
        let d = desired_with(Some((tree(1), Verdict::Allowed)), &[], &[]);
        assert_eq!(
            reconcile(&d, &Observed::default()),
            Action::Deploy { tree: tree(1) }
        );
    }

    #[test]
    fn unapproved_head_is_refused_once_and_never_deployed() {
        let v = Verdict::NotApproved("no approval".into());
        let d = desired_with(Some((tree(2), v.clone())), &[], &[]);
        let mut o = Observed::default();
        assert_eq!(
            reconcile(&d, &o),
            Action::Refuse {
                tree: tree(2),
                why: "no approval".into()
            }
        );
        o.refused.insert((tree(2).sha256, "no approval".into()));
        assert_eq!(reconcile(&d, &o), Action::Idle);
        // A new reason is logged again.
        let d2 = desired_with(
            Some((tree(2), Verdict::Refused("manifest invalid".into()))),
            &[],
            &[],
        );
        assert!(matches!(reconcile(&d2, &o), Action::Refuse { .. }));
    }

    #[test]
    fn refusals_are_keyed_by_code_not_words() {
        let mut o = Observed::default();
        let v = |t: &str| Verdict::Suspended(Why::new("expired", t));
        let d = desired_with(Some((tree(2), v("expired at 10, now 11"))), &[], &[]);
        let Action::Refuse { why, .. } = reconcile(&d, &o) else {
            panic!("expected a refusal")
        };
        o.refused.insert((tree(2).sha256, why.code));
        for now in 12..40 {
            let d = desired_with(
                Some((tree(2), v(&format!("expired at 10, now {now}")))),
                &[],
                &[],
            );
            assert_eq!(reconcile(&d, &o), Action::Idle, "now {now}");
        }
    }

    #[test]
    fn held_deploy_waits_and_keeps_the_old_tree_running() {
        let d = desired_with(
            Some((tree(2), Verdict::Allowed)),
            &[(1, Verdict::Allowed), (2, Verdict::Allowed)],
            &["a"],
        );
        let mut o = Observed {
            deployed: Some(tree(1)),
            ..Default::default()
        };
        assert_eq!(reconcile(&d, &o), Action::Deploy { tree: tree(2) });
        o.held.insert(tree(2).sha256);
        // Not retried while held; the deployed tree's jobs go on.
        assert!(matches!(reconcile(&d, &o), Action::StartJob { .. }));
        o.finished.insert((tree(1).sha256, "a".into()));
        assert_eq!(reconcile(&d, &o), Action::Idle);
        o.held.clear();
        assert_eq!(reconcile(&d, &o), Action::Deploy { tree: tree(2) });
    }

    #[test]
    fn stop_kinds_map_to_their_decisions() {
        use collective_attest::Decision;
        let cases = [
            (Verdict::Revoked("r".into()), Decision::Revoked),
            (Verdict::Paused("p".into()), Decision::Paused),
            (Verdict::Suspended("s".into()), Decision::Suspended),
            (Verdict::NotApproved("n".into()), Decision::Suspended),
            (Verdict::Refused("x".into()), Decision::Refused),
        ];
        for (v, want) in cases {
            assert_eq!(StopKind::of(&v).decision(), want, "{v:?}");
        }
        assert_eq!(StopKind::Withdrawn.decision(), Decision::Withdrawn);
    }

    #[test]
    fn no_verdict_other_than_allowed_deploys() {
        for v in [
            Verdict::NotApproved("x".into()),
            Verdict::Revoked("x".into()),
            Verdict::Suspended("x".into()),
            Verdict::Refused("x".into()),
        ] {
            let d = desired_with(Some((tree(3), v)), &[], &["a"]);
            let a = reconcile(&d, &Observed::default());
            assert!(matches!(a, Action::Refuse { .. }), "{a:?}");
        }
    }

    #[test]
    fn refused_head_keeps_previous_deployment_and_its_jobs() {
        let d = desired_with(
            Some((tree(2), Verdict::NotApproved("no approval".into()))),
            &[(1, Verdict::Allowed)],
            &["train"],
        );
        let o = Observed {
            deployed: Some(tree(1)),
            refused: [(tree(2).sha256, "no approval".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(
            reconcile(&d, &o),
            Action::StartJob {
                tree_sha256: tree(1).sha256,
                job: "train".into()
            }
        );
    }

    #[test]
    fn batch_job_runs_once() {
        let d = desired_with(
            Some((tree(1), Verdict::Allowed)),
            &[(1, Verdict::Allowed)],
            &["a", "b"],
        );
        let mut o = Observed {
            deployed: Some(tree(1)),
            ..Default::default()
        };
        assert_eq!(
            reconcile(&d, &o),
            Action::StartJob {
                tree_sha256: tree(1).sha256,
                job: "a".into()
            }
        );
        o.running.push(running(1, "a"));
        assert_eq!(
            reconcile(&d, &o),
            Action::StartJob {
                tree_sha256: tree(1).sha256,
                job: "b".into()
            }
        );
        o.running.push(running(1, "b"));
        assert_eq!(reconcile(&d, &o), Action::Idle);
        o.running.clear();
        o.finished.insert((tree(1).sha256, "a".into()));
        o.finished.insert((tree(1).sha256, "b".into()));
        assert_eq!(reconcile(&d, &o), Action::Idle);
    }

    #[test]
    fn interrupted_jobs_resolve_first() {
        let d = desired_with(Some((tree(9), Verdict::Allowed)), &[], &[]);
        let o = Observed {
            interrupted: [(tree(1).sha256, "a".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(
            reconcile(&d, &o),
            Action::ResolveInterrupted {
                tree_sha256: tree(1).sha256,
                job: "a".into()
            }
        );
    }

    #[test]
    fn revocation_stops_running_job_then_undeploys() {
        let rev = Verdict::Revoked("leaks data".into());
        let d = desired_with(Some((tree(1), rev.clone())), &[(1, rev.clone())], &["a"]);
        let mut o = Observed {
            deployed: Some(tree(1)),
            running: vec![running(1, "a")],
            ..Default::default()
        };
        assert_eq!(
            reconcile(&d, &o),
            Action::StopJob {
                tree_sha256: tree(1).sha256,
                job: "a".into(),
                kind: StopKind::Revoked,
                why: "leaks data".into()
            }
        );
        o.running[0].stopping = true;
        // Waits for the job to end before undeploying; never starts jobs.
        assert_eq!(reconcile(&d, &o), Action::Idle);
        o.running.clear();
        assert_eq!(
            reconcile(&d, &o),
            Action::Undeploy {
                tree: tree(1),
                kind: StopKind::Revoked,
                why: "leaks data".into()
            }
        );
        o.deployed = None;
        o.refused.insert((tree(1).sha256, "leaks data".into()));
        assert_eq!(reconcile(&d, &o), Action::Idle);
        // The same code with new words (a time in the sentence) is no news.
        let rev2 = Verdict::Revoked(Why::new("leaks data", "leaks data, at 12:00"));
        let d = desired_with(Some((tree(1), rev2.clone())), &[(1, rev2)], &["a"]);
        assert_eq!(reconcile(&d, &o), Action::Idle);
    }

    #[test]
    fn pause_suspends_and_unpause_redeploys() {
        let p = Verdict::Paused("registry paused".into());
        let d = desired_with(Some((tree(1), p.clone())), &[(1, p)], &["a"]);
        let mut o = Observed {
            deployed: Some(tree(1)),
            running: vec![running(1, "a")],
            ..Default::default()
        };
        assert!(matches!(
            reconcile(&d, &o),
            Action::StopJob {
                kind: StopKind::Paused,
                ..
            }
        ));
        o.running.clear();
        assert!(matches!(
            reconcile(&d, &o),
            Action::Undeploy {
                kind: StopKind::Paused,
                ..
            }
        ));
        o.deployed = None;
        let d = desired_with(
            Some((tree(1), Verdict::Allowed)),
            &[(1, Verdict::Allowed)],
            &["a"],
        );
        assert_eq!(reconcile(&d, &o), Action::Deploy { tree: tree(1) });
    }

    #[test]
    fn withdrawal_stops_jobs_using_the_data() {
        let mut d = desired_with(
            Some((tree(1), Verdict::Allowed)),
            &[(1, Verdict::Allowed)],
            &["a"],
        );
        let o = Observed {
            deployed: Some(tree(1)),
            running: vec![running(1, "a")],
            ..Default::default()
        };
        assert_eq!(reconcile(&d, &o), Action::Idle);
        d.withdrawn.insert("d1".into());
        assert!(matches!(
            reconcile(&d, &o),
            Action::StopJob {
                kind: StopKind::Withdrawn,
                ..
            }
        ));
    }

    #[test]
    fn running_job_of_unknown_tree_is_stopped() {
        let d = desired_with(None, &[], &[]);
        let o = Observed {
            running: vec![running(7, "a")],
            ..Default::default()
        };
        assert!(matches!(
            reconcile(&d, &o),
            Action::StopJob {
                kind: StopKind::Refused,
                ..
            }
        ));
    }

    #[test]
    fn superseded_tree_jobs_finish_while_new_tree_deploys() {
        let d = desired_with(
            Some((tree(2), Verdict::Allowed)),
            &[(1, Verdict::Allowed), (2, Verdict::Allowed)],
            &[],
        );
        let o = Observed {
            deployed: Some(tree(1)),
            running: vec![running(1, "a")],
            ..Default::default()
        };
        assert_eq!(reconcile(&d, &o), Action::Deploy { tree: tree(2) });
    }

    #[test]
    fn no_head_no_deployment_is_idle() {
        assert_eq!(
            reconcile(&Desired::default(), &Observed::default()),
            Action::Idle
        );
    }

    /// Exhaustive over small worlds: whatever the inputs, `Deploy` and
    /// `StartJob` only name allowed trees, and applying the action's
    /// effect reaches `Idle` in a bounded number of steps.
    #[test]
    fn exhaustive_small_worlds() {
        let verdicts = [
            Verdict::Allowed,
            Verdict::NotApproved("n".into()),
            Verdict::Revoked("r".into()),
            Verdict::Suspended("s".into()),
            Verdict::Paused("p".into()),
            Verdict::Refused("x".into()),
        ];
        let mut worlds = 0;
        for head_v in 0..=verdicts.len() {
            for dep_v in 0..=verdicts.len() {
                for deployed_same in [false, true] {
                    for running_job in [false, true] {
                        for finished in [false, true] {
                            worlds += 1;
                            let head = (head_v < verdicts.len())
                                .then(|| (tree(1), verdicts[head_v].clone()));
                            let mut vmap = BTreeMap::new();
                            if let Some((_, v)) = &head {
                                vmap.insert(tree(1).sha256, v.clone());
                            }
                            let dep_tree = if deployed_same { tree(1) } else { tree(2) };
                            let deployed = (dep_v < verdicts.len()).then(|| dep_tree.clone());
                            if dep_v < verdicts.len() {
                                vmap.insert(dep_tree.sha256.clone(), verdicts[dep_v].clone());
                            }
                            if deployed_same && deployed.is_some() && head.is_some() {
                                // one tree, one verdict
                                vmap.insert(tree(1).sha256, verdicts[head_v].clone());
                            }
                            let mut d = Desired {
                                head,
                                verdicts: vmap,
                                jobs: vec![JobPlan { name: "j".into() }],
                                withdrawn: BTreeSet::new(),
                            };
                            let mut o = Observed {
                                deployed,
                                ..Default::default()
                            };
                            if running_job && o.deployed.is_some() {
                                o.running.push(Running {
                                    tree_sha256: dep_tree.sha256.clone(),
                                    job: "j".into(),
                                    datasets: vec![],
                                    stopping: false,
                                });
                            }
                            if finished {
                                o.finished.insert((dep_tree.sha256.clone(), "j".into()));
                            }
                            let mut steps = 0;
                            loop {
                                steps += 1;
                                assert!(steps < 20, "no convergence");
                                let a = reconcile(&d, &o);
                                match a {
                                    Action::Idle => break,
                                    Action::Deploy { tree } => {
                                        assert!(d.head.as_ref().unwrap().1.allowed());
                                        d.verdicts.insert(tree.sha256.clone(), Verdict::Allowed);
                                        o.deployed = Some(tree);
                                    }
                                    Action::StartJob { tree_sha256, job } => {
                                        assert!(d.verdicts[&tree_sha256].allowed());
                                        o.running.push(Running {
                                            tree_sha256,
                                            job,
                                            datasets: vec![],
                                            stopping: false,
                                        });
                                        // it finishes immediately
                                        let r = o.running.pop().unwrap();
                                        o.finished.insert((r.tree_sha256, r.job));
                                    }
                                    Action::StopJob {
                                        tree_sha256, job, ..
                                    } => {
                                        assert!(!d
                                            .verdicts
                                            .get(&tree_sha256)
                                            .is_some_and(|v| v.allowed()));
                                        o.running.retain(|r| {
                                            !(r.tree_sha256 == tree_sha256 && r.job == job)
                                        });
                                    }
                                    Action::Undeploy { .. } => o.deployed = None,
                                    Action::Refuse { tree, why } => {
                                        o.refused.insert((tree.sha256, why.code));
                                    }
                                    Action::ResolveInterrupted { .. } => unreachable!(),
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(worlds, 7 * 7 * 2 * 2 * 2);
    }
}
