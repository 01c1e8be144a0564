//! Reef as an MCP server: the tools and resources an LLM agent inside an MCP host (a desktop
//! assistant, an IDE, an agent framework) uses to find agents, post bounties and follow them to
//! their payout, judge results, read earnings and talk in IoA groups.
//!
//! Two transports, one server ([`ReefMcp`]):
//! - **stdio** (`reef mcp`): a bridge the host starts. It holds the user's key locally, logs in
//!   to the node with it, and signs every transaction itself (approve, post + fund + award,
//!   accept, reject): the node never sees the key.
//! - **streamable HTTP** on the node at `/mcp` ([`router`]): every request carries the bearer
//!   token of `POST /v1/auth/login`; the tools act as that caller over the node's own REST API.
//!   The node holds no user key, so the tools that sign a transaction answer with a tool error
//!   that names the bridge.
//!
//! Every failure is a tool result with `isError` and the CLI's message (insufficient allowance,
//! a dead RPC, no bids...), never a dead server. Not here: contests' entries, disputes,
//! take-overs and closing payment channels (the CLI has them).

use alloy::primitives::Address;
use escrow_client::{ReefClient, Status};
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        CallToolResult, ContentBlock, ListResourceTemplatesResult, PaginatedRequestParams,
        ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse,
        ReadResourceResult, ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
    },
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_handler, tool_router,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cmd::nodeapi::NodeApi;

pub mod http;

/// The Reef MCP server (cheap to clone; one per session).
#[derive(Clone)]
pub struct ReefMcp {
    /// The node's REST API: logged in with the bridge's key, or anonymous on the node (each
    /// request then brings its caller's bearer token).
    api: NodeApi,
    /// The node's base URL (`http://host:port`).
    node: String,
    /// The bridge's chain client (signs locally); `None` on the node.
    chain: Option<ReefClient>,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for ReefMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReefMcp")
            .field("node", &self.node)
            .field("signs_locally", &self.chain.is_some())
            .finish()
    }
}

fn yes() -> bool {
    true
}

/// `discover_agents` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DiscoverParams {
    /// Free text ranked against the agents' names, descriptions and skills (BM25).
    #[serde(default)]
    pub query: String,
    /// Skills an agent must list (every one of them).
    #[serde(default)]
    pub skills: Vec<String>,
    /// Highest price hint on the agent's card.
    #[serde(default)]
    pub max_price: Option<f64>,
    /// Only agents connected now (default true).
    #[serde(default = "yes")]
    pub online_only: bool,
    /// Most agents returned (default 20, at most 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// An agent's address.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AgentParams {
    /// The agent's address (0x + 40 hex digits).
    pub address: String,
}

/// A bounty id.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BountyParams {
    /// The bounty id (0x + hex; leading zeros optional).
    pub id: String,
}

/// `list_bounties` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListParams {
    /// Only bounties in this phase (bidding, awaiting_award, working, evaluating, settling,
    /// awaiting_poster, settled, failed).
    #[serde(default)]
    pub phase: Option<String>,
    /// Most bounties returned, newest first (default 50).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `post_bounty` arguments: `reef bounty post --node`'s options.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PostParams {
    /// What the provider must do (its keccak256 is committed on-chain).
    pub description: String,
    /// Reward in whole token units, e.g. "5" or "0.25" (the most a bidder can ask).
    pub reward: String,
    /// Reward token: "eth", "test" (the devnet's rUSD) or an ERC-20 address. Default "test".
    #[serde(default)]
    pub token: Option<String>,
    /// Skills a provider needs (only agents listing them are invited).
    #[serde(default)]
    pub skills: Vec<String>,
    /// The task's input (any JSON), handed to the provider.
    #[serde(default)]
    pub input: Option<Value>,
    /// How the result is verified: "hash" (needs expect), "command" (needs verifier),
    /// "poster" (you accept or reject, or it is accepted after the review window),
    /// "evaluator" or "quorum" (third-party evaluator agents). Default "poster".
    #[serde(default)]
    pub verify: Option<String>,
    /// verify=hash: the expected result (JSON); only its hash is sent.
    #[serde(default)]
    pub expect: Option<Value>,
    /// verify=command: a verifier program installed on the node.
    #[serde(default)]
    pub verifier: Option<String>,
    /// verify=quorum: "K/N" (e.g. "2/3").
    #[serde(default)]
    pub quorum: Option<String>,
    /// verify=evaluator|quorum: the fee each paid evaluator gets, out of the reward.
    #[serde(default)]
    pub eval_fee: Option<String>,
    /// Sealed-bid window, e.g. "10s" or "500ms". Default "10s".
    #[serde(default)]
    pub bid_window: Option<String>,
    /// Time until the submission deadline, e.g. "30m", "1h". Default "1h".
    #[serde(default)]
    pub deadline: Option<String>,
    /// Return once the bounty is awarded instead of following it to its payout.
    #[serde(default)]
    pub detach: bool,
}

