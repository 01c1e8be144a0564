//! End-to-end marketplace benchmark: bounties settled per second on anvil with N agents,
//! compared in the same run with anvil's raw transaction rate divided by the transactions a
//! bounty needs on-chain.
//!
//! ```text
//! cargo build --release -p marketplace-node --bins      # the `reef` binary the bench runs
//! cargo run --release -p marketplace-node --example market_bench [-- --agents 50 --bounties 100 --json]
//! ```
//!
//! What it does, all in one run on a fresh anvil (automine):
//!
//! 1. Raw rate: `--raw-txs` pre-signed ETH transfers (then as many ERC-20 transfers) sent
//!    concurrently from the poster keys; tx/s from the first send to the last receipt. Then
//!    the escrow alone: `--raw-txs` / 2 ETH bounties' own two transactions (postFundAndAward
//!    with a signed bid, then submitAndAttest with a signed verdict), pre-signed and sent the
//!    same way: the bounties/s anvil could settle if the marketplace cost nothing.
//! 2. Marketplace: `reef node` with the marketplace, `--agents` `reef agent run` processes
//!    (sorting brain, hash verification), `--posters` poster keys that drive the node's REST API
//!    directly (post → wait for the sealed-bid window → `postFundAndAward` with the winning
//!    bid → follow to `settled`). Bounties/s is measured from the first post to the last
//!    `settled` event; per-stage latencies come from the node's event timestamps.
//! 3. Ceiling = raw ETH-transfer tx/s ÷ transactions per bounty (postFundAndAward +
//!    submitAndAttest = 2; the poster's one-time approve is amortized and reported apart).
//! 4. CPU: seconds each part used during the marketplace run (anvil, the node, the agents, the
//!    programs the agents ran, the posters), from `/proc`, and per settled bounty; and the
//!    JSON-RPC requests anvil served (counted in its log), per settled bounty.
//!
//! The agents' brain is `examples/agents/sort.py` (`--brain python`, the default) or the
//! compiled `sort_brain` example (`--brain native`), which leaves out ~20 ms of Python
//! start-up per task.
//!
//! Every spawned process (anvil, node, agents and their process groups) is killed and the
//! temporary directory removed on exit, on error and on Ctrl-C (`--keep` keeps it, with the
//! logs). `BENCH_NODE_LOG` and `BENCH_AGENT_LOG` set the node's and the agents' `RUST_LOG`
//! (default `warn`); e.g. `alloy_rpc_client=trace` logs every JSON-RPC request they make, and
//! anvil's own log names every request it served.

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    eips::eip2718::Encodable2718,
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, Bytes, U256, keccak256, utils::parse_ether},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use escrow_client::{
    ClientOptions, Deployment, ReefClient,
    bindings::{escrow::IBountyTypes::Bid, token::ReefTestToken},
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    escrow::{BidJson, NewBounty, RecordJson, random_salt},
};
use eyre::{WrapErr, bail, eyre};
use marketplace_node::{cmd::nodeapi::NodeApi, market::verify::result_hash};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    agents: usize,
    bounties: usize,
    posters: usize,
    raw_txs: usize,
    raw_concurrency: usize,
    /// Sealed-bid window in milliseconds.
    bid_window_ms: u64,
    tick_ms: u64,
    /// Agents invited per call for proposals (0 = all; the node's `--cfp-fanout`).
    fanout: usize,
    /// Posters follow their bounties by polling every this many ms (0 = long-poll, as the CLI).
    poll_ms: u64,
    /// The agents' sorting brain: `python` (examples/agents/sort.py) or `native`
    /// (the `sort_brain` example, built next to this bench).
    brain: String,
    timeout_secs: u64,
    /// After the main run: post at these multiples of the bounties/s it measured.
    overload: Vec<f64>,
    /// How long each overload phase posts.
    overload_secs: u64,
    /// Open-loop capacity mode: post at these fixed rates (bounties/s), each for
    /// `capacity_secs`, instead of the burst; empty with `capacity_auto` = doubling steps.
    capacity: Vec<f64>,
    /// Capacity mode with automatic steps (start at `capacity_start`, ×1.5 until unbounded).
    capacity_auto: bool,
    /// First rate of the automatic steps.
    capacity_start: f64,
    /// How long each capacity step posts (≥ 60 s for the issue's figure).
    capacity_secs: u64,
    /// Both anvils mine a block every this many seconds instead of one per transaction
    /// (automine): per-block work (anvil hashes the state trie for every block) is then shared
    /// by every transaction in the block, as on a chain with a block time.
    block_time: Option<u64>,
    no_indexer: bool,
    keep: bool,
    json: bool,
    reef: Option<PathBuf>,
}

const USAGE: &str = "market_bench [--agents 50] [--bounties 100] [--posters 10] [--raw-txs 2000]
             [--raw-concurrency 32] [--bid-window 3s|500ms] [--tick-ms 100] [--fanout 0] [--poll-ms 0] [--timeout 150]
             [--brain python|native] [--overload 2,4] [--overload-secs 15]
             [--capacity auto|R1,R2,…] [--capacity-start 4] [--capacity-secs 60] [--block-time SECS]
             [--no-indexer] [--keep] [--reef PATH] [--json]";

impl Opts {
    fn parse() -> eyre::Result<Self> {
        let mut o = Self {
            agents: 50,
            bounties: 100,
            posters: 10,
            raw_txs: 2_000,
            raw_concurrency: 32,
            bid_window_ms: 3_000,
            tick_ms: 100,
            fanout: 0,
            poll_ms: 0,
            brain: "python".into(),
            timeout_secs: 150,
            overload: Vec::new(),
            overload_secs: 15,
            capacity: Vec::new(),
            capacity_auto: false,
            capacity_start: 4.0,
            capacity_secs: 60,
            block_time: None,
            no_indexer: false,
            keep: false,
            json: false,
            reef: None,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            let mut val = || -> eyre::Result<String> {
                i += 1;
                args.get(i).cloned().ok_or_else(|| eyre!("{a} needs a value\nusage: {USAGE}"))
            };
            let num = |s: String| -> eyre::Result<u64> {
                s.trim_end_matches('s').parse().map_err(|_| eyre!("{a}: {s:?} is not a number"))
            };
            match a {
                "--agents" => o.agents = num(val()?)? as usize,
                "--bounties" => o.bounties = num(val()?)? as usize,
                "--posters" => o.posters = num(val()?)? as usize,
                "--raw-txs" => o.raw_txs = num(val()?)? as usize,
                "--raw-concurrency" => o.raw_concurrency = num(val()?)? as usize,
                "--bid-window" => {
                    let v = val()?;
                    o.bid_window_ms = match v.strip_suffix("ms") {
                        Some(ms) => num(ms.to_string())?,
                        None => num(v)?.saturating_mul(1000),
                    }
                }
                "--tick-ms" => o.tick_ms = num(val()?)?,
                "--fanout" => o.fanout = num(val()?)? as usize,
                "--poll-ms" => o.poll_ms = num(val()?)?,
                "--brain" => {
                    o.brain = val()?;
                    if o.brain != "python" && o.brain != "native" {
                        bail!("--brain is python or native, not {:?}\nusage: {USAGE}", o.brain);
                    }
                }
                "--timeout" => o.timeout_secs = num(val()?)?,
                "--overload" => {
                    o.overload = val()?
                        .split(',')
                        .map(|f| {
                            f.trim()
                                .parse::<f64>()
                                .map_err(|_| eyre!("--overload: {f:?} is not a number"))
                        })
                        .collect::<eyre::Result<_>>()?;
                    if o.overload.iter().any(|f| f.is_nan() || *f <= 0.0) {
                        bail!("--overload factors must be positive");
                    }
                }
                "--overload-secs" => o.overload_secs = num(val()?)?.max(1),
                "--capacity" => {
                    let v = val()?;
                    if v == "auto" {
                        o.capacity_auto = true;
                    } else {
                        o.capacity = v
                            .split(',')
                            .map(|f| {
                                f.trim()
                                    .parse::<f64>()
                                    .ok()
                                    .filter(|r| r.is_finite() && *r > 0.0)
                                    .ok_or_else(|| {
                                        eyre!("--capacity: {f:?} is not a positive rate")
                                    })
                            })
                            .collect::<eyre::Result<_>>()?;
                    }
                }
                "--capacity-start" => {
                    let v = val()?;
                    o.capacity_start =
                        v.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0).ok_or_else(
                            || eyre!("--capacity-start: {v:?} is not a positive rate"),
                        )?;
                }
                "--capacity-secs" => o.capacity_secs = num(val()?)?.max(1),
                "--block-time" => o.block_time = Some(num(val()?)?.max(1)),
                "--no-indexer" => o.no_indexer = true,
                "--keep" => o.keep = true,
                "--json" => o.json = true,
                "--reef" => o.reef = Some(PathBuf::from(val()?)),
                "-h" | "--help" => {
                    println!("usage: {USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\nusage: {USAGE}"),
            }
            i += 1;
        }
        if o.agents == 0 || o.bounties == 0 || o.posters == 0 || o.raw_concurrency == 0 {
            bail!("--agents, --bounties, --posters and --raw-concurrency must be positive");
        }
        if o.bid_window_ms < 100 {
            bail!("--bid-window must be at least 100ms (the node's shortest window)");
        }
        o.posters = o.posters.min(o.bounties);
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting

/// CPU seconds of each part of the run, from `/proc/<pid>/stat` (Linux): anvil, the node, the
/// agents themselves, the programs the agents ran (their brains and shells: CPU of reaped
/// children, counted once they exited) and this process (the posters).
#[derive(Debug, Default, Clone, Copy)]
struct CpuSample {
    anvil: f64,
    node: f64,
    agents: f64,
    brains: f64,
    posters: f64,
}

/// (own, reaped children's) CPU seconds of `pid`; `None` off Linux or once it is gone.
fn cpu_of(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state);
    // utime, stime, cutime, cstime are fields 14..=17.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(((n(14)? + n(15)?) / tick, (n(16)? + n(17)?) / tick))
}

impl CpuSample {
    fn take(env: &Env) -> Self {
        let own = |pid: Option<u32>| pid.and_then(cpu_of).map_or(0.0, |c| c.0);
        let mut s = Self {
            anvil: own(env.anvil.as_ref().and_then(AnvilProcess::pid)),
            node: own(env.node.as_ref().map(|p| p.child.id())),
            posters: cpu_of(std::process::id()).map_or(0.0, |c| c.0),
            ..Self::default()
        };
        for a in &env.agents {
            if let Some((own, children)) = cpu_of(a.child.id()) {
                s.agents += own;
                s.brains += children;
            }
        }
        s
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            anvil: self.anvil - before.anvil,
            node: self.node - before.node,
            agents: self.agents - before.agents,
            brains: self.brains - before.brains,
            posters: self.posters - before.posters,
        }
    }

