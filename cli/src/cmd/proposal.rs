//! `collective proposal ...`.

use crate::output::Output;

#[derive(Debug, clap::Subcommand)]
pub enum ProposalCommand {
    /// Show a proposal's state.
    Status,
}

pub async fn run(_c: ProposalCommand, _out: Output) -> anyhow::Result<u8> {
    anyhow::bail!("proposal is not implemented yet")
}
