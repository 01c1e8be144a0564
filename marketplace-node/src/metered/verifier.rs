//! Agent side: decide whether a `metered_call` is paid before serving it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, U256};
use escrow_client::{
    ReefClient,
    bindings::channel::PaymentChannel::{Channel, Voucher},
    signing,
};
use serde_json::Value;

use super::{
    Result, Store,
    protocol::{ErrorCode, MeteredCall, Refusal, parse_call},
};

/// Policy of a metered agent.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Price per call in base units of `token`.
    pub price: U256,
    /// Token charged (ZERO = ETH).
    pub token: Address,
    /// Accept any increment ≥ price (tips, coarse vouchers) instead of exactly the price.
    pub at_least: bool,
    /// Refuse channels whose challenge period is shorter (the payer could withdraw the deposit
    /// before we redeem).
    pub min_challenge_period: Duration,
    /// After the payer requested a close, stop serving when less than this is left.
    pub close_margin: Duration,
    /// How long a cached channel record is trusted.
    pub cache_ttl: Duration,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            price: U256::ZERO,
            token: Address::ZERO,
            at_least: false,
            min_challenge_period: Duration::from_secs(600),
            close_margin: Duration::from_secs(120),
            cache_ttl: Duration::from_secs(10),
        }
    }
}

/// What to do with a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A new paid call: the voucher is committed; serve it.
    Serve(MeteredCall),
    /// A retry of an accepted call: answer with the stored outcome, or serve again if it was
    /// never served (crash between acceptance and answer) — without charging again.
    Replay {
        /// The call.
        call: MeteredCall,
        /// Cumulative amount paid up to this call.
        cumulative: U256,
        /// Stored `(ok, result)`, if it was served.
        outcome: Option<(bool, Value)>,
    },
}

/// Checks vouchers against the signature, the channel on-chain and the local record.
#[derive(Debug)]
pub struct Verifier {
    chain: ReefClient,
    store: Store,
    cfg: VerifierConfig,
    domain: alloy::sol_types::Eip712Domain,
    cache: HashMap<U256, (Channel, Instant)>,
}

