//! Swarm auction benchmark: 100 bidders on one `reef node`, 100 ms windows, answers paid with
//! payment-channel vouchers checked by the node.
//!
//! ```text
//! cargo build --release -p marketplace-node --bins
//! cargo run --release -p marketplace-node --example swarm_bench [-- --bidders 100 --window-ms 100 --queries 200 --posters 8 --in-flight 16 --secs 10]
//! ```
//!
//! On a fresh anvil (automine) with Reef deployed, it starts the release `reef node`, connects
//! `--bidders` agents (the agent SDK, one WebSocket each, a fixed answer, a random price) that
//! listen for the skill, and `--posters` funded posters that open a channel to every bidder
//! first (setup, not measured). Then:
//!
//! 1. Latency: one poster asks `--queries` questions one after the other. Decision time is
//!    the node's own figure (µs from the window's scheduled close to the award sent, timer
//!    lateness included); answer latency is the poster's, from sending the ask to holding the
//!    paid answer (the window included), and after the close (minus the window).
//! 2. Capacity: every poster keeps `--in-flight` asks open for `--secs` seconds (pays each
//!    invoice as it comes, in order per poster): answered queries/s for the node, the same
//!    latencies under that load, and the node's CPU per query (from `/proc`).
//!
//! Nothing is asserted; the figures are printed (and as JSON with `--json`).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};
use escrow_client::{
    ClientOptions, ReefClient,
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
};
use eyre::{WrapErr, eyre};
use marketplace_node::swarm::poster::{Answered, Poster, PosterConfig};
use reef_agent_sdk::{Client, SwarmPush};
use reef_wire::swarm::SwarmAsk;
use serde_json::json;

const USAGE: &str = "swarm_bench [--bidders N] [--window-ms MS] [--queries N] [--posters N] [--in-flight N] [--secs S] [--json]";

#[derive(Debug, Clone)]
struct Opts {
    bidders: usize,
    window_ms: u64,
    queries: usize,
    posters: usize,
    in_flight: usize,
    secs: u64,
    json: bool,
}

impl Opts {
    fn parse() -> eyre::Result<Self> {
        let mut o = Self {
            bidders: 100,
            window_ms: 100,
            queries: 200,
            posters: 8,
            in_flight: 16,
            secs: 10,
            json: false,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            let mut val = || {
                i += 1;
                args.get(i)
                    .ok_or_else(|| eyre!("{a} needs a value\nusage: {USAGE}"))?
                    .parse::<u64>()
                    .map_err(|e| eyre!("{a}: {e}\nusage: {USAGE}"))
            };
            match a {
                "--bidders" => o.bidders = val()? as usize,
                "--window-ms" => o.window_ms = val()?,
                "--queries" => o.queries = val()? as usize,
                "--posters" => o.posters = val()? as usize,
                "--in-flight" => o.in_flight = val()? as usize,
                "--secs" => o.secs = val()?,
                "--json" => o.json = true,
                "-h" | "--help" => {
                    println!("usage: {USAGE}");
                    std::process::exit(0);
                }
                other => return Err(eyre!("unknown argument {other}\nusage: {USAGE}")),
            }
            i += 1;
        }
        if o.posters == 0 || o.posters > 9 {
            return Err(eyre!(
                "--posters must be 1 to 9 (anvil's funded dev accounts but the node's)"
            ));
        }
        if o.in_flight == 0 || o.in_flight > 64 {
            return Err(eyre!(
                "--in-flight must be 1 to 64 (the node's limit of open queries per poster)"
            ));
        }
        Ok(o)
    }
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Own CPU seconds of `pid` (Linux `/proc`).
fn cpu_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((n(14)? + n(15)?) / tick)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn ask(window_ms: u64) -> SwarmAsk {
    SwarmAsk {
        question: "What is 17 * 23?".into(),
        skill: "bench".into(),
        max_price: U256::from(10u64.pow(12)),
        token: Address::ZERO,
        window_ms,
        answer_ms: 2_000,
    }
}

/// (decision µs, total ms, after-close ms) of answered queries.
#[derive(Default)]
struct Samples {
    decision_us: Vec<f64>,
    total_ms: Vec<f64>,
}

impl Samples {
    fn push(&mut self, a: &Answered, t: Duration) {
        self.decision_us.push(a.decision_us as f64);
        self.total_ms.push(t.as_secs_f64() * 1e3);
    }

