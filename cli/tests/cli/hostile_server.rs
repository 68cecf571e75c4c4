//! `collective audit` against hostile log servers: huge and endless
//! bodies, stalls, checkpoints claiming more than is served, and an honest
//! mirror that serves gzip. Each hostile case must end with exit 2 naming
//! the path, in bounded memory (peak RSS of the auditor is measured).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use collective_attest::{Decision, Log, Predicate, Subject};
use ed25519_dalek::SigningKey;

use crate::support;

const ORIGIN: &str = "collective.test/hostile";

/// What the server answers for a path.
enum Reply {
    /// The file from the log directory (404 if absent).
    File,
    /// The file, gzip-encoded (`Content-Encoding: gzip`).
    Gzip,
    /// `n` bytes of zeros, streamed, with a truthful Content-Length.
    Huge(u64),
    /// Zeros forever, chunked.
    Endless,
    /// Headers, then nothing, forever.
    Stall,
    /// These bytes.
    Bytes(Vec<u8>),
}

type Policy = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

fn serve(dir: PathBuf, policy: Policy) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let (dir, policy) = (dir.clone(), policy.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/");
                let path = path.trim_start_matches('/').to_string();
                let file = || {
                    std::fs::read(dir.join(&path))
                        .ok()
                        .filter(|_| !path.contains(".."))
                };
                let ok = |extra: &str, len: usize| {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n{extra}Connection: close\r\n\r\n")
                };
                let not_found =
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = match policy(&path) {
                    Reply::File => match file() {
                        Some(b) => s
                            .write_all(ok("", b.len()).as_bytes())
                            .and_then(|_| s.write_all(&b)),
                        None => s.write_all(not_found),
                    },
                    Reply::Gzip => match file() {
                        Some(b) => {
                            let z = gzip(&b);
                            s.write_all(ok("Content-Encoding: gzip\r\n", z.len()).as_bytes())
                                .and_then(|_| s.write_all(&z))
                        }
                        None => s.write_all(not_found),
                    },
                    Reply::Bytes(b) => s
                        .write_all(ok("", b.len()).as_bytes())
                        .and_then(|_| s.write_all(&b)),
                    Reply::Huge(n) => {
                        let chunk = vec![0u8; 1 << 16];
                        let mut r = s.write_all(ok("", n as usize).as_bytes());
                        let mut left = n;
                        while r.is_ok() && left > 0 {
                            let k = left.min(chunk.len() as u64) as usize;
                            r = s.write_all(&chunk[..k]);
                            left -= k as u64;
                        }
                        r
                    }
                    Reply::Endless => {
                        let mut r =
                            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                        let chunk = vec![0u8; 1 << 16];
                        while r.is_ok() {
                            r = s
                                .write_all(b"10000\r\n")
                                .and_then(|_| s.write_all(&chunk))
                                .and_then(|_| s.write_all(b"\r\n"));
                        }
                        r
                    }
                    Reply::Stall => {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
                        std::thread::sleep(std::time::Duration::from_secs(120));
                        Ok(())
                    }
                };
            });
        }
    });
    format!("http://{addr}")
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut c = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip is installed");
    c.stdin.take().unwrap().write_all(b).unwrap();
    c.wait_with_output().unwrap().stdout
}

fn honest_log(dir: &Path, n: u64) -> String {
    let mut log = Log::create_or_open(dir, ORIGIN, SigningKey::from_bytes(&[5; 32])).unwrap();
    let entries: Vec<(Subject, Predicate)> = (0..n)
        .map(|i| {
            (
                Subject {
                    tree_sha1: format!("{:040x}", i + 1),
                    tree_sha256: format!("{:064x}", i + 1),
                    commit: None,
                },
                Predicate::new(Decision::Refused, format!("entry {i}")),
            )
        })
        .collect();
    log.append(&entries).unwrap();
    log.verifier_key()
}

struct Run {
    code: i32,
    stdout: String,
    /// Peak resident set of the auditor, KiB.
    max_rss_kib: i64,
}

fn audit(url: &str, vkey: &str, extra: &[&str]) -> Run {
    // GNU time reports the auditor's own peak RSS (Debian package `time`).
    let rss = tempfile::NamedTempFile::new().unwrap();
    let bin = support::bin();
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(rss.path())
        .arg(bin.get_program())
        .args(["audit", "--log", url, "--log-key", vkey])
        .args(extra)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("/usr/bin/time (Debian package time)");
    let text = std::fs::read_to_string(rss.path()).unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr),
        max_rss_kib: text
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(i64::MAX),
    }
}

