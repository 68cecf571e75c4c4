//! Starting, supervising and ending one sandboxed run.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use rustix::fs::{Mode as FsMode, OFlags, ResolveFlags};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, instrument, warn};

use super::{args, collect, fds, seccomp, stage};
use super::{Cgroups, Mode, SandboxError, SandboxRun, SandboxSpec, Termination};
use super::{KILL_WAIT, MAX_STREAM_BYTES};

/// tmpfs magic (`statfs.f_type`).
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// A job's private run directory on the host: in root mode a tmpfs
/// (`mode=0700,nosuid,nodev`) holding the copy of the tree (`job/`) and the
/// plaintext, unmounted (and so erased) on drop; otherwise a 0700
/// directory. The job never writes here: its writable places are tmpfs
/// mounts inside the sandbox.
#[derive(Debug)]
pub struct RunDir {
    /// The run directory.
    pub dir: PathBuf,
    mounted: bool,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> crate::ControllerError + '_ {
    move |source| crate::ControllerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl RunDir {
    /// Creates `dir` (0700, owned by the node), a private tmpfs in root
    /// mode.
    pub fn prepare(dir: &Path, mode: Mode) -> Result<RunDir, crate::ControllerError> {
        use std::os::unix::fs::PermissionsExt;
        if dir.exists() {
            let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
            std::fs::remove_dir_all(dir).map_err(io_at(dir))?;
        }
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_at(dir))?;
        let mut mounted = false;
        if mode == Mode::Root {
            nix::mount::mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                Some("mode=0700"),
            )
            .map_err(|e| crate::ControllerError::Io {
                path: dir.to_path_buf(),
                source: e.into(),
            })?;
            mounted = true;
        }
        Ok(RunDir {
            dir: dir.to_path_buf(),
            mounted,
        })
    }

    /// Where plaintext goes: inside the private tmpfs in root mode.
    pub fn plain_base(&self, fallback: &Path) -> PathBuf {
        if self.mounted {
            self.dir.clone()
        } else {
            fallback.to_path_buf()
        }
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

/// Checks that this host can give jobs every guarantee the sandbox makes
/// in `mode`, by running a probe sandbox; returns the cgroups jobs go in.
pub async fn check_host(
    bwrap: &Path,
    cgroups: &[PathBuf],
    mode: Mode,
) -> Result<Cgroups, SandboxError> {
    if !bwrap.exists() {
        return Err(SandboxError::FeatureMissing {
            feature: "bubblewrap",
            how: "install the Debian package `bubblewrap`, or set sandbox.bwrap in node.yaml",
        });
    }
    let cg = Cgroups::detect(cgroups)?;
    fds::cloexec_all();
    fds::raise_nofile();
    let tree = tempfile::tempdir().map_err(|source| SandboxError::Setup {
        what: "creating the probe tree",
        source,
    })?;
    let spec = SandboxSpec {
        bwrap: bwrap.to_path_buf(),
        tree_dir: tree.path().to_path_buf(),
        data_dir: None,
        command: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo probe > /out/probe && test \"$(cat /out/probe)\" = probe".into(),
        ],
        limits: super::SandboxLimits {
            cpu_seconds: 10,
            memory_bytes: 256 << 20,
            wall_seconds: 20,
            output_bytes: 1 << 20,
            processes: 16,
        },
        uid: super::JOB_UID_BASE - 1,
        outputs: vec![collective_policy::OutputPattern::parse("probe").expect("valid")],
        mode,
        cgroup_name: "check".into(),
    };
    let r = run(&spec, &cg, CancellationToken::new()).await?;
    if !r.termination.success() || r.outputs.files.len() != 1 {
        return Err(SandboxError::FeatureMissing {
            feature: "a working bubblewrap sandbox with sized tmpfs mounts (the probe job failed)",
            how: "use bubblewrap >= 0.8 and a kernel with user namespaces (unprivileged mode) and tmpfs `size=`; run `collective node check` for details",
        });
    }
    Ok(cg)
}

