//! The marketplace loop with real processes: anvil, `reef node` with the marketplace enabled,
//! agents run by `reef agent run --exec`, and a poster running `reef bounty post --node`.
//! An honest agent is paid; a dishonest one is stopped by verification.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use escrow_client::{
    ClientOptions, ReefClient,
    devnet::{AnvilOptions, AnvilProcess, DEV_KEYS, dev_signer},
};
use serde_json::Value;

mod common;

use common::{Kill, reef, repo, wait_with_deadline};

struct Env {
    _anvil: AnvilProcess,
    rpc: String,
    dir: PathBuf,
    _node: Kill,
    http: String,
    ws: String,
}

async fn setup() -> Env {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("reef-market-{}", rand::random::<u32>()));
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let verifier = repo().join("examples/verifiers/sorted.py");
    let mut node = reef()
        .args(["node", "--listen", "127.0.0.1:0", "--json", "--node-id", "market-test"])
        .arg("--database-url")
        .arg(format!("sqlite://{}/node.db", dir.display()))
        .args([
            "--rpc-url",
            &anvil.rpc_url,
            "--market-dev-account",
            "5",
            "--award-grace-secs",
            "30",
        ])
        .arg("--deployments")
        .arg(dir.join("deployments"))
        .arg("--verifier")
        .arg(format!("sorted={}", verifier.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(node.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("node printed {line:?}: {e}"));
    let listen = v["listen"].as_str().unwrap().to_string();
    Env {
        rpc: anvil.rpc_url.clone(),
        _anvil: anvil,
        dir,
        _node: Kill(node),
        http: format!("http://{listen}"),
        ws: format!("ws://{listen}/v1/ws"),
    }
}

impl Env {
    fn agent(&self, dev: usize, brain: &str, price: &str) -> Kill {
        let child = reef()
            .args(["agent", "run", "--node", &self.ws, "--key", DEV_KEYS[dev], "--name"])
            .arg(format!("sorter-{dev}"))
            .args([
                "--skills",
                "sort",
                "--rpc-url",
                &self.rpc,
                "--bid-price",
                price,
                "--eta",
                "30s",
            ])
            .arg("--exec")
            .arg(format!("python3 {}", repo().join("examples/agents").join(brain).display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Kill(child)
    }

    async fn wait_online(&self, dev: usize) {
        let url = format!("{}/v1/agents/{}", self.http, dev_signer(dev).address());
        common::wait_http_ok(&url, &format!("agent {dev}")).await;
    }

    fn post(&self, extra: &[&str]) -> Value {
        let out = reef()
            .args([
                "bounty",
                "post",
                "Sort these numbers ascending",
                "--reward",
                "5",
                "--token",
                "test",
            ])
            .args([
                "--node",
                &self.http,
                "--skills",
                "sort",
                "--bid-window",
                "2s",
                "--deadline",
                "1h",
            ])
            .args([
                "--input",
                "[5,3,9,1]",
                "--approve",
                "--dev-account",
                "0",
                "--json",
                "--rpc-url",
                &self.rpc,
            ])
            .arg("--deployments")
            .arg(self.dir.join("deployments"))
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "post failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn earnings(&self, dev: usize) -> Value {
        let out = reef()
            .args([
                "agent",
                "earnings",
                "--dev-account",
                &dev.to_string(),
                "--json",
                "--rpc-url",
                &self.rpc,
            ])
            .arg("--deployments")
            .arg(self.dir.join("deployments"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn honest_agent_wins_delivers_and_is_paid() {
    let env = setup().await;
    let _a = env.agent(1, "sort.py", "4");
    env.wait_online(1).await;
    let res = env.post(&["--verify", "hash", "--expect", "[1,3,5,9]"]);
    assert_eq!(res["phase"], "settled", "{res}");
    assert_eq!(res["status"], "completed", "{res}");
    assert_eq!(res["verdict"]["accept"], true, "{res}");
    let earned = env.earnings(1);
    assert_eq!(earned["payouts"].as_array().unwrap().len(), 1, "{earned}");
    // 4 rUSD minus the 1% fee.
    assert_eq!(earned["payouts"][0]["paid"], "3960000000000000000", "{earned}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dishonest_agent_is_not_paid() {
    let env = setup().await;
    let _a = env.agent(2, "sort_dishonest.py", "3");
    env.wait_online(2).await;
    let res = env.post(&["--verify", "command", "--verifier", "sorted", "--detach"]);
    // Detached after the award: follow the node until the verdict is in.
    let id = res["id"].as_str().unwrap().to_string();
    let url = format!("{}/v1/market/bounties/{id}", env.http);
    let deadline = Instant::now() + Duration::from_secs(60);
    let verdict = loop {
        let v: Value =
            alloy::transports::http::reqwest::get(&url).await.unwrap().json().await.unwrap();
        if !v["verdict"].is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "no verdict: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(verdict["verdict"]["accept"], false, "{verdict}");
    assert_eq!(verdict["phase"], "settling", "{verdict}");
    assert!(env.earnings(2)["payouts"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn poster_verifies_and_accepts_from_the_cli() {
    let env = setup().await;
    let _a = env.agent(3, "sort.py", "2");
    env.wait_online(3).await;
    let res = env.post(&["--verify", "poster", "--detach"]);
    let id = res["id"].as_str().unwrap().to_string();
    let chain_args = |cmd: &str| {
        let mut c = reef();
        c.args(["bounty", cmd, &id, "--dev-account", "0", "--json", "--rpc-url", &env.rpc])
            .arg("--deployments")
            .arg(env.dir.join("deployments"));
        c
    };
    // The provider commits its result on-chain once it has delivered it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = chain_args("show").output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["status"] == "submitted" {
            break;
        }
        assert!(Instant::now() < deadline, "never submitted: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A stranger cannot accept; the poster (the evaluator) can.
    let out = reef()
        .args(["bounty", "accept", &id, "--dev-account", "4", "--rpc-url", &env.rpc])
        .arg("--deployments")
        .arg(env.dir.join("deployments"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only the evaluator"));
    let out = chain_args("accept").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(env.earnings(3)["payouts"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn contest_pays_the_verified_entries_and_not_the_cheater() {
    use alloy::providers::Provider;
    let env = setup().await;
    let _a = env.agent(1, "sort.py", "1");
    let _b = env.agent(2, "sort.py", "1");
    let _c = env.agent(3, "sort_dishonest.py", "1");
    for d in [1, 2, 3] {
        env.wait_online(d).await;
    }
    let poster = reef()
        .args([
            "bounty",
            "post",
            "Sort these numbers ascending (contest)",
            "--reward",
            "6",
            "--token",
            "test",
        ])
        .args(["--node", &env.http, "--skills", "sort", "--deadline", "2m", "--contest", "2"])
        .args(["--input", "[5,3,9,1]", "--verify", "command", "--verifier", "sorted"])
        .args(["--approve", "--dev-account", "0", "--json", "--rpc-url", &env.rpc])
        .arg("--deployments")
        .arg(env.dir.join("deployments"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Wait for the three entries, then let the deadline pass on-chain.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list: Value =
            alloy::transports::http::reqwest::get(format!("{}/v1/market/bounties", env.http))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        if let Some(id) = list[0]["id"].as_str() {
            let v: Value = alloy::transports::http::reqwest::get(format!(
                "{}/v1/market/bounties/{id}",
                env.http
            ))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
            let entries = v["events"]
                .as_array()
                .map(|e| e.iter().filter(|x| x["event"] == "entry").count())
                .unwrap_or(0);
            if entries == 3 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "entries never arrived: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let chain = ReefClient::connect(
        &env.rpc,
        dev_signer(0),
        escrow_client::deploy::empty_deployment(31337),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    let _: Value =
        chain.provider().raw_request("evm_increaseTime".into(), (180u64,)).await.unwrap();
    let _: Value = chain.provider().raw_request("evm_mine".into(), ()).await.unwrap();
    let out = wait_with_deadline(poster, 240);
    assert!(out.status.success());
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["phase"], "settled", "{res}");
    assert_eq!(res["status"], "completed", "{res}");
    let winners = res["verdict"]["winners"].as_array().unwrap();
    assert_eq!(winners.len(), 2, "{res}");
    // 3 rUSD each minus the 1% fee; the cheater's entry failed verification.
    for d in [1, 2] {
        let e = env.earnings(d);
        assert_eq!(e["payouts"][0]["paid"], "2970000000000000000", "{e}");
    }
    assert!(env.earnings(3)["payouts"].as_array().unwrap().is_empty());
}
