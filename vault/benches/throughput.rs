//! Encrypt and decrypt throughput of the vault against the stock `age` CLI,
//! on the same file in the same run, plus peak RSS of each.
//!
//! Run: `cargo bench -p collective-vault --bench throughput`
//! Size: `VAULT_BENCH_BYTES` (default 1 GiB). Work directory:
//! `VAULT_BENCH_DIR` (default the system temporary directory).
//!
//! A third line gives the vault's crypto alone (memory to memory, one
//! thread, no file I/O), the ceiling of its file pipeline.
//!
//! Both sides encrypt to the same X25519 recipient (made by `age-keygen`) and
//! decrypt the same ciphertext (made by `age`), file to file. Each
//! measurement is the best of `VAULT_BENCH_RUNS` runs (default 2). The
//! vault's peak RSS is this process's `VmHWM` (it holds nothing else large);
//! age's is the largest `ru_maxrss` of its child processes.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn children_maxrss_kib() -> u64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss() as u64)
        .unwrap_or(0)
}

fn best(runs: u64, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs.max(1)).map(|_| f()).min().unwrap()
}

fn age(args: &[&std::ffi::OsStr]) -> Duration {
    let start = Instant::now();
    let out = Command::new("age")
        .args(args)
        .output()
        .expect("the stock `age` CLI is required (Debian package `age`)");
    let t = start.elapsed();
    assert!(
        out.status.success(),
        "age {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t
}

fn mib_s(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / t.as_secs_f64()
}

fn write_input(path: &Path, len: u64) {
    // Pseudo-random bytes: incompressible, like real data after compression.
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let bytes = env_u64("VAULT_BENCH_BYTES", 1 << 30);
    let runs = env_u64("VAULT_BENCH_RUNS", 2);
    let base = std::env::var_os("VAULT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("vault-bench-")
        .tempdir_in(&base)
        .unwrap();
    let d = dir.path();
    let input = d.join("input.bin");
    write_input(&input, bytes);

    let key = d.join("key.txt");
    let status = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age-keygen (Debian package `age`)");
    assert!(status.status.success());
    let key_text = std::fs::read_to_string(&key).unwrap();
    let secret = key_text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let identity = age::x25519::Identity::from_str(secret).unwrap();
    let recipient = identity.to_public().to_string();
    let hwm_before = vm_hwm_kib();

    let ct_age = d.join("age.age");
    let ct_vault = d.join("vault.age");
    let pt_age = d.join("age.out");
    let pt_vault = d.join("vault.out");

    let enc_age = best(runs, || {
        age(&[
            "-r".as_ref(),
            recipient.as_ref(),
            "-o".as_ref(),
            ct_age.as_os_str(),
            input.as_os_str(),
        ])
    });
    let enc_vault = best(runs, || {
        let start = Instant::now();
        collective_vault::encrypt_file(&input, &ct_vault, std::slice::from_ref(&recipient))
            .unwrap();
        start.elapsed()
    });
    let dec_age = best(runs, || {
        age(&[
            "-d".as_ref(),
            "-i".as_ref(),
            key.as_os_str(),
            "-o".as_ref(),
            pt_age.as_os_str(),
            ct_age.as_os_str(),
        ])
    });
    let dec_vault = best(runs, || {
        let start = Instant::now();
        collective_vault::decrypt_file(&ct_age, &pt_vault, &identity).unwrap();
        start.elapsed()
    });
    // Sanity: both decrypt to the input, and each reads the other's output.
    assert_eq!(
        std::fs::metadata(&pt_vault).unwrap().len(),
        bytes,
        "vault plaintext size"
    );
    age(&[
        "-d".as_ref(),
        "-i".as_ref(),
        key.as_os_str(),
        "-o".as_ref(),
        pt_age.as_os_str(),
        ct_vault.as_os_str(),
    ]);
    assert_eq!(std::fs::metadata(&pt_age).unwrap().len(), bytes);

    // Peak RSS of the file pipeline, before the in-memory runs below hold a
    // whole ciphertext.
    let vault_rss = vm_hwm_kib();

    // The crypto alone, memory to memory on one thread: the ceiling of the
    // file pipeline.
    let mem_enc = best(runs, || {
        let start = Instant::now();
        use std::io::Read as _;
        collective_vault::encrypt_stream(
            std::io::repeat(7).take(bytes),
            std::io::sink(),
            std::slice::from_ref(&recipient),
        )
        .unwrap();
        start.elapsed()
    });
    let ct_bytes = std::fs::read(&ct_age).unwrap();
    let mem_dec = best(runs, || {
        let start = Instant::now();
        collective_vault::decrypt_stream(&ct_bytes[..], std::io::sink(), &identity).unwrap();
        start.elapsed()
    });
    drop(ct_bytes);

    let age_rss = children_maxrss_kib();
    let gib = bytes as f64 / (1u64 << 30) as f64;
    println!(
        "vault throughput vs stock age {} (best of {runs}, {gib:.2} GiB file, dir {})",
        age_version(),
        base.display()
    );
    println!(
        "{:<10} {:>12} {:>12} {:>8}",
        "op", "vault MiB/s", "age MiB/s", "ratio"
    );
    for (op, v, a) in [
        ("encrypt", enc_vault, enc_age),
        ("decrypt", dec_vault, dec_age),
    ] {
        println!(
            "{:<10} {:>12.0} {:>12.0} {:>7.2}x",
            op,
            mib_s(bytes, v),
            mib_s(bytes, a),
            a.as_secs_f64() / v.as_secs_f64()
        );
    }
    println!(
        "vault memory-to-memory, one thread (no file I/O): encrypt {:.0} MiB/s, decrypt {:.0} MiB/s",
        mib_s(bytes, mem_enc),
        mib_s(bytes, mem_dec)
    );
    println!(
        "peak RSS   vault {:.1} MiB (process, {:.1} MiB before the runs), age {:.1} MiB",
        vault_rss as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
        age_rss as f64 / 1024.0
    );
}

fn age_version() -> String {
    Command::new("age")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
