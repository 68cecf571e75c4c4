//! sha256 tree id of a generated 100,000-file tree: collective-tree versus
//! `git add -A && git write-tree` in a sha256 repository, same run.
//!
//! `cargo bench -p collective-tree --bench tree_id`
//! (env: `TREE_BENCH_FILES`, default 100000; `TREE_BENCH_RUNS`, default 3;
//! `TREE_BENCH_DIR`, where to generate the tree, default the temp dir).
//!
//! Fairness: both sides start from the same files with a warm page cache
//! and must read and hash every file. git's full path also writes loose
//! objects and an index, which is part of what producing a tree id costs it.
//! The index-only numbers (`git write-tree` from an already-built index, and
//! `git add -A` that only re-stats an up-to-date index) are printed too:
//! they hash no file content, so they are what git costs once it has
//! already done the work, not a like-for-like comparison.

#![allow(clippy::print_stdout)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic pseudo-random bytes (xorshift), so every run hashes the same tree.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `files` files in a 3-level layout of ~100 files per directory, sizes
/// 0..8 KiB (mean 4 KiB), 1 in 10 executable, 1 in 100 a symlink.
fn generate(root: &Path, files: usize) -> u64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 8192];
    for i in 0..files {
        let dir = root.join(format!("d{:02}/s{:02}", i / 10_000, (i / 100) % 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        let path = dir.join(format!("file-{i:06}.txt"));
        if i % 100 == 99 {
            symlink(format!("file-{:06}.txt", i - 1), &path).unwrap();
            continue;
        }
        let len = (rng.next() % 8192) as usize;
        for chunk in buf[..len].chunks_mut(8) {
            let r = rng.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        fs::write(&path, &buf[..len]).unwrap();
        if i % 10 == 3 {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        bytes += len as u64;
    }
    bytes
}

fn git(git_dir: &Path, work_tree: &Path, args: &[&str]) -> String {
    git_c(&[], git_dir, work_tree, args)
}

/// git with `-c key=value` settings before the subcommand.
fn git_c(config: &[&str], git_dir: &Path, work_tree: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    for c in config {
        cmd.arg("-c").arg(c);
    }
    let out = cmd
        .arg("--git-dir")
        .arg(git_dir)
        .arg("--work-tree")
        .arg(work_tree)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git CLI is needed for the comparison");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let v = f();
    (v, start.elapsed())
}

/// Flushes dirty pages so one measurement does not pay for the previous
/// one's writeback.
fn settle() {
    let _ = Command::new("sync").status();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful either way, so run a tiny tree there to keep it quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let files = if quick {
        1000
    } else {
        env_usize("TREE_BENCH_FILES", 100_000)
    };
    let runs = if quick {
        1
    } else {
        env_usize("TREE_BENCH_RUNS", 3).max(1)
    };

    let scratch = match std::env::var_os("TREE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let content = scratch.path().join("content");
    fs::create_dir_all(&content).unwrap();
    let (bytes, gen) = time(|| generate(&content, files));
    println!(
        "tree: {files} files ({:.1} MiB) generated in {} under {}; {runs} run(s) each; {} threads",
        bytes as f64 / 1048576.0,
        secs(gen),
        scratch.path().display(),
        rayon::current_num_threads()
    );
    // Warm the page cache for both sides.
    let expected_ours = collective_tree::sha256_tree_of_dir(&content).unwrap();

    let mut ours = Vec::new();
    let mut ours_both = Vec::new();
    let mut git_full = Vec::new();
    let mut git_uncompressed = Vec::new();
    let mut git_write_tree = Vec::new();
    let mut git_add_noop = Vec::new();
    let mut git_id = String::new();
    for run in 0..runs {
        settle();
        let (id, d) = time(|| collective_tree::sha256_tree_of_dir(&content).unwrap());
        assert_eq!(id, expected_ours);
        ours.push(d);
        let (ids, d) = time(|| collective_tree::tree_ids_of_dir(&content).unwrap());
        assert_eq!(ids.sha256, expected_ours);
        ours_both.push(d);

        let gd = scratch.path().join(format!("git-{run}"));
        git(&gd, &content, &["init", "-q", "--object-format=sha256"]);
        settle();
        let (id, d) = time(|| {
            git(&gd, &content, &["add", "-A"]);
            git(&gd, &content, &["write-tree"])
        });
        git_full.push(d);
        git_id = id;
        let (id, d) = time(|| git(&gd, &content, &["write-tree"]));
        assert_eq!(id, git_id);
        git_write_tree.push(d);
        let (_, d) = time(|| git(&gd, &content, &["add", "-A"]));
        git_add_noop.push(d);
        fs::remove_dir_all(&gd).unwrap();

        // Same, with zlib off for loose objects: the cheapest git can be
        // made to produce the id from files.
        let gd = scratch.path().join(format!("git-z0-{run}"));
        git(&gd, &content, &["init", "-q", "--object-format=sha256"]);
        let z0 = ["core.compression=0", "core.looseCompression=0"];
        settle();
        let (id, d) = time(|| {
            git_c(&z0, &gd, &content, &["add", "-A"]);
            git_c(&z0, &gd, &content, &["write-tree"])
        });
        assert_eq!(id, git_id);
        git_uncompressed.push(d);
        fs::remove_dir_all(&gd).unwrap();
    }
    assert_eq!(
        expected_ours, git_id,
        "collective-tree and git disagree on the sha256 tree id"
    );

    // The node's deploy path, once: a (packed) sha1 repository holding the
    // tree as a commit; sha256 id from the object database, then
    // materialize and recompute from the files on disk.
    let repo_dir = scratch.path().join("repo");
    let rd = repo_dir.join(".git");
    fs::create_dir_all(&rd).unwrap();
    git(&rd, &content, &["init", "-q", "--object-format=sha1"]);
    git(&rd, &content, &["add", "-A"]);
    let tree = git(&rd, &content, &["write-tree"]);
    git(&rd, &content, &["repack", "-adq"]);
    git(&rd, &content, &["prune-packed"]);
    let repo = git2::Repository::open(&rd).unwrap();
    let tree = git2::Oid::from_str(&tree).unwrap();
    settle();
    let (odb_ids, odb_time) = time(|| collective_tree::tree_ids_of_tree(&repo, tree).unwrap());
    assert_eq!(odb_ids.sha256, expected_ours);
    let dest = scratch.path().join("deploy");
    settle();
    let (_, mat_time) = time(|| collective_tree::materialize(&repo, tree, &dest).unwrap());
    settle();
    let (disk_id, disk_time) = time(|| collective_tree::sha256_tree_of_dir(&dest).unwrap());
    assert_eq!(disk_id, expected_ours);
    let checkout = scratch.path().join("checkout");
    fs::create_dir_all(&checkout).unwrap();
    settle();
    let (_, git_checkout_time) = time(|| {
        git(&rd, &checkout, &["read-tree", &tree.to_string()]);
        git(&rd, &checkout, &["checkout-index", "-a", "-q"])
    });

    let ours = median(ours);
    let ours_both = median(ours_both);
    let git_full = median(git_full);
    let git_uncompressed = median(git_uncompressed);
    let git_write_tree = median(git_write_tree);
    let git_add_noop = median(git_add_noop);
    let ratio = |git: Duration, us: Duration| git.as_secs_f64() / us.as_secs_f64();
    println!("tree: sha256 tree id {expected_ours} (equal to git's)");
    println!("| what | median |");
    println!("|---|---|");
    println!("| collective-tree `sha256_tree_of_dir` | {} |", secs(ours));
    println!(
        "| collective-tree `tree_ids_of_dir` (sha1 + sha256) | {} |",
        secs(ours_both)
    );
    println!(
        "| git sha256 repo: `git add -A && git write-tree` (fresh index) | {} |",
        secs(git_full)
    );
    println!(
        "| git sha256 repo, zlib off (`-c core.looseCompression=0`): `git add -A && git write-tree` | {} |",
        secs(git_uncompressed)
    );
    println!(
        "| git, index already built: `git write-tree` only (hashes no file) | {} |",
        secs(git_write_tree)
    );
    println!(
        "| git, index already built: `git add -A` re-stat only (hashes no file) | {} |",
        secs(git_add_noop)
    );
    println!(
        "| deploy path, packed sha1 repo: `tree_ids_of_tree` (sha256 from the object db) | {} |",
        secs(odb_time)
    );
    println!(
        "| deploy path: `materialize` (write {files} files) | {} |",
        secs(mat_time)
    );
    println!(
        "| deploy path: `sha256_tree_of_dir` of the materialized tree | {} |",
        secs(disk_time)
    );
    println!(
        "| reference: `git read-tree && git checkout-index -a` of the same tree | {} |",
        secs(git_checkout_time)
    );
    println!(
        "tree: ratio git add -A && write-tree / sha256_tree_of_dir = {:.2}x (>1 means collective-tree is faster)",
        ratio(git_full, ours)
    );
    println!(
        "tree: ratio git add -A && write-tree / tree_ids_of_dir (both formats) = {:.2}x",
        ratio(git_full, ours_both)
    );
    println!(
        "tree: ratio git (zlib off) add -A && write-tree / sha256_tree_of_dir = {:.2}x",
        ratio(git_uncompressed, ours)
    );
    println!(
        "tree: ratio (index-only: git add -A no-op + write-tree) / sha256_tree_of_dir = {:.2}x",
        ratio(git_write_tree + git_add_noop, ours)
    );
    println!(
        "tree: ratio git checkout-index / materialize = {:.2}x",
        ratio(git_checkout_time, mat_time)
    );
}
