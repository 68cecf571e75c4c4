//! `collective config --default`: print a commented default node config.

use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the commented default configuration.
    #[arg(long)]
    pub default: bool,
}

pub async fn run(a: Args, out: Output) -> anyhow::Result<u8> {
    if !a.default {
        return Err(Exit::usage(
            "nothing to do: pass --default (or use `collective node check --config FILE`)",
        ));
    }
    let text = collective_controller::DEFAULT_CONFIG_YAML;
    out.result(&serde_json::json!({ "yaml": text }), text.trim_end())?;
    Ok(crate::exit::OK)
}
