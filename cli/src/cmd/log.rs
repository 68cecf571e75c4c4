//! `collective log`: single-entry proofs a node's user can keep and verify
//! alone, and the log's verifier key.

use std::path::PathBuf;

use anyhow::Context as _;
use collective_attest::ProofBundle;

use crate::cmd::audit::read_key;
use crate::cmd::log_source::source;
use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum LogCommand {
    /// Print a proof bundle (entry + inclusion proof + signed checkpoint) for one entry.
    Proof {
        /// Entry index.
        index: u64,
        /// The log: a directory or base URL.
        #[arg(long, value_name = "DIR_OR_URL")]
        log: String,
        /// The log's verifier key (checked before the bundle is produced).
        #[arg(long, value_name = "KEY")]
        log_key: String,
    },
    /// Verify a proof bundle alone: checkpoint signature, inclusion, entry signature.
    VerifyBundle {
        /// The bundle (JSON, as printed by `collective log proof`).
        file: PathBuf,
        #[arg(long, value_name = "KEY")]
        log_key: String,
    },
}

pub async fn run(c: LogCommand, out: Output) -> anyhow::Result<u8> {
    match c {
        LogCommand::Proof {
            index,
            log,
            log_key,
        } => {
            let vkey = read_key(&log_key)?;
            let bundle = tokio::task::spawn_blocking(move || -> anyhow::Result<ProofBundle> {
                let src = source(&log, Default::default())?;
                let cp = src
                    .read(collective_attest::tiles::CHECKPOINT_PATH)?
                    .ok_or_else(|| anyhow::anyhow!("{log}: no checkpoint"))?;
                ProofBundle::build(src.as_ref(), &cp, &vkey, index)
                    .map_err(|e| Exit::refused(e.to_string()))
            })
            .await??;
            // The bundle is a document either way: always JSON.
            let json = serde_json::to_string_pretty(&bundle)?;
            out.result(&bundle, json)?;
            Ok(crate::exit::OK)
        }
        LogCommand::VerifyBundle { file, log_key } => {
            let vkey = read_key(&log_key)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let bundle: ProofBundle = serde_json::from_str(&text)
                .map_err(|e| Exit::usage(format!("{}: not a proof bundle: {e}", file.display())))?;
            let st = bundle
                .verify(&vkey)
                .map_err(|e| Exit::refused(format!("proof bundle does not verify: {e}")))?;
            let p = &st.predicate;
            let human = format!(
                "VERIFIED: entry {} of {}: {} at {} ({})",
                bundle.index, p.log_origin, p.decision, p.time, p.reason
            );
            out.result(&st, human)?;
            Ok(crate::exit::OK)
        }
    }
}
