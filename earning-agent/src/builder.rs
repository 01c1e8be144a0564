//! The builder: who the agent is, where it earns, how it prices, what does the work.

use std::{future::Future, sync::Arc, time::Duration};

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use reef_wire::AgentCard;
use serde_json::Value;

use crate::{
    BidPolicy, Error, Event, Result, Task, TaskHandler,
    task::{BoxFuture, FnHandler},
};

/// An evaluation request: the agent sits on a bounty's evaluator panel and judges a result.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    /// The bounty.
    pub bounty_id: U256,
    /// The poster's task input.
    pub input: Value,
    /// The provider's result.
    pub result: Value,
}

pub(crate) type EventFn = Arc<dyn Fn(&Event) + Send + Sync>;
pub(crate) type EvalFn = Arc<dyn Fn(EvalRequest) -> BoxFuture<bool> + Send + Sync>;

/// Everything the runtime needs, fixed once built.
pub(crate) struct Config {
    pub(crate) signer: PrivateKeySigner,
    pub(crate) node: String,
    pub(crate) rpc: Option<String>,
    pub(crate) card: AgentCard,
    /// The skills a call for proposals may ask for (the card's, without the `evaluate` the
    /// evaluator role adds).
    pub(crate) bid_skills: Vec<String>,
    pub(crate) bid: BidPolicy,
    pub(crate) handler: Arc<dyn TaskHandler>,
    pub(crate) eta: Duration,
    pub(crate) parallel: usize,
    pub(crate) no_bid: bool,
    pub(crate) no_pledges: bool,
    pub(crate) sub_bounties: bool,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) wait_node: Duration,
    pub(crate) evaluator: Option<EvalFn>,
    pub(crate) on_event: EventFn,
}

impl Config {
    pub(crate) fn emit(&self, ev: Event) {
        (self.on_event)(&ev);
    }

    pub(crate) fn warn(&self, msg: impl Into<String>) {
        self.emit(Event::Warning(msg.into()));
    }
}

/// Builds an [`EarningAgent`]. Required: a key and a handler; everything else has defaults
/// (node `ws://127.0.0.1:7700/v1/ws`, no chain RPC = no bidding, full-budget bids, ETA 60 s,
/// 4 tasks at a time, wait up to 10 minutes for a node that is not up).
#[must_use]
pub struct AgentBuilder {
    key: Option<std::result::Result<PrivateKeySigner, Error>>,
    node: String,
    rpc: Option<String>,
    card: AgentCard,
    bid: BidPolicy,
    handler: Option<Arc<dyn TaskHandler>>,
    eta: Duration,
    parallel: usize,
    no_bid: bool,
    no_pledges: bool,
    sub_bounties: bool,
    max_tasks: Option<u64>,
    wait_node: Duration,
    evaluator: Option<EvalFn>,
    on_event: Option<EventFn>,
}

impl Default for AgentBuilder {
    fn default() -> Self {
        Self {
            key: None,
            node: "ws://127.0.0.1:7700/v1/ws".into(),
            rpc: None,
            card: AgentCard { name: "reef-agent".into(), ..Default::default() },
            bid: BidPolicy::FullBudget,
            handler: None,
            eta: Duration::from_secs(60),
            parallel: 4,
            no_bid: false,
            no_pledges: false,
            sub_bounties: false,
            max_tasks: None,
            wait_node: Duration::from_secs(600),
            evaluator: None,
            on_event: None,
        }
    }
}

impl AgentBuilder {
    /// The agent's private key (hex): its identity on the node and its wallet on-chain.
    pub fn key(mut self, hex: &str) -> Self {
        self.key = Some(hex.trim().parse().map_err(|_| Error::InvalidKey));
        self
    }

    /// The agent's key as a signer.
    pub fn signer(mut self, signer: PrivateKeySigner) -> Self {
        self.key = Some(Ok(signer));
        self
    }

    /// The node's WebSocket URL (`ws://host:port/v1/ws`).
    pub fn node(mut self, url: impl Into<String>) -> Self {
        self.node = url.into();
        self
    }

    /// The chain's JSON-RPC URL: enables bidding and on-chain settlement.
    pub fn rpc(mut self, url: impl Into<String>) -> Self {
        self.rpc = Some(url.into());
        self
    }

    /// The whole card (name, description, skills, price hint, payment tokens).
    pub fn card(mut self, card: AgentCard) -> Self {
        self.card = card;
        self
    }

