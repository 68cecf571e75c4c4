//! Reads pinned to one block by its hash.
//!
//! Security argument. A controller snapshot must not mix heights: an
//! approval read at one block and the pause flag at another can together
//! describe a state the chain was never in. Every read here names its
//! block by hash (EIP-1898), so one snapshot sees one state; if a reorg
//! replaces the block between two reads, the node answers "unknown block"
//! and the caller's whole snapshot fails (it takes no action and reads
//! again), rather than silently reading the new chain at the same number.

use alloy::eips::BlockId;
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use futures::{StreamExt, TryStreamExt};

use super::ChainClient;
use crate::bindings::CodeRegistry;
use crate::error::{ChainError, Result};
use crate::types::{Approval, BlockRef, Contribution};

/// Contribution records fetched at once: bounded so a large registry does
/// not open hundreds of requests to the RPC at the same time.
const CONTRIBUTIONS_IN_FLIGHT: usize = 16;

fn at(b: &BlockRef) -> BlockId {
    BlockId::hash(b.hash)
}

impl ChainClient {
    /// The head block: number, hash and time in one request, so a probe
    /// sees a same-height reorg (a new hash at an old number).
    pub async fn head_block(&self) -> Result<BlockRef> {
        let b = self
            .inner
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| self.rpc("eth_getBlockByNumber", e))?
            .ok_or_else(|| ChainError::Inconsistent {
                url: self.inner.url.clone(),
                what: "the node has no latest block".into(),
            })?;
        Ok(BlockRef {
            number: b.header.number,
            hash: b.header.hash,
            timestamp: b.header.timestamp,
        })
    }

    /// Canonical block `n`, if the chain has it.
    pub async fn block_ref(&self, n: u64) -> Result<Option<BlockRef>> {
        let b = self
            .inner
            .provider
            .get_block_by_number(n.into())
            .await
            .map_err(|e| self.rpc("eth_getBlockByNumber", e))?;
        Ok(b.map(|b| BlockRef {
            number: b.header.number,
            hash: b.header.hash,
            timestamp: b.header.timestamp,
        }))
    }

    /// A tree's approval record in block `b`.
    pub async fn approval_in(&self, tree_sha256: B256, b: &BlockRef) -> Result<Option<Approval>> {
        self.approval_at_id(tree_sha256, at(b)).await
    }

    pub(super) async fn approval_at_id(
        &self,
        tree_sha256: B256,
        block: BlockId,
    ) -> Result<Option<Approval>> {
        let addr = self.inner.addresses.code_registry;
        let a = self
            .code()
            .getApproval(tree_sha256)
            .block(block)
            .call()
            .await
            .map_err(|e| self.contract_err("CodeRegistry", addr, "getApproval", &e))?;
        if a.approvedBlock == 0 {
            return Ok(None);
        }
        let filter = Filter::new()
            .address(addr)
            .event_signature(CodeRegistry::Approved::SIGNATURE_HASH)
            .topic1(tree_sha256)
            .from_block(a.approvedBlock)
            .to_block(a.approvedBlock);
        let logs = self.logs(&filter).await?;
        let Some(log) = logs.last() else {
            return Err(ChainError::Inconsistent {
                url: self.inner.url.clone(),
                what: format!(
                    "no Approved event for {tree_sha256} in block {}",
                    a.approvedBlock
                ),
            });
        };
        Ok(Some(Approval {
            tree_sha256: a.treeSha256,
            tree_sha1: a.treeSha1,
            recipients: a.recipients,
            expires_at: a.expiresAt,
            uri: a.uri,
            revoked: a.revoked,
            revoke_reason: a.revokeReason,
            approved_block: a.approvedBlock,
            approved_block_hash: log.block_hash.unwrap_or_default(),
            approved_tx: log.transaction_hash.unwrap_or_default(),
            approved_at: a.approvedAt,
        }))
    }

    /// Whether the code registry is paused in block `b`.
    pub async fn paused_in(&self, b: &BlockRef) -> Result<bool> {
        let addr = self.inner.addresses.code_registry;
        self.code()
            .paused()
            .block(at(b))
            .call()
            .await
            .map_err(|e| self.contract_err("CodeRegistry", addr, "paused", &e))
    }

    /// The contributions to a node in block `b` (withdrawn ones included,
    /// flagged), fetched a bounded number at a time.
    pub async fn contributions_in(&self, node_id: B256, b: &BlockRef) -> Result<Vec<Contribution>> {
        self.contributions_at_id(node_id, at(b)).await
    }

    pub(super) async fn contributions_at_id(
        &self,
        node_id: B256,
        block: BlockId,
    ) -> Result<Vec<Contribution>> {
        let addr = self.inner.addresses.data_registry;
        let n = self
            .data()
            .contributionCount(node_id)
            .block(block)
            .call()
            .await
            .map_err(|e| self.contract_err("DataRegistry", addr, "contributionCount", &e))?;
        futures::stream::iter(0..n.to::<u64>())
            .map(|i| async move {
                let c = self
                    .data()
                    .contributionAt(node_id, U256::from(i))
                    .block(block)
                    .call()
                    .await
                    .map_err(|e| self.contract_err("DataRegistry", addr, "contributionAt", &e))?;
                Ok::<_, ChainError>(Contribution {
                    sha256: c.sha256,
                    uri: c.uri,
                    size: c.size,
                    node_id: c.nodeId,
                    contributor: c.contributor,
                    withdrawn: c.withdrawn,
                    contributed_block: c.contributedBlock,
                })
            })
            .buffered(CONTRIBUTIONS_IN_FLIGHT)
            .try_collect()
            .await
    }
}
