//! `collective tree-id` as a user runs it: ids equal the git CLI's in both
//! object formats, and bad input gives one line on stderr and the right
//! exit code, never a panic.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::{self, fails, fails_multiline, git};

fn collective(args: &[&str], cwd: &Path) -> Output {
    support::run(cwd, args)
}

/// A fresh directory under cargo's per-test-binary scratch space.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "tree-id-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn populate(root: &Path) {
    fs::create_dir_all(root.join("src/deep")).unwrap();
    fs::create_dir_all(root.join("empty/dir")).unwrap();
    fs::write(root.join("README"), "hi\n").unwrap();
    fs::write(root.join("src/deep/ünïcødé.txt"), "").unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("../README", root.join("src/link")).unwrap();
}

/// `git add -A && git write-tree` of `content` in a fresh repository of `format`.
fn git_write_tree(content: &Path, format: &str) -> String {
    let gd = scratch("gitdir");
    let (gd, wt) = (gd.to_str().unwrap(), content.to_str().unwrap());
    git(
        content,
        &[
            "--git-dir",
            gd,
            "--work-tree",
            wt,
            "init",
            "-q",
            &format!("--object-format={format}"),
        ],
    );
    git(content, &["--git-dir", gd, "--work-tree", wt, "add", "-A"]);
    git(content, &["--git-dir", gd, "--work-tree", wt, "write-tree"])
}

fn json(out: Output) -> serde_json::Value {
    support::ok_json(out, "tree-id")
}

/// A refusal (see [`support::fails_multiline`]) that prints nothing on stdout.
#[track_caller]
fn assert_fails(out: &Output, code: i32, needle: &str) {
    fails_multiline(out, code, needle);
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
}

/// Like `assert_fails`, and the message is a single line.
#[track_caller]
fn assert_fails_one_line(out: &Output, code: i32, needle: &str) {
    assert_fails(out, code, needle);
    fails(out, code, needle);
}

#[test]
fn dir_ids_equal_git_in_both_formats() {
    let content = scratch("content");
    populate(&content);
    let v = json(collective(
        &["--json", "tree-id", "--dir", content.to_str().unwrap()],
        &content,
    ));
    assert_eq!(v["tree_sha1"], git_write_tree(&content, "sha1"));
    assert_eq!(v["tree_sha256"], git_write_tree(&content, "sha256"));
    assert!(v.get("commit").is_none());

    let human = collective(&["tree-id", "--dir", "."], &content);
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.contains(v["tree_sha256"].as_str().unwrap()), "{text}");
    assert!(text.contains(v["tree_sha1"].as_str().unwrap()), "{text}");
}

#[test]
fn rev_ids_equal_git_and_name_the_commit() {
    let repo = scratch("repo");
    git(&repo, &["init", "-q"]);
    populate(&repo);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    fs::write(repo.join("README"), "changed\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "two"]);

    let head = json(collective(&["--json", "tree-id"], &repo));
    assert_eq!(head["commit"], git(&repo, &["rev-parse", "HEAD"]));
    assert_eq!(head["tree_sha1"], git(&repo, &["rev-parse", "HEAD^{tree}"]));

    // An explicit REV and --repo from elsewhere, compared with a sha256
    // repository built from that commit's files.
    let elsewhere = scratch("cwd");
    let first = json(collective(
        &[
            "--json",
            "tree-id",
            "HEAD~1",
            "--repo",
            repo.to_str().unwrap(),
        ],
        &elsewhere,
    ));
    assert_eq!(first["commit"], git(&repo, &["rev-parse", "HEAD~1"]));
    let checkout = scratch("checkout");
    git(
        &repo,
        &[
            "--work-tree",
            checkout.to_str().unwrap(),
            "checkout",
            "HEAD~1",
            "--",
            ".",
        ],
    );
    assert_eq!(first["tree_sha256"], git_write_tree(&checkout, "sha256"));
    assert_ne!(first["tree_sha256"], head["tree_sha256"]);

    // A tree names the code too; there is no commit to print then.
    let tree = json(collective(&["--json", "tree-id", "HEAD^{tree}"], &repo));
    assert_eq!(tree["tree_sha256"], head["tree_sha256"]);
    assert!(tree.get("commit").is_none());
}

#[test]
fn malformed_rev_is_a_usage_error() {
    let repo = scratch("repo");
    git(&repo, &["init", "-q"]);
    fs::write(repo.join("f"), "x").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "c"]);
    for rev in ["no-such-branch", "HEAD~99", "zzzz^{tree", "deadbeef", ""] {
        assert_fails_one_line(
            &collective(&["tree-id", rev], &repo),
            64,
            "cannot resolve revision",
        );
    }
    let blob = git(&repo, &["rev-parse", "HEAD:f"]);
    assert_fails_one_line(&collective(&["tree-id", &blob], &repo), 64, "not a commit");
}

#[test]
fn not_a_repository_or_missing_dir_is_a_usage_error() {
    let empty = scratch("not-a-repo");
    // CARGO_TARGET_TMPDIR is inside the workspace's git repository, so make
    // sure discovery stops here.
    let out = Command::new(env!("CARGO_BIN_EXE_collective"))
        .args(["tree-id"])
        .current_dir(&empty)
        .env("GIT_CEILING_DIRECTORIES", empty.parent().unwrap())
        .output()
        .unwrap();
    assert_fails_one_line(&out, 64, "not a git repository");
    assert_fails_one_line(
        &collective(&["tree-id", "--dir", "does-not-exist"], &empty),
        64,
        "does-not-exist",
    );
    // clap's own usage message (several lines, with a usage hint).
    assert_fails(
        &collective(&["tree-id", "--dir", "x", "HEAD"], &empty),
        64,
        "cannot be used with",
    );
}

#[test]
fn gitlink_and_nested_repository_are_refused() {
    let repo = scratch("repo");
    git(&repo, &["init", "-q"]);
    fs::write(repo.join("f"), "x").unwrap();
    git(&repo, &["add", "f"]);
    git(
        &repo,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            "160000,0123456789abcdef0123456789abcdef01234567,vendor/lib",
        ],
    );
    git(&repo, &["commit", "-q", "-m", "with submodule"]);
    assert_fails_one_line(
        &collective(&["tree-id"], &repo),
        2,
        "vendor/lib: is a submodule",
    );

    let dir = scratch("nested");
    fs::create_dir_all(dir.join("vendor/inner")).unwrap();
    fs::write(dir.join("f"), "x").unwrap();
    git(&dir.join("vendor/inner"), &["init", "-q"]);
    assert_fails_one_line(
        &collective(&["tree-id", "--dir", "."], &dir),
        2,
        "nested git repository",
    );
}
