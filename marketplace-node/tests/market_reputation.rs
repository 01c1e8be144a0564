//! ERC-8004 end to end with real processes (anvil, `reef node` with its embedded indexer, a
//! sort agent run by `reef agent run --exec`, the poster's `reef bounty post --node`): work
//! settled through the marketplace (`submitAndAttest`, no `ResultSubmitted`) counts as an on-time
//! delivery, `post --rate` writes the poster's feedback, which reaches the agent's score, and
//! the node copies the verifier's verdict into the ERC-8004 ValidationRegistry.

mod common;

use std::time::{Duration, Instant};

use escrow_client::{
    ClientOptions, ReefClient,
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
};
use serde_json::Value;

use common::{reef, wait_with_deadline};

fn component<'a>(score: &'a Value, name: &str) -> &'a Value {
    score["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} component in {score}"))
}

/// `reef <args> --json` with the test's chain and deployment; its JSON answer.
fn reef_json(args: &[&str], rpc: &str, dir: &std::path::Path) -> Value {
    let out = reef()
        .args(args)
        .args(["--json", "--rpc-url", rpc])
        .arg("--deployments")
        .arg(dir.join("deployments"))
        .output()
        .unwrap();
    assert!(out.status.success(), "reef {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("reef {args:?} printed no JSON ({e})"))
}

#[tokio::test(flavor = "multi_thread")]
async fn marketplace_work_is_an_on_time_delivery_and_post_rate_reaches_the_score() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let rpc = anvil.rpc_url.clone();
    let dir = common::temp_dir("market-rep");
    let dep = common::deploy_devnet(&rpc, &dir).await;
    // The provider (dev 1) is an ERC-8004 agent: feedback is given on its agent id.
    let provider = ReefClient::connect(&rpc, dev_signer(1), dep.clone(), ClientOptions::default())
        .await
        .unwrap();
    let (agent_id, _) = provider.register_agent("https://sorter.example/agent.json").await.unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _node = common::start_node(&dir, &rpc, port, "rep-test", &[]);
    let http = format!("http://127.0.0.1:{port}");
    let _agent = common::start_sort_agent(port, &rpc, 1);
    common::wait_agent_online(&http, provider.address(), "sort agent").await;

    let mut post = common::post_sort(&http, &rpc, &dir.join("deployments"));
    post.args(["--verify", "hash", "--expect", "[1,3,5,9]", "--rate", "90"]);
    let out = wait_with_deadline(common::spawn_captured(&mut post), 180);
    assert!(out.status.success(), "post failed: {}", String::from_utf8_lossy(&out.stderr));
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["status"], "completed", "{res}");
    let rating = &res["rating"];
    assert_eq!(rating["agent_id"], agent_id.to_string(), "{res}");
    assert_eq!(rating["score"], 90, "{res}");
    assert_eq!(rating["feedback_index"], 1, "{res}");
    let id = res["id"].as_str().unwrap().to_string();
    // The feedback is on-chain, on the agent, from the poster.
    let fb = provider.read_feedback(agent_id, dev_signer(0).address(), 1).await.unwrap();
    assert_eq!((fb.0, fb.1, fb.4), (90, 0, false));
    // The node (evaluator: its market key, anvil's dev account 5) recorded its verdict as an
    // ERC-8004 validation of the agent's work before it called the bounty settled.
    let validator = dev_signer(5).address();
    let summary =
        provider.validation_summary(agent_id, vec![validator], "reef.bounty").await.unwrap();
    assert_eq!(summary, (1, 100));
    let requests = provider.agent_validations(agent_id).await.unwrap();
    let record = provider.bounty(id.parse().unwrap()).await.unwrap().record;
    assert_eq!(
        requests,
        vec![provider.bounty_request_hash(id.parse().unwrap(), record.provider, record.resultHash)]
    );

    // The node's embedded index: one on-time delivery and one rating, explained.
    let url = format!("{http}/v1/market/agents/{}/reputation", provider.address());
    let t0 = Instant::now();
    let score = loop {
        let s = common::get_json(url.as_str()).await;
        if s["counts"]["completed"] == 1 && s["counts"]["feedback"] == 1 {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the index never saw the job: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let check = |s: &Value| {
        let on_time = component(s, "on_time");
        let why = on_time["explanation"].as_str().unwrap();
        // "X of X weighted deliveries on time", X > 0: the one delivery was on time.
        let (on, of) = why.split_once(" of ").unwrap_or_else(|| panic!("{why}"));
        let of = of.split_whitespace().next().unwrap();
        assert_eq!(on, of, "one delivery, on time: {why}");
        assert!(on.parse::<f64>().unwrap() > 0.0, "{why}");
        assert!(on_time["value"].as_f64().unwrap() > 0.5, "{on_time}");
        let feedback = component(s, "feedback");
        let why = feedback["explanation"].as_str().unwrap();
        assert!(why.starts_with("1 poster ratings averaging 0.90"), "{why}");
        assert!(feedback["value"].as_f64().unwrap() > 0.5, "{feedback}");
    };
    check(&score);

    // The same from a separate index built by `reef indexer run`, read by `reef agents show`.
    let db = format!("sqlite:{}/index.db", dir.display());
    reef_json(&["indexer", "run", "--once", "--db", &db], &rpc, &dir);
    let addr = provider.address().to_string();
    let shown = reef_json(&["agents", "show", &addr, "--db", &db], &rpc, &dir);
    assert_eq!(shown["counts"]["completed"], 1, "{shown}");
    check(&shown);
    let v = &shown["validations"];
    assert_eq!((v["count"].as_u64(), v["average"].as_u64()), (Some(1), Some(100)), "{shown}");
    assert_eq!(v["bounty_verdicts"], 1, "{shown}");
    assert_eq!(v["validators"][0].as_str().map(str::to_lowercase), Some(format!("{validator:#x}")));

    // One rating per bounty: a second is refused before any transaction, exit status 1.
    let again = reef()
        .args(["bounty", "rate", &id, "--score", "10", "--dev-account", "0", "--rpc-url", &rpc])
        .arg("--deployments")
        .arg(dir.join("deployments"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already rated"), "{again:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
