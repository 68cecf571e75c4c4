//! Job manifests: `jobs/<name>/job.yaml` in an approved tree.
//!
//! A manifest comes from a pull request, so it is untrusted input until the
//! DAO approves the tree, and even then it only *asks*: the node's policy
//! decides. Parsing is strict (unknown fields are errors, so a typo such as
//! `memroy:` cannot silently drop a limit), then values are validated and
//! every problem is reported with its field and a fix.
//!
//! ```yaml
//! kind: batch                 # batch | export
//! description: mean age per region
//! command: [python3, stats.py, --out, /out/stats.json]
//! datasets: all               # `all`, `none`, or a list of ciphertext sha256 ids
//! limits:                     # each optional: absent = the node's maximum
//!   cpu_seconds: 600
//!   memory: 512MiB
//!   wall_seconds: 900
//!   output: 64MiB
//!   processes: 32
//! outputs: [stats.json]       # the only files collected from /out (patterns: `shard-*.bin`)
//! ```
//! An export job has no `command`; it names `export: {recipient: ...}` and
//! the node re-encrypts the selected datasets to that recipient.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{PolicyError, Problem};
use crate::outputs::OutputPattern;
use crate::size::{serde_size, serde_size_opt};

/// Largest manifest accepted, so a hostile file cannot make the node parse
/// megabytes of YAML.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// What the job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Runs `command` once per (tree, job) in the sandbox; `/out` is
    /// encrypted to the approval's recipients.
    Batch,
    /// No code runs: the node re-encrypts the selected datasets to a
    /// recipient named in the approval.
    Export,
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobKind::Batch => "batch",
            JobKind::Export => "export",
        })
    }
}

/// Which datasets a job sees: every non-withdrawn one, or a fixed list of
/// ciphertext sha256 ids (64 lowercase hex), or none (the default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DatasetSelector {
    /// Every dataset that is live for this node when the job runs.
    All,
    /// No data: the job sees an empty input (the safe default).
    #[default]
    None,
    /// These ciphertext sha256 ids; any no longer available are skipped.
    List(Vec<String>),
}

impl DatasetSelector {
    /// The datasets a job gets, among `available` (live, non-withdrawn
    /// contributions to this node). Listed ids that are not available are
    /// left out: withdrawn data is skipped, never resurrected.
    pub fn select(&self, available: &[String]) -> Vec<String> {
        match self {
            DatasetSelector::All => available.to_vec(),
            DatasetSelector::None => Vec::new(),
            DatasetSelector::List(ids) => ids
                .iter()
                .filter(|id| available.contains(id))
                .cloned()
                .collect(),
        }
    }

    /// True when the job reads no data at all.
    pub fn is_empty(&self) -> bool {
        matches!(self, DatasetSelector::None)
            || matches!(self, DatasetSelector::List(l) if l.is_empty())
    }
}

impl Serialize for DatasetSelector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DatasetSelector::All => s.serialize_str("all"),
            DatasetSelector::None => s.serialize_str("none"),
            DatasetSelector::List(ids) => ids.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for DatasetSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DatasetSelector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`all`, `none` or a list of dataset sha256 ids")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "all" => Ok(DatasetSelector::All),
                    "none" => Ok(DatasetSelector::None),
                    _ => Err(E::custom(format!(
                        "{v:?} is not a dataset selector; write `all`, `none` or a list of dataset sha256 ids"
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element::<String>()? {
                    ids.push(id);
                }
                Ok(DatasetSelector::List(ids))
            }
        }
        d.deserialize_any(V)
    }
}

/// Resource limits. In YAML, sizes may be written `512MiB` or as bytes;
/// `memory_bytes`/`output_bytes` are accepted as spellings of
/// `memory`/`output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPU time (RLIMIT_CPU).
    pub cpu_seconds: u64,
    /// Address-space / memory cap.
    #[serde(rename = "memory", alias = "memory_bytes", with = "serde_size")]
    pub memory_bytes: u64,
    /// Wall-clock time before the job is killed.
    pub wall_seconds: u64,
    /// Size cap of the writable `/out`.
    #[serde(rename = "output", alias = "output_bytes", with = "serde_size")]
    pub output_bytes: u64,
    /// Processes/threads (RLIMIT_NPROC), which stops fork bombs.
    pub processes: u64,
}

