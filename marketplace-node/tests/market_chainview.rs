//! The work loop's cached view of the escrow (`market::chainview`) against a real anvil: reads
//! are served from the cache between passes; the new events of a followed bounty are replayed
//! into its cached record (which then equals a full read from the chain) and give its status
//! (which then equals `statusOf`, on every path of the lifecycle);
//! another bounty's events leave it alone; a reorg or a gap longer than one log scan empties the
//! cache.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use escrow_client::{
    ClientOptions, ReefClient, RetryPolicy, Status,
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

/// A fresh anvil with the contracts, the deployer's (dev account 0) client and a view over it.
async fn setup(tag: &str) -> (AnvilProcess, ReefClient, ChainView) {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir(tag);
    let dep = common::deploy_devnet(&anvil.rpc_url, &dir).await;
    // Without the synchronous send: anvil answers it before pruning its pool, and the reorgs
    // below (`evm_revert` right after a send) would then mine the dropped transaction again.
    // The nonce read for every send: a remembered one would sit above the dropped
    // transaction's (the next send would wait for the gap to be filled).
    let opts =
        ClientOptions { sync_send: false, nonce_ttl: Duration::ZERO, ..ClientOptions::default() };
    let client = ReefClient::connect(&anvil.rpc_url, dev_signer(0), dep, opts).await.unwrap();
    let view = ChainView::new(client.clone());
    (anvil, client, view)
}

