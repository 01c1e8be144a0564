//! The checks the coordinator applies to untrusted input before it touches the store or the
//! chain: a poster's [`PostRequest`], a bidder's [`BidRequest`] and a panel member's
//! `evaluation` message. They are pure functions of the input and the node's settings, so the
//! handlers and the fuzz targets (`fuzz/`) run the very same code.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    sol_types::Eip712Domain,
};
use escrow_client::{
    bindings::escrow::IBountyTypes::{Bid, Bounty},
    escrow::terms_hash,
    signing::{self, verdict as verdict_code},
};
use serde_json::Value;

use super::{
    MarketError, Result,
    coordinator::{BidRequest, MIN_BID_WINDOW_MS, PostRequest},
    id_hex,
    verify::{Verifiers, VerifySpec},
};

/// What a posting is checked against: the node's settings.
#[derive(Debug, Clone, Copy)]
pub struct PostRules<'a> {
    /// The node's evaluator address (hash and command verification).
    pub evaluator: Address,
    /// The deployment's BountyEscrow (pledge tokens of `from_reward` postings).
    pub escrow: Address,
    /// The deployment's EvaluatorPanel, if it has one.
    pub panel: Option<Address>,
    /// Verifier programs installed on the node.
    pub verifiers: &'a Verifiers,
    /// Longest accepted bid window.
    pub max_bid_window_secs: u64,
    /// The node's region (`--region`), matched against a policy's region.
    pub region: Option<&'a str>,
}

/// A posting that passed [`check_post`].
#[derive(Debug, Clone)]
pub struct CheckedPost {
    /// The record as it will be posted on-chain.
    pub record: Bounty,
    /// Whether the bounty is a contest (entries until the deadline instead of bids).
    pub contest: bool,
    /// The parent bounty it is funded from (hex id), normalized.
    pub from_reward: Option<String>,
    /// The sealed-bid window in milliseconds.
    pub window_ms: u64,
}

