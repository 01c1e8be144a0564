//! Data-usage terms ("policy tokens") end to end on anvil with real processes: the terms are
//! committed in `specHash` (so in what bids sign) and shown in the call for proposals; a
//! bounty's task input and result are deleted once it settled and its retention passed (the
//! test reads the SQLite files for a marker); the provider cannot forward a no-sharing input
//! to another group or into a sub-bounty; a region the node does not serve is refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use escrow_client::devnet::{AnvilOptions, AnvilProcess, dev_signer, free_port};
use escrow_client::policy::{Policy, spec_hash};
use reef_earning_agent::NodeApi;
use serde_json::{Value, json};

mod common;

fn rand_hex(n: usize) -> String {
    (0..n).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

use common::{get_json, start_node, start_sort_agent};

fn in_files(db: &Path, marker: &str) -> bool {
    ["", "-wal"].iter().any(|suffix| {
        std::fs::read(format!("{}{suffix}", db.display()))
            .is_ok_and(|b| b.windows(marker.len()).any(|w| w == marker.as_bytes()))
    })
}

/// `reef bounty post` of a hash-verified sort of `input` with `extra` flags (terms).
fn post(
    http: &str,
    rpc: &str,
    deployments: &Path,
    input: &Value,
    extra: &[&str],
) -> std::process::Child {
    let mut sorted: Vec<String> =
        input.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    sorted.sort();
    let mut cmd = common::reef();
    cmd.args(["bounty", "post", "Sort these words", "--reward", "5", "--token", "test"])
        .args(["--node", http, "--skills", "sort", "--bid-window", "3s", "--deadline", "1h"])
        .args(["--input", &input.to_string()])
        .args(["--verify", "hash", "--expect", &json!(sorted).to_string()])
        .args(["--approve", "--dev-account", "0", "--json", "--rpc-url", rpc])
        .arg("--deployments")
        .arg(deployments)
        .args(extra);
    common::spawn_captured(&mut cmd)
}

fn settled(child: std::process::Child) -> Value {
    let out = common::wait_with_deadline(child, 180);
    assert!(out.status.success(), "post failed: {}", String::from_utf8_lossy(&out.stderr));
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["phase"], "settled", "{res}");
    res
}

struct Market {
    _anvil: AnvilProcess,
    dir: PathBuf,
    http: String,
    _node: common::Kill,
    _agent: common::Kill,
}

async fn market(tag: &str, extra: &[&str]) -> Market {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir(tag);
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let node = start_node(&dir, &anvil.rpc_url, port, tag, extra);
    let agent = start_sort_agent(port, &anvil.rpc_url, 1);
    common::wait_agent_online(&http, dev_signer(1).address(), "the sort agent").await;
    Market { _anvil: anvil, dir, http, _node: node, _agent: agent }
}

