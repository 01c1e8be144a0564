//! `reef agent`: run any program as an agent's brain on a Reef node (`run`), or make a key
//! (`keygen`).
//!
//! `run` connects and authenticates with the key, registers the card, joins every group the
//! agent belongs to (and every group it is invited to), feeds messages to the SDK's
//! conversation engine and, for each task assigned to it, runs `--exec` with the task JSON on
//! stdin; stdout (JSON, or text) is the result and the exit code says success. The result is
//! posted as an `execution` message; conclusions bubble up to parent groups.
//!
//! The runtime (bidding, settling, reconnecting) is the `reef-earning-agent` library: `run`
//! only turns its flags into that library's builder, `--exec` into a task handler that spawns
//! the program, and prints the library's events.

use std::{path::PathBuf, process::Stdio};

use alloy_signer_local::PrivateKeySigner;
use clap::{Args, Subcommand};
use eyre::WrapErr;
use reef_earning_agent::{
    BidPolicy, EarningAgent, EvalRequest, Event as AgentEvent, Task, TaskHandler, TaskOutcome,
};
use reef_wire::AgentCard;
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
    /// Give the agent an ERC-8004 identity whose agentURI is its registration file on a node.
    Register(Box<super::agent_register::RegisterArgs>),
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
            let mut row = json!({ "bounty": format!("{id:#066x}"), "kind": name, "token": token, "paid": paid.to_string(), "tx": log.transaction_hash });
            // Paid in a pledge token: credits, worth the parent's token once it settled.
            if let Some(p) = client.pledge(token).await? {
                let left = client.ledger_credit(token, me).await?;
                row["pledge"] = json!({
                    "parent": format!("{:#066x}", p.parent), "state": p.state,
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
    after_help = "Example:\n  reef agent run --node ws://127.0.0.1:7700/v1/ws --key $KEY --name summarizer \\\n    --description 'summarizes text' --skills summarization,english --price 2 --exec 'python3 brain.py'\n  reef agent run --key $KEY --rpc-url http://127.0.0.1:8545 --bid-price 1 \\\n    --mcp 'npx -y @modelcontextprotocol/server-everything'   # earn with an MCP server's tools\n  reef agent run --key $KEY --rpc-url http://127.0.0.1:8545 --bid-price 1 \\\n    --a2a http://127.0.0.1:9999   # earn with a remote A2A agent (its card's skills)\n\nThe program gets {\"group_id\",\"task_id\",\"input\",\"assigner\",\"mode\"} on stdin and prints its result on stdout;\nexit code 0 = done, anything else = failed. With --json, one line per finished task goes to stdout."
)]
struct RunArgs {
    /// Node WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:7700/v1/ws", env = "REEF_NODE_URL")]
    node: String,
    /// The agent's private key (hex). Off local chains it needs --allow-raw-key: keep real
    /// keys in a keystore (--account / --keystore).
    #[arg(
        long,
        env = "REEF_AGENT_KEY",
        hide_env_values = true,
        required_unless_present_any = ["account", "keystore"],
        conflicts_with_all = ["account", "keystore"]
    )]
    key: Option<String>,
    /// The agent's key from the named keystore in Foundry's folder (see `reef wallet`).
    #[arg(long, value_name = "NAME", conflicts_with = "keystore")]
    account: Option<String>,
    /// The agent's key from this encrypted keystore file.
    #[arg(long, value_name = "FILE")]
    keystore: Option<std::path::PathBuf>,
    /// File whose first line is the keystore's password (else $REEF_KEYSTORE_PASSWORD, else a
    /// prompt).
    #[arg(long, value_name = "FILE")]
    password_file: Option<std::path::PathBuf>,
    /// Accept --key (a raw hex key) on a chain that is not a local devnet.
    #[arg(long)]
    allow_raw_key: bool,
    /// Card: name.
    #[arg(long, default_value = "reef-agent")]
    name: String,
    /// Card: description.
    #[arg(long, default_value = "")]
    description: String,
    /// Card: image URL (the `image` of its ERC-8004 registration file, `reef agent register`).
    #[arg(long, value_name = "URL")]
    image: Option<String>,
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
    #[arg(long, required_unless_present_any = ["mcp", "mcp_url", "llm", "a2a"])]
    exec: Option<String>,
    /// Let an LLM be the brain: the base URL of an OpenAI-compatible chat-completions API
    /// (llama.cpp server, vLLM, Ollama, a hosted API; e.g. http://127.0.0.1:8080/v1). The model
    /// decides whether and at what price to bid (within --bid-min/--bid-max), performs each task
    /// with tool calling (the --mcp server's tools), and with --allow-sub-bounties splits a task
    /// into funded sub-bounties and combines their verified results.
    #[arg(long, value_name = "URL", conflicts_with = "exec", requires = "model")]
    llm: Option<String>,
    /// With --llm: the model's name.
    #[arg(long)]
    model: Option<String>,
    /// With --llm: the environment variable holding the API key (never logged; unset = none).
    #[arg(long, default_value = "OPENAI_API_KEY", value_name = "VAR")]
    llm_key_env: String,
    /// With --llm: a folder whose bid.md and/or work.md replace the default prompts (the
    /// repository's prompts/ folder shows them).
    #[arg(long, value_name = "DIR")]
    llm_prompts: Option<PathBuf>,
    /// With --llm: most chat turns per task (each round of tool calls is one).
    #[arg(long, default_value_t = 8)]
    llm_max_steps: usize,
    /// With --llm: the lowest price the model may ask, in whole token units.
    #[arg(long, default_value = "0", requires = "llm")]
    bid_min: String,
    /// With --llm: the highest price the model may ask, in whole token units (default: the
    /// budget).
    #[arg(long, requires = "llm")]
    bid_max: Option<String>,
    /// With --llm: the model may post sub-bounties funded from the task's pending reward, at
    /// most this many token units per task (needs --rpc-url).
    #[arg(long, value_name = "UNITS", requires = "llm")]
    allow_sub_bounties: Option<String>,
    /// Earn with the tools of an MCP server instead of --exec: the command that starts it
    /// (MCP over stdio, through `sh -c`). Its tool names become the card's skills and their
    /// descriptions its description; the agent bids on bounties whose skills name a tool and
    /// whose input fits the tool's input schema, calls the tool, and delivers its result.
    #[arg(long, conflicts_with_all = ["exec", "mcp_url"])]
    mcp: Option<String>,
    /// Like --mcp, for an MCP server reached over streamable HTTP at this URL.
    #[arg(long, conflicts_with = "exec")]
    mcp_url: Option<String>,
    /// Earn with a remote A2A 1.0 agent instead of --exec: its agent card's URL (or the base
    /// URL it is served under). The card's skills go on the Reef card; each won task is sent
    /// to the agent over JSON-RPC (SendMessage, then GetTask until it ends) and its artifact is
    /// delivered as the result, verified and paid as any other (docs/a2a.md).
    #[arg(long, value_name = "CARD_URL", conflicts_with_all = ["exec", "mcp", "mcp_url", "llm"])]
    a2a: Option<String>,
    /// With --a2a: a bearer token for an agent whose card asks for one.
    #[arg(long, env = "REEF_A2A_TOKEN", hide_env_values = true, requires = "a2a")]
    a2a_token: Option<String>,
    /// With --mcp/--mcp-url: also bid on bounties asking for SKILL, with tool TOOL
    /// (repeatable; e.g. `--mcp-skill timezones=convert_time`).
    #[arg(long = "mcp-skill", value_name = "SKILL=TOOL")]
    mcp_skills: Vec<String>,
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

