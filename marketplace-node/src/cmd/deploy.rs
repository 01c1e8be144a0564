//! `reef deploy`: Reef's contracts on any EVM chain, from a keystore, idempotently. Writes
//! `deployments/<chainId>.json` once every contract holds code; a second run with the file in
//! place checks the code at each address and deploys nothing.

use alloy::primitives::{Address, U256, utils::parse_ether};
use clap::Args;
use escrow_client::{
    ClientOptions, Deployment, ReefClient,
    deploy::{DeployConfig, empty_deployment, ensure_deployed},
};
use eyre::eyre;
use serde_json::json;

use super::chain::{ChainArgs, parse_duration, spinner};

/// Deploy Reef's contracts (escrow, registries, payment channel, evaluator panel).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  reef deploy --rpc-url https://sepolia.base.org --account deployer --fee-bps 100 --json
  reef deploy --rpc-url http://127.0.0.1:8545 --dev-account 0 --test-token   # a local anvil

Idempotent: with deployments/<chainId>.json present and code at every address, nothing is sent.
Exit status: 0 deployed or already deployed, 1 anything failed (nothing is written then).")]
pub struct DeployArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Platform fee in basis points, taken from each completed bounty.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(0..=1_000))]
    fee_bps: u16,
    /// Who receives the fees (default: the deployer).
    #[arg(long)]
    fee_recipient: Option<Address>,
    /// Native-coin bond to open a dispute, in ether units (e.g. 0.01).
    #[arg(long, default_value = "0.01")]
    dispute_bond: String,
    /// Share of a losing provider's signed bond that is slashed, in basis points.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u16).range(0..=10_000))]
    slash_bps: u16,
    /// Delay between an unbond request and the withdrawal (e.g. 1h, 7d).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    unbonding_delay: std::time::Duration,
    /// Stake gate: every award's bid must bond at least this much stake (ether units; 0 = none).
    #[arg(long, default_value = "0")]
    min_bond: String,
    /// Also deploy the mintable test token (rUSD) and mint 1,000,000 to the deployer (testnets).
    #[arg(long)]
    test_token: bool,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

impl DeployArgs {
    /// Runs the deployment.
    pub async fn run(self) -> eyre::Result<()> {
        let chain_id = ReefClient::chain_id_at(&self.chain.rpc_url).await?;
        let signer = self.chain.signer(chain_id)?;
        let me = signer.address();
        let deployer = ReefClient::connect(
            &self.chain.rpc_url,
            signer,
            empty_deployment(chain_id),
            ClientOptions { confirmations: self.chain.confirmations, ..ClientOptions::default() },
        )
        .await?;
        let ether = |flag: &str, v: &str| {
            parse_ether(v).map_err(|_| eyre!("--{flag} {v:?} is not an amount in ether units"))
        };
        let cfg = DeployConfig {
            fee_bps: self.fee_bps,
            fee_recipient: self.fee_recipient,
            dispute_bond: ether("dispute-bond", &self.dispute_bond)?,
            slash_bps: self.slash_bps,
            unbonding_delay: U256::from(self.unbonding_delay.as_secs()),
            min_bond: ether("min-bond", &self.min_bond)?,
            test_token_to: self.test_token.then(|| vec![me]),
            test_token_amount: parse_ether("1000000")?,
        };
        let balance = deployer.eth_balance(me).await?;
        if balance.is_zero() {
            return Err(eyre!(
                "the deployer {me} holds no native coin on chain {chain_id}: fund it for gas first"
            ));
        }
        std::fs::create_dir_all(&self.chain.deployments)
            .map_err(|e| eyre!("cannot create {}: {e}", self.chain.deployments.display()))?;
        let pb = spinner(format!("deploying to chain {chain_id} from {me}"));
        let (dep, fresh) = ensure_deployed(&deployer, &self.chain.deployments, &cfg).await?;
        // Every address of the file holds code now (ensure_deployed checked a reused file; check
        // a fresh one too before anyone relies on it).
        for (name, addr) in dep.contracts() {
            if !deployer.has_code(addr).await? {
                return Err(eyre!("{name} at {addr} has no code after the deployment"));
            }
        }
        pb.finish_and_clear();
        let path = Deployment::path_in(&self.chain.deployments, chain_id);
        if self.json {
            println!(
                "{}",
                json!({ "chain_id": chain_id, "fresh": fresh, "file": path, "deployment": dep })
            );
        } else {
            println!(
                "{} on chain {chain_id}: {}",
                if fresh { "deployed" } else { "already deployed" },
                path.display()
            );
            for (name, addr) in dep.contracts() {
                println!("  {name:<20} {addr}");
            }
        }
        Ok(())
    }
}
