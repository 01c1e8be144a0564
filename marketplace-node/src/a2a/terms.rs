//! The Reef terms extension: how an A2A caller pays for work on Reef.
//!
//! The card advertises [`Terms`] as the params of the extension [`TERMS_URI`]
//! (`capabilities.extensions`, `required: true`); a `SendMessage` carries the caller's
//! [`TaskTerms`] under the same URI in the message's (or the request's) `metadata`. Before any
//! bounty is posted the node checks them ([`TaskTerms::check`]) and the payment
//! ([`check_payment`]): an ERC-20 `Transfer` of at least the budget from the caller to the
//! node's market wallet, in a successful transaction no other task has used. JSON Schemas:
//! docs/schemas/a2a.terms.json and docs/schemas/a2a.task_terms.json.

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
};
use escrow_client::{ReefClient, bindings::token::ReefTestToken as Erc20};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The extension's URI (its specification is docs/a2a.md, "Reef terms v1").
pub const TERMS_URI: &str =
    "https://github.com/reef-network/reef/blob/main/docs/a2a.md#reef-terms-v1";

/// How the budget is paid: one ERC-20 `transfer` to `payee`, named by its transaction hash.
pub const PAYMENT_ERC20_TRANSFER: &str = "erc20-transfer";

/// Shortest and longest sealed-bid window a task may ask for (ms).
pub const BID_WINDOW_MS: (u64, u64) = (100, 60_000);

/// Default bid window (ms) and deadline (s) of a task's bounty.
pub const DEFAULT_BID_WINDOW_MS: u64 = 3_000;
/// Default time from posting to the submission deadline (s).
pub const DEFAULT_DEADLINE_SECS: u64 = 3_600;
/// Longest deadline a task may ask for (s): a week.
pub const MAX_DEADLINE_SECS: u64 = 7 * 86_400;

/// Decimal strings for token amounts (JSON numbers lose precision above 2^53).
pub mod decimal {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `v` in decimal.
    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    /// Reads a decimal string of base units.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 78 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(D::Error::custom(format!(
                "{s:?} is not a decimal amount in base units (digits only, e.g. \"5000000000000000000\")"
            )));
        }
        U256::from_str_radix(&s, 10).map_err(|e| D::Error::custom(format!("{s:?}: {e}")))
    }
}

/// What the node advertises: the extension's `params` on every card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terms {
    /// The chain the market settles on (EIP-155 id).
    pub chain_id: u64,
    /// The one ERC-20 budgets are paid in.
    pub token: Address,
    /// The token's decimals (amounts below are in base units).
    pub decimals: u8,
    /// Where the budget is paid: the node's market wallet, which posts, funds and awards the
    /// bounty and returns what is not spent.
    pub payee: Address,
    /// The Reef escrow the bounty is funded in.
    pub escrow: Address,
    /// Smallest budget accepted, base units.
    #[serde(with = "decimal")]
    pub min_budget: U256,
    /// How to pay: [`PAYMENT_ERC20_TRANSFER`].
    pub payment: String,
    /// Verifications a task may name: `hash`, `command`.
    pub verify: Vec<String>,
    /// The verifier programs installed on the node (for `command`).
    pub verifiers: Vec<String>,
}

/// How a task's result is verified (the node checks it and attests on-chain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Verify {
    /// The result must equal `expect` (canonical JSON; only its hash is sent to the market).
    Hash {
        /// The expected result.
        expect: Value,
    },
    /// A verifier program installed on the node judges the result.
    Command {
        /// Its name (one of [`Terms::verifiers`]).
        verifier: String,
    },
}

/// What a caller sends with a task (`metadata[TERMS_URI]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskTerms {
    /// The reward, base units of [`Terms::token`]; paid to the node beforehand.
    #[serde(with = "decimal")]
    pub budget: U256,
    /// The transaction that paid it (an ERC-20 transfer to [`Terms::payee`]).
    pub payment_tx: B256,
    /// How the result is verified.
    pub verify: Verify,
    /// Skills a provider needs. On an agent's endpoint the agent's own skills are used and
    /// this must be empty or a subset of them; on the node's endpoint at least one is needed.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Sealed-bid window in ms (default 3000).
    #[serde(default)]
    pub bid_window_ms: Option<u64>,
    /// Seconds from posting to the submission deadline (default 3600).
    #[serde(default)]
    pub deadline_secs: Option<u64>,
}

