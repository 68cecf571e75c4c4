//! Node configuration (`node.yaml`).
//!
//! Parsed strictly (`deny_unknown_fields`) and then validated, so a typo in
//! an operator's file is an error naming the field rather than a silently
//! ignored setting: a misspelt `confirmations` must not fall back to 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use collective_policy::NodePolicy;
use serde::{Deserialize, Serialize};

use crate::ControllerError;

/// The whole `node.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Identity and keys of this node.
    pub node: NodeSection,
    /// The chain whose approvals are the only authority to deploy.
    pub chain: ChainSection,
    /// Where the desired state (the deploy branch) comes from.
    pub repository: RepositorySection,
    /// Where contributed ciphertexts live.
    #[serde(default)]
    pub data: DataSection,
    /// How jobs are isolated.
    #[serde(default)]
    pub sandbox: SandboxSection,
    /// What this node agrees to run (kinds, maximum limits), whatever the
    /// DAO approved.
    #[serde(default)]
    pub policy: NodePolicy,
    /// The public status/log/outbox endpoint.
    #[serde(default)]
    pub http: HttpSection,
    /// The node's transparency log, which every action is recorded in.
    pub log: LogSection,
    /// Local working directories.
    pub paths: PathsSection,
    /// Optional: keep the repository's pull requests told their tree ids,
    /// the proposal to submit, and whether the tree is approved/deployed.
    #[serde(default)]
    pub github: Option<GithubSection>,
}

/// The GitHub repository whose pull requests the node annotates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GithubSection {
    /// Repository owner (user or organization).
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// REST API root (GitHub Enterprise: `https://HOST/api/v3`).
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// Where `refs/pull/N/head` is fetched from; default: the repository's clone URL.
    #[serde(default)]
    pub git_remote: Option<String>,
    /// Seconds between passes over the open pull requests.
    #[serde(default = "default_fetch_secs")]
    pub interval_secs: u64,
    /// Link from each commit status (this node's public status page).
    #[serde(default)]
    pub target_url: Option<String>,
    /// Environment variable holding the token (never put it in the file).
    #[serde(default = "default_github_token_env")]
    pub token_env: String,
}

fn default_github_api() -> String {
    "https://api.github.com".into()
}
fn default_github_token_env() -> String {
    "GITHUB_TOKEN".into()
}

/// Who this node is and where its keys live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The node id registered in `NodeRegistry`: 32 bytes as 0x-hex.
    pub id: String,
    /// Directory holding the node keys (created by `collective keys init`).
    pub key_dir: PathBuf,
    /// Name of the environment variable holding the key passphrase, if the
    /// keys are passphrase-sealed. The passphrase itself never goes in a file.
    #[serde(default)]
    pub passphrase_env: Option<String>,
}

/// Where the chain is and how much of it to trust.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: String,
    /// The chain id the RPC endpoint must report; the node refuses to start
    /// on any other chain, so a misconfigured URL cannot feed it approvals
    /// from a different (e.g. test) deployment.
    pub chain_id: u64,
    /// A deployment file (as written by `collective dev up`) holding the
    /// registry addresses. Exactly one of `deployment` and `addresses`.
    #[serde(default)]
    pub deployment: Option<PathBuf>,
    /// Registry addresses given inline (0x-hex).
    #[serde(default)]
    pub addresses: Option<AddressesSection>,
    /// Blocks an approval must be buried under before the node acts on it.
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// How often the chain is polled when no event arrives, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Name of the environment variable holding the operator's Ethereum
    /// private key (0x-hex), used only to anchor log checkpoints. Without
    /// it the node does not anchor.
    #[serde(default)]
    pub operator_key_env: Option<String>,
}

/// Contract addresses, as 0x-hex strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddressesSection {
    /// The governance token.
    pub token: String,
    /// The timelock that executes passed proposals.
    pub timelock: String,
    /// The governor that votes on proposals.
    pub governor: String,
    /// `CodeRegistry`: approvals of tree ids (the desired-state authority).
    pub code_registry: String,
    /// `NodeRegistry`: node records and checkpoint anchors.
    pub node_registry: String,
    /// `DataRegistry`: dataset contributions and withdrawals.
    pub data_registry: String,
}

