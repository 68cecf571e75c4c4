//! `ChainClient`: typed reads and writes over the suite.
//!
//! Security argument (reads): every approval, pause and contribution read
//! takes a confirmation depth and is answered by an `eth_call` at block
//! `head - confirmations`. The answer is therefore a pure function of the
//! canonical chain at that height: after a reorg removes an approval, the next
//! read simply no longer sees it. Callers stay level-triggered (re-read,
//! never remember "it was approved once"), so no reorg bookkeeping is needed
//! for correctness; `events::EventWatcher` only provides hints.

use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::{Filter, Log, TransactionReceipt};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolInterface;
use alloy::transports::http::reqwest;

use crate::bindings::{
    CodeRegistry, CollectiveGovernor, DataRegistry, NodeRegistry, TimelockController,
};
use crate::error::{ChainError, Result};
use crate::types::*;

mod pinned;

/// Connection to one RPC endpoint and one deployed suite. Cheap to clone.
#[derive(Clone)]
pub struct ChainClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) url: String,
    pub(crate) provider: DynProvider,
    pub(crate) addresses: Addresses,
    pub(crate) sender: Option<Address>,
    pub(crate) from_block: u64,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("url", &self.inner.url)
            .field("addresses", &self.inner.addresses)
            .field("sender", &self.inner.sender)
            .finish()
    }
}

/// Turns revert data into `ErrorName { fields }` by trying every contract's
/// custom errors (a Governor call can bubble up a Timelock or registry error).
pub(crate) fn decode_revert(data: &[u8]) -> Option<String> {
    fn strip(s: String) -> String {
        // `Variant(Variant { .. })` -> `Variant { .. }`
        match (s.find('('), s.ends_with(')')) {
            (Some(i), true) => s[i + 1..s.len() - 1].to_string(),
            _ => s,
        }
    }
    macro_rules! try_decode {
        ($($t:ty),*) => {$(
            if let Ok(e) = <$t>::abi_decode(data) { return Some(strip(format!("{e:?}"))); }
        )*};
    }
    try_decode!(
        CodeRegistry::CodeRegistryErrors,
        NodeRegistry::NodeRegistryErrors,
        DataRegistry::DataRegistryErrors,
        CollectiveGovernor::CollectiveGovernorErrors,
        TimelockController::TimelockControllerErrors
    );
    if let Ok(s) = <alloy::sol_types::Revert as alloy::sol_types::SolError>::abi_decode(data) {
        return Some(format!("reverted: {}", s.reason));
    }
    None
}

pub(crate) fn describe(e: &alloy::contract::Error) -> String {
    if let Some(data) = e.as_revert_data() {
        if let Some(s) = decode_revert(&data) {
            return s;
        }
        return format!("reverted with data {data}");
    }
    e.to_string()
}

/// An HTTP provider (with a wallet filler when a signer is given) that has
/// answered `eth_chainId`. Timeouts keep an unreachable endpoint from hanging
/// a command.
pub(crate) async fn build_provider(
    rpc_url: &str,
    signer: Option<PrivateKeySigner>,
) -> Result<DynProvider> {
    let url: reqwest::Url = rpc_url.parse().map_err(|e| ChainError::InvalidUrl {
        url: rpc_url.into(),
        reason: format!("{e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ChainError::InvalidUrl {
            url: rpc_url.into(),
            reason: "only http:// and https:// endpoints are supported".into(),
        });
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| ChainError::InvalidUrl {
            url: rpc_url.into(),
            reason: e.to_string(),
        })?;
    let rpc = RpcClient::new_http_with_client(http, url);
    let provider = match signer {
        // Nonces are fetched per transaction (not cached): a write refused at
        // gas estimation must not leave a gap that strands the next one.
        Some(s) => ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(s))
            .connect_client(rpc)
            .erased(),
        None => ProviderBuilder::new().connect_client(rpc).erased(),
    };
    provider
        .get_chain_id()
        .await
        .map_err(|source| ChainError::Unreachable {
            url: rpc_url.into(),
            call: "eth_chainId",
            source,
        })?;
    Ok(provider)
}

