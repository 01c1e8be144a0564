//! From indexed rows to a [`ReputationBook`]: settled, funded bounties become
//! [`Outcome`]s, stake rows become stake events. Only data at or below the confirmed tip counts.
//!
//! Funding heuristic ("poster funded by the agent"): the indexer records, per account, the first
//! inbound transfer of any watched token (the devnet token, tokens configured, and every token
//! seen in `BountyPosted`). If a poster's first inbound transfer came from the agent it later
//! paid, the outcome is marked `poster_funded_by_agent` and discounted. Mints (from the zero
//! address) fund nobody. Native-ETH funding and funding through intermediaries are not seen.
//!
//! Delivery time: a bounty's result is delivered at its `ResultSubmitted`, or, on the lean path
//! (`submitAndAttest`, which settles in the same transaction and emits only `BountyAttested`),
//! at that settlement block. It is on time when it is at or before the `dueBy` of the award the
//! provider holds (its bid's ETA, capped at the deadline), or the deadline when no award says.
//!
//! Feedback: ERC-8004 `NewFeedback` events become [`Feedback`] events tied to a bounty. A
//! feedback given with `giveBountyFeedback` is tied to the bounty whose `FeedbackAuthorized`
//! the same transaction emitted; a plain `giveFeedback` uses the oldest unused credit of its
//! client for the agent's owner at that block (the registry spends the owner's credits first),
//! and feedback the indexer cannot tie to a bounty (an agentWallet's credit) is not scored.
//! The rating is read on ERC-8004's 0–100 scale (`value / 10^decimals`, clamped), revoked
//! feedback is dropped, and each rating weighs the paid value (agreed price) of its bounty.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use alloy::primitives::{Address, B256, U256};
use reef_reputation::{Event, Feedback, Outcome, OutcomeKind, Params, ReputationBook};

use crate::{
    Error, EventRow, Result, Store, decode::addr_hex, derived::BountyRow, indexer::confirmed_tip,
};

/// Converts base units (18 decimals) to whole tokens as f64.
pub fn to_units(v: U256) -> f64 {
    let (q, r) = v.div_rem(U256::from(10u64).pow(U256::from(18)));
    let q: f64 = q.to_string().parse().unwrap_or(f64::MAX);
    q + r.to::<u128>() as f64 / 1e18
}

fn parse_addr(s: &str) -> Result<Address> {
    s.parse().map_err(|e| Error::Corrupt(format!("address {s:?}: {e}")))
}

/// When a bounty's result was delivered and when it was due, beyond what its [`BountyRow`]
/// holds (read from the raw events, so rows folded by an older indexer count too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// `dueBy` of the last award (unix seconds).
    pub due_by: Option<i64>,
    /// Block time of the first `BountyAttested` (the lean path's delivery).
    pub attested_at: Option<i64>,
}

/// The outcome of a settled bounty for its provider, if it is one the reputation engine counts
/// (funded, awarded, terminal).
pub fn outcome_of(
    b: &BountyRow,
    timing: Timing,
    funding: &BTreeMap<String, String>,
) -> Result<Option<Outcome>> {
    let (Some(provider), Some(poster)) = (&b.provider, &b.poster) else { return Ok(None) };
    if !b.funded {
        return Ok(None);
    }
    let kind = match b.status.as_str() {
        "completed" => OutcomeKind::Completed,
        "refunded" => OutcomeKind::Rejected,
        "expired" => OutcomeKind::Expired,
        "resolved" if b.provider_bps.unwrap_or(0) >= 5_000 => OutcomeKind::DisputeWon,
        "resolved" => OutcomeKind::DisputeLost,
        _ => return Ok(None),
    };
    let price = b.price.as_deref().or(b.amount.as_deref()).unwrap_or("0");
    let value = to_units(
        price.parse::<U256>().map_err(|e| Error::Corrupt(format!("price {price:?}: {e}")))?,
    );
    let delivered = b.submitted_at.or(timing.attested_at);
    let on_time = match (kind, delivered, timing.due_by.or(b.deadline)) {
        (OutcomeKind::Expired, _, _) => Some(false),
        (_, Some(s), Some(d)) => Some(s <= d),
        _ => None,
    };
    Ok(Some(Outcome {
        agent: parse_addr(provider)?,
        poster: parse_addr(poster)?,
        value,
        kind,
        at: b.settled_at.unwrap_or(0).max(0) as u64,
        on_time,
        poster_funded_by_agent: funding.get(poster).is_some_and(|from| from == provider),
    }))
}

/// All reputation events the store holds at or below the confirmed tip, in chain order.
pub async fn load_events(store: &Store, confirmations: u64) -> Result<Vec<Event>> {
    let Some(tip) = confirmed_tip(store, confirmations).await? else { return Ok(Vec::new()) };
    load_events_upto(store, tip).await
}

/// The kinds [`timing_of`] reads.
const TIMING_KINDS: [&str; 2] = ["BountyAwarded", "BountyAttested"];

/// Each bounty's [`Timing`] from its `BountyAwarded` and `BountyAttested` events (each kind in
/// chain order).
fn timing_of(events: &[EventRow]) -> HashMap<String, Timing> {
    let mut timing: HashMap<String, Timing> = HashMap::new();
    for e in events {
        let Some(id) = &e.ref_id else { continue };
        match e.kind.as_str() {
            "BountyAwarded" => {
                let due = e
                    .extra
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                    .and_then(|v| v["dueBy"].as_i64());
                timing.entry(id.clone()).or_default().due_by = due;
            }
            "BountyAttested" => {
                let t = timing.entry(id.clone()).or_default();
                t.attested_at.get_or_insert(e.block_time as i64);
            }
            _ => {}
        }
    }
    timing
}

