//! `reef pay`: pay metered agents per call with payment-channel vouchers (`call`), close a
//! channel and reclaim the remainder (`close`); plus the agent side (`serve`, `redeem`).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, U256, utils::format_units};
use clap::{Args, Subcommand};
use escrow_client::bindings::channel::PaymentChannel;
use eyre::{WrapErr, eyre};
use serde_json::{Value, json};

use super::{
    chain::{ChainArgs, parse_amount, parse_duration, parse_token},
    metered_agent::{RedeemMeteredArgs, ServeMeteredArgs, token_decimals},
};
use crate::metered::{Payer, PayerConfig, default_state_dir, payer::PayerState};

/// Arguments of `reef pay`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  reef pay call --node ws://127.0.0.1:7700/v1/ws --agent 0xAgent --price 0.001 --token test --deposit 1 --input '[3,1,2]' --count 20\n  reef pay close --agent 0xAgent --token test --wait\n  reef pay serve --dev-account 1 --price 0.001 --exec 'python3 examples/agents/metered_sort.py'\n  reef pay redeem --dev-account 1 --json"
)]
pub struct PayArgs {
    #[command(subcommand)]
    command: PayCommand,
}

#[derive(Debug, Subcommand)]
enum PayCommand {
    /// Call a metered agent N times, paying each call with the next cumulative voucher.
    Call(Box<CallArgs>),
    /// Close a channel: request the close, then withdraw the remainder after the challenge period.
    Close(CloseArgs),
    /// Agent side: serve metered calls (verify each voucher before serving).
    Serve(Box<ServeMeteredArgs>),
    /// Agent side: redeem every accepted voucher in one transaction.
    Redeem(RedeemMeteredArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef pay call --node ws://127.0.0.1:7700/v1/ws --dev-account 0 --agent 0x7099…79C8 \\\n    --price 0.001 --token test --deposit 1 --input '[5,3,9,1]' --count 20 --json\n\nThe channel (and the cumulative amount signed) is remembered in --state-dir and reused by later calls;\nthe deposit is topped up by --deposit when it runs out."
)]
struct CallArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Node WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:7700/v1/ws", env = "REEF_NODE_URL")]
    node: String,
    /// The metered agent's address.
    #[arg(long)]
    agent: Address,
    /// Price per call in whole token units (must match the agent's).
    #[arg(long)]
    price: String,
    /// Token: eth, test, or an ERC-20 address.
    #[arg(long, default_value = "test")]
    token: String,
    /// Deposit when opening the channel (and per top-up), whole token units.
    #[arg(long, default_value = "1")]
    deposit: String,
    /// Input of each call: JSON, or taken as a string.
    #[arg(long, default_value = "null")]
    input: String,
    /// Number of calls.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Challenge period of a newly opened channel.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    challenge_period: Duration,
    /// Wait this long for an answer before re-sending the same call.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Payer state (default .reef/pay-<address>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  reef pay close --agent 0x7099…79C8 --token test          # request; run again after the challenge period\n  reef pay close --channel 3 --wait --json                 # request, wait, withdraw"
)]
struct CloseArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Channel id (default: the one remembered for --agent/--token).
    #[arg(long)]
    channel: Option<String>,
    /// The agent (to find the remembered channel).
    #[arg(long)]
    agent: Option<Address>,
    /// Token of the remembered channel.
    #[arg(long, default_value = "test")]
    token: String,
    /// Wait for the challenge period to end and withdraw.
    #[arg(long)]
    wait: bool,
    /// Payer state (default .reef/pay-<address>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

impl PayArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        match self.command {
            PayCommand::Call(a) => a.run().await,
            PayCommand::Close(a) => a.run().await,
            PayCommand::Serve(a) => a.run().await,
            PayCommand::Redeem(a) => a.run().await,
        }
    }
}

