//! Metered calls paid with payment-channel vouchers, with real processes: anvil, `reef node`,
//! the metered agent (`reef pay serve`, i.e. `reef agent serve-metered`) and a payer using the
//! Rust API (`metered::Payer`) or `reef pay call`.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::primitives::{Address, U256, utils::parse_ether};
use alloy::providers::Provider;
use escrow_client::{
    ClientOptions, ReefClient,
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
};
use marketplace_node::metered::{Error, ErrorCode, Payer, PayerConfig};
use serde_json::{Value, json};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn reef() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reef"));
    c.env_remove("REEF_PRIVATE_KEY").env_remove("REEF_RPC_URL").env("RUST_LOG", "warn");
    c
}

const AGENT: usize = 1;

fn price() -> U256 {
    parse_ether("0.001").unwrap()
}

struct Agent {
    proc: Kill,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Agent {
    fn events(&self, kind: &str) -> Vec<Value> {
        self.lines.lock().unwrap().iter().filter(|v| v["event"] == kind).cloned().collect()
    }

    /// How many `kind` events the agent printed, once there are at least `n` (or 10 s passed).
    /// The agent prints an event before it answers, but the line reaches this test through a
    /// pipe and a reader thread, possibly after the answer did.
    async fn count_at_least(&self, kind: &str, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.events(kind).len();
            if got >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Env {
    anvil: AnvilProcess,
    dir: PathBuf,
    _node: Kill,
    ws: String,
    dep: escrow_client::Deployment,
    token: Address,
}

async fn setup() -> Env {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("reef-metered-{}", rand::random::<u32>()));
    std::fs::create_dir_all(dir.join("deployments")).unwrap();
    let deployer = ReefClient::connect(
        &anvil.rpc_url,
        dev_signer(0),
        empty_deployment(31337),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    let (dep, _) = deploy_all(
        &deployer,
        &DeployConfig::devnet((0..6).map(|i| dev_signer(i).address()).collect()),
    )
    .await
    .unwrap();
    dep.save(&dir.join("deployments/31337.json")).unwrap();
    let mut node = reef()
        .args(["node", "--listen", "127.0.0.1:0", "--json", "--node-id", "metered-test"])
        .arg("--database-url")
        .arg(format!("sqlite://{}/node.db", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(node.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("node printed {line:?}: {e}"));
    let listen = v["listen"].as_str().unwrap().to_string();
    let token = dep.test_token.unwrap();
    Env { anvil, dir, _node: Kill(node), ws: format!("ws://{listen}/v1/ws"), dep, token }
}

impl Env {
    fn chain_args(&self, c: &mut Command, dev: usize) {
        c.args(["--dev-account", &dev.to_string(), "--rpc-url", &self.anvil.rpc_url])
            .arg("--deployments")
            .arg(self.dir.join("deployments"));
    }

    /// Starts the metered agent; returns once it is registered and listening.
    fn agent(&self, extra: &[&str]) -> Agent {
        let brain = repo().join("examples/agents/metered_sort.py");
        let log = self.dir.join("served.log");
        let mut c = reef();
        c.args(["pay", "serve", "--node", &self.ws, "--name", "sorter", "--skills", "sort"])
            .args(["--price", "0.001", "--token", "test", "--json"])
            .arg("--exec")
            .arg(format!("tee -a {} | python3 {}", log.display(), brain.display()))
            .arg("--state-dir")
            .arg(self.dir.join("agent-state"))
            .args(extra);
        self.chain_args(&mut c, AGENT);
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("agent printed {line:?}: {e}"));
        assert_eq!(v["event"], "ready", "{v}");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Agent { proc: Kill(child), lines }
    }

    async fn client(&self, dev: usize) -> ReefClient {
        ReefClient::connect(
            &self.anvil.rpc_url,
            dev_signer(dev),
            self.dep.clone(),
            ClientOptions::default(),
        )
        .await
        .unwrap()
    }

    async fn payer(&self, dev: usize) -> Payer {
        self.payer_with_deposit(dev, "1").await
    }

    async fn payer_with_deposit(&self, dev: usize, deposit: &str) -> Payer {
        let cfg = PayerConfig {
            node: self.ws.clone(),
            agent: dev_signer(AGENT).address(),
            price: price(),
            token: self.token,
            deposit: parse_ether(deposit).unwrap().to(),
            challenge_period: 3_600,
            state_dir: self.dir.join(format!("pay-{dev}")),
            timeout: Duration::from_secs(10),
            retries: 3,
        };
        Payer::open(self.client(dev).await, cfg).await.unwrap()
    }

    async fn balance(&self, who: usize) -> U256 {
        self.client(0).await.token_balance(self.token, dev_signer(who).address()).await.unwrap()
    }

    fn redeem(&self) -> Value {
        let mut c = reef();
        c.args(["pay", "redeem", "--json", "--state-dir"]).arg(self.dir.join("agent-state"));
        self.chain_args(&mut c, AGENT);
        let out = c.output().unwrap();
        assert!(out.status.success(), "redeem: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn served(&self) -> String {
        std::fs::read_to_string(self.dir.join("served.log")).unwrap_or_default()
    }

    async fn warp(&self, secs: u64) {
        let p = self.client(0).await.provider().clone();
        let _: Value = p.raw_request("evm_increaseTime".into(), (secs,)).await.unwrap();
        let _: Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
    }
}

fn refused(res: Result<Value, Error>, code: ErrorCode) {
    let v = res.unwrap();
    assert_eq!(v["kind"], "metered_error", "{v}");
    assert_eq!(v["code"], json!(code), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_calls_paid_by_vouchers_then_redeemed_and_closed() {
    let env = setup().await;
    let _agent = env.agent(&[]);
    let before = env.balance(AGENT).await;
    let mut payer = env.payer(0).await;
    let t0 = Instant::now();
    for i in 0..20u64 {
        let out = payer.call(json!([5, 3, 9, i])).await.unwrap();
        assert!(out.ok, "{out:?}");
        let mut want = vec![5u64, 3, 9, i];
        want.sort();
        assert_eq!(out.result, json!(want));
        assert_eq!(out.cumulative, price() * U256::from(i + 1));
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("BENCH metered: 20 calls in {secs:.2}s = {:.1} calls/s (python brain)", 20.0 / secs);
    // Nothing moved on-chain yet: the agent only holds vouchers.
    assert_eq!(env.balance(AGENT).await, before);
    let report = env.redeem();
    assert_eq!(report["payments"], 20, "{report}");
    assert_eq!(report["vouchers"], 1, "{report}");
    let gas = report["gas_used"].as_u64().unwrap();
    eprintln!("BENCH redeem: 1 voucher / 20 payments: {gas} gas, {} gas per payment", gas / 20);
    assert_eq!(env.balance(AGENT).await, before + price() * U256::from(20));
    // Redeeming again is a no-op.
    assert!(env.redeem()["tx"].is_null());

    // The payer closes: request, wait out the challenge period, withdraw the remainder.
    let close = |env: &Env| {
        let mut c = reef();
        c.args(["pay", "close", "--json", "--agent"])
            .arg(dev_signer(AGENT).address().to_string())
            .arg("--state-dir")
            .arg(env.dir.join("pay-0"));
        env.chain_args(&mut c, 0);
        let out = c.output().unwrap();
        assert!(out.status.success(), "close: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let payer_before = env.balance(0).await;
    assert_eq!(close(&env)["state"], "close_requested");
    env.warp(3_601).await;
    let done = close(&env);
    assert_eq!(done["state"], "closed", "{done}");
    let refund = parse_ether("1").unwrap() - price() * U256::from(20);
    assert_eq!(env.balance(0).await, payer_before + refund);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_payer_calls_and_reuses_its_channel() {
    let env = setup().await;
    let _agent = env.agent(&[]);
    let call = |n: &str| {
        let mut c = reef();
        c.args(["pay", "call", "--node", &env.ws, "--agent"])
            .arg(dev_signer(AGENT).address().to_string())
            .args(["--price", "0.001", "--token", "test", "--deposit", "0.002"])
            .args(["--input", "[3,1,2]", "--count", n, "--json", "--state-dir"])
            .arg(env.dir.join("pay-cli"));
        env.chain_args(&mut c, 2);
        let out = c.output().unwrap();
        assert!(out.status.success(), "call: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = call("3");
    assert_eq!(first["calls"], 3, "{first}");
    assert_eq!(first["opened"], true);
    assert_eq!(first["results"][2]["result"], json!([1, 2, 3]));
    // Deposit 0.002 was topped up for the third call.
    assert_eq!(first["paid"], json!(price() * U256::from(3)));
    let second = call("2");
    assert_eq!(second["opened"], false, "{second}");
    assert_eq!(second["channel_id"], first["channel_id"]);
    assert_eq!(second["cumulative"], json!(price() * U256::from(5)));
    let before = env.balance(AGENT).await;
    env.redeem();
    assert_eq!(env.balance(AGENT).await, before + price() * U256::from(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_vouchers_are_refused_and_not_served() {
    let env = setup().await;
    let agent = env.agent(&[]);
    let mut payer = env.payer(0).await;
    payer.call(json!([2, 1])).await.unwrap();
    let ch = payer.channel().channel_id;
    let agent_addr = dev_signer(AGENT).address();
    let next = price() * U256::from(2);

    // Forged: signed by a stranger but naming the payer.
    let stranger = env.client(4).await;
    let (_, forged) = stranger.sign_voucher(ch, agent_addr, next).unwrap();
    let (v, _) = payer.sign(next).unwrap();
    refused(
        payer.request(payer.call_body("forged", &json!([1]), &v, &forged), Some("forged")).await,
        ErrorCode::BadSignature,
    );

    // Wrong payee: a valid signature, but payable to someone else.
    let (mut v2, s2) = {
        let (v, s) = payer.chain().sign_voucher(ch, dev_signer(3).address(), next).unwrap();
        (marketplace_node::metered::protocol::VoucherJson::from(&v), s)
    };
    refused(
        payer.request(payer.call_body("payee", &json!([1]), &v2, &s2), Some("payee")).await,
        ErrorCode::WrongPayee,
    );
    v2.payee = agent_addr; // tampered after signing → signature no longer matches
    refused(
        payer.request(payer.call_body("tamper", &json!([1]), &v2, &s2), Some("tamper")).await,
        ErrorCode::BadSignature,
    );

    // Replayed (lower / equal) cumulative.
    let (v, s) = payer.sign(price()).unwrap();
    refused(
        payer.request(payer.call_body("replay", &json!([1]), &v, &s), Some("replay")).await,
        ErrorCode::StaleVoucher,
    );
    // Overpaying in exact mode, underpaying.
    let (v, s) = payer.sign(price() * U256::from(5)).unwrap();
    refused(
        payer.request(payer.call_body("over", &json!([1]), &v, &s), Some("over")).await,
        ErrorCode::WrongAmount,
    );
    // Over the deposit: a second payer funds 0.0015 and pays the right increment beyond it.
    let mut small = env.payer_with_deposit(2, "0.0015").await;
    small.call(json!([1])).await.unwrap();
    let (v, s) = small.sign(price() * U256::from(2)).unwrap();
    refused(
        small.request(small.call_body("deposit", &json!([1]), &v, &s), Some("deposit")).await,
        ErrorCode::ExceedsDeposit,
    );
    let (v, s) = payer.sign(parse_ether("2").unwrap()).unwrap();
    // Malformed: bad signature length, missing voucher, no call id.
    let mut body = payer.call_body("short", &json!([1]), &v, &s);
    body["signature"] = json!("0x1234");
    refused(payer.request(body, Some("short")).await, ErrorCode::Malformed);
    refused(
        payer.request(json!({"kind": "metered_call", "call_id": "nov"}), Some("nov")).await,
        ErrorCode::Malformed,
    );
    refused(
        payer.request(json!({"kind": "metered_call", "voucher": {}}), None).await,
        ErrorCode::Malformed,
    );

    // None of these were served; an honest call still is, at the expected amount.
    let served = env.served();
    for id in ["forged", "payee", "tamper", "replay", "over", "deposit", "short", "nov"] {
        assert!(
            !served.contains(&format!("\"call_id\": \"{id}\""))
                && !served.contains(&format!("\"call_id\":\"{id}\"")),
            "{id} was served"
        );
    }
    let out = payer.call(json!([3, 2, 1])).await.unwrap();
    assert_eq!(out.cumulative, next);
    assert_eq!(agent.count_at_least("call", 3).await, 3);
    assert!(agent.count_at_least("refused", 9).await >= 9);

    // Idempotent retry: the same call id and voucher return the stored result, no new charge.
    let (v, s) = payer.sign(next).unwrap();
    let body = payer.call_body(&out.call_id, &json!([3, 2, 1]), &v, &s);
    let again = payer.request(body, Some(&out.call_id)).await.unwrap();
    assert_eq!(again["kind"], "metered_result", "{again}");
    assert_eq!(again["result"], json!([1, 2, 3]));
    assert_eq!(agent.events("call").len(), 3, "served twice");
    // The same call id with another voucher is refused.
    let (v, s) = payer.sign(next + price()).unwrap();
    refused(
        payer.request(payer.call_body(&out.call_id, &json!([1]), &v, &s), Some(&out.call_id)).await,
        ErrorCode::CallIdReused,
    );

    let before = env.balance(AGENT).await;
    env.redeem();
    // Both channels (payer 0: 2 calls, payer 2: 1 call) in one batch.
    assert_eq!(env.balance(AGENT).await, before + next + price());
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_killed_mid_stream_still_collects_everything_accepted() {
    let env = setup().await;
    let before = env.balance(AGENT).await;
    let mut agent = env.agent(&[]);
    let mut payer = env.payer(0).await;
    for i in 0..7 {
        payer.call(json!([i, 1])).await.unwrap();
    }
    // kill -9: no shutdown, no flush.
    agent.proc.0.kill().unwrap();
    agent.proc.0.wait().unwrap();
    // A call sent while the agent is down is answered after the restart.
    let pending = tokio::spawn(async move {
        let r = payer.call(json!([9, 8])).await;
        (payer, r)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _agent = env.agent(&[]);
    let (mut payer, r) = pending.await.unwrap();
    assert_eq!(r.unwrap().result, json!([8, 9]));
    for i in 0..2 {
        payer.call(json!([i, 0])).await.unwrap();
    }
    let report = env.redeem();
    assert_eq!(report["payments"], 10, "{report}");
    assert_eq!(env.balance(AGENT).await, before + price() * U256::from(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn unredeemed_vouchers_are_redeemed_automatically_past_the_threshold() {
    let env = setup().await;
    let before = env.balance(AGENT).await;
    let agent = env.agent(&["--redeem-threshold", "0.005"]);
    let mut payer = env.payer(0).await;
    for i in 0..4 {
        payer.call(json!([i])).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.balance(AGENT).await, before, "redeemed below the threshold");
    for i in 0..2 {
        payer.call(json!([i])).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.balance(AGENT).await < before + price() * U256::from(5) {
        assert!(Instant::now() < deadline, "no auto-redeem: {:?}", agent.events("redeem"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The agent reports the redemption on stdout right after the receipt: wait for the line.
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.events("redeem").is_empty() {
        assert!(Instant::now() < deadline, "auto-redeem paid but reported no redeem event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A benchmark, not a test: run by `make bench-metered` (`--ignored`), never by `make test`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; run with `make bench-metered`"]
async fn throughput_with_voucher_verification() {
    let env = setup().await;
    let mut c = reef();
    c.args(["pay", "serve", "--node", &env.ws, "--price", "0.001", "--json", "--exec", "cat"])
        .arg("--state-dir")
        .arg(env.dir.join("bench-state"));
    env.chain_args(&mut c, AGENT);
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || for _ in out.lines() {});
    let _k = Kill(child);
    let mut payer = env.payer(0).await;
    let n = 100u64;
    let t0 = Instant::now();
    for i in 0..n {
        payer.call(json!(i)).await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "BENCH metered: {n} sequential calls through the node in {secs:.2}s = {:.1} calls/s ({:.1} ms/call, voucher signed + verified + fsynced each)",
        n as f64 / secs,
        secs * 1000.0 / n as f64
    );
}
