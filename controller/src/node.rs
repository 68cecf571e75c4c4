//! The node: the I/O loop around [`crate::reconcile::reconcile`].
//!
//! Security argument. Every wake re-reads the truth: the deploy branch head
//! from the object database, approvals and pause state from the chain at the
//! confirmation depth, and the node's own history from the log. If any of
//! those reads fails, the loop takes no action at all (it neither deploys
//! nor stops anything) and keeps serving its API: a flaky RPC can delay a
//! deployment, never cause a wrong one. Deploying re-verifies the tree from
//! disk; starting a job re-verifies it again. Every decision is appended
//! (durably) to the log before its effect becomes visible, and `job-started`
//! is written before the sandbox starts, so a crash is always detectable.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collective_attest::{ApprovalRef, Decision, Log, OutputDigest, Predicate, Subject};
use collective_chain::{Approval, ChainClient, PrivateKeySigner, B256};
use collective_vault::{DatasetStore, NodeKeys, SecretString};
use serde::Serialize;
use sha2::Digest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, instrument, warn};

use crate::config::{InterruptedPolicy, NodeConfig};
use crate::gate::{self, ApprovalFacts, Manifests};
use crate::reconcile::{
    reconcile, Action, Desired, JobPlan, Observed, Running, StopKind, TreeRef, Verdict,
};
use crate::repo::{Head, RepoSource};
use crate::sandbox::{self, RunDir, SandboxSpec, Termination};
use crate::state::State;
use crate::ControllerError;
use collective_policy::{JobKind, JobManifest};

/// A running job's handle.
#[derive(Debug)]
struct RunningJob {
    cancel: CancellationToken,
    /// The job's own uid (see `sandbox::JOB_UID_BASE`).
    uid: u32,
    stop: Option<(StopKind, String)>,
    datasets: Vec<String>,
    started: Instant,
}

/// Public status, served at `/v1/status` and rendered at `/`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// This node's id (0x-hex), as registered in `NodeRegistry`.
    pub node_id: String,
    /// The tree at the deploy branch head, as last read.
    pub head: Option<TreeRef>,
    /// Whether the head tree may run, and why not if it may not.
    pub head_verdict: Option<Verdict>,
    /// The tree currently deployed (from the log).
    pub deployed: Option<TreeRef>,
    /// The on-chain approval the deployed tree runs under.
    pub deployed_approval: Option<ApprovalRef>,
    /// Recipients the approval names: job outputs are encrypted to them only.
    pub deployed_recipients: Vec<String>,
    /// Trees seen at the branch head and not deployable yet, with why.
    pub pending: BTreeMap<String, String>,
    /// Running jobs as `job@<tree sha256 prefix>`.
    pub running: Vec<String>,
    /// The latest chain block seen.
    pub chain_block: Option<u64>,
    /// The last chain read failure, cleared by the next successful read; a
    /// round whose read fails takes no action (fail-closed).
    pub chain_error: Option<String>,
    /// The last repository read/fetch failure, cleared by the next success.
    pub repo_error: Option<String>,
    /// The last failed action (or failed log append) of the reconcile loop.
    pub last_error: Option<String>,
    /// When the status was last refreshed (RFC 3339).
    pub last_reconcile: Option<String>,
    /// Number of entries in the transparency log.
    pub log_size: u64,
    /// Merkle root of the log at `log_size` (hex).
    pub log_root: String,
    /// The last checkpoint anchored on chain, if anchoring is on.
    pub last_anchor: Option<AnchorInfo>,
    /// Reconcile passes since start.
    pub reconciles: u64,
}

/// The last checkpoint anchored on chain.
#[derive(Debug, Clone, Serialize)]
pub struct AnchorInfo {
    /// Log size the anchored checkpoint commits to.
    pub size: u64,
    /// Its Merkle root (hex).
    pub root: String,
    /// The anchoring transaction (0x-hex).
    pub tx_hash: String,
    /// The block it was included in.
    pub block_number: u64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reconcile passes.
    pub reconciles: std::sync::atomic::AtomicU64,
    /// Failed reads of the chain or repository.
    pub read_errors: std::sync::atomic::AtomicU64,
    /// Actions taken, by kind.
    pub actions: Mutex<BTreeMap<String, u64>>,
    /// Jobs started.
    pub jobs_started: std::sync::atomic::AtomicU64,
    /// Checkpoints anchored on chain.
    pub anchors: std::sync::atomic::AtomicU64,
}

/// Shared node internals (the HTTP API reads them).
pub struct Inner {
    /// The validated configuration the node started with.
    pub cfg: NodeConfig,
    /// The node's decryption and log-signing keys.
    pub keys: NodeKeys,
    /// The node id (from `cfg`, decoded once).
    pub node_id: [u8; 32],
    /// The chain id checked at connect time.
    pub chain_id: u64,
    code_registry: String,
    chain: ChainClient,
    anchor_chain: Option<ChainClient>,
    /// Witnesses each new checkpoint goes to, and their cosignatures.
    pub witnesses: crate::witness::Witnesses,
    repo: RepoSource,
    store: DatasetStore,
    log: Mutex<Log>,
    /// What the node has done, replayed from its log: the log is the source
    /// of truth, this is its in-memory index.
    pub state: Mutex<State>,
    running: Mutex<BTreeMap<(String, String), RunningJob>>,
    manifests: Mutex<BTreeMap<String, Manifests>>,
    /// Wakes the reconcile loop (chain events, repository changes, API).
    pub wake: Arc<Notify>,
    /// Set by `POST /v1/refresh`: fetch a remote repository now (at most
    /// every two seconds).
    pub fetch_requested: std::sync::atomic::AtomicBool,
    /// The public status, refreshed after each reconcile pass.
    pub status: Mutex<Status>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    policy_digest: String,
    /// Private (0700, tmpfs when available) base of plaintext directories;
    /// emptied at start, so a crash leaves no plaintext behind for long.
    plain_base: PathBuf,
    /// Root or unprivileged, fixed at start.
    sandbox_mode: sandbox::Mode,
    /// Where job cgroups go (checked at start).
    cgroups: sandbox::Cgroups,
    /// For uptime in the status and metrics.
    pub started_at: Instant,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("node_id", &hex::encode(self.node_id))
            .finish_non_exhaustive()
    }
}

/// A running node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Shared with the HTTP server and background tasks.
    pub inner: Arc<Inner>,
}

/// The truth as read on one wake, with what the actions need.
#[derive(Debug, Default)]
struct World {
    desired: Desired,
    head: Option<Head>,
    approvals: BTreeMap<String, Approval>,
    live_datasets: Vec<String>,
    block: u64,
    paused: bool,
    now: u64,
}

