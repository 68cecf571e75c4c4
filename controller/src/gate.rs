//! The gate: turns on-chain approval state, node policy and a tree's job
//! manifests into a [`Verdict`].
//!
//! Security argument. A tree is `Allowed` only if every check passes: an
//! approval exists at the confirmation depth for exactly this sha256 tree
//! id, names the same sha1 tree id as the commit, is not revoked, not
//! expired, the registry is not paused, and every manifest parses and fits
//! the node's policy (kinds, limits, export recipients named in the
//! approval). Any error reading these inputs yields no verdict at all, and
//! the caller then takes no action (fail closed).
//!
//! Manifests are parsed here with the schema of DESIGN.md "Jobs" because
//! `collective-policy` had not landed when the controller was written; the
//! schema is strict (`deny_unknown_fields`) and validated after parsing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::SandboxSection;
use crate::reconcile::{TreeRef, Verdict};
use crate::sandbox::SandboxLimits;

/// `jobs/<name>/job.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobManifest {
    pub kind: JobKind,
    /// argv; for `export` jobs it may be empty (the node does the export).
    #[serde(default)]
    pub command: Vec<String>,
    /// `all` (every live contribution to this node) or a list of sha256.
    #[serde(default)]
    pub datasets: DatasetSelector,
    #[serde(default)]
    pub limits: ManifestLimits,
    /// For `export`: who receives the re-encrypted datasets.
    #[serde(default)]
    pub export: Option<ExportSpec>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    Batch,
    Export,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(untagged)]