/// `send_message` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SendParams {
    /// The group (a bounty's work group, or any group you are a member of).
    pub group_id: String,
    /// The message body (any JSON; a string is sent as `{"text": ...}`).
    pub body: Value,
    /// The conversation state: discussion (default), execution, conclusion...
    #[serde(default)]
    pub state: Option<String>,
}

/// `read_messages` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadParams {
    /// The group.
    pub group_id: String,
    /// Only messages after this sequence number (default 0: from the start).
    #[serde(default)]
    pub since_seq: Option<u64>,
    /// Most messages (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `earnings` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EarningsParams {
    /// The agent (default: the bridge's own account).
    #[serde(default)]
    pub address: Option<String>,
}

/// `call_metered_agent` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MeteredParams {
    /// The metered agent's address (it serves `reef pay serve`).
    pub agent: String,
    /// Its price per call in whole token units (as it advertises; must match).
    pub price: String,
    /// The token: "eth", "test" or an ERC-20 address. Default "test".
    #[serde(default)]
    pub token: Option<String>,
    /// The channel deposit when one is opened (and per top-up), whole units. Default "1".
    #[serde(default)]
    pub deposit: Option<String>,
    /// The call's input (any JSON).
    #[serde(default)]
    pub input: Value,
}

/// `ask_swarm` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SwarmParams {
    /// The question.
    pub question: String,
    /// The skill an answering agent must have (it listens for it: `reef swarm serve`).
    pub skill: String,
    /// The most you pay for the answer, whole token units (e.g. "0.001").
    pub max_price: String,
    /// The token: "eth", "test" or an ERC-20 address. Default "eth".
    #[serde(default)]
    pub token: Option<String>,
    /// Bidding window in milliseconds, 50 to 200. Default 100.
    #[serde(default)]
    pub window_ms: Option<u64>,
    /// Deposit of a channel opened to a new winner (and per top-up), whole units. Default "0.1".
    #[serde(default)]
    pub deposit: Option<String>,
}

/// A tool's result: the value as structured content, or the error as a tool error.
fn done(r: eyre::Result<Value>) -> Result<CallToolResult, McpError> {
    Ok(match r {
        Ok(v @ Value::Object(_)) => CallToolResult::structured(v),
        Ok(other) => CallToolResult::structured(json!({ "result": other })),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("{e:#}"))]),
    })
}

/// The error of a tool that signs a transaction when the server holds no key (the node).
fn needs_bridge(tool: &str) -> eyre::Report {
    eyre::eyre!(
        "{tool} signs a transaction with your key, which this node never holds: add Reef to your MCP host with the local bridge (`reef mcp --node <url> --key …`), which signs on your machine"
    )
}

fn parse_address(s: &str) -> eyre::Result<Address> {
    s.trim().parse().map_err(|_| eyre::eyre!("{s:?} is not an address (0x + 40 hex digits)"))
}

/// A bounty id as the node keys it (0x + 64 hex digits).
fn bounty_key(s: &str) -> eyre::Result<String> {
    let id = crate::market::parse_id(s).map_err(|e| eyre::eyre!("{e}"))?;
    Ok(crate::market::id_hex(id))
}

#[tool_router]
impl ReefMcp {
    /// The stdio bridge: `api` logged in with `chain`'s key.
    pub fn bridge(node: &str, api: NodeApi, chain: ReefClient) -> Self {
        Self {
            api,
            node: crate::cmd::nodeapi::http_base(node),
            chain: Some(chain),
            tool_router: Self::tool_router(),
        }
    }

    /// The node's own server: no key; each request acts with its bearer token.
    pub fn on_node(node: &str) -> Self {
        let node = crate::cmd::nodeapi::http_base(node);
        Self { api: NodeApi::new(&node), node, chain: None, tool_router: Self::tool_router() }
    }

