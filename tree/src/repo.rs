//! Tree ids of a commit or tree in a (sha1) repository.
//!
//! The sha1 id is read from the object database. The sha256 id is
//! recomputed: every blob is rehashed with sha256 and every tree object
//! rebuilt with 32-byte ids, which is what a sha256 repository holding the
//! same files would contain.
//!
//! Security argument: the sha256 id must name exactly the files that a
//! checkout of the sha1 tree puts on disk, otherwise an approval by sha256
//! could be satisfied by a different tree. So each tree object is rebuilt in
//! git's canonical form and its sha1 recomputed; a tree whose stored form
//! differs (unsorted or duplicate entries, unusual modes, `040000`) is
//! refused ([`TreeError::NonCanonicalTree`]), as are empty subtrees (a
//! checkout cannot reproduce them) and gitlinks (their content is elsewhere).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};
use rayon::prelude::*;

use crate::object::{blob_digests, entry_order, tree_digests, Digests, Entry, Kind};
use crate::{TreeError, TreeIds};

/// Opens the repository at `path` or the one containing it (like `git`
/// does from a subdirectory), honouring `GIT_CEILING_DIRECTORIES` as git
/// does.
pub fn open_repo(path: &Path) -> Result<Repository, TreeError> {
    let ceilings: Vec<PathBuf> = std::env::var_os("GIT_CEILING_DIRECTORIES")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    Repository::open_ext(path, git2::RepositoryOpenFlags::empty(), &ceilings).map_err(|source| {
        TreeError::NotARepository {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Both tree ids of the commit `rev` resolves to, and that commit's id.
pub fn tree_ids_of_rev(repo: &Repository, rev: &str) -> Result<(TreeIds, Oid), TreeError> {
    let object = repo
        .revparse_single(rev)
        .map_err(|source| TreeError::BadRevision {
            rev: rev.to_string(),
            source,
        })?;
    let commit = object.peel_to_commit().map_err(|_| TreeError::NotACommit {
        rev: rev.to_string(),
        kind: object
            .kind()
            .map_or_else(|| "unknown object".to_string(), |k| k.to_string()),
    })?;
    let ids = tree_ids_of_tree(repo, commit.tree_id())?;
    Ok((ids, commit.id()))
}

/// Both tree ids of the tree object `tree`.
pub fn tree_ids_of_tree(repo: &Repository, tree: Oid) -> Result<TreeIds, TreeError> {
    TreeIdCache::default().tree_ids_of_tree(repo, tree)
}

/// Remembers the sha256 ids of blobs and trees already hashed, keyed by
/// their sha1 ids. A node that watches a branch keeps one, so each new
/// commit costs only what changed. Only use one cache per repository: the
/// sha1 keys are trusted because that repository's object database
/// verified them.
#[derive(Debug, Default)]
pub struct TreeIdCache {
    trees: HashMap<Oid, Digests>,
    blobs: HashMap<Oid, Digests>,
}

impl TreeIdCache {
    /// [`tree_ids_of_tree`], reusing and extending this cache.
    pub fn tree_ids_of_tree(&mut self, repo: &Repository, tree: Oid) -> Result<TreeIds, TreeError> {
        self.prefetch_blobs(repo, tree);
        let odb = repo
            .odb()
            .map_err(|e| TreeError::git("open object database", e))?;
        let mut walker = Walker {
            repo,
            odb,
            cache: self,
        };
        let ids = walker.tree(tree, Path::new(""))?;
        Ok(TreeIds::from_digests(&ids.sha1, &ids.sha256))
    }

    /// Hashes the blobs below `tree` that are not cached yet, in parallel
    /// (one repository handle per thread, since a `Repository` is not
    /// shared across threads). Best effort: anything it cannot read is left
    /// for the sequential walk, which reports the error with its path.
    fn prefetch_blobs(&mut self, repo: &Repository, tree: Oid) {
        let mut pending = Vec::new();
        let mut seen_trees = std::collections::HashSet::new();
        let mut seen_blobs = std::collections::HashSet::new();
        let mut stack = vec![tree];
        while let Some(t) = stack.pop() {
            if self.trees.contains_key(&t) || !seen_trees.insert(t) {
                continue;
            }
            let Ok(object) = repo.find_tree(t) else {
                continue;
            };
            for entry in object.iter() {
                match entry.filemode_raw() {
                    0o040000 => stack.push(entry.id()),
                    0o100644 | 0o100755 | 0o120000 => {
                        let id = entry.id();
                        if !self.blobs.contains_key(&id) && seen_blobs.insert(id) {
                            pending.push(id);
                        }
                    }
                    _ => {}
                }
            }
        }
        if pending.len() < PARALLEL_ABOVE_BLOBS {
            return;
        }
        let path = repo.path().to_path_buf();
        let hashed: Vec<(Oid, Digests)> = pending
            .par_chunks(256)
            .map_init(
                || Repository::open(&path).ok(),
                |handle, chunk| {
                    let Some(odb) = handle.as_ref().and_then(|r| r.odb().ok()) else {
                        return Vec::new();
                    };
                    chunk
                        .iter()
                        .filter_map(|oid| {
                            let object = odb.read(*oid).ok()?;
                            if object.kind() != ObjectType::Blob {
                                return None;
                            }
                            let mut ids = blob_digests(object.data(), false);
                            ids.sha1.copy_from_slice(oid.as_bytes());
                            Some((*oid, ids))
                        })
                        .collect::<Vec<_>>()
                },
            )
            .flatten()
            .collect();
        self.blobs.extend(hashed);
    }

    /// Number of objects remembered (for metrics).
    pub fn len(&self) -> usize {
        self.trees.len() + self.blobs.len()
    }

    /// Whether nothing is cached yet (clippy's companion to [`Self::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Recomputes ids with memoization: identical subtrees and blobs (common in
/// real repositories) are hashed once.
struct Walker<'r, 'c> {
    repo: &'r Repository,
    odb: git2::Odb<'r>,
    cache: &'c mut TreeIdCache,
}

impl Walker<'_, '_> {
    fn tree(&mut self, oid: Oid, path: &Path) -> Result<Digests, TreeError> {
        if let Some(d) = self.cache.trees.get(&oid) {
            return Ok(*d);
        }
        let tree = self
            .repo
            .find_tree(oid)
            .map_err(|source| match source.code() {
                git2::ErrorCode::NotFound => {
                    TreeError::git(format!("{}: tree {oid} not found", display(path)), source)
                }
                _ => TreeError::UnexpectedObject {
                    path: path.to_path_buf(),
                    oid,
                    expected: "tree",
                },
            })?;
        let mut entries: Vec<Entry> = Vec::with_capacity(tree.len());
        for item in tree.iter() {
            let name = item.name_bytes().to_vec();
            let child_path = path.join(os(&name));
            let child = item.id();
            let kind = match item.filemode_raw() {
                0o100644 => Kind::File,
                0o100755 => Kind::Executable,
                0o120000 => Kind::Symlink,
                0o040000 => Kind::Tree,
                0o160000 => {
                    return Err(TreeError::Gitlink {
                        path: child_path,
                        commit: child,
                    })
                }
                other => {
                    return Err(TreeError::NonCanonicalTree {
                        path: display_buf(path),
                        oid,
                        reason: format!(
                            "entry {:?} has mode {other:o}",
                            String::from_utf8_lossy(&name)
                        ),
                    })
                }
            };
            if let Some(prev) = entries.last() {
                if entry_order(
                    &prev.name,
                    prev.kind == Kind::Tree,
                    &name,
                    kind == Kind::Tree,
                ) != std::cmp::Ordering::Less
                    || prev.name == name
                {
                    return Err(TreeError::NonCanonicalTree {
                        path: display_buf(path),
                        oid,
                        reason: format!(
                            "entries {:?} and {:?} are out of order or duplicated",
                            String::from_utf8_lossy(&prev.name),
                            String::from_utf8_lossy(&name)
                        ),
                    });
                }
            }
            let ids = match kind {
                Kind::Tree => {
                    let ids = self.tree(child, &child_path)?;
                    if ids.sha1 == EMPTY_SHA1_RAW {
                        return Err(TreeError::EmptySubtree {
                            path: child_path,
                            oid: child,
                        });
                    }
                    ids
                }
                _ => self.blob(child, &child_path)?,
            };
            entries.push(Entry { name, kind, ids });
        }
        let ids = tree_digests(&entries, true);
        if ids.sha1 != oid.as_bytes() {
            return Err(TreeError::NonCanonicalTree {
                path: display_buf(path),
                oid,
                reason: format!("its entries rebuild to {}", hex::encode(ids.sha1)),
            });
        }
        self.cache.trees.insert(oid, ids);
        Ok(ids)
    }

    fn blob(&mut self, oid: Oid, path: &Path) -> Result<Digests, TreeError> {
        if let Some(d) = self.cache.blobs.get(&oid) {
            return Ok(*d);
        }
        let object = self
            .odb
            .read(oid)
            .map_err(|e| TreeError::git(format!("{}: read blob {oid}", display(path)), e))?;
        if object.kind() != ObjectType::Blob {
            return Err(TreeError::UnexpectedObject {
                path: path.to_path_buf(),
                oid,
                expected: "blob",
            });
        }
        let mut ids = blob_digests(object.data(), false);
        // The object database already vouches for the sha1 (it is the key).
        ids.sha1.copy_from_slice(oid.as_bytes());
        self.cache.blobs.insert(oid, ids);
        Ok(ids)
    }
}

/// Below this many new blobs, threads cost more than they save.
const PARALLEL_ABOVE_BLOBS: usize = 256;

const EMPTY_SHA1_RAW: [u8; 20] = [
    0x4b, 0x82, 0x5d, 0xc6, 0x42, 0xcb, 0x6e, 0xb9, 0xa0, 0x60, 0xe5, 0x4b, 0xf8, 0xd6, 0x92, 0x88,
    0xfb, 0xee, 0x49, 0x04,
];

fn os(name: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(name)
}

fn display_buf(path: &Path) -> PathBuf {
    if path.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        path.to_path_buf()
    }
}

fn display(path: &Path) -> String {
    display_buf(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sha1_constant_is_the_empty_tree() {
        assert_eq!(hex::encode(EMPTY_SHA1_RAW), crate::EMPTY_TREE_SHA1);
    }
}
