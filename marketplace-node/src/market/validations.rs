//! Settlement's last step: a final bounty's verdict copied into the ERC-8004
//! ValidationRegistry (`recordBountyValidation`), so any ERC-8004 reader sees the verdicts of
//! the node's verifiers and of evaluator panels as validation responses for the agent's work.
//!
//! Only bounties whose provider holds an ERC-8004 identity (an agent id it owns or is the
//! payment wallet of) are recorded. The lookup scans the identity registry's logs, so its
//! answer is cached: a found agent id until a record reverts `NotProviderAgent` (the identity
//! moved), a "none" for [`NO_AGENT_TTL`].

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256, U256};
use escrow_client::{
    Error as ChainError, ReefClient, Status, bindings::escrow::IBountyTypes::Bounty,
};
use tokio::sync::Mutex;

/// How long "this provider has no agent identity" is believed before the registry is asked again.
pub const NO_AGENT_TTL: Duration = Duration::from_secs(60);

/// What recording a bounty's verdict came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The verdict is on-chain now.
    Recorded {
        /// The agent whose work it validates.
        agent_id: U256,
        /// The request's key in the registry.
        request_hash: B256,
        /// 100 (accepted) or 0 (rejection final).
        response: u8,
        /// The transaction that recorded it.
        tx: B256,
    },
    /// It was already (a retry after a crash, or someone else sent it).
    AlreadyRecorded {
        /// The request's key in the registry.
        request_hash: B256,
    },
    /// Nothing to record, and why (no registry, no verdict, no identity, turned off).
    Skipped(&'static str),
    /// The registry refused it or the node could not pay: the bounty settles anyway.
    Failed(String),
}

/// Records verdicts of final bounties as ERC-8004 validations (one per node).
#[derive(Debug)]
pub struct ValidationRecorder {
    enabled: bool,
    agents: Mutex<HashMap<Address, (Option<U256>, Instant)>>,
}

impl ValidationRecorder {
    /// A recorder; `enabled = false` records nothing (`reef node --record-validations off`).
    pub fn new(enabled: bool) -> Self {
        Self { enabled, agents: Mutex::new(HashMap::new()) }
    }

    /// Copies final bounty `id`'s verdict (record `b`, chain status `status`) into the
    /// ValidationRegistry. Transport errors are returned (the settlement step is retried); a
    /// refusal by the chain, or a node that cannot pay the gas, is [`Recorded::Failed`].
    pub async fn record(
        &self,
        chain: &ReefClient,
        id: U256,
        b: &Bounty,
        status: Status,
    ) -> Result<Recorded, ChainError> {
        if !self.enabled {
            return Ok(Recorded::Skipped("turned off (--record-validations off)"));
        }
        if !chain.has_validation_registry() {
            return Ok(Recorded::Skipped("the deployment has no ValidationRegistry"));
        }
        let response = match status {
            Status::Completed => 100,
            Status::Refunded => 0,
            _ => {
                return Ok(Recorded::Skipped("no verdict on one agent's work in this final state"));
            }
        };
        if b.provider.is_zero() || b.evaluator == b.provider {
            return Ok(Recorded::Skipped("no single provider judged by another party"));
        }
        // The identity first: it is cached, so a provider without one costs no request.
        let Some(agent_id) = self.agent_of(chain, b.provider).await? else {
            return Ok(Recorded::Skipped("the provider has no ERC-8004 agent identity"));
        };
        let request_hash = chain.bounty_request_hash(id, b.provider, b.resultHash);
        if chain.validation_status(request_hash).await?.is_some() {
            return Ok(Recorded::AlreadyRecorded { request_hash });
        }
        match chain.record_bounty_validation(id, b, agent_id).await {
            Ok((request_hash, tx)) => {
                Ok(Recorded::Recorded { agent_id, request_hash, response, tx: tx.hash })
            }
            Err(ChainError::Revert { revert, .. }) if revert.name() == "RequestExists" => {
                Ok(Recorded::AlreadyRecorded { request_hash })
            }
            Err(e @ ChainError::Revert { .. }) => {
                if let ChainError::Revert { revert, .. } = &e
                    && revert.name() == "NotProviderAgent"
                {
                    self.agents.lock().await.remove(&b.provider);
                }
                Ok(Recorded::Failed(e.to_string()))
            }
            Err(e @ ChainError::InsufficientFunds { .. }) => Ok(Recorded::Failed(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// The provider's oldest agent id (cached).
    async fn agent_of(
        &self,
        chain: &ReefClient,
        provider: Address,
    ) -> Result<Option<U256>, ChainError> {
        if let Some((found, at)) = self.agents.lock().await.get(&provider).copied()
            && (found.is_some() || at.elapsed() < NO_AGENT_TTL)
        {
            return Ok(found);
        }
        let found = chain.agent_ids_of(provider).await?.first().copied();
        self.agents.lock().await.insert(provider, (found, Instant::now()));
        Ok(found)
    }
}
