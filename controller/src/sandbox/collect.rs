//! Collecting a job's outputs without trusting anything the job left.
//!
//! Security argument. `/out` is a tmpfs inside the sandbox (bubblewrap
//! mounts it `nosuid,nodev`, with a size); the node holds a directory
//! descriptor on it, opened through `/proc/<pid>/root` before any job code
//! ran, which keeps that filesystem alive after the sandbox is gone. Only
//! after the job's cgroup is empty (no process of the job exists, see
//! `cgroup`) does collection start, and then:
//! - only the names the manifest declares are looked at
//!   ([`collective_policy::outputs`]), at most `MAX_COLLECTED` of them;
//!   every other entry is counted, never named;
//! - each component is opened with `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` and
//!   `O_NOFOLLOW`, relative to the held descriptor: no path is ever
//!   resolved from the host's root, and no link is followed;
//! - the file type and size are checked with `fstat` on the opened handle,
//!   and the contents are later read from that same handle: nothing is
//!   read through a path the job could have changed.
//!
//! Not covered: the contents of declared outputs (job data, encrypted to
//! the approval's recipients) and their sizes (public in the log).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};

use collective_policy::outputs::{is_safe_name, MAX_COLLECTED};
use collective_policy::OutputPattern;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

/// Directory entries read per directory before giving up on the rest
/// (counted as one more dropped): bounds the time a hostile `/out` can cost.
pub const MAX_SCAN: usize = 100_000;

/// One collected output: its declared-safe name and the open handle its
/// contents are read from.
#[derive(Debug)]
pub struct Collected {
    /// `/`-separated name relative to `/out`, from the safe set.
    pub name: String,
    /// The regular file, opened without following links.
    pub file: std::fs::File,
    /// Its size, from `fstat` on `file`.
    pub size: u64,
}

/// What collection found.
#[derive(Debug, Default)]
pub struct Collection {
    /// Declared regular files, sorted by name.
    pub files: Vec<Collected>,
    /// Entries not collected: undeclared, unsafe names, not regular files,
    /// over the count limit. Counted, never named.
    pub dropped: usize,
    /// Declared names that were present but not regular files.
    pub not_regular: usize,
    /// Total bytes of `files`.
    pub total: u64,
}

fn resolve() -> ResolveFlags {
    ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV
}

/// Opens `name` (one component) under `dir` without following anything.
fn open_beneath(dir: impl AsFd, name: &str, directory: bool) -> rustix::io::Result<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    flags |= if directory {
        OFlags::DIRECTORY
    } else {
        OFlags::NONBLOCK // a fifo must not block the node
    };
    rustix::fs::openat2(dir, name, flags, Mode::empty(), resolve())
}

/// Names in `dir`, at most [`MAX_SCAN`]; the count of entries beyond.
fn list(dir: &OwnedFd) -> (Vec<Vec<u8>>, usize) {
    let Ok(mut d) = rustix::fs::Dir::read_from(dir) else {
        return (vec![], 0);
    };
    let mut names = Vec::new();
    let mut beyond = 0;
    while let Some(Ok(e)) = d.read() {
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        if names.len() < MAX_SCAN {
            names.push(n.to_vec());
        } else {
            // Reading on would cost time the job chose; the rest count as one.
            beyond += 1;
            break;
        }
    }
    (names, beyond)
}

