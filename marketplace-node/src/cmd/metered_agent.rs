//! Agent side of metered calls: `serve-metered` (verify each voucher, commit it, run the
//! program, answer; auto-redeem past a threshold) and `redeem` (settle every accepted voucher
//! in one transaction). Exposed as `reef pay serve` / `reef pay redeem`; the same Args types
//! back `reef agent serve-metered` / `reef agent redeem`.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use alloy::primitives::{Address, U256, utils::format_units};
use clap::Args;
use escrow_client::ReefClient;
use reef_agent_sdk::{Client, Event, client::new_msg_id};
use reef_wire::{AgentCard, SendMessage, State};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::chain::{ChainArgs, parse_amount, parse_duration, parse_token};
use crate::metered::{
    Decision, MeteredCall, RedeemReport, Store, Verifier, VerifierConfig, default_state_dir,
    protocol::{KIND_CALL, KIND_RESULT, MeteredResult},
    redeem,
};

/// Arguments of `reef agent serve-metered` (also `reef pay serve`).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef agent serve-metered --node ws://127.0.0.1:7700/v1/ws --dev-account 1 --name sorter \\\n    --skills sort --price 0.001 --token test --redeem-threshold 0.5 --exec 'python3 examples/agents/metered_sort.py'\n  # also sell single calls to x402 clients over HTTP (POST http://127.0.0.1:8402/v1/x402/call):\n  reef agent serve-metered --dev-account 1 --skills sort --price 0.001 --token test \\\n    --exec 'python3 examples/agents/metered_sort.py' --x402-listen 127.0.0.1:8402\n\nThe program gets {\"call_id\",\"channel_id\",\"payer\",\"price\",\"input\"} on stdin and prints its result on stdout;\nexit code 0 = ok. A call is only served after its voucher was verified and committed to --state-dir.\nWith --json, one JSON line per event (ready, call, refused, redeem, x402_call, x402_refused) goes to stdout."
)]
pub struct ServeMeteredArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Node WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:7700/v1/ws", env = "REEF_NODE_URL")]
    node: String,
    /// Card: name.
    #[arg(long, default_value = "metered-agent")]
    name: String,
    /// Card: description.
    #[arg(long, default_value = "")]
    description: String,
    /// Card: skills (comma separated).
    #[arg(long, value_delimiter = ',')]
    skills: Vec<String>,
    /// Price per call in whole token units (e.g. 0.001).
    #[arg(long)]
    price: String,
    /// Token charged: eth, test, or an ERC-20 address.
    #[arg(long, default_value = "test")]
    token: String,
    /// Program run for each paid call (through `sh -c`).
    #[arg(long)]
    exec: String,
    /// Accept vouchers that add at least the price (default: exactly the price).
    #[arg(long)]
    at_least: bool,
    /// Redeem automatically once this much (whole token units) is accepted but unredeemed.
    #[arg(long)]
    redeem_threshold: Option<String>,
    /// Refuse channels whose challenge period is shorter than this.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    min_challenge_period: Duration,
    /// Stop serving a channel whose close was requested when less than this is left.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    close_margin: Duration,
    /// Calls served concurrently.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Where accepted vouchers are kept (default .reef/metered-<address>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Also sell single calls over HTTP, paid with x402 (`POST /v1/x402/call` on this address,
    /// e.g. 127.0.0.1:8402; port 0 picks a free one): the agent settles each EIP-3009 payment
    /// itself before running the call (docs/x402.md). The token must support EIP-3009.
    #[arg(long)]
    x402_listen: Option<std::net::SocketAddr>,
    /// Longest validity window (x402 `maxTimeoutSeconds`) accepted for an x402 payment.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    x402_max_timeout: Duration,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

