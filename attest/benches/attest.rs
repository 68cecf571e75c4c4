//! Benchmark of the log (run: `cargo bench -p collective-attest --bench attest`).
//!
//! - append throughput, one fsync'd commit per entry vs batched commits;
//! - audit throughput of a log of ATTEST_BENCH_ENTRIES entries (default
//!   1,000,000), as a ratio to the raw Ed25519 verify rate measured in the
//!   same run on the same machine (the reference: an audit must verify one
//!   signature per entry, so that rate is its ceiling);
//! - proof sizes.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use collective_attest::tiles::DirSource;
use collective_attest::{audit, ApprovalRef, AuditOptions, Decision, Log, Predicate, Subject};
use ed25519_dalek::{Signer, SigningKey};

const ORIGIN: &str = "bench.collective/node";

fn entry(i: u64) -> (Subject, Predicate) {
    let s = Subject {
        tree_sha1: format!("{:040x}", i + 1),
        tree_sha256: format!("{:064x}", i + 1),
        commit: Some(format!("{:040x}", i + 7)),
    };
    let mut p = Predicate::new(Decision::Deployed, "approved on chain; policy allowed");
    p.approval = Some(ApprovalRef {
        chain_id: 31337,
        contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
        tx_hash: format!("0x{:064x}", i),
        block_number: i,
        block_hash: format!("0x{:064x}", i + 3),
    });
    p.policy_digest = Some("ab".repeat(32));
    (s, p)
}

fn rate(n: u64, secs: f64) -> f64 {
    n as f64 / secs
}

