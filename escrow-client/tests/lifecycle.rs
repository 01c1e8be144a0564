//! Integration tests against a real anvil: the full bounty lifecycle and its failure paths.

mod common;

use alloy::{
    primitives::{Address, Bytes, U256},
    signers::local::PrivateKeySigner,
};
use common::*;
use escrow_client::{
    ClientOptions, Error, ReefClient, RetryPolicy,
    bindings::escrow::BountyEscrow,
    devnet::dev_signer,
    escrow::Status,
    escrow::random_salt,
    signing::{self, verdict},
};

#[tokio::test]
async fn full_lifecycle_erc20_pays_provider_minus_fee() {
    let env = setup().await;
    let amount = ether("100");
    let price = ether("80");
    let provider_before = env.bal(env.provider.address()).await;
    let poster_before = env.bal(env.poster.address()).await;

    let (id, b) = env.awarded(amount, price).await;
    let rh = result_hash("1 2 3 4");
    let att = env.evaluator.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
    let (_b, out) = env.provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, att).await.unwrap();
    assert!(out.gas_used > 0);

    let fee = price / 100; // devnet fee 1%
    assert_eq!(env.bal(env.provider.address()).await, provider_before + U256::from(price - fee));
    assert_eq!(env.bal(env.poster.address()).await, poster_before - U256::from(price));

    let state = env.stranger.bounty(id).await.unwrap();
    assert_eq!(state.status, Status::Completed);
    assert_eq!(state.record.provider, env.provider.address());
    assert_eq!(state.record.resultHash, rh);
    let names: Vec<_> = state.history.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(names, ["BountyPosted", "BountyAwarded", "BountyAttested", "BountyCompleted"]);

    // The fee waits in the token's pool until anyone collects it: it is paid to the fee
    // recipient (the devnet deployer, here the poster).
    let recipient = env.poster.address();
    assert_eq!(env.stranger.accrued_fees(env.token).await.unwrap(), U256::from(fee));
    assert_eq!(env.stranger.ledger_credit(env.token, recipient).await.unwrap(), U256::ZERO);
    let before = env.bal(recipient).await;
    env.stranger.collect_fees(env.token).await.unwrap();
    assert_eq!(env.stranger.accrued_fees(env.token).await.unwrap(), U256::ZERO);
    assert_eq!(env.bal(recipient).await, before + U256::from(fee));
    let err = env.stranger.collect_fees(env.token).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("NothingToWithdraw"), "{err}");
}

#[tokio::test]
async fn post_fund_and_award_in_one_transaction() {
    let env = setup().await;
    let now = env.poster.chain_time().await.unwrap();
    let terms = env.poster.terms(&env.new_bounty(ether("5"), now + 3_600)).await.unwrap();
    let salt = random_salt();
    let id = escrow_client::escrow::bounty_id(env.poster.address(), salt);
    let (bid, sig) =
        env.provider.sign_bid(id, &terms, ether("4"), now + 600, 0, U256::from(1)).unwrap();
    let (id2, b, txs) = env.poster.post_fund_and_award(salt, terms, bid, sig, true).await.unwrap();
    assert_eq!(id, id2);
    assert_eq!(txs.last().unwrap().action, "postFundAndAward");
    let state = env.poster.bounty(id).await.unwrap();
    assert_eq!(state.status, Status::Awarded);
    assert_eq!(state.record.price, b.price);
}

#[tokio::test]
async fn poster_evaluates_submit_then_release_and_double_release_fails() {
    let env = setup().await;
    let now = env.poster.chain_time().await.unwrap();
    let mut nb = env.new_bounty(ether("10"), now + 3_600);
    nb.evaluator = None; // poster evaluates
    let terms = env.poster.terms(&nb).await.unwrap();
    let (id, b, _) = env.poster.post_and_fund(random_salt(), terms, true).await.unwrap();
    let (bid, sig) =
        env.provider.sign_bid(id, &b, ether("10"), now + 600, 0, U256::from(9)).unwrap();
    let (b, _) = env.poster.award(id, &b, bid, sig).await.unwrap();
    let (b, _) = env.provider.submit(id, &b, result_hash("done")).await.unwrap();
    env.poster.release(id, &b).await.unwrap();
    let err = env.poster.release(id, &b).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("InvalidStatus"), "{err}");
    assert!(err.to_string().contains("reef bounty show"), "hint missing: {err}");
}

