//! Pure verification: checkpoints, consistency, inclusion, entries, anchors.
//!
//! Security argument: the only trusted inputs are the log's verifier key
//! and the auditor's own remembered checkpoint (and, in the CLI, on-chain
//! anchors). Everything read from the log source is treated as hostile:
//! - the checkpoint must carry a valid signature by the key, for the key's origin;
//! - the remembered checkpoint must be a prefix of the new one, proven by an
//!   RFC 6962 consistency proof computed from tiles that `tlog_tiles`
//!   authenticates against the new signed root; a smaller size is a
//!   rollback, the same size with another root or a failing proof is a fork
//!   (as Go's sumdb client: both checkpoints and the proof are reported);
//! - every entry bundle is re-hashed; the tree rebuilt from the entries must
//!   hash to the signed root, every hash tile must equal the rebuilt one,
//!   and every entry gets an inclusion proof checked against the root;
//! - every entry's DSSE signature must verify under the log key and the
//!   entry must name its own index and origin (no moving entries around).
//!
//! No function here does network or chain I/O; the CLI feeds bytes in.

use base64::prelude::*;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{check_tree, prove_tree, Checkpoint, Hash, TileHashReader};

use crate::entry::{ApprovalRef, Decision, Statement};
use crate::tiles::{SourceTileReader, TileSource, CHECKPOINT_PATH};
use crate::AttestError;

pub use crate::proof::ProofBundle;

/// Largest log a full audit accepts (2^36 entries: far beyond any node, far
/// below what would exhaust an auditor's address space before failing).
pub const MAX_AUDIT_SIZE: u64 = 1 << 36;

/// Parses a C2SP verifier key into its name (the origin) and Ed25519 key.
pub fn parse_verifier_key(vkey: &str) -> Result<(String, VerifyingKey), AttestError> {
    let bad = |reason: &str| AttestError::BadKey {
        key: vkey.to_string(),
        reason: reason.to_string(),
    };
    let v = StandardVerifier::new(vkey).map_err(|e| bad(&e.to_string()))?;
    // `name+keyhash+base64`: names never contain '+', but base64 may, so
    // the key data is everything after the second '+'.
    let b64 = vkey
        .splitn(3, '+')
        .nth(2)
        .ok_or_else(|| bad("no key data"))?;
    let raw = BASE64_STANDARD
        .decode(b64)
        .map_err(|e| bad(&e.to_string()))?;
    let bytes: [u8; 32] = raw
        .get(1..)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| bad("not an Ed25519 key"))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|e| bad(&e.to_string()))?;
    Ok((signed_note::Verifier::name(&v).to_string(), key))
}

/// Verifies a signed checkpoint under `vkey` and returns it; its origin
/// must be the key's name.
pub fn verify_checkpoint(text: &[u8], vkey: &str) -> Result<Checkpoint, AttestError> {
    let v = StandardVerifier::new(vkey).map_err(|e| AttestError::BadKey {
        key: vkey.to_string(),
        reason: e.to_string(),
    })?;
    let name = signed_note::Verifier::name(&v).to_string();
    let note = Note::from_bytes(text).map_err(|e| AttestError::MalformedCheckpoint {
        reason: e.to_string(),
    })?;
    note.verify(&VerifierList::new(vec![Box::new(v)]))
        .map_err(|e| AttestError::CheckpointSignature {
            key_name: name.clone(),
            reason: e.to_string(),
        })?;
    let cp = Checkpoint::from_bytes(note.text()).map_err(|e| AttestError::MalformedCheckpoint {
        reason: e.to_string(),
    })?;
    if cp.origin() != name {
        return Err(AttestError::Origin {
            expected: name,
            found: cp.origin().to_string(),
        });
    }
    Ok(cp)
}

/// What an auditor remembers between runs (`--state`): the last checkpoint
/// it verified, as signed text (re-verified on load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditorState {
    /// The log's name the checkpoint was for.
    pub origin: String,
    /// Tree size the auditor has verified up to.
    pub size: u64,
    /// base64 root hash.
    pub root: String,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl AuditorState {
    /// Loads state JSON and re-verifies its checkpoint under `vkey`.
    pub fn from_json(json: &str, vkey: &str) -> Result<(AuditorState, Checkpoint), AttestError> {
        let st: AuditorState = serde_json::from_str(json).map_err(|e| AttestError::Decode {
            what: "auditor state".into(),
            reason: e.to_string(),
        })?;
        let cp = verify_checkpoint(st.checkpoint.as_bytes(), vkey)?;
        if cp.size() != st.size || cp.hash().to_string() != st.root {
            return Err(AttestError::Decode {
                what: "auditor state".into(),
                reason: "size/root disagree with its checkpoint".into(),
            });
        }
        Ok((st, cp))
    }
}

