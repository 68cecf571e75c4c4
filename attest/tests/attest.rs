//! Integration tests of collective-attest: public test vectors, property
//! tests of the proofs, the log writer (reopen, replay, proofs), the
//! verifier's refusals, and a kill -9 crash test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use base64::prelude::*;
use collective_attest::tiles::DirSource;
use collective_attest::verify::consistency;
use collective_attest::{
    audit, verify_checkpoint, ApprovalRef, AuditOptions, AuditorState, Decision, FailureKind, Log,
    Predicate, ProofBundle, Subject,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use serde::Deserialize;
use tlog_tiles::{
    check_record, check_tree, prove_record, prove_tree, record_hash, stored_hashes, tree_hash,
    Checkpoint, Hash, HashReader,
};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
const ORIGIN: &str = "collective.test/node-1";

// ---------- helpers ----------

struct Mem(Vec<Hash>);
impl HashReader for Mem {
    fn read_hashes(&self, idx: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        idx.iter()
            .map(|&i| {
                self.0
                    .get(i as usize)
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

fn build(leaves: &[Vec<u8>]) -> Mem {
    let mut m = Mem(Vec::new());
    for (n, l) in leaves.iter().enumerate() {
        let hs = stored_hashes(n as u64, l, &m).unwrap();
        m.0.extend(hs);
    }
    m
}

fn h(hex_str: &str) -> Hash {
    Hash(hex::decode(hex_str).unwrap().try_into().unwrap())
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn subject(i: u64) -> Subject {
    Subject {
        tree_sha1: format!("{:040x}", i + 1),
        tree_sha256: format!("{:064x}", i + 1),
        commit: Some(format!("{:040x}", i + 1000)),
    }
}

fn predicate(i: u64) -> Predicate {
    let mut p = Predicate::new(
        if i % 3 == 0 {
            Decision::Refused
        } else {
            Decision::Deployed
        },
        format!("decision {i}"),
    );
    if i % 3 != 0 {
        p.approval = Some(ApprovalRef {
            chain_id: 31337,
            contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
            tx_hash: format!("0x{:064x}", i),
            block_number: 10 + i,
            block_hash: format!("0x{:064x}", i + 7),
        });
    }
    p
}

fn batch(from: u64, n: u64) -> Vec<(Subject, Predicate)> {
    (from..from + n)
        .map(|i| (subject(i), predicate(i)))
        .collect()
}

fn new_log(dir: &Path, n: u64) -> Log {
    let mut log = Log::create_or_open(dir, ORIGIN, key(1)).unwrap();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(97);
        log.append(&batch(done, k)).unwrap();
        done += k;
    }
    log
}

fn full_audit(
    dir: &Path,
    vkey: &str,
    prev: Option<&AuditorState>,
) -> collective_attest::AuditReport {
    audit(&DirSource::new(dir), vkey, prev, AuditOptions::default()).unwrap()
}

fn kinds(r: &collective_attest::AuditReport) -> Vec<FailureKind> {
    r.failures.iter().map(|f| f.kind).collect()
}

// ---------- public vectors ----------

#[derive(Deserialize)]
struct Rfc6962 {
    leaves_hex: Vec<String>,
    empty_root_hex: String,
    roots_hex: Vec<String>,
    inclusion: Vec<Incl>,
    consistency: Vec<Cons>,
}
#[derive(Deserialize)]
struct Incl {
    leaf: u64,
    size: u64,
    proof: Vec<String>,
}
#[derive(Deserialize)]
struct Cons {
    size1: u64,
    size2: u64,
    proof: Vec<String>,
}

fn flip_each_bit(p: &[Hash], mut f: impl FnMut(&[Hash])) {
    for i in 0..p.len() {
        for bit in 0..256 {
            let mut q = p.to_vec();
            q[i].0[bit / 8] ^= 1 << (bit % 8);
            f(&q);
        }
    }
}

#[test]
fn rfc6962_vectors() {
    let v: Rfc6962 =
        serde_json::from_str(&std::fs::read_to_string(format!("{VECTORS}/rfc6962.json")).unwrap())
            .unwrap();
    let leaves: Vec<Vec<u8>> = v
        .leaves_hex
        .iter()
        .map(|x| hex::decode(x).unwrap())
        .collect();
    assert_eq!(tree_hash(0, &Mem(vec![])).unwrap(), h(&v.empty_root_hex));
    let m = build(&leaves);
    for (i, r) in v.roots_hex.iter().enumerate() {
        assert_eq!(
            tree_hash(i as u64 + 1, &m).unwrap(),
            h(r),
            "root of size {}",
            i + 1
        );
    }
    for c in &v.inclusion {
        let proof: Vec<Hash> = c.proof.iter().map(|x| h(x)).collect();
        let root = h(&v.roots_hex[c.size as usize - 1]);
        let leaf = record_hash(&leaves[c.leaf as usize - 1]);
        check_record(&proof, c.size, root, c.leaf - 1, leaf).unwrap();
        assert_eq!(
            prove_record(c.size, c.leaf - 1, &m).unwrap(),
            proof,
            "we produce the published proof"
        );
        flip_each_bit(&proof, |q| {
            assert!(check_record(&q.to_vec(), c.size, root, c.leaf - 1, leaf).is_err())
        });
        if c.leaf > 1 {
            assert!(check_record(&proof, c.size, root, c.leaf - 2, leaf).is_err());
        }
        if !proof.is_empty() {
            assert!(check_record(&proof[1..].to_vec(), c.size, root, c.leaf - 1, leaf).is_err());
        }
    }
    for c in &v.consistency {
        let proof: Vec<Hash> = c.proof.iter().map(|x| h(x)).collect();
        let r1 = h(&v.roots_hex[c.size1 as usize - 1]);
        let r2 = h(&v.roots_hex[c.size2 as usize - 1]);
        check_tree(&proof, c.size2, r2, c.size1, r1).unwrap();
        assert_eq!(prove_tree(c.size2, c.size1, &m).unwrap(), proof);
        flip_each_bit(&proof, |q| {
            assert!(check_tree(&q.to_vec(), c.size2, r2, c.size1, r1).is_err())
        });
        if !proof.is_empty() {
            assert!(
                check_tree(&proof, c.size2, r1, c.size1, r2).is_err(),
                "swapped roots"
            );
        }
    }
}

/// Parses a base64 hash; `None` for anything that is not 32 bytes (the
/// published "wrong leaf" / "garbage" cases), which our API cannot even express.
fn b64_hash(s: &str) -> Option<Hash> {
    let b = BASE64_STANDARD.decode(s).ok()?;
    Some(Hash(b.try_into().ok()?))
}

#[test]
fn transparency_dev_json_vectors() {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inclusion {
        leaf_idx: u64,
        tree_size: u64,
        root: String,
        leaf_hash: String,
        proof: Vec<String>,
        desc: String,
        want_err: bool,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Consistency {
        size1: u64,
        size2: u64,
        root1: String,
        root2: String,
        proof: Vec<String>,
        desc: String,
        want_err: bool,
    }
    let mut seen = 0;
    for kind in ["inclusion", "consistency"] {
        for f in std::fs::read_dir(format!("{VECTORS}/transparency-dev/{kind}")).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            let (desc, want_err, ok) = if kind == "inclusion" {
                let v: Inclusion = serde_json::from_str(&text).unwrap();
                let proof: Option<Vec<Hash>> = v.proof.iter().map(|h| b64_hash(h)).collect();
                let ok = match (proof, b64_hash(&v.root), b64_hash(&v.leaf_hash)) {
                    (Some(p), Some(r), Some(l)) => {
                        check_record(&p, v.tree_size, r, v.leaf_idx, l).is_ok()
                    }
                    _ => false,
                };
                (v.desc, v.want_err, ok)
            } else {
                let v: Consistency = serde_json::from_str(&text).unwrap();
                let proof: Option<Vec<Hash>> = v.proof.iter().map(|h| b64_hash(h)).collect();
                let ok = match (proof, b64_hash(&v.root1), b64_hash(&v.root2)) {
                    (Some(p), Some(r1), Some(r2)) => {
                        check_tree(&p, v.size2, r2, v.size1, r1).is_ok()
                    }
                    _ => false,
                };
                (v.desc, v.want_err, ok)
            };
            assert_eq!(ok, !want_err, "{kind} vector {desc:?}");
            seen += 1;
        }
    }
    assert_eq!(seen, 10);
}

#[test]
fn certificate_transparency_argon2020_vectors() {
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(format!("{VECTORS}/ct-argon2020/{f}")).unwrap(),
        )
        .unwrap()
    };
    let sth = read("get-sth");
    let size = sth["tree_size"].as_u64().unwrap();
    let root = Hash::parse_hash(sth["sha256_root_hash"].as_str().unwrap()).unwrap();
    let entries = read("get-entries-start-10000-end-10000");
    let leaf_input = BASE64_STANDARD
        .decode(entries["entries"][0]["leaf_input"].as_str().unwrap())
        .unwrap();
    let leaf = record_hash(&leaf_input);
    let proof_json = read("get-proof-by-hash-tree-size-961984011-hash-nCs3mfIydh9x4CKyQ-2Bu2xtmpxmFggA5MLymHwNQSlLg-3D");
    let proof: Vec<Hash> = proof_json["audit_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Hash::parse_hash(x.as_str().unwrap()).unwrap())
        .collect();
    check_record(&proof, size, root, 10000, leaf).unwrap();
    assert!(check_record(&proof, size, root, 10001, leaf).is_err());
    let cons = read("get-sth-consistency-first-3654490-second-961984011");
    let cp: Vec<Hash> = cons["consistency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Hash::parse_hash(x.as_str().unwrap()).unwrap())
        .collect();
    let old = Hash::parse_hash("AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=").unwrap();
    check_tree(&cp, size, root, 3_654_490, old).unwrap();
    flip_each_bit(&cp[..2], |q| {
        let mut all = q.to_vec();
        all.extend_from_slice(&cp[2..]);
        assert!(check_tree(&all, size, root, 3_654_490, old).is_err());
    });
}

#[test]
fn signed_note_vectors() {
    use signed_note::{Note, StandardVerifier, VerifierList};
    for f in ["signed-note-go.txt", "sumdb-checkpoint.txt"] {
        let text = std::fs::read_to_string(format!("{VECTORS}/{f}")).unwrap();
        let (vkey, msg) = text.split_once('\n').unwrap();
        let v = StandardVerifier::new(vkey).unwrap();
        let note = Note::from_bytes(msg.as_bytes()).unwrap();
        note.verify(&VerifierList::new(vec![Box::new(v.clone())]))
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        // One changed byte of text breaks it.
        let bad = msg.replacen('e', "E", 1);
        let n2 = Note::from_bytes(bad.as_bytes()).unwrap();
        assert!(n2.verify(&VerifierList::new(vec![Box::new(v)])).is_err());
        if f.starts_with("sumdb") {
            let cp = Checkpoint::from_bytes(note.text()).unwrap();
            assert_eq!(cp.size(), 65_209_736);
            assert_eq!(cp.origin(), "go.sum database tree");
        }
    }
}

// ---------- property tests ----------

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn every_proof_verifies_and_every_bit_flip_fails(size in 1u64..80, seed in any::<u64>()) {
        let leaves: Vec<Vec<u8>> = (0..size).map(|i| format!("{seed}-{i}").into_bytes()).collect();
        let m = build(&leaves);
        let root = tree_hash(size, &m).unwrap();
        for n in 0..size {
            let leaf = record_hash(&leaves[n as usize]);
            let p = prove_record(size, n, &m).unwrap();
            prop_assert!(check_record(&p, size, root, n, leaf).is_ok());
            flip_each_bit(&p, |q| assert!(check_record(&q.to_vec(), size, root, n, leaf).is_err()));
            for bit in 0..256 {
                let mut r = root; r.0[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(check_record(&p, size, r, n, leaf).is_err());
                let mut l = leaf; l.0[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(check_record(&p, size, root, n, l).is_err());
            }
        }
        for old in 1..=size {
            let old_root = tree_hash(old, &m).unwrap();
            let p = prove_tree(size, old, &m).unwrap();
            prop_assert!(check_tree(&p, size, root, old, old_root).is_ok());
            flip_each_bit(&p, |q| assert!(check_tree(&q.to_vec(), size, root, old, old_root).is_err()));
            for bit in (0..256).step_by(7) {
                let mut r = root; r.0[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(check_tree(&p, size, r, old, old_root).is_err());
                let mut o = old_root; o.0[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(check_tree(&p, size, root, old, o).is_err());
            }
        }
    }

    #[test]
    fn on_disk_log_proves_every_entry_at_random_sizes(sizes in proptest::collection::vec(1u64..300, 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::create_or_open(dir.path(), ORIGIN, key(1)).unwrap();
        let mut total = 0;
        let mut prev: Option<(u64, Hash)> = None;
        for s in sizes {
            log.append(&batch(total, s)).unwrap();
            total += s;
            let cp = verify_checkpoint(log.checkpoint_text().unwrap().as_bytes(), &log.verifier_key()).unwrap();
            if let Some((n, r)) = prev {
                let (_, ok) = consistency(&DirSource::new(dir.path()), &cp, n, r).unwrap();
                prop_assert!(ok);
            }
            prev = Some((cp.size(), *cp.hash()));
        }
        for i in [0, total / 2, total - 1] {
            let b = log.prove(i).unwrap();
            prop_assert_eq!(b.verify(&log.verifier_key()).unwrap().predicate.log_index, i);
        }
        let r = full_audit(dir.path(), &log.verifier_key(), None);
        prop_assert!(r.ok(), "{:?}", r.failures);
        prop_assert_eq!(r.entries_verified, total);
    }
}

// ---------- the log ----------

#[test]
fn append_reopen_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path(), 600);
    let root = log.root();
    drop(log);
    let mut log = Log::create_or_open(dir.path(), ORIGIN, key(1)).unwrap();
    assert_eq!((log.size(), log.root()), (600, root));
    let idx = log.append(&batch(600, 3)).unwrap();
    assert_eq!(idx, vec![600, 601, 602]);
    let all: Vec<_> = log.entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 603);
    for (i, (n, s, p)) in all.iter().enumerate() {
        assert_eq!(*n, i as u64);
        assert_eq!(s, &subject(i as u64));
        assert_eq!(p.reason, format!("decision {i}"));
        assert_eq!(p.log_index, i as u64);
    }
    // Every checkpoint's partial tiles stay (C2SP tlog-tiles), until the
    // full tile exists.
    assert!(dir.path().join("tile/0/002.p/88").exists());
    assert!(dir.path().join("tile/0/002.p/91").exists());
    assert!(
        !dir.path().join("tile/0/000.p").exists(),
        "full tile 000 retires its partials"
    );
}

#[test]
fn open_refuses_other_key_and_origin() {
    let dir = tempfile::tempdir().unwrap();
    new_log(dir.path(), 5);
    let e = Log::create_or_open(dir.path(), ORIGIN, key(2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not by the key given"), "{e}");
    let e = Log::create_or_open(dir.path(), "other.origin", key(1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not by the key given") || e.contains("origin"),
        "{e}"
    );
}

#[test]
fn open_refuses_a_checkpoint_the_tiles_cannot_prove() {
    let dir = tempfile::tempdir().unwrap();
    new_log(dir.path(), 10);
    // A flipped bit in the right-edge hash tile: the checkpoint is unprovable.
    let p = dir.path().join("tile/0/000.p/10");
    let mut b = std::fs::read(&p).unwrap();
    b[300] ^= 1;
    std::fs::write(&p, b).unwrap();
    let e = Log::create_or_open(dir.path(), ORIGIN, key(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not prove its checkpoint"), "{e}");
    // A missing tile likewise.
    let dir = tempfile::tempdir().unwrap();
    new_log(dir.path(), 10);
    std::fs::remove_file(dir.path().join("tile/0/000.p/10")).unwrap();
    let e = Log::create_or_open(dir.path(), ORIGIN, key(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing tile tile/0/000.p/10"), "{e}");
}

#[test]
fn open_removes_the_unacknowledged_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path(), 10);
    let cp = log.checkpoint_text().unwrap();
    let mut log = log;
    log.append(&batch(10, 5)).unwrap();
    drop(log);
    // Simulate a crash after the tiles of 10..15 were written but before the checkpoint.
    std::fs::write(dir.path().join("checkpoint"), &cp).unwrap();
    // The size-10 partials are still there (kept for every checkpoint), so
    // the rolled-back state is provable: it opens, and the unacknowledged
    // size-15 tiles go.
    let log = Log::create_or_open(dir.path(), ORIGIN, key(1)).unwrap();
    assert_eq!(log.size(), 10);
    assert!(dir.path().join("tile/0/000.p/10").exists());
    assert!(!dir.path().join("tile/0/000.p/15").exists());
    assert!(!dir.path().join("tile/entries/000.p/15").exists());
    drop(log);

    let dir = tempfile::tempdir().unwrap();
    new_log(dir.path(), 10);
    std::fs::create_dir_all(dir.path().join("tile/0")).unwrap();
    std::fs::write(dir.path().join("tile/0/000.p/12"), vec![0u8; 12 * 32]).unwrap();
    std::fs::write(dir.path().join("tile/entries/000.p/12"), b"junk").unwrap();
    std::fs::write(dir.path().join("tile/0/.000.p.tmp"), b"junk").unwrap();
    let mut log = Log::create_or_open(dir.path(), ORIGIN, key(1)).unwrap();
    assert!(!dir.path().join("tile/0/000.p/12").exists());
    assert!(!dir.path().join("tile/entries/000.p/12").exists());
    assert_eq!(log.size(), 10);
    log.append(&batch(10, 2)).unwrap();
    assert!(full_audit(dir.path(), &log.verifier_key(), None).ok());
}

/// Every checkpoint the log ever produced (anchored or not) stays provable:
/// inclusion of its entries against it, and consistency from it to every
/// later one, from the tiles as served, across batch sizes that cross tile
/// boundaries at every level in use, and across reopen.
#[test]
fn every_checkpoint_ever_produced_stays_provable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create_or_open(dir.path(), ORIGIN, key(1)).unwrap();
    let vkey = log.verifier_key();
    let mut cps: Vec<String> = Vec::new();
    let sizes = [
        1u64, 2, 5, 90, 1, 157, 256, 3, 300, 255, 1, 1, 600, 7, 512, 65,
    ];
    let mut done = 0;
    for (round, k) in sizes.iter().enumerate() {
        log.append(&batch(done, *k)).unwrap();
        done += k;
        cps.push(log.checkpoint_text().unwrap());
        if round % 5 == 4 {
            drop(log);
            log = Log::create_or_open(dir.path(), ORIGIN, key(1)).unwrap();
        }
    }
    let src = DirSource::new(dir.path());
    let parsed: Vec<Checkpoint> = cps
        .iter()
        .map(|c| verify_checkpoint(c.as_bytes(), &vkey).unwrap())
        .collect();
    for (i, cp) in parsed.iter().enumerate() {
        let size = cp.size();
        for index in [0, size / 2, size - 1] {
            let b = ProofBundle::build(&src, cps[i].as_bytes(), &vkey, index)
                .unwrap_or_else(|e| panic!("inclusion of {index} in checkpoint {size}: {e}"));
            b.verify(&vkey).unwrap();
        }
        for later in &parsed[i + 1..] {
            let (_, ok) = consistency(&src, later, size, *cp.hash())
                .unwrap_or_else(|e| panic!("consistency {size} -> {}: {e}", later.size()));
            assert!(ok, "{size} is not a prefix of {}", later.size());
        }
    }
    assert!(full_audit(dir.path(), &vkey, None).ok());
}

#[test]
fn open_refuses_tiles_without_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    new_log(dir.path(), 10);
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    let e = Log::create_or_open(dir.path(), ORIGIN, key(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("has tiles but no checkpoint"), "{e}");
    assert!(
        dir.path().join("tile/entries/000.p/10").exists(),
        "history was not destroyed"
    );
}

#[test]
fn proof_bundle_verifies_alone_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path(), 300);
    let vkey = log.verifier_key();
    let b = log.prove(257).unwrap();
    let json = serde_json::to_string(&b).unwrap();
    let back: ProofBundle = serde_json::from_str(&json).unwrap();
    assert_eq!(back.verify(&vkey).unwrap().predicate.log_index, 257);
    let mut bad = back.clone();
    bad.index = 256;
    assert!(bad.verify(&vkey).is_err());
    let mut bad = back.clone();
    bad.inclusion_proof.swap(0, 1);
    assert!(bad.verify(&vkey).is_err());
    let mut bad = back.clone();
    bad.checkpoint = bad.checkpoint.replace("\n300\n", "\n301\n");
    assert!(bad.verify(&vkey).is_err());
    let other = Log::create_or_open(tempfile::tempdir().unwrap().path(), ORIGIN, key(9)).unwrap();
    assert!(back.verify(&other.verifier_key()).is_err());
}

// ---------- the verifier ----------

#[test]
fn audit_passes_then_catches_fork_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), 20);
    let vkey = log.verifier_key();
    let r = full_audit(dir.path(), &vkey, None);
    assert!(r.ok(), "{:?}", r.failures);
    let state = r.new_state().unwrap();
    log.append(&batch(20, 5)).unwrap();
    let r2 = full_audit(dir.path(), &vkey, Some(&state));
    assert!(r2.ok(), "{:?}", r2.failures);
    assert!(r2.consistency.as_ref().unwrap().verified);

    // A fork: same key, different history of the same size.
    let fork = tempfile::tempdir().unwrap();
    let mut f = Log::create_or_open(fork.path(), ORIGIN, key(1)).unwrap();
    f.append(&batch(100, 25)).unwrap();
    let r3 = full_audit(fork.path(), &vkey, r2.new_state().as_ref());
    assert_eq!(kinds(&r3), vec![FailureKind::Fork]);
    assert!(r3.failures[0].message.contains("checkpoint seen before"));
    // A longer fork: the consistency proof fails.
    f.append(&batch(200, 5)).unwrap();
    let r4 = full_audit(fork.path(), &vkey, r2.new_state().as_ref());
    assert_eq!(kinds(&r4), vec![FailureKind::Fork]);
    assert!(r4.failures[0].message.contains("consistency proof"));
    // A rollback: the auditor saw 25 but the log shows 20.
    let r5 = full_audit(dir.path(), &vkey, r2.new_state().as_ref());
    assert!(r5.ok());
    let small = tempfile::tempdir().unwrap();
    new_log(small.path(), 20);
    let r6 = full_audit(small.path(), &vkey, r2.new_state().as_ref());
    assert_eq!(kinds(&r6), vec![FailureKind::Rollback]);
}

#[test]
fn audit_names_edits_and_signature_failures() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path(), 8);
    let vkey = log.verifier_key();
    drop(log);
    let p = dir.path().join("tile/entries/000.p/8");
    let orig = std::fs::read(&p).unwrap();
    // Flip one byte inside the first entry's payload.
    let mut b = orig.clone();
    b[40] ^= 0x01;
    std::fs::write(&p, &b).unwrap();
    let r = full_audit(dir.path(), &vkey, None);
    let k = kinds(&r);
    assert!(
        k.contains(&FailureKind::EditedEntry) && k.contains(&FailureKind::EntrySignature),
        "{k:?}"
    );
    std::fs::write(&p, &orig).unwrap();
    assert!(full_audit(dir.path(), &vkey, None).ok());
    // Wrong key for the whole log.
    let other = collective_attest::verifier_key_string(ORIGIN, &key(3).verifying_key());
    let r = full_audit(dir.path(), &other, None);
    assert_eq!(kinds(&r), vec![FailureKind::CheckpointSignature]);
}

// ---------- crash test ----------

/// Not a test on its own: the child process of `crash_kill9_keeps_every_acknowledged_entry`.
#[test]
#[ignore]
#[allow(clippy::print_stdout)] // the parent reads the acknowledgements from stdout
fn crash_child() {
    let Ok(dir) = std::env::var("ATTEST_CRASH_DIR") else {
        return;
    };
    let mut log = Log::create_or_open(Path::new(&dir), ORIGIN, key(1)).unwrap();
    let mut i = log.size();
    loop {
        let n = 1 + (i % 5);
        let idx = log.append(&batch(i, n)).unwrap();
        i += n;
        println!("ACK {}", idx.last().unwrap());
    }
}

#[test]
fn crash_kill9_keeps_every_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Option<u64> = None;
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for round in 0..32 {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ATTEST_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Kill after a random number of acknowledgements (0..40) plus a random delay.
        let acks_before_kill = seed % 40;
        let delay_us = (seed >> 8) % 3000;
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = 0;
        while seen < acks_before_kill {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(n) = l.strip_prefix("ACK ") {
                        acked = Some(n.trim().parse().unwrap());
                        seen += 1;
                    }
                }
                _ => break,
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(delay_us));
        child.kill().unwrap(); // SIGKILL
                               // Drain what the child acknowledged before it died.
        for l in lines.map_while(Result::ok) {
            if let Some(n) = l.strip_prefix("ACK ") {
                acked = Some(n.trim().parse().unwrap());
            }
        }
        child.wait().unwrap();
        let log = Log::create_or_open(dir.path(), ORIGIN, key(1))
            .unwrap_or_else(|e| panic!("round {round}: reopen after kill -9 failed: {e}"));
        if let Some(a) = acked {
            assert!(
                log.size() > a,
                "round {round}: entry {a} was acknowledged but the log has {}",
                log.size()
            );
        }
        let r = full_audit(dir.path(), &log.verifier_key(), None);
        assert!(r.ok(), "round {round}: {:?}", r.failures);
        let n = log.entries().count() as u64;
        assert_eq!(n, log.size());
    }
    assert!(acked.unwrap_or(0) > 30, "the child made progress");
}

// ---------- hostile input never panics ----------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn parsers_of_untrusted_input_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), n in 0usize..8) {
        let vk = key(1).verifying_key();
        let _ = collective_attest::tiles::decode_bundle("fuzz", &bytes, n);
        let _ = collective_attest::entry::open_entry(&bytes, &vk, 0);
        let vkey = collective_attest::verifier_key_string(ORIGIN, &vk);
        let _ = verify_checkpoint(&bytes, &vkey);
        let _ = collective_attest::parse_verifier_key(&String::from_utf8_lossy(&bytes));
        if let Ok(b) = serde_json::from_slice::<ProofBundle>(&bytes) {
            let _ = b.verify(&vkey);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn audit_of_garbage_tiles_fails_cleanly(flips in proptest::collection::vec((0usize..4, any::<usize>(), any::<u8>()), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let log = new_log(dir.path(), 300);
        let vkey = log.verifier_key();
        drop(log);
        let files = ["tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1", "tile/entries/001.p/44"];
        let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(dir.path().join(f)).unwrap()).collect();
        for (f, pos, x) in flips {
            let p = dir.path().join(files[f]);
            let mut b = std::fs::read(&p).unwrap();
            let i = pos % b.len();
            let x = if x == 0 { 1 } else { x };
            b[i] ^= x;
            std::fs::write(&p, b).unwrap();
        }
        let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(dir.path().join(f)).unwrap()).collect();
        let changed = before != after;
        prop_assume!(changed, "flips cancelled out");
        let r = full_audit(dir.path(), &vkey, None);
        prop_assert!(changed && !r.ok(), "a damaged log must not verify");
    }
}
