//! `reef bounty post|show|list|refund`: the poster's on-chain verbs.

use alloy::primitives::{Address, B256, U256, utils::format_units};
use clap::{Args, Subcommand};
use escrow_client::{
    NewBounty, ReefClient, Status,
    escrow::{BountyJson, random_salt},
};
use eyre::eyre;

use super::chain::{ChainArgs, parse_amount, parse_bounty_id, parse_duration, parse_token, short_id, spinner};

/// Post, inspect and refund bounties on-chain.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  reef bounty post \"Sort these 10,000 numbers\" --reward 5 --token test --deadline 1h --approve
  reef bounty list --mine --json
  reef bounty show 0x3f2a…
  reef bounty refund 0x3f2a…")]
pub struct BountyArgs {
    #[command(subcommand)]
    cmd: BountyCmd,
    #[command(flatten)]
    chain: ChainArgs,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BountyCmd {
    /// Escrow a reward for a task (post + fund in one transaction).
    #[command(after_help = "Example:
  reef bounty post \"Sort these 10,000 numbers\" --reward 5 --token test --deadline 1h --approve
  reef bounty post \"Find a nonce\" --reward 0.1 --token eth --evaluator 0xabc… --arbiter 0xdef…")]
    Post(PostArgs),
    /// Show one bounty rebuilt from its on-chain events.
    #[command(after_help = "Example:\n  reef bounty show 0x3f2a… --json")]
    Show {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// List bounties on this deployment.
    #[command(after_help = "Example:\n  reef bounty list --mine")]
    List {
        /// Only bounties posted by this account.
        #[arg(long)]
        mine: bool,
        /// Only bounties posted by this address.
        #[arg(long, conflicts_with = "mine")]
        poster: Option<Address>,
    },
    /// Refund the poster of a bounty whose deadline passed (anyone may call).
    #[command(after_help = "Example:\n  reef bounty refund 0x3f2a…")]
    Refund {
        /// Bounty id (hex or decimal).
        id: String,
    },
}

#[derive(Debug, Args)]
struct PostArgs {
    /// Task description (its keccak256 is committed on-chain).
    description: String,
    /// Reward in whole token units (e.g. 5 or 0.25).
    #[arg(long)]
    reward: String,
    /// Reward token: `eth`, `test` (devnet rUSD) or an ERC-20 address.
    #[arg(long, default_value = "test")]
    token: String,
    /// Time until the submission deadline (e.g. 90s, 30m, 1h, 2d).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    deadline: std::time::Duration,
    /// Evaluator address (default: you, with optimistic auto-accept after the review window).
    #[arg(long)]
    evaluator: Option<Address>,
    /// Arbiter for disputes (default: none, no disputes).
    #[arg(long)]
    arbiter: Option<Address>,
    /// Window after submission for a verdict.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    review_window: std::time::Duration,
    /// Window after a rejection in which the provider may dispute.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    challenge_window: std::time::Duration,
    /// Approve the escrow for the reward if the allowance is short.
    #[arg(long)]
    approve: bool,
    /// Contest mode with up to this many winners (default: auction, one winner).
    #[arg(long)]
    contest: Option<u8>,
    /// Salt that, with your address, determines the bounty id (default: random).
    #[arg(long)]
    salt: Option<B256>,
}

