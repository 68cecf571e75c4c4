//! Anchoring the log's checkpoint on chain (`NodeRegistry.anchorCheckpoint`).
//!
//! Security argument: a signed checkpoint only proves what the node said to
//! one auditor. Anchoring (size, root) on chain publishes one history to
//! everyone: an auditor checks that the log it is served is consistent with
//! every anchored checkpoint (`collective audit --rpc ... --node-id ...`), so
//! the operator cannot show different histories to different auditors, nor
//! roll the log back below an anchor. The contract itself refuses a smaller
//! size (`CheckpointShrinks`) or another root for an anchored size
//! (`CheckpointForks`), and re-anchoring the latest checkpoint is a no-op,
//! so a retry after a lost receipt is safe.

use collective_attest::Log;
use collective_chain::{ChainClient, ChainError, TxRef, B256};

/// Anchors the log's current checkpoint unless the chain already holds it.
///
/// Returns `Ok(None)` when there is nothing to do (empty log, or the latest
/// anchor already has this size and root), `Ok(Some(tx))` once the anchor
/// transaction is mined. The chain client must carry the operator's key.
/// The log is only read (size and root are taken before any await, so the
/// caller may keep appending on another task afterwards).
#[tracing::instrument(skip(log, chain), fields(size = log.size()))]
pub async fn anchor_latest(
    log: &Log,
    chain: &ChainClient,
    node_id: B256,
) -> Result<Option<TxRef>, ChainError> {
    let (size, root) = (log.size(), B256::from(log.root()));
    anchor_checkpoint(chain, node_id, size, root).await
}

/// [`anchor_latest`] for a (size, root) taken from the log earlier.
pub async fn anchor_checkpoint(
    chain: &ChainClient,
    node_id: B256,
    size: u64,
    root: B256,
) -> Result<Option<TxRef>, ChainError> {
    if size == 0 {
        return Ok(None);
    }
    if let Some(last) = chain.latest_anchor(node_id).await? {
        if last.size == size && last.root == root {
            tracing::debug!(size, "checkpoint already anchored");
            return Ok(None);
        }
        if last.size > size {
            // The contract will refuse (CheckpointShrinks); say why first:
            // the local log is behind what this node already published.
            tracing::error!(
                anchored = last.size,
                local = size,
                "local log is smaller than its on-chain anchor"
            );
        }
    }
    let tx = chain.anchor_checkpoint(node_id, size, root).await?;
    tracing::info!(size, tx = %tx.tx_hash, block = tx.block_number, "checkpoint anchored");
    Ok(Some(tx))
}

/// Anchors the node's log on an interval (with the operator's key).
#[derive(Debug)]
pub struct Anchorer {
    /// A client carrying the operator's key.
    pub chain: ChainClient,
    /// This node's id.
    pub node_id: B256,
    /// The last anchored checkpoint.
    pub last: parking_lot::Mutex<Option<crate::status::AnchorInfo>>,
}

impl Anchorer {
    /// Anchor `(size, root)` unless it is already the last anchored.
    pub async fn anchor(
        &self,
        size: u64,
        root: [u8; 32],
    ) -> Result<Option<crate::status::AnchorInfo>, ChainError> {
        if size == 0 || self.last.lock().as_ref().map(|a| a.size) == Some(size) {
            return Ok(None);
        }
        let Some(tx) = anchor_checkpoint(&self.chain, self.node_id, size, B256::from(root)).await?
        else {
            return Ok(None);
        };
        let info = crate::status::AnchorInfo {
            size,
            root: hex::encode(root),
            tx_hash: format!("{:#x}", tx.tx_hash),
            block_number: tx.block_number,
        };
        *self.last.lock() = Some(info.clone());
        Ok(Some(info))
    }
}
