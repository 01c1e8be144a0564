//! The node's marketplace coordinator: validates postings and bids, runs the work loop that
//! moves each bounty through its phases, and talks to agents over IoA groups.

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    signers::local::PrivateKeySigner,
};
use escrow_client::{
    ClientOptions, Deployment, ReefClient, Status,
    bindings::escrow::IBountyTypes::{Bid, Bounty},
    escrow::{BidJson, RecordJson, bounty_id, terms_hash},
    signing::verdict as verdict_code,
};
use reef_wire::{AgentQuery, SendMessage, State as MsgState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use super::{
    MarketError, Result,
    auction::{BidBook, Candidate, ScoringConfig},
    id_hex, parse_addr,
    scheduler::{MAX_IDLE_MS, RETRY_MS, Scheduler, next_wake},
    store::{BountyRow, MarketStore, Phase},
    verify::{Verdict, Verifiers, VerifySpec, result_hash},
};
use crate::ioa::Node;

/// Marketplace settings of a node.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// Chain RPC endpoint.
    pub rpc_url: String,
    /// Contract addresses.
    pub deployment: Deployment,
    /// The node's evaluator key (signs attestations, pays gas for refunds and claims).
    pub key: PrivateKeySigner,
    /// How the node's transactions are sent: fee caps and stuck-transaction replacement.
    pub chain_options: ClientOptions,
    /// Bid ranking weights.
    pub scoring: ScoringConfig,
    /// Most bids kept per bounty.
    pub bid_capacity: usize,
    /// Most agents invited per call for proposals (0 = every matching online agent).
    pub cfp_fanout: usize,
    /// A bid must stay valid at least this long after the window closes (time to award).
    pub award_grace_secs: u64,
    /// Longest accepted bid window.
    pub max_bid_window_secs: u64,
    /// Admission control: most bounties in their bid window at once; a post beyond it is
    /// refused with `503 busy` and a retry time, before anything is registered (0 = no limit).
    pub max_open_windows: usize,
    /// How many times a window that closes without a valid bid is extended (by its own
    /// length, while the deadline leaves room) before the bounty fails: bids that a loaded
    /// machine delivers late still count.
    pub max_window_extensions: u32,
    /// Work-loop period.
    pub tick: Duration,
    /// Verifier programs offered to posters.
    pub verifiers: Verifiers,
    /// The embedded indexer's store: bidders are ranked with the reputation engine's scores.
    pub reputation: Option<reef_indexer::Store>,
    /// Copy each final bounty's verdict into the ERC-8004 ValidationRegistry (one transaction
    /// per bounty whose provider has an agent identity, paid by the node's key).
    pub record_validations: bool,
    /// The region this node keeps its data in (`--region`): bounties whose terms name
    /// another region (or any region, when this is `None`) are refused.
    pub region: Option<String>,
    /// Default time an ended bounty's task input and result are kept when its terms set no
    /// retention (`None`: kept).
    pub task_retention: Option<Duration>,
    /// How often ended bounties past their retention are looked for.
    pub retention_sweep: Duration,
}

/// What a poster sends to register a bounty with the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostRequest {
    /// Salt that, with the poster, determines the bounty id.
    pub salt: B256,
    /// The record as it will be posted on-chain (no provider, price or result yet).
    pub record: RecordJson,
    /// Task description (its keccak256 must equal `record.specHash`).
    pub description: String,
    /// Task input handed to the provider.
    #[serde(default)]
    pub input: Value,
    /// Skills a provider needs (discovery filter for the call for proposals).
    #[serde(default)]
    pub skills: Vec<String>,
    /// How the result is verified.
    pub verify: VerifySpec,
    /// Sealed-bid window in seconds (ignored when `bid_window_ms` is given).
    #[serde(default)]
    pub bid_window_secs: u64,
    /// Sealed-bid window in milliseconds, for agents that answer within a second.
    #[serde(default)]
    pub bid_window_ms: Option<u64>,
    /// Contest: shares of the paid entries in basis points, best first (empty = equal).
    #[serde(default)]
    pub split: Vec<u16>,
    /// The bounty is funded from the poster's pending reward on this parent bounty (hex id,
    /// `postFromReward`): `record.token` must be the poster's pledge token on it. Bidders get
    /// it in the call for proposals, to check the parent before they bid.
    #[serde(default)]
    pub from_reward: Option<String>,
    /// Data-usage terms (retention, onward sharing, region), committed through
    /// `record.specHash` ([`escrow_client::policy::spec_hash`]).
    #[serde(default)]
    pub policy: Option<escrow_client::policy::Policy>,
}

/// What a bidder sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BidRequest {
    /// The EIP-712 bid; its signed `eta` is the promised delivery time after the award.
    pub bid: BidJson,
    /// Its signature (65 bytes, hex).
    pub signature: Bytes,
}

/// The coordinator (cheap to clone).
#[derive(Debug, Clone)]
pub struct Market {
    inner: Arc<Inner>,
}

/// A bounty's data-usage terms, if it has any.
fn policy_of(row: &BountyRow) -> Option<escrow_client::policy::Policy> {
    serde_json::from_value(row.spec["policy"].clone()).ok().flatten()
}

/// How long a built reputation book is reused.
const REPUTATION_TTL: Duration = Duration::from_secs(2);

/// Bounties stepped at once by the work loop (each step is a compare-and-set per bounty; the
/// chain client serializes the node's own transactions).
const STEP_CONCURRENCY: usize = 16;

/// Most open calls for proposals an agent that comes online is considered for.
const LATE_INVITE_SCAN: i64 = 1_000;

/// Stake reads in flight at once while ranking a window.
const STAKE_READS: usize = 16;

#[derive(Debug)]
struct Inner {
    /// When this process started, unix ms (a window that opened before it may have lost
    /// bids; agents connected to the previous process are still reconnecting).
    started_ms: u64,
    /// Claims on one-time side effects are taken as this node and process.
    claimant: super::store::Claimant,
    node: Node,
    store: MarketStore,
    chain: ReefClient,
    /// The work loop's cached view of the escrow (one log scan per pass).
    view: super::chainview::ChainView,
    cfg: MarketConfig,
    reputation_cache:
        tokio::sync::Mutex<Option<(std::time::Instant, Arc<reef_reputation::ReputationBook>)>>,
    /// Which bounties the work loop steps next (event- and timer-driven).
    sched: Scheduler,
    /// How many long-polls each client holds open (bounded).
    long_polls: super::longpoll::LongPolls,
    /// Copies verdicts of final bounties into the ERC-8004 ValidationRegistry.
    validations: super::validations::ValidationRecorder,
}

/// Longest a long-polling view request waits for a change.
pub const MAX_VIEW_WAIT: Duration = Duration::from_secs(30);

fn now() -> u64 {
    reef_wire::unix_now()
}

/// Shortest bid window re-opened after a restart (agents must reconnect first).
pub const REOPEN_MIN_SECS: u64 = 10;

/// Shortest sealed-bid window (agents need a round trip to answer a call for proposals).
pub const MIN_BID_WINDOW_MS: u64 = 100;

/// Shortest extension of a window that closed without bids (a loaded agent needs time).
pub const MIN_EXTENSION_MS: u64 = 2_000;

/// How long a poster refused for a full node is told to wait, at least.
pub const BUSY_RETRY_MS: u64 = 1_000;

/// Whether the bounty's call for proposals went out (its group exists, not just a claim).
fn announced(row: &BountyRow) -> bool {
    row.cfp_group.as_deref().is_some_and(|g| !g.starts_with("claimed:"))
}

/// When bidding closes, in unix milliseconds: the window's exact end, or the stored whole
/// second once the window was re-opened (after a restart).
fn close_ms_of(row: &BountyRow) -> u64 {
    match row.bid_close_ms {
        ms if ms > 0 && ms.div_ceil(1000) == row.bid_close_at => ms,
        _ => row.bid_close_at.saturating_mul(1000),
    }
}

/// The `k` agents with the highest rendezvous hash `keccak256(bounty ‖ agent)`: every agent is
/// equally likely to be invited to a given call, the choice is the same after a restart, and
/// adding or removing an agent only changes the calls where that agent ranks in the top `k`.
fn fanout_pick(bounty: &str, mut agents: Vec<Address>, k: usize) -> Vec<Address> {
    let weight = |a: &Address| {
        let mut buf = bounty.as_bytes().to_vec();
        buf.extend_from_slice(a.as_slice());
        alloy::primitives::keccak256(buf)
    };
    agents.sort_by_cached_key(|a| std::cmp::Reverse(weight(a)));
    agents.truncate(k);
    agents
}

/// When the best bid of a ranking expires (unix seconds; 0 without bids).
fn top_bid_expiry(ranking: &Value) -> u64 {
    ranking[0]["signed"]["bid"]["deadline"].as_u64().unwrap_or(0)
}

