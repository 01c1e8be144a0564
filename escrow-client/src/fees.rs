//! The EIP-1559 fee policy: caps on what a transaction may pay, and when and how much a
//! transaction that is not mined is re-priced (a replacement at the same nonce).
//!
//! Nodes accept a replacement only when both the fee cap and the tip rise by at least 10 %
//! (geth's default `--txpool.pricebump`); the policy bumps by [`FeePolicy::bump_percent`]
//! (default 15 %) or to the fresh estimate, whichever is higher, and never past the caps.

use std::time::Duration;

/// How much a transaction may pay and when a stuck one is re-priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeePolicy {
    /// Highest `maxFeePerGas` (wei) any transaction is signed with (`None` = no cap).
    pub max_fee_per_gas: Option<u128>,
    /// Highest `maxPriorityFeePerGas` (wei) (`None` = no cap).
    pub max_priority_fee_per_gas: Option<u128>,
    /// A transaction not mined this long after it was sent is replaced with higher fees
    /// (`Duration::ZERO` = never).
    pub replace_after: Duration,
    /// The least rise of each fee in a replacement, in percent (at least 10, which nodes
    /// require).
    pub bump_percent: u32,
}

impl Default for FeePolicy {
    fn default() -> Self {
        Self {
            max_fee_per_gas: None,
            max_priority_fee_per_gas: None,
            replace_after: Duration::from_secs(60),
            bump_percent: 15,
        }
    }
}

/// EIP-1559 fees of one transaction: (`maxFeePerGas`, `maxPriorityFeePerGas`), in wei.
pub type Fees = (u128, u128);

impl FeePolicy {
    /// `fees` within the caps (the tip never above the fee cap).
    pub fn capped(&self, (max_fee, tip): Fees) -> Fees {
        let max_fee = self.max_fee_per_gas.map_or(max_fee, |c| max_fee.min(c));
        let tip = self.max_priority_fee_per_gas.map_or(tip, |c| tip.min(c)).min(max_fee);
        (max_fee, tip)
    }

    /// The fees of a replacement for a transaction signed with `old`, given a `fresh`
    /// estimate: each fee rises by at least the bump (or to the estimate, if higher), within
    /// the caps. `None` when the caps leave no room for a valid replacement (+10 % on both).
    pub fn replacement(&self, old: Fees, fresh: Fees) -> Option<Fees> {
        let pct = u128::from(self.bump_percent.max(10));
        let up = |v: u128| v.saturating_mul(100 + pct).div_ceil(100).max(v.saturating_add(1));
        let wanted = (up(old.0).max(fresh.0), up(old.1).max(fresh.1));
        let (max_fee, tip) = self.capped((wanted.0, wanted.1.min(wanted.0)));
        let least = |v: u128| v.saturating_mul(110).div_ceil(100).max(v.saturating_add(1));
        (max_fee >= least(old.0) && tip >= least(old.1)).then_some((max_fee, tip))
    }
}

/// Parses a fee in gwei (`"1.5"`) into wei.
pub fn parse_gwei(s: &str) -> Result<u128, String> {
    let v = alloy::primitives::utils::parse_units(s.trim(), "gwei")
        .map_err(|_| format!("{s:?} is not an amount in gwei (e.g. 30 or 1.5)"))?;
    u128::try_from(v.get_absolute()).map_err(|_| format!("{s:?} gwei is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GWEI: u128 = 1_000_000_000;

    #[test]
    fn caps_apply_and_the_tip_stays_below_the_fee_cap() {
        let p = FeePolicy {
            max_fee_per_gas: Some(50 * GWEI),
            max_priority_fee_per_gas: Some(2 * GWEI),
            ..FeePolicy::default()
        };
        assert_eq!(p.capped((80 * GWEI, 3 * GWEI)), (50 * GWEI, 2 * GWEI));
        assert_eq!(p.capped((GWEI, 2 * GWEI)), (GWEI, GWEI));
    }

    #[test]
    fn a_replacement_rises_by_the_bump_or_to_the_estimate_and_stops_at_the_cap() {
        let p = FeePolicy::default();
        // Estimate unchanged: +15 % on both.
        assert_eq!(p.replacement((100, 10), (100, 10)), Some((115, 12)));
        // The base fee rose: follow the estimate.
        assert_eq!(p.replacement((100, 10), (400, 10)), Some((400, 12)));
        // A cap leaves room for less than +10 %: no valid replacement.
        let capped = FeePolicy { max_fee_per_gas: Some(105), ..p };
        assert_eq!(capped.replacement((100, 10), (100, 10)), None);
        // Tiny values still rise (rounding up).
        assert_eq!(p.replacement((1, 1), (1, 1)), Some((2, 2)));
    }

    #[test]
    fn gwei_parses() {
        assert_eq!(parse_gwei("1.5").unwrap(), 1_500_000_000);
        assert!(parse_gwei("lots").unwrap_err().contains("gwei"));
    }
}
