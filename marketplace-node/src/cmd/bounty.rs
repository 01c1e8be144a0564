//! `reef bounty post|show|list|refund`: the poster's on-chain verbs.

use alloy::primitives::{Address, B256, U256, utils::format_units};
use clap::{Args, Subcommand};
use escrow_client::{
    NewBounty, ReefClient, Status, TxOutcome,
    escrow::{BountyJson, random_salt},
};
use eyre::eyre;

use super::chain::{
    ChainArgs, parse_amount, parse_bounty_id, parse_duration, parse_token, short_id, spinner,
};

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
    Post(Box<PostArgs>),
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
    /// Accept the submitted result and pay the provider (you must be the evaluator).
    #[command(after_help = "Example:\n  reef bounty accept 0x3f2a…")]
    Accept {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// Reject the submitted result (you must be the evaluator); the poster is refunded.
    #[command(after_help = "Example:\n  reef bounty reject 0x3f2a…")]
    Reject {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// Escalate to the bounty's arbiter, posting the dispute bond (poster or provider).
    #[command(after_help = "Example:\n  reef bounty dispute 0x3f2a…")]
    Dispute {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// Arbiter: rule a split, giving the provider this share of the price in basis points.
    #[command(after_help = "Example:\n  reef bounty resolve 0x3f2a… --provider-bps 3000")]
    Resolve {
        /// Bounty id (hex or decimal).
        id: String,
        /// Provider's share of the price (0..=10000 bps).
        #[arg(long)]
        provider_bps: u16,
    },
    /// Cancel a funded bounty before it is awarded (poster only); the escrow is refunded.
    #[command(after_help = "Example:\n  reef bounty cancel 0x3f2a…")]
    Cancel {
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
    /// Run the marketplace through this node (sealed bidding, verification, settlement);
    /// without it the bounty is only escrowed on-chain.
    #[arg(long, env = "REEF_NODE_HTTP")]
    node: Option<String>,
    /// Skills a provider needs (comma separated; with --node).
    #[arg(long, value_delimiter = ',')]
    skills: Vec<String>,
    /// Verification with --node: `hash` (needs --expect), `command` (needs --verifier) or `poster`.
    #[arg(long, default_value = "poster")]
    verify: String,
    /// Expected result (JSON text or @file) for `--verify hash`; only its hash is sent.
    #[arg(long)]
    expect: Option<String>,
    /// Verifier program name on the node for `--verify command`.
    #[arg(long)]
    verifier: Option<String>,
    /// Task input (JSON text or @file) handed to the provider.
    #[arg(long)]
    input: Option<String>,
    /// Sealed-bid window with --node.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    bid_window: std::time::Duration,
    /// Return after the award instead of following the bounty to its end.
    #[arg(long)]
    detach: bool,
}

/// JSON text or `@path` → value.
fn json_arg(s: &str) -> eyre::Result<serde_json::Value> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| eyre!("cannot read {path}: {e}"))?
        }
        None => s.to_string(),
    };
    serde_json::from_str(&text)
        .map_err(|e| eyre!("not valid JSON ({e}): {}", text.chars().take(80).collect::<String>()))
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
            BountyCmd::Accept { id } => {
                self.verb(&client, parse_bounty_id(id)?, "accept", None).await
            }
            BountyCmd::Reject { id } => {
                self.verb(&client, parse_bounty_id(id)?, "reject", None).await
            }
            BountyCmd::Dispute { id } => {
                self.verb(&client, parse_bounty_id(id)?, "dispute", None).await
            }
            BountyCmd::Resolve { id, provider_bps } => {
                self.verb(&client, parse_bounty_id(id)?, "resolve", Some(*provider_bps)).await
            }
            BountyCmd::Cancel { id } => {
                self.verb(&client, parse_bounty_id(id)?, "cancel", None).await
            }
        }
    }

    async fn decimals(client: &ReefClient, token: Address) -> eyre::Result<u8> {
        if token.is_zero() {
            return Ok(18);
        }
        client
            .view(token, escrow_client::bindings::token::ReefTestToken::decimalsCall {})
            .await
            .map_err(|e| eyre!("token {token} does not answer decimals(): {e}"))
    }

    async fn post(&self, client: &ReefClient, p: &PostArgs) -> eyre::Result<()> {
        let token = parse_token(&p.token, client.deployment())?;
        let decimals = Self::decimals(client, token).await?;
        let amount = parse_amount(&p.reward, decimals)?;
        let amount: u128 =
            amount.try_into().map_err(|_| eyre!("reward does not fit in 128 bits"))?;
        let secs = |d: std::time::Duration| {
            u32::try_from(d.as_secs()).map_err(|_| eyre!("window too long"))
        };
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
        if let Some(node) = &p.node {
            return self.post_via_node(client, p, nb, node, decimals).await;
        }
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
            println!(
                "  reward   {} ({})",
                format_units(U256::from(record.amount), decimals)?,
                token_name(token)
            );
            println!("  deadline in {}s", p.deadline.as_secs());
        }
        Ok(())
    }

    async fn post_via_node(
        &self,
        client: &ReefClient,
        p: &PostArgs,
        mut nb: NewBounty,
        node_url: &str,
        decimals: u8,
    ) -> eyre::Result<()> {
        use super::nodeapi::NodeApi;
        use serde_json::json;
        let mut api = NodeApi::new(node_url);
        let info = api
            .get("/v1/market/info")
            .await
            .map_err(|e| eyre!("{e} (is the node started with --rpc-url?)"))?;
        let node_chain = info["deployment"]["chainId"].as_u64().unwrap_or_default();
        if node_chain != client.deployment().chain_id {
            return Err(eyre!(
                "the node settles on chain {node_chain} but --rpc-url serves chain {}",
                client.deployment().chain_id
            ));
        }
        let evaluator: Address = info["evaluator"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| eyre!("node reported no evaluator"))?;
        let verify = match p.verify.as_str() {
            "hash" => {
                let expected = p
                    .expect
                    .as_deref()
                    .ok_or_else(|| eyre!("--verify hash needs --expect <json|@file>"))?;
                let v = json_arg(expected)?;
                nb.evaluator = Some(evaluator);
                json!({ "mode": "hash", "expected": crate::market::verify::result_hash(&v) })
            }
            "command" => {
                let name = p
                    .verifier
                    .as_deref()
                    .ok_or_else(|| eyre!("--verify command needs --verifier <name>"))?;
                nb.evaluator = Some(evaluator);
                json!({ "mode": "command", "verifier": name })
            }
            "poster" => {
                nb.evaluator = None;
                json!({ "mode": "poster" })
            }
            other => return Err(eyre!("--verify {other:?}: use hash, command or poster")),
        };
        let input = match &p.input {
            Some(s) => json_arg(s)?,
            None => serde_json::Value::Null,
        };
        let grace = info["award_grace_secs"].as_u64().unwrap_or(300);
        if nb.deadline <= client.chain_time().await? + p.bid_window.as_secs() + grace {
            return Err(eyre!(
                "--deadline is too short: it must exceed the bid window ({}s) plus the node's award grace ({grace}s)",
                p.bid_window.as_secs()
            ));
        }
        // Pre-flight before anything is announced: funds and allowance for the award.
        let terms = client.terms(&nb).await?;
        let amount = U256::from(terms.amount);
        if let Some(tx) = client
            .ensure_can_pay(terms.token, client.deployment().bounty_escrow, amount, p.approve)
            .await?
        {
            eprintln!("  approve      tx {}  gas {}", tx.hash, tx.gas_used);
        }
        api.login(client.signer()).await?;
        let salt = p.salt.unwrap_or_else(random_salt);
        let req = json!({
            "salt": salt,
            "record": escrow_client::escrow::RecordJson::from(&terms),
            "description": p.description,
            "input": input,
            "skills": p.skills,
            "verify": verify,
            "bid_window_secs": p.bid_window.as_secs(),
        });
        let posted = api.post("/v1/market/bounties", req).await?;
        let id = posted["id"].as_str().unwrap_or_default().to_string();
        let mut award: Option<TxOutcome> = None;
        if p.contest.is_some() {
            // Contests are escrowed up front; entries arrive on-chain until the deadline.
            let (_, _, txs) = client.post_and_fund(salt, terms.clone(), p.approve).await?;
            for t in &txs {
                eprintln!("  {:<16} tx {}  gas {}", t.action, t.hash, t.gas_used);
            }
            award = txs.last().cloned();
        }
        eprintln!("bounty {id}: call for proposals sent to {} agents", posted["invited"]);
        let pb = spinner("collecting sealed bids");
        let mut seen_events = 0usize;
        let mut unreachable_since: Option<std::time::Instant> = None;
        let result = loop {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            // The node may restart mid-lifecycle (its state is durable): keep polling for a while.
            let v = match api.get(&format!("/v1/market/bounties/{id}")).await {
                Ok(v) => {
                    unreachable_since = None;
                    v
                }
                Err(e) => {
                    let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > std::time::Duration::from_secs(120) {
                        return Err(e.wrap_err(format!(
                            "lost the node for 2 minutes; follow later with `reef bounty show {id}`"
                        )));
                    }
                    pb.set_message(format!("node unreachable, retrying ({e})"));
                    if e.to_string().contains("401") {
                        let _ = api.login(client.signer()).await;
                    }
                    continue;
                }
            };
            if let Some(evs) = v["events"].as_array() {
                for e in evs.iter().skip(seen_events) {
                    pb.println(format!(
                        "  {:<16} {}",
                        e["event"].as_str().unwrap_or(""),
                        e["detail"].as_str().unwrap_or("")
                    ));
                }
                seen_events = evs.len();
            }
            let phase = v["phase"].as_str().unwrap_or("").to_string();
            pb.set_message(format!("{phase} ({} bids)", v["bids"]));
            if phase == "awaiting_award" && award.is_none() {
                let signed = &v["winning_bid"];
                let bj: escrow_client::escrow::BidJson =
                    serde_json::from_value(signed["bid"].clone())
                        .map_err(|e| eyre!("node sent a malformed winning bid: {e}"))?;
                let bid = escrow_client::bindings::escrow::IBountyTypes::Bid::try_from(&bj)?;
                let sig: alloy::primitives::Bytes =
                    serde_json::from_value(signed["signature"].clone())
                        .map_err(|e| eyre!("node sent a malformed signature: {e}"))?;
                pb.set_message("awarding on-chain (create + fund + award)");
                let (_, _, txs) = client
                    .post_fund_and_award(salt, terms.clone(), bid.clone(), sig, p.approve)
                    .await?;
                for t in &txs {
                    pb.println(format!("  {:<16} tx {}  gas {}", t.action, t.hash, t.gas_used));
                }
                pb.println(format!(
                    "  awarded to {} at {} ({} decimals)",
                    bid.bidder,
                    format_units(bid.amount, decimals).unwrap_or_default(),
                    decimals
                ));
                award = txs.last().cloned();
                if p.detach {
                    break v;
                }
            }
            if phase == "settled" || phase == "failed" {
                break v;
            }
            // A rejection settles by refund (after the challenge window or the deadline): the
            // outcome is known now, so stop following.
            if phase == "settling" && v["verdict"]["accept"] == false {
                pb.println("  rejected: the poster is refunded when the deadline passes (`reef bounty refund`)");
                break v;
            }
        };
        pb.finish_and_clear();
        let onchain = client.bounty(parse_bounty_id(&id)?).await.ok();
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "id": id,
                    "phase": result["phase"],
                    "winner": result["winner"],
                    "verdict": result["verdict"],
                    "status": onchain.as_ref().map(|s| s.status.name()),
                    "award_tx": award,
                }))?
            );
        } else {
            println!("bounty {id}");
            println!("  phase    {}", result["phase"].as_str().unwrap_or(""));
            if let Some(s) = &onchain {
                println!("  on-chain {}", s.status);
                if !s.record.provider.is_zero() {
                    println!(
                        "  provider {} at price {}",
                        s.record.provider,
                        format_units(U256::from(s.record.price), decimals)?
                    );
                }
            }
            if let Some(v) = result["verdict"].as_object() {
                println!(
                    "  verdict  {} ({})",
                    if v["accept"] == true { "accept" } else { "reject" },
                    v["reason"].as_str().unwrap_or("")
                );
            }
            if let Some(n) = result["note"].as_str() {
                println!("  note     {n}");
            }
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
            println!(
                "  block {:>6}  {:<16} {}",
                h.block,
                h.event,
                h.tx.map(|t| t.to_string()).unwrap_or_default()
            );
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
        println!("{:<20} {:<10} {:>24} {:<8} provider", "id", "status", "amount", "token");
        for s in &rows {
            let prov = if s.record.provider.is_zero() {
                "-".to_string()
            } else {
                s.record.provider.to_string()
            };
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

    /// accept / reject / dispute / resolve / cancel, with the role and state checked first.
    async fn verb(
        &self,
        client: &ReefClient,
        id: U256,
        verb: &str,
        bps: Option<u16>,
    ) -> eyre::Result<()> {
        let state = client.bounty(id).await?;
        let r = &state.record;
        let me = client.address();
        let need = |ok: bool, why: String| if ok { Ok(()) } else { Err(eyre!(why)) };
        match verb {
            "accept" | "reject" => {
                need(
                    r.evaluator == me,
                    format!("only the evaluator {} may {verb}; you are {me}", r.evaluator),
                )?;
                need(
                    state.status == Status::Submitted,
                    format!("bounty is {}, not submitted: nothing to {verb} yet", state.status),
                )?;
            }
            "dispute" => {
                need(
                    !r.arbiter.is_zero(),
                    "this bounty has no arbiter, so it cannot be disputed".into(),
                )?;
                need(
                    me == r.poster || me == r.provider,
                    "only the poster or the provider may dispute".into(),
                )?;
            }
            "resolve" => {
                need(r.arbiter == me, format!("only the arbiter {} may resolve", r.arbiter))?
            }
            "cancel" => {
                need(r.poster == me, "only the poster may cancel".into())?;
                need(
                    matches!(state.status, Status::Open | Status::Funded),
                    format!("bounty is {}: only unawarded bounties can be cancelled", state.status),
                )?;
            }
            _ => {}
        }
        let pb = spinner(format!("{verb} {id:#x}"));
        let out = match verb {
            "accept" => client.release(id, r).await,
            "reject" => client.reject(id, r).await,
            "dispute" => client.dispute(id, r).await,
            "resolve" => client.resolve(id, r, bps.unwrap_or_default()).await,
            _ => client.cancel(id, r).await,
        };
        pb.finish_and_clear();
        let out = out?;
        let (status, _) = client.status_of(id).await?;
        if self.json {
            println!(
                "{}",
                serde_json::json!({ "id": format!("{id:#x}"), "action": verb, "status": status, "tx": out })
            );
        } else {
            println!(
                "{verb}: bounty {id:#x} is now {status} (tx {}, gas {})",
                out.hash, out.gas_used
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
            println!(
                "{}",
                serde_json::json!({"id": format!("{id:#x}"), "refunded": state.record.amount.to_string(), "tx": out})
            );
        } else {
            println!(
                "refunded {} to {} (tx {}, gas {})",
                state.record.amount, state.record.poster, out.hash, out.gas_used
            );
        }
        Ok(())
    }
}

fn token_name(token: Address) -> String {
    if token.is_zero() { "ETH".into() } else { format!("{token}") }
}
