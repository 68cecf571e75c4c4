//! A builder for sandboxed test jobs, in root mode or (when the suite is
//! re-run as an ordinary user by `unprivileged.rs`) unprivileged mode.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use collective_controller::sandbox::{self, Cgroups, Mode, SandboxLimits, SandboxRun, SandboxSpec};
use collective_policy::OutputPattern;
use tokio_util::sync::CancellationToken;

/// Set (to a `:`-separated list of delegated cgroup directories) when the
/// suite runs as an ordinary user.
pub const UNPRIV_ENV: &str = "COLLECTIVE_TEST_UNPRIVILEGED_CGROUPS";

pub fn mode() -> Mode {
    if std::env::var_os(UNPRIV_ENV).is_some() {
        Mode::Unprivileged
    } else {
        Mode::current()
    }
}

pub fn cgroups() -> &'static Cgroups {
    static CG: OnceLock<Cgroups> = OnceLock::new();
    CG.get_or_init(|| {
        let dirs: Vec<PathBuf> = std::env::var(UNPRIV_ENV)
            .map(|v| v.split(':').map(PathBuf::from).collect())
            .unwrap_or_default();
        Cgroups::detect(&dirs).expect("job cgroups (run as root, or delegate them)")
    })
}

pub fn require_tools() {
    for p in ["/usr/bin/bwrap", "/usr/bin/python3"] {
        assert!(
            Path::new(p).exists(),
            "{p} is required (apt-get install bubblewrap python3)"
        );
    }
}

pub fn limits() -> SandboxLimits {
    SandboxLimits {
        cpu_seconds: 20,
        memory_bytes: 512 << 20,
        wall_seconds: 20,
        output_bytes: 1 << 20,
        processes: 32,
    }
}

/// A job: a Python script at `/job/job.py`, a dataset at `/data/rows.csv`.
pub struct Job {
    pub tmp: tempfile::TempDir,
    pub tree: PathBuf,
    pub data: PathBuf,
    pub limits: SandboxLimits,
    pub outputs: Vec<OutputPattern>,
    pub uid: u32,
}

pub fn job(script: &str) -> Job {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(tree.join("job.py"), script).unwrap();
    std::fs::write(data.join("rows.csv"), "a,b\n1,2\n").unwrap();
    for (p, m) in [
        (tmp.path().to_path_buf(), 0o755),
        (tree.clone(), 0o755),
        (data.clone(), 0o755),
        (tree.join("job.py"), 0o644),
        (data.join("rows.csv"), 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    Job {
        tmp,
        tree,
        data,
        limits: limits(),
        outputs: vec![],
        uid: sandbox::JOB_UID,
    }
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub struct Ran {
    pub run: SandboxRun,
    pub out: String,
    pub err: String,
}

impl Ran {
    pub fn names(&self) -> Vec<&str> {
        self.run
            .outputs
            .files
            .iter()
            .map(|f| f.name.as_str())
            .collect()
    }
    pub fn read(&mut self, name: &str) -> Vec<u8> {
        use std::io::Read;
        let f = self
            .run
            .outputs
            .files
            .iter_mut()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no output {name}"));
        let mut v = Vec::new();
        (&f.file).read_to_end(&mut v).unwrap();
        v
    }
}

impl Job {
    pub fn outputs(mut self, xs: &[&str]) -> Job {
        self.outputs = xs
            .iter()
            .map(|x| OutputPattern::parse(x).unwrap())
            .collect();
        self
    }
    pub fn limits(mut self, f: impl FnOnce(&mut SandboxLimits)) -> Job {
        f(&mut self.limits);
        self
    }
    pub fn spec(&self) -> SandboxSpec {
        SandboxSpec {
            bwrap: "/usr/bin/bwrap".into(),
            tree_dir: self.tree.clone(),
            data_dir: Some(self.data.clone()),
            command: vec!["/usr/bin/python3".into(), "/job/job.py".into()],
            limits: self.limits.clone(),
            uid: self.uid,
            outputs: self.outputs.clone(),
            mode: mode(),
            cgroup_name: format!(
                "test-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        }
    }
    pub async fn run_with(&self, cancel: CancellationToken) -> Ran {
        require_tools();
        let run = sandbox::run(&self.spec(), cgroups(), cancel)
            .await
            .expect("sandbox runs");
        Ran {
            out: String::from_utf8_lossy(&run.stdout).into_owned(),
            err: String::from_utf8_lossy(&run.stderr).into_owned(),
            run,
        }
    }
    pub async fn run(&self) -> Ran {
        self.run_with(CancellationToken::new()).await
    }
}
