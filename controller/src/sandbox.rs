//! The job sandbox, over bubblewrap.
//!
//! Security argument. A job is code the DAO approved, but approval is not
//! proof of benign behaviour: the sandbox exists to keep the node's keys
//! and the plaintext away from the very jobs it runs. Each channel out of
//! the sandbox, and what closes it:
//! - **Network**: a new network namespace with only loopback, nothing
//!   listening; no reach to the host's loopback services.
//! - **The node's files** (keys, log, repository, other runs): a new mount
//!   namespace whose root is an empty, read-only tmpfs holding `/usr` (and
//!   the `/bin`, `/lib*` links) read-only, a copy of the tree at `/job`
//!   and of the job's plaintext at `/data` (sized tmpfs mounts bubblewrap
//!   fills and remounts read-only before the job starts, [`stage`]), and
//!   sized tmpfs mounts at `/out`, `/tmp` and `/dev/shm`. Nothing else of
//!   the host is mounted, and no host path of the node's appears in the
//!   job's `/proc/self/mountinfo`, in either mode.
//! - **Other processes**: new pid/ipc/uts/cgroup namespaces; a seccomp
//!   filter ([`seccomp`]) denies ptrace, `process_vm_*`, new namespaces,
//!   mounts, keyrings, bpf, perf, userfaultfd, io_uring, kexec, modules,
//!   terminal injection, and sockets other than unix, inet, inet6 and
//!   netlink (vsock reaches the host whatever the network namespace);
//!   `--new-session`; `--die-with-parent`.
//! - **Privilege**: an unprivileged uid (root mode: one uid per running
//!   job, so per-uid limits of one job never touch another; unprivileged
//!   mode: uid 65534 in a user namespace, with `--disable-userns`), no
//!   capabilities, `no_new_privs`; every writable mount is `nosuid,nodev`.
//! - **Inherited descriptors**: every descriptor the node holds above 2 is
//!   close-on-exec ([`fds`]); bubblewrap consumes the few it is handed.
//!   stdout and stderr are pipes the node reads with a cap.
//! - **Resources**: a cgroup per job ([`cgroup`]) bounds total memory,
//!   *including every tmpfs page the job writes*, and the process count;
//!   rlimits bound CPU seconds, per-process address space and file size;
//!   the wall clock is enforced by killing the cgroup. `/out`, `/tmp` and
//!   `/dev/shm` are bounded in bytes while the job runs (tmpfs `size=`),
//!   and their inodes are kernel memory charged to the same cgroup. No
//!   `RLIMIT_NPROC`: it counts every process of a uid across the host.
//! - **Outputs** ([`collect`]): `/out` is held open by the node from
//!   before the job starts; outputs are read only after the job's cgroup
//!   is empty (every process gone), only under names the manifest
//!   declares, opened beneath the held directory without following any
//!   link, checked as regular files on the open handle and read from it.
//!   No job-chosen string reaches the log, the API or a reason.
//!
//! Where the host lacks a feature a guarantee needs (bubblewrap options,
//! a cgroup the node can create job cgroups in, tmpfs sizes in a user
//! namespace), [`check_host`] fails and the node refuses to start,
//! naming the feature and how to provide it.
//!
//! Not covered: kernel vulnerabilities reachable through allowed syscalls
//! (gVisor is the stronger runtime for that), covert timing channels
//! between jobs, the sizes and timing of outputs (public by design), the
//! read-only system paths (`/usr` and its links, `/etc/ld.so.cache`,
//! `/etc/alternatives`, `/etc/localtime`) shown in mountinfo, `AF_UNIX`
//! and `AF_NETLINK` sockets inside the job's own namespaces, and
//! in unprivileged mode the plaintext staged on the host disk for the
//! copy (in a 0700 directory of the node's user; as root it is a private
//! tmpfs).

pub mod args;
pub mod cgroup;
pub mod collect;
pub mod fds;
mod run;
pub mod seccomp;
pub mod stage;

use std::path::PathBuf;
use std::time::Duration;

use collective_policy::OutputPattern;
use serde::Serialize;

