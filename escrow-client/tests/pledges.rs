//! Sub-bounties funded from a pending reward, against a real anvil: the provider of an awarded
//! bounty posts a sub-bounty in its pledge token, the sub-provider is paid in credits, and the
//! credits redeem for tokens once the parent settles (or are void if it fails).

mod common;

use alloy::primitives::U256;
use common::*;
use escrow_client::{
    Error, NewBounty,
    bindings::escrow::BountyEscrow,
    escrow::{Status, random_salt},
    pledge::PledgeState,
    signing::verdict,
};

/// The provider's sub-bounty terms, paid in its pledge token on `parent`.
async fn sub_terms(
    env: &Env,
    parent: U256,
    amount: u128,
) -> escrow_client::bindings::escrow::IBountyTypes::Bounty {
    let now = env.provider.chain_time().await.unwrap();
    let nb = NewBounty {
        token: env.provider.pledge_token_of(parent, env.provider.address()),
        amount,
        evaluator: Some(env.evaluator.address()),
        arbiter: alloy::primitives::Address::ZERO,
        deadline: now + 3_000,
        review_window: 600,
        challenge_window: 0,
        description: "Sort half of the numbers.".into(),
        contest_winners: None,
    };
    env.provider.terms(&nb).await.unwrap()
}

#[tokio::test]
async fn a_sub_bounty_paid_from_the_reward_redeems_after_the_parent_settles() {
    let env = setup().await;
    let (pid, parent) = env.awarded(ether("100"), ether("80")).await;
    let pt = env.provider.pledge_token_of(pid, env.provider.address());
    let onchain = env
        .stranger
        .view(
            env.dep.bounty_escrow,
            BountyEscrow::pledgeTokenOfCall { parentId: pid, provider: env.provider.address() },
        )
        .await
        .unwrap();
    assert_eq!(pt, onchain, "the client derives the escrow's pledge token");
    assert!(env.stranger.pledge(pt).await.unwrap().is_none(), "unused until the first pledge");

    // The provider funds a 30-token sub-bounty from its 79.2 net pay: no tokens move.
    let before = env.bal(env.dep.bounty_escrow).await;
    let terms = sub_terms(&env, pid, ether("30")).await;
    let (sid, sub, out) = env.provider.post_from_reward(random_salt(), terms, pid).await.unwrap();
    assert_eq!(out.action, "postFromReward");
    assert_eq!(env.bal(env.dep.bounty_escrow).await, before);
    let p = env.stranger.pledge(pt).await.unwrap().unwrap();
    assert_eq!((p.parent, p.underlying, p.state), (pid, env.token, PledgeState::Pending));
    assert_eq!(p.pledged, U256::from(ether("30")));
    assert_eq!(env.stranger.underlying_token(pt).await.unwrap(), env.token);
    assert_eq!(env.stranger.bounty(sid).await.unwrap().status, Status::Funded);

    // The stranger does the sub-task for 25 and is paid in credits.
    let now = env.stranger.chain_time().await.unwrap();
    let (bid, sig) = env
        .stranger
        .sign_bid(sid, &sub, ether("25"), now + 600, 0, U256::from(rand_nonce()))
        .unwrap();
    let (sub, _) = env.provider.award(sid, &sub, bid, sig).await.unwrap();
    let rh = result_hash("half sorted");
    let att = env.evaluator.sign_attestation(sid, sub.provider, rh, verdict::ACCEPT).unwrap();
    env.stranger.submit_and_attest(sid, &sub, rh, verdict::ACCEPT, att).await.unwrap();
    let credit = env.stranger.ledger_credit(pt, env.stranger.address()).await.unwrap();
    let sub_fee = ether("25") / 100;
    assert_eq!(credit, U256::from(ether("25") - sub_fee));

    // Before the parent settles, redeeming is refused and says why; nothing is sent.
    let err = env.stranger.redeem_pledge(pt).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(_)) && err.to_string().contains("once it is settled"),
        "{err}"
    );

    // The parent completes: the provider is paid its net pay less the pledge.
    let provider_before = env.bal(env.provider.address()).await;
    let rh = result_hash("all sorted");
    let att = env.evaluator.sign_attestation(pid, parent.provider, rh, verdict::ACCEPT).unwrap();
    env.provider.submit_and_attest(pid, &parent, rh, verdict::ACCEPT, att).await.unwrap();
    let net = ether("80") - ether("80") / 100;
    assert_eq!(
        env.bal(env.provider.address()).await,
        provider_before + U256::from(net - ether("30"))
    );
    let p = env.stranger.pledge(pt).await.unwrap().unwrap();
    assert_eq!(p.state, PledgeState::Redeemable);
    assert_eq!(p.value_of(credit), credit);

    let stranger_before = env.bal(env.stranger.address()).await;
    env.stranger.redeem_pledge(pt).await.unwrap();
    assert_eq!(env.bal(env.stranger.address()).await, stranger_before + credit);
    // The provider gets back the part of the sub-budget the sub-provider did not charge.
    let provider_before = env.bal(env.provider.address()).await;
    env.provider.redeem_pledge(pt).await.unwrap();
    assert_eq!(
        env.bal(env.provider.address()).await,
        provider_before + U256::from(ether("30") - ether("25"))
    );
    let err = env.stranger.redeem_pledge(pt).await.unwrap_err();
    assert!(err.to_string().contains("no credits"), "{err}");
}

