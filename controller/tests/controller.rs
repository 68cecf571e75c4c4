//! Integration tests of the controller crate: the real bubblewrap sandbox
//! against hostile jobs. Each test must be able to fail: each asserts the
//! escape attempt was actually made (the job ran) and was contained.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use collective_controller::sandbox::{self, RunDir, SandboxLimits, SandboxSpec, Termination};
use tokio_util::sync::CancellationToken;

fn require_bwrap() {
    assert!(
        Path::new("/usr/bin/bwrap").exists(),
        "bubblewrap (/usr/bin/bwrap) is required: apt-get install bubblewrap"
    );
    assert!(
        Path::new("/usr/bin/python3").exists(),
        "/usr/bin/python3 is required for the sandbox tests"
    );
}

fn limits() -> SandboxLimits {
    SandboxLimits {
        cpu_seconds: 20,
        memory_bytes: 512 << 20,
        wall_seconds: 20,
        output_bytes: 1 << 20,
        processes: 32,
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    tree: std::path::PathBuf,
    data: std::path::PathBuf,
    runs: std::path::PathBuf,
}

fn fixture(script: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("job.py"), script).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("rows.csv"), "a,b\n1,2\n").unwrap();
    // The sandbox user must be able to traverse to the bind sources only
    // from the host side (bwrap binds as root); make them world-readable.
    for p in [tmp.path(), &tree, &data] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        tree.join("job.py"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(
        data.join("rows.csv"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let runs = tmp.path().join("runs");
    Fixture {
        _tmp: tmp,
        tree,
        data,
        runs,
    }
}

async fn run_script(
    script: &str,
    limits: SandboxLimits,
) -> (sandbox::SandboxRun, String, String, Fixture) {
    require_bwrap();
    let f = fixture(script);
    let spec = SandboxSpec {
        bwrap: "/usr/bin/bwrap".into(),
        tree_dir: f.tree.clone(),
        data_dir: Some(f.data.clone()),
        run_dir: f.runs.join("r1"),
        command: vec!["/usr/bin/python3".into(), "/job/job.py".into()],
        limits: limits.clone(),
        uid: sandbox::JOB_UID,
    };
    let rd = RunDir::prepare(&spec.run_dir, limits.output_bytes, sandbox::JOB_UID).unwrap();
    let run = sandbox::run(&spec, &rd, CancellationToken::new())
        .await
        .unwrap();
    let mut out = String::new();
    std::fs::File::open(&run.stdout)
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    std::fs::File::open(&run.stderr)
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // keep outputs readable before the RunDir guard drops
    for o in &run.outputs {
        assert!(o.path.exists());
    }
    std::mem::forget(rd);
    (run, out, err, f)
}

#[tokio::test]
async fn benign_job_reads_data_and_writes_out() {
    let (run, out, err, _f) = run_script(
        r#"
import os
rows = open('/data/rows.csv').read()
open('/out/result.txt', 'w').write(rows.upper())
print('uid', os.getuid(), 'env', sorted(os.environ.keys()))
"#,
        limits(),
    )
    .await;
    assert_eq!(run.termination, Termination::Exited(0), "stderr: {err}");
    assert!(out.contains("uid 65534"), "{out}");
    assert!(!out.contains("CARGO"), "environment leaked: {out}");
    assert_eq!(run.outputs.len(), 1);
    assert_eq!(
        std::fs::read_to_string(&run.outputs[0].path).unwrap(),
        "A,B\n1,2\n"
    );
    assert!(run.output_violation.is_none());
}

#[tokio::test]
async fn tcp_connect_to_host_loopback_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        r#"
import socket, sys
s = socket.socket()
s.settimeout(3)
try:
    s.connect(('127.0.0.1', {port}))
    print('CONNECTED')
except Exception as e:
    print('refused', type(e).__name__)
    sys.exit(3)
"#
    );
    let (run, out, err, _f) = run_script(&script, limits()).await;
    assert!(
        out.contains("refused"),
        "job did not attempt or succeeded: {out} {err}"
    );
    assert_eq!(run.termination, Termination::Exited(3));
    assert!(
        listener.accept().is_err(),
        "the host listener saw a connection"
    );
}

