//! Registry events with a confirmation depth, re-checked after reorgs.
//!
//! Events are hints for a level-triggered consumer: on any event, and on
//! `Reorg`, the consumer re-reads the truth (`ChainClient::approval`,
//! `paused`, `contributions` at the same depth). The watcher therefore only
//! promises: (1) an event is reported once its block is `confirmations` deep;
//! (2) if a block it already scanned is no longer canonical, it says so with
//! `Reorg` and rescans from the fork point, re-reporting what is canonical now.

use std::collections::VecDeque;
use std::time::Duration;

use alloy::primitives::{Address, FixedBytes, B256};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::bindings::{CodeRegistry, DataRegistry};
use crate::client::ChainClient;
use crate::error::Result;

/// Where an event was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPos {
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Index of the log in its block.
    pub log_index: u64,
}

/// A confirmed registry event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ChainEvent {
    /// `CodeRegistry.Approved`.
    Approved {
        /// sha256 tree id.
        tree_sha256: B256,
        /// sha1 tree id.
        tree_sha1: FixedBytes<20>,
        /// Output recipients.
        recipients: Vec<String>,
        /// Expiry (unix seconds, 0 = never).
        expires_at: u64,
        /// Reference.
        uri: String,
        /// Where.
        at: EventPos,
    },
    /// `CodeRegistry.Revoked`.
    Revoked {
        /// sha256 tree id.
        tree_sha256: B256,
        /// Owner or guardian.
        by: Address,
        /// Reason.
        reason: String,
        /// Where.
        at: EventPos,
    },
    /// `CodeRegistry.Paused`.
    Paused {
        /// Owner or guardian.
        by: Address,
        /// Where.
        at: EventPos,
    },
    /// `CodeRegistry.Unpaused`.
    Unpaused {
        /// Owner.
        by: Address,
        /// Where.
        at: EventPos,
    },
    /// `DataRegistry.Withdrawn`.
    Withdrawn {
        /// Ciphertext sha256.
        sha256: B256,
        /// Node.
        node_id: B256,
        /// Contributor.
        contributor: Address,
        /// Where.
        at: EventPos,
    },
    /// Blocks from `from_block` on that were reported before are no longer
    /// canonical: drop conclusions drawn from them and re-read state. Events
    /// from the new canonical blocks follow.
    Reorg {
        /// First block that changed.
        from_block: u64,
    },
}

/// How many scanned block hashes are remembered to find a fork point.
const REMEMBERED: usize = 256;
/// Largest block range per `eth_getLogs`.
const RANGE: u64 = 5_000;

/// Polls registry events `confirmations` blocks behind head.
#[derive(Debug)]
pub struct EventWatcher {
    client: ChainClient,
    confirmations: u64,
    next_block: u64,
    /// (number, hash) of scanned blocks, oldest first.
    scanned: VecDeque<(u64, B256)>,
}

impl EventWatcher {
    /// Watch from `from_block` (usually the deploy block) at the given depth.
    pub fn new(client: ChainClient, from_block: u64, confirmations: u64) -> Self {
        Self {
            client,
            confirmations,
            next_block: from_block,
            scanned: VecDeque::new(),
        }
    }

    /// The next block that will be scanned.
    pub fn next_block(&self) -> u64 {
        self.next_block
    }

    /// One round: detect reorgs of scanned blocks, then report events of
    /// newly confirmed blocks, in chain order.
    pub async fn poll(&mut self) -> Result<Vec<ChainEvent>> {
        let mut out = Vec::new();
        if let Some(from_block) = self.check_reorg().await? {
            out.push(ChainEvent::Reorg { from_block });
        }
        let Some(safe) = self.client.confirmed_block(self.confirmations).await? else {
            return Ok(out);
        };
        if safe < self.next_block {
            return Ok(out);
        }
        let Some((safe_hash, _)) = self.client.block_hash(safe).await? else {
            return Ok(out);
        };
        let mut logs = Vec::new();
        let mut from = self.next_block;
        while from <= safe {
            let to = (from + RANGE - 1).min(safe);
            logs.extend(self.logs(from, to).await?);
            from = to + 1;
        }
        // If the chain moved under the scan, try again next round.
        match self.client.block_hash(safe).await? {
            Some((h, _)) if h == safe_hash => {}
            _ => return Ok(out),
        }
        if logs
            .iter()
            .any(|l| l.block_number == Some(safe) && l.block_hash != Some(safe_hash))
        {
            return Ok(out);
        }
        for log in &logs {
            if let Some(b) = log.block_number {
                if let Some(h) = log.block_hash {
                    self.remember(b, h);
                }
            }
            if let Some(ev) = decode(log) {
                out.push(ev);
            }
        }
        self.remember(safe, safe_hash);
        self.next_block = safe + 1;
        Ok(out)
    }

