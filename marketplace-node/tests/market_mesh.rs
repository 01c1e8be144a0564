//! The marketplace on a mesh of two nodes: one Postgres database, NATS between them, one
//! anvil. A bounty posted through node A is won by an agent connected to node B, both when the
//! agent was online at the call for proposals and when it came online during the window; it
//! is paid exactly once although both nodes' work loops step every bounty.

use std::process::Stdio;

use escrow_client::devnet::{AnvilOptions, AnvilProcess, DEV_KEYS, dev_signer};
use serde_json::Value;

mod common;
#[path = "ioa_support.rs"]
mod support;

use common::{Kill, reef, repo, wait_with_deadline};
use support::{NodeProc, PgDb, spawn_node};

const NATS: &str = "nats://127.0.0.1:4222";

/// A marketplace node of the mesh: shared database, NATS, the market's dev key (a mesh's
/// nodes act for one marketplace, so they share its evaluator key).
fn market_node(db: &PgDb, rpc: &str, deployments: &std::path::Path) -> NodeProc {
    let deployments = deployments.display().to_string();
    spawn_node(
        &db.url,
        &[
            "--nats-url",
            NATS,
            "--rpc-url",
            rpc,
            "--market-dev-account",
            "5",
            "--award-grace-secs",
            "30",
            "--deployments",
            &deployments,
        ],
    )
}

fn sorter(node: &NodeProc, rpc: &str, dev: usize) -> Kill {
    let child = reef()
        .args(["agent", "run", "--node", &node.ws_url(), "--key", DEV_KEYS[dev], "--name"])
        .arg(format!("sorter-{dev}"))
        .args(["--skills", "sort", "--rpc-url", rpc, "--bid-price", "4", "--eta", "30s"])
        .arg("--exec")
        .arg(format!("python3 {}", repo().join("examples/agents/sort.py").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Kill(child)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bounty_posted_on_one_node_is_won_and_paid_once_through_the_other() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("market-mesh");
    let deployments = dir.join("deployments");
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let db = PgDb::new();
    let a = market_node(&db, &anvil.rpc_url, &deployments);
    let b = market_node(&db, &anvil.rpc_url, &deployments);
    let (http_a, http_b) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    let agent = dev_signer(1).address().to_string();
    let post = || {
        common::spawn_captured(
            common::post_sort_with_window(&http_a, &anvil.rpc_url, &deployments, "8s").args([
                "--verify",
                "hash",
                "--expect",
                "[1,3,5,9]",
            ]),
        )
    };
    let settled = |out: std::process::Output| -> Value {
        assert!(out.status.success(), "poster failed: {}", String::from_utf8_lossy(&out.stderr));
        let res: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(res["phase"], "settled", "{res}");
        assert_eq!(res["status"], "completed", "{res}");
        assert!(res["winner"].as_str().unwrap().eq_ignore_ascii_case(&agent), "{res}");
        res
    };

    // 1. Nobody is online when node A announces; the agent then connects to node B, whose
    //    registration gets it invited into A's call for proposals.
    let first = post();
    let id = common::wait_announced(&http_a).await;
    let _agent = sorter(&b, &anvil.rpc_url, 1);
    settled(wait_with_deadline(first, 180));
    let view = common::get_json(format!("{http_b}/v1/market/bounties/{id}")).await;
    let events: Vec<&str> =
        view["events"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(events.contains(&"invited"), "{events:?}");

    // 2. The agent is online (on B) when A announces the next bounty.
    common::wait_agent_online(&http_a, dev_signer(1).address(), "agent 1 (seen from A)").await;
    settled(wait_with_deadline(post(), 180));

    // Both nodes see both bounties settled, and the agent was paid once for each.
    for http in [&http_a, &http_b] {
        let list = common::get_json(format!("{http}/v1/market/bounties")).await;
        let phases: Vec<&str> =
            list.as_array().unwrap().iter().filter_map(|b| b["phase"].as_str()).collect();
        assert_eq!(phases, ["settled", "settled"], "{list}");
    }
    let out = reef()
        .args(["agent", "earnings", "--dev-account", "1", "--json", "--rpc-url", &anvil.rpc_url])
        .arg("--deployments")
        .arg(&deployments)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let earned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(earned["payouts"].as_array().unwrap().len(), 2, "{earned}");
}
