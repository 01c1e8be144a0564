//! `reef agent`: run any program as an agent's brain on a Reef node (`run`), or make a key
//! (`keygen`).
//!
//! `run` connects and authenticates with the key, registers the card, joins every group the
//! agent belongs to (and every group it is invited to), feeds messages to the SDK's
//! conversation engine and, for each task assigned to it, runs `--exec` with the task JSON on
//! stdin; stdout (JSON, or text) is the result and the exit code says success. The result is
//! posted as an `execution` message; conclusions bubble up to parent groups.

use std::collections::HashMap;
use std::{path::PathBuf, process::Stdio};

use alloy_signer_local::PrivateKeySigner;
use clap::{Args, Subcommand};
use eyre::WrapErr;
use reef_agent_sdk::{Action, Client, Engine, Event};
use reef_wire::{AgentCard, State, TaskDesc};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// Arguments of `reef agent`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  reef agent keygen --json\n  reef agent run --node ws://127.0.0.1:7700/v1/ws --key $KEY --name echo --skills echo,test --exec ./my-agent"
)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Run a program as the agent's brain.
    Run(Box<RunArgs>),
    /// Generate a new secp256k1 key and print it with its address.
    Keygen(KeygenArgs),
    /// What this agent earned: on-chain payouts from the escrow (the chain is the truth),
    /// including pledge credits (sub-bounties funded from a reward) and what is still to redeem.
    Earnings(EarningsArgs),
    /// Serve metered calls paid per call with payment-channel vouchers.
    ServeMetered(Box<super::metered_agent::ServeMeteredArgs>),
    /// Redeem accepted vouchers on-chain in one batch.
    Redeem(super::metered_agent::RedeemMeteredArgs),
    /// An agent's reputation score with every component explained (from the index).
    Show(Box<super::agents::ShowAgentArgs>),
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  reef agent earnings --key $KEY --json")]
struct EarningsArgs {
    #[command(flatten)]
    chain: super::chain::ChainArgs,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// What the escrow paid `me`, bounty by bounty (completed bounties and contest wins, from the
/// chain's logs), with pledge credits marked and totals per token:
/// `{"agent", "payouts": [...], "totals": {token: amount}}`.
pub async fn earnings(
    client: &escrow_client::ReefClient,
    me: alloy_primitives::Address,
) -> eyre::Result<Value> {
    use alloy::sol_types::SolEvent;
    use escrow_client::bindings::escrow::BountyEscrow;
    let escrow = client.deployment().bounty_escrow;
    let mut rows = Vec::new();
    let mut totals: std::collections::BTreeMap<String, alloy::primitives::U256> =
        Default::default();
    for (sig, name) in [
        (BountyEscrow::BountyCompleted::SIGNATURE_HASH, "completed"),
        (BountyEscrow::WinnerPaid::SIGNATURE_HASH, "contest"),
    ] {
        let filter = alloy::rpc::types::Filter::new()
            .address(escrow)
            .event_signature(sig)
            .topic2(me.into_word())
            .from_block(client.deployment().start_block);
        for log in client.logs(&filter).await? {
            let Some(id) = log.topics().get(1).map(|t| alloy::primitives::U256::from_be_bytes(t.0))
            else {
                continue;
            };
            let paid = if name == "completed" {
                BountyEscrow::BountyCompleted::decode_log_data(log.data()).map(|e| e.paid).ok()
            } else {
                BountyEscrow::WinnerPaid::decode_log_data(log.data()).map(|e| e.paid).ok()
            };
            let Some(paid) = paid else { continue };
            let token = client.bounty(id).await.map(|s| s.record.token).unwrap_or_default();
            *totals.entry(token.to_string()).or_default() += paid;
            let mut row = json!({ "bounty": format!("{id:#x}"), "kind": name, "token": token, "paid": paid.to_string(), "tx": log.transaction_hash });
            // Paid in a pledge token: credits, worth the parent's token once it settled.
            if let Some(p) = client.pledge(token).await? {
                let left = client.ledger_credit(token, me).await?;
                row["pledge"] = json!({
                    "parent": format!("{:#x}", p.parent), "state": p.state,
                    "paid_in": p.underlying, "unredeemed_credit": left.to_string(),
                });
            }
            // Part of this pay held back for sub-bounties funded from it.
            if let Some(own) = client.pledge(client.pledge_token_of(id, me)).await?
                && !own.backed.is_zero()
            {
                row["held_for_sub_bounties"] = json!(own.backed.to_string());
            }
            rows.push(row);
        }
    }
    let t: serde_json::Map<String, Value> =
        totals.iter().map(|(k, v)| (k.clone(), json!(v.to_string()))).collect();
    Ok(json!({ "agent": me, "payouts": rows, "totals": t }))
}

impl EarningsArgs {
    async fn run(self) -> eyre::Result<()> {
        let client = self.chain.connect().await?;
        let me = client.address();
        let e = earnings(&client, me).await?;
        let rows = e["payouts"].as_array().cloned().unwrap_or_default();
        let totals: Vec<(String, alloy::primitives::U256)> = e["totals"]
            .as_object()
            .map(|m| {
                m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.parse().ok()?))).collect()
            })
            .unwrap_or_default();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&e)?);
        } else {
            println!("agent {me}: {} payouts", rows.len());
            for r in &rows {
                if let Some(p) = r.get("pledge") {
                    println!(
                        "  bounty {} paid {} in pledge credits on bounty {} ({}; {} not redeemed yet)",
                        r["bounty"].as_str().unwrap_or(""),
                        r["paid"].as_str().unwrap_or(""),
                        p["parent"].as_str().unwrap_or(""),
                        p["state"].as_str().unwrap_or(""),
                        p["unredeemed_credit"].as_str().unwrap_or("")
                    );
                }
                if let Some(h) = r["held_for_sub_bounties"].as_str() {
                    println!(
                        "  bounty {}: {h} of its pay funded sub-bounties",
                        r["bounty"].as_str().unwrap_or("")
                    );
                }
            }
            for (token, total) in &totals {
                let name = if token == &alloy::primitives::Address::ZERO.to_string() {
                    "ETH".to_string()
                } else {
                    token.clone()
                };
                println!("  {} {name}", alloy::primitives::utils::format_ether(*total));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef agent keygen --json   # {\"address\":\"0x…\",\"private_key\":\"0x…\"}"
)]
struct KeygenArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef agent run --node ws://127.0.0.1:7700/v1/ws --key $KEY --name summarizer \\\n    --description 'summarizes text' --skills summarization,english --price 2 --exec 'python3 brain.py'\n\nThe program gets {\"group_id\",\"task_id\",\"input\",\"assigner\",\"mode\"} on stdin and prints its result on stdout;\nexit code 0 = done, anything else = failed. With --json, one line per finished task goes to stdout."
)]
struct RunArgs {
    /// Node WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:7700/v1/ws", env = "REEF_NODE_URL")]
    node: String,
    /// The agent's private key (hex).
    #[arg(long, env = "REEF_AGENT_KEY", hide_env_values = true)]
    key: String,
    /// Card: name.
    #[arg(long, default_value = "reef-agent")]
    name: String,
    /// Card: description.
    #[arg(long, default_value = "")]
    description: String,
    /// Card: skills (comma separated).
    #[arg(long, value_delimiter = ',')]
    skills: Vec<String>,
    /// Card: price hint.
    #[arg(long)]
    price: Option<f64>,
    /// Card: accepted payment tokens (comma separated).
    #[arg(long, value_delimiter = ',')]
    payment_tokens: Vec<String>,
    /// Program run for each task (through `sh -c`).
    #[arg(long)]
    exec: String,
    /// Exit after this many tasks (default: run forever).
    #[arg(long)]
    max_tasks: Option<u64>,
    /// Tasks run at the same time, one brain process each; further assigned tasks wait for a
    /// free slot. Bidding, verdicts and payouts are never held up by running tasks.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel: u16,
    /// Chain RPC: enables bidding on the node's calls for proposals and getting paid on-chain.
    #[arg(long, env = "REEF_RPC_URL")]
    rpc_url: Option<String>,
    /// Price asked per bounty, in whole token units (default: the full budget); bounties whose
    /// budget is below it are skipped.
    #[arg(long)]
    bid_price: Option<String>,
    /// Promised delivery time after an award (e.g. 30s, 5m).
    #[arg(long, default_value = "60s", value_parser = super::chain::parse_duration)]
    eta: std::time::Duration,
    /// Do not bid (only execute tasks assigned directly).
    #[arg(long)]
    no_bid: bool,
    /// Do not bid on sub-bounties paid in pledge credits (funded from their poster's pending
    /// reward on a parent bounty): such credits are worth the parent's token only once the
    /// parent completes, and nothing if it fails.
    #[arg(long)]
    no_pledges: bool,
    /// Also serve as a third-party evaluator (`--verify evaluator|quorum` bounties): run this
    /// verifier program in a sandbox on each evaluation request (stdin `{"input", "result"}`,
    /// exit 0 = accept) and sign the verdict as an EIP-712 attestation; the escrow pays panel
    /// members a fee per verdict. Adds the `evaluate` skill.
    #[arg(long)]
    evaluate: Option<PathBuf>,
    /// Give the brain this agent's key and chain settings (REEF_PRIVATE_KEY, REEF_NODE_HTTP,
    /// REEF_RPC_URL, REEF_DEPLOYMENTS, REEF_BIN) so it can post sub-bounties (nested work).
    #[arg(long)]
    share_key_with_brain: bool,
    /// How long to keep trying a node that is not up (not started yet, or restarting) before
    /// giving up at start; once connected, the agent reconnects after every drop for good.
    #[arg(long, default_value = "10m", value_parser = super::chain::parse_duration)]
    wait_node: std::time::Duration,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `attempt` until it succeeds, fails with something other than the node being away
/// (no connection, or the connection dropped mid-request), or `patience` has passed; waits
/// 250 ms doubling up to [`super::nodeapi::MAX_WAIT_STEP`] in between and says so on stderr.
async fn while_node_away<T, F, Fut>(
    what: &str,
    url: &str,
    patience: std::time::Duration,
    mut attempt: F,
) -> eyre::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reef_agent_sdk::Result<T>>,
{
    use reef_agent_sdk::Error as E;
    let t0 = std::time::Instant::now();
    let mut step = std::time::Duration::from_millis(250);
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e @ (E::Connect(_) | E::Disconnected)) if t0.elapsed() < patience => {
                let left = patience.saturating_sub(t0.elapsed());
                let pause = step.min(left);
                eprintln!(
                    "{what}: node {url} is not up yet ({e}); retrying in {:.1} s (gives up in {} s; --wait-node sets how long)",
                    pause.as_secs_f32(),
                    left.as_secs()
                );
                tokio::time::sleep(pause).await;
                step = (step * 2).min(super::nodeapi::MAX_WAIT_STEP);
            }
            Err(e) => return Err(e).wrap_err_with(|| format!("{what} ({url})")),
        }
    }
}

