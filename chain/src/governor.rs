//! The Governor flow: propose, vote, queue, execute, state.
//!
//! Queue and execute need the proposal's calls and description, which the
//! Governor does not store; they are recovered from the `ProposalCreated`
//! event, so a proposal id is all a voter or executor has to pass around.

use alloy::eips::BlockId;
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::providers::DynProvider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

use crate::bindings::CollectiveGovernor;
use crate::client::ChainClient;
use crate::error::{ChainError, Result};
use crate::types::*;

const GOV: &str = "CollectiveGovernor";

impl ChainClient {
    fn governor(&self) -> CollectiveGovernor::CollectiveGovernorInstance<&DynProvider> {
        CollectiveGovernor::new(self.inner.addresses.governor, &self.inner.provider)
    }

    fn gov_err(
        &self,
        call: &'static str,
        id: Option<U256>,
        e: &alloy::contract::Error,
    ) -> ChainError {
        if let (Some(id), Some(_)) = (
            id,
            e.as_decoded_error::<CollectiveGovernor::GovernorNonexistentProposal>(),
        ) {
            return ChainError::UnknownProposal {
                url: self.inner.url.clone(),
                id,
            };
        }
        self.contract_err(GOV, self.inner.addresses.governor, call, e)
    }

    /// Submits a proposal; returns its id.
    pub async fn propose(
        &self,
        targets: Vec<Address>,
        values: Vec<U256>,
        calldatas: Vec<Bytes>,
        description: &str,
    ) -> Result<U256> {
        self.require_signer("CollectiveGovernor.propose")?;
        let gov = self.governor();
        let id = gov
            .hashProposal(
                targets.clone(),
                values.clone(),
                calldatas.clone(),
                keccak256(description.as_bytes()),
            )
            .call()
            .await
            .map_err(|e| self.gov_err("hashProposal", None, &e))?;
        let sent = gov
            .propose(targets, values, calldatas, description.to_string())
            .send()
            .await;
        let (tx, _) = self
            .finish_tx(GOV, self.inner.addresses.governor, "propose", sent)
            .await?;
        tracing::info!(%id, tx = %tx.tx_hash, "proposal submitted");
        Ok(id)
    }

    /// Proposes `CodeRegistry.approve(req)`.
    pub async fn propose_approval(&self, req: &ApprovalRequest, description: &str) -> Result<U256> {
        self.propose(
            vec![self.inner.addresses.code_registry],
            vec![U256::ZERO],
            vec![Self::approve_calldata(req)],
            description,
        )
        .await
    }

    /// Proposes `NodeRegistry.registerNode(...)` (the timelock owns the
    /// registry, so registering a node is a DAO decision).
    pub async fn propose_register_node(
        &self,
        node_id: B256,
        record: &NodeRecord,
        description: &str,
    ) -> Result<U256> {
        self.propose(
            vec![self.inner.addresses.node_registry],
            vec![U256::ZERO],
            vec![Self::register_node_calldata(node_id, record)],
            description,
        )
        .await
    }

    /// Proposes `CodeRegistry.unpause()`.
    pub async fn propose_unpause(&self, description: &str) -> Result<U256> {
        self.propose(
            vec![self.inner.addresses.code_registry],
            vec![U256::ZERO],
            vec![Self::unpause_calldata()],
            description,
        )
        .await
    }

    /// The proposal's state; `UnknownProposal` if the Governor has no such id.
    pub async fn proposal_state(&self, id: U256) -> Result<ProposalState> {
        let s = self
            .governor()
            .state(id)
            .call()
            .await
            .map_err(|e| self.gov_err("state", Some(id), &e))?;
        ProposalState::from_u8(s).ok_or_else(|| ChainError::Contract {
            url: self.inner.url.clone(),
            contract: GOV,
            address: self.inner.addresses.governor,
            call: "state",
            reason: format!("unknown state value {s}"),
        })
    }

    /// Casts the signer's vote.
    pub async fn cast_vote(&self, id: U256, support: Support) -> Result<TxRef> {
        self.require_signer("CollectiveGovernor.castVote")?;
        self.proposal_state(id).await?;
        let sent = self.governor().castVote(id, support.as_u8()).send().await;
        Ok(self
            .finish_tx(GOV, self.inner.addresses.governor, "castVote", sent)
            .await?
            .0)
    }

