//! Traceable logs (issue 20): `reef node --log-format json` with `RUST_LOG=info` writes one
//! JSON object per stderr line, and one bounty can be followed through them: the lines of its
//! story (posted, announced, bid accepted, assigned, settled) carry its id in their spans'
//! `bounty` field, and the WebSocket lines of the agent that earned it carry its address.
//! Real anvil, real node, real sort agent.

use std::collections::BTreeSet;

use escrow_client::devnet::{AnvilOptions, AnvilProcess, dev_signer, free_port};
use serde_json::Value;

mod common;

use common::{reef, start_sort_agent};

/// Whether any span of `line` has `field` equal to `value` (case-insensitively: addresses are
/// printed checksummed).
fn in_span(line: &Value, field: &str, value: &str) -> bool {
    line["spans"].as_array().is_some_and(|spans| {
        spans.iter().any(|s| s[field].as_str().is_some_and(|v| v.eq_ignore_ascii_case(value)))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bounty_can_be_followed_through_json_logs() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("logs");
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let log_path = dir.join("node.stderr");
    let node = common::spawn_listening(
        reef()
            .args(["node", "--listen", &format!("127.0.0.1:{port}"), "--json"])
            .args(["--node-id", "logs-test", "--log-format", "json"])
            .arg("--database-url")
            .arg(format!("sqlite://{}/node.db", dir.display()))
            .args(["--rpc-url", &anvil.rpc_url, "--market-dev-account", "5"])
            .args(["--award-grace-secs", "30"])
            .arg("--deployments")
            .arg(dir.join("deployments"))
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log_path).unwrap()),
    );

    let agent = dev_signer(1).address();
    let _agent = start_sort_agent(port, &anvil.rpc_url, 1);
    common::wait_agent_online(&http, agent, "the sort agent").await;
    let res = common::settle_sort(&http, &anvil.rpc_url, &dir.join("deployments"), "3s");
    let bounty = res["id"].as_str().unwrap_or_else(|| panic!("no id in {res}")).to_string();
    // Stop the node (SIGINT: it shuts down cleanly) so that everything it logged is in the file.
    let mut node = node;
    common::signal(node.0.id(), "INT");
    let t0 = std::time::Instant::now();
    while node.0.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "the node did not stop");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(!lines.is_empty(), "the node logged nothing at info");
    for l in &lines {
        assert!(l["level"].is_string() && l["timestamp"].is_string(), "{l}");
    }

    // The bounty's story, from the lines whose spans name it.
    let story: BTreeSet<String> = lines
        .iter()
        .filter(|l| in_span(l, "bounty", &bounty))
        .filter_map(|l| {
            l["fields"]["event"]
                .as_str()
                .map(str::to_string)
                .or_else(|| l["fields"]["message"].as_str().map(str::to_string))
        })
        .collect();
    for phase in ["posted", "announced", "bid accepted", "assigned", "settled"] {
        assert!(story.contains(phase), "no {phase:?} line in the spans of {bounty}: {story:?}");
    }
    // Every line about this bounty's phases is in one of its spans.
    for l in lines.iter().filter(|l| l["fields"]["bounty"].as_str() == Some(bounty.as_str())) {
        assert!(in_span(l, "bounty", &bounty), "a line of {bounty} outside its spans: {l}");
    }
    // The agent's connection: its lines carry its address (and the connection id).
    let ws: Vec<&Value> =
        lines.iter().filter(|l| in_span(l, "agent", &agent.to_string())).collect();
    assert!(
        ws.iter().any(|l| l["fields"]["message"] == "agent connected"
            && l["span"]["name"] == "ws"
            && l["span"]["conn"].is_number()),
        "no WebSocket line of {agent}: {ws:?}"
    );
}
