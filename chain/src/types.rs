//! Plain data read from or written to the contracts, independent of alloy's
//! generated types so callers (controller, cli) never see the ABI.

use alloy::primitives::{Address, FixedBytes, B256};
use serde::{Deserialize, Serialize};

use crate::error::ChainError;

/// Where the suite is deployed.
///
/// `Default` is every address zero: for tools that know only some of the
/// contracts (`collective audit --code-registry ...`). A contract left at
/// zero has no code, so a call to it fails instead of reading anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    /// `CollectiveToken` (ERC20Votes).
    pub token: Address,
    /// `TimelockController`, owner of the registries.
    pub timelock: Address,
    /// `CollectiveGovernor`.
    pub governor: Address,
    /// `CodeRegistry`.
    pub code_registry: Address,
    /// `NodeRegistry`.
    pub node_registry: Address,
    /// `DataRegistry`.
    pub data_registry: Address,
}

/// A deployed suite on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The chain id the suite lives on; clients refuse other chains.
    pub chain_id: u64,
    /// The RPC endpoint used for the deployment.
    pub rpc_url: String,
    /// Contract addresses.
    pub addresses: Addresses,
    /// The first block of the deployment: event scans start here.
    pub deploy_block: u64,
}

/// A mined transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRef {
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block it was mined in.
    pub block_number: u64,
    /// Hash of that block (a reorg changes it).
    pub block_hash: B256,
}

/// An approval record from `CodeRegistry`, with the transaction that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The tree id in git's sha256 object format (the registry key).
    pub tree_sha256: B256,
    /// The tree id in git's sha1 object format.
    pub tree_sha1: FixedBytes<20>,
    /// age recipients outputs may be encrypted to.
    pub recipients: Vec<String>,
    /// Unix seconds after which the approval lapses; 0 = never.
    pub expires_at: u64,
    /// Free-form reference (pull request URL).
    pub uri: String,
    /// True once revoked by the DAO or the guardian.
    pub revoked: bool,
    /// Reason given when revoked.
    pub revoke_reason: String,
    /// Block the approval was made in.
    pub approved_block: u64,
    /// Hash of that block.
    pub approved_block_hash: B256,
    /// The transaction (the timelock's execute) that approved.
    pub approved_tx: B256,
    /// Timestamp of the approving block.
    pub approved_at: u64,
}

impl Approval {
    /// True if unrevoked and unexpired at `now` (unix seconds). Pause is a
    /// separate, registry-wide switch (`ChainClient::paused`).
    pub fn is_live(&self, now: u64) -> bool {
        !self.revoked && (self.expires_at == 0 || now < self.expires_at)
    }
}

/// What a proposal asks `CodeRegistry.approve` to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// sha256 tree id.
    pub tree_sha256: B256,
    /// sha1 tree id.
    pub tree_sha1: FixedBytes<20>,
    /// age recipients for outputs.
    pub recipients: Vec<String>,
    /// Expiry (unix seconds), 0 = never.
    pub expires_at: u64,
    /// Reference, e.g. the pull request URL.
    pub uri: String,
}

/// A checkpoint of a node's log witnessed on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Log size.
    pub size: u64,
    /// Log root hash.
    pub root: B256,
    /// Block the anchor was recorded in.
    pub block_number: u64,
    /// Timestamp of that block.
    pub timestamp: u64,
}

/// A registered compute node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// age recipient contributors encrypt to (`ssh-rsa AAAA...`).
    pub encryption_recipient: String,
    /// The log's public key (signed-note verifier key).
    pub log_public_key: String,
    /// Public HTTP endpoint.
    pub endpoint: String,
    /// The only address allowed to anchor this node's checkpoints.
    pub operator: Address,
    /// Block of the latest (re-)registration.
    pub registered_block: u64,
}

/// A contributed ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// sha256 of the ciphertext.
    pub sha256: B256,
    /// Where to fetch it.
    pub uri: String,
    /// Size in bytes.
    pub size: u64,
    /// Node it is encrypted to.
    pub node_id: B256,
    /// Who registered it (the only one who may withdraw it).
    pub contributor: Address,
    /// True once withdrawn: excluded from later runs.
    pub withdrawn: bool,
    /// Block it was registered in.
    pub contributed_block: u64,
}

/// OpenZeppelin Governor proposal states, in the contract's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalState {
    /// Voting has not started.
    Pending,
    /// Voting is open.
    Active,
    /// Cancelled.
    Canceled,
    /// Vote failed (quorum or majority).
    Defeated,
    /// Vote passed; waiting to be queued.
    Succeeded,
    /// Queued in the timelock.
    Queued,
    /// Not executed in time.
    Expired,
    /// Executed.
    Executed,
}

