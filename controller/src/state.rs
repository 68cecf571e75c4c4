//! The controller's memory, rebuilt from the log.
//!
//! The log is the only database: [`State::apply`] is used both when
//! replaying the log at start and right after each append, so the in-memory
//! state is by construction `replay(log)`. Nothing here is persisted
//! elsewhere; deleting the node's work directory loses nothing but caches.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use collective_attest::{Decision, Predicate, Subject};
use serde::Serialize;

use crate::config::InterruptedPolicy;
use crate::reconcile::TreeRef;

/// How many recent decisions the status page shows.
const RECENT: usize = 50;

/// Job run entries kept in memory for `/v1/runs`: the log is the history,
/// this is a bounded window onto its end, so a long-lived node does not
/// grow with every run.
pub const RUNS_KEPT: usize = 10_000;

/// One log entry, summarized for the status page and `/v1/runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RecentEntry {
    /// Index of the entry in the log, so anyone can fetch and verify it.
    pub index: u64,
    /// The decision (`deployed`, `refused`, `job-started`, ...).
    pub decision: String,
    /// sha256 id of the tree concerned.
    pub tree_sha256: String,
    /// sha1 id of the tree concerned.
    pub tree_sha1: String,
    /// The commit the tree came from, if known.
    pub commit: Option<String>,
    /// The job, for job entries.
    pub job: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// The job's exit status, for job-end entries.
    pub exit_status: Option<i32>,
    /// Digests of the encrypted outputs, for job-end entries.
    pub outputs: Vec<collective_attest::OutputDigest>,
    /// The approving transaction the entry cites, if any.
    pub approval_tx: Option<String>,
    /// When the entry was written (RFC 3339).
    pub time: String,
}

/// Replayed state.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The tree last logged `deployed` and not since stopped.
    pub deployed: Option<TreeRef>,
    /// The `deployed` entry's predicate (its approval reference).
    pub deployed_entry: Option<RecentEntry>,
    /// (tree sha256, reason code) already logged as refused or stopped, so
    /// the same refusal is logged once whatever its wording. Entries
    /// written before reason codes existed are keyed by their text.
    pub refused: BTreeSet<(String, String)>,
    /// (tree sha256, job) that ended and must not run again.
    pub finished: BTreeSet<(String, String)>,
    /// Started and not ended, with the index of the `job-started` entry.
    pub started: BTreeMap<(String, String), u64>,
    /// How often each (tree sha256, job) was interrupted, so `rerun-once`
    /// reruns at most once even across restarts.
    pub interruptions: BTreeMap<(String, String), u32>,
    /// The last [`RUNS_KEPT`] job run entries (starts and ends), oldest
    /// first, for `/v1/runs`.
    pub runs: VecDeque<RecentEntry>,
    /// The last few entries (bounded), for the status page.
    pub recent: VecDeque<RecentEntry>,
    /// Entries per decision, for `/metrics`.
    pub counts: BTreeMap<String, u64>,
    /// Log size as applied so far (highest index + 1).
    pub size: u64,
}

impl State {
    /// The `n` most recent decisions, newest first: what the status API and
    /// page show.
    pub fn latest(&self, n: usize) -> Vec<RecentEntry> {
        self.recent.iter().rev().take(n).cloned().collect()
    }

