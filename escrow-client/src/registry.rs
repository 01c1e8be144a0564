//! ERC-8004 agent identity (register, URI, wallet proof) and the stake bond.

use alloy::{
    primitives::{Address, Bytes, U256},
    sol,
    sol_types::eip712_domain,
};

use crate::{
    Error, ReefClient, Result, TxOutcome, bindings::registry::AgentRegistry, signing::sign_typed,
};

sol! {
    /// EIP-712 proof signed by a new agent wallet (ERC-8004 `setAgentWallet`).
    #[derive(Debug)]
    struct AgentWalletSet {
        uint256 agentId;
        address newWallet;
        address owner;
        uint256 deadline;
    }
}

impl ReefClient {
    fn registry_addr(&self) -> Address {
        self.deployment().agent_registry
    }

    /// Registers a new agent owned by this account; returns its ERC-8004 agent id.
    pub async fn register_agent(&self, agent_uri: &str) -> Result<(U256, TxOutcome)> {
        let call = AgentRegistry::register_2Call { agentURI: agent_uri.to_string() };
        let out = self.send_call("register agent", self.registry_addr(), &call, U256::ZERO).await?;
        let ev: AgentRegistry::Registered = out.event(self.registry_addr()).ok_or_else(|| {
            Error::Decode { what: "Registered".into(), reason: "event missing from receipt".into() }
        })?;
        Ok((ev.agentId, out))
    }

    /// Signs the ERC-8004 wallet proof as `self` (the NEW wallet) for `agent_id` owned by `owner`.
    pub fn sign_agent_wallet(
        &self,
        agent_id: U256,
        owner: Address,
        deadline: U256,
    ) -> Result<Bytes> {
        let domain = eip712_domain! {
            name: "ERC8004IdentityRegistry",
            version: "1",
            chain_id: self.deployment().chain_id,
            verifying_contract: self.registry_addr(),
        };
        let msg = AgentWalletSet { agentId: agent_id, newWallet: self.address(), owner, deadline };
        sign_typed(self.signer(), &msg, &domain)
    }

    /// Owner: sets the agent's payment wallet with the wallet's signed proof.
    pub async fn set_agent_wallet(
        &self,
        agent_id: U256,
        wallet: Address,
        deadline: U256,
        signature: Bytes,
    ) -> Result<TxOutcome> {
        let call = AgentRegistry::setAgentWalletCall {
            agentId: agent_id,
            newWallet: wallet,
            deadline,
            signature,
        };
        self.send_call("setAgentWallet", self.registry_addr(), &call, U256::ZERO).await
    }

    /// The `agentURI` of `agent_id` (its ERC-721 `tokenURI`).
    pub async fn agent_uri(&self, agent_id: U256) -> Result<String> {
        let call = AgentRegistry::tokenURICall { tokenId: agent_id };
        self.view(self.deployment().agent_registry, call).await
    }

    /// Points `agent_id`'s `agentURI` at `uri` (owner or operator only).
    pub async fn set_agent_uri(&self, agent_id: U256, uri: &str) -> Result<TxOutcome> {
        let call = AgentRegistry::setAgentURICall { agentId: agent_id, newURI: uri.to_string() };
        self.send_call("setAgentURI", self.deployment().agent_registry, &call, U256::ZERO).await
    }

    /// The agent's payment wallet (zero if unset).
    pub async fn agent_wallet(&self, agent_id: U256) -> Result<Address> {
        self.view(self.registry_addr(), AgentRegistry::getAgentWalletCall { agentId: agent_id })
            .await
    }

    /// Bonds `amount` wei of stake for this account.
    pub async fn stake(&self, amount: U256) -> Result<TxOutcome> {
        self.send_call("stake", self.registry_addr(), &AgentRegistry::stakeCall {}, amount).await
    }

    /// Bonded stake of `who`.
    pub async fn stake_of(&self, who: Address) -> Result<U256> {
        self.view(self.registry_addr(), AgentRegistry::stakeOfCall { account: who }).await
    }

    /// Starts unbonding `amount` of this account's stake.
    pub async fn request_unbond(&self, amount: U256) -> Result<TxOutcome> {
        let call = AgentRegistry::requestUnbondCall { amount };
        self.send_call("requestUnbond", self.registry_addr(), &call, U256::ZERO).await
    }
}
