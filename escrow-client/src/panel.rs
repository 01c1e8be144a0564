//! Evaluator panels: k-of-n third-party evaluators acting as one ERC-1271 evaluator of a bounty
//! (`EvaluatorPanel`). The poster opens the panel (and escrows the members' fees) before posting
//! the bounty with `evaluator = panel contract`; members sign ordinary escrow attestations; the
//! combined signature is `abi.encode(bountyId, resultHash, verdict, bytes[] memberSigs)` with the
//! member signatures sorted by signer.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    sol_types::{SolType, SolValue, sol_data},
};

use crate::{
    Error, ReefClient, Result, TxOutcome,
    bindings::{
        escrow::IBountyTypes::{Attestation, Bounty},
        panel::{EvaluatorPanel, IBountyTypes::Bounty as PanelBounty},
    },
    signing,
};

/// A panel as registered on-chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Panel {
    /// Who opened it (the bounty's poster).
    pub poster: Address,
    /// Members, sorted by address.
    pub members: Vec<Address>,
    /// Matching verdicts needed.
    pub quorum: u8,
    /// Fee token (zero = ETH).
    pub token: Address,
    /// Fee paid to each of the `quorum` signers of the final verdict.
    pub fee_per_vote: u128,
    /// Whether the fees were paid out (or refunded).
    pub fees_settled: bool,
}

/// Combines member attestation signatures into the panel's ERC-1271 signature. `sigs` are
/// `(signer, signature)` pairs; they are sorted by signer and deduplicated here. `provider` is
/// the provider the members judged (signed in the attestation).
pub fn encode_signature(
    bounty_id: U256,
    provider: Address,
    result_hash: B256,
    verdict: u8,
    mut sigs: Vec<(Address, Bytes)>,
) -> Bytes {
    sigs.sort_by_key(|(a, _)| *a);
    sigs.dedup_by_key(|(a, _)| *a);
    let member_sigs: Vec<Bytes> = sigs.into_iter().map(|(_, s)| s).collect();
    type Encoded = (
        sol_data::Uint<256>,
        sol_data::Address,
        sol_data::FixedBytes<32>,
        sol_data::Uint<8>,
        sol_data::Array<sol_data::Bytes>,
    );
    Bytes::from(Encoded::abi_encode_params(&(
        bounty_id,
        provider,
        result_hash,
        verdict,
        member_sigs,
    )))
}

impl ReefClient {
    fn panel_addr(&self) -> Result<Address> {
        self.deployment().evaluator_panel.ok_or_else(|| {
            Error::InvalidInput(
                "this deployment has no EvaluatorPanel; redeploy (`reef devnet up`) to use evaluator/quorum verification".into(),
            )
        })
    }

    /// The panel contract of this deployment, if any.
    pub fn evaluator_panel(&self) -> Option<Address> {
        self.deployment().evaluator_panel
    }

    /// Opens the evaluator panel of the bounty this account will post with `salt`, escrowing
    /// `fee_per_vote * quorum` of `token` (approving the panel first if `approve`).
    pub async fn open_panel(
        &self,
        salt: B256,
        members: Vec<Address>,
        quorum: u8,
        token: Address,
        fee_per_vote: u128,
        approve: bool,
    ) -> Result<Vec<TxOutcome>> {
        let panel = self.panel_addr()?;
        if quorum == 0 || usize::from(quorum) > members.len() {
            return Err(Error::InvalidInput(format!(
                "quorum {quorum} must be 1..={} (the number of members)",
                members.len()
            )));
        }
        let budget = U256::from(fee_per_vote) * U256::from(quorum);
        let mut txs = Vec::new();
        if !budget.is_zero()
            && let Some(tx) = self.ensure_can_pay(token, panel, budget, approve).await?
        {
            txs.push(tx);
        }
        let value = if token.is_zero() { budget } else { U256::ZERO };
        let call = EvaluatorPanel::openPanelCall {
            salt,
            members,
            quorum,
            token,
            feePerVote: fee_per_vote,
        };
        txs.push(self.send_call("openPanel", panel, &call, value).await?);
        Ok(txs)
    }

    /// The panel of bounty `id` (None if none was opened).
    pub async fn panel_of(&self, id: U256) -> Result<Option<Panel>> {
        let panel = self.panel_addr()?;
        let r = self.view(panel, EvaluatorPanel::panelOfCall { id }).await?;
        if r.poster.is_zero() {
            return Ok(None);
        }
        Ok(Some(Panel {
            poster: r.poster,
            members: r.members,
            quorum: r.quorum,
            token: r.token,
            fee_per_vote: r.feePerVote,
            fees_settled: r.feesSettled,
        }))
    }

    /// Pays the members who signed the final verdict (anyone may call once the bounty is final).
    pub async fn settle_panel_fees(
        &self,
        id: U256,
        b: &Bounty,
        verdict: u8,
        member_sigs: Vec<Bytes>,
    ) -> Result<TxOutcome> {
        let panel = self.panel_addr()?;
        // The same Solidity struct, generated once per contract binding: convert via its ABI.
        let pb = <PanelBounty as SolValue>::abi_decode(&b.abi_encode())
            .map_err(|e| Error::InvalidInput(format!("bounty record: {e}")))?;
        let call = EvaluatorPanel::settleFeesCall { id, b: pb, verdict, memberSigs: member_sigs };
        self.send_call("settleFees", panel, &call, U256::ZERO).await
    }

    /// Who signed an escrow attestation `(id, provider, result_hash, verdict)` with `sig`
    /// (off-chain check of a panel member's evaluation; bound to this chain and escrow).
    pub fn attestation_signer(
        &self,
        id: U256,
        provider: Address,
        result_hash: B256,
        verdict: u8,
        sig: &[u8],
        expected: Address,
    ) -> Result<()> {
        let att = Attestation { bountyId: id, provider, resultHash: result_hash, verdict };
        let domain =
            signing::escrow_domain(self.deployment().chain_id, self.deployment().bounty_escrow);
        signing::verify_typed(&att, &domain, sig, expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_encoding_sorts_and_dedups_signers() {
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        let enc = encode_signature(
            U256::from(7),
            Address::repeat_byte(4),
            B256::repeat_byte(3),
            1,
            vec![
                (b, Bytes::from(vec![2u8; 65])),
                (a, Bytes::from(vec![1u8; 65])),
                (a, Bytes::from(vec![9u8; 65])),
            ],
        );
        type Encoded = (
            sol_data::Uint<256>,
            sol_data::Address,
            sol_data::FixedBytes<32>,
            sol_data::Uint<8>,
            sol_data::Array<sol_data::Bytes>,
        );
        let (id, p, rh, v, sigs) = Encoded::abi_decode_params(&enc).unwrap();
        assert_eq!(
            (id, p, rh, v),
            (U256::from(7), Address::repeat_byte(4), B256::repeat_byte(3), 1)
        );
        assert_eq!(sigs, vec![Bytes::from(vec![1u8; 65]), Bytes::from(vec![2u8; 65])]);
    }
}
