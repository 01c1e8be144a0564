//! Traffic benchmark (not a test): bytes on the wire per agent query, with and without
//! permessage-deflate, and the CPU each message costs.
//!
//! One "query" is one bounty's conversation over the IoA WebSocket, with the frames the
//! marketplace really sends (docs/earning.md): the market identity opens a call-for-proposals
//! group with `--candidates` agents and posts the call (record, terms hash, description,
//! input); each candidate joins and answers with a signed EIP-712 bid (the body of
//! `market.bid_request.json`, here sent into the group instead of over REST so that it is
//! counted on the same sockets); the market opens a work group with the winner, assigns the
//! task, the winner delivers the result and the market posts the signed verdict. Every byte
//! read and written by every agent's TCP socket during the query is counted (frame headers,
//! masks and compressed payloads included; the upgrade and login, paid once per connection,
//! are reported apart). The node runs in this process, so the CPU time (getrusage, user +
//! system) of a run covers both ends of every message: the difference between the runs is
//! what compression costs.
//!
//! `cargo run --release -p marketplace-node --example traffic_bench -- --queries 200`

use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256, hex};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use clap::Parser;
use futures::SinkExt;
use marketplace_node::ioa::{self, deflate::WsCompression};
use marketplace_node::traffic::{Counted, Counters};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use yawc::{Frame, OpCode};

/// The IoA paper's figure for one agent query, in bytes.
const PAPER_BYTES_PER_QUERY: f64 = 7_600.0;

/// Benchmark options.
#[derive(Debug, Parser)]
#[command(
    // The Makefile passes its defaults first and the user's *_BENCH_ARGS after them: the last
    // value of a repeated flag wins (`make bench-traffic TRAFFIC_BENCH_ARGS="--queries 50"`).
    args_override_self = true,
    after_help = "Example:\n  cargo run --release -p marketplace-node --example traffic_bench -- --queries 200 --candidates 3"
)]
struct Opts {
    /// Queries (bounties) per configuration.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Agents invited to each call for proposals (each bids).
    #[arg(long, default_value_t = 3)]
    candidates: usize,
    /// Numbers in each task's input (the result is the same numbers sorted).
    #[arg(long, default_value_t = 32)]
    input_len: usize,
}

type Sock = yawc::WebSocket<Counted<TcpStream>>;

struct Agent {
    key: PrivateKeySigner,
    ws: Sock,
    counters: Counters,
    frames: u64,
    next_req: u64,
    /// `msg_id`s of the group messages received (every member of a group, its sender too,
    /// gets each of its messages).
    seen: std::collections::HashSet<String>,
    /// Invitations received and not yet waited for.
    invited: usize,
}

impl Agent {
    async fn connect(addr: &str, offer: bool) -> eyre::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (io, counters) = Counted::new(tcp);
        let mut options = yawc::Options::default().with_utf8();
        if offer {
            // A client's usual offer: it lets the node choose its window.
            options = options
                .with_compression_level(yawc::CompressionLevel::default())
                .with_client_max_window_bits(15);
        }
        let url = format!("ws://{addr}/v1/ws").parse()?;
        let ws = yawc::WebSocket::handshake(url, io, options).await?;
        let key = PrivateKeySigner::random();
        let mut a = Self {
            key,
            ws,
            counters,
            frames: 0,
            next_req: 1,
            seen: Default::default(),
            invited: 0,
        };
        let ch = a.recv().await?;
        let sig = a.key.sign_message_sync(ch["message"].as_str().unwrap_or("").as_bytes())?;
        a.send(json!({"type":"auth","address":a.key.address(),
            "signature":hex::encode_prefixed(sig.as_bytes())}))
            .await?;
        a.expect("welcome").await?;
        let card = json!({"name":format!("sorter-{}", &a.key.address().to_string()[2..8]),
            "skills":["sort"],"description":"sorts lists of numbers ascending","price":4});
        a.request(json!({"type":"register","card":card})).await?;
        Ok(a)
    }

    fn address(&self) -> Address {
        self.key.address()
    }

    async fn send(&mut self, v: Value) -> eyre::Result<()> {
        self.ws.send(Frame::text(v.to_string())).await?;
        self.frames += 1;
        Ok(())
    }

    async fn recv(&mut self) -> eyre::Result<Value> {
        loop {
            let f = tokio::time::timeout(Duration::from_secs(30), self.ws.next_frame())
                .await
                .map_err(|_| eyre::eyre!("no frame within 30 s"))??;
            match f.opcode() {
                OpCode::Text => {
                    self.frames += 1;
                    let v: Value = serde_json::from_slice(f.payload())?;
                    match v["type"].as_str() {
                        Some("message") => {
                            self.seen.insert(v["msg_id"].as_str().unwrap_or("").to_owned());
                        }
                        Some("invited") => self.invited += 1,
                        _ => {}
                    }
                    return Ok(v);
                }
                OpCode::Close => eyre::bail!("closed by the node"),
                _ => continue,
            }
        }
    }

    /// Read frames until one of `kind` comes (others in between are protocol chatter the
    /// scenario does not need, and are counted like any frame).
    async fn expect(&mut self, kind: &str) -> eyre::Result<Value> {
        loop {
            let v = self.recv().await?;
            if v["type"] == kind {
                return Ok(v);
            }
            if v["type"] == "error" {
                eyre::bail!("error frame: {v}");
            }
        }
    }

    /// Read until every message in `ids` has arrived.
    async fn wait_seen(&mut self, ids: &[String]) -> eyre::Result<()> {
        while !ids.iter().all(|id| self.seen.contains(id)) {
            self.recv().await?;
        }
        Ok(())
    }

    /// Read until an invitation has arrived.
    async fn wait_invited(&mut self) -> eyre::Result<()> {
        while self.invited == 0 {
            self.recv().await?;
        }
        self.invited -= 1;
        Ok(())
    }

    /// A request and its `ok`/`ack` (pushes that arrive first are read past).
    async fn request(&mut self, mut v: Value) -> eyre::Result<Value> {
        let id = self.next_req;
        self.next_req += 1;
        v["req_id"] = json!(id);
        self.send(v).await?;
        loop {
            let r = self.recv().await?;
            if r["req_id"] == json!(id) {
                if r["type"] == "error" {
                    eyre::bail!("refused: {r}");
                }
                return Ok(r);
            }
        }
    }
}

