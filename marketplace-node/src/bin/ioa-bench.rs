//! IoA benchmark (not a test): N authenticated agents in groups of G, each sending at a steady
//! rate through a real `reef node` process; reports delivered messages/s (one delivery per
//! recipient), p50/p99 send→receive latency and the node's RSS per idle connection; then runs
//! the same load against a minimal raw tokio-tungstenite broadcast server (the ceiling) and
//! prints our ratio to it.
//!
//! `cargo run --release -p marketplace-node --bin ioa-bench -- --agents 1000 --group-size 10`

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Mutex, broadcast};

use tokio_tungstenite::tungstenite::Message;

/// A connection and its frame maker (message number, send time µs) → text.
type Driver = (Ws, Box<dyn Fn(u64, u64) -> String + Send>);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Benchmark options.
#[derive(Debug, Parser)]
#[command(
    // The Makefile passes its defaults first and the user's *_BENCH_ARGS after them: the last
    // value of a repeated flag wins (`make bench-ioa IOA_BENCH_ARGS="--rate 5"`).
    args_override_self = true,
    after_help = "Example:\n  cargo run --release -p marketplace-node --bin ioa-bench -- --agents 1000 --group-size 10 --rate 10 --secs 10"
)]
struct Opts {
    /// Number of agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Agents per group.
    #[arg(long, default_value_t = 10)]
    group_size: usize,
    /// Messages per second sent by each agent.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Database for the node (default: a fresh SQLite file), e.g.
    /// `postgres://postgres@127.0.0.1:5432/reef_bench` (an existing, preferably empty database).
    #[arg(long)]
    database_url: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Latency histogram: 10 µs buckets up to 2 s (lock-free).
struct Stats {
    delivered: AtomicU64,
    buckets: Vec<AtomicU64>,
}

const BUCKET_US: u64 = 10;

impl Default for Stats {
    fn default() -> Self {
        Self {
            delivered: AtomicU64::new(0),
            buckets: (0..200_000).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Stats {
    fn record(&self, us: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let i = ((us / BUCKET_US) as usize).min(self.buckets.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let total = self.delivered.load(Ordering::Relaxed);
        if total == 0 {
            return f64::NAN;
        }
        let target = ((total as f64) * p).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= target {
                return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        f64::INFINITY
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The RSS of `pid` once it stops moving: read every second until two reads in a row
/// differ by less than 1 % (at most 10 s).
async fn settled_rss(pid: u32) -> u64 {
    let mut last = rss_kib(pid);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_kib(pid);
        if now.abs_diff(last) * 100 < last.max(1) {
            return now;
        }
        last = now;
    }
    last
}

async fn next_json(ws: &mut Ws) -> eyre::Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
            Some(Ok(_)) => continue,
            other => eyre::bail!("connection ended: {other:?}"),
        }
    }
}

async fn wait_reply(ws: &mut Ws, req: &str) -> eyre::Result<Value> {
    loop {
        let v = next_json(ws).await?;
        if v["req_id"] == req {
            if v["type"] == "error" {
                eyre::bail!("{v}");
            }
            return Ok(v);
        }
    }
}

async fn reef_login(url: &str, key: &PrivateKeySigner) -> eyre::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let ch = next_json(&mut ws).await?;
    let sig = key.sign_message_sync(ch["message"].as_str().unwrap_or_default().as_bytes())?;
    let auth = json!({"type":"auth","address":key.address(),"signature":alloy_primitives::hex::encode_prefixed(sig.as_bytes())});
    ws.send(Message::text(auth.to_string())).await?;
    let w = next_json(&mut ws).await?;
    eyre::ensure!(w["type"] == "welcome", "login failed: {w}");
    Ok(ws)
}

/// Drive one agent: send at `rate` until `stop`, record deliveries.
async fn drive(
    ws: Ws,
    frame: impl Fn(u64, u64) -> String + Send + 'static,
    rate: f64,
    t0: Instant,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) {
    let (mut sink, mut stream) = ws.split();
    let period = Duration::from_secs_f64(1.0 / rate);
    let st2 = stop.clone();
    let writer = tokio::spawn(async move {
        // Random phase so agents do not tick in lockstep.
        tokio::time::sleep(period.mul_f64(rand::random::<f64>())).await;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut i = 0u64;
        while !st2.load(Ordering::Relaxed) {
            tick.tick().await;
            let now = t0.elapsed().as_micros() as u64;
            if sink.send(Message::text(frame(i, now))).await.is_err() {
                break;
            }
            i += 1;
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(m)) = stream.next().await {
        let Message::Text(t) = m else { continue };
        // Cheap extraction of "t":<micros> from the body without a full parse.
        let s = t.as_str();
        let Some(pos) = s.find("\"bt\":") else { continue };
        let digits: String = s[pos + 5..].chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(sent) = digits.parse::<u64>() else { continue };
        if measuring.load(Ordering::Relaxed) {
            let now = t0.elapsed().as_micros() as u64;
            stats.record(now.saturating_sub(sent));
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    writer.abort();
}

struct Report {
    delivered_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn measure(conns: Vec<Driver>, o: &Opts) -> Report {
    let stats = Arc::new(Stats::default());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (ws, f) in conns {
        tasks.push(tokio::spawn(drive(
            ws,
            f,
            o.rate,
            t0,
            measuring.clone(),
            stop.clone(),
            stats.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in &tasks {
        t.abort();
    }
    let delivered = stats.delivered.load(Ordering::Relaxed);
    Report {
        delivered_per_sec: delivered as f64 / elapsed,
        p50_ms: stats.percentile_ms(0.50),
        p99_ms: stats.percentile_ms(0.99),
    }
}

/// The node's group-commit counters, read from its `/metrics`.
struct CommitTotals {
    batches: f64,
    messages: f64,
    secs: f64,
    /// Waits summed over the committed sends: in the writer's queue, and for their batch.
    queue_secs: f64,
    commit_wait_secs: f64,
}

/// What the group commit cost between two readings of its counters.
#[derive(Clone, Copy)]
struct Commit {
    /// Mean transaction time per batch, and mean batch.
    batch_ms: f64,
    batch_messages: f64,
    /// Mean wait per send: in the queue before its batch began, then for its batch's commit.
    queue_ms: f64,
    commit_ms: f64,
}

impl Commit {
    fn between(b: &CommitTotals, a: &CommitTotals) -> Option<Self> {
        let (batches, messages) = (a.batches - b.batches, a.messages - b.messages);
        (batches > 0.0 && messages > 0.0).then(|| Self {
            batch_ms: (a.secs - b.secs) / batches * 1e3,
            batch_messages: messages / batches,
            queue_ms: (a.queue_secs - b.queue_secs) / messages * 1e3,
            commit_ms: (a.commit_wait_secs - b.commit_wait_secs) / messages * 1e3,
        })
    }
}

async fn commit_totals(addr: &str) -> Option<CommitTotals> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
    };
    Some(CommitTotals {
        batches: value("reef_commit_seconds_count")?,
        messages: value("reef_commit_batch_size_sum")?,
        secs: value("reef_commit_seconds_sum")?,
        queue_secs: value("reef_send_wait_seconds_total{phase=\"queue\"}")?,
        commit_wait_secs: value("reef_send_wait_seconds_total{phase=\"commit\"}")?,
    })
}

/// The ceiling: a minimal broadcast server (first frame `{"group":n}`, then every text frame is
/// broadcast to the group's connections).
async fn raw_server() -> eyre::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let groups: Arc<Mutex<std::collections::HashMap<u64, broadcast::Sender<String>>>> =
        Arc::default();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let groups = groups.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                let (mut sink, mut stream) = ws.split();
                let Some(Ok(Message::Text(first))) = stream.next().await else { return };
                let g = serde_json::from_str::<Value>(first.as_str())
                    .ok()
                    .and_then(|v| v["group"].as_u64())
                    .unwrap_or(0);
                let tx = groups
                    .lock()
                    .await
                    .entry(g)
                    .or_insert_with(|| broadcast::channel(1024).0)
                    .clone();
                let mut rx = tx.subscribe();
                tokio::spawn(async move {
                    while let Ok(m) = rx.recv().await {
                        if sink.send(Message::text(m)).await.is_err() {
                            break;
                        }
                    }
                });
                while let Some(Ok(Message::Text(t))) = stream.next().await {
                    let _ = tx.send(t.as_str().to_owned());
                }
            });
        }
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let o = Opts::parse();
    let groups = o.agents.div_ceil(o.group_size.max(1));
    // --- Reef node as a separate process (so its RSS is its own).
    let dir = std::env::temp_dir().join(format!("reef-bench-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir)?;
    let db =
        o.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    let reef = std::env::current_exe()?.with_file_name("reef");
    let mut child = Command::new(&reef)
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--database-url",
            &db,
            "--rate-per-sec",
            "100000",
            "--rate-burst",
            "100000",
            "--queue-len",
            "4096",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            eyre::eyre!(
                "cannot start {}: {e} (build it: cargo build --release -p marketplace-node)",
                reef.display()
            )
        })?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().ok_or_else(|| eyre::eyre!("no stdout"))?),
        &mut line,
    )?;
    let addr =
        serde_json::from_str::<Value>(&line)?["listen"].as_str().unwrap_or_default().to_owned();
    let url = format!("ws://{addr}/v1/ws");
    eprintln!(
        "node {addr} (pid {}), {} agents in {groups} groups of {}",
        child.id(),
        o.agents,
        o.group_size
    );

    // Memory per connection as a slope: the node's RSS with half of the connections and with
    // all of them, each read once the RSS has settled. The node gives back tens of MiB of
    // start-up memory while its first connections arrive (measured: 232 MiB with 100
    // connections, 169 MiB with 500, 188 MiB with 1,000), so a reading taken before any
    // connection was larger than one taken after all of them, and the figure read 0.
    let keys: Vec<PrivateKeySigner> = (0..o.agents).map(|_| PrivateKeySigner::random()).collect();
    let first = (o.agents / 2).max(1).min(o.agents);
    let mut conns = Vec::with_capacity(o.agents);
    for k in &keys[..first] {
        conns.push(reef_login(&url, k).await?);
    }
    let rss0 = settled_rss(child.id()).await;
    for k in &keys[first..] {
        conns.push(reef_login(&url, k).await?);
    }
    let rss_idle = settled_rss(child.id()).await;
    let added = (o.agents - first).max(1);
    let per_conn_kib = (rss_idle.saturating_sub(rss0)) as f64 / added as f64;
    eprintln!(
        "node RSS {rss0} KiB with {first} idle authenticated connections → {rss_idle} KiB with {}",
        o.agents
    );

    // Groups: the first member creates with the others; everyone joins.
    let mut gids = Vec::new();
    for g in 0..groups {
        let members: Vec<_> =
            keys.iter().skip(g * o.group_size).take(o.group_size).map(|k| k.address()).collect();
        let ws = &mut conns[g * o.group_size];
        ws.send(Message::text(json!({"type":"create_group","name":format!("bench-{g}"),"members":members[1..],"req_id":"cg"}).to_string())).await?;
        let r = wait_reply(ws, "cg").await?;
        gids.push(r["result"]["group_id"].as_str().unwrap_or_default().to_owned());
    }
    let mut drivers: Vec<Driver> = Vec::new();
    for (i, mut ws) in conns.into_iter().enumerate() {
        let gid = gids[i / o.group_size].clone();
        ws.send(Message::text(json!({"type":"join","group_id":gid,"req_id":"j"}).to_string()))
            .await?;
        wait_reply(&mut ws, "j").await?;
        let f = move |n: u64, now: u64| {
            json!({"type":"send","group_id":gid,"msg_id":format!("{i}-{n}"),"state":"discussion","body":{"bt":now}}).to_string()
        };
        drivers.push((ws, Box::new(f)));
    }
    let before = commit_totals(&addr).await;
    let reef_report = measure(drivers, &o).await;
    let after = commit_totals(&addr).await;
    // What durability costs: a message is delivered after its batch's transaction commits,
    // and waits in the queue while the batch before it commits.
    let commit = match (before, after) {
        (Some(b), Some(a)) => Commit::between(&b, &a),
        _ => None,
    };
    let _ = child.kill();
    let _ = child.wait();

    // --- Raw ceiling, same clients, same load.
    let raw = raw_server().await?;
    let mut drivers: Vec<Driver> = Vec::new();
    for i in 0..o.agents {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{raw}/")).await?;
        let g = i / o.group_size;
        ws.send(Message::text(json!({"group": g}).to_string())).await?;
        let f = move |n: u64, now: u64| {
            json!({"type":"send","group_id":g,"msg_id":format!("{i}-{n}"),"state":"discussion","body":{"bt":now}}).to_string()
        };
        drivers.push((ws, Box::new(f)));
    }
    let raw_report = measure(drivers, &o).await;
    let _ = std::fs::remove_dir_all(&dir);

    let ratio = reef_report.delivered_per_sec / raw_report.delivered_per_sec;
    let db_kind = if db.starts_with("postgres") { "postgres" } else { "sqlite" };
    let offered = o.agents as f64 * o.rate * o.group_size as f64;
    let report = json!({
        "agents": o.agents, "group_size": o.group_size, "rate_per_agent": o.rate, "secs": o.secs,
        "offered_deliveries_per_sec": offered,
        "reef": { "delivered_per_sec": reef_report.delivered_per_sec, "p50_ms": reef_report.p50_ms, "p99_ms": reef_report.p99_ms,
                  "rss_per_idle_conn_kib": per_conn_kib, "database": db_kind },
        "raw_ceiling": { "delivered_per_sec": raw_report.delivered_per_sec, "p50_ms": raw_report.p50_ms, "p99_ms": raw_report.p99_ms },
        "ratio_to_ceiling": ratio,
        "commit": commit.map(|c| json!({ "mean_ms": c.batch_ms, "mean_batch": c.batch_messages,
            "per_message": { "queue_ms": c.queue_ms, "commit_ms": c.commit_ms },
            "per_message_over_p50": (c.queue_ms + c.commit_ms) / reef_report.p50_ms.max(1e-9) })),
        "ratio_p50": reef_report.p50_ms / raw_report.p50_ms.max(1e-9),
        "ratio_p99": reef_report.p99_ms / raw_report.p99_ms.max(1e-9),
    });
    if o.json {
        println!("{report}");
    } else {
        println!(
            "offered load:        {offered:.0} deliveries/s ({} agents × {} msg/s × {} recipients)",
            o.agents, o.rate, o.group_size
        );
        println!(
            "reef:                {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms",
            reef_report.delivered_per_sec, reef_report.p50_ms, reef_report.p99_ms
        );
        println!(
            "raw ceiling:         {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms",
            raw_report.delivered_per_sec, raw_report.p50_ms, raw_report.p99_ms
        );
        println!("ratio to ceiling:    {:.1} %", ratio * 100.0);
        println!(
            "latency vs raw:      p50 {:.1}×, p99 {:.1}×",
            reef_report.p50_ms / raw_report.p50_ms.max(1e-9),
            reef_report.p99_ms / raw_report.p99_ms.max(1e-9)
        );
        match commit {
            Some(c) => {
                println!(
                    "group commit:        {:.2} ms per batch of {:.1} messages on average",
                    c.batch_ms, c.batch_messages
                );
                println!(
                    "durability wait:     a message waited {:.2} ms in the queue and {:.2} ms \
                     for its batch's commit on average (means; Reef's p50 is {:.2} ms)",
                    c.queue_ms, c.commit_ms, reef_report.p50_ms
                );
            }
            None => println!("group commit:        not measured (no /metrics answer)"),
        }
        println!("node database:       {db_kind}");
        println!("node RSS/idle conn:  {per_conn_kib:.1} KiB");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make bench-ioa` passes its defaults before `IOA_BENCH_ARGS`: a repeated flag takes its
    /// last value instead of being refused.
    #[test]
    fn a_repeated_flag_takes_its_last_value() {
        let o = Opts::try_parse_from(["ioa-bench", "--rate", "10", "--secs", "10", "--rate", "5"])
            .expect("a repeated flag parses");
        assert_eq!(o.rate, 5.0);
    }
}