/// Polls for a transaction's receipt. Polling `eth_getTransactionReceipt`
/// directly (instead of alloy's block-watching heartbeat) behaves the same on
/// anvil after `evm_increaseTime`/`evm_revert`, and gives up with a message
/// instead of waiting forever.
pub(crate) async fn wait_receipt(
    provider: &DynProvider,
    url: &str,
    tx: B256,
) -> std::result::Result<TransactionReceipt, String> {
    let deadline = std::time::Instant::now() + RECEIPT_TIMEOUT;
    let mut delay = Duration::from_millis(20);
    loop {
        match provider.get_transaction_receipt(tx).await {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            Err(e) => tracing::debug!(%tx, url, error = %e, "receipt poll failed; retrying"),
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "transaction {tx} not mined after {}s",
                RECEIPT_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// How long a write waits to be mined.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(120);

impl ChainClient {
    /// Connects to `rpc_url` and checks that it answers. With a signer the
    /// client can send transactions from that key.
    pub async fn connect(
        rpc_url: &str,
        addresses: Addresses,
        signer: Option<PrivateKeySigner>,
    ) -> Result<Self> {
        let sender = signer.as_ref().map(|s| s.address());
        let provider = build_provider(rpc_url, signer).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: rpc_url.into(),
                provider,
                addresses,
                sender,
                from_block: 0,
            }),
        })
    }

    /// Like [`connect`](Self::connect), then refuses an endpoint serving
    /// another chain, and addresses with no contract code.
    pub async fn connect_checked(
        rpc_url: &str,
        addresses: Addresses,
        signer: Option<PrivateKeySigner>,
        expected_chain_id: u64,
    ) -> Result<Self> {
        let c = Self::connect(rpc_url, addresses, signer).await?;
        let actual = c.chain_id().await?;
        if actual != expected_chain_id {
            return Err(ChainError::WrongChain {
                url: rpc_url.into(),
                expected: expected_chain_id,
                actual,
            });
        }
        c.check_code().await?;
        Ok(c)
    }

    /// Connects to a deployment (its URL and chain id), checked.
    pub async fn connect_deployment(
        d: &Deployment,
        signer: Option<PrivateKeySigner>,
    ) -> Result<Self> {
        Ok(
            Self::connect_checked(&d.rpc_url, d.addresses, signer, d.chain_id)
                .await?
                .with_from_block(d.deploy_block),
        )
    }

    /// Builds the suite's addresses from the Governor alone (its token and
    /// timelock) plus the registries the caller knows; unknown registries are
    /// left as the zero address. For tools given only `--governor`.
    pub async fn discover(
        rpc_url: &str,
        governor: Address,
        code_registry: Option<Address>,
    ) -> Result<Addresses> {
        let p = build_provider(rpc_url, None).await?;
        let code = p
            .get_code_at(governor)
            .await
            .map_err(|source| ChainError::Rpc {
                url: rpc_url.into(),
                call: "eth_getCode",
                source,
            })?;
        if code.is_empty() {
            return Err(ChainError::NotAContract {
                url: rpc_url.into(),
                contract: "CollectiveGovernor",
                address: governor,
            });
        }
        let g = CollectiveGovernor::new(governor, &p);
        let err = |call: &'static str, e: alloy::contract::Error| ChainError::Contract {
            url: rpc_url.into(),
            contract: "CollectiveGovernor",
            address: governor,
            call,
            reason: describe(&e),
        };
        let token = g.token().call().await.map_err(|e| err("token", e))?;
        let timelock = g.timelock().call().await.map_err(|e| err("timelock", e))?;
        Ok(Addresses {
            token,
            timelock,
            governor,
            code_registry: code_registry.unwrap_or_default(),
            ..Addresses::default()
        })
    }

    /// Sets the first block event and proposal scans look at (the deploy block).
    pub fn with_from_block(self, from_block: u64) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Inner {
                url: i.url.clone(),
                provider: i.provider.clone(),
                addresses: i.addresses,
                sender: i.sender,
                from_block,
            }),
        }
    }

    /// Fails if any configured address holds no code.
    pub async fn check_code(&self) -> Result<()> {
        let a = self.inner.addresses;
        for (contract, address) in [
            ("CollectiveToken", a.token),
            ("TimelockController", a.timelock),
            ("CollectiveGovernor", a.governor),
            ("CodeRegistry", a.code_registry),
            ("NodeRegistry", a.node_registry),
            ("DataRegistry", a.data_registry),
        ] {
            let code = self
                .inner
                .provider
                .get_code_at(address)
                .await
                .map_err(|e| self.rpc("eth_getCode", e))?;
            if code.is_empty() {
                return Err(ChainError::NotAContract {
                    url: self.inner.url.clone(),
                    contract,
                    address,
                });
            }
        }
        Ok(())
    }

    /// The RPC URL this client talks to.
    pub fn rpc_url(&self) -> &str {
        &self.inner.url
    }

    /// The suite's addresses.
    pub fn addresses(&self) -> &Addresses {
        &self.inner.addresses
    }

    /// The signing address, if any.
    pub fn sender(&self) -> Option<Address> {
        self.inner.sender
    }

    /// The underlying provider, for callers needing raw RPC (tests, tools).
    pub fn provider(&self) -> &DynProvider {
        &self.inner.provider
    }

    /// `eth_getLogs`; an RPC failure names the endpoint.
    pub(crate) async fn logs(&self, filter: &Filter) -> Result<Vec<Log>> {
        self.inner
            .provider
            .get_logs(filter)
            .await
            .map_err(|e| self.rpc("eth_getLogs", e))
    }

    pub(crate) fn rpc(
        &self,
        call: &'static str,
        source: alloy::transports::TransportError,
    ) -> ChainError {
        ChainError::Rpc {
            url: self.inner.url.clone(),
            call,
            source,
        }
    }

    pub(crate) fn contract_err(
        &self,
        contract: &'static str,
        address: Address,
        call: &'static str,
        e: &alloy::contract::Error,
    ) -> ChainError {
        ChainError::Contract {
            url: self.inner.url.clone(),
            contract,
            address,
            call,
            reason: describe(e),
        }
    }

    pub(crate) fn require_signer(&self, call: &'static str) -> Result<()> {
        match self.inner.sender {
            Some(_) => Ok(()),
            None => Err(ChainError::NoSigner { call }),
        }
    }

    /// The chain id the endpoint reports.
    pub async fn chain_id(&self) -> Result<u64> {
        self.inner
            .provider
            .get_chain_id()
            .await
            .map_err(|e| self.rpc("eth_chainId", e))
    }

    /// The current head block number.
    pub async fn block_number(&self) -> Result<u64> {
        self.inner
            .provider
            .get_block_number()
            .await
            .map_err(|e| self.rpc("eth_blockNumber", e))
    }

    /// The hash and timestamp of canonical block `n`, if it exists.
    pub async fn block_hash(&self, n: u64) -> Result<Option<(B256, u64)>> {
        Ok(self.block_ref(n).await?.map(|b| (b.hash, b.timestamp)))
    }

    /// The block `confirmations` below head, or `None` if the chain is shorter.
    pub async fn confirmed_block(&self, confirmations: u64) -> Result<Option<u64>> {
        Ok(self.block_number().await?.checked_sub(confirmations))
    }

    pub(crate) async fn finish_tx(
        &self,
        contract: &'static str,
        address: Address,
        call: &'static str,
        sent: std::result::Result<
            alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
            alloy::contract::Error,
        >,
    ) -> Result<(TxRef, TransactionReceipt)> {
        let pending = sent.map_err(|e| self.contract_err(contract, address, call, &e))?;
        let receipt = wait_receipt(&self.inner.provider, &self.inner.url, *pending.tx_hash())
            .await
            .map_err(|reason| ChainError::Contract {
                url: self.inner.url.clone(),
                contract,
                address,
                call,
                reason,
            })?;
        if !receipt.status() {
            return Err(ChainError::Reverted {
                url: self.inner.url.clone(),
                contract,
                call,
                tx_hash: receipt.transaction_hash,
            });
        }
        let tx = TxRef {
            tx_hash: receipt.transaction_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            block_hash: receipt.block_hash.unwrap_or_default(),
        };
        tracing::debug!(contract, call, tx = %tx.tx_hash, block = tx.block_number, "transaction mined");
        Ok((tx, receipt))
    }

    fn code(&self) -> CodeRegistry::CodeRegistryInstance<&DynProvider> {
        CodeRegistry::new(self.inner.addresses.code_registry, &self.inner.provider)
    }

    fn nodes(&self) -> NodeRegistry::NodeRegistryInstance<&DynProvider> {
        NodeRegistry::new(self.inner.addresses.node_registry, &self.inner.provider)
    }

    fn data(&self) -> DataRegistry::DataRegistryInstance<&DynProvider> {
        DataRegistry::new(self.inner.addresses.data_registry, &self.inner.provider)
    }

    // ---- CodeRegistry ----

    /// The approval record of a tree as of block `head - confirmations`
    /// (level-triggered; a reorg simply changes the answer). `None` if the
    /// tree was never approved at that height, or the chain is shorter than
    /// the depth. Revoked and expired records are returned with their flags.
    #[tracing::instrument(skip(self), fields(url = %self.inner.url))]
    pub async fn approval(
        &self,
        tree_sha256: B256,
        confirmations: u64,
    ) -> Result<Option<Approval>> {
        match self.confirmed_block(confirmations).await? {
            Some(at) => self.approval_at_block(tree_sha256, at).await,
            None => Ok(None),
        }
    }

    /// The approval record of a tree as of block `block`.
    pub async fn approval_at_block(
        &self,
        tree_sha256: B256,
        block: u64,
    ) -> Result<Option<Approval>> {
        self.approval_at_id(tree_sha256, BlockId::number(block))
            .await
    }

    /// The contract's own verdict (known, unrevoked, unexpired, not paused)
    /// at block `head - confirmations`; false if the chain is shorter.
    pub async fn is_approved(&self, tree_sha256: B256, confirmations: u64) -> Result<bool> {
        let Some(at) = self.confirmed_block(confirmations).await? else {
            return Ok(false);
        };
        let addr = self.inner.addresses.code_registry;
        self.code()
            .isApproved(tree_sha256)
            .block(BlockId::number(at))
            .call()
            .await
            .map_err(|e| self.contract_err("CodeRegistry", addr, "isApproved", &e))
    }

    /// Whether the registry is paused at block `head - confirmations`. A
    /// chain shorter than the depth reads as paused (fail closed).
    pub async fn paused(&self, confirmations: u64) -> Result<bool> {
        let Some(at) = self.confirmed_block(confirmations).await? else {
            return Ok(true);
        };
        let addr = self.inner.addresses.code_registry;
        self.code()
            .paused()
            .block(BlockId::number(at))
            .call()
            .await
            .map_err(|e| self.contract_err("CodeRegistry", addr, "paused", &e))
    }

    /// All trees ever approved (including later revoked ones), at head.
    pub async fn approved_trees(&self) -> Result<Vec<B256>> {
        let addr = self.inner.addresses.code_registry;
        let n = self
            .code()
            .approvalCount()
            .call()
            .await
            .map_err(|e| self.contract_err("CodeRegistry", addr, "approvalCount", &e))?;
        let mut out = Vec::new();
        for i in 0..n.to::<u64>() {
            out.push(
                self.code()
                    .treeAt(U256::from(i))
                    .call()
                    .await
                    .map_err(|e| self.contract_err("CodeRegistry", addr, "treeAt", &e))?,
            );
        }
        Ok(out)
    }

    /// Revoke (owner or guardian key).
    pub async fn revoke(&self, tree_sha256: B256, reason: &str) -> Result<TxRef> {
        self.require_signer("CodeRegistry.revoke")?;
        let addr = self.inner.addresses.code_registry;
        let sent = self
            .code()
            .revoke(tree_sha256, reason.to_string())
            .send()
            .await;
        Ok(self
            .finish_tx("CodeRegistry", addr, "revoke", sent)
            .await?
            .0)
    }

    /// Pause (owner or guardian key).
    pub async fn pause(&self) -> Result<TxRef> {
        self.require_signer("CodeRegistry.pause")?;
        let addr = self.inner.addresses.code_registry;
        let sent = self.code().pause().send().await;
        Ok(self.finish_tx("CodeRegistry", addr, "pause", sent).await?.0)
    }

    /// ABI-encoded `CodeRegistry.approve(...)` for a proposal.
    pub fn approve_calldata(req: &ApprovalRequest) -> Bytes {
        use alloy::sol_types::SolCall;
        CodeRegistry::approveCall {
            treeSha256: req.tree_sha256,
            treeSha1: req.tree_sha1,
            recipients: req.recipients.clone(),
            expiresAt: req.expires_at,
            uri: req.uri.clone(),
        }
        .abi_encode()
        .into()
    }

    /// ABI-encoded `CodeRegistry.unpause()` for a proposal (only the DAO resumes).
    pub fn unpause_calldata() -> Bytes {
        use alloy::sol_types::SolCall;
        CodeRegistry::unpauseCall {}.abi_encode().into()
    }

    // ---- NodeRegistry ----

    /// Anchor a log checkpoint (operator key).
    pub async fn anchor_checkpoint(&self, node_id: B256, size: u64, root: B256) -> Result<TxRef> {
        self.require_signer("NodeRegistry.anchorCheckpoint")?;
        let addr = self.inner.addresses.node_registry;
        let sent = self
            .nodes()
            .anchorCheckpoint(node_id, size, root)
            .send()
            .await;
        Ok(self
            .finish_tx("NodeRegistry", addr, "anchorCheckpoint", sent)
            .await?
            .0)
    }

    /// Every anchor of a node, oldest first, at head.
    pub async fn anchors(&self, node_id: B256) -> Result<Vec<Anchor>> {
        let addr = self.inner.addresses.node_registry;
        let n = self
            .nodes()
            .anchorCount(node_id)
            .call()
            .await
            .map_err(|e| self.contract_err("NodeRegistry", addr, "anchorCount", &e))?;
        let mut out = Vec::new();
        for i in 0..n.to::<u64>() {
            let a = self
                .nodes()
                .anchorAt(node_id, U256::from(i))
                .call()
                .await
                .map_err(|e| self.contract_err("NodeRegistry", addr, "anchorAt", &e))?;
            out.push(Anchor {
                size: a.size,
                root: a.root,
                block_number: a.blockNumber,
                timestamp: a.timestamp,
            });
        }
        Ok(out)
    }

    /// The latest anchor of a node, if any.
    pub async fn latest_anchor(&self, node_id: B256) -> Result<Option<Anchor>> {
        Ok(self.anchors(node_id).await?.pop())
    }

    /// A node's record, `None` if unregistered.
    pub async fn node(&self, node_id: B256) -> Result<Option<NodeRecord>> {
        let addr = self.inner.addresses.node_registry;
        let n = self
            .nodes()
            .getNode(node_id)
            .call()
            .await
            .map_err(|e| self.contract_err("NodeRegistry", addr, "getNode", &e))?;
        if n.registeredBlock == 0 {
            return Ok(None);
        }
        Ok(Some(NodeRecord {
            encryption_recipient: n.encryptionRecipient,
            log_public_key: n.logPublicKey,
            endpoint: n.endpoint,
            operator: n.operator,
            registered_block: n.registeredBlock,
        }))
    }

    /// ABI-encoded `NodeRegistry.registerNode(...)` for a proposal.
    pub fn register_node_calldata(node_id: B256, record: &NodeRecord) -> Bytes {
        use alloy::sol_types::SolCall;
        NodeRegistry::registerNodeCall {
            nodeId: node_id,
            encryptionRecipient: record.encryption_recipient.clone(),
            logPublicKey: record.log_public_key.clone(),
            endpoint: record.endpoint.clone(),
            operator: record.operator,
        }
        .abi_encode()
        .into()
    }

    // ---- DataRegistry ----

    /// The contributions to a node at block `head - confirmations`
    /// (withdrawn ones included, flagged). Empty if the chain is shorter.
    pub async fn contributions(
        &self,
        node_id: B256,
        confirmations: u64,
    ) -> Result<Vec<Contribution>> {
        let Some(at) = self.confirmed_block(confirmations).await? else {
            return Ok(Vec::new());
        };
        self.contributions_at_id(node_id, BlockId::number(at)).await
    }

    /// Register a ciphertext encrypted to `node_id` (contributor key).
    pub async fn contribute(
        &self,
        sha256: B256,
        uri: &str,
        size: u64,
        node_id: B256,
    ) -> Result<TxRef> {
        self.require_signer("DataRegistry.contribute")?;
        let addr = self.inner.addresses.data_registry;
        let sent = self
            .data()
            .contribute(sha256, uri.to_string(), size, node_id)
            .send()
            .await;
        Ok(self
            .finish_tx("DataRegistry", addr, "contribute", sent)
            .await?
            .0)
    }

    /// Withdraw a contribution (its contributor's key only).
    pub async fn withdraw(&self, sha256: B256) -> Result<TxRef> {
        self.require_signer("DataRegistry.withdraw")?;
        let addr = self.inner.addresses.data_registry;
        let sent = self.data().withdraw(sha256).send().await;
        Ok(self
            .finish_tx("DataRegistry", addr, "withdraw", sent)
            .await?
            .0)
    }
}
