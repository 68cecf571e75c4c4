//! The five holes a hostile-job suite found, each as a job that really
//! attempts the attack (and says so), and the check that it was contained.

use collective_controller::sandbox::{self, Termination};

use crate::support::{job, mode};

/// Swappers the race jobs start: they replace declared outputs with
/// symlinks to host secrets in a tight loop, and one of them does so the
/// moment it sees anyone open a file in `/out` (inotify), which is when a
/// collector racing the job would read.
const SWAPPERS: &str = r#"
import os, sys, time, ctypes, struct
N = 200
TARGETS = [SECRET, '/proc/1/environ', '/proc/self/environ', '/job/job.py']
for i in range(N):
    with open('/out/f%d' % i, 'w') as f:
        f.write('REGULAR\n')
def swap_all(k):
    for i in range(N):
        t = TARGETS[(i + k) % len(TARGETS)]
        try:
            os.symlink(t, '/out/.s%d-%d' % (i, os.getpid()))
            os.rename('/out/.s%d-%d' % (i, os.getpid()), '/out/f%d' % i)
        except OSError:
            pass
def swapper(k):
    while True:
        swap_all(k)
def watcher():
    libc = ctypes.CDLL('libc.so.6', use_errno=True)
    fd = libc.inotify_init1(0)
    libc.inotify_add_watch(fd, b'/out', 0x20 | 0x01)  # IN_OPEN | IN_ACCESS
    while True:
        os.read(fd, 4096)
        print('SAW_OPEN', flush=True)
        swap_all(0)
for k in range(3):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            swapper(k)
        os._exit(0)
if os.fork() == 0:
    watcher()
print('SWAPPING', flush=True)
if MODE == 'sleep':
    time.sleep(600)
"#;

