//! Sealed-bid auctions: a [`BidBook`] collects signed bids during a fixed window without
//! revealing any bid to other bidders, and [`rank`] orders them by a documented, configurable
//! score. Arrival order never matters: ties are broken by a hash of (bounty id, bidder), so the
//! first bid has no advantage (LLM buyers are known to favour the first proposal they see).
//!
//! Score (each component in [0, 1], weights from [`ScoringConfig`], summing to 1 by default):
//!
//! ```text
//! price      = 1 - price / budget              (cheaper is better)
//! eta        = 1 - eta / max_eta               (faster is better; max_eta = time to deadline)
//! reputation = agent score from the reputation engine, or the neutral prior (0.5) if unknown
//! stake      = min(stake / stake_saturation, 1)
//! score      = w_price·price + w_eta·eta + w_reputation·reputation + w_stake·stake
//! ```

use std::collections::HashMap;

use alloy::primitives::{Address, B256, U256, keccak256};
use serde::{Deserialize, Serialize};

/// Weights and normalisation of the bid score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoringConfig {
    /// Weight of the price component.
    pub price: f64,
    /// Weight of the ETA component.
    pub eta: f64,
    /// Weight of the reputation component.
    pub reputation: f64,
    /// Weight of the stake component.
    pub stake: f64,
    /// Reputation assumed for agents with no history.
    pub neutral_reputation: f64,
    /// Stake (wei) at which the stake component saturates at 1.
    pub stake_saturation: U256,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            price: 0.5,
            eta: 0.2,
            reputation: 0.2,
            stake: 0.1,
            neutral_reputation: 0.5,
            stake_saturation: U256::from(10u64).pow(U256::from(18u64)),
        }
    }
}

/// A bid that passed signature and term checks, with what ranking needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    /// Bidder address (from the verified signature).
    pub bidder: Address,
    /// Price asked, in the bounty token's base units.
    pub price: U256,
    /// Promised time to deliver, seconds after the award.
    pub eta_secs: u64,
    /// Reputation score in [0, 1] if known.
    pub reputation: Option<f64>,
    /// Bonded stake in wei.
    pub stake: U256,
}

/// A ranked bid with its score and the components that produced it.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    /// The bid.
    pub candidate: Candidate,
    /// Total score.
    pub score: f64,
    /// (component, normalised value, weight).
    pub components: Vec<(&'static str, f64, f64)>,
}

fn ratio(num: U256, den: U256) -> f64 {
    if den.is_zero() {
        return 1.0;
    }
    // Scale to 1e6 precision in integer space, then to f64 (no overflow for any U256 input).
    let scaled = num.saturating_mul(U256::from(1_000_000u64)) / den;
    let v: u64 = scaled.try_into().unwrap_or(u64::MAX);
    (v as f64 / 1_000_000.0).clamp(0.0, 1.0)
}

/// Scores one candidate.
pub fn score(c: &Candidate, budget: U256, max_eta: u64, cfg: &ScoringConfig) -> Ranked {
    let price = 1.0 - ratio(c.price, budget);
    let eta =
        if max_eta == 0 { 0.0 } else { 1.0 - (c.eta_secs as f64 / max_eta as f64).clamp(0.0, 1.0) };
    let rep = c.reputation.unwrap_or(cfg.neutral_reputation).clamp(0.0, 1.0);
    let stake = ratio(c.stake, cfg.stake_saturation);
    let components = vec![
        ("price", price, cfg.price),
        ("eta", eta, cfg.eta),
        ("reputation", rep, cfg.reputation),
        ("stake", stake, cfg.stake),
    ];
    let score = components.iter().map(|(_, v, w)| v * w).sum();
    Ranked { candidate: c.clone(), score, components }
}

/// Orders candidates best first. Deterministic: equal scores (to 1e-9) are ordered by
/// keccak256(bounty_id ‖ bidder), which no bidder controls by bidding earlier.
pub fn rank(
    bounty_id: U256,
    budget: U256,
    max_eta: u64,
    candidates: &[Candidate],
    cfg: &ScoringConfig,
) -> Vec<Ranked> {
    let mut v: Vec<(i64, B256, Ranked)> = candidates
        .iter()
        .map(|c| {
            let r = score(c, budget, max_eta, cfg);
            let q = (r.score * 1e9).round() as i64;
            let mut buf = [0u8; 52];
            buf[..32].copy_from_slice(&bounty_id.to_be_bytes::<32>());
            buf[32..].copy_from_slice(c.bidder.as_slice());
            (q, keccak256(buf), r)
        })
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    v.into_iter().map(|(_, _, r)| r).collect()
}

/// Why a bid was not accepted into the book.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BidRejected {
    /// The window is closed.
    #[error("the bid window is closed")]
    WindowClosed,
    /// Too many bids for this bounty.
    #[error("this bounty already holds the maximum of {0} bids")]
    BookFull(usize),
    /// Price above the escrowed budget.
    #[error("price exceeds the budget")]
    OverBudget,
    /// Zero price.
    #[error("price must be greater than zero")]
    ZeroPrice,
}

