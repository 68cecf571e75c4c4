//! One module per top-level command. Each exposes its clap arguments and an
//! async `run(args, out) -> anyhow::Result<u8>` returning the exit code.

pub mod audit;
pub mod config;
pub mod contribute;
pub mod dev;
pub mod github;
pub mod keys;
pub mod log;
pub mod node;
pub mod proposal;
pub mod tree_id;