    /// Queues a succeeded proposal in the timelock.
    pub async fn queue(&self, id: U256) -> Result<TxRef> {
        self.require_signer("CollectiveGovernor.queue")?;
        let p = self.proposal_created(id).await?;
        let (t, v, c) = split_actions(&p.actions);
        let sent = self
            .governor()
            .queue(t, v, c, keccak256(p.description.as_bytes()))
            .send()
            .await;
        Ok(self
            .finish_tx(GOV, self.inner.addresses.governor, "queue", sent)
            .await?
            .0)
    }

    /// Executes a queued proposal whose timelock delay elapsed.
    pub async fn execute(&self, id: U256) -> Result<TxRef> {
        self.require_signer("CollectiveGovernor.execute")?;
        let p = self.proposal_created(id).await?;
        let (t, v, c) = split_actions(&p.actions);
        let sent = self
            .governor()
            .execute(t, v, c, keccak256(p.description.as_bytes()))
            .send()
            .await;
        Ok(self
            .finish_tx(GOV, self.inner.addresses.governor, "execute", sent)
            .await?
            .0)
    }

    /// Everything about a proposal: state, votes, timing, calls.
    pub async fn proposal(&self, id: U256) -> Result<ProposalInfo> {
        let state = self.proposal_state(id).await?;
        let created = self.proposal_created(id).await?;
        let gov = self.governor();
        let votes = gov
            .proposalVotes(id)
            .call()
            .await
            .map_err(|e| self.gov_err("proposalVotes", Some(id), &e))?;
        let snapshot = gov
            .proposalSnapshot(id)
            .call()
            .await
            .map_err(|e| self.gov_err("proposalSnapshot", Some(id), &e))?;
        let deadline = gov
            .proposalDeadline(id)
            .call()
            .await
            .map_err(|e| self.gov_err("proposalDeadline", Some(id), &e))?;
        let eta = gov
            .proposalEta(id)
            .call()
            .await
            .map_err(|e| self.gov_err("proposalEta", Some(id), &e))?;
        let proposer = gov
            .proposalProposer(id)
            .call()
            .await
            .map_err(|e| self.gov_err("proposalProposer", Some(id), &e))?;
        // quorum() needs a past timepoint; before the snapshot is mined use the latest block.
        let head = self.block_number().await?;
        let qpoint = snapshot.to::<u64>().min(head.saturating_sub(1));
        let quorum = gov
            .quorum(U256::from(qpoint))
            .block(BlockId::latest())
            .call()
            .await
            .map_err(|e| self.gov_err("quorum", Some(id), &e))?;
        Ok(ProposalInfo {
            id,
            state,
            proposer,
            snapshot: snapshot.to(),
            deadline: deadline.to(),
            eta: eta.to(),
            for_votes: votes.forVotes,
            against_votes: votes.againstVotes,
            abstain_votes: votes.abstainVotes,
            quorum,
            description: created.description,
            actions: created.actions,
            proposed_block: created.block,
        })
    }

    /// Finds the `ProposalCreated` event of `id` (scans from the deploy block).
    async fn proposal_created(&self, id: U256) -> Result<Created> {
        let filter = Filter::new()
            .address(self.inner.addresses.governor)
            .event_signature(CollectiveGovernor::ProposalCreated::SIGNATURE_HASH)
            .from_block(self.inner.from_block);
        let logs = self.logs(&filter).await?;
        for log in logs {
            let Ok(ev) = CollectiveGovernor::ProposalCreated::decode_log(&log.inner) else {
                continue;
            };
            if ev.data.proposalId == id {
                let d = ev.data;
                let actions = d
                    .targets
                    .iter()
                    .zip(d.values.iter())
                    .zip(d.calldatas.iter())
                    .map(|((t, v), c)| ProposalAction {
                        target: *t,
                        value: *v,
                        calldata: c.clone(),
                    })
                    .collect();
                return Ok(Created {
                    description: d.description,
                    actions,
                    block: log.block_number.unwrap_or_default(),
                });
            }
        }
        Err(ChainError::UnknownProposal {
            url: self.inner.url.clone(),
            id,
        })
    }
}

struct Created {
    description: String,
    actions: Vec<ProposalAction>,
    block: u64,
}

fn split_actions(a: &[ProposalAction]) -> (Vec<Address>, Vec<U256>, Vec<Bytes>) {
    (
        a.iter().map(|x| x.target).collect(),
        a.iter().map(|x| x.value).collect(),
        a.iter().map(|x| x.calldata.clone()).collect(),
    )
}
