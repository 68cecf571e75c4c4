//! Writing a tree from the object database to disk, for deployment.
//!
//! Security argument: the node reads files of the deployed tree (job
//! manifests) and mounts it into sandboxes, so nothing in the tree may make
//! a path inside it refer to something outside it. Therefore:
//! - entry names are checked: no `.`, `..`, `/`, NUL, empty, or `.git`
//!   in any spelling a filesystem could take for it (`.GIT`, `git~1`),
//!   duplicates refused, so every written path is a plain
//!   descendant of `dest`;
//! - every symlink target is resolved *inside the tree* before anything is
//!   written, following the tree's own symlinks (a chain like `s -> ..`
//!   then `t -> s/..` is caught, which a lexical check misses); an absolute
//!   target or one that climbs above the root is refused
//!   ([`TreeError::SymlinkEscapes`]), as is a loop ([`TreeError::SymlinkLoop`]);
//! - symlinks are created last, so no write ever traverses a symlink, and
//!   files are created with `O_EXCL` (never following or reusing a path);
//! - gitlinks are refused: their content is not in this tree.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};
use rayon::prelude::*;

use crate::TreeError;

/// How far a chain of symlinks is followed before it counts as a loop
/// (Linux's own limit).
const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Debug)]
enum Node {
    Dir,
    File { oid: Oid, executable: bool },
    Symlink { target: Vec<u8> },
}

/// Writes the files of tree `tree` under `dest` (created if missing; must be
/// empty if present): regular files with mode 0644 or 0755, symlinks with
/// their targets, and directories. Refuses the whole tree, before writing
/// anything, if a symlink would lead outside it or an entry name is unsafe.
/// If writing fails midway (disk full), `dest` holds a partial tree, so
/// callers materialize into a fresh directory and move it into place only
/// after its sha256 tree id was recomputed and checked.
pub fn materialize(repo: &Repository, tree: Oid, dest: &Path) -> Result<(), TreeError> {
    let mut nodes: Vec<(Vec<Vec<u8>>, Node)> = Vec::new();
    collect(repo, tree, &mut Vec::new(), &mut nodes)?;
    let index: HashMap<&[Vec<u8>], &Node> = nodes.iter().map(|(p, n)| (p.as_slice(), n)).collect();
    for (path, node) in &nodes {
        if let Node::Symlink { target } = node {
            check_symlink(&index, path, target)?;
        }
    }

    prepare_dest(dest)?;
    // Directories first (parents precede children in `nodes`).
    for (path, node) in &nodes {
        if let Node::Dir = node {
            let on_disk = join(dest, path);
            fs::create_dir(&on_disk).map_err(|e| TreeError::io(&on_disk, e))?;
        }
    }
    // Files: blobs are read here (a Repository is not shared across
    // threads) in bounded batches, and each batch is written in parallel.
    let mut batch: Vec<(PathBuf, Vec<u8>, u32)> = Vec::new();
    let mut batch_bytes = 0usize;
    for (path, node) in &nodes {
        if let Node::File { oid, executable } = node {
            let on_disk = join(dest, path);
            let blob = repo.find_blob(*oid).map_err(|e| {
                TreeError::git(format!("{}: read blob {oid}", on_disk.display()), e)
            })?;
            batch_bytes += blob.content().len();
            batch.push((
                on_disk,
                blob.content().to_vec(),
                if *executable { 0o755 } else { 0o644 },
            ));
            if batch_bytes >= WRITE_BATCH_BYTES || batch.len() >= WRITE_BATCH_FILES {
                write_files(std::mem::take(&mut batch))?;
                batch_bytes = 0;
            }
        }
    }
    write_files(batch)?;
    for (path, node) in &nodes {
        if let Node::Symlink { target } = node {
            let on_disk = join(dest, path);
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &on_disk)
                .map_err(|e| TreeError::io(&on_disk, e))?;
        }
    }
    tracing::debug!(%tree, dest = %dest.display(), entries = nodes.len(), "materialized tree");
    Ok(())
}

/// Bounds on the memory a write batch holds.
const WRITE_BATCH_BYTES: usize = 64 << 20;
const WRITE_BATCH_FILES: usize = 4096;

