//! collective-controller: the node daemon.
//!
//! It watches the code repository, deploys only trees approved on-chain
//! (gated by `collective_policy::decide`), runs their jobs in a bubblewrap
//! sandbox, and writes every decision to the attest log, which is also its
//! only durable memory. See DESIGN.md, "The controller loop".
//!
//! Map of the crate:
//! - [`config`]: `node.yaml` (strict, validated; `collective config --default`);
//! - [`reconcile`]: the pure `reconcile(desired, observed) -> Action`;
//! - [`gate`]: verdicts through `collective_policy::decide`;
//! - [`state`]: the state replayed from the log;
//! - [`repo`]: the deploy branch (local + `notify`, or remote + fetch);
//! - [`sandbox`]: bubblewrap runner and its security argument;
//! - [`node`]: the I/O loop, deploy, jobs, outputs, anchoring;
//! - [`http`]: the read-only API and status page;
//! - [`anchor`]: checkpoint anchoring on `NodeRegistry`.
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
pub mod gate;
pub mod http;
pub mod node;
pub mod outputs;
pub mod reconcile;
pub mod repo;
pub mod sandbox;
pub mod state;
pub mod witness;

use std::path::PathBuf;

pub use config::{NodeConfig, DEFAULT_CONFIG_YAML};
pub use node::Node;
/// Re-exported so callers stop a node without depending on tokio-util.
pub use tokio_util::sync::CancellationToken;

/// Everything that can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A configuration file failed to parse or validate.
    #[error("{file}: {field}: {message}")]
    Config {
        /// The configuration file.
        file: String,
        /// The field (or line and column) at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox could not be started or supervised.
    #[error("sandbox: {message}")]
    Sandbox {
        /// What failed.
        message: String,
    },
    /// The sandbox refused or failed, with its cause.
    #[error("sandbox: {0}")]
    Isolation(#[from] crate::sandbox::SandboxError),
    /// The repository could not be read or fetched.
    #[error("repository: {message}")]
    Repo {
        /// What failed.
        message: String,
    },
    /// The chain could not be read (the loop then takes no action).
    #[error("chain: {message}")]
    Chain {
        /// What failed.
        message: String,
    },
    /// Node keys could not be loaded.
    #[error("keys: {message}")]
    Keys {
        /// What failed.
        message: String,
    },
    /// The dataset store or an encryption step failed.
    #[error("data: {message}")]
    Store {
        /// What failed.
        message: String,
    },
    /// The attest log could not be opened, replayed or appended to.
    #[error("log: {message}")]
    Log {
        /// What failed.
        message: String,
    },
    /// A configured witness key does not parse.
    #[error("witness key: {0}")]
    WitnessKey(#[source] collective_attest::AttestError),
    /// An HTTP client could not be built.
    #[error("HTTP client for {what}: {source}")]
    HttpClient {
        /// What the client is for.
        what: &'static str,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// Something the node will not do (and logs as refused when it can).
    #[error("refused: {reason}")]
    Refused {
        /// Why, in words.
        reason: String,
    },
}
