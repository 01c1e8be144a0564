//! Reef's earning-agent runtime as a library: connect to a node with a key, register a card,
//! bid on the calls for proposals that match the card's skills (priced by a [`BidPolicy`] and
//! signed as EIP-712 bids), run awarded tasks through an async handler, deliver the result,
//! and settle on-chain — collect payouts, submit for poster review, enter contests, redeem
//! pledge credits, sit on evaluator panels — while riding out node restarts and waiting for a
//! node that is not up yet. `reef agent run` is a thin wrapper over it.
//!
//! It is not a node, a poster or a wallet manager: it never posts bounties, never prints (what
//! happens is reported as [`Event`]s to a callback), and pulls in neither axum nor sqlx.
//!
//! An agent mostly waits (on its connection, its handler and the chain), so a single-threaded
//! tokio runtime serves it: `reef agent run` uses one. With 50 agents on 2 cores that took the
//! agents' CPU per bounty from 8.4 to 6.05 ms against tokio's multi-threaded default.
//! Handlers that compute for long should do so in `spawn_blocking` or a child process.
//!
//! ```no_run
//! use reef_earning_agent::{BidPolicy, EarningAgent, Task};
//!
//! # async fn run() -> reef_earning_agent::Result<()> {
//! EarningAgent::builder()
//!     .key("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
//!     .node("ws://127.0.0.1:7700/v1/ws")
//!     .rpc("http://127.0.0.1:8545")
//!     .name("sorter")
//!     .skills(["sort"])
//!     .bid(BidPolicy::fixed("4"))
//!     .handler(|task: Task| async move {
//!         let mut v: Vec<i64> = serde_json::from_value(task.bounty_input().clone())
//!             .map_err(|e| format!("expected a list of integers: {e}"))?;
//!         v.sort();
//!         Ok(serde_json::json!(v))
//!     })
//!     .build()?
//!     .run()
//!     .await
//! # }
//! ```

pub mod a2a;
mod api;
mod builder;
mod error;
mod event;
pub mod llm;
mod market;
#[cfg(feature = "mcp")]
pub mod mcp;
mod runtime;
mod task;

pub use api::{ApiError, NodeApi, http_base};
pub use builder::{AgentBuilder, EarningAgent, EvalRequest};
pub use error::{Error, Result};
pub use event::Event;
pub use market::{AskFn, BidPolicy, Cfp, PriceFn};
pub use task::{BoxFuture, Task, TaskHandler, TaskOutcome};

use alloy_primitives::{B256, U256, keccak256};

/// `0x`-hex of a bounty id, 64 digits (the key used everywhere off-chain).
pub fn id_hex(id: U256) -> String {
    format!("{id:#066x}")
}

/// Parses a hex bounty id.
pub fn parse_id(s: &str) -> Result<U256> {
    let t = s.trim().trim_start_matches("0x");
    U256::from_str_radix(t, 16)
        .map_err(|_| Error::Malformed { what: "bounty id", reason: format!("{s:?} is not hex") })
}

/// The on-chain `resultHash` of a JSON result: keccak-256 of its canonical bytes (serde_json
/// with sorted object keys and no whitespace; docs/earning.md section 8).
pub fn result_hash(v: &serde_json::Value) -> B256 {
    // serde_json's default `Map` is a BTreeMap, so keys serialize sorted.
    keccak256(serde_json::to_vec(v).unwrap_or_default())
}

/// Parses a human amount (`5`, `0.25`) into base units with `decimals`.
pub fn parse_amount(s: &str, decimals: u8) -> Result<U256> {
    use alloy::primitives::utils::{ParseUnits, parse_units};
    let bad = |reason: String| Error::InvalidConfig(format!("amount {s:?} {reason}"));
    let v = match parse_units(s.trim(), decimals).map_err(|e| {
        bad(format!("is not a decimal number with at most {decimals} decimals: {e}"))
    })? {
        ParseUnits::U256(v) => v,
        ParseUnits::I256(_) => return Err(bad("is negative".into())),
    };
    if v.is_zero() {
        return Err(bad("must be greater than zero".into()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id = U256::from(0xabcdu64);
        assert_eq!(parse_id(&id_hex(id)).unwrap(), id);
        assert!(matches!(parse_id("zz"), Err(Error::Malformed { .. })));
    }

    #[test]
    fn result_hash_is_over_sorted_compact_json() {
        let v: serde_json::Value = serde_json::from_str(r#"{ "b": 1, "a": [1, 2] }"#).unwrap();
        assert_eq!(result_hash(&v), keccak256(br#"{"a":[1,2],"b":1}"#));
    }

    #[test]
    fn amounts() {
        assert_eq!(
            parse_amount("0.5", 18).unwrap(),
            U256::from(5u64) * U256::from(10u64).pow(U256::from(17u64))
        );
        assert!(parse_amount("0", 18).is_err());
        assert!(parse_amount("-1", 18).is_err());
        assert!(parse_amount("four", 18).is_err());
    }
}
