//! The poster's side of a swarm query: ask, then pay the winner with the next cumulative
//! voucher on a payment channel to it (opened once per winner, topped up when it runs low),
//! and get the answer. Used by `reef ask`, the MCP tool and the bench.
//!
//! Channels and the cumulative amount signed on each are remembered in the same state file
//! as the metered payer's (`.reef/pay-<address>/channels.json`), so `reef pay close` reclaims
//! what is left, and a voucher is recorded before it is sent (and rolled back when refused).

use std::path::PathBuf;

use alloy::primitives::{Address, U256};
use escrow_client::ReefClient;
use reef_agent_sdk::Client;
use reef_wire::swarm::{AskOutcome, PayOutcome, SwarmAsk, SwarmCode};
use serde::Serialize;
use serde_json::Value;

use super::{Error, Result};
use crate::metered::payer::{PayerChannel, PayerState};

/// How the poster funds its channels.
#[derive(Debug, Clone)]
pub struct PosterConfig {
    /// Deposit of a new channel, and top-up when a voucher would exceed it (base units).
    pub deposit: u128,
    /// Challenge period of a new channel, seconds (the node refuses < 600 by default).
    pub challenge_period: u32,
    /// Where channels are remembered.
    pub state_dir: PathBuf,
}

/// An answered and paid query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answered {
    /// Query id.
    pub query_id: String,
    /// Who answered.
    pub winner: Address,
    /// Price paid.
    pub price: U256,
    /// The answer.
    pub answer: Value,
    /// Cumulative amount paid on the channel to the winner.
    pub cumulative: U256,
    /// The channel.
    pub channel_id: U256,
    /// Whether a channel was opened (or topped up) for this query: a chain transaction.
    pub chain_tx: bool,
    /// Agents asked.
    pub asked: u32,
    /// Bids received.
    pub bids: u32,
    /// Microseconds from the window's close to the award, as the node measured it.
    pub decision_us: u64,
    /// Awards made (more than 1: runners-up took over from silent winners).
    pub awards: u32,
}

/// A poster: a chain client (for channels and voucher signatures) and a node connection.
#[derive(Debug)]
pub struct Poster {
    chain: ReefClient,
    ioa: Client,
    cfg: PosterConfig,
    state: PayerState,
    /// Channels read from the chain since this poster started (checked once each).
    checked: std::collections::HashSet<U256>,
}

impl Poster {
    /// A poster signing with `chain`'s key, asking through `ioa` (logged in with the same key).
    pub fn new(chain: ReefClient, ioa: Client, cfg: PosterConfig) -> Result<Self> {
        if ioa.address() != chain.address() {
            return Err(Error::Invalid("the node session and the chain key differ".into()));
        }
        let state = PayerState::load(&cfg.state_dir)?;
        Ok(Self { chain, ioa, cfg, state, checked: Default::default() })
    }

    /// The node connection.
    pub fn client(&self) -> &Client {
        &self.ioa
    }

    /// Asks; on an invoice pays it. A failed query (`no_agents`, `no_bids`, `no_answer`) is
    /// [`Error::Failed`] and costs nothing.
    pub async fn ask(&mut self, ask: SwarmAsk) -> Result<Answered> {
        let outcome = self.ioa.swarm_ask(ask).await?;
        self.settle(outcome).await
    }

    /// Pays an ask's outcome (an invoice) and returns the answer.
    pub async fn settle(&mut self, outcome: AskOutcome) -> Result<Answered> {
        let (query_id, winner, price, token, asked, bids, decision_us, awards) = match outcome {
            AskOutcome::Failed { code, message, .. } => {
                return Err(Error::Failed { code, message });
            }
            AskOutcome::Invoice {
                query_id,
                winner,
                price,
                token,
                asked,
                bids,
                decision_us,
                awards,
                ..
            } => (query_id, winner, price, token, asked, bids, decision_us, awards),
        };
        let (mut ch, chain_tx) = self.channel_for(winner, token, price).await?;
        let mut retried = false;
        loop {
            let next = ch.cumulative + price;
            let (v, sig) = self.chain.sign_voucher(ch.channel_id, winner, next)?;
            let prev = ch.cumulative;
            ch.cumulative = next;
            self.save(&ch)?;
            let voucher = reef_agent_sdk::swarm::voucher(v.channelId, v.payer, v.payee, next);
            match self.ioa.swarm_pay(&query_id, voucher, sig).await? {
                PayOutcome::Paid { answer, cumulative, .. } => {
                    return Ok(Answered {
                        query_id,
                        winner,
                        price,
                        answer,
                        cumulative,
                        channel_id: ch.channel_id,
                        chain_tx,
                        asked,
                        bids,
                        decision_us,
                        awards,
                    });
                }
                PayOutcome::Refused { code, message, expected, .. } => {
                    ch.cumulative = prev;
                    // The node accepted more on this channel than we remember (a state file
                    // restored from a backup, another machine with the same key): sign on
                    // from its figure once, never below ours.
                    if !retried
                        && matches!(code, SwarmCode::StaleVoucher | SwarmCode::WrongAmount)
                        && let Some(exp) = expected
                        && exp > next
                        && exp <= ch.deposit
                    {
                        retried = true;
                        ch.cumulative = exp - price;
                        self.save(&ch)?;
                        continue;
                    }
                    self.save(&ch)?;
                    return Err(Error::Refused { code, message });
                }
            }
        }
    }

    fn save(&mut self, ch: &PayerChannel) -> Result<()> {
        self.state.channels.insert(PayerState::key(ch.agent, ch.token), ch.clone());
        Ok(self.state.save(&self.cfg.state_dir)?)
    }

    /// The open channel to `agent` in `token` with room for `price` more (opened or topped up
    /// if needed: then the bool is true).
    pub async fn channel_for(
        &mut self,
        agent: Address,
        token: Address,
        price: U256,
    ) -> Result<(PayerChannel, bool)> {
        let key = PayerState::key(agent, token);
        let mut tx = false;
        let mut ch = match self.state.channels.get(&key).cloned() {
            Some(c) => c,
            None => {
                let (id, _) = self
                    .chain
                    .open_channel(agent, token, self.cfg.deposit, self.cfg.challenge_period)
                    .await?;
                tx = true;
                PayerChannel {
                    channel_id: id,
                    agent,
                    token,
                    group_id: String::new(),
                    cumulative: U256::ZERO,
                    deposit: U256::from(self.cfg.deposit),
                }
            }
        };
        if !tx && !self.checked.contains(&ch.channel_id) {
            // A channel we remember may have been closed meanwhile (`reef pay close`).
            let on = self.chain.channel(ch.channel_id).await?;
            if on.closed || on.closeRequestedAt != 0 || on.payee != agent {
                self.state.channels.remove(&key);
                return Box::pin(self.channel_for(agent, token, price)).await;
            }
            ch.deposit = U256::from(on.deposit);
            ch.cumulative = ch.cumulative.max(U256::from(on.redeemed));
            self.checked.insert(ch.channel_id);
        }
        if ch.cumulative + price > ch.deposit {
            let top = self.cfg.deposit.max(price.saturating_to::<u128>());
            self.chain.deposit_channel(ch.channel_id, token, top).await?;
            ch.deposit = U256::from(self.chain.channel(ch.channel_id).await?.deposit);
            tx = true;
        }
        if tx {
            self.save(&ch)?;
        }
        Ok((ch, tx))
    }
}
