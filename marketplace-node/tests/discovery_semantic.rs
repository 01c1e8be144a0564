//! Semantic discovery against real `reef node` processes: with the all-MiniLM-L6-v2 model
//! from `make model` a query sharing no keyword with the right card finds it first while BM25
//! alone does not; every hit explains its score; agents may bring their own vector (checked);
//! without the model the node says it fell back and still ranks by BM25.

#[path = "ioa_support.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};
use support::*;

/// The model folder `make model` fills; the tests need it and say how to get it.
fn model_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "the embedding model is missing from {}: run `make model`",
        dir.display()
    );
    dir
}

/// A node with the model (`on`) or with `--embedding-model off`.
fn node(with_model: bool) -> NodeProc {
    let model = model_dir();
    let arg = if with_model { model.to_str().unwrap().to_string() } else { "off".into() };
    spawn_node(&sqlite_url(), &["--embedding-model", &arg])
}

/// Registers `card` for a fresh agent over REST; returns (status, body, address).
fn register(addr: &str, card: &Value) -> (u16, Value, String) {
    let key = PrivateKeySigner::random();
    let token = rest_login(addr, &key);
    let (st, v) = http(addr, "POST", "/v1/agents", Some(&token), Some(card));
    (st, v, format!("{:#x}", key.address()))
}

const PLUMBER: &str = "Plumber Dispatch";

/// Cards where the keywords of the query below point at the wrong agents.
fn cards() -> Vec<Value> {
    vec![
        json!({"name": PLUMBER, "description": "Repairs leaking pipes, faucets, toilets and water heaters; same-day call-outs.", "skills": ["plumbing", "repairs"]}),
        json!({"name": "Kitchen Designer", "description": "Plans kitchen layouts, cabinets and countertops for renovations.", "skills": ["interior-design"]}),
        json!({"name": "Floor Fitter", "description": "Lays wooden floor boards, tiles and carpets.", "skills": ["flooring"]}),
        json!({"name": "LinguaBridge", "description": "Translates French documents into English.", "skills": ["translation"]}),
        json!({"name": "Weather Forecaster", "description": "Hourly forecasts of rain, wind and temperature.", "skills": ["weather"]}),
    ]
}

const QUERY: &str = "a pipe burst in my kitchen";

fn discover(addr: &str, query: &str) -> Vec<Value> {
    let (st, v) =
        http(addr, "POST", "/v1/discover", None, Some(&json!({"query": query, "limit": 10})));
    assert_eq!(st, 200, "{v}");
    v["agents"].as_array().unwrap().clone()
}

fn health(addr: &str) -> Value {
    let (st, v) = http(addr, "GET", "/v1/health", None, None);
    assert_eq!(st, 200, "{v}");
    v
}

/// Every hit's parts lie in [0, 1] and their weighted sum is its score.
fn check_parts(hits: &[Value], weights: &Value, with_model: bool) {
    assert!(!hits.is_empty());
    for h in hits {
        let r = &h["ranking"];
        let part = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {h}"));
        let (bm25, rep, score) = (part("bm25"), part("reputation"), part("score"));
        let semantic = if with_model { part("semantic") } else { 0.0 };
        if !with_model {
            assert!(r["semantic"].is_null(), "{h}");
        }
        for p in [bm25, semantic, rep] {
            assert!((0.0..=1.0).contains(&p), "{h}");
        }
        let w = |k: &str| weights[k].as_f64().unwrap();
        let sum = w("bm25") * bm25 + w("semantic") * semantic + w("reputation") * rep;
        assert!((sum - score).abs() < 1e-4, "parts {sum} vs score {score}: {h}");
        assert!((h["score"].as_f64().unwrap() - score).abs() < 1e-6, "{h}");
        assert!(h["card"].get("embedding").is_none(), "hits do not echo vectors: {h}");
    }
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
}

#[test]
fn a_query_without_the_cards_keywords_finds_the_right_agent_only_with_the_model() {
    let hybrid = node(true);
    let keyword = node(false);
    for n in [&hybrid, &keyword] {
        for c in cards() {
            let (st, v, _) = register(&n.addr, &c);
            assert_eq!(st, 200, "{v}");
        }
    }

    let h = health(&hybrid.addr);
    assert_eq!(h["discovery"]["ranking"], "hybrid", "{h}");
    assert_eq!(h["discovery"]["model"], "all-MiniLM-L6-v2", "{h}");
    let hits = discover(&hybrid.addr, QUERY);
    assert_eq!(hits[0]["card"]["name"], PLUMBER, "hybrid ranking: {hits:#?}");
    check_parts(&hits, &h["discovery"]["weights"], true);
    // The plumber shares no keyword with the query: its rank is the model's doing.
    let plumber = &hits[0]["ranking"];
    assert_eq!(plumber["bm25"].as_f64(), Some(0.0), "{plumber}");
    assert!(plumber["semantic"].as_f64().unwrap() > 0.2, "{plumber}");
    // Unrelated agents are not hits at all.
    assert!(hits.iter().all(|a| a["card"]["name"] != "LinguaBridge"), "{hits:#?}");

    // BM25 alone follows the word "kitchen" to the wrong agent.
    let h = health(&keyword.addr);
    assert_eq!(h["discovery"]["ranking"], "bm25", "{h}");
    let hits = discover(&keyword.addr, QUERY);
    assert_ne!(hits[0]["card"]["name"], PLUMBER, "BM25 ranking: {hits:#?}");
    assert!(hits.iter().all(|a| a["card"]["name"] != PLUMBER), "{hits:#?}");
    check_parts(&hits, &h["discovery"]["weights"], false);
}