pub use cgroup::Cgroups;
pub use collect::{Collected, Collection};
pub use run::{check_host, run, RunDir};

/// The unprivileged identity jobs run as by default (`nobody`).
pub const JOB_UID: u32 = 65534;

/// First uid of the per-job range the node uses when root: each running job
/// gets its own uid, so nothing counted per uid (files it owns, signals it
/// may send) is shared between jobs; the process count is the pids cgroup's.
pub const JOB_UID_BASE: u32 = 200_000;

/// Bytes of stdout, and of stderr, kept from one run; the rest is read and
/// dropped (and counted), so a chatty job can neither fill memory nor block.
pub const MAX_STREAM_BYTES: usize = 1 << 20;

/// How long the processes of a job have to disappear after the kill.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// Why the sandbox could not run a job, or the node cannot run jobs at all.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The host lacks something a sandbox guarantee needs.
    #[error("this host cannot run jobs safely: missing {feature}; to fix: {how}")]
    FeatureMissing {
        /// The missing feature.
        feature: &'static str,
        /// How to provide it.
        how: &'static str,
    },
    /// A cgroup file could not be read or written.
    #[error("cgroup {}: {source}", path.display())]
    Cgroup {
        /// The cgroup file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A step of starting the sandbox failed.
    #[error("{what}: {source}")]
    Setup {
        /// The step.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// bubblewrap failed before running the job.
    #[error("bubblewrap failed to set up the sandbox: {stderr}")]
    Bwrap {
        /// bwrap's own error output (no job code ran).
        stderr: String,
    },
    /// The seccomp filter could not be built.
    #[error("building the seccomp filter: {0}")]
    Seccomp(#[source] seccompiler::BackendError),
    /// Processes of the job were still alive after the kill deadline, so
    /// its outputs were not read (fail closed).
    #[error("{count} process(es) of the job still alive {waited:?} after the kill; outputs not collected")]
    ProcessesRemain {
        /// How many.
        count: usize,
        /// How long the node waited.
        waited: Duration,
    },
    /// The job's command is empty.
    #[error("the job has no command")]
    EmptyCommand,
    /// The tree and data hold more entries than the sandbox stages.
    #[error("the tree and data hold more than {limit} files, directories and links; the sandbox stages at most that many")]
    TooManyFiles {
        /// [`stage::MAX_STAGED`].
        limit: usize,
    },
    /// A tree or data path is not UTF-8.
    #[error("{path}: the name is not UTF-8; rename it (the sandbox stages UTF-8 names only)")]
    NotUtf8 {
        /// The host path.
        path: std::path::PathBuf,
    },
}

/// Whether the node runs jobs as root (per-job uids, private tmpfs for
/// inputs) or as an ordinary user (a user namespace per job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The node is root.
    Root,
    /// The node is an ordinary user.
    Unprivileged,
}

impl Mode {
    /// The mode of this process.
    pub fn current() -> Mode {
        if nix::unistd::geteuid().is_root() {
            Mode::Root
        } else {
            Mode::Unprivileged
        }
    }
}

/// Limits applied to one job (already clamped to the node's maxima).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SandboxLimits {
    /// CPU time per process (`RLIMIT_CPU`); the kernel sends SIGXCPU.
    pub cpu_seconds: u64,
    /// Total memory of the job's cgroup, tmpfs included; also each
    /// process's address space (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Wall clock for the whole run, enforced by killing the cgroup.
    pub wall_seconds: u64,
    /// Size of `/out` and of `/tmp` (tmpfs `size=`), and of each file
    /// (`RLIMIT_FSIZE`).
    pub output_bytes: u64,
    /// Processes of the job (cgroup `pids.max`).
    pub processes: u64,
}

/// How a sandboxed job ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum Termination {
    /// The job exited with a status code.
    Exited(i32),
    /// The job was killed by a signal (e.g. SIGXCPU, SIGKILL by the kernel).
    Signaled(i32),
    /// The wall clock limit passed; the sandbox was killed.
    WallTimeout,
    /// The controller stopped it (revocation, pause, expiry, shutdown).
    Cancelled,
}

