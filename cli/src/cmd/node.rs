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
    /// Parse and validate a node config, then exit.
    Check(RunArgs),
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
        NodeCommand::Check(a) => {
            let cfg = load(&a.config)?;
            out.result(&cfg, format!("{}: ok", a.config.display()))?;
            Ok(crate::exit::OK)
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