pub enum DatasetSelector {
    #[default]
    #[serde(skip)]
    None,
    Keyword(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ManifestLimits {
    pub cpu_seconds: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub wall_seconds: Option<u64>,
    pub output_bytes: Option<u64>,
    pub processes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    pub recipient: String,
}

impl JobManifest {
    /// Parse then validate; `file` names the manifest in messages.
    pub fn parse(file: &str, yaml: &str) -> Result<JobManifest, String> {
        let m: JobManifest = serde_yaml::from_str(yaml).map_err(|e| format!("{file}: {e}"))?;
        match (&m.kind, &m.export) {
            (JobKind::Batch, Some(_)) => {
                return Err(format!("{file}: export: only export jobs name a recipient"))
            }
            (JobKind::Export, None) => {
                return Err(format!(
                    "{file}: export: an export job needs export.recipient"
                ))
            }
            _ => {}
        }
        if m.kind == JobKind::Batch && m.command.is_empty() {
            return Err(format!("{file}: command: a batch job needs a command"));
        }
        if let Some(c) = m.command.first() {
            if !c.starts_with('/') && c.contains('/') {
                return Err(format!(
                    "{file}: command: {c:?} must be absolute or a bare name on PATH"
                ));
            }
        }
        match &m.datasets {
            DatasetSelector::Keyword(k) if k != "all" && k != "none" => {
                return Err(format!(
                    "{file}: datasets: {k:?}: expected `all`, `none` or a list of sha256"
                ))
            }
            DatasetSelector::List(l) => {
                for d in l {
                    if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(format!(
                            "{file}: datasets: {d:?} is not a sha256 hex digest"
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(m)
    }

    /// The datasets this job reads, among `available` (live contributions).
    pub fn select(&self, available: &[String]) -> Vec<String> {
        match &self.datasets {
            DatasetSelector::Keyword(k) if k == "all" => available.to_vec(),
            DatasetSelector::List(l) => l.iter().map(|s| s.to_lowercase()).collect(),
            _ => Vec::new(),
        }
    }

    /// Limits for the sandbox: the manifest's, else the node's maxima.
    pub fn limits(&self, node: &SandboxSection) -> SandboxLimits {
        let l = &self.limits;
        SandboxLimits {
            cpu_seconds: l.cpu_seconds.unwrap_or(node.max_cpu_seconds),
            memory_bytes: l.memory_bytes.unwrap_or(node.max_memory_bytes),
            wall_seconds: l.wall_seconds.unwrap_or(node.max_wall_seconds),
            output_bytes: l.output_bytes.unwrap_or(node.max_output_bytes),
            processes: l.processes.unwrap_or(node.max_processes),
        }
    }
}

/// The approval facts the gate needs (from `collective_chain::Approval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalFacts {
    pub tree_sha1: String,
    pub recipients: Vec<String>,
    pub expires_at: u64,
    pub revoked: bool,
    pub revoke_reason: String,
}

/// Parsed manifests of a tree, by job name.
pub type Manifests = BTreeMap<String, Result<JobManifest, String>>;

/// Parse `(name, yaml)` pairs.
pub fn parse_manifests(pairs: &[(String, String)]) -> Manifests {
    pairs
        .iter()
        .map(|(name, text)| {
            (
                name.clone(),
                JobManifest::parse(&format!("jobs/{name}/job.yaml"), text),
            )
        })
        .collect()
}

/// Everything the gate looks at.
#[derive(Debug)]
pub struct GateInput<'a> {
    pub tree: &'a TreeRef,
    pub approval: Option<&'a ApprovalFacts>,
    pub paused: bool,
    pub now: u64,
    pub manifests: &'a Manifests,
    pub policy: &'a SandboxSection,
    pub confirmations: u64,
}

/// Decide. Order matters only for which reason is reported first; every
/// failing check prevents `Allowed`.
pub fn verdict(i: &GateInput<'_>) -> Verdict {
    let Some(a) = i.approval else {
        return Verdict::NotApproved(format!(
            "no approval on chain for tree sha256 {} at confirmation depth {}",
            i.tree.sha256, i.confirmations
        ));
    };
    if a.revoked {
        return Verdict::Revoked(format!("approval revoked: {}", a.revoke_reason));
    }
    if !a.tree_sha1.eq_ignore_ascii_case(&i.tree.sha1) {
        return Verdict::Refused(format!(
            "approval names sha1 tree {} but the commit's tree is {}",
            a.tree_sha1, i.tree.sha1
        ));
    }
    if i.paused {
        return Verdict::Suspended("code registry paused".into());
    }
    if a.expires_at != 0 && i.now >= a.expires_at {
        return Verdict::Suspended(format!("approval expired at {}", a.expires_at));
    }
    for (name, m) in i.manifests {
        let m = match m {
            Ok(m) => m,
            Err(e) => return Verdict::Refused(format!("invalid manifest: {e}")),
        };
        let p = i.policy;
        match m.kind {
            JobKind::Batch if !p.allow_batch => {
                return Verdict::Refused(format!("job {name}: kind batch not allowed on this node"))
            }
            JobKind::Export if !p.allow_export => {
                return Verdict::Refused(format!(
                    "job {name}: kind export not allowed on this node"
                ))
            }
            _ => {}
        }
        let l = &m.limits;
        for (field, asked, max) in [
            ("cpu_seconds", l.cpu_seconds, p.max_cpu_seconds),
            ("memory_bytes", l.memory_bytes, p.max_memory_bytes),
            ("wall_seconds", l.wall_seconds, p.max_wall_seconds),
            ("output_bytes", l.output_bytes, p.max_output_bytes),
            ("processes", l.processes, p.max_processes),
        ] {
            if let Some(v) = asked {
                if v > max {
                    return Verdict::Refused(format!(
                        "job {name}: limits.{field} {v} above the node maximum {max}"
                    ));
                }
                if v == 0 {
                    return Verdict::Refused(format!(
                        "job {name}: limits.{field} must be greater than 0"
                    ));
                }
            }
        }
        if let Some(e) = &m.export {
            if !a.recipients.iter().any(|r| r.trim() == e.recipient.trim()) {
                return Verdict::Refused(format!(
                    "job {name}: export recipient is not among the approval's recipients"
                ));
            }
        }
        if m.kind == JobKind::Batch && a.recipients.is_empty() {
            return Verdict::Refused(format!(
                "job {name}: the approval names no output recipients"
            ));
        }
    }
    Verdict::Allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> TreeRef {
        TreeRef {
            sha1: "a".repeat(40),
            sha256: "b".repeat(64),
            commit: None,
        }
    }

    fn approval() -> ApprovalFacts {
        ApprovalFacts {
            tree_sha1: "a".repeat(40),
            recipients: vec!["age1requester".into()],
            expires_at: 2000,
            revoked: false,
            revoke_reason: String::new(),
        }
    }

    const BATCH: &str = "kind: batch\ncommand: [python3, /job/jobs/stats/run.py]\ndatasets: all\nlimits:\n  wall_seconds: 60\n";

    fn run(
        a: Option<&ApprovalFacts>,
        paused: bool,
        now: u64,
        manifests: &[(&str, &str)],
        policy: &SandboxSection,
    ) -> Verdict {
        let m = parse_manifests(
            &manifests
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>(),
        );
        verdict(&GateInput {
            tree: &tree(),
            approval: a,
            paused,
            now,
            manifests: &m,
            policy,
            confirmations: 2,
        })
    }

    #[test]
    fn table() {
        let p = SandboxSection::default();
        let a = approval();
        let mut wrong_sha1 = approval();
        wrong_sha1.tree_sha1 = "c".repeat(40);
        let mut revoked = approval();
        revoked.revoked = true;
        revoked.revoke_reason = "leak".into();
        let no_batch = SandboxSection {
            allow_batch: false,
            ..SandboxSection::default()
        };
        let export_ok = "kind: export\nexport:\n  recipient: age1requester\ndatasets: all\n";
        let export_bad = "kind: export\nexport:\n  recipient: age1stranger\ndatasets: all\n";
        let too_big = "kind: batch\ncommand: [x]\nlimits:\n  wall_seconds: 999999\n";
        let unknown = "kind: batch\ncommand: [x]\nnetwork: true\n";
        let cases: Vec<(&str, Verdict)> = vec![
            (
                "approved",
                run(Some(&a), false, 1000, &[("stats", BATCH)], &p),
            ),
            (
                "not approved",
                run(None, false, 1000, &[("stats", BATCH)], &p),
            ),
            (
                "expired",
                run(Some(&a), false, 2000, &[("stats", BATCH)], &p),
            ),
            (
                "revoked",
                run(Some(&revoked), false, 1000, &[("stats", BATCH)], &p),
            ),
            ("paused", run(Some(&a), true, 1000, &[("stats", BATCH)], &p)),
            (
                "sha1 mismatch",
                run(Some(&wrong_sha1), false, 1000, &[("stats", BATCH)], &p),
            ),
            (
                "manifest invalid",
                run(Some(&a), false, 1000, &[("stats", unknown)], &p),
            ),
            (
                "kind not allowed",
                run(Some(&a), false, 1000, &[("stats", BATCH)], &no_batch),
            ),
            (
                "limits above max",
                run(Some(&a), false, 1000, &[("stats", too_big)], &p),
            ),
            (
                "export ok",
                run(Some(&a), false, 1000, &[("exp", export_ok)], &p),
            ),
            (
                "export recipient not approved",
                run(Some(&a), false, 1000, &[("exp", export_bad)], &p),
            ),
        ];
        let expect = |name: &str, v: &Verdict| match name {
            "approved" | "export ok" => v.allowed(),
            "not approved" => matches!(v, Verdict::NotApproved(_)),
            "expired" | "paused" => matches!(v, Verdict::Suspended(_)),
            "revoked" => matches!(v, Verdict::Revoked(r) if r.contains("leak")),
            "sha1 mismatch" => matches!(v, Verdict::Refused(r) if r.contains("sha1")),
            "manifest invalid" => matches!(v, Verdict::Refused(r) if r.contains("network")),
            "kind not allowed" => matches!(v, Verdict::Refused(r) if r.contains("not allowed")),
            "limits above max" => matches!(v, Verdict::Refused(r) if r.contains("wall_seconds")),
            "export recipient not approved" => {
                matches!(v, Verdict::Refused(r) if r.contains("recipient"))
            }
            _ => false,
        };
        for (name, v) in &cases {
            assert!(expect(name, v), "{name}: {v:?}");
        }
    }

    #[test]
    fn manifest_validation() {
        assert!(JobManifest::parse("f", "kind: batch\n").is_err());
        assert!(JobManifest::parse("f", "kind: export\ndatasets: all\n").is_err());
        assert!(JobManifest::parse("f", "kind: batch\ncommand: [x]\ndatasets: some\n").is_err());
        assert!(JobManifest::parse("f", "kind: batch\ncommand: [x]\ndatasets: [abc]\n").is_err());
        assert!(JobManifest::parse("f", "kind: batch\ncommand: [rel/x]\n").is_err());
        let m = JobManifest::parse("f", BATCH).unwrap();
        assert_eq!(m.select(&["x".into()]), vec!["x".to_string()]);
        assert_eq!(m.limits(&SandboxSection::default()).wall_seconds, 60);
        let none = JobManifest::parse("f", "kind: batch\ncommand: [x]\n").unwrap();
        assert!(none.select(&["x".into()]).is_empty());
    }
}
