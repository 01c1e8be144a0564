//! Randomized crash test: while two posters run bounties through the marketplace, the node and
//! the agents are killed with `kill -9` at seeded random moments and restarted. Afterwards the
//! chain must show every bounty completed exactly once, and every token balance must match what
//! the awards say to the unit: each poster paid exactly its winning prices, each agent got
//! exactly the net pay of the bounties it provided, and the escrow holds exactly the fees.
//!
//! Size and seed: `REEF_CHAOS_BOUNTIES` (default 20 lifecycles) and `REEF_CHAOS_SEED` (default
//! 17). `make test` runs the default; `make chaos` a larger run.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::primitives::{Address, U256};
use escrow_client::{
    ClientOptions, ReefClient, Status,
    devnet::{AnvilOptions, AnvilProcess, dev_signer, free_port},
};
use serde_json::Value;

mod common;

use common::{Kill, reef, start_node, start_sort_agent};

/// splitmix64: a small seeded generator (the schedule must replay from its seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` milliseconds.
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const POSTERS: [usize; 2] = [0, 4];
const AGENTS: [usize; 3] = [1, 2, 3];

/// Runs `count` sort bounties one after another as dev account `dev`; returns their ids.
fn poster(dev: usize, count: u64, http: String, rpc: String, deployments: PathBuf) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let out = common::wait_with_deadline(
            common::spawn_captured(
                reef()
                    .args(["bounty", "post", "Sort these numbers ascending", "--reward", "5"])
                    .args(["--token", "test", "--node", &http, "--skills", "sort"])
                    .args(["--bid-window", "2s", "--deadline", "1h", "--input", "[5,3,9,1]"])
                    .args(["--verify", "hash", "--expect", "[1,3,5,9]", "--approve"])
                    .args(["--dev-account", &dev.to_string(), "--json", "--rpc-url", &rpc])
                    .arg("--deployments")
                    .arg(&deployments),
            ),
            600,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "poster {dev}, bounty {i} did not settle:\n{stderr}");
        let res: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(res["status"], "completed", "poster {dev}, bounty {i}: {res}");
        ids.push(res["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_node_and_agents_at_random_moments_loses_and_double_pays_nothing() {
    let lifecycles = env_u64("REEF_CHAOS_BOUNTIES", 20).max(2);
    let seed = env_u64("REEF_CHAOS_SEED", 17);
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("chaos");
    let deployments = dir.join("deployments");
    let dep = common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let token = dep.test_token.expect("devnet test token");
    let chain =
        ReefClient::connect(&anvil.rpc_url, dev_signer(0), dep.clone(), ClientOptions::default())
            .await
            .unwrap();
    let accounts: Vec<Address> =
        POSTERS.iter().chain(AGENTS.iter()).map(|d| dev_signer(*d).address()).collect();
    let mut before: HashMap<Address, U256> = HashMap::new();
    for a in accounts.iter().chain([&dep.bounty_escrow]) {
        before.insert(*a, chain.token_balance(token, *a).await.unwrap());
    }

    let port = free_port().unwrap();
    let http = format!("http://127.0.0.1:{port}");
    let node = start_node(&dir, &anvil.rpc_url, port, "chaos", &[]);
    let mut agents: Vec<Kill> =
        AGENTS.iter().map(|d| start_sort_agent(port, &anvil.rpc_url, *d)).collect();
    for d in AGENTS {
        common::wait_agent_online(&http, dev_signer(d).address(), "an agent").await;
    }

    // The posters, each in its own thread (the CLI is a blocking child process).
    let t0 = Instant::now();
    let posters: Vec<_> = POSTERS
        .iter()
        .enumerate()
        .map(|(i, dev)| {
            let n = lifecycles / 2 + u64::from(i == 0) * (lifecycles % 2);
            let (http, rpc, deps) = (http.clone(), anvil.rpc_url.clone(), deployments.clone());
            let dev = *dev;
            tokio::task::spawn_blocking(move || poster(dev, n, http, rpc, deps))
        })
        .collect();

    // The chaos: until the posters are done, every 1.5..5 s kill -9 the node or an agent,
    // and restart it after a random pause.
    let done = Arc::new(AtomicBool::new(false));
    let (node_kills, agent_kills) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let chaos = {
        let (done, node_kills, agent_kills) =
            (done.clone(), node_kills.clone(), agent_kills.clone());
        let (dir, rpc) = (dir.clone(), anvil.rpc_url.clone());
        tokio::spawn(async move {
            let mut rng = Rng(seed);
            let mut node = node;
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(rng.ms(1_500, 5_000)).await;
                if done.load(Ordering::Relaxed) {
                    break;
                }
                if rng.next().is_multiple_of(2) {
                    node.0.kill().unwrap();
                    node.0.wait().unwrap();
                    node_kills.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(rng.ms(0, 1_000)).await;
                    node = start_node(&dir, &rpc, port, "chaos", &[]);
                } else {
                    let k = (rng.next() % agents.len() as u64) as usize;
                    agents[k].0.kill().unwrap();
                    agents[k].0.wait().unwrap();
                    agent_kills.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(rng.ms(200, 2_000)).await;
                    agents[k] = start_sort_agent(port, &rpc, AGENTS[k]);
                }
            }
            (node, agents)
        })
    };
    let mut ids: HashMap<usize, Vec<String>> = HashMap::new();
    for (p, dev) in posters.into_iter().zip(POSTERS) {
        ids.insert(dev, p.await.unwrap());
    }
    done.store(true, Ordering::Relaxed);
    let (_node, _agents) = chaos.await.unwrap();
    let (nk, ak) = (node_kills.load(Ordering::Relaxed), agent_kills.load(Ordering::Relaxed));

    // From the chain: every bounty completed exactly once, and the balances to the unit.
    let mut expect: HashMap<Address, i128> = HashMap::new();
    let mut completions = 0;
    for (dev, list) in &ids {
        for id in list {
            let id = marketplace_node::market::parse_id(id).unwrap();
            let state = chain.bounty(id).await.unwrap();
            assert_eq!(state.status, Status::Completed, "bounty {id:#x}: {:?}", state.history);
            let paid = state.history.iter().filter(|h| h.event == "BountyCompleted").count();
            assert_eq!(paid, 1, "bounty {id:#x} completed {paid} times: {:?}", state.history);
            completions += paid;
            let r = &state.record;
            let price = i128::try_from(r.price).unwrap();
            let fee = price * i128::from(r.feeBps) / 10_000;
            *expect.entry(dev_signer(*dev).address()).or_default() -= price;
            *expect.entry(r.provider).or_default() += price - fee;
            *expect.entry(dep.bounty_escrow).or_default() += fee;
        }
    }
    assert_eq!(completions as u64, lifecycles, "lifecycles lost");
    for a in accounts.iter().chain([&dep.bounty_escrow]) {
        let now = chain.token_balance(token, *a).await.unwrap();
        let delta = i128::try_from(now).unwrap() - i128::try_from(before[a]).unwrap();
        assert_eq!(delta, expect.get(a).copied().unwrap_or(0), "balance of {a} is off");
    }
    eprintln!(
        "CHAOS seed {seed}: {lifecycles} lifecycles in {:.0?}, {nk} node kills, {ak} agent kills, 0 lost, 0 paid twice, balances exact",
        t0.elapsed()
    );
}
