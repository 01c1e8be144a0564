//! `reef ask` (a poster's swarm query, paid with a voucher) and `reef swarm serve` (an agent
//! bidding on swarm queries and answering them). Protocol: docs/swarm.md.

use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::utils::format_units;
use clap::{Args, Subcommand};
use eyre::{WrapErr, eyre};
use reef_wire::swarm::SwarmAsk;
use serde_json::{Value, json};

use super::{
    Exit,
    chain::{ChainArgs, parse_amount, parse_duration, parse_token, parse_window},
    metered_agent::token_decimals,
};
use crate::metered::default_state_dir;
use crate::swarm::{
    Error as SwarmError,
    agent::{AgentConfig, Brain},
    poster::{Poster, PosterConfig},
};

/// Arguments of `reef ask`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef ask \"What is 17 * 23?\" --skill math --max-price 0.001 --token eth --window 100ms \\\n    --node ws://127.0.0.1:7700/v1/ws --dev-account 0 --json\n\nThe node sends the question to the agents listening for --skill; the lowest bid within the window wins; its answer is released once the voucher (a cumulative payment-channel voucher to the winner) checks out. The first answer from an agent opens a channel to it (--deposit, one transaction); later ones reuse it.\n\nExit codes: 0 answered and paid; 3 no answer (no agents, no bids, winners silent: nothing paid);\n4 the node refused the voucher (nothing paid)."
)]
pub struct AskArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// The question.
    question: String,
    /// Skill the answering agent must listen for.
    #[arg(long)]
    skill: String,
    /// Highest price, whole token units.
    #[arg(long)]
    max_price: String,
    /// Token: eth, test, or an ERC-20 address.
    #[arg(long, default_value = "eth")]
    token: String,
    /// Bidding window, 50ms to 200ms.
    #[arg(long, default_value = "100ms", value_parser = parse_window)]
    window: Duration,
    /// Time each awarded bidder has to answer.
    #[arg(long, default_value = "2s", value_parser = parse_answer_time)]
    answer_time: Duration,
    /// Node WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:7700/v1/ws", env = "REEF_NODE_URL")]
    node: String,
    /// Deposit of a channel opened to a new winner (and per top-up), whole token units.
    #[arg(long, default_value = "0.1")]
    deposit: String,
    /// Challenge period of a newly opened channel.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    challenge_period: Duration,
    /// Payer state: channels and amounts signed (default .reef/pay-<address>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn parse_answer_time(s: &str) -> Result<Duration, String> {
    parse_window(s)
}

/// One swarm query as the MCP bridge asks it: the poster is `chain`'s account (its payer state
/// in `.reef/pay-<address>`), amounts in whole units of `token`; the answer with what was paid
/// (base units), or the reason nothing was.
pub async fn ask_swarm(
    chain: escrow_client::ReefClient,
    node_ws: &str,
    ask: AskSpec<'_>,
) -> eyre::Result<Value> {
    let token = parse_token(ask.token, chain.deployment())?;
    let decimals = token_decimals(&chain, token).await?;
    let max_price = parse_amount(ask.max_price, decimals).wrap_err("max_price")?;
    let deposit: u128 = parse_amount(ask.deposit, decimals)
        .wrap_err("deposit")?
        .try_into()
        .map_err(|_| eyre!("deposit is too large"))?;
    let state_dir = default_state_dir("pay", chain.address());
    let (ioa, _events) = reef_agent_sdk::Client::connect(node_ws, chain.signer().clone()).await?;
    let mut poster =
        Poster::new(chain, ioa, PosterConfig { deposit, challenge_period: 3_600, state_dir })?;
    let out = poster
        .ask(SwarmAsk {
            question: ask.question.to_string(),
            skill: ask.skill.to_string(),
            max_price,
            token,
            window_ms: ask.window_ms,
            answer_ms: reef_wire::swarm::DEFAULT_ANSWER_MS,
        })
        .await;
    match out {
        Ok(a) => {
            let mut v = serde_json::to_value(&a)?;
            v["status"] = json!("paid");
            v["decimals"] = json!(decimals);
            Ok(v)
        }
        Err(e) => Err(eyre!("{e}")),
    }
}

/// What [`ask_swarm`] asks.
#[derive(Debug, Clone, Copy)]
pub struct AskSpec<'a> {
    /// The question.
    pub question: &'a str,
    /// The skill.
    pub skill: &'a str,
    /// Highest price, whole units.
    pub max_price: &'a str,
    /// Token: eth, test or an address.
    pub token: &'a str,
    /// Bidding window, ms.
    pub window_ms: u64,
    /// Deposit of a new channel, whole units.
    pub deposit: &'a str,
}

