//! Helpers shared by the CLI test modules: the built binary with a clean
//! environment, assertions on its JSON output and on its refusals, a git CLI
//! that ignores the developer's configuration, and a guard that stops a
//! `dev up` devnet even when a test fails midway.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test, built by cargo for this test target.
pub const BIN: &str = env!("CARGO_BIN_EXE_collective");

/// Every environment variable the binary reads a default from: removed so
/// that the developer's shell cannot change what a test observes.
const BINARY_ENV: &[&str] = &[
    "COLLECTIVE_KEY",
    "COLLECTIVE_KEY_DIR",
    "COLLECTIVE_KEY_PASSPHRASE",
    "COLLECTIVE_PRIVATE_KEY",
    "COLLECTIVE_STORE",
    "COLLECTIVE_RPC",
    "COLLECTIVE_DEVNET",
    "GITHUB_TOKEN",
];

/// The binary with none of [`BINARY_ENV`] inherited.
pub fn bin() -> Command {
    let mut c = Command::new(BIN);
    for var in BINARY_ENV {
        c.env_remove(var);
    }
    c
}

/// [`bin`], run in `dir`.
pub fn cmd(dir: &Path) -> Command {
    let mut c = bin();
    c.current_dir(dir);
    c
}

/// Runs the binary in `dir` with `args` and a clean environment.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir).args(args).output().expect("collective runs")
}

/// Asserts success and returns stdout parsed as JSON; `what` names the step
/// in the failure message.
#[track_caller]
pub fn ok_json(out: Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"))
}

/// Asserts a clean refusal whose message may span lines (clap's usage
/// errors do): exit `code`, stderr starting with `error:` and naming
/// `needle`, and no panic.
#[track_caller]
pub fn fails_multiline(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("error:"), "{err}");
    assert!(err.contains(needle), "{err} lacks {needle:?}");
}

/// Asserts a clean one-line refusal: as [`fails_multiline`], and stderr is
/// exactly one line. The CLI promises one line a user can act on.
#[track_caller]
pub fn fails(out: &Output, code: i32, needle: &str) {
    fails_multiline(out, code, needle);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one line, got {err}"
    );
}

/// Runs the git CLI in `dir` and returns its trimmed stdout. System and
/// global configuration are ignored and identity, default branch and
/// signing are fixed, so results do not depend on the machine.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=requester",
            "-c",
            "user.email=req@example.org",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("the git CLI must be installed for these tests");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Fails the test with the fix when anvil is missing: a chain test that
/// silently passed without a chain would prove nothing.
#[track_caller]
pub fn require_anvil() {
    let p = collective_chain::devnet::anvil_path();
    assert!(
        p.exists(),
        "anvil not found at {} (run `make tools` or set COLLECTIVE_TOOLS_BIN)",
        p.display()
    );
}

/// `collective dev up` on a free port, writing `dir/devnet.yaml`: returns
/// the guard that stops it (its `.0` is that file) and the JSON it printed.
#[track_caller]
pub fn dev_up(dir: &Path) -> (DevDown, serde_json::Value) {
    let port = collective_chain::devnet::free_port().unwrap().to_string();
    let down = DevDown(dir.join("devnet.yaml"));
    let up = ok_json(
        run(
            dir,
            &[
                "--json",
                "dev",
                "up",
                "--port",
                &port,
                "--out",
                "devnet.yaml",
            ],
        ),
        "dev up",
    );
    (down, up)
}

/// Stops the devnet of `dev up` (the devnet file at `.0`) on drop, so a
/// failed assertion does not leave anvil running.
pub struct DevDown(pub PathBuf);

impl Drop for DevDown {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = Command::new(BIN)
                .args(["dev", "down", "--devnet"])
                .arg(&self.0)
                .output();
        }
    }
}
