//! The tamper suite: every way of rewriting a node's log makes
//! `collective audit` exit 2 and name the failure; an honest log exits 0;
//! an unreachable log exits 1. Logs are built with collective-attest and
//! damaged on disk the way an operator could.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use collective_attest::entry::{sign_statement, Statement};
use collective_attest::tiles::{decode_bundle, encode_bundle};
use collective_attest::{key_id_hex, ApprovalRef, Decision, Log, Predicate, Subject};
use ed25519_dalek::SigningKey;

use crate::support;

const ORIGIN: &str = "collective.test/node-1";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn entry(i: u64) -> (Subject, Predicate) {
    let s = Subject {
        tree_sha1: format!("{:040x}", i + 1),
        tree_sha256: format!("{:064x}", i + 1),
        commit: None,
    };
    let mut p = Predicate::new(
        if i % 2 == 0 {
            Decision::Deployed
        } else {
            Decision::Refused
        },
        format!("entry {i}"),
    );
    if i % 2 == 0 {
        p.approval = Some(ApprovalRef {
            chain_id: 31337,
            contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
            tx_hash: format!("0x{:064x}", i + 9),
            block_number: 5,
            block_hash: format!("0x{:064x}", i + 3),
        });
    }
    (s, p)
}

fn build(dir: &Path, from: u64, n: u64) -> Log {
    let mut log = Log::create_or_open(dir, ORIGIN, key(1)).unwrap();
    let batch: Vec<_> = (from..from + n).map(entry).collect();
    for chunk in batch.chunks(50) {
        log.append(chunk).unwrap();
    }
    log
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn audit(args: &[&str]) -> Run {
    let out = support::bin().arg("audit").args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn audit_dir(dir: &Path, vkey: &str, state: Option<&Path>) -> Run {
    let mut a = vec![
        "--log".to_string(),
        dir.display().to_string(),
        "--log-key".into(),
        vkey.into(),
    ];
    if let Some(s) = state {
        a.push("--state".into());
        a.push(s.display().to_string());
    }
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    audit(&refs)
}

fn expect_failure(r: &Run, needle: &str) {
    assert_eq!(
        r.code, 2,
        "expected exit 2 naming {needle:?}\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stdout.contains(needle),
        "report does not name {needle:?}:\n{}",
        r.stdout
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&t).unwrap();
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// An honest log of `n` entries plus an auditor state file that has seen it.
fn honest(n: u64) -> (tempfile::TempDir, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = build(&dir.path().join("log"), 0, n);
    let vkey = log.verifier_key();
    let state = dir.path().join("state.json");
    let r = audit_dir(&dir.path().join("log"), &vkey, Some(&state));
    assert_eq!(
        r.code, 0,
        "honest log must verify:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert!(r.stdout.contains("VERIFIED"));
    assert!(state.exists());
    (dir, vkey, state)
}

#[test]
fn honest_log_verifies_and_growth_is_consistent() {
    let (dir, vkey, state) = honest(300);
    let log_dir = dir.path().join("log");
    let mut log = Log::create_or_open(&log_dir, ORIGIN, key(1)).unwrap();
    log.append(&[entry(300), entry(301)]).unwrap();
    let r = audit_dir(&log_dir, &vkey, Some(&state));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r
        .stdout
        .contains("consistency with the last checkpoint seen (size 300)"));
    assert!(r.stdout.contains("deployed") && r.stdout.contains("approved: chain 31337 block 5"));
    let json = support::bin()
        .args([
            "--json",
            "audit",
            "--log",
            log_dir.to_str().unwrap(),
            "--log-key",
            &vkey,
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["entries_verified"], 302);
    assert_eq!(v["failures"].as_array().unwrap().len(), 0);
}

#[test]
fn truncated_log() {
    let (dir, vkey, _) = honest(20);
    let p = dir.path().join("log/tile/entries/000.p/20");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 100]).unwrap();
    expect_failure(
        &audit_dir(&dir.path().join("log"), &vkey, None),
        "truncated",
    );
}

#[test]
fn rolled_back_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let mut log = build(&log_dir, 0, 20);
    let old = dir.path().join("old");
    copy_dir(&log_dir, {
        std::fs::create_dir_all(&old).unwrap();
        &old
    });
    log.append(&(20..30).map(entry).collect::<Vec<_>>())
        .unwrap();
    let vkey = log.verifier_key();
    let state = dir.path().join("state.json");
    assert_eq!(audit_dir(&log_dir, &vkey, Some(&state)).code, 0);
    // The operator restores the old log (tiles and checkpoint).
    let r = audit_dir(&old, &vkey, Some(&state));
    expect_failure(&r, "ROLLBACK");
    assert!(
        r.stdout.contains("checkpoint seen before (size 30)")
            && r.stdout.contains("served now (size 20)")
    );
}

#[test]
fn forked_log() {
    let (dir, vkey, state) = honest(20);
    // Same key, same size, different history.
    let fork = dir.path().join("fork");
    build(&fork, 100, 20);
    let r = audit_dir(&fork, &vkey, Some(&state));
    expect_failure(&r, "FORK: two signed checkpoints of size 20");
    // Longer fork: the consistency proof is printed.
    let mut f = Log::create_or_open(&fork, ORIGIN, key(1)).unwrap();
    f.append(&[entry(500)]).unwrap();
    let r = audit_dir(&fork, &vkey, Some(&state));
    expect_failure(&r, "FORK: the log of size 21 does not extend");
    assert!(r.stdout.contains("consistency proof ("));
    // The state was not advanced by the failing audits.
    let r = audit_dir(&dir.path().join("log"), &vkey, Some(&state));
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn edited_entry() {
    let (dir, vkey, _) = honest(20);
    let p = dir.path().join("log/tile/entries/000.p/20");
    let mut entries = decode_bundle("x", &std::fs::read(&p).unwrap(), 20).unwrap();
    // Change one byte of entry 4's base64 payload.
    let pos = entries[4].iter().position(|&c| c == b'"').unwrap() + 20;
    entries[4][pos] = if entries[4][pos] == b'A' { b'B' } else { b'A' };
    std::fs::write(&p, encode_bundle(entries.iter().map(Vec::as_slice))).unwrap();
    let r = audit_dir(&dir.path().join("log"), &vkey, None);
    expect_failure(&r, "entry 4 is not the leaf the signed tree holds");
    assert!(r.stdout.contains("[edited-entry]"));
}

#[test]
fn reordered_entries() {
    let (dir, vkey, _) = honest(20);
    let p = dir.path().join("log/tile/entries/000.p/20");
    let mut entries = decode_bundle("x", &std::fs::read(&p).unwrap(), 20).unwrap();
    entries.swap(2, 3);
    std::fs::write(&p, encode_bundle(entries.iter().map(Vec::as_slice))).unwrap();
    expect_failure(
        &audit_dir(&dir.path().join("log"), &vkey, None),
        "reordered",
    );

    // Even a log whose tiles and checkpoint were rebuilt around the new
    // order is caught: each entry names its own position.
    let src = Log::create_or_open(&dir.path().join("log2"), ORIGIN, key(1)).unwrap();
    drop(src);
    let mut a = Log::create_or_open(&dir.path().join("a"), ORIGIN, key(1)).unwrap();
    a.append(&(0..4).map(entry).collect::<Vec<_>>()).unwrap();
    let raw: Vec<Vec<u8>> = a.raw_entries().map(|r| r.unwrap().1).collect();
    let mut b = Log::create_or_open(&dir.path().join("b"), ORIGIN, key(1)).unwrap();
    b.append_raw(vec![
        raw[1].clone(),
        raw[0].clone(),
        raw[2].clone(),
        raw[3].clone(),
    ])
    .unwrap();
    let r = audit_dir(&dir.path().join("b"), &vkey, None);
    expect_failure(&r, "entry 0 says it is entry 1");
    assert!(r.stdout.contains("[entry-position]"));
}

#[test]
fn entry_signed_by_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = build(&dir.path().join("log"), 0, 3);
    let (s, mut p) = entry(3);
    p.log_index = 3;
    p.log_origin = ORIGIN.into();
    let st = Statement::new(&s, p).unwrap();
    let other = key(7);
    let forged = sign_statement(&st, &other, &key_id_hex(ORIGIN, &other.verifying_key())).unwrap();
    log.append_raw(vec![forged]).unwrap();
    let r = audit_dir(&dir.path().join("log"), &log.verifier_key(), None);
    expect_failure(&r, "entry 3: envelope signature");
    assert!(r.stdout.contains("does not verify under the log key"));
}

#[test]
fn replayed_old_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let mut log = build(&log_dir, 0, 20);
    let old_cp = log.checkpoint_text().unwrap();
    log.append(&(20..30).map(entry).collect::<Vec<_>>())
        .unwrap();
    let vkey = log.verifier_key();
    let state = dir.path().join("state.json");
    assert_eq!(audit_dir(&log_dir, &vkey, Some(&state)).code, 0);
    // The current tiles, but yesterday's (validly signed) checkpoint.
    std::fs::write(log_dir.join("checkpoint"), old_cp).unwrap();
    expect_failure(&audit_dir(&log_dir, &vkey, Some(&state)), "ROLLBACK");
}