fn b256_of_hex(s: &str) -> Result<B256, ControllerError> {
    let bytes = hex::decode(s).map_err(|e| ControllerError::Refused {
        reason: format!("bad sha256 {s:?}: {e}"),
    })?;
    if bytes.len() != 32 {
        return Err(ControllerError::Refused {
            reason: format!("bad sha256 {s:?}: not 32 bytes"),
        });
    }
    Ok(B256::from_slice(&bytes))
}

fn approval_facts(a: &Approval) -> ApprovalFacts {
    ApprovalFacts {
        tree_sha256: hex::encode(a.tree_sha256.as_slice()),
        tree_sha1: hex::encode(a.tree_sha1.as_slice()),
        recipients: a.recipients.clone(),
        expires_at: a.expires_at,
        revoked: a.revoked,
        revoke_reason: a.revoke_reason.clone(),
    }
}

fn chain_err(e: collective_chain::ChainError) -> ControllerError {
    ControllerError::Chain {
        message: e.to_string(),
    }
}

/// Read the manifests of a deployed tree from disk.
fn manifests_on_disk(dir: &Path) -> Result<Vec<(String, String)>, ControllerError> {
    let jobs = dir.join("jobs");
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&jobs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(ControllerError::Io { path: jobs, source }),
    };
    for e in rd {
        let e = e.map_err(|source| ControllerError::Io {
            path: jobs.clone(),
            source,
        })?;
        let ft = e.file_type().map_err(|source| ControllerError::Io {
            path: e.path(),
            source,
        })?;
        if !ft.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().to_string();
        let text = std::fs::read_to_string(e.path().join("job.yaml")).unwrap_or_default();
        out.push((name, text));
    }
    out.sort();
    Ok(out)
}

/// sha256 and size of a file.
fn digest_file(path: &Path) -> Result<(String, u64), ControllerError> {
    let mut f = std::fs::File::open(path).map_err(|source| ControllerError::Io {
        path: path.into(),
        source,
    })?;
    let mut h = sha2::Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|source| ControllerError::Io {
        path: path.into(),
        source,
    })?;
    Ok((hex::encode(h.finalize()), n))
}

impl Node {
    /// Load keys, open the log and replay it, connect the repository and the
    /// chain. The chain must answer at start (with the configured chain id);
    /// later outages only pause reconciliation.
    pub async fn start(cfg: NodeConfig) -> Result<Node, ControllerError> {
        let keys = crate::bootstrap::load_keys(&cfg)?;
        let addresses = crate::bootstrap::addresses(&cfg)?;
        let chain =
            ChainClient::connect_checked(&cfg.chain.rpc_url, addresses, None, cfg.chain.chain_id)
                .await
                .map_err(chain_err)?;
        let anchor_chain = match &cfg.chain.operator_key_env {
            Some(var) => match std::env::var(var) {
                Ok(k) => {
                    let signer: PrivateKeySigner =
                        k.trim().parse().map_err(|e| ControllerError::Config {
                            file: "environment".into(),
                            field: var.clone(),
                            message: format!("not an Ethereum private key: {e}"),
                        })?;
                    Some(
                        ChainClient::connect(&cfg.chain.rpc_url, addresses, Some(signer))
                            .await
                            .map_err(chain_err)?,
                    )
                }
                Err(_) => {
                    warn!(
                        var,
                        "operator key variable unset; checkpoints will not be anchored"
                    );
                    None
                }
            },
            None => None,
        };
        for d in [&cfg.paths.work_dir, &cfg.paths.outbox_dir, &cfg.log.dir] {
            std::fs::create_dir_all(d).map_err(|source| ControllerError::Io {
                path: d.clone(),
                source,
            })?;
        }
        let repo = match (&cfg.repository.path, &cfg.repository.url) {
            (Some(p), _) => RepoSource::local(p, &cfg.repository.branch),
            (None, Some(u)) => RepoSource::remote(u, &cfg.paths.work_dir, &cfg.repository.branch),
            _ => unreachable!("validated"),
        };
        let store = DatasetStore::open(&cfg.data.store).map_err(|e| ControllerError::Store {
            message: e.to_string(),
        })?;
        let log = Log::create_or_open(
            &cfg.log.dir,
            &cfg.log.origin,
            keys.log_signing_key().clone(),
        )
        .map_err(|e| ControllerError::Log {
            message: e.to_string(),
        })?;
        let mut state = State::default();
        for e in log.entries() {
            let (i, s, p) = e.map_err(|e| ControllerError::Log {
                message: format!("replaying the log: {e}"),
            })?;
            state.apply(i, &s, &p, cfg.sandbox.on_interrupted);
        }
        info!(size = log.size(), deployed = ?state.deployed.as_ref().map(|d| &d.sha256), unresolved = state.started.len(), "log replayed");
        let policy_digest = hex::encode(sha2::Sha256::digest(
            serde_json::to_vec(&(&cfg.policy, &cfg.sandbox)).unwrap_or_default(),
        ));
        let node_id = cfg.node_id();
        // One base per node instance (node id and work dir), so two nodes
        // on one machine never clear each other's plaintext.
        let instance = hex::encode(sha2::Sha256::digest(
            cfg.paths.work_dir.to_string_lossy().as_bytes(),
        ));
        let plain_base = collective_vault::plain_base_dir().join(format!(
            "collective-{}-{}",
            &hex::encode(node_id)[..8],
            &instance[..8]
        ));
        let stale = std::fs::read_dir(&plain_base)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if stale {
            warn!(dir = %plain_base.display(), "removing plaintext left by a previous run");
        }
        let _ = std::fs::remove_dir_all(&plain_base);
        // Run directories of jobs a crash interrupted: unmount their tmpfs
        // and remove their plaintext outputs.
        if let Ok(rd) = std::fs::read_dir(cfg.paths.work_dir.join("runs")) {
            for e in rd.flatten() {
                let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&plain_base)
                .map_err(|source| ControllerError::Io {
                    path: plain_base.clone(),
                    source,
                })?;
            // The base sits in a shared directory (/dev/shm): it must be a
            // real directory of ours, private, not something another local
            // user left (or linked) there.
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let m =
                std::fs::symlink_metadata(&plain_base).map_err(|source| ControllerError::Io {
                    path: plain_base.clone(),
                    source,
                })?;
            if !m.file_type().is_dir()
                || m.uid() != nix::unistd::geteuid().as_raw()
                || m.permissions().mode() & 0o077 != 0
            {
                return Err(ControllerError::Refused {
                    reason: format!(
                        "{} is not a private directory of this user (owner {}, mode {:o}); remove it and restart",
                        plain_base.display(),
                        m.uid(),
                        m.permissions().mode() & 0o7777
                    ),
                });
            }
        }
        // Refuse to start (check_host also marks every inherited
        // descriptor close-on-exec, so no job gets one) when the host cannot give jobs every guarantee.
        let sandbox_mode = sandbox::Mode::current();
        let cgroups =
            sandbox::check_host(&cfg.sandbox.bwrap, &cfg.sandbox.cgroups, sandbox_mode).await?;
        let status = Status {
            node_id: format!("0x{}", hex::encode(node_id)),
            ..Default::default()
        };
        let inner = Inner {
            sandbox_mode,
            cgroups,
            node_id,
            chain_id: cfg.chain.chain_id,
            code_registry: format!("{:#x}", addresses.code_registry),
            chain,
            anchor_chain,
            witnesses: crate::witness::Witnesses::new(&cfg.log.witnesses)?,
            repo,
            store,
            log: Mutex::new(log),
            state: Mutex::new(state),
            running: Mutex::new(BTreeMap::new()),
            manifests: Mutex::new(BTreeMap::new()),
            wake: Arc::new(Notify::new()),
            fetch_requested: std::sync::atomic::AtomicBool::new(false),
            status: Mutex::new(status),
            metrics: Metrics::default(),
            policy_digest,
            plain_base,
            started_at: Instant::now(),
            keys,
            cfg,
        };
        Ok(Node {
            inner: Arc::new(inner),
        })
    }

