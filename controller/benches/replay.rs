//! Benchmark: node start-up's log replay (`Journal::open`: open the log,
//! prove its checkpoint, verify every entry's signature, rebuild the state)
//! for a 100,000-entry log, against the floor any verifier pays: raw
//! Ed25519 verification of as many signatures (ed25519-dalek, one core).
//!
//! Run: `cargo bench -p collective-controller --bench replay`
//! (`COLLECTIVE_BENCH_ENTRIES` overrides the size).

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use collective_attest::{Decision, Log, Predicate, SigningKey, Subject};
use collective_controller::config::InterruptedPolicy;
use collective_controller::journal::Journal;
use collective_controller::status::Metrics;
use ed25519_dalek::{Signer, Verifier};

fn main() {
    let n: u64 = std::env::var("COLLECTIVE_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let key = SigningKey::from_bytes(&[5; 32]);
    let t = Instant::now();
    {
        let mut log = Log::create_or_open(&dir, "bench.example/node", key.clone()).expect("log");
        let subject = Subject {
            tree_sha1: "a".repeat(40),
            tree_sha256: "b".repeat(64),
            commit: None,
        };
        let mut left = n;
        let mut i = 0u64;
        while left > 0 {
            let batch: Vec<(Subject, Predicate)> = (0..left.min(1000))
                .map(|_| {
                    i += 1;
                    let mut p = Predicate::new(
                        if i % 2 == 0 {
                            Decision::JobStarted
                        } else {
                            Decision::JobFinished
                        },
                        format!("entry {i}"),
                    );
                    p.job = Some(format!("job{}", i % 7));
                    (subject.clone(), p)
                })
                .collect();
            left -= batch.len() as u64;
            log.append(&batch).expect("append");
        }
    }
    println!(
        "built a {n}-entry log in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut replay = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let j = Journal::open(
            &dir,
            "bench.example/node",
            key.clone(),
            "policy".into(),
            InterruptedPolicy::Fail,
            Arc::new(Metrics::default()),
        )
        .expect("journal");
        replay.push(t.elapsed().as_secs_f64());
        assert_eq!(j.head().0, n);
    }
    replay.sort_by(|a, b| a.partial_cmp(b).unwrap());

    // Reference: verify n signatures of entry-sized messages.
    let msg = vec![0x42u8; 400];
    let sig = key.sign(&msg);
    let vk = key.verifying_key();
    let t = Instant::now();
    for _ in 0..n {
        vk.verify(&msg, &sig).expect("verifies");
    }
    let raw = t.elapsed().as_secs_f64();
    let r = replay[1];
    println!("entries  replay p50 s  raw verify s  entries/s replay  ratio (replay/raw)");
    println!(
        "{n:<8} {r:>12.2} {raw:>13.2} {:>17.0} {:>8.2}x",
        n as f64 / r,
        r / raw
    );
}