impl AgentArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        match self.command {
            AgentCommand::Keygen(k) => {
                let s = PrivateKeySigner::random();
                let key = alloy_primitives::hex::encode_prefixed(s.to_bytes());
                if k.json {
                    println!("{}", json!({ "address": s.address(), "private_key": key }));
                } else {
                    println!("address:     {}\nprivate key: {key}", s.address());
                }
                Ok(())
            }
            AgentCommand::Run(r) => r.run().await,
            AgentCommand::Earnings(e) => e.run().await,
            AgentCommand::ServeMetered(a) => a.run().await,
            AgentCommand::Redeem(a) => a.run().await,
            AgentCommand::Show(a) => a.run().await,
        }
    }
}

impl RunArgs {
    async fn run(self) -> eyre::Result<()> {
        let signer: PrivateKeySigner =
            self.key.trim().parse().wrap_err("--key is not a valid private key")?;
        let (client, mut events) =
            while_node_away("connecting", &self.node, self.wait_node, || {
                Client::connect(&self.node, signer.clone())
            })
            .await?;
        let me = client.address();
        let card = AgentCard {
            name: self.name.clone(),
            description: self.description.clone(),
            skills: {
                let mut skills = self.skills.clone();
                if self.evaluate.is_some() && !skills.iter().any(|s| s == "evaluate") {
                    skills.push("evaluate".into());
                }
                skills
            },
            price: self.price,
            payment_tokens: self.payment_tokens.clone(),
            ..Default::default()
        };
        // The node may go away between the connection and these first requests (the SDK
        // reconnects meanwhile): try them again instead of exiting.
        while_node_away("registering", &self.node, self.wait_node, || {
            client.register(card.clone())
        })
        .await?;
        eprintln!("agent {me} registered on node {}", client.node_id());
        // The marketplace side: connected now, or (when the node or the chain could not be
        // reached, e.g. the node restarted just after we registered) again after the next
        // reconnect or call for proposals, instead of never bidding in this run.
        let mut market: Option<Bidder> = None;
        let mut market_retry = self.rpc_url.is_some();
        self.connect_market(&mut market, &mut market_retry).await;
        let mut engine = Engine::new(me);
        // Seq up to which a group's messages are history (already handled in an earlier run).
        let mut caught_up: HashMap<String, u64> = HashMap::new();
        let groups =
            while_node_away("listing groups", &self.node, self.wait_node, || client.list_groups())
                .await?;
        for g in groups {
            let last = while_node_away("joining a group", &self.node, self.wait_node, || {
                client.join(&g.group_id, Some(0))
            })
            .await?;
            engine.track(&g.group_id, g.parent_group_id.clone());
            caught_up.insert(g.group_id, last);
        }
        let mut deferred: Vec<(String, TaskDesc)> = Vec::new();
        let mut done = 0u64;
        let mut seen: HashMap<String, u64> = HashMap::new();
        // Tasks (group, task id) started in this process: none is started twice.
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(usize::from(self.parallel)));
        let mut started: std::collections::HashSet<(String, String)> = Default::default();
        let mut jobs: tokio::task::JoinSet<eyre::Result<TaskDone>> = tokio::task::JoinSet::new();
        loop {
            let ev = tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => ev,
                    None => break,
                },
                Some(finished) = jobs.join_next(), if !jobs.is_empty() => {
                    let t = finished.map_err(|e| eyre::eyre!("a task runner panicked: {e}"))??;
                    if self.json {
                        println!(
                            "{}",
                            json!({ "group_id": t.group_id, "task_id": t.task_id, "ok": t.ok, "seq": t.seq, "result": t.result })
                        );
                    } else {
                        eprintln!(
                            "task {} in {}: {}",
                            t.task_id,
                            t.group_id,
                            if t.ok { "done" } else { "failed" }
                        );
                    }
                    done += 1;
                    if self.max_tasks.is_some_and(|m| done >= m) {
                        return Ok(());
                    }
                    continue;
                }
            };
            match ev {
                Event::Invited { group_id, by } => {
                    tracing::debug!(%group_id, %by, "invited");
                    // Groups the marketplace opens (calls for proposals, work, evaluation) never
                    // have a parent: skip listing every group we are in, which cost O(groups)
                    // per invitation and stalled agents under a burst of calls for proposals.
                    if market.as_ref().and_then(|b| b.evaluator) == Some(by) {
                        engine.track(&group_id, None);
                    } else if let Ok(g) = client
                        .list_groups()
                        .await
                        .map(|gs| gs.into_iter().find(|g| g.group_id == group_id))
                    {
                        engine.track(&group_id, g.and_then(|g| g.parent_group_id));
                    }
                    // The node may go away mid-join (a restart): the group is joined again
                    // on reconnect (`Connected` below), so this is not fatal.
                    match client.join(&group_id, Some(0)).await {
                        Ok(last) => {
                            tracing::debug!(%group_id, last, "joined");
                            caught_up.insert(group_id, last);
                        }
                        Err(e) => eprintln!(
                            "could not join {group_id} yet ({e}); retrying after reconnecting"
                        ),
                    }
                }
                Event::Message(m) => {
                    seen.insert(m.group_id.clone(), m.seq);
                    if market.is_none() && m.body.as_ref().is_some_and(|b| b["kind"] == "cfp") {
                        self.connect_market(&mut market, &mut market_retry).await;
                    }
                    if let (Some(b), Some(body)) = (&market, &m.body) {
                        let from_node = Some(m.sender_id) == b.evaluator;
                        match body["kind"].as_str() {
                            Some("cfp") if from_node && !self.no_bid => b.on_cfp(body, &self).await,
                            Some("verdict") if from_node => {
                                // In the background: the payout transaction must not hold up
                                // bids and other tasks.
                                let (b, body) = (b.clone(), body.clone());
                                tokio::spawn(async move { b.on_verdict(&body).await });
                            }
                            Some("evaluate") if from_node => {
                                if let Some(program) = &self.evaluate {
                                    b.on_evaluate(&client, &m.group_id, body, program);
                                }
                            }
                            Some("awaiting_poster") if from_node => {
                                let (b, body) = (b.clone(), body.clone());
                                tokio::spawn(async move { b.on_awaiting_poster(&body).await });
                            }
                            _ => {}
                        }
                    }
                    for action in engine.on_message(&m) {
                        match action {
                            Action::Execute { group_id, task, .. } => {
                                tracing::debug!(%group_id, task = %task.task_id, seq = m.seq, "task assigned");
                                deferred.push((group_id, task))
                            }
                            Action::Conclude { group_id, result } => {
                                if m.seq >= caught_up.get(&group_id).copied().unwrap_or(0)
                                    && let Err(e) = client
                                        .send(&group_id, State::Conclusion, Some(result), None)
                                        .await
                                {
                                    eprintln!("could not post the conclusion to {group_id}: {e}");
                                }
                            }
                            Action::BubbleUp { parent_group_id, child_group_id, result } => {
                                if m.seq >= caught_up.get(&child_group_id).copied().unwrap_or(0) {
                                    let body = json!({ "status": "done", "result": result, "child_group_id": child_group_id });
                                    if let Err(e) = client
                                        .send(
                                            &parent_group_id,
                                            State::Execution,
                                            Some(body),
                                            Some(json!({ "task_id": child_group_id })),
                                        )
                                        .await
                                    {
                                        eprintln!("could not bubble a result up: {e}");
                                    }
                                }
                            }
                            Action::Resume { .. } => {}
                        }
                    }
                    // Run tasks once their group's history is replayed and they are still open.
                    let ready: Vec<(String, TaskDesc)> = {
                        let (ready, keep) = deferred.drain(..).partition(|(g, _)| {
                            seen.get(g).copied().unwrap_or(0)
                                >= caught_up.get(g).copied().unwrap_or(0)
                        });
                        deferred = keep;
                        ready
                    };
                    if !deferred.is_empty() {
                        tracing::debug!(
                            waiting = deferred.len(),
                            "tasks wait for their group's history"
                        );
                    }
                    for (group_id, task) in ready {
                        let status = engine.task_status(&group_id, &task.task_id);
                        tracing::debug!(%group_id, task = %task.task_id, ?status, "task ready");
                        if status != Some(reef_agent_sdk::engine::TaskStatus::Assigned)
                            || !started.insert((group_id.clone(), task.task_id.clone()))
                        {
                            continue;
                        }
                        let env = self.brain_env(market.as_ref());
                        let (client, exec, slots) =
                            (client.clone(), self.exec.clone(), slots.clone());
                        jobs.spawn(async move {
                            let _slot = slots
                                .acquire_owned()
                                .await
                                .map_err(|_| eyre::eyre!("task slots closed"))?;
                            let (ok, result, code) = execute(&exec, &group_id, &task, &env).await;
                            let body = json!({ "status": if ok { "done" } else { "failed" }, "result": result, "exit_code": code });
                            // A deterministic msg_id makes the send idempotent, so it can be
                            // retried across a node restart without delivering it twice.
                            let msg = reef_wire::SendMessage {
                                group_id: group_id.clone(),
                                msg_id: format!("result-{}", task.task_id),
                                state: State::Execution,
                                task_desc: Some(json!({ "task_id": task.task_id })),
                                body: Some(body),
                                extra: Default::default(),
                            };
                            let seq = send_reliably(&client, msg).await?;
                            Ok(TaskDone { group_id, task_id: task.task_id, ok, result, seq })
                        });
                    }
                }
                Event::Disconnected(reason) => eprintln!("disconnected ({reason}); reconnecting"),
                Event::Connected => {
                    self.connect_market(&mut market, &mut market_retry).await;
                    // The SDK re-joins the groups we follow, but an invitation sent while we
                    // were away (or a join cut off by a restart) is lost: follow every group we
                    // are a member of and do not know. If the node goes away again meanwhile,
                    // the next `Connected` does the rest.
                    let groups = match client.list_groups().await {
                        Ok(gs) => gs,
                        Err(e) => {
                            eprintln!("could not list groups ({e}); retrying after reconnecting");
                            Vec::new()
                        }
                    };
                    for g in groups {
                        if caught_up.contains_key(&g.group_id) {
                            continue;
                        }
                        match client.join(&g.group_id, Some(0)).await {
                            Ok(last) => {
                                engine.track(&g.group_id, g.parent_group_id.clone());
                                caught_up.insert(g.group_id, last);
                            }
                            Err(e) => {
                                eprintln!(
                                    "could not join {} ({e}); retrying after reconnecting",
                                    g.group_id
                                );
                                break;
                            }
                        }
                    }
                }
                Event::Removed { .. } => {}
            }
        }
        Ok(())
    }
}

