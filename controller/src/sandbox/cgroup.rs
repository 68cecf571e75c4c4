//! One cgroup per job: the bound on its *total* memory, every tmpfs page it
//! writes included (the kernel charges shmem pages to the writer's memory
//! cgroup, which `RLIMIT_AS` never sees), the bound on its process count,
//! and the proof that every one of its processes is gone before its
//! outputs are read.
//!
//! Both hierarchies are supported: cgroup v2 (a directory with
//! `cgroup.controllers`; `memory.max`, `memory.swap.max`, `pids.max`,
//! `cgroup.kill`) and v1 (one directory per controller: `memory`,
//! `pids`). Job cgroups are created under the node's own cgroup of each
//! hierarchy, so whatever limits the operator put on the node also bind
//! its jobs, or under directories the operator delegated (`sandbox.cgroups`
//! in node.yaml), which is how an unprivileged node gets them.
//!
//! Not covered: CPU bandwidth (CPU *time* is `RLIMIT_CPU` per process and
//! the wall clock), block I/O, and a job that keeps a process in
//! uninterruptible sleep past the kill deadline: the run then fails
//! closed (no outputs) and the cgroup is left for the next start to reap.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::SandboxError;

/// Where job cgroups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// cgroup v2: children of this directory, with `memory` and `pids`
    /// enabled in its `cgroup.subtree_control`.
    V2(PathBuf),
    /// cgroup v1: children of these two directories.
    V1 {
        /// In the `memory` hierarchy.
        memory: PathBuf,
        /// In the `pids` hierarchy.
        pids: PathBuf,
    },
}

fn setup(what: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |source| SandboxError::Setup { what, source }
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    std::fs::write(path, value).map_err(|source| SandboxError::Cgroup {
        path: path.to_path_buf(),
        source,
    })
}

fn missing() -> SandboxError {
    SandboxError::FeatureMissing {
        feature: "a cgroup (v2 with the memory and pids controllers, or v1 memory and pids hierarchies) the node can create job cgroups in",
        how: "run the node as root, or delegate one to the node's user: with systemd, `Delegate=memory pids` in the unit (contrib/collective-node.service); otherwise as root `scripts/delegate-cgroup.sh USER` and set `sandbox.cgroups` in node.yaml to the directories it prints",
    }
}

impl Cgroups {
    /// The configured directories, or the node's own cgroups when none are
    /// configured. Fails, naming the missing feature, when job cgroups
    /// cannot be created there: the node never runs jobs without them.
    pub fn detect(configured: &[PathBuf]) -> Result<Cgroups, SandboxError> {
        let found = if configured.is_empty() {
            Self::own()?
        } else {
            Self::from_dirs(configured)?
        };
        found.prepare()?;
        Ok(found)
    }

