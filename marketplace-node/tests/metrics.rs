//! `GET /metrics` (issue 20, operability): the Prometheus text exposition of `reef node` is
//! public, parses line by line, and its counters move with real traffic: one bounty posted,
//! bid on, worked, verified and settled on anvil with real processes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use alloy::transports::http::reqwest;
use escrow_client::devnet::{AnvilOptions, AnvilProcess, dev_signer, free_port};
use serde_json::Value;

mod common;

use common::{start_node, start_sort_agent};

/// One scrape: series (`name{labels}` as printed) → value.
type Samples = HashMap<String, f64>;

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

/// Checks `name="value",...` (no escapes needed by this exporter).
fn labels_ok(s: &str) -> bool {
    // `name="value"` pairs separated by commas; a value may hold any character, with `\\`,
    // `\"` and `\n` escaped (the SQL text of `reef_db_statements_total` holds commas).
    let mut rest = s;
    loop {
        let Some((k, v)) = rest.split_once('=') else { return false };
        if !is_name(k) || !v.starts_with('"') {
            return false;
        }
        let mut chars = v[1..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, '\\' | '"' | 'n')) => {}
                    _ => return false,
                },
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                '\n' => return false,
                _ => {}
            }
        }
        let Some(end) = end else { return false };
        match &v[end + 1..] {
            "" => return true,
            more => match more.strip_prefix(',') {
                Some(next) => rest = next,
                None => return false,
            },
        }
    }
}

/// Parses the text format strictly: every sample line is `name{labels} value`, and every
/// family is introduced by `# HELP` then `# TYPE` before its samples, its samples contiguous.
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    let mut finished: HashSet<String> = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(is_name(name), "bad HELP line {line:?}");
            assert!(helped.insert(name.to_string()), "HELP twice for {name}");
            if let Some(prev) = current.take() {
                finished.insert(prev);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad {line:?}"));
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line:?}"
            );
            assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice");
            current = Some(name.to_string());
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("bad {line:?}"));
                assert!(labels_ok(labels), "bad labels in {line:?}");
                name
            }
            None => series,
        };
        assert!(is_name(name), "bad metric name in {line:?}");
        let fam = current.as_deref().unwrap_or_else(|| panic!("{line:?} before any # TYPE"));
        let belongs = name == fam
            || (types[fam] == "histogram"
                && ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s) == Some(fam)));
        assert!(belongs, "{line:?} is not in the family {fam} declared before it");
        assert!(!finished.contains(fam), "family {fam} is not contiguous");
        assert!(samples.insert(series.to_string(), value).is_none(), "{series} twice");
    }
    samples
}

async fn scrape(http: &str) -> Samples {
    let r = reqwest::get(format!("{http}/metrics")).await.unwrap();
    assert!(r.status().is_success(), "GET /metrics: {}", r.status());
    let ct = r.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "content type {ct:?}");
    parse(&r.text().await.unwrap())
}

fn at(s: &Samples, series: &str) -> f64 {
    *s.get(series).unwrap_or_else(|| panic!("no series {series} in {s:?}"))
}

/// Statements timed so far, all kinds together.
fn statements(s: &Samples) -> f64 {
    s.iter()
        .filter(|(k, _)| {
            k.starts_with("reef_db_statement_seconds_count{")
                || *k == "reef_db_statement_seconds_count"
        })
        .map(|(_, v)| v)
        .sum()
}

