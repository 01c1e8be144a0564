//! LLM brains (`reef agent run --llm`): a scripted local server that speaks the OpenAI
//! chat-completions API plays the model. It bids, then plans the sorting task as two funded
//! sub-bounties (tool calls), and merges their verified results. The test checks the requests the
//! agent sent (the bid prompt, the tools offered, the task in the messages, the tool results fed
//! back) and that the parent and both sub-bounties settled and paid on anvil.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
};

use axum::{Json, Router, extract::State, routing::post};
use escrow_client::devnet::{AnvilOptions, AnvilProcess, DEV_KEYS, dev_signer, free_port};
use serde_json::{Value, json};

mod common;

use common::{Kill, reef, repo, start_node};

/// Every request the "model" got.
type Seen = Arc<Mutex<Vec<Value>>>;

/// The scripted model: a bid answer for the bid prompt; for the work prompt, two
/// `post_sub_bounty` calls splitting the input in halves, then the merge of their results.
async fn complete(State(seen): State<Seen>, Json(req): Json<Value>) -> Json<Value> {
    seen.lock().unwrap().push(req.clone());
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let system = messages[0]["content"].as_str().unwrap_or_default();
    let reply = |message: Value| {
        Json(
            json!({ "id": "chatcmpl-1", "object": "chat.completion", "model": req["model"], "choices": [{ "index": 0, "message": message, "finish_reason": "stop" }] }),
        )
    };
    if system.contains("bidding brain") {
        let answer = json!({ "bid": true, "price": "4", "reason": "a sort I can split" });
        return reply(json!({ "role": "assistant", "content": answer.to_string() }));
    }
    let results: Vec<Vec<i64>> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| serde_json::from_str::<Value>(m["content"].as_str()?).ok())
        .filter_map(|v| serde_json::from_value(v["result"]["result"].clone()).ok())
        .collect();
    if results.len() == 2 {
        let mut merged: Vec<i64> = results.concat();
        merged.sort();
        return reply(json!({ "role": "assistant", "content": json!(merged).to_string() }));
    }
    let task: Value =
        serde_json::from_str(messages[1]["content"].as_str().unwrap_or("{}")).unwrap();
    let numbers: Vec<i64> = serde_json::from_value(task["input"].clone()).unwrap_or_default();
    let (a, b) = numbers.split_at(numbers.len() / 2);
    let call = |i: usize, part: &[i64]| {
        let mut sorted = part.to_vec();
        sorted.sort();
        let args = json!({ "description": format!("Sort {} numbers (part {i})", part.len()), "reward": "1.5", "skills": ["sort-part"], "input": part, "expect": sorted });
        json!({ "id": format!("call_{i}"), "type": "function", "function": { "name": "post_sub_bounty", "arguments": args.to_string() } })
    };
    reply(json!({ "role": "assistant", "content": null, "tool_calls": [call(1, a), call(2, b)] }))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_llm_brain_bids_plans_funded_sub_bounties_and_is_paid_for_the_merged_result() {
    let seen: Seen = Arc::default();
    let app = Router::new().route("/v1/chat/completions", post(complete)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let model = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("llm");
    let deployments = dir.join("deployments");
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let _node = start_node(&dir, &anvil.rpc_url, port, "llm-test", &[]);
    // The sub-tasks' provider: a plain sorting agent with the part skill.
    let _parts = Kill(
        reef()
            .args(["agent", "run", "--node", &format!("ws://127.0.0.1:{port}/v1/ws")])
            .args(["--key", DEV_KEYS[2], "--skills", "sort-part", "--bid-price", "1"])
            .args(["--rpc-url", &anvil.rpc_url, "--exec"])
            .arg(format!("python3 {}", repo().join("examples/agents/sort.py").display()))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _planner = Kill(
        reef()
            .args(["agent", "run", "--node", &format!("ws://127.0.0.1:{port}/v1/ws")])
            .args(["--key", DEV_KEYS[1], "--skills", "sort", "--rpc-url", &anvil.rpc_url])
            .args(["--llm", &model, "--model", "scripted-planner", "--llm-key-env", "TEST_LLM_KEY"])
            .args(["--bid-min", "2", "--bid-max", "4.5", "--allow-sub-bounties", "3"])
            .env("TEST_LLM_KEY", "sk-test-not-a-secret")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_agent_online(&http, dev_signer(1).address(), "the LLM agent").await;
    common::wait_agent_online(&http, dev_signer(2).address(), "the part sorter").await;

    let out = common::wait_with_deadline(
        common::spawn_captured(
            reef()
                .args(["bounty", "post", "Sort these numbers ascending", "--reward", "5"])
                .args(["--token", "test", "--node", &http, "--skills", "sort"])
                .args(["--bid-window", "2s", "--deadline", "1h", "--input", "[8,3,6,1,7,2]"])
                .args(["--verify", "hash", "--expect", "[1,2,3,6,7,8]", "--approve"])
                .args(["--dev-account", "0", "--json", "--rpc-url", &anvil.rpc_url])
                .arg("--deployments")
                .arg(&deployments),
        ),
        300,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the planned bounty was not paid:\n{stderr}");
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["status"], "completed", "{res}");
    assert_eq!(
        res["winner"].as_str().unwrap().to_lowercase(),
        format!("{:#x}", dev_signer(1).address())
    );

    // What the agent asked the model.
    let seen = seen.lock().unwrap().clone();
    let bid = seen
        .iter()
        .find(|r| r["messages"][0]["content"].as_str().unwrap().contains("bidding brain"))
        .expect("a bid request");
    assert_eq!(bid["model"], "scripted-planner");
    assert_eq!(bid["response_format"]["type"], "json_object");
    let ask: Value = serde_json::from_str(bid["messages"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(ask["input"], json!([8, 3, 6, 1, 7, 2]), "{ask}");
    assert_eq!(
        ask["your_price_range"],
        json!(["2.000000000000000000", "4.500000000000000000"]),
        "{ask}"
    );
    let work: Vec<&Value> = seen
        .iter()
        .filter(|r| r["messages"][0]["content"].as_str().unwrap().contains("working brain"))
        .collect();
    assert_eq!(work.len(), 2, "one planning turn and one merging turn: {work:?}");
    let tools: Vec<&str> = work[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["post_sub_bounty"]);
    let fed_back =
        work[1]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").count();
    assert_eq!(fed_back, 2, "both sub-bounty results go back to the model");

    // Both sub-bounties were funded from the reward and paid (in pledge credits) to the sorter.
    let earned = common::earnings(&anvil.rpc_url, &deployments, 2);
    let parts = earned["payouts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{earned}");
    assert!(
        parts.iter().all(|p| p.get("pledge").is_some()),
        "paid from the pending reward: {earned}"
    );
}
