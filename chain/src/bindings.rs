//! Contract bindings generated at compile time from the committed forge
//! artifacts in `contracts/artifacts/` (ABI and bytecode). Binding the
//! committed files, not a build-time compile, keeps Rust builds independent of
//! the Solidity toolchain; `contracts/check-artifacts.sh` keeps the files
//! honest against the sources.
#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::too_many_arguments
)]

use alloy::sol;

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    CollectiveToken,
    "../contracts/artifacts/CollectiveToken.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    CollectiveGovernor,
    "../contracts/artifacts/CollectiveGovernor.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    TimelockController,
    "../contracts/artifacts/TimelockController.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    CodeRegistry,
    "../contracts/artifacts/CodeRegistry.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    NodeRegistry,
    "../contracts/artifacts/NodeRegistry.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    DataRegistry,
    "../contracts/artifacts/DataRegistry.json"
);