/// The outcomes of `settled` (in settlement order), keyed by chain position.
fn outcomes_keyed(
    settled: &[BountyRow],
    timing: &HashMap<String, Timing>,
    funding: &BTreeMap<String, String>,
) -> Result<Vec<((i64, i64), Event)>> {
    let mut keyed = Vec::new();
    for b in settled {
        let t = timing.get(&b.id).copied().unwrap_or_default();
        if let Some(o) = outcome_of(b, t, funding)? {
            keyed.push(((b.settled_block.unwrap_or(0), b.last_log), Event::Outcome(o)));
        }
    }
    Ok(keyed)
}

/// [`load_events`] at or below block `tip`.
async fn load_events_upto(store: &Store, tip: u64) -> Result<Vec<Event>> {
    let funding = store.funding().await?;
    let mut raw = Vec::new();
    for kind in TIMING_KINDS {
        raw.extend(store.events_of_kind(kind, tip).await?);
    }
    let timing = timing_of(&raw);
    let mut keyed = outcomes_keyed(&store.settled_bounties(tip).await?, &timing, &funding)?;
    // A provider that lost a job to another bidder (take-over after its ETA) failed it, even
    // though the bounty itself may still complete. (`revokeAward` keeps the provider on the
    // record and ends `Expired`: that one is already counted by `outcome_of`.)
    let revoked = store.events_of_kind("AwardRevoked", tip).await?;
    if !revoked.is_empty() {
        let rows: BTreeMap<String, BountyRow> =
            store.bounties().await?.into_iter().map(|b| (b.id.clone(), b)).collect();
        for e in revoked {
            let (Some(id), Some(agent)) = (&e.ref_id, e.actor) else { continue };
            let Some(b) = rows.get(id) else { continue };
            if b.provider.as_deref() == Some(addr_hex(agent).as_str()) {
                continue;
            }
            let Some(poster) = &b.poster else { continue };
            let amount = b.amount.as_deref().unwrap_or("0");
            let value = to_units(
                amount
                    .parse::<U256>()
                    .map_err(|e| Error::Corrupt(format!("amount {amount:?}: {e}")))?,
            );
            keyed.push((
                (e.block_number as i64, e.log_index as i64),
                Event::Outcome(Outcome {
                    agent,
                    poster: parse_addr(poster)?,
                    value,
                    kind: OutcomeKind::Expired,
                    at: e.block_time,
                    on_time: Some(false),
                    poster_funded_by_agent: funding
                        .get(poster)
                        .is_some_and(|from| *from == addr_hex(agent)),
                }),
            ));
        }
    }
    for (pos, f) in feedback_events(store, tip, &funding).await? {
        keyed.push((pos, Event::Feedback(f)));
    }
    for s in store.stakes().await? {
        if s.last_block <= tip as i64 {
            keyed.push((
                (s.last_block, s.last_log),
                Event::Stake {
                    agent: parse_addr(&s.account)?,
                    bonded: to_units(s.bonded),
                    at: s.updated_at.max(0) as u64,
                },
            ));
        }
    }
    keyed.sort_by_key(|(k, _)| *k);
    Ok(keyed.into_iter().map(|(_, e)| e).collect())
}

/// One `NewFeedback` as the indexer stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rated {
    agent_id: String,
    client: Address,
    index: u64,
    value: i128,
    decimals: u8,
}

fn rated_of(e: &EventRow) -> Option<Rated> {
    let v: serde_json::Value = serde_json::from_str(e.extra.as_deref()?).ok()?;
    Some(Rated {
        agent_id: e.ref_id.clone()?,
        client: e.actor?,
        index: v["index"].as_u64()?,
        value: v["value"].as_str()?.parse().ok()?,
        decimals: u8::try_from(v["decimals"].as_u64()?).ok()?,
    })
}

/// A rating on ERC-8004's 0–100 scale, normalised to `[0, 1]`.
pub fn normalise_rating(value: i128, decimals: u8) -> f64 {
    let v = value as f64 / 10f64.powi(i32::from(decimals));
    (v / 100.0).clamp(0.0, 1.0)
}