/// Arguments of `reef agent redeem` (also `reef pay redeem`).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef agent redeem --dev-account 1 --json\n  reef agent redeem --key $KEY --state-dir .reef/metered-0xabc… --dry-run"
)]
pub struct RedeemMeteredArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Where accepted vouchers are kept (default .reef/metered-<address>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Only list what would be redeemed.
    #[arg(long)]
    dry_run: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Decimals of `token` (18 for ETH).
pub(crate) async fn token_decimals(chain: &ReefClient, token: Address) -> eyre::Result<u8> {
    if token.is_zero() {
        return Ok(18);
    }
    Ok(chain.view(token, escrow_client::bindings::token::ReefTestToken::decimalsCall {}).await?)
}

fn report_json(r: &RedeemReport) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

fn print_report(r: &RedeemReport, decimals: u8, json_out: bool) {
    if json_out {
        println!("{}", json!({ "event": "redeem", "report": report_json(r) }));
        return;
    }
    let Some(tx) = r.tx else {
        eprintln!("nothing to redeem");
        return;
    };
    eprintln!(
        "redeemed {} over {} voucher(s) covering {} call(s): tx {tx}, gas {}{}",
        format_units(r.total_paid, decimals).unwrap_or_default(),
        r.vouchers,
        r.payments,
        r.gas_used,
        r.gas_per_payment.map(|g| format!(" ({g:.0} gas per payment)")).unwrap_or_default()
    );
    for c in r.channels.iter().filter(|c| c.skipped.is_some()) {
        eprintln!("  channel {} skipped: {}", c.channel_id, c.skipped.as_deref().unwrap_or(""));
    }
}

impl RedeemMeteredArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        let chain = self.chain.connect().await?;
        let dir = self.state_dir.unwrap_or_else(|| default_state_dir("metered", chain.address()));
        if !dir.join("vouchers.db").exists() {
            eyre::bail!("no voucher database in {} (wrong --state-dir or key?)", dir.display());
        }
        let store = Store::open(&dir).await?;
        if self.dry_run {
            let rows: Vec<Value> = store
                .channels()
                .await?
                .iter()
                .filter(|r| r.cumulative > r.redeemed)
                .map(|r| {
                    json!({ "channel_id": r.channel_id, "payer": r.payer, "token": r.token,
                        "cumulative": r.cumulative, "redeemed": r.redeemed, "unredeemed": r.unredeemed(),
                        "calls": r.calls - r.calls_redeemed.min(r.calls) })
                })
                .collect();
            if self.json {
                println!("{}", serde_json::to_string_pretty(&json!({ "pending": rows }))?);
            } else {
                for r in &rows {
                    println!(
                        "channel {} payer {} unredeemed {} ({} calls)",
                        r["channel_id"], r["payer"], r["unredeemed"], r["calls"]
                    );
                }
                if rows.is_empty() {
                    println!("nothing to redeem");
                }
            }
            return Ok(());
        }
        let pb = super::chain::spinner("redeeming vouchers");
        let report = redeem(&chain, &store).await;
        pb.finish_and_clear();
        let report = report?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
        } else {
            let token = store.channels().await?.first().map(|r| r.token);
            let decimals = match token {
                Some(t) => token_decimals(&chain, t).await.unwrap_or(18),
                None => 18,
            };
            print_report(&report, decimals, false);
            if report.tx.is_some() {
                println!("{}", report.total_paid);
            }
        }
        Ok(())
    }
}

/// Runs the program for one call; (ok, result).
async fn execute(program: &str, call: &MeteredCall, price: U256) -> (bool, Value) {
    let input = json!({
        "call_id": call.call_id, "channel_id": call.channel_id, "payer": call.voucher.payer,
        "price": price, "input": call.input,
    });
    run_program(program, &input).await
}