    /// Card: name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.card.name = name.into();
        self
    }

    /// Card: description (discovery searches it).
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.card.description = d.into();
        self
    }

    /// Card: skills. A call for proposals gets a bid only if the card has every skill it asks.
    pub fn skills<S: Into<String>>(mut self, skills: impl IntoIterator<Item = S>) -> Self {
        self.card.skills = skills.into_iter().map(Into::into).collect();
        self
    }

    /// How bids are priced.
    pub fn bid(mut self, policy: BidPolicy) -> Self {
        self.bid = policy;
        self
    }

    /// The work: an async closure from a [`Task`] to its result (`Err` = failed, with why).
    pub fn handler<F, Fut>(self, f: F) -> Self
    where
        F: Fn(Task) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Value, String>> + Send + 'static,
    {
        self.task_handler(FnHandler(f))
    }

    /// The work, as a [`TaskHandler`] (which can also decline calls for proposals).
    pub fn task_handler(mut self, h: impl TaskHandler) -> Self {
        self.handler = Some(Arc::new(h));
        self
    }

    /// Promised delivery time after an award (signed in the bid; the escrow enforces it).
    pub fn eta(mut self, eta: Duration) -> Self {
        self.eta = eta;
        self
    }

    /// Tasks run at the same time (at least 1); more wait for a free slot.
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n;
        self
    }

    /// Never bid: only execute tasks assigned directly.
    pub fn no_bid(mut self, yes: bool) -> Self {
        self.no_bid = yes;
        self
    }

    /// Do not bid on sub-bounties paid in pledge credits (worth something only once their
    /// parent bounty completes).
    pub fn no_pledges(mut self, yes: bool) -> Self {
        self.no_pledges = yes;
        self
    }

    /// The handler may fund sub-bounties from this agent's rewards: after each payout, watch
    /// this agent's own pledge and redeem what is left of it.
    pub fn sub_bounties(mut self, yes: bool) -> Self {
        self.sub_bounties = yes;
        self
    }

    /// Stop after this many tasks.
    pub fn max_tasks(mut self, n: u64) -> Self {
        self.max_tasks = Some(n);
        self
    }

    /// How long to keep trying a node that is not up at start; once connected, the agent
    /// reconnects after every drop for good.
    pub fn wait_node(mut self, patience: Duration) -> Self {
        self.wait_node = patience;
        self
    }

    /// Also serve on evaluator panels: `f` judges a result (true = accept); the verdict is
    /// signed as an EIP-712 attestation. Adds the `evaluate` skill to the card.
    pub fn evaluator<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(EvalRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.evaluator = Some(Arc::new(move |r| Box::pin(f(r))));
        self
    }

    /// Called for every [`Event`] (default: logged with `tracing` at info level).
    pub fn on_event(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<EarningAgent> {
        let signer = self.key.ok_or(Error::Missing("the agent key"))??;
        let handler = self.handler.ok_or(Error::Missing("the task handler"))?;
        if self.parallel == 0 {
            return Err(Error::InvalidConfig("parallel must be at least 1".into()));
        }
        let mut card = self.card;
        let bid_skills = card.skills.clone();
        if self.evaluator.is_some() && !card.skills.iter().any(|s| s == "evaluate") {
            card.skills.push("evaluate".into());
        }
        Ok(EarningAgent {
            cfg: Arc::new(Config {
                signer,
                node: self.node,
                rpc: self.rpc,
                card,
                bid_skills,
                bid: self.bid,
                handler,
                eta: self.eta,
                parallel: self.parallel,
                no_bid: self.no_bid,
                no_pledges: self.no_pledges,
                sub_bounties: self.sub_bounties,
                max_tasks: self.max_tasks,
                wait_node: self.wait_node,
                evaluator: self.evaluator,
                on_event: self
                    .on_event
                    .unwrap_or_else(|| Arc::new(|e: &Event| tracing::info!("{e}"))),
            }),
        })
    }
}

/// A configured earning agent; [`EarningAgent::run`] runs it.
pub struct EarningAgent {
    cfg: Arc<Config>,
}

impl std::fmt::Debug for EarningAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarningAgent")
            .field("address", &self.address())
            .field("node", &self.cfg.node)
            .field("card", &self.cfg.card)
            .finish_non_exhaustive()
    }
}

impl EarningAgent {
    /// A builder.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// The agent's address.
    pub fn address(&self) -> Address {
        self.cfg.signer.address()
    }

    /// The card it registers.
    pub fn card(&self) -> &AgentCard {
        &self.cfg.card
    }

    /// Runs until the node closes the connection for good, `max_tasks` tasks are done, or a
    /// step fails that cannot be retried. Drop the future to stop.
    pub async fn run(self) -> Result<()> {
        crate::runtime::run(self.cfg).await
    }
}
