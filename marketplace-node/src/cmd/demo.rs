//! `reef demo`: one bounty's full on-chain lifecycle on a throwaway anvil, step by step.

use alloy::primitives::{U256, keccak256, utils::format_ether};
use clap::Args;
use escrow_client::{
    ClientOptions, NewBounty, ReefClient, TxOutcome,
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    escrow::{bounty_id, random_salt},
    signing::verdict,
};
use serde::Serialize;

use super::chain::spinner;

/// Run the marketplace end to end on a private anvil: node, example agents, a poster running
/// several bounties (auction, nested, metered, one dishonest agent) and a final table.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  reef demo                # the marketplace (anvil + node + 7 agents + poster)\n  reef demo --serve        # the same, then keep it running to explore the dashboard (Ctrl-C stops)\n  reef demo --settlement   # only one bounty's on-chain lifecycle, every tx with its gas\n  reef demo --json"
)]
pub struct DemoArgs {
    /// Print a machine-readable JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// Only the settlement layer: one bounty's on-chain lifecycle with every tx and its gas.
    #[arg(long)]
    settlement: bool,
    /// After the run, keep the demo market (anvil, node, agents) running until Ctrl-C, to
    /// click around its dashboard (the URL is printed).
    #[arg(long, conflicts_with = "settlement")]
    serve: bool,
}

#[derive(Debug, Serialize)]
struct Step {
    step: String,
    tx: String,
    gas: u64,
}

impl DemoArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        if !self.settlement {
            return super::demo_market::run(self.json, self.serve).await;
        }
        let mut steps: Vec<Step> = Vec::new();
        let say = |s: &str| eprintln!("\n▶ {s}");
        let record = |steps: &mut Vec<Step>, label: &str, t: &TxOutcome| {
            eprintln!("  {label:<38} tx {}  gas {:>7}", t.hash, t.gas_used);
            steps.push(Step { step: label.to_string(), tx: t.hash.to_string(), gas: t.gas_used });
        };

        say("starting a private anvil chain");
        let pb = spinner("anvil");
        let anvil = AnvilProcess::spawn(AnvilOptions::default()).await?;
        pb.finish_and_clear();
        eprintln!("  anvil listening on {} (chain {})", anvil.rpc_url, anvil.chain_id);

        say("deploying Reef's contracts");
        let opts = ClientOptions::default();
        let deployer = ReefClient::connect(
            &anvil.rpc_url,
            dev_signer(0),
            empty_deployment(anvil.chain_id),
            opts.clone(),
        )
        .await?;
        let seed = (0..6).map(|i| dev_signer(i).address()).collect();
        let pb = spinner("deploying");
        let (dep, txs) = deploy_all(&deployer, &DeployConfig::devnet(seed)).await?;
        pb.finish_and_clear();
        for t in txs.iter().filter(|t| t.action.starts_with("deploy")) {
            record(&mut steps, &t.action, t);
        }
        let connect = |i: usize| {
            ReefClient::connect(&anvil.rpc_url, dev_signer(i), dep.clone(), opts.clone())
        };
        let poster = connect(0).await?;
        let provider = connect(1).await?;
        let evaluator = connect(2).await?;
        let token =
            dep.test_token.ok_or_else(|| eyre::eyre!("devnet deployment has no test token"))?;
        eprintln!(
            "  poster    {}\n  provider  {}\n  evaluator {}",
            poster.address(),
            provider.address(),
            evaluator.address()
        );

        say("poster posts and funds a 100 rUSD bounty (approve + postAndFund)");
        let now = poster.chain_time().await?;
        let description = "Sort these 10,000 integers, ascending.";
        let terms = poster
            .terms(&NewBounty {
                token,
                amount: 100 * 10u128.pow(18),
                evaluator: Some(evaluator.address()),
                arbiter: dev_signer(3).address(),
                deadline: now + 3_600,
                review_window: 600,
                challenge_window: 600,
                description: description.into(),
                contest_winners: None,
            })
            .await?;
        let salt = random_salt();
        let (id, b, txs) = poster.post_and_fund(salt, terms, true).await?;
        for t in &txs {
            record(&mut steps, &t.action, t);
        }
        eprintln!("  bounty id {id:#066x}");
        debug_assert_eq!(id, bounty_id(poster.address(), salt));

        say("provider signs an EIP-712 bid of 90 rUSD; poster awards it on-chain");
        let (bid, sig) =
            provider.sign_bid(id, &b, 90 * 10u128.pow(18), now + 600, 0, U256::from(1))?;
        let (b, t) = poster.award(id, &b, bid, sig).await?;
        record(&mut steps, "award (signed bid verified on-chain)", &t);

        say("provider does the work; evaluator signs an EIP-712 attestation");
        let mut numbers: Vec<u32> =
            (0..10_000u32).map(|i| i.wrapping_mul(2_654_435_761) % 100_000).collect();
        numbers.sort_unstable();
        let result = serde_json::to_vec(&numbers)?;
        let result_hash = keccak256(&result);
        let att = evaluator.sign_attestation(id, b.provider, result_hash, verdict::ACCEPT)?;
        eprintln!("  result hash {result_hash}");

        say("provider submits result + attestation and is paid in the same transaction");
        let before = provider.token_balance(token, provider.address()).await?;
        let poster_before = poster.token_balance(token, poster.address()).await?;
        let (_, t) = provider.submit_and_attest(id, &b, result_hash, verdict::ACCEPT, att).await?;
        record(&mut steps, "submit + attest + release", &t);
        let after = provider.token_balance(token, provider.address()).await?;
        let poster_refund = poster.token_balance(token, poster.address()).await? - poster_before;

        let state = poster.bounty(id).await?;
        let lifecycle_gas: u64 =
            steps.iter().filter(|s| !s.step.starts_with("deploy")).map(|s| s.gas).sum();
        if self.json {
            let v = serde_json::json!({
                "bountyId": format!("{id:#066x}"),
                "status": state.status,
                "providerReceived": (after - before).to_string(),
                "posterRefunded": poster_refund.to_string(),
                "lifecycleGas": lifecycle_gas,
                "steps": steps,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("\nbounty {id:#066x}: {}", state.status);
            println!(
                "provider received {} rUSD (bid price minus the platform fee); poster refunded {} rUSD (budget minus price)",
                format_ether(after - before),
                format_ether(poster_refund)
            );
            println!(
                "lifecycle gas (approve + post/fund + award + submit/attest/release): {lifecycle_gas}"
            );
        }
        say("stopping anvil");
        drop(anvil);
        Ok(())
    }
}