    fn from_dirs(dirs: &[PathBuf]) -> Result<Cgroups, SandboxError> {
        let mut memory = None;
        let mut pids = None;
        for d in dirs {
            if d.join("cgroup.controllers").exists() {
                return Ok(Cgroups::V2(d.clone()));
            }
            if d.join("memory.limit_in_bytes").exists() {
                memory = Some(d.clone());
            } else if d.join("pids.max").exists() {
                pids = Some(d.clone());
            } else {
                return Err(SandboxError::Cgroup {
                    path: d.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "not a cgroup v2 directory, nor a v1 memory or pids one",
                    ),
                });
            }
        }
        match (memory, pids) {
            (Some(memory), Some(pids)) => Ok(Cgroups::V1 { memory, pids }),
            _ => Err(missing()),
        }
    }

    /// The node's own cgroups, from `/proc/self/cgroup`.
    fn own() -> Result<Cgroups, SandboxError> {
        let text = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(setup("reading /proc/self/cgroup"))?;
        let root = Path::new("/sys/fs/cgroup");
        let mut memory = None;
        let mut pids = None;
        let mut v2 = None;
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if ctrls.is_empty() {
                v2 = Some(rel.to_string());
            }
            for c in ctrls.split(',') {
                match c {
                    "memory" => memory = Some(root.join("memory").join(rel)),
                    "pids" => pids = Some(root.join("pids").join(rel)),
                    _ => {}
                }
            }
        }
        if let (Some(memory), Some(pids)) = (memory, pids) {
            return Ok(Cgroups::V1 {
                memory: memory.join("collective"),
                pids: pids.join("collective"),
            });
        }
        if let Some(rel) = v2 {
            let base = root.join(rel);
            let has = std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
            if has.split_whitespace().any(|c| c == "memory")
                && has.split_whitespace().any(|c| c == "pids")
            {
                return Ok(Cgroups::V2(base.join("collective")));
            }
        }
        Err(missing())
    }

    /// Creates the parent directories and, on v2, enables the controllers
    /// for job cgroups. Probes by creating and removing a job cgroup.
    fn prepare(&self) -> Result<(), SandboxError> {
        let mk = |d: &Path| {
            std::fs::create_dir_all(d).map_err(|source| match source.kind() {
                std::io::ErrorKind::PermissionDenied => missing(),
                _ => SandboxError::Cgroup {
                    path: d.to_path_buf(),
                    source,
                },
            })
        };
        match self {
            Cgroups::V2(d) => {
                if let Some(parent) = d.parent() {
                    // Enabling in the parent may fail when it is not ours
                    // (a delegated directory already has them); the child
                    // probe below is what decides.
                    let sc = parent.join("cgroup.subtree_control");
                    if std::fs::write(&sc, "+memory +pids").is_err()
                        && own_v2_cgroup() == Some(parent.to_path_buf())
                    {
                        // cgroup v2 allows no process in a cgroup that
                        // distributes controllers: under systemd's
                        // `Delegate=` the node first moves itself into a
                        // leaf of its own cgroup, then enables them.
                        let leaf = parent.join("node");
                        mk(&leaf)?;
                        write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
                        write(&sc, "+memory +pids")?;
                    }
                }
                mk(d)?;
                write(&d.join("cgroup.subtree_control"), "+memory +pids")?;
            }
            Cgroups::V1 { memory, pids } => {
                mk(memory)?;
                mk(pids)?;
            }
        }
        let probe = self.create("probe", 64 << 20, 16)?;
        drop(probe);
        Ok(())
    }

    /// A fresh cgroup for one job, limits set, no process in it yet.
    /// `name` is made unique (process id and a counter): several nodes, or
    /// runs of one job, may share the parent.
    pub fn create(
        &self,
        name: &str,
        memory: u64,
        processes: u64,
    ) -> Result<JobCgroup, SandboxError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = &format!("{name}-{}-{n}", std::process::id());
        let dirs: Vec<PathBuf> = match self {
            Cgroups::V2(d) => vec![d.join(name)],
            Cgroups::V1 { memory, pids } => vec![memory.join(name), pids.join(name)],
        };
        for d in &dirs {
            // A leftover of a crashed run has no process (the pid
            // namespace died with it) and can be removed.
            if d.exists() {
                let _ = std::fs::remove_dir(d);
            }
            std::fs::create_dir(d).map_err(|source| SandboxError::Cgroup {
                path: d.clone(),
                source,
            })?;
        }
        let cg = JobCgroup {
            v2: matches!(self, Cgroups::V2(_)),
            dirs,
        };
        let mem = memory.to_string();
        let procs = processes.to_string();
        if cg.v2 {
            let d = &cg.dirs[0];
            write(&d.join("memory.max"), &mem)?;
            if d.join("memory.swap.max").exists() {
                write(&d.join("memory.swap.max"), "0")?;
            } else if swap_enabled() {
                return Err(SandboxError::FeatureMissing {
                    feature: "a swap limit for job cgroups (swap is on, and memory.swap.max is unavailable)",
                    how: "enable swap accounting in the kernel, or turn swap off",
                });
            }
            write(&d.join("pids.max"), &procs)?;
        } else {
            let (m, p) = (&cg.dirs[0], &cg.dirs[1]);
            write(&m.join("memory.limit_in_bytes"), &mem)?;
            let memsw = m.join("memory.memsw.limit_in_bytes");
            let swap_limited = memsw.exists() && std::fs::write(&memsw, &mem).is_ok();
            if !swap_limited && swap_enabled() {
                // Over the limit, pages would go to swap, not to the OOM killer.
                return Err(SandboxError::FeatureMissing {
                    feature: "a swap limit for job cgroups (swap is on, and memory.memsw is unavailable)",
                    how: "boot with swapaccount=1 (cgroup v1), use cgroup v2 with memory.swap.max, or turn swap off",
                });
            }
            write(&p.join("pids.max"), &procs)?;
        }
        Ok(cg)
    }
}