/// A 0.001 ETH bounty evaluated by dev account 5, due an hour after `now`.
fn eth_bounty(now: u64, description: &str) -> NewBounty {
    NewBounty {
        token: Address::ZERO,
        amount: 1_000_000_000_000_000,
        evaluator: Some(dev_signer(5).address()),
        arbiter: Address::ZERO,
        deadline: now + 3_600,
        review_window: 3_600,
        challenge_window: 3_600,
        description: description.into(),
        contest_winners: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_follows_transitions_and_forgets_everything_on_a_reorg_or_a_long_gap() {
    let (anvil, poster, view) = setup("chainview").await;
    assert_eq!(view.sync().await.unwrap(), None, "the first sync cannot say what changed");

    let now = poster.chain_time().await.unwrap();
    let new = |description: &str| eth_bounty(now, description);
    let salt = random_salt();
    let id = bounty_id(poster.address(), salt);

    // Not posted yet: the `None` status is cached like any other answer.
    assert_eq!(view.status_of(id).await.unwrap().0, Status::None);
    assert_eq!(view.cached(), (0, 1));
    assert_eq!(view.sync().await.unwrap(), Some(vec![]), "no new block, nothing touched");
    assert_eq!(view.cached(), (0, 1), "a pass without new events keeps the cache");

    // Posting emits events for this id: until the next pass the cache answers as of the last
    // one; after it, the bounty is read afresh.
    let terms = poster.terms(&new("first")).await.unwrap();
    let (posted, _, _) = poster.post_and_fund(salt, terms, false).await.unwrap();
    assert_eq!(posted, id);
    assert_eq!(view.status_of(id).await.unwrap().0, Status::None, "served from the cache");
    // The work loop steps exactly the bounties the new events name. The view saw this bounty
    // as not posted, so the scan holds its whole history: the record is built from it (no full
    // read), and so is the status.
    assert_eq!(view.sync().await.unwrap(), Some(vec![id]));
    assert_eq!(view.cached(), (1, 1), "record and status built from the scan");
    assert_eq!(view.cached_status(id), Some(poster.status_of(id).await.unwrap()));
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Funded);
    let b = view.bounty(id).await.unwrap();
    assert_eq!(b.status, Status::Funded);
    assert_eq!(view.cached(), (1, 1));
    let full = poster.bounty(id).await.unwrap();
    assert_eq!(b.record, full.record, "the replayed record is the chain's");
    assert_eq!(b.history.len(), full.history.len());

    // Another bounty's events leave this one cached.
    let other = poster.terms(&new("second")).await.unwrap();
    let (other_id, _, _) = poster.post_and_fund(random_salt(), other, false).await.unwrap();
    assert_eq!(view.sync().await.unwrap(), Some(vec![other_id]));
    assert_eq!(view.cached(), (1, 1));

    // A record first read in full is followed as well: an award (a new provider and price) is
    // replayed into it, and its status (stamped with the due time) taken from the event.
    let ob = view.bounty(other_id).await.unwrap();
    assert_eq!(view.cached(), (2, 2));
    let provider = ReefClient::connect(
        &anvil.rpc_url,
        dev_signer(3),
        poster.deployment().clone(),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    let (bid, sig) = provider
        .sign_bid(other_id, &ob.record, ob.record.amount, now + 600, 0, U256::from(7))
        .unwrap();
    let (awarded, _) = poster.award(other_id, &ob.record, bid, sig).await.unwrap();
    assert_eq!(view.sync().await.unwrap(), Some(vec![other_id]));
    assert_eq!(view.cached(), (2, 2), "record and status brought up to date from the scan");
    assert_eq!(view.cached_status(other_id), Some(poster.status_of(other_id).await.unwrap()));
    let ob2 = view.bounty(other_id).await.unwrap();
    assert_eq!(ob2.status, Status::Awarded);
    assert_eq!(ob2.record.provider, provider.address());
    assert_eq!(ob2.record, awarded, "the replayed award matches the client's record");
    assert_eq!(ob2.record, poster.bounty(other_id).await.unwrap().record);
    assert_eq!(ob2.history.len(), ob.history.len() + 1);

    // A reorg: cancel on a branch that is then dropped. The cache must not keep the branch's
    // state: after the revert (and new blocks on the other branch) the bounty is Funded again.
    let snapshot: U256 = rpc(&poster, "evm_snapshot", vec![]).await;
    poster.cancel(id, &b.record).await.unwrap();
    assert_eq!(view.sync().await.unwrap(), Some(vec![id]));
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Cancelled);
    let reverted: bool = rpc(&poster, "evm_revert", vec![snapshot]).await;
    assert!(reverted);
    for _ in 0..3 {
        let _: String = rpc(&poster, "evm_mine", vec![]).await;
    }
    assert_eq!(view.sync().await.unwrap(), None, "after a reorg every bounty is stepped");
    assert_eq!(view.cached(), (0, 0), "a reorg empties the cache");
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Funded);
    assert_eq!(view.bounty(id).await.unwrap().status, Status::Funded);

    // The same, but the other branch is exactly one block past the dropped head: the pass
    // sees the reorg in the new head's parent hash (no second header read).
    let snapshot: U256 = rpc(&poster, "evm_snapshot", vec![]).await;
    poster.cancel(id, &b.record).await.unwrap();
    assert_eq!(view.sync().await.unwrap(), Some(vec![id]));
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Cancelled);
    let dropped = poster.block_number().await.unwrap();
    let reverted: bool = rpc(&poster, "evm_revert", vec![snapshot]).await;
    assert!(reverted);
    for _ in 0..2 {
        let _: String = rpc(&poster, "evm_mine", vec![]).await;
    }
    assert_eq!(poster.block_number().await.unwrap(), dropped + 1);
    assert_eq!(view.sync().await.unwrap(), None, "one block past a dropped head: a reorg");
    assert_eq!(view.cached(), (0, 0));
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Funded);
    assert_eq!(view.bounty(id).await.unwrap().status, Status::Funded);
    // And one block on without a reorg keeps the cache.
    let _: String = rpc(&poster, "evm_mine", vec![]).await;
    assert_eq!(view.sync().await.unwrap(), Some(vec![]));
    assert_eq!(view.cached(), (1, 1));

    // A gap longer than one log scan (the node or its RPC was away): start over, no scan.
    assert_eq!(view.cached(), (1, 1));
    let _: Option<serde_json::Value> =
        rpc(&poster, "anvil_mine", vec![U256::from(chainview::MAX_LOG_SPAN + 100)]).await;
    assert_eq!(view.sync().await.unwrap(), None);
    assert_eq!(view.cached(), (0, 0), "a long gap empties the cache");
    assert_eq!(view.status_of(id).await.unwrap().0, Status::Funded);
}

