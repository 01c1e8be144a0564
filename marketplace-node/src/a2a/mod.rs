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
mod error;
mod follow;
mod routes;
mod rpc;
pub mod store;
pub mod tasks;
pub mod terms;

pub use error::A2aError;
pub use routes::{A2aCaller, router, routes};

use std::{sync::Arc, time::Duration};

use alloy::primitives::{Address, B256, U256, keccak256, utils::format_units};
use escrow_client::bindings::token::ReefTestToken as Erc20;
use serde_json::{Value, json};

use crate::market::{Market, coordinator::BountyView};
use store::TaskStore;
use tasks::{TaskRow, TaskState};
use terms::{TaskTerms, Terms};

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
    /// Set once the node's wallet has its standing escrow allowance ([`A2a::allowance`]).
    allowance: tokio::sync::Mutex<bool>,
    /// The followers running in this process, by task id (a cancel stops one).
    followers: std::sync::Mutex<std::collections::HashMap<String, tokio::task::JoinHandle<()>>>,
}

fn now_ms() -> u64 {
    reef_wire::unix_now_ms()
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
                allowance: tokio::sync::Mutex::new(false),
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
                self.paid_out(row, s.record.provider, U256::from(s.record.price)).await
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
        self.market()
            .view(Some(self.market().address()), bounty)
            .await
            .ok()
            .map(BountyView::into_value)
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
            .ok()
            .map(BountyView::into_value);
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
        // Before anything is stored: a failure here leaves the payment unused.
        self.allowance().await?;
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

    /// Gives the escrow a standing allowance on the node's wallet, once (before the first
    /// task's bounty). Tasks award concurrently: a per-award approval of exactly the reward
    /// would let one task's approval overwrite another's.
    async fn allowance(&self) -> Result<()> {
        let mut done = self.inner.allowance.lock().await;
        if *done {
            return Ok(());
        }
        let chain = self.market().chain();
        let (token, escrow) = (self.terms().token, self.terms().escrow);
        let have = chain
            .allowance(token, self.market().address(), escrow)
            .await
            .map_err(|e| A2aError::Internal(e.to_string()))?;
        if have < U256::MAX >> 1 {
            chain
                .approve(token, escrow, U256::MAX)
                .await
                .map_err(|e| A2aError::Internal(e.to_string()))?;
        }
        *done = true;
        Ok(())
    }

    fn followers(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, tokio::task::JoinHandle<()>>>
    {
        self.inner.followers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