/// Kinds of verification failure (stable names for `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The checkpoint's signature does not verify under the log key.
    CheckpointSignature,
    /// The log serves a smaller tree than this auditor already verified.
    Rollback,
    /// The log does not extend the checkpoint seen before (same size with
    /// another root, or a failing consistency proof).
    Fork,
    /// A tile the audit needs is absent.
    MissingTile,
    /// A tile has the wrong length or does not match the tree rebuilt from
    /// the entries (also used for a checkpoint too large to audit).
    CorruptTile,
    /// An entry bundle is truncated or otherwise malformed.
    TruncatedBundle,
    /// The entries do not hash to the signed root.
    RootMismatch,
    /// An entry is not the leaf the signed tree holds at its index.
    EditedEntry,
    /// An entry's DSSE signature or statement does not verify.
    EntrySignature,
    /// An entry names another index or origin than where it sits.
    EntryPosition,
    /// The node anchored a larger checkpoint on chain than the log now serves.
    AnchorAhead,
    /// The checkpoint disagrees with an on-chain anchor.
    AnchorMismatch,
    /// An entry that runs code cites no approval, or none existed at the cited block.
    ApprovalMissing,
    /// The cited approval was revoked at the cited block.
    ApprovalRevoked,
    /// The cited approval had expired at the cited block.
    ApprovalExpired,
    /// The cited approval differs from the chain (chain, contract, tree, tx, block).
    ApprovalMismatch,
    /// The entry's tree is not in the repository the auditor checked against.
    TreeMissing,
    /// The repository's tree has other ids than the entry names.
    TreeMismatch,
    /// The server sent more than the largest legal file at a path.
    OversizedResponse,
    /// The server did not answer within the per-request or overall deadline.
    Deadline,
    /// Fewer than the required witnesses cosigned the checkpoint.
    WitnessQuorum,
}

/// One problem an audit found, kept so a report lists all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Stable category, for machines.
    pub kind: FailureKind,
    /// What was wrong, with the index, tile or block concerned.
    pub message: String,
}

/// A verified checkpoint, as a report shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// The log's name.
    pub origin: String,
    /// Number of entries it commits to.
    pub size: u64,
    /// base64, as in the checkpoint.
    pub root: String,
    /// The signed note itself, so the report can be re-checked.
    pub text: String,
}

impl CheckpointInfo {
    fn of(cp: &Checkpoint, text: &str) -> Self {
        CheckpointInfo {
            origin: cp.origin().into(),
            size: cp.size(),
            root: cp.hash().to_string(),
            text: text.into(),
        }
    }
}

/// A consistency proof between two checkpoints, as checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsistencyInfo {
    /// Size of the checkpoint remembered before.
    pub from_size: u64,
    /// Size of the checkpoint now served.
    pub to_size: u64,
    /// base64 hashes.
    pub proof: Vec<String>,
    /// Whether the proof checked out against both roots.
    pub verified: bool,
}

/// One entry, as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntrySummary {
    /// Position in the log.
    pub index: u64,
    /// What the node decided.
    pub decision: Decision,
    /// When, as the entry says (RFC 3339).
    pub time: String,
    /// sha1-format git tree id.
    pub tree_sha1: String,
    /// sha256-format git tree id.
    pub tree_sha256: String,
    /// The commit, if the entry names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The on-chain approval the entry cites.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRef>,
    /// The job, for job entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The entry's reason text.
    pub reason: String,
}

/// Options of [`audit`].
#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    /// Keep summaries of the last entries in the report (off for huge logs in benchmarks).
    pub keep_entries: bool,
    /// Also keep one summary per distinct (tree, commit, approval) of the
    /// entries that run code, for approval and repository checks. Memory
    /// then grows with the distinct approvals the log cites; off, the audit
    /// is flat in the log's size.
    pub keep_distinct: bool,
    /// Keep every entry's summary (`collective audit --entries`): memory
    /// then grows with the log.
    pub keep_all: bool,
    /// At most this many failures are listed; the rest are counted.
    pub max_failures: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            keep_entries: true,
            keep_distinct: false,
            keep_all: false,
            max_failures: 200,
        }
    }
}

