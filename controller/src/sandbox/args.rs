//! The bubblewrap command line: what the job's world consists of.

use std::path::Path;

use super::{Mode, SandboxSpec};

/// Descriptor numbers in bubblewrap's view (mapped by `command-fds`).
pub const INFO_FD: i32 = 3;
/// bubblewrap blocks on this before running the job, so the node can
/// place it in its cgroup and hold `/out` before any job code runs.
pub const BLOCK_FD: i32 = 4;
/// The staging arguments (`--args`, NUL-separated; see `stage`).
pub const STAGE_ARGS_FD: i32 = 5;
/// First seccomp program; the others follow.
pub const SECCOMP_FD: i32 = 6;
/// First staged file; the others follow.
pub const STAGE_FD: i32 = 16;

/// `/dev/shm` size: shared memory is memory, so it is small and, like
/// every tmpfs here, charged to the job's cgroup.
pub fn shm_bytes(spec: &SandboxSpec) -> u64 {
    (spec.limits.memory_bytes / 4).clamp(1 << 20, 64 << 20)
}

/// Sizes of the `/job` and `/data` tmpfs mounts the node fills before the
/// job starts (see `stage`).
#[derive(Debug, Clone, Copy)]
pub struct Staged {
    /// `/job`, in bytes.
    pub job: u64,
    /// `/data`, in bytes.
    pub data: u64,
}

/// The bwrap argv (without the binary itself), for `seccomp_programs`
/// programs passed from [`SECCOMP_FD`] on.
pub fn bwrap_args(spec: &SandboxSpec, staged: Staged, seccomp_programs: usize) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&[
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]);
    if spec.mode == Mode::Unprivileged {
        // A user namespace maps the job to uid 65534; bwrap then forbids
        // any further one (`--disable-userns`), the seccomp filter too.
        push(&[
            "--unshare-user",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--disable-userns",
            "--cap-drop",
            "ALL",
        ]);
    }
    // In root mode the capabilities are needed by setpriv to change uid;
    // setpriv then clears every capability set before exec.
    push(&["--die-with-parent", "--new-session", "--clearenv"]);
    push(&["--info-fd", &INFO_FD.to_string()]);
    push(&["--block-fd", &BLOCK_FD.to_string()]);
    for i in 0..seccomp_programs {
        push(&["--add-seccomp-fd", &(SECCOMP_FD + i as i32).to_string()]);
    }
    push(&["--ro-bind", "/usr", "/usr"]);
    for top in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
        let host = Path::new("/").join(top);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(&host) {
                    let t = target.to_string_lossy().to_string();
                    push(&["--symlink", &t, &format!("/{top}")]);
                }
            }
            Ok(m) if m.is_dir() => {
                let p = host.to_string_lossy().to_string();
                push(&["--ro-bind", &p, &p]);
            }
            _ => {}
        }
    }
    for f in ["/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime"] {
        push(&["--ro-bind-try", f, f]);
    }
    let l = &spec.limits;
    let tmp = l.output_bytes.max(1 << 20).to_string();
    let out = l.output_bytes.max(4096).to_string();
    let shm = shm_bytes(spec).to_string();
    // Every writable place is a sized tmpfs (nosuid, nodev: bwrap mounts
    // tmpfs so) whose pages the job's memory cgroup is charged for.
    push(&["--proc", "/proc", "--dev", "/dev"]);
    push(&["--perms", "1777", "--size", &shm, "--tmpfs", "/dev/shm"]);
    push(&["--perms", "1777", "--size", &tmp, "--tmpfs", "/tmp"]);
    push(&["--perms", "1777", "--size", &out, "--tmpfs", "/out"]);
    // The tree and the plaintext are copied in by the node (no host path
    // in the job's mountinfo); see `stage`.
    let job = staged.job.to_string();
    let data = staged.data.to_string();
    push(&["--size", &job, "--tmpfs", "/job"]);
    push(&["--size", &data, "--tmpfs", "/data"]);
    push(&["--args", &STAGE_ARGS_FD.to_string()]);
    push(&["--remount-ro", "/job", "--remount-ro", "/data"]);
    // Nothing else is writable: not the root, not /dev (only /dev/shm).
    push(&["--remount-ro", "/dev", "--remount-ro", "/"]);
    push(&[
        "--chdir",
        "/job",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--",
    ]);
    a.push("/usr/bin/prlimit".into());
    a.push(format!("--cpu={}", l.cpu_seconds));
    a.push(format!("--as={}", l.memory_bytes));
    // No RLIMIT_NPROC: it counts every process of the uid (the node's own
    // threads, other jobs in unprivileged mode); the pids cgroup bounds
    // this job alone.
    a.push(format!("--fsize={}", l.output_bytes));
    a.push("--core=0".into());
    a.push("--".into());
    if spec.mode == Mode::Root {
        // No user namespace: drop to a real per-job uid.
        a.push("/usr/bin/setpriv".into());
        a.push(format!("--reuid={}", spec.uid));
        a.push(format!("--regid={}", spec.uid));
        for s in [
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ] {
            a.push(s.into());
        }
    }
    a.extend(spec.command.iter().cloned());
    a
}
