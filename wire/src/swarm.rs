//! Swarm auctions: query-style auctions settled off-chain (`docs/swarm.md`).
//!
//! A poster asks a question (`swarm_ask`); the node sends it (`swarm_query`) to the agents that
//! listen for its skill (`swarm_listen`) over their open connections; they bid (`swarm_bid`)
//! within a window of 50–200 ms; the node awards the lowest price (`swarm_award`), holds the
//! winner's answer (`swarm_answer`), and replies to the ask with an invoice. The poster pays
//! with a cumulative payment-channel voucher (`swarm_pay`); the node releases the answer only
//! once the voucher checks out, and hands the voucher to the winner (`swarm_paid`), which
//! redeems it later in a batch. No chain transaction per query.
//!
//! Amounts and channel ids are `U256` (JSON strings, `0x…` hex or decimal).

use alloy_primitives::{Address, Bytes, U256};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Shortest bidding window, milliseconds.
pub const MIN_WINDOW_MS: u64 = 50;
/// Longest bidding window, milliseconds.
pub const MAX_WINDOW_MS: u64 = 200;
/// Default bidding window, milliseconds.
pub const DEFAULT_WINDOW_MS: u64 = 100;
/// Default time the winner has to answer after its award, milliseconds.
pub const DEFAULT_ANSWER_MS: u64 = 2_000;
/// Longest answer time a poster may grant, milliseconds.
pub const MAX_ANSWER_MS: u64 = 60_000;
/// Longest question, bytes.
pub const MAX_QUESTION_BYTES: usize = 16 * 1024;
/// Longest skill tag, bytes.
pub const MAX_SKILL_BYTES: usize = 64;
/// Most skills one `swarm_listen` may name.
pub const MAX_LISTEN_SKILLS: usize = 32;
/// Most candidates the node awards in turn when winners do not answer (winner + runners-up).
pub const MAX_AWARDS: usize = 3;

/// Agent → node: receive `swarm_query` frames for these skills on this connection (replaces
/// an earlier list; an empty list stops listening). Lasts as long as the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmListen {
    /// Skill tags (case-insensitive), at most [`MAX_LISTEN_SKILLS`].
    pub skills: Vec<String>,
}

/// Poster → node: ask a question. Answered (with the request's `req_id`) by an `ok` frame whose
/// `result` is an [`AskOutcome`], once the winner's answer is held or the query failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmAsk {
    /// The question (any text up to [`MAX_QUESTION_BYTES`]).
    pub question: String,
    /// The skill a bidder must listen for.
    pub skill: String,
    /// Highest price the poster pays, in base units of `token` (> 0).
    pub max_price: U256,
    /// Payment token (the zero address: ETH); the voucher's channel must escrow it.
    #[serde(default)]
    pub token: Address,
    /// Bidding window, [`MIN_WINDOW_MS`]..=[`MAX_WINDOW_MS`] (default [`DEFAULT_WINDOW_MS`]).
    #[serde(default = "default_window")]
    pub window_ms: u64,
    /// How long each awarded bidder has to answer (default [`DEFAULT_ANSWER_MS`]).
    #[serde(default = "default_answer")]
    pub answer_ms: u64,
}

fn default_window() -> u64 {
    DEFAULT_WINDOW_MS
}

fn default_answer() -> u64 {
    DEFAULT_ANSWER_MS
}

/// Node → agent: a question open for bids until `closes_at_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmQuery {
    /// Query id.
    pub query_id: String,
    /// Who asks (authenticated by the node).
    pub poster: Address,
    /// The skill asked for.
    pub skill: String,
    /// The question.
    pub question: String,
    /// Highest acceptable price.
    pub max_price: U256,
    /// Payment token.
    pub token: Address,
    /// When bidding closes (node clock, unix milliseconds).
    pub closes_at_ms: u64,
}

/// Agent → node: a bid (one per agent and query; `ok` when recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmBid {
    /// Query id.
    pub query_id: String,
    /// Price asked, `0 < price <= max_price`.
    pub price: U256,
}

/// Node → agent: your bid won; answer with `swarm_answer` before `answer_by_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmAward {
    /// Query id.
    pub query_id: String,
    /// The price you bid (what the poster's voucher will add).
    pub price: U256,
    /// The poster.
    pub poster: Address,
    /// The question again.
    pub question: String,
    /// Deadline (node clock, unix milliseconds).
    pub answer_by_ms: u64,
}

/// Agent → node: the answer to an awarded query. The node holds it until the poster paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmAnswer {
    /// Query id.
    pub query_id: String,
    /// The answer (any JSON).
    pub answer: Value,
}

/// A payment-channel voucher as it travels in JSON (the EIP-712 `Voucher` struct's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwarmVoucher {
    /// Channel id.
    pub channel_id: U256,
    /// Payer (the channel's owner and the voucher's signer).
    pub payer: Address,
    /// Payee (the winner).
    pub payee: Address,
    /// Total owed on the channel so far, base units.
    pub cumulative_amount: U256,
}

/// Poster → node: pay an invoiced query. Answered by an `ok` frame whose `result` is a
/// [`PayOutcome`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmPay {
    /// Query id.
    pub query_id: String,
    /// Cumulative voucher: the last one accepted on this channel plus the price.
    pub voucher: SwarmVoucher,
    /// 65-byte EIP-712 signature of `voucher` (domain `ReefPaymentChannel`/`1`).
    pub signature: Bytes,
}

