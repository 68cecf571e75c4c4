use std::path::PathBuf;

/// Messages do not repeat their `source`; print the chain (`{:#}` with
/// anyhow) to see it.
///
/// Everything that can stop a tree id from being computed or a tree from
/// being materialized. Each refusal names the path (inside the tree or on
/// disk) and, where there is one, the object id, so an operator can find it.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Reading or writing a file on disk failed.
    #[error("{path}: I/O error")]
    Io {
        /// The file or directory being read or written.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },

    /// The path given as the root of a tree is not a directory.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path that was given as the root.
        path: PathBuf,
    },

    /// A directory below the root holds `.git` (a nested repository or a
    /// submodule checkout). `git add -A` would record it as a gitlink, which
    /// names code this tree does not contain, so it is refused.
    #[error("{path}: contains a nested git repository or submodule (.git); submodules are not supported, vendor the files instead")]
    NestedRepository {
        /// The directory that holds the `.git`.
        path: PathBuf,
    },

    /// A name git refuses to record because a filesystem could take it for
    /// `.git` (`.GIT`, `.git.`, `git~1`, ...).
    #[error("{path}: git refuses this name (it could be taken for .git)")]
    ReservedName {
        /// The offending file or directory.
        path: PathBuf,
    },

    /// A file that git cannot record (FIFO, socket, device).
    #[error("{path}: not a regular file, symlink or directory; git cannot track it")]
    UnsupportedFileType {
        /// The special file.
        path: PathBuf,
    },

    /// No git repository at (or above) the given path.
    #[error("{path}: not a git repository")]
    NotARepository {
        /// The path that was searched from.
        path: PathBuf,
        /// libgit2's reason.
        #[source]
        source: git2::Error,
    },

    /// A revision string did not resolve in the repository.
    #[error("cannot resolve revision {rev:?}")]
    BadRevision {
        /// The revision as given.
        rev: String,
        /// libgit2's reason.
        #[source]
        source: git2::Error,
    },

    /// A revision resolved to something that is not a commit.
    #[error("revision {rev:?} is a {kind}, not a commit")]
    NotACommit {
        /// The revision as given.
        rev: String,
        /// The kind of object it names (`tree`, `blob`, `tag`).
        kind: String,
    },

    /// A tree holds a gitlink (mode 160000, a submodule): its content lives
    /// in another repository, so this tree alone does not identify the code.
    #[error("{path}: is a submodule (gitlink to commit {commit}); submodules are not supported, vendor the files instead")]
    Gitlink {
        /// Path of the gitlink inside the tree.
        path: PathBuf,
        /// The submodule commit it points to.
        commit: git2::Oid,
    },

    /// A tree object in the repository is not what `git write-tree` would
    /// produce for its own files (unsorted entries, unusual file modes,
    /// duplicate names). Its sha256 counterpart would not match the files
    /// on disk, so it is refused rather than guessed at.
    #[error("{path}: tree object {oid} is not in git's canonical form ({reason})")]
    NonCanonicalTree {
        /// Path of the tree inside the commit's tree.
        path: PathBuf,
        /// The non-canonical tree object.
        oid: git2::Oid,
        /// Which entry is wrong, and how.
        reason: String,
    },

    /// A tree object holds an empty subtree. Git does not track empty
    /// directories, so the files on disk could never reproduce its id.
    #[error("{path}: empty subtree {oid}; git cannot reproduce it from files on disk")]
    EmptySubtree {
        /// Path of the empty subtree inside the tree.
        path: PathBuf,
        /// The empty tree object.
        oid: git2::Oid,
    },

    /// A tree entry whose name is unsafe to write to disk (`.`, `..`, a
    /// slash, a NUL, or `.git`).
    #[error("{path}: unsafe entry name {name:?} in tree {tree}")]
    UnsafeName {
        /// Path of the containing directory inside the tree.
        path: PathBuf,
        /// The entry name as stored (lossily decoded).
        name: String,
        /// The tree object holding the entry.
        tree: git2::Oid,
    },

    /// A symlink in the tree whose target is absolute or resolves (through
    /// `..` or other symlinks of the tree) to a place outside the tree.
    #[error("{path}: symlink target {target:?} leads outside the tree")]
    SymlinkEscapes {
        /// Path of the symlink inside the tree.
        path: PathBuf,
        /// Its target as stored.
        target: String,
    },

    /// Symlinks of the tree form a loop (or a chain too long to follow).
    #[error("{path}: symlink target {target:?} loops or nests too deeply")]
    SymlinkLoop {
        /// Path of the symlink inside the tree.
        path: PathBuf,
        /// Its target as stored.
        target: String,
    },

    /// `materialize` was pointed at a destination that already has files.
    #[error("{path}: destination exists and is not an empty directory")]
    DestinationNotEmpty {
        /// The destination directory.
        path: PathBuf,
    },

    /// Any other libgit2 failure: `what` says which operation.
    #[error("{what}")]
    Git {
        /// The operation that failed.
        what: String,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },

    /// An object that should be a tree/blob is something else, or missing.
    #[error("{path}: object {oid} is not a {expected}")]
    UnexpectedObject {
        /// Path of the entry inside the tree.
        path: PathBuf,
        /// The object id the entry names.
        oid: git2::Oid,
        /// The kind the entry's mode calls for (`tree` or `blob`).
        expected: &'static str,
    },
}

impl TreeError {
    /// A stable code when the tree's *content* is at fault: the same tree
    /// fails the same way every time, so a caller refuses it instead of
    /// retrying. `None` when the machine is at fault (I/O, libgit2, a bad
    /// destination), which trying again may cure.
    pub fn content_code(&self) -> Option<&'static str> {
        Some(match self {
            TreeError::NestedRepository { .. } => "nested-repository",
            TreeError::ReservedName { .. } => "reserved-name",
            TreeError::UnsupportedFileType { .. } => "unsupported-file-type",
            TreeError::Gitlink { .. } => "submodule",
            TreeError::NonCanonicalTree { .. } => "non-canonical-tree",
            TreeError::EmptySubtree { .. } => "empty-subtree",
            TreeError::UnsafeName { .. } => "unsafe-name",
            TreeError::SymlinkEscapes { .. } => "symlink-escapes",
            TreeError::SymlinkLoop { .. } => "symlink-loop",
            TreeError::UnexpectedObject { .. } => "unexpected-object",
            TreeError::Io { .. }
            | TreeError::NotADirectory { .. }
            | TreeError::NotARepository { .. }
            | TreeError::BadRevision { .. }
            | TreeError::NotACommit { .. }
            | TreeError::DestinationNotEmpty { .. }
            | TreeError::Git { .. } => return None,
        })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TreeError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn git(what: impl Into<String>, source: git2::Error) -> Self {
        TreeError::Git {
            what: what.into(),
            source,
        }
    }
}
