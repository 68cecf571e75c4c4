//! File descriptors a job could inherit.
//!
//! bubblewrap passes every descriptor it receives on to the job, and the
//! node may hold descriptors it did not open itself (a supervisor's log
//! file, a pipe, a socket inherited at exec): any such descriptor reaching
//! a job is a channel out of the sandbox. Rust opens its own descriptors
//! close-on-exec, so the node marks every inherited descriptor above 2
//! close-on-exec too: at start and again right before each spawn, under
//! one lock, so no descriptor but 0-2 and the ones bubblewrap is
//! explicitly handed (which it consumes and closes before the job runs)
//! survives the exec.

use std::sync::Mutex;

/// Held while a sandbox is spawned, so that two spawns cannot inherit each
/// other's explicitly passed descriptors.
pub static SPAWN_LOCK: Mutex<()> = Mutex::new(());

/// Marks every open descriptor above 2 close-on-exec; returns how many
/// were not already. Descriptors closed meanwhile are skipped.
pub fn cloexec_all() -> usize {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    let mut changed = 0;
    for fd in fds {
        let Ok(flags) = fcntl(fd, FcntlArg::F_GETFD) else {
            continue;
        };
        let flags = FdFlag::from_bits_truncate(flags);
        if !flags.contains(FdFlag::FD_CLOEXEC)
            && fcntl(fd, FcntlArg::F_SETFD(flags | FdFlag::FD_CLOEXEC)).is_ok()
        {
            changed += 1;
        }
    }
    changed
}

/// An in-memory file holding `bytes`, positioned at the start:
/// how the node hands bubblewrap its seccomp programs and arguments.
pub fn memfd(
    name: &std::ffi::CStr,
    bytes: &[u8],
) -> Result<std::os::fd::OwnedFd, super::SandboxError> {
    use std::io::{Seek, Write};
    let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
        .map_err(|e| super::SandboxError::Setup {
            what: "creating an in-memory file for bubblewrap",
            source: e.into(),
        })?;
    let mut f = std::fs::File::from(fd);
    let io = |source| super::SandboxError::Setup {
        what: "writing an in-memory file for bubblewrap",
        source,
    };
    f.write_all(bytes).map_err(io)?;
    f.rewind().map_err(io)?;
    Ok(f.into())
}

/// Raises the soft descriptor limit to the hard one: each staged file is a
/// descriptor while bubblewrap starts (at most `stage::MAX_STAGED`).
pub fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use std::os::fd::AsRawFd;

    #[test]
    fn inherited_descriptors_become_cloexec() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        let fd = r.as_raw_fd();
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
        assert!(cloexec_all() >= 1);
        let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD).unwrap());
        assert!(flags.contains(FdFlag::FD_CLOEXEC));
    }
}
