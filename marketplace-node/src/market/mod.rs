//! The marketplace loop inside `reef node`: posters register bounties, the node announces a
//! call for proposals (CFP) to matching online agents over IoA, collects sealed EIP-712 bids,
//! ranks them when the window closes, waits for the poster's on-chain award (create + fund +
//! award in one transaction), assigns the task in an IoA work group, verifies the result, and
//! signs the evaluator attestation that lets the provider get paid on-chain.
//!
//! Crash safety: every transition is a compare-and-set in [`store::MarketStore`] written
//! before the action it enables; actions are idempotent and keyed by bounty id (IoA messages
//! use deterministic `msg_id`s, so a resent message is not delivered twice); the work loop
//! reloads unfinished bounties on start and reconciles them with the chain.

pub mod auction;
pub mod chainview;
pub mod coordinator;
pub mod gateway;
pub mod intake;
pub mod longpoll;
pub mod ranking;
pub mod rest;
pub mod sandbox;
pub mod scheduler;
pub mod store;
pub mod validations;
pub mod verify;

use alloy::primitives::U256;

pub use coordinator::{Market, MarketConfig};

/// Errors of the marketplace layer.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The request is invalid (message says why).
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such bounty.
    #[error("no bounty {0} on this node")]
    NotFound(String),
    /// The bounty is not in a phase that allows this.
    #[error("{0}")]
    Conflict(String),
    /// The node is at its admission limit: nothing was registered; post again after
    /// `retry_after_ms` (posting is idempotent per poster and salt).
    #[error("busy: {message}; nothing was registered: post again in {retry_after_ms} ms")]
    Busy {
        /// What is full.
        message: String,
        /// When to try again.
        retry_after_ms: u64,
    },
    /// The chain could not be reached or refused.
    #[error("chain: {0}")]
    Chain(Box<escrow_client::Error>),
    /// The IoA layer failed.
    #[error("ioa: {0}")]
    Ioa(#[from] crate::ioa::Error),
    /// Storage failed.
    #[error("storage: {0}")]
    Db(#[from] sqlx::Error),
    /// Anything else that is the node's fault.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<escrow_client::Error> for MarketError {
    fn from(e: escrow_client::Error) -> Self {
        Self::Chain(Box::new(e))
    }
}

/// Result alias of the marketplace layer.
pub type Result<T, E = MarketError> = std::result::Result<T, E>;

/// Test hook of the crash-safety tests: when the environment variable `REEF_CRASH_AT` names
/// this point, the process dies here at once (abort: nothing flushed, nothing cleaned up, as a
/// `kill -9` at this line). Points are named where a kill from outside cannot be timed, between
/// two steps that must survive a stop in between. Unset, it costs one cached lookup.
pub fn crash_point(name: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT.get_or_init(|| std::env::var("REEF_CRASH_AT").ok()).as_deref() == Some(name) {
        eprintln!("REEF_CRASH_AT={name}: the node dies here");
        std::process::abort();
    }
}

/// `0x`-hex of a bounty id (the key used everywhere off-chain).
pub fn id_hex(id: U256) -> String {
    format!("{id:#066x}")
}

/// Parses a hex bounty id.
pub fn parse_id(s: &str) -> Result<U256> {
    let t = s.trim().trim_start_matches("0x");
    U256::from_str_radix(t, 16)
        .map_err(|_| MarketError::BadRequest(format!("{s:?} is not a hex bounty id")))
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256};
    use alloy_signer_local::PrivateKeySigner;
    use escrow_client::{bindings::escrow::IBountyTypes::Bid, escrow::BidJson, signing};

    fn entry(bidder: &PrivateKeySigner, price: u64) -> super::ranking::RankedBid {
        let bid = Bid {
            bountyId: U256::from(1),
            bidder: bidder.address(),
            amount: U256::from(price),
            deadline: 100,
            nonce: U256::from(price),
            ..Default::default()
        };
        let domain = signing::escrow_domain(31337, Address::repeat_byte(1));
        let sig = signing::sign_bid(bidder, &bid, &domain).unwrap();
        super::ranking::RankedBid {
            bidder: bidder.address(),
            price: U256::from(price),
            eta_secs: 0,
            score: 0.0,
            components: Vec::new(),
            signed: super::ranking::SignedBid { bid: BidJson::from(&bid), signature: sig },
            failed: false,
        }
    }

    /// Issue 18: an evaluator's take-over skips bids above the current price and its own bid
    /// (the escrow would refuse both); the poster's does not.
    #[test]
    fn evaluator_take_over_skips_pricier_bids_and_the_evaluator() {
        let (late, pricey, evaluator, cheap) = (
            PrivateKeySigner::random(),
            PrivateKeySigner::random(),
            PrivateKeySigner::random(),
            PrivateKeySigner::random(),
        );
        let ranking =
            vec![entry(&late, 5), entry(&pricey, 9), entry(&evaluator, 1), entry(&cheap, 5)];
        let by_poster = super::ranking::next_runner_up(&ranking, late.address(), 50, None).unwrap();
        assert_eq!(by_poster.0.bidder, pricey.address());
        let cap = Some((evaluator.address(), U256::from(5)));
        let by_evaluator =
            super::ranking::next_runner_up(&ranking, late.address(), 50, cap).unwrap();
        assert_eq!(by_evaluator.0.bidder, cheap.address());
    }
}