#[tokio::test]
async fn bid_with_bad_signature_is_rejected_on_and_off_chain() {
    let env = setup().await;
    let (id, b) = env.posted(ether("10")).await;
    let deadline = env.poster.chain_time().await.unwrap() + 600;
    // The stranger signs a bid claiming to be the provider.
    let (mut bid, _) =
        env.provider.sign_bid(id, &b, ether("1"), deadline, 0, U256::from(1)).unwrap();
    let forged = env.stranger.sign_bid(id, &b, ether("1"), deadline, 0, U256::from(1)).unwrap().1;
    bid.bidder = env.provider.address();
    let off = env.poster.award(id, &b, bid.clone(), forged.clone()).await.unwrap_err();
    assert!(matches!(off, Error::BadSignature { .. }), "{off}");
    // Bypass the client's own check: the contract rejects it too.
    let call = BountyEscrow::awardCall { id, b, bid, sig: forged };
    let on =
        env.poster.send_call("award", env.dep.bounty_escrow, &call, U256::ZERO).await.unwrap_err();
    assert_eq!(on.revert_name().as_deref(), Some("InvalidSignature"), "{on}");
}

#[tokio::test]
async fn replayed_bid_nonce_is_rejected() {
    let env = setup().await;
    let (id1, b1) = env.posted(ether("10")).await;
    let (id2, b2) = env.posted(ether("10")).await;
    let deadline = env.poster.chain_time().await.unwrap() + 600;
    let (bid1, sig1) =
        env.provider.sign_bid(id1, &b1, ether("5"), deadline, 0, U256::from(42)).unwrap();
    let (bid2, sig2) =
        env.provider.sign_bid(id2, &b2, ether("5"), deadline, 0, U256::from(42)).unwrap();
    env.poster.award(id1, &b1, bid1.clone(), sig1.clone()).await.unwrap();
    let err = env.poster.award(id2, &b2, bid2, sig2).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("NonceUsed"), "{err}");
    // The same bid cannot be used on another bounty either (bound to its id).
    let err = env.poster.award(id2, &b2, bid1, sig1).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("BidMismatch"), "{err}");
}

#[tokio::test]
async fn expired_bid_is_rejected() {
    let env = setup().await;
    let (id, b) = env.posted(ether("10")).await;
    let now = env.poster.chain_time().await.unwrap();
    let (bid, sig) = env.provider.sign_bid(id, &b, ether("5"), now + 10, 0, U256::from(3)).unwrap();
    env.warp(60).await;
    let err = env.poster.award(id, &b, bid, sig).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("BidExpired"), "{err}");
}

#[tokio::test]
async fn signature_for_another_chain_is_rejected() {
    let env = setup().await;
    let (id, b) = env.posted(ether("10")).await;
    let deadline = env.poster.chain_time().await.unwrap() + 600;
    let (bid, _) = env.provider.sign_bid(id, &b, ether("5"), deadline, 0, U256::from(4)).unwrap();
    let wrong = signing::escrow_domain(1, env.dep.bounty_escrow);
    let sig = signing::sign_bid(env.provider.signer(), &bid, &wrong).unwrap();
    let call = BountyEscrow::awardCall { id, b, bid, sig };
    let err =
        env.poster.send_call("award", env.dep.bounty_escrow, &call, U256::ZERO).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("InvalidSignature"), "{err}");

    // And a client pointed at a deployment of another chain refuses to connect.
    let mut dep = env.dep.clone();
    dep.chain_id = 1;
    let err =
        ReefClient::connect(&env.anvil.rpc_url, dev_signer(0), dep, opts()).await.unwrap_err();
    assert!(matches!(err, Error::WrongChain { expected: 1, actual: 31337 }), "{err}");
}