/// The status the view takes from the events equals `statusOf` (status and stamp) after every
/// kind of call, including those that emit a step first (`AwardRevoked`, `BountyAttested`)
/// and one that rejects and refunds in one call: nothing is read for it.
#[tokio::test(flavor = "multi_thread")]
async fn the_status_taken_from_the_events_is_the_chains_on_every_path() {
    use escrow_client::signing::verdict;
    let (anvil, poster, view) = setup("chainview-status").await;
    let client = |i: usize| {
        ReefClient::connect(
            &anvil.rpc_url,
            dev_signer(i),
            poster.deployment().clone(),
            ClientOptions::default(),
        )
    };
    let (provider, other, evaluator, arbiter) = (
        client(3).await.unwrap(),
        client(4).await.unwrap(),
        client(5).await.unwrap(),
        client(6).await.unwrap(),
    );
    view.sync().await.unwrap();
    let now = poster.chain_time().await.unwrap();
    // One pass, then the view's status must be the chain's without reading it.
    let check = |id: U256, step: &'static str| {
        let (view, poster) = (&view, &poster);
        async move {
            view.sync().await.unwrap();
            let chain = poster.status_of(id).await.unwrap();
            assert_eq!(view.cached_status(id), Some(chain), "after {step}");
            chain
        }
    };
    let follow = |salt| {
        let id = bounty_id(poster.address(), salt);
        let view = &view;
        async move {
            assert_eq!(view.status_of(id).await.unwrap().0, Status::None);
            id
        }
    };
    let bid_of = |who: &ReefClient,
                  id: U256,
                  b: &escrow_client::bindings::escrow::IBountyTypes::Bounty,
                  eta: u32,
                  nonce: u64| {
        who.sign_bid(id, b, b.amount, now + 3_000, eta, U256::from(nonce)).unwrap()
    };

    // Funded → awarded → submitted → rejected (an arbiter: a challenge window) → disputed →
    // resolved.
    let salt = random_salt();
    let id = follow(salt).await;
    let mut new = eth_bounty(now, "disputed");
    new.arbiter = arbiter.address();
    let terms = poster.terms(&new).await.unwrap();
    let (_, b, _) = poster.post_and_fund(salt, terms, false).await.unwrap();
    assert_eq!(check(id, "postAndFund").await.0, Status::Funded);
    let (bid, sig) = bid_of(&provider, id, &b, 0, 1);
    let (b, _) = poster.award(id, &b, bid, sig).await.unwrap();
    assert_eq!(check(id, "award").await, (Status::Awarded, b.deadline), "due at the deadline");
    let (b, _) = provider.submit(id, &b, alloy::primitives::B256::repeat_byte(7)).await.unwrap();
    assert_eq!(check(id, "submit").await.0, Status::Submitted);
    evaluator.reject(id, &b).await.unwrap();
    assert_eq!(check(id, "reject").await.0, Status::Rejected);
    provider.dispute(id, &b).await.unwrap();
    assert_eq!(check(id, "dispute").await.0, Status::Disputed);
    arbiter.resolve(id, &b, 5_000).await.unwrap();
    assert_eq!(check(id, "resolve").await.0, Status::Resolved);

    // Awarded with a one-second delivery time, overdue, handed to another bidder
    // (`AwardRevoked` then `BountyAwarded`), overdue again and revoked (`AwardRevoked` then
    // `BountyRefunded`).
    let salt = random_salt();
    let id = follow(salt).await;
    let terms = poster.terms(&eth_bounty(now, "overdue")).await.unwrap();
    let (_, posted, _) = poster.post_and_fund(salt, terms, false).await.unwrap();
    let (bid, sig) = bid_of(&provider, id, &posted, 1, 2);
    let (b, _) = poster.award(id, &posted, bid, sig).await.unwrap();
    check(id, "award with an eta").await;
    let later = |secs: u64| {
        let poster = &poster;
        async move {
            let _: serde_json::Value =
                rpc(poster, "evm_increaseTime", vec![U256::from(secs)]).await;
            let _: String = rpc(poster, "evm_mine", vec![]).await;
        }
    };
    later(5).await;
    // Bids are signed on the posted terms.
    let (bid, sig) = bid_of(&other, id, &posted, 1, 3);
    let (b, _) = poster.reassign(id, &b, &bid, sig).await.unwrap();
    assert_eq!(check(id, "reassign").await.0, Status::Awarded);
    later(5).await;
    poster.revoke_award(id, &b).await.unwrap();
    assert_eq!(check(id, "revokeAward").await.0, Status::Expired);

    // Posted, funded and awarded in one call; then submitted with an accepting attestation
    // (`BountyAttested` then `BountyCompleted`), or a rejecting one without an arbiter
    // (`BountyAttested`, `BountyRejected`, `BountyRefunded`).
    for (accept, want) in [(true, Status::Completed), (false, Status::Refunded)] {
        let salt = random_salt();
        let id = follow(salt).await;
        let terms = poster.terms(&eth_bounty(now, "one call")).await.unwrap();
        let (bid, sig) = bid_of(&provider, id, &terms, 0, if accept { 4 } else { 5 });
        let (_, b, _) = poster.post_fund_and_award(salt, terms, bid, sig, false).await.unwrap();
        assert_eq!(check(id, "postFundAndAward").await.0, Status::Awarded);
        let rh = alloy::primitives::B256::repeat_byte(9);
        let code = if accept { verdict::ACCEPT } else { verdict::REJECT };
        let att = evaluator.sign_attestation(id, b.provider, rh, code).unwrap();
        provider.submit_and_attest(id, &b, rh, code, att).await.unwrap();
        assert_eq!(check(id, "submitAndAttest").await.0, want);
    }

    // Cancelled before any award.
    let salt = random_salt();
    let id = follow(salt).await;
    let terms = poster.terms(&eth_bounty(now, "cancelled")).await.unwrap();
    let (_, b, _) = poster.post_and_fund(salt, terms, false).await.unwrap();
    poster.cancel(id, &b).await.unwrap();
    assert_eq!(check(id, "cancel").await.0, Status::Cancelled);
}

