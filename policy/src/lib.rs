//! Job manifests, node policy, and the deploy decision.
//!
//! Pure by design (no I/O, no async, no clock): the controller gathers the
//! facts (chain state, tree ids, manifest text) and this crate turns them
//! into a [`Decision`] with reasons, so every rule is table-tested without
//! a chain or a sandbox. See DESIGN.md, "Jobs".

#![warn(missing_docs)]

mod decide;
mod error;
mod manifest;
mod node;
pub mod outputs;
mod size;

pub use decide::{decide, ApprovalView, Decision, DecisionInput, Reason, TreeFacts, Verdict};
pub use error::{PolicyError, Problem};
pub use manifest::{
    is_sha256_hex, is_valid_job_name, job_name_from_path, DatasetSelector, ExportSpec, JobKind,
    JobLimits, JobManifest, Limits, MAX_MANIFEST_BYTES,
};
pub use node::NodePolicy;
pub use outputs::OutputPattern;
pub use size::{format_size, parse_size, serde_size, serde_size_opt, SIZE_HELP};