impl BountyArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        let client = self.chain.connect().await?;
        match &self.cmd {
            BountyCmd::Post(p) => self.post(&client, p).await,
            BountyCmd::Show { id } => self.show(&client, parse_bounty_id(id)?).await,
            BountyCmd::List { mine, poster } => {
                let who = if *mine { Some(client.address()) } else { *poster };
                self.list(&client, who).await
            }
            BountyCmd::Refund { id } => self.refund(&client, parse_bounty_id(id)?).await,
        }
    }

    async fn decimals(client: &ReefClient, token: Address) -> eyre::Result<u8> {
        if token.is_zero() {
            return Ok(18);
        }
        Ok(client
            .view(token, escrow_client::bindings::token::ReefTestToken::decimalsCall {})
            .await
            .map_err(|e| eyre!("token {token} does not answer decimals(): {e}"))?)
    }

    async fn post(&self, client: &ReefClient, p: &PostArgs) -> eyre::Result<()> {
        let token = parse_token(&p.token, client.deployment())?;
        let decimals = Self::decimals(client, token).await?;
        let amount = parse_amount(&p.reward, decimals)?;
        let amount: u128 = amount.try_into().map_err(|_| eyre!("reward does not fit in 128 bits"))?;
        let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).map_err(|_| eyre!("window too long"));
        let now = client.chain_time().await?;
        let nb = NewBounty {
            token,
            amount,
            evaluator: p.evaluator,
            arbiter: p.arbiter.unwrap_or(Address::ZERO),
            deadline: now + p.deadline.as_secs(),
            review_window: secs(p.review_window)?,
            challenge_window: secs(p.challenge_window)?,
            description: p.description.clone(),
            contest_winners: p.contest,
        };
        let terms = client.terms(&nb).await?;
        let pb = spinner("posting and funding the bounty");
        let res = client.post_and_fund(p.salt.unwrap_or_else(random_salt), terms, p.approve).await;
        pb.finish_and_clear();
        let (id, record, txs) = res?;
        if self.json {
            let v = serde_json::json!({
                "id": format!("{id:#x}"),
                "poster": record.poster,
                "token": record.token,
                "amount": record.amount.to_string(),
                "deadline": record.deadline,
                "specHash": record.specHash,
                "transactions": txs,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for t in &txs {
                eprintln!("  {:<12} tx {}  gas {}", t.action, t.hash, t.gas_used);
            }
            println!("bounty {id:#x}");
            println!("  reward   {} ({})", format_units(U256::from(record.amount), decimals)?, token_name(token));
            println!("  deadline in {}s", p.deadline.as_secs());
        }
        Ok(())
    }

    async fn show(&self, client: &ReefClient, id: U256) -> eyre::Result<()> {
        let state = client.bounty(id).await?;
        let j = BountyJson::from(&state);
        if self.json {
            println!("{}", serde_json::to_string_pretty(&j)?);
            return Ok(());
        }
        let r = &state.record;
        println!("bounty   {id:#x}");
        println!("status   {}", state.status);
        println!("mode     {}", j.mode);
        println!("poster   {}", r.poster);
        println!("token    {}", token_name(r.token));
        println!("amount   {}", r.amount);
        if !r.provider.is_zero() {
            println!("provider {} at price {}", r.provider, r.price);
        }
        println!("evaluator {}", r.evaluator);
        if !r.arbiter.is_zero() {
            println!("arbiter  {}", r.arbiter);
        }
        println!("deadline {} (unix)", r.deadline);
        if r.resultHash != B256::ZERO {
            println!("result   {}", r.resultHash);
        }
        println!("history:");
        for h in &state.history {
            println!("  block {:>6}  {:<16} {}", h.block, h.event, h.tx.map(|t| t.to_string()).unwrap_or_default());
        }
        Ok(())
    }

    async fn list(&self, client: &ReefClient, poster: Option<Address>) -> eyre::Result<()> {
        let ids = client.bounty_ids(poster).await?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            rows.push(client.bounty(id).await?);
        }
        if self.json {
            let v: Vec<BountyJson> = rows.iter().map(BountyJson::from).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        if rows.is_empty() {
            println!("no bounties");
            return Ok(());
        }
        println!("{:<20} {:<10} {:>24} {:<8} {}", "id", "status", "amount", "token", "provider");
        for s in &rows {
            let prov = if s.record.provider.is_zero() { "-".to_string() } else { s.record.provider.to_string() };
            println!(
                "{:<20} {:<10} {:>24} {:<8} {}",
                short_id(s.id),
                s.status.to_string(),
                s.record.amount,
                token_name(s.record.token),
                prov
            );
        }
        Ok(())
    }

    async fn refund(&self, client: &ReefClient, id: U256) -> eyre::Result<()> {
        let state = client.bounty(id).await?;
        if state.status.is_terminal() {
            return Err(eyre!("bounty {id:#x} is already {} — nothing to refund", state.status));
        }
        if !matches!(state.status, Status::Open | Status::Funded | Status::Awarded) {
            return Err(eyre!(
                "bounty {id:#x} is {}: refunds after a submission go through the verdict, review window or dispute",
                state.status
            ));
        }
        let now = client.chain_time().await?;
        if now <= state.record.deadline {
            return Err(eyre!(
                "bounty {id:#x} is still running: its deadline passes in {}s (chain time)",
                state.record.deadline - now
            ));
        }
        let pb = spinner("refunding");
        let out = client.refund_expired(id, &state.record).await;
        pb.finish_and_clear();
        let out = out?;
        if self.json {
            println!("{}", serde_json::json!({"id": format!("{id:#x}"), "refunded": state.record.amount.to_string(), "tx": out}));
        } else {
            println!("refunded {} to {} (tx {}, gas {})", state.record.amount, state.record.poster, out.hash, out.gas_used);
        }
        Ok(())
    }
}

fn token_name(token: Address) -> String {
    if token.is_zero() { "ETH".into() } else { format!("{token}") }
}
