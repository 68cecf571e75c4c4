//! Tree ids of files on disk, as `git add -A && git write-tree` records them.
//!
//! What git records, and so what is hashed here:
//! - a regular file is `100755` when its owner-execute bit is set, else
//!   `100644` (git's `core.fileMode=true`, the default on Linux);
//! - a symlink is `120000` with its target (bytes, not followed) as content;
//! - a directory is a subtree; one with nothing trackable below it is left
//!   out, because git does not track directories, only files;
//! - `.git` at the root is skipped; a `.git` anywhere below makes git record
//!   a gitlink to another repository, which is refused
//!   ([`TreeError::NestedRepository`]);
//! - FIFOs, sockets and devices cannot be added to git and are refused, as
//!   are names git refuses because a filesystem could take them for `.git`
//!   (`.GIT`, `.git.`, `git~1`; [`TreeError::ReservedName`]).
//!
//! Content is hashed byte for byte. Conversions that `.gitattributes` can
//! ask `git add` for (end-of-line `text`/`eol`, clean filters, `ident`,
//! `working-tree-encoding`) are not applied: the node materializes blobs
//! byte for byte too, so its check is exact, but `git add -A` in a checkout
//! that uses such attributes can record different blobs than the disk holds.
//!
//! `.gitignore` is deliberately not honoured: the node hashes a tree it
//! materialized from a commit, and every file of that commit (even one a
//! `.gitignore` pattern matches, since it was force-added) is part of the
//! code that runs.
//!
//! Directories are read and files hashed in parallel (rayon); the result
//! does not depend on the order of work.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rayon::prelude::*;

use crate::object::{
    blob_digests, is_dotgit_alias, sort_entries, tree_digests, BlobHasher, Digests, Entry, Kind,
};
use crate::{TreeError, TreeIds};

/// Both tree ids of the directory `dir`, as `git add -A && git write-tree`
/// would compute them in a sha1 and in a sha256 repository.
pub fn tree_ids_of_dir(dir: &Path) -> Result<TreeIds, TreeError> {
    let ids = root_digests(dir, true)?;
    Ok(TreeIds::from_digests(&ids.sha1, &ids.sha256))
}

/// Only the sha256 tree id of `dir` (hex): what the node recomputes after
/// materializing a tree, before anything runs. Skips sha1 work.
pub fn sha256_tree_of_dir(dir: &Path) -> Result<String, TreeError> {
    Ok(hex::encode(root_digests(dir, false)?.sha256))
}

fn root_digests(dir: &Path, want_sha1: bool) -> Result<Digests, TreeError> {
    let meta = fs::metadata(dir).map_err(|e| TreeError::io(dir, e))?;
    if !meta.is_dir() {
        return Err(TreeError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let entries = dir_entries(dir, true, want_sha1)?;
    tracing::debug!(dir = %dir.display(), entries = entries.len(), "hashed directory");
    Ok(tree_digests(&entries, want_sha1))
}

/// Reads one directory and hashes what is below it; returns its entries in
/// git order. An empty list means git would not record this directory.
fn dir_entries(dir: &Path, is_root: bool, want_sha1: bool) -> Result<Vec<Entry>, TreeError> {
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(|e| TreeError::io(dir, e))? {
        let item = item.map_err(|e| TreeError::io(dir, e))?;
        let name = item.file_name();
        if name.as_bytes() == b".git" {
            if is_root {
                continue;
            }
            return Err(TreeError::NestedRepository {
                path: dir.to_path_buf(),
            });
        }
        if is_dotgit_alias(name.as_bytes()) {
            return Err(TreeError::ReservedName {
                path: dir.join(&name),
            });
        }
        names.push(name);
    }
    let results: Vec<Option<Entry>> = names
        .into_par_iter()
        .map(|name| {
            let path = dir.join(&name);
            entry_of(&path, name.as_bytes(), want_sha1)
        })
        .collect::<Result<_, _>>()?;
    let mut entries: Vec<Entry> = results.into_iter().flatten().collect();
    sort_entries(&mut entries);
    Ok(entries)
}

/// Files larger than this are hashed in pieces instead of read whole.
const STREAM_ABOVE_BYTES: u64 = 16 << 20;

/// Hashes a large file in 1 MiB pieces. Its length is part of the blob
/// header, so a file that changes size while being read is an error rather
/// than a wrong id.
fn stream_digests(path: &Path, len: u64, want_sha1: bool) -> Result<Digests, TreeError> {
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(|e| TreeError::io(path, e))?;
    let mut hasher = BlobHasher::new(len, want_sha1);
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| TreeError::io(path, e))?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        hasher.update(&buf[..n]);
    }
    if seen != len {
        return Err(TreeError::io(
            path,
            std::io::Error::other(format!(
                "file changed size while hashing ({len} -> {seen} bytes)"
            )),
        ));
    }
    Ok(hasher.finish())
}

fn entry_of(path: &Path, name: &[u8], want_sha1: bool) -> Result<Option<Entry>, TreeError> {
    let meta = fs::symlink_metadata(path).map_err(|e| TreeError::io(path, e))?;
    let ft = meta.file_type();
    let (kind, ids) = if ft.is_symlink() {
        let target = fs::read_link(path).map_err(|e| TreeError::io(path, e))?;
        (
            Kind::Symlink,
            blob_digests(target.as_os_str().as_bytes(), want_sha1),
        )
    } else if ft.is_file() {
        let kind = if meta.permissions().mode() & 0o100 != 0 {
            Kind::Executable
        } else {
            Kind::File
        };
        let ids = if meta.len() <= STREAM_ABOVE_BYTES {
            let content = fs::read(path).map_err(|e| TreeError::io(path, e))?;
            blob_digests(&content, want_sha1)
        } else {
            stream_digests(path, meta.len(), want_sha1)?
        };
        (kind, ids)
    } else if ft.is_dir() {
        let entries = dir_entries(path, false, want_sha1)?;
        if entries.is_empty() {
            return Ok(None);
        }
        (Kind::Tree, tree_digests(&entries, want_sha1))
    } else {
        return Err(TreeError::UnsupportedFileType {
            path: path.to_path_buf(),
        });
    };
    Ok(Some(Entry {
        name: name.to_vec(),
        kind,
        ids,
    }))
}