/// Collects the declared outputs under `out` (the held `/out` directory).
/// Call only once every process of the job is gone.
pub fn collect(out: &OwnedFd, patterns: &[OutputPattern]) -> Collection {
    let mut c = Collection::default();
    // Group patterns by directory; every directory is opened component
    // by component, beneath `out`.
    let mut by_dir: BTreeMap<Vec<&str>, Vec<&OutputPattern>> = BTreeMap::new();
    for p in patterns {
        by_dir.entry(p.dir()).or_default().push(p);
    }
    // The top level is always listed, so that whatever the job left there
    // is counted.
    by_dir.entry(Vec::new()).or_default();
    let mut found: BTreeMap<String, (std::fs::File, u64)> = BTreeMap::new();
    for (dir, pats) in &by_dir {
        // Close-on-exec: a bwrap spawned meanwhile must not inherit it.
        let mut fd = match rustix::io::fcntl_dupfd_cloexec(out, 0) {
            Ok(fd) => fd,
            Err(_) => continue,
        };
        let mut ok = true;
        for comp in dir {
            match open_beneath(&fd, comp, true) {
                Ok(next) => fd = next,
                Err(e) => {
                    // Present but not a plain directory (a link, a file).
                    if e != rustix::io::Errno::NOENT {
                        c.dropped += 1;
                    }
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let (names, beyond) = list(&fd);
        c.dropped += beyond;
        // Subdirectories of declared patterns are visited on their own.
        let children: Vec<&str> = by_dir
            .keys()
            .filter(|k| k.len() > dir.len() && k.starts_with(dir))
            .map(|k| k[dir.len()])
            .collect();
        for n in names {
            let Some(pat) = pats.iter().find(|p| p.matches_file(&n)) else {
                let child = children.iter().any(|c| c.as_bytes() == n.as_slice());
                if !child {
                    c.dropped += 1;
                }
                continue;
            };
            let file = String::from_utf8(n).expect("safe names are ASCII");
            let mut full = dir.join("/");
            if !full.is_empty() {
                full.push('/');
            }
            full.push_str(&file);
            debug_assert!(is_safe_name(full.as_bytes()) && pat.matches_file(file.as_bytes()));
            let Ok(h) = open_beneath(&fd, &file, false) else {
                c.not_regular += 1;
                continue;
            };
            let Ok(st) = rustix::fs::fstat(&h) else {
                c.not_regular += 1;
                continue;
            };
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                c.not_regular += 1;
                continue;
            }
            if found.len() >= MAX_COLLECTED {
                c.dropped += 1;
                continue;
            }
            found.insert(full, (std::fs::File::from(h), st.st_size as u64));
        }
    }
    for (name, (file, size)) in found {
        c.total = c.total.saturating_add(size);
        c.files.push(Collected { name, file, size });
    }
    c.dropped += c.not_regular;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(xs: &[&str]) -> Vec<OutputPattern> {
        xs.iter()
            .map(|x| OutputPattern::parse(x).unwrap())
            .collect()
    }

    fn open_dir(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn only_declared_regular_files_are_collected() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("model.json"), b"{}").unwrap();
        std::fs::write(p.join("secret-row-42"), b"x").unwrap();
        std::fs::write(p.join("shard-1.bin"), b"12").unwrap();
        std::fs::write(p.join("shard-2.bin"), b"123").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("shard-3.bin")).unwrap();
        std::fs::create_dir(p.join("m")).unwrap();
        std::fs::write(p.join("m/x.json"), b"1").unwrap();
        std::os::unix::fs::symlink("/etc", p.join("etc")).unwrap();
        let c = collect(
            &open_dir(p),
            &pats(&["model.json", "shard-*.bin", "m/x.json", "etc/passwd"]),
        );
        let names: Vec<_> = c.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["m/x.json", "model.json", "shard-1.bin", "shard-2.bin"]
        );
        assert_eq!(c.total, 1 + 2 + 2 + 3);
        assert_eq!(c.not_regular, 1, "the symlink shard-3.bin");
        // secret-row-42, etc (a link where a directory is declared),
        // shard-3; `m` holds a declared output and is not counted.
        assert_eq!(c.dropped, 3);
    }

    #[test]
    fn count_is_bounded() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..(MAX_COLLECTED + 10) {
            std::fs::write(d.path().join(format!("f{i}")), b"").unwrap();
        }
        let c = collect(&open_dir(d.path()), &pats(&["f*"]));
        assert_eq!(c.files.len(), MAX_COLLECTED);
        assert_eq!(c.dropped, 10);
    }

    #[test]
    fn undeclared_only_is_counted() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a\nb"), b"").unwrap();
        std::fs::write(
            d.path()
                .join(b"\xff".iter().map(|&b| b as char).collect::<String>()),
            b"",
        )
        .unwrap();
        let c = collect(&open_dir(d.path()), &[]);
        assert!(c.files.is_empty());
        assert_eq!(c.dropped, 2);
    }
}