    /// The REST client for this request: the caller's bearer token on the node's `/mcp`, the
    /// bridge's session otherwise.
    fn api(&self, ctx: &RequestContext<RoleServer>) -> NodeApi {
        let token = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.headers.get(axum::http::header::AUTHORIZATION))
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_string);
        match token {
            Some(t) => NodeApi::with_token(&self.node, t),
            None => self.api.clone(),
        }
    }

    fn chain(&self, tool: &str) -> eyre::Result<&ReefClient> {
        self.chain.as_ref().ok_or_else(|| needs_bridge(tool))
    }

    #[tool(
        description = "Find agents on the Reef network by free text and required skills. Each result has the agent's card (name, description, skills, price hint), whether it is online, and its reputation score with every component explained (price-weighted verified outcomes, confidence)."
    )]
    async fn discover_agents(
        &self,
        Parameters(p): Parameters<DiscoverParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let api = self.api(&ctx);
        done(
            async {
                let q = json!({
                    "query": p.query,
                    "skills": p.skills,
                    "max_price": p.max_price,
                    "online_only": p.online_only,
                    "limit": p.limit.unwrap_or(20).min(100),
                });
                let mut found = api.post("/v1/discover", q).await?;
                if let Some(agents) = found["agents"].as_array_mut() {
                    for a in agents {
                        let addr = a["address"].as_str().unwrap_or_default().to_string();
                        a["reputation"] = self.reputation(&api, &addr).await;
                    }
                }
                Ok(found)
            }
            .await,
        )
    }

    #[tool(description = "One agent's card, online state and reputation (explained).")]
    async fn get_agent(
        &self,
        Parameters(p): Parameters<AgentParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let api = self.api(&ctx);
        done(
            async {
                let addr = parse_address(&p.address)?;
                let mut a = api.get(&format!("/v1/agents/{addr}")).await?;
                a["reputation"] = self.reputation(&api, &addr.to_string()).await;
                Ok(a)
            }
            .await,
        )
    }

    #[tool(
        description = "Post a bounty through the Reef marketplace and follow it: the node announces it to matching agents, collects sealed bids, and the best bid is awarded on-chain (this bridge approves the token, funds the escrow and awards in one transaction, signed locally). Then the provider works, the result is verified and the provider is paid. Sends progress notifications as the bounty moves; returns the outcome (phase, on-chain status, winner, verdict with the result, paid). Use detach to return after the award."
    )]
    async fn post_bounty(
        &self,
        Parameters(p): Parameters<PostParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let chain = match self.chain("post_bounty") {
            Ok(c) => c.clone(),
            Err(e) => return done(Err(e)),
        };
        let argv = match post_argv(&p, &self.node) {
            Ok(a) => a,
            Err(e) => return done(Err(e)),
        };
        // Progress notifications when the host asked for them (a progress token).
        let peer = ctx.peer.clone();
        let token = ctx.meta.get_progress_token();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let forward = tokio::spawn(async move {
            let mut step = 0u32;
            while let Some(line) = rx.recv().await {
                step += 1;
                if let Some(t) = &token {
                    let note = ProgressNotificationParam::new(t.clone(), f64::from(step))
                        .with_message(line);
                    let _ = peer.notify_progress(note).await;
                }
            }
        });
        let progress = move |line: String| {
            let _ = tx.send(line);
        };
        let out = crate::cmd::bounty::post_through_node(&chain, &argv, &progress).await;
        drop(progress);
        let _ = forward.await;
        done(out.map(|o| o.summary()))
    }

    #[tool(
        description = "A bounty's timeline as the node has it: phase, every event with its time (posted, announced, bids, award, assignment, verdict, payout), the winner, the verdict and, for its poster, the ranking with each score's parts."
    )]
    async fn bounty_status(
        &self,
        Parameters(p): Parameters<BountyParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let api = self.api(&ctx);
        done(
            async {
                let path = format!("/v1/market/bounties/{}", bounty_key(&p.id)?);
                Ok::<_, eyre::Report>(api.get(&path).await?)
            }
            .await,
        )
    }

    #[tool(description = "The node's bounties, newest first, optionally in one phase.")]
    async fn list_bounties(
        &self,
        Parameters(p): Parameters<ListParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let api = self.api(&ctx);
        done(
            async {
                let all = api.get("/v1/market/bounties").await?;
                let mut list: Vec<Value> = all
                    .as_array()
                    .or_else(|| all["bounties"].as_array())
                    .cloned()
                    .unwrap_or_default();
                if let Some(phase) = &p.phase {
                    list.retain(|b| b["phase"] == phase.as_str());
                }
                list.truncate(p.limit.unwrap_or(50));
                Ok(json!({ "bounties": list }))
            }
            .await,
        )
    }

    #[tool(
        description = "Accept the submitted result of a bounty you verify yourself (verify=poster): the escrow pays the provider. Signed by this bridge."
    )]
    async fn accept_result(
        &self,
        Parameters(p): Parameters<BountyParams>,
    ) -> Result<CallToolResult, McpError> {
        done(self.judge(&p.id, true).await)
    }

    #[tool(
        description = "Reject the submitted result of a bounty you verify yourself (verify=poster): you are refunded after the challenge window unless the provider disputes. Signed by this bridge."
    )]
    async fn reject_result(
        &self,
        Parameters(p): Parameters<BountyParams>,
    ) -> Result<CallToolResult, McpError> {
        done(self.judge(&p.id, false).await)
    }

    #[tool(
        description = "What an agent was paid by the escrow, bounty by bounty (read from the chain), with totals per token."
    )]
    async fn earnings(
        &self,
        Parameters(p): Parameters<EarningsParams>,
    ) -> Result<CallToolResult, McpError> {
        done(
            async {
                let chain = self.chain("earnings")?;
                let who = match &p.address {
                    Some(a) => parse_address(a)?,
                    None => chain.address(),
                };
                crate::cmd::agent::earnings(chain, who).await
            }
            .await,
        )
    }

    #[tool(
        description = "Call a metered agent and pay per call with payment-channel vouchers signed by this bridge: opens (or reuses) a channel with a deposit, sends the input, and returns the agent's answer and what was paid (the agent redeems the vouchers on-chain in batches)."
    )]
    async fn call_metered_agent(
        &self,
        Parameters(p): Parameters<MeteredParams>,
    ) -> Result<CallToolResult, McpError> {
        done(
            async {
                let chain = self.chain("call_metered_agent")?.clone();
                let agent = parse_address(&p.agent)?;
                let ws = format!(
                    "{}/v1/ws",
                    self.node.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1)
                );
                crate::cmd::pay::metered_call(
                    chain,
                    &ws,
                    agent,
                    &p.price,
                    p.token.as_deref().unwrap_or("test"),
                    p.deposit.as_deref().unwrap_or("1"),
                    p.input,
                )
                .await
            }
            .await,
        )
    }

    #[tool(
        description = "Ask a question to a swarm of agents: the agents that listen for the skill bid within milliseconds, the cheapest answers, and this bridge pays it with a payment-channel voucher (a channel is opened the first time an agent is paid; no transaction per question after that). Returns the answer, who answered, the price and the channel's cumulative amount; fails with no_agents, no_bids or no_answer when nothing is owed."
    )]
    async fn ask_swarm(
        &self,
        Parameters(p): Parameters<SwarmParams>,
    ) -> Result<CallToolResult, McpError> {
        done(
            async {
                let chain = self.chain("ask_swarm")?.clone();
                let ws = format!(
                    "{}/v1/ws",
                    self.node.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1)
                );
                crate::cmd::swarm::ask_swarm(
                    chain,
                    &ws,
                    crate::cmd::swarm::AskSpec {
                        question: &p.question,
                        skill: &p.skill,
                        max_price: &p.max_price,
                        token: p.token.as_deref().unwrap_or("eth"),
                        window_ms: p.window_ms.unwrap_or(reef_wire::swarm::DEFAULT_WINDOW_MS),
                        deposit: p.deposit.as_deref().unwrap_or("0.1"),
                    },
                )
                .await
            }
            .await,
        )
    }

    #[tool(
        description = "Send a message into an IoA group you are a member of (e.g. a bounty's work group, to talk with its provider)."
    )]
    async fn send_message(
        &self,
        Parameters(p): Parameters<SendParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let api = self.api(&ctx);
        done(
            async {
                let body = match p.body {
                    Value::String(text) => json!({ "text": text }),
                    other => other,
                };
                let msg = json!({
                    "msg_id": format!("mcp-{}", crate::ioa::random_hex(12)),
                    "state": p.state.as_deref().unwrap_or("discussion"),
                    "body": body,
                });
                Ok::<_, eyre::Report>(
                    api.post(&format!("/v1/groups/{}/messages", p.group_id), msg).await?,
                )
            }
            .await,
        )
    }

    #[tool(
        description = "Read an IoA group's messages in order (sender, state, time, body), e.g. a bounty's work group."
    )]
    async fn read_messages(
        &self,
        Parameters(p): Parameters<ReadParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let api = self.api(&ctx);
        let path = format!(
            "/v1/groups/{}/messages?since_seq={}&limit={}",
            p.group_id,
            p.since_seq.unwrap_or(0),
            p.limit.unwrap_or(100).min(1000)
        );
        done(api.get(&path).await.map_err(Into::into))
    }
}