impl Limits {
    /// (name, value) pairs, in schema order, for checks and messages.
    pub fn fields(&self) -> [(&'static str, u64); 5] {
        [
            ("cpu_seconds", self.cpu_seconds),
            ("memory", self.memory_bytes),
            ("wall_seconds", self.wall_seconds),
            ("output", self.output_bytes),
            ("processes", self.processes),
        ]
    }

    pub(crate) fn check(&self, prefix: &str, problems: &mut Vec<Problem>) {
        for (name, value) in self.fields() {
            if value == 0 {
                problems.push(Problem {
                    field: format!("{prefix}.{name}"),
                    problem: "is 0, which would stop the job at once".into(),
                    fix: "give a positive limit".into(),
                });
            }
        }
    }
}

/// The limits a manifest asks for. Each is optional: an absent one means
/// the node's maximum ([`JobLimits::effective`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLimits {
    /// Requested CPU time (RLIMIT_CPU); above the node's maximum is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<u64>,
    /// Requested memory cap, in bytes (YAML accepts `512MiB`).
    #[serde(
        rename = "memory",
        alias = "memory_bytes",
        default,
        with = "serde_size_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_bytes: Option<u64>,
    /// Requested wall-clock time before the job is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<u64>,
    /// Requested size cap of `/out`, in bytes (YAML accepts `64MiB`).
    #[serde(
        rename = "output",
        alias = "output_bytes",
        default,
        with = "serde_size_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_bytes: Option<u64>,
    /// Requested process/thread count (RLIMIT_NPROC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
}

impl JobLimits {
    /// (name, requested) pairs, in the same order as [`Limits::fields`].
    pub fn fields(&self) -> [(&'static str, Option<u64>); 5] {
        [
            ("cpu_seconds", self.cpu_seconds),
            ("memory", self.memory_bytes),
            ("wall_seconds", self.wall_seconds),
            ("output", self.output_bytes),
            ("processes", self.processes),
        ]
    }

    /// The limits the sandbox applies: each requested one, else `max`.
    /// (Whether a requested one exceeds `max` is `decide`'s question.)
    pub fn effective(&self, max: &Limits) -> Limits {
        Limits {
            cpu_seconds: self.cpu_seconds.unwrap_or(max.cpu_seconds),
            memory_bytes: self.memory_bytes.unwrap_or(max.memory_bytes),
            wall_seconds: self.wall_seconds.unwrap_or(max.wall_seconds),
            output_bytes: self.output_bytes.unwrap_or(max.output_bytes),
            processes: self.processes.unwrap_or(max.processes),
        }
    }

    fn check(&self, problems: &mut Vec<Problem>) {
        for (name, value) in self.fields() {
            if value == Some(0) {
                problems.push(Problem {
                    field: format!("limits.{name}"),
                    problem: "is 0, which would stop the job at once".into(),
                    fix: "give a positive limit, or leave it out for the node's maximum".into(),
                });
            }
        }
    }
}

/// Where an export job sends its re-encrypted copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    /// An age recipient (`age1...`, `ssh-ed25519 ...`, `ssh-rsa ...`); it must
    /// also be one of the approval's recipients.
    pub recipient: String,
}

/// A parsed and validated `jobs/<name>/job.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobManifest {
    /// Batch or export; the node policy decides which kinds it runs.
    pub kind: JobKind,
    /// Free text for the status page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// argv of the job (batch only); run with an empty environment, so
    /// programs are named by path or found in the sandbox's fixed PATH.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// `all`, `none` (the default) or a list of ids.
    #[serde(default)]
    pub datasets: DatasetSelector,
    /// What the job asks for; absent fields mean the node's maximum.
    #[serde(default)]
    pub limits: JobLimits,
    /// Files (relative to `/out`, exact or with `*` in the file name) the
    /// node collects; nothing else leaves the sandbox (see
    /// [`crate::outputs`]). Empty: only stdout and stderr are collected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputPattern>,
    /// Export target (export only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSpec>,
}

impl JobManifest {
    /// Parses then validates a manifest. `file` is the path used in error
    /// messages (e.g. `jobs/stats/job.yaml`).
    pub fn parse(file: &str, yaml: &str) -> Result<JobManifest, PolicyError> {
        if yaml.len() > MAX_MANIFEST_BYTES {
            return Err(PolicyError::Invalid {
                file: file.to_string(),
                problems: vec![Problem {
                    field: ".".into(),
                    problem: format!(
                        "is {} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                        yaml.len()
                    ),
                    fix: "keep the manifest small; put data and code in other files".into(),
                }],
            });
        }
        let manifest: JobManifest =
            serde_norway::from_str(yaml).map_err(|e| PolicyError::schema(file, &e))?;
        manifest.validate(file)?;
        Ok(manifest)
    }

