//! Swarm auctions with real processes: anvil with Reef deployed, `reef node`, `reef swarm serve`
//! agents and `reef ask`, plus in-process bidders and posters on the agent SDK where a test
//! needs to misbehave (a silent winner, forged or replayed vouchers).

mod common;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::primitives::{Address, U256, utils::parse_ether};
use common::{Kill, reef};
use escrow_client::{
    ClientOptions, ReefClient,
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
};
use marketplace_node::swarm::poster::{Poster, PosterConfig};
use reef_agent_sdk::{Client, SwarmPush, swarm::voucher};
use reef_wire::swarm::{AskOutcome, PayOutcome, SwarmAsk, SwarmCode};
use serde_json::{Value, json};

struct Env {
    anvil: AnvilProcess,
    dir: PathBuf,
    _node: Kill,
    ws: String,
    dep: escrow_client::Deployment,
}

async fn setup() -> Env {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("swarm");
    let dep = common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let mut node = reef()
        .args(["node", "--listen", "127.0.0.1:0", "--json", "--node-id", "swarm-test"])
        .arg("--database-url")
        .arg(format!("sqlite://{}/node.db", dir.display()))
        .args(["--rpc-url", &anvil.rpc_url, "--market-dev-account", "5", "--no-indexer"])
        .arg("--deployments")
        .arg(dir.join("deployments"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(node.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("node printed {line:?}: {e}"));
    let listen = v["listen"].as_str().unwrap().to_string();
    Env { anvil, dir, _node: Kill(node), ws: format!("ws://{listen}/v1/ws"), dep }
}

/// A `reef swarm serve` process and the JSON events it printed.
struct Agent {
    _proc: Kill,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Agent {
    fn events(&self, kind: &str) -> Vec<Value> {
        self.lines.lock().unwrap().iter().filter(|v| v["event"] == kind).cloned().collect()
    }

    /// The `kind` events once there are at least `n` (or 10 s passed): lines come through a
    /// pipe and a reader thread, possibly after the poster already has its answer.
    async fn at_least(&self, kind: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.events(kind);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Env {
    fn chain_args(&self, c: &mut std::process::Command, dev: usize) {
        c.args(["--dev-account", &dev.to_string(), "--rpc-url", &self.anvil.rpc_url])
            .arg("--deployments")
            .arg(self.dir.join("deployments"));
    }

    fn agent_dir(&self, dev: usize) -> PathBuf {
        self.dir.join(format!("swarm-agent-{dev}"))
    }

    /// Starts `reef swarm serve` for dev account `dev`; returns once it listens.
    fn agent(&self, dev: usize, skills: &str, price: &str, answer: &str) -> Agent {
        let mut c = reef();
        c.args(["swarm", "serve", "--node", &self.ws, "--skills", skills, "--price", price])
            .args(["--token", "eth", "--answer", answer, "--json", "--state-dir"])
            .arg(self.agent_dir(dev));
        self.chain_args(&mut c, dev);
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
        Agent { _proc: Kill(child), lines }
    }

    /// `reef ask … --json` by dev account 0; (exit code, JSON answer).
    fn ask(&self, question: &str, skill: &str, max_price: &str, extra: &[&str]) -> (i32, Value) {
        let mut c = reef();
        c.args(["ask", question, "--skill", skill, "--max-price", max_price, "--token", "eth"])
            .args(["--window", "100ms", "--deposit", "0.01", "--json", "--node", &self.ws])
            .arg("--state-dir")
            .arg(self.dir.join("poster-0"))
            .args(extra);
        self.chain_args(&mut c, 0);
        let out = common::wait_with_deadline(
            c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap(),
            120,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "reef ask printed {text:?} ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
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

    async fn ioa(&self, dev: usize) -> Client {
        Client::connect(&self.ws, dev_signer(dev)).await.unwrap().0
    }

    /// An in-process bidder for dev account `dev` at `price` wei that answers `answer` (None:
    /// never answers); returns its connection and the swarm frames it received.
    async fn bidder(
        &self,
        dev: usize,
        skill: &str,
        price: u64,
        answer: Option<Value>,
    ) -> (Client, Arc<Mutex<Vec<SwarmPush>>>) {
        let ioa = self.ioa(dev).await;
        let mut rx = ioa.swarm_listen(vec![skill.into()]).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (ioa.clone(), seen.clone());
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                s.lock().unwrap().push(p.clone());
                match p {
                    SwarmPush::Query(q) => {
                        c.swarm_bid(&q.query_id, U256::from(price)).await.unwrap();
                    }
                    SwarmPush::Award(a) => {
                        if let Some(ans) = &answer {
                            c.swarm_answer(&a.query_id, ans.clone()).await.unwrap();
                        }
                    }
                    _ => {}
                }
            }
        });
        (ioa, seen)
    }
}

fn ask(skill: &str, max_price: U256, answer_ms: u64) -> SwarmAsk {
    SwarmAsk {
        question: "What is 17 * 23?".into(),
        skill: skill.into(),
        max_price,
        token: Address::ZERO,
        window_ms: 100,
        answer_ms,
    }
}

/// The lowest bid wins, its answer is released against a voucher, a second query reuses the
/// channel (no transaction), and the agent redeems both payments in one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_is_answered_and_paid_by_voucher_then_redeemed_in_a_batch() {
    let env = setup().await;
    let cheap = env.agent(1, "math", "0.0005", "391");
    let (_dear, dear_seen) = env.bidder(2, "math", 800_000_000_000_000, Some(json!("wrong"))).await;

    let (code, first) = env.ask("What is 17 * 23?", "math", "0.001", &[]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["status"], "paid", "{first}");
    assert_eq!(first["answer"], json!(391), "{first}");
    assert_eq!(
        first["winner"].as_str().unwrap().parse::<Address>().unwrap(),
        dev_signer(1).address()
    );
    let price = parse_ether("0.0005").unwrap();
    assert_eq!(first["price"].as_str().unwrap().parse::<U256>().unwrap(), price);
    assert_eq!((first["asked"].as_u64(), first["bids"].as_u64()), (Some(2), Some(2)), "{first}");
    assert_eq!(first["chain_tx"], true, "the first answer from this agent opens the channel");
    assert!(first["decision_us"].as_u64().is_some(), "{first}");
    // The loser was asked but never awarded.
    let dear = dear_seen.lock().unwrap().clone();
    assert!(dear.iter().any(|p| matches!(p, SwarmPush::Query(_))));
    assert!(!dear.iter().any(|p| matches!(p, SwarmPush::Award(_))), "{dear:?}");

    let (code, second) = env.ask("What is 17 * 23?", "math", "0.001", &[]);
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["chain_tx"], false, "the second answer reuses the channel: {second}");
    assert_eq!(second["channel_id"], first["channel_id"]);
    assert_eq!(
        second["cumulative"].as_str().unwrap().parse::<U256>().unwrap(),
        price * U256::from(2)
    );

    let paid = cheap.at_least("paid", 2).await;
    assert_eq!(paid.len(), 2, "the agent was handed both vouchers: {paid:?}");

    // The agent redeems what it holds: one transaction for both answers.
    let mut c = reef();
    c.args(["pay", "redeem", "--json", "--state-dir"]).arg(env.agent_dir(1));
    env.chain_args(&mut c, 1);
    let out = c.output().unwrap();
    assert!(out.status.success(), "redeem: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["vouchers"], 1, "{r}");
    assert_eq!(r["payments"], 2, "{r}");
    let channel: U256 = first["channel_id"].as_str().unwrap().parse().unwrap();
    let on_chain = env.client(0).await.channel(channel).await.unwrap();
    assert_eq!(U256::from(on_chain.redeemed), price * U256::from(2));
}

/// Forged, wrongly priced, replayed and unfunded vouchers are refused before the answer is
/// released; the answer stays held and a good voucher still gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replayed_and_unfunded_vouchers_are_refused_before_the_answer_is_released() {
    let env = setup().await;
    let price = 1_000_000_000_000u64; // 1e12 wei
    let (_agent, agent_seen) = env.bidder(1, "facts", price, Some(json!("the answer"))).await;
    let chain = env.client(0).await;
    let poster = env.ioa(0).await;
    let winner = dev_signer(1).address();
    // A channel holding exactly two answers.
    let (ch, _) =
        chain.open_channel(winner, Address::ZERO, 2 * price as u128, 3_600).await.unwrap();
    let p = U256::from(price);

    let inv = poster.swarm_ask(ask("facts", p, 2_000)).await.unwrap();
    let AskOutcome::Invoice { query_id, winner: w, price: got, .. } = inv else {
        panic!("{inv:?}")
    };
    assert_eq!((w, got), (winner, p));
    let me = chain.address();
    let refused = |o: PayOutcome| match o {
        PayOutcome::Refused { code, expected, .. } => (code, expected),
        PayOutcome::Paid { answer, .. } => panic!("released {answer} against a bad voucher"),
    };
    // Signed by another key.
    let forger = env.client(3).await;
    let (_, forged) = forger.sign_voucher(ch, winner, p).unwrap();
    let o = poster.swarm_pay(&query_id, voucher(ch, me, winner, p), forged).await.unwrap();
    assert_eq!(refused(o).0, SwarmCode::BadSignature);
    // Tampered after signing (the amount raised).
    let (_, sig) = chain.sign_voucher(ch, winner, p).unwrap();
    let o = poster.swarm_pay(&query_id, voucher(ch, me, winner, p + p), sig.clone()).await.unwrap();
    assert_eq!(refused(o).0, SwarmCode::BadSignature);
    // Paying someone else.
    let o = poster
        .swarm_pay(&query_id, voucher(ch, me, dev_signer(2).address(), p), sig.clone())
        .await
        .unwrap();
    assert_eq!(refused(o).0, SwarmCode::WrongPayee);
    // Less than the price.
    let (_, low) = chain.sign_voucher(ch, winner, p - U256::from(1)).unwrap();
    let o =
        poster.swarm_pay(&query_id, voucher(ch, me, winner, p - U256::from(1)), low).await.unwrap();
    assert_eq!(refused(o), (SwarmCode::WrongAmount, Some(p)));
    assert!(
        !agent_seen.lock().unwrap().iter().any(|x| matches!(x, SwarmPush::Paid(_))),
        "no voucher reached the agent yet"
    );
    // The good voucher: the answer, held all along, is released.
    let o = poster.swarm_pay(&query_id, voucher(ch, me, winner, p), sig.clone()).await.unwrap();
    let PayOutcome::Paid { answer, cumulative, .. } = o else { panic!("{o:?}") };
    assert_eq!((answer, cumulative), (json!("the answer"), p));
    // Paying the same query again: it is no longer awaiting payment.
    let o = poster.swarm_pay(&query_id, voucher(ch, me, winner, p), sig.clone()).await.unwrap();
    assert_eq!(refused(o).0, SwarmCode::UnknownQuery);

    // A new query paid with the old voucher: a replay.
    let inv = poster.swarm_ask(ask("facts", p, 2_000)).await.unwrap();
    let AskOutcome::Invoice { query_id: q2, .. } = inv else { panic!("{inv:?}") };
    let o = poster.swarm_pay(&q2, voucher(ch, me, winner, p), sig).await.unwrap();
    assert_eq!(refused(o), (SwarmCode::StaleVoucher, Some(p + p)));
    let (_, s2) = chain.sign_voucher(ch, winner, p + p).unwrap();
    let o = poster.swarm_pay(&q2, voucher(ch, me, winner, p + p), s2).await.unwrap();
    assert!(matches!(o, PayOutcome::Paid { .. }), "{o:?}");

    // The deposit covers two answers: a third voucher is unfunded.
    let inv = poster.swarm_ask(ask("facts", p, 2_000)).await.unwrap();
    let AskOutcome::Invoice { query_id: q3, .. } = inv else { panic!("{inv:?}") };
    let three = p * U256::from(3);
    let (_, s3) = chain.sign_voucher(ch, winner, three).unwrap();
    let o = poster.swarm_pay(&q3, voucher(ch, me, winner, three), s3.clone()).await.unwrap();
    assert_eq!(refused(o).0, SwarmCode::ExceedsDeposit);
    // Topped up, the same voucher is good (the node reads the channel again).
    chain.deposit_channel(ch, Address::ZERO, price as u128).await.unwrap();
    let o = poster.swarm_pay(&q3, voucher(ch, me, winner, three), s3).await.unwrap();
    assert!(matches!(o, PayOutcome::Paid { .. }), "{o:?}");

    // A channel whose challenge period is too short to protect the agent.
    let (short, _) =
        chain.open_channel(winner, Address::ZERO, 10 * price as u128, 60).await.unwrap();
    let inv = poster.swarm_ask(ask("facts", p, 2_000)).await.unwrap();
    let AskOutcome::Invoice { query_id: q4, .. } = inv else { panic!("{inv:?}") };
    let (_, s4) = chain.sign_voucher(short, winner, p).unwrap();
    let o = poster.swarm_pay(&q4, voucher(short, me, winner, p), s4).await.unwrap();
    assert_eq!(refused(o).0, SwarmCode::ChallengeTooShort);

    // The agent was handed exactly the three accepted vouchers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let paid = loop {
        let paid: Vec<U256> = agent_seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|x| match x {
                SwarmPush::Paid(p) => Some(p.voucher.cumulative_amount),
                _ => None,
            })
            .collect();
        if paid.len() >= 3 || Instant::now() > deadline {
            break paid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(paid, vec![p, p + p, three]);
}

/// No agents, no bids and bad asks each end with a clear error and cost nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agents_and_no_bids_are_clear_errors() {
    let env = setup().await;
    let (code, v) = env.ask("Anyone?", "astrology", "0.001", &[]);
    assert_eq!(
        (code, v["status"].as_str(), v["code"].as_str()),
        (3, Some("failed"), Some("no_agents")),
        "{v}"
    );
    // An agent that listens but wants more than the poster pays does not bid.
    let _greedy = env.agent(1, "math", "0.01", "391");
    let (code, v) = env.ask("What is 17 * 23?", "math", "0.001", &[]);
    assert_eq!(
        (code, v["status"].as_str(), v["code"].as_str()),
        (3, Some("failed"), Some("no_bids")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("bid within 100 ms"), "{v}");
    assert!(!env.dir.join("poster-0/channels.json").exists(), "no channel was opened");
    // A window outside 50..=200 ms is refused before anything is asked.
    let poster = env.ioa(0).await;
    let mut a = ask("math", U256::from(1), 2_000);
    a.window_ms = 20;
    let e = poster.swarm_ask(a).await.unwrap_err().to_string();
    assert!(e.contains("window_ms must be 50 to 200"), "{e}");
}

/// A winner that does not answer loses the award to the runner-up; the poster pays only the
/// one who answered, and a query whose bidders all stay silent costs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_winner_is_replaced_and_the_poster_pays_only_for_an_answer() {
    let env = setup().await;
    let (_silent, silent_seen) = env.bidder(2, "riddles", 1, None).await;
    let answering = env.agent(1, "riddles", "0.000001", "\"a map\"");
    let chain = env.client(0).await;
    let ioa = env.ioa(0).await;
    let mut poster = Poster::new(
        chain,
        ioa,
        PosterConfig {
            deposit: 10u128.pow(16),
            challenge_period: 3_600,
            state_dir: env.dir.join("poster-runner"),
        },
    )
    .unwrap();
    let a = poster.ask(ask("riddles", U256::from(10u64.pow(12)), 300)).await.unwrap();
    assert_eq!(a.winner, dev_signer(1).address(), "{a:?}");
    assert_eq!(a.answer, json!("a map"));
    assert_eq!(a.awards, 2, "the silent cheapest bidder was awarded first: {a:?}");
    assert_eq!(a.bids, 2);
    let seen = silent_seen.lock().unwrap().clone();
    assert!(seen.iter().any(|p| matches!(p, SwarmPush::Award(_))), "{seen:?}");
    assert!(
        seen.iter().any(|p| matches!(p, SwarmPush::Cancelled(c) if c.code == SwarmCode::NoAnswer)),
        "{seen:?}"
    );
    // Only the answering agent has a channel from the poster, and was paid.
    let state = std::fs::read_to_string(env.dir.join("poster-runner/channels.json")).unwrap();
    assert!(!state.to_lowercase().contains(&format!("{:#x}", dev_signer(2).address())), "{state}");
    assert_eq!(answering.at_least("paid", 1).await.len(), 1);
    drop(answering);

    // Now every bidder is silent: nothing to pay.
    let (_silent3, _) = env.bidder(3, "riddles", 5, None).await;
    // (the answering agent is gone; the remaining two never answer)
    let e = poster.ask(ask("riddles", U256::from(10u64.pow(12)), 200)).await.unwrap_err();
    match e {
        marketplace_node::swarm::Error::Failed { code, message } => {
            assert_eq!(code, SwarmCode::NoAnswer, "{message}");
            assert!(message.contains("nothing is owed"), "{message}");
        }
        other => panic!("{other}"),
    }
    let still = std::fs::read_to_string(env.dir.join("poster-runner/channels.json")).unwrap();
    assert_eq!(still, state, "no voucher was signed for the unanswered query");
}