impl AgentArgs {
    /// Whether this is `reef agent run`, the long-running earning agent (`reef` runs it on a
    /// single-threaded runtime).
    pub fn runs_an_earning_agent(&self) -> bool {
        matches!(self.command, AgentCommand::Run(_))
    }

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
            AgentCommand::Register(a) => a.run().await,
        }
    }
}

impl RunArgs {
    /// Parses the flags into the earning-agent library's builder and runs it; prints its
    /// events (stderr; with `--json`, one line per finished task on stdout).
    async fn run(self) -> eyre::Result<()> {
        let signer = self.signer().await?;
        let mut card = AgentCard {
            name: self.name.clone(),
            description: self.description.clone(),
            skills: self.skills.clone(),
            price: self.price,
            payment_tokens: self.payment_tokens.clone(),
            image: self.image.clone(),
            ..Default::default()
        };
        let agent = EarningAgent::builder().signer(signer.clone());
        let mcp = self.mcp_tools().await?;
        let mut llm_bid = None;
        let agent = if let Some(url) = &self.llm {
            // The MCP server's tools are the model's tools: advertise them as with --mcp alone.
            if let Some(tools) = &mcp {
                for s in tools.skills() {
                    if !card.skills.contains(&s) {
                        card.skills.push(s);
                    }
                }
                card.description =
                    format!("{} {}", card.description, tools.description()).trim().to_string();
            }
            let handler = self.llm_handler(url, &signer, mcp).await?;
            llm_bid = Some(handler.bid_policy(self.bid_min.clone(), self.bid_max.clone()));
            if let Some(tools) = &handler_tools_note(&self) {
                eprintln!("{tools}");
            }
            agent.task_handler(handler)
        } else if let Some(url) = &self.a2a {
            let remote =
                reef_earning_agent::a2a::A2aRemote::connect(url, self.a2a_token.clone()).await?;
            // The remote card's skills are the skills bid for; its text feeds discovery.
            adopt(&mut card, remote.skills(), remote.name());
            if card.description.is_empty() {
                card.description = remote.description().to_string();
            }
            eprintln!(
                "forwarding tasks to the A2A agent at {}: {}",
                remote.endpoint(),
                card.skills.join(", ")
            );
            agent.task_handler(remote)
        } else if let Some(tools) = mcp {
            // The tools are the skills; their descriptions feed discovery.
            adopt(&mut card, tools.skills(), tools.server_name());
            card.description = match card.description.as_str() {
                "" => tools.description(),
                d => format!("{d}. {}", tools.description()),
            };
            eprintln!(
                "serving the tools of MCP server {:?}: {}",
                tools.server_name(),
                card.skills.join(", ")
            );
            agent.task_handler(tools)
        } else {
            agent.task_handler(ExecBrain {
                program: self.exec.clone().unwrap_or_default(),
                shared: self.share_key_with_brain.then(|| SharedKey {
                    key: alloy_primitives::hex::encode_prefixed(signer.to_bytes()),
                    address: signer.address(),
                    node_http: reef_earning_agent::http_base(&self.node),
                    rpc: self.rpc_url.clone(),
                }),
            })
        };
        let mut agent = agent
            .node(&self.node)
            .card(card)
            .bid(match (llm_bid, &self.bid_price) {
                (Some(asking), _) => asking,
                (None, Some(p)) => BidPolicy::fixed(p),
                (None, None) => BidPolicy::FullBudget,
            })
            .eta(self.eta)
            .parallel(usize::from(self.parallel))
            .no_bid(self.no_bid)
            .no_pledges(self.no_pledges)
            .sub_bounties(self.share_key_with_brain)
            .wait_node(self.wait_node)
            .on_event(print_event(self.json));
        if let Some(rpc) = &self.rpc_url {
            agent = agent.rpc(rpc);
        }
        if let Some(n) = self.max_tasks {
            agent = agent.max_tasks(n);
        }
        if let Some(program) = &self.evaluate {
            agent = agent.evaluator(sandboxed_evaluator(program.display().to_string()));
        }
        agent.build()?.run().await?;
        Ok(())
    }
}