fn expect_hostile(r: &Run, needle: &str) {
    assert_eq!(
        r.code, 2,
        "expected exit 2 naming {needle:?}:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(needle),
        "report does not name {needle:?}:\n{}",
        r.stdout
    );
    assert!(
        r.max_rss_kib < 128 * 1024,
        "auditor peaked at {} KiB",
        r.max_rss_kib
    );
}

#[test]
fn huge_and_endless_bodies_are_cut_at_the_legal_size() {
    let dir = tempfile::tempdir().unwrap();
    let vkey = honest_log(dir.path(), 10);
    let url = serve(
        dir.path().to_path_buf(),
        Arc::new(|p| {
            if p.starts_with("tile/0/") {
                Reply::Huge(256 << 20)
            } else {
                Reply::File
            }
        }),
    );
    let r = audit(&url, &vkey, &[]);
    expect_hostile(&r, "[oversized-response]");
    assert!(r.stdout.contains("tile/0/000.p/10"), "{}", r.stdout);

    let url = serve(
        dir.path().to_path_buf(),
        Arc::new(|p| {
            if p == "checkpoint" {
                Reply::Endless
            } else {
                Reply::File
            }
        }),
    );
    expect_hostile(&audit(&url, &vkey, &[]), "checkpoint");

    let url = serve(
        dir.path().to_path_buf(),
        Arc::new(|p| {
            if p.starts_with("tile/entries/") {
                Reply::Huge(32 << 20)
            } else {
                Reply::File
            }
        }),
    );
    expect_hostile(&audit(&url, &vkey, &[]), "[oversized-response]");
}

#[test]
fn a_stalled_server_meets_the_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let vkey = honest_log(dir.path(), 10);
    let url = serve(
        dir.path().to_path_buf(),
        Arc::new(|p| {
            if p.starts_with("tile/entries/") {
                Reply::Stall
            } else {
                Reply::File
            }
        }),
    );
    let r = audit(&url, &vkey, &["--request-timeout", "1"]);
    expect_hostile(&r, "[deadline]");
    assert!(r.stdout.contains("per-request"), "{}", r.stdout);
    let r = audit(&url, &vkey, &["--request-timeout", "30", "--deadline", "1"]);
    expect_hostile(&r, "overall");
}

#[test]
fn a_checkpoint_claiming_more_than_is_served_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let vkey = honest_log(dir.path(), 10);
    let key = SigningKey::from_bytes(&[5; 32]);
    for claimed in [1u64 << 24, 1 << 30, 1 << 40] {
        let cp =
            collective_attest::sign_checkpoint(ORIGIN, claimed, tlog_tiles::Hash([7; 32]), &key)
                .unwrap();
        let url = serve(
            dir.path().to_path_buf(),
            Arc::new(move |p| {
                if p == "checkpoint" {
                    Reply::Bytes(cp.clone())
                } else {
                    Reply::File
                }
            }),
        );
        let r = audit(&url, &vkey, &[]);
        assert_eq!(r.code, 2, "{}", r.stdout);
        assert!(
            r.stdout
                .contains("serves neither entries nor hashes from entry 0")
                || r.stdout.contains("refusing to audit more than"),
            "{claimed}: {}",
            r.stdout
        );
        assert!(
            r.max_rss_kib < 128 * 1024,
            "{claimed}: {} KiB",
            r.max_rss_kib
        );
    }
}

#[test]
fn a_gzip_mirror_is_read_transparently() {
    let dir = tempfile::tempdir().unwrap();
    let vkey = honest_log(dir.path(), 300);
    let url = serve(dir.path().to_path_buf(), Arc::new(|_| Reply::Gzip));
    let r = audit(&url, &vkey, &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("VERIFIED: 300 entries"), "{}", r.stdout);
}

#[test]
fn the_report_summarizes_and_entries_lists_all() {
    let dir = tempfile::tempdir().unwrap();
    let vkey = honest_log(dir.path(), 300);
    let url = serve(dir.path().to_path_buf(), Arc::new(|_| Reply::File));
    let r = audit(&url, &vkey, &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("decisions: refused 300"), "{}", r.stdout);
    let listed = r
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    assert!(
        listed > 0 && listed <= 20,
        "{listed} entries listed by default"
    );
    let r = audit(&url, &vkey, &["--entries"]);
    let listed = r
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    assert_eq!(listed, 300, "{}", r.stdout);
}
