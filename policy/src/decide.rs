//! The deploy decision: may this tree be deployed and its jobs run?
//!
//! Security argument: the node must run only code the DAO approved, and
//! only within what its operator allows. `decide` is a pure function of the
//! facts the controller gathered (chain state read at a confirmation depth,
//! tree ids from the commit and recomputed from the materialized files, the
//! parsed manifests, the node policy), so the same facts always give the
//! same answer and every refusal has a reason that can be logged. It fails
//! closed: any missing fact (no approval, no on-disk recomputation) or any
//! job problem refuses the whole tree, and it reports every reason it
//! found, not just the first, so one log entry tells the requester all that
//! must change.

use std::fmt;

use serde::Serialize;

use crate::error::PolicyError;
use crate::manifest::{JobKind, JobManifest};
use crate::node::NodePolicy;

/// The ids of the tree being considered.
#[derive(Debug, Clone, Copy)]
pub struct TreeFacts<'a> {
    /// sha1 tree id from the commit (the object database).
    pub sha1: &'a str,
    /// sha256 tree id recomputed from the materialized files on disk;
    /// `None` if it has not been (the decision then refuses).
    pub sha256_from_disk: Option<&'a str>,
}

/// What the chain says about the tree (already read at the confirmation
/// depth by the controller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalView {
    /// The sha256 tree id the approval names (its key on-chain).
    pub tree_sha256: String,
    /// The sha1 tree id the approval carries.
    pub tree_sha1: String,
    /// age recipients allowed to receive outputs and exports.
    pub recipients: Vec<String>,
    /// Unix seconds after which the approval no longer holds; 0 = never.
    pub expires_at: u64,
    /// Set on-chain to withdraw an approval before it expires; a revoked
    /// approval refuses the tree.
    pub revoked: bool,
    /// Why it was revoked, carried into the refusal so the log says it.
    pub revoke_reason: String,
}

/// Everything `decide` looks at.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    /// The ids of the tree being decided on.
    pub tree: TreeFacts<'a>,
    /// The approval found for the tree's sha256 id, if any.
    pub approval: Option<&'a ApprovalView>,
    /// Current time, unix seconds (the controller's clock or block time).
    pub now: u64,
    /// The registry's pause switch (guardian).
    pub paused: bool,
    /// Each `jobs/<name>/job.yaml` found in the tree, parsed or not.
    pub manifests: &'a [(String, Result<JobManifest, PolicyError>)],
    /// The operator's rules the manifests must fit within.
    pub policy: &'a NodePolicy,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Deploy the tree and run its jobs.
    Approved,
    /// Do not deploy; see the reasons.
    Refused,
}

/// A verdict and why. `allowed` is `verdict == Approved`, kept as a field
/// for callers that only need the bit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The outcome; approval only when no refusal reason was found.
    pub verdict: Verdict,
    /// Same as `verdict == Verdict::Approved`.
    pub allowed: bool,
    /// For an approval: one [`Reason::Approved`]. For a refusal: every
    /// refusal reason found, most fundamental first.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// All reasons in one line, for the log's `reason` field.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One reason. Serialized with a `code` tag (kebab-case) for machines;
/// `Display` is the sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Reason {
    /// Everything checked out.
    Approved {
        /// The job names that will run (from `jobs/<name>/`).
        jobs: Vec<String>,
        /// When the approval lapses (0 = never), so the caller can re-check.
        expires_at: u64,
    },
    /// The registry is paused by the guardian: nothing deploys.
    RegistryPaused,
    /// No approval for this tree.
    NotApproved {
        /// The sha1 tree id of the commit, to say which tree is unapproved.
        tree_sha1: String,
    },
    /// The approval was revoked on-chain.
    Revoked {
        /// The reason given with the revocation.
        reason: String,
    },
    /// The approval's expiry has passed (`now >= expires_at`).
    Expired {
        /// When the approval lapsed (unix seconds).
        expires_at: u64,
        /// The time the decision was made with (unix seconds).
        now: u64,
    },
    /// The approval names a different sha1 tree than the commit has.
    Sha1Mismatch {
        /// The sha1 tree id the approval names.
        approved: String,
        /// The sha1 tree id of the commit being deployed.
        commit: String,
    },
    /// The sha1 matches but the sha256 recomputed from the files on disk
    /// does not match the approved one.
    Sha256Mismatch {
        /// The sha256 tree id the approval names.
        approved: String,
        /// The sha256 tree id recomputed from the files on disk.
        recomputed: String,
    },
    /// The tree was not recomputed from disk, so it is not verified.
    NotVerifiedOnDisk,
    /// The tree has no `jobs/<name>/job.yaml`.
    NoJobs,
    /// The tree has more jobs than the node policy's `max_jobs`, which bounds
    /// the work one approval can put on a node.
    TooManyJobs {
        /// How many jobs the tree has.
        count: usize,
        /// The node policy's `max_jobs`.
        max: usize,
    },
    /// A manifest failed to parse or validate, or its job directory name is
    /// invalid.
    ManifestInvalid {
        /// The job (directory name under `jobs/`).
        job: String,
        /// The error text, naming the field and the fix.
        error: String,
    },
    /// The job's kind is not in the node policy's `allowed_kinds`.
    KindNotAllowed {
        /// The job (directory name under `jobs/`).
        job: String,
        /// The kind the manifest asks for.
        kind: JobKind,
        /// The kinds the node policy allows.
        allowed: Vec<JobKind>,
    },
    /// A requested limit is above the node policy's maximum; the node refuses
    /// rather than silently clamping, so the requester learns the real bound.
    LimitAboveMaximum {
        /// The job (directory name under `jobs/`).
        job: String,
        /// The limit's schema name (`memory`, `cpu_seconds`, ...).
        limit: String,
        /// What the manifest asks for.
        requested: u64,
        /// The node policy's maximum for it.
        maximum: u64,
    },
    /// An export job's recipient is not among the approval's recipients.
    RecipientNotApproved {
        /// The job (directory name under `jobs/`).
        job: String,
        /// The recipient the manifest names.
        recipient: String,
        /// The recipients the approval allows.
        approved: Vec<String>,
    },
    /// A batch job would produce outputs but the approval names nobody to
    /// encrypt them to.
    NoRecipients {
        /// The job (directory name under `jobs/`).
        job: String,
    },
}

