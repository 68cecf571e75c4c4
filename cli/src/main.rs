//! `collective`: the command-line front end. Thin by design: parsing,
//! output and exit codes live here; all behaviour lives in the library
//! crates so it is tested without a terminal.

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Output;

/// Exit codes shared by every command (see DESIGN.md, Conventions).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    /// A verification failed or policy refused.
    pub const REFUSED: u8 = 2;
    /// Bad usage or bad configuration.
    pub const USAGE: u8 = 64;
}

/// An error that carries its own exit code (usage, refusal); anything else
/// exits 1.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

impl Exit {
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: exit::USAGE,
            message: message.into(),
        })
    }
    pub fn refused(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: exit::REFUSED,
            message: message.into(),
        })
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "collective",
    version,
    about = "A community-owned dataset, computed on only by DAO-approved code"
)]
struct Cli {
    /// Print results as JSON for scripts.
    #[arg(long, global = true)]
    json: bool,
    /// Log format for diagnostics on stderr (`RUST_LOG` sets the filter).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Local devnet: start anvil, deploy the contracts, write devnet.yaml.
    #[command(subcommand)]
    Dev(cmd::dev::DevCommand),
    /// Print the sha1 and sha256 tree ids of a commit or a directory.
    TreeId(cmd::tree_id::Args),
    /// DAO proposals that approve a tree: submit, vote, queue, execute, status.
    #[command(subcommand)]
    Proposal(cmd::proposal::ProposalCommand),
    /// GitHub pull requests: post tree ids, approval status and the proposal command.
    #[command(subcommand)]
    Github(cmd::github::GithubCommand),
    /// Verify a node's log: signatures, consistency with what you saw before and with
    /// on-chain anchors, approvals, and the repository. Exit 0 verified, 2 failed, 1 could not run.
    Audit(cmd::audit::Args),
    /// Single-entry proof bundles of a node's log.
    #[command(subcommand)]
    Log(cmd::log::LogCommand),
    /// Node keys: create them, show the public halves.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Encrypt files to a node, store the ciphertexts, optionally register them on-chain.
    Contribute(cmd::contribute::Args),
    /// Run a node: `collective node run --config node.yaml`.
    #[command(subcommand)]
    Node(cmd::node::NodeCommand),
    /// Node configuration: `collective config --default` prints a commented default.
    Config(cmd::config::Args),
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.log_format);
    let out = Output::new(cli.json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            report(&anyhow::Error::new(e));
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli.command, out)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e);
            let code = e.downcast_ref::<Exit>().map_or(exit::FAILURE, |x| x.code);
            ExitCode::from(code)
        }
    }
}

/// One line per error, outermost cause first: `error: a: b: c`.
fn report(e: &anyhow::Error) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("error: {e:#}");
    }
}

async fn run(command: Command, out: Output) -> anyhow::Result<u8> {
    match command {
        Command::Dev(c) => cmd::dev::run(c, out).await,
        Command::TreeId(a) => cmd::tree_id::run(a, out).await,
        Command::Proposal(c) => cmd::proposal::run(c, out).await,
        Command::Github(c) => cmd::github::run(c, out).await,
        Command::Audit(a) => cmd::audit::run(a, out).await,
        Command::Log(c) => cmd::log::run(c, out).await,
        Command::Keys(c) => cmd::keys::run(c, out).await,
        Command::Contribute(a) => cmd::contribute::run(a, out).await,
        Command::Node(c) => cmd::node::run(c, out).await,
        Command::Config(a) => cmd::config::run(a, out).await,
    }
}
