//! Reef agents as A2A agents (A2A protocol 1.0, JSON-RPC binding over HTTP, SSE streaming).
//!
//! The node serves an agent card for itself (`/.well-known/agent-card.json`: hire the market
//! by skills) and one for every agent that has connected to it
//! (`/a2a/agents/{address}/.well-known/agent-card.json`: hire that agent's skills), and
//! answers A2A's JSON-RPC methods at the card's interface URL. A task becomes a Reef bounty:
//! the caller pays its budget beforehand (the Reef terms extension, [`terms`]), the node
//! posts the bounty with its own market key through the same code path as
//! `reef bounty post --node` ([`follow`]), the market's agents bid sealed, the best bid is
//! awarded, the result is verified by the node (hash or a verifier program) and the provider
//! is paid from escrow; the task's state follows the bounty's phase ([`tasks`]) and the
//! verified result is the task's artifact. What is not spent goes back to the caller.
//!
//! Not here: the HTTP+JSON and gRPC bindings, push notifications, input-required turns (a
//! Reef task takes one message), cancelling a task once its bids are ranked, and
//! hiring one agent exclusively (an agent's endpoint posts for its skills; every agent with
//! them may bid). docs/a2a.md has the mapping tables.

pub mod card;
mod follow;
pub mod store;
pub mod tasks;
pub mod terms;

use std::{convert::Infallible, sync::Arc, time::Duration};

use alloy::primitives::{Address, B256, U256, keccak256, utils::format_units};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use escrow_client::bindings::token::ReefTestToken as Erc20;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    ioa::rest::Caller,
    market::{Market, MarketError},
    openapi,
};
use store::TaskStore;
use tasks::{TaskRow, TaskState};
use terms::{TERMS_URI, TaskTerms, Terms};

/// The header carrying the A2A protocol version a client speaks.
pub const VERSION_HEADER: &str = "A2A-Version";

/// How long a blocking `SendMessage` waits for the task to end before answering with its
/// current state (the caller then polls `GetTask` or subscribes).
pub const BLOCKING_WAIT: Duration = Duration::from_secs(25);

/// Streams (`SendStreamingMessage`, `SubscribeToTask`) open at once; more are refused.
pub const MAX_STREAMS: usize = 256;

/// Longest task description (text parts joined), in bytes.
pub const MAX_DESCRIPTION: usize = 8 * 1024;

/// A task can be cancelled until this long before its bid window closes.
pub const CANCEL_MARGIN: Duration = Duration::from_secs(2);

/// Smallest budget, in thousandths of a whole token (0.01 token).
const MIN_BUDGET_MILLI: u64 = 10;

/// A2A errors, each with its JSON-RPC code (A2A 1.0, "JSON-RPC error codes").
#[derive(Debug, thiserror::Error)]
pub enum A2aError {
    /// The body is not JSON (-32700).
    #[error("the body is not JSON: {0}")]
    Parse(String),
    /// Not a JSON-RPC 2.0 request (-32600).
    #[error("{0}")]
    InvalidRequest(String),
    /// No such method (-32601).
    #[error("method {0:?} is not an A2A 1.0 method this server offers")]
    MethodNotFound(String),
    /// Bad parameters, or terms and payment refused before any work (-32602).
    #[error("{0}")]
    InvalidParams(String),
    /// The node failed (-32603; the message never leaks internals).
    #[error("internal error; see the node's log")]
    Internal(String),
    /// No task with this id for this caller (-32001).
    #[error("no task {0:?} for this caller")]
    TaskNotFound(String),
    /// The task cannot be cancelled (-32002).
    #[error("{0}")]
    NotCancelable(String),
    /// Push notifications are not offered (-32003).
    #[error("push notifications are not supported: follow a task with SubscribeToTask or GetTask")]
    PushNotSupported,
    /// The operation is not supported here (-32004).
    #[error("{0}")]
    Unsupported(String),
    /// A part's media type is not accepted (-32005).
    #[error("{0}")]
    ContentType(String),
    /// There is no extended card (-32007).
    #[error("this agent has no extended card: its public card is complete")]
    NoExtendedCard,
    /// The request does not use the required Reef terms extension (-32008).
    #[error(
        "send the Reef terms (budget, paymentTx, verify) in the message metadata under {TERMS_URI:?}; the card's capabilities.extensions[0].params says how to pay"
    )]
    ExtensionRequired,
    /// The client's protocol version is not spoken here (-32009).
    #[error("A2A version {0:?} is not supported: this server speaks 1.0")]
    Version(String),
}

