//! `collective tree-id`.

use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args, _out: Output) -> anyhow::Result<u8> {
    anyhow::bail!("tree-id is not implemented yet")
}
