//! Prints one real log entry (the DSSE envelope as stored, then its
//! statement decoded) and the checkpoint, for attest/README.md.
//! Run: `cargo run -p collective-attest --example example_entry`
#![allow(clippy::print_stdout)]

use base64::prelude::*;
use collective_attest::{ApprovalRef, Decision, Log, OutputDigest, Predicate, Subject};
use ed25519_dalek::SigningKey;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = SigningKey::from_bytes(&[42; 32]);
    let mut log = Log::create_or_open(dir.path(), "node.collective.example/1", key).expect("log");
    let subject = Subject {
        tree_sha1: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
        tree_sha256: "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321".into(),
        commit: Some("8f1c2a5e9d3b7c4a6e0f1d2c3b4a59687766554d".into()),
    };
    let mut p = Predicate::new(Decision::JobFinished, "exit 0");
    p.time = "2026-11-30T11:00:00Z".into();
    p.job = Some("train".into());
    p.exit_status = Some(0);
    p.policy_digest =
        Some("3f5a0e3c9b2d4e6f8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071".into());
    p.outputs = vec![OutputDigest {
        name: "model.age".into(),
        sha256: "9c56cc51b374c3ba189210d5b6d4bf57790d351c96c47c02190ecf1e430635ab".into(),
        size: 1_048_576,
    }];
    p.approval = Some(ApprovalRef {
        chain_id: 31337,
        contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
        tx_hash: "0x6a1f0e3d2c1b0a99887766554433221100ffeeddccbbaa998877665544332211".into(),
        block_number: 42,
        block_hash: "0x0b9e8d7c6b5a49382716f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0".into(),
    });
    log.append(&[(subject, p)]).expect("append");
    let raw = log.entry_bytes(0).expect("entry");
    let env: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    println!(
        "## envelope (the exact bytes stored in the entry bundle)\n{}",
        String::from_utf8_lossy(&raw)
    );
    let payload = BASE64_STANDARD
        .decode(env["payload"].as_str().expect("payload"))
        .expect("base64");
    let st: serde_json::Value = serde_json::from_slice(&payload).expect("statement");
    println!(
        "\n## statement (payload, decoded)\n{}",
        serde_json::to_string_pretty(&st).expect("pretty")
    );
    println!(
        "\n## checkpoint\n{}",
        log.checkpoint_text().expect("checkpoint")
    );
    println!("## verifier key (--log-key)\n{}", log.verifier_key());
}