impl A2aError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            Self::Parse(_) => -32700,
            Self::InvalidRequest(_) => -32600,
            Self::MethodNotFound(_) => -32601,
            Self::InvalidParams(_) => -32602,
            Self::Internal(_) => -32603,
            Self::TaskNotFound(_) => -32001,
            Self::NotCancelable(_) => -32002,
            Self::PushNotSupported => -32003,
            Self::Unsupported(_) => -32004,
            Self::ContentType(_) => -32005,
            Self::NoExtendedCard => -32007,
            Self::ExtensionRequired => -32008,
            Self::Version(_) => -32009,
        }
    }

    /// The `google.rpc.ErrorInfo` reason A2A 1.0 clients read from `error.data`.
    fn reason(&self) -> &'static str {
        match self {
            Self::Parse(_) => "PARSE_ERROR",
            Self::InvalidRequest(_) => "INVALID_REQUEST",
            Self::MethodNotFound(_) => "METHOD_NOT_FOUND",
            Self::InvalidParams(_) => "INVALID_PARAMS",
            Self::Internal(_) => "INTERNAL",
            Self::TaskNotFound(_) => "TASK_NOT_FOUND",
            Self::NotCancelable(_) => "TASK_NOT_CANCELABLE",
            Self::PushNotSupported => "PUSH_NOTIFICATION_NOT_SUPPORTED",
            Self::Unsupported(_) => "UNSUPPORTED_OPERATION",
            Self::ContentType(_) => "CONTENT_TYPE_NOT_SUPPORTED",
            Self::NoExtendedCard => "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
            Self::ExtensionRequired => "EXTENSION_SUPPORT_REQUIRED",
            Self::Version(_) => "VERSION_NOT_SUPPORTED",
        }
    }

    /// The JSON-RPC `error` object.
    pub fn to_json(&self) -> Value {
        if let Self::Internal(detail) = self {
            tracing::error!(error = %detail, "A2A request failed");
        }
        json!({
            "code": self.code(),
            "message": self.to_string(),
            "data": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": self.reason(),
                "domain": "a2a-protocol.org",
                "metadata": {},
            }],
        })
    }
}

impl From<MarketError> for A2aError {
    fn from(e: MarketError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for A2aError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

type Result<T, E = A2aError> = std::result::Result<T, E>;

/// The A2A server (cheap to clone).
#[derive(Debug, Clone)]
pub struct A2a {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    market: Market,
    /// Where the follower reaches the node's own REST API (its listen address).
    node_url: String,
    store: TaskStore,
    terms: Terms,
    /// Task ids whose outcome was just recorded (wakes the streams).
    finished: tokio::sync::broadcast::Sender<String>,
    streams: Arc<tokio::sync::Semaphore>,
    /// The followers running in this process, by task id (a cancel stops one).
    followers: std::sync::Mutex<std::collections::HashMap<String, tokio::task::JoinHandle<()>>>,
}

/// The authenticated caller of an A2A request (the node's bearer token).
#[derive(Debug, Clone, Copy)]
pub struct A2aCaller(pub Address);

impl FromRequestParts<A2a> for A2aCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, a: &A2a) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, a.market().node())
            .await
            .map(|c| Self(c.0))
            .map_err(IntoResponse::into_response)
    }
}

fn now_ms() -> u64 {
    reef_wire::unix_now_ms()
}

/// The request's public base URL: `X-Forwarded-Proto` (default http) and `Host`.
fn base_url(headers: &HeaderMap) -> Result<String, MarketError> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.contains(['/', ' ', '"', '\\']))
        .ok_or_else(|| MarketError::BadRequest("the request has no valid Host header".into()))?;
    let proto = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    Ok(format!("{proto}://{host}"))
}

impl A2a {
    /// Opens the task table and resumes the tasks a previous process left open. `None` when the
    /// chain has no ERC-20 to take budgets in (no test token in the deployment).
    pub async fn open(market: Market, node_url: &str) -> eyre::Result<Option<Self>> {
        let Some(token) = market.deployment().test_token else { return Ok(None) };
        let chain = market.chain();
        let decimals = chain.view(token, Erc20::decimalsCall {}).await?;
        let min_budget = U256::from(MIN_BUDGET_MILLI) * U256::from(10u64).pow(U256::from(decimals))
            / U256::from(1000u64);
        let terms = Terms {
            chain_id: market.deployment().chain_id,
            token,
            decimals,
            payee: market.address(),
            escrow: market.deployment().bounty_escrow,
            min_budget: min_budget.max(U256::from(1)),
            payment: terms::PAYMENT_ERC20_TRANSFER.into(),
            verify: vec!["hash".into(), "command".into()],
            verifiers: market.config().verifiers.names(),
        };
        // One standing allowance for the escrow: tasks award concurrently, and a per-award
        // approval of exactly the reward would let one task's approval overwrite another's.
        let escrow = market.deployment().bounty_escrow;
        if chain.allowance(token, market.address(), escrow).await? < U256::MAX >> 1 {
            chain.approve(token, escrow, U256::MAX).await?;
        }
        let store =
            TaskStore::open(market.store().pool().clone(), market.store().is_postgres()).await?;
        let a = Self {
            inner: Arc::new(Inner {
                market,
                node_url: node_url.to_string(),
                store,
                terms,
                finished: tokio::sync::broadcast::channel(256).0,
                streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
                followers: Default::default(),
            }),
        };
        a.resume().await?;
        Ok(Some(a))
    }

