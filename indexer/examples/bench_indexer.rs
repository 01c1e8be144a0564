//! Indexer benchmark (`make bench`): seeds anvil with ≥ 100,000 escrow events (many bounties per
//! block, automine off), then measures backfill into SQLite and Postgres (events/s, blocks/s)
//! and the live-tail lag in blocks while blocks keep coming (polling over HTTP, then woken by a
//! ws:// `newHeads` subscription).
//!
//! `cargo run --release -p reef-indexer --example bench_indexer [-- EVENTS]`
//! Postgres is skipped when 127.0.0.1:5432 does not answer.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{B256, U256, utils::parse_ether},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use escrow_client::{
    ClientOptions, NewBounty, ReefClient, RetryPolicy,
    bindings::escrow::BountyEscrow,
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    escrow::bounty_id,
    signing::verdict,
};
use reef_indexer::{Indexer, IndexerConfig, RpcSource, Store};

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Sender {
    p: DynProvider,
    from: alloy::primitives::Address,
    nonce: u64,
}

impl Sender {
    async fn new(url: &str, i: usize) -> R<Self> {
        let s = dev_signer(i);
        let from = s.address();
        let p = ProviderBuilder::new()
            .disable_recommended_fillers()
            .wallet(EthereumWallet::from(s))
            .connect_http(url.parse()?)
            .erased();
        let nonce = p.get_transaction_count(from).pending().await?;
        Ok(Self { p, from, nonce })
    }

    async fn send(&mut self, to: alloy::primitives::Address, input: Vec<u8>) -> R<()> {
        let tx = TransactionRequest::default()
            .with_from(self.from)
            .with_to(to)
            .with_input(input)
            .with_nonce(self.nonce)
            .with_chain_id(31337)
            .with_gas_limit(600_000)
            .with_max_fee_per_gas(200_000_000_000)
            .with_max_priority_fee_per_gas(1_000_000_000);
        let _pending = self.p.send_transaction(tx).await?;
        self.nonce += 1;
        Ok(())
    }
}

async fn mine(p: &DynProvider) -> R<()> {
    let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await?;
    Ok(())
}

async fn seed(url: &str, poster: &ReefClient, target_events: u64) -> R<(u64, u64)> {
    let p = poster.provider().clone();
    let escrow = poster.deployment().bounty_escrow;
    let token = poster.deployment().test_token.ok_or("no test token")?;
    poster.approve(token, escrow, U256::MAX).await?;
    let _: serde_json::Value =
        p.raw_request("evm_setBlockGasLimit".into(), (U256::from(2_000_000_000u64),)).await?;
    let _: serde_json::Value = p.raw_request("evm_setAutomine".into(), (false,)).await?;
    let mut providers: Vec<ReefClient> = Vec::new();
    for i in 1..5 {
        providers.push(poster.with_signer(dev_signer(i))?);
    }
    let mut poster_tx = Sender::new(url, 0).await?;
    let mut prov_tx = Vec::new();
    for i in 1..5 {
        prov_tx.push(Sender::new(url, i).await?);
    }
    let now = poster.chain_time().await?;
    let amount = parse_ether("1")?.to::<u128>();
    let terms = poster
        .terms(&NewBounty {
            token,
            amount,
            evaluator: None,
            arbiter: dev_signer(5).address(),
            deadline: now + 30 * 86_400,
            review_window: 3_600,
            challenge_window: 3_600,
            description: "bench".into(),
            contest_winners: None,
        })
        .await?;
    // ~6 events per bounty (posted, awarded, transfer in, submitted, attested, completed + payout).
    let per_round = 400u64;
    let bounties = target_events.div_ceil(6);
    let started = Instant::now();
    let mut n = 0u64;
    while n < bounties {
        let k = per_round.min(bounties - n);
        let mut awarded = Vec::with_capacity(k as usize);
        for j in 0..k {
            let i = n + j;
            let salt = B256::from(U256::from(i + 1));
            let id = bounty_id(poster.address(), salt);
            let who = (i % 4) as usize;
            let (bid, sig) =
                providers[who].sign_bid(id, &terms, amount, now + 30 * 86_400, 0, U256::from(i))?;
            let call = BountyEscrow::postFundAndAwardCall {
                salt,
                terms: terms.clone(),
                bid: bid.clone(),
                bidSig: sig,
            };
            poster_tx.send(escrow, call.abi_encode()).await?;
            let mut b = terms.clone();
            b.provider = bid.bidder;
            b.price = amount;
            awarded.push((id, b, who));
        }
        mine(&p).await?;
        for (id, b, who) in awarded {
            let rh = alloy::primitives::keccak256(id.to_be_bytes::<32>());
            let sig = poster.sign_attestation(id, b.provider, rh, verdict::ACCEPT)?;
            let call = BountyEscrow::submitAndAttestCall {
                id,
                b,
                resultHash: rh,
                verdict: verdict::ACCEPT,
                evaluatorSig: sig,
            };
            prov_tx[who].send(escrow, call.abi_encode()).await?;
        }
        mine(&p).await?;
        n += k;
        eprint!("\rseeded {n}/{bounties} bounties ({:.0}s)", started.elapsed().as_secs_f64());
    }
    eprintln!();
    let _: serde_json::Value = p.raw_request("evm_setAutomine".into(), (true,)).await?;
    Ok((bounties, poster.block_number().await?))
}

