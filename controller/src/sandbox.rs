//! The job sandbox, over bubblewrap.
//!
//! Security argument. A job is code the DAO approved, but it still handles
//! plaintext the node must not leak, and approval is not proof of benign
//! behaviour. The sandbox therefore assumes a hostile job and gives it:
//! - a new network namespace (loopback only, nothing listening): no egress,
//!   and no reach to services on the host's loopback;
//! - a new mount namespace whose root is an empty tmpfs with only `/usr`
//!   (and the `/bin`, `/lib*` links into it) read-only, the approved tree
//!   read-only at `/job`, the decrypted datasets read-only at `/data` and a
//!   writable `/out`. Node keys, the log, the repository and other runs are
//!   simply not in its filesystem;
//! - new pid/ipc/uts namespaces, `--die-with-parent` (if the controller
//!   dies, the job dies), `--new-session` (no terminal injection), an empty
//!   environment;
//! - an unprivileged uid (65534) with no capabilities and `no_new_privs`;
//! - a private `/tmp` tmpfs capped at the output limit (tmpfs pages are not
//!   counted by `RLIMIT_AS`, so an uncapped `/tmp` would be a way around the
//!   memory limit);
//! - rlimits: CPU seconds, address space, process count, file size; a wall
//!   clock enforced here by killing the sandbox (the pid namespace takes
//!   every descendant with it);
//! - a size-limited `/out`: when the node runs as root, a tmpfs with
//!   `size=` (hard limit); otherwise `RLIMIT_FSIZE` per file plus a check of
//!   the total afterwards. Outputs that are not regular files (symlinks,
//!   fifos, devices) are refused, so collecting outputs never follows a
//!   link the job planted.
//!
//! Not covered (yet): a seccomp filter (the job reaches the full syscall
//! surface of the kernel, as an unprivileged user in its namespaces) and
//! cgroup limits (CPU time and memory are per-process rlimits; a job's
//! process count is bounded, so its total is bounded too, but loosely).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, instrument, warn};

use crate::ControllerError;

/// The unprivileged identity jobs run as by default (`nobody`).
pub const JOB_UID: u32 = 65534;

/// First uid of the per-job range the node uses when root: each running job
/// gets its own uid, so `RLIMIT_NPROC` (counted per uid) of one job — a fork
/// bomb — cannot starve another job.
pub const JOB_UID_BASE: u32 = 200_000;

/// Limits applied to one job (already clamped to the node's maxima).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SandboxLimits {
    /// CPU time per process (`RLIMIT_CPU`); the kernel sends SIGXCPU.
    pub cpu_seconds: u64,
    /// Address space per process (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Wall clock for the whole run, enforced by killing the sandbox.
    pub wall_seconds: u64,
    /// Total size of `/out` (and `/tmp`, and each file via `RLIMIT_FSIZE`).
    pub output_bytes: u64,
    /// Processes of the job's uid (`RLIMIT_NPROC`): bounds fork bombs.
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

/// One file the job left in `/out`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutputFile {
    /// Path relative to `/out`, `/`-separated.
    pub name: String,
    /// Where the file is on the host (inside the run directory); never
    /// published, the name is enough.
    #[serde(skip)]
    pub path: PathBuf,
    /// Size in bytes, as collected.
    pub size: u64,
}

/// The result of one sandboxed run.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxRun {
    /// How the job ended.
    pub termination: Termination,
    /// Wall-clock duration of the run.
    pub duration_ms: u64,
    /// Regular files the job left in `/out`.
    pub outputs: Vec<OutputFile>,
    /// Why the outputs are refused, if they are (too large, non-regular file).
    pub output_violation: Option<String>,
    /// Captured stdout and stderr (plaintext: they are treated as outputs).
    #[serde(skip)]
    pub stdout: PathBuf,
    /// Captured stderr (plaintext, like stdout).
    #[serde(skip)]
    pub stderr: PathBuf,
}

/// What to run and with which filesystem.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// The deployed (read-only) tree, mounted at `/job`.
    pub tree_dir: PathBuf,
    /// The plaintext datasets directory, mounted read-only at `/data`.
    pub data_dir: Option<PathBuf>,
    /// Scratch directory for this run; `out/`, `stdout`, `stderr` go here.
    pub run_dir: PathBuf,
    /// argv; the first element is resolved inside the sandbox (`/usr/bin`).
    pub command: Vec<String>,
    /// Resource limits, already clamped to the node's policy maxima.
    pub limits: SandboxLimits,
    /// The uid (and gid) the job runs as in root mode.
    pub uid: u32,
}

/// A prepared run directory. When the node is root, the directory is a
/// tmpfs with a hard size limit, unmounted (and so erased) on drop.
#[derive(Debug)]
pub struct RunDir {
    /// The run directory (holds `out/`, `stdout`, `stderr`).
    pub dir: PathBuf,
    mounted: bool,
}

