//! collective-controller: the node daemon.
//!
//! It watches the code repository, deploys only trees approved on-chain
//! (gated by `collective_policy::decide`), runs their jobs in a bubblewrap
//! sandbox, and writes every decision to the attest log, which is also its
//! only durable memory. See DESIGN.md, "The controller loop".
//!
//! Map of the crate, in dependency order (a module uses only those above
//! it; only [`bootstrap`] and [`daemon`] touch private keys):
//! - [`error`]: [`ControllerError`] with sources and `is_retryable()`;
//! - [`config`]: `node.yaml` (strict, validated; `collective config --default`);
//! - [`reconcile`]: the pure `reconcile(desired, observed) -> Action`;
//! - [`gate`]: verdicts through `collective_policy::decide`, with reason codes;
//! - [`state`]: the state replayed from the log;
//! - [`status`]: the public status, current problems, metrics;
//! - [`journal`]: the only writer of the log and of [`state::State`];
//! - [`repo`]: the deploy branch (local + `notify`, or remote + fetch);
//! - [`world`]: one snapshot of chain and repository pinned at one block;
//! - [`deploy`]: materializing and verifying approved trees;
//! - [`sandbox`]: bubblewrap runner and its security argument;
//! - [`outputs`]: checking and publishing job outputs;
//! - [`jobs`]: the job supervisor (a panic is a logged failed end);
//! - [`runner`]: jobs in the sandbox (holds the decryption identity);
//! - [`anchor`]: checkpoint anchoring on `NodeRegistry`;
//! - [`control`]: the loop: triggers, passes, backoff;
//! - [`witness`], [`github`]: optional background tasks;
//! - [`http`]: the read-only API and status page over a [`http::View`];
//! - [`bootstrap`], [`check`]: start-up (keys, chain, host) and `node check`;
//! - [`daemon`]: [`Node`], wiring the above together.
//!
//! Crash recovery. `job-started` is logged before a sandbox starts and one
//! end record (`job-finished`, `exported`, or `revoked`/`suspended`/
//! `withdrawn` naming the job) after it ends. On start the node replays the
//! log; a started job without an end gets an `interrupted` entry and is
//! resolved by `sandbox.on_interrupted`: `fail` (default: it counts as done
//! and never reruns, so a job that crashes the node cannot crash-loop it) or
//! `rerun-once` (run again once; a second interruption counts as done).
//! Plaintext and run directories left by the crash are removed at start.
//!
//! Chain outages. If the chain (or the repository) cannot be read, the loop
//! takes no action that round: nothing deploys and nothing is stopped;
//! running jobs continue under the approval they started with, and the API
//! reports the outage. Stops happen only on a positive reading (revoked,
//! paused, expired, withdrawn) at the confirmation depth.

#![warn(missing_docs)]

pub mod anchor;
pub mod bootstrap;
pub mod check;
pub mod config;
pub mod control;
pub mod daemon;
pub mod deploy;
pub mod error;
pub mod gate;
pub mod github;
pub mod http;
pub mod jobs;
pub mod journal;
pub mod outputs;
pub mod reconcile;
pub mod repo;
pub mod runner;
pub mod sandbox;
pub mod state;
pub mod status;
pub mod witness;
pub mod world;

pub use config::{NodeConfig, DEFAULT_CONFIG_YAML};
pub use daemon::Node;
pub use error::ControllerError;
/// Re-exported so callers stop a node without depending on tokio-util.
pub use tokio_util::sync::CancellationToken;
