//! Auction benchmark: 1,000 sealed bids on one bounty.
//!
//! `cargo run --release -p marketplace-node --example auction_bench [-- --bids 1000 --history 10 --json]`
//!
//! Reports EIP-712 bid signature verifications per second (one core and all cores) and the
//! decision latency after the window closes: ranking in memory, and what `reef node` does at
//! close: load the bids from its SQLite store, read the bidders' verified track record there
//! (`--history` past wins each, default 10, every one with a ~2 KB stored result, as a long-
//! running node has), then rank.

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
    ranking::SignedBid,
    store::MarketStore,
};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `--name N`, or `default` when absent or not a number.
    let number = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = number("--bids", 1_000);
    let history = number("--history", 10);
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
                bond: U256::ZERO,
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
        let v = SignedBid {
            bid: BidJson::from(bid),
            signature: alloy::primitives::Bytes::from(sig.clone()),
        };
        let stored =
            store.upsert_bid(key, &bid.bidder.to_string(), &v, *eta, n).await.expect("insert");
        assert!(stored, "the store refused a bid below its capacity");
    }
    // The bidders' past wins on this node, each settled with a verdict that keeps its result
    // (a sorted list of 300 numbers, ~2 KB), one in five rejected.
    let result: Vec<u64> = (0..300u64).map(|i| 1_000_000 + i * 7).collect();
    let mut past = 0u64;
    for (bid, _, _) in &signed {
        for h in 0..history {
            past += 1;
            let pid = format!("0x{past:064x}");
            store
                .insert_bounty(&pid, Address::repeat_byte(0x01), &serde_json::json!({}), 1)
                .await
                .expect("past");
            store.set_field(&pid, "winner", &bid.bidder.to_string()).await.expect("winner");
            let verdict =
                serde_json::json!({ "accept": h % 5 != 0, "reason": "bench", "result": result });
            store.set_verdict(&pid, &verdict).await.expect("verdict");
        }
    }
    let t = Instant::now();
    let rows = store.bids(key).await.expect("load");
    let bids: Vec<(u64, Bid)> =
        rows.iter().map(|r| (r.eta_secs, Bid::try_from(&r.bid.bid).expect("bid"))).collect();
    let bidders: Vec<Address> = bids.iter().map(|(_, b)| b.bidder).collect();
    let record_of = store.outcomes_of(&bidders).await.expect("outcomes");
    let mut book: BidBook<usize> = BidBook::new(U256::from(record.amount), n);
    for (i, (eta_secs, bid)) in bids.iter().enumerate() {
        let (ok, bad) = record_of.get(&bid.bidder).copied().unwrap_or((0, 0));
        assert_eq!(ok + bad, history as u64, "every past win is counted");
        let c = Candidate {
            bidder: bid.bidder,
            price: bid.amount,
            eta_secs: *eta_secs,
            reputation: Some((1.0 + ok as f64) / (2.0 + (ok + bad) as f64)),
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
                "pastWinsPerBidder": history,
                "verifyPerSecOneCore": one_core.round(),
                "verifyPerSecAllCores": all_cores.round(),
                "threads": threads,
                "decisionMsInMemory": rank_ms,
                "decisionMsFromSqlite": node_ms,
            })
        );
    } else {
        println!(
            "auction benchmark, {n} sealed bids on one bounty; each bidder has {history} past wins on the node"
        );
        println!("| metric | value | goal |\n|---|---|---|");
        println!("| bid signatures verified/s, 1 core | {one_core:.0} | ≥ 10,000 |");
        println!("| bid signatures verified/s, {threads} cores | {all_cores:.0} | |");
        println!("| decision latency after close, in memory | {rank_ms:.2} ms | ≤ 50 ms |");
        println!(
            "| decision latency after close, as the node: load bids + bidders' record from SQLite, rank | {node_ms:.2} ms | ≤ 50 ms |"
        );
    }
}
