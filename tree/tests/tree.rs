//! collective-tree against the real `git` CLI, in both object formats.
//!
//! Every expected id here comes from `git add -A && git write-tree` (or the
//! object database of a repository git itself wrote), never from this crate.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use collective_tree::{
    materialize, sha256_tree_of_dir, tree_ids_of_dir, tree_ids_of_rev, tree_ids_of_tree, TreeError,
    TreeIds,
};
use proptest::prelude::*;

/// Runs git with no user or system config, so the host's settings cannot
/// change what is recorded. Panics with git's stderr on failure.
fn git(args: &[&str], cwd: &Path) -> String {
    git_stdin(args, cwd, None)
}

fn git_stdin(args: &[&str], cwd: &Path, stdin: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(cwd)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("the git CLI must be installed for these tests");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What git says the tree ids of `content` are: `git add -A && git
/// write-tree` in a sha1 and a sha256 repository whose git dirs live
/// outside `content`, so `content` itself is not changed.
fn git_tree_ids(content: &Path) -> TreeIds {
    let scratch = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for format in ["sha1", "sha256"] {
        let gd = scratch.path().join(format);
        let gd = gd.to_str().unwrap();
        let wt = content.to_str().unwrap();
        git(
            &[
                "--git-dir",
                gd,
                "--work-tree",
                wt,
                "init",
                "-q",
                &format!("--object-format={format}"),
            ],
            content,
        );
        git(&["--git-dir", gd, "--work-tree", wt, "add", "-A"], content);
        ids.push(git(
            &["--git-dir", gd, "--work-tree", wt, "write-tree"],
            content,
        ));
    }
    TreeIds {
        sha1: ids[0].clone(),
        sha256: ids[1].clone(),
    }
}

fn write(path: &Path, content: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn assert_matches_git(dir: &Path) -> TreeIds {
    let expected = git_tree_ids(dir);
    let ours = tree_ids_of_dir(dir).unwrap();
    assert_eq!(ours, expected, "tree ids of {}", dir.display());
    assert_eq!(sha256_tree_of_dir(dir).unwrap(), expected.sha256);
    ours
}

/// A directory with every case git treats specially.
fn every_case(root: &Path) {
    write(&root.join("README.md"), b"hello\n", 0o644);
    write(&root.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("user-exec-only"), b"x", 0o744);
    write(&root.join("group-exec-only"), b"x", 0o654); // not executable to git
    write(&root.join("empty"), b"", 0o644);
    write(&root.join("empty-exec"), b"", 0o755);
    write(
        &root.join("src/lib/deep/nested/file.rs"),
        b"fn main() {}\n",
        0o644,
    );
    write(&root.join("src/lib/deep/nested/run"), b"#!/bin/sh\n", 0o700);
    write(
        &root.join("données/ünïcødé-名前.txt"),
        "ça va\n".as_bytes(),
        0o644,
    );
    write(&root.join("e\u{301}-decomposed"), b"nfd\n", 0o644);
    write(&root.join("\u{e9}-composed"), b"nfc\n", 0o644);
    write(&root.join("with space and\ttab"), b"s\n", 0o644);
    // Ordering traps: "a" as a directory sorts as "a/", between "a.b" and "a0".
    write(&root.join("a/inner"), b"1", 0o644);
    write(&root.join("a.b"), b"2", 0o644);
    write(&root.join("a0"), b"3", 0o644);
    write(&root.join("a-"), b"4", 0o644);
    write(
        &root.join("binary.bin"),
        &(0u8..=255).cycle().take(70_000).collect::<Vec<_>>(),
        0o644,
    );
    symlink("README.md", root.join("link-to-file")).unwrap();
    symlink("src/lib", root.join("link-to-dir")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink("/etc/passwd", root.join("absolute")).unwrap();
    symlink("../../README.md", root.join("src/lib/up")).unwrap();
    symlink("ünï", root.join("données/lien")).unwrap();
    // Not tracked by git: empty directories, and directories of empty directories.
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("only/empty/dirs")).unwrap();
    fs::create_dir_all(root.join("src/lib/also-empty")).unwrap();
}

#[test]
fn every_case_matches_git_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    every_case(dir.path());
    assert_matches_git(dir.path());
}

#[test]
fn single_cases_each_match_git() {
    type Case = fn(&Path);
    let cases: Vec<(&str, Case)> = vec![
        ("one file", |r| write(&r.join("f"), b"x\n", 0o644)),
        ("one executable", |r| write(&r.join("f"), b"x\n", 0o755)),
        ("one empty file", |r| write(&r.join("f"), b"", 0o644)),
        ("one symlink", |r| symlink("target", r.join("l")).unwrap()),
        ("nested", |r| write(&r.join("a/b/c/d/e/f"), b"x", 0o644)),
        ("unicode", |r| write(&r.join("日本/語.txt"), b"x", 0o644)),
        ("dir vs file order", |r| {
            write(&r.join("foo/x"), b"1", 0o644);
            write(&r.join("foo.txt"), b"2", 0o644);
            write(&r.join("foo-bar"), b"3", 0o644);
            write(&r.join("foo0"), b"4", 0o644);
        }),
        ("empty dirs only", |r| {
            fs::create_dir_all(r.join("x/y/z")).unwrap()
        }),
    ];
    for (name, make) in cases {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path());
        let expected = git_tree_ids(dir.path());
        assert_eq!(
            tree_ids_of_dir(dir.path()).unwrap(),
            expected,
            "case {name}"
        );
    }
}

