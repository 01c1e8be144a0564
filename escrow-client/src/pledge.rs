//! Sub-bounties funded from a pending reward.
//!
//! The provider of an awarded auction may fund sub-bounties with part of the reward it has not
//! been paid yet (`postFromReward`). Such a sub-bounty is denominated in a *pledge token*: an
//! address without code that the escrow derives from the parent and the provider
//! ([`pledge_token`]). Every payout of the sub-bounty is a ledger credit in that token; the
//! parent's settlement holds the pledged amount back from its provider's pay, and only then do
//! the credits redeem for the parent's token ([`ReefClient::redeem_pledge`]). A parent that
//! fails, or is taken over by another provider, leaves the credits void.

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    sol_types::SolValue,
};
use serde::Serialize;

use crate::{
    Error, ReefClient, Result, TxOutcome,
    bindings::escrow::{BountyEscrow, IBountyTypes::Bounty},
    escrow::{BountyState, Status, bounty_id, net_of},
};

/// Pledges nest (a sub-bounty's provider may pledge from its own pledged reward); following a
/// chain of pledge tokens to the real token stops after this many steps.
pub const MAX_PLEDGE_DEPTH: usize = 16;

/// The pledge token of sub-bounties funded from `provider`'s reward on `parent`, as the escrow at
/// `escrow` derives it (`pledgeTokenOf`).
pub fn pledge_token(escrow: Address, parent: U256, provider: Address) -> Address {
    let tag = keccak256("ReefBountyEscrow.pledge");
    let word = keccak256((tag, escrow, parent, provider).abi_encode());
    Address::from_slice(&word[12..])
}

/// What a pledge's credits are worth now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PledgeState {
    /// The parent is not settled yet: the credits wait.
    Pending,
    /// The parent paid its provider: credits redeem at `backed / pledged`.
    Redeemable,
    /// The parent failed or went to another provider: the credits are worth nothing.
    Void,
}

/// A pledge as the escrow records it.
#[derive(Debug, Clone, Serialize)]
pub struct Pledge {
    /// The pledge token.
    pub token: Address,
    /// The parent bounty whose reward backs it.
    pub parent: U256,
    /// The parent's reward token (itself a pledge token for a nested pledge).
    pub underlying: Address,
    /// The provider whose reward it is.
    pub provider: Address,
    /// Total of the sub-bounties funded from it.
    pub pledged: U256,
    /// What the parent's settlement held back for it (0 until then, and if void).
    pub backed: U256,
    /// The parent's status now.
    pub parent_status: Status,
    /// What the credits are worth now.
    pub state: PledgeState,
}

impl Pledge {
    /// What `credit` redeems for now (0 unless redeemable).
    pub fn value_of(&self, credit: U256) -> U256 {
        if self.state != PledgeState::Redeemable || self.pledged.is_zero() {
            return U256::ZERO;
        }
        credit * self.backed / self.pledged
    }
}

impl ReefClient {
    /// The pledge token of `provider`'s reward on `parent` on this deployment.
    pub fn pledge_token_of(&self, parent: U256, provider: Address) -> Address {
        pledge_token(self.deployment().bounty_escrow, parent, provider)
    }

    /// The pledge behind `token`, or `None` if `token` is not a pledge token of this escrow that
    /// has been used.
    pub async fn pledge(&self, token: Address) -> Result<Option<Pledge>> {
        let escrow = self.deployment().bounty_escrow;
        if token.is_zero() {
            return Ok(None);
        }
        let src = self.view(escrow, BountyEscrow::pledgeSourcesCall { pledgeToken: token }).await?;
        if src.provider.is_zero() {
            return Ok(None);
        }
        let amounts = self.view(escrow, BountyEscrow::pledgesCall { pledgeToken: token }).await?;
        let (parent_status, _) = self.status_of(src.parentId).await?;
        let backed = U256::from(amounts.backed);
        let state = match parent_status {
            Status::Completed | Status::Resolved if backed.is_zero() => PledgeState::Void,
            Status::Completed | Status::Resolved => PledgeState::Redeemable,
            Status::Expired | Status::Refunded | Status::Cancelled => PledgeState::Void,
            _ => PledgeState::Pending,
        };
        Ok(Some(Pledge {
            token,
            parent: src.parentId,
            underlying: src.token,
            provider: src.provider,
            pledged: U256::from(amounts.pledged),
            backed,
            parent_status,
            state,
        }))
    }

    /// The real token behind `token`: `token` itself unless it is a pledge token, else the
    /// parent's token, followed through nested pledges.
    pub async fn underlying_token(&self, token: Address) -> Result<Address> {
        let mut t = token;
        for _ in 0..MAX_PLEDGE_DEPTH {
            match self.pledge(t).await? {
                Some(p) => t = p.underlying,
                None => return Ok(t),
            }
        }
        Err(Error::InvalidInput(format!(
            "token {token} is a chain of more than {MAX_PLEDGE_DEPTH} nested pledges"
        )))
    }

    /// Credits of `account` in the escrow's ledger for `token` (pledge credits, or payouts that
    /// could not be pushed).
    pub async fn ledger_credit(&self, token: Address, account: Address) -> Result<U256> {
        let escrow = self.deployment().bounty_escrow;
        self.view(escrow, BountyEscrow::withdrawableCall { token, account }).await
    }