impl RunArgs {
    /// The agent's key. A raw --key with --rpc-url is checked against the chain id (refused
    /// off local chains unless --allow-raw-key).
    async fn signer(&self) -> eyre::Result<PrivateKeySigner> {
        let spec = super::chain::KeySpec {
            key_flag: "--key",
            key: self.key.as_deref(),
            account: self.account.as_deref(),
            keystore: self.keystore.as_deref(),
            password_file: self.password_file.as_deref(),
            allow_raw_key: self.allow_raw_key,
        };
        let chain_id = match (&self.key, &self.rpc_url) {
            (Some(_), Some(rpc)) if !self.allow_raw_key => {
                let probe = escrow_client::ReefClient::probe(
                    rpc,
                    escrow_client::ClientOptions {
                        retry: escrow_client::RetryPolicy::quick(),
                        ..Default::default()
                    },
                )?;
                match probe.chain_id_on_rpc().await {
                    Ok(id) => Some(id),
                    Err(e) => {
                        // The chain is unreachable now (the agent still starts and waits for
                        // it): the check runs as soon as it answers, before the agent can sign
                        // anything bound to that chain, and stops the agent if it fails.
                        eprintln!(
                            "warning: cannot read the chain id from --rpc-url yet ({e}); a raw --key is checked once it answers"
                        );
                        tokio::spawn(async move {
                            loop {
                                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                                if let Ok(id) = probe.chain_id_on_rpc().await {
                                    if !escrow_client::wallet::is_local_chain(id) {
                                        eprintln!(
                                            "error: {}",
                                            escrow_client::wallet::WalletError::RawKeyRefused {
                                                flag: "--key",
                                                chain_id: id
                                            }
                                        );
                                        std::process::exit(2);
                                    }
                                    return;
                                }
                            }
                        });
                        None
                    }
                }
            }
            _ => None,
        };
        spec.resolve(chain_id)?
            .ok_or_else(|| eyre::eyre!("no key: pass --account NAME, --keystore FILE or --key"))
    }
}

