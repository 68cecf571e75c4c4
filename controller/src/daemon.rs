//! The node: wiring, background tasks and a graceful drain.
//!
//! [`Node::start`] does everything that may refuse (keys, chain, log
//! replay, the sandbox host check, crash clean-up) before anything runs, so
//! a node that starts can keep its promises. [`Node::run_with_listener`]
//! runs the HTTP API, the control loop, and the optional GitHub and witness
//! tasks on one [`TaskTracker`], and on shutdown stops the jobs (each gets
//! its end entry) and waits for every task, with deadlines, instead of
//! polling.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use collective_chain::{ChainClient, B256};
use sha2::Digest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::control::{Citation, Control, Timing};
use crate::deploy::TreeStore;
use crate::http::{PublicInfo, RefreshGate, View};
use crate::jobs::Jobs;
use crate::journal::{Journal, JournalReader};
use crate::reconcile::Why;
use crate::repo::RepoSource;
use crate::runner::SandboxRunner;
use crate::status::{Metrics, StatusBoard};
use crate::world::WorldReader;
use crate::{sandbox, ControllerError, NodeConfig};

/// A node, started and ready to run. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    control: Arc<Control>,
    view: View,
    github: Option<(crate::config::GithubSection, PathBuf, crate::github::Lookup)>,
    witnesses: Arc<crate::witness::Witnesses>,
    verifier_key: String,
    plain_base: PathBuf,
    listen: String,
    registration: Arc<(NodeConfig, ChainClient, crate::check::PublicKeys)>,
    board: Arc<StatusBoard>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Load keys, open the log and replay it, connect the repository and the
    /// chain, check the host. The chain must answer at start (with the
    /// configured chain id); later outages only pause reconciliation.
    pub async fn start(cfg: NodeConfig) -> Result<Node, ControllerError> {
        let keys = crate::bootstrap::load_keys(&cfg)?;
        let addresses = crate::bootstrap::addresses(&cfg)?;
        let chain =
            ChainClient::connect_checked(&cfg.chain.rpc_url, addresses, None, cfg.chain.chain_id)
                .await?;
        let anchor_chain = crate::bootstrap::anchor_client(&cfg, addresses).await?;
        crate::bootstrap::create_dirs(&cfg)?;
        let repo = match (&cfg.repository.path, &cfg.repository.url) {
            (Some(p), _) => {
                // A local repository that is not there is a configuration
                // error, said now rather than as a problem on every pass.
                if let Err(message) = crate::check::repository(&cfg) {
                    return Err(ControllerError::Config {
                        file: "node.yaml".into(),
                        field: "repository.path".into(),
                        message,
                    });
                }
                RepoSource::local(p, &cfg.repository.branch)
            }
            (None, Some(u)) => RepoSource::remote(u, &cfg.paths.work_dir, &cfg.repository.branch),
            (None, None) => {
                return Err(ControllerError::Config {
                    file: "node.yaml".into(),
                    field: "repository".into(),
                    message: "give repository.path or repository.url".into(),
                })
            }
        };
        let store = collective_vault::DatasetStore::open(&cfg.data.store).map_err(|source| {
            ControllerError::Vault {
                what: format!("opening the dataset store {}", cfg.data.store),
                source: Box::new(source),
            }
        })?;
        let metrics = Arc::new(Metrics::default());
        let policy_digest = hex::encode(sha2::Sha256::digest(
            serde_json::to_vec(&(&cfg.policy, &cfg.sandbox)).unwrap_or_default(),
        ));
        let journal = Arc::new(Journal::open(
            &cfg.log.dir,
            &cfg.log.origin,
            keys.log_signing_key().clone(),
            policy_digest,
            cfg.sandbox.on_interrupted,
            metrics.clone(),
        )?);
        let node_id = cfg.node_id();
        let plain_base = crate::bootstrap::plain_base(&cfg)?;
        let trees = Arc::new(TreeStore::new(cfg.paths.work_dir.join("trees")));
        let cleaned = crate::bootstrap::clean_crash_leftovers(&cfg, &trees);
        if cleaned > 0 {
            info!(cleaned, "crash leftovers removed");
        }
        // Refuse to start when the host cannot give jobs every guarantee
        // (check_host also marks inherited descriptors close-on-exec, so no
        // job gets one).
        let mode = sandbox::Mode::current();
        let cgroups = sandbox::check_host(&cfg.sandbox.bwrap, &cfg.sandbox.cgroups, mode).await?;
        let board = Arc::new(StatusBoard::new(
            format!("0x{}", hex::encode(node_id)),
            metrics.clone(),
        ));
        let public_keys = crate::check::PublicKeys::of(&keys, &cfg.log.origin);
        let reg = crate::check::registration(&cfg, &chain, Some(&public_keys)).await;
        if !reg.ok {
            warn!(problem = %reg.detail, "registration");
            board.set_problem("registration", reg.detail);
        }
        let wake = Arc::new(Notify::new());
        let uids = if nix::unistd::geteuid().is_root() {
            (sandbox::JOB_UID_BASE..sandbox::JOB_UID_BASE + 1024).collect()
        } else {
            vec![sandbox::JOB_UID]
        };
        let runner = Arc::new(SandboxRunner {
            runs_dir: cfg.paths.work_dir.join("runs"),
            outbox_dir: cfg.paths.outbox_dir.clone(),
            trees: trees.clone(),
            store,
            identity: keys.shared_identity(),
            plain_base: plain_base.clone(),
            mode,
            cgroups,
            bwrap: cfg.sandbox.bwrap.clone(),
            policy: cfg.policy.clone(),
        });
        let jobs = Jobs::new(
            journal.clone(),
            Arc::new(runner),
            wake.clone(),
            board.clone(),
            metrics.clone(),
            uids,
        );
        let public = PublicInfo {
            node_id: format!("0x{}", hex::encode(node_id)),
            chain_id: cfg.chain.chain_id,
            encryption_recipient: keys.recipient().to_string(),
            log_public_key: keys.log_public_key_base64(),
            log_verifier_key: keys.log_verifier_key(&cfg.log.origin).unwrap_or_default(),
            log_origin: cfg.log.origin.clone(),
        };
        // The keys end here: the journal holds the signing key, the runner
        // the identity.
        drop(keys);
        let witnesses = Arc::new(crate::witness::Witnesses::new(&cfg.log.witnesses)?);
        let world = WorldReader::new(
            Arc::new(chain.clone()),
            repo.clone(),
            trees.clone(),
            cfg.chain.confirmations,
            node_id,
            cfg.policy.clone(),
        );
        let timing = Timing {
            poll: Duration::from_millis(cfg.chain.poll_interval_ms),
            resync: Duration::from_secs(10),
            fetch_every: Duration::from_secs(cfg.repository.fetch_interval_secs.max(1)),
            anchor_every: Duration::from_secs(cfg.log.anchor_interval_secs),
        };
        let control = Arc::new(Control::new(
            world,
            journal.clone(),
            jobs,
            trees,
            repo,
            board.clone(),
            metrics.clone(),
            wake.clone(),
            anchor_chain.map(|chain| crate::anchor::Anchorer {
                chain,
                node_id: B256::from(node_id),
                last: parking_lot::Mutex::new(None),
            }),
            Citation {
                chain_id: cfg.chain.chain_id,
                code_registry: format!("{:#x}", addresses.code_registry),
            },
            cfg.policy.clone(),
            cfg.chain.confirmations,
            timing,
        ));
        let reader = JournalReader::new(journal);
        let view = View {
            status: board.subscribe(),
            journal: reader.clone(),
            public,
            witnesses: witnesses.clone(),
            metrics,
            outbox_dir: cfg.paths.outbox_dir.clone(),
            started_at: std::time::Instant::now(),
            refresh: Arc::new(RefreshGate::new(control.fetch_requested.clone(), wake)),
        };
        let registration = Arc::new((cfg.clone(), chain.clone(), public_keys));
        let github = cfg.github.clone().map(|g| {
            (
                g,
                cfg.paths.work_dir.join("github-mirror.git"),
                crate::github::Lookup {
                    journal: reader,
                    chain,
                    confirmations: cfg.chain.confirmations,
                },
            )
        });
        Ok(Node {
            control,
            verifier_key: view.public.log_verifier_key.clone(),
            view,
            github,
            witnesses,
            plain_base,
            listen: cfg.http.listen.clone(),
            registration,
            board,
        })
    }

    /// Run the loop and the HTTP API until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ControllerError> {
        let listener = tokio::net::TcpListener::bind(&self.listen)
            .await
            .map_err(|source| ControllerError::Io {
                path: PathBuf::from(&self.listen),
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
        let tasks = TaskTracker::new();
        let app = crate::http::router(self.view.clone());
        let sd = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(async move { sd.cancelled().await })
                .await
            {
                warn!(error = %e, "HTTP server stopped");
            }
        });
        let _watcher = self.control.repo.watch(self.control.wake.clone());
        if let Some((g, mirror, lookup)) = self.github.clone() {
            tasks.spawn(crate::github::run(g, mirror, lookup, shutdown.clone()));
        }
        if self.witnesses.any() {
            tasks.spawn(crate::witness::run(
                self.witnesses.clone(),
                self.view.journal.clone(),
                self.verifier_key.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(recheck_registration(
            self.registration.clone(),
            self.board.clone(),
            shutdown.clone(),
        ));
        self.control.run(shutdown.clone()).await;
        // Jobs die with us anyway (die-with-parent); each gets its end.
        self.control
            .jobs
            .drain(
                Why::new("node-shutdown", "node shutting down"),
                Duration::from_secs(10),
            )
            .await;
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), tasks.wait())
            .await
            .is_err()
        {
            warn!("background tasks did not stop in time");
        }
        let _ = std::fs::remove_dir_all(&self.plain_base);
        Ok(())
    }

    /// Anchor the current checkpoint on chain now (when anchoring is on).
    pub async fn anchor_now(&self) {
        self.control.anchor_now().await
    }

    /// The log's signed checkpoint text.
    pub fn checkpoint(&self) -> Option<String> {
        self.view.journal.checkpoint_text()
    }
}

/// While the node is not registered (or registered with other keys), look
/// again every [`REGISTRATION_RECHECK`], so the problem clears once the
/// DAO's registration executes, without a restart.
async fn recheck_registration(
    reg: Arc<(NodeConfig, ChainClient, crate::check::PublicKeys)>,
    board: Arc<StatusBoard>,
    shutdown: CancellationToken,
) {
    let (cfg, chain, keys) = &*reg;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REGISTRATION_RECHECK) => {}
        }
        if !board.has("registration") {
            continue;
        }
        let c = crate::check::registration(cfg, chain, Some(keys)).await;
        if c.ok {
            info!(detail = %c.detail, "registration found");
            board.clear("registration");
        } else {
            board.set_problem("registration", c.detail);
        }
    }
}

/// How often a missing registration is looked for again.
pub const REGISTRATION_RECHECK: Duration = Duration::from_secs(30);
