//! Node keys: the RSA-4096 encryption key contributors encrypt to, and the
//! Ed25519 key that signs the node's transparency log.
//!
//! Security argument:
//! - The encryption key is published as an `ssh-rsa` age recipient so any
//!   stock age client can encrypt to it; the private half is stored as a
//!   PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), a format both age (Rust)
//!   and age (Go, `age -d -i node.key`) read directly.
//! - Private key files are created 0600 (atomically, via a temporary file
//!   renamed into place; never overwritten) inside a 0700 directory, and a
//!   private key file that group or others can read is refused on load: a
//!   leaked-permission key must be fixed by the operator, not silently used.
//! - With a passphrase, each private key file is an armored age file sealed
//!   with age's scrypt passphrase mode (so `age -d node.key` opens it too);
//!   the passphrase comes from a prompt or an environment variable and is
//!   never written anywhere.
//! - Public files (`node.pub`, `log.pub`) are derived from the private keys
//!   and checked against them on load, so a swapped public file is noticed.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use base64::prelude::{Engine, BASE64_STANDARD, BASE64_STANDARD_NO_PAD};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::VaultError;

/// The RSA private key (PKCS#1 PEM, or age-sealed PEM).
pub const NODE_KEY_FILE: &str = "node.key";
/// The `ssh-rsa` age recipient, one line: what contributors pass to `age -R`.
pub const NODE_PUB_FILE: &str = "node.pub";
/// The Ed25519 log-signing key (PKCS#8 PEM, or age-sealed PEM).
pub const LOG_KEY_FILE: &str = "log.key";
/// The log public key, base64 of the 32 key bytes.
pub const LOG_PUB_FILE: &str = "log.pub";
/// Environment variable a service may use to hand over the key passphrase.
pub const PASSPHRASE_ENV: &str = "COLLECTIVE_KEY_PASSPHRASE";

/// The key passphrase held in the environment variable `var` (for services:
/// the controller config names the variable), if set and non-empty.
pub fn passphrase_from_env(var: &str) -> Option<SecretString> {
    std::env::var(var)
        .ok()
        .filter(|p| !p.is_empty())
        .map(SecretString::from)
}

/// RSA modulus size of node encryption keys.
const RSA_BITS: usize = 4096;

/// A node's private keys, loaded and checked.
pub struct NodeKeys {
    rsa: rsa::RsaPrivateKey,
    identity: age::ssh::Identity,
    recipient: String,
    log: SigningKey,
}

impl std::fmt::Debug for NodeKeys {
    // Never print key material, only the public halves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeys")
            .field(
                "recipient_fingerprint",
                &recipient_fingerprint(&self.recipient),
            )
            .field("log_public_key", &self.log_public_key_base64())
            .finish_non_exhaustive()
    }
}

/// The public side of a node's keys, as `collective keys show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// `ssh-rsa AAAA...`: the age recipient contributors encrypt to.
    pub recipient: String,
    /// OpenSSH-style `SHA256:...` fingerprint of the recipient (what
    /// `ssh-keygen -lf node.pub` prints).
    pub recipient_fingerprint: String,
    /// Base64 of the 32-byte Ed25519 log public key.
    pub log_public_key: String,
    /// `SHA256:...` of the 32-byte log public key.
    pub log_key_fingerprint: String,
    /// `0x` + hex sha256 of the recipient's SSH key blob: a suggested node id
    /// for `NodeRegistry`, stable for the life of the encryption key.
    pub node_id: String,
}

impl KeyInfo {
    /// Reads the public files of a key directory; needs no passphrase.
    pub fn read(dir: &Path) -> Result<KeyInfo, VaultError> {
        let pub_path = dir.join(NODE_PUB_FILE);
        let recipient = read_text(&pub_path)?.trim().to_string();
        crate::parse_recipient(&recipient).map_err(|e| VaultError::KeyFile {
            path: pub_path.clone(),
            reason: e.to_string(),
        })?;
        let log_path = dir.join(LOG_PUB_FILE);
        let log_public_key = read_text(&log_path)?.trim().to_string();
        let log_bytes = decode_log_pub(&log_public_key).map_err(|reason| VaultError::KeyFile {
            path: log_path,
            reason,
        })?;
        Ok(KeyInfo {
            recipient_fingerprint: recipient_fingerprint(&recipient),
            node_id: format!("0x{}", hex::encode(node_id_of_recipient(&recipient))),
            recipient,
            log_key_fingerprint: fingerprint(&log_bytes),
            log_public_key,
        })
    }