fn main() {
    let entries: u64 = std::env::var("ATTEST_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let key = SigningKey::from_bytes(&[7; 32]);
    let base = std::env::var_os("ATTEST_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(&base).expect("temp dir");
    println!("attest benchmark (log directory under {})", base.display());

    // 1. Append throughput.
    let single = tmp.path().join("single");
    let mut log = Log::create_or_open(&single, ORIGIN, key.clone()).unwrap();
    let n1 = 300;
    let t = Instant::now();
    for i in 0..n1 {
        log.append(&[entry(i)]).unwrap();
    }
    let per_entry = rate(n1, t.elapsed().as_secs_f64());
    let batched_dir = tmp.path().join("batched");
    let mut log = Log::create_or_open(&batched_dir, ORIGIN, key.clone()).unwrap();
    let n2 = 20_000;
    let batch: Vec<_> = (0..256).map(entry).collect();
    let t = Instant::now();
    for _ in 0..n2 / 256 {
        log.append(&batch).unwrap();
    }
    let batched = rate(n2 / 256 * 256, t.elapsed().as_secs_f64());
    println!("append, fsync per entry      : {per_entry:>10.0} entries/s");
    println!(
        "append, batches of 256       : {batched:>10.0} entries/s  ({:.1}x)",
        batched / per_entry
    );
    drop(log);

    // 2. Raw Ed25519 verify rate (reference), over messages the size of a
    // DSSE PAE. Measured before and after the audit; the faster run is the
    // reference, so machine noise can only make the ratio look worse.
    let raw_before = raw_verify_rate(&key);
    println!("raw ed25519 verify_strict    : {raw_before:>10.0} /s  (reference, before the audit)");

    // 3. Audit throughput on a big log.
    let big = tmp.path().join("big");
    let mut log = Log::create_or_open(&big, ORIGIN, key.clone()).unwrap();
    let t = Instant::now();
    let mut done = 0;
    while done < entries {
        let k = (entries - done).min(8192);
        let b: Vec<_> = (done..done + k).map(entry).collect();
        log.append(&b).unwrap();
        done += k;
    }
    let build = t.elapsed().as_secs_f64();
    let vkey = log.verifier_key();
    println!(
        "built a log of {entries} entries in {build:.1}s ({:.0} entries/s, batches of 8192)",
        rate(entries, build)
    );
    let t = Instant::now();
    let report = audit(
        &DirSource::new(&big),
        &vkey,
        None,
        AuditOptions {
            keep_entries: false,
            keep_distinct: false,
            keep_all: false,
            max_failures: 10,
        },
    )
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(report.entries_verified, entries);
    let audit_rate = rate(entries, secs);
    let raw_after = raw_verify_rate(&key);
    let raw_verify = raw_before.max(raw_after);
    println!("raw ed25519 verify_strict    : {raw_after:>10.0} /s  (reference, after the audit)");
    println!(
        "full audit of {entries} entries: {secs:.1}s = {audit_rate:.0} entries/s = {:.0}% of the raw ed25519 verify rate",
        100.0 * audit_rate / raw_verify
    );

    // 4. Sizes.
    let bundle = log.prove(entries / 2).unwrap();
    let bundle_json = serde_json::to_vec(&bundle).unwrap();
    let entry_len = log.entry_bytes(entries / 2).unwrap().len();
    println!("entry (DSSE envelope)        : {entry_len} bytes");
    println!(
        "checkpoint (signed note)     : {} bytes",
        log.checkpoint_text().unwrap().len()
    );
    println!(
        "inclusion proof at size {entries}: {} hashes = {} bytes; proof bundle JSON {} bytes",
        bundle.inclusion_proof.len(),
        bundle.inclusion_proof.len() * 32,
        bundle_json.len()
    );
    let cp = collective_attest::verify_checkpoint(log.checkpoint_text().unwrap().as_bytes(), &vkey)
        .unwrap();
    let src = DirSource::new(&big);
    for old in [1u64, 1000, entries / 2 + 1] {
        // The old tree's root, read from tiles authenticated against the checkpoint.
        let tiles = collective_attest::tiles::SourceTileReader::new(&src);
        let thr = tlog_tiles::TileHashReader::new(cp.size(), *cp.hash(), &tiles);
        let old_root = tlog_tiles::tree_hash(old, &thr).unwrap();
        let (proof, ok) = collective_attest::verify::consistency(&src, &cp, old, old_root).unwrap();
        assert!(ok);
        println!(
            "consistency proof {old} -> {entries}: {} hashes = {} bytes",
            proof.len(),
            proof.len() * 32
        );
    }
    // 5. Peak RSS of the `collective audit` binary (streaming: it should
    // not grow with the log). Measured by GNU time on a small and the big log.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = ["target/release/collective", "target/debug/collective"]
        .iter()
        .map(|b| root.join(b))
        .find(|b| b.exists());
    match bin {
        Some(bin) if std::path::Path::new("/usr/bin/time").exists() => {
            for (dir, n) in [(&batched_dir, n2 / 256 * 256), (&big, entries)] {
                let rss = tmp.path().join("rss");
                let st = std::process::Command::new("/usr/bin/time")
                    .args(["-f", "%M", "-o"])
                    .arg(&rss)
                    .arg(&bin)
                    .args(["audit", "--log"])
                    .arg(dir)
                    .args(["--log-key", &vkey])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .unwrap();
                let kib: u64 = std::fs::read_to_string(&rss)
                    .unwrap()
                    .lines()
                    .last()
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0);
                println!(
                    "collective audit, {n:>8} entries: peak RSS {:.1} MiB (exit {})",
                    kib as f64 / 1024.0,
                    st.code().unwrap_or(-1)
                );
            }
        }
        _ => {
            println!("(build `collective` and install GNU time to measure the auditor's peak RSS)")
        }
    }
    let du: u64 = walk(&big);
    println!(
        "log on disk                  : {:.1} MB ({:.0} bytes/entry)",
        du as f64 / 1e6,
        du as f64 / entries as f64
    );
}

fn raw_verify_rate(key: &SigningKey) -> f64 {
    let msgs: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| format!("{i:0>1000}").into_bytes())
        .collect();
    let sigs: Vec<_> = msgs.iter().map(|m| key.sign(m)).collect();
    let vk = key.verifying_key();
    let t = Instant::now();
    for (m, s) in msgs.iter().zip(&sigs) {
        vk.verify_strict(m, s).unwrap();
    }
    rate(msgs.len() as u64, t.elapsed().as_secs_f64())
}

fn walk(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() { walk(&e.path()) } else { m.len() };
    }
    n
}