#[tokio::test]
async fn node_key_files_are_unreachable() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("node.key");
    std::fs::write(&key, "SECRET-KEY-MATERIAL").unwrap();
    let script = format!(
        r#"
import sys, os
paths = [{key:?}, '/proc/1/root' + {key:?}, '/etc/shadow', '/root/.ssh/id_rsa']
for p in paths:
    try:
        print('READ', p, open(p).read())
    except Exception as e:
        print('denied', p, type(e).__name__)
"#,
        key = key.display().to_string()
    );
    let (run, out, err, _f) = run_script(&script, limits()).await;
    assert_eq!(run.termination, Termination::Exited(0), "{err}");
    assert!(out.matches("denied").count() == 4, "{out}");
    assert!(!out.contains("SECRET-KEY-MATERIAL"));
}

#[tokio::test]
async fn writes_outside_out_fail() {
    let (run, out, err, f) = run_script(
        r#"
for p in ['/job/evil', '/data/evil', '/usr/evil', '/evil', '/proc/evil']:
    try:
        open(p, 'w').write('x')
        print('WROTE', p)
    except Exception as e:
        print('denied', p)
"#,
        limits(),
    )
    .await;
    assert_eq!(run.termination, Termination::Exited(0), "{err}");
    assert_eq!(out.matches("denied").count(), 5, "{out}");
    assert!(!f.tree.join("evil").exists());
    assert!(!f.data.join("evil").exists());
}

