//! A closed window's ranking: the valid bids best first, each with its score, the parts that
//! produced it and the signed bid the poster awards with. Written once when the window closes
//! (and again when a take-over marks a provider failed), shown to the poster, and read back by
//! the award and the take-over, in the node and in the poster's CLI.
//!
//! The JSON form (what the poster's view carries under `ranking`) is unchanged from when the
//! ranking was an untyped value: `price` is a decimal string, each component is a
//! `[name, value, weight]` triple, and `failed` appears only when true.

use alloy::primitives::{Address, Bytes, U256};
use escrow_client::{bindings::escrow::IBountyTypes::Bid, escrow::BidJson};
use serde::{Deserialize, Serialize};

use super::auction::Ranked;

/// An EIP-712 bid with its signature, as agents send it and as the node stores and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBid {
    /// The EIP-712 bid; its signed `eta` is the promised delivery time after the award.
    pub bid: BidJson,
    /// Its signature (65 bytes, hex).
    pub signature: Bytes,
}

impl SignedBid {
    /// The bid as the escrow takes it, with its signature.
    pub fn decode(&self) -> Result<(Bid, Bytes), String> {
        let bid = Bid::try_from(&self.bid).map_err(|e| format!("malformed bid: {e}"))?;
        Ok((bid, self.signature.clone()))
    }
}

/// One ranked bid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedBid {
    /// The bidder (recovered from the signature when the bid was taken).
    pub bidder: Address,
    /// The price asked, in the bounty token's base units.
    #[serde(with = "decimal")]
    pub price: U256,
    /// The promised delivery time after the award, in seconds.
    pub eta_secs: u64,
    /// The weighted sum of the components.
    pub score: f64,
    /// `(component, normalised value, weight)`, in the order the scoring applies them.
    pub components: Vec<(String, f64, f64)>,
    /// The signed bid the poster awards with.
    pub signed: SignedBid,
    /// The bidder won, missed its promised delivery time and was replaced (take-over).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

impl RankedBid {
    /// The entry for a bid the auction ranked.
    pub fn new(ranked: &Ranked, signed: SignedBid, eta_secs: u64) -> Self {
        Self {
            bidder: ranked.candidate.bidder,
            price: ranked.candidate.price,
            eta_secs,
            score: ranked.score,
            components: ranked
                .components
                .iter()
                .map(|(name, value, weight)| ((*name).to_owned(), *value, *weight))
                .collect(),
            signed,
            failed: false,
        }
    }
}

/// The bids of a closed window, best first.
pub type Ranking = Vec<RankedBid>;

/// A ranking as the node keeps it: its JSON, written once when the ranking is stored or read
/// back, and its best bid. The poster's view (read on every answer to a long-polling poster)
/// embeds the JSON as it is instead of converting every bid again; the award and the take-over,
/// which need every bid, read them back from it ([`Self::bids`]). Cached rankings thus take
/// about the memory of their JSON, not that and the parsed bids.
#[derive(Debug)]
pub struct StoredRanking {
    json: Box<serde_json::value::RawValue>,
    top: Option<RankedBid>,
}

impl StoredRanking {
    /// The ranking's JSON and best bid.
    pub fn new(bids: &[RankedBid]) -> Result<Self, serde_json::Error> {
        let json = serde_json::value::to_raw_value(bids)?;
        Ok(Self { json, top: bids.first().cloned() })
    }

    /// Its JSON, as stored and shown (see the module's note on the form).
    pub fn json(&self) -> &serde_json::value::RawValue {
        &self.json
    }

    /// The first-ranked bid: the winner at the window's close (a take-over marks it failed
    /// and keeps it first).
    pub fn top(&self) -> Option<&RankedBid> {
        self.top.as_ref()
    }

    /// Every bid, best first, read back from the JSON.
    pub fn bids(&self) -> Result<Ranking, serde_json::Error> {
        serde_json::from_str(self.json.get())
    }
}

/// When the best bid of a ranking (`top`) expires (unix seconds; 0 without bids).
pub fn top_bid_expiry(top: Option<&RankedBid>) -> u64 {
    top.map_or(0, |r| r.signed.bid.deadline)
}

/// Take-over: the best-ranked bid, not marked failed and not from the `late` provider, that is
/// still valid at `now` (used by the node as evaluator and by the poster's CLI). An evaluator's
/// take-over (`evaluator` given) may not raise the price above `max_price` (the current price)
/// nor hand the job to the evaluator itself: the escrow refuses both (`BidTooHigh`,
/// `BidderIsEvaluator`), so such bids are skipped here.
pub fn next_runner_up(
    ranking: &[RankedBid],
    late: Address,
    now: u64,
    evaluator: Option<(Address, U256)>,
) -> Option<(Bid, Bytes)> {
    ranking.iter().filter(|e| !e.failed).find_map(|e| {
        let (bid, sig) = e.signed.decode().ok()?;
        let allowed =
            evaluator.is_none_or(|(ev, max_price)| bid.bidder != ev && bid.amount <= max_price);
        (bid.bidder != late && bid.deadline >= now && allowed).then_some((bid, sig))
    })
}

/// `U256` as a decimal string (the form amounts take in Reef's JSON).
mod decimal {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let s = String::deserialize(d)?;
        U256::from_str_radix(&s, 10)
            .map_err(|_| D::Error::custom(format!("{s:?} is not a decimal amount")))
    }
}