/// Everything an audit found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    /// Where the log was read from.
    pub source: String,
    /// The checkpoint now served, if it verified.
    pub checkpoint: Option<CheckpointInfo>,
    /// The checkpoint this auditor remembered, if any.
    pub previous: Option<CheckpointInfo>,
    /// The proof that the served log extends the remembered one.
    pub consistency: Option<ConsistencyInfo>,
    /// Entries read and hashed into the rebuilt tree.
    pub entries_verified: u64,
    /// Entries per decision (of those whose signature verified).
    #[serde(default)]
    pub decision_counts: std::collections::BTreeMap<String, u64>,
    /// Entry summaries: the last few, and with [`AuditOptions::keep_distinct`]
    /// one per distinct approval cited (empty when `keep_entries` is off).
    pub entries: Vec<EntrySummary>,
    /// The failures listed, at most [`AuditOptions::max_failures`].
    pub failures: Vec<Failure>,
    /// Failures found beyond the listed ones, so a long list still counts them.
    pub failures_not_listed: u64,
    /// Checks that ran, in order, for the report.
    pub checks: Vec<String>,
    #[serde(skip)]
    max_failures: usize,
}

impl AuditReport {
    /// An empty report for `source`, listing at most `max_failures` failures.
    pub fn new(source: String, max_failures: usize) -> Self {
        AuditReport {
            source,
            checkpoint: None,
            previous: None,
            consistency: None,
            entries_verified: 0,
            decision_counts: Default::default(),
            entries: Vec::new(),
            failures: Vec::new(),
            failures_not_listed: 0,
            checks: Vec::new(),
            max_failures,
        }
    }
    /// True only when nothing failed, including the unlisted failures.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.failures_not_listed == 0
    }
    /// Records a failure (counted once the list is full).
    pub fn fail(&mut self, kind: FailureKind, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!(?kind, %message, "audit failure");
        if self.failures.len() < self.max_failures.max(1) {
            self.failures.push(Failure { kind, message });
        } else {
            self.failures_not_listed += 1;
        }
    }
    /// Notes a check that ran.
    pub fn check(&mut self, what: impl Into<String>) {
        self.checks.push(what.into());
    }
    /// The state to remember when the audit passed (None if it failed).
    pub fn new_state(&self) -> Option<AuditorState> {
        if !self.ok() {
            return None;
        }
        let c = self.checkpoint.as_ref()?;
        Some(AuditorState {
            origin: c.origin.clone(),
            size: c.size,
            root: c.root.clone(),
            checkpoint: c.text.clone(),
        })
    }
}

pub(crate) fn tile_failure(report: &mut AuditReport, e: AttestError) {
    let kind = match &e {
        AttestError::MissingTile { .. } => FailureKind::MissingTile,
        AttestError::TileLength { .. } => FailureKind::CorruptTile,
        AttestError::Bundle { .. } => FailureKind::TruncatedBundle,
        AttestError::TooLarge { .. } => FailureKind::OversizedResponse,
        AttestError::Deadline { .. } => FailureKind::Deadline,
        _ => FailureKind::CorruptTile,
    };
    report.fail(kind, e.to_string());
}

pub(crate) fn b64s(p: &[Hash]) -> Vec<String> {
    p.iter().map(Hash::to_string).collect()
}

/// Requires `quorum` valid cosignatures by distinct `witnesses` on the
/// audited checkpoint (C2SP tlog-cosignature): an operator showing two
/// histories then needs that many witnesses to collude.
pub fn check_witnesses(
    report: &mut AuditReport,
    witnesses: &[crate::witness::CosignatureVerifier],
    quorum: usize,
) {
    let Some((text, size)) = report.checkpoint.as_ref().map(|c| (c.text.clone(), c.size)) else {
        return;
    };
    report.check(format!(
        "at least {quorum} of {} witness cosignature(s)",
        witnesses.len()
    ));
    let n = crate::witness::count_cosignatures(text.as_bytes(), witnesses);
    if n < quorum {
        report.fail(
            FailureKind::WitnessQuorum,
            format!(
                "the checkpoint of size {size} carries {n} valid cosignature(s) by the given witnesses; {quorum} required"
            ),
        );
    }
}

/// The consistency proof from size `old_size` to the tree `cp` served by
/// `src` (what a log sends a witness).
pub fn consistency_proof(
    src: &dyn TileSource,
    cp: &Checkpoint,
    old_size: u64,
) -> Result<Vec<Hash>, AttestError> {
    let tr = SourceTileReader::new(src);
    let thr = TileHashReader::new(cp.size(), *cp.hash(), &tr);
    prove_tree(cp.size(), old_size, &thr).map_err(|e| tr.explain("consistency", e))
}

