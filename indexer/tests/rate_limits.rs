//! The indexer behind an HTTP JSON-RPC proxy that behaves like a public provider: it answers
//! every fifth request with HTTP 429 (rate limited) and refuses `eth_getLogs` over more than
//! 5 blocks with the "block range too large" error providers use (code -32005). The index must
//! end up exactly as a direct reindex, with the range shrunk to what the provider allows.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use common::*;
use reef_indexer::{Indexer, RpcSource};
use serde_json::{Value, json};

const MAX_LOG_RANGE: u64 = 5;

#[derive(Default)]
struct Served {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    range_refused: AtomicU64,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: alloy::transports::http::reqwest::Client,
    served: Arc<Served>,
}

fn hex_block(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

async fn relay(State(p): State<Proxy>, Json(body): Json<Value>) -> Response {
    let n = p.served.requests.fetch_add(1, Ordering::Relaxed);
    if n % 5 == 4 {
        p.served.rate_limited.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
    }
    if body["method"] == "eth_getLogs" {
        let f = &body["params"][0];
        if let (Some(from), Some(to)) = (hex_block(&f["fromBlock"]), hex_block(&f["toBlock"]))
            && to.saturating_sub(from) + 1 > MAX_LOG_RANGE
        {
            p.served.range_refused.fetch_add(1, Ordering::Relaxed);
            let err = json!({"code": -32005, "message": format!("block range too large: at most {MAX_LOG_RANGE} blocks per eth_getLogs")});
            return Json(json!({"jsonrpc": "2.0", "id": body["id"], "error": err})).into_response();
        }
    }
    match p.http.post(&p.upstream).json(&body).send().await {
        Ok(r) => match r.json::<Value>().await {
            Ok(v) => Json(v).into_response(),
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        },
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn start_proxy(upstream: &str) -> (String, Arc<Served>) {
    let served = Arc::new(Served::default());
    let state = Proxy {
        upstream: upstream.to_string(),
        http: alloy::transports::http::reqwest::Client::new(),
        served: served.clone(),
    };
    let app = Router::new().route("/", post(relay)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), served)
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_and_capped_log_ranges_back_off_and_split() {
    let env = setup().await;
    for _ in 0..3 {
        env.activity().await;
    }
    env.mine(20).await;
    let (url, served) = start_proxy(&env.anvil.rpc_url).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let mut cfg = env.config();
    cfg.reorg_window = 4; // mostly backfill by log ranges
    cfg.initial_range = 1_000;
    cfg.backoff = std::time::Duration::from_millis(5);
    let mut ix = Indexer::new(RpcSource::new(&url).unwrap(), store.clone(), cfg).await.unwrap();
    ix.sync_once().await.unwrap();
    assert_eq!(snapshot(&store).await, fresh_snapshot(&env).await);
    let rate_limited = served.rate_limited.load(Ordering::Relaxed);
    let refused = served.range_refused.load(Ordering::Relaxed);
    assert!(rate_limited > 0, "the proxy rate-limited some requests");
    assert!(refused > 0, "the proxy refused wide log ranges");
    assert!(ix.range() <= MAX_LOG_RANGE, "the range shrank to the provider's cap: {}", ix.range());
    eprintln!(
        "{} requests through the proxy: {rate_limited} answered 429, {refused} log ranges refused; range now {}",
        served.requests.load(Ordering::Relaxed),
        ix.range()
    );
    store.close().await;
    db.drop_db().await;
}
