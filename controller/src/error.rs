//! The controller's one error type.
//!
//! Every variant carries its cause as a `source` (never flattened into a
//! string), so what reaches the log, the status page and stderr can say
//! "no space left on device" rather than "I/O error": [`causes`] renders
//! the whole chain. [`ControllerError::is_retryable`] is the loop's error
//! policy: a retryable failure backs off and is tried again, anything else
//! waits for the situation to change.

use std::path::PathBuf;

use collective_attest::AttestError;
use collective_chain::ChainError;
use collective_tree::TreeError;
use collective_vault::VaultError;

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
        /// What is wrong and how to fix it.
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
    /// The sandbox refused or failed, with its cause.
    #[error("sandbox: {0}")]
    Isolation(#[from] crate::sandbox::SandboxError),
    /// The repository could not be read or fetched.
    #[error("repository: {what}")]
    Git {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: collective_tree::git2::Error,
    },
    /// A tree could not be hashed or materialized.
    #[error("tree: {what}")]
    Tree {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: TreeError,
    },
    /// The chain could not be read (the loop then takes no action).
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The chain is shorter than the confirmation depth: nothing can be
    /// read at depth yet.
    #[error(
        "chain: the chain is at block {height}, below the confirmation depth of {confirmations}; waiting for more blocks"
    )]
    ChainTooShort {
        /// The head block number.
        height: u64,
        /// `chain.confirmations`.
        confirmations: u64,
    },
    /// A contract address in the configuration does not parse.
    #[error("chain.addresses.{field}: {value:?} is not an address: {source}")]
    Address {
        /// The field.
        field: &'static str,
        /// What was given.
        value: String,
        /// The cause.
        #[source]
        source: collective_chain::alloy::hex::FromHexError,
    },
    /// Node keys could not be loaded.
    #[error("keys in {} (node.key_dir; create them with `collective keys init --dir {}`)", dir.display(), dir.display())]
    Keys {
        /// `node.key_dir`.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: Box<VaultError>,
    },
    /// The dataset store or an encryption step failed.
    #[error("data: {what}")]
    Vault {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: Box<VaultError>,
    },
    /// The attest log could not be opened, replayed or appended to.
    #[error("log: {what}")]
    Log {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: AttestError,
    },
    /// A configured witness key does not parse.
    #[error("witness key: {0}")]
    WitnessKey(#[source] AttestError),
    /// An HTTP client could not be built.
    #[error("HTTP client for {what}: {source}")]
    HttpClient {
        /// What the client is for.
        what: &'static str,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A background task panicked; its work is recorded as failed.
    #[error("{task} panicked: {message}")]
    Panicked {
        /// The task.
        task: String,
        /// The panic payload, when it is text.
        message: String,
    },
    /// The world changed between the read and the action (the head moved,
    /// an approval vanished): the next pass re-reads it.
    #[error("{what} changed during the pass; re-reading")]
    Raced {
        /// What changed.
        what: &'static str,
    },
    /// Something the node will not do (and logs as refused when it can).
    #[error("refused: {reason}")]
    Refused {
        /// Why, in words.
        reason: String,
    },
}

impl ControllerError {
    /// Whether trying again later can succeed without anyone changing the
    /// configuration: outages, full disks, races. The loop backs off on
    /// these and waits for a change on the rest.
    pub fn is_retryable(&self) -> bool {
        match self {
            ControllerError::Tree { source, .. } => source.content_code().is_none(),
            ControllerError::Io { .. }
            | ControllerError::Git { .. }
            | ControllerError::Chain(_)
            | ControllerError::ChainTooShort { .. }
            | ControllerError::Vault { .. }
            | ControllerError::Log { .. }
            | ControllerError::Panicked { .. }
            | ControllerError::Raced { .. } => true,
            ControllerError::Config { .. }
            | ControllerError::Isolation(_)
            | ControllerError::Address { .. }
            | ControllerError::Keys { .. }
            | ControllerError::WitnessKey(_)
            | ControllerError::HttpClient { .. }
            | ControllerError::Refused { .. } => false,
        }
    }

    /// A short stable code for the failure, for deduplicating what is
    /// logged and for metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            ControllerError::Config { .. } => "config",
            ControllerError::Io { .. } => "io",
            ControllerError::Isolation(_) => "sandbox",
            ControllerError::Git { .. } => "git",
            ControllerError::Tree { .. } => "tree",
            ControllerError::Chain(_) => "chain",
            ControllerError::ChainTooShort { .. } => "chain-too-short",
            ControllerError::Address { .. } => "address",
            ControllerError::Keys { .. } => "keys",
            ControllerError::Vault { .. } => "data",
            ControllerError::Log { .. } => "log",
            ControllerError::WitnessKey(_) => "witness-key",
            ControllerError::HttpClient { .. } => "http-client",
            ControllerError::Panicked { .. } => "panicked",
            ControllerError::Raced { .. } => "raced",
            ControllerError::Refused { .. } => "refused",
        }
    }
}

/// An error and all its causes on one line (`a: b: c`), each cause once:
/// what the log, the status page and stderr show.
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_name_the_root() {
        let e = ControllerError::Log {
            what: "appending",
            source: AttestError::Io {
                op: "write",
                path: "/log/tile".into(),
                source: std::io::Error::from_raw_os_error(28),
            },
        };
        let s = causes(&e);
        assert!(s.starts_with("log: appending: "), "{s}");
        assert!(s.contains("No space left on device"), "{s}");
        // Each cause once, even when a Display already includes it.
        assert_eq!(s.matches("No space left").count(), 1, "{s}");
        assert!(e.is_retryable());
    }

    #[test]
    fn configuration_problems_are_not_retried() {
        let e = ControllerError::Config {
            file: "node.yaml".into(),
            field: "x".into(),
            message: "y".into(),
        };
        assert!(!e.is_retryable());
        assert_eq!(e.code(), "config");
    }
}