/// The code repository whose deploy branch is the desired state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepositorySection {
    /// A local repository path, watched for changes. Exactly one of `path`
    /// and `url`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A remote URL, fetched into `paths.work_dir/repo.git` on an interval.
    #[serde(default)]
    pub url: Option<String>,
    /// The deploy branch: its head commit's tree is what the node wants to
    /// run (if approved).
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Seconds between fetches of a remote repository.
    #[serde(default = "default_fetch_secs")]
    pub fetch_interval_secs: u64,
}

/// Where contributed ciphertexts are stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// `file:///abs/path` (default store) or an object-store URL.
    #[serde(default = "default_store")]
    pub store: String,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            store: default_store(),
        }
    }
}

/// How jobs are run (the limits are in `policy`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    /// The bubblewrap binary every job runs under.
    #[serde(default = "default_bwrap")]
    pub bwrap: PathBuf,
    /// What to do with a job found started-but-not-finished in the log on
    /// restart: `fail` (log it interrupted and never rerun) or `rerun-once`.
    #[serde(default)]
    pub on_interrupted: InterruptedPolicy,
    /// Delegated cgroup directories for job cgroups (a cgroup v2 directory,
    /// or a v1 `memory` and a v1 `pids` directory). Empty: the node's own
    /// cgroups (as root, or under systemd with `Delegate=`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<PathBuf>,
}

/// Resolution of a job interrupted by a crash.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InterruptedPolicy {
    /// Log `interrupted`; the job counts as done (the safe default: a job
    /// that crashed the node once is not retried automatically).
    #[default]
    Fail,
    /// Log `interrupted` and run the job again, once.
    RerunOnce,
}

impl Default for SandboxSection {
    fn default() -> Self {
        serde_norway::from_str("{}").expect("defaults parse")
    }
}

/// The node's HTTP server (status, log tiles, outbox).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Socket address to bind; defaults to loopback so nothing is exposed
    /// unless the operator asks.
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: default_listen(),
        }
    }
}

/// The node's transparency log: anyone can audit what the node did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// The tlog-tiles directory (served at `/log/`).
    pub dir: PathBuf,
    /// The log origin line of checkpoints, e.g. `collective.example/node-1`.
    pub origin: String,
    /// Seconds between on-chain checkpoint anchors; 0 disables anchoring.
    #[serde(default = "default_anchor_secs")]
    pub anchor_interval_secs: u64,
    /// Witnesses (C2SP tlog-witness) each new checkpoint is submitted to;
    /// their cosignatures are served with the checkpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<WitnessConfig>,
}

/// One witness.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Base URL; the node POSTs to `<url>/add-checkpoint`.
    pub url: String,
    /// The witness's cosignature/v1 verifier key (`name+keyid+base64`).
    pub vkey: String,
}

/// Local directories the node owns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PathsSection {
    /// Deployed trees, run scratch space, a fetched repository.
    pub work_dir: PathBuf,
    /// Encrypted job outputs, served at `/v1/outbox/`.
    pub outbox_dir: PathBuf,
}