#[test]
fn large_files_hashed_in_pieces_match_git() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(17u32 << 20) + 123)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    write(&dir.path().join("big.bin"), &big, 0o755);
    write(&dir.path().join("small"), b"s", 0o644);
    assert_matches_git(dir.path());
}

#[test]
fn empty_directory_is_the_empty_tree() {
    let dir = tempfile::tempdir().unwrap();
    let ids = assert_matches_git(dir.path());
    assert_eq!(ids.sha1, collective_tree::EMPTY_TREE_SHA1);
    assert_eq!(ids.sha256, collective_tree::EMPTY_TREE_SHA256);
}

#[test]
fn changing_content_or_mode_changes_both_ids() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("f"), b"one", 0o644);
    let before = tree_ids_of_dir(dir.path()).unwrap();
    fs::set_permissions(dir.path().join("f"), fs::Permissions::from_mode(0o755)).unwrap();
    let exec = tree_ids_of_dir(dir.path()).unwrap();
    assert_ne!(before.sha1, exec.sha1);
    assert_ne!(before.sha256, exec.sha256);
    fs::write(dir.path().join("f"), b"two").unwrap();
    let changed = tree_ids_of_dir(dir.path()).unwrap();
    assert_ne!(exec.sha256, changed.sha256);
}

#[test]
fn root_dot_git_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("f"), b"x", 0o644);
    let without = tree_ids_of_dir(dir.path()).unwrap();
    git(&["init", "-q"], dir.path());
    write(&dir.path().join(".git/extra"), b"junk", 0o644);
    assert_eq!(tree_ids_of_dir(dir.path()).unwrap(), without);
}

#[test]
fn nested_repository_is_refused() {
    for dotgit_is_file in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("f"), b"x", 0o644);
        let inner = dir.path().join("vendor/inner");
        if dotgit_is_file {
            write(&inner.join(".git"), b"gitdir: ../elsewhere\n", 0o644);
        } else {
            fs::create_dir_all(&inner).unwrap();
            git(&["init", "-q"], &inner);
        }
        match tree_ids_of_dir(dir.path()) {
            Err(TreeError::NestedRepository { path }) => assert_eq!(path, inner),
            other => panic!("expected NestedRepository, got {other:?}"),
        }
    }
}

