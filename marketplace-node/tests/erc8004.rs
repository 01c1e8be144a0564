//! ERC-8004 registration files end to end (anvil, `reef node` with its embedded indexer, a sort
//! agent run by `reef agent run`): `reef agent register` mints an identity whose agentURI is the
//! node's registration file for the agent, the file lists it, a second run sends nothing, and
//! an identity with another agentURI is pointed at the file with setAgentURI.

mod common;

use escrow_client::{
    ClientOptions, ReefClient,
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
};
use serde_json::Value;

use common::reef;

fn register(http: &str, rpc: &str, dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    reef()
        .args([
            "agent",
            "register",
            "--node",
            http,
            "--dev-account",
            "1",
            "--json",
            "--rpc-url",
            rpc,
        ])
        .args(extra)
        .arg("--deployments")
        .arg(dir.join("deployments"))
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_register_points_the_identity_at_the_nodes_registration_file() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let rpc = anvil.rpc_url.clone();
    let dir = common::temp_dir("erc8004");
    let dep = common::deploy_devnet(&rpc, &dir).await;
    let agent = ReefClient::connect(&rpc, dev_signer(1), dep.clone(), ClientOptions::default())
        .await
        .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let http = format!("http://127.0.0.1:{port}");

    // Before the agent ever connected, the node cannot describe it: a clear error, exit 1.
    let _node = common::start_node(&dir, &rpc, port, "erc8004-test", &[]);
    common::wait_http_ok(&format!("{http}/v1/health"), "node").await;
    let early = register(&http, &rpc, &dir, &[]);
    assert_eq!(early.status.code(), Some(1), "{early:?}");
    assert!(String::from_utf8_lossy(&early.stderr).contains("reef agent run"), "{early:?}");
    assert!(agent.agent_ids_of(agent.address()).await.unwrap().is_empty(), "nothing was sent");

    let _sorter = common::start_sort_agent(port, &rpc, 1);
    common::wait_agent_online(&http, agent.address(), "sort agent").await;

    let out = register(&http, &rpc, &dir, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id: alloy::primitives::U256 = first["agent_id"].as_str().unwrap().parse().unwrap();
    let uri = format!("{http}/v1/agents/{}/registration.json", agent.address());
    assert_eq!(first["agent_uri"], uri);
    assert!(first["tx"].is_string(), "{first}");
    // On-chain: the identity is the agent's, its agentURI the node's file.
    assert_eq!(agent.agent_ids_of(agent.address()).await.unwrap(), vec![id]);
    assert_eq!(agent.agent_uri(id).await.unwrap(), uri);

    // The file, as any ERC-8004 reader fetches it.
    let file = common::get_json(uri.as_str()).await;
    assert_eq!(file["type"], "https://eips.ethereum.org/EIPS/eip-8004#registration-v1");
    assert!(file["name"].as_str().is_some_and(|n| !n.is_empty()), "{file}");
    assert_eq!(file["active"], true);
    assert_eq!(file["x402Support"], false);
    let registry = format!("eip155:31337:{}", dep.agent_registry);
    assert_eq!(
        file["registrations"],
        serde_json::json!([{ "agentId": id.to::<u64>(), "agentRegistry": registry }])
    );
    let services = file["services"].as_array().unwrap();
    let endpoint = |n: &str| {
        services.iter().find(|s| s["name"] == n).unwrap_or_else(|| panic!("no {n} in {file}"))["endpoint"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(endpoint("reef"), format!("ws://127.0.0.1:{port}/v1/ws"));
    assert_eq!(endpoint("MCP"), format!("{http}/mcp"));
    assert_eq!(endpoint("agentWallet"), format!("eip155:31337:{}", agent.address()));
    assert_eq!(first["registration"], file);

    // Again: the identity already points here, nothing is sent.
    let again = register(&http, &rpc, &dir, &[]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (again["agent_id"].clone(), again["tx"].clone()),
        (first["agent_id"].clone(), Value::Null)
    );

    // An identity registered elsewhere is pointed here with setAgentURI.
    let (other, _) = agent.register_agent("https://elsewhere.example/a.json").await.unwrap();
    let moved = register(&http, &rpc, &dir, &["--agent-id", &other.to_string()]);
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));
    assert_eq!(agent.agent_uri(other).await.unwrap(), uri);
    let file = common::get_json(uri.as_str()).await;
    assert_eq!(file["registrations"].as_array().unwrap().len(), 2, "{file}");

    // Lookups and discovery show the identities, read from the chain (not claimed by the card).
    let info = common::get_json(format!("{http}/v1/agents/{}", agent.address())).await;
    let ids: Vec<&str> = info["erc8004"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["agent_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.to_string(), other.to_string()], "{info}");
    assert_eq!(info["erc8004"][0]["agent_uri"], uri);
    assert_eq!(info["erc8004"][0]["agent_registry"], registry);
    let found: Value = alloy::transports::http::reqwest::Client::new()
        .post(format!("{http}/v1/discover"))
        .header("content-type", "application/json")
        .body(r#"{"query": "", "skills": ["sort"]}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let me = found["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("{found}"))
        .iter()
        .find(|a| {
            a["address"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(&agent.address().to_string()))
        })
        .unwrap_or_else(|| panic!("the sorter is not discovered: {found}"));
    assert_eq!(me["erc8004"].as_array().map(Vec::len), Some(2), "{me}");

    // Someone else's agent id is refused before any transaction.
    let theirs = register(&http, &rpc, &dir, &["--agent-id", "999"]);
    assert_eq!(theirs.status.code(), Some(1), "{theirs:?}");
    assert!(
        String::from_utf8_lossy(&theirs.stderr).contains("does not own agent 999"),
        "{theirs:?}"
    );
    // An unknown agent: 404 with a reason.
    let r = reqwest_status(&format!(
        "{http}/v1/agents/0x000000000000000000000000000000000000dead/registration.json"
    ))
    .await;
    assert_eq!(r, 404);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn reqwest_status(url: &str) -> u16 {
    alloy::transports::http::reqwest::get(url).await.unwrap().status().as_u16()
}
