//! collective-vault: the data path of a collective node.
//!
//! Security argument (see DESIGN.md, "Data path"):
//!
//! - Contributors encrypt with a stock age client to the node's `ssh-rsa`
//!   recipient, so nothing of ours has to be trusted on their side. The node's
//!   RSA-4096 private key never leaves the key directory, whose files are
//!   0600 and refused when group or others can read them.
//! - Ciphertext is the only form data takes at rest: the dataset store holds
//!   age files named by the sha256 of their bytes, checked on every read, so a
//!   swapped or corrupted object is detected even before age's own AEAD.
//! - Plaintext exists only in a private 0700 directory on tmpfs (when the
//!   machine has one) that is removed when its owner is dropped
//!   ([`PlainDir`]), or in memory while re-encrypting to approved recipients
//!   ([`reencrypt_stream`]): it never touches persistent disk.
//! - Every operation that writes a file writes it under a temporary name and
//!   renames it only once the whole stream authenticated, so a failure
//!   (truncation, tampering, wrong key) leaves no partial output behind.
//!
//! All cryptography is age's (and `rsa`'s, `ed25519-dalek`'s, `sha2`'s);
//! this crate only arranges files and streams around it.

#![warn(missing_docs)]

mod envelope;
mod error;
mod keys;
mod plain;
mod store;
mod sync_bridge;

pub use age;
pub use age::secrecy::{ExposeSecret, SecretString};
pub use envelope::{
    check_age_header, decrypt_file, decrypt_stream, encrypt_file, encrypt_stream, is_age_prefix,
    parse_recipient, parse_recipients, parse_recipients_file, reencrypt_stream,
};
pub use error::VaultError;
pub use keys::{
    ensure_private_file, node_id_of_recipient, passphrase_from_env, recipient_fingerprint,
    verifier_key, KeyInfo, NodeKeys, LOG_KEY_FILE, LOG_PUB_FILE, NODE_KEY_FILE, NODE_PUB_FILE,
    PASSPHRASE_ENV,
};
pub use plain::{
    decrypt_datasets_into, decrypt_datasets_into_dir, plain_base_dir, PlainDir, PlainFile,
};
pub use store::{DatasetStore, ObjectRef};

/// Hex sha256 and size of a file, streamed (for output digests in the log).
pub fn sha256_file(path: &std::path::Path) -> Result<(String, u64), VaultError> {
    use sha2::Digest;
    let what = || path.display().to_string();
    let mut file = std::fs::File::open(path).map_err(|e| VaultError::io(what(), e))?;
    let mut hasher = sha2::Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(|e| VaultError::io(what(), e))?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Hex sha256 of a byte slice; the name of a dataset object.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