#[test]
fn names_git_refuses_are_refused() {
    for name in [".GIT/x", "sub/git~1", "d/.git ", ".git."] {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("ok"), b"x", 0o644);
        write(&dir.path().join(name), b"x", 0o644);
        // git itself refuses to add it ...
        let gd = tempfile::tempdir().unwrap();
        let status = Command::new("git")
            .args([
                "--git-dir",
                gd.path().to_str().unwrap(),
                "--work-tree",
                dir.path().to_str().unwrap(),
            ])
            .args(["init", "-q"])
            .status()
            .unwrap();
        assert!(status.success());
        let out = Command::new("git")
            .args([
                "--git-dir",
                gd.path().to_str().unwrap(),
                "--work-tree",
                dir.path().to_str().unwrap(),
            ])
            .args(["add", "-A"])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(!out.status.success(), "git accepted {name}");
        // ... and so do we.
        match tree_ids_of_dir(dir.path()) {
            Err(TreeError::ReservedName { path }) => {
                assert!(
                    name.starts_with(path.strip_prefix(dir.path()).unwrap().to_str().unwrap()),
                    "{path:?}"
                )
            }
            other => panic!("{name}: expected ReservedName, got {other:?}"),
        }
    }
}

#[test]
fn fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let status = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils) must be installed");
    assert!(status.success());
    match tree_ids_of_dir(dir.path()) {
        Err(TreeError::UnsupportedFileType { path }) => assert_eq!(path, fifo),
        other => panic!("expected UnsupportedFileType, got {other:?}"),
    }
}

#[test]
fn not_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    write(&f, b"x", 0o644);
    assert!(matches!(
        tree_ids_of_dir(&f),
        Err(TreeError::NotADirectory { .. })
    ));
    assert!(matches!(
        tree_ids_of_dir(&dir.path().join("missing")),
        Err(TreeError::Io { .. })
    ));
}

/// A sha1 repository with `every_case` committed by the git CLI.
fn committed_repo() -> (tempfile::TempDir, TreeIds) {
    let repo = tempfile::tempdir().unwrap();
    git(&["init", "-q", "--object-format=sha1"], repo.path());
    every_case(repo.path());
    let expected = git_tree_ids_excluding_dot_git(repo.path());
    git(&["add", "-A"], repo.path());
    git(&["commit", "-q", "-m", "c"], repo.path());
    (repo, expected)
}

/// `git_tree_ids` of a copy of `dir` without its `.git` (so the fresh git
/// dirs are the only repositories involved).
fn git_tree_ids_excluding_dot_git(dir: &Path) -> TreeIds {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", dir.display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    fs::remove_dir_all(copy.path().join(".git")).unwrap();
    git_tree_ids(copy.path())
}

#[test]
fn rev_ids_match_git_and_the_files_on_disk() {
    let (repo_dir, expected) = committed_repo();
    let repo = git2::Repository::open(repo_dir.path()).unwrap();
    let (ids, commit) = tree_ids_of_rev(&repo, "HEAD").unwrap();
    assert_eq!(ids, expected);
    assert_eq!(
        ids.sha1,
        git(&["rev-parse", "HEAD^{tree}"], repo_dir.path())
    );
    assert_eq!(
        commit.to_string(),
        git(&["rev-parse", "HEAD"], repo_dir.path())
    );
    // Other spellings of the same commit.
    let short = git(&["rev-parse", "--short", "HEAD"], repo_dir.path());
    assert_eq!(tree_ids_of_rev(&repo, &short).unwrap().0, ids);
    assert_eq!(
        tree_ids_of_rev(&repo, "main")
            .or_else(|_| tree_ids_of_rev(&repo, "master"))
            .unwrap()
            .0,
        ids
    );
    let tree = repo.head().unwrap().peel_to_tree().unwrap().id();
    assert_eq!(tree_ids_of_tree(&repo, tree).unwrap(), ids);
}