    /// Apply one log entry. `policy` resolves `interrupted` entries the same
    /// way at replay and at run time.
    pub fn apply(
        &mut self,
        index: u64,
        subject: &Subject,
        p: &Predicate,
        policy: InterruptedPolicy,
    ) {
        let tree = TreeRef {
            sha1: subject.tree_sha1.clone(),
            sha256: subject.tree_sha256.clone(),
            commit: subject.commit.clone(),
        };
        let entry = RecentEntry {
            index,
            decision: p.decision.as_str().to_string(),
            tree_sha256: tree.sha256.clone(),
            tree_sha1: tree.sha1.clone(),
            commit: tree.commit.clone(),
            job: p.job.clone(),
            reason: p.reason.clone(),
            exit_status: p.exit_status,
            outputs: p.outputs.clone(),
            approval_tx: p.approval.as_ref().map(|a| a.tx_hash.clone()),
            time: p.time.clone(),
        };
        *self.counts.entry(entry.decision.clone()).or_default() += 1;
        let code = p.reason_code.clone().unwrap_or_else(|| p.reason.clone());
        self.size = self.size.max(index + 1);
        match (&p.decision, &p.job) {
            (Decision::Deployed, _) => {
                self.refused.retain(|(t, _)| t != &tree.sha256);
                self.deployed = Some(tree.clone());
                self.deployed_entry = Some(entry.clone());
            }
            // A tree-level stop. `refused` of the deployed tree undeploys it
            // (it no longer verifies, or fails policy); of any other tree it
            // is a refused head.
            (
                Decision::Refused
                | Decision::Revoked
                | Decision::Suspended
                | Decision::Paused
                | Decision::Withdrawn,
                None,
            ) => {
                if self
                    .deployed
                    .as_ref()
                    .is_some_and(|d| d.sha256 == tree.sha256)
                {
                    self.deployed = None;
                    self.deployed_entry = None;
                }
                // A later refusal of the same tree for this reason is not news.
                self.refused.insert((tree.sha256.clone(), code));
            }
            (Decision::JobStarted, Some(job)) => {
                self.started
                    .insert((tree.sha256.clone(), job.clone()), index);
                self.push_run(entry.clone());
            }
            (Decision::JobFinished | Decision::Exported | Decision::Refused, Some(job)) => {
                let key = (tree.sha256.clone(), job.clone());
                self.started.remove(&key);
                self.finished.insert(key);
                self.push_run(entry.clone());
            }
            (
                Decision::Revoked | Decision::Suspended | Decision::Paused | Decision::Withdrawn,
                Some(job),
            ) => {
                // Stopped from outside: not finished, so it may run again
                // when (if) its tree is allowed again.
                self.started.remove(&(tree.sha256.clone(), job.clone()));
                self.push_run(entry.clone());
            }
            (Decision::Interrupted, Some(job)) => {
                let key = (tree.sha256.clone(), job.clone());
                self.started.remove(&key);
                let n = self.interruptions.entry(key.clone()).or_default();
                *n += 1;
                let rerun = policy == InterruptedPolicy::RerunOnce && *n <= 1;
                if !rerun {
                    self.finished.insert(key);
                }
                self.push_run(entry.clone());
            }
            // A job decision without a job names nothing to apply it to: the
            // writer never produces one, and the auditor flags it; replay
            // counts it and otherwise ignores it. Listed, not wildcarded, so
            // a new decision must be given its meaning here.
            (
                Decision::JobStarted
                | Decision::JobFinished
                | Decision::Exported
                | Decision::Interrupted,
                None,
            ) => {}
        }
        self.recent.push_back(entry);
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    fn push_run(&mut self, e: RecentEntry) {
        self.runs.push_back(e);
        while self.runs.len() > RUNS_KEPT {
            self.runs.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subj(n: u8) -> Subject {
        Subject {
            tree_sha1: format!("{n:040}"),
            tree_sha256: format!("{n:064}"),
            commit: None,
        }
    }

    fn pred(d: Decision, job: Option<&str>) -> Predicate {
        let mut p = Predicate::new(d, "r");
        p.job = job.map(str::to_string);
        p
    }

    fn replay(entries: &[(u8, Decision, Option<&str>)], pol: InterruptedPolicy) -> State {
        let mut s = State::default();
        for (i, (n, d, j)) in entries.iter().enumerate() {
            s.apply(i as u64, &subj(*n), &pred(*d, *j), pol);
        }
        s
    }

    #[test]
    fn latest_is_newest_first_and_capped() {
        let entries: Vec<_> = (0..60u8).map(|n| (n, Decision::Refused, None)).collect();
        let s = replay(&entries, InterruptedPolicy::Fail);
        let latest = s.latest(20);
        assert_eq!(latest.len(), 20);
        assert_eq!(latest[0].index, 59);
        assert_eq!(latest[19].index, 40);
        // Only the last RECENT entries are kept at all.
        assert_eq!(s.latest(usize::MAX).len(), RECENT);
    }

    #[test]
    fn deployed_then_revoked() {
        let s = replay(&[(1, Decision::Deployed, None)], InterruptedPolicy::Fail);
        assert_eq!(s.deployed.as_ref().unwrap().sha256, subj(1).tree_sha256);
        let s = replay(
            &[(1, Decision::Deployed, None), (1, Decision::Revoked, None)],
            InterruptedPolicy::Fail,
        );
        assert!(s.deployed.is_none());
        // Revoking another tree leaves the deployment alone.
        let s = replay(
            &[(1, Decision::Deployed, None), (2, Decision::Revoked, None)],
            InterruptedPolicy::Fail,
        );
        assert!(s.deployed.is_some());
    }

    #[test]
    fn finished_job_is_remembered() {
        let s = replay(
            &[
                (1, Decision::Deployed, None),
                (1, Decision::JobStarted, Some("a")),
                (1, Decision::JobFinished, Some("a")),
            ],
            InterruptedPolicy::Fail,
        );
        assert!(s.finished.contains(&(subj(1).tree_sha256, "a".into())));
        assert!(s.started.is_empty());
    }

    #[test]
    fn started_without_end_is_pending_resolution() {
        let s = replay(
            &[(1, Decision::JobStarted, Some("a"))],
            InterruptedPolicy::Fail,
        );
        assert_eq!(s.started.len(), 1);
    }

    #[test]
    fn interrupted_policies() {
        let e = [
            (1, Decision::JobStarted, Some("a")),
            (1, Decision::Interrupted, Some("a")),
        ];
        let key = (subj(1).tree_sha256, "a".to_string());
        assert!(replay(&e, InterruptedPolicy::Fail).finished.contains(&key));
        assert!(!replay(&e, InterruptedPolicy::RerunOnce)
            .finished
            .contains(&key));
        let twice = [
            (1, Decision::JobStarted, Some("a")),
            (1, Decision::Interrupted, Some("a")),
            (1, Decision::JobStarted, Some("a")),
            (1, Decision::Interrupted, Some("a")),
        ];
        assert!(replay(&twice, InterruptedPolicy::RerunOnce)
            .finished
            .contains(&key));
    }

    #[test]
    fn stopped_job_may_run_again() {
        let s = replay(
            &[
                (1, Decision::JobStarted, Some("a")),
                (1, Decision::Suspended, Some("a")),
            ],
            InterruptedPolicy::Fail,
        );
        assert!(s.finished.is_empty() && s.started.is_empty());
    }

    #[test]
    fn refusal_of_the_deployed_tree_undeploys_it() {
        let s = replay(
            &[(1, Decision::Deployed, None), (2, Decision::Refused, None)],
            InterruptedPolicy::Fail,
        );
        assert!(s.deployed.is_some(), "a refused head leaves it deployed");
        let s = replay(
            &[(1, Decision::Deployed, None), (1, Decision::Refused, None)],
            InterruptedPolicy::Fail,
        );
        assert!(s.deployed.is_none());
    }

    #[test]
    fn refusals_are_keyed_by_code_when_present() {
        let mut s = State::default();
        let mut p = Predicate::new(Decision::Refused, "expired at 1 (now 5)");
        p.reason_code = Some("expired".into());
        s.apply(0, &subj(1), &p, InterruptedPolicy::Fail);
        assert!(s.refused.contains(&(subj(1).tree_sha256, "expired".into())));
    }

    #[test]
    fn runs_are_bounded() {
        let mut s = State::default();
        for i in 0..(RUNS_KEPT as u64 + 10) {
            s.apply(
                i,
                &subj(1),
                &pred(Decision::JobStarted, Some("a")),
                InterruptedPolicy::Fail,
            );
        }
        assert_eq!(s.runs.len(), RUNS_KEPT);
        assert_eq!(s.runs.front().map(|r| r.index), Some(10));
    }

    #[test]
    fn deploy_clears_refusals_of_that_tree() {
        let mut s = State::default();
        s.apply(
            0,
            &subj(1),
            &Predicate::new(Decision::Refused, "no approval"),
            InterruptedPolicy::Fail,
        );
        assert_eq!(s.refused.len(), 1);
        s.apply(
            1,
            &subj(1),
            &Predicate::new(Decision::Deployed, "ok"),
            InterruptedPolicy::Fail,
        );
        assert!(s.refused.is_empty());
        assert_eq!(s.counts["refused"], 1);
        assert_eq!(s.size, 2);
    }
}
