//! `collective dev up|down`: a local devnet in one command.
//!
//! `up` starts anvil in its own process group (so it outlives the command),
//! deploys the suite, hands voting tokens to the demo accounts and writes
//! `devnet.yaml` (addresses, chain id, RPC URL, anvil's pid, dev keys) that
//! every other command accepts with `--devnet`. `down` stops that anvil.

use std::path::{Path, PathBuf};

use anyhow::Context;
use collective_chain::devnet::{
    self, AnvilInfo, AnvilOptions, AnvilProcess, DevnetFile, GovernanceParams,
};
use serde_json::json;

use super::proposal::chain_err;
use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum DevCommand {
    /// Start anvil (or use --rpc), deploy the contracts, fund and delegate the demo accounts,
    /// write devnet.yaml.
    Up(UpArgs),
    /// Stop the anvil started by `dev up` and remove its devnet file.
    Down(DownArgs),
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Use this running dev chain instead of starting anvil (its first accounts must be
    /// anvil's test accounts).
    #[arg(long, value_name = "URL")]
    rpc: Option<String>,
    /// Port for the anvil this command starts.
    #[arg(long, default_value_t = 8545, conflicts_with = "rpc")]
    port: u16,
    /// Where to write the devnet description.
    #[arg(long, default_value = "devnet.yaml")]
    out: PathBuf,
    /// Blocks between proposing and voting.
    #[arg(long, default_value_t = 1)]
    voting_delay: u64,
    /// Blocks a vote stays open.
    #[arg(long, default_value_t = 10)]
    voting_period: u64,
    /// Timelock delay in seconds.
    #[arg(long, default_value_t = 2)]
    timelock_delay: u64,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The devnet file written by `dev up`.
    #[arg(long, default_value = "devnet.yaml")]
    devnet: PathBuf,
}

pub async fn run(c: DevCommand, out: Output) -> anyhow::Result<u8> {
    match c {
        DevCommand::Up(a) => up(a, out).await,
        DevCommand::Down(a) => down(a, out),
    }
}

fn anvil_alive(info: &AnvilInfo) -> bool {
    devnet::anvil_running(info.pid)
}

fn log_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("devnet");
    out.with_file_name(format!("{stem}.anvil.log"))
}

async fn up(a: UpArgs, out: Output) -> anyhow::Result<u8> {
    if a.out.exists() {
        if let Ok(old) = DevnetFile::load(&a.out) {
            if let Some(info) = old.anvil.as_ref().filter(|i| anvil_alive(i)) {
                return Err(Exit::usage(format!(
                    "{} describes a running devnet (anvil pid {}); run `collective dev down --devnet {}` first",
                    a.out.display(),
                    info.pid,
                    a.out.display()
                )));
            }
        }
    }
    let governance = GovernanceParams {
        voting_delay: a.voting_delay,
        voting_period: a.voting_period,
        timelock_delay: a.timelock_delay,
        ..GovernanceParams::default()
    };
    let (rpc_url, anvil) = match &a.rpc {
        Some(url) => (url.clone(), None),
        None => {
            if std::net::TcpListener::bind(("127.0.0.1", a.port)).is_err() {
                return Err(Exit::usage(format!(
                    "port {} is in use; pass --port N, or --rpc URL to use a chain already running there",
                    a.port
                )));
            }
            let log = log_path(&a.out);
            out.say(format!(
                "starting anvil on port {} (log: {})",
                a.port,
                log.display()
            ));
            let opts = AnvilOptions {
                port: Some(a.port),
                chain_id: None,
                log: Some(log),
                detached: true,
            };
            let p = AnvilProcess::spawn(&opts).await.map_err(chain_err)?;
            (p.url().to_string(), Some(p))
        }
    };
    out.say(format!("deploying the suite on {rpc_url}"));
    // If deployment fails, dropping `anvil` stops it: no stray chain.
    let mut file = devnet::deploy_demo(&rpc_url, governance)
        .await
        .map_err(chain_err)?;
    if let Some(p) = anvil {
        let log = log_path(&a.out);
        let port = p.port();
        let pid = p.detach();
        file.anvil = Some(AnvilInfo {
            pid,
            port,
            log: Some(log),
        });
    }
    file.save(&a.out).map_err(chain_err)?;

    let d = &file.deployment;
    let human = {
        let mut s = format!(
            "devnet up: chain id {} at {} (deploy block {})\nwrote {}\n",
            d.chain_id,
            d.rpc_url,
            d.deploy_block,
            a.out.display()
        );
        let ad = &d.addresses;
        for (n, v) in [
            ("token", ad.token),
            ("timelock", ad.timelock),
            ("governor", ad.governor),
            ("code_registry", ad.code_registry),
            ("node_registry", ad.node_registry),
            ("data_registry", ad.data_registry),
        ] {
            s.push_str(&format!("  {n:<14} {v}\n"));
        }
        s.push_str("accounts (anvil test keys):\n");
        for acc in &file.accounts {
            s.push_str(&format!("  {:<12} {}\n", acc.name, acc.address));
        }
        if let Some(i) = &file.anvil {
            s.push_str(&format!(
                "anvil pid {}; stop with `collective dev down --devnet {}`",
                i.pid,
                a.out.display()
            ));
        }
        s
    };
    out.result(
        &json!({ "devnet_file": a.out, "devnet": file }),
        human.trim_end(),
    )?;
    Ok(crate::exit::OK)
}

fn down(a: DownArgs, out: Output) -> anyhow::Result<u8> {
    if !a.devnet.exists() {
        return Err(Exit::usage(format!(
            "{} does not exist; nothing to stop",
            a.devnet.display()
        )));
    }
    let file = DevnetFile::load(&a.devnet).map_err(chain_err)?;
    let Some(info) = file.anvil else {
        return Err(Exit::usage(format!(
            "{} names no anvil started by `dev up` (it was created with --rpc); nothing to stop",
            a.devnet.display()
        )));
    };
    let stopped = devnet::stop_anvil(info.pid).map_err(chain_err)?;
    std::fs::remove_file(&a.devnet).with_context(|| format!("removing {}", a.devnet.display()))?;
    let human = if stopped {
        format!(
            "stopped anvil (pid {}); removed {}",
            info.pid,
            a.devnet.display()
        )
    } else {
        format!(
            "anvil (pid {}) was not running; removed {}",
            info.pid,
            a.devnet.display()
        )
    };
    out.result(
        &json!({ "pid": info.pid, "stopped": stopped, "removed": a.devnet }),
        human,
    )?;
    Ok(crate::exit::OK)
}
