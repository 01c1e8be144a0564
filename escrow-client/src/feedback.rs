//! ERC-8004 feedback on paid work: the poster of a finished bounty rates its provider's agent
//! in the ReputationRegistry (`giveBountyFeedback`: the bounty's credit and the rating in one
//! transaction), and the agent ids an address owns or is the payment wallet of.

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    rpc::types::Filter,
    sol_types::{SolEvent, SolValue},
};

use crate::{
    Error, ReefClient, Result, TxOutcome,
    bindings::{
        escrow::IBountyTypes::Bounty,
        registry::AgentRegistry,
        reputation::{IBountyTypes::Bounty as RepBounty, ReputationRegistry},
    },
};

/// One rating to give (ERC-8004 `value` / `valueDecimals` with optional tags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rating {
    /// Signed fixed-point value (|value| <= 1e38).
    pub value: i128,
    /// Decimals of `value` (0-18).
    pub decimals: u8,
    /// First tag (empty = none).
    pub tag1: String,
    /// Second tag (empty = none).
    pub tag2: String,
}

impl ReefClient {
    fn reputation_addr(&self) -> Result<Address> {
        let a = self.deployment().reputation_registry;
        if a.is_zero() {
            return Err(Error::InvalidInput(
                "this deployment has no ReputationRegistry address".into(),
            ));
        }
        Ok(a)
    }

    /// Whether bounty `id` already granted its feedback credit (it was rated, or its credit
    /// was claimed with `authorizeFeedback`).
    pub async fn bounty_credited(&self, id: U256) -> Result<bool> {
        let call = ReputationRegistry::bountyCreditedCall { bountyId: id };
        self.view(self.reputation_addr()?, call).await
    }

    /// Agent ids (oldest first) whose ERC-721 owner, or whose ERC-8004 payment wallet, is `who`
    /// now: the agents a bounty paid to `who` may be rated on.
    pub async fn agent_ids_of(&self, who: Address) -> Result<Vec<U256>> {
        let registry = self.deployment().agent_registry;
        let base = Filter::new().address(registry).from_block(self.deployment().start_block);
        let mut candidates: Vec<U256> = Vec::new();
        // ERC-721 Transfer(from, to, tokenId): every agent ever sent to `who`.
        let transfers = base
            .clone()
            .event_signature(AgentRegistry::Transfer::SIGNATURE_HASH)
            .topic2(who.into_word());
        for l in self.logs(&transfers).await? {
            if let Some(t) = l.topics().get(3) {
                candidates.push(U256::from_be_bytes(t.0));
            }
        }
        // MetadataSet(agentId, keccak256("agentWallet"), …, packed wallet).
        let wallets = base
            .event_signature(AgentRegistry::MetadataSet::SIGNATURE_HASH)
            .topic2(keccak256("agentWallet"));
        for l in self.logs(&wallets).await? {
            if l.data().data.len() >= 20
                && let Ok(ev) = AgentRegistry::MetadataSet::decode_log_data(l.data())
                && ev.metadataValue.as_ref() == who.as_slice()
                && let Some(t) = l.topics().get(1)
            {
                candidates.push(U256::from_be_bytes(t.0));
            }
        }
        candidates.sort();
        candidates.dedup();
        let mut ids = Vec::new();
        for id in candidates {
            let owner = self.view(registry, AgentRegistry::ownerOfCall { tokenId: id }).await;
            let holds = match owner {
                Ok(o) if o == who => true,
                Ok(_) => self.agent_wallet(id).await? == who,
                // Burnt (ownerOf reverts): not an agent any more.
                Err(_) => false,
            };
            if holds {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// The poster rates the provider of its finished bounty `id` (record `b`) on agent
    /// `agent_id`: `giveBountyFeedback`, the bounty's feedback credit and the rating in one
    /// transaction. Returns the feedback's index (per agent and client, 1-based). Reverts decode
    /// into [`Error::Revert`] (`NotPoster`, `BountyNotFinal`, `BountyAlreadyCredited`,
    /// `SelfFeedback`, `NoFeedbackCredit`, `ValueOutOfRange`, …).
    pub async fn give_bounty_feedback(
        &self,
        id: U256,
        b: &Bounty,
        agent_id: U256,
        rating: &Rating,
    ) -> Result<(u64, TxOutcome)> {
        let reputation = self.reputation_addr()?;
        // The same Solidity struct, generated once per contract binding: convert via its ABI.
        let rb = <RepBounty as SolValue>::abi_decode(&b.abi_encode())
            .map_err(|e| Error::InvalidInput(format!("bounty record: {e}")))?;
        let call = ReputationRegistry::giveBountyFeedbackCall {
            bountyId: id,
            b: rb,
            agentId: agent_id,
            value: rating.value,
            valueDecimals: rating.decimals,
            tag1: rating.tag1.clone(),
            tag2: rating.tag2.clone(),
            endpoint: String::new(),
            feedbackURI: String::new(),
            feedbackHash: B256::ZERO,
        };
        let out = self.send_call("giveBountyFeedback", reputation, &call, U256::ZERO).await?;
        let ev: ReputationRegistry::NewFeedback =
            out.event(reputation).ok_or_else(|| Error::Decode {
                what: "NewFeedback".into(),
                reason: "event missing from receipt".into(),
            })?;
        Ok((ev.feedbackIndex, out))
    }

    /// One stored feedback: (value, decimals, tag1, tag2, revoked).
    pub async fn read_feedback(
        &self,
        agent_id: U256,
        client: Address,
        index: u64,
    ) -> Result<(i128, u8, String, String, bool)> {
        let call = ReputationRegistry::readFeedbackCall {
            agentId: agent_id,
            clientAddress: client,
            feedbackIndex: index,
        };
        let r = self.view(self.reputation_addr()?, call).await?;
        Ok((r.value, r.valueDecimals, r.tag1, r.tag2, r.isRevoked))
    }
}