    /// Run the loop and the HTTP API until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ControllerError> {
        let listener = tokio::net::TcpListener::bind(self.inner.cfg.listen_addr())
            .await
            .map_err(|source| ControllerError::Io {
                path: PathBuf::from(&self.inner.cfg.http.listen),
                source,
            })?;
        self.run_with_listener(listener, shutdown).await
    }

    /// As [`run`](Self::run) with an already bound listener (tests bind
    /// port 0).
    pub async fn run_with_listener(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ControllerError> {
        let app = crate::http::router(self.inner.clone());
        let sd = shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { sd.cancelled().await })
                .await;
        });
        let _watcher = self.inner.repo.watch(self.inner.wake.clone());
        if let Some(g) = self.inner.cfg.github.clone() {
            let node = self.clone();
            let sd = shutdown.clone();
            tokio::spawn(async move { node.github_loop(g, sd).await });
        }
        if self.inner.witnesses.any() {
            let inner = self.inner.clone();
            let sd = shutdown.clone();
            tokio::spawn(async move { crate::witness::run(inner, sd).await });
        }
        self.control_loop(shutdown.clone()).await;
        // Stop jobs: they die with us anyway (die-with-parent); record why.
        let keys: Vec<_> = self
            .inner
            .running
            .lock()
            .expect("lock")
            .keys()
            .cloned()
            .collect();
        for (t, j) in keys {
            self.stop_job(&t, &j, StopKind::Suspended, "node shutting down".into());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.inner.running.lock().expect("lock").is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = server.await;
        let _ = std::fs::remove_dir_all(&self.inner.plain_base);
        Ok(())
    }

    async fn control_loop(&self, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.inner.cfg.chain.poll_interval_ms);
        let fetch_every = Duration::from_secs(self.inner.cfg.repository.fetch_interval_secs.max(1));
        let anchor_every = Duration::from_secs(self.inner.cfg.log.anchor_interval_secs);
        let mut last_fetch: Option<Instant> = None;
        let mut last_anchor = Instant::now();
        let mut last_block: Option<u64> = None;
        let mut last_full = Instant::now() - Duration::from_secs(3600);
        let mut woken = true;
        loop {
            let requested = last_fetch.is_none_or(|t| t.elapsed() >= Duration::from_secs(2))
                && self
                    .inner
                    .fetch_requested
                    .swap(false, std::sync::atomic::Ordering::Relaxed);
            if self.inner.repo.is_remote()
                && (requested || last_fetch.is_none_or(|t| t.elapsed() >= fetch_every))
            {
                let repo = self.inner.repo.clone();
                let r = tokio::task::spawn_blocking(move || repo.refresh()).await;
                last_fetch = Some(Instant::now());
                if let Ok(Err(e)) = r {
                    warn!(error = %e, "fetch failed");
                    self.inner.status.lock().expect("lock").repo_error = Some(e.to_string());
                }
                woken = true;
            }
            // A cheap probe decides whether to re-read everything: a new
            // block, a wake hint, or a periodic full read.
            let block = self.inner.chain.block_number().await;
            let changed = match &block {
                Ok(b) => last_block != Some(*b),
                Err(_) => false,
            };
            match &block {
                Ok(b) => {
                    last_block = Some(*b);
                    let mut st = self.inner.status.lock().expect("lock");
                    st.chain_block = Some(*b);
                    st.chain_error = None;
                }
                Err(e) => {
                    self.inner
                        .metrics
                        .read_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.inner.status.lock().expect("lock").chain_error = Some(e.to_string());
                }
            }
            if block.is_ok() && (changed || woken || last_full.elapsed() >= Duration::from_secs(10))
            {
                last_full = Instant::now();
                self.tick().await;
            }
            if !anchor_every.is_zero() && last_anchor.elapsed() >= anchor_every {
                last_anchor = Instant::now();
                if let Err(e) = self.anchor_now().await {
                    warn!(error = %e, "anchoring failed");
                }
            }
            tokio::select! {
                _ = self.inner.wake.notified() => woken = true,
                _ = tokio::time::sleep(poll) => woken = false,
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Read the world and apply actions until idle.
    #[instrument(skip(self))]
    pub async fn tick(&self) {
        self.inner
            .metrics
            .reconciles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for _ in 0..64 {
            let world = match self.read_world().await {
                Ok(w) => w,
                Err(e) => {
                    self.inner
                        .metrics
                        .read_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    warn!(error = %e, "reading the world failed; no action this round");
                    self.inner.status.lock().expect("lock").chain_error = Some(e.to_string());
                    return;
                }
            };
            let observed = self.observed();
            let action = reconcile(&world.desired, &observed);
            self.update_status(&world);
            if action == Action::Idle {
                return;
            }
            let name = serde_json::to_value(&action)
                .ok()
                .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(str::to_string))
                .unwrap_or_default();
            *self
                .inner
                .metrics
                .actions
                .lock()
                .expect("lock")
                .entry(name)
                .or_default() += 1;
            info!(?action, "reconcile");
            if let Err(e) = self.apply(action, &world).await {
                error!(error = %e, "action failed");
                self.inner.status.lock().expect("lock").last_error = Some(e.to_string());
                return;
            }
        }
        warn!("reconcile did not converge in 64 steps");
    }

    fn observed(&self) -> Observed {
        let st = self.inner.state.lock().expect("lock");
        let running = self.inner.running.lock().expect("lock");
        let interrupted = st
            .started
            .keys()
            .filter(|k| !running.contains_key(*k))
            .cloned()
            .collect();
        Observed {
            deployed: st.deployed.clone(),
            refused: st.refused.clone(),
            finished: st.finished.clone(),
            interrupted,
            running: running
                .iter()
                .map(|((t, j), r)| Running {
                    tree_sha256: t.clone(),
                    job: j.clone(),
                    datasets: r.datasets.clone(),
                    stopping: r.stop.is_some(),
                })
                .collect(),
        }
    }

    fn tree_dir(&self, sha256: &str) -> PathBuf {
        self.inner.cfg.paths.work_dir.join("trees").join(sha256)
    }

    /// Manifests of a deployed tree, from disk (cached by tree id: the
    /// directory is content-addressed and read-only).
    fn deployed_manifests(&self, sha256: &str) -> Option<Manifests> {
        if let Some(m) = self.inner.manifests.lock().expect("lock").get(sha256) {
            return Some(m.clone());
        }
        let dir = self.tree_dir(sha256);
        if !dir.is_dir() {
            return None;
        }
        let m = gate::parse_manifests(&manifests_on_disk(&dir).ok()?);
        self.inner
            .manifests
            .lock()
            .expect("lock")
            .insert(sha256.to_string(), m.clone());
        Some(m)
    }

    async fn read_world(&self) -> Result<World, ControllerError> {
        let i = &self.inner;
        let conf = i.cfg.chain.confirmations;
        let repo = i.repo.clone();
        let head = tokio::task::spawn_blocking(move || -> Result<HeadRead, ControllerError> {
            match repo.head()? {
                Some(h) => {
                    let m = repo.manifests_in_tree(h.tree)?;
                    Ok(Some((h, m)))
                }
                None => Ok(None),
            }
        })
        .await
        .map_err(|e| ControllerError::Repo {
            message: e.to_string(),
        })?;
        let head = match head {
            Ok(h) => {
                i.status.lock().expect("lock").repo_error = None;
                h
            }
            Err(e) => {
                // No readable head: nothing new deploys; the rest proceeds.
                i.status.lock().expect("lock").repo_error = Some(e.to_string());
                None
            }
        };
        let block = i.chain.block_number().await.map_err(chain_err)?;
        let now = i
            .chain
            .block_hash(block)
            .await
            .map_err(chain_err)?
            .map(|(_, t)| t)
            .unwrap_or(0);
        let paused = i.chain.paused(conf).await.map_err(chain_err)?;
        let mut world = World {
            block,
            paused,
            now,
            ..Default::default()
        };
        let mut approval_of = BTreeMap::new();
        let mut trees: BTreeSet<String> = BTreeSet::new();
        if let Some((h, _)) = &head {
            trees.insert(h.ids.sha256.clone());
        }
        let deployed = self.inner.state.lock().expect("lock").deployed.clone();
        if let Some(d) = &deployed {
            trees.insert(d.sha256.clone());
        }
        for (t, _) in self.inner.running.lock().expect("lock").keys() {
            trees.insert(t.clone());
        }
        for t in &trees {
            let a = i
                .chain
                .approval(b256_of_hex(t)?, conf)
                .await
                .map_err(chain_err)?;
            approval_of.insert(t.clone(), a);
        }
        let policy = &i.cfg.policy;
        // `recomputed`: the head's sha256 id from the object database, or a
        // deployed tree's id, verified from disk at deploy and before each
        // job start.
        let verdict_for = |tree: &TreeRef, recomputed: &str, manifests: &Manifests| {
            let facts = approval_of
                .get(&tree.sha256)
                .cloned()
                .flatten()
                .map(|a| approval_facts(&a));
            gate::verdict(&gate::GateInput {
                tree,
                sha256_recomputed: Some(recomputed),
                approval: facts.as_ref(),
                paused,
                now,
                manifests,
                policy,
                confirmations: conf,
            })
        };
        if let Some((h, pairs)) = &head {
            let t = h.tree_ref();
            let v = verdict_for(&t, &h.ids.sha256, &gate::parse_manifests(pairs));
            world.desired.verdicts.insert(t.sha256.clone(), v.clone());
            world.desired.head = Some((t, v));
        }
        // Deployed and running trees: their verdicts from their on-disk
        // manifests (the deployed, verified copy).
        let running_trees: Vec<String> = self
            .inner
            .running
            .lock()
            .expect("lock")
            .keys()
            .map(|(t, _)| t.clone())
            .collect();
        let mut others: Vec<TreeRef> = deployed.iter().cloned().collect();
        let runs = self.inner.state.lock().expect("lock").runs.clone();
        for t in running_trees {
            if let Some(e) = runs.iter().rev().find(|e| e.tree_sha256 == t) {
                others.push(TreeRef {
                    sha1: e.tree_sha1.clone(),
                    sha256: t,
                    commit: e.commit.clone(),
                });
            }
        }
        for t in others {
            let v = match self.deployed_manifests(&t.sha256) {
                Some(m) => verdict_for(&t, &t.sha256, &m),
                None => Verdict::Refused(format!(
                    "deployed tree {} is missing from {}",
                    t.sha256,
                    self.tree_dir(&t.sha256).display()
                )),
            };
            world.desired.verdicts.insert(t.sha256.clone(), v);
        }
        if let Some(d) = &deployed {
            if let Some(m) = self.deployed_manifests(&d.sha256) {
                world.desired.jobs = m
                    .iter()
                    .filter(|(_, r)| r.is_ok())
                    .map(|(n, _)| JobPlan { name: n.clone() })
                    .collect();
            }
        }
        let contributions = i
            .chain
            .contributions(B256::from(i.node_id), conf)
            .await
            .map_err(chain_err)?;
        for c in contributions {
            let sha = hex::encode(c.sha256.as_slice());
            if c.withdrawn {
                world.desired.withdrawn.insert(sha);
            } else {
                world.live_datasets.push(sha);
            }
        }
        world
            .live_datasets
            .retain(|s| !world.desired.withdrawn.contains(s));
        world.approvals = approval_of
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        world.head = head.map(|(h, _)| h);
        Ok(world)
    }

    /// Locks are taken one at a time, never nested: `record` takes log then
    /// state, so nesting here could deadlock.
    fn update_status(&self, world: &World) {
        let deployed = self.inner.state.lock().expect("lock").deployed.clone();
        let (log_size, log_root) = {
            let log = self.inner.log.lock().expect("lock");
            (log.size(), hex::encode(log.root()))
        };
        let running: Vec<String> = self
            .inner
            .running
            .lock()
            .expect("lock")
            .keys()
            .map(|(t, j)| format!("{j}@{}", &t[..12]))
            .collect();
        let st = Deployed { deployed };
        let mut s = self.inner.status.lock().expect("lock");
        s.head = world.desired.head.as_ref().map(|(t, _)| t.clone());
        s.head_verdict = world.desired.head.as_ref().map(|(_, v)| v.clone());
        s.deployed = st.deployed.clone();
        let dep_approval = st
            .deployed
            .as_ref()
            .and_then(|d| world.approvals.get(&d.sha256));
        s.deployed_approval = dep_approval.map(|a| self.approval_ref(a));
        s.deployed_recipients = dep_approval
            .map(|a| a.recipients.clone())
            .unwrap_or_default();
        if let Some((t, v)) = &world.desired.head {
            if v.allowed() {
                s.pending.remove(&t.sha256);
            } else if st.deployed.as_ref().is_none_or(|d| d.sha256 != t.sha256) {
                s.pending.insert(t.sha256.clone(), v.reason().to_string());
            }
        }
        if let Some(d) = &st.deployed {
            s.pending.remove(&d.sha256);
        }
        s.running = running;
        s.chain_block = Some(world.block);
        s.chain_error = None;
        s.last_reconcile = Some(collective_attest::entry::now_rfc3339());
        s.reconciles = self
            .inner
            .metrics
            .reconciles
            .load(std::sync::atomic::Ordering::Relaxed);
        s.log_size = log_size;
        s.log_root = log_root;
    }

    fn approval_ref(&self, a: &Approval) -> ApprovalRef {
        ApprovalRef {
            chain_id: self.inner.chain_id,
            contract: self.inner.code_registry.clone(),
            tx_hash: format!("{:#x}", a.approved_tx),
            block_number: a.approved_block,
            block_hash: format!("{:#x}", a.approved_block_hash),
        }
    }

    /// Append one decision and apply it to the in-memory state.
    fn record(&self, tree: &TreeRef, mut p: Predicate) -> Result<u64, ControllerError> {
        p.policy_digest
            .get_or_insert_with(|| self.inner.policy_digest.clone());
        let subject = Subject {
            tree_sha1: tree.sha1.clone(),
            tree_sha256: tree.sha256.clone(),
            commit: tree.commit.clone(),
        };
        let mut log = self.inner.log.lock().expect("lock");
        let idx =
            log.append(&[(subject.clone(), p.clone())])
                .map_err(|e| ControllerError::Log {
                    message: e.to_string(),
                })?;
        let i = idx[0];
        p.log_index = i;
        info!(index = i, decision = %p.decision, job = ?p.job, reason = %p.reason, tree = %tree.sha256, "logged");
        self.inner.state.lock().expect("lock").apply(
            i,
            &subject,
            &p,
            self.inner.cfg.sandbox.on_interrupted,
        );
        Ok(i)
    }

    fn stop_job(&self, tree: &str, job: &str, kind: StopKind, reason: String) {
        let mut running = self.inner.running.lock().expect("lock");
        if let Some(r) = running.get_mut(&(tree.to_string(), job.to_string())) {
            if r.stop.is_none() {
                r.stop = Some((kind, reason));
                r.cancel.cancel();
            }
        }
    }

    async fn apply(&self, action: Action, world: &World) -> Result<(), ControllerError> {
        match action {
            Action::Idle => Ok(()),
            Action::ResolveInterrupted { tree_sha256, job } => {
                let tree = self.known_tree(&tree_sha256);
                let policy = self.inner.cfg.sandbox.on_interrupted;
                let mut p = Predicate::new(
                    Decision::Interrupted,
                    format!(
                        "job-started without an end (the node stopped during the job); resolution: {}",
                        match policy {
                            InterruptedPolicy::Fail => "marked failed, not rerun",
                            InterruptedPolicy::RerunOnce => "rerun once",
                        }
                    ),
                );
                p.job = Some(job);
                self.record(&tree, p)?;
                Ok(())
            }
            Action::StopJob {
                tree_sha256,
                job,
                kind,
                reason,
            } => {
                self.stop_job(&tree_sha256, &job, kind, reason);
                Ok(())
            }
            Action::Undeploy { tree, kind, reason } => {
                let d = match kind {
                    StopKind::Revoked => Decision::Revoked,
                    StopKind::Suspended => Decision::Suspended,
                    StopKind::Withdrawn => Decision::Withdrawn,
                    StopKind::Refused => Decision::Suspended,
                };
                self.record(&tree, Predicate::new(d, reason))?;
                Ok(())
            }
            Action::Refuse { tree, reason } => {
                self.record(&tree, Predicate::new(Decision::Refused, reason))?;
                Ok(())
            }
            Action::Deploy { tree } => self.deploy(tree, world).await,
            Action::StartJob { tree_sha256, job } => {
                self.start_job(&tree_sha256, &job, world).await
            }
        }
    }

    fn known_tree(&self, sha256: &str) -> TreeRef {
        let st = self.inner.state.lock().expect("lock");
        st.runs
            .iter()
            .rev()
            .find(|e| e.tree_sha256 == sha256)
            .map(|e| TreeRef {
                sha1: e.tree_sha1.clone(),
                sha256: sha256.to_string(),
                commit: e.commit.clone(),
            })
            .unwrap_or_else(|| TreeRef {
                sha1: String::new(),
                sha256: sha256.to_string(),
                commit: None,
            })
    }

    /// Materialize, verify from disk, and log. Refusals are logged.
    #[instrument(skip(self, world), fields(tree = %tree.sha256))]
    async fn deploy(&self, tree: TreeRef, world: &World) -> Result<(), ControllerError> {
        let head = world
            .head
            .as_ref()
            .filter(|h| h.ids.sha256 == tree.sha256)
            .ok_or_else(|| ControllerError::Refused {
                reason: "head moved during reconcile".into(),
            })?;
        let Some(approval) = world.approvals.get(&tree.sha256) else {
            return Err(ControllerError::Refused {
                reason: "approval vanished during reconcile".into(),
            });
        };
        let dest = self.tree_dir(&tree.sha256);
        let repo = self.inner.repo.clone();
        let tree_oid = head.tree;
        let want = tree.sha256.clone();
        let dest2 = dest.clone();
        let verified = tokio::task::spawn_blocking(move || -> Result<String, String> {
            if dest2.is_dir() {
                match collective_tree::sha256_tree_of_dir(&dest2) {
                    Ok(s) if s == want => return Ok(s),
                    _ => {
                        let _ = make_writable(&dest2);
                        std::fs::remove_dir_all(&dest2)
                            .map_err(|e| format!("removing stale {}: {e}", dest2.display()))?;
                    }
                }
            }
            let parent = dest2.parent().expect("trees dir");
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            let tmp = parent.join(format!(".tmp-{want}-{}", std::process::id()));
            if tmp.exists() {
                let _ = make_writable(&tmp);
                let _ = std::fs::remove_dir_all(&tmp);
            }
            let r = (|| {
                repo.materialize(tree_oid, &tmp)
                    .map_err(|e| e.to_string())?;
                let got = collective_tree::sha256_tree_of_dir(&tmp)
                    .map_err(|e| format!("hashing the materialized tree: {e}"))?;
                if got != want {
                    return Err(format!(
                        "sha256 tree id recomputed from disk is {got}, approved is {want}"
                    ));
                }
                collective_tree::make_read_only(&tmp).map_err(|e| e.to_string())?;
                std::fs::rename(&tmp, &dest2).map_err(|e| e.to_string())?;
                Ok(got)
            })();
            if r.is_err() {
                let _ = make_writable(&tmp);
                let _ = std::fs::remove_dir_all(&tmp);
            }
            r
        })
        .await
        .map_err(|e| ControllerError::Refused {
            reason: e.to_string(),
        })?;
        // Decide again on what is on disk: the recomputed sha256 id and the
        // manifests as materialized. Only this decision deploys.
        let verified = verified.and_then(|disk_sha256| {
            let pairs = manifests_on_disk(&dest).map_err(|e| e.to_string())?;
            let manifests = gate::parse_manifests(&pairs);
            let facts = approval_facts(approval);
            match gate::verdict(&gate::GateInput {
                tree: &tree,
                sha256_recomputed: Some(&disk_sha256),
                approval: Some(&facts),
                paused: world.paused,
                now: world.now,
                manifests: &manifests,
                policy: &self.inner.cfg.policy,
                confirmations: self.inner.cfg.chain.confirmations,
            }) {
                Verdict::Allowed => Ok(()),
                v => Err(v.reason().to_string()),
            }
        });
        if let Err(reason) = verified {
            warn!(%reason, "deployment refused");
            let mut p = Predicate::new(Decision::Refused, format!("deployment refused: {reason}"));
            p.approval = Some(self.approval_ref(approval));
            self.record(&tree, p)?;
            return Ok(());
        }
        self.inner
            .manifests
            .lock()
            .expect("lock")
            .remove(&tree.sha256);
        let mut p = Predicate::new(
            Decision::Deployed,
            "approved on chain; tree verified from disk",
        );
        p.approval = Some(self.approval_ref(approval));
        self.record(&tree, p)?;
        Ok(())
    }

    #[instrument(skip(self, world))]
    async fn start_job(
        &self,
        tree_sha256: &str,
        job: &str,
        world: &World,
    ) -> Result<(), ControllerError> {
        let tree = self
            .inner
            .state
            .lock()
            .expect("lock")
            .deployed
            .clone()
            .filter(|d| d.sha256 == tree_sha256)
            .ok_or_else(|| ControllerError::Refused {
                reason: format!("tree {tree_sha256} is not deployed"),
            })?;
        let approval =
            world
                .approvals
                .get(tree_sha256)
                .cloned()
                .ok_or_else(|| ControllerError::Refused {
                    reason: "no approval".into(),
                })?;
        let manifest = self
            .deployed_manifests(tree_sha256)
            .and_then(|m| m.into_iter().find(|(n, _)| n == job))
            .and_then(|(_, r)| r.ok())
            .ok_or_else(|| ControllerError::Refused {
                reason: format!("job {job} has no valid manifest"),
            })?;
        // Verify the deployed tree again right before running it.
        let dir = self.tree_dir(tree_sha256);
        let d2 = dir.clone();
        let recomputed =
            tokio::task::spawn_blocking(move || collective_tree::sha256_tree_of_dir(&d2))
                .await
                .map_err(|e| ControllerError::Refused {
                    reason: e.to_string(),
                })?;
        let datasets = manifest.datasets.select(&world.live_datasets);
        let aref = self.approval_ref(&approval);
        if recomputed.as_deref().ok() != Some(tree_sha256) {
            let mut p = Predicate::new(
                Decision::Refused,
                format!("deployed tree on disk no longer hashes to {tree_sha256}: {recomputed:?}"),
            );
            p.job = Some(job.to_string());
            p.approval = Some(aref);
            self.record(&tree, p)?;
            self.inner
                .manifests
                .lock()
                .expect("lock")
                .remove(tree_sha256);
            return Ok(());
        }
        let cancel = CancellationToken::new();
        {
            let mut p = Predicate::new(
                Decision::JobStarted,
                format!(
                    "{} job; {} dataset(s)",
                    match manifest.kind {
                        JobKind::Batch => "batch",
                        JobKind::Export => "export",
                    },
                    datasets.len()
                ),
            );
            p.job = Some(job.to_string());
            p.approval = Some(aref.clone());
            // Insert into the running set before logging so the replayed
            // `job-started` is never mistaken for an interrupted one.
            let mut running = self.inner.running.lock().expect("lock");
            let used: BTreeSet<u32> = running.values().map(|r| r.uid).collect();
            let uid = if nix::unistd::geteuid().is_root() {
                (sandbox::JOB_UID_BASE..)
                    .find(|u| !used.contains(u))
                    .expect("a free uid")
            } else {
                sandbox::JOB_UID
            };
            running.insert(
                (tree_sha256.to_string(), job.to_string()),
                RunningJob {
                    uid,
                    cancel: cancel.clone(),
                    stop: None,
                    datasets: datasets.clone(),
                    started: Instant::now(),
                },
            );
            drop(running);
            if let Err(e) = self.record(&tree, p) {
                self.inner
                    .running
                    .lock()
                    .expect("lock")
                    .remove(&(tree_sha256.to_string(), job.to_string()));
                return Err(e);
            }
        }
        self.inner
            .metrics
            .jobs_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let node = self.clone();
        let job = job.to_string();
        let recipients = approval.recipients.clone();
        tokio::spawn(async move {
            let ctx = JobCtx {
                tree: &tree,
                job: &job,
                manifest: &manifest,
                datasets: &datasets,
                recipients: &recipients,
                tree_dir: &dir,
            };
            let result = node.execute(ctx, cancel).await;
            node.finish(&tree, &job, aref, result);
        });
        Ok(())
    }

    /// Run a job to completion; returns the end record to log.
    async fn execute(
        &self,
        ctx: JobCtx<'_>,
        cancel: CancellationToken,
    ) -> Result<JobEnd, ControllerError> {
        let JobCtx {
            tree,
            job,
            manifest,
            datasets,
            recipients,
            tree_dir,
        } = ctx;
        let i = &self.inner;
        let outbox = i.cfg.paths.outbox_dir.join(&tree.sha256).join(job);
        {
            // A previous run's outputs can be many and large: off the runtime.
            let dir = outbox.clone();
            tokio::task::spawn_blocking(move || {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                std::fs::create_dir_all(&dir)
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|source| ControllerError::Io {
                path: outbox.clone(),
                source,
            })?;
        }
        let excluded: HashSet<String> = HashSet::new();
        match manifest.kind {
            JobKind::Export => {
                let to = vec![manifest
                    .export
                    .as_ref()
                    .expect("validated")
                    .recipient
                    .clone()];
                let mut outputs = Vec::new();
                for sha in datasets {
                    if cancel.is_cancelled() {
                        return Ok(JobEnd::Cancelled);
                    }
                    let path = outbox.join(format!("{sha}.age"));
                    let file =
                        std::fs::File::create(&path).map_err(|source| ControllerError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    i.store
                        .reencrypt(
                            sha,
                            i.keys.shared_identity(),
                            &to,
                            std::io::BufWriter::new(file),
                        )
                        .await
                        .map_err(|e| ControllerError::Store {
                            message: format!("re-encrypting {sha}: {e}"),
                        })?;
                    let (digest, size) = digest_file(&path)?;
                    outputs.push(OutputDigest {
                        name: format!("{sha}.age"),
                        sha256: digest,
                        size,
                    });
                }
                Ok(JobEnd::Exported { outputs })
            }
            JobKind::Batch => {
                let uid = i
                    .running
                    .lock()
                    .expect("lock")
                    .get(&(tree.sha256.clone(), job.to_string()))
                    .map_or(sandbox::JOB_UID, |r| r.uid);
                let mode = i.sandbox_mode;
                let run_dir = i
                    .cfg
                    .paths
                    .work_dir
                    .join("runs")
                    .join(format!("{}-{job}", &tree.sha256[..16]));
                let rd = RunDir::prepare(&run_dir, mode)?;
                let plain = collective_vault::decrypt_datasets_into_dir(
                    &rd.plain_base(&i.plain_base),
                    &i.store,
                    datasets,
                    i.keys.shared_identity(),
                    &excluded,
                )
                .await
                .map_err(|e| ControllerError::Store {
                    message: format!("decrypting datasets: {e}"),
                })?;
                if cancel.is_cancelled() {
                    return Ok(JobEnd::Cancelled);
                }
                let limits = gate::limits_of(manifest, &i.cfg.policy);
                let spec = SandboxSpec {
                    bwrap: i.cfg.sandbox.bwrap.clone(),
                    tree_dir: tree_dir.to_path_buf(),
                    data_dir: Some(plain.path().to_path_buf()),
                    command: manifest.command.clone(),
                    limits,
                    uid,
                    outputs: manifest.outputs.clone(),
                    mode,
                    cgroup_name: format!("job-{}-{job}", &tree.sha256[..16]),
                };
                let run = sandbox::run(&spec, &i.cgroups, cancel.clone()).await;
                // Plaintext inputs go as soon as the sandbox is gone (off
                // the runtime: a dataset can be large).
                let _ = tokio::task::spawn_blocking(move || drop(plain)).await;
                let run = run?;
                if run.termination == Termination::Cancelled {
                    return Ok(JobEnd::Cancelled);
                }
                let mut reason = match &run.termination {
                    Termination::Exited(0) => "exited 0".to_string(),
                    Termination::Exited(c) => format!("exited {c}"),
                    Termination::Signaled(s) => format!("killed by signal {s} (limit reached?)"),
                    Termination::WallTimeout => format!(
                        "wall time limit of {}s reached; killed",
                        spec.limits.wall_seconds
                    ),
                    Termination::Cancelled => "cancelled".into(),
                };
                if run.memory_limit_hit {
                    reason.push_str(&format!(
                        "; memory limit of {} bytes reached",
                        spec.limits.memory_bytes
                    ));
                }
                // Outputs are refused whole when the job did not succeed
                // or went over its output limit: a partial result is not
                // what the DAO approved.
                let refuse = if !run.termination.success() {
                    Some("the job did not exit 0".to_string())
                } else if run.outputs.total > spec.limits.output_bytes {
                    Some(format!(
                        "outputs total {} bytes, above the limit of {}",
                        run.outputs.total, spec.limits.output_bytes
                    ))
                } else {
                    None
                };
                let collected = run.outputs.files.len();
                let dropped = run.outputs.dropped;
                let missing: Vec<String> = manifest
                    .outputs
                    .iter()
                    .filter(|p| p.is_exact())
                    .filter(|p| !run.outputs.files.iter().any(|f| f.name == p.as_str()))
                    .map(|p| p.to_string())
                    .collect();
                let stream_dropped = run.stream_bytes_dropped;
                let exit_status = run.termination.exit_status();
                let (outbox2, recipients2) = (outbox.clone(), recipients.to_vec());
                let refuse_files = refuse.is_some();
                let outputs = tokio::task::spawn_blocking(move || {
                    crate::outputs::seal(run, outbox2, recipients2, refuse_files)
                })
                .await
                .map_err(|e| ControllerError::Sandbox {
                    message: format!("sealing outputs: {e}"),
                })??;
                drop(rd);
                match refuse {
                    Some(why) if collected > 0 => {
                        reason.push_str(&format!("; {collected} output(s) refused: {why}"))
                    }
                    _ => {}
                }
                if dropped > 0 {
                    reason.push_str(&format!(
                        "; {dropped} undeclared or unsafe entr{} in /out dropped",
                        if dropped == 1 { "y" } else { "ies" }
                    ));
                }
                if !missing.is_empty() && !refuse_files {
                    // Names from the manifest, never from the job.
                    reason.push_str(&format!("; declared but missing: {}", missing.join(", ")));
                }
                if stream_dropped > 0 {
                    reason.push_str(&format!(
                        "; {stream_dropped} bytes of stdout/stderr beyond {} dropped",
                        sandbox::MAX_STREAM_BYTES
                    ));
                }
                Ok(JobEnd::Finished {
                    outputs,
                    exit_status,
                    reason,
                })
            }
        }
    }

    fn finish(
        &self,
        tree: &TreeRef,
        job: &str,
        aref: ApprovalRef,
        result: Result<JobEnd, ControllerError>,
    ) {
        let key = (tree.sha256.clone(), job.to_string());
        let stop = self
            .inner
            .running
            .lock()
            .expect("lock")
            .get(&key)
            .and_then(|r| r.stop.clone());
        let mut p = match result {
            // A job that ended on its own before a stop reached it is
            // logged as what it was.
            Ok(JobEnd::Finished {
                outputs,
                exit_status,
                reason,
            }) => {
                let mut p = Predicate::new(Decision::JobFinished, reason);
                p.outputs = outputs;
                p.exit_status = Some(exit_status);
                p
            }
            Ok(JobEnd::Exported { outputs }) => {
                let mut p = Predicate::new(
                    Decision::Exported,
                    format!(
                        "{} dataset(s) re-encrypted to the export recipient",
                        outputs.len()
                    ),
                );
                p.outputs = outputs;
                p
            }
            Err(e) if stop.is_none() => {
                let mut p = Predicate::new(Decision::JobFinished, format!("failed: {e}"));
                p.exit_status = Some(-1);
                p
            }
            _ => {
                let (kind, reason) = stop.unwrap_or((StopKind::Suspended, "stopped".into()));
                let d = match kind {
                    StopKind::Revoked => Decision::Revoked,
                    StopKind::Suspended | StopKind::Refused => Decision::Suspended,
                    StopKind::Withdrawn => Decision::Withdrawn,
                };
                Predicate::new(d, format!("job killed: {reason}"))
            }
        };
        p.job = Some(job.to_string());
        if p.decision.needs_approval() {
            p.approval = Some(aref);
        }
        if let Err(e) = self.record(tree, p) {
            error!(error = %e, "could not log the end of a job");
            self.inner.status.lock().expect("lock").last_error = Some(e.to_string());
        }
        if let Some(r) = self.inner.running.lock().expect("lock").remove(&key) {
            info!(
                job,
                elapsed_ms = r.started.elapsed().as_millis() as u64,
                "job ended"
            );
        }
        self.inner.wake.notify_one();
    }

    /// Annotate open pull requests on an interval (see `collective-github`).
    /// Failures are logged and retried next pass; they never touch the
    /// deploy path.
    async fn github_loop(&self, g: crate::config::GithubSection, shutdown: CancellationToken) {
        let token = std::env::var(&g.token_env)
            .ok()
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        let cfg = collective_github::GithubConfig {
            api_url: g.api_url.clone(),
            owner: g.owner.clone(),
            repo: g.repo.clone(),
            token,
            retry: collective_github::RetryPolicy::default(),
        };
        let mut wc = collective_github::WatchConfig::new(
            cfg,
            self.inner.cfg.paths.work_dir.join("github-mirror.git"),
        );
        wc.git_remote = g.git_remote.clone();
        wc.target_url = g.target_url.clone();
        let watcher = match collective_github::PrWatcher::new(wc) {
            Ok(w) => w,
            Err(e) => {
                error!(error = %e, "GitHub watcher disabled");
                return;
            }
        };
        let lookup = NodeLookup(self.clone());
        loop {
            match watcher.sync_once(&lookup).await {
                Ok(r) => info!(prs = r.prs.len(), "GitHub pull requests synced"),
                Err(e) => warn!(error = %e, "GitHub sync failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(g.interval_secs)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// The state of a tree for a pull request's status: deployed (with its
    /// log index), approved, refused/revoked, or awaiting approval.
    async fn tree_state(&self, sha256: &str) -> Result<collective_github::TreeState, String> {
        use collective_github::TreeState;
        {
            let st = self.inner.state.lock().expect("lock");
            if let (Some(d), Some(e)) = (&st.deployed, &st.deployed_entry) {
                if d.sha256 == sha256 {
                    return Ok(TreeState::Deployed { log_index: e.index });
                }
            }
        }
        let conf = self.inner.cfg.chain.confirmations;
        let a = self
            .inner
            .chain
            .approval(b256_of_hex(sha256).map_err(|e| e.to_string())?, conf)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match a {
            None => TreeState::AwaitingApproval,
            Some(a) if a.revoked => TreeState::Refused {
                reason: format!("approval revoked: {}", a.revoke_reason),
            },
            Some(_) => {
                let st = self.inner.state.lock().expect("lock");
                match st
                    .refused
                    .iter()
                    .find(|(t, r)| t == sha256 && !r.starts_with("no approval"))
                {
                    Some((_, r)) => TreeState::Refused { reason: r.clone() },
                    None => TreeState::Approved,
                }
            }
        })
    }

    /// Anchor the current checkpoint on chain if the log grew since the
    /// last anchor.
    pub async fn anchor_now(&self) -> Result<Option<AnchorInfo>, ControllerError> {
        let Some(chain) = &self.inner.anchor_chain else {
            return Ok(None);
        };
        let (size, root) = {
            let log = self.inner.log.lock().expect("lock");
            (log.size(), log.root())
        };
        let last = self
            .inner
            .status
            .lock()
            .expect("lock")
            .last_anchor
            .as_ref()
            .map(|a| a.size);
        if size == 0 || last == Some(size) {
            return Ok(None);
        }
        let Some(tx) = crate::anchor::anchor_checkpoint(
            chain,
            B256::from(self.inner.node_id),
            size,
            B256::from(root),
        )
        .await
        .map_err(chain_err)?
        else {
            return Ok(None);
        };
        let info = AnchorInfo {
            size,
            root: hex::encode(root),
            tx_hash: format!("{:#x}", tx.tx_hash),
            block_number: tx.block_number,
        };
        self.inner
            .metrics
            .anchors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.status.lock().expect("lock").last_anchor = Some(info.clone());
        info!(size, tx = %info.tx_hash, "checkpoint anchored");
        Ok(Some(info))
    }

    /// The log's signed checkpoint text.
    pub fn checkpoint(&self) -> Result<String, ControllerError> {
        self.inner
            .log
            .lock()
            .expect("lock")
            .checkpoint_text()
            .map_err(|e| ControllerError::Log {
                message: e.to_string(),
            })
    }
}

/// The node as the GitHub watcher's view of tree states.
#[derive(Debug)]
struct NodeLookup(Node);

impl collective_github::StateLookup for NodeLookup {
    fn state(
        &self,
        tree: &collective_github::TreeIds,
    ) -> impl std::future::Future<Output = Result<collective_github::TreeState, String>> + Send
    {
        let node = self.0.clone();
        let sha = tree.sha256.clone();
        async move { node.tree_state(&sha).await }
    }
}

/// The deployed tree, as read for a status update.
struct Deployed {
    deployed: Option<TreeRef>,
}

/// The deploy branch head with its `(job name, job.yaml)` pairs.
type HeadRead = Option<(Head, Vec<(String, String)>)>;

/// What one job run needs.
#[derive(Debug, Clone, Copy)]
struct JobCtx<'a> {
    tree: &'a TreeRef,
    job: &'a str,
    manifest: &'a JobManifest,
    datasets: &'a [String],
    recipients: &'a [String],
    tree_dir: &'a Path,
}

/// How a job ended, before it is logged.
#[derive(Debug)]
enum JobEnd {
    Finished {
        outputs: Vec<OutputDigest>,
        exit_status: i32,
        reason: String,
    },
    Exported {
        outputs: Vec<OutputDigest>,
    },
    Cancelled,
}

/// Undo `make_read_only` so a stale or failed tree can be removed.
fn make_writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if e.file_type().is_dir() {
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o755));
        }
    }
    Ok(())
}

impl Inner {
    /// The log directory (served at `/log/`).
    pub fn log_dir(&self) -> &Path {
        &self.cfg.log.dir
    }

    /// The current signed checkpoint (served at `/log/checkpoint`).
    pub fn checkpoint_text(&self) -> Option<String> {
        self.log.lock().ok()?.checkpoint_text().ok()
    }

    /// Entries in the log (0 if the log is unavailable).
    pub fn log_size(&self) -> u64 {
        self.log.lock().map(|l| l.size()).unwrap_or(0)
    }

    /// The signed-note verifier key auditors use to check checkpoints.
    pub fn verifier_key(&self) -> String {
        self.keys
            .log_verifier_key(&self.cfg.log.origin)
            .unwrap_or_default()
    }
}
