//! The gate: turns on-chain approval state, the node policy and a tree's
//! job manifests into a [`Verdict`], through `collective_policy::decide`.
//!
//! Security argument. A tree is `Allowed` only if `decide` approves it: an
//! approval exists at the confirmation depth for exactly this sha256 tree
//! id, names the same sha1 tree id as the commit, is not revoked, not
//! expired, the registry is not paused, and every manifest parses and fits
//! the node policy. Before a tree is materialized the sha256 id given to
//! `decide` is the one recomputed from the object database; the deploy step
//! decides again with the id recomputed from the files on disk, and only
//! that decision deploys. Any error reading these inputs yields no verdict
//! at all, and the caller then takes no action (fail closed).

use collective_policy::{
    decide, ApprovalView, DecisionInput, JobManifest, NodePolicy, PolicyError, Reason, TreeFacts,
};

use crate::reconcile::{TreeRef, Verdict, Why};
use crate::sandbox::SandboxLimits;

/// Parsed manifests of a tree: `(job name, manifest or error)`.
pub type Manifests = Vec<(String, Result<JobManifest, PolicyError>)>;

/// Parse `(name, yaml)` pairs.
pub fn parse_manifests(pairs: &[(String, String)]) -> Manifests {
    pairs
        .iter()
        .map(|(name, text)| {
            (
                name.clone(),
                JobManifest::parse(&format!("jobs/{name}/job.yaml"), text),
            )
        })
        .collect()
}

/// The sandbox limits of a job: its own, else the node's maxima.
pub fn limits_of(m: &JobManifest, policy: &NodePolicy) -> SandboxLimits {
    let l = m.limits.effective(&policy.max_limits);
    SandboxLimits {
        cpu_seconds: l.cpu_seconds,
        memory_bytes: l.memory_bytes,
        wall_seconds: l.wall_seconds,
        output_bytes: l.output_bytes,
        processes: l.processes,
    }
}

/// The approval facts the gate needs (from `collective_chain::Approval`).
pub type ApprovalFacts = ApprovalView;

/// Everything the gate looks at.
#[derive(Debug)]
pub struct GateInput<'a> {
    /// The tree to judge, by the ids the approval must name.
    pub tree: &'a TreeRef,
    /// The sha256 id recomputed from disk (deployed trees) or from the
    /// object database (the branch head, before materializing).
    pub sha256_recomputed: Option<&'a str>,
    /// The approval read at the confirmation depth; `None` means none.
    pub approval: Option<&'a ApprovalFacts>,
    /// Whether the registry is paused (nothing may run while it is).
    pub paused: bool,
    /// Unix seconds of the chain head, so expiry is judged by chain time,
    /// not by this node's clock.
    pub now: u64,
    /// The tree's job manifests.
    pub manifests: &'a Manifests,
    /// What this node agrees to run.
    pub policy: &'a NodePolicy,
    /// The depth the approval was read at (for the refusal message).
    pub confirmations: u64,
}