impl Reason {
    /// True for every reason except [`Reason::Approved`].
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Reason::Approved { .. })
    }

    /// The stable machine code (the serialized `code` tag): callers key
    /// "already said this" on it, since the sentence can carry a time.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Approved { .. } => "approved",
            Reason::RegistryPaused => "registry-paused",
            Reason::NotApproved { .. } => "not-approved",
            Reason::Revoked { .. } => "revoked",
            Reason::Expired { .. } => "expired",
            Reason::Sha1Mismatch { .. } => "sha1-mismatch",
            Reason::Sha256Mismatch { .. } => "sha256-mismatch",
            Reason::NotVerifiedOnDisk => "not-verified-on-disk",
            Reason::NoJobs => "no-jobs",
            Reason::TooManyJobs { .. } => "too-many-jobs",
            Reason::ManifestInvalid { .. } => "manifest-invalid",
            Reason::KindNotAllowed { .. } => "kind-not-allowed",
            Reason::LimitAboveMaximum { .. } => "limit-above-maximum",
            Reason::RecipientNotApproved { .. } => "recipient-not-approved",
            Reason::NoRecipients { .. } => "no-recipients",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Approved { jobs, expires_at } => {
                write!(f, "approved: {} job(s) [{}]", jobs.len(), jobs.join(", "))?;
                if *expires_at != 0 {
                    write!(f, ", approval expires at {expires_at}")?;
                }
                Ok(())
            }
            Reason::RegistryPaused => f.write_str("the code registry is paused"),
            Reason::NotApproved { tree_sha1 } => write!(f, "tree {tree_sha1} is not approved"),
            Reason::Revoked { reason } => write!(f, "the approval was revoked: {reason}"),
            Reason::Expired { expires_at, now } => {
                write!(f, "the approval expired at {expires_at} (now {now})")
            }
            Reason::Sha1Mismatch { approved, commit } => {
                write!(
                    f,
                    "the approval is for sha1 tree {approved}, the commit has {commit}"
                )
            }
            Reason::Sha256Mismatch {
                approved,
                recomputed,
            } => write!(
                f,
                "sha256 tree id recomputed from disk is {recomputed}, the approval names {approved}"
            ),
            Reason::NotVerifiedOnDisk => {
                f.write_str("the sha256 tree id was not recomputed from the files on disk")
            }
            Reason::NoJobs => f.write_str("the tree defines no jobs (jobs/<name>/job.yaml)"),
            Reason::TooManyJobs { count, max } => {
                write!(f, "the tree defines {count} jobs, the node allows {max}")
            }
            Reason::ManifestInvalid { job, error } => {
                write!(f, "job {job}: invalid manifest: {error}")
            }
            Reason::KindNotAllowed { job, kind, allowed } => write!(
                f,
                "job {job}: kind {kind} is not allowed on this node (allowed: {})",
                allowed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Reason::LimitAboveMaximum {
                job,
                limit,
                requested,
                maximum,
            } => {
                write!(
                    f,
                    "job {job}: limits.{limit} {requested} is above this node's maximum {maximum}"
                )
            }
            Reason::RecipientNotApproved { job, recipient, .. } => {
                write!(f, "job {job}: export recipient {recipient:?} is not among the approval's recipients")
            }
            Reason::NoRecipients { job } => {
                write!(
                    f,
                    "job {job}: the approval names no recipients to encrypt its outputs to"
                )
            }
        }
    }
}