#[test]
fn missing_tile() {
    let (dir, vkey, _) = honest(300);
    std::fs::remove_file(dir.path().join("log/tile/0/000")).unwrap();
    let r = audit_dir(&dir.path().join("log"), &vkey, None);
    expect_failure(&r, "missing tile tile/0/000");
    let (dir, vkey, _) = honest(300);
    std::fs::remove_file(dir.path().join("log/tile/entries/001.p/44")).unwrap();
    expect_failure(
        &audit_dir(&dir.path().join("log"), &vkey, None),
        "missing tile tile/entries/001.p/44",
    );
}

#[test]
fn bit_flip_in_a_tile() {
    for (path, offset) in [
        ("log/tile/0/000", 1000usize),
        ("log/tile/1/000.p/1", 5),
        ("log/tile/0/001.p/44", 33),
    ] {
        let (dir, vkey, _) = honest(300);
        let p = dir.path().join(path);
        let mut b = std::fs::read(&p).unwrap();
        b[offset] ^= 0x10;
        std::fs::write(&p, b).unwrap();
        let r = audit_dir(&dir.path().join("log"), &vkey, None);
        expect_failure(&r, "[corrupt-tile]");
    }
}

#[test]
fn wrong_key_and_unreachable_log() {
    let (dir, _, _) = honest(5);
    let other = collective_attest::verifier_key_string(ORIGIN, &key(9).verifying_key());
    expect_failure(
        &audit_dir(&dir.path().join("log"), &other, None),
        "checkpoint signature",
    );
    let r = audit(&["--log", "http://127.0.0.1:9/", "--log-key", &other]);
    assert_eq!(r.code, 1, "unreachable log: could not run\n{}", r.stderr);
    let r = audit(&["--log", "/nonexistent/log", "--log-key", &other]);
    assert_eq!(r.code, 64);
}

