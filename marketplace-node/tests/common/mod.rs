//! Helpers shared by the marketplace integration tests: real processes, real anvil.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output},
    time::{Duration, Instant},
};

use escrow_client::{
    ClientOptions, Deployment, ReefClient,
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::dev_signer,
};

/// Kills a child process when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `reef` binary under test, with the environment it must not inherit removed.
/// `REEF_TEST_LOG` sets the spawned processes' `RUST_LOG` (default `warn`), to debug a test.
pub fn reef() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reef"));
    let log = std::env::var("REEF_TEST_LOG").unwrap_or_else(|_| "warn".into());
    c.env_remove("REEF_PRIVATE_KEY").env_remove("REEF_RPC_URL").env("RUST_LOG", log);
    c
}

/// `reef bounty post` of the tests' sort bounty ([5,3,9,1], 5 rUSD of the test token, skill
/// `sort`, 5 s window, 1 h deadline) by dev account 0 through the node at `http`, with `--json`;
/// the caller adds the verification and how to run it.
pub fn post_sort(http: &str, rpc: &str, deployments: &Path) -> Command {
    post_sort_with_window(http, rpc, deployments, "5s")
}

/// [`post_sort`] with a bid window of `window` (e.g. `12s`).
#[allow(dead_code)] // each test binary compiles this module; not all of them use this
pub fn post_sort_with_window(http: &str, rpc: &str, deployments: &Path, window: &str) -> Command {
    let mut cmd = reef();
    cmd.args([
        "bounty",
        "post",
        "Sort these numbers ascending",
        "--reward",
        "5",
        "--token",
        "test",
    ])
    .args(["--node", http, "--skills", "sort", "--bid-window", window, "--deadline", "1h"])
    .args(["--input", "[5,3,9,1]"])
    .args(["--approve", "--dev-account", "0", "--json", "--rpc-url", rpc])
    .arg("--deployments")
    .arg(deployments);
    cmd
}

/// Starts `cmd` (a poster) with stdout and stderr captured, for [`wait_with_deadline`].
#[allow(dead_code)] // each test binary compiles this module; not all of them use this
pub fn spawn_captured(cmd: &mut Command) -> Child {
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
}