    /// The C2SP signed-note verifier key of the log named `origin`.
    pub fn log_verifier_key(&self, origin: &str) -> Result<String, VaultError> {
        verifier_key(origin, &self.log_verifying_key()?)
    }

    /// The log public key as an `ed25519_dalek` key.
    pub fn log_verifying_key(&self) -> Result<VerifyingKey, VaultError> {
        let bytes = decode_log_pub(&self.log_public_key).map_err(|reason| VaultError::KeyFile {
            path: PathBuf::from(LOG_PUB_FILE),
            reason,
        })?;
        VerifyingKey::from_bytes(&bytes).map_err(|e| VaultError::KeyFile {
            path: PathBuf::from(LOG_PUB_FILE),
            reason: e.to_string(),
        })
    }
}

fn decode_log_pub(s: &str) -> Result<[u8; 32], String> {
    let bytes = BASE64_STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes".to_string())
}

/// `<origin>+<key id>+<base64>`: the C2SP signed-note verifier key of an
/// Ed25519 log key, what auditors pass to check checkpoints.
pub fn verifier_key(origin: &str, key: &VerifyingKey) -> Result<String, VaultError> {
    if !signed_note::is_key_name_valid(origin) {
        return Err(VaultError::BadLogOrigin {
            origin: origin.to_string(),
        });
    }
    Ok(signed_note::new_ed25519_verifier_key(origin, key))
}

/// sha256 of the SSH key blob of an `ssh-...` recipient (of the string for
/// other kinds): the suggested node id.
pub fn node_id_of_recipient(recipient: &str) -> [u8; 32] {
    let mut parts = recipient.split_whitespace();
    match (
        parts.next(),
        parts.next().map(|b| BASE64_STANDARD.decode(b)),
    ) {
        (Some(kind), Some(Ok(blob))) if kind.starts_with("ssh-") => Sha256::digest(blob).into(),
        _ => Sha256::digest(recipient.trim().as_bytes()).into(),
    }
}

/// `SHA256:<base64, no padding>` of `bytes`, the OpenSSH fingerprint style.
fn fingerprint(bytes: &[u8]) -> String {
    format!(
        "SHA256:{}",
        BASE64_STANDARD_NO_PAD.encode(Sha256::digest(bytes))
    )
}

/// OpenSSH-style fingerprint of an `ssh-...` recipient line (hash of the
/// decoded key blob), or of the string itself for other recipient kinds.
pub fn recipient_fingerprint(recipient: &str) -> String {
    let mut parts = recipient.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(kind), Some(blob)) if kind.starts_with("ssh-") => {
            match BASE64_STANDARD.decode(blob) {
                Ok(raw) => fingerprint(&raw),
                Err(_) => fingerprint(recipient.as_bytes()),
            }
        }
        _ => fingerprint(recipient.trim().as_bytes()),
    }
}

impl NodeKeys {
    /// Generates a fresh RSA-4096 encryption key and Ed25519 log key in
    /// memory. Slow (seconds): RSA key generation searches for primes.
    pub fn generate() -> Result<Self, VaultError> {
        let mut rng = rand::rngs::OsRng;
        let rsa = rsa::RsaPrivateKey::new(&mut rng, RSA_BITS).map_err(|e| VaultError::KeyFile {
            path: PathBuf::from(NODE_KEY_FILE),
            reason: format!("RSA key generation failed: {e}"),
        })?;
        let log = SigningKey::generate(&mut rng);
        Self::from_parts(rsa, log)
    }

    /// Builds node keys from existing key material.
    pub fn from_parts(rsa: rsa::RsaPrivateKey, log: SigningKey) -> Result<Self, VaultError> {
        let pem = rsa_pem(&rsa)?;
        let (identity, recipient) = identity_from_pem(pem.as_bytes(), Path::new(NODE_KEY_FILE))?;
        Ok(NodeKeys {
            rsa,
            identity,
            recipient,
            log,
        })
    }

    /// Creates a key directory with fresh keys (`collective keys init`).
    /// Refuses to overwrite existing keys.
    pub fn init(dir: &Path, passphrase: Option<&SecretString>) -> Result<Self, VaultError> {
        for name in [NODE_KEY_FILE, LOG_KEY_FILE] {
            let path = dir.join(name);
            if path.exists() {
                return Err(VaultError::KeysExist { path });
            }
        }
        let keys = Self::generate()?;
        keys.save(dir, passphrase)?;
        Ok(keys)
    }

