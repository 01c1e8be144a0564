//! Derived state as pure folds over [`EventRow`]s: one [`BountyRow`] per bounty and one
//! [`StakeRow`] per staking account. The same functions serve incremental indexing (fold a batch
//! into the rows loaded for the keys it touches) and recomputation after a reorg (fold all
//! remaining events of the affected keys). A row remembers the last (block, log) it absorbed, so
//! folding an event twice is a no-op.

use alloy::primitives::U256;
use escrow_client::Status;

use crate::{EventRow, decode::addr_hex};

/// Event kinds that change a bounty row.
pub const BOUNTY_KINDS: &[&str] = &[
    "BountyPosted",
    "BountyFunded",
    "BountyAwarded",
    "ResultSubmitted",
    "BountyAttested",
    "BountyCompleted",
    "BountyRejected",
    "BountyRefunded",
    "BountyCancelled",
    "DisputeOpened",
    "DisputeResolved",
    "WinnerPaid",
];

/// Event kinds that change a stake row.
pub const STAKE_KINDS: &[&str] = &["Staked", "UnbondRequested", "Slashed"];

/// The current state of one bounty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BountyRow {
    /// Bounty id (hex).
    pub id: String,
    /// Poster.
    pub poster: Option<String>,
    /// Reward token (zero address = ETH).
    pub token: Option<String>,
    /// Escrowed budget (decimal).
    pub amount: Option<String>,
    /// Agreed price (decimal).
    pub price: Option<String>,
    /// Awarded provider.
    pub provider: Option<String>,
    /// Submission deadline (unix seconds).
    pub deadline: Option<i64>,
    /// Status name (as `escrow_client::Status::name`).
    pub status: String,
    /// Whether funds were escrowed.
    pub funded: bool,
    /// Block of BountyPosted.
    pub posted_block: Option<i64>,
    /// Time the result was delivered: its `ResultSubmitted`, or for the lean path
    /// (`submitAndAttest`, which emits only `BountyAttested`) the settlement transaction's block.
    pub submitted_at: Option<i64>,
    /// Time of the terminal transition.
    pub settled_at: Option<i64>,
    /// Block of the terminal transition.
    pub settled_block: Option<i64>,
    /// Paid to the provider (decimal).
    pub paid: Option<String>,
    /// Arbiter's split, bps to the provider.
    pub provider_bps: Option<i64>,
    /// Last event absorbed: block.
    pub last_block: i64,
    /// Last event absorbed: log index.
    pub last_log: i64,
}

impl BountyRow {
    /// An empty row for `id`.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            poster: None,
            token: None,
            amount: None,
            price: None,
            provider: None,
            deadline: None,
            status: Status::None.name().to_string(),
            funded: false,
            posted_block: None,
            submitted_at: None,
            settled_at: None,
            settled_block: None,
            paid: None,
            provider_bps: None,
            last_block: -1,
            last_log: -1,
        }
    }

    fn settle(&mut self, e: &EventRow, status: Status) {
        self.status = status.name().to_string();
        self.settled_at = Some(e.block_time as i64);
        self.settled_block = Some(e.block_number as i64);
    }

    /// Folds one event in; returns false (and changes nothing) if it was already absorbed.
    pub fn apply(&mut self, e: &EventRow) -> bool {
        let pos = (e.block_number as i64, e.log_index as i64);
        if pos <= (self.last_block, self.last_log) {
            return false;
        }
        (self.last_block, self.last_log) = pos;
        match e.kind.as_str() {
            "BountyPosted" => {
                let extra: serde_json::Value = e
                    .extra
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                self.poster = e.actor.map(addr_hex);
                self.token = e.counterparty.map(addr_hex);
                self.amount.clone_from(&e.amount);
                self.deadline = extra["deadline"].as_i64();
                self.funded = extra["funded"].as_bool().unwrap_or(false);
                self.status =
                    if self.funded { Status::Funded } else { Status::Open }.name().to_string();
                self.posted_block = Some(pos.0);
            }
            "BountyFunded" => {
                self.funded = true;
                self.status = Status::Funded.name().to_string();
            }
            "BountyAwarded" => {
                self.provider = e.actor.map(addr_hex);
                self.price.clone_from(&e.amount);
                self.status = Status::Awarded.name().to_string();
            }
            "ResultSubmitted" => {
                self.submitted_at = Some(e.block_time as i64);
                self.status = Status::Submitted.name().to_string();
            }
            // `attest` follows a `ResultSubmitted` (delivery already known); `submitAndAttest`
            // delivers and settles in one transaction, so its block is the delivery time.
            "BountyAttested" => {
                self.submitted_at.get_or_insert(e.block_time as i64);
            }
            "BountyCompleted" => {
                self.paid.clone_from(&e.amount);
                self.settle(e, Status::Completed);
            }
            "BountyRejected" => self.status = Status::Rejected.name().to_string(),
            "BountyRefunded" => {
                let reason = e
                    .extra
                    .as_deref()
                    .and_then(|s| s.parse::<u8>().ok())
                    .and_then(|v| Status::from_u8(v).ok())
                    .unwrap_or(Status::Refunded);
                self.settle(e, reason);
            }
            "BountyCancelled" => self.settle(e, Status::Cancelled),
            "DisputeOpened" => self.status = Status::Disputed.name().to_string(),
            "DisputeResolved" => {
                let extra: serde_json::Value = e
                    .extra
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                self.provider_bps = extra["providerBps"].as_i64();
                self.paid.clone_from(&e.amount);
                self.settle(e, Status::Resolved);
            }
            "WinnerPaid" => self.settle(e, Status::Completed),
            _ => {}
        }
        true
    }
}

/// Bonded stake of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakeRow {
    /// Staking account.
    pub account: String,
    /// Bonded now.
    pub bonded: U256,
    /// Slashed in total.
    pub slashed: U256,
    /// Time of the last change.
    pub updated_at: i64,
    /// Last event absorbed: block.
    pub last_block: i64,
    /// Last event absorbed: log index.
    pub last_log: i64,
}

impl StakeRow {
    /// An empty row.
    pub fn new(account: &str) -> Self {
        Self {
            account: account.to_string(),
            bonded: U256::ZERO,
            slashed: U256::ZERO,
            updated_at: 0,
            last_block: -1,
            last_log: -1,
        }
    }

    /// Folds one event in; returns false if it was already absorbed.
    pub fn apply(&mut self, e: &EventRow) -> bool {
        let pos = (e.block_number as i64, e.log_index as i64);
        if pos <= (self.last_block, self.last_log) {
            return false;
        }
        (self.last_block, self.last_log) = pos;
        self.updated_at = e.block_time as i64;
        let amt = |s: &Option<String>| {
            s.as_deref().and_then(|s| s.parse::<U256>().ok()).unwrap_or_default()
        };
        match e.kind.as_str() {
            "Staked" => self.bonded = amt(&e.amount2),
            "UnbondRequested" => self.bonded = self.bonded.saturating_sub(amt(&e.amount)),
            "Slashed" => {
                let a = amt(&e.amount);
                self.bonded = self.bonded.saturating_sub(a);
                self.slashed = self.slashed.saturating_add(a);
            }
            _ => {}
        }
        true
    }
}
