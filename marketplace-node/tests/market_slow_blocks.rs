//! The marketplace loop on chains that mine on a clock instead of on arrival, as every public
//! chain does: anvil switched to interval mining (`evm_setIntervalMining`) after the devnet is
//! deployed. Blocks every 2 s: a node killed (-9) and restarted between the award and the
//! payout, a take-over from a winner that misses its ETA, and a contest; and blocks every 12 s
//! (Ethereum's slot time). Each run prints the time from the post
//! to every logged phase, so the note can quote them.

use std::time::{Duration, Instant};

use alloy::providers::Provider;

use escrow_client::devnet::{AnvilOptions, AnvilProcess, free_port};
use serde_json::Value;

mod common;

use common::{start_node, start_sort_agent, wait_with_deadline};

/// A devnet on anvil that, once deployed, mines a block every `secs` seconds and never on
/// arrival.
async fn slow_devnet(secs: u64) -> (AnvilProcess, std::path::PathBuf) {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir(&format!("slow{secs}"));
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let chain = anvil_rpc(&anvil.rpc_url);
    let _: Value = chain.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();
    let _: Value = chain.raw_request("evm_setIntervalMining".into(), (secs,)).await.unwrap();
    (anvil, dir)
}

/// A plain JSON-RPC connection to anvil, for its test methods (`evm_*`).
fn anvil_rpc(url: &str) -> impl alloy::providers::Provider + use<> {
    alloy::providers::ProviderBuilder::new().connect_http(url.parse().unwrap())
}

/// Seconds from the post to the first time each event was logged, in log order.
fn phase_times(view: &Value) -> Vec<(String, f64)> {
    let events = view["events"].as_array().cloned().unwrap_or_default();
    let t0 = events.first().and_then(|e| e["at_ms"].as_i64()).unwrap_or(0);
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .filter_map(|e| {
            let name = e["event"].as_str()?.to_string();
            let at = e["at_ms"].as_i64()?;
            seen.insert(name.clone()).then(|| (name, (at - t0) as f64 / 1000.0))
        })
        .collect()
}

fn print_phases(label: &str, view: &Value, total: Duration) {
    let line: Vec<String> =
        phase_times(view).iter().map(|(e, s)| format!("{e} +{s:.1}s")).collect();
    eprintln!(
        "[{label}] {} | poster saw it settled after {:.1}s",
        line.join(", "),
        total.as_secs_f64()
    );
}

fn post(http: &str, rpc: &str, dir: &std::path::Path) -> std::process::Child {
    common::spawn_captured(
        common::post_sort_with_window(http, rpc, &dir.join("deployments"), "4s").args([
            "--verify",
            "hash",
            "--expect",
            "[1,3,5,9]",
        ]),
    )
}

fn assert_paid(out: &std::process::Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the bounty did not settle:\n{stderr}");
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["phase"], "settled", "{res}");
    assert_eq!(res["status"], "completed", "{res}");
    res
}