#[test]
fn agents_may_bring_their_own_vector_and_bad_ones_are_refused() {
    let n = node(true);
    for c in cards() {
        register(&n.addr, &c);
    }
    // A vector the card's words do not give: the model's own embedding of another sentence.
    let model = reef_semantic::Embedder::load(&model_dir()).expect("run `make model`");
    let vector = model.embed_one("beekeeping: hive inspections and honey harvest").unwrap();
    let own = json!({"name": "Agent 7", "description": "general services", "embedding": vector});
    let (st, v, address) = register(&n.addr, &own);
    assert_eq!(st, 200, "{v}");
    // Lookups return the card as registered, vector included.
    assert_eq!(v["card"]["embedding"].as_array().map(Vec::len), Some(384), "{v}");
    let hits = discover(&n.addr, "someone to look after my bees and collect the honey");
    assert_eq!(hits[0]["address"].as_str().unwrap().to_lowercase(), address, "{hits:#?}");
    assert!(hits[0]["ranking"]["semantic"].as_f64().unwrap() > 0.3, "{hits:#?}");

    let refused = |card: Value, want: &str| {
        let (st, v, _) = register(&n.addr, &card);
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["code"], "invalid_frame", "{v}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(want), "{want:?} not in {msg:?}");
    };
    refused(json!({"name": "short", "embedding": [0.1, 0.2, 0.3]}), "must have 384 numbers");
    let mut huge = vec![json!(0.01); 384];
    huge[5] = json!(1e39); // beyond f32
    refused(json!({"name": "inf", "embedding": huge}), "embedding[5]: number out of range");
    refused(json!({"name": "zero", "embedding": vec![0.0; 384]}), "must not be all zeros");
    // JSON has no NaN: a body carrying one does not parse.
    let key = PrivateKeySigner::random();
    let token = rest_login(&n.addr, &key);
    let nan = format!("{{\"name\":\"nan\",\"embedding\":[NaN{}]}}", ",0.1".repeat(383));
    let (st, v) = raw_post(&n.addr, "/v1/agents", &token, &nan);
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("malformed request body"), "{v}");
    // Nothing refused was stored.
    let (st, _) = http(&n.addr, "GET", &format!("/v1/agents/{:#x}", key.address()), None, None);
    assert_eq!(st, 404);
}

/// POST a raw (possibly non-JSON) body.
fn raw_post(addr: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let payload = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

#[test]
fn without_the_model_the_node_says_it_fell_back_and_discovery_still_works() {
    let dir = temp_dir();
    let log = dir.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_reef"))
        .args(["node", "--listen", "127.0.0.1:0", "--json", "--embedding-model", "off"])
        .args(["--database-url", &format!("sqlite://{}/node.db", dir.display())])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = serde_json::from_str::<Value>(&line).expect("node started")["listen"]
        .as_str()
        .unwrap()
        .to_string();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("falling back to BM25") && said.contains("--embedding-model off"),
        "{said}"
    );
    let h = health(&addr);
    assert_eq!(h["discovery"]["ranking"], "bm25", "{h}");
    assert!(h["discovery"]["model"].is_null(), "{h}");
    assert_eq!(h["discovery"]["weights"]["semantic"], 0.0, "{h}");
    for c in cards() {
        register(&addr, &c);
    }
    let hits = discover(&addr, "leaking faucets");
    assert_eq!(hits[0]["card"]["name"], PLUMBER, "{hits:#?}");
    assert_eq!(hits[0]["ranking"]["bm25"], 1.0, "{hits:#?}");
    check_parts(&hits, &h["discovery"]["weights"], false);
    // Own vectors are still checked (and kept for when a model runs).
    let (st, v, _) = register(&addr, &json!({"name": "bad", "embedding": [1.0]}));
    assert_eq!(st, 400, "{v}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_model_folder_that_cannot_load_stops_the_node_with_the_fix() {
    let out = Command::new(env!("CARGO_BIN_EXE_reef"))
        .args(["node", "--listen", "127.0.0.1:0", "--json"])
        .args(["--database-url", &sqlite_url(), "--embedding-model", "/nonexistent/minilm"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/minilm") && err.contains("make model"), "{err}");
}
