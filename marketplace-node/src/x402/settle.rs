//! The facilitator: the chain checks of a verified payment (nonce unused, balance) and its
//! settlement with `transferWithAuthorization`, sent from the facilitator's own account (it
//! pays the gas; the tokens go from the payer to the payee).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use alloy::primitives::{Address, B256};
use escrow_client::{Error as ChainError, ReefClient, Revert};

use super::{
    SettleResponse, caip2,
    requirements::PriceTerms,
    verify::{Refusal, Verified, reason},
};

/// Settles verified payments on one chain (cheap to clone).
#[derive(Debug, Clone)]
pub struct Facilitator {
    chain: ReefClient,
    /// `(payer, nonce)` of authorizations being settled now: a concurrent duplicate is refused
    /// at once instead of racing the first one's transaction.
    inflight: Arc<Mutex<HashSet<(Address, B256)>>>,
}

/// Removes an in-flight mark when the settlement ends, however it ends.
struct Inflight<'a> {
    set: &'a Mutex<HashSet<(Address, B256)>>,
    key: (Address, B256),
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

impl Facilitator {
    /// A facilitator sending from `chain`'s account.
    pub fn new(chain: ReefClient) -> Self {
        Self { chain, inflight: Arc::default() }
    }

    /// The account that pays the settlement gas.
    pub fn address(&self) -> Address {
        self.chain.address()
    }

    /// The chain checks: the nonce is unused (else: a replay) and the payer holds `value`.
    pub async fn check(&self, v: &Verified, terms: &PriceTerms) -> Result<(), Refusal> {
        let a = &v.auth;
        let used =
            self.chain.authorization_state(terms.asset, a.from, a.nonce).await.map_err(|e| {
                Refusal::unavailable(format!("cannot read the authorization state: {e}"))
            })?;
        if used {
            return Err(Refusal::new(
                reason::NONCE_USED,
                format!("authorization {} of {} was already used", a.nonce, a.from),
            ));
        }
        let have =
            self.chain.token_balance(terms.asset, a.from).await.map_err(|e| {
                Refusal::unavailable(format!("cannot read the payer's balance: {e}"))
            })?;
        if have < a.value {
            return Err(Refusal::new(
                reason::INSUFFICIENT_BALANCE,
                format!("{} holds {have}, the authorization moves {}", a.from, a.value),
            ));
        }
        Ok(())
    }

    /// Checks the chain, then submits `transferWithAuthorization` and waits for its receipt.
    /// A refusal means nothing was transferred (a reverted transaction moves no tokens).
    pub async fn settle(
        &self,
        v: &Verified,
        terms: &PriceTerms,
    ) -> Result<SettleResponse, Refusal> {
        let key = (v.auth.from, v.auth.nonce);
        if !self.inflight.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
            return Err(Refusal::new(
                reason::SETTLEMENT_PENDING,
                format!("authorization {} is being settled by another request", v.auth.nonce),
            ));
        }
        let _guard = Inflight { set: &self.inflight, key };
        self.check(v, terms).await?;
        let out = self
            .chain
            .transfer_with_authorization(terms.asset, &v.auth, v.signature.clone())
            .await
            .map_err(settle_refusal)?;
        Ok(SettleResponse {
            success: true,
            payer: v.auth.from,
            transaction: out.hash,
            network: caip2(terms.chain_id),
            amount: v.auth.value,
        })
    }
}

/// A failed settlement as a refusal: a decoded token revert names what was wrong with the
/// payment (402); anything else is ours (503).
fn settle_refusal(e: ChainError) -> Refusal {
    match &e {
        ChainError::Revert { revert, .. } => {
            let r = match revert.name().as_str() {
                "AuthorizationAlreadyUsed" => reason::NONCE_USED,
                "InvalidAuthorizationSignature" => reason::INVALID_SIGNATURE,
                "AuthorizationExpired" => reason::VALID_BEFORE,
                "AuthorizationNotYetValid" => reason::VALID_AFTER,
                "ERC20InsufficientBalance" => reason::INSUFFICIENT_BALANCE,
                _ => reason::TRANSACTION_FAILED,
            };
            Refusal::new(r, format!("settlement reverted: {}", describe(revert)))
        }
        ChainError::TxReverted { .. } => Refusal::new(reason::TRANSACTION_FAILED, e.to_string()),
        _ => Refusal::unavailable(format!("settlement not sent: {e}")),
    }
}

fn describe(r: &Revert) -> String {
    match r {
        Revert::Token(t) => format!("{t:?}"),
        other => other.name(),
    }
}