/// Decides whether the tree may be deployed. Pure: no I/O, no clock.
pub fn decide(input: &DecisionInput<'_>) -> Decision {
    let mut reasons = Vec::new();
    if input.paused {
        reasons.push(Reason::RegistryPaused);
    }
    match input.approval {
        None => reasons.push(Reason::NotApproved {
            tree_sha1: input.tree.sha1.to_string(),
        }),
        Some(a) => {
            if a.revoked {
                reasons.push(Reason::Revoked {
                    reason: a.revoke_reason.clone(),
                });
            }
            if a.expires_at != 0 && input.now >= a.expires_at {
                reasons.push(Reason::Expired {
                    expires_at: a.expires_at,
                    now: input.now,
                });
            }
            if !a.tree_sha1.eq_ignore_ascii_case(input.tree.sha1) {
                reasons.push(Reason::Sha1Mismatch {
                    approved: a.tree_sha1.clone(),
                    commit: input.tree.sha1.to_string(),
                });
            }
            match input.tree.sha256_from_disk {
                None => reasons.push(Reason::NotVerifiedOnDisk),
                Some(disk) if !a.tree_sha256.eq_ignore_ascii_case(disk) => {
                    reasons.push(Reason::Sha256Mismatch {
                        approved: a.tree_sha256.clone(),
                        recomputed: disk.to_string(),
                    })
                }
                Some(_) => {}
            }
        }
    }
    job_reasons(input, &mut reasons);

    if reasons.is_empty() {
        let jobs = input
            .manifests
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        let expires_at = input.approval.map_or(0, |a| a.expires_at);
        Decision {
            verdict: Verdict::Approved,
            allowed: true,
            reasons: vec![Reason::Approved { jobs, expires_at }],
        }
    } else {
        Decision {
            verdict: Verdict::Refused,
            allowed: false,
            reasons,
        }
    }
}

fn job_reasons(input: &DecisionInput<'_>, reasons: &mut Vec<Reason>) {
    let policy = input.policy;
    if input.manifests.is_empty() {
        reasons.push(Reason::NoJobs);
    }
    if input.manifests.len() > policy.max_jobs {
        reasons.push(Reason::TooManyJobs {
            count: input.manifests.len(),
            max: policy.max_jobs,
        });
    }
    for (job, manifest) in input.manifests {
        if !crate::manifest::is_valid_job_name(job) {
            reasons.push(Reason::ManifestInvalid {
                job: job.clone(),
                error: format!(
                    "jobs/{job}/: invalid job name (fix: rename the directory to lowercase letters, digits, `-`, `_`, `.`, at most 64, starting with a letter or digit)"
                ),
            });
        }
        let m = match manifest {
            Ok(m) => m,
            Err(e) => {
                reasons.push(Reason::ManifestInvalid {
                    job: job.clone(),
                    error: e.to_string(),
                });
                continue;
            }
        };
        if !policy.allowed_kinds.contains(&m.kind) {
            reasons.push(Reason::KindNotAllowed {
                job: job.clone(),
                kind: m.kind,
                allowed: policy.allowed_kinds.iter().copied().collect(),
            });
        }
        for ((limit, requested), (_, maximum)) in m
            .limits
            .fields()
            .into_iter()
            .zip(policy.max_limits.fields())
        {
            let Some(requested) = requested else { continue };
            if requested > maximum {
                reasons.push(Reason::LimitAboveMaximum {
                    job: job.clone(),
                    limit: limit.to_string(),
                    requested,
                    maximum,
                });
            }
        }
        // Recipient checks need the approval; without one the tree is
        // already refused as not approved.
        if let Some(a) = input.approval {
            match (&m.kind, &m.export) {
                (JobKind::Export, Some(export))
                    if !a
                        .recipients
                        .iter()
                        .any(|r| r.trim() == export.recipient.trim()) =>
                {
                    reasons.push(Reason::RecipientNotApproved {
                        job: job.clone(),
                        recipient: export.recipient.clone(),
                        approved: a.recipients.clone(),
                    });
                }
                (JobKind::Batch, _) if a.recipients.is_empty() => {
                    reasons.push(Reason::NoRecipients { job: job.clone() });
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn code_is_the_serialized_tag() {
        let all = [
            Reason::Approved {
                jobs: vec![],
                expires_at: 0,
            },
            Reason::RegistryPaused,
            Reason::NotApproved {
                tree_sha1: "a".into(),
            },
            Reason::Revoked { reason: "r".into() },
            Reason::Expired {
                expires_at: 1,
                now: 2,
            },
            Reason::Sha1Mismatch {
                approved: "a".into(),
                commit: "b".into(),
            },
            Reason::Sha256Mismatch {
                approved: "a".into(),
                recomputed: "b".into(),
            },
            Reason::NotVerifiedOnDisk,
            Reason::NoJobs,
            Reason::TooManyJobs { count: 2, max: 1 },
            Reason::ManifestInvalid {
                job: "j".into(),
                error: "e".into(),
            },
            Reason::KindNotAllowed {
                job: "j".into(),
                kind: JobKind::Batch,
                allowed: vec![],
            },
            Reason::LimitAboveMaximum {
                job: "j".into(),
                limit: "memory".into(),
                requested: 2,
                maximum: 1,
            },
            Reason::RecipientNotApproved {
                job: "j".into(),
                recipient: "r".into(),
                approved: vec![],
            },
            Reason::NoRecipients { job: "j".into() },
        ];
        for r in all {
            let v = serde_json::to_value(&r).expect("serializes");
            assert_eq!(v["code"], r.code(), "{r:?}");
        }
    }
}