fn rand_b256() -> B256 {
    B256::from(rand::random::<[u8; 32]>())
}

fn rand_addr() -> Address {
    Address::from(rand::random::<[u8; 20]>())
}

/// The call for proposals as the marketplace builds it (docs/earning.md §2).
fn cfp_body(id: B256, market: Address, poster: Address, input: &[u64]) -> Value {
    json!({"kind":"cfp","bounty_id":id,
        "record":{"poster":poster,"token":rand_addr(),"amount":"5000000000000000000","price":"0",
            "provider":Address::ZERO,"evaluator":market,"arbiter":rand_addr(),
            "deadline":1767229200u64,"reviewWindow":3600,"challengeWindow":0,"feeBps":100,"mode":0,
            "maxWinners":0,"specHash":rand_b256(),"resultHash":B256::ZERO},
        "terms_hash":rand_b256(),"description":"Sort these numbers ascending","input":input,
        "skills":["sort"],"verify":"hash","bid_close_at":1767225606u64,"bid_close_ms":1767225605123u64,
        "award_grace_secs":30,"chain_id":31337,"escrow":rand_addr(),"from_reward":null})
}

/// A signed bid (docs/earning.md §3); the signature is a real EIP-191 signature over the bid
/// JSON, so its 65 bytes are as incompressible as an EIP-712 one.
fn bid_body(id: B256, bidder: &PrivateKeySigner, price: u64) -> eyre::Result<Value> {
    let bid = json!({"bountyId":id,"termsHash":rand_b256(),"bidder":bidder.address(),
        "amount":format!("{price}000000000000000000"),"deadline":1767229200u64,"eta":30,"bond":"0",
        "nonce":rand::random::<u32>().to_string()});
    let sig = bidder.sign_message_sync(bid.to_string().as_bytes())?;
    Ok(json!({"kind":"bid","bid":bid,"signature":hex::encode_prefixed(sig.as_bytes())}))
}

struct Run {
    setup_bytes: u64,
    bytes: Vec<u64>,
    frames: u64,
    cpu: f64,
    wall: Duration,
    agreed: bool,
}

fn cpu_secs() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

