//! Test doubles for the control loop's middle tier: a chain whose blocks
//! the test mines, a job runner whose jobs do what their name says, and a
//! builder wiring them to the real journal, tree store and a real git
//! repository. Nothing here sleeps: tests drive passes directly, or run the
//! loop in paused time and wait on its counters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use collective_attest::SigningKey;
use collective_chain::alloy::primitives::FixedBytes;
use collective_chain::alloy::transports::TransportErrorKind;
use collective_chain::{Approval, BlockRef, ChainError, Contribution, B256};
use collective_controller::config::InterruptedPolicy;
use collective_controller::control::{Citation, Control, Timing};
use collective_controller::deploy::TreeStore;
use collective_controller::jobs::{JobEnd, JobRunner, JobSpec, Jobs};
use collective_controller::journal::{Journal, JournalReader};
use collective_controller::repo::RepoSource;
use collective_controller::state::RecentEntry;
use collective_controller::status::{Metrics, StatusBoard};
use collective_controller::world::{ChainRead, WorldReader};
use collective_controller::ControllerError;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A valid X25519 age recipient (its identity is not kept anywhere).
pub const RECIPIENT: &str = "age1ljk948rtw9caqdgadrpm7g4dmqpef7jtmfp3308z0sjgry4u7y3qgqjyje";

/// The node id the fixture's contributions are registered to.
pub const NODE_ID: [u8; 32] = [7; 32];

/// What the chain holds in one block.
#[derive(Debug, Clone, Default)]
pub struct Snap {
    pub approvals: BTreeMap<B256, Approval>,
    pub paused: bool,
    pub contributions: Vec<Contribution>,
}

#[derive(Debug, Default)]
struct ChainInner {
    blocks: Vec<(BlockRef, Snap)>,
    /// Every call fails.
    down: bool,
    /// The head probe answers, every other read fails.
    reads_down: bool,
    reorgs: u8,
}

/// A chain the test mines block by block.
#[derive(Debug, Default)]
pub struct FakeChain {
    inner: Mutex<ChainInner>,
    calls: AtomicU64,
}

fn hash_of(number: u64, reorgs: u8) -> B256 {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&number.to_be_bytes());
    h[31] = reorgs;
    h[30] = 0xb1;
    B256::from(h)
}

fn unreachable_error() -> ChainError {
    ChainError::Rpc {
        url: "http://127.0.0.1:1".into(),
        call: "eth_call",
        source: TransportErrorKind::custom_str("connection refused"),
    }
}

impl FakeChain {
    /// A chain with a genesis block at unix time `t0`.
    pub fn new(t0: u64) -> Arc<FakeChain> {
        let c = FakeChain::default();
        c.inner.lock().blocks.push((
            BlockRef {
                number: 0,
                hash: hash_of(0, 0),
                timestamp: t0,
            },
            Snap::default(),
        ));
        Arc::new(c)
    }

    /// Mine one block 12 s after the last, changing the state with `f`.
    pub fn mine(&self, f: impl FnOnce(&mut Snap)) -> BlockRef {
        self.mine_after(12, f)
    }

    /// Mine one block `secs` after the last.
    pub fn mine_after(&self, secs: u64, f: impl FnOnce(&mut Snap)) -> BlockRef {
        let mut i = self.inner.lock();
        let (last, snap) = i.blocks.last().cloned().expect("genesis");
        let mut snap = snap;
        f(&mut snap);
        let b = BlockRef {
            number: last.number + 1,
            hash: hash_of(last.number + 1, i.reorgs),
            timestamp: last.timestamp + secs,
        };
        i.blocks.push((b, snap));
        b
    }

    /// Replace the head block by another at the same height.
    pub fn reorg_head(&self, f: impl FnOnce(&mut Snap)) -> BlockRef {
        let mut i = self.inner.lock();
        i.reorgs += 1;
        let reorgs = i.reorgs;
        let (mut b, mut snap) = i.blocks.pop().expect("a block");
        // The state before the replaced block, changed by `f`.
        if let Some((_, prev)) = i.blocks.last() {
            snap = prev.clone();
        }
        f(&mut snap);
        b.hash = hash_of(b.number, reorgs);
        i.blocks.push((b, snap));
        b
    }

