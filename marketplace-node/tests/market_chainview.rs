//! The work loop's cached view of the escrow (`market::chainview`) against a real anvil: reads
//! are served from the cache between passes, an event for a bounty evicts exactly that bounty,
//! and a reorg or a gap longer than one log scan empties the cache.

use alloy::primitives::{Address, U256};
use escrow_client::{
    ClientOptions, ReefClient, Status,
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    escrow::{NewBounty, bounty_id, random_salt},
};
use marketplace_node::market::chainview::{self, ChainView};

mod common;

async fn rpc<T: alloy::rpc::json_rpc::RpcRecv>(
    c: &ReefClient,
    method: &str,
    params: Vec<U256>,
) -> T {
    use alloy::providers::Provider;
    c.provider().raw_request(method.to_string().into(), params).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_follows_transitions_and_forgets_everything_on_a_reorg_or_a_long_gap() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir("chainview");
    let dep = common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let poster = ReefClient::connect(&anvil.rpc_url, dev_signer(0), dep, ClientOptions::default())
        .await
        .unwrap();
    let view = ChainView::new(poster.clone());
    view.sync().await.unwrap();

    let now = poster.chain_time().await.unwrap();
    let new = |description: &str| NewBounty {
        token: Address::ZERO,
        amount: 1_000_000_000_000_000,
        evaluator: Some(dev_signer(5).address()),
        arbiter: Address::ZERO,
        deadline: now + 3_600,
        review_window: 3_600,
        challenge_window: 3_600,
        description: description.into(),
        contest_winners: None,
    };
    let salt = random_salt();
    let id = bounty_id(poster.address(), salt);

    // Not posted yet: the `None` status is cached like any other answer.
    assert_eq!(view.status_of(id).await.unwrap().0, Status::None);
    assert_eq!(view.cached(), (0, 1));
    view.sync().await.unwrap();
    assert_eq!(view.cached(), (0, 1), "a pass without new events keeps the cache");

    // Posting emits events for this id: until the next pass the cache answers as of the last
    // one; after it, the bounty is read afresh.
    let terms = poster.terms(&new("first")).await.unwrap();
    let (posted, _, _) = poster.post_and_fund(salt, terms, false).await.unwrap();
    assert_eq!(posted, id);
    assert_eq!(view.status_of(id).await.unwrap().0, Status::None, "served from the cache");
    view.sync().await.unwrap();
    assert_eq!(view.cached(), (0, 0), "the event evicted the bounty");
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Funded);
    let b = view.bounty(id).await.unwrap();
    assert_eq!(b.status, Status::Funded);
    assert_eq!(view.cached(), (1, 1));

    // Another bounty's events leave this one cached.
    let other = poster.terms(&new("second")).await.unwrap();
    poster.post_and_fund(random_salt(), other, false).await.unwrap();
    view.sync().await.unwrap();
    assert_eq!(view.cached(), (1, 1));

    // A reorg: cancel on a branch that is then dropped. The cache must not keep the branch's
    // state: after the revert (and new blocks on the other branch) the bounty is Funded again.
    let snapshot: U256 = rpc(&poster, "evm_snapshot", vec![]).await;
    poster.cancel(id, &b.record).await.unwrap();
    view.sync().await.unwrap();
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Cancelled);
    let reverted: bool = rpc(&poster, "evm_revert", vec![snapshot]).await;
    assert!(reverted);
    for _ in 0..3 {
        let _: String = rpc(&poster, "evm_mine", vec![]).await;
    }
    view.sync().await.unwrap();
    assert_eq!(view.cached(), (0, 0), "a reorg empties the cache");
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Funded);
    assert_eq!(view.bounty(id).await.unwrap().status, Status::Funded);

    // A gap longer than one log scan (the node or its RPC was away): start over, no scan.
    assert_eq!(view.cached(), (1, 1));
    let _: Option<serde_json::Value> =
        rpc(&poster, "anvil_mine", vec![U256::from(chainview::MAX_LOG_SPAN + 100)]).await;
    view.sync().await.unwrap();
    assert_eq!(view.cached(), (0, 0), "a long gap empties the cache");
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Funded);
}
