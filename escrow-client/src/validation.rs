//! ERC-8004 validations of paid work: a final bounty's verdict copied into the
//! ValidationRegistry (`recordBountyValidation`: the evaluator is the validator, 100 for an
//! accepted result, 0 for a rejection that became final), and the registry's reads.

use alloy::{
    primitives::{Address, B256, U256},
    sol_types::SolValue,
};

use crate::{
    Error, ReefClient, Result, TxOutcome,
    bindings::{
        escrow::IBountyTypes::Bounty,
        validation::{IBountyTypes::Bounty as ValBounty, ValidationRegistry},
    },
};

/// Tag of the responses copied from the escrow (`ValidationRegistry.BOUNTY_TAG`).
pub const BOUNTY_TAG: &str = "reef.bounty";

/// One validation request and its latest response (ERC-8004 `getValidationStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationStatus {
    /// Who may answer (a bounty's evaluator for recorded verdicts).
    pub validator: Address,
    /// The agent whose work was validated.
    pub agent_id: U256,
    /// 0-100; meaningful once `last_update` is non-zero.
    pub response: u8,
    /// Commitment to the evidence (for bounties: keccak256 of the final record).
    pub response_hash: B256,
    /// Label of the response (`reef.bounty` for recorded verdicts).
    pub tag: String,
    /// Block time of the latest response (0 = not answered yet).
    pub last_update: u64,
}

impl ReefClient {
    fn validation_addr(&self) -> Result<Address> {
        self.deployment().validation_registry.filter(|a| !a.is_zero()).ok_or_else(|| {
            Error::InvalidInput(
                "this deployment has no ValidationRegistry address; run `reef deploy` (or `reef devnet up`) again to add one".into(),
            )
        })
    }

    /// Whether this deployment has a ValidationRegistry.
    pub fn has_validation_registry(&self) -> bool {
        self.validation_addr().is_ok()
    }

    /// The request key of bounty `id`'s verdict on `provider`'s `result_hash` (computed
    /// locally, as the contract does: chain id, escrow, bounty, provider, result).
    pub fn bounty_request_hash(&self, id: U256, provider: Address, result_hash: B256) -> B256 {
        let d = self.deployment();
        alloy::primitives::keccak256(
            (U256::from(d.chain_id), d.bounty_escrow, id, provider, result_hash).abi_encode(),
        )
    }

    /// Copies final bounty `id`'s verdict (record `b`) into the ValidationRegistry as a
    /// validation of `agent_id`'s work. Anyone may send it. Returns the request hash. Reverts
    /// decode into [`Error::Revert`] (`NoVerdict`, `RequestExists`, `NotProviderAgent`,
    /// `SelfValidation`, `BountyMismatch`, …).
    pub async fn record_bounty_validation(
        &self,
        id: U256,
        b: &Bounty,
        agent_id: U256,
    ) -> Result<(B256, TxOutcome)> {
        let registry = self.validation_addr()?;
        // The same Solidity struct, generated once per contract binding: convert via its ABI.
        let vb = <ValBounty as SolValue>::abi_decode(&b.abi_encode())
            .map_err(|e| Error::InvalidInput(format!("bounty record: {e}")))?;
        let call = ValidationRegistry::recordBountyValidationCall {
            bountyId: id,
            b: vb,
            agentId: agent_id,
        };
        let out = self.send_call("recordBountyValidation", registry, &call, U256::ZERO).await?;
        let ev: ValidationRegistry::BountyValidationRecorded =
            out.event(registry).ok_or_else(|| Error::Decode {
                what: "BountyValidationRecorded".into(),
                reason: "event missing from receipt".into(),
            })?;
        Ok((ev.requestHash, out))
    }

    /// ERC-8004 `getValidationStatus`; `None` for an unknown request.
    pub async fn validation_status(&self, request_hash: B256) -> Result<Option<ValidationStatus>> {
        let call = ValidationRegistry::getValidationStatusCall { requestHash: request_hash };
        match self.view(self.validation_addr()?, call).await {
            Ok(r) => Ok(Some(ValidationStatus {
                validator: r.validatorAddress,
                agent_id: r.agentId,
                response: r.response,
                response_hash: r.responseHash,
                tag: r.tag,
                last_update: r.lastUpdate.saturating_to(),
            })),
            Err(Error::Revert { revert, .. }) if revert.name() == "RequestNotFound" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// ERC-8004 `getSummary`: (count, average response) of `agent_id`'s answered requests,
    /// only those of `validators` when non-empty, only those tagged `tag` when non-empty.
    pub async fn validation_summary(
        &self,
        agent_id: U256,
        validators: Vec<Address>,
        tag: &str,
    ) -> Result<(u64, u8)> {
        let call = ValidationRegistry::getSummaryCall {
            agentId: agent_id,
            validatorAddresses: validators,
            tag: tag.to_string(),
        };
        let r = self.view(self.validation_addr()?, call).await?;
        Ok((r.count, r.averageResponse))
    }

    /// ERC-8004 `getAgentValidations`: every request about `agent_id`, oldest first.
    pub async fn agent_validations(&self, agent_id: U256) -> Result<Vec<B256>> {
        let call = ValidationRegistry::getAgentValidationsCall { agentId: agent_id };
        self.view(self.validation_addr()?, call).await
    }
}