async fn run(opts: &Opts, ws: WsCompression, offer: bool) -> eyre::Result<Run> {
    let dir = std::env::temp_dir()
        .join(format!("reef-traffic-{}", hex::encode(rand::random::<[u8; 6]>())));
    std::fs::create_dir_all(&dir)?;
    let config = ioa::Config {
        database_url: format!("sqlite://{}/node.db", dir.display()),
        rate_per_sec: 1e6,
        rate_burst: 1e6,
        ws_compression: ws,
        ..ioa::Config::default()
    };
    let running = ioa::serve(config, "127.0.0.1:0".parse()?).await?;
    let addr = running.addr.to_string();
    let mut market = Agent::connect(&addr, offer).await?;
    let mut cands = Vec::new();
    for _ in 0..opts.candidates {
        cands.push(Agent::connect(&addr, offer).await?);
    }
    let all = |m: &Agent, c: &[Agent]| {
        m.counters.total() + c.iter().map(|a| a.counters.total()).sum::<u64>()
    };
    let frames = |m: &Agent, c: &[Agent]| m.frames + c.iter().map(|a| a.frames).sum::<u64>();
    let setup_bytes = all(&market, &cands) / (1 + opts.candidates as u64);
    let (f0, cpu0, t0) = (frames(&market, &cands), cpu_secs(), Instant::now());
    let poster = rand_addr();
    let mut bytes = Vec::with_capacity(opts.queries);
    for q in 0..opts.queries {
        let before = all(&market, &cands);
        let id = rand_b256();
        let input: Vec<u64> = (0..opts.input_len).map(|_| rand::random::<u64>() % 10_000).collect();
        let members: Vec<Address> = cands.iter().map(Agent::address).collect();
        let g = market
            .request(json!({"type":"create_group","name":format!("cfp {}", &id.to_string()[..10]),"members":members}))
            .await?;
        let cfp_group = g["result"]["group_id"].clone();
        market.request(json!({"type":"join","group_id":cfp_group,"since_seq":0})).await?;
        let cfp_id = format!("cfp-{id}");
        market
            .request(json!({"type":"send","group_id":cfp_group,"msg_id":cfp_id,
                "state":"discussion","body":cfp_body(id, market.address(), poster, &input)}))
            .await?;
        let mut cfp_ids = vec![cfp_id];
        for (i, c) in cands.iter_mut().enumerate() {
            c.wait_invited().await?;
            c.request(json!({"type":"join","group_id":cfp_group,"since_seq":0})).await?;
            let bid = bid_body(id, &c.key, 3 + i as u64)?;
            let bid_id = format!("bid-{id}-{}", c.address());
            c.request(json!({"type":"send","group_id":cfp_group,
                "msg_id":bid_id,"state":"discussion","body":bid}))
                .await?;
            cfp_ids.push(bid_id);
        }
        // Every member sees the call and every bid (the market ranks them).
        market.wait_seen(&cfp_ids).await?;
        for c in cands.iter_mut() {
            c.wait_seen(&cfp_ids).await?;
        }
        let winner = &mut cands[0];
        let w = market
            .request(json!({"type":"create_group","name":format!("task {}", &id.to_string()[..10]),
                "members":[poster, winner.address()]}))
            .await?;
        let work = w["result"]["group_id"].clone();
        market.request(json!({"type":"join","group_id":work,"since_seq":0})).await?;
        winner.wait_invited().await?;
        winner.request(json!({"type":"join","group_id":work,"since_seq":0})).await?;
        let task_id = format!("bounty-{}", &id.to_string()[2..14]);
        let assign_id = format!("assign-{id}-{}", winner.address());
        market
            .request(json!({"type":"send","group_id":work,"msg_id":assign_id,
                "state":"task_assignment",
                "task_desc":{"task_id":task_id,"assignee":winner.address(),"mode":"sync",
                    "input":{"bounty_id":id,"description":"Sort these numbers ascending","input":input,
                        "record":cfp_body(id, market.address(), poster, &input)["record"],"verify":"hash"}},
                "body":{"kind":"assignment","bounty_id":id}}))
            .await?;
        winner.wait_seen(std::slice::from_ref(&assign_id)).await?;
        let mut sorted = input.clone();
        sorted.sort_unstable();
        let result_id = format!("result-{task_id}");
        winner
            .request(json!({"type":"send","group_id":work,"msg_id":result_id,
                "state":"execution","task_desc":{"task_id":task_id},"body":{"status":"done","result":sorted}}))
            .await?;
        market.wait_seen(std::slice::from_ref(&result_id)).await?;
        let att = market.key.sign_message_sync(format!("{id}{q}").as_bytes())?;
        let verdict_id = format!("verdict-{id}");
        market
            .request(json!({"type":"send","group_id":work,"msg_id":verdict_id,
                "state":"conclusion","body":{"kind":"verdict","bounty_id":id,"accept":true,
                "reason":"result hash matches","result_hash":rand_b256(),
                "attestation":hex::encode_prefixed(att.as_bytes()),"amount":U256::from(3u64) * U256::from(10u64).pow(U256::from(18u64))}}))
            .await?;
        let work_ids = [assign_id, result_id, verdict_id];
        market.wait_seen(&work_ids).await?;
        cands[0].wait_seen(&work_ids).await?;
        // Done with both groups: no more pushes for them.
        for g in [&cfp_group, &work] {
            market.request(json!({"type":"leave","group_id":g})).await?;
        }
        for (i, c) in cands.iter_mut().enumerate() {
            c.request(json!({"type":"leave","group_id":cfp_group})).await?;
            if i == 0 {
                c.request(json!({"type":"leave","group_id":work})).await?;
            }
        }
        bytes.push(all(&market, &cands) - before);
    }
    let out = Run {
        setup_bytes,
        frames: frames(&market, &cands) - f0,
        cpu: cpu_secs() - cpu0,
        wall: t0.elapsed(),
        bytes,
        agreed: offer && ws.enabled,
    };
    running.task.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Resident memory of one connection's deflate state (a compressor and a decompressor with
/// `bits`-bit windows, after one message of `sample` each way), averaged over many.
fn deflate_state_bytes(bits: u8, sample: &[u8]) -> f64 {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
    const N: usize = 256;
    let before = rss_bytes();
    let mut kept = Vec::with_capacity(N);
    for _ in 0..N {
        let mut c = Compress::new_with_window_bits(Compression::default(), false, bits);
        let mut d = Decompress::new_with_window_bits(false, bits);
        let mut out = Vec::with_capacity(sample.len() + 64);
        let _ = c.compress_vec(sample, &mut out, FlushCompress::Sync);
        let mut back = Vec::with_capacity(sample.len() + 64);
        let _ = d.decompress_vec(&out, &mut back, FlushDecompress::Sync);
        kept.push((c, d));
    }
    let per = rss_bytes().saturating_sub(before) as f64 / N as f64;
    drop(kept);
    per
}

fn mean(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let opts = Opts::parse();
    let on = WsCompression::default();
    let configs: Vec<(String, WsCompression, bool)> = vec![
        ("off (no offer)".into(), WsCompression::off(), false),
        (format!("deflate, {} bits, context takeover", on.window_bits), on, true),
        (
            format!("deflate, {} bits, no context takeover", on.window_bits),
            WsCompression { context_takeover: false, ..on },
            true,
        ),
        (
            "deflate, 15 bits, context takeover".into(),
            WsCompression { window_bits: 15, ..on },
            true,
        ),
        ("deflate, 9 bits, context takeover".into(), WsCompression { window_bits: 9, ..on }, true),
    ];
    println!(
        "traffic per agent query: 1 market identity + {} candidates, {} queries, input of {} numbers",
        opts.candidates, opts.queries, opts.input_len
    );
    println!(
        "{:<40} {:>11} {:>9} {:>9} {:>10} {:>12} {:>11}",
        "websocket", "B/query", "vs paper", "vs off", "setup B", "frames/q", "CPU µs/msg"
    );
    let mut base: Option<(f64, f64)> = None;
    for (name, cfg, offer) in configs {
        let r = run(&opts, cfg, offer).await?;
        let per_query = mean(&r.bytes);
        let cpu_per_msg = r.cpu * 1e6 / r.frames.max(1) as f64;
        let (off_bytes, off_cpu) = *base.get_or_insert((per_query, cpu_per_msg));
        println!(
            "{:<40} {:>11.0} {:>8.2}x {:>8.2}x {:>10} {:>12.1} {:>11.1}{}",
            name,
            per_query,
            per_query / PAPER_BYTES_PER_QUERY,
            per_query / off_bytes,
            r.setup_bytes,
            r.frames as f64 / opts.queries as f64,
            cpu_per_msg,
            if r.agreed {
                format!("  (+{:.1} µs/msg vs off)", cpu_per_msg - off_cpu)
            } else {
                String::new()
            },
        );
        eprintln!("  ({name}: {:.2} s wall, {:.2} s CPU)", r.wall.as_secs_f64(), r.cpu);
    }
    println!(
        "paper: {PAPER_BYTES_PER_QUERY:.0} B per query. Bytes are counted on every agent's socket, both directions; CPU is this process's (node + agents), per frame sent or received by an agent."
    );
    let sample = cfp_body(rand_b256(), rand_addr(), rand_addr(), &[5, 3, 9, 1]).to_string();
    let mem: Vec<String> = [9u8, 12, 15]
        .iter()
        .map(|&b| format!("{b} bits {:.0} KiB", deflate_state_bytes(b, sample.as_bytes()) / 1024.0))
        .collect();
    println!(
        "deflate state per compressed connection with context takeover (resident; one deflater and one inflater): {}",
        mem.join(", ")
    );
    Ok(())
}
