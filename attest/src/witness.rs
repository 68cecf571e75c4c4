//! Witness cosigning: C2SP tlog-witness (the add-checkpoint protocol) and
//! tlog-cosignature (`cosignature/v1` signatures on checkpoints).
//!
//! Security argument. A signed checkpoint proves only what the log key
//! holder said. A witness cosigns a checkpoint only after checking that it
//! is signed by the log's key and that a consistency proof links it to the
//! last checkpoint the witness cosigned for that log; it never cosigns a
//! smaller tree or a fork. An auditor that requires K cosignatures from
//! witnesses it trusts (`collective audit --witness ... --witness-quorum K`)
//! is shown one history unless K witnesses collude with the operator.
//!
//! This module is pure: encoding and parsing of requests and cosignature
//! lines, verification, and [`Witness`], a witness's state machine written
//! from the spec (used by test witnesses and usable by a real one; its
//! state lives in memory). Not covered: witness persistence and
//! the witness's own key management.

use std::collections::HashMap;

use base64::prelude::*;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, Signer, Verifier, VerifierList};
use tlog_tiles::{check_tree, Checkpoint, Hash};

use crate::verify::verify_checkpoint;
use crate::AttestError;

/// tlog-cosignature's signature type byte for `cosignature/v1` (Ed25519).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Content type of a 409 answer: the witness's size for the log.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// The largest add-checkpoint body a witness reads (63 proof hashes and a
/// checkpoint with signatures fit easily).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The message a `cosignature/v1` signs.
fn cosigned_message(time: u64, note_text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(note_text);
    m
}

/// A witness's public key, from its verifier key
/// (`name+keyid+base64(0x04 || ed25519 key)`).
#[derive(Debug, Clone)]
pub struct CosignatureVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses a witness verifier key.
    pub fn parse(vkey: &str) -> Result<Self, AttestError> {
        let bad = |reason: &str| AttestError::BadKey {
            key: vkey.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected name+keyid+base64"));
        };
        let raw = BASE64_STANDARD
            .decode(b64)
            .map_err(|_| bad("key data is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_COSIGNATURE_V1 {
            return Err(bad("not a cosignature/v1 (0x04) Ed25519 key"));
        }
        let id_num = u32::from_str_radix(id, 16).map_err(|_| bad("key id is not 8 hex digits"))?;
        if id.len() != 8 || signed_note::key_id(name, &raw) != id_num {
            return Err(bad("key id does not match the name and key"));
        }
        let key = VerifyingKey::from_bytes(raw[1..].try_into().expect("32 bytes"))
            .map_err(|_| bad("not an Ed25519 public key"))?;
        Ok(CosignatureVerifier {
            name: name.to_string(),
            id: id_num,
            key,
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 8 + 64 {
            return false;
        }
        let time = u64::from_be_bytes(sig[..8].try_into().expect("8 bytes"));
        let Ok(s) = ed25519_dalek::Signature::from_slice(&sig[8..]) else {
            return false;
        };
        self.key
            .verify_strict(&cosigned_message(time, msg), &s)
            .is_ok()
    }
}

/// Signs `cosignature/v1` lines as a witness.
pub struct CosignatureSigner {
    name: String,
    id: u32,
    key: SigningKey,
    time: u64,
}

impl std::fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosignatureSigner")
            .field("name", &self.name)
            .field("time", &self.time)
            .finish_non_exhaustive()
    }
}

impl CosignatureSigner {
    /// A signer for witness `name`, stamping `time` (seconds since the epoch).
    pub fn new(name: &str, key: SigningKey, time: u64) -> Self {
        let id = signed_note::key_id(name, &cosignature_key_bytes(&key.verifying_key()));
        CosignatureSigner {
            name: name.to_string(),
            id,
            key,
            time,
        }
    }
}

impl Signer for CosignatureSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let sig = self.key.try_sign(&cosigned_message(self.time, msg))?;
        let mut out = self.time.to_be_bytes().to_vec();
        out.extend_from_slice(&sig.to_bytes());
        Ok(out)
    }
}