/// One paid call to a metered agent, as the MCP bridge makes it: opens (or reuses, from the
/// payer state of `chain`'s account) a channel to `agent` in `token` with `deposit` whole
/// units, sends `input`, and returns the answer with what was paid (base units).
pub async fn metered_call(
    chain: escrow_client::ReefClient,
    node_ws: &str,
    agent: Address,
    price: &str,
    token: &str,
    deposit: &str,
    input: Value,
) -> eyre::Result<Value> {
    let token = parse_token(token, chain.deployment())?;
    let decimals = token_decimals(&chain, token).await?;
    let cfg = PayerConfig {
        node: node_ws.to_string(),
        agent,
        price: parse_amount(price, decimals).wrap_err("price")?,
        token,
        deposit: parse_amount(deposit, decimals)
            .wrap_err("deposit")?
            .try_into()
            .map_err(|_| eyre!("deposit is too large"))?,
        challenge_period: 3_600,
        state_dir: default_state_dir("pay", chain.address()),
        timeout: Duration::from_secs(30),
        retries: 3,
    };
    let mut payer = Payer::open(chain, cfg).await?;
    let before = payer.channel().cumulative;
    let out = payer.call(input).await?;
    let ch = payer.channel();
    Ok(json!({
        "ok": out.ok, "result": out.result, "call_id": out.call_id,
        "channel_id": ch.channel_id, "paid": (out.cumulative - before).to_string(),
        "cumulative": out.cumulative.to_string(), "deposit": ch.deposit.to_string(),
        "decimals": decimals,
    }))
}