/// Serves a directory over HTTP/1.1 (GET only), enough for tiles.
fn serve(dir: PathBuf) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                let resp = match std::fs::read(dir.join(&path)) {
                    Ok(b) if !path.contains("..") => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        )
                        .into_bytes();
                        r.extend(b);
                        r
                    }
                    _ => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = s.write_all(&resp);
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn audit_over_http_and_single_entry_proofs() {
    let (dir, vkey, _) = honest(270);
    let url = serve(dir.path().join("log"));
    let r = audit(&["--log", &url, "--log-key", &vkey]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("VERIFIED: 270 entries"));
    // Proof bundle over HTTP, verified alone.
    let out = support::bin()
        .args(["log", "proof", "260", "--log", &url, "--log-key", &vkey])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = dir.path().join("bundle.json");
    std::fs::write(&bundle, &out.stdout).unwrap();
    let v = support::bin()
        .args([
            "log",
            "verify-bundle",
            bundle.to_str().unwrap(),
            "--log-key",
            &vkey,
        ])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert!(String::from_utf8_lossy(&v.stdout).contains("VERIFIED: entry 260"));
    let tampered = String::from_utf8_lossy(&out.stdout).replace("\"index\": 260", "\"index\": 261");
    std::fs::write(&bundle, tampered).unwrap();
    let v = support::bin()
        .args([
            "log",
            "verify-bundle",
            bundle.to_str().unwrap(),
            "--log-key",
            &vkey,
        ])
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(2));
    // A tile missing on the server is a failure, not an error.
    std::fs::remove_file(dir.path().join("log/tile/0/001.p/14")).unwrap();
    expect_failure(
        &audit(&["--log", &url, "--log-key", &vkey]),
        "missing tile tile/0/001.p/14",
    );
}

