//! Log entries: an in-toto Statement v1 inside a DSSE envelope.
//!
//! Security argument: the envelope signature covers `PAE(payloadType,
//! payload)` (DSSE v1), so neither the payload type nor any byte of the
//! statement can change without invalidating it. The statement binds the
//! decision to the exact code (git tree ids in both object formats, and the
//! commit) and to the entry's own position in the log (`logIndex`, `logOrigin`),
//! so an entry cannot be moved to another index or another node's log and
//! still verify. Verification parses strictly (unknown fields are refused)
//! so two auditors cannot read one entry two ways.

use base64::prelude::*;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::AttestError;

/// DSSE payload type of every entry.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Predicate type of this log's decisions; bump the version on any
/// incompatible change so old entries keep their meaning.
pub const PREDICATE_TYPE: &str = "https://collective.dev/decision/v1";
/// Digest-set key of the sha256-object-format git tree id. A custom key,
/// because in-toto's `sha256` means "sha256 of the artifact's bytes", which a
/// git tree id is not.
pub const DIGEST_GIT_TREE_SHA256: &str = "gitTreeSha256";
/// Largest encoded entry: C2SP entry bundles prefix each entry with a 16-bit length.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// What the node decided or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// The tree was allowed and checked out; jobs may now run from it.
    Deployed,
    /// The tree (or, with `job`, one job) was not allowed; `reason` says why.
    Refused,
    /// Written before a job's sandbox starts, so a crash leaves a start with no
    /// end for the next start-up to resolve.
    JobStarted,
    /// A batch job ended (or failed to run); carries its outputs and exit status.
    JobFinished,
    /// The approval was revoked on chain, so the tree (or job) was stopped.
    Revoked,
    /// An export job re-encrypted the selected datasets to its recipient.
    Exported,
    /// Stopped without a revocation (registry paused, approval expired, node
    /// shutting down); it may run again once allowed again.
    Suspended,
    /// A job had started but had no end record when the node restarted.
    Interrupted,
    /// The registry was paused; replayed as a stop, like `suspended`.
    Paused,
    /// A job was stopped because a dataset it reads was withdrawn.
    Withdrawn,
}

impl Decision {
    /// Decisions that claim code was (or is about to be) run, and so must
    /// cite an on-chain approval that existed at the cited block.
    pub fn needs_approval(self) -> bool {
        matches!(
            self,
            Decision::Deployed | Decision::JobStarted | Decision::JobFinished | Decision::Exported
        )
    }

    /// The kebab-case name used in the JSON predicate and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Deployed => "deployed",
            Decision::Refused => "refused",
            Decision::JobStarted => "job-started",
            Decision::JobFinished => "job-finished",
            Decision::Revoked => "revoked",
            Decision::Exported => "exported",
            Decision::Suspended => "suspended",
            Decision::Interrupted => "interrupted",
            Decision::Paused => "paused",
            Decision::Withdrawn => "withdrawn",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// 40 hex: tree id in git's sha1 object format.
    pub tree_sha1: String,
    /// 64 hex: the same tree's id in git's sha256 object format.
    pub tree_sha256: String,
    /// The commit the tree came from (40 or 64 hex), when there is one.
    pub commit: Option<String>,
}

/// Where an approval was recorded on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRef {
    /// EIP-155 chain id, so an approval on a test chain cannot pass for one on
    /// the real chain.
    pub chain_id: u64,
    /// CodeRegistry address, 0x-hex.
    pub contract: String,
    /// Transaction that approved the tree, 0x-hex.
    pub tx_hash: String,
    /// Block the approval transaction was included in.
    pub block_number: u64,
    /// 0x-hex; pins the block against reorgs.
    pub block_hash: String,
}

/// One output a job produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputDigest {
    /// Name of the encrypted file (`<output>.age`, or `<dataset id>.age` for an export).
    pub name: String,
    /// 64 hex.
    pub sha256: String,
    /// Length of the encrypted file in bytes.
    pub size: u64,
}

/// The decision record (predicate `https://collective.dev/decision/v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Predicate {
    /// What happened.
    pub decision: Decision,
    /// Why, in words (refusal reasons, revocation reason, ...).
    pub reason: String,
    /// Why, as a stable machine code (`not-approved`, `expired`,
    /// `deploy-materialize`, ...): what the node deduplicates refusals by,
    /// so an unchanged verdict is logged once whatever its wording (the
    /// reason text may carry times and error details that vary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// The on-chain approval the decision relied on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRef>,
    /// sha256 (hex) of the node policy in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
    /// Job name (for job-* and exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Digests of the encrypted files a job produced, so whoever fetches
    /// them can check they are what the node logged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputDigest>,
    /// Exit status of a finished batch job (-1 if it could not be run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// Version of the software that wrote the entry, for reading old entries.
    pub controller_version: String,
    /// RFC 3339, UTC.
    pub time: String,
    /// Position of this entry in the log; set by [`crate::Log::append`]
    /// (whatever the caller put here is overwritten).
    #[serde(default)]
    pub log_index: u64,
    /// Origin of the log holding the entry; set by [`crate::Log::append`].
    #[serde(default)]
    pub log_origin: String,
}