impl Market {
    fn rpc(&self) -> String {
        self._anvil.rpc_url.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn task_data_is_deleted_after_the_terms_retention() {
    let m = market("policy-retention", &["--retention-sweep-secs", "1"]).await;
    let marker = format!("PRIVATE-{}", rand_hex(10));
    let input = json!([marker, "apple-banana-cherry"]);
    let res = settled(post(
        &m.http,
        &m.rpc(),
        &m.dir.join("deployments"),
        &input,
        &["--retention-days", "0"],
    ));
    let id = res["id"].as_str().expect("id").to_owned();
    let db = m.dir.join("node.db");
    // Deleted from the record, the verdict and every group message: gone from the files.
    let t0 = Instant::now();
    while in_files(&db, &marker) {
        assert!(t0.elapsed() < Duration::from_secs(30), "the input is still in {db:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let v = get_json(format!("{}/v1/market/bounties/{id}", m.http)).await;
    assert_eq!(v["erased"], true, "{v}");
    assert_eq!(v["policy"]["retention_days"], 0, "{v}");
    assert!(v["events"].to_string().contains("erased"), "{v}");
    assert_eq!(v["phase"], "settled");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_onward_sharing_is_committed_shown_and_enforced() {
    let m = market("policy-sharing", &[]).await;
    let deployments = m.dir.join("deployments");
    let marker = format!("CONFIDENTIAL-{}", rand_hex(10));
    let input = json!([marker, "zebra-yak-xylophone"]);
    let res = settled(post(&m.http, &m.rpc(), &deployments, &input, &["--no-onward-sharing"]));
    let id = res["id"].as_str().unwrap().to_owned();
    let view = get_json(format!("{}/v1/market/bounties/{id}", m.http)).await;
    let policy = Policy { onward_sharing: false, region: None, retention_days: None };
    assert_eq!(view["policy"], serde_json::to_value(&policy).unwrap(), "{view}");
    assert_eq!(view["erased"], false);
    // The control of the retention test: without a retention the input stays in the files.
    assert!(in_files(&m.dir.join("node.db"), &marker), "the input should be stored");

    // The provider (dev account 1) logs in like any agent.
    let provider = dev_signer(1);
    let mut api = NodeApi::new(&m.http);
    api.login(&provider).await.unwrap();

    // The call for proposals showed the terms, and specHash commits to them.
    let cfp_group = view["cfp_group"].as_str().unwrap();
    let msgs = api.get(&format!("/v1/groups/{cfp_group}/messages")).await.unwrap();
    let cfp = &msgs["messages"][0]["body"];
    assert_eq!(cfp["kind"], "cfp", "{msgs}");
    assert_eq!(cfp["policy"], serde_json::to_value(&policy).unwrap());
    let committed: B256 = cfp["record"]["specHash"].as_str().unwrap().parse().unwrap();
    assert_eq!(committed, spec_hash("Sort these words", Some(&policy)));
    assert_ne!(committed, spec_hash("Sort these words", None));

    // Forwarding the input to another group is refused; other talk and the work group are not.
    let other = api.post("/v1/groups", json!({"name": "elsewhere"})).await.unwrap();
    let other = other["group_id"].as_str().unwrap();
    let send = |group: &str, body: Value| {
        let api = api.clone();
        let path = format!("/v1/groups/{group}/messages");
        async move {
            api.post(&path, json!({"msg_id": rand_hex(6), "state": "discussion", "body": body}))
                .await
        }
    };
    let refused = send(other, json!({"fwd": format!("look: {marker}")})).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert!(refused.to_string().contains("onward_sharing"), "{refused}");
    let refused = send(other, json!({"copy": input})).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    send(other, json!({"text": "nothing confidential"})).await.unwrap();
    let work = view["work_group"].as_str().unwrap();
    send(work, json!({"note": marker})).await.unwrap();

    // A sub-bounty funded from this one's reward that carries its input is refused.
    let info = get_json(format!("{}/v1/market/info", m.http)).await;
    let escrow = info["deployment"]["bountyEscrow"].as_str().unwrap().parse().unwrap();
    let parent: U256 = id.parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sub = |input: Value| {
        let record = json!({
            "poster": provider.address(),
            "token": escrow_client::pledge::pledge_token(escrow, parent, provider.address()),
            "amount": "1000", "price": "0",
            "provider": alloy::primitives::Address::ZERO,
            "evaluator": info["evaluator"], "arbiter": alloy::primitives::Address::ZERO,
            "deadline": now + 3600, "reviewWindow": 3600, "challengeWindow": 0,
            "feeBps": info["fee_bps"], "mode": 0, "maxWinners": 0,
            "specHash": spec_hash("half of it", None), "resultHash": B256::ZERO,
        });
        json!({"salt": B256::from(rand::random::<[u8; 32]>()), "record": record,
            "description": "half of it", "input": input, "skills": ["sort"],
            "verify": {"mode": "hash", "expected": B256::ZERO}, "bid_window_secs": 2,
            "from_reward": id})
    };
    let refused = api.post("/v1/market/bounties", sub(json!([marker]))).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert!(refused.to_string().contains("onward_sharing"), "{refused}");
    // Without the parent's input the terms do not stand in the way (whatever else the
    // settled parent's pledge makes of it).
    if let Err(e) = api.post("/v1/market/bounties", sub(json!(["unrelated-words"]))).await {
        assert!(!e.to_string().contains("onward_sharing"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_the_node_does_not_serve_is_refused() {
    let m = market("policy-region", &["--region", "eu"]).await;
    let deployments = m.dir.join("deployments");
    let child = post(
        &m.http,
        &m.rpc(),
        &deployments,
        &json!(["b-item-x", "a-item-y"]),
        &["--region", "us"],
    );
    let out = common::wait_with_deadline(child, 120);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("region"), "{err}");
    // The node's own region is served.
    settled(post(
        &m.http,
        &m.rpc(),
        &deployments,
        &json!(["b-item-x", "a-item-y"]),
        &["--region", "EU"],
    ));
}