impl RunDir {
    /// Create `dir` with `out/` inside, limited to `limit` bytes plus a small
    /// allowance for stdout/stderr.
    pub fn prepare(dir: &Path, limit: u64, job_uid: u32) -> Result<RunDir, ControllerError> {
        let io = |source| ControllerError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut mounted = false;
        if nix::unistd::geteuid().is_root() {
            // Hard limit: the tmpfs refuses writes past `size`. The extra
            // MiB is for stdout/stderr and directory entries.
            let opts = format!("size={},mode=0700,nr_inodes=10000", limit + (1 << 20));
            match nix::mount::mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                Some(opts.as_str()),
            ) {
                Ok(()) => mounted = true,
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "tmpfs for run dir unavailable; falling back to per-file limits")
                }
            }
        }
        let out = dir.join("out");
        std::fs::create_dir_all(&out).map_err(|source| ControllerError::Io {
            path: out.clone(),
            source,
        })?;
        if nix::unistd::geteuid().is_root() {
            let uid = nix::unistd::Uid::from_raw(job_uid);
            let gid = nix::unistd::Gid::from_raw(job_uid);
            nix::unistd::chown(&out, Some(uid), Some(gid)).map_err(|e| ControllerError::Io {
                path: out.clone(),
                source: e.into(),
            })?;
        }
        Ok(RunDir {
            dir: dir.to_path_buf(),
            mounted,
        })
    }

    /// The host side of the job's `/out`.
    pub fn out(&self) -> PathBuf {
        self.dir.join("out")
    }

    /// Whether `/out` has a hard (tmpfs) size limit.
    pub fn hard_limited(&self) -> bool {
        self.mounted
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH) {
                warn!(dir = %self.dir.display(), error = %e, "unmounting run dir");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Build the bwrap argv (without the bwrap binary itself).
pub fn bwrap_args(spec: &SandboxSpec, out_dir: &Path, as_root: bool) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&[
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]);
    if !as_root {
        // Unprivileged: a user namespace maps the job to uid 65534.
        push(&["--unshare-user", "--uid", "65534", "--gid", "65534"]);
    }
    push(&["--die-with-parent", "--new-session", "--clearenv"]);
    if !as_root {
        push(&["--cap-drop", "ALL"]);
    }
    // In root mode the capabilities are needed by setpriv to change uid;
    // setpriv then clears every capability set before exec.
    push(&["--ro-bind", "/usr", "/usr"]);
    for top in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
        let host = Path::new("/").join(top);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(&host) {
                    let t = target.to_string_lossy().to_string();
                    let dst = format!("/{top}");
                    push(&["--symlink", &t, &dst]);
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
    // /tmp is a tmpfs whose pages RLIMIT_AS does not count: cap it at the
    // output limit so a job cannot fill the node's memory through it.
    let tmp_size = spec.limits.output_bytes.max(1 << 20).to_string();
    push(&[
        "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", &tmp_size, "--tmpfs",
        "/tmp",
    ]);
    let tree = spec.tree_dir.to_string_lossy().to_string();
    push(&["--ro-bind", &tree, "/job"]);
    if let Some(d) = &spec.data_dir {
        let d = d.to_string_lossy().to_string();
        push(&["--ro-bind", &d, "/data"]);
    } else {
        push(&["--dir", "/data"]);
    }
    let out = out_dir.to_string_lossy().to_string();
    push(&["--bind", &out, "/out"]);
    push(&[
        "--chdir",
        "/job",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
    ]);
    push(&["--setenv", "LANG", "C.UTF-8", "--"]);
    let l = &spec.limits;
    a.push("/usr/bin/prlimit".into());
    a.push(format!("--cpu={}", l.cpu_seconds));
    a.push(format!("--as={}", l.memory_bytes));
    a.push(format!("--nproc={}", l.processes));
    a.push(format!("--fsize={}", l.output_bytes));
    a.push("--core=0".into());
    a.push("--".into());
    if as_root {
        // Root mode: no user namespace, so drop to a real unprivileged uid;
        // RLIMIT_NPROC then counts only uid 65534's processes.
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

/// Run a job in the sandbox until it exits, the wall clock passes, or
/// `cancel` fires. The run directory must have been prepared with
/// [`RunDir::prepare`].
#[instrument(skip_all, fields(tree = %spec.tree_dir.display(), cmd = ?spec.command))]
pub async fn run(
    spec: &SandboxSpec,
    run_dir: &RunDir,
    cancel: CancellationToken,
) -> Result<SandboxRun, ControllerError> {
    if spec.command.is_empty() {
        return Err(ControllerError::Sandbox {
            message: "empty command".into(),
        });
    }
    if !spec.bwrap.exists() {
        return Err(ControllerError::Sandbox {
            message: format!(
                "bubblewrap not found at {} (install the bubblewrap package)",
                spec.bwrap.display()
            ),
        });
    }
    let as_root = nix::unistd::geteuid().is_root();
    let out_dir = run_dir.out();
    let args = bwrap_args(spec, &out_dir, as_root);
    debug!(?args, "bwrap");
    let stdout_path = run_dir.dir.join("stdout");
    let stderr_path = run_dir.dir.join("stderr");
    let open = |p: &Path| {
        std::fs::File::create(p).map_err(|source| ControllerError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let stdout = open(&stdout_path)?;
    let stderr = open(&stderr_path)?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&spec.bwrap)
        .args(&args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ControllerError::Sandbox {
            message: format!("spawning {}: {e}", spec.bwrap.display()),
        })?;
    let wall = Duration::from_secs(spec.limits.wall_seconds);
    let termination = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| ControllerError::Sandbox { message: format!("waiting for bwrap: {e}") })?;
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => Termination::Exited(c),
                (None, Some(s)) => Termination::Signaled(s),
                _ => Termination::Exited(-1),
            }
        }
        _ = tokio::time::sleep(wall) => {
            let _ = child.kill().await;
            Termination::WallTimeout
        }
        _ = cancel.cancelled() => {
            let _ = child.kill().await;
            Termination::Cancelled
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let (outputs, output_violation) = collect_outputs(&out_dir, spec.limits.output_bytes);
    // bwrap reports a job killed by a signal as exit 128+n; the rlimit
    // signals (SIGXCPU, SIGKILL) show up here.
    let termination = match termination {
        Termination::Exited(c) if c > 128 && c < 128 + 65 => Termination::Signaled(c - 128),
        t => t,
    };
    Ok(SandboxRun {
        termination,
        duration_ms,
        outputs,
        output_violation,
        stdout: stdout_path,
        stderr: stderr_path,
    })
}

/// List the regular files under `out`, refusing anything else and any total
/// above `limit`. Never follows symlinks.
pub fn collect_outputs(out: &Path, limit: u64) -> (Vec<OutputFile>, Option<String>) {
    let mut files = Vec::new();
    let mut total: u64 = 0;
    let mut violation = None;
    for entry in walkdir::WalkDir::new(out)
        .follow_links(false)
        .min_depth(1)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                violation.get_or_insert(format!("unreadable output entry: {e}"));
                continue;
            }
        };
        let ft = entry.file_type();
        let rel = entry
            .path()
            .strip_prefix(out)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            violation.get_or_insert(format!("output {rel:?} is not a regular file"));
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        if size >= limit {
            // RLIMIT_FSIZE equals the limit: a file this large was cut off
            // there (the job got SIGXFSZ or EFBIG), so it is not an output.
            violation.get_or_insert(format!(
                "output {rel:?} reached the output limit of {limit} bytes"
            ));
        }
        total = total.saturating_add(size);
        files.push(OutputFile {
            name: rel,
            path: entry.path().to_path_buf(),
            size,
        });
    }
    if total > limit {
        violation.get_or_insert(format!(
            "outputs total {total} bytes, above the limit of {limit}"
        ));
    }
    (files, violation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tree: &Path, run: &Path) -> SandboxSpec {
        SandboxSpec {
            bwrap: "/usr/bin/bwrap".into(),
            tree_dir: tree.into(),
            data_dir: None,
            run_dir: run.into(),
            command: vec!["/usr/bin/true".into()],
            uid: JOB_UID,
            limits: SandboxLimits {
                cpu_seconds: 10,
                memory_bytes: 1 << 30,
                wall_seconds: 10,
                output_bytes: 1 << 20,
                processes: 64,
            },
        }
    }

    #[test]
    fn args_isolate_network_and_drop_privileges() {
        let s = spec(Path::new("/t"), Path::new("/r"));
        let a = bwrap_args(&s, Path::new("/r/out"), true);
        let joined = a.join(" ");
        for needle in [
            "--unshare-net",
            "--unshare-pid",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--ro-bind /t /job",
            "--bind /r/out /out",
            "--reuid=65534",
            "--nproc=64",
            "--fsize=1048576",
        ] {
            assert!(joined.contains(needle), "missing {needle} in {joined}");
        }
        let b = bwrap_args(&s, Path::new("/r/out"), false).join(" ");
        assert!(b.contains("--unshare-user --uid 65534 --gid 65534"), "{b}");
        assert!(!b.contains("setpriv"));
    }

    #[test]
    fn outputs_refuse_symlinks_and_oversize() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"12345").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/b"), b"1").unwrap();
        let (files, v) = collect_outputs(d.path(), 100);
        assert_eq!(
            files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["a", "sub/b"]
        );
        assert!(v.is_none());
        let (_, v) = collect_outputs(d.path(), 5);
        assert!(v.unwrap().contains("reached the output limit"));
        let (_, v) = collect_outputs(d.path(), 6);
        assert!(v.is_none());
        std::fs::write(d.path().join("sub/c"), b"1").unwrap();
        let (_, v) = collect_outputs(d.path(), 6);
        assert!(v.unwrap().contains("above the limit"));
        std::fs::remove_file(d.path().join("sub/c")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
        let (files, v) = collect_outputs(d.path(), 100);
        assert!(v.unwrap().contains("not a regular file"));
        assert!(files.iter().all(|f| f.name != "link"));
    }

    #[test]
    fn termination_exit_status() {
        assert_eq!(Termination::Exited(3).exit_status(), 3);
        assert_eq!(Termination::Signaled(9).exit_status(), 137);
        assert!(!Termination::WallTimeout.success());
        assert!(Termination::Exited(0).success());
    }
}
