//! Checking a poster's voucher before the answer is released: signature, parties, the channel
//! on-chain (funded, open, long enough challenge period, right token) and the amount against
//! what the node already accepted (replays are stale). The same rules as the metered agent's
//! [`crate::metered::Verifier`], applied by the node, which holds the answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use escrow_client::{
    ReefClient,
    bindings::channel::PaymentChannel::{Channel, Voucher},
    signing,
};
use reef_wire::swarm::{SwarmCode, SwarmVoucher};

use super::ledger::Ledger;

/// A refused voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub code: SwarmCode,
    /// Explanation.
    pub message: String,
    /// The cumulative amount expected, when the amount was wrong.
    pub expected: Option<U256>,
}

impl Refusal {
    fn new(code: SwarmCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), expected: None }
    }
}

/// Policy of the checks.
#[derive(Debug, Clone)]
pub struct PaymentConfig {
    /// Refuse channels whose challenge period is shorter (the payer could withdraw first).
    pub min_challenge_period: Duration,
    /// How long a channel read from the chain is trusted (re-read when a voucher goes past
    /// its deposit).
    pub cache_ttl: Duration,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        Self { min_challenge_period: Duration::from_secs(600), cache_ttl: Duration::from_secs(10) }
    }
}

/// What an accepted voucher is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The cumulative amount now accepted on the channel.
    pub cumulative: U256,
}

/// The voucher checker.
#[derive(Debug)]
pub struct Payments {
    chain: ReefClient,
    domain: alloy::sol_types::Eip712Domain,
    ledger: Ledger,
    cfg: PaymentConfig,
    cache: Mutex<HashMap<U256, (Channel, Instant)>>,
}

impl Payments {
    /// A checker reading channels through `chain` and recording accepted amounts in `ledger`.
    pub fn new(chain: ReefClient, ledger: Ledger, cfg: PaymentConfig) -> Self {
        let dep = chain.deployment();
        let domain = signing::channel_domain(dep.chain_id, dep.payment_channel);
        Self { chain, domain, ledger, cfg, cache: Mutex::default() }
    }

    async fn channel(&self, id: U256, fresh: bool) -> Result<Channel, Refusal> {
        if !fresh {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((ch, at)) = cache.get(&id)
                && at.elapsed() < self.cfg.cache_ttl
            {
                return Ok(ch.clone());
            }
        }
        let ch = self.chain.channel(id).await.map_err(|e| {
            Refusal::new(SwarmCode::Unavailable, format!("cannot read channel {id}: {e}"))
        })?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (ch.clone(), Instant::now()));
        Ok(ch)
    }

    /// Checks `voucher` (signed `sig`) as payment of `price` in `token` from `poster` to
    /// `winner`, and records it as accepted. Nothing is recorded when it is refused.
    pub async fn accept(
        &self,
        poster: Address,
        winner: Address,
        token: Address,
        price: U256,
        voucher: &SwarmVoucher,
        sig: &[u8],
    ) -> Result<Accepted, Refusal> {
        use SwarmCode::*;
        let v = Voucher {
            channelId: voucher.channel_id,
            payer: voucher.payer,
            payee: voucher.payee,
            cumulativeAmount: voucher.cumulative_amount,
        };
        if v.payee != winner {
            return Err(Refusal::new(
                WrongPayee,
                format!("voucher pays {}, the winner is {winner}", v.payee),
            ));
        }
        if v.payer != poster {
            return Err(Refusal::new(
                WrongPayer,
                format!("voucher payer {} is not the poster {poster}", v.payer),
            ));
        }
        if let Err(e) = signing::verify_typed(&v, &self.domain, sig, v.payer) {
            return Err(Refusal::new(BadSignature, format!("voucher signature: {e}")));
        }
        let mut ch = self.channel(v.channelId, false).await?;
        if ch.payer.is_zero() {
            return Err(Refusal::new(WrongChannel, format!("no channel {}", v.channelId)));
        }
        if ch.payee != winner || ch.payer != poster {
            return Err(Refusal::new(
                WrongChannel,
                format!(
                    "channel {} is {} → {}, not poster → winner",
                    v.channelId, ch.payer, ch.payee
                ),
            ));
        }
        if ch.token != token {
            return Err(Refusal::new(
                WrongChannel,
                format!(
                    "channel {} escrows {}, the query is priced in {token}",
                    v.channelId, ch.token
                ),
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
        // One voucher of a channel at a time from here: check the amount, then record it.
        let lock = self.ledger.lock_of(v.channelId);
        let _held = lock.lock().await;
        let unavailable = |e: super::Error| Refusal::new(Unavailable, format!("ledger: {e}"));
        let recorded = self.ledger.accepted(v.channelId).await.map_err(unavailable)?;
        let last = recorded.max(U256::from(ch.redeemed));
        let expected = last + price;
        if v.cumulativeAmount <= last {
            return Err(Refusal {
                code: StaleVoucher,
                message: format!(
                    "cumulative {} does not exceed the {last} already accepted (a replayed voucher?)",
                    v.cumulativeAmount
                ),
                expected: Some(expected),
            });
        }
        if v.cumulativeAmount != expected {
            return Err(Refusal {
                code: WrongAmount,
                message: format!(
                    "cumulative {} ≠ accepted {last} + price {price}",
                    v.cumulativeAmount
                ),
                expected: Some(expected),
            });
        }
        if v.cumulativeAmount > U256::from(ch.deposit) || ch.closeRequestedAt != 0 || ch.closed {
            // Maybe topped up, or the close state changed: read again before refusing.
            ch = self.channel(v.channelId, true).await?;
        }
        if ch.closed {
            return Err(Refusal::new(ChannelClosed, format!("channel {} is closed", v.channelId)));
        }
        if ch.closeRequestedAt != 0 {
            return Err(Refusal::new(
                ChannelClosing,
                format!("a close was requested on channel {}", v.channelId),
            ));
        }
        if v.cumulativeAmount > U256::from(ch.deposit) {
            return Err(Refusal::new(
                ExceedsDeposit,
                format!(
                    "cumulative {} exceeds the deposit {} of channel {}",
                    v.cumulativeAmount, ch.deposit, v.channelId
                ),
            ));
        }
        match self.ledger.accept(v.channelId, poster, winner, recorded, v.cumulativeAmount).await {
            Ok(true) => Ok(Accepted { cumulative: v.cumulativeAmount }),
            Ok(false) => Err(Refusal::new(
                StaleVoucher,
                format!("channel {} was paid elsewhere meanwhile; sign again", v.channelId),
            )),
            Err(e) => Err(unavailable(e)),
        }
    }
}