    /// CPU seconds of every part together.
    fn total(&self) -> f64 {
        self.anvil + self.node + self.agents + self.brains + self.posters
    }

    fn to_json(self, wall: Duration, settled: usize) -> Value {
        let total = self.total();
        let per = |v: f64| if settled > 0 { v * 1e3 / settled as f64 } else { 0.0 };
        let cores = cores();
        json!({
            "anvil": self.anvil, "node": self.node, "agents": self.agents,
            "agent_programs": self.brains, "posters": self.posters, "total": total,
            "ms_per_settled_bounty": {
                "anvil": per(self.anvil), "node": per(self.node), "agents": per(self.agents),
                "agent_programs": per(self.brains), "posters": per(self.posters), "total": per(total),
            },
            "cores": cores as u64,
            "busy_share": total / (wall.as_secs_f64() * cores).max(1e-9),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Process and temp-dir guards

/// A child process in its own process group; the whole group is killed on drop.
struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn spawn(mut cmd: Command, name: impl Into<String>) -> eyre::Result<Self> {
        use std::os::unix::process::CommandExt;
        let name = name.into();
        cmd.process_group(0);
        let child = cmd.spawn().wrap_err_with(|| format!("cannot start {name}"))?;
        Ok(Self { child, name })
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: plain kill(2) on the process group we created for this child.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop (unless `--keep`).
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The `reef` binary next to this example's build directory (target/<profile>/reef).
fn locate_reef(opt: &Option<PathBuf>) -> eyre::Result<PathBuf> {
    if let Some(p) = opt {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(eyre!("--reef {}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe()?;
    // target/release/examples/market_bench → target/release/reef
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("reef"))
        .ok_or_else(|| eyre!("cannot derive the target directory from {}", exe.display()))?;
    if !candidate.is_file() {
        bail!(
            "the `reef` binary is not built at {}.\nBuild it first with:\n  cargo build --release -p marketplace-node --bins\n(or pass --reef /path/to/reef)",
            candidate.display()
        );
    }
    // Warn when sources changed after the binary was built (a stale node would be measured).
    let built = std::fs::metadata(&candidate)?.modified()?;
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for dir in
        ["marketplace-node/src", "escrow-client/src", "agent-sdk/src", "wire/src", "indexer/src"]
    {
        walk(&repo().join(dir), &mut |p| {
            if let Ok(m) = std::fs::metadata(p).and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(t, _)| m > *t)
            {
                newest = Some((m, p.to_path_buf()));
            }
        });
    }
    if let Some((t, p)) = newest
        && t > built
    {
        eprintln!(
            "warning: {} is newer than {}; rebuild with `cargo build --release -p marketplace-node --bins`",
            p.display(),
            candidate.display()
        );
    }
    Ok(candidate)
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

/// JSON-RPC requests anvil logged so far, by method: it writes each request's method name
/// (`eth_call`, `eth_getLogs`, `anvil_mine`, …) on a line of its own.
fn rpc_requests(anvil_log: &Path) -> std::collections::BTreeMap<String, usize> {
    let is_method = |l: &str| {
        ["eth_", "net_", "anvil_", "evm_", "web3_"].iter().any(|p| l.starts_with(p))
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let text = std::fs::read_to_string(anvil_log).unwrap_or_default();
    let mut by_method = std::collections::BTreeMap::new();
    let mut last = "";
    for l in text.lines().map(str::trim_end).filter(|l| is_method(l)) {
        // Anvil logs an `eth_sendRawTransactionSync` twice: as itself, then as the
        // `eth_sendRawTransaction` it runs inside. One request.
        let inner = last == "eth_sendRawTransactionSync" && l == "eth_sendRawTransaction";
        last = l;
        if !inner {
            *by_method.entry(l.to_string()).or_insert(0) += 1;
        }
    }
    by_method
}

/// The node's counters from `GET /metrics` (a plain HTTP/1.0 request): SQL statements by text
/// (`reef_db_statements_total`) and the escrow client's JSON-RPC calls by method
/// (`reef_rpc_calls_total`), each as label → count.
#[derive(Debug, Default, Clone)]
struct NodeCounters {
    sql: std::collections::BTreeMap<String, u64>,
    rpc: std::collections::BTreeMap<String, u64>,
}

impl NodeCounters {
    fn scrape(listen: &str) -> eyre::Result<Self> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(listen)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {listen}\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let mut c = Self::default();
        for line in body.lines() {
            if let Some(n) = line.strip_prefix("reef_db_transactions_total ") {
                // BEGIN and COMMIT: two statements per transaction that sqlx does not report.
                let n = n.trim().parse::<f64>().unwrap_or_default() as u64;
                c.sql.insert("BEGIN … COMMIT (2 per transaction)".into(), 2 * n);
                continue;
            }
            let (map, rest) =
                if let Some(r) = line.strip_prefix("reef_db_statements_total{statement=\"") {
                    (&mut c.sql, r)
                } else if let Some(r) = line.strip_prefix("reef_rpc_calls_total{method=\"") {
                    (&mut c.rpc, r)
                } else {
                    continue;
                };
            let Some((label, value)) = rest.rsplit_once("\"} ") else { continue };
            let label = label.replace("\\\"", "\"").replace("\\n", "\n").replace("\\\\", "\\");
            if let Ok(v) = value.trim().parse::<f64>() {
                map.insert(label, v as u64);
            }
        }
        Ok(c)
    }

    fn since(&self, before: &Self) -> Self {
        let diff = |a: &std::collections::BTreeMap<String, u64>,
                    b: &std::collections::BTreeMap<String, u64>| {
            a.iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(b.get(k).copied().unwrap_or(0))))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        Self { sql: diff(&self.sql, &before.sql), rpc: diff(&self.rpc, &before.rpc) }
    }
}

/// `{total, per_settled_bounty, per_settled_bounty_by_label}` of a counter map, the labels
/// sorted by count (largest first).
fn per_bounty(map: &std::collections::BTreeMap<String, u64>, settled: usize) -> Value {
    let n = settled.max(1) as f64;
    let total: u64 = map.values().sum();
    let mut by: Vec<(&String, &u64)> = map.iter().collect();
    by.sort_by(|a, b| b.1.cmp(a.1));
    json!({
        "total": total,
        "per_settled_bounty": total as f64 / n,
        "by_label": by.iter().map(|(k, v)| json!({ "label": k, "per_settled_bounty": **v as f64 / n, "total": v })).collect::<Vec<_>>(),
    })
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Raw transactions

fn http_provider(rpc: &str) -> eyre::Result<DynProvider> {
    Ok(ProviderBuilder::new().disable_recommended_fillers().connect_http(rpc.parse()?).erased())
}

/// Pre-signs `count` transactions spread over `senders`: `make(sender_index, k)` gives
/// (to, value, input, gas) for the sender's k-th transaction. Returns them per sender in nonce
/// order.
async fn presign(
    p: &DynProvider,
    senders: &[PrivateKeySigner],
    count: usize,
    chain_id: u64,
    make: impl Fn(usize, usize) -> (Address, U256, Bytes, u64),
) -> eyre::Result<Vec<(Address, Vec<Bytes>)>> {
    let mut per_sender = Vec::with_capacity(senders.len());
    for (si, s) in senders.iter().enumerate() {
        let nonce = p.get_transaction_count(s.address()).pending().await?;
        let wallet = EthereumWallet::from(s.clone());
        let mine = count / senders.len() + usize::from(si < count % senders.len());
        let mut v = Vec::with_capacity(mine);
        for k in 0..mine {
            let (to, value, input, gas) = make(si, k);
            let tx = TransactionRequest::default()
                .with_from(s.address())
                .with_to(to)
                .with_value(value)
                .with_input(input)
                .with_nonce(nonce + k as u64)
                .with_gas_limit(gas)
                .with_max_fee_per_gas(20_000_000_000)
                .with_max_priority_fee_per_gas(1_000_000_000)
                .with_chain_id(chain_id);
            let env = tx.build(&wallet).await.map_err(|e| eyre!("signing: {e}"))?;
            v.push(Bytes::from(env.encoded_2718()));
        }
        per_sender.push((s.address(), v));
    }
    Ok(per_sender)
}

/// Sends each sender's pre-signed transactions in nonce order (one request in flight per
/// sender, all senders concurrently, so anvil never sees a nonce gap), then waits until every
/// sender's mined nonce covers them (a cheap "last receipt" check that does not load anvil with
/// one receipt poll per transaction). Returns the time from the first send until the last
/// transaction was seen mined.
async fn blast(
    p: &DynProvider,
    per_sender: Vec<(Address, Vec<Bytes>)>,
) -> eyre::Result<(Duration, usize)> {
    let t0 = Instant::now();
    let sends = per_sender.iter().map(|(_, txs)| {
        let p = p.clone();
        async move {
            for raw in txs {
                let _ = p.send_raw_transaction(raw).await?;
            }
            Ok::<_, eyre::Report>(())
        }
    });
    for r in futures::future::join_all(sends).await {
        r?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut kicks = 0usize;
    for (s, _) in &per_sender {
        let want = p.get_transaction_count(*s).pending().await?;
        let (mut last, mut since) = (0u64, Instant::now());
        loop {
            let mined = p.get_transaction_count(*s).await?;
            if mined >= want {
                break;
            }
            if mined != last {
                (last, since) = (mined, Instant::now());
            } else if since.elapsed() > Duration::from_millis(200)
                && !INTERVAL_MINING.load(std::sync::atomic::Ordering::Relaxed)
            {
                // anvil's automine can leave ready transactions in its pool when they arrive
                // while a block is being mined (nothing triggers the next block): mine one.
                let _: String = p.raw_request("evm_mine".into(), ()).await?;
                kicks += 1;
                since = Instant::now();
            }
            if Instant::now() > deadline {
                bail!("transactions from {s} not mined within 60 s ({mined} of {want})");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok((t0.elapsed(), kicks))
}

// ---------------------------------------------------------------------------------------------
// Marketplace

/// What one bounty's poster task saw.
#[derive(Debug, Default)]
struct Outcome {
    id: String,
    phase: String,
    events: Vec<(String, u64)>,
    /// When the node closes bidding (unix ms).
    bid_close_ms: u64,
    bids: u64,
    winner: Option<String>,
    /// ms: poster noticed `awaiting_award` / award transaction mined.
    seen_awaiting_ms: Option<u64>,
    award_done_ms: Option<u64>,
    award_tx_ms: Option<f64>,
    /// Posts the node refused with `503 busy` (admission control) before taking this one.
    busy: u32,
    error: Option<String>,
}

impl Outcome {
    fn at(&self, ev: &str) -> Option<u64> {
        self.events.iter().find(|(e, _)| e == ev).map(|(_, t)| *t)
    }
}

struct Poster {
    client: ReefClient,
    api: NodeApi,
    template: escrow_client::bindings::escrow::IBountyTypes::Bounty,
}

/// `--poll-ms` (shared by every poster task).
static POLL_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Set with `--block-time`: anvil mines on its interval, and [`blast`] must not mine extra
/// blocks to unstick its automine.
static INTERVAL_MINING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn run_bounty(poster: Arc<Poster>, i: usize, window_ms: u64, timeout: Duration) -> Outcome {
    let mut out = Outcome::default();
    if let Err(e) = drive_bounty(&poster, i, window_ms, timeout, &mut out).await {
        out.error = Some(format!("{e:#}"));
    }
    out
}

async fn drive_bounty(
    poster: &Poster,
    i: usize,
    window_ms: u64,
    timeout: Duration,
    out: &mut Outcome,
) -> eyre::Result<()> {
    let give_up = Instant::now() + timeout;
    let numbers: Vec<i64> = (0..8).map(|_| rand::random::<i32>() as i64 % 1000).collect();
    let mut sorted = numbers.clone();
    sorted.sort();
    let description = format!("Sort these numbers ascending (bench bounty #{i})");
    let mut terms = poster.template.clone();
    terms.specHash = keccak256(description.as_bytes());
    let salt = random_salt();
    let req = json!({
        "salt": salt,
        "record": RecordJson::from(&terms),
        "description": description,
        "input": numbers,
        "skills": ["sort"],
        "verify": { "mode": "hash", "expected": result_hash(&json!(sorted)) },
        "bid_window_ms": window_ms,
    });
    // Admission control: a full node answers 503 busy (nothing registered); post again.
    let posted = loop {
        match poster.api.post("/v1/market/bounties", req.clone()).await {
            Ok(v) => break v,
            Err(e) => match e.busy_retry() {
                Some(pause) if Instant::now() + pause < give_up => {
                    out.busy += 1;
                    tokio::time::sleep(pause).await;
                }
                _ => return Err(e.into()),
            },
        }
    };
    out.id = posted["id"].as_str().unwrap_or_default().to_string();
    out.bid_close_ms = posted["bid_close_ms"]
        .as_u64()
        .unwrap_or_else(|| posted["bid_close_at"].as_u64().unwrap_or_default() * 1000);
    let path = format!("/v1/market/bounties/{}", out.id);
    // Nothing to do until the window closes.
    let close_ms = out.bid_close_ms;
    let wait = close_ms.saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let mut awarded = false;
    let mut seen_events = 0;
    let v = loop {
        if Instant::now() > give_up {
            out.error = Some("timed out".into());
            break poster.api.get(&path).await?;
        }
        // Long-poll: the node answers when the bounty logs a new event (as `reef bounty post`);
        // or, with `--poll-ms`, plain polling (100 ms while the poster has to act, 1 s after).
        let poll = POLL_MS.load(std::sync::atomic::Ordering::Relaxed);
        let v = if poll == 0 {
            let v =
                poster.api.get(&format!("{path}?wait_ms=5000&after_events={seen_events}")).await?;
            // Past the node's long-poll bound the view comes back at once: poll gently.
            if v.get("long_poll_declined").is_some() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            v
        } else {
            let pause = if awarded { 1_000 } else { poll };
            if seen_events > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            poster.api.get(&path).await?
        };
        seen_events = v["events"].as_array().map_or(0, Vec::len);
        let phase = v["phase"].as_str().unwrap_or_default();
        if phase == "settled" || phase == "failed" {
            break v;
        }
        if phase == "awaiting_award" && !awarded {
            out.seen_awaiting_ms = Some(now_ms());
            let signed = &v["winning_bid"];
            let bj: BidJson = serde_json::from_value(signed["bid"].clone())
                .wrap_err("node sent a malformed winning bid")?;
            let bid = Bid::try_from(&bj)?;
            let sig: Bytes = serde_json::from_value(signed["signature"].clone())
                .wrap_err("node sent a malformed signature")?;
            let t = Instant::now();
            poster.client.post_fund_and_award(salt, terms.clone(), bid, sig, false).await?;
            out.award_tx_ms = Some(t.elapsed().as_secs_f64() * 1e3);
            out.award_done_ms = Some(now_ms());
            awarded = true;
        }
    };
    out.phase = v["phase"].as_str().unwrap_or_default().to_string();
    out.bids = v["bids"].as_u64().unwrap_or_default();
    out.winner = v["winner"].as_str().map(str::to_string);
    out.events = v["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["event"].as_str().unwrap_or_default().to_string(),
                        e["at_ms"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if out.phase == "failed" {
        out.error = Some(format!("failed: {}", v["note"].as_str().unwrap_or("")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[derive(Debug, Clone, serde::Serialize)]
struct Stat {
    n: usize,
    p50: f64,
    p95: f64,
    max: f64,
    mean: f64,
}

fn stat(mut v: Vec<f64>) -> Option<Stat> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Stat {
        n: v.len(),
        p50: pct(0.50),
        p95: pct(0.95),
        max: v[v.len() - 1],
        mean: v.iter().sum::<f64>() / v.len() as f64,
    })
}

// ---------------------------------------------------------------------------------------------
// The run

struct Env {
    // Field order is drop order: agents, then the node, then anvil, then the directory.
    agents: Vec<Proc>,
    node: Option<Proc>,
    anvil: Option<AnvilProcess>,
    dir: TempDir,
}

impl Env {
    fn log(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }
}

async fn fund_eth(
    p: &DynProvider,
    chain_id: u64,
    funders: &[PrivateKeySigner],
    to: &[Address],
    each: U256,
) -> eyre::Result<()> {
    // One pre-signed transfer per recipient, recipients dealt round-robin to the funders.
    let to = to.to_vec();
    let n = funders.len();
    let txs = presign(p, funders, to.len(), chain_id, move |fi, k| {
        (to[k * n + fi], each, Bytes::new(), 21_000)
    })
    .await?;
    blast(p, txs).await.map(|_| ())
}

/// Raw transaction rate on a fresh anvil: returns (ETH txs, time, stall kicks, ERC-20 txs,
/// time, stall kicks). The anvil is stopped before returning.
/// What anvil alone managed, before the marketplace runs.
struct RawRates {
    n_eth: usize,
    eth_took: Duration,
    eth_kicks: usize,
    n_erc: usize,
    erc_took: Duration,
    erc_kicks: usize,
    /// Bounty lifecycles (postFundAndAward, then submitAndAttest) with no marketplace at all.
    n_bounties: usize,
    post_took: Duration,
    settle_took: Duration,
}

impl RawRates {
    /// Bounties/s anvil settles when nothing but the escrow's own two transactions is asked of
    /// it: no node, no agents, no reads, every signature made beforehand.
    fn escrow_bounties_per_sec(&self) -> f64 {
        self.n_bounties as f64 / (self.post_took + self.settle_took).as_secs_f64()
    }
}

async fn raw_phase(o: &Opts, log_file: &Path, log: &dyn Fn(&str)) -> eyre::Result<RawRates> {
    let mut anvil = AnvilProcess::spawn(AnvilOptions {
        block_time: o.block_time,
        log_file: Some(log_file.to_path_buf()),
        ..Default::default()
    })
    .await?;
    let rpc = anvil.rpc_url.clone();
    let chain_id = anvil.chain_id;
    // Senders: one per request in flight.
    let raw_keys: Vec<PrivateKeySigner> =
        (0..o.raw_concurrency).map(|_| PrivateKeySigner::random()).collect();
    let deployer = ReefClient::connect(
        &rpc,
        dev_signer(0),
        empty_deployment(chain_id),
        ClientOptions::default(),
    )
    .await?;
    let seed: Vec<Address> = raw_keys.iter().map(|s| s.address()).collect();
    let (dep, _) = deploy_all(&deployer, &DeployConfig::devnet(seed.clone())).await?;
    let token = dep.test_token.ok_or_else(|| eyre!("deployment has no test token"))?;
    let p = http_provider(&rpc)?;
    let funders: Vec<PrivateKeySigner> = (0..5).map(dev_signer).collect();
    fund_eth(&p, chain_id, &funders, &seed, parse_ether("100")?).await?;
    let sink: Vec<Address> = (0..16).map(|_| PrivateKeySigner::random().address()).collect();
    let s2 = sink.clone();
    let eth_txs = presign(&p, &raw_keys, o.raw_txs, chain_id, move |si, k| {
        (s2[(si + k) % s2.len()], U256::from(1_000u64), Bytes::new(), 21_000)
    })
    .await?;
    let n_eth: usize = eth_txs.iter().map(|(_, v)| v.len()).sum();
    let (eth_took, eth_kicks) = blast(&p, eth_txs).await?;
    let eth_rate = n_eth as f64 / eth_took.as_secs_f64();
    log(&format!(
        "raw ETH transfers: {n_eth} in {:.2}s = {eth_rate:.0} tx/s",
        eth_took.as_secs_f64()
    ));
    let s3 = sink.clone();
    let erc_txs = presign(&p, &raw_keys, o.raw_txs, chain_id, move |si, k| {
        let call =
            ReefTestToken::transferCall { to: s3[(si + k) % s3.len()], value: U256::from(1u64) };
        (token, U256::ZERO, Bytes::from(call.abi_encode()), 80_000)
    })
    .await?;
    let n_erc: usize = erc_txs.iter().map(|(_, v)| v.len()).sum();
    let (erc_took, erc_kicks) = blast(&p, erc_txs).await?;
    // Every transfer must have succeeded: the sinks hold exactly one token unit per transfer.
    let mut got = U256::ZERO;
    for a in &sink {
        got += deployer.token_balance(token, *a).await?;
    }
    // Count only transfers that landed (anvil can drop pool transactions under load).
    let landed: usize = got.try_into().unwrap_or(n_erc);
    if landed != n_erc {
        log(&format!("warning: only {landed} of {n_erc} ERC-20 transfers landed"));
    }
    let n_erc = landed;
    let erc_rate = n_erc as f64 / erc_took.as_secs_f64();
    log(&format!(
        "raw ERC-20 transfers: {n_erc} in {:.2}s = {erc_rate:.0} tx/s",
        erc_took.as_secs_f64()
    ));

    let (n_bounties, post_took, settle_took) =
        escrow_lifecycles(&p, &rpc, &dep, &raw_keys, (0, o.raw_txs / 2), log).await?;

    anvil.stop();
    Ok(RawRates {
        n_eth,
        eth_took,
        eth_kicks,
        n_erc,
        erc_took,
        erc_kicks,
        n_bounties,
        post_took,
        settle_took,
    })
}

/// The escrow's raw rate: about `count` ETH bounties (rounded down to a multiple of the
/// senders), each posted, funded and awarded to a signed bid in one `postFundAndAward`, then
/// settled by its provider's `submitAndAttest` with the evaluator's signed verdict: the two
/// transactions the marketplace sends per bounty, pre-signed and sent as fast as anvil takes
/// them (posts first, then settlements). The escrow's ETH balance checks that every one landed.
/// `first`: how many lifecycles each key already ran on this chain (their salts and bid nonces
/// continue from there). Returns (bounties, time to mine the posts, time to mine the
/// settlements).
async fn escrow_lifecycles(
    p: &DynProvider,
    rpc: &str,
    dep: &Deployment,
    keys: &[PrivateKeySigner],
    (first, count): (usize, usize),
    log: &dyn Fn(&str),
) -> eyre::Result<(usize, Duration, Duration)> {
    use escrow_client::{
        bindings::escrow::{
            BountyEscrow,
            IBountyTypes::{Attestation, Bounty},
        },
        escrow::{bounty_id, terms_hash},
        signing::{escrow_domain, sign_attestation, sign_bid, verdict},
    };
    let n = keys.len();
    let per = count / n;
    if per == 0 {
        bail!("--raw-txs must be at least twice --raw-concurrency for the escrow's raw rate");
    }
    let reader =
        ReefClient::connect(rpc, dev_signer(0), dep.clone(), ClientOptions::default()).await?;
    let escrow = dep.bounty_escrow;
    let domain = escrow_domain(dep.chain_id, escrow);
    let evaluator = PrivateKeySigner::random();
    let amount: u128 = 1_000_000_000_000_000; // 0.001 ETH
    let fee_bps = reader.fee_bps().await?;
    let deadline = reader.chain_time().await? + 86_400;
    // Bounty k of poster i is awarded to key i + 1, which settles it.
    let lifecycle = |i: usize, k: usize| {
        let k = first + k;
        let poster = keys[i].address();
        let provider = &keys[(i + 1) % n];
        let salt = keccak256(format!("raw salt {i} {k}"));
        let terms = Bounty {
            poster,
            token: Address::ZERO,
            amount,
            price: 0,
            provider: Address::ZERO,
            evaluator: evaluator.address(),
            arbiter: Address::ZERO,
            deadline,
            reviewWindow: 3_600,
            challengeWindow: 3_600,
            feeBps: fee_bps,
            mode: escrow_client::escrow::MODE_AUCTION,
            maxWinners: 0,
            specHash: keccak256(format!("raw {i} {k}")),
            resultHash: alloy::primitives::B256::ZERO,
        };
        let id = bounty_id(poster, salt);
        let bid = Bid {
            bountyId: id,
            termsHash: terms_hash(&terms),
            bidder: provider.address(),
            amount: U256::from(amount),
            deadline,
            eta: 0,
            bond: U256::ZERO,
            nonce: U256::from(k),
        };
        (salt, terms, id, bid, provider)
    };
    let before = p.get_balance(escrow).await?;
    let posts = presign(p, keys, per * n, dep.chain_id, |i, k| {
        let (salt, terms, _, bid, provider) = lifecycle(i, k);
        let bid_sig = sign_bid(provider, &bid, &domain).expect("signing a bid in memory");
        let call = BountyEscrow::postFundAndAwardCall { salt, terms, bid, bidSig: bid_sig };
        (escrow, U256::from(amount), Bytes::from(call.abi_encode()), 400_000)
    })
    .await?;
    let (post_took, _) = blast(p, posts).await?;
    let held = p.get_balance(escrow).await? - before;
    if held != U256::from(amount) * U256::from(per * n) {
        bail!("only {held} wei of {} bounties' escrow landed", per * n);
    }
    // Settlements: key j settles the bounties of poster j - 1.
    let settles = presign(p, keys, per * n, dep.chain_id, |j, k| {
        let (_, terms, id, bid, _) = lifecycle((j + n - 1) % n, k);
        let mut b = terms;
        b.provider = bid.bidder;
        b.price = amount;
        let result_hash = keccak256(format!("result {id}"));
        let att = Attestation {
            bountyId: id,
            provider: b.provider,
            resultHash: result_hash,
            verdict: verdict::ACCEPT,
        };
        let sig = sign_attestation(&evaluator, &att, &domain).expect("signing in memory");
        let call = BountyEscrow::submitAndAttestCall {
            id,
            b,
            resultHash: result_hash,
            verdict: verdict::ACCEPT,
            evaluatorSig: sig,
        };
        (escrow, U256::ZERO, Bytes::from(call.abi_encode()), 400_000)
    })
    .await?;
    let (settle_took, _) = blast(p, settles).await?;
    // Paid out: the escrow keeps only the fees (credited to the fee recipient's ledger).
    let kept = p.get_balance(escrow).await? - before;
    let fees = U256::from(amount * u128::from(fee_bps) / 10_000) * U256::from(per * n);
    if kept != fees {
        bail!("the escrow still holds {kept} wei after the settlements (fees: {fees})");
    }
    let total = post_took + settle_took;
    log(&format!(
        "raw escrow lifecycles: {} in {:.2}s = {:.0} bounties/s (postFundAndAward {:.0} tx/s, submitAndAttest {:.0} tx/s)",
        per * n,
        total.as_secs_f64(),
        (per * n) as f64 / total.as_secs_f64(),
        (per * n) as f64 / post_took.as_secs_f64(),
        (per * n) as f64 / settle_took.as_secs_f64()
    ));
    Ok((per * n, post_took, settle_took))
}

/// The command line of the agents' sorting brain.
fn brain_command(kind: &str) -> eyre::Result<String> {
    if kind == "native" {
        let exe = std::env::current_exe()?;
        let native = exe.with_file_name("sort_brain");
        if !native.is_file() {
            bail!(
                "--brain native needs {}: cargo build --release -p marketplace-node --example \
                 sort_brain",
                native.display()
            );
        }
        return Ok(native.display().to_string());
    }
    // The interpreter itself, not a version-manager shim (pyenv's bash shim costs ~75 ms of CPU
    // per start, more than the sorting), without site-packages (`-S`: the brain needs only the
    // standard library). That is the brain's cost, not the marketplace's.
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            eyre!("python3 is needed for the agents' sorting brain (examples/agents/sort.py)")
        })?;
    Ok(format!("{python} -S {}", repo().join("examples/agents/sort.py").display()))
}

async fn run(o: &Opts, env: &mut Env) -> eyre::Result<Value> {
    let reef = locate_reef(&o.reef)?;
    let brain = brain_command(&o.brain)?;
    let log = |m: &str| {
        if !o.json {
            eprintln!("[{:>7.1}s] {m}", START.elapsed().as_secs_f64());
        }
    };

    // --- 1. raw transaction rate, on its own anvil (so the node's indexer never backfills
    // these blocks and nothing else loads anvil while it is measured) --------------------------
    let raw = raw_phase(o, &env.log("anvil-raw.log"), &log).await?;
    let RawRates { n_eth, eth_took, eth_kicks, n_erc, erc_took, erc_kicks, .. } = raw;
    let escrow_rate = raw.escrow_bounties_per_sec();
    let eth_rate = n_eth as f64 / eth_took.as_secs_f64();
    let erc_rate = n_erc as f64 / erc_took.as_secs_f64();

    // --- anvil + contracts --------------------------------------------------------------------
    let anvil = AnvilProcess::spawn(AnvilOptions {
        block_time: o.block_time,
        log_file: Some(env.log("anvil.log")),
        ..Default::default()
    })
    .await?;
    let rpc = anvil.rpc_url.clone();
    let chain_id = anvil.chain_id;
    env.anvil = Some(anvil);
    let posters: Vec<PrivateKeySigner> =
        (0..o.posters).map(|_| PrivateKeySigner::random()).collect();
    let agents: Vec<PrivateKeySigner> = (0..o.agents).map(|_| PrivateKeySigner::random()).collect();
    let deployer = ReefClient::connect(
        &rpc,
        dev_signer(0),
        empty_deployment(chain_id),
        ClientOptions::default(),
    )
    .await?;
    let seed: Vec<Address> = posters.iter().map(|s| s.address()).collect();
    let (dep, _) = deploy_all(&deployer, &DeployConfig::devnet(seed)).await?;
    let dep_dir = env.dir.path.join("deployments");
    dep.save(&Deployment::path_in(&dep_dir, chain_id))?;
    let token = dep.test_token.ok_or_else(|| eyre!("deployment has no test token"))?;
    log(&format!("anvil {rpc}, contracts deployed (escrow {})", dep.bounty_escrow));

    let p = http_provider(&rpc)?;
    let funders: Vec<PrivateKeySigner> = (0..5).map(dev_signer).collect();
    let mut recipients: Vec<Address> = posters.iter().map(|s| s.address()).collect();
    recipients.extend(agents.iter().map(|s| s.address()));
    // Capacity mode measures the escrow alone again after each step, on this chain: senders.
    let reference_keys: Vec<PrivateKeySigner> = if o.capacity_auto || !o.capacity.is_empty() {
        (0..o.raw_concurrency).map(|_| PrivateKeySigner::random()).collect()
    } else {
        Vec::new()
    };
    recipients.extend(reference_keys.iter().map(|s| s.address()));
    fund_eth(&p, chain_id, &funders, &recipients, parse_ether("100")?).await?;
    log(&format!("funded {} posters and {} agents", posters.len(), agents.len()));

    // --- 2. node and agents --------------------------------------------------------------------
    let node_log = File::create(env.log("node.log"))?;
    let mut cmd = Command::new(&reef);
    cmd.env_remove("REEF_PRIVATE_KEY")
        .env_remove("REEF_RPC_URL")
        .env("RUST_LOG", std::env::var("BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into()))
        .args(["node", "--listen", "127.0.0.1:0", "--json", "--node-id", "bench"])
        .arg("--database-url")
        .arg(format!("sqlite://{}/node.db", env.dir.path.display()))
        .args(["--rpc-url", &rpc, "--market-dev-account", "5", "--award-grace-secs", "30"])
        .args(["--market-tick-ms", &o.tick_ms.to_string()])
        .args(["--cfp-fanout", &o.fanout.to_string()])
        .arg("--deployments")
        .arg(&dep_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(node_log);
    if o.no_indexer {
        cmd.arg("--no-indexer");
    }
    let mut node = Proc::spawn(cmd, "reef node")?;
    let stdout = node.child.stdout.take().ok_or_else(|| eyre!("node stdout"))?;
    env.node = Some(node);
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        line
    })
    .await?;
    let v: Value = serde_json::from_str(&line).map_err(|e| {
        eyre!("the node did not start ({e}); its log:\n{}", tail(&env.log("node.log"), 20))
    })?;
    let listen = v["listen"].as_str().ok_or_else(|| eyre!("node printed {line:?}"))?.to_string();
    let http = format!("http://{listen}");
    let ws = format!("ws://{listen}/v1/ws");
    log(&format!("node on {http}"));

    let agents_log = File::create(env.log("agents.log"))?;
    for (i, a) in agents.iter().enumerate() {
        let key = alloy::primitives::hex::encode_prefixed(a.to_bytes());
        let mut cmd = Command::new(&reef);
        cmd.env_remove("REEF_PRIVATE_KEY")
            .env_remove("REEF_RPC_URL")
            .env("RUST_LOG", std::env::var("BENCH_AGENT_LOG").unwrap_or_else(|_| "warn".into()))
            .args(["agent", "run", "--node", &ws, "--key", &key, "--name"])
            .arg(format!("bench-sorter-{i}"))
            .args(["--skills", "sort", "--rpc-url", &rpc, "--bid-price", "4", "--eta", "30s"])
            .arg("--exec")
            .arg(&brain)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(agents_log.try_clone()?);
        env.agents.push(Proc::spawn(cmd, format!("agent {i}"))?);
    }
    // Online and bidding: the agent logs "marketplace: bidding" once its bidder is connected.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ready = std::fs::read_to_string(env.log("agents.log"))
            .unwrap_or_default()
            .matches("marketplace: bidding")
            .count();
        if ready >= agents.len() {
            break;
        }
        let agents_log = env.log("agents.log");
        for a in &mut env.agents {
            if let Some(st) = a.exited() {
                bail!("{} exited ({st}); log:\n{}", a.name, tail(&agents_log, 20));
            }
        }
        if Instant::now() > deadline {
            bail!(
                "only {ready}/{} agents connected within 90 s; log:\n{}",
                agents.len(),
                tail(&env.log("agents.log"), 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let probe = NodeApi::new(&http);
    for a in &agents {
        probe.get(&format!("/v1/agents/{}", a.address())).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    log(&format!("{} agents online and bidding", agents.len()));

    // --- posters: clients, logins, one approve each (amortized) -------------------------------
    let info = probe.get("/v1/market/info").await?;
    let evaluator: Address = info["evaluator"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| eyre!("node reported no evaluator"))?;
    let mut poster_ctx = Vec::new();
    for s in &posters {
        let client =
            ReefClient::connect(&rpc, s.clone(), dep.clone(), ClientOptions::default()).await?;
        let mut api = NodeApi::new(&http);
        api.login(s).await?;
        let now = client.chain_time().await?;
        let template = client
            .terms(&NewBounty {
                token,
                amount: parse_ether("5")?.to::<u128>(),
                evaluator: Some(evaluator),
                arbiter: Address::ZERO,
                deadline: now + 3_600,
                review_window: 3_600,
                challenge_window: 3_600,
                description: String::new(),
                contest_winners: None,
            })
            .await?;
        poster_ctx.push((client, api, template));
    }
    let approvals: Vec<eyre::Result<()>> =
        futures::future::join_all(poster_ctx.iter().map(|(c, _, _)| async move {
            c.approve(token, dep.bounty_escrow, U256::MAX).await?;
            Ok(())
        }))
        .await;
    for a in approvals {
        a?;
    }
    let posters_arc: Vec<Arc<Poster>> = poster_ctx
        .into_iter()
        .map(|(client, api, template)| Arc::new(Poster { client, api, template }))
        .collect();
    log(&format!("{} posters approved the escrow (1 tx each, amortized)", posters_arc.len()));

    // Nonces before the run: the on-chain transaction count of the marketplace path.
    let mut watched: Vec<Address> = posters.iter().map(|s| s.address()).collect();
    watched.extend(agents.iter().map(|s| s.address()));
    watched.push(evaluator);
    let count_nonces = |p: DynProvider, who: Vec<Address>| async move {
        let mut n = 0u64;
        for a in who {
            n += p.get_transaction_count(a).await?;
        }
        Ok::<_, eyre::Report>(n)
    };
    let nonces_before = count_nonces(p.clone(), watched.clone()).await?;

    if o.capacity_auto || !o.capacity.is_empty() {
        let reference =
            Reference { p: p.clone(), rpc: rpc.clone(), dep: dep.clone(), keys: reference_keys };
        return capacity_mode(o, env, &posters_arc, &listen, escrow_rate, &reference, &log).await;
    }

    // --- 3. the marketplace run ----------------------------------------------------------------
    log(&format!(
        "posting {} bounties from {} posters (bid window {} ms, hash verification)",
        o.bounties,
        posters_arc.len(),
        o.bid_window_ms
    ));
    let cpu_before = CpuSample::take(env);
    let rpc_before = rpc_requests(&env.log("anvil.log"));
    let counters_before = NodeCounters::scrape(&listen)?;
    let t_first_post = now_ms();
    let t0 = Instant::now();
    let timeout = Duration::from_secs(o.timeout_secs);
    let tasks: Vec<_> = (0..o.bounties)
        .map(|i| {
            let poster = posters_arc[i % posters_arc.len()].clone();
            tokio::spawn(run_bounty(poster, i, o.bid_window_ms, timeout))
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await?);
    }
    let wall = t0.elapsed();
    let cpu = CpuSample::take(env).since(&cpu_before);
    let counters = NodeCounters::scrape(&listen)?.since(&counters_before);
    let mut rpc_by_method = rpc_requests(&env.log("anvil.log"));
    for (method, n) in &rpc_before {
        if let Some(m) = rpc_by_method.get_mut(method) {
            *m = m.saturating_sub(*n);
        }
    }
    rpc_by_method.retain(|_, n| *n > 0);
    let rpc_during: usize = rpc_by_method.values().sum();
    let nonces_after = count_nonces(p.clone(), watched).await?;
    for a in &mut env.agents {
        if let Some(st) = a.exited() {
            eprintln!("warning: {} exited during the run ({st})", a.name);
        }
    }

    // --- report --------------------------------------------------------------------------------
    let settled: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.phase == "settled" && o.error.is_none()).collect();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    let last_settled = settled.iter().filter_map(|o| o.at("settled")).max();
    let span_ms = last_settled.map(|t| t.saturating_sub(t_first_post)).unwrap_or(0);
    let bps = if span_ms > 0 { settled.len() as f64 / (span_ms as f64 / 1e3) } else { 0.0 };
    let tx_per_bounty = 2.0;
    let ceiling = eth_rate / tx_per_bounty;
    let ceiling_erc = erc_rate / tx_per_bounty;
    let ratio = bps / ceiling;
    let onchain_txs = nonces_after - nonces_before;

    let span = |a: &str, b: &str| -> Vec<f64> {
        settled.iter().filter_map(|o| Some(o.at(b)?.saturating_sub(o.at(a)?) as f64)).collect()
    };
    // Announcing is measured over every bounty (also those whose window closed without bids).
    let announce_all: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| Some(o.at("announced")?.saturating_sub(o.at("posted")?) as f64))
        .collect();
    let announced_after_close =
        outcomes.iter().filter(|o| o.at("announced").is_some_and(|t| t >= o.bid_close_ms)).count();
    let announce_events: usize =
        outcomes.iter().map(|o| o.events.iter().filter(|(e, _)| e == "announced").count()).sum();
    let mut stages: Vec<(&str, &str, Option<Stat>)> = vec![
        (
            "post → announced",
            "node registers the bounty and sends the call for proposals (all bounties)",
            stat(announce_all),
        ),
        (
            "bid window",
            "announced → awaiting_award (window + close + ranking)",
            stat(span("announced", "awaiting_award")),
        ),
        (
            "close lag",
            "bid close → awaiting_award (work-loop delay after the window)",
            stat(
                settled
                    .iter()
                    .filter_map(|o| {
                        Some(o.at("awaiting_award")?.saturating_sub(o.bid_close_ms) as f64)
                    })
                    .collect(),
            ),
        ),
        (
            "award",
            "awaiting_award → working (poster sees it, award tx, node sees it)",
            stat(span("awaiting_award", "working")),
        ),
        (
            "  poster reaction",
            "awaiting_award → poster saw it (long-poll answer)",
            stat(
                settled
                    .iter()
                    .filter_map(|o| {
                        Some(o.seen_awaiting_ms?.saturating_sub(o.at("awaiting_award")?) as f64)
                    })
                    .collect(),
            ),
        ),
        (
            "  award tx",
            "postFundAndAward call → receipt seen by the poster (includes client receipt polling)",
            stat(settled.iter().filter_map(|o| o.award_tx_ms).collect()),
        ),
        (
            "work + verify",
            "working → settling (assign, agent runs, node verifies)",
            stat(span("working", "settling")),
        ),
        (
            "release",
            "settling → settled (agent's submitAndAttest, node sees it)",
            stat(span("settling", "settled")),
        ),
        ("total", "posted → settled", stat(span("posted", "settled"))),
    ];
    stages.retain(|(_, _, s)| s.is_some());
    let mut wins: HashMap<String, usize> = HashMap::new();
    for o in &settled {
        if let Some(w) = &o.winner {
            *wins.entry(w.clone()).or_default() += 1;
        }
    }
    let bids = stat(settled.iter().map(|o| o.bids as f64).collect());
    let mut errors: HashMap<String, usize> = HashMap::new();
    for f in &failed {
        let e = f.error.clone().unwrap_or_default();
        *errors.entry(e.chars().take(160).collect()).or_default() += 1;
    }

    let mut report = json!({
        "agents": o.agents,
        "posters": posters_arc.len(),
        "bounties": o.bounties,
        "bid_window_ms": o.bid_window_ms,
        "market_tick_ms": o.tick_ms,
        "poster_poll_ms": o.poll_ms,
        "cfp_fanout": o.fanout,
        "block_time_secs": o.block_time,
        "brain": o.brain,
        "indexer": !o.no_indexer,
        "raw": {
            "eth_transfers": { "txs": n_eth, "secs": eth_took.as_secs_f64(), "tx_per_sec": eth_rate, "stall_kicks": eth_kicks },
            "erc20_transfers": { "txs": n_erc, "secs": erc_took.as_secs_f64(), "tx_per_sec": erc_rate, "stall_kicks": erc_kicks },
            "escrow_lifecycles": {
                "bounties": raw.n_bounties,
                "post_fund_award_secs": raw.post_took.as_secs_f64(),
                "submit_and_attest_secs": raw.settle_took.as_secs_f64(),
                "bounties_per_sec": escrow_rate,
            },
            "concurrency": o.raw_concurrency,
        },
        "tx_per_bounty": {
            "path": tx_per_bounty,
            "approve_once_per_poster": posters_arc.len(),
            "approve_amortized": posters_arc.len() as f64 / o.bounties as f64,
            "measured_onchain": onchain_txs as f64 / o.bounties as f64,
        },
        "market": {
            "settled": settled.len(),
            "failed": failed.len(),
            "first_post_to_last_settled_secs": span_ms as f64 / 1e3,
            "wall_secs": wall.as_secs_f64(),
            "bounties_per_sec": bps,
            "bids_per_bounty": bids,
            "announced_after_window_closed": announced_after_close,
            "announce_events_per_bounty": announce_events as f64 / o.bounties as f64,
            "distinct_winners": wins.len(),
            "max_wins_per_agent": wins.values().max().copied().unwrap_or(0),
            "errors": errors,
        },
        "cpu_secs": cpu.to_json(wall, settled.len()),
        "rpc_requests": {
            "total": rpc_during,
            "per_settled_bounty": rpc_during as f64 / settled.len().max(1) as f64,
            "per_settled_bounty_by_method": rpc_by_method
                .iter()
                .map(|(m, n)| (m.clone(), json!(*n as f64 / settled.len().max(1) as f64)))
                .collect::<serde_json::Map<_, _>>(),
        },
        "node_sql_statements": per_bounty(&counters.sql, settled.len()),
        "node_rpc_calls": per_bounty(&counters.rpc, settled.len()),
        "ceiling_bounties_per_sec": ceiling,
        "ceiling_erc20_bounties_per_sec": ceiling_erc,
        "escrow_only_bounties_per_sec": escrow_rate,
        "escrow_only_ratio_to_ceiling": escrow_rate / ceiling,
        "ratio_to_escrow_only": bps / escrow_rate,
        "ratio": ratio,
        "goal_ratio": 0.5,
        "stages_ms": stages.iter().map(|(name, what, s)| json!({ "stage": name.trim(), "what": what, "stat": s })).collect::<Vec<_>>(),
    });

    // --- 4. overload: posts arriving at multiples of the capacity just measured ------------
    let mut phases = Vec::new();
    for factor in &o.overload {
        let rate = bps * factor;
        if rate <= 0.0 {
            break;
        }
        let n = ((rate * o.overload_secs as f64).ceil() as usize).max(1);
        log(&format!(
            "overload ×{factor}: {n} bounties posted at {rate:.1}/s for {} s",
            o.overload_secs
        ));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let poster = posters_arc[i % posters_arc.len()].clone();
                let at = t0 + Duration::from_secs_f64(i as f64 / rate);
                let window = o.bid_window_ms;
                tokio::spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    run_bounty(poster, i, window, timeout).await
                })
            })
            .collect();
        let mut outs = Vec::with_capacity(n);
        for t in tasks {
            outs.push(t.await?);
        }
        let ok: Vec<&Outcome> =
            outs.iter().filter(|o| o.phase == "settled" && o.error.is_none()).collect();
        let mut errors: HashMap<String, usize> = HashMap::new();
        for f in outs.iter().filter(|o| o.error.is_some()) {
            let e = f.error.clone().unwrap_or_default();
            *errors.entry(e.chars().take(160).collect()).or_default() += 1;
        }
        let extended =
            outs.iter().filter(|o| o.events.iter().any(|(e, _)| e == "extended")).count();
        phases.push(json!({
            "factor": factor,
            "posts_per_sec": rate,
            "bounties": n,
            "settled": ok.len(),
            "share_settled": ok.len() as f64 / n as f64,
            "not_settled": n - ok.len(),
            "busy_refusals": outs.iter().map(|o| u64::from(o.busy)).sum::<u64>(),
            "posts_refused_at_least_once": outs.iter().filter(|o| o.busy > 0).count(),
            "windows_extended": extended,
            "wall_secs": t0.elapsed().as_secs_f64(),
            "latency_ms": stat(ok.iter().filter_map(|o| Some(o.at("settled")?.saturating_sub(o.at("posted")?) as f64)).collect()),
            "errors": errors,
        }));
    }
    if !phases.is_empty() {
        report["overload"] = json!({ "capacity_bounties_per_sec": bps, "phases": phases });
    }
    Ok(report)
}

static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn print_overload(r: &Value) {
    let Some(phases) = r["overload"]["phases"].as_array() else { return };
    println!(
        "\nOverload: posts arriving at multiples of the capacity measured above ({:.2} bounties/s)\n",
        r["overload"]["capacity_bounties_per_sec"].as_f64().unwrap_or(0.0)
    );
    println!(
        "| × capacity | posts/s | bounties | settled | share settled | refused busy (posts) | windows extended | p50 posted → settled |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for p in phases {
        println!(
            "| {} | {:.1} | {} | {} | {:.1} % | {} ({}) | {} | {:.0} ms |",
            p["factor"],
            p["posts_per_sec"].as_f64().unwrap_or(0.0),
            p["bounties"],
            p["settled"],
            p["share_settled"].as_f64().unwrap_or(0.0) * 100.0,
            p["busy_refusals"],
            p["posts_refused_at_least_once"],
            p["windows_extended"],
            p["latency_ms"]["p50"].as_f64().unwrap_or(0.0)
        );
        if let Some(errs) = p["errors"].as_object() {
            for (e, n) in errs {
                println!("  {n} × {e}");
            }
        }
    }
}

fn print_report(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let m = &r["market"];
    println!(
        "\nmarketplace benchmark: {} agents ({} brain), {} bounties from {} posters, bid window {} ms, tick {} ms, fan-out {} (0 = all), indexer {}, posters {}",
        r["agents"],
        r["brain"].as_str().unwrap_or("python"),
        r["bounties"],
        r["posters"],
        r["bid_window_ms"],
        r["market_tick_ms"],
        r["cfp_fanout"],
        r["indexer"],
        match r["poster_poll_ms"].as_u64() {
            Some(0) | None => "long-poll".to_string(),
            Some(ms) => format!("poll every {ms} ms"),
        }
    );
    println!("\n| metric | value |\n|---|---|");
    println!(
        "| anvil raw ETH transfers | {:.0} tx/s ({} txs, {:.2} s, {} in flight) |",
        f(&r["raw"]["eth_transfers"]["tx_per_sec"]),
        r["raw"]["eth_transfers"]["txs"],
        f(&r["raw"]["eth_transfers"]["secs"]),
        r["raw"]["concurrency"]
    );
    println!(
        "| anvil raw ERC-20 transfers | {:.0} tx/s ({} txs, {:.2} s) |",
        f(&r["raw"]["erc20_transfers"]["tx_per_sec"]),
        r["raw"]["erc20_transfers"]["txs"],
        f(&r["raw"]["erc20_transfers"]["secs"])
    );
    println!(
        "| transactions per bounty | 2 (postFundAndAward + submitAndAttest); measured {:.2}; + approve once per poster ({:.2}/bounty amortized, not in the run) |",
        f(&r["tx_per_bounty"]["measured_onchain"]),
        f(&r["tx_per_bounty"]["approve_amortized"])
    );
    println!(
        "| ceiling = raw ETH tx/s ÷ 2 | {:.1} bounties/s (ERC-20 basis: {:.1}) |",
        f(&r["ceiling_bounties_per_sec"]),
        f(&r["ceiling_erc20_bounties_per_sec"])
    );
    println!(
        "| settled | {} of {} ({} failed) in {:.2} s first post → last settled |",
        m["settled"],
        r["bounties"],
        m["failed"],
        f(&m["first_post_to_last_settled_secs"])
    );
    println!("| **bounties settled/s** | **{:.2}** |", f(&m["bounties_per_sec"]));
    println!("| ratio to ceiling | {:.1}% (goal ≥ 50%) |", 100.0 * f(&r["ratio"]));
    println!(
        "| anvil alone, escrow transactions only | {:.1} bounties/s = {:.1}% of the ceiling; the marketplace reached {:.1}% of it |",
        f(&r["escrow_only_bounties_per_sec"]),
        100.0 * f(&r["escrow_only_ratio_to_ceiling"]),
        100.0 * f(&r["ratio_to_escrow_only"])
    );
    println!(
        "| bids per bounty (p50/min-max…) | p50 {:.0}, max {:.0} |",
        f(&m["bids_per_bounty"]["p50"]),
        f(&m["bids_per_bounty"]["max"])
    );
    println!(
        "| calls for proposals sent after the window had closed | {} of {} ({:.2} `announced` events per bounty) |",
        m["announced_after_window_closed"],
        r["bounties"],
        f(&m["announce_events_per_bounty"])
    );
    println!(
        "| distinct winners | {} (most wins by one agent: {}) |",
        m["distinct_winners"], m["max_wins_per_agent"]
    );
    println!("\n| stage (ms) | p50 | p95 | max | mean | what |\n|---|---|---|---|---|---|");
    for s in r["stages_ms"].as_array().into_iter().flatten() {
        let st = &s["stat"];
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            s["stage"].as_str().unwrap_or(""),
            f(&st["p50"]),
            f(&st["p95"]),
            f(&st["max"]),
            f(&st["mean"]),
            s["what"].as_str().unwrap_or("")
        );
    }
    let cpu = &r["cpu_secs"];
    let per = &cpu["ms_per_settled_bounty"];
    println!("\n| CPU during the run | seconds | ms per settled bounty |\n|---|---|---|");
    for (key, label) in [
        ("anvil", "anvil"),
        ("node", "`reef node`"),
        ("agents", "`reef agent` processes"),
        ("agent_programs", "the agents' programs (brain + shell)"),
        ("posters", "posters (this bench process)"),
        ("total", "**total**"),
    ] {
        println!("| {label} | {:.1} | {:.1} |", f(&cpu[key]), f(&per[key]));
    }
    println!(
        "| machine busy | {:.0}% of {} cores over the run | |",
        100.0 * f(&cpu["busy_share"]),
        cpu["cores"]
    );
    println!(
        "\nJSON-RPC requests anvil served during the run: {} ({:.1} per settled bounty)",
        r["rpc_requests"]["total"],
        f(&r["rpc_requests"]["per_settled_bounty"])
    );
    if let Some(by) = r["rpc_requests"]["per_settled_bounty_by_method"].as_object() {
        let mut by: Vec<(&String, f64)> =
            by.iter().map(|(m, v)| (m, v.as_f64().unwrap_or_default())).collect();
        by.sort_by(|a, b| b.1.total_cmp(&a.1));
        let parts: Vec<String> = by.iter().map(|(m, v)| format!("{m} {v:.2}")).collect();
        println!("per settled bounty by method: {}", parts.join(", "));
    }
    for (key, what) in [
        ("node_sql_statements", "SQL statements the node ran (all its databases)"),
        ("node_rpc_calls", "JSON-RPC calls the node's escrow client made"),
    ] {
        let c = &r[key];
        println!(
            "\n{what} during the run: {} ({:.1} per settled bounty)\n\n| per settled bounty | statement / method |\n|---|---|",
            c["total"],
            f(&c["per_settled_bounty"])
        );
        for row in c["by_label"].as_array().into_iter().flatten() {
            println!(
                "| {:.2} | `{}` |",
                f(&row["per_settled_bounty"]),
                row["label"].as_str().unwrap_or("").replace('|', "\\|")
            );
        }
    }
    if let Some(errs) = m["errors"].as_object()
        && !errs.is_empty()
    {
        println!("\nerrors:");
        for (e, n) in errs {
            println!("  {n} × {e}");
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = *START;
    let o = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    POLL_MS.store(o.poll_ms, std::sync::atomic::Ordering::Relaxed);
    INTERVAL_MINING.store(o.block_time.is_some(), std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("reef-market-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(dir.join("deployments")) {
        eprintln!("cannot create {}: {e}", dir.display());
        return std::process::ExitCode::FAILURE;
    }
    let mut env = Env {
        agents: Vec::new(),
        node: None,
        anvil: None,
        dir: TempDir { path: dir, keep: o.keep },
    };
    // SIGINT, SIGTERM (e.g. from `timeout`) and SIGHUP all end the run with the cleanup below.
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut hup) = match (signal(SignalKind::terminate()), signal(SignalKind::hangup()))
    {
        (Ok(t), Ok(h)) => (t, h),
        _ => {
            eprintln!("cannot install signal handlers");
            return std::process::ExitCode::FAILURE;
        }
    };
    let res = tokio::select! {
        r = run(&o, &mut env) => r,
        _ = tokio::signal::ctrl_c() => Err(eyre!("interrupted")),
        _ = term.recv() => Err(eyre!("terminated")),
        _ = hup.recv() => Err(eyre!("hung up")),
    };
    let code = match res {
        Ok(report) => {
            if o.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else if report.get("capacity").is_some() {
                print_capacity(&report);
            } else {
                print_report(&report);
                print_overload(&report);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("market_bench failed: {e:#}");
            for name in ["node.log", "agents.log"] {
                let t = tail(&env.log(name), 15);
                if !t.is_empty() {
                    eprintln!("--- last lines of {name} ---\n{t}");
                }
            }
            std::process::ExitCode::FAILURE
        }
    };
    drop(env); // kills agents, node, anvil; removes the temp dir
    code
}

// ---------------------------------------------------------------------------------------------
// Open-loop capacity mode

/// Backlog of one capacity step, sampled every second: (seconds since the step began,
/// bounties posted and not yet settled or failed).
type Samples = Vec<(f64, f64)>;

/// Least-squares slope of `(x, y)` points (0 with fewer than two).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + (x - mx) * (y - my), b + (x - mx) * (x - mx)));
    if den == 0.0 { 0.0 } else { num / den }
}

/// Whether a step's backlog stayed bounded: over the second half of the posting, the backlog
/// grew by less than 10 % of the offered rate per second (a backlog that keeps up only
/// wobbles around the rate × latency level), at least 95 % of the bounties settled, and the
/// node refused (busy) fewer than 1 % of the posts (a refused post is not offered load).
fn bounded(rate: f64, growth_per_sec: f64, share_settled: f64, busy_share: f64) -> bool {
    growth_per_sec < 0.1 * rate && share_settled >= 0.95 && busy_share < 0.01
}

/// The escrow alone on the marketplace's own chain, measured again after each capacity step.
/// anvil's cost per block grows with the chain's state (it hashes the state trie for every
/// block, and writes old states to its disk cache): each step is also compared with the
/// escrow-only rate at the state that step left, not only with the fresh chain's.
struct Reference {
    p: DynProvider,
    rpc: String,
    dep: Deployment,
    /// Funded senders that nothing else uses.
    keys: Vec<PrivateKeySigner>,
}

/// Posts at a fixed rate for `o.capacity_secs` per step (the given rates, or automatic steps
/// ×1.5 from `--capacity-start` until the backlog is no longer bounded), waits for each step's
/// bounties to finish, and reports the highest bounded rate against the escrow-only rate
/// measured in the same run.
async fn capacity_mode(
    o: &Opts,
    env: &mut Env,
    posters: &[Arc<Poster>],
    listen: &str,
    escrow_rate: f64,
    reference: &Reference,
    log: &dyn Fn(&str),
) -> eyre::Result<Value> {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let mut steps = Vec::new();
    // The highest bounded step (its index in `steps`).
    let mut best: Option<usize> = None;
    // As many lifecycles as the fresh chain's measurement (`--raw-txs` / 2), so that the two
    // figures are taken alike (with a block time, a smaller count spans too few blocks).
    let per_key = (o.raw_txs / 2 / reference.keys.len().max(1)).max(1);
    let mut rate = o.capacity.first().copied().unwrap_or(o.capacity_start);
    let timeout = Duration::from_secs(o.timeout_secs);
    for step in 0.. {
        if !o.capacity_auto && step >= o.capacity.len() {
            break;
        }
        if !o.capacity_auto {
            rate = o.capacity[step];
        }
        let n = ((rate * o.capacity_secs as f64).ceil() as usize).max(1);
        log(&format!(
            "capacity step {}: {n} bounties posted at {rate:.2}/s for {} s",
            step + 1,
            o.capacity_secs
        ));
        let cpu_before = CpuSample::take(env);
        let rpc_before = rpc_requests(&env.log("anvil.log"));
        let counters_before = NodeCounters::scrape(listen)?;
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let poster = posters[i % posters.len()].clone();
                let at = t0 + Duration::from_secs_f64(i as f64 / rate);
                let (window, started, finished) =
                    (o.bid_window_ms, started.clone(), finished.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    started.fetch_add(1, Relaxed);
                    let out = run_bounty(poster, 1_000_000 * (step + 1) + i, window, timeout).await;
                    finished.fetch_add(1, Relaxed);
                    out
                })
            })
            .collect();
        // Backlog every second until everything posted in this step has finished.
        let mut samples: Samples = Vec::new();
        while finished.load(Relaxed) < n {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let backlog = started.load(Relaxed).saturating_sub(finished.load(Relaxed));
            samples.push((t0.elapsed().as_secs_f64(), backlog as f64));
        }
        let mut outs = Vec::with_capacity(n);
        for t in tasks {
            outs.push(t.await?);
        }
        let wall = t0.elapsed();
        let cpu = CpuSample::take(env).since(&cpu_before);
        let counters = NodeCounters::scrape(listen)?.since(&counters_before);
        let mut rpc = rpc_requests(&env.log("anvil.log"));
        for (m, k) in &rpc_before {
            if let Some(v) = rpc.get_mut(m) {
                *v = v.saturating_sub(*k);
            }
        }
        let rpc_total: usize = rpc.values().sum();
        let ok: Vec<&Outcome> =
            outs.iter().filter(|o| o.phase == "settled" && o.error.is_none()).collect();
        let secs = o.capacity_secs as f64;
        let second_half: Vec<(f64, f64)> =
            samples.iter().copied().filter(|(t, _)| *t >= secs / 2.0 && *t <= secs).collect();
        let growth = slope(&second_half);
        let share = ok.len() as f64 / n as f64;
        let busy: u64 = outs.iter().map(|o| u64::from(o.busy)).sum();
        let busy_share = outs.iter().filter(|o| o.busy > 0).count() as f64 / n as f64;
        let is_bounded = bounded(rate, growth, share, busy_share);
        let mut errors: HashMap<String, usize> = HashMap::new();
        for f in outs.iter().filter(|o| o.error.is_some()) {
            let e = f.error.clone().unwrap_or_default();
            *errors.entry(e.chars().take(160).collect()).or_default() += 1;
        }
        let settled = ok.len().max(1) as f64;
        log(&format!(
            "  {} of {n} settled, backlog growth {growth:+.2}/s over the second half, max backlog {:.0}: {}",
            ok.len(),
            samples.iter().map(|s| s.1).fold(0.0, f64::max),
            if is_bounded { "bounded" } else { "NOT bounded" }
        ));
        // After the step's figures are taken: the escrow alone at the state the step left.
        let (nb, post_took, settle_took) = escrow_lifecycles(
            &reference.p,
            &reference.rpc,
            &reference.dep,
            &reference.keys,
            (step * per_key, per_key * reference.keys.len()),
            log,
        )
        .await?;
        let at_state = nb as f64 / (post_took + settle_took).as_secs_f64();
        steps.push(json!({
            "posts_per_sec": rate,
            "bounties": n,
            "settled": ok.len(),
            "share_settled": share,
            "backlog_growth_per_sec": growth,
            "max_backlog": samples.iter().map(|s| s.1).fold(0.0, f64::max),
            "backlog_at_end_of_posting": samples.iter().rev().find(|(t, _)| *t <= secs).map_or(0.0, |s| s.1),
            "busy_refusals": busy,
            "bounded": is_bounded,
            "wall_secs": wall.as_secs_f64(),
            "latency_ms": stat(ok.iter().filter_map(|o| Some(o.at("settled")?.saturating_sub(o.at("posted")?) as f64)).collect()),
            "node_cpu_ms_per_settled_bounty": cpu.node * 1e3 / settled,
            "cpu_secs": cpu.to_json(wall, ok.len()),
            "sql_per_settled_bounty": counters.sql.values().sum::<u64>() as f64 / settled,
            "node_rpc_per_settled_bounty": counters.rpc.values().sum::<u64>() as f64 / settled,
            "anvil_rpc_per_settled_bounty": rpc_total as f64 / settled,
            "anvil_rpc_by_method": rpc.iter().filter(|(_, v)| **v > 0).map(|(m, v)| (m.clone(), json!(*v as f64 / settled))).collect::<serde_json::Map<_, _>>(),
            "node_sql_statements": per_bounty(&counters.sql, ok.len()),
            "errors": errors,
            "escrow_only_bounties_per_sec_at_this_state": at_state,
            "ratio_to_escrow_only_at_this_state": rate / at_state,
            "cpu_ceiling_posts_per_sec": cpu_ceiling(&cpu, ok.len()),
        }));
        if is_bounded {
            if best.is_none_or(|b| rate > steps[b]["posts_per_sec"].as_f64().unwrap_or(0.0)) {
                best = Some(steps.len() - 1);
            }
        } else if o.capacity_auto {
            break;
        }
        if o.capacity_auto {
            if step >= 12 {
                break;
            }
            rate *= 1.5;
        }
    }
    let best_step = best.and_then(|b| steps.get(b));
    let of_best = |key: &str| best_step.and_then(|s| s[key].as_f64()).unwrap_or(0.0);
    let (best_rate, best_reference) =
        (of_best("posts_per_sec"), of_best("escrow_only_bounties_per_sec_at_this_state"));
    let budget = goal_budget(best_step.or(steps.first()), 0.5 * escrow_rate);
    Ok(json!({
        "agents": o.agents,
        "posters": posters.len(),
        "brain": o.brain,
        "bid_window_ms": o.bid_window_ms,
        "cfp_fanout": o.fanout,
        "block_time_secs": o.block_time,
        "capacity": {
            "step_secs": o.capacity_secs,
            "steps": steps,
            "highest_bounded_posts_per_sec": best_rate,
            "escrow_only_bounties_per_sec": escrow_rate,
            "ratio_to_escrow_only": best_rate / escrow_rate,
            "escrow_only_bounties_per_sec_at_its_state": best_reference,
            "ratio_to_escrow_only_at_its_state": if best_reference > 0.0 { best_rate / best_reference } else { 0.0 },
            "goal_ratio": 0.5,
            "goal_cpu_budget": budget,
        },
    }))
}

/// The rate at which this machine's cores would be full at a step's CPU cost per settled
/// bounty, counting every process of the run (anvil, node, agents, their programs, posters).
fn cpu_ceiling(cpu: &CpuSample, settled: usize) -> f64 {
    let total = cpu.total();
    if settled == 0 || total <= 0.0 { 0.0 } else { cores() * settled as f64 / total }
}

/// Cores this machine gives the run.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, usize::from) as f64
}

/// What the goal rate asks of the CPU, from the costs of `step` (the highest bounded one, or
/// the first when none was bounded): all the cores' milliseconds per bounty at that rate,
/// what the processes other than the node spent per bounty, and so what would be left for
/// the node. A budget at or below zero means the goal cannot be reached on this machine
/// however little the node spends, with these agents, brains, posters and chain.
fn goal_budget(step: Option<&Value>, goal_rate: f64) -> Value {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let Some(step) = step else { return Value::Null };
    let per = &step["cpu_secs"]["ms_per_settled_bounty"];
    let cores = f(&step["cpu_secs"]["cores"]);
    let all_ms = if goal_rate > 0.0 { cores * 1e3 / goal_rate } else { 0.0 };
    let others_ms = f(&per["total"]) - f(&per["node"]);
    json!({
        "from_step_posts_per_sec": step["posts_per_sec"],
        "goal_posts_per_sec": goal_rate,
        "cores": cores,
        "all_processes_ms_per_bounty_at_goal": all_ms,
        "others_ms_per_bounty": others_ms,
        "node_ms_per_bounty": f(&per["node"]),
        "node_budget_ms_per_bounty": all_ms - others_ms,
    })
}

fn print_capacity(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let c = &r["capacity"];
    println!(
        "\nmarketplace capacity (open loop): {} agents ({} brain), {} posters, bid window {} ms, fan-out {}, each rate posted for {} s\n",
        r["agents"],
        r["brain"].as_str().unwrap_or(""),
        r["posters"],
        r["bid_window_ms"],
        r["cfp_fanout"],
        c["step_secs"]
    );
    println!(
        "| posts/s | bounties | settled | backlog growth/s (2nd half) | max backlog | busy | p50 / p95 posted → settled | node CPU ms/bounty | SQL/bounty | node RPC/bounty | anvil RPC/bounty | escrow-only at this state | all cores full at | bounded |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in c["steps"].as_array().into_iter().flatten() {
        println!(
            "| {:.2} | {} | {} | {:+.2} | {:.0} | {} | {:.0} / {:.0} ms | {:.2} | {:.1} | {:.2} | {:.2} | {:.0}/s ({:.1}%) | {:.0}/s | {} |",
            f(&s["posts_per_sec"]),
            s["bounties"],
            s["settled"],
            f(&s["backlog_growth_per_sec"]),
            f(&s["max_backlog"]),
            s["busy_refusals"],
            f(&s["latency_ms"]["p50"]),
            f(&s["latency_ms"]["p95"]),
            f(&s["node_cpu_ms_per_settled_bounty"]),
            f(&s["sql_per_settled_bounty"]),
            f(&s["node_rpc_per_settled_bounty"]),
            f(&s["anvil_rpc_per_settled_bounty"]),
            f(&s["escrow_only_bounties_per_sec_at_this_state"]),
            100.0 * f(&s["ratio_to_escrow_only_at_this_state"]),
            f(&s["cpu_ceiling_posts_per_sec"]),
            if s["bounded"] == true { "yes" } else { "**no**" }
        );
        if let Some(errs) = s["errors"].as_object() {
            for (e, n) in errs {
                println!("  {n} × {e}");
            }
        }
    }
    // Steps at one rate (`bench-market-history`): what the node's history costs it.
    let steps: Vec<&Value> = c["steps"].as_array().into_iter().flatten().collect();
    if let [first, .., last] = steps[..]
        && steps.iter().all(|s| s["posts_per_sec"] == first["posts_per_sec"])
    {
        let cpu = |s: &Value| f(&s["node_cpu_ms_per_settled_bounty"]);
        let posted: u64 = steps.iter().map(|s| s["bounties"].as_u64().unwrap_or(0)).sum();
        println!(
            "\n**node CPU per settled bounty, last step / first at the same rate: {:.2}×** ({:.2} → {:.2} ms; {posted} bounties on the node by the end)",
            cpu(last) / cpu(first).max(f64::MIN_POSITIVE),
            cpu(first),
            cpu(last)
        );
    }
    println!(
        "\n**highest bounded rate: {:.2} bounties/s** = {:.1}% of the escrow-only rate measured in this run ({:.1} bounties/s; goal ≥ {:.0}%)",
        f(&c["highest_bounded_posts_per_sec"]),
        100.0 * f(&c["ratio_to_escrow_only"]),
        f(&c["escrow_only_bounties_per_sec"]),
        100.0 * f(&c["goal_ratio"])
    );
    println!(
        "against the escrow alone at the chain state its step left (measured right after it): {:.1}% ({:.1} bounties/s)",
        100.0 * f(&c["ratio_to_escrow_only_at_its_state"]),
        f(&c["escrow_only_bounties_per_sec_at_its_state"])
    );
    let b = &c["goal_cpu_budget"];
    if b.is_object() {
        println!(
            "CPU budget of the goal ({:.1} posts/s on {:.0} cores, at the costs of the {:.2} posts/s step): \
             {:.1} ms of CPU per bounty for every process together; the others (anvil, agents, \
             their programs, posters) spent {:.1} ms, which leaves the node {:.1} ms (it spent {:.1}){}",
            f(&b["goal_posts_per_sec"]),
            f(&b["cores"]),
            f(&b["from_step_posts_per_sec"]),
            f(&b["all_processes_ms_per_bounty_at_goal"]),
            f(&b["others_ms_per_bounty"]),
            f(&b["node_budget_ms_per_bounty"]),
            f(&b["node_ms_per_bounty"]),
            if f(&b["node_budget_ms_per_bounty"]) <= 0.0 {
                ": not reachable on this machine however little the node spends"
            } else {
                ""
            }
        );
    }
}