#[test]
fn many_blobs_hashed_in_parallel_match_git() {
    let repo_dir = tempfile::tempdir().unwrap();
    let r = repo_dir.path();
    git(&["init", "-q"], r);
    for i in 0..600 {
        write(
            &r.join(format!("d{}/f{i}", i % 7)),
            format!("content {i}\n").as_bytes(),
            if i % 5 == 0 { 0o755 } else { 0o644 },
        );
    }
    symlink("d0/f0", r.join("link")).unwrap();
    let expected = git_tree_ids_excluding_dot_git(r);
    git(&["add", "-A"], r);
    git(&["commit", "-q", "-m", "many"], r);
    git(&["repack", "-adq"], r);
    let repo = git2::Repository::open(r).unwrap();
    assert_eq!(tree_ids_of_rev(&repo, "HEAD").unwrap().0, expected);
}

#[test]
fn cache_gives_the_same_ids_across_commits() {
    let (repo_dir, expected) = committed_repo();
    let repo = git2::Repository::open(repo_dir.path()).unwrap();
    let mut cache = collective_tree::TreeIdCache::default();
    let first = repo.head().unwrap().peel_to_tree().unwrap().id();
    assert_eq!(cache.tree_ids_of_tree(&repo, first).unwrap(), expected);
    let remembered = cache.len();
    assert!(remembered > 10);
    write(
        &repo_dir.path().join("src/lib/deep/nested/file.rs"),
        b"changed\n",
        0o644,
    );
    git(&["commit", "-q", "-am", "change one file"], repo_dir.path());
    let second = repo.head().unwrap().peel_to_tree().unwrap().id();
    let ids = cache.tree_ids_of_tree(&repo, second).unwrap();
    assert_eq!(ids, tree_ids_of_tree(&repo, second).unwrap());
    assert_ne!(ids, expected);
    // Only the changed blob and the trees above it are new.
    assert_eq!(cache.len(), remembered + 1 + 5);
    assert_eq!(cache.tree_ids_of_tree(&repo, first).unwrap(), expected);
}