async fn backfill(
    label: &str,
    db_url: &str,
    url: &str,
    cfg: &IndexerConfig,
) -> R<Indexer<RpcSource>> {
    let store = Store::connect(db_url).await?;
    let mut ix = Indexer::new(RpcSource::new(url)?, store, cfg.clone()).await?;
    let t = Instant::now();
    let r = ix.sync_once().await?;
    let secs = t.elapsed().as_secs_f64();
    let blocks = r.next_block - r.from;
    println!(
        "backfill {label:<8}: {} events, {blocks} blocks in {secs:.2} s → {:.0} events/s, {:.0} blocks/s (goal ≥ 20,000 events/s into SQLite)",
        r.events,
        r.events as f64 / secs,
        blocks as f64 / secs
    );
    Ok(ix)
}

async fn live_lag(label: &str, mut ix: Indexer<RpcSource>, poster: &ReefClient) -> R<()> {
    let store = ix.store().clone();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { ix.run(rx).await });
    let p = poster.provider().clone();
    let mut samples = Vec::new();
    let until = Instant::now() + Duration::from_secs(15);
    let mut next_block_at = Instant::now();
    while Instant::now() < until {
        if Instant::now() >= next_block_at {
            mine(&p).await?;
            next_block_at += Duration::from_millis(500);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let head = poster.block_number().await?;
        let indexed = store.next_block().await?.unwrap_or(0).saturating_sub(1);
        samples.push(head.saturating_sub(indexed));
    }
    let _ = tx.send(true);
    task.await??;
    samples.sort_unstable();
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    println!(
        "live tail {label}: {} samples over 15 s with a block every 500 ms: lag mean {mean:.2}, p99 {p99}, max {} blocks (goal ≤ 1)",
        samples.len(),
        samples.last().copied().unwrap_or(0)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> R<()> {
    let target: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await?;
    let opts = ClientOptions { retry: RetryPolicy::none(), ..ClientOptions::default() };
    let deployer =
        ReefClient::connect(&anvil.rpc_url, dev_signer(0), empty_deployment(31337), opts.clone())
            .await?;
    let seedlist = (0..6).map(|i| dev_signer(i).address()).collect();
    let (dep, _) = deploy_all(&deployer, &DeployConfig::devnet(seedlist)).await?;
    let poster = ReefClient::connect(&anvil.rpc_url, dev_signer(0), dep.clone(), opts).await?;
    let t = Instant::now();
    let (bounties, head) = seed(&anvil.rpc_url, &poster, target).await?;
    println!("seeded {bounties} bounties up to block {head} in {:.1} s", t.elapsed().as_secs_f64());

    let mut cfg = IndexerConfig::for_deployment(&dep);
    cfg.poll_interval = Duration::from_millis(100);
    let dir = std::env::temp_dir().join(format!("reef-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite = format!("sqlite:{}", dir.join("idx.db").display());
    let ix = backfill("sqlite", &sqlite, &anvil.rpc_url, &cfg).await?;

    sqlx::any::install_default_drivers();
    match sqlx::AnyPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
        Ok(admin) => {
            let name = format!("reef_idx_bench_{}", std::process::id());
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await?;
            let pg = format!("postgres://postgres@127.0.0.1:5432/{name}");
            let pix = backfill("postgres", &pg, &anvil.rpc_url, &cfg).await?;
            pix.store().close().await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin)
            .await?;
        }
        Err(e) => println!("backfill postgres: skipped ({e})"),
    }
    // Again into a new SQLite file, now that anvil has served these logs once (the first run
    // above also pays for anvil's cold log queries).
    let sqlite2 = format!("sqlite:{}", dir.join("idx2.db").display());
    let warm = backfill("sqlite (warm anvil)", &sqlite2, &anvil.rpc_url, &cfg).await?;
    warm.store().close().await;

    let store = ix.store().clone();
    live_lag(&format!("(http, {:?} poll)", cfg.poll_interval), ix, &poster).await?;
    // Same database, now woken by newHeads pushes over ws:// with a 1 s fallback poll.
    let mut ws_cfg = cfg.clone();
    ws_cfg.poll_interval = Duration::from_secs(1);
    let ws = anvil.rpc_url.replacen("http://", "ws://", 1);
    let wix = Indexer::new(RpcSource::new(&ws)?, store, ws_cfg).await?;
    live_lag("(ws newHeads, 1 s poll)", wix, &poster).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