/// `v` with every integral floating-point number (within ±2^53) as an integer. A2A's JSON is
/// protocol buffer JSON, where `metadata` and `data` parts are `google.protobuf.Struct`/`Value`
/// whose numbers are doubles: a client's `1000` may arrive as `1000.0`. The same conversion the
/// earning agent's A2A client applies to a remote agent's artifacts.
pub use reef_earning_agent::a2a::integral_numbers;

impl TaskTerms {
    /// Reads the caller's terms from `metadata` (`None`: the extension was not used).
    pub fn from_metadata(metadata: &Value) -> Option<Result<Self, String>> {
        let v = integral_numbers(metadata.get(TERMS_URI)?);
        Some(serde_json::from_value(v).map_err(|e| format!("metadata[{TERMS_URI:?}]: {e}")))
    }

    /// The bid window (ms).
    pub fn bid_window_ms(&self) -> u64 {
        self.bid_window_ms.unwrap_or(DEFAULT_BID_WINDOW_MS)
    }

    /// The deadline (s from posting).
    pub fn deadline_secs(&self) -> u64 {
        self.deadline_secs.unwrap_or(DEFAULT_DEADLINE_SECS)
    }

    /// Checks the terms against what the node offers; `award_grace_secs` is the node's time
    /// for the award after the window closes (the deadline must leave room for it).
    pub fn check(&self, terms: &Terms, award_grace_secs: u64) -> Result<(), String> {
        if self.budget < terms.min_budget {
            return Err(format!(
                "budget {} is below the minimum {} (base units of {})",
                self.budget, terms.min_budget, terms.token
            ));
        }
        if u128::try_from(self.budget).is_err() {
            return Err("budget does not fit in 128 bits".into());
        }
        match &self.verify {
            Verify::Hash { expect } if expect.is_null() => {
                return Err("verify hash needs an expected result (expect)".into());
            }
            Verify::Hash { .. } => {}
            Verify::Command { verifier } if !terms.verifiers.contains(verifier) => {
                return Err(format!(
                    "verifier {verifier:?} is not installed on this node (it has: {})",
                    if terms.verifiers.is_empty() {
                        "none".into()
                    } else {
                        terms.verifiers.join(", ")
                    }
                ));
            }
            Verify::Command { .. } => {}
        }
        let w = self.bid_window_ms();
        if !(BID_WINDOW_MS.0..=BID_WINDOW_MS.1).contains(&w) {
            return Err(format!(
                "bidWindowMs {w} is outside {}..={}",
                BID_WINDOW_MS.0, BID_WINDOW_MS.1
            ));
        }
        let d = self.deadline_secs();
        let least = w.div_ceil(1000) + award_grace_secs + 60;
        if d < least || d > MAX_DEADLINE_SECS {
            return Err(format!(
                "deadlineSecs {d} must be between {least} (bid window + the node's award grace of {award_grace_secs} s + a minute of work) and {MAX_DEADLINE_SECS}"
            ));
        }
        if self.skills.iter().any(|s| s.trim().is_empty() || s.len() > 64) || self.skills.len() > 16
        {
            return Err("skills: at most 16, each 1 to 64 characters".into());
        }
        Ok(())
    }
}