    fn market(&self) -> &Market {
        &self.inner.market
    }

    fn store(&self) -> &TaskStore {
        &self.inner.store
    }

    /// The payment terms every card advertises.
    pub fn terms(&self) -> &Terms {
        &self.inner.terms
    }

    fn finished(&self, id: &str) {
        let _ = self.inner.finished.send(id.to_string());
    }

    /// Tasks left open by a previous process: one whose bounty never reached the chain gets
    /// its budget back; one whose bounty was awarded is followed to its end. (Re-posting is
    /// not attempted: the record's deadline would differ from the one the bids signed.)
    async fn resume(&self) -> eyre::Result<()> {
        for row in self.store().open_tasks().await? {
            let me = self.clone();
            tokio::spawn(async move { me.watch_to_end(row).await });
        }
        Ok(())
    }

    /// Follows an already-posted task's bounty to its end without the poster's loop.
    async fn watch_to_end(self, row: TaskRow) {
        let chain = self.market().chain().clone();
        let posted = match crate::market::parse_id(&row.bounty) {
            Ok(id) => chain.status_of(id).await.map(|(s, _)| s != escrow_client::Status::None),
            Err(_) => Ok(false),
        };
        match posted {
            Ok(false) => {
                let out = self
                    .give_back(
                        &row,
                        row.paid,
                        TaskState::Failed,
                        "the node restarted before the bounty was awarded".into(),
                    )
                    .await;
                let _ = self.store().finish(&row.id, &out).await;
                self.finished(&row.id);
            }
            Ok(true) => {
                let mut seen = 0;
                loop {
                    match self.view_wait(&row.bounty, seen, Duration::from_secs(30)).await {
                        Some(v) if matches!(v["phase"].as_str(), Some("settled" | "failed")) => {
                            break;
                        }
                        Some(v) => seen = v["events"].as_array().map_or(0, Vec::len),
                        None => tokio::time::sleep(Duration::from_secs(1)).await,
                    }
                }
                let out = self.outcome_from_chain(&row).await;
                let _ = self.store().finish(&row.id, &out).await;
                self.finished(&row.id);
            }
            Err(e) => tracing::warn!(task = %row.id, error = %e, "cannot resume an A2A task now"),
        }
    }

    /// The outcome of a resumed task, read from the chain once its bounty is final.
    async fn outcome_from_chain(&self, row: &TaskRow) -> tasks::Outcome {
        let chain = self.market().chain();
        let state = match crate::market::parse_id(&row.bounty) {
            Ok(id) => chain.bounty(id).await.ok(),
            Err(_) => None,
        };
        match state {
            Some(s) if s.status == escrow_client::Status::Completed => {
                let price = U256::from(s.record.price);
                let mut out = self
                    .give_back(
                        row,
                        row.paid.saturating_sub(price),
                        TaskState::Completed,
                        "the result was verified and the provider paid".into(),
                    )
                    .await;
                out.provider = Some(s.record.provider);
                out.price = Some(price);
                out
            }
            other => tasks::Outcome {
                state: TaskState::Failed,
                reason: format!(
                    "the bounty ended {}; the escrow refunds the node, whose operator returns the budget (docs/a2a.md, \"Refunds\")",
                    other.map_or("unknown".into(), |s| s.status.name().to_string())
                ),
                provider: None,
                price: None,
                refund: None,
                refund_tx: None,
                award_tx: None,
            },
        }
    }

    /// The bounty's view as its poster (the node) sees it, with the result; `None` before it
    /// is registered.
    async fn view(&self, bounty: &str) -> Option<Value> {
        self.market().view(Some(self.market().address()), bounty).await.ok()
    }

    /// Waits (at most `wait`) for the bounty's log to grow past `after` events. When the
    /// node declines the long-poll (at its bounds) or the view fails, it waits half a second
    /// instead, so a follower never spins.
    async fn view_wait(&self, bounty: &str, after: usize, wait: Duration) -> Option<Value> {
        let client = format!("a2a:{bounty}");
        let got = self
            .market()
            .view_wait(Some(self.market().address()), &client, bounty, after, wait)
            .await
            .ok();
        if got.as_ref().is_none_or(|v| v.get("long_poll_declined").is_some()) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        got
    }