fn write_files(batch: Vec<(PathBuf, Vec<u8>, u32)>) -> Result<(), TreeError> {
    batch.into_par_iter().try_for_each(|(path, content, mode)| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| TreeError::io(&path, e))?;
        file.write_all(&content)
            .map_err(|e| TreeError::io(&path, e))?;
        // The umask may have cleared bits that `mode` asked for.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| TreeError::io(&path, e))
    })
}

/// Removes write permission from everything under `dir` (files 0444/0555,
/// directories 0555), without following symlinks, so a deployed tree is not
/// changed by accident after its id was checked.
pub fn make_read_only(dir: &Path) -> Result<(), TreeError> {
    let meta = fs::symlink_metadata(dir).map_err(|e| TreeError::io(dir, e))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        for item in fs::read_dir(dir).map_err(|e| TreeError::io(dir, e))? {
            let item = item.map_err(|e| TreeError::io(dir, e))?;
            make_read_only(&item.path())?;
        }
    }
    let mode = meta.permissions().mode() & 0o555;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(|e| TreeError::io(dir, e))
}

fn prepare_dest(dest: &Path) -> Result<(), TreeError> {
    match fs::symlink_metadata(dest) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(TreeError::DestinationNotEmpty {
                    path: dest.to_path_buf(),
                });
            }
            let mut items = fs::read_dir(dest).map_err(|e| TreeError::io(dest, e))?;
            if items.next().is_some() {
                return Err(TreeError::DestinationNotEmpty {
                    path: dest.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(|e| TreeError::io(dest, e))
        }
        Err(e) => Err(TreeError::io(dest, e)),
    }
}

/// Lists every entry below `tree` (parents before children), checking names.
fn collect(
    repo: &Repository,
    tree: Oid,
    prefix: &mut Vec<Vec<u8>>,
    out: &mut Vec<(Vec<Vec<u8>>, Node)>,
) -> Result<(), TreeError> {
    let here = rel(prefix);
    let object = repo
        .find_tree(tree)
        .map_err(|e| TreeError::git(format!("{}: read tree {tree}", here.display()), e))?;
    let mut seen = std::collections::HashSet::new();
    for item in object.iter() {
        let name = item.name_bytes().to_vec();
        if !safe_name(&name) || !seen.insert(name.clone()) {
            return Err(TreeError::UnsafeName {
                path: here.clone(),
                name: String::from_utf8_lossy(&name).into_owned(),
                tree,
            });
        }
        prefix.push(name);
        let path = prefix.clone();
        match item.filemode_raw() {
            0o040000 => {
                out.push((path, Node::Dir));
                collect(repo, item.id(), prefix, out)?;
            }
            0o160000 => {
                return Err(TreeError::Gitlink {
                    path: rel(prefix),
                    commit: item.id(),
                })
            }
            0o120000 => {
                let blob = repo.find_blob(item.id()).map_err(|e| {
                    TreeError::git(format!("{}: read symlink blob", rel(prefix).display()), e)
                })?;
                out.push((
                    path,
                    Node::Symlink {
                        target: blob.content().to_vec(),
                    },
                ));
            }
            mode => {
                // Any other blob mode: git itself checks out 0755 when the
                // owner-execute bit is set, else 0644.
                out.push((
                    path,
                    Node::File {
                        oid: item.id(),
                        executable: mode & 0o100 != 0,
                    },
                ));
            }
        }
        prefix.pop();
    }
    Ok(())
}

fn safe_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
        && !crate::object::is_dotgit_alias(name)
}

/// Resolves a symlink's target within the tree, following the tree's own
/// symlinks, and refuses any that leaves it.
fn check_symlink(
    index: &HashMap<&[Vec<u8>], &Node>,
    link: &[Vec<u8>],
    target: &[u8],
) -> Result<(), TreeError> {
    let escapes = || TreeError::SymlinkEscapes {
        path: rel(link),
        target: String::from_utf8_lossy(target).into_owned(),
    };
    let looped = || TreeError::SymlinkLoop {
        path: rel(link),
        target: String::from_utf8_lossy(target).into_owned(),
    };
    let mut hops = 0;
    let parent = link[..link.len() - 1].to_vec();
    resolve(index, parent, target, &mut hops).map_err(|e| match e {
        Resolve::Escapes => escapes(),
        Resolve::Loop => looped(),
    })?;
    Ok(())
}