/// Node → agent: the poster paid for your answer; keep the voucher and redeem it later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmPaid {
    /// Query id.
    pub query_id: String,
    /// The price.
    pub price: U256,
    /// The voucher (checked by the node).
    pub voucher: SwarmVoucher,
    /// Its signature.
    pub signature: Bytes,
}

/// Node → agent: your award ended without payment (you did not answer in time, or the poster
/// did not pay); drop the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmCancelled {
    /// Query id.
    pub query_id: String,
    /// Why.
    pub code: SwarmCode,
    /// Explanation.
    pub message: String,
}

/// Reply to `swarm_ask` (the `result` of its `ok` frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AskOutcome {
    /// A winner answered; the node holds the answer until `swarm_pay` (before `pay_by_ms`).
    Invoice {
        /// Query id.
        query_id: String,
        /// The winning agent: the voucher's payee.
        winner: Address,
        /// Its price: what the voucher must add.
        price: U256,
        /// Token.
        token: Address,
        /// Agents the query was sent to.
        asked: u32,
        /// Bids received in the window.
        bids: u32,
        /// Microseconds from the window's close to the award being sent.
        decision_us: u64,
        /// Milliseconds from the award to the answer held.
        answer_ms: u64,
        /// Awards made (1: the first winner answered; more: runners-up took over).
        awards: u32,
        /// Pay before this (node clock, unix milliseconds), or the answer is dropped.
        pay_by_ms: u64,
    },
    /// The query ended without an answer; nothing is owed.
    Failed {
        /// Query id.
        query_id: String,
        /// Why.
        code: SwarmCode,
        /// Explanation.
        message: String,
        /// Agents the query was sent to.
        asked: u32,
        /// Bids received in the window.
        bids: u32,
    },
}

/// Reply to `swarm_pay` (the `result` of its `ok` frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PayOutcome {
    /// The voucher was accepted: here is the answer.
    Paid {
        /// Query id.
        query_id: String,
        /// The winner.
        winner: Address,
        /// Price paid.
        price: U256,
        /// The cumulative amount now accepted on the channel.
        cumulative: U256,
        /// The answer.
        answer: Value,
    },
    /// The voucher was refused; the answer stays held (retry with a correct voucher before
    /// the invoice's `pay_by_ms`).
    Refused {
        /// Query id.
        query_id: String,
        /// Why.
        code: SwarmCode,
        /// Explanation.
        message: String,
        /// For `stale_voucher` / `wrong_amount`: the cumulative amount expected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<U256>,
    },
}

/// Machine-readable reasons in swarm outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwarmCode {
    /// No connected agent listens for the skill.
    NoAgents,
    /// Nobody bid within the window.
    NoBids,
    /// Every awarded bidder failed to answer in time.
    NoAnswer,
    /// The poster did not pay before the invoice's deadline.
    Unpaid,
    /// The query is not awaiting payment (unknown, expired, or already paid).
    UnknownQuery,
    /// The signature is not the voucher payer's (wrong key, chain id or contract).
    BadSignature,
    /// The voucher does not pay the winner.
    WrongPayee,
    /// The voucher's payer is not the poster or not the channel's payer.
    WrongPayer,
    /// No such channel, or it escrows another token than the query's.
    WrongChannel,
    /// The cumulative amount does not exceed what was already accepted (a replay).
    StaleVoucher,
    /// The cumulative amount is not the last accepted plus the price.
    WrongAmount,
    /// The cumulative amount exceeds the channel's deposit (unfunded).
    ExceedsDeposit,
    /// The channel is closed.
    ChannelClosed,
    /// A close was requested on the channel.
    ChannelClosing,
    /// The channel's challenge period is shorter than the node requires.
    ChallengeTooShort,
    /// The node could not check the voucher now (chain or database unreachable); retry.
    Unavailable,
    /// A code this version does not know.
    #[serde(other)]
    Unknown,
}

impl SwarmCode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAgents => "no_agents",
            Self::NoBids => "no_bids",
            Self::NoAnswer => "no_answer",
            Self::Unpaid => "unpaid",
            Self::UnknownQuery => "unknown_query",
            Self::BadSignature => "bad_signature",
            Self::WrongPayee => "wrong_payee",
            Self::WrongPayer => "wrong_payer",
            Self::WrongChannel => "wrong_channel",
            Self::StaleVoucher => "stale_voucher",
            Self::WrongAmount => "wrong_amount",
            Self::ExceedsDeposit => "exceeds_deposit",
            Self::ChannelClosed => "channel_closed",
            Self::ChannelClosing => "channel_closing",
            Self::ChallengeTooShort => "challenge_too_short",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for SwarmCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ask_defaults_and_outcome_tags() {
        let a: SwarmAsk =
            serde_json::from_str(r#"{"question":"q","skill":"s","max_price":"5"}"#).unwrap();
        assert_eq!((a.window_ms, a.answer_ms, a.token), (100, 2_000, Address::ZERO));
        assert_eq!(a.max_price, U256::from(5));
        let o = AskOutcome::Failed {
            query_id: "q1".into(),
            code: SwarmCode::NoBids,
            message: "m".into(),
            asked: 3,
            bids: 0,
        };
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["code"], "no_bids");
        let c: SwarmCode = serde_json::from_str("\"something_new\"").unwrap();
        assert_eq!(c, SwarmCode::Unknown);
    }
}
