//! Deploying a tree: materialize it, verify it from disk, decide again.
//!
//! Security argument. Only [`deploy`] produces a `deployed` entry, and only
//! when the gate allows the tree as it is *on disk*: the sha256 id
//! recomputed from the materialized files (not from the object database
//! the branch head was read from) and the manifests as materialized. The
//! tree is made read-only and renamed into place only after it verified,
//! so a half-written or tampered copy is never at the deployed path. The
//! directory is content-addressed: an existing copy that no longer hashes
//! to its name is removed and rebuilt.
//!
//! A deploy that fails (full disk, an object missing) is not a refusal of
//! the tree: the caller logs it once per cause and backs off; a tree that
//! verifies differently from its approval is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use collective_attest::{Decision, Predicate};
use parking_lot::Mutex;
use tracing::{instrument, warn};

use crate::gate::{self, Manifests};
use crate::reconcile::{TreeRef, Verdict};
use crate::world::{approval_facts, World};
use crate::ControllerError;

/// Deployed trees on disk (`work_dir/trees/<sha256>`), with their parsed
/// manifests cached by id (the directories are content-addressed and
/// read-only).
#[derive(Debug)]
pub struct TreeStore {
    dir: PathBuf,
    manifests: Mutex<BTreeMap<String, Manifests>>,
}

impl TreeStore {
    /// The store under `dir`.
    pub fn new(dir: PathBuf) -> TreeStore {
        TreeStore {
            dir,
            manifests: Mutex::new(BTreeMap::new()),
        }
    }

    /// Where tree `sha256` is (or would be) deployed.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// The manifests of a deployed tree, from disk; `None` if it is not
    /// there.
    pub fn manifests(&self, sha256: &str) -> Option<Manifests> {
        if let Some(m) = self.manifests.lock().get(sha256) {
            return Some(m.clone());
        }
        let dir = self.path(sha256);
        if !dir.is_dir() {
            return None;
        }
        let m = gate::parse_manifests(&manifests_on_disk(&dir).ok()?);
        self.manifests.lock().insert(sha256.to_string(), m.clone());
        Some(m)
    }

    /// Drop a cached reading (the tree was rebuilt or found tampered).
    pub fn forget(&self, sha256: &str) {
        self.manifests.lock().remove(sha256);
    }