fn cosignature_key_bytes(key: &VerifyingKey) -> Vec<u8> {
    let mut k = vec![ALG_COSIGNATURE_V1];
    k.extend_from_slice(key.as_bytes());
    k
}

/// The verifier key of witness `name` with public key `key`.
pub fn witness_verifier_key(name: &str, key: &VerifyingKey) -> String {
    let raw = cosignature_key_bytes(key);
    format!(
        "{name}+{:08x}+{}",
        signed_note::key_id(name, &raw),
        BASE64_STANDARD.encode(&raw)
    )
}

/// The add-checkpoint request body: `old N`, the proof, a blank line, the
/// checkpoint note.
pub fn add_checkpoint_body(old_size: u64, proof: &[Hash], checkpoint: &[u8]) -> Vec<u8> {
    let mut b = format!("old {old_size}\n").into_bytes();
    for h in proof {
        b.extend_from_slice(BASE64_STANDARD.encode(h.0).as_bytes());
        b.push(b'\n');
    }
    b.push(b'\n');
    b.extend_from_slice(checkpoint);
    b
}

/// Parses a 409 answer's body: the witness's size for the log.
pub fn parse_size(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body).ok()?.trim().parse().ok()
}

/// `checkpoint` with the cosignature lines a witness returned appended,
/// after checking they are well-formed signature lines.
pub fn append_cosignatures(checkpoint: &[u8], lines: &[u8]) -> Result<Vec<u8>, AttestError> {
    let bad = |reason: &str| AttestError::Decode {
        what: "witness cosignature".into(),
        reason: reason.to_string(),
    };
    if lines.is_empty() || !lines.ends_with(b"\n") {
        return Err(bad("no signature lines"));
    }
    for line in lines.split_inclusive(|b| *b == b'\n') {
        signed_note::Signature::from_bytes(line.strip_suffix(b"\n").unwrap_or(line))
            .map_err(|_| bad("not a signature line"))?;
    }
    let mut out = checkpoint.to_vec();
    out.extend_from_slice(lines);
    Note::from_bytes(&out).map_err(|_| bad("the cosigned note does not parse"))?;
    Ok(out)
}

/// How many of `witnesses` validly cosigned the note `cosigned`.
pub fn count_cosignatures(cosigned: &[u8], witnesses: &[CosignatureVerifier]) -> usize {
    let Ok(note) = Note::from_bytes(cosigned) else {
        return 0;
    };
    let mut seen = std::collections::HashSet::new();
    witnesses
        .iter()
        .filter(|w| seen.insert((w.name.clone(), w.id)))
        .filter(|w| {
            let list = VerifierList::new(vec![Box::new((*w).clone())]);
            note.verify(&list).is_ok()
        })
        .count()
}

/// A refusal, as the witness answers it over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400 malformed, 403 bad log signature, 404 unknown log, 409 old
    /// size mismatch, 422 bad proof.
    pub status: u16,
    /// The body (for 409: the witness's size).
    pub body: String,
}

fn refuse(status: u16, body: impl Into<String>) -> Refusal {
    Refusal {
        status,
        body: body.into(),
    }
}

/// A witness, as tlog-witness specifies it: per log origin, the log's
/// verifier key and the last (size, root) it cosigned.
pub struct Witness {
    name: String,
    key: SigningKey,
    logs: HashMap<String, (String, Option<(u64, Hash)>)>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("name", &self.name)
            .field("logs", &self.logs.len())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// A witness `name` signing with `key`.
    pub fn new(name: &str, key: SigningKey) -> Self {
        Witness {
            name: name.to_string(),
            key,
            logs: HashMap::new(),
        }
    }

    /// Its verifier key, for auditors.
    pub fn verifier_key(&self) -> String {
        witness_verifier_key(&self.name, &self.key.verifying_key())
    }