/// Checks that `tx` paid at least `budget` of `terms.token` from `from` to `terms.payee`:
/// a successful transaction whose `Transfer` logs (emitted by the token) from the caller to
/// the payee add up to the budget. Answers what it paid (what is not spent of it goes back).
/// Whether another task used it already is the store's check.
pub async fn check_payment(
    client: &ReefClient,
    tx: B256,
    from: Address,
    terms: &Terms,
    budget: U256,
) -> Result<U256, String> {
    let receipt = client
        .provider()
        .get_transaction_receipt(tx)
        .await
        .map_err(|e| format!("cannot read payment transaction {tx}: {e}"))?
        .ok_or_else(|| {
            format!("payment transaction {tx} is not mined on chain {}", terms.chain_id)
        })?;
    if !receipt.status() {
        return Err(format!("payment transaction {tx} reverted"));
    }
    let mut paid = U256::ZERO;
    for log in receipt.inner.logs() {
        if log.address() != terms.token {
            continue;
        }
        if let Ok(t) = log.log_decode::<Erc20::Transfer>() {
            let t = t.inner.data;
            if t.from == from && t.to == terms.payee {
                paid = paid.saturating_add(t.value);
            }
        }
    }
    if paid < budget {
        return Err(format!(
            "payment transaction {tx} transfers {paid} of {} from {from} to {}; the budget is {budget}",
            terms.token, terms.payee
        ));
    }
    Ok(paid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn terms() -> Terms {
        Terms {
            chain_id: 31337,
            token: Address::repeat_byte(1),
            decimals: 18,
            payee: Address::repeat_byte(2),
            escrow: Address::repeat_byte(3),
            min_budget: U256::from(1000),
            payment: PAYMENT_ERC20_TRANSFER.into(),
            verify: vec!["hash".into(), "command".into()],
            verifiers: vec!["json-sorted".into()],
        }
    }

    fn task(v: Value) -> Result<TaskTerms, String> {
        TaskTerms::from_metadata(&json!({ TERMS_URI: v })).unwrap()
    }

    #[test]
    fn terms_are_read_from_metadata_and_checked() {
        assert!(TaskTerms::from_metadata(&json!({})).is_none());
        let tx = format!("0x{}", "ab".repeat(32));
        let ok = task(json!({ "budget": "5000", "paymentTx": tx, "verify": { "mode": "hash", "expect": [1, 2] } }))
            .unwrap();
        assert_eq!(ok.budget, U256::from(5000));
        assert_eq!(ok.bid_window_ms(), DEFAULT_BID_WINDOW_MS);
        ok.check(&terms(), 30).unwrap();
        // Below the minimum, an unknown verifier, a short deadline: refused with the reason.
        let low = TaskTerms { budget: U256::from(999), ..ok.clone() };
        assert!(low.check(&terms(), 30).unwrap_err().contains("below the minimum"));
        let cmd = TaskTerms { verify: Verify::Command { verifier: "rm".into() }, ..ok.clone() };
        assert!(cmd.check(&terms(), 30).unwrap_err().contains("not installed"));
        let short = TaskTerms { deadline_secs: Some(60), ..ok.clone() };
        assert!(short.check(&terms(), 30).unwrap_err().contains("deadlineSecs"));
        let fast = TaskTerms { bid_window_ms: Some(10), ..ok };
        assert!(fast.check(&terms(), 30).unwrap_err().contains("bidWindowMs"));
    }

    #[test]
    fn malformed_terms_say_what_is_wrong() {
        let tx = format!("0x{}", "ab".repeat(32));
        let e = task(
            json!({ "budget": 5, "paymentTx": tx, "verify": { "mode": "hash", "expect": 1 } }),
        )
        .unwrap_err();
        assert!(e.contains("budget") || e.contains("string"), "{e}");
        let e = task(
            json!({ "budget": "-5", "paymentTx": tx, "verify": { "mode": "hash", "expect": 1 } }),
        )
        .unwrap_err();
        assert!(e.contains("decimal"), "{e}");
        let e = task(json!({ "budget": "5", "paymentTx": tx, "verify": { "mode": "poster" } }))
            .unwrap_err();
        assert!(e.contains("poster"), "{e}");
        let e = task(json!({ "budget": "5", "paymentTx": tx, "verify": { "mode": "hash", "expect": 1 }, "tip": 1 }))
            .unwrap_err();
        assert!(e.contains("tip"), "{e}");
    }

    #[test]
    fn doubles_that_are_integers_become_integers() {
        let v = json!({ "a": [1.0, 2.5, -3.0], "b": { "c": 1e300 }, "d": "1.0", "e": 7 });
        assert_eq!(
            integral_numbers(&v),
            json!({ "a": [1, 2.5, -3], "b": { "c": 1e300 }, "d": "1.0", "e": 7 })
        );
        let tx = format!("0x{}", "ab".repeat(32));
        let t = task(json!({ "budget": "5", "paymentTx": tx, "verify": { "mode": "hash", "expect": [1.0] }, "bidWindowMs": 1000.0 }))
            .unwrap();
        assert_eq!(t.bid_window_ms, Some(1000));
        assert_eq!(t.verify, Verify::Hash { expect: json!([1]) });
    }

    #[test]
    fn terms_round_trip_with_decimal_amounts() {
        let v = serde_json::to_value(terms()).unwrap();
        assert_eq!(v["minBudget"], "1000");
        assert_eq!(v["chainId"], 31337);
        assert_eq!(serde_json::from_value::<Terms>(v).unwrap(), terms());
    }
}