    /// The manifest as YAML that [`JobManifest::parse`] reads back equal.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("a manifest always serializes")
    }

    /// Checks values the schema cannot: every problem found, not just the first.
    pub fn validate(&self, file: &str) -> Result<(), PolicyError> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, problem: String, fix: &str| {
            problems.push(Problem {
                field: field.to_string(),
                problem,
                fix: fix.to_string(),
            })
        };
        match self.kind {
            JobKind::Batch => {
                match self.command.first() {
                    None => bad(
                        "command",
                        "is missing or empty; a batch job needs a program to run".into(),
                        "give argv as a list, e.g. `command: [python3, /job/stats.py]`",
                    ),
                    Some(program) if program.is_empty() || (!program.starts_with('/') && program.contains('/')) => bad(
                        "command[0]",
                        format!("{program:?} is neither an absolute path nor a bare program name"),
                        "name the program by absolute path in the sandbox (the tree is at /job, e.g. `/job/run.sh`) or by bare name on PATH (`python3`)",
                    ),
                    Some(_) => {}
                }
                if self.export.is_some() {
                    bad(
                        "export",
                        "is only for export jobs".into(),
                        "remove `export`, or set `kind: export`",
                    );
                }
            }
            JobKind::Export => {
                if !self.command.is_empty() {
                    bad(
                        "command",
                        "is not allowed in an export job: the node itself re-encrypts the data"
                            .into(),
                        "remove `command`, or set `kind: batch`",
                    );
                }
                if !self.outputs.is_empty() {
                    bad(
                        "outputs",
                        "is not allowed in an export job".into(),
                        "remove `outputs`",
                    );
                }
                match &self.export {
                    None => bad(
                        "export",
                        "is missing; an export job must name its recipient".into(),
                        "add `export: {recipient: \"age1...\"}` with a recipient listed in the approval",
                    ),
                    Some(e) => {
                        if let Err(problem) = check_recipient(&e.recipient) {
                            bad(
                                "export.recipient",
                                problem,
                                "use an age recipient: `age1...`, `ssh-ed25519 AAAA...` or `ssh-rsa AAAA...`",
                            );
                        }
                    }
                }
                if self.datasets.is_empty() {
                    bad(
                        "datasets",
                        "is empty; there is nothing to export".into(),
                        "write `datasets: all` or list dataset ids",
                    );
                }
            }
        }
        for (i, arg) in self.command.iter().enumerate() {
            if arg.contains('\0') {
                bad(
                    &format!("command[{i}]"),
                    "contains a NUL byte".into(),
                    "remove the NUL byte",
                );
            }
        }
        if let DatasetSelector::List(ids) = &self.datasets {
            let mut seen = HashSet::new();
            for (i, id) in ids.iter().enumerate() {
                if !is_sha256_hex(id) {
                    bad(
                        &format!("datasets[{i}]"),
                        format!("{id:?} is not a dataset id"),
                        "use the ciphertext sha256 as 64 lowercase hex digits, as registered on-chain",
                    );
                } else if !seen.insert(id) {
                    bad(
                        &format!("datasets[{i}]"),
                        format!("{id} is listed twice"),
                        "list each dataset once",
                    );
                }
            }
        }
        self.limits.check(&mut problems);
        let mut seen = HashSet::new();
        if self.outputs.len() > crate::outputs::MAX_PATTERNS {
            problems.push(Problem {
                field: "outputs".into(),
                problem: format!(
                    "declares {} outputs, more than {}",
                    self.outputs.len(),
                    crate::outputs::MAX_PATTERNS
                ),
                fix: "use a pattern such as `shard-*.bin` for many files".into(),
            });
        }
        for (i, out) in self.outputs.iter().enumerate() {
            let field = format!("outputs[{i}]");
            if let Err(problem) = out.check() {
                problems.push(Problem {
                    field,
                    problem,
                    fix: "name a file relative to /out in [A-Za-z0-9._-], like `model.bin`, `stats/summary.json` or `shard-*.bin`"
                        .into(),
                });
            } else if !seen.insert(out) {
                problems.push(Problem {
                    field,
                    problem: format!("{out:?} is listed twice"),
                    fix: "list each output once".into(),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::Invalid {
                file: file.to_string(),
                problems,
            })
        }
    }
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The shape of an age recipient; the vault parses it for real.
fn check_recipient(r: &str) -> Result<(), String> {
    let ok_prefix =
        r.starts_with("age1") || r.starts_with("ssh-ed25519 ") || r.starts_with("ssh-rsa ");
    if r.is_empty() {
        return Err("is empty".into());
    }
    if !ok_prefix || r.contains(['\n', '\r', '\0']) {
        return Err(format!("{r:?} is not an age recipient"));
    }
    Ok(())
}

/// The job name of a manifest path `jobs/<name>/job.yaml`, if it is one and
/// the name is valid (lowercase letters, digits, `-`, `_`, `.`; at most 64;
/// starts with a letter or digit).
pub fn job_name_from_path(path: &str) -> Option<&str> {
    let name = path.strip_prefix("jobs/")?.strip_suffix("/job.yaml")?;
    is_valid_job_name(name).then_some(name)
}

/// See [`job_name_from_path`].
pub fn is_valid_job_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.len() <= 64
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names() {
        assert_eq!(job_name_from_path("jobs/stats/job.yaml"), Some("stats"));
        assert_eq!(job_name_from_path("jobs/a.b-c_1/job.yaml"), Some("a.b-c_1"));
        for bad in [
            "jobs//job.yaml",
            "jobs/../job.yaml",
            "jobs/a/b/job.yaml",
            "jobs/Up/job.yaml",
            "x/a/job.yaml",
        ] {
            assert_eq!(job_name_from_path(bad), None, "{bad}");
        }
    }
}
