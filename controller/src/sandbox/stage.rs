//! Copying the tree and the plaintext into the sandbox's own tmpfs.
//!
//! `/job` and `/data` are sized tmpfs mounts inside the sandbox that
//! bubblewrap fills during its setup (`--dir`, `--symlink`, `--file FD`,
//! from descriptors the node opened) and then remounts read-only, before
//! any job code runs. A bind mount would show its host path in the job's
//! `/proc/self/mountinfo` and tie the job to a host directory; the copy
//! shows only `tmpfs`, in both modes, is read-only in both modes (the
//! mount flag, not file ownership, so it holds in a user namespace where
//! the job's uid owns the files) and ends with the sandbox.
//!
//! Host files are opened with `O_NOFOLLOW` from a walk that does not
//! follow links; links in the tree are created as links (they resolve
//! inside the sandbox, against its root). Names must be UTF-8 (bubblewrap's
//! argument list is text here) and at most [`MAX_STAGED`] entries are
//! staged: a tree or dataset over that is refused, not truncated.
//!
//! Not covered: the job reads all of its tree and data (that is the point).

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::SandboxError;

/// Page granularity of tmpfs accounting.
const PAGE: u64 = 4096;

/// Most entries (files, directories, links) staged into one sandbox: each
/// file costs a descriptor while bubblewrap starts.
pub const MAX_STAGED: usize = 8192;

/// What bubblewrap needs to build `/job` and `/data`.
#[derive(Debug, Default)]
pub struct Staging {
    /// NUL-separated bubblewrap arguments (passed with `--args`); file
    /// descriptors are numbered from the `first_fd` given to [`plan`].
    pub args: Vec<u8>,
    /// The open host files, in descriptor order.
    pub fds: Vec<OwnedFd>,
    /// Size for the `/job` tmpfs.
    pub job_bytes: u64,
    /// Size for the `/data` tmpfs.
    pub data_bytes: u64,
}

fn host(what: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |source| SandboxError::Setup { what, source }
}

fn push(args: &mut Vec<u8>, xs: &[&str]) {
    for x in xs {
        args.extend_from_slice(x.as_bytes());
        args.push(0);
    }
}

/// Plans the copy of `tree` to `/job` and of `data` (if any) to `/data`;
/// descriptors are numbered from `first_fd`. Blocking.
pub fn plan(tree: &Path, data: Option<&Path>, first_fd: i32) -> Result<Staging, SandboxError> {
    let mut st = Staging::default();
    st.job_bytes = add(&mut st, tree, "/job", first_fd)?;
    st.data_bytes = match data {
        Some(d) => add(&mut st, d, "/data", first_fd)?,
        None => 1 << 20,
    };
    Ok(st)
}

/// Adds `src` under `mount`; returns the tmpfs size it needs (each file
/// rounded up to pages, a page per entry, 1 MiB slack).
fn add(st: &mut Staging, src: &Path, mount: &str, first_fd: i32) -> Result<u64, SandboxError> {
    let mut bytes: u64 = 1 << 20;
    let walk = walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1);
    let mut entries = 0usize;
    for entry in walk {
        let entry = entry.map_err(|e| SandboxError::Setup {
            what: "reading the tree or data to stage",
            source: e.into(),
        })?;
        entries += 1;
        if st.fds.len() + entries > MAX_STAGED {
            return Err(SandboxError::TooManyFiles { limit: MAX_STAGED });
        }
        let rel = entry.path().strip_prefix(src).expect("beneath src");
        let Some(rel) = rel.to_str() else {
            return Err(SandboxError::NotUtf8 {
                path: entry.path().to_path_buf(),
            });
        };
        let dest = format!("{mount}/{rel}");
        let ft = entry.file_type();
        bytes += PAGE;
        if ft.is_dir() {
            push(&mut st.args, &["--perms", "0755", "--dir", &dest]);
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(entry.path()).map_err(host("reading a link to stage"))?;
            let Some(target) = target.to_str() else {
                return Err(SandboxError::NotUtf8 {
                    path: entry.path().to_path_buf(),
                });
            };
            push(&mut st.args, &["--symlink", target, &dest]);
        } else if ft.is_file() {
            let fd = rustix::fs::open(
                entry.path(),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| SandboxError::Setup {
                what: "opening a file to stage",
                source: e.into(),
            })?;
            let meta = rustix::fs::fstat(&fd).map_err(|e| SandboxError::Setup {
                what: "reading a staged file's size",
                source: e.into(),
            })?;
            bytes += (meta.st_size as u64).div_ceil(PAGE) * PAGE;
            let perms = if meta.st_mode & 0o111 != 0 {
                "0555"
            } else {
                "0444"
            };
            let n = (first_fd + st.fds.len() as i32).to_string();
            push(&mut st.args, &["--perms", perms, "--file", &n, &dest]);
            st.fds.push(fd);
        }
        // Anything else (fifos, sockets, devices) is not part of a tree.
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(st: &Staging) -> Vec<String> {
        st.args
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn plans_files_dirs_and_links_without_following() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("d")).unwrap();
        std::fs::write(src.path().join("d/a.txt"), b"hello").unwrap();
        std::fs::write(src.path().join("run.sh"), b"#!/bin/sh").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            src.path().join("run.sh"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/shadow", src.path().join("l")).unwrap();
        let st = plan(src.path(), None, 20).unwrap();
        let a = args(&st).join(" ");
        assert_eq!(
            a,
            "--perms 0755 --dir /job/d --perms 0444 --file 20 /job/d/a.txt \
             --symlink /etc/shadow /job/l --perms 0555 --file 21 /job/run.sh"
        );
        assert_eq!(st.fds.len(), 2);
        assert_eq!(st.job_bytes, (1 << 20) + 4 * PAGE + 2 * PAGE);
        assert_eq!(st.data_bytes, 1 << 20);
    }

    #[test]
    fn refuses_too_many_entries_and_non_utf8_names() {
        let src = tempfile::tempdir().unwrap();
        for i in 0..=MAX_STAGED {
            std::fs::create_dir(src.path().join(format!("d{i}"))).unwrap();
        }
        assert!(matches!(
            plan(src.path(), None, 3),
            Err(SandboxError::TooManyFiles { .. })
        ));
        let src = tempfile::tempdir().unwrap();
        use std::os::unix::ffi::OsStrExt;
        std::fs::write(src.path().join(std::ffi::OsStr::from_bytes(b"\xff")), b"").unwrap();
        assert!(matches!(
            plan(src.path(), None, 3),
            Err(SandboxError::NotUtf8 { .. })
        ));
    }
}
