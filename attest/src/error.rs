//! The one error type of this crate.
//!
//! Variants carry the data an operator or auditor needs to act on the
//! failure (which path, which entry, which field) rather than a bare reason,
//! because "verification failed" alone is useless at 3 a.m.

use std::path::PathBuf;

/// Everything that can go wrong while writing, reading or verifying a log.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// A file or directory of the log could not be read, written or synced.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tile or checkpoint could not be fetched from a log source (directory or URL).
    #[error("cannot read {path} from {source_name}: {message}")]
    Source {
        source_name: String,
        path: String,
        message: String,
    },
    /// A tile the log needs is absent from its source.
    #[error("missing tile {path}")]
    MissingTile { path: String },
    /// A tile exists but has the wrong length for its coordinates.
    #[error("tile {path} has {len} bytes, expected {expected}")]
    TileLength {
        path: String,
        len: usize,
        expected: usize,
    },
    /// An entry bundle could not be decoded (truncated, trailing bytes, wrong count).
    #[error("entry bundle {path} is malformed: {reason}")]
    Bundle { path: String, reason: String },
    /// The checkpoint note is not well formed (C2SP tlog-checkpoint / signed-note).
    #[error("malformed checkpoint: {reason}")]
    MalformedCheckpoint { reason: String },
    /// The checkpoint's signature does not verify under the expected key.
    #[error("checkpoint signature does not verify under key {key_name}: {reason}")]
    CheckpointSignature { key_name: String, reason: String },
    /// The verifier key string (`name+id+base64`) is malformed.
    #[error("bad log key {key:?}: {reason}")]
    BadKey { key: String, reason: String },
    /// The checkpoint's origin line differs from the log's name.
    #[error("checkpoint origin {found:?} is not the expected origin {expected:?}")]
    Origin { expected: String, found: String },
    /// The tiles do not hash to the checkpoint's root: the log on disk cannot
    /// prove the checkpoint it holds.
    #[error("log at size {size} does not prove its checkpoint: tiles hash to {computed}, checkpoint says {claimed}")]
    RootMismatch {
        size: u64,
        computed: String,
        claimed: String,
    },
    /// A Merkle proof (inclusion or consistency) failed.
    #[error("{what} proof failed: {reason}")]
    Proof { what: String, reason: String },
    /// An entry is not a valid signed statement.
    #[error("entry {index}: {reason}")]
    Entry { index: u64, reason: String },
    /// An entry to append is invalid (bad tree id, too large, ...).
    #[error("invalid entry: {field}: {reason}")]
    InvalidEntry { field: &'static str, reason: String },
    /// A proof bundle or state file could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode { what: String, reason: String },
    /// The log's signing key is not the key the existing log was signed with.
    #[error("log in {dir} is signed by {found}, not by the key given ({expected})")]
    WrongKey {
        dir: PathBuf,
        expected: String,
        found: String,
    },
    /// A checkpoint write failed midway; the log must be reopened (which
    /// re-reads whichever checkpoint is on disk) before appending again.
    #[error("log in {dir} must be reopened after a failed checkpoint write: {reason}")]
    Poisoned { dir: PathBuf, reason: String },
    /// Signing failed (ed25519 signer error).
    #[error("signing failed: {0}")]
    Sign(String),
}

impl AttestError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AttestError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
