//! The JSON the dashboard's pages read (`/v1/dashboard/...`): typed answers assembled from the
//! marketplace store, the embedded indexer's `idx_events` (every on-chain step with its
//! transaction), receipts through the node's chain view (gas, cached), and the IoA store.
//!
//! Access: anything that is on-chain, plus a bounty's phase, bid count and progress log, is
//! public. The ranking (every sealed bid with its score) only goes to the bounty's poster, the
//! task input to the poster and the assigned provider, a verdict's result to those two, and a
//! group's transcript to the group's members.

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::{Address, B256};
use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
};
use reef_indexer::EventRow;
use reef_wire::{AgentInfo, AgentQuery, GroupInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{DashError, Dashboard, Result, auth::Viewer};
use crate::market::{
    Market,
    ranking::RankedBid,
    store::{BountyRow, Phase},
};
use crate::openapi;

/// Bounties listed on the market and bounties pages.
const LIST_LIMIT: i64 = 200;

/// Settled bounties the market page's charts cover (the latest).
const CHART_LIMIT: u32 = 100;

/// Escrow events that end a bounty (or a dispute round) and the payouts they carry.
const SETTLE_KINDS: [&str; 4] =
    ["BountyCompleted", "BountyRefunded", "DisputeResolved", "BountyCancelled"];

/// One phase and how many bounties are in it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::PhaseCount)]
pub struct PhaseCount {
    /// The phase.
    pub phase: Phase,
    /// Bounties in it.
    pub count: u64,
}

/// A bounty in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::BountySummary)]
pub struct BountySummary {
    /// 0x-hex id.
    pub id: String,
    /// Phase inside the node.
    pub phase: Phase,
    /// Poster.
    pub poster: String,
    /// Awarded (or ranked-first) provider.
    #[schema(required)]
    pub winner: Option<String>,
    /// Sealed bids received (the count only: the bids are the poster's to see).
    pub bids: u64,
    /// Task description.
    pub description: String,
    /// Reward budget in the token's base units (decimal).
    #[schema(required)]
    pub reward: Option<String>,
    /// Reward token.
    #[schema(required)]
    pub token: Option<String>,
    /// Skills asked for.
    pub skills: Vec<String>,
    /// A contest (entries until the deadline) rather than an auction.
    pub contest: bool,
    /// How the result is verified (`hash`, `command`, `poster`, `evaluator`, `quorum`).
    #[schema(required)]
    pub verify: Option<String>,
    /// The parent bounty, when this one is funded from its reward (a sub-bounty).
    #[schema(required)]
    pub parent: Option<String>,
    /// Unix ms when the node registered it.
    pub created_ms: u64,
    /// Unix seconds when bidding closes (a contest: its deadline).
    pub bid_close_at: u64,
    /// The last transition's note.
    #[schema(required)]
    pub note: Option<String>,
}

/// A settled bounty on the market page's charts.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::SettledPoint)]
pub struct SettledPoint {
    /// The bounty.
    pub id: String,
    /// How it ended (the escrow event).
    pub outcome: String,
    /// Block time of the settlement.
    pub at: u64,
    /// Gas of every transaction about the bounty (from receipts), when all could be read.
    #[schema(required)]
    pub gas: Option<u64>,
    /// Paid to the provider(s) (decimal base units).
    #[schema(required)]
    pub paid: Option<String>,
    /// Platform fee (decimal base units).
    #[schema(required)]
    pub fee: Option<String>,
    /// Reward token.
    #[schema(required)]
    pub token: Option<String>,
}

/// An amount of one token.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::TokenAmount)]
pub struct TokenAmount {
    /// Token address.
    pub token: String,
    /// Decimal base units.
    pub amount: String,
}

/// `GET /v1/dashboard/market`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::MarketOverview)]
pub struct MarketOverview {
    /// This node's id.
    pub node_id: String,
    /// Whether this node runs the marketplace (else only agents and groups are shown).
    pub market: bool,
    /// The node's evaluator address.
    #[schema(value_type = Option<openapi::Address>, required)]
    pub evaluator: Option<Address>,
    /// Platform fee in basis points.
    #[schema(required)]
    pub fee_bps: Option<u16>,
    /// Bounties per phase (every phase, in lifecycle order).
    pub phases: Vec<PhaseCount>,
    /// The latest bounties, newest first.
    pub bounties: Vec<BountySummary>,
    /// The latest settlements, oldest first (the charts' points).
    pub settled: Vec<SettledPoint>,
    /// Platform fees earned, per token (from the escrow's events).
    pub fees: Vec<TokenAmount>,
    /// Registered agents.
    pub agents: usize,
    /// Agents online now.
    pub agents_online: usize,
    /// Whether the embedded indexer runs (without it there is no on-chain history).
    pub indexed: bool,
}

/// One step of a bounty's timeline: a line of the node's progress log or an on-chain event.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::TimelineItem)]
pub struct TimelineItem {
    /// Unix ms (an on-chain event: its block's time).
    pub at_ms: u64,
    /// `node` (the node's log) or `chain` (an escrow event).
    pub source: &'static str,
    /// The event's name (`posted`, `announced`, `BountyAwarded`, …).
    pub event: String,
    /// What kind of step it is, for the page's label: `cfp`, `bids`, `award`, `work`,
    /// `verdict`, `payout`, `contest`, `panel`, `dispute`, `takeover`, `failure`, `other`.
    pub section: &'static str,
    /// Detail (the log line's text, or the event's accounts and amounts).
    pub detail: String,
    /// The transaction (on-chain events).
    #[schema(value_type = Option<openapi::TxHash>, required)]
    pub tx_hash: Option<B256>,
    /// Gas the transaction used (from its receipt).
    #[schema(required)]
    pub gas: Option<u64>,
    /// Block number (on-chain events).
    #[schema(required)]
    pub block: Option<u64>,
    /// Main account of the event.
    #[schema(value_type = Option<openapi::Address>, required)]
    pub actor: Option<Address>,
    /// Main amount (decimal base units).
    #[schema(required)]
    pub amount: Option<String>,
}

/// One on-chain transaction of a bounty.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::ChainTx)]
pub struct ChainTx {
    /// Transaction hash.
    #[schema(value_type = openapi::TxHash)]
    pub tx_hash: B256,
    /// Block number.
    pub block: u64,
    /// Block time.
    pub at: u64,
    /// The escrow events it emitted about the bounty.
    pub events: Vec<String>,
    /// Gas used (from the receipt).
    #[schema(required)]
    pub gas: Option<u64>,
}

/// One part of a bid's score.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::ScorePart)]
pub struct ScorePart {
    /// `price`, `eta`, `reputation` or `stake`.
    pub name: String,
    /// Normalised value in [0, 1].
    pub value: f64,
    /// Weight in the total.
    pub weight: f64,
}

/// A ranked sealed bid (the poster's view).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::RankRow)]
pub struct RankRow {
    /// Rank, 1 = best.
    pub rank: usize,
    /// Bidder.
    pub bidder: String,
    /// Price asked (decimal base units).
    pub price: String,
    /// Promised delivery after the award, seconds.
    pub eta_secs: u64,
    /// Total score.
    pub score: f64,
    /// The parts of the score.
    pub parts: Vec<ScorePart>,
    /// Marked failed (missed its ETA; the job was taken over).
    pub failed: bool,
}

/// The call for proposals as posted.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::Cfp)]
pub struct Cfp {
    /// Task description.
    pub description: String,
    /// Skills asked for.
    pub skills: Vec<String>,
    /// Verification mode.
    #[schema(required)]
    pub verify: Option<String>,
    /// The evaluator panel (panel modes), as chosen by the node.
    #[schema(value_type = Vec<openapi::Address>)]
    pub panel: Vec<Address>,
    /// Matching verdicts a panel needs.
    #[schema(required)]
    pub quorum: Option<u64>,
    /// Bid window, ms.
    pub bid_window_ms: u64,
    /// Unix seconds when bidding closes.
    pub bid_close_at: u64,
    /// Submission deadline (unix seconds).
    #[schema(required)]
    pub deadline: Option<u64>,
    /// The CFP's IoA group.
    #[schema(required)]
    pub cfp_group: Option<String>,
}

/// `GET /v1/dashboard/bounties/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::BountyPage)]
pub struct BountyPage {
    /// The bounty.
    pub summary: BountySummary,
    /// Who is looking.
    #[schema(value_type = Option<openapi::Address>, required)]
    pub viewer: Option<Address>,
    /// The viewer posted it.
    pub is_poster: bool,
    /// The viewer is the assigned provider.
    pub is_provider: bool,
    /// The call for proposals.
    pub cfp: Cfp,
    /// Posting to payout, oldest first.
    pub timeline: Vec<TimelineItem>,
    /// Every on-chain transaction about the bounty, with its gas.
    pub transactions: Vec<ChainTx>,
    /// Gas of all of them.
    #[schema(required)]
    pub total_gas: Option<u64>,
    /// The ranking with each score's parts (poster only, after the window closed).
    #[schema(required)]
    pub ranking: Option<Vec<RankRow>>,
    /// Why there is no ranking (`sealed` while bidding, `poster_only`, `none`).
    pub ranking_note: &'static str,
    /// The award on-chain: provider and price.
    #[schema(required)]
    pub award: Option<TimelineItem>,
    /// The verdict (its `result` only for the poster and the provider).
    #[schema(value_type = Option<Object>, required)]
    pub verdict: Option<Value>,
    /// The payout on-chain: the event that ended the bounty.
    #[schema(required)]
    pub payout: Option<TimelineItem>,
    /// Every payment the escrow made for it (a contest pays each winner: `WinnerPaid`).
    pub payouts: Vec<TimelineItem>,
    /// Task input (poster and assigned provider only).
    #[schema(required)]
    pub input: Option<Value>,
    /// The work group (poster + provider).
    #[schema(required)]
    pub work_group: Option<String>,
    /// The work group's conversation (its members only).
    #[schema(value_type = Option<Vec<openapi::GroupMessage>>, required)]
    pub conversation: Option<Vec<Value>>,
    /// Contest entrants (who entered; the entries are the poster's to see).
    pub entrants: Vec<String>,
    /// Sub-bounties funded from this one's reward.
    pub children: Vec<BountySummary>,
    /// The parent's summary, for a sub-bounty.
    #[schema(required)]
    pub parent: Option<BountySummary>,
}

/// An agent on the agents page.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::AgentRow)]
pub struct AgentRow {
    /// Card and online state.
    #[serde(flatten)]
    #[schema(value_type = openapi::AgentInfo)]
    pub info: AgentInfo,
    /// Bonded stake (wei, decimal), when the chain answered.
    #[schema(required)]
    pub stake: Option<String>,
    /// Reputation score in [0, 1], when the node indexes the chain.
    #[schema(required)]
    pub reputation: Option<f64>,
}

/// `GET /v1/dashboard/agents`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::AgentList)]
pub struct AgentList {
    /// Matching agents (all, without a query), best match first.
    pub agents: Vec<AgentRow>,
}

/// One public event in an agent's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::AgentEvent)]
pub struct AgentEvent {
    /// Escrow or registry event.
    pub kind: String,
    /// The bounty (or other object) it is about.
    #[schema(required)]
    pub ref_id: Option<String>,
    /// Transaction.
    #[schema(value_type = openapi::TxHash)]
    pub tx_hash: B256,
    /// Block time.
    pub at: u64,
    /// Amount (decimal base units).
    #[schema(required)]
    pub amount: Option<String>,
}

/// `GET /v1/dashboard/agents/{address}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::AgentPage)]
pub struct AgentPage {
    /// The agent.
    pub agent: AgentRow,
    /// Its reputation, explained (components and counts).
    #[schema(value_type = Option<openapi::Reputation>, required)]
    pub reputation: Option<reef_reputation::Score>,
    /// Its latest on-chain events, newest first.
    pub history: Vec<AgentEvent>,
    /// Bounties it won on this node, newest first.
    pub bounties: Vec<BountySummary>,
}

/// `GET /v1/dashboard/groups`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::GroupList)]
pub struct GroupList {
    /// The viewer's groups (none for a stranger).
    #[schema(value_type = Vec<openapi::GroupInfo>)]
    pub groups: Vec<GroupInfo>,
}

/// `GET /v1/dashboard/groups/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = dashboard::GroupPage)]
pub struct GroupPage {
    /// The group.
    #[schema(value_type = openapi::GroupInfo)]
    pub group: GroupInfo,
    /// Its messages, oldest first, every field kept.
    #[schema(value_type = Vec<openapi::GroupMessage>)]
    pub messages: Vec<Value>,
}

/// `?phase=` of the bounty list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BountyFilter {
    /// Only this phase.
    pub phase: Option<String>,
}