    /// Remove what a crash mid-deploy left (`.tmp-*` directories).
    pub fn clean_partial(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                warn!(path = %e.path().display(), "removing a tree a crash left half-written");
                let _ = make_writable(&e.path());
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Read `jobs/*/job.yaml` of a deployed tree from disk.
pub fn manifests_on_disk(dir: &Path) -> Result<Vec<(String, String)>, ControllerError> {
    let jobs = dir.join("jobs");
    let io = |path: PathBuf| move |source| ControllerError::Io { path, source };
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&jobs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(ControllerError::Io { path: jobs, source }),
    };
    for e in rd {
        let e = e.map_err(io(jobs.clone()))?;
        if !e.file_type().map_err(io(e.path()))?.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().to_string();
        let text = std::fs::read_to_string(e.path().join("job.yaml")).unwrap_or_default();
        out.push((name, text));
    }
    out.sort();
    Ok(out)
}

/// Undo `make_read_only` so a stale or failed tree can be removed.
pub fn make_writable(dir: &Path) -> std::io::Result<()> {
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

/// What a deploy attempt came to.
#[derive(Debug)]
pub enum Outcome {
    /// Verified on disk: log this `deployed` entry.
    Deployed(Predicate),
    /// Verified to be something the approval does not allow: log this
    /// `refused` entry (its code is the dedup key).
    Refused(Predicate),
    /// Could not be done now; back off and try again.
    Failed(ControllerError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ControllerError + '_ {
    move |source| ControllerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Build `dest` from the head tree: remove a stale copy, materialize into a
/// temporary sibling, hash from disk, compare, make read-only, rename.
/// Returns the sha256 id recomputed from disk.
fn materialize(
    repo: &crate::repo::RepoSource,
    tree: collective_tree::git2::Oid,
    want: &str,
    dest: &Path,
) -> Result<String, ControllerError> {
    let hash = |d: &Path| {
        collective_tree::sha256_tree_of_dir(d).map_err(|source| ControllerError::Tree {
            what: format!("hashing {}", d.display()),
            source,
        })
    };
    if dest.is_dir() {
        match hash(dest) {
            Ok(s) if s == want => return Ok(s),
            _ => {
                let _ = make_writable(dest);
                std::fs::remove_dir_all(dest).map_err(io(dest))?;
            }
        }
    }
    let parent = dest.parent().unwrap_or(dest);
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(".tmp-{want}-{}", std::process::id()));
    if tmp.exists() {
        let _ = make_writable(&tmp);
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let r = (|| {
        repo.materialize(tree, &tmp)?;
        let got = hash(&tmp)?;
        if got == want {
            collective_tree::make_read_only(&tmp).map_err(|source| ControllerError::Tree {
                what: format!("making {} read-only", tmp.display()),
                source,
            })?;
            std::fs::rename(&tmp, dest).map_err(io(dest))?;
        }
        Ok(got)
    })();
    if !matches!(&r, Ok(got) if got == want) {
        let _ = make_writable(&tmp);
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}

/// Deploy the world's head tree `tree`.
#[instrument(skip_all, fields(tree = %tree.sha256))]
pub async fn deploy(
    repo: &crate::repo::RepoSource,
    trees: &TreeStore,
    tree: &TreeRef,
    world: &World,
    policy: &collective_policy::NodePolicy,
    confirmations: u64,
    approval_ref: collective_attest::ApprovalRef,
) -> Outcome {
    let Some(head) = world
        .head_tree
        .as_ref()
        .filter(|h| h.ids.sha256 == tree.sha256)
    else {
        return Outcome::Failed(ControllerError::Raced {
            what: "the branch head",
        });
    };
    let Some(approval) = world.approvals.get(&tree.sha256) else {
        return Outcome::Failed(ControllerError::Raced {
            what: "the approval",
        });
    };
    let dest = trees.path(&tree.sha256);
    let (repo2, oid, want, dest2) = (repo.clone(), head.tree, tree.sha256.clone(), dest.clone());
    let disk =
        match tokio::task::spawn_blocking(move || materialize(&repo2, oid, &want, &dest2)).await {
            Ok(Ok(d)) => d,
            // The approved tree itself cannot be deployed safely (a
            // symlink out of it, an unsafe name): a refusal, not a retry.
            Ok(Err(ControllerError::Tree { what, source })) if source.content_code().is_some() => {
                let code = source.content_code().unwrap_or_default();
                let e = ControllerError::Tree { what, source };
                let mut p = Predicate::new(
                    Decision::Refused,
                    format!("deployment refused: {}", crate::error::causes(&e)),
                );
                p.reason_code = Some(format!("deploy-tree-{code}"));
                p.approval = Some(approval_ref);
                return Outcome::Refused(p);
            }
            Ok(Err(e)) => return Outcome::Failed(e),
            Err(e) => {
                return Outcome::Failed(ControllerError::Panicked {
                    task: "materializing a tree".into(),
                    message: e.to_string(),
                })
            }
        };
    trees.forget(&tree.sha256);
    // Decide again on what is on disk. Only this decision deploys.
    let manifests = if disk == tree.sha256 {
        match manifests_on_disk(&dest) {
            Ok(pairs) => gate::parse_manifests(&pairs),
            Err(e) => return Outcome::Failed(e),
        }
    } else {
        Vec::new()
    };
    let facts = approval_facts(approval);
    let v = gate::verdict(&gate::GateInput {
        tree,
        sha256_recomputed: Some(&disk),
        approval: Some(&facts),
        paused: world.paused,
        now: world.head.timestamp,
        manifests: &manifests,
        policy,
        confirmations,
    });
    let mut p = match &v {
        Verdict::Allowed => Predicate::new(
            Decision::Deployed,
            "approved on chain; tree verified from disk",
        ),
        other => {
            warn!(reason = %other.reason(), "deployment refused");
            let mut p = Predicate::new(
                Decision::Refused,
                format!("deployment refused: {}", other.reason()),
            );
            p.reason_code = Some(format!("deploy-{}", other.code()));
            p
        }
    };
    p.approval = Some(approval_ref);
    if v.allowed() {
        Outcome::Deployed(p)
    } else {
        Outcome::Refused(p)
    }
}