#[tokio::test(flavor = "multi_thread")]
async fn two_second_blocks_with_a_node_crash_between_award_and_payout() {
    let (anvil, dir) = slow_devnet(2).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let mut node = start_node(&dir, &anvil.rpc_url, port, "slow2", &[]);
    let _agent = start_sort_agent(port, &anvil.rpc_url, 1);
    common::wait_agent_online(&http, escrow_client::devnet::dev_signer(1).address(), "the agent")
        .await;

    let t0 = Instant::now();
    let poster = post(&http, &anvil.rpc_url, &dir);
    let id = common::wait_announced(&http).await;
    // Crash once the award is on its way (the work group exists), restart on the same database.
    loop {
        let v = common::get_json(format!("{http}/v1/market/bounties/{id}")).await;
        if v["work_group"].is_string() || v["phase"] == "settled" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "never awarded: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.0.kill().unwrap();
    node.0.wait().unwrap();
    node = start_node(&dir, &anvil.rpc_url, port, "slow2", &[]);
    let out = wait_with_deadline(poster, 300);
    let total = t0.elapsed();
    assert_paid(&out);
    let view = common::get_json(format!("{http}/v1/market/bounties/{id}")).await;
    print_phases("2 s blocks, node killed after the award", &view, total);
    let paid = common::earnings(&anvil.rpc_url, &dir.join("deployments"), 1);
    assert_eq!(paid["payouts"].as_array().map(Vec::len), Some(1), "paid once: {paid}");
    drop(node);
}

#[tokio::test(flavor = "multi_thread")]
async fn twelve_second_blocks_settle_a_bounty() {
    let (anvil, dir) = slow_devnet(12).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let _node = start_node(&dir, &anvil.rpc_url, port, "slow12", &[]);
    let _agent = start_sort_agent(port, &anvil.rpc_url, 1);
    common::wait_agent_online(&http, escrow_client::devnet::dev_signer(1).address(), "the agent")
        .await;
    let t0 = Instant::now();
    let poster = post(&http, &anvil.rpc_url, &dir);
    let out = wait_with_deadline(poster, 420);
    let total = t0.elapsed();
    let res = assert_paid(&out);
    let id = res["id"].as_str().unwrap();
    let view = common::get_json(format!("{http}/v1/market/bounties/{id}")).await;
    print_phases("12 s blocks", &view, total);
}

/// `reef agent run` of `brain` (an examples/agents script) with dev account `dev`, bidding
/// `price` with delivery promised within `eta`.
fn agent(port: u16, rpc: &str, dev: usize, brain: &str, price: &str, eta: &str) -> common::Kill {
    let brain = format!("python3 {}", common::repo().join("examples/agents").join(brain).display());
    common::Kill(
        common::reef()
            .args(["agent", "run", "--node", &format!("ws://127.0.0.1:{port}/v1/ws")])
            .args(["--key", escrow_client::devnet::DEV_KEYS[dev], "--skills", "sort"])
            .args(["--rpc-url", rpc, "--bid-price", price, "--eta", eta, "--exec", &brain])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn verifier_flag() -> String {
    format!("sorted={}", common::repo().join("examples/verifiers/sorted.py").display())
}

/// A winner that never delivers loses the job to the runner-up when its signed ETA passes on a
/// chain whose clock moves in 2 s steps.
#[tokio::test(flavor = "multi_thread")]
async fn two_second_blocks_take_over_from_a_winner_that_misses_its_eta() {
    let (anvil, dir) = slow_devnet(2).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let v = verifier_flag();
    let _node = start_node(&dir, &anvil.rpc_url, port, "slow2-takeover", &["--verifier", &v]);
    let _slacker = agent(port, &anvil.rpc_url, 1, "sort_stalled.py", "2", "3s");
    let _honest = agent(port, &anvil.rpc_url, 2, "sort.py", "2", "30s");
    for d in [1, 2] {
        let a = escrow_client::devnet::dev_signer(d).address();
        common::wait_agent_online(&http, a, "an agent").await;
    }
    let t0 = Instant::now();
    let poster = common::spawn_captured(
        common::post_sort_with_window(&http, &anvil.rpc_url, &dir.join("deployments"), "4s")
            .args(["--verify", "command", "--verifier", "sorted"]),
    );
    let out = wait_with_deadline(poster, 300);
    let total = t0.elapsed();
    let res = assert_paid(&out);
    let honest = escrow_client::devnet::dev_signer(2).address().to_string();
    assert!(res["winner"].as_str().unwrap().eq_ignore_ascii_case(&honest), "{res}");
    let id = res["id"].as_str().unwrap();
    let view = common::get_json(format!("{http}/v1/market/bounties/{id}")).await;
    let events: Vec<&str> =
        view["events"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    for want in ["eta_missed", "taken_over", "reassigned"] {
        assert!(events.contains(&want), "{want} missing from {events:?}");
    }
    print_phases("2 s blocks, take-over", &view, total);
    let deployments = dir.join("deployments");
    assert!(
        common::earnings(&anvil.rpc_url, &deployments, 1)["payouts"].as_array().unwrap().is_empty()
    );
    assert_eq!(
        common::earnings(&anvil.rpc_url, &deployments, 2)["payouts"].as_array().map(Vec::len),
        Some(1)
    );
}

/// A contest on 2 s blocks: entries are verified, the deadline passes on-chain, the verified
/// entries are paid by the poster's split and the cheater is not.
#[tokio::test(flavor = "multi_thread")]
async fn two_second_blocks_contest_pays_the_verified_entries() {
    let (anvil, dir) = slow_devnet(2).await;
    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let v = verifier_flag();
    let _node = start_node(&dir, &anvil.rpc_url, port, "slow2-contest", &["--verifier", &v]);
    let _a = agent(port, &anvil.rpc_url, 1, "sort.py", "1", "30s");
    let _b = agent(port, &anvil.rpc_url, 2, "sort.py", "1", "30s");
    let _c = agent(port, &anvil.rpc_url, 3, "sort_dishonest.py", "1", "30s");
    for d in [1, 2, 3] {
        let a = escrow_client::devnet::dev_signer(d).address();
        common::wait_agent_online(&http, a, "an agent").await;
    }
    let t0 = Instant::now();
    let poster = common::spawn_captured(
        common::reef()
            .args(["bounty", "post", "Sort these numbers ascending (contest)"])
            .args(["--reward", "6", "--token", "test", "--node", &http, "--skills", "sort"])
            .args(["--deadline", "2m", "--mode", "contest", "--winners", "2", "--split", "75,25"])
            .args(["--input", "[5,3,9,1]", "--verify", "command", "--verifier", "sorted"])
            .args(["--approve", "--dev-account", "0", "--json", "--rpc-url", &anvil.rpc_url])
            .arg("--deployments")
            .arg(dir.join("deployments")),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let id = loop {
        let list = common::get_json(format!("{http}/v1/market/bounties")).await;
        if let Some(id) = list[0]["id"].as_str() {
            let v = common::get_json(format!("{http}/v1/market/bounties/{id}")).await;
            let entries = v["events"]
                .as_array()
                .map(|e| e.iter().filter(|x| x["event"] == "entry").count())
                .unwrap_or(0);
            if entries == 3 {
                break id.to_string();
            }
        }
        assert!(Instant::now() < deadline, "entries never arrived: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Let the deadline pass on-chain: the next 2 s block carries the jump.
    let _: Value =
        anvil_rpc(&anvil.rpc_url).raw_request("evm_increaseTime".into(), (180u64,)).await.unwrap();
    let out = wait_with_deadline(poster, 300);
    let total = t0.elapsed();
    let res = assert_paid(&out);
    assert_eq!(res["verdict"]["winners"].as_array().map(Vec::len), Some(2), "{res}");
    let deployments = dir.join("deployments");
    let mut paid: Vec<String> = [1, 2]
        .iter()
        .map(|d| {
            common::earnings(&anvil.rpc_url, &deployments, *d)["payouts"][0]["paid"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    paid.sort();
    assert_eq!(paid, ["1485000000000000000", "4455000000000000000"], "{res}");
    assert!(
        common::earnings(&anvil.rpc_url, &deployments, 3)["payouts"].as_array().unwrap().is_empty()
    );
    let view = common::get_json(format!("{http}/v1/market/bounties/{id}")).await;
    print_phases("2 s blocks, contest", &view, total);
}