/// `?q=` of the agent list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentSearch {
    /// Free text for the node's discovery (empty: every agent).
    #[serde(default)]
    pub q: String,
}

/// A query string that does not parse: `400 bad_request` in the error shape (not axum's text).
fn malformed_query(e: QueryRejection) -> DashError {
    DashError::BadRequest(format!("malformed query: {}", e.body_text()))
}

fn summary(row: &BountyRow, bids: u64) -> BountySummary {
    let spec = &row.spec;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let record = &spec["record"];
    BountySummary {
        id: row.id.to_string(),
        phase: row.phase,
        poster: row.poster.to_string(),
        winner: row.winner.map(|w| w.to_string()),
        bids,
        description: text(&spec["description"]).unwrap_or_default(),
        reward: match &record["amount"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        },
        token: text(&record["token"]),
        skills: spec["skills"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        contest: row.phase == Phase::Contest || record["maxWinners"].as_u64().unwrap_or(0) > 0,
        verify: text(&spec["verify"]["mode"]),
        parent: text(&spec["from_reward"]),
        created_ms: row.created_ms,
        bid_close_at: row.bid_close_at,
        note: row.note.clone(),
    }
}

async fn summaries(m: &Market, rows: &[BountyRow]) -> Result<Vec<BountySummary>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(summary(r, m.store().bid_count(&r.id).await?));
    }
    Ok(out)
}