impl Predicate {
    /// A predicate stamped with the current time and this crate's version;
    /// fill the optional fields directly.
    pub fn new(decision: Decision, reason: impl Into<String>) -> Self {
        Predicate {
            decision,
            reason: reason.into(),
            reason_code: None,
            approval: None,
            policy_digest: None,
            job: None,
            outputs: Vec::new(),
            exit_status: None,
            controller_version: env!("CARGO_PKG_VERSION").to_string(),
            time: now_rfc3339(),
            log_index: 0,
            log_origin: String::new(),
        }
    }
}

/// Current UTC time, RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// in-toto ResourceDescriptor (only the fields this log uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Unknown fields are ignored: in-toto consumers MUST, DSSE allows.
pub struct ResourceDescriptor {
    /// `tree` or `commit`.
    pub name: String,
    /// Digest algorithm name (`gitTree`, `gitTreeSha256`, `gitCommit`) to hex id.
    pub digest: BTreeMap<String, String>,
}

/// in-toto Statement v1 with our predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Unknown fields are ignored: in-toto consumers MUST, DSSE allows.
pub struct Statement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// The tree and, when known, the commit.
    pub subject: Vec<ResourceDescriptor>,
    /// Always [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The decision record.
    pub predicate: Predicate,
}

impl Statement {
    /// Builds the statement for a subject; validates every id.
    pub fn new(subject: &Subject, predicate: Predicate) -> Result<Self, AttestError> {
        check_hex("tree_sha1", &subject.tree_sha1, &[40])?;
        check_hex("tree_sha256", &subject.tree_sha256, &[64])?;
        let mut tree = BTreeMap::new();
        tree.insert("gitTree".to_string(), subject.tree_sha1.clone());
        tree.insert(
            DIGEST_GIT_TREE_SHA256.to_string(),
            subject.tree_sha256.clone(),
        );
        let mut subjects = vec![ResourceDescriptor {
            name: "tree".into(),
            digest: tree,
        }];
        if let Some(commit) = &subject.commit {
            check_hex("commit", commit, &[40, 64])?;
            let mut c = BTreeMap::new();
            c.insert("gitCommit".to_string(), commit.clone());
            subjects.push(ResourceDescriptor {
                name: "commit".into(),
                digest: c,
            });
        }
        if let Some(a) = &predicate.approval {
            check_hex("approval.txHash", a.tx_hash.trim_start_matches("0x"), &[64])?;
            check_hex(
                "approval.blockHash",
                a.block_hash.trim_start_matches("0x"),
                &[64],
            )?;
        }
        for o in &predicate.outputs {
            check_hex("outputs.sha256", &o.sha256, &[64])?;
        }
        Ok(Statement {
            type_: STATEMENT_TYPE.into(),
            subject: subjects,
            predicate_type: PREDICATE_TYPE.into(),
            predicate,
        })
    }

    /// The subject back out of a verified statement.
    pub fn subject(&self) -> Result<Subject, String> {
        let tree = self
            .subject
            .iter()
            .find(|s| s.name == "tree")
            .ok_or("no `tree` subject")?;
        let sha1 = tree
            .digest
            .get("gitTree")
            .ok_or("tree subject has no gitTree digest")?;
        let sha256 = tree
            .digest
            .get(DIGEST_GIT_TREE_SHA256)
            .ok_or("tree subject has no gitTreeSha256 digest")?;
        let commit = self
            .subject
            .iter()
            .find(|s| s.name == "commit")
            .and_then(|s| s.digest.get("gitCommit"))
            .cloned();
        Ok(Subject {
            tree_sha1: sha1.clone(),
            tree_sha256: sha256.clone(),
            commit,
        })
    }
}

fn check_hex(field: &'static str, v: &str, lens: &[usize]) -> Result<(), AttestError> {
    let ok = lens.contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AttestError::InvalidEntry {
            field,
            reason: format!("{v:?} is not {lens:?} lowercase hex digits"),
        })
    }
}

