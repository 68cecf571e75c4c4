//! The code repository: a local path watched with `notify`, or a remote
//! URL fetched into a bare mirror on an interval and on demand.
//!
//! Watch events and fetches are hints only: every reconcile re-reads the
//! deploy branch head from the object database.

use std::path::{Path, PathBuf};

use collective_tree::git2::{self, Oid, Repository};
use collective_tree::TreeIds;
use tracing::{debug, instrument, warn};

use crate::reconcile::TreeRef;
use crate::ControllerError;

/// The deploy branch head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The branch's head commit.
    pub commit: Oid,
    /// Its tree (sha1 id in the object database).
    pub tree: Oid,
    /// Both ids of the tree; sha256 recomputed from the objects.
    pub ids: TreeIds,
}

impl Head {
    /// The head as the reconciler sees it.
    pub fn tree_ref(&self) -> TreeRef {
        TreeRef {
            sha1: self.ids.sha1.clone(),
            sha256: self.ids.sha256.clone(),
            commit: Some(self.commit.to_string()),
        }
    }
}

/// Where the code comes from.
#[derive(Debug, Clone)]
pub enum RepoSource {
    /// A repository on this machine, read in place.
    Local {
        /// The repository (work tree or bare).
        path: PathBuf,
        /// The deploy branch.
        branch: String,
    },
    /// A remote repository, fetched into a bare mirror the node owns.
    Remote {
        /// The URL fetched from.
        url: String,
        /// The local bare mirror (`work_dir/repo.git`).
        mirror: PathBuf,
        /// The deploy branch.
        branch: String,
    },
}

fn git_err(what: impl Into<String>) -> impl FnOnce(git2::Error) -> ControllerError {
    let what = what.into();
    move |source| ControllerError::Git { what, source }
}

impl RepoSource {
    /// Read `branch` of the repository at `path`.
    pub fn local(path: &Path, branch: &str) -> Self {
        RepoSource::Local {
            path: path.to_path_buf(),
            branch: branch.to_string(),
        }
    }

    /// Fetch `branch` of `url` into a mirror under `work_dir`.
    pub fn remote(url: &str, work_dir: &Path, branch: &str) -> Self {
        RepoSource::Remote {
            url: url.to_string(),
            mirror: work_dir.join("repo.git"),
            branch: branch.to_string(),
        }
    }

    /// Whether the source needs fetching (rather than watching).
    pub fn is_remote(&self) -> bool {
        matches!(self, RepoSource::Remote { .. })
    }

    /// The ref holding the deploy branch head in the repository we read.
    fn head_ref(&self) -> String {
        match self {
            RepoSource::Local { branch, .. } => format!("refs/heads/{branch}"),
            RepoSource::Remote { branch, .. } => format!("refs/remotes/origin/{branch}"),
        }
    }

    /// Open the repository (a fresh handle: `Repository` is not `Sync`).
    pub fn open(&self) -> Result<Repository, ControllerError> {
        match self {
            RepoSource::Local { path, .. } => Repository::open(path)
                .map_err(git_err(format!("opening repository {}", path.display()))),
            RepoSource::Remote { mirror, .. } => {
                if mirror.exists() {
                    Repository::open_bare(mirror)
                        .map_err(git_err(format!("opening mirror {}", mirror.display())))
                } else {
                    std::fs::create_dir_all(mirror).map_err(|source| ControllerError::Io {
                        path: mirror.clone(),
                        source,
                    })?;
                    Repository::init_bare(mirror)
                        .map_err(git_err(format!("creating mirror {}", mirror.display())))
                }
            }
        }
    }

    /// Fetch the deploy branch from a remote; a no-op for a local source.
    #[instrument(skip(self))]
    pub fn refresh(&self) -> Result<(), ControllerError> {
        let RepoSource::Remote { url, branch, .. } = self else {
            return Ok(());
        };
        let repo = self.open()?;
        let mut remote = repo
            .remote_anonymous(url)
            .map_err(git_err(format!("remote {url}")))?;
        let spec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        remote
            .fetch(&[spec.as_str()], None, None)
            .map_err(git_err(format!("fetching {url}")))?;
        debug!(%url, "fetched");
        Ok(())
    }

    /// The deploy branch head, or `None` if the branch does not exist yet.
    pub fn head(&self) -> Result<Option<Head>, ControllerError> {
        self.head_cached(&mut collective_tree::TreeIdCache::default())
    }

