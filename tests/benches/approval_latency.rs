//! Benchmark, with the node's default poll interval: time from the block
//! that executes an approval to the node's `job-started`, at confirmation
//! depth 0 and 2; and time from the guardian's revocation being mined to
//! the running job's `revoked` end entry, at depth 2 (stops act at the
//! head block, so the depth must not show).
//!
//! Run: `cargo bench -p collective-e2e --bench approval_latency`
//! (needs `make tools`, bubblewrap and git, like the e2e tests).
//!
//! Reference in the same run: `cast call CodeRegistry.getApproval(tree)`,
//! the cheapest way any tool can learn of an approval over the same RPC.
//! The ratio says how many such reads the node's whole detect, verify,
//! deploy (materialize + sha256 from disk) and log path costs.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use collective_e2e::*;

const ROUNDS: usize = 5;

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn wait_started(node: &RunningNode, sha256: &str) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = node.runs().await?;
        if runs
            .iter()
            .any(|r| r["decision"] == "job-started" && r["tree_sha256"] == sha256)
        {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("job for {sha256} did not start");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The poll interval a node gets when node.yaml does not set one.
fn default_poll() -> u64 {
    collective_controller::NodeConfig::parse("default", collective_controller::DEFAULT_CONFIG_YAML)
        .expect("default config")
        .chain
        .poll_interval_ms
}

fn cast_bin() -> std::path::PathBuf {
    std::path::Path::new(&std::env::var("COLLECTIVE_TOOLS_BIN").unwrap_or_else(|_| {
        workspace_root()
            .join("tools/node_modules/.bin")
            .display()
            .to_string()
    }))
    .join("cast")
}

/// One `cast call` of `CodeRegistry.isApproved(tree)` at `block`, checked
/// to answer `expect`: ms it took.
fn cast_is_approved(devnet: &Devnet, block: u64, sha256: &str, expect: bool) -> Result<f64> {
    let t = Instant::now();
    let out = std::process::Command::new(cast_bin())
        .args(["call", "--rpc-url", devnet.url(), "--block"])
        .arg(block.to_string())
        .arg(format!(
            "{:#x}",
            devnet.file.deployment.addresses.code_registry
        ))
        .args(["isApproved(bytes32)(bool)", &format!("0x{sha256}")])
        .output()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || answer != expect.to_string() {
        bail!(
            "reference cast call answered {answer:?}, expected {expect}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(ms)
}

/// Per round: ms from the revocation's block to the job's `revoked` end
/// entry, and one `cast call` of `isApproved` (the reference).
async fn measure_revocation(depth: u64) -> Result<(Vec<f64>, Vec<f64>)> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let mut cfg = node_config(&devnet, &repo.path, &dirs, depth);
    cfg.chain.poll_interval_ms = default_poll();
    let node = RunningNode::start(cfg).await?;
    let recipient = Requester::default().recipient();
    let (mut killed, mut reference) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        repo.commit(
            &[("README.md", Some(&format!("revocation round {i}\n")))],
            "round",
        )?;
        let (ids, _) = repo.commit_sleeper("sleeprev")?;
        devnet
            .approve(&ids, std::slice::from_ref(&recipient), 0)
            .await?;
        devnet.mine(depth).await?;
        wait_started(&node, &ids.sha256).await?;
        let tx = devnet.revoke(&ids.sha256, "benchmark").await?;
        let mined = Instant::now();
        let deadline = mined + Duration::from_secs(60);
        loop {
            let runs = node.runs().await?;
            if runs.iter().any(|r| {
                r["decision"] == "revoked"
                    && r["tree_sha256"] == ids.sha256.as_str()
                    && r["job"] == "sleeprev"
            }) {
                break;
            }
            if Instant::now() > deadline {
                bail!("revoked job for {} was not stopped", ids.sha256);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        killed.push(mined.elapsed().as_secs_f64() * 1000.0);
        reference.push(cast_is_approved(
            &devnet,
            tx.block_number,
            &ids.sha256,
            false,
        )?);
    }
    node.stop().await;
    Ok((killed, reference))
}

/// Returns (ms from the executing block to job-started, ms from the block
/// reaching depth to job-started) per round.
async fn measure(depth: u64) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    repo.commit(
        &[(
            "jobs/noop/job.yaml",
            Some("kind: batch\ncommand: [/usr/bin/true]\nlimits:\n  wall_seconds: 10\n"),
        )],
        "noop",
    )?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let mut cfg = node_config(&devnet, &repo.path, &dirs, depth);
    cfg.chain.poll_interval_ms = default_poll();
    let node = RunningNode::start(cfg).await?;
    let recipient = Requester::default().recipient();
    let (mut total, mut beyond, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let (ids, _) = repo.commit(&[("README.md", Some(&format!("round {i}\n")))], "round")?;
        // Let the node see (and refuse) the new head first.
        let sha = ids.sha256.clone();
        eventually(Duration::from_secs(30), "refusal", || async {
            node.recent()
                .await
                .ok()?
                .into_iter()
                .find(|e| e["decision"] == "refused" && e["tree_sha256"] == sha.as_str())
        })
        .await?;
        let tx = devnet
            .approve(&ids, std::slice::from_ref(&recipient), 0)
            .await?;
        let executed = Instant::now();
        let mut buried = executed;
        if depth > 0 {
            devnet.mine(depth).await?;
            buried = Instant::now();
        }
        let started = wait_started(&node, &ids.sha256).await?;
        total.push(started.duration_since(executed).as_secs_f64() * 1000.0);
        beyond.push(started.duration_since(buried).as_secs_f64() * 1000.0);
        // Reference: one `cast call` reading the approval at that block.
        reference.push(cast_is_approved(
            &devnet,
            tx.block_number,
            &ids.sha256,
            true,
        )?);
    }
    node.stop().await;
    Ok((total, beyond, reference))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    require_tools();
    let poll = default_poll();
    println!(
        "approval -> job-started latency ({ROUNDS} rounds per depth, default node poll {poll} ms)"
    );
    println!(
        "{:<8} {:>14} {:>22} {:>16} {:>8}",
        "depth", "p50 total ms", "p50 beyond depth ms", "p50 cast ms", "ratio"
    );
    for depth in [0u64, 2] {
        let (total, beyond, reference) = measure(depth).await?;
        let (t, b, r) = (p50(total), p50(beyond), p50(reference));
        println!("{depth:<8} {t:>14.1} {b:>22.1} {r:>16.1} {:>7.2}x", b / r);
    }
    println!("ratio = node latency beyond the confirmation wait / one `cast call` of the approval");
    println!();
    println!("revocation mined -> job killed and logged ({ROUNDS} rounds, depth 2, default poll {poll} ms)");
    let (killed, reference) = measure_revocation(2).await?;
    let mut sorted = killed.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (k, r) = (p50(killed), p50(reference));
    println!(
        "p50 {k:.1} ms (min {:.1}, max {:.1}); p50 cast call {r:.1} ms; ratio {:.2}x",
        sorted[0],
        sorted[sorted.len() - 1],
        k / r
    );
    Ok(())
}