    fn summary(&mut self, window_ms: u64) -> serde_json::Value {
        let w = window_ms as f64;
        let (d50, d99) = (pct(&mut self.decision_us, 0.5), pct(&mut self.decision_us, 0.99));
        let (t50, t99) = (pct(&mut self.total_ms, 0.5), pct(&mut self.total_ms, 0.99));
        json!({
            "answered": self.total_ms.len(),
            "decision_us_p50": d50.round(), "decision_us_p99": d99.round(),
            "answer_ms_p50": (t50 * 10.0).round() / 10.0, "answer_ms_p99": (t99 * 10.0).round() / 10.0,
            "after_close_ms_p50": ((t50 - w) * 10.0).round() / 10.0,
            "after_close_ms_p99": ((t99 - w) * 10.0).round() / 10.0,
        })
    }
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let o = Opts::parse()?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let reef = root.join("target/release/reef");
    if !reef.is_file() {
        return Err(eyre!(
            "{} not found: cargo build --release -p marketplace-node --bins",
            reef.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("reef-swarm-bench-{}", rand::random::<u32>()));
    std::fs::create_dir_all(dir.join("deployments"))?;
    let result = run(&o, &reef, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(o: &Opts, reef: &std::path::Path, dir: &std::path::Path) -> eyre::Result<()> {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await?;
    let deployer = ReefClient::connect(
        &anvil.rpc_url,
        dev_signer(0),
        empty_deployment(31337),
        ClientOptions::default(),
    )
    .await?;
    let (dep, _) = deploy_all(
        &deployer,
        &DeployConfig::devnet((0..6).map(|i| dev_signer(i).address()).collect()),
    )
    .await?;
    dep.save(&dir.join("deployments/31337.json"))?;
    let mut node = Command::new(reef)
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--node-id",
            "swarm-bench",
            "--no-indexer",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}/node.db", dir.display()))
        .args(["--rpc-url", &anvil.rpc_url, "--market-dev-account", "5"])
        .args(["--rate-per-sec", "100000", "--rate-burst", "100000"])
        .arg("--deployments")
        .arg(dir.join("deployments"))
        .env("RUST_LOG", std::env::var("BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .wrap_err("start reef node")?;
    let mut line = String::new();
    BufReader::new(node.stdout.take().ok_or_else(|| eyre!("no stdout"))?).read_line(&mut line)?;
    let node = Kill(node);
    let listen = serde_json::from_str::<serde_json::Value>(&line)
        .wrap_err_with(|| format!("node printed {line:?}"))?["listen"]
        .as_str()
        .ok_or_else(|| eyre!("node printed {line:?}"))?
        .to_string();
    let ws = format!("ws://{listen}/v1/ws");
    eprintln!("node at {ws}; connecting {} bidders", o.bidders);

    // Bidders: random keys, a random price each, a fixed answer, answered at once.
    let mut bidders = Vec::new();
    for _ in 0..o.bidders {
        let signer = PrivateKeySigner::random();
        let (ioa, _events) = Client::connect(&ws, signer).await?;
        let mut rx = ioa.swarm_listen(vec!["bench".into()]).await?;
        let price = U256::from(1_000_000_000u64 + rand::random::<u32>() as u64);
        let c = ioa.clone();
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                let c = c.clone();
                match p {
                    SwarmPush::Query(q) => {
                        tokio::spawn(async move {
                            let _ = c.swarm_bid(&q.query_id, price).await;
                        });
                    }
                    SwarmPush::Award(a) => {
                        tokio::spawn(async move {
                            let _ = c.swarm_answer(&a.query_id, json!(391)).await;
                        });
                    }
                    _ => {}
                }
            }
        });
        bidders.push(ioa);
    }

    // Posters: dev accounts but 5 (the node's evaluator), each with a channel to every bidder.
    let devs: Vec<usize> = (0..10).filter(|d| *d != 5).take(o.posters).collect();
    eprintln!(
        "opening {} channels ({} posters × {} bidders)",
        devs.len() * o.bidders,
        devs.len(),
        o.bidders
    );
    let mut setups = Vec::new();
    for (i, dev) in devs.iter().copied().enumerate() {
        let (ws, rpc, dep, dir) =
            (ws.clone(), anvil.rpc_url.clone(), dep.clone(), dir.to_path_buf());
        let payees: Vec<Address> = bidders.iter().map(Client::address).collect();
        // One poster at a time: concurrent channel opens from several accounts made anvil's
        // receipts time out in the client on this machine.
        let setup = tokio::spawn(async move {
            let chain =
                ReefClient::connect(&rpc, dev_signer(dev), dep, ClientOptions::default()).await?;
            let (ioa, _events) = Client::connect(&ws, dev_signer(dev)).await?;
            let mut p = Poster::new(
                chain,
                ioa,
                PosterConfig {
                    deposit: 10u128.pow(18),
                    challenge_period: 3_600,
                    state_dir: dir.join(format!("poster-{i}")),
                },
            )?;
            for a in payees {
                p.channel_for(a, Address::ZERO, U256::from(10u64.pow(12))).await?;
            }
            Ok::<_, eyre::Report>(p)
        });
        setups.push(setup.await??);
    }
    let mut posters = setups;

    // 1. Latency: one poster, one query at a time.
    eprintln!("latency: {} queries, one at a time", o.queries);
    let mut seq = Samples::default();
    let mut failed = 0usize;
    let first = &mut posters[0];
    for _ in 0..o.queries {
        let t = Instant::now();
        match first.ask(ask(o.window_ms)).await {
            Ok(a) => seq.push(&a, t.elapsed()),
            Err(e) => {
                failed += 1;
                eprintln!("query failed: {e}");
            }
        }
    }
    let latency = seq.summary(o.window_ms);

    // 2. Capacity: every poster keeps `in_flight` asks open; invoices are paid in order.
    eprintln!("capacity: {} posters × {} in flight for {} s", posters.len(), o.in_flight, o.secs);
    let node_pid = node.0.id();
    let cpu0 = cpu_of(node_pid);
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(o.secs);
    let mut runs = Vec::new();
    for mut p in posters {
        let window = o.window_ms;
        let in_flight = o.in_flight;
        runs.push(tokio::spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(in_flight);
            let client = p.client().clone();
            let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
            let asker = tokio::spawn(async move {
                while Instant::now() < until {
                    let Ok(permit) = sem.clone().acquire_owned().await else { break };
                    let (c, tx) = (client.clone(), tx.clone());
                    tokio::spawn(async move {
                        let t = Instant::now();
                        let r = c.swarm_ask(ask(window)).await;
                        let _ = tx.send((t, r, permit)).await;
                    });
                }
            });
            let mut s = Samples::default();
            let mut failed = std::collections::BTreeMap::<String, usize>::new();
            while let Some((t, r, permit)) = rx.recv().await {
                let r = match r.map_err(marketplace_node::swarm::Error::from) {
                    Ok(outcome) => p.settle(outcome).await,
                    Err(e) => Err(e),
                };
                match r {
                    Ok(a) => s.push(&a, t.elapsed()),
                    Err(e) => {
                        let why = match &e {
                            marketplace_node::swarm::Error::Failed { code, .. }
                            | marketplace_node::swarm::Error::Refused { code, .. } => {
                                code.to_string()
                            }
                            other => other.to_string(),
                        };
                        *failed.entry(why).or_default() += 1;
                    }
                }
                drop(permit);
            }
            let _ = asker.await;
            (s, failed)
        }));
    }
    let mut load = Samples::default();
    let mut load_failed = std::collections::BTreeMap::<String, usize>::new();
    for r in runs {
        let (s, f) = r.await?;
        load.decision_us.extend(s.decision_us);
        load.total_ms.extend(s.total_ms);
        for (k, n) in f {
            *load_failed.entry(k).or_default() += n;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_of(node_pid).zip(cpu0).map(|(b, a)| b - a);
    let answered = load.total_ms.len();
    let qps = answered as f64 / elapsed;
    let mut capacity = load.summary(o.window_ms);
    capacity["queries_per_s"] = json!((qps * 10.0).round() / 10.0);
    capacity["failed"] = json!(load_failed);
    capacity["node_cpu_ms_per_query"] =
        json!(cpu.map(|c| (c * 1e3 / answered.max(1) as f64 * 100.0).round() / 100.0));
    capacity["node_cpu_share"] = json!(cpu.map(|c| (c / elapsed * 100.0).round() / 100.0));

    let report = json!({
        "bidders": o.bidders, "window_ms": o.window_ms, "posters": o.posters,
        "in_flight_per_poster": o.in_flight,
        "latency": { "queries": o.queries, "failed": failed, "figures": latency },
        "capacity": capacity,
    });
    if o.json {
        println!("{report}");
    } else {
        let l = &report["latency"]["figures"];
        let c = &report["capacity"];
        println!(
            "swarm auctions: {} bidders, {} ms window, one reef node (SQLite), anvil",
            o.bidders, o.window_ms
        );
        println!(
            "  one at a time ({} queries, {} failed): decision after close p50 {} µs, p99 {} µs (goal ≤ 5,000 µs)",
            o.queries, failed, l["decision_us_p50"], l["decision_us_p99"]
        );
        println!(
            "    answer latency (ask → paid answer) p50 {} ms, p99 {} ms; after the close p50 {} ms, p99 {} ms",
            l["answer_ms_p50"],
            l["answer_ms_p99"],
            l["after_close_ms_p50"],
            l["after_close_ms_p99"]
        );
        println!(
            "  under load ({} posters × {} in flight, {} s): {} queries/s answered and paid ({} failed), node CPU {} ms/query ({} cores busy)",
            o.posters,
            o.in_flight,
            o.secs,
            c["queries_per_s"],
            c["failed"],
            c["node_cpu_ms_per_query"],
            c["node_cpu_share"]
        );
        println!(
            "    decision p50 {} µs, p99 {} µs; answer latency p50 {} ms, p99 {} ms",
            c["decision_us_p50"], c["decision_us_p99"], c["answer_ms_p50"], c["answer_ms_p99"]
        );
    }
    drop(bidders);
    drop(node);
    Ok(())
}