/// Gas of `tx`, or `None` when the receipt cannot be read now (the page shows a dash).
async fn gas_of(m: &Market, tx: B256) -> Option<u64> {
    match m.chain_view().gas_used(tx).await {
        Ok(g) => g,
        Err(e) => {
            tracing::debug!(error = %e, %tx, "dashboard: no receipt");
            None
        }
    }
}

/// `GET /v1/dashboard/market`.
#[utoipa::path(get, path = "/v1/dashboard/market", operation_id = "dashboard_market", tag = "dashboard",
    description = "Public. Bounties per phase, the latest bounties, the latest settlements (gas, payout, fee), the fees earned per token and the agent counts. A node without the marketplace answers with `market: false` and agent counts only.",
    responses(
        (status = 200, description = "The market page's figures", body = MarketOverview),
    ))]
pub async fn market(State(d): State<Dashboard>) -> Result<Json<MarketOverview>> {
    let agents = d.node.discover(&AgentQuery { limit: Some(100), ..Default::default() }).await?;
    let agents_online = agents.iter().filter(|a| a.online).count();
    let node_id = d.node.config().node_id.clone();
    let Some(m) = &d.market else {
        return Ok(Json(MarketOverview {
            node_id,
            market: false,
            evaluator: None,
            fee_bps: None,
            phases: Vec::new(),
            bounties: Vec::new(),
            settled: Vec::new(),
            fees: Vec::new(),
            agents: agents.len(),
            agents_online,
            indexed: false,
        }));
    };
    let counts: HashMap<&str, u64> = m.store().count_by_phase().await?.into_iter().collect();
    let phases = Phase::ALL
        .iter()
        .map(|p| PhaseCount { phase: *p, count: counts.get(p.as_str()).copied().unwrap_or(0) })
        .collect();
    let rows = m.store().list(LIST_LIMIT).await?;
    let bounties = summaries(m, &rows).await?;
    let (settled, fees) = match m.index() {
        Some(idx) => settlements(m, idx).await?,
        None => (Vec::new(), Vec::new()),
    };
    Ok(Json(MarketOverview {
        node_id,
        market: true,
        evaluator: Some(m.address()),
        fee_bps: m.chain_view().fee_bps().await.ok(),
        phases,
        bounties,
        settled,
        fees,
        agents: agents.len(),
        agents_online,
        indexed: m.index().is_some(),
    }))
}

