//! The sandbox's baseline: each test makes the job actually attempt the
//! escape (it prints that it tried) and checks it was contained.

use std::time::Duration;

use collective_controller::sandbox::Termination;
use tokio_util::sync::CancellationToken;

use crate::support::job;

#[tokio::test]
async fn sandbox_benign_job_reads_data_and_writes_out() {
    let mut r = job(r#"
import os
rows = open('/data/rows.csv').read()
open('/out/result.txt', 'w').write(rows.upper())
print('uid', os.getuid(), 'env', sorted(os.environ.keys()))
"#)
    .outputs(&["result.txt"])
    .run()
    .await;
    assert_eq!(
        r.run.termination,
        Termination::Exited(0),
        "stderr: {}",
        r.err
    );
    assert!(r.out.contains("uid 65534"), "{}", r.out);
    assert!(!r.out.contains("CARGO"), "environment leaked: {}", r.out);
    assert_eq!(r.names(), ["result.txt"]);
    assert_eq!(r.read("result.txt"), b"A,B\n1,2\n");
}

#[tokio::test]
async fn sandbox_tcp_connect_to_host_loopback_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = job(&format!(
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
    ))
    .run()
    .await;
    assert!(r.out.contains("refused"), "{} {}", r.out, r.err);
    assert_eq!(r.run.termination, Termination::Exited(3));
    assert!(
        listener.accept().is_err(),
        "the host listener saw a connection"
    );
}

#[tokio::test]
async fn sandbox_node_key_files_are_unreachable() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("node.key");
    std::fs::write(&key, "SECRET-KEY-MATERIAL").unwrap();
    let r = job(&format!(
        r#"
paths = [{key:?}, '/proc/1/root' + {key:?}, '/etc/shadow', '/root/.ssh/id_rsa']
for p in paths:
    try:
        print('READ', p, open(p).read())
    except Exception as e:
        print('denied', p, type(e).__name__)
"#,
        key = key.display().to_string()
    ))
    .run()
    .await;
    assert_eq!(r.run.termination, Termination::Exited(0), "{}", r.err);
    assert_eq!(r.out.matches("denied").count(), 4, "{}", r.out);
    assert!(!r.out.contains("SECRET-KEY-MATERIAL"));
}

#[tokio::test]
async fn sandbox_writes_outside_out_fail() {
    let j = job(r#"
for p in ['/job/evil', '/data/evil', '/usr/evil', '/evil', '/proc/evil', '/etc/evil', '/dev/evil']:
    try:
        open(p, 'w').write('x')
        print('WROTE', p)
    except Exception as e:
        print('denied', p)
"#);
    let r = j.run().await;
    assert_eq!(r.run.termination, Termination::Exited(0), "{}", r.err);
    assert_eq!(r.out.matches("denied").count(), 7, "{}", r.out);
    assert!(!j.tree.join("evil").exists());
    assert!(!j.data.join("evil").exists());
}

#[tokio::test]
async fn sandbox_fork_bomb_is_contained() {
    let r = job(r#"
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
"#)
    .limits(|l| l.wall_seconds = 8)
    .run()
    .await;
    let forked: u64 = r
        .out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(forked < 64, "fork limit not applied: {}", r.out);
    assert!(r.out.contains("failed"), "bomb did not run: {}", r.out);
    // run() returns only once the job's cgroup is empty: nothing survives.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "sleep 61.5"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "forked processes survived the sandbox"
    );
}

#[tokio::test]
async fn sandbox_memory_past_limit_is_refused() {
    let r = job("x = bytearray(1024 * 1024 * 1024)\nprint('ALLOCATED')\n")
        .limits(|l| l.memory_bytes = 256 << 20)
        .run()
        .await;
    assert!(!r.run.termination.success(), "1 GiB under a 256 MiB limit");
    assert!(!r.out.contains("ALLOCATED"));
}

#[tokio::test]
async fn sandbox_tmp_is_size_limited() {
    let r = job(r#"
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
"#)
    .run()
    .await;
    assert!(r.out.contains("full"), "{} {}", r.out, r.err);
    assert_eq!(r.run.termination, Termination::Exited(7));
}

#[tokio::test]
async fn sandbox_wall_time_kills() {
    let started = std::time::Instant::now();
    let r = job("import time\ntime.sleep(60)\n")
        .limits(|l| l.wall_seconds = 2)
        .run()
        .await;
    assert_eq!(r.run.termination, Termination::WallTimeout);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn sandbox_output_is_bounded_while_the_job_runs() {
    let r = job(r#"
import sys
n = 0
try:
    for i in range(1000):
        with open('/out/part%d' % i, 'wb') as f:
            f.write(b'x' * 65536)
        n += 1
except OSError as e:
    print('stopped after', n, e.errno)
    sys.exit(4)
print('WROTE ALL')
"#)
    .limits(|l| l.output_bytes = 256 << 10)
    .outputs(&["part*"])
    .run()
    .await;
    assert!(r.out.contains("stopped after"), "{} {}", r.out, r.err);
    assert!(r.run.outputs.total <= 256 << 10, "{}", r.run.outputs.total);
}

#[tokio::test]
async fn sandbox_cancellation_kills_running_job() {
    let j = job("import time\ntime.sleep(60)\n");
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    });
    let r = j.run_with(cancel).await;
    assert_eq!(r.run.termination, Termination::Cancelled);
}
