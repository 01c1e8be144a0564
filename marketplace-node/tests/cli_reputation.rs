//! `reef indexer run|status`, `reef agents top` and `reef agent show` against a real anvil with
//! real bounty outcomes: a completed job raises the provider above the neutral prior.

mod common;

use std::process::Command;

use alloy::primitives::{U256, keccak256};
use escrow_client::{
    ClientOptions, NewBounty, ReefClient,
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    escrow::random_salt,
    signing::verdict,
};
use serde_json::Value;

fn reef(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_reef"))
        .args(args)
        .env_remove("REEF_RPC_URL")
        .env_remove("REEF_INDEXER_DB")
        .output()
        .unwrap();
    assert!(out.status.success(), "reef {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e})"))
}

#[tokio::test(flavor = "multi_thread")]
async fn indexer_and_reputation_commands_reflect_a_completed_job() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("reef-rep-{}", rand::random::<u32>()));
    let opts = ClientOptions::default();
    let dep = common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let c = |i| ReefClient::connect(&anvil.rpc_url, dev_signer(i), dep.clone(), opts.clone());
    let (poster, provider, evaluator) =
        (c(0).await.unwrap(), c(1).await.unwrap(), c(2).await.unwrap());
    // One completed job for the provider.
    let now = poster.chain_time().await.unwrap();
    let terms = poster
        .terms(&NewBounty {
            token: dep.test_token.unwrap(),
            amount: 10u128.pow(19),
            evaluator: Some(evaluator.address()),
            arbiter: alloy::primitives::Address::ZERO,
            deadline: now + 3_600,
            review_window: 600,
            challenge_window: 0,
            description: "Sort".into(),
            contest_winners: None,
        })
        .await
        .unwrap();
    let (id, b, _) = poster.post_and_fund(random_salt(), terms, true).await.unwrap();
    let (bid, sig) = provider.sign_bid(id, &b, b.amount, now + 600, 0, U256::from(1)).unwrap();
    let (b, _) = poster.award(id, &b, bid, sig).await.unwrap();
    let rh = keccak256(b"[1,2,3]");
    let att = evaluator.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
    provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, att).await.unwrap();

    let deployments = dir.join("deployments");
    let db = format!("sqlite:{}/index.db", dir.display());
    let common = [
        "--rpc-url",
        anvil.rpc_url.as_str(),
        "--deployments",
        deployments.to_str().unwrap(),
        "--db",
        db.as_str(),
    ];
    let mut args = vec!["indexer", "run", "--once", "--json"];
    args.extend(common);
    let report = reef(&args);
    assert!(report.to_string().contains("events") || report.is_object(), "{report}");
    let mut args = vec!["indexer", "status", "--json"];
    args.extend(common);
    let status = reef(&args);
    assert!(status.is_object(), "{status}");

    let mut args = vec!["agents", "top", "--json"];
    args.extend(common);
    let top = reef(&args);
    let first = &top[0];
    assert_eq!(
        first["agent"].as_str().unwrap().to_lowercase(),
        provider.address().to_string().to_lowercase(),
        "{top}"
    );
    let addr = provider.address().to_string();
    let mut args = vec!["agent", "show", addr.as_str(), "--json"];
    args.extend(common);
    let shown = reef(&args);
    // One paid job lifts the score above the newcomer prior, with explained components.
    let newcomer = {
        let stranger = dev_signer(4).address().to_string();
        let mut args = vec!["agent", "show", stranger.as_str(), "--json"];
        args.extend(common);
        reef(&args)
    };
    assert!(
        shown["value"].as_f64().unwrap() > newcomer["value"].as_f64().unwrap(),
        "{shown} vs {newcomer}"
    );
    assert!(!shown["components"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