/// Reads a capped stream; the rest is drained and counted.
async fn read_capped(mut r: impl tokio::io::AsyncRead + Unpin) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_STREAM_BYTES.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                dropped += (n - room) as u64;
            }
        }
    }
    (kept, dropped)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::Setup {
        what: "creating a pipe",
        source: e.into(),
    })
}

/// bwrap's `child-pid` (the sandbox's pid 1, seen from the host).
async fn read_child_pid(info: OwnedFd) -> Option<u32> {
    let text = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut s = String::new();
        let _ = std::fs::File::from(info)
            .take(64 * 1024)
            .read_to_string(&mut s);
        s
    });
    let text = tokio::time::timeout(Duration::from_secs(30), text)
        .await
        .ok()?
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("child-pid")?
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
}

/// The sandbox's `/out`, opened through `/proc/<pid>/root` once bwrap has
/// pivoted into the sandbox's root (it then waits on its block fd, so no
/// job code has run). `None` while setup is still going on.
fn open_out(child: u32) -> Option<OwnedFd> {
    let root = rustix::fs::open(
        format!("/proc/{child}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .ok()?;
    let host_root = rustix::fs::stat("/").ok()?;
    let st = rustix::fs::fstat(&root).ok()?;
    if (st.st_dev, st.st_ino) == (host_root.st_dev, host_root.st_ino) {
        return None; // not yet in its own root
    }
    let beneath = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // `job` exists only in the final root, not in bwrap's staging root.
    rustix::fs::openat2(&root, "job", flags, FsMode::empty(), beneath).ok()?;
    let out = rustix::fs::openat2(&root, "out", flags, FsMode::empty(), beneath).ok()?;
    let fs = rustix::fs::fstatfs(&out).ok()?;
    (fs.f_type as i64 == TMPFS_MAGIC).then_some(out)
}

/// Run a job in the sandbox until it exits, the wall clock passes, or
/// `cancel` fires; then kill whatever is left, wait until the job's
/// cgroup is empty, and only then collect its declared outputs.
#[instrument(skip_all, fields(tree = %spec.tree_dir.display(), cgroup = %spec.cgroup_name))]
pub async fn run(
    spec: &SandboxSpec,
    cgroups: &Cgroups,
    cancel: CancellationToken,
) -> Result<SandboxRun, SandboxError> {
    if spec.command.is_empty() {
        return Err(SandboxError::EmptyCommand);
    }
    let l = &spec.limits;
    let cg = cgroups.create(&spec.cgroup_name, l.memory_bytes, l.processes)?;
    let programs = seccomp::programs()?;
    let staging = {
        let (t, d) = (spec.tree_dir.clone(), spec.data_dir.clone());
        tokio::task::spawn_blocking(move || stage::plan(&t, d.as_deref(), args::STAGE_FD))
            .await
            .map_err(|e| SandboxError::Setup {
                what: "planning the tree and data copy",
                source: std::io::Error::other(e),
            })??
    };
    let staged = args::Staged {
        job: staging.job_bytes,
        data: staging.data_bytes,
    };
    let argv = args::bwrap_args(spec, staged, programs.len());
    debug!(?argv, "bwrap");
    let (info_r, info_w) = pipe()?;
    let (block_r, block_w) = pipe()?;
    let mut maps = vec![
        FdMapping {
            parent_fd: info_w,
            child_fd: args::INFO_FD,
        },
        FdMapping {
            parent_fd: block_r,
            child_fd: args::BLOCK_FD,
        },
    ];
    maps.push(FdMapping {
        parent_fd: fds::memfd(c"collective-stage-args", &staging.args)?,
        child_fd: args::STAGE_ARGS_FD,
    });
    for (i, fd) in staging.fds.into_iter().enumerate() {
        maps.push(FdMapping {
            parent_fd: fd,
            child_fd: args::STAGE_FD + i as i32,
        });
    }
    for (i, p) in programs.iter().enumerate() {
        maps.push(FdMapping {
            parent_fd: seccomp::program_fd(p)?,
            child_fd: args::SECCOMP_FD + i as i32,
        });
    }
    let started = Instant::now();
    let mut child = {
        let _guard = fds::SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        fds::cloexec_all();
        let mut cmd = tokio::process::Command::new(&spec.bwrap);
        cmd.args(&argv)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.fd_mappings(maps).map_err(|e| SandboxError::Setup {
            what: "passing descriptors to bubblewrap",
            source: std::io::Error::other(e.to_string()),
        })?;
        let child = cmd.spawn().map_err(|source| SandboxError::Setup {
            what: "spawning bubblewrap",
            source,
        })?;
        drop(cmd); // closes our copies of the passed descriptors
        child
    };
    let stdout = tokio::spawn(read_capped(child.stdout.take().expect("piped")));
    let stderr = tokio::spawn(read_capped(child.stderr.take().expect("piped")));
    // Place bwrap and the sandbox's pid 1 (blocked before the job) in the
    // job's cgroup, and hold /out, before any job code runs.
    let setup = async {
        if let Some(pid) = child.id() {
            cg.add(pid).map_err(Some)?;
        }
        let Some(pid1) = read_child_pid(info_r).await else {
            return Err(None);
        };
        cg.add(pid1).map_err(Some)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(out) = open_out(pid1) {
                return Ok(out);
            }
            if Instant::now() > deadline || !Path::new(&format!("/proc/{pid1}")).exists() {
                return Err(None);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let held: Result<OwnedFd, Option<SandboxError>> = setup.await;
    let out = match held {
        Ok(out) => out,
        Err(e) => {
            cg.kill();
            let _ = child.wait().await;
            drop(block_w);
            let _ = cg.kill_and_wait(KILL_WAIT).await;
            if let Some(e) = e {
                return Err(e);
            }
            let (err, _) = stderr.await.unwrap_or_default();
            return Err(SandboxError::Bwrap {
                stderr: String::from_utf8_lossy(&err[..err.len().min(4096)]).into_owned(),
            });
        }
    };
    // Go: the job starts now.
    let _ = rustix::io::write(block_w.as_fd(), b"g");
    drop(block_w);
    let wall = Duration::from_secs(l.wall_seconds);
    let termination = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                match (status.code(), status.signal()) {
                    // bwrap reports a job killed by signal n as 128+n.
                    (Some(c), _) if c > 128 && c < 128 + 65 => Termination::Signaled(c - 128),
                    (Some(c), _) => Termination::Exited(c),
                    (None, Some(s)) => Termination::Signaled(s),
                    _ => Termination::Exited(-1),
                }
            }
            Err(_) => Termination::Exited(-1),
        },
        _ = tokio::time::sleep(wall) => Termination::WallTimeout,
        _ = cancel.cancelled() => Termination::Cancelled,
    };
    // Whatever ended the run, nothing of the job may outlive this point.
    cg.kill();
    let _ = child.wait().await;
    cg.kill_and_wait(KILL_WAIT).await?;
    let duration_ms = started.elapsed().as_millis() as u64;
    let memory_limit_hit = cg.memory_limit_hit();
    drop(cg);
    let (stdout, d1) = stdout.await.unwrap_or_default();
    let (stderr, d2) = stderr.await.unwrap_or_default();
    let patterns = spec.outputs.clone();
    let outputs = tokio::task::spawn_blocking(move || {
        let c = collect::collect(&out, &patterns);
        drop(out);
        c
    })
    .await
    .unwrap_or_default();
    Ok(SandboxRun {
        termination,
        duration_ms,
        outputs,
        stdout,
        stderr,
        stream_bytes_dropped: d1 + d2,
        memory_limit_hit,
    })
}