#[tokio::test]
async fn insufficient_allowance_and_balance_are_clear_errors() {
    let env = setup().await;
    let now = env.poster.chain_time().await.unwrap();
    let terms = env.poster.terms(&env.new_bounty(ether("10"), now + 3_600)).await.unwrap();
    // No approval requested: the estimate fails on the allowance, which is then read.
    let err = env.poster.post_and_fund(random_salt(), terms.clone(), false).await.unwrap_err();
    assert!(matches!(err, Error::InsufficientAllowance { .. }), "{err}");
    // Without the pre-flight the token's own error is decoded.
    let call = BountyEscrow::postAndFundCall { salt: random_salt(), terms };
    let err = env
        .poster
        .send_call("postAndFund", env.dep.bounty_escrow, &call, U256::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("ERC20InsufficientAllowance"), "{err}");

    // A fresh key holds nothing at all.
    let broke = env.poster.with_signer(PrivateKeySigner::random()).unwrap();
    let terms = broke.terms(&env.new_bounty(ether("1"), now + 3_600)).await.unwrap();
    let err = broke.post_and_fund(random_salt(), terms.clone(), true).await.unwrap_err();
    assert!(matches!(err, Error::InsufficientBalance { .. }), "{err}");
    // Without the pre-flight too: the refused estimate is explained by reading the balance.
    let err = broke.post_and_fund(random_salt(), terms.clone(), false).await.unwrap_err();
    assert!(matches!(err, Error::InsufficientBalance { .. }), "{err}");
    // And cannot pay gas.
    let call = BountyEscrow::postAndFundCall { salt: random_salt(), terms };
    let err =
        broke.send_call("postAndFund", env.dep.bounty_escrow, &call, U256::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::InsufficientFunds { .. } | Error::Revert { .. }), "{err}");
}

#[tokio::test]
async fn refund_after_expiry_by_anyone() {
    let env = setup().await;
    let before = env.bal(env.poster.address()).await;
    let (id, b) = env.awarded(ether("10"), ether("9")).await;
    let err = env.stranger.refund_expired(id, &b).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("TooEarly"), "{err}");
    env.warp(86_400 + 1).await;
    env.stranger.refund_expired(id, &b).await.unwrap();
    assert_eq!(env.bal(env.poster.address()).await, before);
    assert_eq!(env.stranger.status_of(id).await.unwrap().0, Status::Expired);
}

#[tokio::test]
async fn dispute_split_with_slashing() {
    let env = setup().await;
    env.provider.stake(alloy::primitives::utils::parse_ether("1").unwrap()).await.unwrap();
    let stake_before = env.provider.stake_of(env.provider.address()).await.unwrap();
    let provider_before = env.bal(env.provider.address()).await;
    let poster_before = env.bal(env.poster.address()).await;
    // The bid bonds 0.4 ETH of the stake (stake units, whatever the reward token).
    let bond = alloy::primitives::utils::parse_ether("0.4").unwrap();
    let (id, b) = env.awarded_bonded(ether("100"), ether("100"), bond).await;
    let (b, _) = env.provider.submit(id, &b, result_hash("disputed work")).await.unwrap();
    env.poster.dispute(id, &b).await.unwrap();
    // Only the arbiter rules.
    let err = env.stranger.resolve(id, &b, 3_000).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("NotArbiter"), "{err}");
    env.arbiter.resolve(id, &b, 3_000).await.unwrap();

    let gross = ether("30");
    let fee = gross / 100;
    assert_eq!(env.bal(env.provider.address()).await, provider_before + U256::from(gross - fee));
    assert_eq!(env.bal(env.poster.address()).await, poster_before - U256::from(gross));
    // Provider lost (< 50%): slashed slashBps (50%) of the bond it signed, not of the price.
    let stake_after = env.provider.stake_of(env.provider.address()).await.unwrap();
    assert_eq!(stake_after, stake_before - bond / U256::from(2));
    assert_eq!(env.poster.status_of(id).await.unwrap().0, Status::Resolved);
}

