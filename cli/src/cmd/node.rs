//! `collective node run --config node.yaml`: run the controller.

use std::path::PathBuf;

use anyhow::Context;
use collective_controller::{CancellationToken, Node, NodeConfig};

use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Run the node: watch the repository and the chain, deploy approved
    /// trees, run their jobs sandboxed, log every decision, serve the API.
    Run(RunArgs),
    /// Check everything the node needs without starting it: the config, the
    /// keys, the deployment, the chain, the node's on-chain registration and
    /// the sandbox (a probe job). Exit 2 if any check fails.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Only parse and validate the config.
    #[arg(long)]
    pub config_only: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The node configuration (see `collective config --default`).
    #[arg(long, short, default_value = "node.yaml")]
    pub config: PathBuf,
}

fn load(path: &std::path::Path) -> anyhow::Result<NodeConfig> {
    NodeConfig::load(path).map_err(|e| Exit::usage(e.to_string()))
}

pub async fn run(c: NodeCommand, out: Output) -> anyhow::Result<u8> {
    match c {
        NodeCommand::Check(CheckArgs {
            run: a,
            config_only,
        }) => {
            let cfg = load(&a.config)?;
            if config_only {
                out.result(&cfg, format!("{}: ok", a.config.display()))?;
                return Ok(crate::exit::OK);
            }
            let checks = collective_controller::check::run(&cfg).await;
            let mut human = format!("{}: config ok\n", a.config.display());
            for c in &checks {
                human.push_str(&format!(
                    "{} {}: {}\n",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                ));
            }
            let ok = checks.iter().all(|c| c.ok);
            out.result(&checks, human.trim_end().to_string())?;
            Ok(if ok {
                crate::exit::OK
            } else {
                crate::exit::REFUSED
            })
        }
        NodeCommand::Run(a) => {
            let cfg = load(&a.config)?;
            let listen = cfg.http.listen.clone();
            let node = Node::start(cfg).await.context("starting the node")?;
            out.say(format!("collective node listening on http://{listen}"));
            let shutdown = CancellationToken::new();
            let sd = shutdown.clone();
            tokio::spawn(async move {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                }
                sd.cancel();
            });
            node.run(shutdown).await.context("running the node")?;
            Ok(crate::exit::OK)
        }
    }
}