/// A task this agent executed and reported.
struct TaskDone {
    group_id: String,
    task_id: String,
    ok: bool,
    result: Value,
    seq: u64,
}

/// Sends `msg` until the node acknowledges it, riding out disconnections (the SDK reconnects
/// underneath); gives up after about ten minutes.
async fn send_reliably(client: &Client, msg: reef_wire::SendMessage) -> eyre::Result<u64> {
    let mut delay = std::time::Duration::from_millis(250);
    for _ in 0..150 {
        match client.send_message(msg.clone()).await {
            Ok((seq, _)) => return Ok(seq),
            Err(e) => {
                eprintln!("sending to {} failed ({e}); retrying", msg.group_id);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
    eyre::bail!("could not deliver a message to group {} for ten minutes", msg.group_id)
}

/// Run the brain program; returns (success, result, exit code).
impl RunArgs {
    /// Environment handed to the brain (empty unless --share-key-with-brain).
    /// Connects the marketplace side (`--rpc-url` given) unless it is connected or was
    /// disabled for good. A node without a marketplace (404) disables it; anything else (the
    /// node or the chain unreachable) leaves `retry` set so the next attempt tries again.
    async fn connect_market(&self, market: &mut Option<Bidder>, retry: &mut bool) {
        let Some(rpc) = self.rpc_url.as_deref().filter(|_| market.is_none() && *retry) else {
            return;
        };
        let signer: alloy::signers::local::PrivateKeySigner = match self.key.trim().parse() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("marketplace disabled: --key is not a private key ({e})");
                *retry = false;
                return;
            }
        };
        match Bidder::connect(self, rpc, signer).await {
            Ok(b) => {
                eprintln!(
                    "marketplace: bidding and settling on chain {}",
                    b.chain.deployment().chain_id
                );
                *market = Some(b);
                *retry = false;
            }
            Err(e) if super::nodeapi::ApiError::status_of(&e) == Some(404) => {
                eprintln!("marketplace disabled: the node runs no marketplace ({e})");
                *retry = false;
            }
            Err(e) => eprintln!(
                "marketplace not ready: {e}; trying again after reconnecting or at the next call \
                 for proposals"
            ),
        }
    }

    fn brain_env(&self, market: Option<&Bidder>) -> Vec<(String, String)> {
        if !self.share_key_with_brain {
            return Vec::new();
        }
        let mut env = vec![
            ("REEF_PRIVATE_KEY".to_string(), self.key.trim().to_string()),
            ("REEF_NODE_HTTP".to_string(), super::nodeapi::http_base(&self.node)),
        ];
        if let Ok(bin) = std::env::current_exe() {
            env.push(("REEF_BIN".into(), bin.display().to_string()));
        }
        if let (Some(rpc), Some(b)) = (&self.rpc_url, market) {
            env.push(("REEF_RPC_URL".into(), rpc.clone()));
            let dir = std::env::temp_dir().join(format!("reef-agent-{}", b.chain.address()));
            let dep = b.chain.deployment();
            if dep.save(&escrow_client::Deployment::path_in(&dir, dep.chain_id)).is_ok() {
                env.push(("REEF_DEPLOYMENTS".into(), dir.display().to_string()));
            }
        }
        env
    }
}

async fn execute(
    program: &str,
    group_id: &str,
    task: &TaskDesc,
    env: &[(String, String)],
) -> (bool, Value, i32) {
    let input = json!({
        "group_id": group_id,
        "task_id": task.task_id,
        "input": task.input,
        "mode": task.mode,
    });
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(program)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (false, json!(format!("cannot start program: {e}")), -1),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{input}\n").as_bytes()).await;
    }
    match child.wait_with_output().await {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let result = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let code = out.status.code().unwrap_or(-1);
            (out.status.success(), result, code)
        }
        Err(e) => (false, json!(format!("program failed: {e}")), -1),
    }
}

