//! `collective dev up|down`.

use crate::output::Output;

#[derive(Debug, clap::Subcommand)]
pub enum DevCommand {
    /// Start anvil and deploy the suite.
    Up,
}

pub async fn run(_c: DevCommand, _out: Output) -> anyhow::Result<u8> {
    anyhow::bail!("dev is not implemented yet")
}