/// The node's own cgroup v2 directory, from `/proc/self/cgroup`.
fn own_v2_cgroup() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')))
}

/// Whether the host has any swap device in use (`/proc/swaps` lists one).
fn swap_enabled() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .map(|s| s.lines().count() > 1)
        .unwrap_or(false)
}

/// A job's cgroup(s); killed and removed on drop.
#[derive(Debug)]
pub struct JobCgroup {
    v2: bool,
    /// v2: one directory; v1: memory then pids.
    dirs: Vec<PathBuf>,
}

impl JobCgroup {
    /// Moves `pid` (and its future children) into the job's cgroups.
    pub fn add(&self, pid: u32) -> Result<(), SandboxError> {
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Pids now in the cgroup (read from the pids/unified directory).
    pub fn pids(&self) -> Vec<i32> {
        let d = self.dirs.last().expect("at least one dir");
        std::fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILL to every process in the cgroup (`cgroup.kill` where the
    /// kernel has it, else one by one; the pids limit bounds how many a
    /// fork loop can add meanwhile).
    pub fn kill(&self) {
        if self.v2 {
            let k = self.dirs[0].join("cgroup.kill");
            if k.exists() && std::fs::write(&k, "1").is_ok() {
                return;
            }
        }
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Kills and waits until no process is left, or `within` passes.
    /// An empty cgroup is the proof that nothing of the job can still
    /// touch its outputs.
    pub async fn kill_and_wait(&self, within: Duration) -> Result<(), SandboxError> {
        let deadline = Instant::now() + within;
        loop {
            if self.pids().is_empty() {
                return Ok(());
            }
            self.kill();
            if Instant::now() >= deadline {
                return Err(SandboxError::ProcessesRemain {
                    count: self.pids().len(),
                    waited: within,
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Whether the memory limit was hit (the job was OOM-killed or saw
    /// allocation failures), for the reason logged with its end.
    pub fn memory_limit_hit(&self) -> bool {
        let m = &self.dirs[0];
        if self.v2 {
            std::fs::read_to_string(m.join("memory.events"))
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    let mut f = l.split_whitespace();
                    matches!((f.next(), f.next()), (Some("max" | "oom_kill"), Some(n)) if n != "0")
                })
        } else {
            // With memory+swap limited too, either counter may be the one
            // that moves; an OOM kill is counted in `oom_control`.
            let nonzero = |f: &str| {
                std::fs::read_to_string(m.join(f))
                    .map(|s| s.trim() != "0")
                    .unwrap_or(false)
            };
            let oom_kills = std::fs::read_to_string(m.join("memory.oom_control"))
                .unwrap_or_default()
                .lines()
                .any(|l| matches!(l.split_once(' '), Some(("oom_kill", n)) if n.trim() != "0"));
            nonzero("memory.failcnt") || nonzero("memory.memsw.failcnt") || oom_kills
        }
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            self.kill();
            if self.pids().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        for d in &self.dirs {
            // rmdir of a cgroup; its charged pages move to the parent.
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_dirs_refuses_non_cgroups() {
        let d = tempfile::tempdir().unwrap();
        let e = Cgroups::from_dirs(&[d.path().to_path_buf()]).unwrap_err();
        assert!(e.to_string().contains("not a cgroup"), "{e}");
        std::fs::write(d.path().join("memory.limit_in_bytes"), "0").unwrap();
        let e = Cgroups::from_dirs(&[d.path().to_path_buf()]).unwrap_err();
        assert!(matches!(e, SandboxError::FeatureMissing { .. }), "{e}");
    }
}