impl ReefMcp {
    /// An agent's reputation explained, or `null` when the node cannot say.
    async fn reputation(&self, api: &NodeApi, address: &str) -> Value {
        api.get(&format!("/v1/market/agents/{address}/reputation")).await.unwrap_or(Value::Null)
    }

    /// Accepts or rejects a submitted result as the bounty's evaluator.
    async fn judge(&self, id: &str, accept: bool) -> eyre::Result<Value> {
        let tool = if accept { "accept_result" } else { "reject_result" };
        let chain = self.chain(tool)?;
        let id = crate::market::parse_id(id).map_err(|e| eyre::eyre!("{e}"))?;
        let state = chain.bounty(id).await?;
        let r = &state.record;
        if r.evaluator != chain.address() {
            eyre::bail!(
                "only the bounty's evaluator {} may {}; this bridge signs as {} (the node verifies bounties posted with verify hash/command itself)",
                r.evaluator,
                if accept { "accept" } else { "reject" },
                chain.address()
            );
        }
        if state.status != Status::Submitted {
            eyre::bail!("bounty {id:#x} is {}, not submitted: nothing to judge", state.status);
        }
        let tx = if accept { chain.release(id, r).await? } else { chain.reject(id, r).await? };
        let after = chain.bounty(id).await?;
        Ok(json!({ "id": crate::market::id_hex(id), "status": after.status.name(), "tx": tx }))
    }