    /// Writes these keys into `dir` (created 0700 if missing): private files
    /// 0600, sealed with `passphrase` if given. Never overwrites a key file.
    pub fn save(&self, dir: &Path, passphrase: Option<&SecretString>) -> Result<(), VaultError> {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| VaultError::io(format!("key directory {}", dir.display()), e))?;
        }
        let rsa_pem = rsa_pem(&self.rsa)?;
        let log_pem = self
            .log
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| VaultError::KeyFile {
                path: dir.join(LOG_KEY_FILE),
                reason: e.to_string(),
            })?;
        let seal = |pem: &str, path: &Path| -> Result<Vec<u8>, VaultError> {
            match passphrase {
                None => Ok(pem.as_bytes().to_vec()),
                Some(p) => seal_with_passphrase(pem.as_bytes(), p, path),
            }
        };
        let node_key = dir.join(NODE_KEY_FILE);
        let log_key = dir.join(LOG_KEY_FILE);
        write_new(&node_key, &seal(&rsa_pem, &node_key)?, 0o600)?;
        write_new(&log_key, &seal(&log_pem, &log_key)?, 0o600)?;
        write_replace(
            &dir.join(NODE_PUB_FILE),
            format!("{}\n", self.recipient).as_bytes(),
            0o644,
        )?;
        write_replace(
            &dir.join(LOG_PUB_FILE),
            format!("{}\n", self.log_public_key_base64()).as_bytes(),
            0o644,
        )?;
        tracing::info!(dir = %dir.display(), sealed = passphrase.is_some(), "wrote node keys");
        Ok(())
    }

    /// Loads the keys of `dir`. Refuses private files that group or others
    /// can read, sealed files without (or with the wrong) passphrase, and
    /// public files that do not match the private keys.
    pub fn load(dir: &Path, passphrase: Option<&SecretString>) -> Result<Self, VaultError> {
        let node_key = dir.join(NODE_KEY_FILE);
        let rsa_pem = read_private(&node_key, passphrase)?;
        let (identity, recipient) = identity_from_pem(&rsa_pem, &node_key)?;
        let rsa = std::str::from_utf8(&rsa_pem)
            .ok()
            .and_then(|pem| rsa::RsaPrivateKey::from_pkcs1_pem(pem).ok())
            .ok_or_else(|| VaultError::KeyFile {
                path: node_key.clone(),
                reason: "not a PKCS#1 RSA private key (-----BEGIN RSA PRIVATE KEY-----)".into(),
            })?;
        let log_path = dir.join(LOG_KEY_FILE);
        let log_pem = read_private(&log_path, passphrase)?;
        let log_pem = std::str::from_utf8(&log_pem).map_err(|_| VaultError::KeyFile {
            path: log_path.clone(),
            reason: "not a PEM file".into(),
        })?;
        let log = SigningKey::from_pkcs8_pem(log_pem).map_err(|e| VaultError::KeyFile {
            path: log_path.clone(),
            reason: format!("not an Ed25519 PKCS#8 key: {e}"),
        })?;
        let keys = NodeKeys {
            rsa,
            identity,
            recipient,
            log,
        };
        keys.check_public_files(dir)?;
        Ok(keys)
    }

    fn check_public_files(&self, dir: &Path) -> Result<(), VaultError> {
        let checks = [
            (NODE_PUB_FILE, self.recipient.clone()),
            (LOG_PUB_FILE, self.log_public_key_base64()),
        ];
        for (name, expected) in checks {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            let found = read_text(&path)?;
            let found_key: Vec<&str> = found.split_whitespace().take(2).collect();
            let expected_key: Vec<&str> = expected.split_whitespace().take(2).collect();
            if found_key != expected_key {
                return Err(VaultError::KeyFile {
                    path,
                    reason: "public key file does not match the private key".into(),
                });
            }
        }
        Ok(())
    }

    /// The age identity that decrypts contributions.
    pub fn identity(&self) -> &age::ssh::Identity {
        &self.identity
    }

    /// The identity as a shareable handle, for the async store operations
    /// that decrypt on a blocking thread.
    pub fn shared_identity(&self) -> std::sync::Arc<dyn age::Identity + Send + Sync> {
        std::sync::Arc::new(self.identity.clone())
    }

    /// The `ssh-rsa AAAA...` recipient string (without comment).
    pub fn recipient(&self) -> &str {
        &self.recipient
    }

    /// OpenSSH-style `SHA256:...` fingerprint of the recipient.
    pub fn recipient_fingerprint(&self) -> String {
        recipient_fingerprint(&self.recipient)
    }

    /// A suggested 32-byte node id: sha256 of the recipient's SSH key blob,
    /// stable for the life of the encryption key.
    pub fn node_id(&self) -> [u8; 32] {
        node_id_of_recipient(&self.recipient)
    }

    /// The log-signing key (for `collective_attest::Log`).
    pub fn log_signing_key(&self) -> &SigningKey {
        &self.log
    }

    /// The log public key.
    pub fn log_public_key(&self) -> VerifyingKey {
        self.log.verifying_key()
    }

    /// Base64 of the 32-byte log public key (the content of `log.pub`).
    pub fn log_public_key_base64(&self) -> String {
        BASE64_STANDARD.encode(self.log.verifying_key().as_bytes())
    }

    /// The log public key as a C2SP signed-note verifier key for the log
    /// named `origin` (`<origin>+<key id>+<base64>`), what auditors pass to
    /// check checkpoints.
    pub fn log_verifier_key(&self, origin: &str) -> Result<String, VaultError> {
        verifier_key(origin, &self.log.verifying_key())
    }

    /// The public side, as `collective keys show` prints it.
    pub fn info(&self) -> KeyInfo {
        KeyInfo {
            recipient: self.recipient.clone(),
            recipient_fingerprint: self.recipient_fingerprint(),
            log_public_key: self.log_public_key_base64(),
            log_key_fingerprint: fingerprint(self.log.verifying_key().as_bytes()),
            node_id: format!("0x{}", hex::encode(self.node_id())),
        }
    }
}

