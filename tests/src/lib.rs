//! Test support for the end-to-end tests: builders for a devnet (real
//! anvil with the contracts deployed), a job repository (real git), node
//! keys, a requester identity, a node config, and a node running in-process
//! or as a child process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use collective_chain::devnet::{AnvilOptions, AnvilProcess, DevnetFile, GovernanceParams};
use collective_chain::{
    ApprovalRequest, ChainClient, FixedBytes, ProposalState, Support, TxRef, B256,
};
use collective_controller::config::*;
use collective_controller::{CancellationToken, Node, NodeConfig};
use collective_tree::TreeIds;
use collective_vault::NodeKeys;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The `collective` binary, built by `cargo build -p collective`.
pub fn collective_bin() -> PathBuf {
    let p = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("debug/collective");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p collective` before the e2e tests",
        p.display()
    );
    p
}

/// Log to stderr when `RUST_LOG` is set (once per test binary).
pub fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .try_init();
        }
    });
}

/// Fail with a clear message if a required system tool is absent.
pub fn require_tools() {
    assert!(
        Path::new("/usr/bin/bwrap").exists(),
        "bubblewrap is required: apt-get install bubblewrap"
    );
    assert!(
        collective_chain::devnet::anvil_path().exists(),
        "anvil missing at {}: run `make tools`",
        collective_chain::devnet::anvil_path().display()
    );
    assert!(
        Command::new("git").arg("--version").output().is_ok(),
        "git is required"
    );
}

/// A devnet: anvil plus the deployed suite and demo accounts.
#[derive(Debug)]
pub struct Devnet {
    pub anvil: AnvilProcess,
    pub file: DevnetFile,
    pub yaml: PathBuf,
}

impl Devnet {
    pub async fn spawn(dir: &Path) -> Result<Devnet> {
        require_tools();
        let anvil = AnvilProcess::spawn(&AnvilOptions::default()).await?;
        let file =
            collective_chain::devnet::deploy_demo(anvil.url(), GovernanceParams::default()).await?;
        let yaml = dir.join("devnet.yaml");
        file.save(&yaml)?;
        Ok(Devnet { anvil, file, yaml })
    }

    pub fn url(&self) -> &str {
        self.anvil.url()
    }

    /// A client signing as a demo role (`voter1`, `guardian`, ...).
    pub async fn client(&self, role: &str) -> Result<ChainClient> {
        let signer = self.file.account(role)?.signer()?;
        Ok(
            ChainClient::connect(self.url(), self.file.deployment.addresses, Some(signer))
                .await?
                .with_from_block(self.file.deployment.deploy_block),
        )
    }

    pub async fn mine(&self, blocks: u64) -> Result<()> {
        self.client("spare1").await?.anvil_mine(blocks).await?;
        Ok(())
    }

    /// Propose, vote, queue and execute `CodeRegistry.approve` through the
    /// Governor and Timelock. Returns the executing transaction.
    pub async fn approve(
        &self,
        ids: &TreeIds,
        recipients: &[String],
        expires_at: u64,
    ) -> Result<TxRef> {
        let voter = self.client("voter1").await?;
        let req = ApprovalRequest {
            tree_sha256: ids.sha256.parse::<B256>().context("sha256")?,
            tree_sha1: ids.sha1.parse::<FixedBytes<20>>().context("sha1")?,
            recipients: recipients.to_vec(),
            expires_at,
            uri: "https://example.invalid/pr/1".into(),
        };
        let desc = format!("approve tree {} ({:?})", ids.sha256, Instant::now());
        let id = voter.propose_approval(&req, &desc).await?;
        self.pass(&voter, id).await
    }

    /// Register the node in NodeRegistry through the Governor (needed
    /// before contributions to it are accepted and anchors are taken).
    pub async fn register_node(
        &self,
        node_id: [u8; 32],
        keys: &NodeKeys,
        origin: &str,
    ) -> Result<TxRef> {
        let voter = self.client("voter1").await?;
        let record = collective_chain::NodeRecord {
            encryption_recipient: keys.recipient().to_string(),
            log_public_key: keys.log_verifier_key(origin)?,
            endpoint: "http://127.0.0.1".into(),
            operator: self.file.account("operator")?.address,
            registered_block: 0,
        };
        let desc = format!("register node ({:?})", Instant::now());
        let id = voter
            .propose_register_node(B256::from(node_id), &record, &desc)
            .await?;
        self.pass(&voter, id).await
    }

    /// Pause the code registry as the guardian.
    pub async fn pause(&self) -> Result<TxRef> {
        Ok(self.client("guardian").await?.pause().await?)
    }

    /// Unpause through the Governor (only the DAO may unpause).
    pub async fn unpause(&self) -> Result<TxRef> {
        let voter = self.client("voter1").await?;
        let id = voter
            .propose_unpause(&format!("unpause ({:?})", Instant::now()))
            .await?;
        self.pass(&voter, id).await
    }

    /// The timestamp of the chain head.
    pub async fn now(&self) -> Result<u64> {
        let c = self.client("spare1").await?;
        let head = c.block_number().await?;
        Ok(c.block_hash(head).await?.map(|(_, t)| t).unwrap_or(0))
    }

    /// Vote a proposal through: vote, queue, wait the timelock, execute.
    async fn pass(&self, voter: &ChainClient, id: collective_chain::U256) -> Result<TxRef> {
        voter.fast_forward(id).await?;
        voter.cast_vote(id, Support::For).await?;
        let st = voter.fast_forward(id).await?;
        if st != ProposalState::Succeeded {
            bail!("proposal {id} is {st:?} after voting");
        }
        voter.queue(id).await?;
        voter.fast_forward(id).await?;
        Ok(voter.execute(id).await?)
    }

    /// Revoke as the guardian.
    pub async fn revoke(&self, sha256: &str, reason: &str) -> Result<TxRef> {
        let g = self.client("guardian").await?;
        Ok(g.revoke(sha256.parse::<B256>()?, reason).await?)
    }

    /// Register `plaintext` encrypted to the node as a contribution.
    pub async fn contribute(
        &self,
        store: &collective_vault::DatasetStore,
        node_recipient: &str,
        node_id: [u8; 32],
        plaintext: &[u8],
    ) -> Result<String> {
        let obj = store
            .put_encrypted(
                std::io::Cursor::new(plaintext.to_vec()),
                &[node_recipient.to_string()],
                "dataset",
            )
            .await?;
        let c = self.client("contributor").await?;
        c.contribute(
            obj.sha256.parse::<B256>()?,
            &obj.url,
            obj.size,
            B256::from(node_id),
        )
        .await?;
        Ok(obj.sha256)
    }
}

/// A git repository of jobs, driven with the real git CLI.
#[derive(Debug)]
pub struct JobRepo {
    pub path: PathBuf,
}

/// Run the git CLI in `dir` with a fixed identity; stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl JobRepo {
    pub fn init(path: &Path) -> Result<JobRepo> {
        std::fs::create_dir_all(path)?;
        git(path, &["init", "-q", "-b", "main"])?;
        Ok(JobRepo {
            path: path.to_path_buf(),
        })
    }

    /// Write files (path, content; `None` deletes), commit on the current
    /// branch, return the tree ids and commit.
    pub fn commit(&self, files: &[(&str, Option<&str>)], msg: &str) -> Result<(TreeIds, String)> {
        for (p, content) in files {
            let full = self.path.join(p);
            match content {
                Some(c) => {
                    std::fs::create_dir_all(full.parent().unwrap())?;
                    std::fs::write(&full, c)?;
                }
                None => {
                    let _ = std::fs::remove_file(&full);
                }
            }
        }
        git(&self.path, &["add", "-A"])?;
        git(&self.path, &["commit", "-q", "--allow-empty", "-m", msg])?;
        let commit = git(&self.path, &["rev-parse", "HEAD"])?;
        let repo = collective_tree::open_repo(&self.path)?;
        let (ids, _) = collective_tree::tree_ids_of_rev(&repo, "HEAD")?;
        Ok((ids, commit))
    }

    /// Add a symlink and commit.
    /// Commits a batch job `name` that sleeps (`SLEEP_JOB_PY`), for tests
    /// that need a job still running when something happens to it.
    pub fn commit_sleeper(&self, name: &str) -> Result<(TreeIds, String)> {
        let yaml = SLEEP_JOB_YAML.replace("jobs/sleep/", &format!("jobs/{name}/"));
        self.commit(
            &[
                (&format!("jobs/{name}/job.yaml"), Some(&yaml)),
                (&format!("jobs/{name}/run.py"), Some(SLEEP_JOB_PY)),
            ],
            "sleeper",
        )
    }

    pub fn commit_symlink(&self, link: &str, target: &str, msg: &str) -> Result<(TreeIds, String)> {
        let full = self.path.join(link);
        std::fs::create_dir_all(full.parent().unwrap())?;
        std::os::unix::fs::symlink(target, &full)?;
        self.commit(&[], msg)
    }
}

/// A batch job reading every dataset and writing a summary.
pub const STATS_JOB_YAML: &str = "kind: batch\ncommand: [/usr/bin/python3, /job/jobs/stats/run.py]\ndatasets: all\noutputs: [result.json]\nlimits:\n  wall_seconds: 60\n  memory_bytes: 1073741824\n  output_bytes: 1048576\n";
pub const STATS_JOB_PY: &str = r#"import os, json
files = sorted(os.listdir('/data'))
total = 0
lines = 0
for f in files:
    b = open('/data/' + f, 'rb').read()
    total += len(b)
    lines += b.count(b'\n')
open('/out/result.json', 'w').write(json.dumps({'files': len(files), 'bytes': total, 'lines': lines}))
print('done')
"#;

/// A batch job that sleeps (for revocation and crash tests).
pub const SLEEP_JOB_YAML: &str = "kind: batch\ncommand: [/usr/bin/python3, /job/jobs/sleep/run.py]\ndatasets: all\nlimits:\n  wall_seconds: 120\n";
pub const SLEEP_JOB_PY: &str = "import time\nprint('sleeping', flush=True)\ntime.sleep(100)\n";

/// Node keys, generated once per test binary (RSA-4096 is slow).
pub fn node_keys() -> &'static NodeKeys {
    static KEYS: OnceLock<NodeKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 4096).expect("RSA key");
        let log = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        NodeKeys::from_parts(rsa, log).expect("node keys")
    })
}

/// A requester: an age X25519 identity whose recipient the DAO approves.
pub struct Requester {
    pub identity: age::x25519::Identity,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester")
            .field("recipient", &self.recipient())
            .finish()
    }
}

impl Default for Requester {
    fn default() -> Self {
        Requester {
            identity: age::x25519::Identity::generate(),
        }
    }
}

impl Requester {
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let d = age::Decryptor::new(ciphertext)?;
        let mut r = d.decrypt(std::iter::once(&self.identity as &dyn age::Identity))?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut out)?;
        Ok(out)
    }
}

/// All the directories of one node.
#[derive(Debug, Clone)]
pub struct NodeDirs {
    pub root: PathBuf,
}

impl NodeDirs {
    pub fn new(root: &Path) -> Result<NodeDirs> {
        let keys = root.join("keys");
        if !keys.join(collective_vault::NODE_KEY_FILE).exists() {
            node_keys().save(&keys, None)?;
        }
        Ok(NodeDirs {
            root: root.to_path_buf(),
        })
    }

    pub fn store_url(&self) -> String {
        format!("file://{}", self.root.join("store").display())
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox")
    }
}

pub const NODE_ID: [u8; 32] = [7u8; 32];

/// A node config for the devnet and repository.
pub fn node_config(
    devnet: &Devnet,
    repo: &Path,
    dirs: &NodeDirs,
    confirmations: u64,
) -> NodeConfig {
    node_config_rpc(devnet, devnet.url(), repo, dirs, confirmations)
}

/// As [`node_config`] with another RPC URL (a proxy in fault tests).
pub fn node_config_rpc(
    devnet: &Devnet,
    rpc: &str,
    repo: &Path,
    dirs: &NodeDirs,
    confirmations: u64,
) -> NodeConfig {
    let mut c = NodeConfig::parse("default", collective_controller::DEFAULT_CONFIG_YAML)
        .expect("default parses");
    c.node.id = format!("0x{}", hex::encode(NODE_ID));
    c.node.key_dir = dirs.root.join("keys");
    c.chain.rpc_url = rpc.to_string();
    c.chain.chain_id = devnet.file.deployment.chain_id;
    c.chain.deployment = Some(devnet.yaml.clone());
    c.chain.confirmations = confirmations;
    c.chain.poll_interval_ms = 100;
    c.repository = RepositorySection {
        path: Some(repo.to_path_buf()),
        url: None,
        branch: "main".into(),
        fetch_interval_secs: 60,
    };
    c.data.store = dirs.store_url();
    c.http.listen = "127.0.0.1:0".into();
    c.log = LogSection {
        dir: dirs.log_dir(),
        origin: "collective.test/node".into(),
        anchor_interval_secs: 0,
        witnesses: vec![],
    };
    c.paths = PathsSection {
        work_dir: dirs.root.join("work"),
        outbox_dir: dirs.outbox(),
    };
    c.validate("test").expect("test config validates");
    c
}

/// A node running in this process.
#[derive(Debug)]
pub struct RunningNode {
    pub url: String,
    pub node: Node,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    pub async fn start(cfg: NodeConfig) -> Result<RunningNode> {
        init_tracing();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let node = Node::start(cfg).await?;
        let shutdown = CancellationToken::new();
        let (n, sd) = (node.clone(), shutdown.clone());
        let handle = tokio::spawn(async move {
            if let Err(e) = n.run_with_listener(listener, sd).await {
                panic!("node failed: {e}");
            }
        });
        Ok(RunningNode {
            url,
            node,
            shutdown,
            handle,
        })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.handle).await;
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value> {
        get_json(&format!("{}{}", self.url, path)).await
    }

    /// Log entries (newest first, up to 20) from `/v1/status`.
    pub async fn recent(&self) -> Result<Vec<serde_json::Value>> {
        let s = self.get("/v1/status").await?;
        Ok(s["recent"].as_array().cloned().unwrap_or_default())
    }

    /// Job run records from `/v1/runs`.
    pub async fn runs(&self) -> Result<Vec<serde_json::Value>> {
        Ok(self.get("/v1/runs").await?["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Wait until the node has ended a pass at chain block `block` or later:
    /// everything up to it has been judged and acted on (the progress
    /// counter negative checks wait for, instead of a sleep).
    pub async fn passed_block(&self, block: u64) -> Result<()> {
        eventually(
            Duration::from_secs(60),
            &format!("a pass at block {block}"),
            || async {
                let s = self.get("/v1/status").await.ok()?;
                (s["last_pass_block"].as_u64()? >= block).then_some(())
            },
        )
        .await
    }

    /// Wait until the node has ended a pass at the devnet's current head.
    pub async fn caught_up(&self, devnet: &Devnet) -> Result<()> {
        let head = devnet.client("spare1").await?.block_number().await?;
        self.passed_block(head).await
    }

    /// Wait until a recent log entry matches `decision` (and `job`, if given).
    pub async fn wait_decision(
        &self,
        decision: &str,
        job: Option<&str>,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            for e in self.recent().await.unwrap_or_default() {
                if e["decision"] == decision && job.is_none_or(|j| e["job"] == j) {
                    return Ok(e);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "no {decision} entry within {timeout:?}; recent: {:#}",
                    serde_json::Value::Array(self.recent().await.unwrap_or_default())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn bytes(&self, path: &str) -> Result<Vec<u8>> {
        let r = reqwest::get(format!("{}{}", self.url, path)).await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        Ok(r.bytes().await?.to_vec())
    }
}

pub async fn get_json(url: &str) -> Result<serde_json::Value> {
    let r = reqwest::get(url)
        .await
        .with_context(|| format!("GET {url}"))?;
    if !r.status().is_success() {
        bail!("GET {url}: {}", r.status());
    }
    Ok(r.json().await?)
}

/// Read every entry of a log directory of a node with `keys` and `origin`
/// (the node must be stopped).
pub fn read_log_of(
    dir: &Path,
    origin: &str,
    keys: &NodeKeys,
) -> Result<
    Vec<(
        u64,
        collective_attest::Subject,
        collective_attest::Predicate,
    )>,
> {
    let log = collective_attest::Log::create_or_open(dir, origin, keys.log_signing_key().clone())?;
    Ok(log.entries().collect::<Result<Vec<_>, _>>()?)
}

/// Read every entry of a log directory (the node must be stopped).
pub fn read_log(
    dir: &Path,
) -> Result<
    Vec<(
        u64,
        collective_attest::Subject,
        collective_attest::Predicate,
    )>,
> {
    let log = collective_attest::Log::create_or_open(
        dir,
        "collective.test/node",
        node_keys().log_signing_key().clone(),
    )?;
    Ok(log.entries().collect::<Result<Vec<_>, _>>()?)
}

/// A TCP forwarder whose target can be cut or switched, to simulate RPC
/// outages and a restarted chain. Cutting also drops open connections.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub url: String,
    target: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Result<Proxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let target = std::sync::Arc::new(std::sync::Mutex::new(Some(
            target.trim_start_matches("http://").to_string(),
        )));
        let (gen_tx, _) = tokio::sync::watch::channel(0u64);
        let generation = std::sync::Arc::new(gen_tx);
        let (t, g) = (target.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let dest = t.lock().unwrap().clone();
                let mut rx = g.subscribe();
                tokio::spawn(async move {
                    let Some(dest) = dest else { return };
                    if let Ok(mut out) = tokio::net::TcpStream::connect(dest).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                            _ = rx.changed() => {}
                        }
                    }
                });
            }
        });
        Ok(Proxy {
            url,
            target,
            generation,
        })
    }

    /// `None` drops every connection (RPC down); `Some` forwards new ones there.
    pub fn set_target(&self, target: Option<&str>) {
        *self.target.lock().unwrap() = target.map(|t| t.trim_start_matches("http://").to_string());
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Poll `f` until it returns `Some`, or fail after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A witness server for tests, written from C2SP tlog-witness: the state
/// machine is `collective_attest::witness::Witness` (consistency proofs
/// checked, rollbacks and forks refused), served over real HTTP.
#[derive(Debug)]
pub struct TestWitness {
    pub url: String,
    pub vkey: String,
    pub witness: std::sync::Arc<std::sync::Mutex<collective_attest::witness::Witness>>,
    /// add-checkpoint requests answered 200.
    pub cosigned: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// add-checkpoint requests answered 409 (old size mismatch).
    pub conflicts: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl TestWitness {
    /// A witness named `name` with a key from `seed`, knowing no log yet.
    pub async fn start(name: &str, seed: u8) -> Result<TestWitness> {
        use axum::http::{header, StatusCode};
        use axum::response::IntoResponse;
        let w = collective_attest::witness::Witness::new(
            name,
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        );
        let vkey = w.verifier_key();
        let witness = std::sync::Arc::new(std::sync::Mutex::new(w));
        let cosigned = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let conflicts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (w2, c2, k2) = (witness.clone(), cosigned.clone(), conflicts.clone());
        let app = axum::Router::new().route(
            "/add-checkpoint",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (w, c, k) = (w2.clone(), c2.clone(), k2.clone());
                async move {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    match w.lock().expect("lock").add_checkpoint(&body, now) {
                        Ok(lines) => {
                            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            (StatusCode::OK, lines).into_response()
                        }
                        Err(r) if r.status == 409 => {
                            k.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            (
                                StatusCode::CONFLICT,
                                [(
                                    header::CONTENT_TYPE,
                                    collective_attest::witness::SIZE_CONTENT_TYPE,
                                )],
                                r.body,
                            )
                                .into_response()
                        }
                        Err(r) => (
                            StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
                            r.body,
                        )
                            .into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(TestWitness {
            url,
            vkey,
            witness,
            cosigned,
            conflicts,
        })
    }

    /// Starts witnessing `origin` under the log key `log_vkey`.
    pub fn add_log(&self, origin: &str, log_vkey: &str) {
        self.witness.lock().expect("lock").add_log(origin, log_vkey);
    }
}

/// Runs `collective audit` against the log served under `url` (a node's
/// base URL), with the test node's log key and `extra` arguments.
pub fn audit_http(url: &str, extra: &[&str]) -> Result<std::process::Output> {
    let vkey = node_keys().log_verifier_key("collective.test/node")?;
    Ok(std::process::Command::new(collective_bin())
        .args(["audit", "--log", &format!("{url}/log/"), "--log-key", &vkey])
        .args(extra)
        .output()?)
}

impl Devnet {
    /// Registers the test node and contributes one dataset of `rows` to it.
    pub async fn seed_node(&self, dirs: &NodeDirs, rows: &[u8]) -> Result<()> {
        let store = collective_vault::DatasetStore::open(&dirs.store_url())?;
        self.register_node(NODE_ID, node_keys(), "collective.test/node")
            .await?;
        self.contribute(&store, node_keys().recipient(), NODE_ID, rows)
            .await?;
        Ok(())
    }
}

/// Hostile jobs, each attempting one escape; the node must contain every
/// one and log its end (`assert_hostile_contained`). `port` is a host
/// listener the network job tries; `key_file` the node key it tries to read.
pub fn hostile_jobs(port: u16, key_file: &Path) -> Vec<(&'static str, String)> {
    let job = |cmd: &str, limits: &str| {
        format!("kind: batch\ncommand: [/usr/bin/python3, -c, {cmd:?}]\nlimits:\n{limits}")
    };
    let wall = "  wall_seconds: 20\n";
    let net = format!("import socket,sys\ns=socket.socket()\ns.settimeout(2)\ntry:\n  s.connect(('127.0.0.1',{port}))\nexcept Exception as e:\n  print('refused');sys.exit(3)\nprint('CONNECTED')");
    let keys = format!("import sys\ntry:\n  print(open({:?}).read())\nexcept Exception:\n  print('denied');sys.exit(4)", key_file.display().to_string());
    let write = "import sys\nn=0\nfor p in ['/job/x','/data/x','/usr/x','/x']:\n  try:\n    open(p,'w').write('x');n+=1\n  except Exception: pass\nsys.exit(5 if n==0 else 0)".to_string();
    let bomb = "import os\nwhile True:\n  try:\n    if os.fork()==0:\n      import time;time.sleep(30);os._exit(0)\n  except OSError:\n    break\nos._exit(6)".to_string();
    let mem = "x=bytearray(2*1024*1024*1024)".to_string();
    let sleep = "import time\ntime.sleep(100)".to_string();
    let big = "open('/out/big','wb').write(b'x'*(1024*1024))".to_string();
    let names = "import os\nopen('/out/result.json','w').write('{}')\nfor n in ['ROW-'+'al'+'ice-diabetic','a\\nb']:\n  open('/out/'+n,'w').write('x')\nos.close(os.open(b'/out/\\xff\\xfe', os.O_CREAT|os.O_WRONLY))".to_string();
    let many = "for i in range(10000):\n  open('/out/f%05d' % i,'w').close()".to_string();
    vec![
        ("net", job(&net, wall)),
        ("keys", job(&keys, wall)),
        ("writes", job(&write, wall)),
        (
            "forkbomb",
            job(&bomb, "  wall_seconds: 10\n  processes: 16\n"),
        ),
        (
            "memory",
            job(&mem, "  wall_seconds: 20\n  memory_bytes: 268435456\n"),
        ),
        ("walltime", job(&sleep, "  wall_seconds: 2\n")),
        (
            "bigout",
            job(&big, "  wall_seconds: 20\n  output_bytes: 65536\n"),
        ),
        ("names", job(&names, wall) + "outputs: [result.json]\n"),
        ("many", job(&many, wall) + "outputs: ['f*']\n"),
    ]
}

/// The verdicts `hostile_jobs` must get, from each job's `job-finished` run.
pub fn assert_hostile_contained(get: &dyn Fn(&str) -> serde_json::Value) {
    assert_eq!(get("net")["exit_status"], 3, "{}", get("net"));
    assert_eq!(get("keys")["exit_status"], 4, "{}", get("keys"));
    assert_eq!(get("writes")["exit_status"], 5, "{}", get("writes"));
    assert_ne!(get("forkbomb")["exit_status"], 0, "{}", get("forkbomb"));
    assert_ne!(get("memory")["exit_status"], 0, "{}", get("memory"));
    assert!(
        get("walltime")["reason"]
            .as_str()
            .unwrap()
            .contains("wall time"),
        "{}",
        get("walltime")
    );
    let bigout = get("bigout");
    assert!(
        bigout["exit_status"] != 0
            || bigout["reason"]
                .as_str()
                .unwrap()
                .contains("outputs refused"),
        "{bigout}"
    );
    assert!(!bigout["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "out/big.age"));
}