async fn race_once(secret: &std::path::Path, variant: &str) -> (usize, usize) {
    let script = SWAPPERS
        .replace("SECRET", &format!("{:?}", secret.display().to_string()))
        .replace("MODE", &format!("{variant:?}"));
    let mut r = job(&script)
        .outputs(&["f*"])
        .limits(|l| l.wall_seconds = 1)
        .run()
        .await;
    assert!(
        r.out.contains("SWAPPING"),
        "the attack did not run: {} {}",
        r.out,
        r.err
    );
    assert!(
        !r.out.contains("SAW_OPEN"),
        "outputs were opened while the job lived"
    );
    let names: Vec<String> = r.names().iter().map(|s| s.to_string()).collect();
    for n in &names {
        let body = r.read(n);
        assert_eq!(
            body,
            b"REGULAR\n",
            "{n} was read through a link: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    (names.len(), r.run.outputs.not_regular)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_output_symlink_race_never_reads_through_a_link() {
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("node.key");
    std::fs::write(&secret, "AGE-SECRET-KEY-NODE").unwrap();
    let (mut regular, mut links) = (0, 0);
    for i in 0..6 {
        // Killed at the wall clock while swapping, and exited at once
        // leaving daemonized swappers behind.
        let variant = if i % 2 == 0 { "sleep" } else { "exit" };
        let (a, b) = race_once(&secret, variant).await;
        regular += a;
        links += b;
    }
    // The race was real: declared names were links when collection came.
    assert!(links > 0, "no swap ever landed; the test proves nothing");
    assert!(regular + links > 0);
}

#[tokio::test]
async fn sandbox_output_names_never_carry_job_data() {
    let r = job(r#"
import os
open('/out/model.json', 'w').write('{}')
for name in ['ROW-alice-1970-01-01-diabetic', 'a\nb', 'x' * 200, '.hidden']:
    open('/out/' + name, 'w').write('x')
os.close(os.open(b'/out/\xff\xfe', os.O_CREAT | os.O_WRONLY))
os.mkdir('/out/dir-alice')
print('WROTE')
"#)
    .outputs(&["model.json", "*.csv"])
    .run()
    .await;
    assert!(r.out.contains("WROTE"), "{}", r.err);
    assert_eq!(r.names(), ["model.json"]);
    assert_eq!(r.run.outputs.dropped, 6);
    let shown = format!("{:?}", r.run.outputs);
    assert!(
        !shown.contains("alice"),
        "a job-chosen name leaked: {shown}"
    );
}

#[tokio::test]
async fn sandbox_ten_thousand_outputs_are_bounded() {
    let r = job(r#"
import os
os.mkdir('/out/shards')
for i in range(10000):
    open('/out/f%05d' % i, 'w').close()
for i in range(100):
    open('/out/shards/x-%d' % i, 'w').close()
print('MADE')
"#)
    .outputs(&["f*", "shards/x-*"])
    .limits(|l| l.processes = 8)
    .run()
    .await;
    assert!(r.out.contains("MADE"), "{}", r.err);
    assert_eq!(
        r.run.outputs.files.len(),
        collective_policy::outputs::MAX_COLLECTED
    );
    assert_eq!(
        r.run.outputs.dropped,
        10_100 - collective_policy::outputs::MAX_COLLECTED
    );
}

#[tokio::test]
async fn sandbox_inherits_no_descriptor_beyond_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("supervisor.log");
    // A descriptor the node holds without close-on-exec, as one inherited
    // from a supervisor would be.
    let fd = nix::fcntl::open(
        &host,
        nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_WRONLY,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let r = job(r#"
import os
present = []
for fd in range(3, 4096):
    try:
        os.fstat(fd)
        present.append(fd)
        os.write(fd, b'LEAKED ROWS')
    except OSError:
        pass
print('FDS', present)
"#)
    .run()
    .await;
    assert!(
        r.out.contains("FDS []"),
        "descriptors reached the job: {} {}",
        r.out,
        r.err
    );
    assert_eq!(
        std::fs::read(&host).unwrap(),
        b"",
        "the job wrote through fd {fd}"
    );
    let _ = nix::unistd::close(fd);
}

#[tokio::test]
async fn sandbox_denies_namespaces_mounts_ptrace_and_kernel_surface() {
    let r = job(r#"
import ctypes, os, subprocess
libc = ctypes.CDLL('libc.so.6', use_errno=True)
def sc(nr, *a):
    r = libc.syscall(nr, *a)
    return ctypes.get_errno() if r == -1 else 0
res = {
  'unshare_user': sc(272, 0x10000000),
  'unshare_ns': sc(272, 0x00020000),
  'mount': libc.mount(b'tmpfs', b'/tmp', b'tmpfs', 0, None) == 0,
  'ptrace': sc(101, 16, 1, 0, 0),
  'bpf': sc(321, 0, 0, 0),
  'perf': sc(298, 0, 0, -1, -1, 0),
  'keyctl': sc(250, 0, 0, 0),
  'userfaultfd': sc(323, 0),
  'io_uring': sc(425, 1, 0),
  'clone3': sc(435, 0, 0),
  'x32_unshare': sc(0x40000000 + 272, 0x10000000),
  'vsock': sc(41, 40, 1, 0),
  'af_alg': sc(41, 38, 5, 0),
  'af_packet': sc(41, 17, 3, 0),
}
import socket
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
res['inet_ok'] = True
try:
    subprocess.run(['/usr/bin/unshare', '-r', 'true'], check=True, capture_output=True)
    res['unshare_cmd'] = 'ran'
except Exception as e:
    res['unshare_cmd'] = 'refused'
open('/out/cat', 'wb').write(open('/usr/bin/cat', 'rb').read())
try:
    os.chmod('/out/cat', 0o4755)
except OSError as e:
    res['setuid'] = e.errno
res['suid_bits'] = oct(os.stat('/out/cat').st_mode & 0o6000)
for l in open('/proc/self/mountinfo'):
    f = l.split()
    if f[4] in ('/out', '/tmp', '/dev/shm'):
        res['opts' + f[4]] = f[5]
print('RES', res)
"#)
    .run()
    .await;
    let out = &r.out;
    assert!(out.contains("RES"), "{out} {}", r.err);
    for k in [
        "'unshare_user': 1",
        "'unshare_ns': 1",
        "'mount': False",
        "'ptrace': 1",
        "'bpf': 1",
        "'perf': 1",
        "'keyctl': 1",
        "'userfaultfd': 1",
        "'io_uring': 1",
        "'clone3': 38",
        "'x32_unshare': 38",
        "'vsock': 1",
        "'af_alg': 1",
        "'af_packet': 1",
        "'inet_ok': True",
        "'unshare_cmd': 'refused'",
        "'setuid': 1",
        "'suid_bits': '0o0'",
    ] {
        assert!(out.contains(k), "missing {k} in {out}");
    }
    for m in ["/out", "/tmp", "/dev/shm"] {
        let opts = out
            .split(&format!("'opts{m}': '"))
            .nth(1)
            .unwrap_or("")
            .split('\'')
            .next()
            .unwrap_or("");
        assert!(
            opts.contains("nosuid") && opts.contains("nodev"),
            "{m}: {opts}"
        );
    }
}

#[tokio::test]
async fn sandbox_tmpfs_writes_count_against_the_memory_limit() {
    // Each MiB written is reported as it lands: the job is expected to be
    // OOM-killed mid-way, so the last report is what it got.
    let r = job(r#"
import os
n = 0
try:
    for d in ['/tmp', '/dev/shm', '/out']:
        for i in range(128):
            with open('%s/fill%d' % (d, i), 'wb') as f:
                f.write(b'x' * (1 << 20))
            n += 1
            print('MiB', n, flush=True)
except OSError as e:
    print('stopped', e.errno, flush=True)
print('DONE', n, flush=True)
"#)
    .limits(|l| {
        l.memory_bytes = 128 << 20;
        l.output_bytes = 512 << 20;
    })
    .run()
    .await;
    let wrote: u64 = r
        .out
        .lines()
        .filter_map(|l| l.strip_prefix("MiB ")?.trim().parse().ok())
        .max()
        .unwrap_or(0);
    assert!(
        wrote > 16,
        "the job did not get to write: {} {} {:?}",
        r.out,
        r.err,
        r.run.termination
    );
    assert!(
        wrote < 128,
        "{wrote} MiB of tmpfs under a 128 MiB limit: {}",
        r.out
    );
    assert!(
        r.run.memory_limit_hit,
        "the cgroup did not record the limit: {}",
        r.out
    );
}

#[tokio::test]
async fn sandbox_mountinfo_shows_no_host_path() {
    let j =
        job("print(open('/proc/self/mountinfo').read())\nprint(open('/data/rows.csv').read())\n");
    let runs = tempfile::tempdir().unwrap();
    let rd = sandbox::RunDir::prepare(&runs.path().join("r"), mode()).unwrap();
    let data = rd.plain_base(runs.path()).join("plain");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("rows.csv"), "alice,1\n").unwrap();
    let mut spec = j.spec();
    spec.data_dir = Some(data);
    let run = sandbox::run(&spec, crate::support::cgroups(), Default::default())
        .await
        .unwrap();
    let info = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.termination,
        Termination::Exited(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        info.contains(" /job ") && info.contains("alice,1"),
        "{info}"
    );
    for host in [
        runs.path(),
        j.tmp.path(),
        j.tree.as_path(),
        std::path::Path::new("/dev/shm/"),
    ] {
        let h = host.display().to_string();
        assert!(!info.contains(&h), "host path {h} in mountinfo:\n{info}");
    }
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(&rd.dir).unwrap().permissions().mode();
    assert_eq!(m & 0o777, 0o700, "run dir must be private");
}