/// The line `reef agent run --llm` prints about its brain.
/// A served remote's skills (an MCP server's tools, an A2A agent's skills) go on the card, and
/// its name replaces the default one.
fn adopt(card: &mut reef_wire::AgentCard, skills: Vec<String>, name: &str) {
    for s in skills {
        if !card.skills.contains(&s) {
            card.skills.push(s);
        }
    }
    if card.name == "reef-agent" && !name.is_empty() {
        card.name = name.to_string();
    }
}

fn handler_tools_note(args: &RunArgs) -> Option<String> {
    let model = args.model.as_deref()?;
    Some(format!(
        "brain: model {model:?} at {}{}{}",
        args.llm.as_deref().unwrap_or_default(),
        if args.mcp.is_some() || args.mcp_url.is_some() {
            ", with the MCP server's tools"
        } else {
            ""
        },
        match &args.allow_sub_bounties {
            Some(b) => format!(", may fund sub-bounties up to {b} per task"),
            None => String::new(),
        }
    ))
}

/// `--allow-sub-bounties`: posts the model's sub-bounties with `reef bounty post --node
/// --from-reward <task>` as this agent, each per-task budget enforced on the reward token's
/// units, and answers with the verified result.
struct CliSubBounties {
    signer: PrivateKeySigner,
    node_http: String,
    rpc: String,
    budget: String,
    client: tokio::sync::OnceCell<escrow_client::ReefClient>,
    /// Per parent bounty: rewards posted so far (base units).
    spent: std::sync::Mutex<std::collections::HashMap<String, u128>>,
}

impl CliSubBounties {
    async fn client(&self) -> eyre::Result<&escrow_client::ReefClient> {
        self.client
            .get_or_try_init(|| async {
                let info =
                    super::nodeapi::NodeApi::new(&self.node_http).get("/v1/market/info").await?;
                let deployment: escrow_client::Deployment =
                    serde_json::from_value(info["deployment"].clone())
                        .wrap_err("the node sent no deployment")?;
                Ok(escrow_client::ReefClient::connect(
                    &self.rpc,
                    self.signer.clone(),
                    deployment,
                    Default::default(),
                )
                .await?)
            })
            .await
    }

