//! `collective tree-id` as a user runs it: ids equal the git CLI's in both
//! object formats, and bad input gives one line on stderr and the right
//! exit code, never a panic.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn collective(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_collective"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
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

fn git(args: &[&str], cwd: &Path) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("the git CLI must be installed for these tests");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
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
    git(&["--git-dir", gd, "--work-tree", wt, "write-tree"], content)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts a one-line `error:` message on stderr and the exit code.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
}

/// Like `assert_fails`, and the message is a single line.
fn assert_fails_one_line(out: &Output, code: i32, needle: &str) {
    assert_fails(out, code, needle);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
}

#[test]
fn dir_ids_equal_git_in_both_formats() {
    let content = scratch("content");
    populate(&content);
    let v = json(&collective(
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
    git(&["init", "-q"], &repo);
    populate(&repo);
    git(&["add", "-A"], &repo);
    git(&["commit", "-q", "-m", "one"], &repo);
    fs::write(repo.join("README"), "changed\n").unwrap();
    git(&["commit", "-q", "-am", "two"], &repo);

    let head = json(&collective(&["--json", "tree-id"], &repo));
    assert_eq!(head["commit"], git(&["rev-parse", "HEAD"], &repo));
    assert_eq!(head["tree_sha1"], git(&["rev-parse", "HEAD^{tree}"], &repo));

    // An explicit REV and --repo from elsewhere, compared with a sha256
    // repository built from that commit's files.
    let elsewhere = scratch("cwd");
    let first = json(&collective(
        &[
            "--json",
            "tree-id",
            "HEAD~1",
            "--repo",
            repo.to_str().unwrap(),
        ],
        &elsewhere,
    ));
    assert_eq!(first["commit"], git(&["rev-parse", "HEAD~1"], &repo));
    let checkout = scratch("checkout");
    git(
        &[
            "--work-tree",
            checkout.to_str().unwrap(),
            "checkout",
            "HEAD~1",
            "--",
            ".",
        ],
        &repo,
    );
    assert_eq!(first["tree_sha256"], git_write_tree(&checkout, "sha256"));
    assert_ne!(first["tree_sha256"], head["tree_sha256"]);

    // A tree names the code too; there is no commit to print then.
    let tree = json(&collective(&["--json", "tree-id", "HEAD^{tree}"], &repo));
    assert_eq!(tree["tree_sha256"], head["tree_sha256"]);
    assert!(tree.get("commit").is_none());
}

#[test]
fn malformed_rev_is_a_usage_error() {
    let repo = scratch("repo");
    git(&["init", "-q"], &repo);
    fs::write(repo.join("f"), "x").unwrap();
    git(&["add", "-A"], &repo);
    git(&["commit", "-q", "-m", "c"], &repo);
    for rev in ["no-such-branch", "HEAD~99", "zzzz^{tree", "deadbeef", ""] {
        assert_fails_one_line(
            &collective(&["tree-id", rev], &repo),
            64,
            "cannot resolve revision",
        );
    }
    let blob = git(&["rev-parse", "HEAD:f"], &repo);
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
    git(&["init", "-q"], &repo);
    fs::write(repo.join("f"), "x").unwrap();
    git(&["add", "f"], &repo);
    git(
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            "160000,0123456789abcdef0123456789abcdef01234567,vendor/lib",
        ],
        &repo,
    );
    git(&["commit", "-q", "-m", "with submodule"], &repo);
    assert_fails_one_line(
        &collective(&["tree-id"], &repo),
        2,
        "vendor/lib: is a submodule",
    );

    let dir = scratch("nested");
    fs::create_dir_all(dir.join("vendor/inner")).unwrap();
    fs::write(dir.join("f"), "x").unwrap();
    git(&["init", "-q"], &dir.join("vendor/inner"));
    assert_fails_one_line(
        &collective(&["tree-id", "--dir", "."], &dir),
        2,
        "nested git repository",
    );
}
