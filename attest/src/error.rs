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
        /// The operation that failed (`read`, `write`, `fsync`, ...).
        op: &'static str,
        /// The file or directory it failed on.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// A tile or checkpoint could not be fetched from a log source (directory or URL).
    #[error("cannot read {path} from {source_name}: {message}")]
    Source {
        /// The source (directory path or URL), as [`crate::TileSource::name`] gives it.
        source_name: String,
        /// The path within the log (`checkpoint`, `tile/0/000`, ...).
        path: String,
        /// What the source reported.
        message: String,
    },
    /// A response was larger than the largest legal file at its path: a
    /// hostile or broken server (the auditor stops reading at the limit).
    #[error("{path} from {source_name} is over {limit} bytes, the largest a legal one can be")]
    TooLarge {
        /// The source (directory path or URL).
        source_name: String,
        /// The path within the log.
        path: String,
        /// The limit ([`crate::tiles::max_len`]).
        limit: u64,
    },
    /// A request, or the whole audit, ran past its deadline: a stalled or
    /// trickling server.
    #[error("{path} from {source_name}: no complete answer within {seconds} s ({which} deadline)")]
    Deadline {
        /// The source (directory path or URL).
        source_name: String,
        /// The path within the log.
        path: String,
        /// The deadline that passed, in seconds.
        seconds: u64,
        /// `per-request` or `overall`.
        which: &'static str,
    },
    /// A tile the log needs is absent from its source.
    #[error("missing tile {path}")]
    MissingTile {
        /// The C2SP path of the tile.
        path: String,
    },
    /// A tile exists but has the wrong length for its coordinates.
    #[error("tile {path} has {len} bytes, expected {expected}")]
    TileLength {
        /// The C2SP path of the tile.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// The length its coordinates call for.
        expected: usize,
    },
    /// An entry bundle could not be decoded (truncated, trailing bytes, wrong count).
    #[error("entry bundle {path} is malformed: {reason}")]
    Bundle {
        /// The C2SP path of the bundle.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint note is not well formed (C2SP tlog-checkpoint / signed-note).
    #[error("malformed checkpoint: {reason}")]
    MalformedCheckpoint {
        /// What the parser rejected.
        reason: String,
    },
    /// The checkpoint's signature does not verify under the expected key.
    #[error("checkpoint signature does not verify under key {key_name}: {reason}")]
    CheckpointSignature {
        /// The name (origin) of the key it was checked against.
        key_name: String,
        /// Why verification failed.
        reason: String,
    },
    /// The verifier key string (`name+id+base64`) is malformed.
    #[error("bad log key {key:?}: {reason}")]
    BadKey {
        /// The key string as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint's origin line differs from the log's name.
    #[error("checkpoint origin {found:?} is not the expected origin {expected:?}")]
    Origin {
        /// The origin the key (or the log) names.
        expected: String,
        /// The origin line of the checkpoint.
        found: String,
    },
    /// The tiles do not hash to the checkpoint's root: the log on disk cannot
    /// prove the checkpoint it holds.
    #[error("log at size {size} does not prove its checkpoint: tiles hash to {computed}, checkpoint says {claimed}")]
    RootMismatch {
        /// The tree size the checkpoint claims.
        size: u64,
        /// The root the tiles hash to.
        computed: String,
        /// The root the checkpoint signs.
        claimed: String,
    },
    /// A Merkle proof (inclusion or consistency) failed.
    #[error("{what} proof failed: {reason}")]
    Proof {
        /// What was being proven or read (an inclusion, a stored hash, a tile).
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// An entry is not a valid signed statement.
    #[error("entry {index}: {reason}")]
    Entry {
        /// The entry's position in the log.
        index: u64,
        /// Why it is not valid (signature, payload type, parse error, ...).
        reason: String,
    },
    /// An entry to append is invalid (bad tree id, too large, ...).
    #[error("invalid entry: {field}: {reason}")]
    InvalidEntry {
        /// The offending field (`tree_sha1`, `approval.txHash`, ...).
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A proof bundle or state file could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded (`auditor state`, `proof bundle entry`, ...).
        what: String,
        /// Why decoding failed.
        reason: String,
    },
    /// The log's signing key is not the key the existing log was signed with.
    #[error("log in {dir} is signed by {found}, not by the key given ({expected})")]
    WrongKey {
        /// The log directory.
        dir: PathBuf,
        /// The verifier key string of the key given.
        expected: String,
        /// Who signed the existing checkpoint, as signed-note reports it.
        found: String,
    },
    /// A checkpoint write failed midway; the log must be reopened (which
    /// re-reads whichever checkpoint is on disk) before appending again.
    #[error("log in {dir} must be reopened after a failed checkpoint write: {reason}")]
    Poisoned {
        /// The log directory.
        dir: PathBuf,
        /// The error that interrupted the checkpoint write.
        reason: String,
    },
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
