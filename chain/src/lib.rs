//! collective-chain: the only crate that knows the contracts' ABI.
//!
//! - [`ChainClient`]: typed reads at a confirmation depth (approvals, pause,
//!   nodes, anchors, contributions) and writes (anchor, contribute, withdraw,
//!   revoke, pause), plus the Governor flow (propose, vote, queue, execute).
//! - [`events::EventWatcher`]: registry events with confirmations and reorg
//!   detection.
//! - `devnet` (cargo feature `devnet`, off in the node): anvil, suite
//!   deployment, demo accounts, time travel.
//!
//! Bindings are generated from the committed artifacts in
//! `contracts/artifacts/`.

pub mod bindings;
mod client;
#[cfg(feature = "devnet")]
pub mod devnet;
mod error;
pub mod events;
mod governor;
mod types;

/// The alloy this crate is built on, for callers needing raw types.
pub use alloy;
pub use alloy::primitives::{Address, FixedBytes, B256, U256};
pub use alloy::signers::local::PrivateKeySigner;
pub use client::ChainClient;
pub use error::{ChainError, Result};
pub use events::{ChainEvent, EventPos, EventWatcher};
pub use types::*;