/// Checks that `old` (size, root) is a prefix of the tree `cp` served by
/// `src`. Returns the proof and whether it verified, or a tile error.
pub fn consistency(
    src: &dyn TileSource,
    cp: &Checkpoint,
    old_size: u64,
    old_root: Hash,
) -> Result<(Vec<Hash>, bool), AttestError> {
    if old_size == 0 {
        return Ok((vec![], true));
    }
    if old_size > cp.size() {
        return Ok((vec![], false));
    }
    let tr = SourceTileReader::new(src);
    let thr = TileHashReader::new(cp.size(), *cp.hash(), &tr);
    let proof = prove_tree(cp.size(), old_size, &thr).map_err(|e| tr.explain("consistency", e))?;
    let ok = check_tree(&proof, cp.size(), *cp.hash(), old_size, old_root).is_ok();
    Ok((proof, ok))
}

/// Audits the log served by `src` under `vkey`, starting from the auditor's
/// previous state. `Err` means the audit could not run (source unreachable,
/// bad key, no checkpoint); verification failures are in the report.
pub fn audit(
    src: &dyn TileSource,
    vkey: &str,
    previous: Option<&AuditorState>,
    opts: AuditOptions,
) -> Result<AuditReport, AttestError> {
    let (_, key) = parse_verifier_key(vkey)?;
    let mut report = AuditReport::new(src.name(), opts.max_failures);
    let text = match src.read(CHECKPOINT_PATH) {
        // A hostile server's answer is a finding, not an outage.
        Err(e @ (AttestError::TooLarge { .. } | AttestError::Deadline { .. })) => {
            tile_failure(&mut report, e);
            return Ok(report);
        }
        r => r?,
    };
    let text = text.ok_or_else(|| AttestError::Source {
        source_name: src.name(),
        path: CHECKPOINT_PATH.into(),
        message: "no checkpoint (is this a log?)".into(),
    })?;
    let text_str = String::from_utf8_lossy(&text).into_owned();
    report.check("checkpoint signature");
    let cp = match verify_checkpoint(&text, vkey) {
        Ok(cp) => cp,
        Err(e) => {
            report.fail(FailureKind::CheckpointSignature, e.to_string());
            return Ok(report);
        }
    };
    report.checkpoint = Some(CheckpointInfo::of(&cp, &text_str));
    let origin = cp.origin().to_string();

    if let Some(prev) = previous {
        report.check(format!(
            "consistency with the last checkpoint seen (size {})",
            prev.size
        ));
        let prev_cp = verify_checkpoint(prev.checkpoint.as_bytes(), vkey)?;
        report.previous = Some(CheckpointInfo::of(&prev_cp, &prev.checkpoint));
        check_previous(src, &cp, &text_str, &prev_cp, &prev.checkpoint, &mut report);
    }

    report.check(format!("every tile and entry of {} entries", cp.size()));
    if cp.size() > MAX_AUDIT_SIZE {
        // A signed but absurd size: refused before any request for it.
        report.fail(
            FailureKind::CorruptTile,
            format!(
                "checkpoint claims {} entries; refusing to audit more than {MAX_AUDIT_SIZE}",
                cp.size()
            ),
        );
        return Ok(report);
    }
    crate::stream::check_entries(src, &cp, &key, &origin, opts, &mut report);
    Ok(report)
}

fn fork_message(
    what: &str,
    old: &Checkpoint,
    old_text: &str,
    new: &Checkpoint,
    new_text: &str,
    proof: &[Hash],
) -> String {
    format!(
        "{what}\n--- checkpoint seen before (size {}):\n{}--- checkpoint served now (size {}):\n{}--- consistency proof ({} hashes): [{}]",
        old.size(),
        old_text,
        new.size(),
        new_text,
        proof.len(),
        b64s(proof).join(", ")
    )
}

