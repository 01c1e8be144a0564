//! No bounty is lost because of the node (issue: restarts, start order, overload): an agent
//! started before its node waits for it; a bounty posted right after the node restarted settles
//! (its call for proposals waits for the agents that are reconnecting, and agents that come
//! back during a window are invited); a window that closes without bids is extended before the
//! bounty fails; a node at its admission limit answers `503 busy` and the poster posts again;
//! `reef bounty post` exits 3 for a bounty that did not pay for work.

use std::time::{Duration, Instant};

use escrow_client::devnet::{AnvilOptions, AnvilProcess, dev_signer, free_port};
use serde_json::Value;

mod common;

use common::{reef, start_node, start_sort_agent, wait_with_deadline};

/// The bounty view's event names, in order.
async fn event_names(http: &str, id: &str) -> Vec<String> {
    let v = common::get_json(format!("{http}/v1/market/bounties/{id}")).await;
    v["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["event"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_started_before_its_node_waits_and_a_post_right_after_a_restart_settles() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("restart");
    let deployments = dir.join("deployments");
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");

    // The agent starts first: it must wait for the node, not exit.
    let mut agent = start_sort_agent(port, &anvil.rpc_url, 1);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(agent.0.try_wait().unwrap().is_none(), "the agent exited while its node was down");
    let mut node = start_node(&dir, &anvil.rpc_url, port, "restart-test", &[]);
    common::wait_agent_online(&http, dev_signer(1).address(), "the agent").await;

    // kill -9, restart, post at once, while the agent is still reconnecting: it is frozen
    // (SIGSTOP) until the node has registered the post, as an agent in the middle of its
    // SDK's reconnect back-off would be.
    let agent_pid = agent.0.id();
    common::signal(agent_pid, "STOP");
    node.0.kill().unwrap();
    node.0.wait().unwrap();
    node = start_node(&dir, &anvil.rpc_url, port, "restart-test", &[]);
    let t0 = Instant::now();
    let poster = common::spawn_captured(
        common::post_sort_with_window(&http, &anvil.rpc_url, &deployments, "2s").args([
            "--verify",
            "hash",
            "--expect",
            "[1,3,5,9]",
        ]),
    );
    let id = loop {
        let list = common::get_json(format!("{http}/v1/market/bounties")).await;
        if let Some(id) = list[0]["id"].as_str() {
            break id.to_string();
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the post never reached the node");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    common::signal(agent_pid, "CONT");
    let out = wait_with_deadline(poster, 180);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the post after a restart failed:\n{stderr}");
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["phase"], "settled", "{res}");
    assert_eq!(res["status"], "completed", "{res}");
    assert_eq!(res["id"], id.as_str());
    let events = event_names(&http, &id).await;
    assert!(
        events.iter().any(|e| e == "held"),
        "the call should have waited for the reconnecting agent: {events:?}"
    );
    assert!(
        !events.iter().any(|e| e == "extended" || e == "reopened"),
        "the call should have waited for the agent, not needed another window: {events:?}"
    );
    eprintln!("settled {:?} after the restart; events {events:?}", t0.elapsed());
    assert!(agent.0.try_wait().unwrap().is_none(), "the agent exited");
    drop(node);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_node_answers_busy_and_a_window_without_bids_is_extended_then_fails_with_exit_3() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("busy");
    let deployments = dir.join("deployments");
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let flags = ["--max-open-windows", "1", "--max-window-extensions", "2"];
    let _node = start_node(&dir, &anvil.rpc_url, port, "busy-test", &flags);
    let _agent = start_sort_agent(port, &anvil.rpc_url, 1);
    common::wait_agent_online(&http, dev_signer(1).address(), "the agent").await;

    // A: nobody has the skill; its 1 s window is extended twice (2 s each), then it fails.
    let lonely = common::spawn_captured(
        reef()
            .args(["bounty", "post", "Translate this into Klingon", "--reward", "5"])
            .args(["--token", "test", "--node", &http, "--skills", "klingon"])
            .args(["--bid-window", "1s", "--deadline", "1h", "--verify", "hash"])
            .args(["--expect", "\"nuqneH\"", "--approve", "--dev-account", "4", "--json"])
            .args(["--rpc-url", &anvil.rpc_url])
            .arg("--deployments")
            .arg(&deployments),
    );
    let a = common::wait_announced(&http).await;
    // B arrives while A holds the node's only window: refused (busy), posted again once A ends.
    let sort = common::spawn_captured(
        common::post_sort_with_window(&http, &anvil.rpc_url, &deployments, "2s").args([
            "--verify",
            "hash",
            "--expect",
            "[1,3,5,9]",
        ]),
    );

    let out_a = wait_with_deadline(lonely, 120);
    let err_a = String::from_utf8_lossy(&out_a.stderr);
    assert_eq!(out_a.status.code(), Some(3), "a bounty without bids must exit 3:\n{err_a}");
    let res_a: Value = serde_json::from_slice(&out_a.stdout).unwrap();
    assert_eq!(res_a["phase"], "failed", "{res_a}");
    let events = event_names(&http, &a).await;
    let extended = events.iter().filter(|e| *e == "extended").count();
    assert_eq!(extended, 2, "the window is extended --max-window-extensions times: {events:?}");

    let out_b = wait_with_deadline(sort, 120);
    let err_b = String::from_utf8_lossy(&out_b.stderr);
    assert!(out_b.status.success(), "the refused post was not posted again:\n{err_b}");
    assert!(err_b.contains("busy"), "the poster should have been told the node was busy:\n{err_b}");
    let res_b: Value = serde_json::from_slice(&out_b.stdout).unwrap();
    assert_eq!(res_b["status"], "completed", "{res_b}");
}

/// How many times the node ran the SQL statements that start with `prefix` (`GET /metrics`).
async fn statements_run(http: &str, prefix: &str) -> u64 {
    let text = alloy::transports::http::reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples = text.lines().filter_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        Some((series, value.parse::<f64>().ok()?))
    });
    common::statements_by_text(samples, prefix) as u64
}