impl ProposalState {
    /// Maps the contract's enum value.
    pub fn from_u8(v: u8) -> Option<Self> {
        use ProposalState::*;
        Some(match v {
            0 => Pending,
            1 => Active,
            2 => Canceled,
            3 => Defeated,
            4 => Succeeded,
            5 => Queued,
            6 => Expired,
            7 => Executed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ProposalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// How to vote (GovernorCountingSimple numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Support {
    /// 0
    Against,
    /// 1
    For,
    /// 2
    Abstain,
}

impl Support {
    /// The contract's numbering.
    pub fn as_u8(self) -> u8 {
        match self {
            Support::Against => 0,
            Support::For => 1,
            Support::Abstain => 2,
        }
    }
}

/// One call a proposal makes when executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalAction {
    /// Called contract.
    pub target: Address,
    /// Wei sent.
    pub value: alloy::primitives::U256,
    /// ABI-encoded call.
    pub calldata: alloy::primitives::Bytes,
}

/// Everything the Governor knows about a proposal, for status displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalInfo {
    /// The proposal id (decimal in JSON).
    pub id: alloy::primitives::U256,
    /// Current state.
    pub state: ProposalState,
    /// Who proposed it.
    pub proposer: Address,
    /// Voting power snapshot block.
    pub snapshot: u64,
    /// Last block of voting.
    pub deadline: u64,
    /// Timelock ready time (unix seconds), 0 if not queued.
    pub eta: u64,
    /// Votes for.
    pub for_votes: alloy::primitives::U256,
    /// Votes against.
    pub against_votes: alloy::primitives::U256,
    /// Abstentions.
    pub abstain_votes: alloy::primitives::U256,
    /// Votes needed for quorum at the snapshot.
    pub quorum: alloy::primitives::U256,
    /// The description (its hash is part of the id).
    pub description: String,
    /// The calls it executes.
    pub actions: Vec<ProposalAction>,
    /// Block of the proposal transaction.
    pub proposed_block: u64,
}

fn parse_hex_id<const N: usize>(field: &'static str, s: &str) -> Result<FixedBytes<N>, ChainError> {
    let bad = |reason: String| ChainError::InvalidInput {
        field,
        value: s.to_string(),
        reason,
    };
    let t = s.strip_prefix("0x").unwrap_or(s);
    if t.len() != 2 * N {
        return Err(bad(format!(
            "expected {} hex digits, got {}",
            2 * N,
            t.len()
        )));
    }
    if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("not hexadecimal".into()));
    }
    let bytes = hex::decode(t).map_err(|e| bad(e.to_string()))?;
    Ok(FixedBytes::<N>::from_slice(&bytes))
}

/// Parses a sha256 git tree id (64 hex digits, optional `0x`).
pub fn parse_tree_sha256(s: &str) -> Result<B256, ChainError> {
    parse_hex_id::<32>("tree sha256", s)
}

/// Parses a sha1 git tree id (40 hex digits, optional `0x`).
pub fn parse_tree_sha1(s: &str) -> Result<FixedBytes<20>, ChainError> {
    parse_hex_id::<20>("tree sha1", s)
}