    async fn post(&self, parent: String, args: Value) -> eyre::Result<Value> {
        let client = self.client().await?;
        let parent_id = crate::market::parse_id(&parent).map_err(|e| eyre::eyre!("{e}"))?;
        let token = client.bounty(parent_id).await?.record.token;
        let decimals = if token.is_zero() {
            18
        } else {
            client
                .view(token, escrow_client::bindings::token::ReefTestToken::decimalsCall {})
                .await?
        };
        let reward = args["reward"].as_str().unwrap_or_default().to_string();
        let want: u128 = super::chain::parse_amount(&reward, decimals)
            .wrap_err("reward")?
            .try_into()
            .map_err(|_| eyre::eyre!("reward {reward} is too large"))?;
        let budget: u128 = super::chain::parse_amount(&self.budget, decimals)?
            .try_into()
            .map_err(|_| eyre::eyre!("--allow-sub-bounties is too large"))?;
        {
            let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
            let used = spent.entry(parent.clone()).or_default();
            if want == 0 || *used + want > budget {
                eyre::bail!(
                    "a reward of {reward} does not fit: this task's sub-bounty budget is {} and {} of it is used",
                    self.budget,
                    alloy::primitives::utils::format_units(
                        alloy::primitives::U256::from(*used),
                        decimals
                    )?
                );
            }
            *used += want;
        }
        let mut argv: Vec<String> = vec![
            args["description"].as_str().unwrap_or("sub-task").to_string(),
            "--reward".into(),
            reward,
            "--node".into(),
            self.node_http.clone(),
            "--from-reward".into(),
            parent,
            "--input".into(),
            args["input"].to_string(),
            "--bid-window".into(),
            "2s".into(),
            "--deadline".into(),
            "20m".into(),
        ];
        let skills: Vec<String> =
            serde_json::from_value(args["skills"].clone()).unwrap_or_default();
        if !skills.is_empty() {
            argv.extend(["--skills".into(), skills.join(",")]);
        }
        match (&args["expect"], args["verifier"].as_str()) {
            (Value::Null, Some(v)) => {
                argv.extend(["--verify".into(), "command".into(), "--verifier".into(), v.into()])
            }
            (Value::Null, None) => eyre::bail!(
                "give `expect` (the exact result) or `verifier` (a verifier program on the node): a sub-bounty's result must be verifiable"
            ),
            (expect, _) => argv.extend([
                "--verify".into(),
                "hash".into(),
                "--expect".into(),
                expect.to_string(),
            ]),
        }
        let quiet = |_: String| {};
        let out = super::bounty::post_through_node(client, &argv, &quiet).await?;
        let summary = out.summary();
        if summary["paid"] != true {
            eyre::bail!("the sub-bounty {} did not pay for work: {summary}", out.id);
        }
        Ok(
            json!({ "bounty": out.id, "result": summary["verdict"]["result"], "status": summary["status"] }),
        )
    }
}

/// [`CliSubBounties`] shared by the tasks that run at once.
struct SharedSubBounties(std::sync::Arc<CliSubBounties>);

impl reef_earning_agent::llm::SubBountyPoster for SharedSubBounties {
    fn post(
        &self,
        parent: String,
        args: Value,
    ) -> reef_earning_agent::BoxFuture<Result<Value, String>> {
        let me = self.0.clone();
        Box::pin(async move {
            CliSubBounties::post(&me, parent, args).await.map_err(|e| format!("{e:#}"))
        })
    }
}

impl RunArgs {
    /// `--llm`: the model as the agent's brain (prompts, key from the environment, the MCP
    /// server's tools and sub-bounties when given).
    async fn llm_handler(
        &self,
        url: &str,
        signer: &PrivateKeySigner,
        mcp: Option<reef_earning_agent::mcp::McpTools>,
    ) -> eyre::Result<reef_earning_agent::llm::LlmHandler> {
        use reef_earning_agent::llm::{Llm, LlmConfig, LlmHandler, Prompts};
        let prompts = match &self.llm_prompts {
            Some(dir) => Prompts::load(dir)?,
            None => Prompts::default(),
        };
        let llm = Llm::new(LlmConfig {
            base_url: url.to_string(),
            model: self.model.clone().unwrap_or_default(),
            api_key: std::env::var(&self.llm_key_env).ok().filter(|k| !k.is_empty()),
            prompts,
            max_steps: self.llm_max_steps,
            timeout: std::time::Duration::from_secs(120),
        });
        let mut handler = LlmHandler::new(llm);
        if let Some(tools) = mcp {
            handler = handler.with_mcp(std::sync::Arc::new(tools));
        }
        if let Some(budget) = &self.allow_sub_bounties {
            let rpc = self.rpc_url.clone().ok_or_else(|| {
                eyre::eyre!(
                    "--allow-sub-bounties needs --rpc-url (sub-bounties are funded on-chain)"
                )
            })?;
            let poster = std::sync::Arc::new(CliSubBounties {
                signer: signer.clone(),
                node_http: reef_earning_agent::http_base(&self.node),
                rpc,
                budget: budget.clone(),
                client: Default::default(),
                spent: Default::default(),
            });
            handler = handler
                .with_sub_bounties(std::sync::Arc::new(SharedSubBounties(poster)), budget.clone());
        }
        Ok(handler)
    }

