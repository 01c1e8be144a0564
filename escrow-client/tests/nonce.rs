//! The remembered nonce ([`ClientOptions::nonce_ttl`]) against a real anvil: after a mined
//! transaction the next send takes the following nonce without reading it, a nonce another
//! client of the same key took meanwhile costs one retry (not a failed send), and with the
//! setting off every send reads it. One test per process: the RPC counts are the process's.

mod common;

use std::time::Duration;

use alloy::{primitives::U256, providers::Provider};
use common::*;
use escrow_client::{ClientOptions, ReefClient, devnet::dev_signer, rpc_metrics};

/// Calls of `method` so far in this process.
fn calls(method: &str) -> u64 {
    rpc_metrics::snapshot().into_iter().find(|(m, _, _)| m == method).map_or(0, |(_, c, _)| c)
}

const NONCE: &str = "eth_getTransactionCount";

#[tokio::test(flavor = "multi_thread")]
async fn the_nonce_after_a_mined_send_is_remembered_and_a_stale_one_is_read_again() {
    let env = setup().await;
    let to = env.stranger.address();
    let remembering = ClientOptions { nonce_ttl: Duration::from_secs(3_600), ..opts() };
    let a = ReefClient::connect(&env.anvil.rpc_url, dev_signer(6), env.dep.clone(), remembering)
        .await
        .unwrap();
    let mined = |c: &ReefClient| {
        let (p, me) = (c.provider().clone(), c.address());
        async move { p.get_transaction_count(me).await.unwrap() }
    };
    let start = mined(&a).await;

    // 1. The first send reads the nonce; the next two take the ones after it from memory.
    let before = calls(NONCE);
    a.send_eth(to, U256::from(1)).await.unwrap();
    assert_eq!(calls(NONCE), before + 1, "the first send reads the nonce");
    a.send_eth(to, U256::from(2)).await.unwrap();
    a.send_eth(to, U256::from(3)).await.unwrap();
    assert_eq!(calls(NONCE), before + 1, "the next sends take it from memory");
    assert_eq!(mined(&a).await, start + 3, "three nonces, no gap");

    // 2. Another client of the same key takes the next nonce: the remembered one is refused as
    //    too low, read again, and the send goes through.
    let b = ReefClient::connect(&env.anvil.rpc_url, dev_signer(6), env.dep.clone(), opts())
        .await
        .unwrap();
    b.send_eth(to, U256::from(4)).await.unwrap();
    let before = calls(NONCE);
    let out = a.send_eth(to, U256::from(5)).await.expect("a stale nonce is read again");
    assert!(out.gas_used > 0);
    assert_eq!(calls(NONCE), before + 1, "read once, after the refusal");
    assert_eq!(mined(&a).await, start + 5);
    // And remembered again from there.
    let before = calls(NONCE);
    a.send_eth(to, U256::from(6)).await.unwrap();
    assert_eq!(calls(NONCE), before, "remembered after the retry's mined send");

    // 3. Off: every send reads the nonce.
    let reading = ClientOptions { nonce_ttl: Duration::ZERO, ..opts() };
    let c = ReefClient::connect(&env.anvil.rpc_url, dev_signer(6), env.dep.clone(), reading)
        .await
        .unwrap();
    let before = calls(NONCE);
    c.send_eth(to, U256::from(7)).await.unwrap();
    c.send_eth(to, U256::from(8)).await.unwrap();
    assert_eq!(calls(NONCE), before + 2, "nonce_ttl zero: read for every send");
    assert_eq!(mined(&a).await, start + 8);
}
