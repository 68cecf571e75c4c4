//! Git tree ids of code, in both of git's object formats.
//!
//! A deployable unit is a git **tree** (see DESIGN.md, "Identity of code").
//! Approvals name it by two ids: the sha1 tree id found in the commit, and
//! the id the very same tree has in git's sha256 object format. The node
//! takes the sha1 id from the commit, materializes the tree, and recomputes
//! the sha256 id **from the files on disk** before anything runs. This crate
//! computes all of those:
//!
//! - [`tree_ids_of_dir`] / [`sha256_tree_of_dir`]: files on disk, as
//!   `git add -A && git write-tree` would record them;
//! - [`tree_ids_of_rev`] / [`tree_ids_of_tree`]: a commit or tree in a
//!   repository (sha1 from the object database, sha256 recomputed by
//!   rehashing every blob and rebuilding every tree object);
//!   [`TreeIdCache`] makes that incremental across commits;
//! - [`materialize`]: writes a tree's files (modes, symlinks) for deployment,
//!   refusing symlinks that would lead outside the tree; [`make_read_only`]
//!   then protects the deployed copy.
//!
//! Hashing uses the RustCrypto `sha1` and `sha2` crates; the only thing
//! written here is git's object framing (`<type> <len>\0<body>`) and tree
//! entry encoding.

#![warn(missing_docs)]

mod dir;
mod error;
mod materialize;
mod object;
mod repo;

pub use dir::{sha256_tree_of_dir, tree_ids_of_dir};
pub use error::TreeError;
pub use materialize::{make_read_only, materialize};
pub use repo::{open_repo, tree_ids_of_rev, tree_ids_of_tree, TreeIdCache};

/// Re-exported so callers name the same `git2` version as this crate's API.
pub use git2;

/// The two ids of one tree: hex, lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TreeIds {
    /// 40 hex digits: the tree id in git's default (sha1) object format.
    pub sha1: String,
    /// 64 hex digits: the tree id in git's sha256 object format.
    pub sha256: String,
}

impl TreeIds {
    pub(crate) fn from_digests(sha1: &[u8; 20], sha256: &[u8; 32]) -> Self {
        TreeIds {
            sha1: hex::encode(sha1),
            sha256: hex::encode(sha256),
        }
    }
}

impl std::fmt::Display for TreeIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha1   {}\nsha256 {}", self.sha1, self.sha256)
    }
}

/// The sha1 id of the empty tree (what `git write-tree` prints for an empty index).
pub const EMPTY_TREE_SHA1: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
/// The sha256 id of the empty tree.
pub const EMPTY_TREE_SHA256: &str =
    "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321";
