//! What an earning agent reports while it runs. The library never prints: a program shows
//! these however it likes (`Display` gives the one-line text `reef agent run` prints).

use std::{fmt, time::Duration};

use alloy_primitives::{Address, B256, U256};
use serde_json::Value;

use crate::id_hex;

/// One thing that happened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The node is not reachable yet (not started, or restarting): waiting for it.
    NodeAway {
        /// The step that waits (`connecting`, `registering`, ...).
        what: &'static str,
        /// The node's URL.
        url: String,
        /// What failed.
        error: String,
        /// Pause before the next attempt.
        retry_in: Duration,
        /// Time left before giving up.
        gives_up_in: Duration,
    },
    /// Connected, authenticated and registered.
    Registered {
        /// The agent's address.
        address: Address,
        /// The node's id.
        node_id: String,
    },
    /// The marketplace side is connected: the agent bids and settles on this chain.
    MarketReady {
        /// Chain id of the node's deployment.
        chain_id: u64,
    },
    /// The node runs no marketplace: the agent only executes tasks assigned directly.
    MarketDisabled {
        /// What the node answered.
        reason: String,
    },
    /// The marketplace side could not be connected yet (node or chain unreachable).
    MarketNotReady {
        /// Why.
        reason: String,
    },
    /// The connection dropped; the SDK reconnects.
    Disconnected {
        /// Why it dropped.
        reason: String,
    },
    /// A bid was placed.
    Bid {
        /// The bounty.
        bounty: U256,
        /// The price, in the token's smallest unit.
        price: u128,
    },
    /// No bid on a call for proposals.
    NoBid {
        /// The bounty, as the call for proposals names it.
        bounty: String,
        /// Why not.
        reason: String,
    },
    /// A task finished and its result was delivered.
    TaskDone {
        /// The group.
        group_id: String,
        /// The task.
        task_id: String,
        /// Done (true) or failed.
        ok: bool,
        /// The result delivered.
        result: Value,
        /// Sequence number of the `execution` message.
        seq: u64,
    },
    /// The result's hash was committed on-chain for the poster to review.
    Submitted {
        /// The bounty.
        bounty: U256,
        /// The transaction.
        tx: B256,
    },
    /// Entered a contest (result committed on-chain and handed to the node).
    ContestEntered {
        /// The bounty, as the call for proposals names it.
        bounty: String,
    },
    /// Paid for a bounty (submitAndAttest mined).
    Paid {
        /// The bounty.
        bounty: U256,
        /// The payment token.
        token: Address,
        /// The transaction.
        tx: B256,
        /// Gas used.
        gas_used: u64,
    },
    /// Pledge credits redeemed once their parent bounty settled.
    Redeemed {
        /// The pledge token.
        token: Address,
        /// Credits redeemed.
        credit: U256,
        /// The parent bounty.
        parent: U256,
        /// What they were worth.
        value: U256,
        /// In this token.
        underlying: Address,
        /// The transaction.
        tx: B256,
    },
    /// Pledge credits that will never pay (the parent ended without paying its provider).
    PledgeVoid {
        /// The pledge token.
        token: Address,
        /// The parent bounty.
        parent: U256,
        /// How the parent ended.
        parent_status: String,
        /// Its provider (not paid).
        provider: Address,
        /// Credits lost.
        credit: U256,
    },
    /// Answered an evaluation request as a panel member.
    Evaluated {
        /// The bounty.
        bounty: U256,
        /// Accepted the result?
        accepted: bool,
    },
    /// Something failed and is retried or given up on; the agent goes on.
    Warning(String),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NodeAway { what, url, error, retry_in, gives_up_in } => write!(
                f,
                "{what}: node {url} is not up yet ({error}); retrying in {:.1} s (gives up in {} s; --wait-node sets how long)",
                retry_in.as_secs_f32(),
                gives_up_in.as_secs()
            ),
            Self::Registered { address, node_id } => {
                write!(f, "agent {address} registered on node {node_id}")
            }
            Self::MarketReady { chain_id } => {
                write!(f, "marketplace: bidding and settling on chain {chain_id}")
            }
            Self::MarketDisabled { reason } => {
                write!(f, "marketplace disabled: the node runs no marketplace ({reason})")
            }
            Self::MarketNotReady { reason } => write!(
                f,
                "marketplace not ready: {reason}; trying again after reconnecting or at the next call for proposals"
            ),
            Self::Disconnected { reason } => write!(f, "disconnected ({reason}); reconnecting"),
            Self::Bid { bounty, price } => write!(f, "bid {price} on bounty {}", id_hex(*bounty)),
            Self::NoBid { bounty, reason } => write!(f, "no bid on {bounty}: {reason}"),
            Self::TaskDone { group_id, task_id, ok, .. } => {
                write!(f, "task {task_id} in {group_id}: {}", if *ok { "done" } else { "failed" })
            }
            Self::Submitted { bounty, tx } => {
                write!(f, "submitted result for {} (tx {tx}); the poster decides", id_hex(*bounty))
            }
            Self::ContestEntered { bounty } => write!(f, "entered contest {bounty}"),
            Self::Paid { bounty, tx, gas_used, .. } => {
                write!(f, "paid for bounty {}: tx {tx} gas {gas_used}", id_hex(*bounty))
            }
            Self::Redeemed { credit, parent, value, underlying, tx, .. } => write!(
                f,
                "redeemed {credit} pledge credits (bounty {} settled) for {value} of {underlying}: tx {tx}",
                id_hex(*parent)
            ),
            Self::PledgeVoid { token, parent, parent_status, provider, credit } => write!(
                f,
                "pledge {token}: bounty {} ended {parent_status} without paying {provider}; {credit} credits are void",
                id_hex(*parent)
            ),
            Self::Evaluated { bounty, accepted } => write!(
                f,
                "evaluated bounty {}: {}",
                id_hex(*bounty),
                if *accepted { "accept" } else { "reject" }
            ),
            Self::Warning(w) => f.write_str(w),
        }
    }
}