    /// The resource behind `uri`: `reef://bounty/{id}` or `reef://group/{group_id}`.
    async fn resource(&self, api: &NodeApi, uri: &str) -> eyre::Result<Value> {
        if let Some(id) = uri.strip_prefix("reef://bounty/") {
            return Ok(api.get(&format!("/v1/market/bounties/{}", bounty_key(id)?)).await?);
        }
        if let Some(g) = uri.strip_prefix("reef://group/") {
            return Ok(api.get(&format!("/v1/groups/{g}/messages?since_seq=0&limit=1000")).await?);
        }
        eyre::bail!(
            "unknown resource {uri:?}: use reef://bounty/{{id}} or reef://group/{{group_id}}"
        )
    }
}

/// `reef bounty post` arguments for a `post_bounty` call.
fn post_argv(p: &PostParams, node: &str) -> eyre::Result<Vec<String>> {
    let mut a: Vec<String> = vec![p.description.clone(), "--reward".into(), p.reward.clone()];
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            a.push(flag.into());
            a.push(v);
        }
    };
    opt("--token", Some(p.token.clone().unwrap_or_else(|| "test".into())));
    opt("--node", Some(node.to_string()));
    opt("--verify", Some(p.verify.clone().unwrap_or_else(|| "poster".into())));
    opt("--expect", p.expect.as_ref().map(Value::to_string));
    opt("--verifier", p.verifier.clone());
    opt("--quorum", p.quorum.clone());
    opt("--eval-fee", p.eval_fee.clone());
    opt("--bid-window", p.bid_window.clone());
    opt("--deadline", p.deadline.clone());
    opt("--input", p.input.as_ref().map(Value::to_string));
    if !p.skills.is_empty() {
        opt("--skills", Some(p.skills.join(",")));
    }
    a.push("--approve".into());
    if p.detach {
        a.push("--detach".into());
    }
    // Inputs starting with '@' would be read as files by the CLI: refuse, the host has no
    // business reading the bridge's files.
    if p.input.as_ref().and_then(Value::as_str).is_some_and(|s| s.starts_with('@')) {
        eyre::bail!("input must be JSON; a string starting with '@' would name a file");
    }
    Ok(a)
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ReefMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(rmcp::model::Implementation::new("reef", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Reef is a marketplace where software agents bid for work and are paid on-chain. \
                 discover_agents finds agents; post_bounty runs a task through the market and \
                 returns its verified result; bounty_status and the reef://bounty/{id} resource \
                 show a bounty's timeline; reef://group/{group_id} a group's transcript.",
            )
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let t = |uri: &str, name: &str, what: &str| {
            ResourceTemplate::new(uri, name)
                .with_description(what)
                .with_mime_type("application/json")
        };
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            t("reef://bounty/{id}", "bounty", "A bounty's timeline (phase, events, verdict)"),
            t(
                "reef://group/{group_id}",
                "group",
                "An IoA group's transcript (you must be a member)",
            ),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let api = self.api(&ctx);
        match self.resource(&api, &request.uri).await {
            Ok(v) => Ok(ReadResourceResult::new(vec![
                ResourceContents::text(
                    serde_json::to_string_pretty(&v).unwrap_or_default(),
                    request.uri,
                )
                .with_mime_type("application/json"),
            ])
            .into()),
            Err(e) => Err(McpError::resource_not_found(format!("{e:#}"), None)),
        }
    }
}
