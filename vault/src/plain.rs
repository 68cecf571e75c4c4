//! Private plaintext directories for jobs.
//!
//! Security argument: plaintext must never reach persistent disk and must not
//! outlive the job. A [`PlainDir`] is a fresh 0700 directory with a random
//! name, on tmpfs (`/dev/shm`) when the machine has one, whose files are
//! 0600; it is removed when dropped (including on panic unwinding and on every
//! error path of [`decrypt_datasets_into`]) or explicitly with
//! [`PlainDir::close`], which reports removal errors. Each dataset is first
//! written under a temporary name and renamed only once it authenticated and
//! its object matched its hash name, so a job never sees a partial dataset.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{DatasetStore, VaultError};

/// Where private plaintext directories go: `/dev/shm` when it is a writable
/// tmpfs directory, else the system temporary directory.
pub fn plain_base_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && is_tmpfs(shm) {
        let probe = tempfile::Builder::new()
            .prefix(".collective-probe-")
            .tempdir_in(shm);
        if probe.is_ok() {
            return shm.to_path_buf();
        }
    }
    std::env::temp_dir()
}

/// True when `path` lies on a tmpfs mount, from `/proc/self/mounts`
/// (longest matching mount point wins).
fn is_tmpfs(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let mut best: Option<(usize, bool)> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_dev), Some(mnt), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let mnt = mnt.replace("\\040", " ");
        if path.starts_with(&mnt) && best.is_none_or(|(len, _)| mnt.len() >= len) {
            best = Some((mnt.len(), fstype == "tmpfs" || fstype == "ramfs"));
        }
    }
    best.is_some_and(|(_, tmpfs)| tmpfs)
}

/// One decrypted dataset inside a [`PlainDir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainFile {
    /// The ciphertext's sha256 (the dataset id).
    pub sha256: String,
    /// `<dir>/<sha256>`.
    pub path: PathBuf,
    /// Plaintext size in bytes.
    pub size: u64,
}

/// A private plaintext directory, removed on drop.
#[derive(Debug)]
pub struct PlainDir {
    dir: Option<tempfile::TempDir>,
    files: Vec<PlainFile>,
    skipped: Vec<String>,
}

impl PlainDir {
    /// A new empty private directory under [`plain_base_dir`].
    pub fn new() -> Result<Self, VaultError> {
        Self::new_in(&plain_base_dir())
    }

    /// A new empty private directory (0700) under `base`.
    pub fn new_in(base: &Path) -> Result<Self, VaultError> {
        let dir = tempfile::Builder::new()
            .prefix("collective-plain-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)
            .map_err(|e| VaultError::io(format!("private directory in {}", base.display()), e))?;
        // Permissions are set at creation, but enforce against odd umasks.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| VaultError::io(dir.path().display().to_string(), e))?;
        tracing::debug!(dir = %dir.path().display(), "created private plaintext directory");
        Ok(PlainDir {
            dir: Some(dir),
            files: Vec::new(),
            skipped: Vec::new(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .expect("a PlainDir holds its directory until closed")
    }

    /// True when the directory is on tmpfs (never written to a disk).
    pub fn on_tmpfs(&self) -> bool {
        is_tmpfs(self.path())
    }

    /// The datasets decrypted into the directory.
    pub fn files(&self) -> &[PlainFile] {
        &self.files
    }

    /// Datasets that were requested but skipped because they are excluded
    /// (withdrawn).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Removes the directory now, reporting any error (drop ignores them).
    pub fn close(mut self) -> Result<(), VaultError> {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            dir.close()
                .map_err(|e| VaultError::io(path.display().to_string(), e))?;
            tracing::debug!(dir = %path.display(), "removed private plaintext directory");
        }
        Ok(())
    }
}

/// Decrypts the stored datasets `datasets` (ciphertext sha256s) with
/// `identity` into a fresh [`PlainDir`], as `<dir>/<sha256>` files (0600),
/// skipping those in `excluded` (withdrawn contributions). Any failure
/// (missing object, hash mismatch, wrong key, tampering) removes the whole
/// directory before returning the error.
pub async fn decrypt_datasets_into(
    store: &DatasetStore,
    datasets: &[String],
    identity: Arc<dyn age::Identity + Send + Sync>,
    excluded: &HashSet<String>,
) -> Result<PlainDir, VaultError> {
    decrypt_datasets_into_dir(&plain_base_dir(), store, datasets, identity, excluded).await
}

/// As [`decrypt_datasets_into`], with the private directory made under
/// `base` instead of [`plain_base_dir`].
pub async fn decrypt_datasets_into_dir(
    base: &Path,
    store: &DatasetStore,
    datasets: &[String],
    identity: Arc<dyn age::Identity + Send + Sync>,
    excluded: &HashSet<String>,
) -> Result<PlainDir, VaultError> {
    let mut plain = PlainDir::new_in(base)?;
    let mut seen = HashSet::new();
    for sha in datasets {
        if !seen.insert(sha.clone()) {
            continue;
        }
        if excluded.contains(sha) {
            tracing::info!(sha256 = %sha, "skipping withdrawn dataset");
            plain.skipped.push(sha.clone());
            continue;
        }
        let path = plain.path().join(sha);
        // On error `plain` drops here and takes every decrypted file with it.
        let size = store.decrypt_to_file(sha, identity.clone(), &path).await?;
        plain.files.push(PlainFile {
            sha256: sha.clone(),
            path,
            size,
        });
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_is_0700_and_removed() {
        let d = PlainDir::new().unwrap();
        let p = d.path().to_path_buf();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        if Path::new("/dev/shm").is_dir() && is_tmpfs(Path::new("/dev/shm")) {
            assert!(d.on_tmpfs());
        }
        std::fs::write(p.join("x"), b"secret").unwrap();
        drop(d);
        assert!(!p.exists());
        let d = PlainDir::new().unwrap();
        let p = d.path().to_path_buf();
        d.close().unwrap();
        assert!(!p.exists());
    }
}
