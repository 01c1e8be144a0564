//! The marketplace on a mesh of two nodes: one Postgres database, NATS between them, one
//! anvil. A bounty posted through one node is won by an agent connected to the other, both
//! when the agent was online at the call for proposals and when it came online during the
//! window, and it is paid exactly once:
//! - both nodes run the marketplace (both work loops step every bounty);
//! - only node A does: node C forwards the poster's and the agent's marketplace requests to
//!   A over NATS (`market::gateway`), and A invites the agent that registered on C.

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

/// The scenario both meshes run: `agent_node` is where the agent connects, `post_http` the
/// node the poster talks to; `nodes` every node's HTTP address (all must list both bounties).
async fn two_bounties(
    anvil: &AnvilProcess,
    deployments: &std::path::Path,
    post_http: &str,
    agent_node: &NodeProc,
    nodes: &[&str],
) {
    let agent = dev_signer(1).address().to_string();
    let post = || {
        common::spawn_captured(
            common::post_sort_with_window(post_http, &anvil.rpc_url, deployments, "8s").args([
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

    // 1. Nobody is online at the announcement; the agent then connects to `agent_node`, whose
    //    registration gets it invited into the open call for proposals.
    let first = post();
    let id = common::wait_announced(post_http).await;
    let _agent = sorter(agent_node, &anvil.rpc_url, 1);
    settled(wait_with_deadline(first, 180));
    let agents_http = format!("http://{}", agent_node.addr);
    let view = common::get_json(format!("{agents_http}/v1/market/bounties/{id}")).await;
    let events: Vec<&str> =
        view["events"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(events.contains(&"invited"), "{events:?}");

    // 2. The agent is online when the next bounty is announced.
    common::wait_agent_online(
        post_http,
        dev_signer(1).address(),
        "agent 1 (seen by the poster's node)",
    )
    .await;
    settled(wait_with_deadline(post(), 180));

    // Every node sees both bounties settled, and the agent was paid once for each.
    for http in nodes {
        let list = common::get_json(format!("{http}/v1/market/bounties")).await;
        let phases: Vec<&str> =
            list.as_array().unwrap().iter().filter_map(|b| b["phase"].as_str()).collect();
        assert_eq!(phases, ["settled", "settled"], "{http}: {list}");
    }
    let out = reef()
        .args(["agent", "earnings", "--dev-account", "1", "--json", "--rpc-url", &anvil.rpc_url])
        .arg("--deployments")
        .arg(deployments)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let earned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(earned["payouts"].as_array().unwrap().len(), 2, "{earned}");
}

/// A fresh chain with the contracts, a fresh Postgres database, and marketplace node A on it.
struct Mesh {
    anvil: AnvilProcess,
    deployments: std::path::PathBuf,
    db: PgDb,
    a: NodeProc,
}

async fn mesh_with_market(tag: &str) -> Mesh {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir(tag);
    let deployments = dir.join("deployments");
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let db = PgDb::new();
    let a = market_node(&db, &anvil.rpc_url, &deployments);
    Mesh { anvil, deployments, db, a }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bounty_posted_on_one_node_is_won_and_paid_once_through_the_other() {
    let Mesh { anvil, deployments, db, a } = mesh_with_market("market-mesh").await;
    let b = market_node(&db, &anvil.rpc_url, &deployments);
    let (http_a, http_b) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    two_bounties(&anvil, &deployments, &http_a, &b, &[&http_a, &http_b]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_on_a_node_without_the_marketplace_bids_and_is_paid_through_the_mesh() {
    let Mesh { anvil, deployments, db, a } = mesh_with_market("market-gateway").await;
    // Node C: same database and NATS, no --rpc-url. The poster and the agent both use it.
    let c = spawn_node(&db.url, &["--nats-url", NATS]);
    let (http_a, http_c) = (format!("http://{}", a.addr), format!("http://{}", c.addr));
    two_bounties(&anvil, &deployments, &http_c, &c, &[&http_a, &http_c]).await;
}

/// Without a marketplace anywhere, `/v1/market/...` says so instead of a bare 404 or a hang.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_a_marketplace_says_where_to_find_one() {
    let client = alloy::transports::http::reqwest::Client::new();
    let answer = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // A mesh (its own database, so its own mesh id) with no marketplace node in it.
    let db = PgDb::new();
    let c = spawn_node(&db.url, &["--nats-url", NATS]);
    let (status, v) = answer(format!("http://{}/v1/market/info", c.addr)).await;
    assert_eq!((status, v["error"].as_str()), (503, Some("no_market")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("--rpc-url"), "{v}");
    // A single node without the marketplace.
    let solo = spawn_node(&support::sqlite_url(), &[]);
    let (status, v) = answer(format!("http://{}/v1/market/bounties", solo.addr)).await;
    assert_eq!((status, v["error"].as_str()), (404, Some("no_market")), "{v}");
}