/// Parses any 32-byte id (node id, ciphertext sha256) as 64 hex digits.
pub fn parse_b256(field: &'static str, s: &str) -> Result<B256, ChainError> {
    parse_hex_id::<32>(field, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_ids_parse_and_refuse() {
        let h = "ab".repeat(32);
        assert_eq!(parse_tree_sha256(&h).unwrap().to_string(), format!("0x{h}"));
        assert_eq!(
            parse_tree_sha256(&format!("0x{h}")).unwrap().to_string(),
            format!("0x{h}")
        );
        assert!(parse_tree_sha256(&"ab".repeat(20)).is_err());
        assert!(parse_tree_sha256(&"zz".repeat(32)).is_err());
        assert!(parse_tree_sha1(&"0f".repeat(20)).is_ok());
        let e = parse_tree_sha1(&"0f".repeat(32)).unwrap_err().to_string();
        assert!(
            e.contains("tree sha1") && e.contains("40 hex digits"),
            "{e}"
        );
    }

    #[test]
    fn proposal_state_numbering() {
        assert_eq!(ProposalState::from_u8(0), Some(ProposalState::Pending));
        assert_eq!(ProposalState::from_u8(7), Some(ProposalState::Executed));
        assert_eq!(ProposalState::from_u8(8), None);
        assert_eq!(ProposalState::Succeeded.to_string(), "succeeded");
    }

    #[test]
    fn approval_liveness() {
        let mut a = Approval {
            tree_sha256: B256::ZERO,
            tree_sha1: FixedBytes::ZERO,
            recipients: vec![],
            expires_at: 100,
            uri: String::new(),
            revoked: false,
            revoke_reason: String::new(),
            approved_block: 1,
            approved_block_hash: B256::ZERO,
            approved_tx: B256::ZERO,
            approved_at: 0,
        };
        assert!(a.is_live(99));
        assert!(!a.is_live(100));
        a.expires_at = 0;
        assert!(a.is_live(u64::MAX));
        a.revoked = true;
        assert!(!a.is_live(0));
    }
}

/// Parses an approval expiry: `0`/`never`, unix seconds, RFC 3339
/// (`2026-12-31T00:00:00Z`), or `+<n><s|m|h|d|w>` relative to `now`.
pub fn parse_expiry(s: &str, now: u64) -> Result<u64, ChainError> {
    let bad = |reason: &str| ChainError::InvalidInput {
        field: "expiry",
        value: s.to_string(),
        reason: reason.into(),
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t == "never" {
        return Ok(0);
    }
    if let Some(rel) = t.strip_prefix('+') {
        let (num, unit) =
            rel.split_at(rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len()));
        let n: u64 = num
            .parse()
            .map_err(|_| bad("expected +<number><s|m|h|d|w>, e.g. +7d"))?;
        let mult = match unit {
            "s" | "" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(bad("unit must be one of s, m, h, d, w")),
        };
        return n
            .checked_mul(mult)
            .and_then(|d| d.checked_add(now))
            .ok_or_else(|| bad("too far in the future"));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad("unix time out of range"));
    }
    let dt = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            bad("expected RFC 3339 (2026-12-31T00:00:00Z), unix seconds, or +<n><s|m|h|d|w>")
        })?;
    u64::try_from(dt.unix_timestamp()).map_err(|_| bad("before 1970"))
}

#[cfg(test)]
mod expiry_tests {
    use super::parse_expiry;

    #[test]
    fn forms() {
        assert_eq!(parse_expiry("never", 5).unwrap(), 0);
        assert_eq!(parse_expiry("0", 5).unwrap(), 0);
        assert_eq!(parse_expiry("1700000000", 5).unwrap(), 1_700_000_000);
        assert_eq!(parse_expiry("+7d", 100).unwrap(), 100 + 7 * 86_400);
        assert_eq!(parse_expiry("+90", 100).unwrap(), 190);
        assert_eq!(parse_expiry("+2h", 0).unwrap(), 7200);
        assert_eq!(parse_expiry("1970-01-02T00:00:00Z", 0).unwrap(), 86_400);
        assert_eq!(
            parse_expiry("2026-01-01T01:00:00+01:00", 0).unwrap(),
            1_767_225_600
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "+",
            "+5y",
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "1969-12-31T00:00:00Z",
            "+99999999999999999w",
        ] {
            let e = parse_expiry(bad, 0).unwrap_err().to_string();
            assert!(e.starts_with("invalid expiry"), "{bad}: {e}");
        }
    }
}

#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn tree_id_round_trips(bytes in proptest::array::uniform32(any::<u8>()), prefix in any::<bool>(), upper in any::<bool>()) {
            let mut h = hex::encode(bytes);
            if upper { h = h.to_uppercase(); }
            let s = if prefix { format!("0x{h}") } else { h };
            prop_assert_eq!(parse_tree_sha256(&s).unwrap(), B256::from(bytes));
        }

        #[test]
        fn parsers_never_panic(s in ".{0,80}") {
            let _ = parse_tree_sha256(&s);
            let _ = parse_tree_sha1(&s);
            let _ = parse_expiry(&s, 1_700_000_000);
        }

        #[test]
        fn relative_expiry_is_after_now(n in 0u64..1_000_000, now in 0u64..4_000_000_000) {
            prop_assert_eq!(parse_expiry(&format!("+{n}m"), now).unwrap(), now + n * 60);
        }
    }
}

/// One block, as a snapshot is pinned to it: reads "at" a `BlockRef` name
/// the block by hash (EIP-1898), so all of them see the same state, and a
/// reorg that replaces the block makes them fail rather than mix two
/// chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Block timestamp (unix seconds): the chain's clock.
    pub timestamp: u64,
}