// ---------- on chain: anchors and approvals (real anvil) ----------

mod chain {
    use super::*;
    use collective_chain::devnet::{
        self, AnvilOptions, AnvilProcess, DevnetFile, GovernanceParams,
    };
    use collective_chain::*;
    use collective_controller::anchor;

    async fn client(file: &DevnetFile, role: &str) -> ChainClient {
        file.client(role).await.unwrap()
    }

    async fn pass(file: &DevnetFile, requester: &ChainClient, id: U256) {
        requester.fast_forward(id).await.unwrap();
        client(file, "voter1")
            .await
            .cast_vote(id, Support::For)
            .await
            .unwrap();
        assert_eq!(
            requester.fast_forward(id).await.unwrap(),
            ProposalState::Succeeded
        );
        requester.queue(id).await.unwrap();
        requester.fast_forward(id).await.unwrap();
        requester.execute(id).await.unwrap();
    }

    fn audit_chain(
        dir: &Path,
        file: &DevnetFile,
        node_id: Option<B256>,
        vkey: Option<&str>,
    ) -> Run {
        let a = &file.deployment.addresses;
        let mut args = vec![
            "--log".to_string(),
            dir.display().to_string(),
            "--rpc".into(),
            file.deployment.rpc_url.clone(),
            "--node-registry".into(),
            format!("{:#x}", a.node_registry),
            "--code-registry".into(),
            format!("{:#x}", a.code_registry),
        ];
        if let Some(id) = node_id {
            args.push("--node-id".into());
            args.push(format!("{id:#x}"));
        }
        if let Some(k) = vkey {
            args.push("--log-key".into());
            args.push(k.into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        audit(&refs)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn anchors_and_approvals_on_chain() {
        support::require_anvil();
        let anvil = AnvilProcess::spawn(&AnvilOptions::default())
            .await
            .expect("anvil starts");
        let file = devnet::deploy_demo(anvil.url(), GovernanceParams::default())
            .await
            .expect("suite deploys");
        let requester = client(&file, "requester").await;
        let operator = client(&file, "operator").await;
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        let mut log = Log::create_or_open(&log_dir, ORIGIN, key(1)).unwrap();
        let vkey = log.verifier_key();

        // The DAO approves tree 1 and registers the node with its log key.
        let (subject, _) = entry(0);
        let tree: B256 = subject.tree_sha256.parse().unwrap();
        let req = ApprovalRequest {
            tree_sha256: tree,
            tree_sha1: subject.tree_sha1.parse().unwrap(),
            recipients: vec![],
            expires_at: 0,
            uri: "https://example.invalid/pr/1".into(),
        };
        pass(
            &file,
            &requester,
            requester
                .propose_approval(&req, "approve tree 1")
                .await
                .unwrap(),
        )
        .await;
        let node_id = B256::repeat_byte(0x42);
        let record = NodeRecord {
            encryption_recipient: "ssh-rsa AAAA".into(),
            log_public_key: vkey.clone(),
            endpoint: "http://127.0.0.1:1".into(),
            operator: operator.sender().unwrap(),
            registered_block: 0,
        };
        pass(
            &file,
            &requester,
            requester
                .propose_register_node(node_id, &record, "register node")
                .await
                .unwrap(),
        )
        .await;
        let ap = requester
            .approval(tree, 0)
            .await
            .unwrap()
            .expect("approved");

        // The node deploys tree 1 citing the real approval, and anchors.
        let approval = ApprovalRef {
            chain_id: file.deployment.chain_id,
            contract: format!("{:#x}", file.deployment.addresses.code_registry),
            tx_hash: format!("{:#x}", ap.approved_tx),
            block_number: ap.approved_block,
            block_hash: format!("{:#x}", ap.approved_block_hash),
        };
        let mut p = Predicate::new(Decision::Deployed, "approved");
        p.approval = Some(approval.clone());
        log.append(&[(subject.clone(), p.clone()), entry(1)])
            .unwrap();
        let tx = anchor::anchor_latest(&log, &operator, node_id)
            .await
            .unwrap();
        assert!(tx.is_some());
        assert!(
            anchor::anchor_latest(&log, &operator, node_id)
                .await
                .unwrap()
                .is_none(),
            "re-anchoring is a no-op"
        );
        let old_cp = log.checkpoint_text().unwrap();
        log.append(&[entry(3), (subject.clone(), p.clone())])
            .unwrap();
        anchor::anchor_latest(&log, &operator, node_id)
            .await
            .unwrap()
            .expect("anchored");

        // Honest: the key comes from the chain, anchors and approvals check out.
        let r = audit_chain(&log_dir, &file, Some(node_id), None);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("consistency with 2 on-chain anchor(s)"),
            "{}",
            r.stdout
        );

        // A fork served to this auditor: same key, same size, other entries.
        let fork = dir.path().join("fork");
        let mut f = Log::create_or_open(&fork, ORIGIN, key(1)).unwrap();
        f.append(&[
            (subject.clone(), p.clone()),
            entry(7),
            entry(3),
            (subject.clone(), p.clone()),
        ])
        .unwrap();
        let r = audit_chain(&fork, &file, Some(node_id), Some(&vkey));
        expect_failure(&r, "disagrees with the anchor");
        assert!(r.stdout.contains("[anchor-mismatch]"));

        // An old checkpoint replayed (no --state: the chain remembers).
        let replay = dir.path().join("replay");
        std::fs::create_dir_all(&replay).unwrap();
        copy_dir(&log_dir, &replay);
        std::fs::write(replay.join("checkpoint"), &old_cp).unwrap();
        expect_failure(
            &audit_chain(&replay, &file, Some(node_id), Some(&vkey)),
            "[anchor-ahead]",
        );

        // A deployment citing an approval that does not exist.
        let bad = dir.path().join("bad");
        let mut b = Log::create_or_open(&bad, ORIGIN, key(1)).unwrap();
        let (other_tree, _) = entry(10);
        b.append(&[(other_tree, p.clone())]).unwrap();
        expect_failure(
            &audit_chain(&bad, &file, None, Some(&vkey)),
            "was not approved at or before block",
        );
        // A deployment citing a block hash the chain does not have.
        let bad2 = dir.path().join("bad2");
        let mut b = Log::create_or_open(&bad2, ORIGIN, key(1)).unwrap();
        let mut p2 = p.clone();
        p2.approval.as_mut().unwrap().block_hash = format!("0x{}", "ab".repeat(32));
        b.append(&[(subject.clone(), p2)]).unwrap();
        expect_failure(
            &audit_chain(&bad2, &file, None, Some(&vkey)),
            "[approval-mismatch]",
        );
        // An approval that had expired by the cited block.
        let (s2, _) = entry(20);
        let tree2: B256 = s2.tree_sha256.parse().unwrap();
        let head = requester.block_number().await.unwrap();
        let (_, now) = requester.block_hash(head).await.unwrap().unwrap();
        let req2 = ApprovalRequest {
            tree_sha256: tree2,
            tree_sha1: s2.tree_sha1.parse().unwrap(),
            recipients: vec![],
            expires_at: now + 30 * 86_400,
            uri: "https://example.invalid/pr/2".into(),
        };
        pass(
            &file,
            &requester,
            requester
                .propose_approval(&req2, "approve tree 2")
                .await
                .unwrap(),
        )
        .await;
        let ap2 = requester
            .approval(tree2, 0)
            .await
            .unwrap()
            .expect("approved");
        requester.anvil_increase_time(31 * 86_400).await.unwrap();
        let head = requester.block_number().await.unwrap();
        let (bh, _) = requester.block_hash(head).await.unwrap().unwrap();
        let mut p4 = p.clone();
        let a4 = p4.approval.as_mut().unwrap();
        a4.tx_hash = format!("{:#x}", ap2.approved_tx);
        a4.block_number = head;
        a4.block_hash = format!("{bh:#x}");
        let bad4 = dir.path().join("bad4");
        let mut b = Log::create_or_open(&bad4, ORIGIN, key(1)).unwrap();
        b.append(&[(s2.clone(), p4)]).unwrap();
        expect_failure(
            &audit_chain(&bad4, &file, None, Some(&vkey)),
            "[approval-expired]",
        );

        // Revoked before the cited block.
        let guardian = client(&file, "guardian").await;
        guardian.revoke(tree, "found a leak").await.unwrap();
        let head = requester.block_number().await.unwrap();
        let (bh, _) = requester.block_hash(head).await.unwrap().unwrap();
        let bad3 = dir.path().join("bad3");
        let mut b = Log::create_or_open(&bad3, ORIGIN, key(1)).unwrap();
        let mut p3 = p.clone();
        let a3 = p3.approval.as_mut().unwrap();
        a3.block_number = head;
        a3.block_hash = format!("{bh:#x}");
        b.append(&[(subject.clone(), p3)]).unwrap();
        expect_failure(&audit_chain(&bad3, &file, None, Some(&vkey)), "was revoked");
        drop(anvil);
    }
}

// ---------- --repo: the trees the log names exist and recompute ----------

#[test]
fn repo_trees_exist_and_recompute() {
    use collective_tree::git2::{Repository, Signature};
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let repo = Repository::init(&repo_dir).unwrap();
    std::fs::write(repo_dir.join("job.yaml"), "kind: batch\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("job.yaml")).unwrap();
    let tree_oid = index.write_tree().unwrap();
    let tree = repo.find_tree(tree_oid).unwrap();
    let sig = Signature::now("t", "t@example.invalid").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "job", &tree, &[])
        .unwrap();
    let (ids, commit) = collective_tree::tree_ids_of_rev(&repo, "HEAD").unwrap();

    let deployed = |sha1: &str, sha256: &str, commit: Option<String>| {
        let mut p = Predicate::new(Decision::Deployed, "ok");
        p.approval = entry(0).1.approval;
        (
            Subject {
                tree_sha1: sha1.into(),
                tree_sha256: sha256.into(),
                commit,
            },
            p,
        )
    };
    let repo_arg = repo_dir.display().to_string();
    let run = |log_dir: &Path, vkey: &str| {
        audit(&[
            "--log",
            log_dir.to_str().unwrap(),
            "--log-key",
            vkey,
            "--repo",
            &repo_arg,
        ])
    };

    let good = dir.path().join("good");
    let mut log = Log::create_or_open(&good, ORIGIN, key(1)).unwrap();
    log.append(&[
        deployed(&ids.sha1, &ids.sha256, Some(commit.to_string())),
        entry(1),
    ])
    .unwrap();
    let vkey = log.verifier_key();
    let r = run(&good, &vkey);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("every tree exists in the repository"));

    let missing = dir.path().join("missing");
    let mut log = Log::create_or_open(&missing, ORIGIN, key(1)).unwrap();
    log.append(&[deployed(&"1".repeat(40), &ids.sha256, None)])
        .unwrap();
    expect_failure(&run(&missing, &vkey), "is not in the repository");

    let wrong = dir.path().join("wrong");
    let mut log = Log::create_or_open(&wrong, ORIGIN, key(1)).unwrap();
    log.append(&[deployed(&ids.sha1, &"2".repeat(64), None)])
        .unwrap();
    let r = run(&wrong, &vkey);
    expect_failure(&r, "[tree-mismatch]");
    assert!(r.stdout.contains(&ids.sha256), "names the recomputed id");

    // An approved tree with a commit the repository does not have.
    let ghost = dir.path().join("ghost");
    let mut log = Log::create_or_open(&ghost, ORIGIN, key(1)).unwrap();
    log.append(&[deployed(&ids.sha1, &ids.sha256, Some("3".repeat(40)))])
        .unwrap();
    expect_failure(
        &run(&ghost, &vkey),
        "commit 3333333333333333333333333333333333333333 is not in the repository",
    );
}
