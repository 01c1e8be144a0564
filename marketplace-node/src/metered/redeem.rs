//! Redeem every accepted-but-unredeemed voucher in one `redeemBatch` transaction.

use alloy::{
    primitives::{B256, U256},
    sol_types::SolEvent,
};
use escrow_client::{ReefClient, Revert, bindings::channel::PaymentChannel};
use serde::Serialize;

use super::{Result, Store};

/// One channel's line in a [`RedeemReport`].
#[derive(Debug, Clone, Serialize)]
pub struct RedeemedChannel {
    /// Channel id.
    pub channel_id: U256,
    /// Cumulative amount of the voucher submitted.
    pub cumulative: U256,
    /// Paid by this transaction (0 if skipped).
    pub paid: U256,
    /// Calls this payment covers.
    pub calls: u64,
    /// Why the contract skipped it (custom error name), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Outcome of [`redeem`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedeemReport {
    /// Transaction hash (None: nothing to redeem).
    pub tx: Option<B256>,
    /// Gas used by the transaction.
    pub gas_used: u64,
    /// Vouchers submitted.
    pub vouchers: usize,
    /// Total paid to the agent (base units).
    pub total_paid: U256,
    /// Number of calls (micropayments) this settles.
    pub payments: u64,
    /// Gas per micropayment (gas_used / payments).
    pub gas_per_payment: Option<f64>,
    /// Per channel.
    pub channels: Vec<RedeemedChannel>,
}

/// Submits the latest unredeemed voucher of every channel in `store` in one `redeemBatch`,
/// then records what the chain paid. Vouchers the contract skips (e.g. closed channel) are
/// reported; if the chain shows them redeemed by someone else they are marked redeemed.
pub async fn redeem(chain: &ReefClient, store: &Store) -> Result<RedeemReport> {
    let mut rows: Vec<_> =
        store.channels().await?.into_iter().filter(|r| r.cumulative > r.redeemed).collect();
    if rows.is_empty() {
        return Ok(RedeemReport::default());
    }
    // Cheapest batch: consecutive vouchers share (token, payee) → one transfer per token.
    rows.sort_by_key(|r| r.token);
    let vouchers: Vec<PaymentChannel::Voucher> = rows
        .iter()
        .map(|r| PaymentChannel::Voucher {
            channelId: r.channel_id,
            payer: r.payer,
            payee: chain.address(),
            cumulativeAmount: r.cumulative,
        })
        .collect();
    let sigs = rows.iter().map(|r| r.signature.clone()).collect();
    let out = chain.redeem_batch(vouchers, sigs).await?;
    let contract = chain.deployment().payment_channel;
    let mut report = RedeemReport {
        tx: Some(out.hash),
        gas_used: out.gas_used,
        vouchers: rows.len(),
        ..Default::default()
    };
    let mut paid = std::collections::HashMap::new();
    let mut skipped = std::collections::HashMap::new();
    for log in out.logs.iter().filter(|l| l.address() == contract) {
        if let Ok(e) = PaymentChannel::VoucherRedeemed::decode_log_data(log.data()) {
            paid.insert(e.channelId, e.paid);
        } else if let Ok(e) = PaymentChannel::VoucherSkipped::decode_log_data(log.data()) {
            skipped.insert(e.channelId, Revert::decode(e.reason.as_slice()).name());
        }
    }
    for r in rows {
        let p = paid.get(&r.channel_id).copied().unwrap_or_default();
        let calls = r.calls - r.calls_redeemed.min(r.calls);
        let why = skipped.get(&r.channel_id).cloned();
        if why.is_none() {
            store.mark_redeemed(r.channel_id, r.cumulative, r.calls).await?;
            report.total_paid += p;
            report.payments += calls;
        } else if let Ok(ch) = chain.channel(r.channel_id).await
            && U256::from(ch.redeemed) >= r.cumulative
        {
            // Someone redeemed it for us already.
            store.mark_redeemed(r.channel_id, U256::from(ch.redeemed), r.calls).await?;
        }
        report.channels.push(RedeemedChannel {
            channel_id: r.channel_id,
            cumulative: r.cumulative,
            paid: p,
            calls,
            skipped: why,
        });
    }
    if report.payments > 0 {
        report.gas_per_payment = Some(report.gas_used as f64 / report.payments as f64);
    }
    Ok(report)
}