    /// A task of `caller` sent to this endpoint (`agent`; `None`: the node's), or
    /// `TaskNotFound` (another caller's task, or one of another endpoint, is not found either).
    async fn task_of(&self, caller: Address, agent: Option<Address>, id: &str) -> Result<TaskRow> {
        match self.store().get(id).await? {
            Some(t) if t.owner == caller && t.agent == agent => Ok(t),
            _ => Err(A2aError::TaskNotFound(id.chars().take(80).collect())),
        }
    }

    /// The task's JSON now.
    async fn task_now(&self, row: &TaskRow, history: Option<u32>) -> Value {
        let view = self.view(&row.bounty).await;
        tasks::task_json(row, view.as_ref(), history, now_ms())
    }

    /// Accepts a task: reads and checks the message and terms, checks the payment, stores the
    /// task and starts its follower. Nothing is posted when any check fails.
    async fn create(
        &self,
        caller: Address,
        agent: Option<Address>,
        params: &Value,
    ) -> Result<TaskRow> {
        let bad = |m: String| A2aError::InvalidParams(m);
        let msg = params
            .get("message")
            .filter(|m| m.is_object())
            .ok_or_else(|| bad("params.message (an A2A Message object) is required".into()))?;
        if msg.get("taskId").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            return Err(A2aError::Unsupported(
                "a Reef task takes one message: send a new message without taskId".into(),
            ));
        }
        match msg.get("role").and_then(Value::as_str) {
            Some("ROLE_USER") => {}
            other => {
                return Err(bad(format!("message.role must be \"ROLE_USER\", not {other:?}")));
            }
        }
        if msg.get("messageId").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(bad("message.messageId is required".into()));
        }
        if let Some(modes) =
            params.pointer("/configuration/acceptedOutputModes").and_then(Value::as_array)
            && !modes.is_empty()
            && !modes.iter().any(|m| matches!(m.as_str(), Some("application/json" | "*/*")))
        {
            return Err(A2aError::ContentType(
                "the result is application/json; include it in acceptedOutputModes".into(),
            ));
        }
        let parts = msg
            .get("parts")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("message.parts must be a non-empty array".into()))?;
        let mut text = Vec::new();
        let mut input = Value::Null;
        for p in parts {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                text.push(t.trim().to_string());
            } else if let Some(d) = p.get("data") {
                if !input.is_null() {
                    return Err(bad("at most one data part (the task input)".into()));
                }
                input = terms::integral_numbers(d);
            } else if p.get("url").is_some() || p.get("raw").is_some() {
                return Err(A2aError::ContentType(
                    "file parts are not accepted: send the input as a JSON data part".into(),
                ));
            } else {
                return Err(bad("each part needs text or data".into()));
            }
        }
        let description = text.join("\n").trim().to_string();
        if description.is_empty() || description.len() > MAX_DESCRIPTION {
            return Err(bad(format!(
                "the task needs a text part (its description), at most {MAX_DESCRIPTION} bytes"
            )));
        }
        let empty = json!({});
        let t = TaskTerms::from_metadata(msg.get("metadata").unwrap_or(&empty))
            .or_else(|| TaskTerms::from_metadata(params.get("metadata").unwrap_or(&empty)))
            .ok_or(A2aError::ExtensionRequired)?
            .map_err(bad)?;
        t.check(self.terms(), self.market().config().award_grace_secs).map_err(bad)?;
        let skills = match agent {
            Some(a) => {
                let info = self.market().node().get_agent(&a).await.map_err(|e| match e {
                    crate::ioa::Error::NotFound(_) => bad(format!("no agent {a} on this node")),
                    e => A2aError::Internal(e.to_string()),
                })?;
                if info.card.skills.is_empty() {
                    return Err(bad(format!("agent {a} lists no skills to hire")));
                }
                if t.skills.is_empty() {
                    info.card.skills
                } else if crate::ioa::has_skills(&info.card, &t.skills) {
                    t.skills.clone()
                } else {
                    return Err(bad(format!(
                        "agent {a} does not list every skill of {:?} (it has {:?})",
                        t.skills, info.card.skills
                    )));
                }
            }
            None if t.skills.is_empty() => {
                return Err(bad(
                    "the node's endpoint needs the skills a provider must have (terms.skills)"
                        .into(),
                ));
            }
            None => t.skills.clone(),
        };
        // The payment: unused, and an ERC-20 transfer of the budget to the node's wallet.
        if self.store().payment_used(t.payment_tx).await? {
            return Err(bad(format!("payment {} already paid for a task", t.payment_tx)));
        }
        let paid = terms::check_payment(
            self.market().chain(),
            t.payment_tx,
            caller,
            self.terms(),
            t.budget,
        )
        .await
        .map_err(bad)?;
        let id = crate::ioa::random_hex(16);
        let context_id = msg
            .get("contextId")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty() && c.len() <= 128)
            .map_or_else(|| crate::ioa::random_hex(16), str::to_string);
        let salt = keccak256(format!("reef-a2a-task:{id}"));
        let bounty =
            crate::market::id_hex(escrow_client::escrow::bounty_id(self.market().address(), salt));
        let mut message = msg.clone();
        message["contextId"] = json!(context_id);
        message["taskId"] = json!(id);
        let row = TaskRow {
            id,
            context_id,
            owner: caller,
            agent,
            bounty,
            budget: t.budget,
            paid,
            payment_tx: t.payment_tx,
            message,
            outcome: None,
            created_ms: now_ms(),
        };
        if !self.store().insert(&row).await? {
            return Err(bad(format!("payment {} already paid for a task", t.payment_tx)));
        }
        let reward = format_units(t.budget, self.terms().decimals)
            .map_err(|e| A2aError::Internal(e.to_string()))?;
        let argv = follow::post_argv(&follow::PostSpec {
            terms: &t,
            description: &description,
            input: &input,
            skills: &skills,
            reward: &reward,
            token: self.terms().token,
            node_url: &self.inner.node_url,
            salt: B256::from(salt),
        });
        let follower = tokio::spawn(self.clone().follow(row.clone(), argv));
        self.followers().insert(row.id.clone(), follower);
        Ok(row)
    }

    fn followers(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, tokio::task::JoinHandle<()>>>
    {
        self.inner.followers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `CancelTask`: possible while the bounty is still collecting bids, at least
    /// [`CANCEL_MARGIN`] before its window closes (so the award cannot be under way). The
    /// follower is stopped, nothing was posted on-chain, and the whole payment goes back.
    async fn cancel(&self, row: TaskRow) -> Result<Value> {
        if row.outcome.is_some() {
            return Err(A2aError::NotCancelable(format!("task {} has ended", row.id)));
        }
        let view = self.view(&row.bounty).await;
        let open = view.as_ref().is_none_or(|v| {
            v["phase"] == "bidding"
                && v["bid_close_at"].as_u64().unwrap_or(0).saturating_mul(1000)
                    > now_ms() + CANCEL_MARGIN.as_millis() as u64
        });
        if !open {
            return Err(A2aError::NotCancelable(format!(
                "task {}'s bids are being ranked or its provider awarded: a Reef task can be cancelled only while it collects bids, until {} s before its window closes",
                row.id,
                CANCEL_MARGIN.as_secs()
            )));
        }
        let Some(follower) = self.followers().remove(&row.id) else {
            return Err(A2aError::NotCancelable(format!(
                "task {} is followed by a previous process of this node; it cannot be cancelled",
                row.id
            )));
        };
        follower.abort();
        let _ = follower.await;
        // Nothing may have reached the chain; if it had, the task goes on.
        let id =
            crate::market::parse_id(&row.bounty).map_err(|e| A2aError::Internal(e.to_string()))?;
        let (status, _) = self
            .market()
            .chain()
            .status_of(id)
            .await
            .map_err(|e| A2aError::Internal(e.to_string()))?;
        if status != escrow_client::Status::None {
            tokio::spawn(self.clone().watch_to_end(row.clone()));
            return Err(A2aError::NotCancelable(format!("task {}'s provider was awarded", row.id)));
        }
        let out = self
            .give_back(
                &row,
                row.paid,
                TaskState::Canceled,
                "cancelled by the caller before the award; the payment went back".into(),
            )
            .await;
        self.store().finish(&row.id, &out).await?;
        self.finished(&row.id);
        let row = self.store().get(&row.id).await?.unwrap_or(row);
        Ok(self.task_now(&row, None).await)
    }

    /// Waits until the task is terminal or `until`; returns it then.
    async fn wait_terminal(&self, id: &str, until: tokio::time::Instant) -> Result<TaskRow> {
        let mut done = self.inner.finished.subscribe();
        loop {
            let row =
                self.store().get(id).await?.ok_or_else(|| A2aError::TaskNotFound(id.into()))?;
            if row.outcome.is_some() || tokio::time::Instant::now() >= until {
                return Ok(row);
            }
            let _ = tokio::time::timeout_at(until, async {
                while let Ok(f) = done.recv().await {
                    if f == id {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// The stream of a task's updates as JSON-RPC responses (`StreamResponse` results): the
    /// task first, a status update on every change, the artifact, then the final status.
    fn stream(
        &self,
        row: TaskRow,
        rpc_id: Value,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Response {
        let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
        let me = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let frame = |result: Value| {
                Event::default()
                    .data(json!({ "jsonrpc": "2.0", "id": rpc_id, "result": result }).to_string())
            };
            let mut done = me.inner.finished.subscribe();
            let mut row = row;
            let mut view = me.view(&row.bounty).await;
            if tx
                .send(frame(
                    json!({ "task": tasks::task_json(&row, view.as_ref(), None, now_ms()) }),
                ))
                .await
                .is_err()
            {
                return;
            }
            let mut last = (
                row.state(view.as_ref()),
                view.as_ref().map_or(0, |v| v["events"].as_array().map_or(0, Vec::len)),
            );
            while !last.0.is_terminal() {
                // The bounty's log grows, or the follower records the outcome.
                let final_phase = view
                    .as_ref()
                    .is_some_and(|v| matches!(v["phase"].as_str(), Some("settled" | "failed")));
                if view.is_none() || final_phase {
                    let _ = tokio::time::timeout(Duration::from_millis(500), async {
                        while let Ok(f) = done.recv().await {
                            if f == row.id {
                                break;
                            }
                        }
                    })
                    .await;
                    view = me.view(&row.bounty).await;
                } else {
                    view =
                        me.view_wait(&row.bounty, last.1, Duration::from_secs(10)).await.or(view);
                }
                match me.store().get(&row.id).await {
                    Ok(Some(r)) => row = r,
                    _ => break,
                }
                let now = (
                    row.state(view.as_ref()),
                    view.as_ref().map_or(0, |v| v["events"].as_array().map_or(0, Vec::len)),
                );
                if now == last {
                    continue;
                }
                if now.0.is_terminal()
                    && let Some(a) = tasks::artifact_json(&row, view.as_ref())
                {
                    let up = json!({ "artifactUpdate": {
                        "taskId": row.id, "contextId": row.context_id, "artifact": a, "lastChunk": true,
                    }});
                    if tx.send(frame(up)).await.is_err() {
                        return;
                    }
                }
                let up = json!({ "statusUpdate": {
                    "taskId": row.id,
                    "contextId": row.context_id,
                    "status": tasks::status_json(&row, view.as_ref(), now_ms()),
                    "metadata": { TERMS_URI: tasks::reef_metadata(&row, view.as_ref()) },
                }});
                if tx.send(frame(up)).await.is_err() {
                    return;
                }
                last = now;
            }
        });
        let events = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
        });
        Sse::new(events)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response()
    }

    /// Answers one JSON-RPC request.
    async fn rpc(
        &self,
        caller: Address,
        agent: Option<Address>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let req: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return rpc_error(Value::Null, &A2aError::Parse(e.to_string())),
        };
        let id = match req.get("id") {
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Null)) => v.clone(),
            None => Value::Null,
            Some(_) => {
                return rpc_error(
                    Value::Null,
                    &A2aError::InvalidRequest("id must be a string, a number or null".into()),
                );
            }
        };
        if req.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return rpc_error(
                id,
                &A2aError::InvalidRequest(
                    "a JSON-RPC 2.0 request object is needed (jsonrpc: \"2.0\")".into(),
                ),
            );
        }
        let Some(method) = req.get("method").and_then(Value::as_str) else {
            return rpc_error(
                id,
                &A2aError::InvalidRequest("method (a string) is required".into()),
            );
        };
        if let Some(v) = headers.get(VERSION_HEADER) {
            let v = v.to_str().unwrap_or("").trim();
            if !(v == "1" || v == "1.0" || v.starts_with("1.0.")) {
                return rpc_error(id, &A2aError::Version(v.chars().take(32).collect()));
            }
        }
        let empty = json!({});
        let params = match req.get("params") {
            None => &empty,
            Some(p) if p.is_object() => p,
            Some(_) => {
                return rpc_error(id, &A2aError::InvalidParams("params must be an object".into()));
            }
        };
        let history = params
            .get("historyLength")
            .and_then(Value::as_u64)
            .map(|h| h.min(u64::from(u32::MAX)) as u32);
        let task_id = || {
            params.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| {
                A2aError::InvalidParams("params.id (the task id) is required".into())
            })
        };
        let out: Result<Value> = match method {
            "SendMessage" => match self.create(caller, agent, params).await {
                Ok(row) => {
                    let immediate =
                        params.pointer("/configuration/returnImmediately").and_then(Value::as_bool)
                            == Some(true);
                    let row = if immediate {
                        Ok(row)
                    } else {
                        self.wait_terminal(&row.id, tokio::time::Instant::now() + BLOCKING_WAIT)
                            .await
                    };
                    match row {
                        Ok(row) => Ok(
                            json!({ "task": self.task_now(&row, params.pointer("/configuration/historyLength").and_then(Value::as_u64).map(|h| h as u32)).await }),
                        ),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
            "SendStreamingMessage" => {
                let Ok(permit) = self.inner.streams.clone().try_acquire_owned() else {
                    return rpc_error(
                        id,
                        &A2aError::Unsupported(format!(
                            "{MAX_STREAMS} streams are open on this node; poll GetTask instead"
                        )),
                    );
                };
                return match self.create(caller, agent, params).await {
                    Ok(row) => self.stream(row, id, permit),
                    Err(e) => rpc_error(id, &e),
                };
            }
            "SubscribeToTask" => {
                let row = match task_id() {
                    Ok(t) => self.task_of(caller, agent, t).await,
                    Err(e) => Err(e),
                };
                return match row {
                    Ok(row) if row.outcome.is_some() => rpc_error(
                        id,
                        &A2aError::Unsupported(
                            "the task is in a terminal state: read it with GetTask".into(),
                        ),
                    ),
                    Ok(row) => match self.inner.streams.clone().try_acquire_owned() {
                        Ok(permit) => self.stream(row, id, permit),
                        Err(_) => rpc_error(
                            id,
                            &A2aError::Unsupported(format!(
                                "{MAX_STREAMS} streams are open on this node; poll GetTask instead"
                            )),
                        ),
                    },
                    Err(e) => rpc_error(id, &e),
                };
            }
            "GetTask" => match task_id() {
                Ok(t) => match self.task_of(caller, agent, t).await {
                    Ok(row) => Ok(self.task_now(&row, history).await),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            "ListTasks" => self.list(caller, agent, params).await,
            "CancelTask" => match task_id() {
                Ok(t) => match self.task_of(caller, agent, t).await {
                    Ok(row) => self.cancel(row).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            "CreateTaskPushNotificationConfig"
            | "GetTaskPushNotificationConfig"
            | "ListTaskPushNotificationConfigs"
            | "DeleteTaskPushNotificationConfig" => Err(A2aError::PushNotSupported),
            "GetExtendedAgentCard" => Err(A2aError::NoExtendedCard),
            other => Err(A2aError::MethodNotFound(other.chars().take(64).collect())),
        };
        match out {
            Ok(result) => {
                Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response()
            }
            Err(e) => rpc_error(id, &e),
        }
    }

    /// `ListTasks`: the caller's tasks at this endpoint, newest first, filtered by context and
    /// state.
    async fn list(&self, caller: Address, agent: Option<Address>, params: &Value) -> Result<Value> {
        let size = params.get("pageSize").and_then(Value::as_u64).unwrap_or(50);
        if !(1..=100).contains(&size) {
            return Err(A2aError::InvalidParams("pageSize must be between 1 and 100".into()));
        }
        let offset = match params.get("pageToken").and_then(Value::as_str).filter(|s| !s.is_empty())
        {
            Some(t) => t.parse::<u64>().map_err(|_| {
                A2aError::InvalidParams("pageToken is not one this server gave".into())
            })?,
            None => 0,
        };
        let context = params.get("contextId").and_then(Value::as_str).filter(|s| !s.is_empty());
        let status = match params.get("status").and_then(Value::as_str) {
            None | Some("TASK_STATE_UNSPECIFIED") => None,
            Some(s) => Some(TaskState::parse(s).ok_or_else(|| {
                A2aError::InvalidParams(format!("status {s:?} is not a TaskState"))
            })?),
        };
        let history = params
            .get("historyLength")
            .and_then(Value::as_u64)
            .map(|h| h.min(u64::from(u32::MAX)) as u32);
        let artifacts = params.get("includeArtifacts").and_then(Value::as_bool).unwrap_or(false);
        // Newest 1000 of the caller's tasks; filtered, then paged.
        let rows = self.store().list(caller, 1000, 0).await?;
        let mut all = Vec::new();
        for row in
            rows.iter().filter(|r| r.agent == agent && context.is_none_or(|c| r.context_id == c))
        {
            let mut t = self.task_now(row, history).await;
            let state = TaskState::parse(t["status"]["state"].as_str().unwrap_or(""));
            if status.is_some() && state != status {
                continue;
            }
            if !artifacts && let Some(o) = t.as_object_mut() {
                o.remove("artifacts");
            }
            all.push(t);
        }
        let total = all.len() as u64;
        let page: Vec<Value> = all.into_iter().skip(offset as usize).take(size as usize).collect();
        let next = offset + page.len() as u64;
        Ok(json!({
            "tasks": page,
            "nextPageToken": if next < total { next.to_string() } else { String::new() },
            "pageSize": size,
            "totalSize": total,
        }))
    }

    /// The node's own card.
    fn node_card(&self, base: &str) -> Value {
        card::node_card(base, &self.market().node().config().node_id, self.terms().clone())
    }
}

fn rpc_error(id: Value, e: &A2aError) -> Response {
    Json(json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() })).into_response()
}

/// The node's A2A agent card (public): hire the market's agents by skills.
#[utoipa::path(get, path = "/.well-known/agent-card.json", tag = "a2a",
    responses(
        (status = 200, description = "The A2A 1.0 AgentCard of the node (docs/a2a.md); its Reef terms extension's params follow docs/schemas/a2a.terms.json", body = Object),
        (status = 400, description = "No valid Host header (bad_request)", body = openapi::ErrorBody),
    ))]
async fn node_card(State(a): State<A2a>, headers: HeaderMap) -> Result<Json<Value>, MarketError> {
    let base = base_url(&headers)?;
    Ok(Json(a.node_card(&base)))
}

/// An agent's A2A agent card (public): hire the agent's skills through the market.
#[utoipa::path(get, path = "/a2a/agents/{address}/.well-known/agent-card.json", tag = "a2a",
    params(("address" = String, Path, pattern = "^0x[0-9a-fA-F]{40}$", description = "The agent's address (0x + 40 hex digits)")),
    responses(
        (status = 200, description = "The A2A 1.0 AgentCard of the agent (docs/a2a.md)", body = Object),
        (status = 400, description = "Not an address, or no Host header (bad_request)", body = openapi::ErrorBody),
        (status = 404, description = "No agent with this address on this node (not_found)", body = openapi::ErrorBody),
    ))]
