//! ERC-8004 feedback on paid work against a real anvil: the poster rates the provider's agent
//! once per settled bounty; every refusal of the registry decodes to its named error.

mod common;

use common::*;
use escrow_client::{feedback::Rating, signing::verdict};

fn stars(value: i128) -> Rating {
    Rating { value, decimals: 0, tag1: "sort".into(), tag2: String::new() }
}

#[tokio::test]
async fn the_poster_rates_a_settled_bounty_once_and_refusals_are_typed() {
    let env = setup().await;
    let (id, b) = env.awarded(ether("10"), ether("8")).await;
    // No agent yet for the provider; then one it owns.
    assert!(env.poster.agent_ids_of(env.provider.address()).await.unwrap().is_empty());
    let (agent, _) = env.provider.register_agent("https://sorter.example/a.json").await.unwrap();
    assert_eq!(env.poster.agent_ids_of(env.provider.address()).await.unwrap(), vec![agent]);
    assert!(env.poster.agent_ids_of(env.stranger.address()).await.unwrap().is_empty());

    // Not settled yet.
    let err = env.poster.give_bounty_feedback(id, &b, agent, &stars(90)).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("BountyNotFinal"), "{err}");

    let rh = result_hash("1 2 3");
    let att = env.evaluator.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
    let (b, _) = env.provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, att).await.unwrap();
    assert!(!env.poster.bounty_credited(id).await.unwrap());

    // Only the poster; values within ERC-8004's range.
    let err = env.stranger.give_bounty_feedback(id, &b, agent, &stars(90)).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("NotPoster"), "{err}");
    let err = env
        .poster
        .give_bounty_feedback(id, &b, agent, &stars(10i128.pow(38) + 1))
        .await
        .unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("ValueOutOfRange"), "{err}");

    let (index, out) = env.poster.give_bounty_feedback(id, &b, agent, &stars(90)).await.unwrap();
    assert_eq!(index, 1);
    assert!(out.gas_used > 0);
    assert!(env.poster.bounty_credited(id).await.unwrap());
    let stored = env.stranger.read_feedback(agent, env.poster.address(), 1).await.unwrap();
    assert_eq!(stored, (90, 0, "sort".to_string(), String::new(), false));

    // One rating per bounty.
    let err = env.poster.give_bounty_feedback(id, &b, agent, &stars(10)).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("BountyAlreadyCredited"), "{err}");
}

/// A provider that is only the payment wallet of an agent (owned by another account) is found
/// by that agent, and the poster's credit for the wallet rates it.
#[tokio::test]
async fn an_agent_whose_payment_wallet_was_paid_is_rated() {
    let env = setup().await;
    let (id, b) = env.awarded(ether("10"), ether("8")).await;
    let (agent, _) = env.arbiter.register_agent("https://fleet.example/a.json").await.unwrap();
    let deadline = alloy::primitives::U256::from(env.poster.chain_time().await.unwrap() + 60);
    let proof = env.provider.sign_agent_wallet(agent, env.arbiter.address(), deadline).unwrap();
    env.arbiter.set_agent_wallet(agent, env.provider.address(), deadline, proof).await.unwrap();
    assert_eq!(env.poster.agent_ids_of(env.provider.address()).await.unwrap(), vec![agent]);
    // The owner no longer has the wallet role; it still owns the agent.
    assert_eq!(env.poster.agent_ids_of(env.arbiter.address()).await.unwrap(), vec![agent]);

    let rh = result_hash("1 2 3");
    let att = env.evaluator.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
    let (b, _) = env.provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, att).await.unwrap();
    let (index, _) = env.poster.give_bounty_feedback(id, &b, agent, &stars(70)).await.unwrap();
    assert_eq!(index, 1);
}