    /// `--mcp` / `--mcp-url`: connects to the MCP server, lists its tools, applies the
    /// `--mcp-skill` mappings.
    async fn mcp_tools(&self) -> eyre::Result<Option<reef_earning_agent::mcp::McpTools>> {
        use reef_earning_agent::mcp::McpTools;
        let tools = match (&self.mcp, &self.mcp_url) {
            (Some(cmd), _) => McpTools::stdio(cmd).await?,
            (None, Some(url)) => McpTools::http(url).await?,
            (None, None) => {
                if !self.mcp_skills.is_empty() {
                    eyre::bail!("--mcp-skill needs --mcp or --mcp-url");
                }
                return Ok(None);
            }
        };
        let mut tools = tools;
        for m in &self.mcp_skills {
            let (skill, tool) =
                m.split_once('=')
                    .filter(|(s, t)| !s.is_empty() && !t.is_empty())
                    .ok_or_else(|| eyre::eyre!("--mcp-skill {m:?} is not SKILL=TOOL"))?;
            tools = tools.alias(skill, tool)?;
        }
        Ok(Some(tools))
    }
}

/// How `reef agent run` shows the runtime's events: one line each on stderr; with `--json`, a
/// finished task is a JSON line on stdout instead.
fn print_event(json: bool) -> impl Fn(&AgentEvent) + Send + Sync + 'static {
    move |ev| match ev {
        AgentEvent::TaskDone { group_id, task_id, ok, result, seq } if json => println!(
            "{}",
            json!({ "group_id": group_id, "task_id": task_id, "ok": ok, "seq": seq, "result": result })
        ),
        ev => eprintln!("{ev}"),
    }
}

/// `--evaluate`: the verifier program judges a result in the node's sandbox (stdin
/// `{"input", "result"}`, exit 0 = accept).
fn sandboxed_evaluator(
    program: String,
) -> impl Fn(EvalRequest) -> futures::future::BoxFuture<'static, bool> + Send + Sync + 'static {
    use crate::market::sandbox;
    move |req| {
        let program = program.clone();
        Box::pin(async move {
            let Ok(stdin) =
                serde_json::to_vec(&json!({ "input": req.input, "result": req.result }))
            else {
                return false;
            };
            sandbox::run_sandboxed(&program, &[], &stdin, &sandbox::SandboxLimits::default())
                .await
                .accepted
        })
    }
}

/// What `--share-key-with-brain` hands the brain.
struct SharedKey {
    key: String,
    address: alloy_primitives::Address,
    node_http: String,
    rpc: Option<String>,
}

/// `--exec`: the task handler that runs the brain program once per task, the task JSON on
/// stdin, its stdout (JSON, or text) the result, its exit code success.
struct ExecBrain {
    program: String,
    shared: Option<SharedKey>,
}

impl ExecBrain {
    /// Environment handed to the brain (empty unless --share-key-with-brain): the key, the
    /// node, `reef` itself and, once the marketplace is connected, the chain settings.
    fn env(&self, task: &Task) -> Vec<(String, String)> {
        let Some(s) = &self.shared else { return Vec::new() };
        let mut env = vec![
            ("REEF_PRIVATE_KEY".to_string(), s.key.clone()),
            ("REEF_NODE_HTTP".to_string(), s.node_http.clone()),
        ];
        if let Ok(bin) = std::env::current_exe() {
            env.push(("REEF_BIN".into(), bin.display().to_string()));
        }
        if let (Some(rpc), Some(dep)) = (&s.rpc, &task.deployment) {
            env.push(("REEF_RPC_URL".into(), rpc.clone()));
            let dir = std::env::temp_dir().join(format!("reef-agent-{}", s.address));
            if dep.save(&escrow_client::Deployment::path_in(&dir, dep.chain_id)).is_ok() {
                env.push(("REEF_DEPLOYMENTS".into(), dir.display().to_string()));
            }
        }
        env
    }
}

impl TaskHandler for ExecBrain {
    fn run(&self, task: Task) -> reef_earning_agent::BoxFuture<TaskOutcome> {
        let (program, env) = (self.program.clone(), self.env(&task));
        Box::pin(async move { execute(&program, &task, &env).await })
    }
}

/// Runs the brain program on one task.
async fn execute(program: &str, task: &Task, env: &[(String, String)]) -> TaskOutcome {
    let failed = |why: String| TaskOutcome { ok: false, result: json!(why), exit_code: -1 };
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
        Err(e) => return failed(format!("cannot start program: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{}\n", task.to_json()).as_bytes()).await;
    }
    match child.wait_with_output().await {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let result = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let exit_code = out.status.code().unwrap_or(-1);
            TaskOutcome { ok: out.status.success(), result, exit_code }
        }
        Err(e) => failed(format!("program failed: {e}")),
    }
}