/// Sealed bids for one bounty. Holds at most one bid per bidder (a later bid in the window
/// replaces the earlier one) and at most `capacity` bidders, so memory is bounded.
#[derive(Debug)]
pub struct BidBook<T> {
    budget: U256,
    capacity: usize,
    open: bool,
    bids: HashMap<Address, (Candidate, T)>,
}

impl<T: Clone> BidBook<T> {
    /// An open book for a bounty with `budget`.
    pub fn new(budget: U256, capacity: usize) -> Self {
        Self { budget, capacity, open: true, bids: HashMap::new() }
    }

    /// Adds (or replaces) `c`'s bid with its payload (e.g. the signed bid).
    pub fn submit(&mut self, c: Candidate, payload: T) -> Result<(), BidRejected> {
        if !self.open {
            return Err(BidRejected::WindowClosed);
        }
        if c.price.is_zero() {
            return Err(BidRejected::ZeroPrice);
        }
        if c.price > self.budget {
            return Err(BidRejected::OverBudget);
        }
        if !self.bids.contains_key(&c.bidder) && self.bids.len() >= self.capacity {
            return Err(BidRejected::BookFull(self.capacity));
        }
        self.bids.insert(c.bidder, (c, payload));
        Ok(())
    }

    /// Number of bidders.
    pub fn len(&self) -> usize {
        self.bids.len()
    }

    /// True if nobody bid.
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty()
    }

    /// Closes the window and ranks the bids, best first, with their payloads.
    pub fn close(
        &mut self,
        bounty_id: U256,
        max_eta: u64,
        cfg: &ScoringConfig,
    ) -> Vec<(Ranked, T)> {
        self.open = false;
        let cands: Vec<Candidate> = self.bids.values().map(|(c, _)| c.clone()).collect();
        rank(bounty_id, self.budget, max_eta, &cands, cfg)
            .into_iter()
            .filter_map(|r| self.bids.get(&r.candidate.bidder).map(|(_, p)| (r.clone(), p.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(i: u8, price: u64, eta: u64) -> Candidate {
        Candidate {
            bidder: Address::repeat_byte(i),
            price: U256::from(price),
            eta_secs: eta,
            reputation: None,
            stake: U256::ZERO,
        }
    }

    #[test]
    fn cheaper_and_faster_wins() {
        let r = rank(
            U256::from(1),
            U256::from(100),
            3_600,
            &[cand(1, 90, 600), cand(2, 50, 600), cand(3, 50, 60)],
            &ScoringConfig::default(),
        );
        assert_eq!(r[0].candidate.bidder, Address::repeat_byte(3));
        assert_eq!(r[1].candidate.bidder, Address::repeat_byte(2));
        assert_eq!(r[2].candidate.bidder, Address::repeat_byte(1));
    }

    #[test]
    fn reputation_and_stake_count() {
        let mut good = cand(1, 60, 600);
        good.reputation = Some(0.95);
        good.stake = U256::from(10u64).pow(U256::from(18u64));
        let plain = cand(2, 55, 600);
        let r =
            rank(U256::from(1), U256::from(100), 3_600, &[plain, good], &ScoringConfig::default());
        assert_eq!(r[0].candidate.bidder, Address::repeat_byte(1));
    }

    #[test]
    fn arrival_order_does_not_matter_and_ties_are_deterministic() {
        let a = cand(1, 50, 600);
        let b = cand(2, 50, 600);
        let cfg = ScoringConfig::default();
        let r1 = rank(U256::from(7), U256::from(100), 3_600, &[a.clone(), b.clone()], &cfg);
        let r2 = rank(U256::from(7), U256::from(100), 3_600, &[b, a], &cfg);
        assert_eq!(r1[0].candidate.bidder, r2[0].candidate.bidder);
        assert_eq!(r1[1].candidate.bidder, r2[1].candidate.bidder);
    }

    #[test]
    fn book_is_sealed_bounded_and_closes() {
        let mut book: BidBook<()> = BidBook::new(U256::from(100), 2);
        assert_eq!(book.submit(cand(1, 101, 1), ()), Err(BidRejected::OverBudget));
        assert_eq!(book.submit(cand(1, 0, 1), ()), Err(BidRejected::ZeroPrice));
        book.submit(cand(1, 80, 1), ()).unwrap();
        book.submit(cand(2, 70, 1), ()).unwrap();
        assert_eq!(book.submit(cand(3, 60, 1), ()), Err(BidRejected::BookFull(2)));
        // A bidder may improve its own bid within the window.
        book.submit(cand(1, 40, 1), ()).unwrap();
        let ranked = book.close(U256::from(1), 10, &ScoringConfig::default());
        assert_eq!(ranked[0].0.candidate.price, U256::from(40));
        assert_eq!(book.submit(cand(4, 10, 1), ()), Err(BidRejected::WindowClosed));
    }

    #[test]
    fn scores_are_bounded() {
        let cfg = ScoringConfig::default();
        for (p, e) in [(0u64, 0u64), (100, 3_600), (1, 1_000_000)] {
            let mut c = cand(1, p, e);
            c.reputation = Some(7.0);
            c.stake = U256::MAX;
            let s = score(&c, U256::from(100), 3_600, &cfg).score;
            assert!((0.0..=1.0).contains(&s), "{s}");
        }
    }
}
