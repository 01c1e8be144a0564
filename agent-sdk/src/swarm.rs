//! Swarm auctions from an agent's side (bid, answer, get paid) and a poster's (ask, pay).
//! Protocol: `docs/swarm.md`; frame types: [`reef_wire::swarm`].

use alloy_primitives::{Address, Bytes, U256};
use reef_wire::swarm::{
    AskOutcome, PayOutcome, SwarmAnswer, SwarmAsk, SwarmAward, SwarmBid, SwarmCancelled,
    SwarmListen, SwarmPaid, SwarmPay, SwarmQuery, SwarmVoucher,
};
use reef_wire::{ClientFrame, ServerFrame};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::{Client, Error, Result};

/// A swarm frame pushed by the node.
#[derive(Debug, Clone, PartialEq)]
pub enum SwarmPush {
    /// A query open for bids.
    Query(SwarmQuery),
    /// Our bid won: answer.
    Award(SwarmAward),
    /// The poster paid our answer: keep the voucher.
    Paid(SwarmPaid),
    /// Our award ended unpaid.
    Cancelled(SwarmCancelled),
}

impl SwarmPush {
    /// The swarm push in `frame`, or the frame back when it is none.
    pub fn from_frame(frame: ServerFrame) -> Result<Self, Box<ServerFrame>> {
        match frame {
            ServerFrame::SwarmQuery(q) => Ok(Self::Query(q)),
            ServerFrame::SwarmAward(a) => Ok(Self::Award(a)),
            ServerFrame::SwarmPaid(p) => Ok(Self::Paid(p)),
            ServerFrame::SwarmCancelled(c) => Ok(Self::Cancelled(c)),
            other => Err(Box::new(other)),
        }
    }
}

/// Capacity of the swarm frame queue (frames beyond it are dropped and logged).
pub const SWARM_QUEUE: usize = 4096;

impl Client {
    async fn ok_result(&self, frame: ClientFrame) -> Result<Value> {
        match self.request(frame).await? {
            ServerFrame::Ok { result, .. } => Ok(result),
            other => Err(Error::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Listens for swarm queries of `skills` on this connection (again after every reconnect);
    /// returns the stream of swarm frames (queries, awards, payments, cancellations).
    pub async fn swarm_listen(&self, skills: Vec<String>) -> Result<mpsc::Receiver<SwarmPush>> {
        let rx = self.swarm_channel(SWARM_QUEUE);
        self.ok_result(ClientFrame::SwarmListen(SwarmListen { skills: skills.clone() })).await?;
        self.set_listening(Some(skills));
        Ok(rx)
    }

    /// Bids `price` on a query (recorded: `Ok`; too late, too high or twice: `Err`).
    pub async fn swarm_bid(&self, query_id: &str, price: U256) -> Result<()> {
        self.ok_result(ClientFrame::SwarmBid(SwarmBid { query_id: query_id.into(), price }))
            .await
            .map(drop)
    }

    /// Answers an awarded query (the node holds it until the poster paid).
    pub async fn swarm_answer(&self, query_id: &str, answer: Value) -> Result<()> {
        self.ok_result(ClientFrame::SwarmAnswer(SwarmAnswer { query_id: query_id.into(), answer }))
            .await
            .map(drop)
    }

    /// Asks a question; returns once a winner's answer is held (an invoice) or the query failed.
    pub async fn swarm_ask(&self, ask: SwarmAsk) -> Result<AskOutcome> {
        let v = self.ok_result(ClientFrame::SwarmAsk(ask)).await?;
        serde_json::from_value(v).map_err(|e| Error::Protocol(format!("swarm_ask reply: {e}")))
    }

    /// Pays an invoiced query with a signed voucher; returns the answer or the refusal.
    pub async fn swarm_pay(
        &self,
        query_id: &str,
        voucher: SwarmVoucher,
        signature: Bytes,
    ) -> Result<PayOutcome> {
        let v = self
            .ok_result(ClientFrame::SwarmPay(SwarmPay {
                query_id: query_id.into(),
                voucher,
                signature,
            }))
            .await?;
        serde_json::from_value(v).map_err(|e| Error::Protocol(format!("swarm_pay reply: {e}")))
    }
}

/// A voucher for the wire.
pub fn voucher(channel_id: U256, payer: Address, payee: Address, cumulative: U256) -> SwarmVoucher {
    SwarmVoucher { channel_id, payer, payee, cumulative_amount: cumulative }
}