#[tokio::test]
async fn evaluator_rejection_refunds_after_challenge_window() {
    let env = setup().await;
    let before = env.bal(env.poster.address()).await;
    let (id, b) = env.awarded(ether("10"), ether("10")).await;
    let (b, _) = env.provider.submit(id, &b, result_hash("wrong")).await.unwrap();
    let sig =
        env.evaluator.sign_attestation(id, b.provider, b.resultHash, verdict::REJECT).unwrap();
    env.stranger.attest(id, &b, verdict::REJECT, sig).await.unwrap();
    assert_eq!(env.poster.status_of(id).await.unwrap().0, Status::Rejected);
    env.warp(3_601).await;
    env.stranger.finalize_rejection(id, &b).await.unwrap();
    assert_eq!(env.bal(env.poster.address()).await, before);
    assert_eq!(env.poster.status_of(id).await.unwrap().0, Status::Refunded);
}

#[tokio::test]
async fn forged_attestation_is_rejected() {
    let env = setup().await;
    let (id, b) = env.awarded(ether("10"), ether("10")).await;
    let rh = result_hash("r");
    let forged = env.stranger.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
    let err =
        env.provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, forged).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("InvalidSignature"), "{err}");
}

#[tokio::test]
async fn attestation_for_another_provider_is_rejected() {
    // The verdict names the provider it judges: after a take-over, a replacement cannot replay
    // the verdict signed for the late provider (issue 18).
    let env = setup().await;
    let (id, b) = env.awarded(ether("10"), ether("10")).await;
    let rh = result_hash("r");
    let other =
        env.evaluator.sign_attestation(id, env.stranger.address(), rh, verdict::ACCEPT).unwrap();
    let err = env.provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, other).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("InvalidSignature"), "{err}");
    let own = env.evaluator.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
    env.provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, own).await.unwrap();
}

#[tokio::test]
async fn signatures_match_eth_sign_typed_data_v4_and_contract_digest() {
    use alloy::providers::Provider;
    let env = setup().await;
    let id = U256::from(123456789u64);
    let (bid, sig) = env
        .provider
        .sign_bid(id, &sample_terms(), 1_000, 2_000_000_000, 45, U256::from(7))
        .unwrap();
    // The contract computes the same digest.
    let onchain: alloy::primitives::B256 = env
        .provider
        .view(env.dep.bounty_escrow, BountyEscrow::hashBidCall { bid: bid.clone() })
        .await
        .unwrap();
    let domain = signing::escrow_domain(31337, env.dep.bounty_escrow);
    use alloy::sol_types::SolStruct;
    assert_eq!(onchain, bid.eip712_signing_hash(&domain));
    // anvil's eth_signTypedData_v4 (wallet path) yields the same signature.
    let typed = serde_json::json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
            ],
            "Bid": [
                {"name": "bountyId", "type": "uint256"}, {"name": "termsHash", "type": "bytes32"},
                {"name": "bidder", "type": "address"},
                {"name": "amount", "type": "uint256"}, {"name": "deadline", "type": "uint64"},
                {"name": "eta", "type": "uint32"}, {"name": "bond", "type": "uint256"},
                {"name": "nonce", "type": "uint256"}
            ]
        },
        "primaryType": "Bid",
        "domain": {"name": "ReefBountyEscrow", "version": "1", "chainId": 31337,
                   "verifyingContract": env.dep.bounty_escrow},
        "message": {"bountyId": "123456789", "termsHash": bid.termsHash, "bidder": env.provider.address(), "amount": "1000",
                    "deadline": 2000000000u64, "eta": 45, "bond": "0", "nonce": "7"}
    });
    let wallet_sig: Bytes = env
        .provider
        .provider()
        .raw_request("eth_signTypedData_v4".into(), (env.provider.address(), typed))
        .await
        .unwrap();
    assert_eq!(wallet_sig, sig);
}