/// The posts' poster in these tests (dev account 4) on the chain.
async fn poster_client(rpc: &str, dep: escrow_client::Deployment) -> escrow_client::ReefClient {
    let opts = escrow_client::ClientOptions::default();
    escrow_client::ReefClient::connect(rpc, dev_signer(4), dep, opts).await.unwrap()
}

/// A post body for a bounty nobody bids on (skill `klingon`), from `client`'s terms.
async fn klingon_post(
    client: &escrow_client::ReefClient,
    evaluator: alloy::primitives::Address,
) -> Value {
    let token = client.deployment().test_token.unwrap();
    let terms = klingon_terms(client, evaluator, token, 5_000_000_000_000_000_000).await;
    klingon_body(escrow_client::escrow::random_salt(), &terms)
}

/// `client`'s terms for a Klingon translation of `amount` of `token`, due in an hour.
async fn klingon_terms(
    client: &escrow_client::ReefClient,
    evaluator: alloy::primitives::Address,
    token: alloy::primitives::Address,
    amount: u128,
) -> escrow_client::bindings::escrow::IBountyTypes::Bounty {
    client
        .terms(&escrow_client::escrow::NewBounty {
            token,
            amount,
            evaluator: Some(evaluator),
            arbiter: alloy::primitives::Address::ZERO,
            deadline: client.chain_time().await.unwrap() + 3_600,
            review_window: 3_600,
            challenge_window: 3_600,
            description: KLINGON.into(),
            contest_winners: None,
        })
        .await
        .unwrap()
}

const KLINGON: &str = "Translate this into Klingon";

/// The post body for `terms` under `salt` (skill `klingon`, hash verification).
fn klingon_body(
    salt: alloy::primitives::B256,
    terms: &escrow_client::bindings::escrow::IBountyTypes::Bounty,
) -> Value {
    use marketplace_node::market::verify::result_hash;
    serde_json::json!({
        "salt": salt,
        "record": escrow_client::escrow::RecordJson::from(terms),
        "description": KLINGON,
        "input": "Hello",
        "skills": ["klingon"],
        "verify": { "mode": "hash", "expected": result_hash(&serde_json::json!("nuqneH")) },
        "bid_window_ms": 30_000,
    })
}