impl AskArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        let chain = self.chain.connect().await?;
        let token = parse_token(&self.token, chain.deployment())?;
        let decimals = token_decimals(&chain, token).await?;
        let max_price = parse_amount(&self.max_price, decimals).wrap_err("--max-price")?;
        let deposit: u128 = parse_amount(&self.deposit, decimals)
            .wrap_err("--deposit")?
            .try_into()
            .map_err(|_| eyre!("--deposit is too large"))?;
        let challenge_period: u32 = self
            .challenge_period
            .as_secs()
            .try_into()
            .map_err(|_| eyre!("--challenge-period is too long"))?;
        let state_dir =
            self.state_dir.clone().unwrap_or_else(|| default_state_dir("pay", chain.address()));
        let (ioa, _events) =
            super::nodeapi::connect_ioa(&self.node, chain.signer().clone()).await?;
        let mut poster =
            Poster::new(chain, ioa, PosterConfig { deposit, challenge_period, state_dir })?;
        let ask = SwarmAsk {
            question: self.question.clone(),
            skill: self.skill.clone(),
            max_price,
            token,
            window_ms: self.window.as_millis() as u64,
            answer_ms: self.answer_time.as_millis() as u64,
        };
        let t0 = std::time::Instant::now();
        match poster.ask(ask).await {
            Ok(a) => {
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                if self.json {
                    let mut v = serde_json::to_value(&a)?;
                    v["status"] = json!("paid");
                    v["elapsed_ms"] = json!((ms * 10.0).round() / 10.0);
                    v["decimals"] = json!(decimals);
                    println!("{v}");
                } else {
                    match &a.answer {
                        Value::String(s) => println!("{s}"),
                        other => println!("{other}"),
                    }
                }
                eprintln!(
                    "answered by {} for {} ({} bids from {} agents; decided {} µs after the close; {:.1} ms in all{})",
                    a.winner,
                    format_units(a.price, decimals).unwrap_or_default(),
                    a.bids,
                    a.asked,
                    a.decision_us,
                    ms,
                    if a.chain_tx { "; opened or topped up the channel" } else { "" }
                );
                Ok(())
            }
            Err(e) => {
                let (code, status, exit) = match &e {
                    SwarmError::Failed { code, .. } => (code.as_str(), "failed", 3),
                    SwarmError::Refused { code, .. } => (code.as_str(), "refused", 4),
                    _ => return Err(e.into()),
                };
                if self.json {
                    println!(
                        "{}",
                        json!({ "status": status, "code": code, "message": e.to_string() })
                    );
                }
                Err(Exit { code: exit, message: e.to_string() }.into())
            }
        }
    }
}

/// Arguments of `reef swarm`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef swarm serve --dev-account 1 --skills math --price 0.0005 --token eth \\\n    --exec 'python3 examples/agents/swarm_math.py' --json\n  reef agent redeem --dev-account 1 --state-dir .reef/swarm-0x7099…   # redeem the vouchers in one batch"
)]
pub struct SwarmArgs {
    #[command(subcommand)]
    command: SwarmCommand,
}

#[derive(Debug, Subcommand)]
enum SwarmCommand {
    /// Agent side: bid on swarm queries of some skills and answer the ones won.
    Serve(Box<ServeArgs>),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef swarm serve --dev-account 1 --skills math --price 0.0005 --exec 'python3 examples/agents/swarm_math.py'\n\nThe program gets {\"query_id\",\"poster\",\"skill\",\"question\",\"price\"} on stdin per award and prints the answer (JSON, else text) on stdout; a failing program (exit ≠ 0) does not answer (the runner-up gets the award). Vouchers the node forwards are kept in --state-dir/vouchers.db; `reef agent redeem --state-dir DIR` redeems them.\n\nWith --json, one JSON line per event (ready, bid, won, paid, unpaid) goes to stdout."
)]
struct ServeArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Node WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:7700/v1/ws", env = "REEF_NODE_URL")]
    node: String,
    /// Skills to listen for (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    skills: Vec<String>,
    /// Price bid on every query, whole token units.
    #[arg(long)]
    price: String,
    /// Token accepted: eth, test, or an ERC-20 address.
    #[arg(long, default_value = "eth")]
    token: String,
    /// Program answering each award (through `sh -c`).
    #[arg(long, conflicts_with = "answer")]
    exec: Option<String>,
    /// A fixed answer (JSON, else a string) to every question.
    #[arg(long)]
    answer: Option<String>,
    /// Where vouchers are kept (default .reef/swarm-<address>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// One JSON line per event on stdout.
    #[arg(long)]
    json: bool,
}

impl SwarmArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        match self.command {
            SwarmCommand::Serve(a) => a.run().await,
        }
    }
}

impl ServeArgs {
    async fn run(self) -> eyre::Result<()> {
        let chain = self.chain.connect().await?;
        let token = parse_token(&self.token, chain.deployment())?;
        let decimals = token_decimals(&chain, token).await?;
        let price = parse_amount(&self.price, decimals).wrap_err("--price")?;
        if price.is_zero() {
            return Err(eyre!("--price must be > 0"));
        }
        let brain = match (&self.exec, &self.answer) {
            (Some(p), _) => Brain::Exec(p.clone()),
            (None, Some(a)) => {
                Brain::Fixed(serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
            }
            (None, None) => return Err(eyre!("give --exec PROGRAM or --answer VALUE")),
        };
        let state_dir =
            self.state_dir.clone().unwrap_or_else(|| default_state_dir("swarm", chain.address()));
        let store = crate::metered::Store::open(&state_dir).await?;
        let dep = chain.deployment().clone();
        let (ioa, _events) =
            super::nodeapi::connect_ioa(&self.node, chain.signer().clone()).await?;
        let cfg = AgentConfig {
            skills: self.skills.clone(),
            price,
            token,
            brain,
            chain_id: dep.chain_id,
            payment_channel: dep.payment_channel,
        };
        let json = self.json;
        crate::swarm::agent::serve(ioa, Some(store), cfg, move |ev| {
            if json {
                println!("{}", serde_json::to_string(&ev).unwrap_or_default());
            } else {
                eprintln!("{ev:?}");
            }
        })
        .await?;
        Err(eyre!("the node connection closed"))
    }
}