fn sample_terms() -> escrow_client::bindings::escrow::IBountyTypes::Bounty {
    escrow_client::bindings::escrow::IBountyTypes::Bounty {
        poster: Address::repeat_byte(1),
        token: Address::repeat_byte(2),
        amount: 1_000,
        evaluator: Address::repeat_byte(3),
        deadline: 2_000_000_000,
        ..Default::default()
    }
}

#[tokio::test]
async fn bid_for_other_terms_is_rejected() {
    let env = setup().await;
    let (id, b) = env.posted(ether("10")).await;
    let deadline = env.poster.chain_time().await.unwrap() + 600;
    // The bidder agreed to other terms (e.g. another evaluator): the award is refused.
    let mut other = b.clone();
    other.evaluator = env.stranger.address();
    let (bid, sig) =
        env.provider.sign_bid(id, &other, ether("5"), deadline, 0, U256::from(11)).unwrap();
    let err = env.poster.award(id, &b, bid, sig).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("BidMismatch"), "{err}");
}

#[tokio::test]
async fn terms_hash_matches_the_contract() {
    let env = setup().await;
    let (_, b) = env.posted(ether("3")).await;
    let onchain: alloy::primitives::B256 = env
        .poster
        .view(env.dep.bounty_escrow, BountyEscrow::hashBountyCall { b: b.clone() })
        .await
        .unwrap();
    assert_eq!(onchain, escrow_client::escrow::terms_hash(&b));
}

#[tokio::test]
async fn dead_rpc_is_a_clear_error_after_retries() {
    let port = escrow_client::devnet::free_port().unwrap();
    let opts = ClientOptions {
        retry: RetryPolicy {
            attempts: 3,
            initial_backoff: std::time::Duration::from_millis(10),
            max_backoff: std::time::Duration::from_millis(20),
        },
        ..ClientOptions::default()
    };
    let dep = escrow_client::deploy::empty_deployment(31337);
    let err = ReefClient::connect(&format!("http://127.0.0.1:{port}"), dev_signer(0), dep, opts)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rpc { .. }), "{err}");
    assert!(err.to_string().contains("reef devnet"), "{err}");
}

#[tokio::test]
async fn contest_mode_splits_between_winners() {
    let env = setup().await;
    let now = env.poster.chain_time().await.unwrap();
    let mut nb = env.new_bounty(ether("90"), now + 3_600);
    nb.contest_winners = Some(2);
    let terms = env.poster.terms(&nb).await.unwrap();
    let (id, b, _) = env.poster.post_and_fund(random_salt(), terms, true).await.unwrap();
    let a = env.provider.clone();
    let c = env.stranger.clone();
    for (who, r) in [(&a, "a"), (&c, "c")] {
        let call = BountyEscrow::submitEntryCall { id, b: b.clone(), resultHash: result_hash(r) };
        who.send_call("submitEntry", env.dep.bounty_escrow, &call, U256::ZERO).await.unwrap();
    }
    let (a0, c0) = (env.bal(a.address()).await, env.bal(c.address()).await);
    // Winners are picked after the deadline, once every entry is in.
    let early = BountyEscrow::pickWinnersCall {
        id,
        b: b.clone(),
        winners: vec![a.address()],
        sharesBps: vec![10_000],
    };
    let err = env
        .evaluator
        .send_call("pickWinners", env.dep.bounty_escrow, &early, U256::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("TooEarly"), "{err}");
    env.warp(3_601).await;
    let call = BountyEscrow::pickWinnersCall {
        id,
        b,
        winners: vec![a.address(), c.address()],
        sharesBps: vec![6_000, 4_000],
    };
    env.evaluator.send_call("pickWinners", env.dep.bounty_escrow, &call, U256::ZERO).await.unwrap();
    let gross_a = ether("54");
    let gross_c = ether("36");
    assert_eq!(env.bal(a.address()).await, a0 + U256::from(gross_a - gross_a / 100));
    assert_eq!(env.bal(c.address()).await, c0 + U256::from(gross_c - gross_c / 100));
    let _ = Address::ZERO;
}