/// The latest settlements (oldest first) with their gas, and the fees earned per token.
async fn settlements(
    m: &Market,
    idx: &reef_indexer::Store,
) -> Result<(Vec<SettledPoint>, Vec<TokenAmount>)> {
    let ends = idx.latest_of_kinds(&SETTLE_KINDS, CHART_LIMIT).await?;
    let mut points = Vec::new();
    let mut fees: BTreeMap<String, alloy::primitives::U256> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for end in ends.iter().rev() {
        let Some(id) = end.ref_id.clone() else { continue };
        let events = idx.events_of_ref(&id).await?;
        let token = events
            .iter()
            .find(|e| e.kind == "BountyPosted")
            .and_then(|e| e.counterparty)
            .map(|a| a.to_string());
        let fee = fee_of(end);
        if let (Some(t), Some(f)) = (&token, &fee)
            && let Ok(f) = f.parse::<alloy::primitives::U256>()
        {
            *fees.entry(t.clone()).or_default() += f;
        }
        // A bounty settled twice (a dispute round after a rejection) is one point: its last.
        if !seen.insert(id.clone()) {
            points.retain(|p: &SettledPoint| p.id != id);
        }
        let mut gas = Some(0u64);
        let mut txs: Vec<B256> = events.iter().map(|e| e.tx_hash).collect();
        txs.dedup();
        for tx in txs {
            gas = match (gas, gas_of(m, tx).await) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        points.push(SettledPoint {
            id,
            outcome: end.kind.clone(),
            at: end.block_time,
            gas,
            paid: end.amount.clone().filter(|_| end.kind != "BountyCancelled"),
            fee,
            token,
        });
    }
    let fees =
        fees.into_iter().map(|(token, a)| TokenAmount { token, amount: a.to_string() }).collect();
    Ok((points, fees))
}

/// The platform fee an ending event carries.
fn fee_of(e: &EventRow) -> Option<String> {
    match e.kind.as_str() {
        "BountyCompleted" => e.amount2.clone(),
        "DisputeResolved" => e
            .extra
            .as_deref()
            .and_then(|x| serde_json::from_str::<Value>(x).ok())
            .and_then(|v| v["fee"].as_str().map(str::to_string)),
        _ => None,
    }
}

/// `GET /v1/dashboard/bounties?phase=`.
#[utoipa::path(get, path = "/v1/dashboard/bounties", operation_id = "dashboard_bounties", tag = "dashboard",
    description = "Public. The latest bounties (at most 200), newest first, optionally of one phase.",
    params(BountyFilter),
    responses(
        (status = 200, description = "Bounty summaries, newest first", body = Vec<BountySummary>),
        (status = 400, description = "Not a phase, or a malformed query (bad_request)", body = openapi::ErrorBody),
        (status = 404, description = "This node runs no marketplace (no_market)", body = openapi::ErrorBody),
    ))]