fn check_previous(
    src: &dyn TileSource,
    cp: &Checkpoint,
    text: &str,
    prev: &Checkpoint,
    prev_text: &str,
    report: &mut AuditReport,
) {
    if prev.size() > cp.size() {
        report.fail(
            FailureKind::Rollback,
            fork_message(
                &format!("ROLLBACK: the log now serves size {} but this auditor already verified size {}", cp.size(), prev.size()),
                prev,
                prev_text,
                cp,
                text,
                &[],
            ),
        );
        return;
    }
    if prev.size() == cp.size() {
        let ok = prev.hash() == cp.hash();
        report.consistency = Some(ConsistencyInfo {
            from_size: prev.size(),
            to_size: cp.size(),
            proof: vec![],
            verified: ok,
        });
        if !ok {
            report.fail(
                FailureKind::Fork,
                fork_message(
                    &format!(
                        "FORK: two signed checkpoints of size {} with different roots",
                        cp.size()
                    ),
                    prev,
                    prev_text,
                    cp,
                    text,
                    &[],
                ),
            );
        }
        return;
    }
    match consistency(src, cp, prev.size(), *prev.hash()) {
        Ok((proof, ok)) => {
            report.consistency = Some(ConsistencyInfo {
                from_size: prev.size(),
                to_size: cp.size(),
                proof: b64s(&proof),
                verified: ok,
            });
            if !ok {
                report.fail(
                    FailureKind::Fork,
                    fork_message(
                        &format!("FORK: the log of size {} does not extend the checkpoint of size {} seen before", cp.size(), prev.size()),
                        prev,
                        prev_text,
                        cp,
                        text,
                        &proof,
                    ),
                );
            }
        }
        Err(e) => tile_failure(report, e),
    }
}

pub(crate) fn summary(index: u64, st: &Statement) -> EntrySummary {
    let s = st.subject().unwrap_or(crate::Subject {
        tree_sha1: String::new(),
        tree_sha256: String::new(),
        commit: None,
    });
    let p = &st.predicate;
    EntrySummary {
        index,
        decision: p.decision,
        time: p.time.clone(),
        tree_sha1: s.tree_sha1,
        tree_sha256: s.tree_sha256,
        commit: s.commit,
        approval: p.approval.clone(),
        job: p.job.clone(),
        reason: p.reason.clone(),
    }
}

/// Checks the checkpoint against checkpoints anchored on chain
/// (`(size, root)` pairs): each anchor must be a prefix of the served tree.
/// An anchor larger than the served tree means the log was rolled back or an
/// old checkpoint is being replayed.
pub fn check_anchors(
    src: &dyn TileSource,
    report: &mut AuditReport,
    anchors: &[(u64, [u8; 32], u64)],
) {
    let Some(info) = report.checkpoint.clone() else {
        return;
    };
    let Ok(cp) = Checkpoint::from_bytes(
        Note::from_bytes(info.text.as_bytes())
            .map(|n| n.text().to_vec())
            .unwrap_or_default()
            .as_slice(),
    ) else {
        return;
    };
    report.check(format!(
        "consistency with {} on-chain anchor(s)",
        anchors.len()
    ));
    for &(size, root, block) in anchors {
        let root = Hash(root);
        if size > cp.size() {
            report.fail(
                FailureKind::AnchorAhead,
                format!(
                    "the node anchored a checkpoint of size {size} (root {root}) at block {block}, but the log serves only size {}: rolled back or replaying an old checkpoint",
                    cp.size()
                ),
            );
            continue;
        }
        match consistency(src, &cp, size, root) {
            Ok((_, true)) => {}
            Ok((proof, false)) => report.fail(
                FailureKind::AnchorMismatch,
                format!(
                    "the checkpoint (size {}, root {}) disagrees with the anchor at block {block} (size {size}, root {root}); consistency proof [{}]",
                    cp.size(),
                    cp.hash(),
                    b64s(&proof).join(", ")
                ),
            ),
            Err(e) => tile_failure(report, e),
        }
    }
}

impl From<&Checkpoint> for CheckpointInfo {
    fn from(cp: &Checkpoint) -> Self {
        CheckpointInfo {
            origin: cp.origin().into(),
            size: cp.size(),
            root: cp.hash().to_string(),
            text: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    /// Base64 key data may contain '+', the separator of a verifier key's
    /// fields; parsing must still find the whole key.
    #[test]
    fn verifier_keys_whose_base64_contains_plus_parse() {
        let mut tried = 0;
        for seed in 0u8..=255 {
            let key = SigningKey::from_bytes(&[seed; 32]).verifying_key();
            let vkey = crate::verifier_key_string("example.com/log", &key);
            if vkey.splitn(3, '+').nth(2).is_some_and(|b| b.contains('+')) {
                let (name, parsed) = parse_verifier_key(&vkey).expect("parses");
                assert_eq!(name, "example.com/log");
                assert_eq!(parsed, key);
                tried += 1;
            }
        }
        assert!(tried > 0, "no seed produced a key with '+' in its base64");
    }

    #[test]
    fn verifier_key_without_key_data_is_refused() {
        assert!(parse_verifier_key("example.com/log+12345678").is_err());
        assert!(parse_verifier_key("example.com/log").is_err());
    }
}