#[tokio::test]
async fn fork_bomb_is_contained() {
    let mut l = limits();
    l.wall_seconds = 8;
    let (run, out, _err, _f) = run_script(
        r#"
import os
n = 0
failed = 0
while n < 10000:
    try:
        if os.fork() == 0:
            try:
                os.execv('/usr/bin/sleep', ['sleep', '61.5'])
            finally:
                os._exit(0)
        n += 1
    except OSError:
        failed += 1
        if failed > 20: break
print('forked', n, 'failed', failed, flush=True)
"#,
        l,
    )
    .await;
    // Either the process limit stopped the forks early, or the wall clock
    // killed the whole pid namespace; never 10000 processes.
    let forked: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(forked < 64, "fork limit not applied: {out}");
    assert!(out.contains("failed"), "bomb did not run: {out}");
    assert!(!run.termination.success() || forked < 64);
    // No sandboxed process survives the run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ps = std::process::Command::new("pgrep")
        .args(["-u", "65534", "-f", "sleep 61.5"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "forked processes survived the sandbox"
    );
}

#[tokio::test]
async fn memory_past_limit_is_refused() {
    let mut l = limits();
    l.memory_bytes = 256 << 20;
    let (run, _out, err, _f) = run_script(
        r#"
x = bytearray(1024 * 1024 * 1024)
print('ALLOCATED')
"#,
        l,
    )
    .await;
    assert!(
        !run.termination.success(),
        "1 GiB allocation succeeded under a 256 MiB limit"
    );
    assert!(err.contains("MemoryError"), "{err}");
}

#[tokio::test]
async fn tmp_is_size_limited() {
    let mut l = limits();
    l.output_bytes = 1 << 20;
    let (run, out, err, _f) = run_script(
        r#"
import sys
try:
    # many files, each under RLIMIT_FSIZE: only the tmpfs size stops this
    for i in range(64):
        with open('/tmp/fill%d' % i, 'wb') as f:
            f.write(b'x' * (512 << 10))
except OSError as e:
    print('full', e.errno)
    sys.exit(7)
print('FILLED')
"#,
        l,
    )
    .await;
    assert!(
        !out.contains("FILLED"),
        "32 MiB written to /tmp under a 1 MiB cap: {out} {err}"
    );
    assert!(!run.termination.success());
}

#[tokio::test]
async fn wall_time_kills() {
    let mut l = limits();
    l.wall_seconds = 2;
    let started = std::time::Instant::now();
    let (run, _out, _err, _f) = run_script("import time\ntime.sleep(60)\n", l).await;
    assert_eq!(run.termination, Termination::WallTimeout);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn output_over_limit_is_refused() {
    let mut l = limits();
    l.output_bytes = 64 << 10;
    let (run, _out, _err, _f) = run_script(
        r#"
import sys
try:
    with open('/out/big', 'wb') as f:
        for i in range(64):
            f.write(b'x' * 65536)
except Exception as e:
    print('stopped', type(e).__name__)
    sys.exit(4)
"#,
        l,
    )
    .await;
    // Either the write was stopped (tmpfs full, SIGXFSZ) or the collected
    // total is refused; never 4 MiB of accepted output.
    let accepted: u64 = run.outputs.iter().map(|o| o.size).sum();
    assert!(
        !run.termination.success() || run.output_violation.is_some(),
        "oversized output accepted: {:?} total {accepted}",
        run.termination
    );
}

#[tokio::test]
async fn cancellation_kills_running_job() {
    require_bwrap();
    let f = fixture("import time\ntime.sleep(60)\n");
    let spec = SandboxSpec {
        bwrap: "/usr/bin/bwrap".into(),
        tree_dir: f.tree.clone(),
        data_dir: None,
        run_dir: f.runs.join("r"),
        command: vec!["/usr/bin/python3".into(), "/job/job.py".into()],
        limits: limits(),
        uid: sandbox::JOB_UID,
    };
    let rd = RunDir::prepare(&spec.run_dir, 1 << 20, sandbox::JOB_UID).unwrap();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    });
    let started = std::time::Instant::now();
    let run = sandbox::run(&spec, &rd, cancel).await.unwrap();
    assert_eq!(run.termination, Termination::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The repository source: local branch head, manifests from the object
/// database, a remote fetched into a mirror, materialization verified.
#[test]
fn repo_source_local_and_remote() {
    use collective_controller::repo::RepoSource;
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    std::fs::create_dir_all(origin.join("jobs/a")).unwrap();
    std::fs::write(
        origin.join("jobs/a/job.yaml"),
        "kind: batch\ncommand: [x]\n",
    )
    .unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    let local = RepoSource::local(&origin, "main");
    assert!(local.head().unwrap().is_none(), "no branch yet");
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "one"]);
    let head = local.head().unwrap().unwrap();
    let m = local.manifests_in_tree(head.tree).unwrap();
    assert_eq!(
        m,
        vec![("a".to_string(), "kind: batch\ncommand: [x]\n".to_string())]
    );
    assert_eq!(RepoSource::local(&origin, "other").head().unwrap(), None);

    let remote = RepoSource::remote(
        &format!("file://{}", origin.display()),
        &tmp.path().join("work"),
        "main",
    );
    assert!(remote.head().unwrap().is_none(), "nothing fetched yet");
    remote.refresh().unwrap();
    assert_eq!(remote.head().unwrap().unwrap().ids, head.ids);
    std::fs::write(origin.join("README"), "two").unwrap();
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "two"]);
    assert_eq!(
        remote.head().unwrap().unwrap().ids,
        head.ids,
        "a remote moves only on fetch"
    );
    remote.refresh().unwrap();
    let head2 = remote.head().unwrap().unwrap();
    assert_ne!(head2.ids, head.ids);

    let dest = tmp.path().join("deployed");
    remote.materialize(head2.tree, &dest).unwrap();
    assert_eq!(
        collective_tree::sha256_tree_of_dir(&dest).unwrap(),
        head2.ids.sha256
    );
}