    pub fn head_ref(&self) -> BlockRef {
        self.inner.lock().blocks.last().expect("genesis").0
    }

    pub fn set_down(&self, down: bool) {
        self.inner.lock().down = down;
    }

    pub fn set_reads_down(&self, down: bool) {
        self.inner.lock().reads_down = down;
    }

    /// Chain calls answered or refused so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn snap_at(&self, at: BlockRef) -> Result<Snap, ChainError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let i = self.inner.lock();
        if i.down || i.reads_down {
            return Err(unreachable_error());
        }
        i.blocks
            .iter()
            .find(|(b, _)| *b == at)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| ChainError::Inconsistent {
                url: "fake".into(),
                what: format!("block {} {:#x} is not canonical", at.number, at.hash),
            })
    }
}

impl ChainRead for FakeChain {
    fn head(&self) -> BoxFuture<'_, Result<BlockRef, ChainError>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let r = {
            let i = self.inner.lock();
            if i.down {
                Err(unreachable_error())
            } else {
                Ok(i.blocks.last().expect("genesis").0)
            }
        };
        Box::pin(async move { r })
    }

    fn block(&self, n: u64) -> BoxFuture<'_, Result<Option<BlockRef>, ChainError>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let r = {
            let i = self.inner.lock();
            if i.down || i.reads_down {
                Err(unreachable_error())
            } else {
                Ok(i.blocks
                    .iter()
                    .find(|(b, _)| b.number == n)
                    .map(|(b, _)| *b))
            }
        };
        Box::pin(async move { r })
    }

    fn approval(
        &self,
        tree: B256,
        at: BlockRef,
    ) -> BoxFuture<'_, Result<Option<Approval>, ChainError>> {
        let r = self.snap_at(at).map(|s| s.approvals.get(&tree).cloned());
        Box::pin(async move { r })
    }

    fn paused(&self, at: BlockRef) -> BoxFuture<'_, Result<bool, ChainError>> {
        let r = self.snap_at(at).map(|s| s.paused);
        Box::pin(async move { r })
    }

    fn contributions(
        &self,
        node: B256,
        at: BlockRef,
    ) -> BoxFuture<'_, Result<Vec<Contribution>, ChainError>> {
        let r = self.snap_at(at).map(|s| {
            s.contributions
                .into_iter()
                .filter(|c| c.node_id == node)
                .collect()
        });
        Box::pin(async move { r })
    }
}

/// Jobs behave by name: `panics` panics, `hangs` runs until stopped,
/// `fails` returns an error, anything else finishes with exit status 0.
#[derive(Debug, Default)]
pub struct FakeRunner {
    pub runs: AtomicU64,
    pub datasets_seen: Mutex<Vec<Vec<String>>>,
}

impl JobRunner for FakeRunner {
    fn run(
        &self,
        spec: JobSpec,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<JobEnd, ControllerError>> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.datasets_seen.lock().push(spec.datasets.clone());
        Box::pin(async move {
            match spec.job.as_str() {
                "panics" => panic!("hostile job code panicked"),
                "hangs" => {
                    cancel.cancelled().await;
                    Ok(JobEnd::Cancelled)
                }
                "fails" => Err(ControllerError::Refused {
                    reason: "the job's runner refused".into(),
                }),
                _ => Ok(JobEnd::Finished {
                    outputs: vec![],
                    exit_status: 0,
                    reason: "exit status 0".into(),
                }),
            }
        })
    }
}

/// Runs `git` in `dir` with a fixed identity.
pub fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds a [`Fixture`].
pub struct FixtureBuilder {
    confirmations: u64,
    jobs: Vec<(String, String)>,
    break_tree_store: bool,
}