impl CallArgs {
    async fn run(self) -> eyre::Result<()> {
        let chain = self.chain.connect().await?;
        let token = parse_token(&self.token, chain.deployment())?;
        let decimals = token_decimals(&chain, token).await?;
        let price = parse_amount(&self.price, decimals)?;
        let deposit: u128 = parse_amount(&self.deposit, decimals)?
            .try_into()
            .map_err(|_| eyre!("--deposit is too large"))?;
        let challenge_period: u32 = self
            .challenge_period
            .as_secs()
            .try_into()
            .map_err(|_| eyre!("--challenge-period is too long"))?;
        let input: Value =
            serde_json::from_str(&self.input).unwrap_or_else(|_| Value::String(self.input.clone()));
        let state_dir =
            self.state_dir.clone().unwrap_or_else(|| default_state_dir("pay", chain.address()));
        let cfg = PayerConfig {
            node: self.node.clone(),
            agent: self.agent,
            price,
            token,
            deposit,
            challenge_period,
            state_dir,
            timeout: self.timeout,
            retries: 3,
        };
        let pb = super::chain::spinner("opening the channel");
        let payer = Payer::open(chain, cfg).await;
        pb.finish_and_clear();
        let mut payer = payer?;
        let start_cum = payer.channel().cumulative;
        eprintln!(
            "{} channel {} to {} (deposit {}, signed so far {})",
            if payer.opened_new_channel() { "opened" } else { "reusing" },
            payer.channel().channel_id,
            self.agent,
            format_units(payer.channel().deposit, decimals).unwrap_or_default(),
            format_units(start_cum, decimals).unwrap_or_default(),
        );
        let t0 = Instant::now();
        let mut results = Vec::new();
        let mut failure = None;
        for i in 0..self.count {
            match payer.call(input.clone()).await {
                Ok(out) => {
                    if !self.json {
                        println!("{}", out.result);
                    }
                    eprintln!(
                        "call {}/{}: {} (paid {} so far)",
                        i + 1,
                        self.count,
                        if out.ok { "ok" } else { "program failed" },
                        format_units(out.cumulative - start_cum, decimals).unwrap_or_default()
                    );
                    results.push(json!({ "call_id": out.call_id, "ok": out.ok, "result": out.result, "cumulative": out.cumulative }));
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let ch = payer.channel();
        let paid = ch.cumulative - start_cum;
        let summary = json!({
            "channel_id": ch.channel_id, "agent": self.agent, "token": token, "group_id": ch.group_id,
            "opened": payer.opened_new_channel(), "calls": results.len(), "price": price,
            "paid": paid, "cumulative": ch.cumulative, "deposit": ch.deposit,
            "elapsed_ms": (secs * 1000.0) as u64,
            "calls_per_sec": if secs > 0.0 { results.len() as f64 / secs } else { 0.0 },
            "error": failure, "results": results,
        });
        if self.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            eprintln!(
                "{} call(s), paid {} (cumulative {} of deposit {}), {:.1} calls/s",
                summary["calls"],
                format_units(paid, decimals).unwrap_or_default(),
                format_units(ch.cumulative, decimals).unwrap_or_default(),
                format_units(ch.deposit, decimals).unwrap_or_default(),
                summary["calls_per_sec"].as_f64().unwrap_or_default()
            );
        }
        match failure {
            Some(e) => Err(eyre!("call failed: {e}")),
            None => Ok(()),
        }
    }
}

impl CloseArgs {
    async fn run(self) -> eyre::Result<()> {
        let chain = self.chain.connect().await?;
        let id = match (&self.channel, self.agent) {
            (Some(c), _) => super::chain::parse_bounty_id(c).wrap_err("--channel")?,
            (None, Some(agent)) => {
                let token = parse_token(&self.token, chain.deployment())?;
                let dir = self
                    .state_dir
                    .clone()
                    .unwrap_or_else(|| default_state_dir("pay", chain.address()));
                let state = PayerState::load(&dir)?;
                state
                    .channels
                    .get(&PayerState::key(agent, token))
                    .map(|c| c.channel_id)
                    .ok_or_else(|| eyre!("no remembered channel to {agent} in {}", dir.display()))?
            }
            (None, None) => eyre::bail!("pass --channel or --agent"),
        };
        let mut ch = chain.channel(id).await?;
        if ch.payer.is_zero() {
            eyre::bail!("no channel {id}");
        }
        if ch.payer != chain.address() {
            eyre::bail!("channel {id} belongs to {}, not {}", ch.payer, chain.address());
        }
        let mut out = json!({ "channel_id": id });
        if ch.closed {
            out["state"] = json!("closed");
            return finish(out, self.json);
        }
        if ch.closeRequestedAt == 0 {
            let tx = chain.request_close(id).await?;
            out["request_tx"] = json!(tx.hash);
            ch = chain.channel(id).await?;
            eprintln!("close requested on channel {id} (tx {})", tx.hash);
        }
        let closable = ch.closeRequestedAt.to::<u64>() + u64::from(ch.challengePeriod);
        out["closable_at"] = json!(closable);
        loop {
            let now = chain.chain_time().await?;
            if now >= closable {
                break;
            }
            if !self.wait {
                out["state"] = json!("close_requested");
                eprintln!(
                    "the payee may redeem for {}s more; run this again afterwards (or pass --wait)",
                    closable - now
                );
                return finish(out, self.json);
            }
            eprintln!("waiting {}s for the challenge period", closable - now);
            tokio::time::sleep(Duration::from_secs((closable - now).clamp(1, 30))).await;
        }
        let tx = chain.withdraw_remainder(id).await?;
        let ev: Option<PaymentChannel::ChannelClosed_1> =
            tx.event(chain.deployment().payment_channel);
        out["state"] = json!("closed");
        out["withdraw_tx"] = json!(tx.hash);
        out["refunded"] = json!(ev.as_ref().map(|e| e.refundedToPayer).unwrap_or(U256::ZERO));
        out["paid_to_payee"] = json!(ev.as_ref().map(|e| e.paidToPayee).unwrap_or(U256::ZERO));
        finish(out, self.json)
    }
}

fn finish(out: Value, json_out: bool) -> eyre::Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("channel {}: {}", out["channel_id"], out["state"]);
        if let Some(r) = out.get("refunded") {
            println!("refunded {r}, paid to payee {}", out["paid_to_payee"]);
        }
    }
    Ok(())
}