/// DSSE envelope (JSON form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Unknown fields are ignored: in-toto consumers MUST, DSSE allows.
pub struct Envelope {
    /// base64 (standard, padded) of the statement JSON.
    pub payload: String,
    /// Always [`PAYLOAD_TYPE`]; signed along with the payload.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// At least one; every one must verify under the log key (none is skipped).
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Unknown fields are ignored: in-toto consumers MUST, DSSE allows.
pub struct EnvelopeSignature {
    /// The signed-note key id (8 hex) of the log key.
    pub keyid: String,
    /// base64 Ed25519 signature over PAE(payloadType, payload).
    pub sig: String,
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs a statement into an encoded envelope (the exact bytes stored as a log entry).
pub fn sign_statement(
    statement: &Statement,
    key: &SigningKey,
    keyid: &str,
) -> Result<Vec<u8>, AttestError> {
    let payload = serde_json::to_vec(statement).map_err(|e| AttestError::InvalidEntry {
        field: "statement",
        reason: e.to_string(),
    })?;
    let sig = key
        .try_sign(&pae(PAYLOAD_TYPE, &payload))
        .map_err(|e| AttestError::Sign(e.to_string()))?;
    let env = Envelope {
        payload: BASE64_STANDARD.encode(&payload),
        payload_type: PAYLOAD_TYPE.into(),
        signatures: vec![EnvelopeSignature {
            keyid: keyid.into(),
            sig: BASE64_STANDARD.encode(sig.to_bytes()),
        }],
    };
    let bytes = serde_json::to_vec(&env).map_err(|e| AttestError::InvalidEntry {
        field: "envelope",
        reason: e.to_string(),
    })?;
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(AttestError::InvalidEntry {
            field: "entry",
            reason: format!(
                "encoded entry is {} bytes; the limit is {MAX_ENTRY_BYTES}",
                bytes.len()
            ),
        });
    }
    Ok(bytes)
}

/// Base64 as DSSE allows it: standard or URL-safe alphabet, padded or not.
fn b64_any(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{
        general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig,
    };
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&base64::alphabet::STANDARD, cfg)
        .decode(s)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg).decode(s))
}