/// Polls until the indexer-lag gauge is present (the work loop has seen the head once).
async fn scrape_with_lag(http: &str) -> Samples {
    let t0 = Instant::now();
    loop {
        let s = scrape(http).await;
        if s.contains_key("reef_indexer_lag_blocks") {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no reef_indexer_lag_blocks: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mines `n` empty blocks on anvil.
async fn mine(rpc: &str, n: u64) {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": [format!("{n:#x}")]});
    let r = reqwest::Client::new().post(rpc).json(&body).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v.get("error").is_none(), "anvil_mine: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_public_parse_and_move_with_a_settled_bounty() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("metrics");
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let _node = start_node(&dir, &anvil.rpc_url, port, "metrics-test", &[]);

    // Before: no token needed; nothing settled yet.
    let before = scrape_with_lag(&http).await;
    assert!(at(&before, "reef_indexer_lag_blocks") >= 0.0);
    assert_eq!(at(&before, "reef_bounties{phase=\"settled\"}"), 0.0);
    assert_eq!(at(&before, "reef_settlements_total"), 0.0);

    let _agent = start_sort_agent(port, &anvil.rpc_url, 1);
    common::wait_agent_online(&http, dev_signer(1).address(), "the sort agent").await;
    let during = scrape(&http).await;
    assert!(at(&during, "reef_ws_connections_open") >= 1.0, "{during:?}");

    common::settle_sort(&http, &anvil.rpc_url, &dir.join("deployments"), "3s");

    // After: poll (the poster may see the phase a moment before the scrape does).
    let t0 = Instant::now();
    let after = loop {
        let s = scrape(&http).await;
        if at(&s, "reef_bounties{phase=\"settled\"}") == 1.0
            && at(&s, "reef_settlements_total") >= 1.0
        {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never counted the settlement: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let grew = |series: &str| {
        assert!(
            at(&after, series) > at(&before, series),
            "{series} did not grow: {} -> {}",
            at(&before, series),
            at(&after, series)
        );
    };
    grew("reef_ws_frames_received_total");
    grew("reef_ws_frames_sent_total");
    grew("reef_messages_delivered_total");
    grew("reef_commit_batch_size_count");
    grew("reef_commit_batch_size_sum");
    grew("reef_commit_seconds_sum");
    // One commit time per batch.
    assert_eq!(at(&after, "reef_commit_seconds_count"), at(&after, "reef_commit_batch_size_count"));
    // Per send: each send of a batch waited for its batch's whole commit, so the sum over the
    // sends is at least the sum over the batches (to the microsecond each is counted in).
    let commit_wait = "reef_send_wait_seconds_total{phase=\"commit\"}";
    grew(commit_wait);
    assert!(
        at(&after, commit_wait)
            >= at(&after, "reef_commit_seconds_sum")
                - 1e-6 * at(&after, "reef_commit_seconds_count"),
        "{after:?}"
    );
    assert!(at(&after, "reef_send_wait_seconds_total{phase=\"queue\"}") >= 0.0, "{after:?}");
    assert_eq!(
        at(&after, "reef_commit_seconds_bucket{le=\"+Inf\"}"),
        at(&after, "reef_commit_seconds_count")
    );
    assert!(at(&after, "reef_ws_connections_open") >= 1.0, "{after:?}");
    assert!(at(&after, "reef_ws_connections_total") >= 1.0, "{after:?}");
    assert!(at(&after, "reef_bids_total{outcome=\"accepted\"}") >= 1.0, "{after:?}");
    assert!(at(&after, "reef_verdicts_total{outcome=\"accept\"}") >= 1.0, "{after:?}");
    assert_eq!(at(&after, "reef_verdicts_total{outcome=\"reject\"}"), 0.0);
    assert_eq!(at(&after, "reef_bounties{phase=\"bidding\"}"), 0.0);
    assert_eq!(
        at(&after, "reef_commit_batch_size_bucket{le=\"+Inf\"}"),
        at(&after, "reef_commit_batch_size_count")
    );
    assert!(at(&after, "reef_send_queue_depth") >= 0.0);
    // Statement latency: the bounty's life ran SQL statements, every kind's histogram is
    // cumulative up to its count.
    assert!(
        statements(&after) > statements(&before),
        "no SQL statement timed: {} -> {}",
        statements(&before),
        statements(&after)
    );
    for kind in ["select", "insert", "update", "delete", "transaction", "other"] {
        let series = |sfx: &str| {
            format!(
                "reef_db_statement_seconds_{sfx}{{statement=\"{kind}\"{}}}",
                if sfx == "bucket" { ",le=\"+Inf\"" } else { "" }
            )
        };
        assert_eq!(at(&after, &series("bucket")), at(&after, &series("count")), "{kind}");
    }
    assert!(at(&after, "reef_db_statement_seconds_count{statement=\"select\"}") >= 1.0);
    assert!(at(&after, "reef_db_statement_seconds_count{statement=\"insert\"}") >= 1.0);
    // Statements by text: the settled bounty's row was inserted and its bid was written by
    // the bid writer (a batch of fewer than 4 bids as single-row upserts); by text they add up
    // to the statements timed by kind.
    let by_text = |s: &Samples, prefix: &str| {
        common::statements_by_text(s.iter().map(|(k, v)| (k.as_str(), *v)), prefix)
    };
    assert!(by_text(&after, "INSERT INTO market_bounties ") >= 1.0);
    assert!(
        by_text(
            &after,
            "INSERT INTO market_bids (bounty_id, bidder, bid, eta_secs, received_at) SELECT"
        ) >= 1.0
    );
    assert_eq!(by_text(&after, ""), statements(&after));
    // Every write on a settled bounty's path is one statement (its moves, ranking, groups and
    // messages), so it need not begin a transaction: the counter is exported and never goes
    // back.
    assert!(at(&after, "reef_db_transactions_total") >= at(&before, "reef_db_transactions_total"));
    // Indexer lag: the chain moves on by 50 blocks; the embedded indexer catches up and the
    // gauge comes back to 0.
    mine(&anvil.rpc_url, 50).await;
    let head_reads = |s: &Samples| at(s, "reef_rpc_calls_total{method=\"eth_getBlockByNumber\"}");
    let mined_at = head_reads(&scrape(&http).await);
    let t0 = Instant::now();
    let mut max_lag = 0.0f64;
    loop {
        let s = scrape_with_lag(&http).await;
        let lag = at(&s, "reef_indexer_lag_blocks");
        assert!(lag >= 0.0, "{s:?}");
        max_lag = max_lag.max(lag);
        // Caught up with a head read after the mining (two passes: one may have been under way).
        if lag == 0.0 && head_reads(&s) >= mined_at + 2.0 {
            eprintln!("indexer lag after mining 50 blocks: at most {max_lag} blocks seen");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the indexer never caught up: lag {lag}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The escrow client's JSON-RPC calls, by method: the node read the chain to follow the
    // bounty (block number, logs or calls) and more than before the post.
    let rpc = |s: &Samples| -> f64 {
        s.iter()
            .filter(|(k, _)| k.starts_with("reef_rpc_calls_total{method="))
            .map(|(_, v)| v)
            .sum()
    };
    assert!(rpc(&after) > rpc(&before), "rpc calls did not grow: {after:?}");
    assert!(
        after.keys().any(|k| k.starts_with("reef_rpc_calls_total{method=\"eth_")),
        "no eth_ method counted: {after:?}"
    );
}