#[tokio::test]
async fn a_failed_parent_voids_the_pledge_and_refunds_its_poster_in_full() {
    let env = setup().await;
    let (pid, parent) = env.awarded(ether("100"), ether("80")).await;
    let pt = env.provider.pledge_token_of(pid, env.provider.address());
    let terms = sub_terms(&env, pid, ether("10")).await;
    let (sid, sub, _) = env.provider.post_from_reward(random_salt(), terms, pid).await.unwrap();
    env.provider.cancel(sid, &sub).await.unwrap();
    assert_eq!(
        env.provider.ledger_credit(pt, env.provider.address()).await.unwrap(),
        U256::from(ether("10"))
    );

    let poster_before = env.bal(env.poster.address()).await;
    let rh = result_hash("wrong");
    let att = env.evaluator.sign_attestation(pid, parent.provider, rh, verdict::REJECT).unwrap();
    env.provider.submit_and_attest(pid, &parent, rh, verdict::REJECT, att).await.unwrap();
    env.warp(3_601).await;
    let state = env.stranger.bounty(pid).await.unwrap();
    env.stranger.finalize_rejection(pid, &state.record).await.unwrap();
    assert_eq!(env.bal(env.poster.address()).await, poster_before + U256::from(ether("100")));

    let p = env.stranger.pledge(pt).await.unwrap().unwrap();
    assert_eq!(p.state, PledgeState::Void);
    let err = env.provider.redeem_pledge(pt).await.unwrap_err();
    assert!(err.to_string().contains("void"), "{err}");
}

#[tokio::test]
async fn pledging_more_than_the_net_pay_or_for_another_provider_is_refused_before_sending() {
    let env = setup().await;
    let (pid, _) = env.awarded(ether("100"), ether("80")).await;
    // 80 less the 1 % fee leaves 79.2 to pledge.
    let terms = sub_terms(&env, pid, ether("79.3")).await;
    let err = env.provider.post_from_reward(random_salt(), terms.clone(), pid).await.unwrap_err();
    assert!(err.to_string().contains("left to pledge"), "{err}");

    // Only the parent's provider can pledge its reward.
    let mut stranger_terms = terms.clone();
    stranger_terms.poster = env.stranger.address();
    let err = env.stranger.post_from_reward(random_salt(), stranger_terms, pid).await.unwrap_err();
    assert!(err.to_string().contains("only its provider"), "{err}");

    // The escrow enforces the same limit if the client's check is skipped.
    let mut t = sub_terms(&env, pid, ether("79.2")).await;
    env.provider.post_from_reward(random_salt(), t.clone(), pid).await.unwrap();
    t.amount = 1;
    let parent = env.stranger.bounty(pid).await.unwrap().record;
    let call =
        BountyEscrow::postFromRewardCall { salt: random_salt(), terms: t, parentId: pid, parent };
    let err = env
        .provider
        .send_call("postFromReward", env.dep.bounty_escrow, &call, U256::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("PledgeTooHigh"), "{err}");
    assert!(err.to_string().contains("lower the reward"), "{err}");
}
