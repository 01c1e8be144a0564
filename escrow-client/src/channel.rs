//! Micropayment channels: open, top up, sign and verify cumulative vouchers, redeem (singly or
//! in batches), close.

use alloy::primitives::{Address, Bytes, U256};

use crate::{
    Error, ReefClient, Result, TxOutcome,
    bindings::channel::PaymentChannel::{self, Voucher},
    signing,
};

impl ReefClient {
    fn channel_addr(&self) -> Address {
        self.deployment().payment_channel
    }

    /// Opens a channel to `payee` depositing `amount` of `token` (ZERO = ETH); returns its id.
    pub async fn open_channel(
        &self,
        payee: Address,
        token: Address,
        amount: u128,
        challenge_period: u32,
    ) -> Result<(U256, TxOutcome)> {
        let value = if token.is_zero() { U256::from(amount) } else { U256::ZERO };
        if !token.is_zero() {
            self.ensure_can_pay(token, self.channel_addr(), U256::from(amount), true).await?;
        }
        let call =
            PaymentChannel::openCall { payee, token, amount, challengePeriod: challenge_period };
        let out = self.send_call("open channel", self.channel_addr(), &call, value).await?;
        let ev: PaymentChannel::ChannelOpened =
            out.event(self.channel_addr()).ok_or_else(|| Error::Decode {
                what: "ChannelOpened".into(),
                reason: "event missing from receipt".into(),
            })?;
        Ok((ev.channelId, out))
    }

    /// Adds `amount` to a channel's deposit.
    pub async fn deposit_channel(
        &self,
        channel_id: U256,
        token: Address,
        amount: u128,
    ) -> Result<TxOutcome> {
        let value = if token.is_zero() { U256::from(amount) } else { U256::ZERO };
        if !token.is_zero() {
            self.ensure_can_pay(token, self.channel_addr(), U256::from(amount), true).await?;
        }
        let call = PaymentChannel::depositCall { channelId: channel_id, amount };
        self.send_call("deposit", self.channel_addr(), &call, value).await
    }

    /// Signs a cumulative voucher as the payer (this client's key).
    pub fn sign_voucher(
        &self,
        channel_id: U256,
        payee: Address,
        cumulative: U256,
    ) -> Result<(Voucher, Bytes)> {
        let v = Voucher {
            channelId: channel_id,
            payer: self.address(),
            payee,
            cumulativeAmount: cumulative,
        };
        let domain = signing::channel_domain(self.deployment().chain_id, self.channel_addr());
        let sig = signing::sign_voucher(self.signer(), &v, &domain)?;
        Ok((v, sig))
    }

    /// Verifies a voucher off-chain before serving (signature, payee, and that it adds value).
    pub async fn verify_voucher(&self, v: &Voucher, sig: &[u8]) -> Result<U256> {
        let domain = signing::channel_domain(self.deployment().chain_id, self.channel_addr());
        signing::verify_typed(v, &domain, sig, v.payer)?;
        let ch = self.channel(v.channelId).await?;
        if ch.payer != v.payer || ch.payee != v.payee {
            return Err(Error::InvalidInput(
                "voucher names a different payer/payee than the channel".into(),
            ));
        }
        if ch.closed {
            return Err(Error::InvalidInput("channel is closed".into()));
        }
        let deposit = U256::from(ch.deposit);
        let redeemed = U256::from(ch.redeemed);
        if v.cumulativeAmount > deposit {
            return Err(Error::InvalidInput(format!(
                "voucher for {} exceeds the deposit {deposit}",
                v.cumulativeAmount
            )));
        }
        if v.cumulativeAmount <= redeemed {
            return Err(Error::InvalidInput("voucher adds nothing over what was redeemed".into()));
        }
        Ok(v.cumulativeAmount - redeemed)
    }

    /// Reads a channel.
    pub async fn channel(&self, channel_id: U256) -> Result<PaymentChannel::Channel> {
        self.view(self.channel_addr(), PaymentChannel::channelCall { channelId: channel_id }).await
    }

    /// Redeems one voucher (reverts with the precise reason if invalid).
    pub async fn redeem_voucher(&self, v: Voucher, sig: Bytes) -> Result<TxOutcome> {
        self.send_call(
            "redeem",
            self.channel_addr(),
            &PaymentChannel::redeemCall { v, sig },
            U256::ZERO,
        )
        .await
    }

    /// Redeems many vouchers (from many payers) in one transaction; invalid ones are skipped.
    pub async fn redeem_batch(
        &self,
        vouchers: Vec<Voucher>,
        sigs: Vec<Bytes>,
    ) -> Result<TxOutcome> {
        let call = PaymentChannel::redeemBatchCall { vouchers, signatures: sigs };
        self.send_call("redeemBatch", self.channel_addr(), &call, U256::ZERO).await
    }

    /// Payer: starts the challenge period before reclaiming the remainder.
    pub async fn request_close(&self, channel_id: U256) -> Result<TxOutcome> {
        let call = PaymentChannel::requestCloseCall { channelId: channel_id };
        self.send_call("requestClose", self.channel_addr(), &call, U256::ZERO).await
    }

    /// Payer: reclaims deposit − redeemed after the challenge period.
    pub async fn withdraw_remainder(&self, channel_id: U256) -> Result<TxOutcome> {
        let call = PaymentChannel::withdrawRemainderCall { channelId: channel_id };
        self.send_call("withdrawRemainder", self.channel_addr(), &call, U256::ZERO).await
    }
}