    /// Polls every `interval`, forever, as a stream. Errors are yielded and
    /// polling continues (a node restart should not end the watch).
    pub fn into_stream(self, interval: Duration) -> impl Stream<Item = Result<ChainEvent>> {
        futures::stream::unfold(
            (self, VecDeque::new()),
            move |(mut w, mut buf)| async move {
                loop {
                    if let Some(item) = buf.pop_front() {
                        return Some((item, (w, buf)));
                    }
                    match w.poll().await {
                        Ok(evs) => {
                            if evs.is_empty() {
                                tokio::time::sleep(interval).await;
                            }
                            buf.extend(evs.into_iter().map(Ok));
                        }
                        Err(e) => {
                            tokio::time::sleep(interval).await;
                            buf.push_back(Err(e));
                        }
                    }
                }
            },
        )
    }

    fn remember(&mut self, n: u64, h: B256) {
        if self.scanned.back().is_some_and(|(b, _)| *b >= n) {
            if let Some(pos) = self.scanned.iter().position(|(b, _)| *b == n) {
                self.scanned[pos].1 = h;
            }
            return;
        }
        self.scanned.push_back((n, h));
        while self.scanned.len() > REMEMBERED {
            self.scanned.pop_front();
        }
    }

    /// Finds the first scanned block that is no longer canonical and rewinds
    /// the cursor to it. Returns that block if a reorg was found.
    async fn check_reorg(&mut self) -> Result<Option<u64>> {
        let Some(&(last_n, last_h)) = self.scanned.back() else {
            return Ok(None);
        };
        if self.client.block_hash(last_n).await?.map(|x| x.0) == Some(last_h) {
            return Ok(None);
        }
        // Walk back to the newest remembered block that is still canonical.
        let mut fork = self.scanned.front().map(|x| x.0).unwrap_or(last_n);
        while let Some(&(n, h)) = self.scanned.back() {
            if self.client.block_hash(n).await?.map(|x| x.0) == Some(h) {
                fork = n + 1;
                break;
            }
            self.scanned.pop_back();
            fork = n;
        }
        tracing::warn!(
            from_block = fork,
            "reorg detected below the confirmation depth; rescanning"
        );
        self.next_block = fork;
        Ok(Some(fork))
    }

    async fn logs(&self, from: u64, to: u64) -> Result<Vec<Log>> {
        let a = self.client.addresses();
        let filter = Filter::new()
            .address(vec![a.code_registry, a.data_registry])
            .event_signature(vec![
                CodeRegistry::Approved::SIGNATURE_HASH,
                CodeRegistry::Revoked::SIGNATURE_HASH,
                CodeRegistry::Paused::SIGNATURE_HASH,
                CodeRegistry::Unpaused::SIGNATURE_HASH,
                DataRegistry::Withdrawn::SIGNATURE_HASH,
            ])
            .from_block(from)
            .to_block(to);
        let mut logs = self.client.logs(&filter).await?;
        logs.retain(|l| !l.removed);
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        Ok(logs)
    }
}

fn decode(log: &Log) -> Option<ChainEvent> {
    let at = EventPos {
        block_number: log.block_number?,
        block_hash: log.block_hash?,
        tx_hash: log.transaction_hash?,
        log_index: log.log_index?,
    };
    let topic0 = *log.topic0()?;
    let inner = &log.inner;
    Some(match topic0 {
        t if t == CodeRegistry::Approved::SIGNATURE_HASH => {
            let e = CodeRegistry::Approved::decode_log(inner).ok()?.data;
            ChainEvent::Approved {
                tree_sha256: e.treeSha256,
                tree_sha1: e.treeSha1,
                recipients: e.recipients,
                expires_at: e.expiresAt,
                uri: e.uri,
                at,
            }
        }
        t if t == CodeRegistry::Revoked::SIGNATURE_HASH => {
            let e = CodeRegistry::Revoked::decode_log(inner).ok()?.data;
            ChainEvent::Revoked {
                tree_sha256: e.treeSha256,
                by: e.by,
                reason: e.reason,
                at,
            }
        }
        t if t == CodeRegistry::Paused::SIGNATURE_HASH => ChainEvent::Paused {
            by: CodeRegistry::Paused::decode_log(inner).ok()?.data.by,
            at,
        },
        t if t == CodeRegistry::Unpaused::SIGNATURE_HASH => ChainEvent::Unpaused {
            by: CodeRegistry::Unpaused::decode_log(inner).ok()?.data.by,
            at,
        },
        t if t == DataRegistry::Withdrawn::SIGNATURE_HASH => {
            let e = DataRegistry::Withdrawn::decode_log(inner).ok()?.data;
            ChainEvent::Withdrawn {
                sha256: e.ciphertextSha256,
                node_id: e.nodeId,
                contributor: e.contributor,
                at,
            }
        }
        _ => return None,
    })
}