#[test]
fn materialized_tree_has_the_same_ids_and_modes() {
    let (repo_dir, expected) = committed_repo();
    let repo = git2::Repository::open(repo_dir.path()).unwrap();
    let tree = repo.head().unwrap().peel_to_tree().unwrap().id();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("deploy");
    // "absolute" -> /etc/passwd is in every_case; materialize must refuse it.
    match materialize(&repo, tree, &dest) {
        Err(TreeError::SymlinkEscapes { path, target }) => {
            assert_eq!(path, PathBuf::from("absolute"));
            assert_eq!(target, "/etc/passwd");
        }
        other => panic!("expected SymlinkEscapes, got {other:?}"),
    }
    assert!(!dest.exists(), "nothing may be written for a refused tree");

    // Without the escaping link, everything round-trips.
    fs::remove_file(repo_dir.path().join("absolute")).unwrap();
    git(&["add", "-A"], repo_dir.path());
    git(&["commit", "-q", "-m", "no escape"], repo_dir.path());
    let (ids, _) = tree_ids_of_rev(&repo, "HEAD").unwrap();
    assert_ne!(ids, expected);
    let tree = repo.head().unwrap().peel_to_tree().unwrap().id();
    materialize(&repo, tree, &dest).unwrap();
    assert_eq!(tree_ids_of_dir(&dest).unwrap(), ids);
    assert_eq!(git_tree_ids(&dest), ids);
    let mode = |p: &str| {
        fs::symlink_metadata(dest.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("run.sh"), 0o755);
    assert_eq!(mode("README.md"), 0o644);
    assert_eq!(mode("group-exec-only"), 0o644);
    assert_eq!(
        fs::read_link(dest.join("src/lib/up")).unwrap(),
        PathBuf::from("../../README.md")
    );
    assert!(!dest.join("empty-dir").exists());

    // A second materialization into the now non-empty directory is refused.
    assert!(matches!(
        materialize(&repo, tree, &dest),
        Err(TreeError::DestinationNotEmpty { .. })
    ));
    collective_tree::make_read_only(&dest).unwrap();
    assert_eq!(mode("run.sh"), 0o555);
    assert_eq!(mode("README.md"), 0o444);
    assert_eq!(sha256_tree_of_dir(&dest).unwrap(), ids.sha256);
}

/// Builds a commit whose tree is given as `git mktree` input lines.
fn commit_of_mktree(repo: &Path, lines: &str) -> String {
    let tree = git_stdin(&["mktree"], repo, Some(lines.as_bytes()));
    git(&["commit-tree", &tree, "-m", "crafted"], repo)
}

fn blob(repo: &Path, content: &str) -> String {
    git_stdin(
        &["hash-object", "-w", "--stdin"],
        repo,
        Some(content.as_bytes()),
    )
}

#[test]
fn gitlink_is_refused() {
    let repo_dir = tempfile::tempdir().unwrap();
    git(&["init", "-q"], repo_dir.path());
    let b = blob(repo_dir.path(), "x");
    let sub = "0123456789abcdef0123456789abcdef01234567";
    let commit = commit_of_mktree(
        repo_dir.path(),
        &format!("100644 blob {b}\tfile\n160000 commit {sub}\tvendor\n"),
    );
    let repo = git2::Repository::open(repo_dir.path()).unwrap();
    match tree_ids_of_rev(&repo, &commit) {
        Err(TreeError::Gitlink { path, commit }) => {
            assert_eq!(path, PathBuf::from("vendor"));
            assert_eq!(commit.to_string(), sub);
        }
        other => panic!("expected Gitlink, got {other:?}"),
    }
    let tree = repo
        .find_commit(git2::Oid::from_str(&commit).unwrap())
        .unwrap()
        .tree_id();
    let dest = tempfile::tempdir().unwrap();
    assert!(matches!(
        materialize(&repo, tree, dest.path()),
        Err(TreeError::Gitlink { .. })
    ));
}

#[test]
fn empty_subtree_is_refused() {
    let repo_dir = tempfile::tempdir().unwrap();
    git(&["init", "-q"], repo_dir.path());
    let b = blob(repo_dir.path(), "x");
    let empty = git_stdin(&["mktree"], repo_dir.path(), Some(b""));
    let commit = commit_of_mktree(
        repo_dir.path(),
        &format!("100644 blob {b}\tfile\n040000 tree {empty}\thollow\n"),
    );
    let repo = git2::Repository::open(repo_dir.path()).unwrap();
    assert!(
        matches!(tree_ids_of_rev(&repo, &commit), Err(TreeError::EmptySubtree { path, .. }) if path == Path::new("hollow"))
    );
}

#[test]
fn non_canonical_tree_is_refused() {
    let repo_dir = tempfile::tempdir().unwrap();
    git(&["init", "-q"], repo_dir.path());
    let b = blob(repo_dir.path(), "x");
    let raw = hex::decode(&b).unwrap();
    // Two trees git would never write: an old-style 100664 mode, and
    // entries out of order.
    let mut odd_mode = b"100664 f\0".to_vec();
    odd_mode.extend_from_slice(&raw);
    let mut unsorted = b"100644 b\0".to_vec();
    unsorted.extend_from_slice(&raw);
    unsorted.extend_from_slice(b"100644 a\0");
    unsorted.extend_from_slice(&raw);
    let repo = git2::Repository::open(repo_dir.path()).unwrap();
    for body in [odd_mode, unsorted] {
        let tree = git_stdin(
            &["hash-object", "-t", "tree", "-w", "--literally", "--stdin"],
            repo_dir.path(),
            Some(&body),
        );
        let oid = git2::Oid::from_str(&tree).unwrap();
        match tree_ids_of_tree(&repo, oid) {
            Err(TreeError::NonCanonicalTree { oid: o, .. }) => assert_eq!(o, oid),
            other => panic!("expected NonCanonicalTree, got {other:?}"),
        }
    }
}

#[test]
fn escaping_symlinks_are_refused_by_materialize() {
    let cases = [
        (
            "100644 blob {b}\tf\n120000 blob {up}\tlink\n",
            "link",
            "../outside",
        ),
        ("040000 tree {sub}\tdir\n", "dir/link", "../../etc"),
    ];
    for (lines, link, target) in cases {
        let repo_dir = tempfile::tempdir().unwrap();
        let r = repo_dir.path();
        git(&["init", "-q"], r);
        let b = blob(r, "x");
        let up = blob(r, "../outside");
        let etc = blob(r, "../../etc");
        let sub = git_stdin(
            &["mktree"],
            r,
            Some(format!("120000 blob {etc}\tlink\n").as_bytes()),
        );
        let lines = lines
            .replace("{b}", &b)
            .replace("{up}", &up)
            .replace("{sub}", &sub);
        let tree = git_stdin(&["mktree"], r, Some(lines.as_bytes()));
        let repo = git2::Repository::open(r).unwrap();
        let out = tempfile::tempdir().unwrap();
        match materialize(
            &repo,
            git2::Oid::from_str(&tree).unwrap(),
            &out.path().join("d"),
        ) {
            Err(TreeError::SymlinkEscapes { path, target: t }) => {
                assert_eq!(path, PathBuf::from(link));
                assert_eq!(t, target);
            }
            other => panic!("expected SymlinkEscapes, got {other:?}"),
        }
        // Ids are still computed: refusing to deploy is materialize's job.
        tree_ids_of_tree(&repo, git2::Oid::from_str(&tree).unwrap()).unwrap();
    }
}

#[test]
fn bad_revisions_are_errors() {
    let (repo_dir, _) = committed_repo();
    let repo = git2::Repository::open(repo_dir.path()).unwrap();
    for rev in [
        "no-such-branch",
        "HEAD~5",
        "deadbeef",
        "",
        "HEAD^{nonsense}",
    ] {
        assert!(
            matches!(
                tree_ids_of_rev(&repo, rev),
                Err(TreeError::BadRevision { .. })
            ),
            "{rev:?}"
        );
    }
    let b = git(&["rev-parse", "HEAD:README.md"], repo_dir.path());
    assert!(matches!(
        tree_ids_of_rev(&repo, &b),
        Err(TreeError::NotACommit { .. })
    ));
}

// Random trees: names from an alphabet that exercises git's ordering
// (`.`, `-`, `0`, multi-byte UTF-8), random kinds and modes.
#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>, bool),
    Link(String),
    Dir(Vec<(String, Node)>),
}

fn name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ab.0\\-é日]{1,4}")
        .unwrap()
        .prop_filter("not . or ..", |s| s != "." && s != ".." && s != ".git")
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (proptest::collection::vec(any::<u8>(), 0..64), any::<bool>())
            .prop_map(|(c, x)| Node::File(c, x)),
        "[a-z./]{1,12}".prop_map(Node::Link),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        proptest::collection::vec((name(), inner), 0..6).prop_map(Node::Dir)
    })
}

fn build(at: &Path, entries: &[(String, Node)]) {
    fs::create_dir_all(at).unwrap();
    for (name, node) in entries {
        let p = at.join(name);
        if fs::symlink_metadata(&p).is_ok() {
            continue; // duplicate generated name
        }
        match node {
            Node::File(content, exec) => write(&p, content, if *exec { 0o755 } else { 0o644 }),
            Node::Link(target) => symlink(target, &p).unwrap(),
            Node::Dir(children) => build(&p, children),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_match_git(entries in proptest::collection::vec((name(), node()), 0..8)) {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), &entries);
        let expected = git_tree_ids(dir.path());
        prop_assert_eq!(tree_ids_of_dir(dir.path()).unwrap(), expected);
    }
}