pub async fn bounties(
    State(d): State<Dashboard>,
    query: std::result::Result<Query<BountyFilter>, QueryRejection>,
) -> Result<Json<Vec<BountySummary>>> {
    let Query(f) = query.map_err(malformed_query)?;
    let m = d.market()?;
    let rows = match f.phase.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => {
            let phase = Phase::ALL.into_iter().find(|x| x.as_str() == p).ok_or_else(|| {
                DashError::BadRequest(format!(
                    "{p:?} is not a phase (bidding, working, settled, …)"
                ))
            })?;
            m.store().in_phase(phase, LIST_LIMIT).await?
        }
        None => m.store().list(LIST_LIMIT).await?,
    };
    Ok(Json(summaries(m, &rows).await?))
}

/// Which part of the story a node log line or an escrow event tells.
fn section_of(event: &str) -> &'static str {
    match event {
        "posted" | "held" | "announced" | "invited" | "reopened" | "BountyPosted"
        | "BountyFunded" => "cfp",
        "bidding" => "bids",
        "awaiting_award" | "BountyAwarded" => "award",
        "assigned" | "working" | "ResultSubmitted" => "work",
        "contest" | "entry" | "EntrySubmitted" => "contest",
        "evaluating" | "panel_fees" | "panel_fees_failed" | "no_quorum" => "panel",
        "settling" | "awaiting_poster" | "BountyAttested" | "BountyRejected" => "verdict",
        "settled" | "BountyCompleted" | "BountyRefunded" | "BountyCancelled" | "WinnerPaid"
        | "PayoutDeferred" | "Withdrawn" => "payout",
        "DisputeOpened" | "DisputeResolved" | "Slashed" => "dispute",
        "eta_missed" | "taken_over" | "reassigned" | "AwardRevoked" => "takeover",
        "failed" => "failure",
        _ => "other",
    }
}

fn chain_detail(e: &EventRow) -> String {
    let mut parts = Vec::new();
    if let Some(a) = e.actor {
        parts.push(format!("by {a}"));
    }
    if let Some(x) = &e.amount {
        parts.push(format!("amount {x}"));
    }
    if let Some(x) = &e.amount2 {
        parts.push(format!("amount2 {x}"));
    }
    if let Some(x) = &e.extra {
        parts.push(x.clone());
    }
    parts.join(" · ")
}

/// `GET /v1/dashboard/bounties/{id}`.
#[utoipa::path(get, path = "/v1/dashboard/bounties/{id}", operation_id = "dashboard_bounty", tag = "dashboard",
    description = "Public, with more for some viewers (the session cookie or a bearer token; an unknown token is a stranger): the ranking goes to the poster once the window closed, the task input and the verdict's result to the poster and the assigned provider, the work group's conversation to its members. For everyone else those fields are `null`.",
    params(("id" = String, Path, pattern = "^(0x)?[0-9a-fA-F]{1,64}$", description = "Bounty id (hex, up to 64 digits)")),
    responses(
        (status = 200, description = "The bounty page", body = BountyPage),
        (status = 400, description = "Not a hex bounty id (bad_request)", body = openapi::ErrorBody),
        (status = 404, description = "No such bounty (not_found), or no marketplace (no_market)", body = openapi::ErrorBody),
    ),
    security((), ("session" = []), ("bearer" = [])))]
