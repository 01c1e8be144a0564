//! `reef indexer run|status`, `reef agents top` and `reef agent show` against a real anvil with
//! real bounty outcomes: a completed job raises the provider above the neutral prior.

mod common;

use std::process::Command;

use alloy::primitives::{U256, keccak256};
use alloy::providers::Provider;
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
    let (id, b) = award_job(&poster, &provider, &evaluator, 0).await;
    deliver_job(&provider, &evaluator, id, b).await;

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

/// `reef <args>` expected to fail with exit status 1: its stderr.
fn reef_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_reef"))
        .args(args)
        .env_remove("REEF_RPC_URL")
        .env_remove("REEF_INDEXER_DB")
        .env_remove("REEF_PRIVATE_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "reef {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn component<'a>(score: &'a Value, name: &str) -> &'a Value {
    score["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} component in {score}"))
}

/// Lean settlements (`submitAndAttest`) count as deliveries, on time or late against the bid's
/// ETA; `reef bounty rate` writes the poster's feedback (with its gate's errors read plainly)
/// and the re-indexed score follows the rating, weighted by the bounty's value.
#[tokio::test(flavor = "multi_thread")]
async fn deliveries_are_timed_by_the_eta_and_ratings_move_the_score() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("reef-rate-{}", rand::random::<u32>()));
    let opts = ClientOptions::default();
    let dep = common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let c = |i| ReefClient::connect(&anvil.rpc_url, dev_signer(i), dep.clone(), opts.clone());
    let (poster, provider, evaluator) =
        (c(0).await.unwrap(), c(1).await.unwrap(), c(2).await.unwrap());
    let (poster, provider, evaluator) = (&poster, &provider, &evaluator);
    let job = |eta: u32| award_job(poster, provider, evaluator, eta);
    let deliver = |id, b| deliver_job(provider, evaluator, id, b);
    // On time: delivered at once, due in 10 minutes.
    let (on_time, b) = job(600).await;
    deliver(on_time, b).await;
    // Late: due 60 s after the award, delivered 120 s later (still before the deadline).
    let (late, b) = job(60).await;
    let _: Value =
        poster.provider().raw_request("evm_increaseTime".into(), (120u64,)).await.unwrap();
    let _: Value = poster.provider().raw_request("evm_mine".into(), ()).await.unwrap();
    deliver(late, b).await;
    // Awarded, not delivered.
    let (pending, _) = job(600).await;

    let deployments = dir.join("deployments");
    let db = format!("sqlite:{}/index.db", dir.display());
    let rpc = anvil.rpc_url.as_str();
    let chain = ["--rpc-url", rpc, "--deployments", deployments.to_str().unwrap()];
    let indexed = |extra: &[&str]| {
        let mut args = vec!["indexer", "run", "--once", "--json", "--db", db.as_str()];
        args.extend(chain);
        reef(&args);
        let addr = provider.address().to_string();
        let mut args = vec!["agents", "show", addr.as_str(), "--json", "--db", db.as_str()];
        args.extend(chain);
        args.extend(extra);
        reef(&args)
    };
    let before = indexed(&[]);
    assert_eq!(before["counts"]["completed"], 2, "{before}");
    let timed = component(&before, "on_time");
    let why = timed["explanation"].as_str().unwrap();
    let (on, of) = why.split_once(" of ").unwrap_or_else(|| panic!("{why}"));
    let (on, of): (f64, f64) =
        (on.parse().unwrap(), of.split_whitespace().next().unwrap().parse().unwrap());
    // Two deliveries, the first (weight ln 11) on time, the second (pair factor 1/2) late.
    assert!((of - 1.5 * 11f64.ln()).abs() < 0.01 && (on - 11f64.ln()).abs() < 0.01, "{why}");
    assert_eq!(component(&before, "feedback")["explanation"], "no ratings yet: neutral");

    let on_id = format!("{on_time:#066x}");
    fn rate<'a>(id: &'a str, score: &'a str, dev: &'a str, chain: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["bounty", "rate", id, "--score", score, "--dev-account", dev];
        args.extend(chain);
        args
    }
    // The provider has no ERC-8004 agent yet: nothing to rate.
    assert!(
        reef_fails(&rate(&on_id, "100", "0", &chain)).contains("has no agent in the AgentRegistry")
    );
    let (agent_id, _) = provider.register_agent("https://sorter.example/agent.json").await.unwrap();
    assert!(reef_fails(&rate(&on_id, "100", "3", &chain)).contains("only the poster"));
    let pending_id = format!("{pending:#066x}");
    assert!(reef_fails(&rate(&pending_id, "100", "0", &chain)).contains("is awarded, not settled"));

    let mut args = rate(&on_id, "100", "0", &chain);
    args.extend(["--tag", "sort", "--json"]);
    let rated = reef(&args);
    assert_eq!(rated["agent_id"], agent_id.to_string(), "{rated}");
    assert_eq!(rated["feedback_index"], 1, "{rated}");
    assert!(reef_fails(&rate(&on_id, "50", "0", &chain)).contains("already rated"));
    let after = indexed(&[]);
    let fb = component(&after, "feedback");
    let w = 11f64.ln();
    assert!((fb["value"].as_f64().unwrap() - (0.5 + w) / (1.0 + w)).abs() < 1e-6, "{fb}");
    assert!(fb["explanation"].as_str().unwrap().starts_with("1 poster ratings averaging 1.00"));
    assert!(after["value"].as_f64().unwrap() > before["value"].as_f64().unwrap());

    // A zero for the late job (same value, the pair's second rating: weight halved).
    let late_id = format!("{late:#066x}");
    let mut args = rate(&late_id, "0", "0", &chain);
    args.push("--json");
    reef(&args);
    let last = indexed(&[]);
    let fb = component(&last, "feedback");
    let expected = (0.5 + w) / (1.0 + w + w / 2.0);
    assert!((fb["value"].as_f64().unwrap() - expected).abs() < 1e-6, "{fb} vs {expected}");
    assert_eq!(last["counts"]["feedback"], 2, "{last}");
    assert!(last["value"].as_f64().unwrap() < after["value"].as_f64().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

/// Posts a 10-token sort job and awards it to `provider` with delivery due `eta` seconds after
/// the award.
async fn award_job(
    poster: &ReefClient,
    provider: &ReefClient,
    evaluator: &ReefClient,
    eta: u32,
) -> (U256, escrow_client::bindings::escrow::IBountyTypes::Bounty) {
    let now = poster.chain_time().await.unwrap();
    let terms = poster
        .terms(&NewBounty {
            token: poster.deployment().test_token.unwrap(),
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
    let nonce = U256::from(rand::random::<u64>());
    let (bid, sig) = provider.sign_bid(id, &b, b.amount, now + 600, eta, nonce).unwrap();
    let (b, _) = poster.award(id, &b, bid, sig).await.unwrap();
    (id, b)
}

/// The provider delivers and is settled in one transaction (`submitAndAttest`).
async fn deliver_job(
    provider: &ReefClient,
    evaluator: &ReefClient,
    id: U256,
    b: escrow_client::bindings::escrow::IBountyTypes::Bounty,
) {
    let rh = keccak256(b"[1,2,3]");
    let att = evaluator.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
    provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, att).await.unwrap();
}
