//! Auction benchmark: 1,000 sealed bids on one bounty.
//!
//! `cargo run --release -p marketplace-node --example auction_bench [-- --bids 1000 --json]`
//!
//! Reports EIP-712 bid signature verifications per second (one core and all cores) and the
//! decision latency after the window closes: ranking in memory, and loading the bids from the
//! node's SQLite store then ranking (what `reef node` does at close).

use std::time::Instant;

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};
use escrow_client::{
    bindings::escrow::IBountyTypes::{Bid, Bounty},
    escrow::{BidJson, terms_hash},
    signing::{escrow_domain, sign_bid, verify_typed},
};
use marketplace_node::market::{
    auction::{BidBook, Candidate, ScoringConfig},
    store::MarketStore,
};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--bids")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let json = args.iter().any(|a| a == "--json");
    let domain = escrow_domain(31337, Address::repeat_byte(0xEE));
    let record = Bounty {
        poster: Address::repeat_byte(1),
        token: Address::repeat_byte(2),
        amount: 1_000_000,
        evaluator: Address::repeat_byte(3),
        deadline: 2_000_000_000,
        ..Default::default()
    };
    let id = U256::from(42);
    let th = terms_hash(&record);
    let signed: Vec<(Bid, Vec<u8>, u64)> = (0..n)
        .map(|i| {
            let k = PrivateKeySigner::random();
            let bid = Bid {
                bountyId: id,
                termsHash: th,
                bidder: k.address(),
                amount: U256::from(500_000 + (i as u64 * 7_919) % 500_000),
                deadline: 2_000_000_000,
                eta: 600,
                nonce: U256::from(i),
            };
            let sig = sign_bid(&k, &bid, &domain).expect("sign").to_vec();
            (bid, sig, 60 + (i as u64 * 13) % 3_000)
        })
        .collect();

    // Signature verification, one core.
    let t = Instant::now();
    for (bid, sig, _) in &signed {
        verify_typed(bid, &domain, sig, bid.bidder).expect("valid");
    }
    let one_core = n as f64 / t.elapsed().as_secs_f64();
    // All cores.
    let threads = std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1);
    let t = Instant::now();
    std::thread::scope(|s| {
        for chunk in signed.chunks(n.div_ceil(threads)) {
            let d = &domain;
            s.spawn(move || {
                for (bid, sig, _) in chunk {
                    verify_typed(bid, d, sig, bid.bidder).expect("valid");
                }
            });
        }
    });
    let all_cores = n as f64 / t.elapsed().as_secs_f64();

    // Decision in memory: rank n candidates.
    let cfg = ScoringConfig::default();
    let mut book: BidBook<usize> = BidBook::new(U256::from(record.amount), n);
    for (i, (bid, _, eta)) in signed.iter().enumerate() {
        let c = Candidate {
            bidder: bid.bidder,
            price: bid.amount,
            eta_secs: *eta,
            reputation: Some(0.5),
            stake: U256::ZERO,
        };
        book.submit(c, i).expect("accepted");
    }
    let t = Instant::now();
    let ranked = book.close(id, 3_600, &cfg);
    let rank_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(ranked.len(), n);

    // Decision as the node does it: load the sealed bids from SQLite, decode, rank.
    let dir = std::env::temp_dir().join(format!("reef-auction-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let store =
        MarketStore::connect(&format!("sqlite://{}/bench.db", dir.display())).await.expect("db");
    let key = "0x000000000000000000000000000000000000000000000000000000000000002a";
    for (bid, sig, eta) in &signed {
        let v = serde_json::json!({ "bid": BidJson::from(bid), "signature": alloy::primitives::Bytes::from(sig.clone()) });
        let stored =
            store.upsert_bid(key, &bid.bidder.to_string(), &v, *eta, n).await.expect("insert");
        assert!(stored, "the store refused a bid below its capacity");
    }
    let t = Instant::now();
    let rows = store.bids(key).await.expect("load");
    let mut book: BidBook<usize> = BidBook::new(U256::from(record.amount), n);
    for (i, r) in rows.iter().enumerate() {
        let bj: BidJson = serde_json::from_value(r.bid["bid"].clone()).expect("bid json");
        let bid = Bid::try_from(&bj).expect("bid");
        let c = Candidate {
            bidder: bid.bidder,
            price: bid.amount,
            eta_secs: r.eta_secs,
            reputation: None,
            stake: U256::ZERO,
        };
        book.submit(c, i).expect("accepted");
    }
    let ranked = book.close(id, 3_600, &cfg);
    let node_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(ranked.len(), n);
    let _ = std::fs::remove_dir_all(&dir);

    if json {
        println!(
            "{}",
            serde_json::json!({
                "bids": n,
                "verifyPerSecOneCore": one_core.round(),
                "verifyPerSecAllCores": all_cores.round(),
                "threads": threads,
                "decisionMsInMemory": rank_ms,
                "decisionMsFromSqlite": node_ms,
            })
        );
    } else {
        println!("auction benchmark, {n} sealed bids on one bounty");
        println!("| metric | value | goal |\n|---|---|---|");
        println!("| bid signatures verified/s, 1 core | {one_core:.0} | ≥ 10,000 |");
        println!("| bid signatures verified/s, {threads} cores | {all_cores:.0} | |");
        println!("| decision latency after close, in memory | {rank_ms:.2} ms | ≤ 50 ms |");
        println!(
            "| decision latency after close, load from SQLite + rank | {node_ms:.2} ms | ≤ 50 ms |"
        );
    }
}