pub async fn bounty(
    State(d): State<Dashboard>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<BountyPage>> {
    let m = d.market()?;
    let key = crate::market::parse_id(&id).map(crate::market::id_hex)?;
    let row = m
        .store()
        .bounty(&key)
        .await?
        .ok_or_else(|| DashError::NotFound(format!("no bounty {key} on this node")))?;
    let (log, bids) = m.store().events_and_bid_count(&key).await?;
    let is_poster = viewer.0 == Some(row.poster);
    let is_provider = viewer.0.is_some() && viewer.0 == row.winner;
    let mut timeline: Vec<TimelineItem> = log
        .iter()
        .map(|l| {
            let event = l["event"].as_str().unwrap_or_default().to_string();
            TimelineItem {
                at_ms: l["at_ms"].as_u64().unwrap_or(0),
                source: "node",
                section: section_of(&event),
                event,
                detail: l["detail"].as_str().unwrap_or_default().to_string(),
                tx_hash: None,
                gas: None,
                block: None,
                actor: None,
                amount: None,
            }
        })
        .collect();
    let chain = match m.index() {
        Some(idx) => idx.events_of_ref(&key).await?,
        None => Vec::new(),
    };
    let mut transactions: Vec<ChainTx> = Vec::new();
    for e in &chain {
        match transactions.last_mut() {
            Some(t) if t.tx_hash == e.tx_hash => t.events.push(e.kind.clone()),
            _ => transactions.push(ChainTx {
                tx_hash: e.tx_hash,
                block: e.block_number,
                at: e.block_time,
                events: vec![e.kind.clone()],
                gas: gas_of(m, e.tx_hash).await,
            }),
        }
    }
    let gas: HashMap<B256, Option<u64>> = transactions.iter().map(|t| (t.tx_hash, t.gas)).collect();
    let total_gas = transactions.iter().try_fold(0u64, |acc, t| t.gas.map(|g| acc + g));
    let chain_items: Vec<TimelineItem> = chain
        .iter()
        .map(|e| TimelineItem {
            at_ms: e.block_time * 1000,
            source: "chain",
            event: e.kind.clone(),
            section: section_of(&e.kind),
            detail: chain_detail(e),
            tx_hash: Some(e.tx_hash),
            gas: gas.get(&e.tx_hash).copied().flatten(),
            block: Some(e.block_number),
            actor: e.actor,
            amount: e.amount.clone(),
        })
        .collect();
    let award = chain_items.iter().rev().find(|e| e.event == "BountyAwarded").cloned();
    let payout = chain_items
        .iter()
        .rev()
        .find(|e| {
            matches!(
                e.event.as_str(),
                "BountyCompleted" | "BountyRefunded" | "DisputeResolved" | "BountyCancelled"
            )
        })
        .cloned();
    let payouts: Vec<TimelineItem> = chain_items
        .iter()
        .filter(|e| {
            matches!(
                e.event.as_str(),
                "WinnerPaid" | "BountyCompleted" | "BountyRefunded" | "DisputeResolved"
            )
        })
        .filter(|e| !(e.event == "BountyCompleted" && e.actor.is_some_and(|a| a.is_zero())))
        .cloned()
        .collect();
    timeline.extend(chain_items);
    timeline.sort_by_key(|t| t.at_ms);

    let ranked = !matches!(row.phase, Phase::Bidding | Phase::Contest);
    let (ranking, ranking_note) = if !ranked {
        (None, if row.phase == Phase::Bidding { "sealed" } else { "none" })
    } else if !is_poster {
        (None, "poster_only")
    } else {
        match m.store().ranking(&key).await? {
            Some(r) => {
                let bids = r.bids().map_err(|e| {
                    crate::market::MarketError::Internal(format!("stored ranking: {e}"))
                })?;
                (Some(rank_rows(&bids)), "shown")
            }
            None => (None, "none"),
        }
    };
    let verdict = row.verdict.as_ref().map(|v| {
        let mut v = v.clone();
        if !(is_poster || is_provider)
            && let Some(o) = v.as_object_mut()
        {
            o.remove("result");
        }
        v
    });
    let input = (is_poster || is_provider).then(|| row.spec["input"].clone());
    let conversation = match (&row.work_group, viewer.0) {
        (Some(g), Some(me)) if !g.starts_with("claimed:") => {
            if d.node.store().is_member(g, &me).await? {
                Some(d.node.history(&me, g, 0, 1000).await?)
            } else {
                None
            }
        }
        _ => None,
    };
    let entrants = if row.phase == Phase::Contest || summary(&row, 0).contest {
        m.store().entries(&key).await?.into_iter().map(|(a, _)| a).collect()
    } else {
        Vec::new()
    };
    let all = m.store().list(LIST_LIMIT).await?;
    let children_rows: Vec<BountyRow> = all
        .iter()
        .filter(|r| r.spec["from_reward"].as_str() == Some(key.as_str()))
        .cloned()
        .collect();
    let children = summaries(m, &children_rows).await?;
    let parent = match row.spec["from_reward"].as_str() {
        Some(p) => match m.store().bounty(p).await? {
            Some(pr) => Some(summary(&pr, m.store().bid_count(p).await?)),
            None => None,
        },
        None => None,
    };
    let spec = &row.spec;
    let verify = &spec["verify"];
    let cfp = Cfp {
        description: spec["description"].as_str().unwrap_or_default().to_string(),
        skills: summary(&row, 0).skills,
        verify: verify["mode"].as_str().map(str::to_string),
        panel: verify["members"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()?.parse().ok()).collect())
            .unwrap_or_default(),
        quorum: verify["quorum"].as_u64(),
        bid_window_ms: spec["bid_window_ms"].as_u64().unwrap_or(0),
        bid_close_at: row.bid_close_at,
        deadline: spec["record"]["deadline"].as_u64(),
        cfp_group: row.cfp_group.clone().filter(|g| !g.starts_with("claimed:")),
    };
    Ok(Json(BountyPage {
        summary: summary(&row, bids),
        viewer: viewer.0,
        is_poster,
        is_provider,
        cfp,
        timeline,
        transactions,
        total_gas,
        ranking,
        ranking_note,
        award,
        verdict,
        payout,
        payouts,
        input,
        work_group: row.work_group.clone().filter(|g| !g.starts_with("claimed:")),
        conversation,
        entrants,
        children,
        parent,
    }))
}