/// The marketplace side of `reef agent run`: bids on calls for proposals and collects payment.
#[derive(Clone)]
struct Bidder {
    api: super::nodeapi::NodeApi,
    chain: escrow_client::ReefClient,
    evaluator: Option<alloy_primitives::Address>,
    skills: Vec<String>,
    bid_price: Option<String>,
    eta_secs: u64,
    /// `--no-pledges`: refuse bounties paid in pledge credits.
    no_pledges: bool,
    /// Token decimals, read once per token.
    decimals: std::sync::Arc<std::sync::Mutex<HashMap<alloy_primitives::Address, u8>>>,
    /// Whether a token is a pledge token, learnt with its decimals.
    pledge_kind: std::sync::Arc<std::sync::Mutex<HashMap<alloy_primitives::Address, bool>>>,
    /// Nonces of this run's bids.
    nonces: std::sync::Arc<escrow_client::signing::BidNonces>,
    /// Whether the brain holds this agent's key (`--share-key-with-brain`) and so may fund
    /// sub-bounties from this agent's rewards.
    brain_pledges: bool,
    /// Pledge tokens this agent may hold credits in (sub-bounties it was paid for, or funded
    /// from its own rewards); redeemed in the background once their parent settles.
    pledges: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<alloy_primitives::Address>>>,
    /// Set once the background redeemer runs.
    redeemer: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Bidder {
    async fn connect(
        args: &RunArgs,
        rpc: &str,
        signer: alloy::signers::local::PrivateKeySigner,
    ) -> eyre::Result<Self> {
        let mut api = super::nodeapi::NodeApi::new(&args.node);
        let info = api.get("/v1/market/info").await?;
        let deployment: escrow_client::Deployment =
            serde_json::from_value(info["deployment"].clone())
                .wrap_err("node sent no deployment")?;
        let chain =
            escrow_client::ReefClient::connect(rpc, signer.clone(), deployment, Default::default())
                .await?;
        api.login(&signer).await?;
        let evaluator = info["evaluator"].as_str().and_then(|s| s.parse().ok());
        Ok(Self {
            api,
            chain,
            evaluator,
            skills: args.skills.clone(),
            bid_price: args.bid_price.clone(),
            eta_secs: args.eta.as_secs().max(1),
            no_pledges: args.no_pledges,
            decimals: Default::default(),
            pledge_kind: Default::default(),
            nonces: Default::default(),
            brain_pledges: args.share_key_with_brain,
            pledges: Default::default(),
            redeemer: Default::default(),
        })
    }

    /// Remembers a pledge token to redeem this agent's credits in once its parent settles, and
    /// starts the background redeemer if it is not running.
    fn watch_pledge(&self, token: alloy_primitives::Address) {
        if let Ok(mut p) = self.pledges.lock() {
            p.insert(token);
        }
        if !self.redeemer.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let me = self.clone();
            tokio::spawn(async move { me.redeem_pledges().await });
        }
    }