    /// Starts witnessing the log `origin` under `log_vkey`.
    pub fn add_log(&mut self, origin: &str, log_vkey: &str) {
        self.logs
            .insert(origin.to_string(), (log_vkey.to_string(), None));
    }

    /// The size last cosigned for `origin`.
    pub fn size(&self, origin: &str) -> Option<u64> {
        self.logs.get(origin)?.1.map(|(s, _)| s)
    }

    /// Handles an add-checkpoint request body at `time`; the cosignature
    /// line(s) on success.
    pub fn add_checkpoint(&mut self, body: &[u8], time: u64) -> Result<Vec<u8>, Refusal> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(refuse(400, "request too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| refuse(400, "not UTF-8"))?;
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| refuse(400, "no blank line before the checkpoint"))?;
        let mut lines = head.lines();
        let old: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| refuse(400, "first line must be `old <size>`"))?;
        let mut proof = Vec::new();
        for l in lines {
            let raw = BASE64_STANDARD
                .decode(l)
                .map_err(|_| refuse(400, "proof line is not base64"))?;
            let h: [u8; 32] = raw
                .try_into()
                .map_err(|_| refuse(400, "proof hash is not 32 bytes"))?;
            proof.push(Hash(h));
        }
        if proof.len() > 63 {
            return Err(refuse(400, "proof too long"));
        }
        let origin = note.lines().next().unwrap_or_default().to_string();
        let Some((vkey, state)) = self.logs.get(&origin).cloned() else {
            return Err(refuse(404, "unknown log"));
        };
        let cp: Checkpoint = verify_checkpoint(note.as_bytes(), &vkey)
            .map_err(|e| refuse(403, format!("checkpoint signature: {e}")))?;
        let (known, known_root) = state.unwrap_or((0, Hash([0; 32])));
        if old > cp.size() {
            return Err(refuse(400, "old size is larger than the checkpoint"));
        }
        if old != known {
            return Err(refuse(409, format!("{known}\n")));
        }
        if old == cp.size() {
            if !proof.is_empty() || (old > 0 && *cp.hash() != known_root) {
                return Err(refuse(422, "same size, other root or a non-empty proof"));
            }
        } else if old == 0 {
            if !proof.is_empty() {
                return Err(refuse(422, "a proof from size 0 must be empty"));
            }
        } else if check_tree(&proof, cp.size(), *cp.hash(), old, known_root).is_err() {
            return Err(refuse(422, "the consistency proof does not verify"));
        }
        self.logs
            .insert(origin, (vkey, Some((cp.size(), *cp.hash()))));
        let signer = CosignatureSigner::new(&self.name, self.key.clone(), time);
        let note_text = Note::from_bytes(note.as_bytes())
            .map_err(|_| refuse(400, "the checkpoint is not a note"))?;
        let mut fresh = Note::new(note_text.text(), &[]).map_err(|_| refuse(400, "bad note"))?;
        fresh
            .add_sigs(&[&signer])
            .map_err(|_| refuse(400, "cannot sign"))?;
        let all = fresh.to_bytes();
        Ok(all[note_text.text().len() + 1..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign_checkpoint;
    use tlog_tiles::{record_hash, stored_hashes_for_record_hash, tree_hash, HashReader};

    const ORIGIN: &str = "collective.test/w";

    struct Mem(Vec<Hash>);
    impl HashReader for Mem {
        fn read_hashes(&self, ix: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            ix.iter()
                .map(|&i| {
                    self.0
                        .get(i as usize)
                        .copied()
                        .ok_or(tlog_tiles::Error::IndexesNotInTree)
                })
                .collect()
        }
    }

    fn tree(n: u64) -> Mem {
        let mut m = Mem(vec![]);
        for i in 0..n {
            let hs = stored_hashes_for_record_hash(i, record_hash(&i.to_be_bytes()), &m).unwrap();
            m.0.extend(hs);
        }
        m
    }

    fn cp(key: &SigningKey, n: u64, m: &Mem) -> Vec<u8> {
        sign_checkpoint(ORIGIN, n, tree_hash(n, m).unwrap(), key).unwrap()
    }

    #[test]
    fn witness_follows_the_spec_and_cosignatures_verify() {
        let log_key = SigningKey::from_bytes(&[1; 32]);
        let log_vkey = crate::verifier_key_string(ORIGIN, &log_key.verifying_key());
        let mut w = Witness::new("witness.test/a", SigningKey::from_bytes(&[2; 32]));
        let wv = CosignatureVerifier::parse(&w.verifier_key()).unwrap();
        let m = tree(40);
        let c10 = cp(&log_key, 10, &m);
        let c40 = cp(&log_key, 40, &m);
        // Unknown log.
        assert_eq!(
            w.add_checkpoint(&add_checkpoint_body(0, &[], &c10), 1)
                .unwrap_err()
                .status,
            404
        );
        w.add_log(ORIGIN, &log_vkey);
        // First checkpoint, from 0.
        let lines = w
            .add_checkpoint(&add_checkpoint_body(0, &[], &c10), 1)
            .unwrap();
        let cosigned = append_cosignatures(&c10, &lines).unwrap();
        assert_eq!(count_cosignatures(&cosigned, std::slice::from_ref(&wv)), 1);
        assert_eq!(count_cosignatures(&c10, std::slice::from_ref(&wv)), 0);
        // Stale old size: 409 with the witness's size.
        let r = w
            .add_checkpoint(&add_checkpoint_body(0, &[], &c40), 2)
            .unwrap_err();
        assert_eq!((r.status, parse_size(r.body.as_bytes())), (409, Some(10)));
        // A wrong proof: 422; the right one: cosigned.
        let proof = tlog_tiles::prove_tree(40, 10, &m).unwrap();
        let mut bad = proof.clone();
        bad[0].0[0] ^= 1;
        assert_eq!(
            w.add_checkpoint(&add_checkpoint_body(10, &bad, &c40), 2)
                .unwrap_err()
                .status,
            422
        );
        w.add_checkpoint(&add_checkpoint_body(10, &proof, &c40), 2)
            .unwrap();
        assert_eq!(w.size(ORIGIN), Some(40));
        // Rollback: refused (old size is no longer the witness's).
        assert_eq!(
            w.add_checkpoint(&add_checkpoint_body(10, &[], &c10), 3)
                .unwrap_err()
                .status,
            409
        );
        // A fork at the same size: refused.
        let other = tree(41);
        let fork = sign_checkpoint(ORIGIN, 40, tree_hash(41, &other).unwrap(), &log_key).unwrap();
        assert_eq!(
            w.add_checkpoint(&add_checkpoint_body(40, &[], &fork), 3)
                .unwrap_err()
                .status,
            422
        );
        // Signed by another key: 403.
        let forged = cp(&SigningKey::from_bytes(&[9; 32]), 40, &m);
        assert_eq!(
            w.add_checkpoint(&add_checkpoint_body(40, &[], &forged), 3)
                .unwrap_err()
                .status,
            403
        );
        // Garbage: 400.
        assert_eq!(w.add_checkpoint(b"hello", 3).unwrap_err().status, 400);
    }

    #[test]
    fn cosignature_lines_are_checked() {
        assert!(append_cosignatures(b"x\n", b"").is_err());
        assert!(append_cosignatures(b"x\n", b"not a line\n").is_err());
        let bad = "w+00000000+AAAA";
        assert!(CosignatureVerifier::parse(bad).is_err());
        let k = SigningKey::from_bytes(&[3; 32]);
        let v = witness_verifier_key("w.test", &k.verifying_key());
        assert!(CosignatureVerifier::parse(&v).is_ok());
        // A log (0x01) key is not a witness key.
        let log = crate::verifier_key_string("w.test", &k.verifying_key());
        assert!(CosignatureVerifier::parse(&log).is_err());
    }
}