/// The stored ranking as rows with their score's parts.
fn rank_rows(r: &[RankedBid]) -> Vec<RankRow> {
    r.iter()
        .enumerate()
        .map(|(i, e)| RankRow {
            rank: i + 1,
            bidder: e.bidder.to_string(),
            price: e.price.to_string(),
            eta_secs: e.eta_secs,
            score: e.score,
            parts: e
                .components
                .iter()
                .map(|(name, value, weight)| ScorePart {
                    name: name.clone(),
                    value: *value,
                    weight: *weight,
                })
                .collect(),
            failed: e.failed,
        })
        .collect()
}

async fn agent_row(d: &Dashboard, info: AgentInfo) -> AgentRow {
    let (stake, reputation) = match &d.market {
        Some(m) => {
            let stake = m.chain_view().stake_of(info.address).await.ok().map(|s| s.to_string());
            let rep = m.reputation_of(info.address).await.ok().and_then(|v| v["value"].as_f64());
            (stake, rep)
        }
        None => (None, None),
    };
    AgentRow { info, stake, reputation }
}

/// `GET /v1/dashboard/agents?q=`: every agent, or the node's discovery's matches for `q`.
#[utoipa::path(get, path = "/v1/dashboard/agents", operation_id = "dashboard_agents", tag = "dashboard",
    description = "Public. Agents (at most 100) with their bonded stake and reputation; with `q`, the node's discovery's matches (the index of `POST /v1/discover`), best first.",
    params(AgentSearch),
    responses(
        (status = 200, description = "The agents", body = AgentList),
        (status = 400, description = "A search longer than 500 characters, or a malformed query (bad_request)", body = openapi::ErrorBody),
    ))]
pub async fn agents(
    State(d): State<Dashboard>,
    query: std::result::Result<Query<AgentSearch>, QueryRejection>,
) -> Result<Json<AgentList>> {
    let Query(s) = query.map_err(malformed_query)?;
    if s.q.len() > 500 {
        return Err(DashError::BadRequest("a search is at most 500 characters".into()));
    }
    let found =
        d.node.discover(&AgentQuery { query: s.q, limit: Some(100), ..Default::default() }).await?;
    let mut agents = Vec::with_capacity(found.len());
    for a in found {
        agents.push(agent_row(&d, a).await);
    }
    Ok(Json(AgentList { agents }))
}

/// `GET /v1/dashboard/agents/{address}`.
#[utoipa::path(get, path = "/v1/dashboard/agents/{address}", operation_id = "dashboard_agent", tag = "dashboard",
    description = "Public. The agent's card, its reputation with every component explained, its latest on-chain events and the bounties it won on this node.",
    params(("address" = String, Path, pattern = "^0x[0-9a-fA-F]{40}$", description = "The agent's address (0x + 40 hex digits)")),
    responses(
        (status = 200, description = "The agent page", body = AgentPage),
        (status = 400, description = "Not an address (bad_request)", body = openapi::ErrorBody),
        (status = 404, description = "No agent registered at that address (not_found)", body = openapi::ErrorBody),
    ))]
