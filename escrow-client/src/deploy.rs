//! Deploys Reef's contracts from the embedded creation bytecode and writes
//! `deployments/<chainId>.json`. Idempotent: an existing file whose addresses all hold code on
//! the chain is reused as is.

use std::path::Path;

use alloy::{
    primitives::{Address, Bytes, U256, utils::parse_ether},
    sol_types::SolConstructor,
};

use crate::{
    Deployment, ReefClient, Result, TxOutcome,
    bindings::{
        channel::PaymentChannel, escrow::BountyEscrow, panel::EvaluatorPanel,
        registry::AgentRegistry, reputation::ReputationRegistry, token::ReefTestToken,
        validation::ValidationRegistry,
    },
};

/// Parameters of a deployment.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// Platform fee in bps, taken on completion.
    pub fee_bps: u16,
    /// Fee recipient (default: the deployer).
    pub fee_recipient: Option<Address>,
    /// Native-ETH bond to open a dispute.
    pub dispute_bond: U256,
    /// Share of the provider's signed bond (stake units) slashed when it loses a dispute.
    pub slash_bps: u16,
    /// Seconds between unbond request and withdrawal.
    pub unbonding_delay: U256,
    /// Stake gate in stake-registry wei (never in a reward token): every award's bid must bond
    /// at least this much and every contest entrant hold it. Zero = no gate.
    pub min_bond: U256,
    /// Deploy the mintable test token and mint to these accounts.
    pub test_token_to: Option<Vec<Address>>,
    /// Amount minted to each account.
    pub test_token_amount: U256,
}

impl DeployConfig {
    /// Defaults for a local development chain.
    pub fn devnet(seed: Vec<Address>) -> Self {
        Self {
            fee_bps: 100,
            fee_recipient: None,
            dispute_bond: parse_ether("0.01").expect("constant"),
            slash_bps: 5_000,
            unbonding_delay: U256::from(3_600),
            min_bond: U256::ZERO,
            test_token_to: Some(seed),
            test_token_amount: parse_ether("1000000").expect("constant"),
        }
    }
}

fn code(bytecode: &Bytes, ctor_args: Vec<u8>) -> Bytes {
    let mut v = bytecode.to_vec();
    v.extend(ctor_args);
    v.into()
}

/// Deploys everything with `deployer` (whose deployment addresses are ignored) and returns
/// the new deployment and the transactions sent.
pub async fn deploy_all(
    deployer: &ReefClient,
    cfg: &DeployConfig,
) -> Result<(Deployment, Vec<TxOutcome>)> {
    let me = deployer.address();
    let start_block = deployer.block_number().await? + 1;
    let mut txs = Vec::new();

    let (registry, tx) = deployer
        .deploy(
            "deploy AgentRegistry",
            code(
                &AgentRegistry::BYTECODE,
                AgentRegistry::constructorCall {
                    initialOwner: me,
                    unbondingDelay_: cfg.unbonding_delay,
                }
                .abi_encode(),
            ),
        )
        .await?;
    txs.push(tx);
    let (escrow, tx) = deployer
        .deploy(
            "deploy BountyEscrow",
            code(
                &BountyEscrow::BYTECODE,
                BountyEscrow::constructorCall {
                    owner_: me,
                    feeRecipient_: cfg.fee_recipient.unwrap_or(me),
                    feeBps_: cfg.fee_bps,
                    stakeRegistry_: registry,
                    disputeBond_: cfg.dispute_bond,
                    slashBps_: cfg.slash_bps,
                }
                .abi_encode(),
            ),
        )
        .await?;
    txs.push(tx);
    txs.push(
        deployer
            .send_call(
                "setEscrow",
                registry,
                &AgentRegistry::setEscrowCall { escrow_: escrow },
                U256::ZERO,
            )
            .await?,
    );
    if !cfg.min_bond.is_zero() {
        txs.push(
            deployer
                .send_call(
                    "setStakeGate",
                    escrow,
                    &BountyEscrow::setStakeGateCall { minBond_: cfg.min_bond },
                    U256::ZERO,
                )
                .await?,
        );
    }
    let (reputation, tx) = deployer
        .deploy(
            "deploy ReputationRegistry",
            code(
                &ReputationRegistry::BYTECODE,
                ReputationRegistry::constructorCall {
                    identityRegistry_: registry,
                    ledger_: escrow,
                }
                .abi_encode(),
            ),
        )
        .await?;
    txs.push(tx);
    let (validation, tx) = deploy_validation(deployer, registry, escrow).await?;
    txs.push(tx);
    let (channel, tx) = deployer
        .deploy("deploy PaymentChannel", code(&PaymentChannel::BYTECODE, Vec::new()))
        .await?;
    txs.push(tx);

    let (panel, tx) = deployer
        .deploy(
            "deploy EvaluatorPanel",
            code(
                &EvaluatorPanel::BYTECODE,
                EvaluatorPanel::constructorCall { escrow_: escrow }.abi_encode(),
            ),
        )
        .await?;
    txs.push(tx);

    let mut test_token = None;
    if let Some(seed) = &cfg.test_token_to {
        let (token, tx) = deployer
            .deploy("deploy ReefTestToken", code(&ReefTestToken::BYTECODE, Vec::new()))
            .await?;
        txs.push(tx);
        for who in seed {
            let call = ReefTestToken::mintCall { to: *who, amount: cfg.test_token_amount };
            txs.push(deployer.send_call("mint", token, &call, U256::ZERO).await?);
        }
        test_token = Some(token);
    }
    let dep = Deployment {
        chain_id: deployer.deployment().chain_id,
        start_block,
        bounty_escrow: escrow,
        payment_channel: channel,
        agent_registry: registry,
        reputation_registry: reputation,
        validation_registry: Some(validation),
        evaluator_panel: Some(panel),
        test_token,
    };
    Ok((dep, txs))
}