    /// Every 2 s: redeems the credits of each watched pledge whose parent settled, and forgets
    /// the pledges that were redeemed or turned out void.
    async fn redeem_pledges(self) {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let tokens: Vec<_> =
                self.pledges.lock().map(|p| p.iter().copied().collect()).unwrap_or_default();
            for token in tokens {
                match self.redeem_pledge(token).await {
                    Ok(true) => {
                        if let Ok(mut p) = self.pledges.lock() {
                            p.remove(&token);
                        }
                    }
                    Ok(false) => {}
                    Err(e) => eprintln!("pledge {token}: redeeming failed, retrying: {e}"),
                }
            }
        }
    }

    /// Redeems this agent's credits in `token` if its parent settled; true once nothing is
    /// left to wait for (redeemed, void, or no credits after the settlement).
    async fn redeem_pledge(&self, token: alloy_primitives::Address) -> eyre::Result<bool> {
        use escrow_client::pledge::PledgeState;
        let Some(p) = self.chain.pledge(token).await? else { return Ok(true) };
        if p.state == PledgeState::Pending {
            return Ok(false);
        }
        let credit = self.chain.ledger_credit(token, self.chain.address()).await?;
        if credit.is_zero() {
            return Ok(true);
        }
        if p.state == PledgeState::Void {
            eprintln!(
                "pledge {token}: bounty {} ended {} without paying {}; {credit} credits are void",
                crate::market::id_hex(p.parent),
                p.parent_status,
                p.provider
            );
            return Ok(true);
        }
        let tx = self.chain.redeem_read_pledge(&p, credit).await?;
        eprintln!(
            "redeemed {credit} pledge credits (bounty {} settled) for {} of {}: tx {}",
            crate::market::id_hex(p.parent),
            p.value_of(credit),
            p.underlying,
            tx.hash
        );
        // A nested pledge pays in the parent's own pledge token: redeem that one next.
        if self.chain.pledge(p.underlying).await?.is_some() {
            self.watch_pledge(p.underlying);
        }
        Ok(true)
    }

    async fn on_cfp(&self, cfp: &Value, args: &RunArgs) {
        if cfp["record"]["mode"] == 1 {
            self.enter_contest(cfp, args);
            return;
        }
        // Bid in the background: a burst of calls for proposals must not queue behind each
        // other (or behind this agent's own work).
        let (me, cfp) = (self.clone(), cfp.clone());
        tokio::spawn(async move {
            if let Err(e) = me.bid(&cfp).await {
                eprintln!("no bid on {}: {e}", cfp["bounty_id"].as_str().unwrap_or("?"));
            }
        });
    }

    async fn token_decimals(&self, token: alloy_primitives::Address) -> eyre::Result<u8> {
        if token.is_zero() {
            return Ok(18);
        }
        if let Some(d) = self.decimals.lock().ok().and_then(|m| m.get(&token).copied()) {
            return Ok(d);
        }
        let asked = self
            .chain
            .view(token, escrow_client::bindings::token::ReefTestToken::decimalsCall {})
            .await;
        let pledge = asked.is_err();
        let d = match asked {
            Ok(d) => d,
            // A sub-bounty funded from a reward is paid in a pledge token (no code): its amounts
            // are in the units of the real token behind it.
            Err(e) => match self.chain.underlying_token(token).await? {
                real if real == token => return Err(e.into()),
                real if real.is_zero() => 18,
                real => {
                    self.chain
                        .view(real, escrow_client::bindings::token::ReefTestToken::decimalsCall {})
                        .await?
                }
            },
        };
        self.remember_token(token, d, pledge);
        Ok(d)
    }

    /// Caches a token's decimals and whether it is a pledge token.
    fn remember_token(&self, token: alloy_primitives::Address, decimals: u8, pledge: bool) {
        if let Ok(mut m) = self.decimals.lock() {
            m.insert(token, decimals);
        }
        if let Ok(mut m) = self.pledge_kind.lock() {
            m.insert(token, pledge);
        }
    }

    async fn bid(&self, cfp: &Value) -> eyre::Result<()> {
        use escrow_client::{bindings::escrow::IBountyTypes::Bounty, escrow::RecordJson};
        let wanted: Vec<String> = serde_json::from_value(cfp["skills"].clone()).unwrap_or_default();
        if let Some(missing) = wanted.iter().find(|w| !self.skills.contains(w)) {
            eyre::bail!("lacks skill {missing:?}");
        }
        let record: RecordJson =
            serde_json::from_value(cfp["record"].clone()).wrap_err("cfp record")?;
        let record = Bounty::try_from(&record)?;
        let id = crate::market::parse_id(cfp["bounty_id"].as_str().unwrap_or_default())?;
        // Paid in pledge credits? The call for proposals names the parent (checked against
        // the token below); a token it does not explain must be ETH, an ERC-20, or a pledge
        // the escrow already knows.
        let named = cfp["from_reward"].as_str().map(crate::market::parse_id).transpose()?;
        let parent = match named {
            Some(p) => Some(p),
            None => self.unnamed_pledge(record.token).await?,
        };
        if let Some(parent) = parent {
            if self.no_pledges {
                eyre::bail!(
                    "paid in pledge credits on bounty {parent:#x}; this agent runs with --no-pledges"
                );
            }
            self.check_pledge_backing(&record, parent).await?;
        }
        let budget = record.amount;
        let price = match &self.bid_price {
            None => budget,
            Some(p) => {
                let decimals = self.token_decimals(record.token).await?;
                let want: u128 = super::chain::parse_amount(p, decimals)?
                    .try_into()
                    .map_err(|_| eyre::eyre!("price too large"))?;
                if want > budget {
                    eyre::bail!("budget {budget} is below my price {want}");
                }
                want
            }
        };
        let close = cfp["bid_close_at"].as_u64().unwrap_or_default();
        // Valid until the bounty's deadline: a runner-up can still take the job over if the
        // winner misses its ETA. The ETA is signed: the escrow enforces it.
        let deadline = record.deadline;
        let eta = u32::try_from(self.eta_secs).unwrap_or(u32::MAX);
        // Consecutive nonces: awards after the first in a bitmap word cost about 17,000 gas less.
        let nonce = self.nonces.next_nonce();
        let (bid, sig) = self.chain.sign_bid(id, &record, price, deadline, eta, nonce)?;
        let body = json!({
            "bid": escrow_client::escrow::BidJson::from(&bid),
            "signature": sig,
        });
        let path = format!("/v1/market/bounties/{}/bids", crate::market::id_hex(id));
        // The node may be restarting: retry until the window closes.
        loop {
            match self.api.post(&path, body.clone()).await {
                Ok(_) => break,
                Err(e)
                    if super::nodeapi::ApiError::is_unreachable(&e)
                        && reef_wire::unix_now() < close =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e),
            }
        }
        eprintln!("bid {price} on bounty {}", crate::market::id_hex(id));
        Ok(())
    }

    /// Poster-verified bounties: commit the result hash on-chain so the poster can accept it
    /// (or the review window auto-accepts it).
    async fn on_awaiting_poster(&self, v: &Value) {
        let run = async {
            use escrow_client::{
                Status, bindings::escrow::IBountyTypes::Bounty, escrow::RecordJson,
            };
            let record: RecordJson =
                serde_json::from_value(v["record"].clone()).wrap_err("record")?;
            let record = Bounty::try_from(&record)?;
            if record.provider != self.chain.address() {
                return Ok(());
            }
            let id = crate::market::parse_id(v["bounty_id"].as_str().unwrap_or_default())?;
            if self.chain.status_of(id).await?.0 != Status::Awarded {
                return Ok(());
            }
            let rh: alloy_primitives::B256 =
                serde_json::from_value(v["result_hash"].clone()).wrap_err("result_hash")?;
            let (_, tx) = self.chain.submit(id, &record, rh).await?;
            eprintln!(
                "submitted result for {} (tx {}); the poster decides",
                crate::market::id_hex(id),
                tx.hash
            );
            Ok::<_, eyre::Report>(())
        };
        if let Err(e) = run.await {
            eprintln!("submission of {} failed: {e}", v["bounty_id"].as_str().unwrap_or("?"));
        }
    }

    /// Contest: do the work right away, commit the result hash on-chain with `submitEntry`,
    /// and hand the result to the node (which judges after the deadline). Runs in the
    /// background so the agent keeps serving messages.
    fn enter_contest(&self, cfp: &Value, args: &RunArgs) {
        let (api, chain, cfp) = (self.api.clone(), self.chain.clone(), cfp.clone());
        let (exec, env) = (args.exec.clone(), args.brain_env(Some(self)));
        tokio::spawn(async move {
            let run = async {
                use escrow_client::{
                    Status, bindings::escrow::IBountyTypes::Bounty, escrow::RecordJson,
                };
                let record: RecordJson =
                    serde_json::from_value(cfp["record"].clone()).wrap_err("cfp record")?;
                let record = Bounty::try_from(&record)?;
                let key = cfp["bounty_id"].as_str().unwrap_or_default().to_string();
                let id = crate::market::parse_id(&key)?;
                // Wait for the poster's funding transaction.
                while chain.status_of(id).await?.0 != Status::Funded {
                    if chain.chain_time().await? > record.deadline {
                        eyre::bail!("the contest was never funded");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                let task = TaskDesc {
                    task_id: format!("contest-{}", &key[2..14]),
                    input: json!({ "bounty_id": key, "description": cfp["description"], "input": cfp["input"], "record": cfp["record"] }),
                    ..Default::default()
                };
                let (ok, result, code) = execute(&exec, "contest", &task, &env).await;
                if !ok {
                    eyre::bail!("brain failed (exit {code})");
                }
                let rh = crate::market::verify::result_hash(&result);
                chain.submit_entry(id, &record, rh).await?;
                api.post(
                    &format!("/v1/market/bounties/{key}/entries"),
                    json!({ "result": result }),
                )
                .await?;
                eprintln!("entered contest {key}");
                Ok::<_, eyre::Report>(())
            };
            if let Err(e) = run.await {
                eprintln!("contest entry failed: {e}");
            }
        });
    }

    /// An evaluation request from the node (we sit on the bounty's evaluator panel): run our
    /// verifier on the provider's result and answer with a signed attestation. In the
    /// background: a slow verifier must not hold up this agent's other work.
    fn on_evaluate(&self, client: &Client, group: &str, req: &Value, program: &std::path::Path) {
        let (me, client, group, req) =
            (self.clone(), client.clone(), group.to_string(), req.clone());
        let program = program.display().to_string();
        tokio::spawn(async move {
            let bounty = req["bounty_id"].as_str().unwrap_or("?").to_string();
            if let Err(e) = me.evaluate(&client, &group, &req, &program).await {
                eprintln!("evaluation of {bounty} failed: {e}");
            }
        });
    }

    async fn evaluate(
        &self,
        client: &Client,
        group: &str,
        req: &Value,
        program: &str,
    ) -> eyre::Result<()> {
        use crate::market::{sandbox, verify::result_hash};
        let id = crate::market::parse_id(req["bounty_id"].as_str().unwrap_or_default())?;
        let result = &req["result"];
        let rh = result_hash(result);
        // Sign only what we checked: the hash of the result we were shown.
        if req["result_hash"].as_str() != Some(&rh.to_string()) {
            eyre::bail!("the request's result_hash does not match its result");
        }
        // The attestation names the provider whose result it judges (no replay after a take-over).
        let provider: alloy::primitives::Address = req["provider"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| eyre::eyre!("the evaluation request names no provider"))?;
        let stdin = serde_json::to_vec(&json!({ "input": req["input"], "result": result }))?;
        let out =
            sandbox::run_sandboxed(program, &[], &stdin, &sandbox::SandboxLimits::default()).await;
        let verdict = if out.accepted {
            escrow_client::signing::verdict::ACCEPT
        } else {
            escrow_client::signing::verdict::REJECT
        };
        let sig = self.chain.sign_attestation(id, provider, rh, verdict)?;
        let body = json!({
            "kind": "evaluation",
            "bounty_id": crate::market::id_hex(id),
            "result_hash": rh,
            "verdict": verdict,
            "signature": sig,
        });
        let msg = reef_wire::SendMessage {
            group_id: group.to_string(),
            // One answer per evaluator, bounty and result (msg_ids are unique per group): a
            // replay after a restart is deduplicated.
            msg_id: format!("eval-{}-{}-{rh}", self.chain.address(), crate::market::id_hex(id)),
            state: State::Conclusion,
            task_desc: None,
            body: Some(body),
            extra: Default::default(),
        };
        send_reliably(client, msg).await?;
        eprintln!(
            "evaluated bounty {}: {}",
            crate::market::id_hex(id),
            if out.accepted { "accept" } else { "reject" }
        );
        Ok(())
    }

    async fn on_verdict(&self, v: &Value) {
        if let Err(e) = self.collect(v).await {
            eprintln!("settlement of {} failed: {e}", v["bounty_id"].as_str().unwrap_or("?"));
        }
    }

    /// On an accepting verdict for our work: submit the result with the attestation and get paid.
    async fn collect(&self, v: &Value) -> eyre::Result<()> {
        use escrow_client::{bindings::escrow::IBountyTypes::Bounty, escrow::RecordJson};
        let record: RecordJson =
            serde_json::from_value(v["record"].clone()).wrap_err("verdict record")?;
        let record = Bounty::try_from(&record)?;
        if record.provider != self.chain.address() || v["accept"] != true {
            return Ok(());
        }
        let id = crate::market::parse_id(v["bounty_id"].as_str().unwrap_or_default())?;
        let rh: alloy_primitives::B256 =
            serde_json::from_value(v["result_hash"].clone()).wrap_err("result_hash")?;
        let att: alloy_primitives::Bytes =
            serde_json::from_value(v["attestation"].clone()).wrap_err("attestation")?;
        // No `statusOf` read first (one RPC request per bounty): when the bounty is no longer
        // awarded, the gas estimate reverts before anything is sent (`BountyMismatch` once the
        // record moved on, `InvalidStatus` otherwise), and only then is the status read.
        let sent = self
            .chain
            .submit_and_attest(id, &record, rh, escrow_client::signing::verdict::ACCEPT, att)
            .await;
        let (_, tx) = match sent {
            Ok(done) => done,
            Err(e)
                if matches!(
                    e.revert_name().as_deref(),
                    Some("InvalidStatus" | "BountyMismatch")
                ) && self.chain.status_of(id).await?.0 != escrow_client::Status::Awarded =>
            {
                // Already settled (e.g. a verdict replayed after a restart).
                tracing::debug!(bounty = %crate::market::id_hex(id), "not awarded any more");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        eprintln!(
            "paid for bounty {}: tx {} gas {}",
            crate::market::id_hex(id),
            tx.hash,
            tx.gas_used
        );
        // Paid in a pledge token: credits, redeemed once the parent bounty settles.
        if self.is_pledge(record.token).await {
            self.watch_pledge(record.token);
        }
        // The brain may have funded sub-bounties from this reward: this agent holds the
        // unspent part of their budgets as credits.
        if self.brain_pledges {
            let own = self.chain.pledge_token_of(id, self.chain.address());
            match self.chain.pledge(own).await {
                Ok(Some(_)) => self.watch_pledge(own),
                Ok(None) => {}
                Err(e) => eprintln!(
                    "could not read pledge {own} of bounty {}: {e}; redeem its credits with `reef bounty redeem {own}`",
                    crate::market::id_hex(id)
                ),
            }
        }
        Ok(())
    }

    /// A bounty funded from its poster's pending reward on `parent` pays in credits that are
    /// worth something only if the poster is paid for `parent`: before bidding, check that the
    /// record's token is that pledge and that `parent` is awarded to the poster, and learn the
    /// pledge's decimals (those of the real token behind it).
    async fn check_pledge_backing(
        &self,
        record: &escrow_client::bindings::escrow::IBountyTypes::Bounty,
        parent: alloy_primitives::U256,
    ) -> eyre::Result<()> {
        let pt = self.chain.pledge_token_of(parent, record.poster);
        if pt != record.token {
            eyre::bail!("token {} is not the poster's pledge on bounty {parent:#x}", record.token);
        }
        let state = self.chain.bounty(parent).await?;
        if state.status != escrow_client::Status::Awarded || state.record.provider != record.poster
        {
            eyre::bail!(
                "paid from the reward on bounty {parent:#x}, which is {} with provider {}: no reward to back it",
                state.status,
                state.record.provider
            );
        }
        let real = self.chain.underlying_token(state.record.token).await?;
        let d = self.token_decimals(real).await?;
        self.remember_token(pt, d, true);
        Ok(())
    }

    /// For a token the call for proposals does not say is a pledge: the parent bounty when
    /// the escrow knows it as one (sub-bounties posted up front, like contests), `None` for ETH
    /// and contracts (remembered), and an error for an address without code, whose "payment"
    /// nobody could ever redeem. An RPC failure is an error too: no bid goes out on a bounty
    /// whose payment could not be checked.
    async fn unnamed_pledge(
        &self,
        token: alloy_primitives::Address,
    ) -> eyre::Result<Option<alloy_primitives::U256>> {
        if token.is_zero()
            || self.pledge_kind.lock().ok().and_then(|m| m.get(&token).copied()) == Some(false)
        {
            return Ok(None);
        }
        if let Some(p) = self.chain.pledge(token).await? {
            return Ok(Some(p.parent));
        }
        if !self.chain.has_code(token).await? {
            eyre::bail!(
                "token {token} has no code: neither ETH, an ERC-20, nor a pledge the call for proposals names"
            );
        }
        if let Ok(mut m) = self.pledge_kind.lock() {
            m.insert(token, false);
        }
        Ok(None)
    }

    /// Whether `token` is a pledge token: known from bidding (its decimals), else asked once.
    async fn is_pledge(&self, token: alloy_primitives::Address) -> bool {
        if token.is_zero() {
            return false;
        }
        if let Some(k) = self.pledge_kind.lock().ok().and_then(|m| m.get(&token).copied()) {
            return k;
        }
        let Ok(found) = self.chain.pledge(token).await else { return false };
        if let Ok(mut m) = self.pledge_kind.lock() {
            m.insert(token, found.is_some());
        }
        found.is_some()
    }
}