pub async fn agent(
    State(d): State<Dashboard>,
    Path(address): Path<String>,
) -> Result<Json<AgentPage>> {
    let address: Address = address
        .parse()
        .map_err(|_| DashError::BadRequest(format!("{address:?} is not an address")))?;
    let info = d.node.get_agent(&address).await?;
    let agent = agent_row(&d, info).await;
    let (reputation, history, bounties) = match &d.market {
        Some(m) => {
            let reputation =
                m.reputation_of(address).await.ok().and_then(|v| serde_json::from_value(v).ok());
            let history = match m.index() {
                Some(idx) => idx
                    .events_of_actor(address, 50)
                    .await?
                    .into_iter()
                    .map(|e| AgentEvent {
                        kind: e.kind,
                        ref_id: e.ref_id,
                        tx_hash: e.tx_hash,
                        at: e.block_time,
                        amount: e.amount,
                    })
                    .collect(),
                None => Vec::new(),
            };
            let won: Vec<BountyRow> = m
                .store()
                .list(LIST_LIMIT)
                .await?
                .into_iter()
                .filter(|r| r.winner == Some(address))
                .collect();
            (reputation, history, summaries(m, &won).await?)
        }
        None => (None, Vec::new(), Vec::new()),
    };
    Ok(Json(AgentPage { agent, reputation, history, bounties }))
}

/// `GET /v1/dashboard/groups`: the viewer's groups (a stranger has none).
#[utoipa::path(get, path = "/v1/dashboard/groups", operation_id = "dashboard_groups", tag = "dashboard",
    description = "The groups of the viewer (the session cookie or a bearer token); none for a stranger or an unknown token.",
    responses(
        (status = 200, description = "The viewer's groups", body = GroupList),
    ),
    security((), ("session" = []), ("bearer" = [])))]
pub async fn groups(State(d): State<Dashboard>, viewer: Viewer) -> Result<Json<GroupList>> {
    let groups = match viewer.0 {
        Some(me) => d.node.groups_of(&me).await?,
        None => Vec::new(),
    };
    Ok(Json(GroupList { groups }))
}

/// `GET /v1/dashboard/groups/{id}`: a group and its transcript, for its members.
#[utoipa::path(get, path = "/v1/dashboard/groups/{id}", operation_id = "dashboard_group", tag = "dashboard",
    description = "A group and its messages (at most 1000, oldest first), for its members.",
    params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "The group and its transcript", body = GroupPage),
        (status = 400, description = "A malformed group id (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "No session and no known bearer token (unauthenticated)", body = openapi::ErrorBody),
        (status = 403, description = "Not a member (or no such group)", body = openapi::ErrorBody),
    ),
    security(("session" = []), ("bearer" = [])))]
pub async fn group(
    State(d): State<Dashboard>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<GroupPage>> {
    let me = viewer
        .0
        .ok_or_else(|| DashError::Unauthenticated("log in to read a group's transcript".into()))?;
    let group = d.node.group(&me, &id).await?;
    let messages = d.node.history(&me, &id, 0, 1000).await?;
    Ok(Json(GroupPage { group, messages }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{rank_rows, section_of};
    use crate::market::ranking::Ranking;
    use alloy::primitives::{Address, B256};

    #[test]
    fn a_stored_ranking_becomes_rows_with_every_score_part() {
        let (a, b) = (Address::repeat_byte(0x0a), Address::repeat_byte(0x0b));
        let signed = json!({ "bid": {
            "bountyId": "0x1", "termsHash": B256::ZERO, "bidder": a, "amount": "4",
            "deadline": 9, "eta": 0, "bond": "0", "nonce": "1" },
            "signature": "0x00" });
        let stored = json!([
            { "bidder": a, "price": "4", "eta_secs": 300, "score": 0.8,
              "components": [["price", 0.2, 0.4], ["eta", 0.9, 0.2], ["reputation", 0.5, 0.3], ["stake", 0.0, 0.1]],
              "signed": signed },
            { "bidder": b, "price": "5", "eta_secs": 60, "score": 0.5,
              "components": [], "signed": signed, "failed": true }
        ]);
        let ranking: Ranking =
            serde_json::from_value(stored.clone()).expect("the stored form parses");
        assert_eq!(serde_json::to_value(&ranking).unwrap(), stored, "the JSON form is unchanged");
        let rows = rank_rows(&ranking);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].rank, rows[0].price.as_str(), rows[0].failed), (1, "4", false));
        assert_eq!(rows[0].bidder, a.to_string());
        let names: Vec<&str> = rows[0].parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["price", "eta", "reputation", "stake"]);
        assert_eq!((rows[0].parts[2].value, rows[0].parts[2].weight), (0.5, 0.3));
        assert!(rows[1].failed);
        assert!(rank_rows(&[]).is_empty());
    }

    #[test]
    fn take_overs_disputes_and_panels_are_labelled_as_what_they_are() {
        assert_eq!(section_of("taken_over"), "takeover");
        assert_eq!(section_of("eta_missed"), "takeover");
        assert_eq!(section_of("DisputeOpened"), "dispute");
        assert_eq!(section_of("evaluating"), "panel");
        assert_eq!(section_of("EntrySubmitted"), "contest");
        assert_eq!(section_of("BountyCompleted"), "payout");
        assert_eq!(section_of("something new"), "other");
    }
}