/// Decide through `collective_policy::decide` and classify the outcome by
/// its most fundamental reason: it picks the log decision of a stop
/// (revoked, suspended, refused) and whether the tree is merely pending.
pub fn verdict(i: &GateInput<'_>) -> Verdict {
    let d = decide(&DecisionInput {
        tree: TreeFacts {
            sha1: &i.tree.sha1,
            sha256_from_disk: i.sha256_recomputed,
        },
        approval: i.approval,
        now: i.now,
        paused: i.paused,
        manifests: i.manifests,
        policy: i.policy,
    });
    if d.allowed {
        return Verdict::Allowed;
    }
    // The code: every reason's code, in order, so a new problem is news
    // and the same problems in new words are not.
    let mut codes: Vec<&str> = d.reasons.iter().map(Reason::code).collect();
    codes.dedup();
    let why = |reason: String| Why::new(codes.join("+"), reason);
    match d.reasons.first() {
        Some(Reason::NotApproved { .. }) => Verdict::NotApproved(why(format!(
            "no approval on chain for tree sha256 {} at confirmation depth {}",
            i.tree.sha256, i.confirmations
        ))),
        Some(Reason::Revoked { .. }) => Verdict::Revoked(why(d.summary())),
        Some(Reason::RegistryPaused) => Verdict::Paused(why(d.summary())),
        Some(Reason::Expired { .. }) => Verdict::Suspended(why(d.summary())),
        _ => Verdict::Refused(why(d.summary())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> TreeRef {
        TreeRef {
            sha1: "a".repeat(40),
            sha256: "b".repeat(64),
            commit: None,
        }
    }

    fn approval() -> ApprovalFacts {
        ApprovalView {
            tree_sha256: "b".repeat(64),
            tree_sha1: "a".repeat(40),
            recipients: vec!["age1requester".into()],
            expires_at: 2000,
            revoked: false,
            revoke_reason: String::new(),
        }
    }

    const BATCH: &str = "kind: batch\ncommand: [/usr/bin/python3, /job/jobs/stats/run.py]\ndatasets: all\nlimits:\n  wall_seconds: 60\n";

    fn run(
        a: Option<&ApprovalFacts>,
        paused: bool,
        now: u64,
        manifests: &[(&str, &str)],
        policy: &NodePolicy,
    ) -> Verdict {
        let m = parse_manifests(
            &manifests
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>(),
        );
        let sha = "b".repeat(64);
        verdict(&GateInput {
            tree: &tree(),
            sha256_recomputed: Some(&sha),
            approval: a,
            paused,
            now,
            manifests: &m,
            policy,
            confirmations: 2,
        })
    }

    /// One row per outcome the controller distinguishes.
    #[test]
    fn table() {
        let p = NodePolicy::default();
        let a = approval();
        let mut wrong_sha1 = approval();
        wrong_sha1.tree_sha1 = "c".repeat(40);
        let mut revoked = approval();
        revoked.revoked = true;
        revoked.revoke_reason = "leak".into();
        let mut no_batch = NodePolicy::default();
        no_batch
            .allowed_kinds
            .remove(&collective_policy::JobKind::Batch);
        let too_big = "kind: batch\ncommand: [/usr/bin/true]\nlimits:\n  wall_seconds: 999999\n";
        let unknown = "kind: batch\ncommand: [/usr/bin/true]\nnetwork: true\n";
        let is = |v: &Verdict, k: &str| match (v, k) {
            (Verdict::Allowed, "allowed") => true,
            (Verdict::NotApproved(_), "pending") => true,
            (Verdict::Revoked(r), "revoked") => r.reason.contains("leak"),
            (Verdict::Suspended(w), "suspended") => w.code == "expired",
            (Verdict::Paused(w), "paused") => w.code == "registry-paused",
            (Verdict::Refused(_), "refused") => true,
            _ => false,
        };
        let cases = [
            (
                "approved",
                run(Some(&a), false, 1000, &[("stats", BATCH)], &p),
                "allowed",
            ),
            (
                "not approved",
                run(None, false, 1000, &[("stats", BATCH)], &p),
                "pending",
            ),
            (
                "expired",
                run(Some(&a), false, 2000, &[("stats", BATCH)], &p),
                "suspended",
            ),
            (
                "revoked",
                run(Some(&revoked), false, 1000, &[("stats", BATCH)], &p),
                "revoked",
            ),
            (
                "paused",
                run(Some(&a), true, 1000, &[("stats", BATCH)], &p),
                "paused",
            ),
            (
                "sha1 mismatch",
                run(Some(&wrong_sha1), false, 1000, &[("stats", BATCH)], &p),
                "refused",
            ),
            (
                "manifest invalid",
                run(Some(&a), false, 1000, &[("stats", unknown)], &p),
                "refused",
            ),
            (
                "kind not allowed",
                run(Some(&a), false, 1000, &[("stats", BATCH)], &no_batch),
                "refused",
            ),
            (
                "limits above max",
                run(Some(&a), false, 1000, &[("stats", too_big)], &p),
                "refused",
            ),
        ];
        for (name, v, want) in &cases {
            assert!(is(v, want), "{name}: {v:?}");
        }
        // Expiry's sentence carries the time; its code does not.
        let later = run(Some(&a), false, 2500, &[("stats", BATCH)], &p);
        assert_eq!(cases[2].1.code(), later.code());
        assert_ne!(cases[2].1.reason(), later.reason());
    }

    #[test]
    fn unverified_sha256_is_refused() {
        let p = NodePolicy::default();
        let a = approval();
        let m = parse_manifests(&[("stats".into(), BATCH.into())]);
        let v = verdict(&GateInput {
            tree: &tree(),
            sha256_recomputed: None,
            approval: Some(&a),
            paused: false,
            now: 1000,
            manifests: &m,
            policy: &p,
            confirmations: 0,
        });
        assert!(matches!(v, Verdict::Refused(_)), "{v:?}");
        let other = "d".repeat(64);
        let v = verdict(&GateInput {
            tree: &tree(),
            sha256_recomputed: Some(&other),
            approval: Some(&a),
            paused: false,
            now: 1000,
            manifests: &m,
            policy: &p,
            confirmations: 0,
        });
        assert!(
            matches!(&v, Verdict::Refused(r) if r.reason.contains("recomputed") && r.code == "sha256-mismatch"),
            "{v:?}"
        );
    }

    #[test]
    fn limits_default_to_node_maxima() {
        let p = NodePolicy::default();
        let m = JobManifest::parse("f", BATCH).unwrap();
        let l = limits_of(&m, &p);
        assert_eq!(l.wall_seconds, 60);
        assert_eq!(l.processes, p.max_limits.processes);
    }
}
