//! How a client's sends get their nonce and fees, against a real anvil: a reused fee estimate
//! that went stale is read again, a rewind or a second client of the same key does not break
//! the next send, and a refused send never leaves a nonce gap.

mod common;

use std::time::Duration;

use alloy::{primitives::U256, providers::Provider};
use common::*;
use escrow_client::{ClientOptions, ReefClient, devnet::dev_signer, escrow::random_salt};

fn wei(n: u64) -> U256 {
    U256::from(n)
}

/// The account's mined and pending nonces.
async fn nonces(c: &ReefClient) -> (u64, u64) {
    let p = c.provider();
    let mined = p.get_transaction_count(c.address()).await.unwrap();
    let pending = p.get_transaction_count(c.address()).pending().await.unwrap();
    (mined, pending)
}

/// Sends once, rewinds anvil to before that send (as a reorg that drops it would), then sends
/// again with the same client (made with `opts`). Returns the account's nonce after the first
/// send and its (mined, pending) nonces once the second is mined.
async fn send_across_a_rewind(opts: ClientOptions) -> (u64, (u64, u64)) {
    let env = setup().await;
    // Without the synchronous send: anvil answers it before pruning its pool, and a rewind
    // right after it then mines the dropped transaction again (anvil's, not a chain's, way).
    let opts = ClientOptions { sync_send: false, ..opts };
    let c = &ReefClient::connect(
        &env.anvil.rpc_url,
        env.poster.signer().clone(),
        env.dep.clone(),
        opts,
    )
    .await
    .unwrap();
    let to = env.stranger.address();
    let snapshot: U256 = c.provider().raw_request("evm_snapshot".into(), ()).await.unwrap();
    c.send_eth(to, wei(1)).await.unwrap();
    let (after_first, _) = nonces(c).await;
    let reverted: bool = c.provider().raw_request("evm_revert".into(), (snapshot,)).await.unwrap();
    assert!(reverted);
    let out = tokio::time::timeout(Duration::from_secs(30), c.send_eth(to, wei(2)))
        .await
        .expect("the send after the rewind is stuck behind a nonce gap")
        .unwrap();
    assert!(out.gas_used > 0);
    (after_first, nonces(c).await)
}

/// A rewind that drops the account's last transaction (a reorg, `evm_revert`) must not leave
/// the next send waiting behind a nonce gap when the nonce is read for every send
/// (`nonce_ttl` zero): it takes the dropped one's nonce.
#[tokio::test]
async fn a_send_after_a_rewind_that_dropped_the_last_one_is_mined() {
    let (after_first, now) =
        send_across_a_rewind(ClientOptions { nonce_ttl: Duration::ZERO, ..opts() }).await;
    assert_eq!(now, (after_first, after_first), "it took the dropped one's nonce");
}

/// With the nonce remembered, the send after such a rewind waits behind the gap the dropped
/// transaction left until it is due for replacement; then the gap is filled and it is mined.
#[tokio::test]
async fn a_remembered_nonce_past_a_rewind_is_mined_once_the_gap_is_filled() {
    let fees = escrow_client::fees::FeePolicy {
        replace_after: Duration::from_secs(2),
        ..Default::default()
    };
    let remembering = ClientOptions { nonce_ttl: Duration::from_secs(3_600), fees, ..opts() };
    let (after_first, now) = send_across_a_rewind(remembering).await;
    // The dropped nonce holds the zero-value fill, the send the one after it.
    assert_eq!(now, (after_first + 1, after_first + 1));
}

#[tokio::test]
async fn two_clients_of_one_key_take_turns_without_a_failed_send() {
    let env = setup().await;
    let to = env.stranger.address();
    let a = &env.poster;
    let b = ReefClient::connect(&env.anvil.rpc_url, dev_signer(0), env.dep.clone(), opts())
        .await
        .unwrap();
    let (start, _) = nonces(a).await;
    a.send_eth(to, wei(1)).await.unwrap();
    // Each client's next send must take the nonce after the other's last one.
    b.send_eth(to, wei(2)).await.unwrap();
    a.send_eth(to, wei(3)).await.expect("a sees b's transaction");
    b.send_eth(to, wei(4)).await.expect("and b sees a's");
    assert_eq!(nonces(a).await, (start + 4, start + 4));
}

#[tokio::test]
async fn a_send_that_reverts_at_estimation_leaves_no_nonce_gap() {
    let env = setup().await;
    let (id, b) = env.posted(ether("1")).await;
    let c = &env.poster;
    c.send_eth(env.stranger.address(), wei(1)).await.unwrap();
    let (before, _) = nonces(c).await;
    // Nothing was submitted, so there is nothing to release: refused before it is sent.
    let err = c.release(id, &b).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("InvalidStatus"), "{err}");
    assert_eq!(nonces(c).await, (before, before), "the refused send took no nonce");
    // The next send takes the very nonce the refused one would have had, and is mined.
    c.cancel(id, &b).await.expect("the next send is mined");
    assert_eq!(nonces(c).await, (before + 1, before + 1));
}

#[tokio::test]
async fn a_base_fee_rise_past_the_reused_estimate_is_signed_again() {
    let env = setup().await;
    let opts = ClientOptions { fee_ttl: Duration::from_secs(3_600), ..opts() };
    let c = ReefClient::connect(&env.anvil.rpc_url, dev_signer(5), env.dep.clone(), opts)
        .await
        .unwrap();
    // The first send reads the fees and keeps them for an hour.
    c.send_eth(env.stranger.address(), wei(1)).await.unwrap();
    let base = c.provider().get_gas_price().await.unwrap();
    // The base fee jumps far past twice what the kept estimate allows, in a mined block.
    let next = U256::from(base.max(1_000_000_000) * 50);
    let _: serde_json::Value =
        c.provider().raw_request("anvil_setNextBlockBaseFeePerGas".into(), (next,)).await.unwrap();
    let _: serde_json::Value = c.provider().raw_request("evm_mine".into(), ()).await.unwrap();
    let out = c
        .send_eth(env.stranger.address(), wei(2))
        .await
        .expect("an underpriced send is signed again with fresh fees");
    assert!(out.gas_used > 0);
}

/// Gas is estimated on the latest block, but a call that only became valid with time must not
/// be refused because the chain's last block is older than that (anvil mines only on demand).
#[tokio::test]
async fn a_call_that_became_valid_with_time_is_sent_though_the_last_block_is_older() {
    let env = setup().await;
    let now = env.poster.chain_time().await.unwrap();
    let terms = env.poster.terms(&env.new_bounty(ether("1"), now + 2)).await.unwrap();
    let (id, b, _) = env.poster.post_and_fund(random_salt(), terms, true).await.unwrap();
    // No block is mined meanwhile: the latest one is from before the deadline.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let last_block = env.stranger.chain_time().await.unwrap();
    assert!(last_block <= b.deadline, "a block was mined after the deadline ({last_block})");
    env.stranger.refund_expired(id, &b).await.expect("the expired bounty is refunded");
}