fn rsa_pem(rsa: &rsa::RsaPrivateKey) -> Result<String, VaultError> {
    rsa.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| VaultError::KeyFile {
            path: PathBuf::from(NODE_KEY_FILE),
            reason: format!("cannot encode RSA key: {e}"),
        })
}

/// Parses an RSA PEM with age's own SSH identity parser, so what we load is
/// exactly what age will use, and derives the recipient from it.
fn identity_from_pem(pem: &[u8], path: &Path) -> Result<(age::ssh::Identity, String), VaultError> {
    let bad = |reason: String| VaultError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let identity = age::ssh::Identity::from_buffer(pem, Some(path.display().to_string()))
        .map_err(|e| bad(format!("not an SSH/PEM private key: {e}")))?;
    if !matches!(identity, age::ssh::Identity::Unencrypted(_)) {
        return Err(bad("expected an unencrypted RSA private key".into()));
    }
    let recipient = age::ssh::Recipient::try_from(identity.clone())
        .map_err(|e| bad(format!("cannot derive the recipient: {e:?}")))?;
    if !matches!(recipient, age::ssh::Recipient::SshRsa(..)) {
        return Err(bad("expected an RSA key, found another SSH key type".into()));
    }
    Ok((identity, recipient.to_string()))
}

/// Refuses a private file that group or others can read (any of 0o077).
pub fn ensure_private_file(path: &Path) -> Result<(), VaultError> {
    let meta = fs::metadata(path).map_err(|e| VaultError::io(path.display().to_string(), e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::InsecureKeyFile {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Reads a private key file, checking its mode first and unsealing it if
/// it is an age passphrase file.
fn read_private(path: &Path, passphrase: Option<&SecretString>) -> Result<Vec<u8>, VaultError> {
    ensure_private_file(path)?;
    let bytes = fs::read(path).map_err(|e| VaultError::io(path.display().to_string(), e))?;
    if !crate::is_age_prefix(&bytes) {
        return Ok(bytes);
    }
    let Some(passphrase) = passphrase else {
        return Err(VaultError::PassphraseRequired {
            path: path.to_path_buf(),
        });
    };
    unseal(&bytes, passphrase, path)
}

fn seal_with_passphrase(
    plain: &[u8],
    passphrase: &SecretString,
    path: &Path,
) -> Result<Vec<u8>, VaultError> {
    if passphrase.expose_secret().is_empty() {
        return Err(VaultError::KeyFile {
            path: path.to_path_buf(),
            reason: "empty passphrase".into(),
        });
    }
    let io_err = |e| VaultError::io(path.display().to_string(), e);
    let encryptor = age::Encryptor::with_user_passphrase(passphrase.clone());
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(io_err)?;
    let mut w = encryptor.wrap_output(armor).map_err(io_err)?;
    w.write_all(plain).map_err(io_err)?;
    w.finish().and_then(|a| a.finish()).map_err(io_err)?;
    Ok(out)
}

fn unseal(bytes: &[u8], passphrase: &SecretString, path: &Path) -> Result<Vec<u8>, VaultError> {
    let bad = |reason: String| VaultError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(bytes))
        .map_err(|e| bad(format!("sealed key file is damaged: {e}")))?;
    if !decryptor.is_scrypt() {
        return Err(bad("age file is not passphrase-sealed".into()));
    }
    let mut identity = age::scrypt::Identity::new(passphrase.clone());
    // Accept work factors up to 2^22 regardless of this machine's speed, so a
    // key sealed on a fast machine opens on a slower one.
    identity.set_max_work_factor(22);
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                VaultError::WrongPassphrase {
                    path: path.to_path_buf(),
                }
            }
            other => bad(format!("cannot unseal: {other}")),
        })?;
    let mut plain = Vec::new();
    reader
        .read_to_end(&mut plain)
        .map_err(|e| bad(format!("sealed key file is damaged: {e}")))?;
    Ok(plain)
}

