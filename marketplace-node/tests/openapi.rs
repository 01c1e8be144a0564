//! `GET /v1/openapi.json` (issue 20): served by every node, with or without the marketplace,
//! the same document; and every operation it describes is a route of the real node (the
//! converse, every route described, is the unit test next to the document, src/openapi).
//! The fuzzing of the described operations is `make test-api` (schemathesis).

use alloy::transports::http::reqwest;
use escrow_client::devnet::{AnvilOptions, AnvilProcess, free_port};
use serde_json::Value;

mod common;

use common::{Kill, reef, start_node, temp_dir, wait_http_ok};

/// A node with neither a marketplace nor a mesh.
fn start_plain_node(dir: &std::path::Path, port: u16) -> Kill {
    common::spawn_listening(
        reef()
            .args([
                "node",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--json",
                "--node-id",
                "plain",
            ])
            .arg("--database-url")
            .arg(format!("sqlite://{}/plain.db", dir.display()))
            .stderr(std::process::Stdio::inherit()),
    )
}

/// `path` with its parameters filled in with plausible values.
fn concrete(path: &str) -> String {
    path.replace("{address}", &format!("0x{}", "11".repeat(20)))
        .replace("{id}", &format!("0x{}", "ee".repeat(32)))
        .replace("{file}", "app.js")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_node_serves_the_same_description_and_routes_every_operation_of_it() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = temp_dir("openapi");
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let (market_port, plain_port) = (free_port().unwrap(), free_port().unwrap());
    let _market = start_node(&dir, &anvil.rpc_url, market_port, "openapi-market", &[]);
    let _plain = start_plain_node(&dir, plain_port);
    let market = format!("http://127.0.0.1:{market_port}");
    let plain = format!("http://127.0.0.1:{plain_port}");
    wait_http_ok(&format!("{market}/v1/market/info"), "the marketplace").await;

    let get_doc = |base: String| async move {
        let r = reqwest::get(format!("{base}/v1/openapi.json")).await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let doc = get_doc(market.clone()).await;
    assert_eq!(doc, get_doc(plain.clone()).await, "the same description on every node");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    let client = reqwest::Client::new();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let url = format!("{market}{}", concrete(path));
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            let mut req = client.request(m, &url);
            if method == "post" {
                req = req.json(&serde_json::json!({}));
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let media = r
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
            let is_json = media.as_deref() == Some("application/json");
            let answer = &item[method]["responses"][status.to_string()];
            if let (Some(media), Some(content)) = (&media, answer["content"].as_object()) {
                assert!(
                    content.contains_key(media),
                    "{method} {path} answered {status} as {media}, which is not described"
                );
            }
            if media.as_deref() == Some("text/event-stream") {
                // The dashboard's live stream does not end: its status and type are checked.
                assert_eq!((method.as_str(), status), ("get", 200), "{path}");
                checked += 1;
                continue;
            }
            let body = r.bytes().await.unwrap();
            // axum's own answers for a path or method it does not route are 404/405 with an
            // empty body; every handler's errors are JSON.
            assert_ne!(status, 405, "{method} {path} is not routed (405)");
            assert!(
                !(status == 404 && body.is_empty()),
                "{method} {path} is not routed (bare 404)"
            );
            let described = item[method]["responses"].get(status.to_string()).is_some();
            assert!(described, "{method} {path} answered {status}, which is not described");
            if is_json && status >= 400 {
                let e: Value = serde_json::from_slice(&body).unwrap();
                assert!(e["code"].is_string() && e["code"] == e["error"], "{method} {path}: {e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 39, "{checked} operations");
    // A dashboard file that is not there is the shared error shape too.
    let r = client.get(format!("{market}/dashboard/nothing.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!((&e["code"], &e["error"]), (&"not_found".into(), &"not_found".into()), "{e}");

    // The MCP endpoint is guarded; a path nobody routed is axum's bare 404, not the guard's
    // 401 (the guard once wrapped the whole router's fallback).
    let r = client.post(format!("{market}/mcp")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client.get(format!("{market}/v1/not-a-route")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.bytes().await.unwrap().is_empty());
}