    /// Checks that this account may fund `amount` of sub-bounties from its reward on `parent`:
    /// the parent is awarded to it (and not yet submitted), and `amount` fits in its net pay
    /// less what it pledged already. Returns the parent's current record.
    pub async fn check_pledge(&self, parent: U256, amount: u128) -> Result<Bounty> {
        let state = self.bounty(parent).await?;
        self.check_pledge_on(&state, amount).await?;
        Ok(state.record)
    }

    /// [`Self::check_pledge`] on a parent's state read already.
    pub async fn check_pledge_on(&self, state: &BountyState, amount: u128) -> Result<()> {
        let (parent, me) = (state.id, self.address());
        if state.status != Status::Awarded || state.record.provider != me {
            return Err(Error::InvalidInput(format!(
                "bounty {parent:#x} is {} with provider {}: only its provider ({me}) can fund \
                 sub-bounties from its reward, while the job is awarded and not yet submitted",
                state.status, state.record.provider
            )));
        }
        let net = net_of(state.record.price, state.record.feeBps);
        let used = match self.pledge(self.pledge_token_of(parent, me)).await? {
            Some(p) => p.pledged,
            None => U256::ZERO,
        };
        let left = net.saturating_sub(used);
        if U256::from(amount) > left {
            return Err(Error::InvalidInput(format!(
                "the reward on {parent:#x} has {left} (base units) left to pledge: net pay {net}, \
                 already pledged {used}; lower the sub-bounty's reward"
            )));
        }
        Ok(())
    }

    /// Provider of the awarded bounty `parent`: posts `terms` (whose `token` must be this
    /// account's pledge token on `parent`, see [`Self::pledge_token_of`]) funded from the pending
    /// reward, without a transfer. [`Self::check_pledge`] runs first, so a refusal says why.
    /// Returns the id, the record and the transaction.
    pub async fn post_from_reward(
        &self,
        salt: B256,
        terms: Bounty,
        parent: U256,
    ) -> Result<(U256, Bounty, TxOutcome)> {
        let record = self.check_pledge(parent, terms.amount).await?;
        let pt = self.pledge_token_of(parent, self.address());
        if terms.token != pt {
            return Err(Error::InvalidInput(format!(
                "a sub-bounty funded from the reward on {parent:#x} is paid in its pledge token \
                 {pt}, not {}",
                terms.token
            )));
        }
        let call = BountyEscrow::postFromRewardCall {
            salt,
            terms: terms.clone(),
            parentId: parent,
            parent: record,
        };
        let out = self
            .send_call("postFromReward", self.deployment().bounty_escrow, &call, U256::ZERO)
            .await?;
        Ok((bounty_id(self.address(), salt), terms, out))
    }

    /// Turns this account's credits in the pledge `token` into the parent's token (which, for a
    /// nested pledge, is again a credit, in the parent's pledge token). Refuses with a clear
    /// error while the parent is pending, when the pledge is void, or without credits.
    pub async fn redeem_pledge(&self, token: Address) -> Result<TxOutcome> {
        let p = self.pledge(token).await?.ok_or_else(|| {
            Error::InvalidInput(format!("{token} is not a pledge token of this escrow"))
        })?;
        let credit = self.ledger_credit(token, self.address()).await?;
        self.redeem_read_pledge(&p, credit).await
    }

    /// [`Self::redeem_pledge`] for a pledge and this account's `credit` in it, read already.
    pub async fn redeem_read_pledge(&self, p: &Pledge, credit: U256) -> Result<TxOutcome> {
        let token = p.token;
        if credit.is_zero() {
            return Err(Error::InvalidInput(format!(
                "{} holds no credits in pledge {token}",
                self.address()
            )));
        }
        match p.state {
            PledgeState::Pending => Err(Error::InvalidInput(format!(
                "the parent bounty {:#x} is {}: pledge credits redeem once it is settled",
                p.parent, p.parent_status
            ))),
            PledgeState::Void => Err(Error::InvalidInput(format!(
                "the parent bounty {:#x} ended {} without paying {}: its pledge is void",
                p.parent, p.parent_status, p.provider
            ))),
            PledgeState::Redeemable => {
                let call = BountyEscrow::redeemPledgeCall { pledgeToken: token };
                self.send_call("redeemPledge", self.deployment().bounty_escrow, &call, U256::ZERO)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pledge_tokens_differ_by_escrow_parent_and_provider() {
        let e = Address::repeat_byte(1);
        let p = Address::repeat_byte(2);
        let t = pledge_token(e, U256::from(7), p);
        assert_ne!(t, pledge_token(Address::repeat_byte(3), U256::from(7), p));
        assert_ne!(t, pledge_token(e, U256::from(8), p));
        assert_ne!(t, pledge_token(e, U256::from(7), Address::repeat_byte(4)));
        assert_eq!(t, pledge_token(e, U256::from(7), p));
    }

    #[test]
    fn only_a_redeemable_pledge_has_value() {
        let mut p = Pledge {
            token: Address::ZERO,
            parent: U256::from(1),
            underlying: Address::ZERO,
            provider: Address::ZERO,
            pledged: U256::from(300),
            backed: U256::from(150),
            parent_status: Status::Resolved,
            state: PledgeState::Redeemable,
        };
        assert_eq!(p.value_of(U256::from(100)), U256::from(50));
        p.state = PledgeState::Pending;
        assert_eq!(p.value_of(U256::from(100)), U256::ZERO);
    }
}
