//! The dashboard in a real browser: anvil, `reef node` (marketplace + embedded indexer), a sort
//! agent, one bounty settled end to end and a second left in its bid window; then
//! `tests/browser/dashboard.mjs` drives Debian's Chromium (Playwright) through every page as a
//! stranger and as the logged-in poster, checks what is shown against the chain and the
//! node's API, sees live updates arrive, runs axe on every page and writes a screenshot of each
//! to `target/dashboard-screenshots/` (ignored by git).
//!
//! Needs `/usr/bin/chromium` (`make browser-deps`) and the repository's node_modules
//! (`playwright-core`, `@axe-core/playwright`): without them the test fails and says so.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{primitives::B256, providers::Provider, transports::http::reqwest};
use escrow_client::devnet::{AnvilOptions, AnvilProcess, dev_signer};
use serde_json::Value;

mod common;

use common::{Kill, reef, repo, wait_with_deadline};

const CHROMIUM: &str = "/usr/bin/chromium";

fn prerequisites() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the dashboard's browser test needs Debian's Chromium (`make browser-deps` installs it)"
    );
    for pkg in ["playwright-core", "@axe-core/playwright"] {
        let dir = repo().join("node_modules").join(pkg);
        assert!(dir.exists(), "{} is missing: run `make deps` (npm ci) first", dir.display());
    }
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "`node` (Node.js 20+) is needed to drive the browser"
    );
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `reef dashboard login --json` as dev account `dev`: (url, token).
fn login(http: &str, dev: usize) -> (String, String) {
    let out = reef()
        .args(["dashboard", "login", "--node", http, "--dev-account", &dev.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dashboard login failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["address"].as_str().unwrap().parse::<alloy::primitives::Address>().unwrap(),
        dev_signer(dev).address()
    );
    (v["url"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_the_market_to_a_stranger_and_the_private_parts_to_the_poster() {
    prerequisites();
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let rpc = anvil.rpc_url.clone();
    let dir = common::temp_dir("dashboard");
    common::deploy_devnet(&rpc, &dir).await;
    let deployments = dir.join("deployments");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _node =
        common::start_node(&dir, &rpc, port, "dash-test", &["--dashboard-live-clients", "6"]);
    let http = format!("http://127.0.0.1:{port}");
    let _agent = common::start_sort_agent(port, &rpc, 1);
    common::wait_agent_online(&http, dev_signer(1).address(), "the sort agent").await;

    // The page itself is served, with its assets, from the binary.
    let page = reqwest::get(format!("{http}/")).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers().get("content-security-policy").cloned();
    assert!(page.text().await.unwrap().contains("/dashboard/app.js"));
    assert!(csp.is_some_and(|c| c.to_str().unwrap().contains("default-src 'self'")));
    let js = reqwest::get(format!("{http}/dashboard/app.js")).await.unwrap();
    assert_eq!(js.status().as_u16(), 200);

    // One bounty settled end to end.
    let out = common::post_sort(&http, &rpc, &deployments)
        .args(["--verify", "hash", "--expect", "[1,3,5,9]"])
        .output()
        .unwrap();
    assert!(out.status.success(), "post failed: {}", String::from_utf8_lossy(&out.stderr));
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["phase"], "settled", "{res}");
    let id = res["id"].as_str().unwrap().to_string();
    let (poster_url, token) = login(&http, 0);
    assert!(poster_url.starts_with(&format!("{http}/#login=")), "{poster_url}");

    // What the chain says: the payout (the escrow's logs, read by `reef agent earnings`), and
    // every transaction the index holds for the bounty with its gas from the receipt.
    let earned = common::earnings(&rpc, &deployments, 1);
    let paid = earned["payouts"][0]["paid"].as_str().unwrap().to_string();
    let index =
        reef_indexer::Store::connect(&format!("sqlite://{}/node.db", dir.display())).await.unwrap();
    let t0 = Instant::now();
    let events = loop {
        let ev = index.events_of_ref(&id).await.unwrap();
        if ev.iter().any(|e| e.kind == "BountyCompleted") {
            break ev;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the index never saw the payout: {ev:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let provider = alloy::providers::ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    let mut tx_gas = serde_json::Map::new();
    for tx in events.iter().map(|e| e.tx_hash).collect::<std::collections::BTreeSet<B256>>() {
        let r = provider.get_transaction_receipt(tx).await.unwrap().expect("a receipt");
        tx_gas.insert(format!("{tx:#x}"), Value::from(r.gas_used));
    }
    // The poster's post + fund + award is one transaction, the provider's submit + attest +
    // payout another.
    assert!(tx_gas.len() >= 2, "the award and the payout transactions at least: {tx_gas:?}");

    // The JSON API's access rules, before the browser: a stranger sees no ranking, input or
    // transcript; the poster (by bearer token here, by cookie in the browser) sees them.
    let url = format!("{http}/v1/dashboard/bounties/{id}");
    let (st, stranger) = get(&url, None).await;
    assert_eq!(st, 200, "{stranger}");
    for k in ["ranking", "input", "conversation"] {
        assert!(stranger[k].is_null(), "a stranger got {k}: {stranger}");
    }
    assert!(stranger["verdict"].get("result").is_none(), "a stranger got the result: {stranger}");
    assert_eq!(
        stranger["summary"]["winner"].as_str().map(str::to_lowercase),
        Some(format!("{:#x}", dev_signer(1).address()))
    );
    let (_, poster) = get(&url, Some(&token)).await;
    assert!(poster["ranking"].as_array().is_some_and(|r| !r.is_empty()), "{poster}");
    assert_eq!(poster["input"], serde_json::json!([5, 3, 9, 1]), "{poster}");
    assert!(poster["conversation"].as_array().is_some_and(|c| !c.is_empty()), "{poster}");
    // The provider sees the input and the transcript (a member), not the ranking (the
    // poster's); an account with no part in the bounty sees none of them.
    let (_, provider) = get(&url, Some(&login(&http, 1).1)).await;
    assert_eq!(provider["input"], serde_json::json!([5, 3, 9, 1]), "{provider}");
    assert!(provider["conversation"].as_array().is_some_and(|c| !c.is_empty()), "{provider}");
    assert!(provider["ranking"].is_null(), "the provider got the ranking: {provider}");
    let (_, other) = get(&url, Some(&login(&http, 3).1)).await;
    assert!(
        other["ranking"].is_null() && other["input"].is_null() && other["conversation"].is_null(),
        "another account got private parts: {other}"
    );
    let work_group = poster["work_group"].as_str().unwrap().to_string();
    let (st, _) = get(&format!("{http}/v1/dashboard/groups/{work_group}"), None).await;
    assert_eq!(st, 401);

    // The browser.
    let shots = repo().join("target/dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let mut js = Command::new("node")
        .arg(repo().join("marketplace-node/tests/browser/dashboard.mjs"))
        .current_dir(repo())
        .env("DASH_URL", &http)
        .env("DASH_BOUNTY", &id)
        .env("DASH_WINNER", format!("{:#x}", dev_signer(1).address()))
        .env("DASH_POSTER", format!("{:#x}", dev_signer(0).address()))
        .env("DASH_TOKEN", &token)
        .env("DASH_PAID", &paid)
        .env("DASH_TX_GAS", Value::Object(tx_gas).to_string())
        .env("DASH_INPUT", "[5,3,9,1]")
        .env("DASH_WORK_GROUP", &work_group)
        .env("DASH_SHOTS", &shots)
        .env("DASH_WALLET", format!("{:#x}", dev_signer(2).address()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = js.stdout.take().unwrap();
    let mut stdin = js.stdin.take().unwrap();
    let mut second_poster: Option<Kill> = None;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        eprintln!("browser: {line}");
        if line == "STEP post-second" {
            // Left in its bid window (10 minutes) while the browser watches.
            let mut cmd = common::post_sort_with_window(&http, &rpc, &deployments, "10m");
            cmd.args(["--verify", "hash", "--expect", "[1,3,5,9]"]);
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            second_poster = Some(Kill(cmd.spawn().unwrap()));
        }
        if let Some(hex) = line.strip_prefix("SIGN ") {
            // The browser's wallet (dev account 2) signs the node's challenge: EIP-191.
            use alloy::signers::SignerSync;
            use std::io::Write;
            let msg = alloy::primitives::hex::decode(hex).expect("hex message");
            let sig = dev_signer(2).sign_message_sync(&msg).unwrap();
            writeln!(stdin, "{}", alloy::primitives::hex::encode_prefixed(sig.as_bytes())).unwrap();
        }
        lines.push(line);
    }
    drop(stdin);
    let out = wait_with_deadline(js, 30);
    drop(second_poster);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && lines.last().is_some_and(|l| l.starts_with("DASHBOARD OK")),
        "the browser test failed:\n{}\n{stderr}",
        lines.join("\n")
    );
    let axe = lines.iter().find_map(|l| l.strip_prefix("AXE ")).expect("axe results");
    let axe: Value = serde_json::from_str(axe).unwrap();
    assert_eq!(axe["serious_or_critical"], serde_json::json!([]), "{axe}");
    for page in [
        "market",
        "bounty-stranger",
        "bounty-bidding",
        "agents",
        "agent",
        "groups-stranger",
        "bounties",
        "bounty-poster",
        "group",
        "groups-member",
    ] {
        assert!(shots.join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
    live_streams_are_bounded(&http).await;
    drop(anvil);
}

/// At most `--dashboard-live-clients` (6 here) live streams are open at once: one more is
/// answered `503 busy`, and a closed one gives its slot back.
async fn live_streams_are_bounded(http: &str) {
    let url = format!("{http}/v1/dashboard/live");
    let client = reqwest::Client::new();
    let mut held = Vec::new();
    // The browser's streams end once the server notices they closed (at the latest at the next
    // keep-alive comment): open streams until the node refuses one.
    let t0 = Instant::now();
    let refused = loop {
        let r = client.get(&url).send().await.unwrap();
        match r.status().as_u16() {
            200 => {
                assert_eq!(
                    r.headers().get("content-type").and_then(|v| v.to_str().ok()),
                    Some("text/event-stream")
                );
                held.push(r);
                assert!(held.len() <= 6, "a 7th live stream was accepted");
            }
            503 => break r.json::<Value>().await.unwrap(),
            other => panic!("live stream answered {other}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never refused a stream");
    };
    assert_eq!(refused["code"], "busy", "{refused}");
    assert_eq!(held.len(), 6, "the browser's streams never gave their slots back");
    drop(held.pop());
    let t0 = Instant::now();
    loop {
        let r = client.get(&url).send().await.unwrap();
        if r.status().as_u16() == 200 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "a closed stream's slot never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
