//! The journal: the only writer of the log and of the in-memory [`State`].
//!
//! Argument. Every decision goes through [`Journal::record`], which appends
//! (durably, fsync'd) and only then applies the entry to the state, with
//! the same [`State::apply`] that replay uses, so the state is always
//! `replay(log)` and never shows an effect the log does not hold. An entry
//! that fails to append changes nothing; the failure is returned with its
//! cause, and the next append first reopens the log from disk (after a
//! failed checkpoint write the in-memory log refuses to go on, since the
//! disk may hold either checkpoint): a disk that was full and has space
//! again is written to again without a restart.
//!
//! Readers (HTTP, witnesses, GitHub) get a [`JournalReader`], which can
//! read entries' summaries and checkpoints and cannot append.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use collective_attest::SigningKey;
use collective_attest::{Log, Predicate, Subject};
use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};

use crate::config::InterruptedPolicy;
use crate::reconcile::TreeRef;
use crate::state::{RecentEntry, State};
use crate::status::Metrics;
use crate::ControllerError;

/// Where the log lives and how to reopen it.
struct Opener {
    dir: PathBuf,
    origin: String,
    key: SigningKey,
}

impl Opener {
    fn open(&self) -> Result<Log, ControllerError> {
        Log::create_or_open(&self.dir, &self.origin, self.key.clone()).map_err(|source| {
            ControllerError::Log {
                what: "opening the log",
                source,
            }
        })
    }
}

struct Writer {
    log: Log,
    /// The last append failed: reopen from disk before the next.
    reopen: bool,
}

/// The log and the state replayed from it.
pub struct Journal {
    opener: Opener,
    writer: Mutex<Writer>,
    state: RwLock<State>,
    policy_digest: String,
    on_interrupted: InterruptedPolicy,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.opener.dir)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Open (or create) the log and replay it into a fresh state.
    pub fn open(
        dir: &Path,
        origin: &str,
        key: SigningKey,
        policy_digest: String,
        on_interrupted: InterruptedPolicy,
        metrics: Arc<Metrics>,
    ) -> Result<Journal, ControllerError> {
        let opener = Opener {
            dir: dir.to_path_buf(),
            origin: origin.to_string(),
            key,
        };
        let log = opener.open()?;
        let mut state = State::default();
        for e in log.entries() {
            let (i, s, p) = e.map_err(|source| ControllerError::Log {
                what: "replaying the log",
                source,
            })?;
            state.apply(i, &s, &p, on_interrupted);
            metrics.decision(p.decision.as_str());
        }
        metrics.log_size.set(log.size() as i64);
        info!(size = log.size(), deployed = ?state.deployed.as_ref().map(|d| &d.sha256), unresolved = state.started.len(), "log replayed");
        Ok(Journal {
            opener,
            writer: Mutex::new(Writer { log, reopen: false }),
            state: RwLock::new(state),
            policy_digest,
            on_interrupted,
            metrics,
        })
    }

    /// Append one decision about `tree` and apply it; returns its index.
    pub fn record(&self, tree: &TreeRef, p: Predicate) -> Result<u64, ControllerError> {
        Ok(self.record_all(&[(tree.clone(), p)])?[0])
    }

    /// Append decisions of one pass as one commit (one fsync'd checkpoint)
    /// and apply them in order.
    pub fn record_all(&self, items: &[(TreeRef, Predicate)]) -> Result<Vec<u64>, ControllerError> {
        let entries: Vec<(Subject, Predicate)> = items
            .iter()
            .map(|(tree, p)| {
                let mut p = p.clone();
                p.policy_digest
                    .get_or_insert_with(|| self.policy_digest.clone());
                (
                    Subject {
                        tree_sha1: tree.sha1.clone(),
                        tree_sha256: tree.sha256.clone(),
                        commit: tree.commit.clone(),
                    },
                    p,
                )
            })
            .collect();
        let mut w = self.writer.lock();
        if w.reopen {
            w.log = self.opener.open()?;
            w.reopen = false;
            info!("log reopened after a failed append");
        }
        let idx = match w.log.append(&entries) {
            Ok(i) => i,
            Err(source) => {
                w.reopen = true;
                warn!(error = %source, "log append failed");
                return Err(ControllerError::Log {
                    what: "appending a decision",
                    source,
                });
            }
        };
        let size = w.log.size();
        // The state is updated under the writer lock, so two appends apply
        // in log order.
        let mut st = self.state.write();
        for (i, (subject, p)) in idx.iter().zip(&entries) {
            let mut p = p.clone();
            p.log_index = *i;
            info!(index = i, decision = %p.decision, job = ?p.job, reason = %p.reason, tree = %subject.tree_sha256, "logged");
            st.apply(*i, subject, &p, self.on_interrupted);
            self.metrics.decision(p.decision.as_str());
        }
        self.metrics.log_size.set(size as i64);
        Ok(idx)
    }

    /// Read the state.
    pub fn state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.read())
    }

    /// Size and root of the log.
    pub fn head(&self) -> (u64, [u8; 32]) {
        let w = self.writer.lock();
        (w.log.size(), w.log.root())
    }

    /// The current signed checkpoint.
    pub fn checkpoint_text(&self) -> Option<String> {
        self.writer.lock().log.checkpoint_text().ok()
    }

    /// How a restarted node resolves interrupted jobs.
    pub fn on_interrupted(&self) -> InterruptedPolicy {
        self.on_interrupted
    }
}

/// Read-only access to the journal.
#[derive(Debug, Clone)]
pub struct JournalReader(Arc<Journal>);

impl JournalReader {
    /// A reader over `j`.
    pub fn new(j: Arc<Journal>) -> JournalReader {
        JournalReader(j)
    }

    /// The log directory (served at `/log/`).
    pub fn log_dir(&self) -> &Path {
        &self.0.opener.dir
    }

    /// The current signed checkpoint.
    pub fn checkpoint_text(&self) -> Option<String> {
        self.0.checkpoint_text()
    }

    /// Size and root of the log.
    pub fn head(&self) -> (u64, [u8; 32]) {
        self.0.head()
    }

    /// The `n` latest entries, newest first.
    pub fn latest(&self, n: usize) -> Vec<RecentEntry> {
        self.0.state(|s| s.latest(n))
    }

    /// Read the state.
    pub fn state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.0.state(f)
    }
}