/// Feedback tied to bounties (see the module docs), keyed by chain position.
pub fn tie_feedback(
    events: &[EventRow],
    bounties: &BTreeMap<String, BountyRow>,
    funding: &BTreeMap<String, String>,
) -> Result<Vec<((i64, i64), Feedback)>> {
    let mut events: Vec<&EventRow> = events.iter().collect();
    events.sort_by_key(|e| (e.block_number, e.log_index));
    let revoked: HashSet<(String, Address, u64)> = events
        .iter()
        .filter(|e| e.kind == "FeedbackRevoked")
        .filter_map(|e| {
            Some((e.ref_id.clone()?, e.actor?, e.extra.as_deref()?.parse::<u64>().ok()?))
        })
        .collect();
    // Unused credits per (client, provider), oldest first; bounty authorized per transaction.
    let mut credits: HashMap<(Address, Address), VecDeque<String>> = HashMap::new();
    let mut in_tx: HashMap<B256, (String, Address, Address)> = HashMap::new();
    let mut owners: HashMap<String, Address> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        match e.kind.as_str() {
            "AgentTransfer" => {
                if let (Some(id), Some(to)) = (&e.ref_id, e.counterparty) {
                    owners.insert(id.clone(), to);
                }
            }
            "FeedbackAuthorized" => {
                let (Some(id), Some(client), Some(provider)) = (&e.ref_id, e.actor, e.counterparty)
                else {
                    continue;
                };
                credits.entry((client, provider)).or_default().push_back(id.clone());
                in_tx.insert(e.tx_hash, (id.clone(), client, provider));
            }
            "NewFeedback" => {
                let Some(r) = rated_of(e) else { continue };
                // giveBountyFeedback: the bounty authorized in this very transaction.
                let tied = match in_tx.get(&e.tx_hash) {
                    Some((id, client, provider)) if *client == r.client => {
                        let q = credits.entry((*client, *provider)).or_default();
                        q.retain(|b| b != id);
                        Some(id.clone())
                    }
                    _ => owners
                        .get(&r.agent_id)
                        .and_then(|owner| credits.get_mut(&(r.client, *owner)))
                        .and_then(VecDeque::pop_front),
                };
                let Some(bounty) = tied else { continue };
                if revoked.contains(&(r.agent_id.clone(), r.client, r.index)) {
                    continue;
                }
                let Some(b) = bounties.get(&bounty) else { continue };
                let (Some(provider), Some(poster)) = (&b.provider, &b.poster) else { continue };
                let price = b.price.as_deref().or(b.amount.as_deref()).unwrap_or("0");
                let value = to_units(
                    price
                        .parse::<U256>()
                        .map_err(|e| Error::Corrupt(format!("price {price:?}: {e}")))?,
                );
                out.push((
                    (e.block_number as i64, e.log_index as i64),
                    Feedback {
                        agent: parse_addr(provider)?,
                        poster: parse_addr(poster)?,
                        value,
                        rating: normalise_rating(r.value, r.decimals),
                        at: e.block_time,
                        poster_funded_by_agent: funding.get(poster).is_some_and(|f| f == provider),
                    },
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

async fn feedback_events(
    store: &Store,
    tip: u64,
    funding: &BTreeMap<String, String>,
) -> Result<Vec<((i64, i64), Feedback)>> {
    let mut events = store.events_of_kind("NewFeedback", tip).await?;
    if events.is_empty() {
        return Ok(Vec::new());
    }
    for kind in ["FeedbackAuthorized", "FeedbackRevoked", "AgentTransfer"] {
        events.extend(store.events_of_kind(kind, tip).await?);
    }
    let bounties: BTreeMap<String, BountyRow> =
        store.bounties().await?.into_iter().map(|b| (b.id.clone(), b)).collect();
    tie_feedback(&events, &bounties, funding)
}

/// One agent's ERC-8004 validations as the ValidationRegistry holds them: the latest response
/// of every request about an agent id the address owns (confirmed events only).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Validations {
    /// Answered requests.
    pub count: u64,
    /// Mean of their latest responses (0-100), floored like the registry's `getSummary`.
    pub average: u8,
    /// Of them, the verdicts of Reef bounties (tag `reef.bounty`).
    pub bounty_verdicts: u64,
    /// Distinct validators that answered.
    pub validators: Vec<Address>,
}

/// The [`Validations`] of the agent ids `agent` owns now (their last `AgentTransfer` went to
/// it). Not part of the score: a bounty's verdict is already scored as its outcome; this is
/// what any ERC-8004 reader of the registry sees.
pub async fn validations_of(
    store: &Store,
    confirmations: u64,
    agent: Address,
) -> Result<Validations> {
    let Some(tip) = confirmed_tip(store, confirmations).await? else {
        return Ok(Validations::default());
    };
    let owner = owners(store, tip).await?;
    // request hash -> (agent id, validator, response, tag), the last response winning.
    let mut latest: BTreeMap<String, (String, Option<Address>, u8, String)> = BTreeMap::new();
    for e in store.events_of_kind("ValidationResponse", tip).await? {
        let (Some(id), Some(extra)) = (e.ref_id, e.extra.as_deref()) else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(extra) else { continue };
        let (Some(req), Some(resp)) = (v["request"].as_str(), v["response"].as_u64()) else {
            continue;
        };
        let tag = v["tag"].as_str().unwrap_or_default().to_string();
        latest.insert(req.to_string(), (id, e.actor, u8::try_from(resp).unwrap_or(u8::MAX), tag));
    }
    let mut out = Validations::default();
    let mut sum = 0u64;
    for (id, validator, response, tag) in latest.into_values() {
        if owner.get(&id).copied().flatten() != Some(agent) {
            continue;
        }
        out.count += 1;
        sum += u64::from(response);
        if tag == "reef.bounty" {
            out.bounty_verdicts += 1;
        }
        if let Some(v) = validator
            && !out.validators.contains(&v)
        {
            out.validators.push(v);
        }
    }
    out.average = sum.checked_div(out.count).map_or(0, |m| u8::try_from(m).unwrap_or(u8::MAX));
    Ok(out)
}

/// Owner of every agent id (hex) after the confirmed events up to `tip` (None once burnt).
async fn owners(store: &Store, tip: u64) -> Result<HashMap<String, Option<Address>>> {
    let mut owner: HashMap<String, Option<Address>> = HashMap::new();
    for e in store.events_of_kind("AgentTransfer", tip).await? {
        if let Some(id) = e.ref_id {
            owner.insert(id, e.counterparty.filter(|a| !a.is_zero()));
        }
    }
    Ok(owner)
}

/// An ERC-8004 identity an address owns: its agent id and current `agentURI`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// The agent id (the ERC-721 token id).
    pub agent_id: U256,
    /// Its `agentURI` (the registration file), as last set.
    pub agent_uri: String,
}

/// The agent identities `agent` owns now (confirmed events only), oldest first, each with
/// its latest `agentURI` (`Registered`, then `URIUpdated`).
pub async fn identities_of(
    store: &Store,
    confirmations: u64,
    agent: Address,
) -> Result<Vec<Identity>> {
    Ok(identities_by_owner(store, confirmations).await?.remove(&agent).unwrap_or_default())
}

/// [`identities_of`] for every owner at once (three reads of the registry's events).
pub async fn identities_by_owner(
    store: &Store,
    confirmations: u64,
) -> Result<HashMap<Address, Vec<Identity>>> {
    let Some(tip) = confirmed_tip(store, confirmations).await? else {
        return Ok(HashMap::new());
    };
    let owner = owners(store, tip).await?;
    let mut uri: HashMap<String, String> = HashMap::new();
    for kind in ["Registered", "URIUpdated"] {
        for e in store.events_of_kind(kind, tip).await? {
            if let Some(id) = e.ref_id {
                uri.insert(id, e.extra.unwrap_or_default());
            }
        }
    }
    let mut out: HashMap<Address, Vec<Identity>> = HashMap::new();
    for (id, o) in owner {
        let (Some(o), Ok(agent_id)) = (o, U256::from_str_radix(id.trim_start_matches("0x"), 16))
        else {
            continue;
        };
        let agent_uri = uri.get(&id).cloned().unwrap_or_default();
        out.entry(o).or_default().push(Identity { agent_id, agent_uri });
    }
    for ids in out.values_mut() {
        ids.sort_by_key(|i| i.agent_id);
    }
    Ok(out)
}

/// [`identities_by_owner`] read once per state of the index: it is recomputed only when the
/// index's tip (its checkpoint and the hash of the last indexed block) has moved, so lookups and
/// discovery cost two small reads between new blocks instead of three scans of the registry's
/// events. A reorg changes the tip's hash, so it is never served stale.
#[derive(Debug, Default)]
pub struct IdentityCache {
    last: tokio::sync::Mutex<Option<(IndexTip, std::sync::Arc<IdentitiesByOwner>)>>,
}

/// Every owner's identities ([`identities_by_owner`]).
pub type IdentitiesByOwner = HashMap<Address, Vec<Identity>>;

type IndexTip = (Option<u64>, Option<alloy::primitives::B256>);

impl IdentityCache {
    /// The identities by owner over everything in `store` (no confirmations held back, as the
    /// node's own reads of its embedded index).
    pub async fn get(&self, store: &Store) -> Result<std::sync::Arc<IdentitiesByOwner>> {
        let tip = index_tip(store).await?;
        let mut last = self.last.lock().await;
        if let Some((at, by_owner)) = last.as_ref()
            && *at == tip
        {
            return Ok(by_owner.clone());
        }
        let by_owner = std::sync::Arc::new(identities_by_owner(store, 0).await?);
        *last = Some((tip, by_owner.clone()));
        Ok(by_owner)
    }
}

/// Where the index stands: its checkpoint and the hash of the last block below it. A new
/// block moves the checkpoint; a reorg changes the hash.
async fn index_tip(store: &Store) -> Result<IndexTip> {
    let next = store.next_block().await?;
    let hash = match next {
        Some(n) if n > 0 => store.block(n - 1).await?.map(|b| b.hash),
        _ => None,
    };
    Ok((next, hash))
}

/// [`load_book`] kept between readers, for a node that ranks with it many times a second.
///
/// A full load folds every settled bounty, feedback and stake the index holds, so its cost
/// grows with the chain's history. The cache keeps it in proportion:
/// - a book is served for at least `min_age` (the readers' freshness);
/// - once it is due, the last block the index confirms and its hash are read first (three
///   small reads): if they are the ones the book was built up to, it is kept without a load;
/// - a book is brought up to date with the outcomes of the new blocks alone
///   ([`events_since`]) when they only add outcomes, which is what the blocks of a busy
///   market hold; it is folded again from the whole history after a reorg below it, when the
///   new blocks change what it holds (feedback, stakes, funding), or when it was never loaded;
/// - a book is served for at least [`RELOAD_SPACING`] times as long as its load took, so full
///   loads never take more than about a tenth of one core, however long the history;
/// - one reader loads while the others keep ranking with the book they have.
#[derive(Debug, Default)]
pub struct BookCache {
    state: std::sync::Mutex<Option<LoadedBook>>,
    /// Held by the one reader that is loading.
    loading: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct LoadedBook {
    /// When the book was loaded, or last found current (the index had not moved).
    checked: std::time::Instant,
    /// How long its load took.
    took: std::time::Duration,
    /// The last block it folds and that block's hash when it was loaded: what it is current
    /// for, and what an extension starts from.
    upto: Option<(u64, Option<B256>)>,
    /// Folded from the whole history (else extended from the book before it).
    folded: bool,
    book: std::sync::Arc<ReputationBook>,
}

/// A book is served for at least this many times as long as its load took.
pub const RELOAD_SPACING: u32 = 10;

/// How long a book that took `took` to load is served: `min_age`, or [`RELOAD_SPACING`] times
/// its load, whichever is longer.
pub fn served_for(min_age: std::time::Duration, took: std::time::Duration) -> std::time::Duration {
    min_age.max(took.saturating_mul(RELOAD_SPACING))
}

impl BookCache {
    /// The book over everything in `store` (no confirmations held back, as the node's own
    /// reads of its embedded index), at most [`served_for`] old.
    pub async fn get(
        &self,
        store: &Store,
        min_age: std::time::Duration,
    ) -> Result<std::sync::Arc<ReputationBook>> {
        let due = |l: &LoadedBook| l.checked.elapsed() >= served_for(min_age, l.took);
        let held = self.held();
        if let Some(l) = &held
            && !due(l)
        {
            return Ok(l.book.clone());
        }
        let _loading = match (self.loading.try_lock(), &held) {
            (Ok(guard), _) => guard,
            // Another reader is loading: rank with the book there is.
            (Err(_), Some(l)) => return Ok(l.book.clone()),
            (Err(_), None) => self.loading.lock().await,
        };
        // Loaded or checked by the reader this one waited for.
        let held = self.held();
        if let Some(l) = &held
            && !due(l)
        {
            return Ok(l.book.clone());
        }
        let started = std::time::Instant::now();
        let upto = match confirmed_tip(store, 0).await? {
            Some(n) => Some((n, store.block(n).await?.map(|b| b.hash))),
            None => None,
        };
        if let Some(l) = &held
            && l.upto == upto
        {
            self.keep(LoadedBook { checked: std::time::Instant::now(), ..l.clone() });
            return Ok(l.book.clone());
        }
        let (book, folded) = match self.extended(store, held, upto).await? {
            Some(book) => (book, false),
            None => {
                let events = match upto {
                    Some((n, _)) => load_events_upto(store, n).await?,
                    None => Vec::new(),
                };
                (ReputationBook::from_events(Params::default(), &events)?, true)
            }
        };
        let book = std::sync::Arc::new(book);
        let took = started.elapsed();
        tracing::debug!(?took, folded, agents = book.len(), "reputation book loaded");
        let checked = std::time::Instant::now();
        self.keep(LoadedBook { checked, took, upto, folded, book: book.clone() });
        Ok(book)
    }

    /// `held` brought up to `upto` with [`events_since`], or `None` when it must be folded
    /// again: there is none, the chain under it changed, or the new blocks change it.
    async fn extended(
        &self,
        store: &Store,
        held: Option<LoadedBook>,
        upto: Option<(u64, Option<B256>)>,
    ) -> Result<Option<ReputationBook>> {
        let (Some(l), Some((to, _))) = (held, upto) else { return Ok(None) };
        let Some((from, Some(hash))) = l.upto else { return Ok(None) };
        if to < from || store.block(from).await?.map(|b| b.hash) != Some(hash) {
            return Ok(None);
        }
        let Some(events) = events_since(store, from, to).await? else { return Ok(None) };
        let mut book = ReputationBook::clone(&l.book);
        for e in &events {
            book.apply(e)?;
        }
        Ok(Some(book))
    }

    /// How long the held book's load took, and whether it was folded from the whole history
    /// (else extended from the book before it).
    pub fn last_load(&self) -> Option<(std::time::Duration, bool)> {
        self.held().map(|l| (l.took, l.folded))
    }

    fn held(&self) -> Option<LoadedBook> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn keep(&self, l: LoadedBook) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(l);
    }
}

/// The events a book folded from everything up to block `after` lacks to be the book of
/// everything up to `upto`, in chain order; `None` when blocks `(after, upto]` change events
/// the book already holds ([`Store::reputation_inputs_changed`]), so the whole history must be
/// folded again. Blocks of bounties being posted, awarded and settled only add outcomes, each
/// after everything before `after`: for those this equals [`load_events`] minus what the book
/// holds (the test `an_extended_book_equals_a_full_load` checks it).
pub async fn events_since(store: &Store, after: u64, upto: u64) -> Result<Option<Vec<Event>>> {
    if store.reputation_inputs_changed(after, upto).await? {
        return Ok(None);
    }
    let settled = store.settled_bounties_between(Some(after), upto).await?;
    if settled.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let ids: Vec<String> = settled.iter().map(|b| b.id.clone()).collect();
    let timing = timing_of(&store.events_about(&ids, &TIMING_KINDS, upto).await?);
    let mut keyed = outcomes_keyed(&settled, &timing, &store.funding().await?)?;
    keyed.sort_by_key(|(k, _)| *k);
    Ok(Some(keyed.into_iter().map(|(_, e)| e).collect()))
}

/// A [`ReputationBook`] over everything confirmed in `store`.
pub async fn load_book(
    store: &Store,
    confirmations: u64,
    params: Params,
) -> Result<ReputationBook> {
    let events = load_events(store, confirmations).await?;
    Ok(ReputationBook::from_events(params, &events)?)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};

    use super::*;
    use crate::store::Batch;

    const POSTER: Address = Address::repeat_byte(0xa1);
    const AGENT: Address = Address::repeat_byte(0xb2);

    fn id(n: u64) -> String {
        crate::decode::id_hex(U256::from(n))
    }

    /// A log at (block, log) in transaction `tx` at block time `1_000 * block`.
    fn ev(block: u64, log: u64, tx: u8, kind: &str, ref_id: String) -> EventRow {
        EventRow {
            block_number: block,
            log_index: log,
            block_hash: B256::with_last_byte(block as u8),
            tx_hash: B256::repeat_byte(tx),
            block_time: 1_000 * block,
            contract: Address::with_last_byte(1),
            kind: kind.into(),
            ref_id: Some(ref_id),
            actor: None,
            counterparty: None,
            amount: None,
            amount2: None,
            extra: None,
        }
    }

    /// A bounty posted at block `b`, awarded with `dueBy` = `due`, delivered and settled by
    /// `submitAndAttest` at block `settled` (no `ResultSubmitted`), for `price` wei.
    fn lean_job(n: u64, b: u64, due: u64, settled: u64, price: u128) -> Vec<EventRow> {
        let tx = n as u8 * 10;
        vec![
            EventRow {
                actor: Some(POSTER),
                counterparty: Some(Address::ZERO),
                amount: Some(price.to_string()),
                amount2: Some(price.to_string()),
                extra: Some(
                    serde_json::json!({"deadline": 1_000 * (b + 100), "funded": true}).to_string(),
                ),
                ..ev(b, 0, tx, "BountyPosted", id(n))
            },
            EventRow {
                actor: Some(AGENT),
                amount: Some(price.to_string()),
                extra: Some(serde_json::json!({"bidNonce": "1", "dueBy": due}).to_string()),
                ..ev(b, 1, tx, "BountyAwarded", id(n))
            },
            EventRow {
                actor: Some(Address::ZERO),
                ..ev(settled, 0, tx + 1, "BountyAttested", id(n))
            },
            EventRow {
                actor: Some(AGENT),
                amount: Some(price.to_string()),
                amount2: Some("0".into()),
                extra: Some("0".into()),
                ..ev(settled, 1, tx + 1, "BountyCompleted", id(n))
            },
        ]
    }

    async fn store_with(events: Vec<EventRow>) -> Store {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let next = events.iter().map(|e| e.block_number).max().unwrap_or(0) + 1;
        store.commit(&Batch { events, next_block: next, ..Batch::default() }).await.unwrap();
        store
    }

    fn outcomes(events: &[Event]) -> Vec<&Outcome> {
        events
            .iter()
            .filter_map(|e| if let Event::Outcome(o) = e { Some(o) } else { None })
            .collect()
    }

    /// `submitAndAttest` emits no `ResultSubmitted`: the settlement block is the delivery, and
    /// it is compared with the award's `dueBy` (not the bounty deadline).
    fn response(
        block: u64,
        agent: u64,
        validator: Address,
        request: u8,
        score: u8,
        tag: &str,
    ) -> EventRow {
        EventRow {
            actor: Some(validator),
            extra: Some(
                serde_json::json!({
                    "request": B256::repeat_byte(request),
                    "response": score,
                    "tag": tag,
                    "uri": "",
                })
                .to_string(),
            ),
            ..ev(block, 0, block as u8, "ValidationResponse", id(agent))
        }
    }

    /// The last response to a request counts; only the ids the address owns now count; the
    /// average is floored like the registry's `getSummary`.
    #[tokio::test]
    async fn validations_are_the_latest_answers_about_the_agents_ids() {
        let (v1, v2) = (Address::repeat_byte(0xc1), Address::repeat_byte(0xc2));
        let transfer = |block: u64, agent: u64, to: Address| EventRow {
            actor: Some(Address::ZERO),
            counterparty: Some(to),
            ..ev(block, 1, block as u8, "AgentTransfer", id(agent))
        };
        let store = store_with(vec![
            transfer(1, 7, AGENT),
            transfer(1, 8, POSTER),
            response(2, 7, v1, 1, 40, "soft"),
            response(3, 7, v1, 1, 90, "hard"), // the same request again: 90 replaces 40
            response(4, 7, v2, 2, 0, "reef.bounty"),
            response(5, 7, v2, 3, 100, "reef.bounty"),
            response(6, 8, v1, 4, 100, "reef.bounty"), // another owner's agent
        ])
        .await;
        let v = validations_of(&store, 0, AGENT).await.unwrap();
        assert_eq!((v.count, v.average, v.bounty_verdicts), (3, 63, 2));
        assert_eq!(v.validators, vec![v1, v2]);
        // Agent 7 moves to the poster: its validations follow it.
        let store = store_with(vec![
            transfer(1, 7, AGENT),
            response(2, 7, v1, 1, 90, ""),
            transfer(3, 7, POSTER),
        ])
        .await;
        assert_eq!(validations_of(&store, 0, AGENT).await.unwrap().count, 0);
        assert_eq!(validations_of(&store, 0, POSTER).await.unwrap().count, 1);
    }

    /// The cache answers from memory while the index stands still and re-reads once it moves.
    #[tokio::test]
    async fn the_identity_cache_follows_the_index() {
        let transfer = |block: u64, agent: u64, to: Address| EventRow {
            actor: Some(Address::ZERO),
            counterparty: Some(to),
            ..ev(block, 1, block as u8, "AgentTransfer", id(agent))
        };
        let store = store_with(vec![transfer(1, 7, AGENT)]).await;
        let cache = IdentityCache::default();
        let first = cache.get(&store).await.unwrap();
        assert_eq!(first[&AGENT].len(), 1);
        assert!(std::sync::Arc::ptr_eq(&first, &cache.get(&store).await.unwrap()));
        store
            .commit(&Batch {
                events: vec![transfer(3, 8, AGENT)],
                next_block: 4,
                ..Batch::default()
            })
            .await
            .unwrap();
        let moved = cache.get(&store).await.unwrap();
        assert_eq!(
            moved[&AGENT].iter().map(|i| i.agent_id).collect::<Vec<_>>(),
            [U256::from(7), U256::from(8)]
        );
    }

    /// A book is served for its readers' freshness, or ten times its load when that is longer.
    #[test]
    fn a_book_is_served_for_ten_times_its_load() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(served_for(ms(2_000), ms(30)), ms(2_000));
        assert_eq!(served_for(ms(2_000), ms(450)), ms(4_500));
        assert_eq!(served_for(ms(0), ms(0)), ms(0));
    }

    /// Commits `events` with the headers of blocks `from..=to` (hash `salt ‖ n`), so that a
    /// book can tell whether the chain under it changed.
    async fn commit_blocks(store: &Store, events: Vec<EventRow>, from: u64, to: u64, salt: u8) {
        let hash = |n: u64| {
            let mut h = B256::with_last_byte(n as u8);
            h.0[0] = salt;
            h
        };
        let blocks = (from..=to)
            .map(|n| crate::source::BlockRef {
                number: n,
                hash: hash(n),
                parent: hash(n.saturating_sub(1)),
                timestamp: 1_000 * n,
            })
            .collect();
        store
            .commit(&Batch { events, blocks, next_block: to + 1, ..Batch::default() })
            .await
            .unwrap();
    }

    /// A job like [`lean_job`] between `poster` and `agent`, its price `n` tokens.
    fn job_between(n: u64, b: u64, settled: u64, poster: Address, agent: Address) -> Vec<EventRow> {
        let mut events =
            lean_job(n, b, 1_000 * settled + 500, settled, (n as u128) * 10u128.pow(18));
        for e in &mut events {
            // Jobs in the same block take distinct log indexes.
            e.log_index += 10 * n;
            match e.kind.as_str() {
                "BountyPosted" => e.actor = Some(poster),
                "BountyAwarded" | "BountyCompleted" => e.actor = Some(agent),
                _ => {}
            }
        }
        events
    }

    /// The book cache answers from memory while the book is fresh, keeps it without a load
    /// while the index stands still, brings it up to date once the index moved, folds it again
    /// after a reorg under it, and while one reader loads, another ranks with the book there is.
    #[tokio::test]
    async fn the_book_cache_loads_only_when_due_and_the_index_moved() {
        use std::{sync::Arc, time::Duration};
        let store = Store::connect("sqlite::memory:").await.unwrap();
        commit_blocks(&store, lean_job(1, 1, 1_500, 2, 10u128.pow(18)), 1, 2, 0).await;
        let cache = BookCache::default();
        let (fresh, due) = (Duration::from_secs(3600), Duration::ZERO);
        // A book is served for ten times its load even to readers that ask for no freshness.
        let wait_due = async |cache: &BookCache| {
            let took = cache.held().map_or(Duration::ZERO, |l| l.took);
            tokio::time::sleep(served_for(due, took)).await;
        };
        let first = cache.get(&store, fresh).await.unwrap();
        assert_eq!(first.applied(), 1);
        assert!(Arc::ptr_eq(&first, &cache.get(&store, fresh).await.unwrap()));
        // Due, but the index has not moved: the same book, not a load.
        wait_due(&cache).await;
        assert!(Arc::ptr_eq(&first, &cache.get(&store, due).await.unwrap()));
        commit_blocks(&store, lean_job(2, 3, 3_500, 4, 10u128.pow(18)), 3, 4, 0).await;
        // Fresh enough for its readers: still the first book.
        assert!(Arc::ptr_eq(&first, &cache.get(&store, fresh).await.unwrap()));
        wait_due(&cache).await;
        let second = cache.get(&store, due).await.unwrap();
        assert_eq!(second.applied(), 2);
        assert_eq!(cache.last_load().map(|(_, folded)| folded), Some(false), "extended");
        // While another reader loads, a due reader gets the book there is at once.
        store.rewind(3).await.unwrap();
        commit_blocks(&store, Vec::new(), 3, 5, 7).await;
        wait_due(&cache).await;
        let loading = cache.loading.lock().await;
        assert!(Arc::ptr_eq(&second, &cache.get(&store, due).await.unwrap()));
        drop(loading);
        // A reorg under the book dropped the second job: the book is folded again without it.
        assert_eq!(cache.get(&store, due).await.unwrap().applied(), 1);
        assert_eq!(cache.last_load().map(|(_, folded)| folded), Some(true));
        // With no book yet, a reader waits for the one loading.
        let empty = BookCache::default();
        let loading = empty.loading.lock().await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), empty.get(&store, due));
        assert!(waiting.await.is_err(), "a reader without a book waits for the load");
        drop(loading);
        assert_eq!(empty.get(&store, due).await.unwrap().applied(), 1);
    }

    /// Blocks that only settle bounties extend a book to what a full load of the whole history
    /// gives (the same scores, in the same order of pairs); blocks with feedback or a stake
    /// change, or an event about a bounty settled before, ask for a full load instead.
    #[tokio::test]
    async fn an_extended_book_equals_a_full_load() {
        check_extended_book(&Store::connect("sqlite::memory:").await.unwrap()).await;
    }

    /// The same statements on Postgres (127.0.0.1:5432, a fresh database dropped afterwards).
    #[tokio::test]
    async fn an_extended_book_equals_a_full_load_postgres() {
        let (store, db) = crate::store::postgres_store("reef_idx_book").await;
        check_extended_book(&store).await;
        db.drop_with(store).await;
    }

    async fn check_extended_book(store: &Store) {
        let (p1, p2) = (POSTER, Address::repeat_byte(0xa2));
        let (a1, a2) = (AGENT, Address::repeat_byte(0xb3));
        let mut old = job_between(1, 1, 2, p1, a1);
        old.extend(job_between(2, 1, 2, p2, a2));
        commit_blocks(store, old, 1, 2, 0).await;
        let held = load_book(store, 0, Params::default()).await.unwrap();
        // Same pairs again (the second job of a pair weighs half), a new pair, two in a block.
        let mut new = job_between(3, 3, 5, p1, a1);
        new.extend(job_between(4, 4, 5, p2, a1));
        new.extend(job_between(5, 6, 7, p2, a2));
        commit_blocks(store, new, 3, 7, 0).await;
        let events = events_since(store, 2, 7).await.unwrap().expect("only outcomes were added");
        assert_eq!(outcomes(&events).len(), 3);
        let mut extended = held.clone();
        for e in &events {
            extended.apply(e).unwrap();
        }
        let full = load_book(store, 0, Params::default()).await.unwrap();
        assert_eq!(extended.applied(), full.applied());
        assert_eq!(extended.latest(), full.latest());
        for agent in [a1, a2] {
            assert_eq!(extended.score(&agent), full.score(&agent));
        }
        // Nothing new: nothing to add.
        assert_eq!(events_since(store, 7, 7).await.unwrap().map(|e| e.len()), Some(0));
        // Feedback in the new blocks: fold again.
        commit_blocks(store, vec![authorized(8, 0, 80, 3)], 8, 8, 0).await;
        assert!(events_since(store, 7, 8).await.unwrap().is_none());
        // An event about a bounty settled before the book: fold again.
        let touch = EventRow { actor: Some(a1), ..ev(9, 0, 90, "ResultSubmitted", id(5)) };
        commit_blocks(store, vec![touch], 9, 9, 0).await;
        assert!(events_since(store, 8, 9).await.unwrap().is_none());
        // A stake change: fold again.
        let staked = EventRow {
            actor: Some(a2),
            amount2: Some(10u128.pow(18).to_string()),
            ..ev(10, 0, 100, "Staked", id(0))
        };
        commit_blocks(store, vec![staked], 10, 10, 0).await;
        assert!(events_since(store, 9, 10).await.unwrap().is_none());
        assert!(events_since(store, 10, 10).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn lean_settlement_is_a_delivery_on_time_or_late_against_due_by() {
        let mut events = lean_job(1, 1, 2_500, 2, 10u128.pow(19)); // delivered 2_000 <= 2_500
        events.extend(lean_job(2, 3, 3_500, 4, 10u128.pow(19))); // delivered 4_000 > 3_500
        let store = store_with(events).await;
        let bounties = store.bounties().await.unwrap();
        assert_eq!(bounties[0].submitted_at, Some(2_000), "{bounties:?}");
        let events = load_events(&store, 0).await.unwrap();
        let o = outcomes(&events);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].on_time, Some(true));
        // Late against its ETA although well before the deadline (103_000).
        assert_eq!(o[1].on_time, Some(false));
        let book = ReputationBook::from_events(Params::default(), &events).unwrap();
        let s = book.score(&AGENT);
        // Weights ln(1 + 10) and, the pair's second job, ln(1 + 10) / 2: one of two on time.
        let (w1, w2) = (11f64.ln(), 11f64.ln() / 2.0);
        let on_time = &s.components[1];
        // (Decay over the 2_000 s between them is below 1e-4.)
        assert!((on_time.value - (1.0 + w1) / (2.0 + w1 + w2)).abs() < 1e-4, "{on_time:?}");
        assert!(on_time.explanation.starts_with("2.40 of 3.60 weighted deliveries"), "{on_time:?}");
        // A reorg that drops the late settlement drops its delivery with it.
        store.rewind(4).await.unwrap();
        let events = load_events(&store, 0).await.unwrap();
        assert_eq!(outcomes(&events).len(), 1);
        let b2 = store.bounties().await.unwrap().into_iter().find(|b| b.id == id(2)).unwrap();
        assert_eq!((b2.status.as_str(), b2.submitted_at), ("awarded", None));
    }

    fn authorized(block: u64, log: u64, tx: u8, bounty: u64) -> EventRow {
        EventRow {
            actor: Some(POSTER),
            counterparty: Some(AGENT),
            ..ev(block, log, tx, "FeedbackAuthorized", id(bounty))
        }
    }

    fn feedback(block: u64, log: u64, tx: u8, index: u64, value: i128, decimals: u8) -> EventRow {
        EventRow {
            actor: Some(POSTER),
            extra: Some(
                serde_json::json!({"index": index, "value": value.to_string(), "decimals": decimals, "tag1": "", "tag2": ""})
                    .to_string(),
            ),
            ..ev(block, log, tx, "NewFeedback", id(7))
        }
    }

    /// Feedback reaches the book tied to its bounty's paid value: the same-transaction credit
    /// (`giveBountyFeedback`), the oldest credit for the agent's owner (`giveFeedback`);
    /// revoked feedback and feedback without a credit do not count.
    #[tokio::test]
    async fn feedback_is_tied_to_its_bounty_and_weighted_by_its_value() {
        let mut events = lean_job(1, 1, 1_500, 1, 1); // 1 wei
        events.extend(lean_job(2, 2, 2_500, 2, 100 * 10u128.pow(18))); // 100 tokens
        events.extend(lean_job(3, 3, 3_500, 3, 10u128.pow(18)));
        events.push(EventRow {
            actor: Some(Address::ZERO),
            counterparty: Some(AGENT),
            ..ev(4, 0, 40, "AgentTransfer", id(7))
        });
        // Bounty 1 (1 wei): five stars in one transaction (giveBountyFeedback).
        events.push(authorized(5, 0, 50, 1));
        events.push(feedback(5, 1, 50, 1, 100, 0));
        // Bounty 2 (100 tokens): credit first, then a plain giveFeedback of 10.00 / 100.
        events.push(authorized(6, 0, 60, 2));
        events.push(feedback(7, 0, 70, 2, 1_000, 2));
        // Bounty 3: rated, then revoked.
        events.push(authorized(8, 0, 80, 3));
        events.push(feedback(8, 1, 80, 3, 100, 0));
        events.push(EventRow {
            actor: Some(POSTER),
            extra: Some("3".into()),
            ..ev(9, 0, 90, "FeedbackRevoked", id(7))
        });
        // No credit left: not tied, not scored.
        events.push(feedback(10, 0, 100, 4, 0, 0));
        let store = store_with(events).await;
        let events = load_events(&store, 0).await.unwrap();
        let rated: Vec<&Feedback> = events
            .iter()
            .filter_map(|e| if let Event::Feedback(f) = e { Some(f) } else { None })
            .collect();
        assert_eq!(rated.len(), 2, "{rated:?}");
        assert_eq!((rated[0].value, rated[0].rating), (1e-18, 1.0));
        assert_eq!((rated[1].value, rated[1].rating), (100.0, 0.1));
        assert!(rated.iter().all(|f| f.agent == AGENT && f.poster == POSTER));
        let book = ReputationBook::from_events(Params::default(), &events).unwrap();
        let s = book.score(&AGENT);
        let fb = &s.components[5];
        assert_eq!(fb.name, "feedback");
        assert_eq!(s.counts.feedback, 2);
        // The 100-token job's low rating dominates the 1-wei job's five stars.
        assert!(fb.value < 0.3, "{fb:?}");
        assert!(fb.explanation.starts_with("2 poster ratings"), "{fb:?}");
    }

    #[test]
    fn ratings_are_read_on_the_0_to_100_scale() {
        assert_eq!(normalise_rating(80, 0), 0.8);
        assert_eq!(normalise_rating(4_250, 2), 0.425);
        assert_eq!(normalise_rating(-5, 0), 0.0);
        assert_eq!(normalise_rating(1_000, 0), 1.0);
    }
}