fn default_confirmations() -> u64 {
    2
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_branch() -> String {
    "main".into()
}
fn default_fetch_secs() -> u64 {
    60
}
fn default_store() -> String {
    "file:///var/lib/collective/data".into()
}
fn default_bwrap() -> PathBuf {
    "/usr/bin/bwrap".into()
}
fn default_listen() -> String {
    "127.0.0.1:8700".into()
}
fn default_anchor_secs() -> u64 {
    600
}

/// The text `collective config --default` prints: every field, commented.
pub const DEFAULT_CONFIG_YAML: &str = r#"# collective node configuration. Unknown fields are rejected.
node:
  # This node's id in NodeRegistry (bytes32, 0x-hex).
  id: "0x0000000000000000000000000000000000000000000000000000000000000001"
  # Keys made by `collective keys init` (files must be 0600).
  key_dir: /var/lib/collective/keys
  # Environment variable holding the key passphrase, if keys are sealed.
  # passphrase_env: COLLECTIVE_KEY_PASSPHRASE

chain:
  rpc_url: http://127.0.0.1:8545
  chain_id: 31337
  # Registry addresses: a deployment file written by `collective dev up` ...
  deployment: ./devnet.yaml
  # ... or inline (use one, not both):
  # addresses:
  #   token: "0x..."
  #   timelock: "0x..."
  #   governor: "0x..."
  #   code_registry: "0x..."
  #   node_registry: "0x..."
  #   data_registry: "0x..."
  # Blocks an approval must be buried under before the node acts on it.
  confirmations: 2
  # Polling interval when no chain event arrives (milliseconds).
  poll_interval_ms: 1000
  # Environment variable holding the operator's Ethereum key (0x-hex), used
  # only to anchor log checkpoints on NodeRegistry. Unset: no anchoring.
  # operator_key_env: COLLECTIVE_OPERATOR_KEY

repository:
  # A local repository (watched) or a remote url (fetched); one of the two.
  path: /srv/collective/repo
  # url: https://github.com/example/collective-jobs.git
  branch: main
  fetch_interval_secs: 60

data:
  # Where contributed ciphertexts live (file:// or an object store URL).
  store: file:///var/lib/collective/data

sandbox:
  bwrap: /usr/bin/bwrap
  # A job started but not finished when the node died: fail (log it
  # interrupted, never rerun) | rerun-once
  on_interrupted: fail
  # Cgroup directories delegated to the node's user, for an unprivileged
  # node (see scripts/delegate-cgroup.sh); empty uses the node's own.
  # cgroups: [/sys/fs/cgroup/memory/collective-node, /sys/fs/cgroup/pids/collective-node]

policy:
  # Job kinds this node runs.
  allowed_kinds: [batch, export]
  # The most any one job may ask for; manifests above these are refused,
  # and a limit a manifest leaves out gets these values.
  max_limits:
    cpu_seconds: 3600
    memory: 4GiB
    wall_seconds: 7200
    output: 1GiB
    processes: 256
  # The most jobs one tree may define.
  max_jobs: 16

http:
  listen: 127.0.0.1:8700

log:
  dir: /var/lib/collective/log
  origin: collective.example/node-1
  # Seconds between on-chain checkpoint anchors; 0 disables anchoring.
  anchor_interval_secs: 600
  # Witnesses (C2SP tlog-witness) that cosign each new checkpoint; the
  # cosigned checkpoint is served at /log/checkpoint.
  # witnesses:
  #   - url: https://witness.example/
  #     vkey: witness.example+1234abcd+BAAA...

paths:
  work_dir: /var/lib/collective/work
  outbox_dir: /var/lib/collective/outbox

# Optional: annotate the repository's pull requests (commit status + one
# comment with the tree ids and the exact proposal to submit).
# github:
#   owner: example
#   repo: collective-jobs
#   api_url: https://api.github.com
#   interval_secs: 60
#   target_url: https://node.example/
#   token_env: GITHUB_TOKEN
"#;

impl NodeConfig {
    /// Read, parse and validate `path`. Relative paths in the file are
    /// resolved against the file's directory, so a config is portable with
    /// the files it names.
    pub fn load(path: &Path) -> Result<NodeConfig, ControllerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ControllerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = NodeConfig::parse(&path.display().to_string(), &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_relative(base);
        Ok(cfg)
    }

    /// Parse and validate YAML; `file` names the source in error messages.
    pub fn parse(file: &str, text: &str) -> Result<NodeConfig, ControllerError> {
        let cfg: NodeConfig = serde_norway::from_str(text).map_err(|e| ControllerError::Config {
            file: file.to_string(),
            field: e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_else(|| "(document)".into()),
            message: e.to_string(),
        })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    fn resolve_relative(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.node.key_dir);
        if let Some(d) = self.chain.deployment.as_mut() {
            fix(d);
        }
        if let Some(p) = self.repository.path.as_mut() {
            fix(p);
        }
        fix(&mut self.log.dir);
        fix(&mut self.paths.work_dir);
        fix(&mut self.paths.outbox_dir);
    }

    /// Checks serde cannot express. Each error names the field and the fix.
    pub fn validate(&self, file: &str) -> Result<(), ControllerError> {
        let err = |field: &str, message: String| ControllerError::Config {
            file: file.to_string(),
            field: field.to_string(),
            message,
        };
        parse_b256(&self.node.id).map_err(|m| {
            err(
                "node.id",
                format!("{m}; expected 0x followed by 64 hex digits"),
            )
        })?;
        for (i, w) in self.log.witnesses.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(err(
                    &format!("log.witnesses[{i}].url"),
                    format!("{:?} is not an http(s):// URL", w.url),
                ));
            }
            collective_attest::witness::CosignatureVerifier::parse(&w.vkey).map_err(|e| {
                err(
                    &format!("log.witnesses[{i}].vkey"),
                    format!("{e}; give the witness's cosignature/v1 verifier key"),
                )
            })?;
        }
        if !(self.chain.rpc_url.starts_with("http://")
            || self.chain.rpc_url.starts_with("https://")
            || self.chain.rpc_url.starts_with("ws://")
            || self.chain.rpc_url.starts_with("wss://"))
        {
            return Err(err(
                "chain.rpc_url",
                format!(
                    "{:?} is not an http(s):// or ws(s):// URL",
                    self.chain.rpc_url
                ),
            ));
        }
        match (&self.chain.deployment, &self.chain.addresses) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "chain.addresses",
                    "both chain.deployment and chain.addresses are set; keep one".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    "chain.deployment",
                    "set chain.deployment (a devnet.yaml) or chain.addresses".into(),
                ))
            }
            (None, Some(a)) => {
                for (name, v) in [
                    ("token", &a.token),
                    ("timelock", &a.timelock),
                    ("governor", &a.governor),
                    ("code_registry", &a.code_registry),
                    ("node_registry", &a.node_registry),
                    ("data_registry", &a.data_registry),
                ] {
                    let ok = v.len() == 42
                        && v.starts_with("0x")
                        && v[2..].bytes().all(|b| b.is_ascii_hexdigit());
                    if !ok {
                        return Err(err(
                            &format!("chain.addresses.{name}"),
                            format!("{v:?} is not a 0x-prefixed 20-byte hex address"),
                        ));
                    }
                }
            }
            (Some(_), None) => {}
        }
        if self.chain.poll_interval_ms == 0 {
            return Err(err("chain.poll_interval_ms", "must be at least 1".into()));
        }
        match (&self.repository.path, &self.repository.url) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "repository.url",
                    "both repository.path and repository.url are set; keep one".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    "repository.path",
                    "set repository.path (local) or repository.url (remote)".into(),
                ))
            }
            _ => {}
        }
        if self.repository.branch.is_empty()
            || git2::Branch::name_is_valid(&self.repository.branch) != Ok(true)
        {
            return Err(err(
                "repository.branch",
                format!("{:?} is not a valid branch name", self.repository.branch),
            ));
        }
        if self.repository.url.is_some() && self.repository.fetch_interval_secs == 0 {
            return Err(err(
                "repository.fetch_interval_secs",
                "must be at least 1".into(),
            ));
        }
        if !(self.data.store.starts_with("file://")
            || self.data.store.starts_with("s3://")
            || self.data.store.starts_with("memory://"))
        {
            return Err(err(
                "data.store",
                format!(
                    "{:?}: expected file:///path, s3://bucket or memory://",
                    self.data.store
                ),
            ));
        }
        self.policy
            .validate(file)
            .map_err(|e| err("policy", e.to_string()))?;
        self.http.listen.parse::<SocketAddr>().map_err(|e| {
            err(
                "http.listen",
                format!("{:?} is not host:port ({e})", self.http.listen),
            )
        })?;
        if let Some(g) = &self.github {
            if g.owner.is_empty() || g.repo.is_empty() {
                return Err(err(
                    "github.owner",
                    "github.owner and github.repo must be set".into(),
                ));
            }
            if g.interval_secs == 0 {
                return Err(err("github.interval_secs", "must be at least 1".into()));
            }
        }
        if self.log.origin.trim().is_empty() || self.log.origin.contains(char::is_whitespace) {
            return Err(err(
                "log.origin",
                "must be a non-empty name without spaces, e.g. collective.example/node-1".into(),
            ));
        }
        Ok(())
    }

    /// The node id as 32 bytes (validated at parse time).
    pub fn node_id(&self) -> [u8; 32] {
        parse_b256(&self.node.id).expect("validated")
    }

    /// The HTTP listen address (validated at parse time).
    pub fn listen_addr(&self) -> SocketAddr {
        self.http.listen.parse().expect("validated")
    }
}