async fn deploy_validation(
    deployer: &ReefClient,
    registry: Address,
    escrow: Address,
) -> Result<(Address, TxOutcome)> {
    deployer
        .deploy(
            "deploy ValidationRegistry",
            code(
                &ValidationRegistry::BYTECODE,
                ValidationRegistry::constructorCall {
                    identityRegistry_: registry,
                    ledger_: escrow,
                }
                .abi_encode(),
            ),
        )
        .await
}

/// Reuses `dir/<chainId>.json` if every address in it holds code; otherwise deploys and
/// writes it. Returns the deployment and whether it was freshly deployed.
pub async fn ensure_deployed(
    deployer: &ReefClient,
    dir: &Path,
    cfg: &DeployConfig,
) -> Result<(Deployment, bool)> {
    let chain_id = deployer.chain_id_on_rpc().await?;
    let path = Deployment::path_in(dir, chain_id);
    if path.exists()
        && let Ok(existing) = Deployment::load(&path)
    {
        // A file from before the evaluator panel existed is redeployed in full.
        let mut all = existing.evaluator_panel.is_some();
        for (_, addr) in existing.contracts() {
            all &= deployer.has_code(addr).await?;
        }
        if all && existing.chain_id == chain_id {
            if existing.validation_registry.is_some() {
                return Ok((existing, false));
            }
            // A file from before the ValidationRegistry existed gains one, bound to the same
            // escrow and identity registry; nothing else is redeployed.
            let (validation, _) =
                deploy_validation(deployer, existing.agent_registry, existing.bounty_escrow)
                    .await?;
            let dep = Deployment { validation_registry: Some(validation), ..existing };
            dep.save(&path)?;
            return Ok((dep, true));
        }
    }
    let (dep, _) = deploy_all(deployer, cfg).await?;
    dep.save(&path)?;
    Ok((dep, true))
}

/// A placeholder deployment for a chain (used to build the deployer client before anything
/// exists on it).
pub fn empty_deployment(chain_id: u64) -> Deployment {
    Deployment {
        chain_id,
        start_block: 0,
        bounty_escrow: Address::ZERO,
        payment_channel: Address::ZERO,
        agent_registry: Address::ZERO,
        reputation_registry: Address::ZERO,
        validation_registry: None,
        evaluator_panel: None,
        test_token: None,
    }
}