fn read_text(path: &Path) -> Result<String, VaultError> {
    fs::read_to_string(path).map_err(|e| VaultError::io(path.display().to_string(), e))
}

/// Writes a new file atomically with `mode`; fails if `path` exists.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), VaultError> {
    let tmp = temp_with(path, bytes, mode)?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            VaultError::KeysExist {
                path: path.to_path_buf(),
            }
        } else {
            VaultError::io(path.display().to_string(), e.error)
        }
    })?;
    Ok(())
}

/// Writes a file atomically with `mode`, replacing any previous content.
fn write_replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), VaultError> {
    let tmp = temp_with(path, bytes, mode)?;
    tmp.persist(path)
        .map_err(|e| VaultError::io(path.display().to_string(), e.error))?;
    Ok(())
}

fn temp_with(path: &Path, bytes: &[u8], mode: u32) -> Result<tempfile::NamedTempFile, VaultError> {
    let io_err = |e| VaultError::io(path.display().to_string(), e);
    let dir = path.parent().unwrap_or(Path::new("."));
    // Created 0600 by tempfile; widened only for public files.
    let mut tmp = tempfile::Builder::new()
        .prefix(".collective-key-")
        .tempfile_in(dir)
        .map_err(io_err)?;
    tmp.write_all(bytes).map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    if mode != 0o600 {
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode)).map_err(io_err)?;
    }
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_openssh_style() {
        // Known answer from `ssh-keygen -lf` (OpenSSH 9) on age's test key.
        let pk = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDE7nIXTGNuaRBN9toI/wNALuQec8mvlt0iJ7o3OaD2UvoKHJ7S8rmIn4FiQDUed/Vac3OhUibei1k+TBmm16u2Rj3klgWZOIDgi8d4vXKI5N3YBhxr3jsQ+kz1c+iZ4z/tTtz306+4K46XViVMWwyyg9j82Jn41mOAy9vdeDIfQ5fLeaGqn5KwlT61GNkZ+ozWK/ZNlQIlNCcoXxhJULIs9XrtczWyVBAea1nlDo0WHODePxoJjmsNHrpQXn5mf9O83xs10qfTUjnRUt48jRmedFy4tcra3QGmSTQ3KZne+wXXSb0cIpXLGvZjQSPHgG1hc4r3uBpiSzvesGLv79XL alice@rust";
        assert_eq!(
            recipient_fingerprint(pk),
            "SHA256:jH4CHm2hFu7eduLrU2NqOn1Uk1zva6DohXCLFfCw734"
        );
    }

    #[test]
    fn insecure_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, b"x").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o604, false),
            (0o644, false),
        ] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let r = ensure_private_file(&p);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}");
            if let Err(e) = r {
                assert!(e
                    .to_string()
                    .contains(&format!("chmod 600 {}", p.display())));
            }
        }
    }

    #[test]
    fn seal_roundtrip_and_wrong_passphrase() {
        let p = Path::new("t.key");
        let good = SecretString::from("correct horse".to_string());
        let sealed = seal_with_passphrase(b"secret pem", &good, p).unwrap();
        assert!(sealed.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
        assert_eq!(unseal(&sealed, &good, p).unwrap(), b"secret pem");
        let bad = SecretString::from("battery staple".to_string());
        assert!(matches!(
            unseal(&sealed, &bad, p),
            Err(VaultError::WrongPassphrase { .. })
        ));
    }
}