enum Resolve {
    Escapes,
    Loop,
}

/// Walks `target` from directory `at` (components from the root), like the
/// kernel would, and returns where it ends up; Err if it climbs above the
/// root or hops too often.
fn resolve(
    index: &HashMap<&[Vec<u8>], &Node>,
    mut at: Vec<Vec<u8>>,
    target: &[u8],
    hops: &mut usize,
) -> Result<Vec<Vec<u8>>, Resolve> {
    if target.first() == Some(&b'/') || target.is_empty() {
        return Err(Resolve::Escapes);
    }
    for comp in target.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if at.pop().is_none() {
                    return Err(Resolve::Escapes);
                }
            }
            name => {
                at.push(name.to_vec());
                if let Some(Node::Symlink { target: next }) = index.get(at.as_slice()) {
                    *hops += 1;
                    if *hops > MAX_SYMLINK_HOPS {
                        return Err(Resolve::Loop);
                    }
                    at.pop();
                    at = resolve(index, at, next, hops)?;
                }
            }
        }
    }
    Ok(at)
}

fn rel(components: &[Vec<u8>]) -> PathBuf {
    components
        .iter()
        .map(|c| std::ffi::OsStr::from_bytes(c))
        .collect()
}

fn join(dest: &Path, components: &[Vec<u8>]) -> PathBuf {
    dest.join(rel(components))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<Vec<u8>> {
        s.split('/')
            .filter(|c| !c.is_empty())
            .map(|c| c.as_bytes().to_vec())
            .collect()
    }

    fn check(links: &[(&str, &str)], dirs: &[&str]) -> Vec<Result<(), TreeError>> {
        let mut nodes: Vec<(Vec<Vec<u8>>, Node)> = dirs.iter().map(|d| (p(d), Node::Dir)).collect();
        for (l, t) in links {
            nodes.push((
                p(l),
                Node::Symlink {
                    target: t.as_bytes().to_vec(),
                },
            ));
        }
        let index: HashMap<&[Vec<u8>], &Node> =
            nodes.iter().map(|(p, n)| (p.as_slice(), n)).collect();
        links
            .iter()
            .map(|(l, t)| check_symlink(&index, &p(l), t.as_bytes()))
            .collect()
    }

    #[test]
    fn contained_targets_pass() {
        for r in check(
            &[
                ("a", "b"),
                ("sub/x", "../a"),
                ("sub/y", "./x"),
                ("sub/z", "deeper/../x"),
            ],
            &["sub"],
        ) {
            r.unwrap();
        }
    }

    #[test]
    fn absolute_and_climbing_targets_are_refused() {
        for (link, target) in [
            ("a", "/etc/passwd"),
            ("a", ".."),
            ("sub/a", "../../x"),
            ("a", "sub/../../x"),
            ("a", ""),
        ] {
            let r = check(&[(link, target)], &["sub"]);
            assert!(
                matches!(r[0], Err(TreeError::SymlinkEscapes { .. })),
                "{link} -> {target}: {:?}",
                r[0]
            );
        }
    }

    #[test]
    fn escape_through_another_symlink_is_refused() {
        // sub/s -> .. is the root (fine); sub/t -> s/.. is lexically sub, but
        // really the root's parent.
        let r = check(&[("sub/s", ".."), ("sub/t", "s/..")], &["sub"]);
        r[0].as_ref().unwrap();
        assert!(
            matches!(r[1], Err(TreeError::SymlinkEscapes { .. })),
            "{:?}",
            r[1]
        );
    }

    #[test]
    fn loops_are_refused() {
        let r = check(&[("a", "b"), ("b", "a")], &[]);
        assert!(
            matches!(r[0], Err(TreeError::SymlinkLoop { .. })),
            "{:?}",
            r[0]
        );
    }

    #[test]
    fn unsafe_names() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0", b".git", b".GIT"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert!(safe_name(b".gitignore"));
        assert!(safe_name("ünï".as_bytes()));
    }
}
