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
use serde_json::{Value, json};

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
        self.agent_with_eta(dev, brain, price, "30s")
    }

    fn agent_with_eta(&self, dev: usize, brain: &str, price: &str, eta: &str) -> Kill {
        self.agent_with(dev, brain, price, eta, &[])
    }

    fn agent_with(&self, dev: usize, brain: &str, price: &str, eta: &str, extra: &[&str]) -> Kill {
        let child = reef()
            .args(["agent", "run", "--node", &self.ws, "--key", DEV_KEYS[dev], "--name"])
            .arg(format!("sorter-{dev}"))
            .args(["--skills", "sort", "--rpc-url", &self.rpc, "--bid-price", price, "--eta", eta])
            .args(extra)
            .arg("--exec")
            .arg(format!("python3 {}", repo().join("examples/agents").join(brain).display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Kill(child)
    }

    /// A third-party evaluator agent: no bidding, judges with the `sorted` verifier.
    fn evaluator(&self, dev: usize) -> Kill {
        let child = reef()
            .args(["agent", "run", "--node", &self.ws, "--key", DEV_KEYS[dev], "--name"])
            .arg(format!("evaluator-{dev}"))
            .args(["--skills", "review", "--rpc-url", &self.rpc, "--no-bid", "--exec", "true"])
            .arg("--evaluate")
            .arg(repo().join("examples/verifiers/sorted.py"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Kill(child)
    }

    async fn wait_online(&self, dev: usize) {
        common::wait_agent_online(&self.http, dev_signer(dev).address(), &format!("agent {dev}"))
            .await;
    }

    fn post(&self, extra: &[&str]) -> Value {
        let out = self.post_cmd(extra).output().unwrap();
        assert!(out.status.success(), "post failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `reef bounty post` for a sort bounty with a 5 s window, not started yet.
    fn post_cmd(&self, extra: &[&str]) -> std::process::Command {
        let mut cmd = common::post_sort(&self.http, &self.rpc, &self.dir.join("deployments"));
        cmd.args(extra);
        cmd
    }

    fn earnings(&self, dev: usize) -> Value {
        common::earnings(&self.rpc, &self.dir.join("deployments"), dev)
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
async fn a_long_polling_follower_is_answered_once_per_new_event() {
    use alloy::transports::http::reqwest;
    let env = setup().await;
    let _a = env.agent(1, "sort.py", "4");
    env.wait_online(1).await;
    let poster = env
        .post_cmd(&["--verify", "hash", "--expect", "[1,3,5,9]"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let get = |url: String| async move { reqwest::get(url).await.unwrap() };
    let until = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let list: Value =
            get(format!("{}/v1/market/bounties", env.http)).await.json().await.unwrap();
        if let Some(id) = list[0]["id"].as_str() {
            break id.to_string();
        }
        assert!(Instant::now() < until, "the bounty never reached the node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Long-polls are bounded per client: while the 5 s bid window is open, 64 held requests
    // from this address fill its slots, and one more is answered at once and says why.
    let held_url = format!("{}/v1/market/bounties/{id}?wait_ms=2000&after_events=1000", env.http);
    let holders: Vec<_> = (0..marketplace_node::market::longpoll::PER_CLIENT)
        .map(|_| tokio::spawn(get(held_url.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let extra: Value = get(held_url.clone()).await.json().await.unwrap();
    let why = extra["long_poll_declined"].as_str().unwrap_or_default();
    assert!(why.contains("long-polls are open for this client"), "not declined: {extra}");
    assert_eq!(extra["id"], id, "a declined long-poll still answers with the view: {extra}");
    for h in holders {
        let v: Value = h.await.unwrap().json().await.unwrap();
        assert!(v.get("long_poll_declined").is_none(), "a held request was declined: {v}");
    }
    // Their slots came back: the next long-poll is held again.
    let again: Value =
        get(held_url.replace("wait_ms=2000", "wait_ms=300")).await.json().await.unwrap();
    assert!(again.get("long_poll_declined").is_none(), "slots were not given back: {again}");
    // Each answer must bring at least one event the follower has not seen (or the end): the
    // node holds the request until the bounty moves, instead of answering at once.
    let mut seen = 0;
    let mut answers = 0;
    let last = loop {
        let url = format!("{}/v1/market/bounties/{id}?wait_ms=30000&after_events={seen}", env.http);
        let v: Value = get(url).await.json().await.unwrap();
        let n = v["events"].as_array().map_or(0, Vec::len);
        if matches!(v["phase"].as_str(), Some("settled" | "failed")) {
            break v;
        }
        assert!(n > seen, "answered without a new event (had {seen}): {v}");
        seen = n;
        answers += 1;
        assert!(answers < 40, "more answers than the lifecycle has events: {v}");
    };
    assert_eq!(last["phase"], "settled", "{last}");
    assert!(answers >= 2, "the follower saw the lifecycle in {answers} answer(s): {last}");
    // A malformed wait is refused, not treated as "no wait".
    let bad = get(format!("{}/v1/market/bounties/{id}?wait_ms=soon", env.http)).await;
    assert_eq!(bad.status().as_u16(), 400);
    let out = wait_with_deadline(poster, 120);
    assert!(out.status.success());
}

/// A gate in front of anvil: refuses connections (closes them at once) until opened, then
/// forwards them. Returns the gate's RPC URL and its switch.
async fn rpc_gate(rpc: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::Ordering;
    let upstream = rpc.trim_start_matches("http://").trim_end_matches('/').to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = open.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !gate.load(Ordering::SeqCst) {
                continue; // dropped: the client sees its connection closed
            }
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (url, open)
}

/// An agent that could not reach the chain when it started (so it could not join the market)
/// tries again at the next call for proposals, instead of never bidding in this run. It fails
/// every time without the retry (checked).
///
/// It was ignored for one failure next to the other tests of this file that was not captured.
/// One cause found since: the agent gave up on the market for good when the error text
/// contained "404", which the gated RPC's random port can (`nodeapi::ApiError` decides by
/// status now). Back in `make test` after 4 of 4 runs of the whole file with both cores busy.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_started_while_the_chain_was_unreachable_still_bids() {
    let env = setup().await;
    let (gated_rpc, open) = rpc_gate(&env.rpc).await;
    let _a = Kill(
        reef()
            .args(["agent", "run", "--node", &env.ws, "--key", DEV_KEYS[1], "--name", "late"])
            .args(["--skills", "sort", "--rpc-url", &gated_rpc, "--bid-price", "4"])
            .arg("--exec")
            .arg(format!("python3 {}", repo().join("examples/agents/sort.py").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    env.wait_online(1).await;
    // Online on the node, but its first market connection failed (the chain was closed).
    tokio::time::sleep(Duration::from_secs(3)).await;
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    let res = env.post(&["--verify", "hash", "--expect", "[1,3,5,9]"]);
    assert_eq!(res["phase"], "settled", "{res}");
    assert_eq!(res["status"], "completed", "{res}");
    let late = dev_signer(1).address().to_string();
    assert!(res["winner"].as_str().unwrap().eq_ignore_ascii_case(&late), "{res}");
}

/// An agent that starts while a call for proposals is open (nobody was online to invite when
/// it went out) is invited when it registers, bids, and wins.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_comes_online_during_the_window_is_invited_and_wins() {
    let env = setup().await;
    let poster = common::spawn_captured(
        common::post_sort_with_window(&env.http, &env.rpc, &env.dir.join("deployments"), "12s")
            .args(["--verify", "hash", "--expect", "[1,3,5,9]"]),
    );
    // Wait for the call for proposals (sent to nobody), then start the agent.
    let id = common::wait_announced(&env.http).await;
    let _late = env.agent(1, "sort.py", "4");
    let out = wait_with_deadline(poster, 180);
    assert!(out.status.success(), "poster failed: {}", String::from_utf8_lossy(&out.stderr));
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["phase"], "settled", "{res}");
    let late = dev_signer(1).address().to_string();
    assert!(res["winner"].as_str().unwrap().eq_ignore_ascii_case(&late), "{res}");
    let view = common::get_json(format!("{}/v1/market/bounties/{id}", env.http)).await;
    let events: Vec<&str> =
        view["events"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(events.contains(&"invited"), "{events:?}");
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
        let v: Value = common::get_json(&url).await;
        // The node persists the verdict first and moves to `settling` right after.
        if !v["verdict"].is_null() && v["phase"] != "working" {
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
        .args([
            "--node",
            &env.http,
            "--skills",
            "sort",
            "--deadline",
            "2m",
            "--mode",
            "contest",
            "--winners",
            "2",
            "--split",
            "75,25",
        ])
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
        let list: Value = common::get_json(format!("{}/v1/market/bounties", env.http)).await;
        if let Some(id) = list[0]["id"].as_str() {
            let v: Value = common::get_json(format!("{}/v1/market/bounties/{id}", env.http)).await;
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
    // A 75/25 split of 6 rUSD minus the 1% fee, best (first verified) entry first; the
    // cheater's entry failed verification.
    let mut paid: Vec<String> = [1, 2]
        .iter()
        .map(|d| env.earnings(*d)["payouts"][0]["paid"].as_str().unwrap_or_default().to_string())
        .collect();
    paid.sort();
    assert_eq!(paid, ["1485000000000000000", "4455000000000000000"], "{res}");
    assert!(env.earnings(3)["payouts"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_winner_that_misses_its_eta_loses_the_job_to_the_runner_up() {
    let env = setup().await;
    // The fastest bidder wins (same price, delivery promised within 3 s) and never delivers.
    // Same price: the node hands the job over as the evaluator, which may not raise the price.
    let _slacker = env.agent_with_eta(1, "sort_stalled.py", "2", "3s");
    let _honest = env.agent(2, "sort.py", "2");
    env.wait_online(1).await;
    env.wait_online(2).await;
    let res = env.post(&["--verify", "command", "--verifier", "sorted"]);
    assert_eq!(res["phase"], "settled", "{res}");
    assert_eq!(res["status"], "completed", "{res}");
    let honest = dev_signer(2).address().to_string();
    assert!(res["winner"].as_str().unwrap().eq_ignore_ascii_case(&honest), "{res}");
    assert_eq!(res["verdict"]["accept"], true, "{res}");

    // The take-over happened on-chain: AwardRevoked between the two awards.
    let id = res["id"].as_str().unwrap();
    let chain = ReefClient::connect(
        &env.rpc,
        dev_signer(0),
        escrow_client::Deployment::load(&escrow_client::Deployment::path_in(
            &env.dir.join("deployments"),
            31337,
        ))
        .unwrap(),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    let n = alloy::primitives::U256::from_str_radix(id.trim_start_matches("0x"), 16).unwrap();
    let state = chain.bounty(n).await.unwrap();
    let names: Vec<&str> = state.history.iter().map(|h| h.event.as_str()).collect();
    let revoked = names.iter().position(|n| *n == "AwardRevoked").expect("AwardRevoked");
    assert_eq!(names.iter().filter(|n| **n == "BountyAwarded").count(), 2, "{names:?}");
    assert!(names[revoked + 1] == "BountyAwarded", "{names:?}");
    assert_eq!(state.record.provider, dev_signer(2).address());

    // The node logged the miss and the hand-over; only the runner-up was paid.
    let view = common::get_json(format!("{}/v1/market/bounties/{id}", env.http)).await;
    let events: Vec<&str> =
        view["events"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    for want in ["eta_missed", "taken_over", "reassigned"] {
        assert!(events.contains(&want), "{want} missing from {events:?}");
    }
    assert!(env.earnings(1)["payouts"].as_array().unwrap().is_empty());
    assert_eq!(env.earnings(2)["payouts"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_of_evaluator_agents_judges_and_the_signers_are_paid() {
    use escrow_client::bindings::token::ReefTestToken;
    let env = setup().await;
    let _worker = env.agent(1, "sort.py", "2");
    let _evaluators: Vec<Kill> = [2, 3, 4].iter().map(|d| env.evaluator(*d)).collect();
    for d in [1, 2, 3, 4] {
        env.wait_online(d).await;
    }
    let dep = escrow_client::Deployment::load(&escrow_client::Deployment::path_in(
        &env.dir.join("deployments"),
        31337,
    ))
    .unwrap();
    let chain = ReefClient::connect(&env.rpc, dev_signer(0), dep.clone(), ClientOptions::default())
        .await
        .unwrap();
    // The worker is an ERC-8004 agent: the panel's verdict becomes a validation of its work.
    let worker =
        ReefClient::connect(&env.rpc, dev_signer(1), dep.clone(), ClientOptions::default())
            .await
            .unwrap();
    let (agent_id, _) = worker.register_agent("https://sorter.example/agent.json").await.unwrap();
    let token = dep.test_token.unwrap();
    let balances = || async {
        let mut v = Vec::new();
        for d in [2, 3, 4] {
            let call = ReefTestToken::balanceOfCall { account: dev_signer(d).address() };
            v.push(chain.view(token, call).await.unwrap());
        }
        v
    };
    let before = balances().await;

    let res = env.post(&["--verify", "quorum", "--quorum", "2/3", "--eval-fee", "0.1"]);
    assert_eq!(res["phase"], "settled", "{res}");
    assert_eq!(res["status"], "completed", "{res}");
    assert_eq!(res["verdict"]["accept"], true, "{res}");
    assert!(
        res["verdict"]["reason"].as_str().unwrap().contains("2 of 3 evaluators accepted"),
        "{res}"
    );
    assert!(
        res["winner"].as_str().unwrap().eq_ignore_ascii_case(&dev_signer(1).address().to_string()),
        "{res}"
    );

    // Exactly two evaluators (the quorum that signed) earned 0.1 rUSD each.
    let after = balances().await;
    let gains: Vec<alloy::primitives::U256> =
        after.iter().zip(&before).map(|(a, b)| *a - *b).collect();
    let fee = alloy::primitives::U256::from(100_000_000_000_000_000u128);
    assert_eq!(gains.iter().filter(|g| **g == fee).count(), 2, "{gains:?}");
    assert_eq!(gains.iter().filter(|g| g.is_zero()).count(), 1, "{gains:?}");
    let id = alloy::primitives::U256::from_str_radix(
        res["id"].as_str().unwrap().trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let panel = chain.panel_of(id).await.unwrap().expect("panel");
    assert!(panel.fees_settled);
    assert_eq!(panel.quorum, 2);
    assert_eq!(panel.members.len(), 3);
    // The panel's verdict is an ERC-8004 validation response, with the panel as validator.
    let requests = chain.agent_validations(agent_id).await.unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let v = chain.validation_status(requests[0]).await.unwrap().expect("recorded");
    assert_eq!(v.validator, dep.evaluator_panel.unwrap());
    assert_eq!((v.agent_id, v.response, v.tag.as_str()), (agent_id, 100, "reef.bounty"));
    // The fees came out of the 5 rUSD budget: 4.8 was escrowed as the reward.
    let record = chain.bounty(id).await.unwrap().record;
    assert_eq!(record.amount, 4_800_000_000_000_000_000u128);

    // Fees that would take the whole reward are refused before anything is announced.
    let out = env
        .post_cmd(&["--verify", "quorum", "--quorum", "2/3", "--eval-fee", "2.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be less than --reward"), "{err}");
}

/// Nested work paid from a pending reward: the splitter wins a large sort, funds two
/// sub-bounties from its unpaid reward (`reef bounty post --from-reward`), merges their results
/// and is paid; the sorter is paid in pledge credits that its agent redeems for rUSD once the
/// parent settled. The poster pays only the parent's price.
#[tokio::test(flavor = "multi_thread")]
async fn a_sub_bounty_funded_from_the_pending_reward_is_paid_after_the_parent() {
    use alloy::primitives::{U256, utils::parse_ether};
    let env = setup().await;
    let splitter = reef()
        .args(["agent", "run", "--node", &env.ws, "--key", DEV_KEYS[2], "--name", "splitter"])
        .args(["--skills", "sort-large", "--rpc-url", &env.rpc, "--bid-price", "8"])
        .arg("--share-key-with-brain")
        .arg("--exec")
        .arg(format!("python3 {}", repo().join("examples/agents/split_sort.py").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _splitter = Kill(splitter);
    let _sorter = env.agent(1, "sort.py", "3");
    // Cheaper, so it would win the sub-bounties if it bid; it takes no pledge credits.
    let _wary = env.agent_with(4, "sort.py", "1", "30s", &["--no-pledges"]);
    env.wait_online(1).await;
    env.wait_online(2).await;
    env.wait_online(4).await;

    let dep = escrow_client::Deployment::load(&env.dir.join("deployments/31337.json")).unwrap();
    let client =
        ReefClient::connect(&env.rpc, dev_signer(3), dep.clone(), ClientOptions::default())
            .await
            .unwrap();
    let token = dep.test_token.unwrap();
    let sorter = dev_signer(1).address();
    let (sorter_before, poster_before) = (
        client.token_balance(token, sorter).await.unwrap(),
        client.token_balance(token, dev_signer(0).address()).await.unwrap(),
    );

    let numbers: Vec<u32> = (0..12).map(|i| (i * 37 + 11) % 101).collect();
    let out = reef()
        .args(["bounty", "post", "Sort 12 numbers (may be split)", "--reward", "10"])
        .args(["--token", "test", "--node", &env.http, "--skills", "sort-large"])
        .args(["--bid-window", "3s", "--deadline", "1h", "--verify", "command"])
        .args(["--verifier", "sorted", "--input", &serde_json::to_string(&numbers).unwrap()])
        .args(["--approve", "--dev-account", "0", "--json", "--rpc-url", &env.rpc])
        .arg("--deployments")
        .arg(env.dir.join("deployments"))
        .output()
        .unwrap();
    assert!(out.status.success(), "post failed: {}", String::from_utf8_lossy(&out.stderr));
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["status"], "completed", "{res}");
    let parent =
        U256::from_str_radix(res["id"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();

    // Two sub-bounties of 3.5 were pledged from the splitter's 7.92 net pay and backed in full.
    let pt = client.pledge_token_of(parent, dev_signer(2).address());
    let pledge = client.pledge(pt).await.unwrap().expect("the splitter pledged its reward");
    // Posting in a pledge token as if it were an ERC-20 is refused with what to do instead.
    let out = reef()
        .args(["bounty", "post", "x", "--reward", "1", "--token", &pt.to_string()])
        .args(["--dev-account", "2", "--rpc-url", &env.rpc, "--deployments"])
        .arg(env.dir.join("deployments"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("--from-reward {parent:#066x}")), "{err}");
    let seven = U256::from(parse_ether("7").unwrap());
    assert_eq!((pledge.pledged, pledge.backed), (seven, seven), "{pledge:?}");
    assert_eq!(pledge.state, escrow_client::pledge::PledgeState::Redeemable);

    // The sorter's agent redeems its credits (2 × 3 less the 1 % fee) in the background.
    let t0 = Instant::now();
    let earned = U256::from(parse_ether("5.94").unwrap());
    loop {
        let now = client.token_balance(token, sorter).await.unwrap();
        if now == sorter_before + earned {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "sorter has {now}, expected {}",
            sorter_before + earned
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(client.ledger_credit(pt, sorter).await.unwrap().is_zero());
    // `reef agent earnings` tells credits from tokens, and the splitter's pay from what it pledged.
    let sorter_pay = env.earnings(1);
    let payouts = sorter_pay["payouts"].as_array().unwrap();
    assert_eq!(payouts.len(), 2, "{sorter_pay}");
    for p in payouts {
        assert_eq!(p["pledge"]["state"], "redeemable", "{sorter_pay}");
        assert_eq!(p["pledge"]["unredeemed_credit"], "0", "{sorter_pay}");
    }
    assert_eq!(env.earnings(4)["payouts"], json!([]), "the --no-pledges agent did not bid");
    let splitter_pay = env.earnings(2);
    assert_eq!(
        splitter_pay["payouts"][0]["held_for_sub_bounties"], "7000000000000000000",
        "{splitter_pay}"
    );
    // The poster paid the parent's price (8) and nothing for the sub-tasks.
    let poster_now = client.token_balance(token, dev_signer(0).address()).await.unwrap();
    assert_eq!(poster_before - poster_now, U256::from(parse_ether("8").unwrap()));
}