async fn agent_card(
    State(a): State<A2a>,
    Path(address): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, MarketError> {
    let agent: Address = address
        .parse()
        .map_err(|_| MarketError::BadRequest(format!("{address:?} is not an address")))?;
    let base = base_url(&headers)?;
    let info = match a.market().node().get_agent(&agent).await {
        Ok(i) => i,
        Err(crate::ioa::Error::NotFound(_)) => {
            return Err(MarketError::NotFound(format!(
                "agent {agent} (it must have connected to this node once: `reef agent run`)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let description = if info.card.description.is_empty() {
        format!("Reef agent {agent}, hired through the node's marketplace")
    } else {
        info.card.description.clone()
    };
    Ok(Json(card::agent_card(&card::CardInputs {
        name: if info.card.name.is_empty() { agent.to_string() } else { info.card.name.clone() },
        description,
        skills: info.card.skills.clone(),
        image: info.card.image.clone(),
        endpoint: format!("{base}/a2a/agents/{agent}"),
        base_url: base,
        terms: a.terms().clone(),
    })))
}

/// The node's A2A JSON-RPC endpoint (A2A 1.0 methods; `SendStreamingMessage` and
/// `SubscribeToTask` answer with server-sent events).
#[utoipa::path(post, path = "/a2a", tag = "a2a",
    request_body(content = Object, description = "A JSON-RPC 2.0 request: SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask, SubscribeToTask (docs/a2a.md)", content_type = "application/json"),
    responses(
        (status = 200, description = "A JSON-RPC response (a result, or an error with an A2A code), or for the streaming methods an event stream of JSON-RPC responses", content(
            (Object = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 401, description = "No valid bearer token (unauthenticated)", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn node_rpc(
    State(a): State<A2a>,
    caller: A2aCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    a.rpc(caller.0, None, &headers, &body).await
}

/// An agent's A2A JSON-RPC endpoint: tasks are posted for the agent's skills.
#[utoipa::path(post, path = "/a2a/agents/{address}", tag = "a2a",
    params(("address" = String, Path, pattern = "^0x[0-9a-fA-F]{40}$", description = "The agent's address (0x + 40 hex digits)")),
    request_body(content = Object, description = "A JSON-RPC 2.0 request (see POST /a2a)", content_type = "application/json"),
    responses(
        (status = 200, description = "A JSON-RPC response, or an event stream of them", content(
            (Object = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "Not an address (bad_request)", body = openapi::ErrorBody),
        (status = 401, description = "No valid bearer token (unauthenticated)", body = openapi::ErrorBody),
        (status = 404, description = "No agent with this address on this node (not_found)", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn agent_rpc(
    State(a): State<A2a>,
    Path(address): Path<String>,
    caller: A2aCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(agent) = address.parse::<Address>() else {
        return MarketError::BadRequest(format!("{address:?} is not an address")).into_response();
    };
    match a.market().node().get_agent(&agent).await {
        Ok(_) => a.rpc(caller.0, Some(agent), &headers, &body).await,
        Err(crate::ioa::Error::NotFound(_)) => {
            MarketError::NotFound(format!("agent {agent} on this node")).into_response()
        }
        Err(e) => MarketError::from(e).into_response(),
    }
}

/// The A2A routes with their OpenAPI description.
pub fn routes() -> OpenApiRouter<A2a> {
    OpenApiRouter::new()
        .routes(routes!(node_card))
        .routes(routes!(agent_card))
        .routes(routes!(node_rpc))
        .routes(routes!(agent_rpc))
}

/// The A2A routes.
pub fn router(a: A2a) -> Router {
    let (router, _) = routes().split_for_parts();
    router.with_state(a)
}
