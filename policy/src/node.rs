//! The node operator's policy: what this node agrees to run, whatever the
//! DAO approved. Embedded in the node config (`policy:` in node.yaml).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{PolicyError, Problem};
use crate::manifest::{JobKind, Limits};

/// Limits and kinds this node accepts. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePolicy {
    /// Job kinds this node runs.
    #[serde(default = "default_kinds")]
    pub allowed_kinds: BTreeSet<JobKind>,
    /// The most any one job may ask for; a manifest above any of these is refused.
    #[serde(default = "default_max_limits")]
    pub max_limits: Limits,
    /// The most jobs one tree may define.
    #[serde(default = "default_max_jobs")]
    pub max_jobs: usize,
}

fn default_kinds() -> BTreeSet<JobKind> {
    [JobKind::Batch, JobKind::Export].into_iter().collect()
}

fn default_max_limits() -> Limits {
    Limits {
        cpu_seconds: 3600,
        memory_bytes: 4 << 30,
        wall_seconds: 7200,
        output_bytes: 1 << 30,
        processes: 256,
    }
}

fn default_max_jobs() -> usize {
    16
}

impl Default for NodePolicy {
    fn default() -> Self {
        NodePolicy {
            allowed_kinds: default_kinds(),
            max_limits: default_max_limits(),
            max_jobs: default_max_jobs(),
        }
    }
}

impl NodePolicy {
    /// Parses then validates a policy document on its own (`file` names it in errors).
    pub fn from_yaml(file: &str, yaml: &str) -> Result<NodePolicy, PolicyError> {
        let policy: NodePolicy =
            serde_norway::from_str(yaml).map_err(|e| PolicyError::schema(file, &e))?;
        policy.validate(file)?;
        Ok(policy)
    }

    /// The policy as YAML that [`NodePolicy::from_yaml`] reads back equal
    /// (used by `collective config --default`).
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("a policy always serializes")
    }

    /// Checks values: call after deserializing it as part of a larger config.
    pub fn validate(&self, file: &str) -> Result<(), PolicyError> {
        let mut problems = Vec::new();
        if self.allowed_kinds.is_empty() {
            problems.push(Problem {
                field: "allowed_kinds".into(),
                problem: "is empty, so no job could ever run".into(),
                fix: "list at least one of: batch, export".into(),
            });
        }
        self.max_limits.check("max_limits", &mut problems);
        if self.max_jobs == 0 {
            problems.push(Problem {
                field: "max_jobs".into(),
                problem: "is 0, so no tree could ever deploy".into(),
                fix: "allow at least 1".into(),
            });
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

    /// sha256 (hex) of the policy's canonical JSON (fixed field order,
    /// sorted kinds, sizes in one spelling). Logged with each decision so an
    /// auditor can tell which policy was in force.
    pub fn digest(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a policy always serializes");
        hex::encode(Sha256::digest(&canonical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_defaults() {
        assert_eq!(
            NodePolicy::from_yaml("p.yaml", "{}").unwrap(),
            NodePolicy::default()
        );
    }

    #[test]
    fn digest_is_stable_and_sensitive() {
        let a = NodePolicy::default();
        let yaml = serde_norway::to_string(&a).unwrap();
        let b = NodePolicy::from_yaml("p.yaml", &yaml).unwrap();
        assert_eq!(a.digest(), b.digest());
        let mut c = a.clone();
        c.max_limits.processes += 1;
        assert_ne!(a.digest(), c.digest());
        // Kind order in the YAML does not change the digest.
        let x = NodePolicy::from_yaml("p", "allowed_kinds: [export, batch]").unwrap();
        let y = NodePolicy::from_yaml("p", "allowed_kinds: [batch, export]").unwrap();
        assert_eq!(x.digest(), y.digest());
    }

    #[test]
    fn invalid_policies_name_the_field() {
        let e = NodePolicy::from_yaml("node.yaml", "allowed_kinds: []\nmax_jobs: 0").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("node.yaml: "), "{s}");
        assert!(s.contains("allowed_kinds") && s.contains("max_jobs"), "{s}");
        let e = NodePolicy::from_yaml("node.yaml", "max_job: 3").unwrap_err();
        assert!(e.to_string().contains("unknown field `max_job`"), "{e}");
    }
}
