//! The facilitator: the chain checks of a verified payment (nonce unused, balance) and its
//! settlement with `transferWithAuthorization`, sent from the facilitator's own account (it
//! pays the gas; the tokens go from the payer to the payee).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use alloy::primitives::{Address, B256};
use alloy::providers::Provider as _;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent as _;
use escrow_client::bindings::token::ReefTestToken::{AuthorizationUsed, Transfer};
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
    /// Settlements sent but not confirmed in time, by `(payer, nonce)`: a retry of the same
    /// payload looks up this transaction instead of refusing the (now used) nonce.
    unconfirmed: Arc<Mutex<HashMap<(Address, B256), B256>>>,
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
        Self { chain, inflight: Arc::default(), unconfirmed: Arc::default() }
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
        let settled = |transaction| SettleResponse {
            success: true,
            payer: v.auth.from,
            transaction,
            network: caip2(terms.chain_id),
            amount: v.auth.value,
        };
        // A retry after our own settlement of this payload timed out: if that transaction (or
        // a fee-bumped copy) paid us, serve on it; it was never served.
        let earlier = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied();
        if let Some(hash) = earlier {
            if let Some(paid) = self.find_settlement(v, terms, hash).await? {
                self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                return Ok(settled(paid));
            }
            let pending = self
                .chain
                .provider()
                .get_transaction_receipt(hash)
                .await
                .map_err(|e| Refusal::unavailable(format!("cannot read settlement {hash}: {e}")))?
                .is_none();
            if pending {
                return Err(Refusal {
                    reason: reason::SETTLEMENT_PENDING,
                    message: format!("settlement {hash} is not mined yet; retry later"),
                    retry: true,
                });
            }
            // It failed without paying us: settle anew below.
            self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        }
        self.check(v, terms).await?;
        match self
            .chain
            .transfer_with_authorization(terms.asset, &v.auth, v.signature.clone())
            .await
        {
            Ok(out) => Ok(settled(out.hash)),
            Err(e) => {
                if let ChainError::Timeout { hash, .. } = &e {
                    self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()).insert(key, *hash);
                }
                Err(settle_refusal(e))
            }
        }
    }

    /// The mined transaction that used this authorization to pay `terms.pay_to`: `hash` if it
    /// succeeded, else the transaction of the token's `AuthorizationUsed(from, nonce)` event
    /// whose receipt holds the `Transfer(from, payTo, value)` (a fee-bumped copy of ours).
    async fn find_settlement(
        &self,
        v: &Verified,
        terms: &PriceTerms,
        hash: B256,
    ) -> Result<Option<B256>, Refusal> {
        let unavailable =
            |e: String| Refusal::unavailable(format!("cannot look up settlement: {e}"));
        let mut candidates = vec![hash];
        let filter = Filter::new()
            .address(terms.asset)
            .event_signature(AuthorizationUsed::SIGNATURE_HASH)
            .topic1(v.auth.from.into_word())
            .topic2(v.auth.nonce)
            .from_block(0);
        for log in self.chain.logs(&filter).await.map_err(|e| unavailable(e.to_string()))? {
            if let Some(h) = log.transaction_hash {
                candidates.push(h);
            }
        }
        for h in candidates {
            let Some(r) = self
                .chain
                .provider()
                .get_transaction_receipt(h)
                .await
                .map_err(|e| unavailable(e.to_string()))?
            else {
                continue;
            };
            let pays_us = r.status()
                && r.inner.logs().iter().filter(|l| l.address() == terms.asset).any(|l| {
                    Transfer::decode_log_data(l.data()).is_ok_and(|t| {
                        t.from == v.auth.from && t.to == terms.pay_to && t.value == v.auth.value
                    })
                });
            if pays_us {
                return Ok(Some(h));
            }
        }
        Ok(None)
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
        // Sent but not confirmed in time: it may still be mined, so do not serve now and do not
        // invite a second payment; a retry of the same payload is answered from that
        // transaction (see `unconfirmed`).
        ChainError::Timeout { hash, .. } => Refusal {
            reason: reason::SETTLEMENT_PENDING,
            message: format!("settlement {hash} not confirmed yet; retry the same payment"),
            retry: true,
        },
        _ => Refusal::unavailable(format!("settlement not sent: {e}")),
    }
}

fn describe(r: &Revert) -> String {
    match r {
        Revert::Token(t) => format!("{t:?}"),
        other => other.name(),
    }
}
