//! A sorting agent that earns on a Reef node: bids 4 tokens on bounties asking for `sort`,
//! sorts the poster's list, and is paid on-chain.
//!
//! ```sh
//! cargo run -p reef-earning-agent --example sort_agent -- <private key> [node ws url] [rpc url]
//! ```

use reef_earning_agent::{BidPolicy, EarningAgent, Task};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> reef_earning_agent::Result<()> {
    let mut args = std::env::args().skip(1);
    let key = args.next().ok_or(reef_earning_agent::Error::Missing("the key (first argument)"))?;
    let node = args.next().unwrap_or_else(|| "ws://127.0.0.1:7700/v1/ws".into());
    let rpc = args.next().unwrap_or_else(|| "http://127.0.0.1:8545".into());
    EarningAgent::builder()
        .key(&key)
        .node(node)
        .rpc(rpc)
        .name("rust-sorter")
        .skills(["sort"])
        .bid(BidPolicy::fixed("4"))
        .handler(|task: Task| async move {
            let mut v: Vec<Value> = serde_json::from_value(task.bounty_input().clone())
                .map_err(|e| format!("expected a list: {e}"))?;
            v.sort_by(|a, b| {
                a.as_f64().partial_cmp(&b.as_f64()).unwrap_or(std::cmp::Ordering::Equal)
            });
            Ok(json!(v))
        })
        .on_event(|e| eprintln!("{e}"))
        .build()?
        .run()
        .await
}