/// Checks everything about a posting by `caller` that needs neither the store nor the chain.
pub fn check_post(
    req: &PostRequest,
    caller: Address,
    rules: &PostRules<'_>,
) -> Result<CheckedPost> {
    let record =
        Bounty::try_from(&req.record).map_err(|e| MarketError::BadRequest(e.to_string()))?;
    let bad = |m: String| Err(MarketError::BadRequest(m));
    if record.poster != caller {
        return Err(MarketError::Forbidden(format!(
            "record.poster {} is not the authenticated caller {caller}",
            record.poster
        )));
    }
    if !record.provider.is_zero() || record.price != 0 || record.resultHash != B256::ZERO {
        return bad("record must be as posted: provider, price and resultHash zero".into());
    }
    let contest = record.mode == escrow_client::escrow::MODE_CONTEST;
    if contest && (matches!(req.verify, VerifySpec::Poster) || record.reviewWindow == 0) {
        return bad(
            "contests need hash or command verification and a review window (time to pick winners)"
                .into(),
        );
    }
    let policy = req.policy.as_ref();
    if let Some(p) = policy {
        p.validate().map_err(MarketError::BadRequest)?;
        if req.description.contains('\0') {
            return bad("a description with a policy must not contain NUL".into());
        }
        if let Some(want) = &p.region
            && !rules.region.is_some_and(|have| have.eq_ignore_ascii_case(want))
        {
            return Err(MarketError::Forbidden(format!(
                "policy.region {want:?}: this node keeps its data in {}",
                rules
                    .region
                    .map(|r| format!("region {r:?}"))
                    .unwrap_or_else(|| "no declared region".into())
            )));
        }
    }
    if record.specHash != escrow_client::policy::spec_hash(&req.description, policy) {
        return bad(match policy {
            None => "record.specHash is not keccak256(description)".into(),
            Some(_) => "record.specHash is not keccak256(description ‖ 0x00 ‖ canonical policy) (docs/earning.md, \"Data-usage terms\")".into(),
        });
    }
    if record.amount == 0 {
        return bad("reward must be greater than zero".into());
    }
    let from_reward = match &req.from_reward {
        Some(p) => {
            let parent = super::parse_id(p)?;
            let pt = escrow_client::pledge::pledge_token(rules.escrow, parent, record.poster);
            if record.token != pt {
                return bad(format!(
                    "record.token {} is not the poster's pledge token on bounty {} ({pt})",
                    record.token,
                    id_hex(parent)
                ));
            }
            Some(id_hex(parent))
        }
        None => None,
    };
    if !req.split.is_empty() {
        let total: u32 = req.split.iter().map(|s| u32::from(*s)).sum();
        if !contest
            || req.split.len() > usize::from(record.maxWinners)
            || req.split.contains(&0)
            || total != 10_000
        {
            return bad(format!(
                "split must be 1..={} non-zero basis-point shares summing to 10000, for contests only",
                record.maxWinners
            ));
        }
    }
    match &req.verify {
        VerifySpec::Poster if record.evaluator != record.poster => {
            return bad("verify mode poster needs record.evaluator = poster".into());
        }
        VerifySpec::Hash { .. } | VerifySpec::Command { .. }
            if record.evaluator != rules.evaluator =>
        {
            return bad(format!(
                "verify mode {} needs record.evaluator = this node's evaluator {}",
                req.verify.name(),
                rules.evaluator
            ));
        }
        VerifySpec::Evaluator { .. } | VerifySpec::Quorum { .. } => {
            let Some(panel) = rules.panel else {
                return bad("this deployment has no EvaluatorPanel: evaluator/quorum verification is unavailable".into());
            };
            if record.evaluator != panel {
                return bad(format!(
                    "verify mode {} needs record.evaluator = the EvaluatorPanel {panel}",
                    req.verify.name()
                ));
            }
            let (k, n, _) = req.verify.panel().unwrap_or((1, 1, &[]));
            if k == 0 || n == 0 || k > n || n > 16 {
                return bad(format!("quorum {k}/{n}: need 1 <= quorum <= size <= 16"));
            }
        }
        VerifySpec::Command { verifier } if !rules.verifiers.has(verifier) => {
            return bad(format!(
                "verifier {verifier:?} is not installed on this node; available: {:?}",
                rules.verifiers.names()
            ));
        }
        _ => {}
    }
    let window_ms = req.bid_window_ms.unwrap_or(req.bid_window_secs.saturating_mul(1000));
    if !(MIN_BID_WINDOW_MS..=rules.max_bid_window_secs.saturating_mul(1000)).contains(&window_ms) {
        return bad(format!(
            "bid window must be {MIN_BID_WINDOW_MS} ms to {} s",
            rules.max_bid_window_secs
        ));
    }
    Ok(CheckedPost { record, contest, from_reward, window_ms })
}

/// What a bid is checked against: the bounty in its bid window and the node's settings.
#[derive(Debug, Clone, Copy)]
pub struct BidRules<'a> {
    /// The bounty's id as stored (`0x`-hex, 64 digits).
    pub key: &'a str,
    /// The bounty's record as posted.
    pub record: &'a Bounty,
    /// When the bid window closes (unix seconds).
    pub bid_close_at: u64,
    /// How long a bid must stay valid after the window closes (time to award).
    pub award_grace_secs: u64,
    /// The escrow's EIP-712 domain the bid must be signed under.
    pub domain: &'a Eip712Domain,
}

