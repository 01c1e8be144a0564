//! Integration tests against a real anvil: reorgs, restarts, faulty RPCs, duplicate and
//! foreign logs, SQLite and Postgres, confirmation depth, reputation loading.

mod common;

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::ext::AnvilApi,
    rpc::types::{
        TransactionRequest,
        anvil::{ReorgOptions, TransactionData},
    },
    sol_types::SolCall,
};
use common::*;
use escrow_client::bindings::token::ReefTestToken;
use reef_indexer::{Indexer, RpcSource};

fn rpc(env: &Env) -> RpcSource {
    RpcSource::new(&env.anvil.rpc_url).unwrap()
}

async fn reorgs_converge_to_a_fresh_reindex(backend: Backend) {
    let env = setup().await;
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut ix = Indexer::new(rpc(&env), store.clone(), env.config()).await.unwrap();
    for depth in 1..=5u64 {
        env.activity().await;
        let r = ix.sync_once().await.unwrap();
        assert_eq!(r.next_block, env.head().await + 1);
        assert_eq!(
            snapshot(&store).await,
            fresh_snapshot(&env).await,
            "before reorg depth {depth}"
        );

        // Replace the last `depth` blocks; the new branch carries a different token transfer.
        let transfer = ReefTestToken::transferCall {
            to: Address::repeat_byte(depth as u8),
            value: U256::from(depth),
        };
        let tx = TransactionRequest::default()
            .with_from(env.poster.address())
            .with_to(env.token)
            .with_input(transfer.abi_encode());
        env.poster
            .provider()
            .anvil_reorg(ReorgOptions {
                depth,
                tx_block_pairs: vec![(TransactionData::JSON(tx), 0)],
            })
            .await
            .unwrap();
        let r = ix.sync_once().await.unwrap();
        assert_eq!(r.reorgs, 1, "depth {depth}: {r:?}");
        let after = snapshot(&store).await;
        assert_eq!(after, fresh_snapshot(&env).await, "after reorg depth {depth}");
        assert!(after.funding.contains_key(&format!("{:#x}", Address::repeat_byte(depth as u8))));
    }
    store.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn reorgs_depth_1_to_5_sqlite() {
    reorgs_converge_to_a_fresh_reindex(Backend::Sqlite).await;
}

#[tokio::test]
async fn reorgs_depth_1_to_5_postgres() {
    reorgs_converge_to_a_fresh_reindex(Backend::Postgres).await;
}

#[tokio::test]
async fn restart_mid_backfill_resumes_without_gaps_or_duplicates() {
    let env = setup().await;
    for _ in 0..3 {
        env.activity().await;
    }
    env.mine(5).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = env.config();
    // Force many small backfill steps: tiny ranges, tiny reorg window.
    cfg.reorg_window = 2;
    cfg.initial_range = 2;
    cfg.max_range = 2;
    cfg.concurrency = 1;
    cfg.max_retries = 1;
    cfg.backoff = std::time::Duration::from_millis(1);
    {
        let store = db.store().await;
        let mut src = FaultySource::new(rpc(&env));
        src.die_after_logs_calls = Some(4);
        let mut ix = Indexer::new(src, store.clone(), cfg.clone()).await.unwrap();
        assert!(ix.sync_once().await.is_err(), "the source dies mid-backfill");
        let cp = store.next_block().await.unwrap().unwrap();
        assert!(cp > env.dep.start_block && cp < env.head().await, "stopped mid-way at {cp}");
        store.close().await;
    }
    let store = db.store().await;
    let mut ix = Indexer::new(rpc(&env), store.clone(), cfg).await.unwrap();
    ix.sync_once().await.unwrap();
    assert_eq!(snapshot(&store).await, fresh_snapshot(&env).await);
    store.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn survives_errors_timeouts_duplicates_and_foreign_logs() {
    let env = setup().await;
    for _ in 0..2 {
        env.activity().await;
    }
    env.mine(3).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let mut cfg = env.config();
    cfg.reorg_window = 4; // mostly backfill, then tail
    cfg.initial_range = 64;
    cfg.backoff = std::time::Duration::from_millis(1);
    let mut src = FaultySource::new(rpc(&env));
    src.fail_every = 7;
    src.timeout_every = 11;
    src.max_log_range = 3;
    src.duplicate_logs = true;
    src.foreign_logs = Some(Address::repeat_byte(0xBA));
    let mut ix = Indexer::new(src, store.clone(), cfg).await.unwrap();
    let r = ix.sync_once().await.unwrap();
    assert!(r.ignored > 0, "foreign and unknown logs were seen and ignored: {r:?}");
    assert!(ix.range() < 64, "range shrank under provider limits: {}", ix.range());
    assert_eq!(snapshot(&store).await, fresh_snapshot(&env).await);
    // A second pass over the same blocks changes nothing.
    let before = snapshot(&store).await;
    let r2 = ix.sync_once().await.unwrap();
    assert_eq!(r2.events, 0);
    assert_eq!(snapshot(&store).await, before);
    store.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn derived_state_confirmations_and_reputation() {
    let env = setup().await;
    env.completed_job(ether("3")).await;
    env.rejected_job(ether("1")).await;
    env.provider.stake(alloy::primitives::utils::parse_ether("0.5").unwrap()).await.unwrap();

    // A poster funded by the provider itself: its first inbound token transfer comes from the agent.
    let sybil = alloy::signers::local::PrivateKeySigner::random();
    env.provider
        .send_eth(sybil.address(), alloy::primitives::utils::parse_ether("1").unwrap())
        .await
        .unwrap();
    env.provider
        .send_call(
            "transfer",
            env.token,
            &ReefTestToken::transferCall { to: sybil.address(), value: U256::from(ether("10")) },
            U256::ZERO,
        )
        .await
        .unwrap();
    let sybil_client = env.poster.with_signer(sybil).unwrap();
    env.completed_job_by(&sybil_client, ether("2")).await;
    // The platform fees of the completed jobs wait in the token's pool until collected.
    let fees = env.provider.accrued_fees(env.token).await.unwrap();
    assert!(fees > U256::ZERO);
    env.provider.collect_fees(env.token).await.unwrap();

    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let mut cfg = env.config();
    cfg.confirmations = 3;
    let mut ix = Indexer::new(rpc(&env), store.clone(), cfg).await.unwrap();
    ix.sync_once().await.unwrap();

    let bounties = store.bounties().await.unwrap();
    let statuses: Vec<&str> = bounties.iter().map(|b| b.status.as_str()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "completed").count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == "rejected").count(), 1, "{statuses:?}");
    let collected = store.events_of_kind("FeesCollected", i64::MAX as u64).await.unwrap();
    assert_eq!(collected.len(), 1);
    assert_eq!(collected[0].amount.as_deref(), Some(fees.to_string().as_str()));
    assert_eq!(collected[0].counterparty, Some(env.token));
    let stakes = store.stakes().await.unwrap();
    assert_eq!(stakes.len(), 1);
    assert_eq!(stakes[0].bonded, alloy::primitives::utils::parse_ether("0.5").unwrap());

    // The last job is within 3 blocks of the head: not yet confirmed.
    let agent = env.provider.address();
    let book = reef_indexer::reputation::load_book(&store, 3, Default::default()).await.unwrap();
    assert_eq!(book.score(&agent).counts.completed, 1);
    env.mine(3).await;
    ix.sync_once().await.unwrap();
    let book = reef_indexer::reputation::load_book(&store, 3, Default::default()).await.unwrap();
    let s = book.score(&agent);
    assert_eq!(s.counts.completed, 2, "{s:?}");
    assert_eq!(s.counts.self_funded, 1, "sybil poster detected: {s:?}");
    assert!(s.components.iter().any(|c| c.name == "stake" && c.value > 0.3));
    store.close().await;
    db.drop_db().await;
}

/// With a ws:// URL the live tail is woken by `newHeads` pushes: with a one-minute poll
/// interval, a newly mined job is still indexed within seconds.
#[tokio::test]
async fn ws_url_tails_by_new_heads_subscription() {
    let env = setup().await;
    let ws = env.anvil.rpc_url.replacen("http://", "ws://", 1);
    let src = RpcSource::new(&ws).unwrap();
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let mut cfg = env.config();
    cfg.poll_interval = std::time::Duration::from_secs(60);
    let mut ix = Indexer::new(src, store.clone(), cfg).await.unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { ix.run(rx).await });
    // Let the first sync and the subscription settle, then make new blocks.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let id = env.completed_job(ether("1")).await;
    let head = env.head().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let next = store.next_block().await.unwrap().unwrap_or(0);
        if next > head {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "tail stuck at {next}, head {head}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let want = format!("{id:#066x}");
    let bounties = store.bounties().await.unwrap();
    assert!(
        bounties.iter().any(|b| b.id == want && b.status == "completed"),
        "{want} not completed in {bounties:?}"
    );
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    store.close().await;
    db.drop_db().await;
}