impl Termination {
    /// An exit-status number for the log: the code, or 128+signal, or -1.
    pub fn exit_status(&self) -> i32 {
        match self {
            Termination::Exited(c) => *c,
            Termination::Signaled(s) => 128 + s,
            Termination::WallTimeout | Termination::Cancelled => -1,
        }
    }

    /// Whether the job exited 0; a signal (often a limit), timeout or
    /// cancellation is not success.
    pub fn success(&self) -> bool {
        matches!(self, Termination::Exited(0))
    }
}

/// The result of one sandboxed run.
#[derive(Debug)]
pub struct SandboxRun {
    /// How the job ended.
    pub termination: Termination,
    /// Wall-clock duration of the run.
    pub duration_ms: u64,
    /// The declared outputs, open, read only after every process is gone.
    pub outputs: Collection,
    /// Captured stdout (plaintext: treated as an output), capped.
    pub stdout: Vec<u8>,
    /// Captured stderr, capped.
    pub stderr: Vec<u8>,
    /// Bytes of stdout and stderr beyond the cap, dropped.
    pub stream_bytes_dropped: u64,
    /// Whether the job hit its memory limit.
    pub memory_limit_hit: bool,
}

/// What to run and with which filesystem.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// The tree (read-only), mounted at `/job`.
    pub tree_dir: PathBuf,
    /// The plaintext datasets directory, mounted read-only at `/data`.
    pub data_dir: Option<PathBuf>,
    /// argv; the first element is resolved inside the sandbox (`/usr/bin`).
    pub command: Vec<String>,
    /// Resource limits, already clamped to the node's policy maxima.
    pub limits: SandboxLimits,
    /// The uid (and gid) the job runs as in root mode.
    pub uid: u32,
    /// The outputs the manifest declares; nothing else is collected.
    pub outputs: Vec<OutputPattern>,
    /// Root or unprivileged.
    pub mode: Mode,
    /// Name of the job's cgroup (unique among running jobs).
    pub cgroup_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_exit_status() {
        assert_eq!(Termination::Exited(3).exit_status(), 3);
        assert_eq!(Termination::Signaled(9).exit_status(), 137);
        assert!(!Termination::WallTimeout.success());
        assert!(Termination::Exited(0).success());
    }

    #[test]
    fn args_isolate_and_bound_everything() {
        let mut s = SandboxSpec {
            bwrap: "/usr/bin/bwrap".into(),
            tree_dir: "/t".into(),
            data_dir: None,
            command: vec!["/usr/bin/true".into()],
            uid: JOB_UID,
            limits: SandboxLimits {
                cpu_seconds: 10,
                memory_bytes: 1 << 30,
                wall_seconds: 10,
                output_bytes: 1 << 20,
                processes: 64,
            },
            outputs: vec![],
            mode: Mode::Root,
            cgroup_name: "j".into(),
        };
        let joined = args::bwrap_args(
            &s,
            args::Staged {
                job: 1 << 20,
                data: 1 << 20,
            },
            2,
        )
        .join(" ");
        for needle in [
            "--unshare-net",
            "--unshare-pid",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--tmpfs /job",
            "--size 1048576 --tmpfs /out",
            "--size 1048576 --tmpfs /tmp",
            "--tmpfs /dev/shm",
            "--remount-ro /dev --remount-ro /",
            "--add-seccomp-fd 6 --add-seccomp-fd 7",
            "--args 5 --remount-ro /job --remount-ro /data",
            "--block-fd 4",
            "--reuid=65534",
            "--fsize=1048576",
        ] {
            assert!(joined.contains(needle), "missing {needle} in {joined}");
        }
        assert!(
            !joined.contains("--bind "),
            "no writable host bind: {joined}"
        );
        s.mode = Mode::Unprivileged;
        let b = args::bwrap_args(
            &s,
            args::Staged {
                job: 1 << 20,
                data: 1 << 20,
            },
            2,
        )
        .join(" ");
        assert!(
            b.contains("--unshare-user --uid 65534 --gid 65534 --disable-userns"),
            "{b}"
        );
        assert!(!b.contains("setpriv"));
    }
}
