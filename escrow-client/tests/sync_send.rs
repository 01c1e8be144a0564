//! The synchronous send (`eth_sendRawTransactionSync`, EIP-7966) against a real anvil: its
//! answer is the receipt (no receipt is polled for), concurrent sends of one client leave the
//! send lock before the node has them and still take consecutive nonces, and an RPC that does
//! not serve the method is asked once, then sent to the usual way; a node that took a send
//! but stopped waiting for it without naming the hash is followed by the hash. One test per process: the
//! RPC counts are the process's.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use alloy::{primitives::U256, providers::Provider};
use axum::{Json, Router, extract::State, routing::post};
use common::*;
use escrow_client::{ClientOptions, ReefClient, devnet::dev_signer, rpc_metrics};
use serde_json::{Value, json};

/// Calls of `method` so far in this process.
fn calls(method: &str) -> u64 {
    rpc_metrics::snapshot().into_iter().find(|(m, _, _)| m == method).map_or(0, |(_, c, _)| c)
}

/// What a [`proxy`] answers to `eth_sendRawTransactionSync`.
#[derive(Clone, Copy)]
enum SyncAnswer {
    /// As a node without EIP-7966: no such method (nothing is sent).
    Unserved,
    /// As anvil when the transaction is not mined in the time it waits: the transaction is
    /// passed on to the node's pool, and the answer is an error that does not name its hash.
    TimedOut,
}

/// A JSON-RPC proxy to `upstream` that answers `eth_sendRawTransactionSync` as `answer` says;
/// counts how often it was asked for it.
async fn proxy(upstream: String, answer: SyncAnswer) -> (String, Arc<AtomicU64>) {
    type Relay = (String, alloy::transports::http::reqwest::Client, Arc<AtomicU64>, SyncAnswer);
    let asked = Arc::new(AtomicU64::new(0));
    let http = alloy::transports::http::reqwest::Client::new();
    let state = (upstream, http, asked.clone(), answer);
    async fn relay(
        State((upstream, http, asked, answer)): State<Relay>,
        Json(mut body): Json<Value>,
    ) -> Json<Value> {
        if body["method"] == "eth_sendRawTransactionSync" {
            asked.fetch_add(1, Ordering::Relaxed);
            let err = match answer {
                SyncAnswer::Unserved => {
                    json!({"code": -32601, "message": "the method eth_sendRawTransactionSync does not exist/is not available"})
                }
                SyncAnswer::TimedOut => {
                    body["method"] = json!("eth_sendRawTransaction");
                    let sent = forward(&http, &upstream, &body).await;
                    assert!(sent["result"].is_string(), "the node took it: {sent}");
                    json!({"code": -32603, "message": "Transaction confirmation timeout"})
                }
            };
            return Json(json!({"jsonrpc": "2.0", "id": body["id"], "error": err}));
        }
        Json(forward(&http, &upstream, &body).await)
    }
    async fn forward(
        http: &alloy::transports::http::reqwest::Client,
        upstream: &str,
        body: &Value,
    ) -> Value {
        http.post(upstream).json(body).send().await.unwrap().json().await.unwrap()
    }
    let app = Router::new().route("/", post(relay)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), asked)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_synchronous_send_needs_no_receipt_poll_and_falls_back_where_unserved() {
    let env = setup().await;
    let to = env.stranger.address();
    let c = ReefClient::connect(&env.anvil.rpc_url, dev_signer(6), env.dep.clone(), opts())
        .await
        .unwrap();

    // 1. The answer is the receipt.
    let (polls, syncs) = (calls("eth_getTransactionReceipt"), calls("eth_sendRawTransactionSync"));
    let out = c.send_eth(to, U256::from(1)).await.unwrap();
    assert!(out.gas_used > 0 && out.block > 0, "{out:?}");
    assert_eq!(calls("eth_sendRawTransactionSync"), syncs + 1);
    assert_eq!(calls("eth_getTransactionReceipt"), polls, "no receipt was polled for");

    // 2. Ten sends at once from one client: each leaves the lock before the node has it, and
    //    the next skips its nonce; all are mined, at consecutive nonces, without a failed send.
    let start = c.provider().get_transaction_count(c.address()).await.unwrap();
    let sends = (0..10u64).map(|i| {
        let c = c.clone();
        async move { c.send_eth(to, U256::from(10 + i)).await }
    });
    let outs = futures::future::join_all(sends).await;
    for o in &outs {
        assert!(o.is_ok(), "{o:?}");
    }
    let end = c.provider().get_transaction_count(c.address()).await.unwrap();
    assert_eq!(end, start + 10, "ten nonces, no gap, none twice");
    let mut nonces = Vec::new();
    for o in outs {
        let hash = o.unwrap().hash;
        let tx = c.provider().get_transaction_by_hash(hash).await.unwrap().unwrap();
        nonces.push(alloy::consensus::Transaction::nonce(&tx));
    }
    nonces.sort_unstable();
    assert_eq!(nonces, (start..end).collect::<Vec<_>>());

    // 3. A node without the method: asked once, then sends are polled for as before.
    let (url, asked) = proxy(env.anvil.rpc_url.clone(), SyncAnswer::Unserved).await;
    let plain = ReefClient::connect(&url, dev_signer(7), env.dep.clone(), opts()).await.unwrap();
    let polls = calls("eth_getTransactionReceipt");
    plain.send_eth(to, U256::from(2)).await.expect("sent the usual way");
    plain.send_eth(to, U256::from(3)).await.expect("and again");
    assert_eq!(asked.load(Ordering::Relaxed), 1, "asked for the method once");
    assert!(calls("eth_getTransactionReceipt") >= polls + 2, "receipts polled for");

    // 4. Turned off: never asked.
    let syncs = calls("eth_sendRawTransactionSync");
    let off = ReefClient::connect(
        &env.anvil.rpc_url,
        dev_signer(5),
        env.dep.clone(),
        ClientOptions { sync_send: false, ..opts() },
    )
    .await
    .unwrap();
    off.send_eth(to, U256::from(4)).await.unwrap();
    assert_eq!(calls("eth_sendRawTransactionSync"), syncs);

    // 5. The node took the transaction but stopped waiting for it, without naming its hash
    //    (anvil's "Transaction confirmation timeout"): it is followed by the hash signed here,
    //    and the next send still uses the synchronous method.
    let (url, asked) = proxy(env.anvil.rpc_url.clone(), SyncAnswer::TimedOut).await;
    let slow = ReefClient::connect(&url, dev_signer(8), env.dep.clone(), opts()).await.unwrap();
    let polls = calls("eth_getTransactionReceipt");
    let out = slow.send_eth(to, U256::from(5)).await.expect("followed to its receipt");
    let tx = slow.provider().get_transaction_by_hash(out.hash).await.unwrap().unwrap();
    assert_eq!(alloy::consensus::Transaction::value(&tx), U256::from(5));
    assert!(calls("eth_getTransactionReceipt") > polls, "its receipt was polled for");
    slow.send_eth(to, U256::from(6)).await.expect("and the next one");
    assert_eq!(asked.load(Ordering::Relaxed), 2, "the method is still used");
}