/// Runs the program with `input` on stdin; (ok, result).
async fn run_program(program: &str, input: &Value) -> (bool, Value) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (false, json!(format!("cannot start program: {e}"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{input}\n").as_bytes()).await;
    }
    match child.wait_with_output().await {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (out.status.success(), serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        Err(e) => (false, json!(format!("program failed: {e}"))),
    }
}

async fn post(client: &Client, group_id: &str, body: Value) {
    let msg = SendMessage {
        group_id: group_id.to_owned(),
        msg_id: new_msg_id(),
        state: State::Discussion,
        task_desc: None,
        body: Some(body),
        extra: Default::default(),
    };
    // The SDK reconnects by itself; a lost answer is recovered by the payer's retry.
    for _ in 0..3 {
        match client.send_message(msg.clone()).await {
            Ok(_) => return,
            Err(e) => {
                eprintln!("cannot answer in {group_id}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

impl ServeMeteredArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        let chain = self.chain.connect().await?;
        let me = chain.address();
        let token = parse_token(&self.token, chain.deployment())?;
        let decimals = token_decimals(&chain, token).await?;
        let price = parse_amount(&self.price, decimals)?;
        let threshold =
            self.redeem_threshold.as_deref().map(|t| parse_amount(t, decimals)).transpose()?;
        let dir = self.state_dir.clone().unwrap_or_else(|| default_state_dir("metered", me));
        let store = Store::open(&dir).await?;
        let cfg = VerifierConfig {
            price,
            token,
            at_least: self.at_least,
            min_challenge_period: self.min_challenge_period,
            close_margin: self.close_margin,
            ..VerifierConfig::default()
        };
        let mut verifier = Verifier::new(chain.clone(), store.clone(), cfg);
        let x402 = match self.x402_listen {
            Some(addr) => Some(
                serve_x402(&chain, addr, token, price, self.x402_max_timeout, &self, self.json)
                    .await?,
            ),
            None => None,
        };
        let (client, mut events) =
            super::nodeapi::connect_ioa(&self.node, chain.signer().clone()).await?;
        client
            .register(AgentCard {
                name: self.name.clone(),
                description: if self.description.is_empty() {
                    format!(
                        "metered agent: {} per call, paid by payment-channel vouchers",
                        self.price
                    )
                } else {
                    self.description.clone()
                },
                skills: self.skills.clone(),
                price: self.price.parse().ok(),
                payment_tokens: vec![format!("{token:#x}")],
                verification_modes: if x402.is_some() {
                    vec!["metered".into(), "x402".into()]
                } else {
                    vec!["metered".into()]
                },
                ..Default::default()
            })
            .await?;
        for g in client.list_groups().await? {
            let since = store.cursor(&g.group_id).await?;
            client.join(&g.group_id, Some(since)).await?;
        }
        if self.json {
            println!(
                "{}",
                json!({ "event": "ready", "agent": me, "node_id": client.node_id(), "price": price,
                    "token": token, "state_dir": dir, "x402": x402 })
            );
        }
        eprintln!(
            "metered agent {me} on node {}: {} per call, vouchers in {}",
            client.node_id(),
            self.price,
            dir.display()
        );
        let slots = Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        let redeeming = Arc::new(AtomicBool::new(false));
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let json_out = self.json;
        let exec = Arc::new(self.exec.clone());
        loop {
            let ev = tokio::select! {
                ev = events.recv() => match ev { Some(ev) => ev, None => break },
                _ = tick.tick() => {
                    // Redeem promptly when a payer asked to close (the challenge period runs).
                    let closing = store.channels().await?.iter().any(|r| r.cumulative > r.redeemed && verifier.close_requested(r.channel_id));
                    let over = match threshold { Some(t) => store.unredeemed_total().await? >= t, None => false };
                    if closing || over {
                        spawn_redeem(&chain, &store, &redeeming, decimals, json_out);
                    }
                    continue;
                }
            };
            match ev {
                // Joined by the node at the invitation: its messages arrive without a join.
                Event::Invited { joined: true, .. } => {}
                Event::Invited { group_id, .. } => {
                    let since = store.cursor(&group_id).await?;
                    if let Err(e) = client.join(&group_id, Some(since)).await {
                        eprintln!("cannot join {group_id}: {e}");
                    }
                }
                Event::Message(m) => {
                    if m.sender_id == me {
                        continue;
                    }
                    let Some(body) = m.body.as_ref() else { continue };
                    if body.get("kind").and_then(Value::as_str) != Some(KIND_CALL) {
                        if body.get("call_id").is_some() && body.get("voucher").is_some() {
                            // Looks like a call with a wrong kind: say so instead of staying silent.
                            let r = crate::metered::Refusal::new(
                                crate::metered::ErrorCode::Malformed,
                                "kind must be \"metered_call\"",
                            );
                            let id = body["call_id"].as_str().map(str::to_owned);
                            post(&client, &m.group_id, json!(r.to_msg(id))).await;
                        }
                        store.set_cursor(&m.group_id, m.seq).await?;
                        continue;
                    }
                    let decision = verifier.check(m.sender_id, body).await;
                    match decision {
                        Err((call_id, refusal)) => {
                            if json_out {
                                println!(
                                    "{}",
                                    json!({ "event": "refused", "call_id": call_id, "code": refusal.code, "message": refusal.message, "payer": m.sender_id })
                                );
                            } else {
                                eprintln!(
                                    "refused call {:?} from {}: {}: {}",
                                    call_id, m.sender_id, refusal.code, refusal.message
                                );
                            }
                            post(&client, &m.group_id, json!(refusal.to_msg(call_id))).await;
                        }
                        Ok(Decision::Replay { call, cumulative, outcome: Some((ok, result)) }) => {
                            let r = MeteredResult {
                                kind: KIND_RESULT.into(),
                                call_id: call.call_id,
                                ok,
                                result,
                                cumulative,
                            };
                            post(&client, &m.group_id, json!(r)).await;
                        }
                        Ok(Decision::Serve(call))
                        | Ok(Decision::Replay { call, outcome: None, .. }) => {
                            let cumulative = call.voucher.cumulative_amount;
                            let permit = slots.clone().acquire_owned().await?;
                            let (client, st, exec, group) =
                                (client.clone(), store.clone(), exec.clone(), m.group_id.clone());
                            tokio::spawn(async move {
                                let (ok, result) = execute(&exec, &call, price).await;
                                if let Err(e) =
                                    st.finish(call.channel_id, &call.call_id, ok, &result).await
                                {
                                    eprintln!("cannot record the result of {}: {e}", call.call_id);
                                }
                                if json_out {
                                    println!(
                                        "{}",
                                        json!({ "event": "call", "call_id": call.call_id, "channel_id": call.channel_id, "payer": call.voucher.payer, "ok": ok, "cumulative": cumulative })
                                    );
                                }
                                let r = MeteredResult {
                                    kind: KIND_RESULT.into(),
                                    call_id: call.call_id,
                                    ok,
                                    result,
                                    cumulative,
                                };
                                post(&client, &group, json!(r)).await;
                                drop(permit);
                            });
                            if let Some(t) = threshold
                                && store.unredeemed_total().await? >= t
                            {
                                spawn_redeem(&chain, &store, &redeeming, decimals, json_out);
                            }
                        }
                    }
                    store.set_cursor(&m.group_id, m.seq).await?;
                }
                Event::Disconnected(reason) => eprintln!("disconnected ({reason}); reconnecting"),
                Event::Connected | Event::Removed { .. } => {}
            }
        }
        Ok(())
    }
}

/// Starts the x402-paid HTTP endpoint (the agent is its own facilitator); its URL.
async fn serve_x402(
    chain: &ReefClient,
    addr: std::net::SocketAddr,
    token: Address,
    price: U256,
    max_timeout: Duration,
    args: &ServeMeteredArgs,
    json_out: bool,
) -> eyre::Result<String> {
    use crate::x402::{Facilitator, PaidCall, PriceTerms, ResourceInfo, X402Service, server};
    let terms = PriceTerms::for_token(chain, token, price, chain.address(), max_timeout).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| eyre::eyre!("cannot listen for x402 calls on {addr}: {e}"))?;
    let url = format!("http://{}{}", listener.local_addr()?, server::CALL_PATH);
    let resource = ResourceInfo {
        url: url.clone(),
        description: Some(if args.description.is_empty() {
            format!("{}: one call ({})", args.name, args.skills.join(", "))
        } else {
            args.description.clone()
        }),
        mime_type: Some("application/json".into()),
    };
    let exec = Arc::new(args.exec.clone());
    let handler: crate::x402::CallHandler = Arc::new(move |call: PaidCall| {
        let exec = exec.clone();
        futures::FutureExt::boxed(async move {
            let input = json!({
                "call_id": call.call_id, "payment": "x402", "payer": call.payer, "price": price,
                "amount": call.amount, "transaction": call.transaction, "input": call.input,
            });
            run_program(&exec, &input).await
        })
    });
    let notify: crate::x402::server::Notify = Arc::new(move |ev: Value| {
        if json_out {
            println!("{ev}");
        } else {
            eprintln!("{ev}");
        }
    });
    let service = X402Service::new(terms, resource, Facilitator::new(chain.clone()), handler)
        .with_notify(notify);
    let app = service.router();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("the x402 endpoint stopped: {e}");
        }
    });
    eprintln!("x402: one call for {price} base units of {token} at POST {url}");
    Ok(url)
}

fn spawn_redeem(
    chain: &ReefClient,
    store: &Store,
    busy: &Arc<AtomicBool>,
    decimals: u8,
    json_out: bool,
) {
    if busy.swap(true, Ordering::SeqCst) {
        return;
    }
    let (chain, store, busy) = (chain.clone(), store.clone(), busy.clone());
    tokio::spawn(async move {
        match redeem(&chain, &store).await {
            Ok(r) => print_report(&r, decimals, json_out),
            Err(e) => eprintln!("auto-redeem failed (will retry): {e}"),
        }
        busy.store(false, Ordering::SeqCst);
    });
}
