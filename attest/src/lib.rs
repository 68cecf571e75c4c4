//! The node's signed, append-only, publicly verifiable decision log.
//!
//! Security argument (what an auditor can rely on, and why):
//! - Every entry is a DSSE envelope (Ed25519 over DSSE's PAE) around an
//!   in-toto Statement v1 naming the code (git tree ids in both object
//!   formats, the commit) and the decision; see [`entry`]. Only the holder
//!   of the node's log key can produce an entry that verifies.
//! - Entries are leaves of an RFC 6962 Merkle tree stored as C2SP
//!   tlog-tiles; the tree head is a C2SP checkpoint, a signed note under the
//!   same key. Hashing and proofs are the `tlog_tiles` crate's, notes are the
//!   `signed_note` crate's: nothing here re-implements them.
//! - An auditor who remembers the last checkpoint it verified, and/or reads
//!   the checkpoints the node anchored on chain, catches any rewrite of
//!   history: a consistency proof from the old tree to the new one either
//!   exists (history only grew) or the log forked or rolled back; see
//!   [`verify`]. Verification is pure: it reads bytes through a
//!   [`TileSource`] and does no network or chain I/O itself.
//! - The writer ([`Log`]) makes appends durable before acknowledging them
//!   and never serves a checkpoint its tiles cannot prove; see [`log`].

#![warn(missing_docs)]

pub mod entry;
mod error;
pub mod log;
mod proof;
mod stream;
pub mod tiles;
pub mod verify;
pub mod witness;

use ed25519_dalek::{Signer as _, VerifyingKey};

/// The log's signing key type (ed25519), for callers that hold one.
pub use ed25519_dalek::SigningKey;

pub use entry::{ApprovalRef, Decision, OutputDigest, Predicate, Statement, Subject};
pub use error::AttestError;
pub use log::Log;
pub use tiles::{DirSource, TileSource};
pub use verify::{
    audit, check_anchors, parse_verifier_key, verify_checkpoint, AuditOptions, AuditReport,
    AuditorState, Failure, FailureKind, ProofBundle,
};

/// signed-note algorithm byte for Ed25519.
const ALG_ED25519: u8 = 1;

/// The C2SP verifier key (`origin+keyid+base64(0x01||pubkey)`) auditors pass
/// as `--log-key`; the key name is the log's origin.
pub fn verifier_key_string(origin: &str, key: &VerifyingKey) -> String {
    signed_note::new_ed25519_verifier_key(origin, key)
}

/// The signed-note key id (8 hex digits) of the log key; also the DSSE `keyid`.
pub fn key_id_hex(origin: &str, key: &VerifyingKey) -> String {
    let mut k = vec![ALG_ED25519];
    k.extend_from_slice(key.as_bytes());
    format!("{:08x}", signed_note::key_id(origin, &k))
}

/// Signs checkpoints with the log's Ed25519 key through `signed_note`.
pub(crate) struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl NoteSigner {
    pub(crate) fn new(name: &str, key: SigningKey) -> Self {
        let mut k = vec![ALG_ED25519];
        k.extend_from_slice(key.verifying_key().as_bytes());
        NoteSigner {
            name: name.to_string(),
            id: signed_note::key_id(name, &k),
            key,
        }
    }
}

impl signed_note::Signer for NoteSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.key.try_sign(msg)?.to_bytes().to_vec())
    }
}

/// The signed checkpoint note of a tree `(size, root)` under `key`, as the
/// log writes it: for witnesses, tools and test servers that must produce
/// one (a key holder can sign any claim; auditors must not trust claims).
pub fn sign_checkpoint(
    origin: &str,
    size: u64,
    root: tlog_tiles::Hash,
    key: &SigningKey,
) -> Result<Vec<u8>, AttestError> {
    let cp = tlog_tiles::Checkpoint::new(origin, size, root, "").map_err(|e| {
        AttestError::MalformedCheckpoint {
            reason: e.to_string(),
        }
    })?;
    let mut note = signed_note::Note::new(&cp.to_bytes(), &[]).map_err(|e| {
        AttestError::MalformedCheckpoint {
            reason: e.to_string(),
        }
    })?;
    let signer = NoteSigner::new(origin, key.clone());
    note.add_sigs(&[&signer])
        .map_err(|e| AttestError::Sign(e.to_string()))?;
    Ok(note.to_bytes())
}
