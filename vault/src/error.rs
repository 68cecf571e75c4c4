//! The one error type of the vault. Each variant names what failed (a path,
//! an object, a recipient) so the message alone tells an operator what to do.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the data path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The input had no bytes at all; an age file always has a header.
    #[error("{what}: empty input, not an age file")]
    Empty {
        /// What was being read (a path or a stream label).
        what: String,
    },

    /// The input does not start with an age header (binary or armored).
    #[error("{what}: not an age file (expected an `age-encryption.org/v1` header)")]
    NotAge {
        /// What was being read.
        what: String,
    },

    /// The header could not be parsed, its MAC did not verify, or the file key
    /// could not be unwrapped: the header was corrupted or altered.
    #[error("{what}: age header is corrupt or was altered ({detail})")]
    BadHeader {
        /// What was being read.
        what: String,
        /// age's own description of the header failure.
        detail: String,
    },

    /// None of our identities matches a recipient stanza of the file.
    #[error(
        "{what}: not encrypted to this node's key (no identity matches the file's recipients; \
         wrong key, or the header was altered)"
    )]
    WrongKey {
        /// What was being decrypted.
        what: String,
    },

    /// The payload ended before its final chunk.
    #[error("{what}: ciphertext is truncated")]
    Truncated {
        /// What was being decrypted.
        what: String,
    },

    /// A payload chunk failed authentication: the ciphertext was corrupted,
    /// altered or cut inside a chunk.
    #[error("{what}: payload failed authentication (corrupted, altered or truncated ciphertext)")]
    BadPayload {
        /// What was being decrypted.
        what: String,
        /// The authentication failure as age's stream reader reported it.
        #[source]
        source: io::Error,
    },

    /// Reading or writing failed for a reason unrelated to the age format.
    #[error("{what}: {source}")]
    Io {
        /// The file or stream being read or written.
        what: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },

    /// A recipient string is not an `age1...`, `ssh-rsa` or `ssh-ed25519` key.
    #[error("invalid recipient `{recipient}`: {reason}")]
    Recipient {
        /// The recipient string as given.
        recipient: String,
        /// Why it was not accepted.
        reason: String,
    },

    /// No recipient was given; an age file needs at least one.
    #[error("no recipients given")]
    NoRecipients,

    /// age refused to build a header for these recipients.
    #[error("cannot encrypt to these recipients: {0}")]
    Encrypt(#[source] age::EncryptError),

    /// A private key file that group or others can read is never loaded.
    #[error(
        "key file {} is readable by group or others (mode {mode:03o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecureKeyFile {
        /// The key file that was refused.
        path: PathBuf,
        /// Its permission bits (the low 9 bits of `st_mode`).
        mode: u32,
    },

    /// The key file is passphrase-sealed and no passphrase was supplied.
    #[error(
        "key file {} is sealed with a passphrase; pass --passphrase or set COLLECTIVE_KEY_PASSPHRASE",
        path.display()
    )]
    PassphraseRequired {
        /// The sealed key file.
        path: PathBuf,
    },

    /// The passphrase does not open the sealed key file.
    #[error("wrong passphrase for key file {}", path.display())]
    WrongPassphrase {
        /// The sealed key file.
        path: PathBuf,
    },

    /// A log origin cannot name a signed-note key (empty, spaces or `+`).
    #[error("log origin {origin:?} is not a valid signed-note key name (no spaces or '+')")]
    BadLogOrigin {
        /// The origin as given.
        origin: String,
    },

    /// A key file exists but its content is not a key we can use.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The unusable key file.
        path: PathBuf,
        /// What is wrong with its content.
        reason: String,
    },

    /// `keys init` never overwrites an existing key.
    #[error("key file {} already exists; refusing to overwrite a node key", path.display())]
    KeysExist {
        /// The key file that already exists.
        path: PathBuf,
    },

    /// A store object's bytes do not hash to its name.
    #[error("store object {object}: content hash {actual} does not match its name {expected}")]
    HashMismatch {
        /// Where the object was read from.
        object: String,
        /// The sha256 the object is named by.
        expected: String,
        /// The sha256 its bytes actually have.
        actual: String,
    },

    /// An object name is not a 64-hex-digit sha256.
    #[error("`{0}` is not a sha256 object name (64 lowercase hex digits)")]
    BadObjectName(String),

    /// The store has no object with this name.
    #[error("store {store}: no object {sha256}")]
    NotFound {
        /// The store that was asked.
        store: String,
        /// The object name that is missing.
        sha256: String,
    },

    /// The store location could not be understood or opened.
    #[error("dataset store `{location}`: {reason}")]
    StoreLocation {
        /// The location as given (a path or URL).
        location: String,
        /// Why it could not be used.
        reason: String,
    },

    /// The object store failed.
    #[error("dataset store {url}: {op} failed")]
    Store {
        /// The store's URL.
        url: String,
        /// The operation that failed (`upload`, `get`, `list`, ...).
        op: &'static str,
        /// The object store's own error.
        #[source]
        source: object_store::Error,
    },

    /// A background task of a streaming operation died.
    #[error("streaming task failed: {0}")]
    Task(String),
}

impl VaultError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        VaultError::Io {
            what: what.into(),
            source,
        }
    }
}