    /// [`head`](Self::head), hashing only what `cache` has not seen: the
    /// node keeps one cache for its repository, so an unchanged head costs
    /// no hashing and a new commit only its changed objects.
    pub fn head_cached(
        &self,
        cache: &mut collective_tree::TreeIdCache,
    ) -> Result<Option<Head>, ControllerError> {
        let repo = self.open()?;
        let name = self.head_ref();
        let reference = match repo.find_reference(&name) {
            Ok(r) => r,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(git_err(format!("reading {name}"))(e)),
        };
        let commit = reference
            .peel_to_commit()
            .map_err(git_err(format!("{name} is not a commit")))?;
        let ids = cache
            .tree_ids_of_tree(&repo, commit.tree_id())
            .map_err(|source| ControllerError::Tree {
                what: format!("tree ids of commit {}", commit.id()),
                source,
            })?;
        Ok(Some(Head {
            commit: commit.id(),
            tree: commit.tree_id(),
            ids,
        }))
    }

    /// Read `jobs/*/job.yaml` of a tree from the object database (before
    /// deployment, for the pre-deploy policy check).
    pub fn manifests_in_tree(&self, tree: Oid) -> Result<Vec<(String, String)>, ControllerError> {
        let repo = self.open()?;
        let tree = repo.find_tree(tree).map_err(git_err("reading tree"))?;
        let mut out = Vec::new();
        let Ok(jobs) = tree.get_path(Path::new("jobs")) else {
            return Ok(out);
        };
        let jobs = repo
            .find_tree(jobs.id())
            .map_err(git_err("jobs/ is not a directory"))?;
        for entry in jobs.iter() {
            let Ok(name) = entry.name() else { continue };
            if entry.kind() != Some(git2::ObjectType::Tree) {
                continue;
            }
            let sub = repo
                .find_tree(entry.id())
                .map_err(git_err("reading job dir"))?;
            let text = match sub.get_name("job.yaml") {
                Some(e) => {
                    let blob = repo
                        .find_blob(e.id())
                        .map_err(git_err("reading job.yaml"))?;
                    String::from_utf8_lossy(blob.content()).into_owned()
                }
                None => String::new(),
            };
            out.push((name.to_string(), text));
        }
        Ok(out)
    }

    /// Materialize a tree into `dest` (which must not exist).
    pub fn materialize(&self, tree: Oid, dest: &Path) -> Result<(), ControllerError> {
        let repo = self.open()?;
        collective_tree::materialize(&repo, tree, dest).map_err(|source| ControllerError::Tree {
            what: format!("materializing tree {tree} into {}", dest.display()),
            source,
        })
    }

    /// Watch a local repository's refs; each change sends a wake hint.
    pub fn watch(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<notify::RecommendedWatcher> {
        use notify::{RecursiveMode, Watcher};
        let RepoSource::Local { path, .. } = self else {
            return None;
        };
        let gitdir = match Repository::open(path) {
            Ok(r) => r.path().to_path_buf(),
            Err(_) => return None,
        };
        let mut watcher =
            match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                // Only changes are hints. Access events (our own reads of
                // HEAD, config and refs open those files) would wake the
                // loop on every reconcile and spin it.
                if res.is_ok_and(|e| is_change(&e.kind)) {
                    wake.notify_one();
                }
            }) {
                Ok(w) => w,
                Err(e) => {
                    warn!(error = %e, "repository watcher unavailable; relying on the timer");
                    return None;
                }
            };
        for p in [gitdir.join("refs"), gitdir.clone()] {
            let mode = if p == gitdir {
                RecursiveMode::NonRecursive
            } else {
                RecursiveMode::Recursive
            };
            if let Err(e) = watcher.watch(&p, mode) {
                warn!(path = %p.display(), error = %e, "cannot watch");
            }
        }
        Some(watcher)
    }
}

/// Whether a filesystem event may mean the branch moved: anything but a
/// read (open, access, close without writing).
fn is_change(kind: &notify::EventKind) -> bool {
    !matches!(
        kind,
        notify::EventKind::Access(
            notify::event::AccessKind::Open(_)
                | notify::event::AccessKind::Read
                | notify::event::AccessKind::Any
                | notify::event::AccessKind::Other
                | notify::event::AccessKind::Close(notify::event::AccessMode::Read)
                | notify::event::AccessKind::Close(notify::event::AccessMode::Execute)
                | notify::event::AccessKind::Close(notify::event::AccessMode::Any)
                | notify::event::AccessKind::Close(notify::event::AccessMode::Other)
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_not_changes() {
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
        use notify::EventKind;
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Read)));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
    }
}