/// Under overload posters come back faster than windows close: once the node found itself
/// full, the next new bounty is refused without a count or an insert attempt, while a
/// repeated post of a registered bounty still goes through.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_node_refuses_from_memory_and_a_repeated_post_still_goes_through() {
    use marketplace_node::cmd::nodeapi::NodeApi;
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("full");
    let dep = common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let _node = start_node(&dir, &anvil.rpc_url, port, "full-test", &["--max-open-windows", "1"]);
    let signer = dev_signer(4);
    let client = poster_client(&anvil.rpc_url, dep).await;
    let mut api = NodeApi::new(&http);
    api.login(&signer).await.unwrap();
    let info = api.get("/v1/market/info").await.unwrap();
    let evaluator = info["evaluator"].as_str().unwrap().parse().unwrap();

    let first = klingon_post(&client, evaluator).await;
    let posted = api.post("/v1/market/bounties", first.clone()).await.unwrap();
    assert_eq!(posted["new"], true, "{posted}");
    let second = klingon_post(&client, evaluator).await;
    let busy = |r: Result<Value, marketplace_node::cmd::nodeapi::ApiError>| {
        let e = r.expect_err("the node holds its one window: a new bounty is refused");
        assert!(e.busy_retry().is_some(), "503 busy expected: {e}");
        assert!(e.to_string().contains("--max-open-windows, is 1"), "{e}");
    };
    const COUNT: &str = "SELECT COUNT(*) AS n FROM market_bounties WHERE state";
    const INSERT: &str = "INSERT INTO market_bounties";
    // The mark stands for a second: the pair is tried again if the machine was slower.
    let mut from_memory = false;
    for _ in 0..5 {
        let (counts, inserts) =
            (statements_run(&http, COUNT).await, statements_run(&http, INSERT).await);
        let at = Instant::now();
        busy(api.post("/v1/market/bounties", second.clone()).await);
        let counted = statements_run(&http, COUNT).await;
        assert_eq!(counted, counts + 1, "the first refusal counts the open windows");
        let inserted = statements_run(&http, INSERT).await;
        busy(api.post("/v1/market/bounties", second.clone()).await);
        if at.elapsed() >= Duration::from_millis(900) {
            // Let the mark lapse, so that the next first refusal counts again.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            continue;
        }
        assert_eq!(statements_run(&http, COUNT).await, counted, "refused from memory: no count");
        assert_eq!(
            statements_run(&http, INSERT).await,
            inserted,
            "refused from memory: no insert attempt"
        );
        assert_eq!(inserted, inserts + 1, "the first refusal was an insert attempt");
        from_memory = true;
        break;
    }
    assert!(from_memory, "two posts never came within the mark's second");
    // Idempotent posting holds while the node is full.
    let again = api.post("/v1/market/bounties", first).await.unwrap();
    assert_eq!(
        (again["new"].clone(), again["id"].clone()),
        (Value::Bool(false), posted["id"].clone())
    );
}

/// A post whose bounty the chain already holds (its salt was used on-chain) is refused
/// `409 conflict`: one posted before the node started (known to the embedded indexer), and
/// one posted while it runs (known to its chain view's scans). A new one is still admitted.
#[tokio::test(flavor = "multi_thread")]
async fn a_post_of_a_bounty_already_on_chain_is_refused_conflict() {
    use escrow_client::escrow::random_salt;
    use marketplace_node::cmd::nodeapi::NodeApi;
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("on-chain");
    let dep = common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let signer = dev_signer(4);
    let client = poster_client(&anvil.rpc_url, dep).await;
    let evaluator = dev_signer(5).address(); // the node's evaluator on anvil
    let body = async |on_chain: bool| {
        let eth = alloy::primitives::Address::ZERO;
        let terms = klingon_terms(&client, evaluator, eth, 1_000_000_000_000_000).await;
        let salt = random_salt();
        if on_chain {
            client.post_and_fund(salt, terms.clone(), false).await.unwrap();
        }
        klingon_body(salt, &terms)
    };
    let before_node = body(true).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let _node = start_node(&dir, &anvil.rpc_url, port, "on-chain-test", &[]);
    let mut api = NodeApi::new(&http);
    api.login(&signer).await.unwrap();
    let info = api.get("/v1/market/info").await.unwrap();
    assert_eq!(
        info["evaluator"].as_str().unwrap().parse::<alloy::primitives::Address>().unwrap(),
        evaluator
    );
    let while_running = body(true).await;
    // The node's loop scans the new block and its indexer indexes both within about a second.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for (what, b) in [("before the node started", before_node), ("while it ran", while_running)] {
        let e = api.post("/v1/market/bounties", b).await.expect_err(what);
        let text = e.to_string();
        assert!(text.contains("already exists on-chain"), "{what}: {text}");
        assert!(text.contains("409") || text.contains("conflict"), "{what}: {text}");
    }
    let fresh = api.post("/v1/market/bounties", body(false).await).await.unwrap();
    assert_eq!(fresh["new"], true, "{fresh}");
}
