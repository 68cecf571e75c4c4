//! The one error type of this crate. Every variant names where it happened
//! (RPC URL, contract, call) so an operator reading a one-line error knows
//! which node, which contract and which step to look at.

use alloy::primitives::{Address, B256, U256};
use std::path::PathBuf;

/// Everything that can go wrong talking to the chain or running a devnet.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC URL does not parse.
    #[error("invalid RPC URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The RPC endpoint did not answer (refused, timed out, not JSON-RPC).
    #[error("RPC {url} is unreachable ({call}): {}", root_cause(.source))]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The first call that failed.
        call: &'static str,
        /// The transport error.
        #[source]
        source: alloy::transports::TransportError,
    },
    /// The endpoint serves another chain than the configuration expects:
    /// acting on it would read approvals from the wrong DAO.
    #[error("RPC {url} serves chain id {actual}, expected {expected}")]
    WrongChain {
        /// The endpoint.
        url: String,
        /// The configured chain id.
        expected: u64,
        /// The chain id the endpoint reported.
        actual: u64,
    },
    /// A configured contract address holds no code on this chain.
    #[error("RPC {url}: no {contract} contract at {address} (wrong address or chain?)")]
    NotAContract {
        /// The endpoint.
        url: String,
        /// Which contract was expected.
        contract: &'static str,
        /// The configured address.
        address: Address,
    },
    /// A plain JSON-RPC call (not a contract call) failed.
    #[error("RPC {url}: {call} failed: {}", root_cause(.source))]
    Rpc {
        /// The endpoint.
        url: String,
        /// The JSON-RPC method or step.
        call: &'static str,
        /// The transport error.
        #[source]
        source: alloy::transports::TransportError,
    },
    /// A contract call or transaction was refused or failed.
    #[error("RPC {url}: {contract}.{call} at {address} failed: {reason}")]
    Contract {
        /// The endpoint.
        url: String,
        /// Contract name.
        contract: &'static str,
        /// Contract address.
        address: Address,
        /// Function name.
        call: &'static str,
        /// The decoded revert (custom error name and fields) or the RPC error.
        reason: String,
    },
    /// A transaction was mined but reverted.
    #[error("RPC {url}: {contract}.{call} transaction {tx_hash} reverted")]
    Reverted {
        /// The endpoint.
        url: String,
        /// Contract name.
        contract: &'static str,
        /// Function name.
        call: &'static str,
        /// The mined transaction.
        tx_hash: B256,
    },
    /// The Governor knows no proposal with this id.
    #[error("RPC {url}: unknown proposal id {id}")]
    UnknownProposal {
        /// The endpoint.
        url: String,
        /// The proposal id asked for.
        id: U256,
    },
    /// A write was requested from a client connected without a signer.
    #[error("{call} sends a transaction and needs a signing key; none was given")]
    NoSigner {
        /// The write that was attempted.
        call: &'static str,
    },
    /// The chain changed under a multi-step read (a reorg between calls);
    /// callers retry, since every read here is level-triggered.
    #[error("RPC {url}: inconsistent chain view: {what}")]
    Inconsistent {
        /// The endpoint.
        url: String,
        /// What did not match.
        what: String,
    },
    /// A value given by a user or config file is malformed.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidInput {
        /// Which input (e.g. `tree sha256`).
        field: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// anvil could not be started.
    #[error("cannot start anvil at {path}: {reason}")]
    Anvil {
        /// The anvil binary.
        path: PathBuf,
        /// What went wrong (includes the tail of anvil's output).
        reason: String,
    },
    /// A devnet file could not be read or written.
    #[error("devnet file {path}: {reason}")]
    DevnetFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The innermost message of an error chain: for a refused connection that is
/// "Connection refused", not three layers of "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Result alias for this crate.
pub type Result<T, E = ChainError> = std::result::Result<T, E>;