pub fn fixture() -> FixtureBuilder {
    FixtureBuilder {
        confirmations: 0,
        jobs: vec![],
        break_tree_store: false,
    }
}

impl FixtureBuilder {
    pub fn confirmations(mut self, n: u64) -> Self {
        self.confirmations = n;
        self
    }

    /// A batch job `name` reading `datasets` (a YAML value).
    pub fn job(mut self, name: &str, datasets: &str) -> Self {
        self.jobs.push((
            name.to_string(),
            format!("kind: batch\ncommand: [\"true\"]\ndatasets: {datasets}\n"),
        ));
        self
    }

    /// The tree store's directory sits under a regular file, so every
    /// deploy fails with ENOTDIR until [`Fixture::repair_tree_store`].
    pub fn broken_tree_store(mut self) -> Self {
        self.break_tree_store = true;
        self
    }

    pub fn build(self) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = tmp.path().join("repo");
        std::fs::create_dir_all(&repo_dir).unwrap();
        std::fs::write(repo_dir.join("README"), "a collective's code\n").unwrap();
        for (name, yaml) in &self.jobs {
            std::fs::create_dir_all(repo_dir.join("jobs").join(name)).unwrap();
            std::fs::write(repo_dir.join("jobs").join(name).join("job.yaml"), yaml).unwrap();
        }
        git(&repo_dir, &["init", "-q", "-b", "main"]);
        git(&repo_dir, &["add", "-A"]);
        git(&repo_dir, &["commit", "-q", "-m", "jobs"]);
        let repo = RepoSource::local(&repo_dir, "main");
        let store_parent = tmp.path().join("work");
        if self.break_tree_store {
            std::fs::write(&store_parent, "not a directory").unwrap();
        } else {
            std::fs::create_dir_all(&store_parent).unwrap();
        }
        let trees = Arc::new(TreeStore::new(store_parent.join("trees")));
        let metrics = Arc::new(Metrics::default());
        let journal = Arc::new(
            Journal::open(
                &tmp.path().join("log"),
                "collective.test/node",
                SigningKey::from_bytes(&[9; 32]),
                "policy".into(),
                InterruptedPolicy::Fail,
                metrics.clone(),
            )
            .unwrap(),
        );
        let board = Arc::new(StatusBoard::new("0x07".into(), metrics.clone()));
        let wake = Arc::new(Notify::new());
        let runner = Arc::new(FakeRunner::default());
        let jobs = Jobs::new(
            journal.clone(),
            runner.clone(),
            wake.clone(),
            board.clone(),
            metrics.clone(),
            vec![1000, 1001, 1002],
        );
        let chain = FakeChain::new(1_700_000_000);
        let policy = collective_policy::NodePolicy::default();
        let world = WorldReader::new(
            chain.clone(),
            repo.clone(),
            trees.clone(),
            self.confirmations,
            NODE_ID,
            policy.clone(),
        );
        let control = Arc::new(Control::new(
            world,
            journal.clone(),
            jobs,
            trees,
            repo.clone(),
            board.clone(),
            metrics.clone(),
            wake,
            None,
            Citation {
                chain_id: 31337,
                code_registry: format!("{:#x}", collective_chain::Address::ZERO),
            },
            policy,
            self.confirmations,
            Timing {
                poll: Duration::from_millis(250),
                resync: Duration::from_secs(10),
                fetch_every: Duration::from_secs(30),
                anchor_every: Duration::ZERO,
            },
        ));
        let head = repo.head().unwrap().expect("a head commit");
        Fixture {
            chain,
            control,
            journal: JournalReader::new(journal),
            board,
            metrics,
            runner,
            store_parent,
            tree_sha256: head.ids.sha256.clone(),
            tree_sha1: head.ids.sha1.clone(),
            _tmp: tmp,
        }
    }
}

