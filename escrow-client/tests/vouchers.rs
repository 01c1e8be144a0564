//! Integration tests against a real anvil: payment-channel vouchers and the agent registry.

mod common;

use alloy::primitives::{Address, U256};
use common::*;

#[tokio::test]
async fn cumulative_vouchers_from_many_payers_redeem_in_one_batch() {
    let env = setup().await;
    let payee = env.provider.clone();
    let payers = [env.poster.clone(), env.evaluator.clone(), env.stranger.clone()];
    let mut vouchers = Vec::new();
    let mut sigs = Vec::new();
    for p in &payers {
        let (ch, _) = p.open_channel(payee.address(), env.token, ether("10"), 3_600).await.unwrap();
        // 1,000 micro-payments of 0.001 each: only the last cumulative voucher is redeemed.
        let mut last = None;
        for i in 1..=1_000u64 {
            last = Some(
                p.sign_voucher(ch, payee.address(), U256::from(i) * U256::from(ether("0.001")))
                    .unwrap(),
            );
        }
        let (v, s) = last.unwrap();
        assert_eq!(payee.verify_voucher(&v, &s).await.unwrap(), U256::from(ether("1")));
        vouchers.push(v);
        sigs.push(s);
    }
    let before = env.bal(payee.address()).await;
    payee.redeem_batch(vouchers.clone(), sigs.clone()).await.unwrap();
    assert_eq!(env.bal(payee.address()).await, before + U256::from(ether("3")));

    // Replaying a voucher pays nothing.
    let err = payee.redeem_voucher(vouchers[0].clone(), sigs[0].clone()).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("NothingToRedeem"), "{err}");
    // And off-chain verification refuses it before any work is served.
    assert!(payee.verify_voucher(&vouchers[0], &sigs[0]).await.is_err());
}

#[tokio::test]
async fn payer_reclaims_remainder_after_challenge_period() {
    let env = setup().await;
    let payer = env.poster.clone();
    let payee = env.provider.clone();
    let before = env.bal(payer.address()).await;
    let (ch, _) = payer.open_channel(payee.address(), env.token, ether("10"), 600).await.unwrap();
    let (v, s) = payer.sign_voucher(ch, payee.address(), U256::from(ether("2"))).unwrap();
    payer.request_close(ch).await.unwrap();
    let err = payer.withdraw_remainder(ch).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("ChallengePeriodActive"), "{err}");
    // The payee redeems during the challenge period.
    payee.redeem_voucher(v, s).await.unwrap();
    env.warp(601).await;
    payer.withdraw_remainder(ch).await.unwrap();
    assert_eq!(env.bal(payer.address()).await, before - U256::from(ether("2")));
}

#[tokio::test]
async fn forged_voucher_is_rejected() {
    let env = setup().await;
    let (ch, _) = env
        .poster
        .open_channel(env.provider.address(), Address::ZERO, ether("1"), 600)
        .await
        .unwrap();
    let (mut v, _) =
        env.poster.sign_voucher(ch, env.provider.address(), U256::from(ether("0.5"))).unwrap();
    let (_, forged) =
        env.stranger.sign_voucher(ch, env.provider.address(), U256::from(ether("0.5"))).unwrap();
    v.payer = env.poster.address();
    assert!(env.provider.verify_voucher(&v, &forged).await.is_err());
    let err = env.provider.redeem_voucher(v, forged).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("InvalidSignature"), "{err}");
}

#[tokio::test]
async fn register_agent_set_wallet_and_stake() {
    let env = setup().await;
    let owner = env.provider.clone();
    let (agent_id, _) = owner.register_agent("https://agents.example/sorter.json").await.unwrap();
    let wallet = env.stranger.clone();
    let deadline = U256::from(owner.chain_time().await.unwrap() + 120);
    let proof = wallet.sign_agent_wallet(agent_id, owner.address(), deadline).unwrap();
    owner.set_agent_wallet(agent_id, wallet.address(), deadline, proof).await.unwrap();
    assert_eq!(owner.agent_wallet(agent_id).await.unwrap(), wallet.address());

    // A proof signed by someone else is refused.
    let bad = env.evaluator.sign_agent_wallet(agent_id, owner.address(), deadline).unwrap();
    let err = owner.set_agent_wallet(agent_id, wallet.address(), deadline, bad).await.unwrap_err();
    assert!(err.revert_name().is_some(), "{err}");

    owner.stake(U256::from(ether("0.5"))).await.unwrap();
    assert_eq!(owner.stake_of(owner.address()).await.unwrap(), U256::from(ether("0.5")));
    owner.request_unbond(U256::from(ether("0.2"))).await.unwrap();
    assert_eq!(owner.stake_of(owner.address()).await.unwrap(), U256::from(ether("0.3")));
}