/// The platform fee is read once and served from the cache until a pass sees `FeeUpdated`.
#[tokio::test(flavor = "multi_thread")]
async fn the_fee_is_cached_until_the_escrow_announces_a_new_one() {
    use escrow_client::bindings::escrow::BountyEscrow;
    let (_anvil, owner, view) = setup("chainview-fee").await;
    view.sync().await.unwrap();
    let before = owner.fee_bps().await.unwrap();
    assert_eq!(view.fee_bps().await.unwrap(), before);

    let escrow = owner.deployment().bounty_escrow;
    let set = BountyEscrow::setFeeCall { newFeeBps: before + 50, recipient: owner.address() };
    owner.send_call("setFee", escrow, &set, U256::ZERO).await.unwrap();
    assert_eq!(view.fee_bps().await.unwrap(), before, "served from the cache until the next pass");
    view.sync().await.unwrap();
    assert_eq!(view.fee_bps().await.unwrap(), before + 50, "FeeUpdated dropped the cached fee");

    // Other escrow events leave it cached.
    let set_back = BountyEscrow::setFeeCall { newFeeBps: before, recipient: owner.address() };
    let now = owner.chain_time().await.unwrap();
    let terms = owner.terms(&eth_bounty(now, "fee")).await.unwrap();
    owner.post_and_fund(random_salt(), terms, false).await.unwrap();
    view.sync().await.unwrap();
    assert_eq!(view.fee_bps().await.unwrap(), before + 50);
    owner.send_call("setFee", escrow, &set_back, U256::ZERO).await.unwrap();
    view.sync().await.unwrap();
    assert_eq!(view.fee_bps().await.unwrap(), before);
}

/// A posting's "already on-chain?" check (`status_of_new`) is answered without a JSON-RPC
/// request when the embedded indexer (every block below its checkpoint) and the view's scans
/// (every block from the view's first pass) together cover the chain and neither names the id;
/// an id either one names, or an index behind the view's first block, is read from the chain.
/// Proven by stopping anvil: what is answered afterwards was not read.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_postings_status_comes_from_the_index_and_the_scans_without_a_read() {
    let (anvil, poster, _) = setup("chainview-index").await;
    let dep = poster.deployment().clone();
    let dir = common::temp_dir("chainview-index-db");
    // The views give up on a dead RPC within about a second.
    let quick = ClientOptions { retry: RetryPolicy::quick(), ..ClientOptions::default() };
    let view_client =
        ReefClient::connect(&anvil.rpc_url, dev_signer(5), dep.clone(), quick).await.unwrap();
    let index = reef_indexer::Store::connect(&format!("sqlite:{}", dir.join("idx.db").display()))
        .await
        .unwrap();
    let mut indexer = reef_indexer::Indexer::new(
        reef_indexer::RpcSource::new(&anvil.rpc_url).unwrap(),
        index.clone(),
        reef_indexer::IndexerConfig::for_deployment(&dep),
    )
    .await
    .unwrap();
    let view = ChainView::new(view_client.clone()).with_index(Some(index.clone()));
    let unindexed = ChainView::new(view_client.clone());

    let now = poster.chain_time().await.unwrap();
    let post = async |description: &str| {
        let terms = poster.terms(&eth_bounty(now, description)).await.unwrap();
        poster.post_and_fund(random_salt(), terms, false).await.unwrap().0
    };
    // Posted before the view's first pass: only the index can know it.
    let early = post("before the view").await;
    view.sync().await.unwrap();
    unindexed.sync().await.unwrap();
    let fresh = || bounty_id(poster.address(), random_salt());
    indexer.sync_once().await.unwrap();
    // Posted after the index's last run: only the view's scans know it.
    let late = post("after the index").await;
    view.sync().await.unwrap();
    // A view whose first pass is after the index's checkpoint cannot lean on it.
    let behind = ChainView::new(view_client.clone()).with_index(Some(index.clone()));
    behind.sync().await.unwrap();

    drop(anvil);
    let id = fresh();
    let (_, statuses) = view.cached();
    assert_eq!(view.status_of_new(id).await.unwrap(), (Status::None, 0), "from index and scans");
    assert_eq!(view.cached().1, statuses + 1, "cached as a `None` answer (the scans build it)");
    assert_eq!(view.status_of_new(id).await.unwrap(), (Status::None, 0));
    assert!(view.status_of_new(late).await.is_err(), "named by a scan: read from the chain");
    assert!(view.status_of_new(early).await.is_err(), "named by the index: read");
    assert!(unindexed.status_of_new(fresh()).await.is_err(), "no index: read");
    assert!(behind.status_of_new(fresh()).await.is_err(), "index behind the view: read");
}
