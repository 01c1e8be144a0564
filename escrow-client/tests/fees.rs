//! The fee policy against a real anvil whose base fee jumps while a transaction waits: the
//! transaction is replaced at the same nonce with higher fees and mined; the caps are never
//! passed (a capped transaction waits and times out instead); and a nonce gap left by another
//! process (a crashed one) is filled so the client's own transaction is not held back forever.

use std::time::Duration;

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
};
use escrow_client::{
    ClientOptions, Error, ReefClient,
    deploy::empty_deployment,
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    fees::FeePolicy,
};

const GWEI: u128 = 1_000_000_000;

/// An anvil that mines nothing until told to.
async fn paused_anvil() -> AnvilProcess {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    rpc(&anvil, "evm_setAutomine", serde_json::json!([false])).await;
    anvil
}

async fn rpc(anvil: &AnvilProcess, method: &str, params: serde_json::Value) -> serde_json::Value {
    let chain =
        alloy::providers::ProviderBuilder::new().connect_http(anvil.rpc_url.parse().unwrap());
    chain
        .raw_request(method.to_string().into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn client(anvil: &AnvilProcess, dev: usize, fees: FeePolicy, timeout: u64) -> ReefClient {
    let opts = ClientOptions {
        fees,
        tx_timeout: Duration::from_secs(timeout),
        ..ClientOptions::default()
    };
    ReefClient::connect(&anvil.rpc_url, dev_signer(dev), empty_deployment(31337), opts)
        .await
        .unwrap()
}

/// Waits until `who` has a transaction in the pool.
async fn until_pending(c: &ReefClient, who: Address, nonce: u64) {
    for _ in 0..400 {
        if c.provider().get_transaction_count(who).pending().await.unwrap() > nonce {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the transaction never reached the pool");
}

/// Sends `value` wei from `c` in the background, waits until the account's pending nonce passes
/// `past`, then makes the base fee jump to 100 gwei and starts mining a block a second: the
/// transaction, priced for the old base fee, cannot be mined as signed.
async fn send_then_outprice(
    anvil: &AnvilProcess,
    c: &ReefClient,
    value: u64,
    past: u64,
) -> tokio::task::JoinHandle<escrow_client::Result<escrow_client::TxOutcome>> {
    let send = tokio::spawn({
        let c = c.clone();
        async move { c.send_eth(dev_signer(4).address(), U256::from(value)).await }
    });
    until_pending(c, c.address(), past).await;
    let fee = format!("{:#x}", 100 * GWEI);
    rpc(anvil, "anvil_setNextBlockBaseFeePerGas", serde_json::json!([fee])).await;
    rpc(anvil, "evm_setIntervalMining", serde_json::json!([1])).await;
    send
}

/// The base fee jumps to 100 gwei while the transaction waits in the pool: it cannot be mined
/// at its fees, so after `replace_after` it is signed again at the same nonce with fees that
/// follow the new base fee, and that signing is mined.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_outpriced_by_a_base_fee_jump_is_replaced_and_mined() {
    let anvil = paused_anvil().await;
    let policy = FeePolicy { replace_after: Duration::from_secs(2), ..FeePolicy::default() };
    let c = client(&anvil, 1, policy, 60).await;
    let me = c.address();
    let nonce = c.provider().get_transaction_count(me).await.unwrap();
    let send = send_then_outprice(&anvil, &c, 7, nonce).await;
    let out = tokio::time::timeout(Duration::from_secs(45), send)
        .await
        .expect("the stuck transaction was never replaced")
        .unwrap()
        .unwrap();
    let mined = c.provider().get_transaction_by_hash(out.hash).await.unwrap().unwrap();
    use alloy::consensus::Transaction;
    assert_eq!(mined.nonce(), nonce, "the replacement took the same nonce");
    assert!(
        mined.max_fee_per_gas() >= 100 * GWEI,
        "mined at the replacement's fees: {} wei",
        mined.max_fee_per_gas()
    );
    assert_eq!(c.provider().get_transaction_count(me).await.unwrap(), nonce + 1, "mined once");
}

/// Caps hold: with the fee cap under the new base fee there is no valid replacement, so the
/// transaction waits and the send ends in a timeout that says to check before retrying.
#[tokio::test(flavor = "multi_thread")]
async fn the_fee_cap_is_never_passed() {
    let anvil = paused_anvil().await;
    let policy = FeePolicy {
        max_fee_per_gas: Some(10 * GWEI),
        replace_after: Duration::from_secs(1),
        ..FeePolicy::default()
    };
    let c = client(&anvil, 1, policy, 6).await;
    let me = c.address();
    let nonce = c.provider().get_transaction_count(me).await.unwrap();
    let send = send_then_outprice(&anvil, &c, 1, nonce).await;
    let err = send.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("check it before retrying"), "{err}");
    let pool = rpc(&anvil, "txpool_content", serde_json::json!([])).await;
    let text = pool.to_string().to_lowercase();
    let fee = format!("{:#x}", 10 * GWEI + 1);
    assert!(!text.contains(&format!("\"maxfeepergas\":\"{fee}\"")), "{pool}");
    for tx in pool["pending"][me.to_string()].as_object().into_iter().flat_map(|m| m.values()) {
        let max =
            u128::from_str_radix(tx["maxFeePerGas"].as_str().unwrap().trim_start_matches("0x"), 16)
                .unwrap();
        assert!(max <= 10 * GWEI, "signed above the cap: {tx}");
    }
}

/// Another process of the same key (a crashed one) left a transaction at nonce n that the
/// base fee has since outgrown: the client's own transaction, at n + 1, is held behind it
/// forever unless someone moves n. The client fills the nonces below its own that none of its
/// transactions hold (a no-op transfer to itself, priced to be mined) and its transaction is
/// mined. (A true gap, nothing at n and a leftover at n + 1, needs no help on anvil or geth: the
/// pending nonce they report is n, so the next send takes it.)
#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_transaction_left_by_a_crashed_process_is_moved_out_of_the_way() {
    let anvil = paused_anvil().await;
    let policy = FeePolicy { replace_after: Duration::from_secs(2), ..FeePolicy::default() };
    let c = client(&anvil, 3, policy, 60).await;
    let me = c.address();
    let n = c.provider().get_transaction_count(me).await.unwrap();
    // The leftover: signed by "the earlier process" at n, priced for the old base fee.
    let leftover = TransactionRequest::default()
        .with_from(me)
        .with_to(dev_signer(2).address())
        .with_value(U256::from(5))
        .with_nonce(n)
        .with_gas_limit(21_000)
        .with_max_fee_per_gas(2 * GWEI)
        .with_max_priority_fee_per_gas(GWEI);
    let leftover = *c.provider().send_transaction(leftover).await.unwrap().tx_hash();
    // Ours goes behind it; then the base fee outgrows both.
    let send = send_then_outprice(&anvil, &c, 9, n + 1).await;
    let out = tokio::time::timeout(Duration::from_secs(45), send)
        .await
        .expect("the send stayed behind the stuck leftover")
        .unwrap()
        .unwrap();
    assert!(out.gas_used > 0);
    use alloy::consensus::Transaction;
    let ours = c.provider().get_transaction_by_hash(out.hash).await.unwrap().unwrap();
    assert_eq!(ours.nonce(), n + 1, "ours was sent behind the leftover");
    assert!(
        c.provider().get_transaction_receipt(leftover).await.unwrap().is_none(),
        "the leftover was replaced by the filler, not mined"
    );
    assert_eq!(c.provider().get_transaction_count(me).await.unwrap(), n + 2);
}