/// Checks a sealed bid from `caller`: its fields against the bounty and its EIP-712
/// signature (the signer must be `bid.bidder`). Returns the bid and its promised delivery time
/// in seconds after the award.
pub fn check_bid(req: &BidRequest, caller: Address, rules: &BidRules<'_>) -> Result<(Bid, u64)> {
    let record = rules.record;
    let bid = Bid::try_from(&req.bid).map_err(|e| MarketError::BadRequest(e.to_string()))?;
    if bid.bidder != caller {
        return Err(MarketError::Forbidden(format!(
            "bid.bidder {} is not the authenticated caller {caller}",
            bid.bidder
        )));
    }
    if id_hex(bid.bountyId) != rules.key {
        return Err(MarketError::BadRequest("bid is for another bounty".into()));
    }
    if bid.termsHash != terms_hash(record) {
        return Err(MarketError::BadRequest(
            "bid.termsHash does not commit to this bounty's terms".into(),
        ));
    }
    if bid.amount.is_zero() || bid.amount > U256::from(record.amount) {
        return Err(MarketError::BadRequest(format!("price must be in 1..={}", record.amount)));
    }
    let valid_until = rules.bid_close_at.saturating_add(rules.award_grace_secs);
    if bid.deadline < valid_until {
        return Err(MarketError::BadRequest(format!(
            "bid must stay valid until at least {valid_until} (window close + {}s to award)",
            rules.award_grace_secs
        )));
    }
    if caller == record.poster {
        return Err(MarketError::Forbidden("the poster cannot bid on its own bounty".into()));
    }
    // The signed ETA (0 = "by the deadline") is what the escrow enforces at take-over time.
    let max_eta = record.deadline.saturating_sub(rules.bid_close_at);
    let eta_secs = if bid.eta == 0 { max_eta } else { u64::from(bid.eta) };
    if eta_secs > max_eta {
        return Err(MarketError::BadRequest(format!(
            "eta {eta_secs}s ends after the deadline (at most {max_eta}s after the window closes)"
        )));
    }
    signing::verify_typed(&bid, rules.domain, &req.signature, bid.bidder)
        .map_err(|e| MarketError::BadRequest(format!("bad bid signature: {e}")))?;
    Ok((bid, eta_secs))
}

/// A panel member's `evaluation` message (`{"kind": "evaluation", "verdict": 1|2,
/// "result_hash": "0x…", "signature": "0x…"}`), as read from its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The verdict code, when it is a whole number that fits a byte.
    pub verdict: Option<u8>,
    /// The result hash the member judged, when readable.
    pub result_hash: Option<B256>,
    /// The member's signature over the attestation.
    pub signature: Bytes,
}

impl Evaluation {
    /// Reads an `evaluation` body; `None` for other messages and for an unreadable signature.
    pub fn parse(body: &Value) -> Option<Self> {
        if body["kind"] != "evaluation" {
            return None;
        }
        let signature = serde_json::from_value::<Bytes>(body["signature"].clone()).ok()?;
        let verdict = body["verdict"].as_u64().and_then(|v| u8::try_from(v).ok());
        let result_hash = body["result_hash"].as_str().and_then(|s| s.parse::<B256>().ok());
        Some(Self { verdict, result_hash, signature })
    }

    /// The verdict (accept or reject) when the member judged the result `rh`; `None` for any
    /// other verdict code or result. The signature is checked separately (it needs the chain).
    pub fn verdict_on(&self, rh: B256) -> Option<u8> {
        let v = self.verdict?;
        (self.result_hash == Some(rh) && (v == verdict_code::ACCEPT || v == verdict_code::REJECT))
            .then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A verdict code is read exactly: 257 is not 1 (it was truncated to a byte before).
    #[test]
    fn evaluation_verdicts_are_read_exactly() {
        let rh = B256::repeat_byte(0x12);
        let body = |v: Value| json!({ "kind": "evaluation", "verdict": v, "result_hash": rh, "signature": format!("0x{}", "ab".repeat(65)) });
        let accept = Evaluation::parse(&body(json!(1))).unwrap();
        assert_eq!(accept.verdict_on(rh), Some(verdict_code::ACCEPT));
        assert_eq!(accept.verdict_on(B256::ZERO), None);
        for bad in [json!(257), json!(513), json!(-1), json!(1.0), json!("1"), json!(0), json!(3)] {
            let e = Evaluation::parse(&body(bad.clone())).unwrap();
            assert_eq!(e.verdict_on(rh), None, "verdict {bad} was counted");
        }
        assert!(Evaluation::parse(&json!({ "kind": "verdict", "verdict": 1 })).is_none());
        assert!(Evaluation::parse(&json!({ "kind": "evaluation", "signature": 5 })).is_none());
    }
}