fn fmt_window(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

fn task_id(id: &str) -> String {
    format!("bounty-{}", &id[2..14])
}

impl Market {
    /// Connects to the chain and the node's database; does not start the work loop.
    pub async fn open(node: Node, cfg: MarketConfig) -> Result<Self> {
        let started_ms = reef_wire::unix_now_ms();
        if let Some(index) = &cfg.reputation {
            let d = &cfg.deployment;
            node.set_identity_index(
                index.clone(),
                format!("eip155:{}:{}", d.chain_id, d.agent_registry),
            );
        }
        let store = MarketStore::connect(&node.config().database_url).await?;
        let chain = ReefClient::connect(
            &cfg.rpc_url,
            cfg.key.clone(),
            cfg.deployment.clone(),
            cfg.chain_options.clone(),
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                started_ms,
                claimant: super::store::Claimant {
                    node: node.config().node_id.clone(),
                    since_ms: started_ms as i64,
                },
                node,
                store,
                view: super::chainview::ChainView::new(chain.clone()),
                chain,
                validations: super::validations::ValidationRecorder::new(cfg.record_validations),
                cfg,
                reputation_cache: Default::default(),
                sched: Scheduler::default(),
                long_polls: Default::default(),
            }),
        })
    }

    /// The node's evaluator address.
    pub fn address(&self) -> Address {
        self.inner.cfg.key.address()
    }

    /// Storage (for the REST layer).
    pub fn store(&self) -> &MarketStore {
        &self.inner.store
    }

    /// The IoA node.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The work loop's cached view of the chain (receipts, stakes, the fee).
    pub fn chain_view(&self) -> &super::chainview::ChainView {
        &self.inner.view
    }

    /// The contracts this marketplace settles on.
    pub fn deployment(&self) -> &Deployment {
        &self.inner.cfg.deployment
    }

    /// The node's own chain client (its market key; it serializes the node's transactions).
    pub fn chain(&self) -> &ReefClient {
        &self.inner.chain
    }

    /// The marketplace's configuration.
    pub fn config(&self) -> &MarketConfig {
        &self.inner.cfg
    }

    /// The embedded indexer's store (`idx_` tables), when the node runs one.
    pub fn index(&self) -> Option<&reef_indexer::Store> {
        self.inner.cfg.reputation.as_ref()
    }

    /// Chain facts a poster or agent needs.
    pub async fn info(&self) -> Result<Value> {
        Ok(json!({
            "evaluator": self.address(),
            "deployment": self.inner.cfg.deployment,
            "fee_bps": self.inner.view.fee_bps().await?,
            "verifiers": self.inner.cfg.verifiers.names(),
            "award_grace_secs": self.inner.cfg.award_grace_secs,
            "max_bid_window_secs": self.inner.cfg.max_bid_window_secs,
            "scoring": self.inner.cfg.scoring,
            "node_id": self.inner.node.config().node_id,
        }))
    }

    /// `agent`'s reputation score with its components (the reputation engine's explanation
    /// over the embedded index), or NotFound when this node runs no indexer.
    pub async fn reputation_of(&self, agent: Address) -> Result<Value> {
        let book = self.reputation_book().await.ok_or_else(|| {
            MarketError::Conflict(
                "this node runs without its embedded indexer: no reputation to explain".into(),
            )
        })?;
        serde_json::to_value(book.score(&agent)).map_err(|e| MarketError::Internal(e.to_string()))
    }

    /// How many blocks the embedded indexer is behind the chain head the work loop last saw
    /// (`None`: no indexer, or no head seen yet). Reads one row of the indexer's store.
    pub async fn indexer_lag(&self) -> Result<Option<u64>> {
        let (Some(store), Some(head)) = (&self.inner.cfg.reputation, self.inner.view.head_number())
        else {
            return Ok(None);
        };
        let next = store
            .next_block()
            .await
            .map_err(|e| MarketError::Internal(format!("indexer store: {e}")))?
            .unwrap_or(self.inner.cfg.deployment.start_block);
        Ok(Some(head.saturating_sub(next.saturating_sub(1))))
    }

    /// Registers a bounty from `caller` and announces it. Idempotent per bounty id.
    pub async fn post(&self, caller: Address, req: PostRequest) -> Result<Value> {
        let span = tracing::info_span!(
            "post",
            bounty = %id_hex(bounty_id(caller, req.salt)),
            poster = %caller
        );
        self.post_in_span(caller, req).instrument(span).await
    }

    async fn post_in_span(&self, caller: Address, req: PostRequest) -> Result<Value> {
        let cfg = &self.inner.cfg;
        let rules = super::intake::PostRules {
            evaluator: self.address(),
            escrow: cfg.deployment.bounty_escrow,
            panel: cfg.deployment.evaluator_panel,
            verifiers: &cfg.verifiers,
            max_bid_window_secs: cfg.max_bid_window_secs,
            region: cfg.region.as_deref(),
        };
        let super::intake::CheckedPost { record, contest, from_reward, window_ms } =
            super::intake::check_post(&req, caller, &rules)?;
        if let Some(parent) = &from_reward {
            self.check_onward_sharing(parent, &req).await?;
        }
        let bad = |m: String| Err(MarketError::BadRequest(m));
        // The head's time as of the last pass (at most a tick old), or wall time if later.
        let chain_now = self.inner.view.chain_time().await?.max(now());
        let close_ms = reef_wire::unix_now_ms() + window_ms;
        // Whole seconds for everything the chain compares (bid validity, deadlines).
        let close = close_ms.div_ceil(1000);
        if record.deadline <= chain_now.max(close) + cfg.award_grace_secs {
            return bad("deadline leaves no time to bid, award and work; extend it".into());
        }
        let fee = self.inner.view.fee_bps().await?;
        if record.feeBps != fee {
            return bad(format!(
                "record.feeBps {} differs from the escrow's current fee {fee}",
                record.feeBps
            ));
        }
        let id = bounty_id(caller, req.salt);
        // Through the chain view: a `None` answer is cached, and the view then builds the
        // record from its own log scan when the poster posts (no full read later).
        let (status, _) = self.inner.view.status_of(id).await?;
        if status != Status::None {
            return Err(MarketError::Conflict(format!(
                "bounty {} already exists on-chain ({status})",
                id_hex(id)
            )));
        }
        let verify = match req.verify.panel() {
            Some((_, n, _)) => {
                let members = self.choose_evaluators(caller, usize::from(n)).await?;
                req.verify.with_members(members)
            }
            None => req.verify.clone(),
        };
        let spec = json!({
            "salt": req.salt,
            "record": req.record,
            "terms_hash": terms_hash(&record),
            "description": req.description,
            "input": req.input,
            "skills": req.skills,
            "verify": verify,
            "bid_window_secs": window_ms.div_ceil(1000),
            "bid_window_ms": window_ms,
            "split": req.split,
            "from_reward": from_reward,
            "policy": req.policy,
        });
        let key = id_hex(id);
        // Admission control: a node at its limit refuses new bounties before registering
        // anything (a repeated post of a registered one goes through).
        let cap = cfg.max_open_windows as u64;
        if cap > 0 && !contest && self.inner.store.bounty(&key).await?.is_none() {
            let open = self.inner.store.count_in_phase(Phase::Bidding).await?;
            if open >= cap {
                // The windows open now drain in about one window each.
                let retry_after_ms = window_ms.clamp(BUSY_RETRY_MS, 30_000);
                return Err(MarketError::Busy {
                    message: format!(
                        "this node has {open} bounties in their bid window (its limit, --max-open-windows, is {cap})"
                    ),
                    retry_after_ms,
                });
            }
        }
        // Contests take entries until the deadline instead of bids during a window.
        let (close, phase) =
            if contest { (record.deadline, Phase::Contest) } else { (close, Phase::Bidding) };
        let fresh = self
            .inner
            .store
            .insert_bounty_in(&key, &caller.to_string(), &spec, close, phase)
            .await?;
        if fresh {
            self.inner
                .store
                .log(&key, "posted", &format!("bid window {}", fmt_window(window_ms)))
                .await?;
        }
        let row = self.row(&key).await?;
        let invited = self.announce(&row).await?;
        let reconnecting = self.inner.node.reconnecting();
        if fresh && reconnecting > 0 && !announced(&*self.row(&key).await?) {
            self.inner
                .store
                .log(&key, "held", &format!("the node just restarted: the call for proposals waits for {reconnecting} agents to reconnect (at most {} s)", crate::ioa::RECONNECT_GRACE.as_secs_f32()))
                .await?;
        }
        // The work loop plans the bounty's timers (the window's end) on its first step.
        self.inner.sched.wake(&key);
        let row = self.row(&key).await?;
        // The panel as stored (a repeated post returns the first choice).
        let panel =
            Self::verify_spec(&row)?.panel().map(|(k, _, m)| json!({ "quorum": k, "members": m }));
        Ok(
            json!({ "id": key, "bid_close_at": row.bid_close_at, "bid_close_ms": close_ms_of(&row), "cfp_group": row.cfp_group, "invited": invited, "reconnecting": reconnecting, "new": fresh, "panel": panel }),
        )
    }

    /// A sub-bounty funded from `parent` must not carry the parent's task input when the
    /// parent's terms forbid passing it on (what the node can see: a verbatim copy, or a
    /// sizeable piece of it, in the sub-bounty's input or description).
    async fn check_onward_sharing(&self, parent: &str, req: &PostRequest) -> Result<()> {
        let Some(prow) = self.inner.store.bounty(parent).await? else { return Ok(()) };
        if policy_of(&prow).is_none_or(|p| p.onward_sharing) {
            return Ok(());
        }
        let fps = crate::ioa::terms::fingerprints(&prow.spec["input"]);
        let text = format!(
            "{}\n{}",
            crate::ioa::terms::canonical(&req.input),
            Value::String(req.description.clone())
        );
        if crate::ioa::terms::leak(&fps, &text).is_some() {
            return Err(MarketError::Forbidden(format!(
                "the terms of bounty {parent} forbid passing its task input on (policy.onward_sharing = false); this sub-bounty carries it"
            )));
        }
        Ok(())
    }

    /// Deletes, every `retention_sweep`, the task input and result of bounties that ended
    /// longer ago than their retention (their terms', else the node's `--task-retention`).
    async fn retention_loop(self) {
        let mut tick =
            tokio::time::interval(self.inner.cfg.retention_sweep.max(Duration::from_millis(200)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.erase_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(bounties = n, "task data past its retention deleted"),
                Err(e) => tracing::warn!(error = %e, "task-data retention sweep failed"),
            }
        }
    }

    /// One retention sweep; returns how many bounties' task data was deleted.
    pub async fn erase_expired(&self) -> Result<usize> {
        let now = reef_wire::unix_now_ms();
        let mut erased = 0;
        for (row, ended_ms) in self.inner.store.ended_unerased(256).await? {
            let keep_ms = match policy_of(&row).and_then(|p| p.retention_days) {
                Some(days) => u64::from(days) * 86_400_000,
                None => match self.inner.cfg.task_retention {
                    Some(d) => d.as_millis() as u64,
                    None => continue,
                },
            };
            if ended_ms.saturating_add(keep_ms) > now {
                continue;
            }
            let eval_group =
                row.verdict.as_ref().and_then(|v| v["eval_group"].as_str().map(str::to_string));
            let store = self.inner.node.store();
            for g in row.cfp_group.iter().chain(row.work_group.iter()).chain(eval_group.iter()) {
                if !g.starts_with("claimed:") {
                    store.erase_group(g).await?;
                }
            }
            let mut spec = row.spec.clone();
            spec["input"] = Value::Null;
            spec["erased"] = Value::Bool(true);
            let verdict = row.verdict.clone().map(|mut v| {
                if let Value::Object(o) = &mut v {
                    o.remove("result");
                }
                v
            });
            self.inner.store.erase_task_data(&row.id, &spec, verdict.as_ref()).await?;
            self.inner.node.terms().release(&row.id);
            self.inner
                .store
                .log(&row.id, "erased", "task input and result deleted (retention)")
                .await?;
            erased += 1;
        }
        if erased > 0 {
            self.inner.node.store().checkpoint().await?;
            self.inner.store.checkpoint().await?;
        }
        Ok(erased)
    }

    /// Picks `n` online evaluator agents (skill `evaluate`) for a panel, best reputation first
    /// (the reputation engine's score, or the neutral prior), ties by address; never the poster
    /// or this node.
    async fn choose_evaluators(&self, poster: Address, n: usize) -> Result<Vec<Address>> {
        let me = self.address();
        let found = self
            .inner
            .node
            .discover(&AgentQuery {
                query: String::new(),
                skills: vec!["evaluate".into()],
                online_only: true,
                limit: Some(100),
                ..Default::default()
            })
            .await?;
        let engine = self.reputation_book().await;
        let mut scored: Vec<(f64, Address)> = found
            .iter()
            .map(|a| a.address)
            .filter(|a| *a != poster && *a != me)
            .map(|a| (engine.as_ref().map(|b| b.score(&a).value).unwrap_or(0.5), a))
            .collect();
        scored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        scored.dedup_by_key(|x| x.1);
        if scored.len() < n {
            return Err(MarketError::Conflict(format!(
                "only {} evaluator agents (skill `evaluate`) are online; the panel needs {n}",
                scored.len()
            )));
        }
        Ok(scored.into_iter().take(n).map(|(_, a)| a).collect())
    }

    async fn row(&self, key: &str) -> Result<Arc<BountyRow>> {
        self.inner.store.bounty(key).await?.ok_or_else(|| MarketError::NotFound(key.to_string()))
    }

    fn record_of(row: &BountyRow) -> Result<Bounty> {
        let r: RecordJson = serde_json::from_value(row.spec["record"].clone())
            .map_err(|e| MarketError::Internal(format!("stored record: {e}")))?;
        Bounty::try_from(&r).map_err(|e| MarketError::Internal(e.to_string()))
    }

    fn verify_spec(row: &BountyRow) -> Result<VerifySpec> {
        serde_json::from_value(row.spec["verify"].clone())
            .map_err(|e| MarketError::Internal(format!("stored verify: {e}")))
    }

    /// Re-announces with a new window when this process started after the window opened and
    /// no bid arrived (the node was down while agents tried to bid). Once per bounty.
    async fn maybe_reopen(&self, row: &BountyRow) -> Result<bool> {
        let window = row.spec["bid_window_secs"].as_u64().unwrap_or(0);
        let window_ms = row.spec["bid_window_ms"].as_u64().unwrap_or(window * 1000);
        // To the millisecond: `bid_close_at` is rounded up to a whole second, which made a
        // window opened just before a crash look as if this process had opened it.
        let opened_ms = close_ms_of(row).saturating_sub(window_ms);
        if self.inner.started_ms <= opened_ms {
            return Ok(false);
        }
        let reopened =
            self.inner.store.events(&row.id).await?.iter().any(|e| e["event"] == "reopened");
        if reopened || self.inner.store.bid_count(&row.id).await? > 0 {
            return Ok(false);
        }
        // At least REOPEN_MIN_SECS: the agents' connections died with the old process, and
        // the SDK's reconnect back-off grows to 5 s before they can join and bid again.
        let close_ms = (now() + window.max(REOPEN_MIN_SECS)).saturating_mul(1000);
        self.reannounce(
            row,
            close_ms,
            format!("cfp-{}-reopened", row.id),
            "reopened",
            "the node restarted during the bid window; bidding re-opened",
        )
        .await?;
        Ok(true)
    }

    /// Moves an announced window's close to `close_ms`, logs `event`, and sends the call for
    /// proposals again into its group (as message `msg_id`, with the new close), so the
    /// invited agents bid (again). Re-opening after a restart and extending a window without
    /// bids both go through here.
    async fn reannounce(
        &self,
        row: &BountyRow,
        close_ms: u64,
        msg_id: String,
        event: &str,
        detail: &str,
    ) -> Result<()> {
        self.inner.store.set_close_ms(&row.id, close_ms).await?;
        self.inner.store.log(&row.id, event, detail).await?;
        let row = self.row(&row.id).await?;
        if let Some(group) = row.cfp_group.as_ref().filter(|_| announced(&row)) {
            let body = self.cfp_body(&row);
            self.send_as_market(group, msg_id, MsgState::Discussion, None, body).await?;
        }
        Ok(())
    }

    fn cfp_body(&self, row: &BountyRow) -> Value {
        let skills: Vec<String> =
            serde_json::from_value(row.spec["skills"].clone()).unwrap_or_default();
        json!({
            "kind": "cfp",
            "bounty_id": row.id,
            "record": row.spec["record"],
            "terms_hash": row.spec["terms_hash"],
            "description": row.spec["description"],
            "input": row.spec["input"],
            "skills": skills,
            "verify": row.spec["verify"]["mode"],
            "bid_close_at": row.bid_close_at,
            "bid_close_ms": close_ms_of(row),
            "award_grace_secs": self.inner.cfg.award_grace_secs,
            "chain_id": self.inner.cfg.deployment.chain_id,
            "escrow": self.inner.cfg.deployment.bounty_escrow,
            "from_reward": row.spec["from_reward"],
            "policy": row.spec["policy"],
        })
    }

    /// Sends the call for proposals to matching online agents (once; safe to repeat).
    async fn announce(&self, row: &BountyRow) -> Result<usize> {
        if announced(row) || !matches!(row.phase, Phase::Bidding | Phase::Contest) {
            return Ok(0);
        }
        // Right after a restart the agents the previous process held are reconnecting (the
        // SDK backs off up to 5 s): hold the call until they are back or the grace is over,
        // or they would not be invited (the window starts when the call goes out).
        if self.inner.node.reconnecting() > 0 {
            return Ok(0);
        }
        // Exactly one announcement even if the REST handler and the work loop (or two nodes
        // of a mesh) get here at once.
        if !self.inner.store.claim(&row.id, "cfp_group", 30_000, &self.inner.claimant).await? {
            return Ok(0);
        }
        let me = self.address();
        let skills: Vec<String> =
            serde_json::from_value(row.spec["skills"].clone()).unwrap_or_default();
        let poster = parse_addr(&row.poster)?;
        let agents = self
            .inner
            .node
            .discover(&AgentQuery {
                // Skills select the agents; the description only ranks them (an empty query
                // matches everyone with the skills, so no capable agent is left out).
                query: String::new(),
                skills: skills.clone(),
                online_only: true,
                limit: Some(100),
                ..Default::default()
            })
            .await?;
        let mut members: Vec<Address> =
            agents.iter().map(|a| a.address).filter(|a| *a != poster && *a != me).collect();
        let fanout = self.inner.cfg.cfp_fanout;
        if fanout > 0 && members.len() > fanout {
            members = fanout_pick(&row.id, members, fanout);
        }
        let group = self
            .inner
            .node
            .create_group(&me, &format!("cfp {}", &row.id[..12]), &members, None)
            .await?;
        // The sealed window runs from the call for proposals, not from the post: under a burst
        // of posts, announcing can take a while, and the agents must get the whole window.
        let row = if row.phase == Phase::Bidding {
            let window_ms = row.spec["bid_window_ms"]
                .as_u64()
                .unwrap_or_else(|| row.spec["bid_window_secs"].as_u64().unwrap_or(0) * 1000);
            self.inner.store.set_close_ms(&row.id, reef_wire::unix_now_ms() + window_ms).await?;
            &self.row(&row.id).await?
        } else {
            row
        };
        let body = self.cfp_body(row);
        self.send_as_market(
            &group.group_id,
            format!("cfp-{}", row.id),
            MsgState::Discussion,
            None,
            body,
        )
        .await?;
        self.inner.store.set_field(&row.id, "cfp_group", &group.group_id).await?;
        self.inner
            .store
            .log(&row.id, "announced", &format!("call for proposals to {} agents", members.len()))
            .await?;
        Ok(members.len())
    }

    /// `agent` came online (connected, reconnected or registered its card on this node or on a
    /// mesh peer without a marketplace): invites it to the open calls for proposals it has the
    /// skills for, while their fan-out has room. Agents online at the call were invited then;
    /// this covers an agent that starts during a window, and one that comes back after its
    /// connection or this node restarted.
    async fn invite_latecomer(&self, agent: Address) -> Result<()> {
        let me = self.address();
        if agent == me {
            return Ok(());
        }
        let open = self.inner.store.in_phase(Phase::Bidding, LATE_INVITE_SCAN).await?;
        if open.is_empty() {
            return Ok(());
        }
        // Connected but no card yet: it is considered again when it registers one.
        let info = match self.inner.node.get_agent(&agent).await {
            Ok(info) => info,
            Err(crate::ioa::Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let now_ms = reef_wire::unix_now_ms();
        for row in open {
            let Some(group) = row.cfp_group.as_deref().filter(|_| announced(&row)) else {
                continue;
            };
            if now_ms >= close_ms_of(&row) || parse_addr(&row.poster).ok() == Some(agent) {
                continue;
            }
            let wanted: Vec<String> =
                serde_json::from_value(row.spec["skills"].clone()).unwrap_or_default();
            if !crate::ioa::has_skills(&info.card, &wanted) {
                continue;
            }
            // Room is checked and taken in one step: latecomers arriving together (or seen by
            // several nodes of a mesh) cannot push the call past its fan-out.
            let fanout = self.inner.cfg.cfp_fanout;
            let cap = if fanout == 0 { usize::MAX } else { fanout };
            if !self.inner.node.invite_capped(&me, group, &agent, cap).await? {
                continue;
            }
            self.inner
                .store
                .log(&row.id, "invited", &format!("{agent} came (back) online during the window"))
                .instrument(tracing::info_span!("late_invite", bounty = %row.id, agent = %agent))
                .await?;
        }
        Ok(())
    }

    /// Accepts a sealed bid from `caller`.
    pub async fn bid(&self, caller: Address, key: &str, req: BidRequest) -> Result<Value> {
        let span = tracing::info_span!("bid", bounty = %key, agent = %caller);
        let r = self.check_and_store_bid(caller, key, req).instrument(span.clone()).await;
        let m = &crate::metrics::METRICS;
        crate::metrics::inc(if r.is_ok() { &m.bids_accepted } else { &m.bids_refused });
        span.in_scope(|| match &r {
            Ok(_) => tracing::info!("bid accepted"),
            Err(e) => tracing::info!(error = %e, "bid refused"),
        });
        r
    }

    async fn check_and_store_bid(
        &self,
        caller: Address,
        key: &str,
        req: BidRequest,
    ) -> Result<Value> {
        let row = self.row(key).await?;
        if row.phase != Phase::Bidding || reef_wire::unix_now_ms() >= close_ms_of(&row) {
            return Err(MarketError::Conflict("the bid window is closed".into()));
        }
        let record = Self::record_of(&row)?;
        let deployment = &self.inner.cfg.deployment;
        let domain =
            escrow_client::signing::escrow_domain(deployment.chain_id, deployment.bounty_escrow);
        let rules = super::intake::BidRules {
            key: &row.id,
            record: &record,
            bid_close_at: row.bid_close_at,
            award_grace_secs: self.inner.cfg.award_grace_secs,
            domain: &domain,
        };
        let (_, eta_secs) = super::intake::check_bid(&req, caller, &rules)?;
        let stored = json!({ "bid": req.bid, "signature": req.signature });
        let cap = self.inner.cfg.bid_capacity;
        if !self.inner.store.upsert_bid(key, &caller.to_string(), &stored, eta_secs, cap).await? {
            return Err(MarketError::Conflict(format!(
                "this bounty holds the maximum of {cap} bids"
            )));
        }
        Ok(json!({ "accepted": true, "bid_close_at": row.bid_close_at }))
    }

    /// Runs the work loop until the task is aborted.
    ///
    /// Event-driven (see [`super::scheduler`]): every `tick` the chain view reads the head and
    /// the new escrow events, and the bounties they name are stepped; so are bounties with a new
    /// message in one of their groups and bounties whose timer is due. Every unfinished bounty
    /// is stepped once at start, and again whenever the chain view cannot say what changed (a
    /// reorg, a long gap) or the message feed overflowed.
    pub async fn run(self) {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        // The inputs this node's previous process was guarding (assigned, not erased).
        match self.inner.store.protected_assignments().await {
            Ok(rows) => {
                for row in rows {
                    if let (Some(w), Some(g)) = (&row.winner, &row.work_group)
                        && let Ok(provider) = parse_addr(w)
                        && policy_of(&row).is_some_and(|p| !p.onward_sharing)
                    {
                        self.inner.node.terms().protect(provider, &row.id, g, &row.spec["input"]);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading guarded assignments failed"),
        }
        tokio::spawn(self.clone().retention_loop());
        let sched = &self.inner.sched;
        let tick = self.inner.cfg.tick;
        let steps = Arc::new(tokio::sync::Semaphore::new(STEP_CONCURRENCY));
        let mut activity = self.inner.node.group_activity();
        let mut activity_open = true;
        let mut arrivals = self.inner.node.arrivals();
        let mut arrivals_open = true;
        let mut wake_all = true;
        let mut last_sync: Option<std::time::Instant> = None;
        let mut last_sweep = std::time::Instant::now();
        loop {
            if last_sync.is_none_or(|t| t.elapsed() >= tick) {
                last_sync = Some(std::time::Instant::now());
                match self.inner.view.sync().await {
                    Ok(Some(ids)) => ids.iter().for_each(|id| sched.wake(&super::id_hex(*id))),
                    Ok(None) => wake_all = true,
                    Err(e) => tracing::warn!(error = %e, "chain sync failed; retrying"),
                }
            }
            while activity_open {
                match activity.try_recv() {
                    Ok(a) => self.on_activity(&a),
                    Err(TryRecvError::Lagged(_)) => wake_all = true,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => activity_open = false,
                }
            }
            // Everything, or (every MAX_IDLE_MS) the unfinished bounties this loop has no plan
            // for: registered by another node of a mesh (whose loop may have died) or missed.
            let sweep = last_sweep.elapsed() >= Duration::from_millis(MAX_IDLE_MS);
            if wake_all || sweep {
                match self.inner.store.active_ids().await {
                    Ok(rows) => {
                        let ids = rows.iter().map(String::as_str);
                        if wake_all {
                            sched.wake_all(ids);
                        } else {
                            sched.wake_unknown(ids);
                        }
                        wake_all = false;
                        last_sweep = std::time::Instant::now();
                    }
                    Err(e) => tracing::warn!(error = %e, "reading unfinished bounties failed"),
                }
            }
            let clock = self.clock_ms();
            for key in sched.take(clock) {
                let (me, steps) = (self.clone(), steps.clone());
                let span = tracing::info_span!("bounty_step", bounty = %key);
                tokio::spawn(
                    async move {
                        let Ok(_permit) = steps.acquire_owned().await else { return };
                        me.step_scheduled(&key).await;
                    }
                    .instrument(span),
                );
            }
            let since_sync = last_sync.map(|t| t.elapsed()).unwrap_or_default();
            let mut wait = tick.saturating_sub(since_sync);
            if let Some(at) = sched.next_timer() {
                wait = wait.min(Duration::from_millis(at.saturating_sub(clock)));
            }
            tokio::select! {
                _ = sched.notified() => {}
                r = activity.recv(), if activity_open => match r {
                    Ok(a) => self.on_activity(&a),
                    Err(RecvError::Lagged(_)) => wake_all = true,
                    Err(RecvError::Closed) => activity_open = false,
                },
                r = arrivals.recv(), if arrivals_open => match r {
                    Ok(agent) => {
                        // Shares the steps' concurrency bound: a burst of agents starting
                        // queues here instead of running its scans all at once.
                        let (me, steps) = (self.clone(), steps.clone());
                        tokio::spawn(async move {
                            let Ok(_permit) = steps.acquire_owned().await else { return };
                            if let Err(e) = me.invite_latecomer(agent).await {
                                tracing::warn!(%agent, error = %e, "inviting an agent that came online failed");
                            }
                        });
                    }
                    // Missed arrivals only miss late invitations; the calls went out.
                    Err(RecvError::Lagged(n)) => tracing::debug!(missed = n, "arrivals lagged"),
                    Err(RecvError::Closed) => arrivals_open = false,
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// A message in one of a bounty's groups wakes the bounty, unless this node sent it: the
    /// step that sent it plans the bounty's next step itself.
    fn on_activity(&self, a: &crate::ioa::hub::Activity) {
        if a.sender != Some(self.address()) {
            self.inner.sched.wake_group(&a.group);
        }
    }

    /// The clock timers are compared with: wall time, or the chain's if it is ahead (a devnet
    /// whose time was moved forward).
    fn clock_ms(&self) -> u64 {
        let chain = self.inner.view.synced_time().unwrap_or(0).saturating_mul(1000);
        reef_wire::unix_now_ms().max(chain)
    }

    /// Steps one bounty the scheduler handed out, then plans its next step.
    async fn step_scheduled(&self, key: &str) {
        let sched = &self.inner.sched;
        let planned = async {
            let Some(row) = self.inner.store.bounty(key).await? else {
                sched.forget(key);
                return Ok(());
            };
            if !matches!(row.phase, Phase::Settled | Phase::Failed) {
                let t0 = std::time::Instant::now();
                self.step(&row).await?;
                tracing::debug!(bounty = %key, phase = ?row.phase, ms = t0.elapsed().as_millis() as u64, "stepped");
            }
            let after = self.row(key).await?;
            self.plan(&after, row.phase);
            Ok::<_, MarketError>(())
        }
        .await;
        if let Err(e) = planned {
            tracing::warn!(bounty = %key, error = %e, "bounty step failed; will retry");
            sched.set_timer(key, reef_wire::unix_now_ms() + RETRY_MS);
        }
        sched.done(key);
    }

    /// After a step: routes the bounty's groups to it, steps it again at once if it changed
    /// phase, and sets the timer for the next instant its step may act on by itself.
    fn plan(&self, row: &BountyRow, before: Phase) {
        let sched = &self.inner.sched;
        if matches!(row.phase, Phase::Settled | Phase::Failed) {
            sched.forget(&row.id);
            return;
        }
        let eval_group =
            row.verdict.as_ref().and_then(|v| v["eval_group"].as_str().map(str::to_string));
        for g in row.work_group.iter().chain(eval_group.iter()) {
            // A message may have arrived before the route existed: look once more.
            if !g.starts_with("claimed:") && sched.route(g, &row.id) {
                sched.wake(&row.id);
            }
        }
        if row.phase != before {
            sched.wake(&row.id);
        }
        sched.set_timer(&row.id, self.wake_at(row));
    }

    /// When the bounty's step may next act without an event (unix ms).
    fn wake_at(&self, row: &BountyRow) -> u64 {
        let now = self.clock_ms();
        let Ok(record) = Self::record_of(row) else { return now + MAX_IDLE_MS };
        let cached = super::parse_id(&row.id).ok().and_then(|id| self.inner.view.cached_status(id));
        // The status's time stamp (the due time while awarded, the submission or verdict
        // time after); unknown until the chain view has read it.
        let stamp = cached.map(|(_, t)| t);
        let mut at: Vec<u64> = vec![record.deadline];
        match row.phase {
            Phase::Bidding => {
                let close = close_ms_of(row);
                return if !announced(row) || close <= now {
                    now + RETRY_MS
                } else {
                    close.min(now + MAX_IDLE_MS)
                };
            }
            Phase::Contest => at.push(record.deadline + u64::from(record.reviewWindow)),
            Phase::AwaitingAward => {
                // 0 (ranked before the expiry was stored): the idle cap; the step then reads
                // the expiry from the ranking.
                at = (row.award_expiry > 0).then_some(row.award_expiry + 60).into_iter().collect();
            }
            Phase::Working | Phase::Evaluating => at.extend(stamp),
            Phase::Settling | Phase::AwaitingPoster => {
                if let Some(t) = stamp {
                    at.push(t + u64::from(record.reviewWindow));
                    at.push(t + u64::from(record.challengeWindow));
                }
            }
            Phase::Settled | Phase::Failed => {}
        }
        if stamp.is_none() && !matches!(row.phase, Phase::AwaitingAward | Phase::Contest) {
            // The chain view dropped the status (an event named the bounty): that event
            // wakes the bounty anyway; meanwhile look again soon.
            return now + RETRY_MS;
        }
        next_wake(now, &at)
    }

    async fn step(&self, row: &BountyRow) -> Result<()> {
        match row.phase {
            Phase::Bidding => {
                if !announced(row) {
                    // Announcing opens the window (counted from the call for proposals); a
                    // window nobody was told about never closes, so it cannot fail unseen.
                    self.announce(row).await?;
                } else if reef_wire::unix_now_ms() >= close_ms_of(row)
                    && !self.maybe_reopen(row).await?
                {
                    self.close(row).await?;
                }
            }
            Phase::Contest => {
                self.announce(row).await?;
                self.contest(row).await?;
            }
            Phase::AwaitingAward => self.await_award(row).await?,
            Phase::Working => self.work(row).await?,
            Phase::Evaluating => self.evaluating(row).await?,
            Phase::Settling | Phase::AwaitingPoster => self.settle(row).await?,
            Phase::Settled | Phase::Failed => {}
        }
        Ok(())
    }

    /// Closes the window and ranks the bids.
    async fn close(&self, row: &BountyRow) -> Result<()> {
        let record = Self::record_of(row)?;
        let bids = self.inner.store.bids(&row.id).await?;
        let mut book: BidBook<(Value, u64)> =
            BidBook::new(U256::from(record.amount), self.inner.cfg.bid_capacity);
        let threshold_gate = self.inner.cfg.deployment.agent_registry;
        let engine = self.reputation_book().await;
        // Evaluators do not judge their own work: panel members cannot win.
        let spec = Self::verify_spec(row)?;
        let judges: Vec<Address> = spec.panel().map(|(_, _, m)| m.to_vec()).unwrap_or_default();
        let parsed: Vec<(&super::store::BidRow, Bid)> = bids
            .iter()
            .filter_map(|b| {
                let bj = serde_json::from_value::<BidJson>(b.bid["bid"].clone()).ok()?;
                let bid = Bid::try_from(&bj).ok()?;
                (!judges.contains(&bid.bidder)).then_some((b, bid))
            })
            .collect();
        let bidders: Vec<String> = parsed.iter().map(|(_, bid)| bid.bidder.to_string()).collect();
        let history = self.inner.store.outcomes_of(&bidders).await.unwrap_or_default();
        // Stakes of all bidders, read concurrently (a failed read counts as no stake).
        let stakes: std::collections::HashMap<Address, U256> = if threshold_gate.is_zero() {
            Default::default()
        } else {
            use futures::StreamExt;
            let bidders: Vec<Address> = parsed.iter().map(|(_, bid)| bid.bidder).collect();
            futures::stream::iter(bidders)
                .map(|a| async move { (a, self.inner.view.stake_of(a).await.unwrap_or_default()) })
                .buffer_unordered(STAKE_READS)
                .collect()
                .await
        };
        for (b, bid) in &parsed {
            let stake = stakes.get(&bid.bidder).copied().unwrap_or_default();
            // Local track record until the indexer-backed reputation engine is wired in:
            // a Beta(1, 1) prior over verified outcomes of the agent's past wins here.
            let (ok, bad) = history.get(&bid.bidder.to_string()).copied().unwrap_or((0, 0));
            let local = (1.0 + ok as f64) / (2.0 + (ok + bad) as f64);
            // On-chain history (all nodes, value-weighted, Sybil-discounted) from the engine,
            // blended with this node's verified verdicts (which land before refunds do).
            let reputation = Some(match &engine {
                Some(book) if ok + bad > 0 => (book.score(&bid.bidder).value + local) / 2.0,
                Some(book) => book.score(&bid.bidder).value,
                None => local,
            });
            let c = Candidate {
                bidder: bid.bidder,
                price: bid.amount,
                eta_secs: b.eta_secs,
                reputation,
                stake,
            };
            let _ = book.submit(c, (b.bid.clone(), b.eta_secs));
        }
        let max_eta = record.deadline.saturating_sub(row.bid_close_at);
        let ranked = book.close(
            U256::from_be_bytes(super::parse_id(&row.id)?.to_be_bytes::<32>()),
            max_eta,
            &self.inner.cfg.scoring,
        );
        let ranking: Vec<Value> = ranked
            .iter()
            .map(|(r, (bid, eta))| json!({ "bidder": r.candidate.bidder, "price": r.candidate.price.to_string(), "eta_secs": eta, "score": r.score, "components": r.components, "signed": bid }))
            .collect();
        let winner = ranked.first().map(|(r, _)| r.candidate.bidder.to_string());
        let ranking = Value::Array(ranking);
        let expiry = top_bid_expiry(&ranking);
        self.inner.store.set_ranking(&row.id, ranking, winner.as_deref(), expiry).await?;
        match winner {
            Some(w) => {
                self.inner
                    .store
                    .transition(
                        &row.id,
                        Phase::Bidding,
                        Phase::AwaitingAward,
                        &format!("{} bids; winner {w}", ranked.len()),
                    )
                    .await?;
            }
            None if self.extend_window(row, &record).await? => {}
            None => {
                self.inner
                    .store
                    .transition(&row.id, Phase::Bidding, Phase::Failed, "no valid bids")
                    .await?;
            }
        }
        Ok(())
    }

    /// A window closed without a valid bid: extends it by its own length (at least
    /// [`MIN_EXTENSION_MS`]) and tells the invited agents, up to `max_window_extensions` times
    /// and while the deadline leaves time to bid, award and work. On a loaded machine (or
    /// right after agents reconnected) bids arrive late; the poster funded the work, so the
    /// node's lateness must not fail it. Returns whether it extended.
    async fn extend_window(&self, row: &BountyRow, record: &Bounty) -> Result<bool> {
        let max = self.inner.cfg.max_window_extensions;
        if max == 0 {
            return Ok(false);
        }
        let done = self
            .inner
            .store
            .events(&row.id)
            .await?
            .iter()
            .filter(|e| e["event"] == "extended")
            .count() as u32;
        if done >= max {
            return Ok(false);
        }
        let window_ms = row.spec["bid_window_ms"]
            .as_u64()
            .unwrap_or_else(|| row.spec["bid_window_secs"].as_u64().unwrap_or(0) * 1000)
            .max(MIN_EXTENSION_MS);
        let close_ms = reef_wire::unix_now_ms() + window_ms;
        let chain_now = self.inner.view.chain_time().await?.max(now());
        // The winner needs the award grace and some time to work before the deadline.
        let close = close_ms.div_ceil(1000);
        if record.deadline <= chain_now.max(close) + 2 * self.inner.cfg.award_grace_secs {
            return Ok(false);
        }
        let detail = format!(
            "no valid bid yet; bidding extended by {} ({}/{max})",
            fmt_window(window_ms),
            done + 1
        );
        let msg_id = format!("cfp-{}-extended-{}", row.id, done + 1);
        self.reannounce(row, close_ms, msg_id, "extended", &detail).await?;
        Ok(true)
    }

    /// Accepts a contest entry's result from `caller` (who must also commit it on-chain with
    /// `submitEntry`; only entries whose on-chain hash matches are judged).
    pub async fn entry(&self, caller: Address, key: &str, result: Value) -> Result<Value> {
        let row = self.row(key).await?;
        if row.phase != Phase::Contest {
            return Err(MarketError::Conflict("this bounty is not an open contest".into()));
        }
        if self.inner.chain.chain_time().await? > row.bid_close_at {
            return Err(MarketError::Conflict("the contest deadline has passed".into()));
        }
        if caller.to_string() == row.poster {
            return Err(MarketError::Forbidden("the poster cannot enter its own contest".into()));
        }
        let fresh = self.inner.store.insert_entry(key, &caller.to_string(), &result).await?;
        if fresh {
            self.inner.store.log(key, "entry", &format!("entry from {caller}")).await?;
        }
        Ok(json!({ "accepted": fresh, "result_hash": result_hash(&result) }))
    }

    /// Contest: after the deadline, verify entries and pay the `maxWinners` best verified ones
    /// (by the verifier's score, then arrival).
    async fn contest(&self, row: &BountyRow) -> Result<()> {
        let id = super::parse_id(&row.id)?;
        let record = Self::record_of(row)?;
        let (status, _) = self.inner.view.status_of(id).await?;
        let t = self.inner.view.chain_time().await?;
        if status.is_terminal() {
            self.inner
                .store
                .transition(
                    &row.id,
                    Phase::Contest,
                    Phase::Settled,
                    &format!("settled on-chain: {status}"),
                )
                .await?;
            return Ok(());
        }
        if matches!(status, Status::None | Status::Open) {
            if t > record.deadline {
                self.inner
                    .store
                    .transition(
                        &row.id,
                        Phase::Contest,
                        Phase::Failed,
                        "the poster never funded the contest",
                    )
                    .await?;
            }
            return Ok(());
        }
        if t <= record.deadline {
            return Ok(());
        }
        let spec = Self::verify_spec(row)?;
        let mut passed: Vec<(Address, Option<f64>)> = Vec::new();
        let mut judged = Vec::new();
        for (agent, result) in self.inner.store.entries(&row.id).await? {
            let Ok(addr) = agent.parse::<Address>() else { continue };
            let rh = result_hash(&result);
            let onchain = self.inner.chain.entry_of(id, addr).await?;
            let (verdict, score) = if onchain != rh {
                (Verdict { accept: false, reason: "no matching on-chain entry".into() }, None)
            } else {
                self.inner
                    .cfg
                    .verifiers
                    .verify_scored(&spec, &row.spec["input"], &result)
                    .await
                    .unwrap_or((
                        Verdict { accept: false, reason: "no automatic verification".into() },
                        None,
                    ))
            };
            judged.push(json!({ "agent": addr, "accept": verdict.accept, "score": score, "reason": verdict.reason }));
            if verdict.accept {
                passed.push((addr, score));
            }
        }
        // The best verified entries are paid: highest verifier score first, then arrival.
        let mut winners = super::verify::rank_entries(passed);
        winners.truncate(usize::from(record.maxWinners));
        let verdict = json!({ "accept": !winners.is_empty(), "winners": winners, "entries": judged, "reason": format!("{} verified winner(s)", winners.len()) });
        self.inner.store.set_verdict(&row.id, &verdict).await?;
        if winners.is_empty() {
            if t > record.deadline + u64::from(record.reviewWindow) {
                self.inner.chain.refund_expired(id, &record).await?;
            }
            return Ok(());
        }
        let split: Vec<u16> = serde_json::from_value(row.spec["split"].clone()).unwrap_or_default();
        let shares = contest_shares(&split, winners.len());
        self.inner.chain.pick_winners(id, &record, winners.clone(), shares.clone()).await?;
        self.inner
            .store
            .transition(
                &row.id,
                Phase::Contest,
                Phase::Settled,
                &format!("winners paid: {winners:?} with shares {shares:?} bps"),
            )
            .await?;
        Ok(())
    }

    /// Waits for the poster's award on-chain, then assigns the task.
    async fn await_award(&self, row: &BountyRow) -> Result<()> {
        let id = super::parse_id(&row.id)?;
        let (status, stamp) = self.inner.view.status_of(id).await?;
        match status {
            Status::None | Status::Open | Status::Funded => {
                let expiry = match row.award_expiry {
                    0 => self.inner.store.ranking(&row.id).await?.map_or(0, |r| top_bid_expiry(&r)),
                    at => at,
                };
                if now() > expiry + 60 {
                    self.inner
                        .store
                        .transition(
                            &row.id,
                            Phase::AwaitingAward,
                            Phase::Failed,
                            "the poster did not award before the winning bid expired",
                        )
                        .await?;
                }
                Ok(())
            }
            _ => {
                self.inner.store.set_awarded_at(&row.id, stamp).await?;
                self.inner
                    .store
                    .transition(
                        &row.id,
                        Phase::AwaitingAward,
                        Phase::Working,
                        &format!("awarded on-chain ({status})"),
                    )
                    .await?;
                let fresh = self.row(&row.id).await?;
                self.assign(&fresh).await
            }
        }
    }

    /// The on-chain record (with provider) as rebuilt from events.
    async fn chain_record(&self, row: &BountyRow) -> Result<(Bounty, Status, u64)> {
        let s = self.inner.view.bounty(super::parse_id(&row.id)?).await?;
        Ok((s.record, s.status, s.stamp))
    }

    /// Opens the work group with poster and provider and assigns the task (idempotent).
    async fn assign(&self, row: &BountyRow) -> Result<()> {
        let me = self.address();
        let (record, _, _) = self.chain_record(row).await?;
        let provider = record.provider;
        if row.winner.as_deref() != Some(&provider.to_string()) {
            self.inner.store.set_field(&row.id, "winner", &provider.to_string()).await?;
        }
        let group_id = match row.work_group.as_deref().filter(|g| !g.starts_with("claimed:")) {
            Some(g) => g.to_string(),
            None => {
                if !self
                    .inner
                    .store
                    .claim(&row.id, "work_group", 30_000, &self.inner.claimant)
                    .await?
                {
                    return Ok(()); // another worker is opening it
                }
                let poster = parse_addr(&row.poster)?;
                let g = self
                    .inner
                    .node
                    .create_group(
                        &me,
                        &format!("task {}", &row.id[..12]),
                        &[poster, provider],
                        None,
                    )
                    .await?;
                self.inner.store.set_field(&row.id, "work_group", &g.group_id).await?;
                super::crash_point("work_group_saved");
                g.group_id
            }
        };
        self.send_assignment(row, &group_id, &record).await
    }

    /// Sends the task to the provider in the work group and logs it. Idempotent: the message
    /// id is fixed per bounty and provider, so a repeat is a duplicate the group ignores.
    async fn send_assignment(
        &self,
        row: &BountyRow,
        group_id: &str,
        record: &Bounty,
    ) -> Result<()> {
        let provider = record.provider;
        let task = json!({
            "task_id": task_id(&row.id),
            "assignee": provider,
            "mode": "sync",
            "input": {
                "bounty_id": row.id,
                "description": row.spec["description"],
                "input": row.spec["input"],
                "record": RecordJson::from(record),
                "verify": row.spec["verify"]["mode"],
                "policy": row.spec["policy"],
            },
        });
        // Terms that forbid passing the input on: the provider's messages elsewhere must not
        // carry it (before the assignment goes out, so no message can slip through first).
        if policy_of(row).is_some_and(|p| !p.onward_sharing) {
            self.inner.node.terms().protect(provider, &row.id, group_id, &row.spec["input"]);
        }
        let body = json!({ "kind": "assignment", "bounty_id": row.id });
        self.send_as_market(
            group_id,
            format!("assign-{}-{provider}", row.id),
            MsgState::TaskAssignment,
            Some(task),
            body,
        )
        .await?;
        self.inner.store.log(&row.id, "assigned", &format!("task assigned to {provider}")).await?;
        Ok(())
    }

    /// Reads the work group for the provider's result; verifies; signs the verdict.
    async fn work(&self, row: &BountyRow) -> Result<()> {
        let me = self.address();
        let Some(group) = row.work_group.as_ref().filter(|g| !g.starts_with("claimed:")) else {
            return self.assign(row).await;
        };
        let (record, status, _) = self.chain_record(row).await?;
        if status.is_terminal() {
            self.inner
                .store
                .transition(
                    &row.id,
                    Phase::Working,
                    Phase::Settled,
                    &format!("settled on-chain: {status}"),
                )
                .await?;
            return Ok(());
        }
        if matches!(status, Status::Awarded)
            && self.inner.view.chain_time().await? > record.deadline
        {
            self.inner.chain.refund_expired(super::parse_id(&row.id)?, &record).await?;
            self.inner
                .store
                .transition(
                    &row.id,
                    Phase::Working,
                    Phase::Settled,
                    "provider missed the deadline; poster refunded",
                )
                .await?;
            return Ok(());
        }
        // The award changed hands on-chain (our take-over, or the poster's): assign afresh.
        if matches!(status, Status::Awarded)
            && !row
                .winner
                .as_deref()
                .is_some_and(|w| w.eq_ignore_ascii_case(&record.provider.to_string()))
        {
            let (_, due) = self.inner.view.status_of(super::parse_id(&row.id)?).await?;
            self.inner.store.hand_over(&row.id, &record.provider.to_string(), due).await?;
            self.inner
                .store
                .log(&row.id, "reassigned", &format!("the job is now {}'s", record.provider))
                .await?;
            let fresh = self.row(&row.id).await?;
            return self.assign(&fresh).await;
        }
        let msgs = self.inner.node.history(&me, group, row.cursor, 200).await?;
        // Nothing read from the group yet and our assignment not in it: the node stopped
        // between saving the group and sending the task. Send it now (the provider would
        // otherwise wait for a task that never comes, until its ETA hands the job on).
        if row.cursor == 0
            && !msgs.iter().any(|m| {
                m["sender_id"].as_str().and_then(|s| s.parse::<Address>().ok()) == Some(me)
                    && m["state"] == "task_assignment"
                    && m["task_desc"]["task_id"] == task_id(&row.id)
            })
        {
            self.send_assignment(row, group, &record).await?;
        }
        let mut cursor = row.cursor;
        for m in msgs {
            cursor = cursor.max(m["seq"].as_u64().unwrap_or(cursor));
            let from: Option<Address> = m["sender_id"].as_str().and_then(|s| s.parse().ok());
            if from != Some(record.provider)
                || m["state"] != "execution"
                || m["task_desc"]["task_id"] != task_id(&row.id)
            {
                continue;
            }
            let result = m["body"]["result"].clone();
            let ok = m["body"]["status"] == "done";
            let spec = Self::verify_spec(row)?;
            if ok && let Some((k, _, members)) = spec.panel() {
                self.inner.store.set_cursor(&row.id, cursor).await?;
                return self.request_evaluation(row, record.provider, members, k, &result).await;
            }
            let verdict = if !ok {
                Some(Verdict { accept: false, reason: "the provider reported failure".into() })
            } else {
                self.inner.cfg.verifiers.verify(&spec, &row.spec["input"], &result).await
            };
            let rh = result_hash(&result);
            self.inner.store.set_cursor(&row.id, cursor).await?;
            return match verdict {
                Some(v) => self.conclude(row, group, &record, rh, v, &result).await,
                None => {
                    let body = json!({ "kind": "awaiting_poster", "bounty_id": row.id, "result_hash": rh, "record": RecordJson::from(&record) });
                    self.say(group, &row.id, "await-poster", body).await?;
                    self.inner.store.transition(&row.id, Phase::Working, Phase::AwaitingPoster, "result delivered; the poster decides (auto-accept after the review window)").await?;
                    Ok(())
                }
            };
        }
        self.inner.store.set_cursor(&row.id, cursor).await?;
        if matches!(status, Status::Awarded) {
            let (_, due) = self.inner.view.status_of(super::parse_id(&row.id)?).await?;
            // The next block's time: an idle devnet's latest block can be minutes old.
            if self.inner.view.chain_time().await?.max(now()) > due {
                return self.take_over(row, &record, due).await;
            }
        }
        Ok(())
    }

    /// The provider is past the delivery time it signed (`eta`) and has delivered nothing: hand
    /// the job to the best-ranked remaining bidder whose bid is still valid, or refund the poster
    /// if there is none. Only the poster or the evaluator may do this on-chain; when the poster
    /// is its own evaluator the node only records the miss (the poster's CLI can reassign).
    /// Crash-safe: the failure is persisted in the ranking first; the reassignment itself is
    /// read back from the chain on the next pass (`work` reconciles the winner).
    async fn take_over(&self, row: &BountyRow, record: &Bounty, due: u64) -> Result<()> {
        let id = super::parse_id(&row.id)?;
        let late = record.provider;
        let events = self.inner.store.events(&row.id).await?;
        if !events.iter().any(|e| {
            e["event"] == "eta_missed"
                && e["detail"].as_str().is_some_and(|d| d.contains(&late.to_string()))
        }) {
            self.inner
                .store
                .log(&row.id, "eta_missed", &format!("{late} promised delivery by {due}"))
                .await?;
        }
        if record.evaluator != self.address() {
            return Ok(());
        }
        let mut ranking = match self.inner.store.ranking(&row.id).await? {
            Some(r) => Value::clone(&r),
            None => json!([]),
        };
        let t = self.inner.view.chain_time().await?.max(now());
        let mut next: Option<(Bid, Bytes)> = None;
        if let Some(list) = ranking.as_array_mut() {
            for entry in list.iter_mut() {
                let bidder = entry["bidder"].as_str().unwrap_or_default().to_string();
                if bidder.eq_ignore_ascii_case(&late.to_string()) {
                    entry["failed"] = json!(true);
                }
            }
            // The node calls as the evaluator: the escrow caps the new price at the current one.
            let cap = alloy::primitives::U256::from(record.price);
            next = super::next_runner_up(list, late, t, Some((self.address(), cap)));
        }
        let expiry = row.award_expiry;
        self.inner.store.set_ranking(&row.id, ranking, row.winner.as_deref(), expiry).await?;
        match next {
            Some((bid, sig)) => {
                let to = bid.bidder;
                self.inner.chain.reassign(id, record, &bid, sig).await?;
                self.inner
                    .store
                    .log(
                        &row.id,
                        "taken_over",
                        &format!("{late} missed its ETA; the job goes to the runner-up {to}"),
                    )
                    .await?;
            }
            None => {
                self.inner.chain.revoke_award(id, record).await?;
                self.inner
                    .store
                    .transition(
                        &row.id,
                        Phase::Working,
                        Phase::Settled,
                        &format!(
                            "{late} missed its ETA and no other bid is valid; poster refunded"
                        ),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Hands the provider's result to the evaluator panel: one group with the members, one
    /// request; the pending verdict (result, hash, group) is persisted before anything else
    /// happens, so a restart resumes collecting. The request names the provider: members sign
    /// `Attestation(id, provider, resultHash, verdict)`.
    async fn request_evaluation(
        &self,
        row: &BountyRow,
        provider: Address,
        members: &[Address],
        quorum: u8,
        result: &Value,
    ) -> Result<()> {
        let me = self.address();
        let rh = result_hash(result);
        let group = self
            .inner
            .node
            .create_group(&me, &format!("evaluate {}", &row.id[..12]), members, None)
            .await?;
        let pending = json!({ "pending": true, "result": result, "result_hash": rh, "eval_group": group.group_id, "quorum": quorum });
        self.inner.store.set_verdict(&row.id, &pending).await?;
        let body = json!({
            "kind": "evaluate",
            "bounty_id": row.id,
            "description": row.spec["description"],
            "input": row.spec["input"],
            "result": result,
            "result_hash": rh,
            "provider": provider,
            "quorum": quorum,
            "chain_id": self.inner.cfg.deployment.chain_id,
            "escrow": self.inner.cfg.deployment.bounty_escrow,
        });
        self.send_as_market(
            &group.group_id,
            format!("evaluate-{}-{rh}", row.id),
            MsgState::Discussion,
            None,
            body,
        )
        .await?;
        self.inner
            .store
            .transition(
                &row.id,
                Phase::Working,
                Phase::Evaluating,
                &format!("result sent to {} evaluator(s); {quorum} must agree", members.len()),
            )
            .await?;
        Ok(())
    }

    /// Collects the panel's signed evaluations; a quorum of matching verdicts becomes the
    /// panel's attestation. Signatures are checked here (signer = sender, a member, this chain
    /// and escrow, the judged result), so a bad one never reaches the chain.
    async fn evaluating(&self, row: &BountyRow) -> Result<()> {
        let me = self.address();
        let id = super::parse_id(&row.id)?;
        let (record, status, _) = self.chain_record(row).await?;
        if status.is_terminal() || status != Status::Awarded {
            return self.settle(row).await;
        }
        if self.inner.view.chain_time().await? > record.deadline {
            self.inner.chain.refund_expired(id, &record).await?;
            return Ok(());
        }
        let Some(pending) = row.verdict.clone() else { return Ok(()) };
        let spec = Self::verify_spec(row)?;
        let Some((quorum, _, members)) = spec.panel() else { return Ok(()) };
        let (Some(group), Ok(rh)) = (
            pending["eval_group"].as_str(),
            serde_json::from_value::<B256>(pending["result_hash"].clone()),
        ) else {
            return Err(MarketError::Internal("pending evaluation without group or hash".into()));
        };
        let mut votes: std::collections::BTreeMap<Address, (u8, Bytes)> = Default::default();
        for m in self.inner.node.history(&me, group, 0, 500).await? {
            let body = &m["body"];
            let Some(from) = m["sender_id"].as_str().and_then(|s| s.parse::<Address>().ok()) else {
                continue;
            };
            if body["kind"] != "evaluation" || !members.contains(&from) || votes.contains_key(&from)
            {
                continue;
            }
            let Some(eval) = super::intake::Evaluation::parse(body) else { continue };
            let verdict = eval.verdict_on(rh).filter(|v| {
                let signer = self.inner.chain.attestation_signer(
                    id,
                    record.provider,
                    rh,
                    *v,
                    &eval.signature,
                    from,
                );
                signer.is_ok()
            });
            let Some(verdict) = verdict else {
                tracing::warn!(bounty = %row.id, evaluator = %from, "ignoring an invalid evaluation");
                continue;
            };
            votes.insert(from, (verdict, eval.signature));
        }
        for code in [verdict_code::ACCEPT, verdict_code::REJECT] {
            let agreeing: Vec<(Address, Bytes)> = votes
                .iter()
                .filter(|(_, (v, _))| *v == code)
                .map(|(a, (_, s))| (*a, s.clone()))
                .take(usize::from(quorum))
                .collect();
            if agreeing.len() < usize::from(quorum) {
                continue;
            }
            let member_sigs: Vec<Bytes> = agreeing.iter().map(|(_, s)| s.clone()).collect();
            let sig =
                escrow_client::panel::encode_signature(id, record.provider, rh, code, agreeing);
            let accept = code == verdict_code::ACCEPT;
            let v = Verdict {
                accept,
                reason: format!(
                    "{quorum} of {} evaluators {}",
                    members.len(),
                    if accept { "accepted" } else { "rejected" }
                ),
            };
            let work_group = row.work_group.clone().unwrap_or_default();
            return self
                .conclude_with(
                    row,
                    &work_group,
                    &record,
                    rh,
                    v,
                    &pending["result"],
                    Some((sig, member_sigs)),
                )
                .await;
        }
        if votes.len() == members.len() {
            let events = self.inner.store.events(&row.id).await?;
            if !events.iter().any(|e| e["event"] == "no_quorum") {
                self.inner
                    .store
                    .log(
                        &row.id,
                        "no_quorum",
                        "the evaluators disagree; the poster is refunded at the deadline",
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Once a panel bounty is final, pays the members who signed its verdict (or refunds the
    /// poster's fee budget if the panel never decided). Idempotent; a deterministic revert is
    /// logged and not retried forever.
    async fn settle_panel_fees(
        &self,
        row: &BountyRow,
        record: &Bounty,
        status: Status,
    ) -> Result<()> {
        let Some(panel_addr) = self.inner.cfg.deployment.evaluator_panel else { return Ok(()) };
        if record.evaluator != panel_addr {
            return Ok(());
        }
        let id = super::parse_id(&row.id)?;
        match self.inner.chain.panel_of(id).await? {
            Some(p) if !p.fees_settled => {}
            _ => return Ok(()),
        }
        let v = row.verdict.clone().unwrap_or_default();
        let sigs: Vec<Bytes> = serde_json::from_value(v["member_sigs"].clone()).unwrap_or_default();
        let code = match status {
            Status::Completed => verdict_code::ACCEPT,
            Status::Refunded => verdict_code::REJECT,
            _ if v["accept"] == true => verdict_code::ACCEPT,
            _ => verdict_code::REJECT,
        };
        match self.inner.chain.settle_panel_fees(id, record, code, sigs).await {
            Ok(tx) => {
                self.inner
                    .store
                    .log(&row.id, "panel_fees", &format!("evaluator fees settled (tx {})", tx.hash))
                    .await?;
            }
            Err(e @ escrow_client::Error::Revert { .. }) => {
                self.inner.store.log(&row.id, "panel_fees_failed", &e.to_string()).await?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Copies the final verdict into the ERC-8004 ValidationRegistry and says so in the
    /// bounty's log. Idempotent (a recorded verdict is found and not sent again); only a
    /// transport error holds the settlement back (the step is retried).
    async fn record_validation(
        &self,
        row: &BountyRow,
        id: U256,
        record: &Bounty,
        status: Status,
    ) -> Result<()> {
        use super::validations::Recorded;
        let done = self.inner.validations.record(&self.inner.chain, id, record, status).await?;
        match done {
            Recorded::Recorded { agent_id, request_hash, response, tx } => {
                let line = format!(
                    "ERC-8004 validation recorded for agent {agent_id}: response {response}, request {request_hash} (tx {tx})"
                );
                self.inner.store.log(&row.id, "validation_recorded", &line).await?;
            }
            Recorded::Failed(why) => {
                self.inner.store.log(&row.id, "validation_failed", &why).await?;
            }
            Recorded::AlreadyRecorded { .. } | Recorded::Skipped(_) => {
                tracing::debug!(bounty = %row.id, outcome = ?done, "no validation to record");
            }
        }
        Ok(())
    }

    /// Posts a message as the node's market identity. `msg_id`s are deterministic per bounty,
    /// so a repeat after a restart is not delivered twice.
    async fn send_as_market(
        &self,
        group: &str,
        msg_id: String,
        state: MsgState,
        task_desc: Option<Value>,
        body: Value,
    ) -> Result<()> {
        let msg = SendMessage {
            group_id: group.to_string(),
            msg_id,
            state,
            task_desc,
            body: Some(body),
            extra: Default::default(),
        };
        self.inner.node.send(&self.address(), msg).await?;
        Ok(())
    }

    /// A conclusion-state message tagged `<tag>-<bounty id>`.
    async fn say(&self, group: &str, id: &str, tag: &str, body: Value) -> Result<()> {
        self.send_as_market(group, format!("{tag}-{id}"), MsgState::Conclusion, None, body).await
    }

    /// Persists the verdict, signs the attestation and tells the group.
    async fn conclude(
        &self,
        row: &BountyRow,
        group: &str,
        record: &Bounty,
        rh: B256,
        v: Verdict,
        result: &Value,
    ) -> Result<()> {
        self.conclude_with(row, group, record, rh, v, result, None).await
    }

    /// [`Self::conclude`] with the attestation given (an evaluator panel's combined signature
    /// and its member signatures) instead of signed by this node.
    #[allow(clippy::too_many_arguments)]
    async fn conclude_with(
        &self,
        row: &BountyRow,
        group: &str,
        record: &Bounty,
        rh: B256,
        v: Verdict,
        result: &Value,
        panel: Option<(Bytes, Vec<Bytes>)>,
    ) -> Result<()> {
        let id = super::parse_id(&row.id)?;
        let code = if v.accept { verdict_code::ACCEPT } else { verdict_code::REJECT };
        let (sig, member_sigs) = match panel {
            Some((sig, members)) => (sig, Some(members)),
            None => (self.inner.chain.sign_attestation(id, record.provider, rh, code)?, None),
        };
        // The result is kept for the poster (who is a member of the work group anyway).
        let verdict = json!({ "accept": v.accept, "reason": v.reason, "result_hash": rh, "attestation": sig, "member_sigs": member_sigs, "result": result });
        self.inner.store.set_verdict(&row.id, &verdict).await?;
        let body = json!({
            "kind": "verdict",
            "bounty_id": row.id,
            "accept": v.accept,
            "reason": v.reason,
            "result_hash": rh,
            "verdict": code,
            "attestation": sig,
            "record": RecordJson::from(record),
        });
        self.say(group, &row.id, "verdict", body).await?;
        let moved = self
            .inner
            .store
            .transition(
                &row.id,
                row.phase,
                Phase::Settling,
                &format!("verdict: {} ({})", if v.accept { "accept" } else { "reject" }, v.reason),
            )
            .await?;
        if moved {
            let m = &crate::metrics::METRICS;
            crate::metrics::inc(if v.accept { &m.verdicts_accept } else { &m.verdicts_reject });
        }
        Ok(())
    }

    /// Follows the chain to a terminal state, nudging it where the node may.
    async fn settle(&self, row: &BountyRow) -> Result<()> {
        let id = super::parse_id(&row.id)?;
        let (record, status, stamp) = self.chain_record(row).await?;
        if status.is_terminal() {
            self.settle_panel_fees(row, &record, status).await?;
            self.record_validation(row, id, &record, status).await?;
            self.inner
                .store
                .transition(
                    &row.id,
                    row.phase,
                    Phase::Settled,
                    &format!("settled on-chain: {status}"),
                )
                .await?;
            return Ok(());
        }
        let t = self.inner.view.chain_time().await?;
        match (row.phase, status) {
            // The provider submitted without the attestation: record our verdict ourselves.
            (Phase::Settling, Status::Submitted) => {
                let accept = row.verdict.as_ref().map(|v| v["accept"] == true).unwrap_or(false);
                let code = if accept { verdict_code::ACCEPT } else { verdict_code::REJECT };
                if let Some(v) = &row.verdict
                    && v["result_hash"].as_str() == Some(&record.resultHash.to_string())
                {
                    // Our own verdict needs no signature (we are the evaluator); a panel's
                    // verdict carries its combined signature.
                    let att: Bytes =
                        serde_json::from_value(v["attestation"].clone()).unwrap_or_default();
                    self.inner.chain.attest(id, &record, code, att).await?;
                } else if record.evaluator != self.address() {
                    // A panel bounty whose submitted result is not the one judged: nobody
                    // attests; the review window lapses and the poster is refunded.
                } else {
                    // A different result than the one verified was submitted: reject it.
                    self.inner
                        .chain
                        .attest(id, &record, verdict_code::REJECT, Bytes::new())
                        .await?;
                }
            }
            // Rejected work the provider never submits: refund once the deadline passed.
            (Phase::Settling, Status::Awarded) if t > record.deadline => {
                self.inner.chain.refund_expired(id, &record).await?;
            }
            (Phase::AwaitingPoster, Status::Submitted)
                if t > stamp + u64::from(record.reviewWindow) =>
            {
                self.inner.chain.claim_after_review(id, &record).await?;
            }
            (Phase::AwaitingPoster, Status::Awarded) if t > record.deadline => {
                self.inner.chain.refund_expired(id, &record).await?;
            }
            (_, Status::Rejected) if t > stamp + u64::from(record.challengeWindow) => {
                self.inner.chain.finalize_rejection(id, &record).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The reputation engine's book over the embedded index (None if not configured/failing).
    /// Built at most once per [`REPUTATION_TTL`]: a burst of windows closing together (or a
    /// panel chosen per post) shares one fold over the index instead of one each.
    async fn reputation_book(&self) -> Option<Arc<reef_reputation::ReputationBook>> {
        let store = self.inner.cfg.reputation.as_ref()?;
        let mut cache = self.inner.reputation_cache.lock().await;
        if let Some((at, book)) = cache.as_ref()
            && at.elapsed() < REPUTATION_TTL
        {
            return Some(book.clone());
        }
        match reef_indexer::reputation::load_book(store, 0, reef_reputation::Params::default())
            .await
        {
            Ok(b) => {
                let b = Arc::new(b);
                *cache = Some((std::time::Instant::now(), b.clone()));
                Some(b)
            }
            Err(e) => {
                tracing::warn!(error = %e, "reputation engine unavailable; ranking with local history");
                None
            }
        }
    }

    /// [`Self::view`], long-polled: waits up to `wait` (at most [`MAX_VIEW_WAIT`]) until the
    /// bounty's log holds more than `after_events` entries or it is final, then answers. A
    /// client following a bounty asks again with the count it has seen, instead of polling.
    /// `client` names the asker for the long-poll bounds ([`super::longpoll`]): past them the
    /// view is answered at once with a `long_poll_declined` reason.
    pub async fn view_wait(
        &self,
        caller: Option<Address>,
        client: &str,
        key: &str,
        after_events: usize,
        wait: Duration,
    ) -> Result<Value> {
        let _slot = match self.inner.long_polls.acquire(client) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(client, bounty = %key, %why, "long-poll declined");
                let mut v = self.view(caller, key).await?;
                v["long_poll_declined"] = Value::String(why);
                return Ok(v);
            }
        };
        let until = tokio::time::Instant::now() + wait.min(MAX_VIEW_WAIT);
        // Woken by every log line this process appends for the bounty (after its commit), not
        // by every step: a step that changed nothing costs a follower no re-read.
        let watchers = self.inner.store.log_watchers();
        let notify = watchers.watch(key);
        let answer = loop {
            // Registered before the read, so a line appended in between is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let v = match self.view(caller, key).await {
                Ok(v) => v,
                Err(e) => break Err(e),
            };
            let events = v["events"].as_array().map_or(0, Vec::len);
            let done = matches!(v["phase"].as_str(), Some("settled" | "failed"));
            if events > after_events || done || tokio::time::Instant::now() >= until {
                tracing::debug!(bounty = %key, events, after_events, phase = %v["phase"], "view answered");
                break Ok(v);
            }
            let _ = tokio::time::timeout_at(until, notified).await;
        };
        watchers.unwatch(key, notify);
        answer
    }

    /// A bounty's public view; the poster also sees the ranking and the winning signed bid.
    pub async fn view(&self, caller: Option<Address>, key: &str) -> Result<Value> {
        // The log before the row: a transition commits its phase and its log line together, so
        // read this way the phase is never older than the log (a follower waiting for "more
        // events than I saw" would otherwise miss a phase it never saw).
        let (events, bids) = self.inner.store.events_and_bid_count(key).await?;
        let row = self.row(key).await?;
        let is_poster = caller.is_some_and(|c| c.to_string() == row.poster);
        let mut v = json!({
            "id": row.id,
            "phase": row.phase,
            "poster": row.poster,
            "bid_close_at": row.bid_close_at,
            "bids": bids,
            "winner": row.winner,
            "cfp_group": row.cfp_group,
            "work_group": row.work_group,
            "verdict": row.verdict.as_ref().map(|v| {
                let mut v = v.clone();
                if !is_poster && let Some(o) = v.as_object_mut() {
                    o.remove("result");
                }
                v
            }),
            "note": row.note,
            "events": events,
            "description": row.spec["description"],
            "verify": row.spec["verify"]["mode"],
            "policy": row.spec["policy"],
            "erased": row.spec["erased"].as_bool().unwrap_or(false),
        });
        // Ranked when the window closed (a contest has entries instead).
        let ranked = !matches!(row.phase, Phase::Bidding | Phase::Contest);
        if is_poster
            && ranked
            && let Some(r) = self.inner.store.ranking(key).await?
        {
            v["ranking"] = Value::clone(&r);
            v["winning_bid"] = r[0]["signed"].clone();
            v["record"] = row.spec["record"].clone();
            v["salt"] = row.spec["salt"].clone();
        }
        Ok(v)
    }
}

/// Shares (basis points, summing to 10,000) of the `n` paid contest entries, best first: the
/// poster's `split` cut to `n` and scaled up to the whole reward, or equal shares without one.
/// Rounding dust goes to the best entry.
pub fn contest_shares(split: &[u16], n: usize) -> Vec<u16> {
    if n == 0 {
        return Vec::new();
    }
    let used: Vec<u64> = if split.len() >= n {
        split[..n].iter().map(|s| u64::from(*s)).collect()
    } else {
        vec![1; n]
    };
    let total: u64 = used.iter().sum::<u64>().max(1);
    let mut shares: Vec<u16> = used.iter().map(|s| (s * 10_000 / total) as u16).collect();
    let sum: u32 = shares.iter().map(|s| u32::from(*s)).sum();
    shares[0] += (10_000 - sum) as u16;
    shares
}

#[cfg(test)]
mod tests {
    use super::{contest_shares, fanout_pick};
    use alloy::primitives::Address;

    #[test]
    fn fanout_invites_k_agents_deterministically_and_spreads_the_calls() {
        let agents: Vec<Address> = (1..=50u8).map(Address::repeat_byte).collect();
        let a = fanout_pick("0x01", agents.clone(), 8);
        assert_eq!(a.len(), 8);
        assert_eq!(a, fanout_pick("0x01", agents.iter().rev().copied().collect(), 8));
        let mut uniq = a.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 8, "no agent twice");
        // Over 1,000 calls each agent is invited about 1000 * 8 / 50 = 160 times.
        let mut count = std::collections::HashMap::<Address, u32>::new();
        for b in 0..1_000 {
            for x in fanout_pick(&format!("{b:#x}"), agents.clone(), 8) {
                *count.entry(x).or_default() += 1;
            }
        }
        assert_eq!(count.len(), 50, "every agent gets calls");
        assert!(count.values().all(|c| (100..=230).contains(c)), "{count:?}");
        // Removing an agent not picked for a call leaves that call's invitees unchanged.
        let out = agents.iter().find(|x| !a.contains(x)).copied().unwrap();
        let fewer: Vec<Address> = agents.iter().copied().filter(|x| *x != out).collect();
        assert_eq!(fanout_pick("0x01", fewer, 8), a);
    }

    #[test]
    fn contest_shares_follow_the_split_and_sum_to_the_reward() {
        assert_eq!(contest_shares(&[], 3), vec![3_334, 3_333, 3_333]);
        assert_eq!(contest_shares(&[7_000, 3_000], 2), vec![7_000, 3_000]);
        // One verified entry of a 70/30 contest takes everything.
        assert_eq!(contest_shares(&[7_000, 3_000], 1), vec![10_000]);
        // Two of a 50/30/20 split: scaled to 62.5/37.5.
        assert_eq!(contest_shares(&[5_000, 3_000, 2_000], 2), vec![6_250, 3_750]);
        assert!(contest_shares(&[], 0).is_empty());
        for n in 1..=32 {
            let s = contest_shares(&[], n);
            assert_eq!(s.iter().map(|x| u32::from(*x)).sum::<u32>(), 10_000);
            assert!(s.iter().all(|x| *x > 0));
        }
    }
}
