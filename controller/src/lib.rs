//! collective-controller: the node daemon.
//!
//! It watches the code repository, deploys only trees approved on-chain
//! (gated by `collective_policy::decide`), runs their jobs in a bubblewrap
//! sandbox, and writes every decision to the attest log, which is also its
//! only durable memory. See DESIGN.md, "The controller loop".

pub mod config;
pub mod sandbox;

use std::path::PathBuf;

pub use config::NodeConfig;

/// Everything that can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A configuration file failed to parse or validate.
    #[error("{file}: {field}: {message}")]
    Config {
        file: String,
        field: String,
        message: String,
    },
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The sandbox could not be started or supervised.
    #[error("sandbox: {message}")]
    Sandbox { message: String },
}