/// Opens an encoded entry: parses the envelope, checks the payload type,
/// verifies the signature (strict Ed25519) and parses the statement.
/// `index` is only used in error messages.
pub fn open_entry(bytes: &[u8], key: &VerifyingKey, index: u64) -> Result<Statement, AttestError> {
    let bad = |reason: String| AttestError::Entry { index, reason };
    let env: Envelope =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a DSSE envelope: {e}")))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(bad(format!(
            "payload type {:?}, expected {PAYLOAD_TYPE:?}",
            env.payload_type
        )));
    }
    let payload = b64_any(&env.payload).map_err(|e| bad(format!("payload is not base64: {e}")))?;
    if env.signatures.is_empty() {
        return Err(bad("envelope has no signature".into()));
    }
    let message = pae(&env.payload_type, &payload);
    // DSSE verification is t-of-n over known keys (here t = 1, the log
    // key): signatures by other keys, or that do not parse, do not count
    // and do not fail the entry; at least one must verify.
    let verified = env.signatures.iter().any(|s| {
        b64_any(&s.sig)
            .ok()
            .and_then(|raw| ed25519_dalek::Signature::from_slice(&raw).ok())
            .is_some_and(|sig| key.verify_strict(&message, &sig).is_ok())
    });
    if !verified {
        return Err(bad(format!(
            "envelope signature does not verify under the log key (none of {} verifies)",
            env.signatures.len()
        )));
    }
    let st: Statement = serde_json::from_slice(&payload)
        .map_err(|e| bad(format!("statement does not parse: {e}")))?;
    if st.type_ != STATEMENT_TYPE {
        return Err(bad(format!(
            "statement _type {:?}, expected {STATEMENT_TYPE:?}",
            st.type_
        )));
    }
    if st.predicate_type != PREDICATE_TYPE {
        return Err(bad(format!(
            "predicateType {:?}, expected {PREDICATE_TYPE:?}",
            st.predicate_type
        )));
    }
    st.subject().map_err(|e| bad(e.to_string()))?;
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn subject() -> Subject {
        Subject {
            tree_sha1: "a".repeat(40),
            tree_sha256: "b".repeat(64),
            commit: Some("c".repeat(40)),
        }
    }

    #[test]
    fn pae_matches_dsse_spec_example() {
        // From the DSSE protocol spec (secure-systems-lab/dsse, protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_then_open_roundtrips_and_other_key_fails() {
        let st = Statement::new(&subject(), Predicate::new(Decision::Deployed, "ok")).unwrap();
        let bytes = sign_statement(&st, &key(1), "00000000").unwrap();
        assert_eq!(open_entry(&bytes, &key(1).verifying_key(), 0).unwrap(), st);
        let err = open_entry(&bytes, &key(2).verifying_key(), 7)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("entry 7") && err.contains("does not verify"),
            "{err}"
        );
    }

    #[test]
    fn edited_payload_fails() {
        let st =
            Statement::new(&subject(), Predicate::new(Decision::Refused, "no approval")).unwrap();
        let bytes = sign_statement(&st, &key(1), "k").unwrap();
        let mut env: Envelope = serde_json::from_slice(&bytes).unwrap();
        let mut payload = BASE64_STANDARD.decode(&env.payload).unwrap();
        let s = String::from_utf8(payload.clone())
            .unwrap()
            .replace("no approval", "approved!!!");
        payload = s.into_bytes();
        env.payload = BASE64_STANDARD.encode(payload);
        let err = open_entry(
            &serde_json::to_vec(&env).unwrap(),
            &key(1).verifying_key(),
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not verify"));
        env.payload_type = "text/plain".into();
        let err = open_entry(
            &serde_json::to_vec(&env).unwrap(),
            &key(1).verifying_key(),
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("payload type"));
    }

    #[test]
    fn dsse_and_in_toto_tolerance_is_as_the_specs_say() {
        let st = Statement::new(&subject(), Predicate::new(Decision::Deployed, "ok")).unwrap();
        let bytes = sign_statement(&st, &key(1), "k").unwrap();
        let vk = key(1).verifying_key();
        let env: Envelope = serde_json::from_slice(&bytes).unwrap();
        let raw = BASE64_STANDARD.decode(&env.payload).unwrap();
        // URL-safe, unpadded base64 of payload and signature: accepted.
        let mut url = env.clone();
        url.payload = base64::prelude::BASE64_URL_SAFE_NO_PAD.encode(&raw);
        let sig = BASE64_STANDARD.decode(&env.signatures[0].sig).unwrap();
        url.signatures[0].sig = base64::prelude::BASE64_URL_SAFE_NO_PAD.encode(&sig);
        assert_eq!(
            open_entry(&serde_json::to_vec(&url).unwrap(), &vk, 0).unwrap(),
            st
        );
        // An extra valid signature by another key, before ours: accepted.
        let mut extra = env.clone();
        let other = key(9).sign(&pae(&env.payload_type, &raw));
        extra.signatures.insert(
            0,
            EnvelopeSignature {
                keyid: "other".into(),
                sig: BASE64_STANDARD.encode(other.to_bytes()),
            },
        );
        assert_eq!(
            open_entry(&serde_json::to_vec(&extra).unwrap(), &vk, 0).unwrap(),
            st
        );
        // Only other keys' signatures: refused.
        extra.signatures.truncate(1);
        let e = open_entry(&serde_json::to_vec(&extra).unwrap(), &vk, 0).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        // Unknown fields in the in-toto Statement and subject: ignored, when
        // signed (the signature still covers every byte).
        let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        v["futureField"] = serde_json::json!({"x": 1});
        v["subject"][0]["annotations"] = serde_json::json!({"a": "b"});
        let payload = serde_json::to_vec(&v).unwrap();
        let sig = key(1).sign(&pae(&env.payload_type, &payload));
        let mut unk = env.clone();
        unk.payload = BASE64_STANDARD.encode(&payload);
        unk.signatures[0].sig = BASE64_STANDARD.encode(sig.to_bytes());
        assert_eq!(
            open_entry(&serde_json::to_vec(&unk).unwrap(), &vk, 0).unwrap(),
            st
        );
    }

    #[test]
    fn bad_ids_are_refused() {
        let mut s = subject();
        s.tree_sha1 = "XYZ".into();
        assert!(Statement::new(&s, Predicate::new(Decision::Deployed, "")).is_err());
        let mut s = subject();
        s.tree_sha256 = "A".repeat(64);
        assert!(Statement::new(&s, Predicate::new(Decision::Deployed, "")).is_err());
        let mut s = subject();
        s.commit = Some("12".into());
        assert!(Statement::new(&s, Predicate::new(Decision::Deployed, "")).is_err());
    }

    #[test]
    fn oversized_entry_is_refused() {
        let st = Statement::new(
            &subject(),
            Predicate::new(Decision::Refused, "x".repeat(70_000)),
        )
        .unwrap();
        assert!(matches!(
            sign_statement(&st, &key(1), "k"),
            Err(AttestError::InvalidEntry { field: "entry", .. })
        ));
    }

    #[test]
    fn decision_serializes_kebab_case() {
        assert_eq!(
            serde_json::to_string(&Decision::JobStarted).unwrap(),
            "\"job-started\""
        );
        assert_eq!(Decision::JobStarted.to_string(), "job-started");
    }
}