impl Verifier {
    /// A verifier for the agent `chain.address()`.
    pub fn new(chain: ReefClient, store: Store, cfg: VerifierConfig) -> Self {
        let dep = chain.deployment();
        let domain = signing::channel_domain(dep.chain_id, dep.payment_channel);
        Self { chain, store, cfg, domain, cache: HashMap::new() }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The policy.
    pub fn config(&self) -> &VerifierConfig {
        &self.cfg
    }

    async fn channel(&mut self, id: U256, fresh: bool) -> Result<Channel, Refusal> {
        if !fresh
            && let Some((ch, at)) = self.cache.get(&id)
            && at.elapsed() < self.cfg.cache_ttl
        {
            return Ok(ch.clone());
        }
        let ch = self.chain.channel(id).await.map_err(|e| {
            Refusal::new(ErrorCode::Unavailable, format!("cannot read channel {id}: {e}"))
        })?;
        self.cache.insert(id, (ch.clone(), Instant::now()));
        Ok(ch)
    }

    /// Whether a close was requested on a channel we hold vouchers for (redeem now).
    pub fn close_requested(&self, id: U256) -> bool {
        self.cache.get(&id).is_some_and(|(c, _)| c.closeRequestedAt != 0)
    }

    /// Decides on a `metered_call` body sent by `sender`. On `Serve`, the voucher is already
    /// durably recorded. `Err` carries the call id (if readable) and the refusal to send.
    pub async fn check(
        &mut self,
        sender: Address,
        body: &Value,
    ) -> Result<Decision, (Option<String>, Refusal)> {
        let call = parse_call(body)?;
        let id = Some(call.call_id.clone());
        self.check_call(sender, call).await.map_err(|r| (id, r))
    }

    async fn check_call(
        &mut self,
        sender: Address,
        call: MeteredCall,
    ) -> Result<Decision, Refusal> {
        use ErrorCode::*;
        let me = self.chain.address();
        let v = Voucher::from(&call.voucher);
        if v.payee != me {
            return Err(Refusal::new(WrongPayee, format!("voucher pays {}, not {me}", v.payee)));
        }
        if v.payer != sender {
            return Err(Refusal::new(
                WrongPayer,
                format!("voucher payer {} is not the sender {sender}", v.payer),
            ));
        }
        if let Err(e) = signing::verify_typed(&v, &self.domain, &call.signature, v.payer) {
            return Err(Refusal::new(BadSignature, format!("voucher signature: {e}")));
        }
        let internal = |e: super::Error| Refusal::new(Unavailable, format!("state store: {e}"));
        // Idempotent retry?
        if let Some(prev) = self.store.call(v.channelId, &call.call_id).await.map_err(internal)? {
            if prev.cumulative == v.cumulativeAmount && prev.signature == call.signature {
                return Ok(Decision::Replay {
                    call,
                    cumulative: prev.cumulative,
                    outcome: prev.outcome,
                });
            }
            return Err(Refusal::new(
                CallIdReused,
                format!("call_id {:?} was already paid with another voucher", call.call_id),
            ));
        }
        let mut ch = self.channel(v.channelId, false).await?;
        if ch.payer.is_zero() {
            return Err(Refusal::new(WrongChannel, format!("no channel {}", v.channelId)));
        }
        if ch.payee != me {
            return Err(Refusal::new(
                WrongPayee,
                format!("channel {} pays {}", v.channelId, ch.payee),
            ));
        }
        if ch.payer != v.payer {
            return Err(Refusal::new(WrongPayer, format!("channel payer is {}", ch.payer)));
        }
        if ch.token != self.cfg.token {
            return Err(Refusal::new(
                WrongChannel,
                format!("channel escrows {}, this agent charges in {}", ch.token, self.cfg.token),
            ));
        }
        if u64::from(ch.challengePeriod) < self.cfg.min_challenge_period.as_secs() {
            return Err(Refusal::new(
                ChallengeTooShort,
                format!(
                    "challenge period {}s is below the required {}s",
                    ch.challengePeriod,
                    self.cfg.min_challenge_period.as_secs()
                ),
            ));
        }
        let prev = self.store.channel(v.channelId).await.map_err(internal)?;
        let on_chain = U256::from(ch.redeemed);
        let last = prev.as_ref().map_or(on_chain, |p| p.cumulative.max(on_chain));
        let expected = last + self.cfg.price;
        if v.cumulativeAmount <= last {
            let mut r = Refusal::new(
                StaleVoucher,
                format!("cumulative {} does not exceed the accepted {last}", v.cumulativeAmount),
            );
            r.expected = Some(expected);
            return Err(r);
        }
        let amount_ok = if self.cfg.at_least {
            v.cumulativeAmount >= expected
        } else {
            v.cumulativeAmount == expected
        };
        if !amount_ok {
            let mut r = Refusal::new(
                WrongAmount,
                format!(
                    "cumulative {} ≠ accepted {last} + price {}",
                    v.cumulativeAmount, self.cfg.price
                ),
            );
            r.expected = Some(expected);
            return Err(r);
        }
        if v.cumulativeAmount > U256::from(ch.deposit) || ch.closeRequestedAt != 0 {
            // Maybe topped up (or the close state changed): re-read before refusing.
            ch = self.channel(v.channelId, true).await?;
        }
        if ch.closed {
            return Err(Refusal::new(ChannelClosed, format!("channel {} is closed", v.channelId)));
        }
        if v.cumulativeAmount > U256::from(ch.deposit) {
            return Err(Refusal::new(
                ExceedsDeposit,
                format!("cumulative {} exceeds the deposit {}", v.cumulativeAmount, ch.deposit),
            ));
        }
        if ch.closeRequestedAt != 0 {
            let now = self.chain.chain_time().await.map_err(|e| {
                Refusal::new(Unavailable, format!("cannot read the chain time: {e}"))
            })?;
            let closable = ch.closeRequestedAt.to::<u64>() + u64::from(ch.challengePeriod);
            if closable.saturating_sub(now) < self.cfg.close_margin.as_secs() {
                return Err(Refusal::new(
                    ChannelClosing,
                    format!("channel {} closes at {closable}; not serving any more", v.channelId),
                ));
            }
        }
        self.store
            .accept(&super::store::Accept {
                payer: v.payer,
                token: ch.token,
                channel_id: v.channelId,
                call_id: &call.call_id,
                cumulative: v.cumulativeAmount,
                signature: &call.signature,
                redeemed_floor: on_chain,
            })
            .await
            .map_err(internal)?;
        Ok(Decision::Serve(call))
    }
}