/// A control loop over doubles, ready for passes.
pub struct Fixture {
    pub chain: Arc<FakeChain>,
    pub control: Arc<Control>,
    pub journal: JournalReader,
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    pub runner: Arc<FakeRunner>,
    store_parent: PathBuf,
    pub tree_sha256: String,
    pub tree_sha1: String,
    _tmp: tempfile::TempDir,
}

fn b256(hex_str: &str) -> B256 {
    B256::from_slice(&hex::decode(hex_str).unwrap())
}

impl Fixture {
    /// The approval of the branch head, expiring at `expires_at` (0: never).
    pub fn approval(&self, expires_at: u64) -> Approval {
        let head = self.chain.head_ref();
        Approval {
            tree_sha256: b256(&self.tree_sha256),
            tree_sha1: FixedBytes::<20>::from_slice(&hex::decode(&self.tree_sha1).unwrap()),
            recipients: vec![RECIPIENT.to_string()],
            expires_at,
            uri: "https://example.invalid/pr/1".into(),
            revoked: false,
            revoke_reason: String::new(),
            approved_block: head.number + 1,
            approved_block_hash: hash_of(head.number + 1, 0),
            approved_tx: B256::repeat_byte(0xaa),
            approved_at: head.timestamp + 12,
        }
    }

    /// Mine a block approving the head tree.
    pub fn approve(&self, expires_at: u64) -> BlockRef {
        let a = self.approval(expires_at);
        self.chain.mine(|s| {
            s.approvals.insert(a.tree_sha256, a);
        })
    }

    /// Mine a block revoking the head tree's approval.
    pub fn revoke(&self, reason: &str) -> BlockRef {
        let id = b256(&self.tree_sha256);
        self.chain.mine(|s| {
            if let Some(a) = s.approvals.get_mut(&id) {
                a.revoked = true;
                a.revoke_reason = reason.to_string();
            }
        })
    }

    /// Mine a block registering a contribution; returns its sha256 (hex).
    pub fn contribute(&self, byte: u8) -> String {
        let sha = B256::repeat_byte(byte);
        self.chain.mine(|s| {
            s.contributions.push(Contribution {
                sha256: sha,
                uri: format!("file:///store/{byte}"),
                size: 10,
                node_id: B256::from(NODE_ID),
                contributor: collective_chain::Address::repeat_byte(byte),
                withdrawn: false,
                contributed_block: 0,
            })
        });
        hex::encode(sha.as_slice())
    }

    /// One pass at the chain's head.
    pub async fn pass(&self) -> Result<(), ControllerError> {
        self.control.pass(self.chain.head_ref()).await
    }

    /// Entries in the log.
    pub fn log_size(&self) -> u64 {
        self.journal.head().0
    }

    /// The recent entries, oldest first.
    pub fn entries(&self) -> Vec<RecentEntry> {
        let mut v = self.journal.latest(10_000);
        v.reverse();
        v
    }

    /// Decisions of the entries after index `from`, oldest first.
    pub fn decisions_since(&self, from: u64) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|e| e.index >= from)
            .map(|e| e.decision)
            .collect()
    }

    /// Wait until no job runs (each end notifies the loop's wake).
    pub async fn jobs_idle(&self) {
        for _ in 0..1000 {
            if self.control.jobs.observed().is_empty() {
                return;
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(5), self.control.wake.notified()).await;
        }
        panic!("jobs did not end");
    }

    /// Wait until a job runs.
    pub async fn job_running(&self) {
        for _ in 0..1000 {
            if !self.control.jobs.observed().is_empty() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("no job started");
    }

    /// Run the loop itself (in the test's, usually paused, time) until the
    /// returned token is cancelled.
    pub fn spawn_loop(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let (control, s2) = (self.control.clone(), stop.clone());
        (stop, tokio::spawn(async move { control.run(s2).await }))
    }

    /// Give the tree store its directory back.
    pub fn repair_tree_store(&self) {
        std::fs::remove_file(&self.store_parent).unwrap();
        std::fs::create_dir_all(&self.store_parent).unwrap();
    }
}