/// Waits for the (only) bounty on the node at `http` to have sent its call for proposals
/// (still bidding); returns its id.
#[allow(dead_code)] // each test binary compiles this module; not all of them use this
pub async fn wait_announced(http: &str) -> String {
    let t0 = Instant::now();
    loop {
        let list = get_json(format!("{http}/v1/market/bounties")).await;
        if let Some(id) = list[0]["id"].as_str() {
            let v = get_json(format!("{http}/v1/market/bounties/{id}")).await;
            if v["cfp_group"].as_str().is_some_and(|g| !g.starts_with("claimed:")) {
                assert_eq!(v["phase"], "bidding", "{v}");
                return id.to_string();
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never announced: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET `url` and parse the body as JSON (panics on any failure: tests only).
#[allow(dead_code)] // each test binary compiles this module; not all of them use this
pub async fn get_json(url: impl alloy::transports::http::reqwest::IntoUrl) -> serde_json::Value {
    let r = alloy::transports::http::reqwest::get(url).await.unwrap();
    r.json().await.unwrap()
}

/// Deploys Reef on the anvil at `rpc` (dev accounts 0..6 seeded) and writes
/// `dir/deployments/<chainId>.json`.
pub async fn deploy_devnet(rpc: &str, dir: &Path) -> Deployment {
    std::fs::create_dir_all(dir.join("deployments")).unwrap();
    let deployer =
        ReefClient::connect(rpc, dev_signer(0), empty_deployment(31337), ClientOptions::default())
            .await
            .unwrap();
    let (dep, _) = deploy_all(
        &deployer,
        &DeployConfig::devnet((0..6).map(|i| dev_signer(i).address()).collect()),
    )
    .await
    .unwrap();
    dep.save(&dir.join("deployments/31337.json")).unwrap();
    dep
}

/// A fresh temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("reef-{tag}-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits for `child` with a deadline (a hung poster fails the test instead of hanging CI).
pub fn wait_with_deadline(mut child: Child, secs: u64) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().unwrap(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "process did not finish within {secs}s; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// Polls an agent's card (`GET /v1/agents/{address}`) until the agent is registered *and*
/// connected: a call for proposals only goes to online agents.
pub async fn wait_agent_online(http: &str, address: impl std::fmt::Display, what: &str) {
    let url = format!("{http}/v1/agents/{address}");
    let t0 = Instant::now();
    loop {
        let card: Option<serde_json::Value> =
            match alloy::transports::http::reqwest::get(&url).await {
                Ok(r) if r.status().is_success() => r.json().await.ok(),
                _ => None,
            };
        if card.as_ref().is_some_and(|c| c["online"] == true) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{what} never came online at {url} (last card: {card:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `GET url` until it answers 2xx (e.g. an agent's card once it registered).
pub async fn wait_http_ok(url: &str, what: &str) {
    let t0 = Instant::now();
    while !alloy::transports::http::reqwest::get(url)
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what} never became available at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `reef node` (marketplace on, evaluator dev account 5, award grace 30 s) on `port`
/// with its SQLite database in `dir` and id `node_id`, plus `extra` flags; returns once it
/// listens.
pub fn start_node(dir: &Path, rpc: &str, port: u16, node_id: &str, extra: &[&str]) -> Kill {
    spawn_listening(
        reef()
            .args([
                "node",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--json",
                "--node-id",
                node_id,
            ])
            .arg("--database-url")
            .arg(format!("sqlite://{}/node.db", dir.display()))
            .args(["--rpc-url", rpc, "--market-dev-account", "5", "--award-grace-secs", "30"])
            .arg("--deployments")
            .arg(dir.join("deployments"))
            .args(extra)
            .stderr(std::process::Stdio::inherit()),
    )
}

/// Spawns `reef node … --json` as `cmd` describes it (stdout is taken here) and waits for its
/// first line, the address it listens on.
#[allow(dead_code)] // each test binary compiles this module; not all of them use this
pub fn spawn_listening(cmd: &mut Command) -> Kill {
    use std::io::BufRead;
    let mut node = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(node.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("listen"), "node did not start: {line:?}");
    Kill(node)
}

/// Posts the tests' hash-verified sort bounty ([`post_sort_with_window`], `window`) and waits
/// (at most 180 s) until it settles; returns the poster's `--json` answer.
#[allow(dead_code)] // each test binary compiles this module; not all of them use this
pub fn settle_sort(http: &str, rpc: &str, deployments: &Path, window: &str) -> serde_json::Value {
    let poster = spawn_captured(post_sort_with_window(http, rpc, deployments, window).args([
        "--verify",
        "hash",
        "--expect",
        "[1,3,5,9]",
    ]));
    let out = wait_with_deadline(poster, 180);
    assert!(out.status.success(), "post failed: {}", String::from_utf8_lossy(&out.stderr));
    let res: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["phase"], "settled", "{res}");
    res
}

/// `reef agent run` of a sorting agent (examples/agents/sort.py) with dev account `dev` on the
/// node at `port`: skill `sort`, bids 4 units, ETA 5 minutes (a restart must not look like a
/// missed ETA).
pub fn start_sort_agent(port: u16, rpc: &str, dev: usize) -> Kill {
    let brain = format!("python3 {}", repo().join("examples/agents/sort.py").display());
    Kill(
        reef()
            .args(["agent", "run", "--node", &format!("ws://127.0.0.1:{port}/v1/ws")])
            .args(["--key", escrow_client::devnet::DEV_KEYS[dev], "--skills", "sort"])
            .args(["--rpc-url", rpc, "--bid-price", "4", "--eta", "5m", "--exec", &brain])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

/// Sends `signal` (`STOP`, `CONT`) to a process.
pub fn signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid} failed");
}

/// `reef agent earnings --json` of dev account `dev` (its payouts from the escrow's logs), with
/// the deployment in `deployments` (a folder of `<chainId>.json`).
pub fn earnings(rpc: &str, deployments: &Path, dev: usize) -> serde_json::Value {
    let out = reef()
        .args(["agent", "earnings", "--dev-account", &dev.to_string(), "--json"])
        .args(["--rpc-url", rpc])
        .arg("--deployments")
        .arg(deployments)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sum of `reef_db_statements_total` over the statements whose SQL text starts with
/// `prefix`, from a scrape's `(series, value)` pairs.
#[allow(dead_code)] // each test binary compiles this module; not all of them use this
pub fn statements_by_text<'a>(
    samples: impl IntoIterator<Item = (&'a str, f64)>,
    prefix: &str,
) -> f64 {
    samples
        .into_iter()
        .filter(|(k, _)| {
            k.strip_prefix("reef_db_statements_total{statement=\"")
                .is_some_and(|t| t.starts_with(prefix))
        })
        .map(|(_, v)| v)
        .sum()
}