/// Parse `0x` + 64 hex digits.
pub fn parse_b256(s: &str) -> Result<[u8; 32], String> {
    let h = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("{s:?} lacks the 0x prefix"))?;
    let v = hex::decode(h).map_err(|e| format!("{s:?} is not hex: {e}"))?;
    v.try_into()
        .map_err(|v: Vec<u8>| format!("{s:?} is {} bytes, not 32", v.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: ControllerError) -> String {
        match e {
            ControllerError::Config { field, .. } => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn default_parses_and_validates() {
        let cfg = NodeConfig::parse("default", DEFAULT_CONFIG_YAML).unwrap();
        assert_eq!(cfg.chain.confirmations, 2);
        assert_eq!(cfg.repository.branch, "main");
        assert_eq!(cfg.sandbox.on_interrupted, InterruptedPolicy::Fail);
        assert_eq!(cfg.listen_addr().port(), 8700);
    }

    #[test]
    fn unknown_field_rejected() {
        let text = DEFAULT_CONFIG_YAML.replace("  confirmations: 2", "  confirmation: 2");
        let e = NodeConfig::parse("node.yaml", &text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("node.yaml"), "{msg}");
        assert!(msg.contains("confirmation"), "{msg}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (
                "0x0000000000000000000000000000000000000000000000000000000000000001",
                "0x12",
                "node.id",
            ),
            ("http://127.0.0.1:8545", "localhost:8545", "chain.rpc_url"),
            ("127.0.0.1:8700", "nowhere", "http.listen"),
            ("branch: main", "branch: \"bad..name\"", "repository.branch"),
            ("file:///var/lib/collective/data", "ftp://x", "data.store"),
            ("processes: 256", "processes: 0", "policy"),
            (
                "origin: collective.example/node-1",
                "origin: \"a b\"",
                "log.origin",
            ),
            (
                "poll_interval_ms: 1000",
                "poll_interval_ms: 0",
                "chain.poll_interval_ms",
            ),
        ];
        for (from, to, field) in cases {
            let text = DEFAULT_CONFIG_YAML.replacen(from, to, 1);
            assert_ne!(text, DEFAULT_CONFIG_YAML, "case {field} did not apply");
            let e = NodeConfig::parse("node.yaml", &text).unwrap_err();
            assert_eq!(field_of(e), field);
        }
    }

    #[test]
    fn exactly_one_repository_source() {
        let both = DEFAULT_CONFIG_YAML.replace(
            "  # url: https://github.com/example/collective-jobs.git",
            "  url: https://x/y.git",
        );
        assert_eq!(
            field_of(NodeConfig::parse("n", &both).unwrap_err()),
            "repository.url"
        );
        let none = DEFAULT_CONFIG_YAML.replace("  path: /srv/collective/repo\n", "");
        assert_eq!(
            field_of(NodeConfig::parse("n", &none).unwrap_err()),
            "repository.path"
        );
    }

    #[test]
    fn exactly_one_address_source() {
        let none = DEFAULT_CONFIG_YAML.replace("  deployment: ./devnet.yaml\n", "");
        assert_eq!(
            field_of(NodeConfig::parse("n", &none).unwrap_err()),
            "chain.deployment"
        );
        let inline = none.replace(
            "  # addresses:\n  #   token: \"0x...\"",
            "  addresses:\n    token: \"0x12\"\n    timelock: \"0x1234567890123456789012345678901234567890\"\n    governor: \"0x1234567890123456789012345678901234567890\"\n    code_registry: \"0x1234567890123456789012345678901234567890\"\n    node_registry: \"0x1234567890123456789012345678901234567890\"\n    data_registry: \"0x1234567890123456789012345678901234567890\"\n  #",
        );
        assert_eq!(
            field_of(NodeConfig::parse("n", &inline).unwrap_err()),
            "chain.addresses.token"
        );
    }

    proptest::proptest! {
        /// The parser of operator input never panics: it accepts or names
        /// what is wrong.
        #[test]
        fn parse_never_panics(text in ".{0,400}") {
            let _ = NodeConfig::parse("fuzz.yaml", &text);
        }

        /// Mutating one byte of a valid config never panics either.
        #[test]
        fn mutated_default_never_panics(pos in 0usize..4000, byte in proptest::num::u8::ANY) {
            let mut b = DEFAULT_CONFIG_YAML.as_bytes().to_vec();
            let i = pos % b.len();
            b[i] = byte;
            if let Ok(t) = String::from_utf8(b) {
                let _ = NodeConfig::parse("fuzz.yaml", &t);
            }
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            DEFAULT_CONFIG_YAML.replace("key_dir: /var/lib/collective/keys", "key_dir: keys");
        let p = dir.path().join("node.yaml");
        std::fs::write(&p, text).unwrap();
        let cfg = NodeConfig::load(&p).unwrap();
        assert_eq!(cfg.node.key_dir, dir.path().join("keys"));
        assert_eq!(
            cfg.chain.deployment.unwrap(),
            dir.path().join("./devnet.yaml")
        );
    }
}
