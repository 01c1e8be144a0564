//! Durable marketplace state: bounties with their lifecycle state, sealed bids, and a progress
//! log. Every transition is written here before it is acted on, so a restarted node resumes
//! exactly where it stopped (same SQL on SQLite and Postgres through sqlx's `Any` driver).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use alloy::primitives::{Address, U256};
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row, any::AnyPoolOptions};

use super::{
    MarketError, Result,
    ranking::{Ranking, SignedBid, StoredRanking},
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_market.sql")),
    (2, include_str!("migrations/0002_contest.sql")),
    (3, include_str!("migrations/0003_close_ms.sql")),
    (4, include_str!("migrations/0004_outcome_indexes.sql")),
    (5, include_str!("migrations/0005_rankings.sql")),
    (6, include_str!("migrations/0006_outcome.sql")),
    (7, include_str!("migrations/0007_erasure.sql")),
];

/// Migrations written once per database (triggers differ between SQLite and Postgres), after
/// [`MIGRATIONS`]: `(version, SQLite, Postgres)`.
const MIGRATIONS_BY_BACKEND: &[(i64, &str, &str)] = &[(
    8,
    include_str!("migrations/0008_transition_log.sqlite.sql"),
    include_str!("migrations/0008_transition_log.postgres.sql"),
)];

/// Lifecycle of a bounty inside the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Call for proposals sent; sealed bids being collected.
    Bidding,
    /// Contest: funded on-chain, entries collected until the deadline.
    Contest,
    /// Window closed, winner chosen; waiting for the poster's on-chain award.
    AwaitingAward,
    /// Awarded on-chain; the task is assigned and the provider works.
    Working,
    /// The result is with the evaluator panel; waiting for a quorum of signed verdicts.
    Evaluating,
    /// A verdict was signed; waiting for it to settle on-chain.
    Settling,
    /// Waiting for the poster's own verdict (verification mode `poster`).
    AwaitingPoster,
    /// Terminal on-chain (completed, refunded, resolved, expired or cancelled).
    Settled,
    /// Ended off-chain without an award (no bids, or never awarded).
    Failed,
}

impl Phase {
    /// Database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bidding => "bidding",
            Self::Contest => "contest",
            Self::AwaitingAward => "awaiting_award",
            Self::Working => "working",
            Self::Evaluating => "evaluating",
            Self::Settling => "settling",
            Self::AwaitingPoster => "awaiting_poster",
            Self::Settled => "settled",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "bidding" => Self::Bidding,
            "contest" => Self::Contest,
            "awaiting_award" => Self::AwaitingAward,
            "working" => Self::Working,
            "evaluating" => Self::Evaluating,
            "settling" => Self::Settling,
            "awaiting_poster" => Self::AwaitingPoster,
            "settled" => Self::Settled,
            "failed" => Self::Failed,
            other => return Err(MarketError::Internal(format!("unknown phase {other:?} in db"))),
        })
    }

    /// Every phase, in lifecycle order.
    pub const ALL: [Self; 9] = [
        Self::Bidding,
        Self::Contest,
        Self::AwaitingAward,
        Self::Working,
        Self::Evaluating,
        Self::Settling,
        Self::AwaitingPoster,
        Self::Settled,
        Self::Failed,
    ];

    /// No further work for the node.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Settled | Self::Failed)
    }
}

/// A bounty id as the node keys it: the row's id text (the store's key, `0x`-hex, 64 digits for
/// every bounty the node registers) with its value, parsed once when the row is read. It
/// dereferences to the key text, so it goes to the store's keyed methods as it is, and
/// [`BountyKey::id`] hands the chain calls the number without parsing it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BountyKey {
    id: U256,
    key: Arc<str>,
}

impl BountyKey {
    /// The key of `id` (`0x` and 64 hex digits).
    pub fn new(id: U256) -> Self {
        Self { id, key: super::id_hex(id).into() }
    }

    /// A key read from the store; an id that is not hex is the database's fault.
    fn from_db(key: String) -> Result<Self> {
        let id = super::parse_id(&key)
            .map_err(|_| MarketError::Internal(format!("bad bounty id {key:?} in db")))?;
        Ok(Self { id, key: key.into() })
    }

    /// The bounty id as the escrow takes it.
    pub fn id(&self) -> U256 {
        self.id
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl std::ops::Deref for BountyKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Display for BountyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key)
    }
}

impl Serialize for BountyKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.key)
    }
}

/// An address column (written from an `Address`, so a bad one is the database's fault).
fn address_of(text: &str) -> Result<Address> {
    text.parse().map_err(|_| MarketError::Internal(format!("bad address {text:?} in db")))
}

/// One bounty row.
#[derive(Debug, Clone, Serialize)]
pub struct BountyRow {
    /// The bounty id, parsed once when the row is read.
    pub id: BountyKey,
    /// Poster address.
    pub poster: Address,
    /// Phase.
    pub phase: Phase,
    /// The posted spec (JSON).
    pub spec: serde_json::Value,
    /// Unix seconds when bidding closes.
    pub bid_close_at: u64,
    /// Unix milliseconds when bidding closes (0: at `bid_close_at`).
    pub bid_close_ms: u64,
    /// Winning bidder.
    pub winner: Option<Address>,
    /// Unix seconds when the winning bid expires (set with the ranking, which
    /// [`MarketStore::ranking`] reads; 0: not ranked, or ranked before this was stored).
    pub award_expiry: u64,
    /// Call-for-proposals group.
    pub cfp_group: Option<String>,
    /// Work group with poster and provider.
    pub work_group: Option<String>,
    /// Last work-group seq processed.
    pub cursor: u64,
    /// Verdict (JSON) once decided.
    pub verdict: Option<serde_json::Value>,
    /// Unix seconds of the on-chain award as seen by the node.
    pub awarded_at: Option<u64>,
    /// Human note on the last transition.
    pub note: Option<String>,
    /// Unix ms when the bounty was stored.
    #[serde(skip)]
    pub created_ms: u64,
}

/// A stored sealed bid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BidRow {
    /// Bidder.
    pub bidder: String,
    /// The signed bid.
    pub bid: SignedBid,
    /// Promised delivery time after award, seconds.
    pub eta_secs: u64,
}

/// Marketplace database handle.
#[derive(Debug, Clone)]
pub struct MarketStore {
    pool: AnyPool,
    postgres: bool,
    /// Bounty rows as last read, on SQLite only (see [`RowCache`]).
    rows: Option<Arc<RowCache>>,
    /// Readers waiting for a bounty's log to grow (long-polling views), woken after each
    /// append this process commits.
    log_watchers: Arc<LogWatchers>,
    /// The queue of the bid writer ([`BidWriter`]): sealed bids are written in batches.
    bids: tokio::sync::mpsc::Sender<BidJob>,
    /// Progress logs and bid counts as last read, on SQLite only (see [`LogCache`]).
    logs: Option<Arc<LogCache>>,
    /// Admission control's last refusal (see [`FullMark`]).
    full: Arc<FullMark>,
}

/// How long a refusal for a full node stands without being checked against the database
/// again. Windows this process closes are counted as they close (a bounty leaves its window
/// only through [`MarketStore::move_row`]); one closed by another node sharing the database
/// (Postgres) is seen at most this late. Refused posters are told to come back after at least
/// as long (`BUSY_RETRY_MS`).
const FULL_MARK_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Admission control's last refusal: when the node was found full, how many windows were
/// open then, and how many of them closed here since. Under overload posters come back faster
/// than windows close, and each refusal cost an insert attempt, a row read and a count. While
/// the mark stands, each closed window lets one post through to the database's check, and the
/// others are refused from memory (a repeated post of a registered bounty still goes through).
#[derive(Debug, Default)]
struct FullMark(std::sync::Mutex<Option<FullSince>>);

#[derive(Debug, Clone, Copy)]
struct FullSince {
    at: std::time::Instant,
    open: u64,
    /// Windows closed here since, not yet offered to a post.
    freed: u64,
    /// The next post probes at once (set when a probe was admitted).
    probe_next: bool,
    /// A probe was admitted since the last refusal: only a second admitted probe in a row ends
    /// the mark (one can be admitted by a window that closed while it was in flight, a place
    /// the next freed post then misses).
    admitted: bool,
}

/// What admission control knows before the database is asked (see [`FullMark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Found full moments ago, with this many windows open: refuse a new bounty.
    Full(u64),
    /// Ask the database. `probe`: the node was known full, but the mark lapsed and this post
    /// checks again; if it is admitted, the database may have room this node did not know of
    /// (windows another node closed): see [`MarketStore::probe_admitted`].
    Ask {
        /// Whether this post checks a lapsed mark.
        probe: bool,
    },
}

impl FullMark {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<FullSince>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a new post is refused from memory or goes to the database: no mark, a window
    /// freed since (which this post takes), or a mark older than [`FULL_MARK_TTL`] (this post
    /// checks the database again; the others are still refused meanwhile, so a lapsed mark
    /// does not send every post in flight to the database at once).
    fn check(&self) -> Admission {
        let mut mark = self.lock();
        let Some(m) = mark.as_mut() else { return Admission::Ask { probe: false } };
        if m.freed > 0 {
            m.freed -= 1;
            return Admission::Ask { probe: false };
        }
        if m.probe_next || m.at.elapsed() >= FULL_MARK_TTL {
            m.probe_next = false;
            m.at = std::time::Instant::now();
            return Admission::Ask { probe: true };
        }
        Admission::Full(m.open)
    }

    /// The database refused a post: full. Windows freed before and not yet offered stay
    /// offered (their posts may be on their way; dropping them would hold the places back
    /// until the mark lapses).
    fn set(&self, open: u64) {
        let at = std::time::Instant::now();
        let mut mark = self.lock();
        match mark.as_mut() {
            Some(m) => (m.at, m.open, m.probe_next, m.admitted) = (at, open, false, false),
            None => {
                *mark = Some(FullSince { at, open, freed: 0, probe_next: false, admitted: false })
            }
        }
    }

    /// A probe was admitted: the first time the next post probes again, the second time in
    /// a row the mark ends. Ending it at once would send every post in flight to the database,
    /// which under overload refuses most of them, each after an insert attempt and a count.
    fn probe_admitted(&self) {
        let mut mark = self.lock();
        match mark.as_mut() {
            Some(m) if !m.admitted => (m.probe_next, m.admitted) = (true, true),
            _ => *mark = None,
        }
    }

    fn window_closed(&self) {
        if let Some(m) = self.lock().as_mut() {
            m.freed += 1;
        }
    }
}

/// Most bounties whose log [`LogCache`] holds; beyond it the cache is emptied.
const LOG_CACHE_MAX: usize = 20_000;

/// A bounty's progress log and bid count as read from the database, for the views a
/// long-polling follower asks for after every new event: without it each answer re-read the
/// whole log (one statement per answer, about ten per bounty). On SQLite only, where this
/// process is the database's only writer (as for [`RowCache`]).
///
/// Coherence: a write of a bounty's log or bids marks the bounty while it runs; a read fills
/// the cache only if no write of that bounty ran or ran while it read (the bounty's
/// generation is unchanged and unmarked). After a log line commits it is appended to a cached
/// log (which was filled before the write began, so it does not hold the line yet); after
/// bids commit, the entry is dropped (the count changed); a failed write drops it too.
#[derive(Debug, Default)]
struct LogCache {
    inner: std::sync::Mutex<LogCacheInner>,
}

#[derive(Debug, Default)]
struct LogCacheInner {
    /// Bumped when the generations are forgotten (reads begun before never fill).
    epoch: u64,
    /// Bumped by every write's end, per bounty; missing = 0.
    generation: HashMap<String, u64>,
    /// Writes running, per bounty.
    writing: HashMap<String, u32>,
    /// (log lines, bid count) per bounty.
    entries: HashMap<String, (Arc<Vec<serde_json::Value>>, u64)>,
}

impl LogCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogCacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached (log, bid count), or the (epoch, generation) a fill after a read must match.
    #[allow(clippy::type_complexity)]
    fn get(&self, id: &str) -> std::result::Result<(Arc<Vec<serde_json::Value>>, u64), (u64, u64)> {
        let c = self.lock();
        match c.entries.get(id) {
            Some((log, n)) => Ok((log.clone(), *n)),
            None => Err((c.epoch, c.generation.get(id).copied().unwrap_or(0))),
        }
    }

    fn fill(&self, id: &str, ticket: (u64, u64), log: &[serde_json::Value], bids: u64) {
        let mut c = self.lock();
        if c.writing.get(id).is_some_and(|n| *n > 0)
            || c.epoch != ticket.0
            || c.generation.get(id).copied().unwrap_or(0) != ticket.1
        {
            return;
        }
        if c.entries.len() >= LOG_CACHE_MAX {
            c.entries.clear();
        }
        c.entries.insert(id.to_string(), (Arc::new(log.to_vec()), bids));
    }

    fn write_begin(&self, id: &str) {
        *self.lock().writing.entry(id.to_string()).or_default() += 1;
    }

    /// A write of `id` ended: `line` is the log line it committed (appended to a cached log),
    /// `None` when it wrote bids, failed, or wrote nothing to the log (the entry is dropped
    /// unless `keep`).
    fn write_end(&self, id: &str, line: Option<serde_json::Value>, keep: bool) {
        let mut c = self.lock();
        if let Some(n) = c.writing.get_mut(id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.writing.remove(id);
            }
        }
        *c.generation.entry(id.to_string()).or_default() += 1;
        if c.generation.len() > LOG_CACHE_MAX && c.writing.is_empty() {
            // Generations only matter against reads in flight: restart them all (every read
            // in flight then declines to fill).
            c.generation.clear();
            c.entries.clear();
            c.epoch += 1;
            return;
        }
        match line {
            Some(line) => {
                if let Some((log, _)) = c.entries.get_mut(id) {
                    let later =
                        log.last().is_none_or(|l| l["at_ms"].as_i64() <= line["at_ms"].as_i64());
                    if later {
                        Arc::make_mut(log).push(line);
                    } else {
                        c.entries.remove(id);
                    }
                }
            }
            None if keep => {}
            None => {
                c.entries.remove(id);
            }
        }
    }
}

/// Most bids queued for the bid writer (a REST handler waits for room beyond it).
const BID_QUEUE: usize = 4096;

/// Most bids written in one batch.
const BID_BATCH: usize = 256;

/// One sealed bid waiting for the bid writer, with where its outcome goes.
#[derive(Debug)]
struct BidJob {
    bounty_id: String,
    bidder: String,
    bid: String,
    eta_secs: i64,
    capacity: usize,
    reply: tokio::sync::oneshot::Sender<Result<bool>>,
}

/// Group commit of sealed bids: one task takes every bid queued at once and writes them in
/// one transaction (`BEGIN`, one read of the bidders the bounties hold, one multi-row upsert,
/// `COMMIT`: four statements per batch instead of one upsert per bid; fewer than
/// [`SMALL_BID_BATCH`] bids are written one statement each), then answers each caller. A caller's bid is on disk when its answer comes (as before: the REST answer is
/// sent after the commit), so a crash loses no acknowledged bid.
struct BidWriter;

impl BidWriter {
    fn spawn(pool: AnyPool, logs: Option<Arc<LogCache>>) -> tokio::sync::mpsc::Sender<BidJob> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<BidJob>(BID_QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BID_BATCH);
            while rx.recv_many(&mut batch, BID_BATCH).await > 0 {
                let ids: std::collections::BTreeSet<String> =
                    batch.iter().map(|j| j.bounty_id.clone()).collect();
                if let Some(c) = &logs {
                    ids.iter().for_each(|id| c.write_begin(id));
                }
                let written = write_bids(&pool, &batch).await;
                if let Some(c) = &logs {
                    // The bid counts changed (or may have): drop the cached views.
                    ids.iter().for_each(|id| c.write_end(id, None, false));
                }
                match written {
                    Ok(accepted) => {
                        for (job, ok) in batch.drain(..).zip(accepted) {
                            let _ = job.reply.send(Ok(ok));
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for job in batch.drain(..) {
                            let _ = job.reply.send(Err(MarketError::Internal(format!(
                                "storing the bid failed: {msg}"
                            ))));
                        }
                    }
                }
            }
        });
        tx
    }
}

/// Batches below this size are written one statement per bid ([`upsert_one_bid`]).
const SMALL_BID_BATCH: usize = 4;

/// One bid, unless its bounty holds `capacity` bids already and none of them is this
/// bidder's (then false): the check and the write in one statement.
async fn upsert_one_bid(pool: &AnyPool, j: &BidJob) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO market_bids (bounty_id, bidder, bid, eta_secs, received_at) \
         SELECT $1, $2, $3, $4, $5 \
         WHERE (SELECT COUNT(*) FROM market_bids WHERE bounty_id = $1) < $6 \
            OR EXISTS (SELECT 1 FROM market_bids WHERE bounty_id = $1 AND bidder = $2) \
         ON CONFLICT (bounty_id, bidder) DO UPDATE SET bid = excluded.bid, eta_secs = excluded.eta_secs, received_at = excluded.received_at",
    )
    .bind(j.bounty_id.as_str())
    .bind(j.bidder.as_str())
    .bind(j.bid.as_str())
    .bind(j.eta_secs)
    .bind(now_ms())
    .bind(i64::try_from(j.capacity).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Writes a batch of bids in one transaction; returns, per job, whether it was stored (false:
/// its bounty holds `capacity` bids already and none is this bidder's). Within the batch a
/// later bid of the same bidder on the same bounty replaces the earlier one, as a later
/// upsert would.
async fn write_bids(pool: &AnyPool, jobs: &[BidJob]) -> Result<Vec<bool>> {
    use std::collections::BTreeSet;
    // A batch costs four statements (BEGIN, the read, the upsert, COMMIT): a smaller one is
    // written bid by bid, each bid's check and write in one statement (atomic on SQLite).
    if jobs.len() < SMALL_BID_BATCH {
        let mut accepted = Vec::with_capacity(jobs.len());
        for j in jobs {
            accepted.push(upsert_one_bid(pool, j).await?);
        }
        return Ok(accepted);
    }
    let bounties: Vec<&str> =
        jobs.iter().map(|j| j.bounty_id.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    crate::metrics::transaction_begun();
    let mut tx = pool.begin().await?;
    // The bidders each bounty holds now.
    let mut held: HashMap<&str, HashSet<String>> = HashMap::new();
    for chunk in bounties.chunks(500) {
        let sql = format!(
            "SELECT bounty_id, bidder FROM market_bids WHERE bounty_id IN ({})",
            crate::ioa::store::placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in chunk {
            q = q.bind(*b);
        }
        for r in q.fetch_all(&mut *tx).await? {
            let bounty: String = r.try_get("bounty_id")?;
            if let Some(k) = chunk.iter().find(|b| **b == bounty) {
                held.entry(*k).or_default().insert(r.try_get("bidder")?);
            }
        }
    }
    // Decide in arrival order; the last bid per (bounty, bidder) is the one written.
    let mut accepted = Vec::with_capacity(jobs.len());
    let mut last: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        let set = held.entry(j.bounty_id.as_str()).or_default();
        let ok = set.contains(&j.bidder) || set.len() < j.capacity;
        if ok {
            set.insert(j.bidder.clone());
            last.insert((j.bounty_id.as_str(), j.bidder.as_str()), i);
        }
        accepted.push(ok);
    }
    let mut rows: Vec<usize> = last.into_values().collect();
    rows.sort_unstable();
    let now = now_ms();
    for chunk in rows.chunks(BID_BATCH) {
        let values: Vec<String> = (0..chunk.len())
            .map(|k| {
                let b = k * 5;
                format!("(${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5)
            })
            .collect();
        let sql = format!(
            "INSERT INTO market_bids (bounty_id, bidder, bid, eta_secs, received_at) VALUES {} \
             ON CONFLICT (bounty_id, bidder) DO UPDATE SET bid = excluded.bid, eta_secs = excluded.eta_secs, received_at = excluded.received_at",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for &i in chunk {
            let j = &jobs[i];
            q = q
                .bind(j.bounty_id.as_str())
                .bind(j.bidder.as_str())
                .bind(j.bid.as_str())
                .bind(j.eta_secs)
                .bind(now);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(accepted)
}

/// Per-bounty wake-ups for readers of the progress log, and one stream of every bounty whose
/// log grew (the dashboard's live updates).
#[derive(Debug)]
pub struct LogWatchers {
    map: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    any: tokio::sync::broadcast::Sender<Arc<str>>,
}

/// Bounty ids buffered per observer of [`LogWatchers::changes`]; a slower one is told it lagged.
const CHANGES_BUFFER: usize = 1024;

impl Default for LogWatchers {
    fn default() -> Self {
        Self { map: Default::default(), any: tokio::sync::broadcast::channel(CHANGES_BUFFER).0 }
    }
}

impl LogWatchers {
    /// The ids of the bounties whose log grew, after each commit (possibly repeated). On
    /// `RecvError::Lagged` the observer missed some and should assume any bounty changed.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.any.subscribe()
    }

    /// The wake-up of `bounty_id`'s log (shared by all its readers).
    pub fn watch(&self, bounty_id: &str) -> Arc<tokio::sync::Notify> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(bounty_id.to_string()).or_default().clone()
    }

    /// A reader is done with `notify`; the entry goes when nobody else holds it.
    pub fn unwatch(&self, bounty_id: &str, notify: Arc<tokio::sync::Notify>) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map and this reader hold it: nobody else is waiting.
        if Arc::strong_count(&notify) <= 2 {
            m.remove(bounty_id);
        }
    }

    fn appended(&self, bounty_id: &str) {
        // Nobody listening is not an error.
        let _ = self.any.send(Arc::from(bounty_id));
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get(bounty_id) {
            n.notify_waiters();
        }
    }
}

/// Read-through cache of bounty rows, used when the database is this node's own SQLite file.
///
/// The work loop reads a bounty's row before and after every step, and bids and views read it
/// too: about 35 `SELECT`s per bounty, each a round trip to sqlx's SQLite worker thread, plus
/// parsing the spec's JSON. Every write to `market_bounties` goes through this store, which
/// keeps the cache in step with it.
///
/// The invariant: a cached row was read from the database after the last write to it
/// committed. A write marks the row as being written before it starts (reads miss and fill
/// nothing meanwhile) and bumps its generation again when it is done; a read fills the cache
/// only if the generation (and the epoch, bumped when the cache is cleared to stay bounded)
/// is still the one it started from. So a reader woken by a commit (a long-poll) never gets
/// the row from before it, and the view's "phase never older than the log" holds. A write
/// returns the row it left (`RETURNING *`) and caches it if no other write to the row
/// overlapped it, so the work loop's read after each step is not a round trip.
///
/// Not used on Postgres: a mesh's nodes share the database and write the same rows.
#[derive(Debug, Default)]
struct RowCache {
    inner: std::sync::Mutex<RowCacheInner>,
}

#[derive(Debug, Default)]
struct RowCacheInner {
    epoch: u64,
    slots: HashMap<String, RowSlot>,
    /// Ids read as having no row, with no write to them since (a write's mark removes the id;
    /// an id here has no slot). A full node's refused posters come back with the same ids, and
    /// each refusal asks whether the post is a repeat of a registered bounty.
    absent: HashSet<String>,
}

#[derive(Debug, Default)]
struct RowSlot {
    generation: u64,
    /// Writes to this row in flight.
    writing: u32,
    row: Option<Arc<BountyRow>>,
    /// The bounty's ranking, under the same rules as `row`; only a ranking write drops it.
    ranking: Option<Arc<StoredRanking>>,
}

/// Where a missed read started: it may fill the cache only if nothing moved since.
#[derive(Debug, Clone, Copy)]
struct RowTicket {
    epoch: u64,
    generation: u64,
}

/// Most bounty rows kept (a full cache is cleared, not evicted row by row).
const ROW_CACHE_MAX: usize = 4096;

impl RowCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, RowCacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached row, or the ticket a read from the database fills the cache with.
    #[cfg(test)]
    fn get(&self, id: &str) -> std::result::Result<Arc<BountyRow>, RowTicket> {
        self.get_slot(id, |slot| slot.row.clone())
    }

    /// What `pick` takes from the slot of `id` while no write to it is in flight, or the
    /// ticket a read from the database fills it with.
    fn get_slot<T>(
        &self,
        id: &str,
        pick: impl FnOnce(&RowSlot) -> Option<T>,
    ) -> std::result::Result<T, RowTicket> {
        self.lock().pick(id, pick)
    }

    /// [`Self::get`] that also answers for an id read as having no row (`Ok(None)`), under
    /// one lock: the store's every row read asks this first.
    fn get_row(&self, id: &str) -> std::result::Result<Option<Arc<BountyRow>>, RowTicket> {
        let c = self.lock();
        if c.absent.contains(id) {
            return Ok(None);
        }
        c.pick(id, |slot| slot.row.clone()).map(Some)
    }

    /// Whether `id` was read as having no row, and no write to it began since.
    #[cfg(test)]
    fn known_absent(&self, id: &str) -> bool {
        self.lock().absent.contains(id)
    }

    /// Remembers that a read with `ticket` found no row for `id`, unless a write to it began
    /// since the ticket was taken (or one was in flight then) or the cache was cleared. A slot
    /// that a write which changed nothing removed again ([`Self::write_void`]) leaves no trace,
    /// and the row is still absent.
    fn fill_absent(&self, ticket: RowTicket, id: &str) {
        let mut c = self.lock();
        if c.epoch != ticket.epoch || ticket.generation != 0 || c.slots.contains_key(id) {
            return;
        }
        if c.absent.len() >= ROW_CACHE_MAX {
            c.absent.clear();
        }
        c.absent.insert(id.to_string());
    }

    /// Stores `row` as read with `ticket`, unless a write started, ended or is in flight since
    /// (or the cache was cleared).
    fn fill(&self, ticket: RowTicket, row: &Arc<BountyRow>) {
        self.fill_slot(ticket, &row.id, |slot| slot.row = Some(row.clone()));
    }

    /// The cached ranking of `id`, or the ticket a read from the database fills it with.
    fn get_ranking(&self, id: &str) -> std::result::Result<Arc<StoredRanking>, RowTicket> {
        self.get_slot(id, |slot| slot.ranking.clone())
    }

    /// Stores the ranking of `id` as read with `ticket` (the rules of [`Self::fill`]).
    fn fill_ranking(&self, ticket: RowTicket, id: &str, ranking: &Arc<StoredRanking>) {
        self.fill_slot(ticket, id, |slot| slot.ranking = Some(ranking.clone()));
    }

    /// Runs `put` on the slot of `id` if nothing moved since `ticket` was taken.
    fn fill_slot(&self, ticket: RowTicket, id: &str, put: impl FnOnce(&mut RowSlot)) {
        let mut c = self.lock();
        if c.epoch != ticket.epoch {
            return;
        }
        let (generation, writing) = c.slots.get(id).map_or((0, 0), |s| (s.generation, s.writing));
        if generation != ticket.generation || writing > 0 {
            return;
        }
        if c.slots.len() >= ROW_CACHE_MAX && !c.slots.contains_key(id) {
            c.clear();
            return;
        }
        put(c.slots.entry(id.to_string()).or_default());
    }

    /// A write to `id` is about to start: reads miss until [`Self::write_end`]. Returns the
    /// row's generation while this write is in flight. A write of the ranking drops it too.
    fn write_begin(&self, id: &str, ranking: bool) -> u64 {
        let mut c = self.lock();
        if c.slots.len() >= ROW_CACHE_MAX && !c.slots.contains_key(id) {
            c.clear();
        }
        c.absent.remove(id);
        let slot = c.slots.entry(id.to_string()).or_default();
        slot.writing += 1;
        slot.generation += 1;
        slot.row = None;
        if ranking {
            slot.ranking = None;
        }
        slot.generation
    }

    /// The write to `id` that began at generation `began` changed nothing in the database. A
    /// slot this write created, untouched by any other write, is removed (a read that started
    /// before it may still fill it: what it read is still the database's state); otherwise the
    /// write ends as any other.
    fn write_void(&self, id: &str, began: u64) {
        let mut c = self.lock();
        let Some(slot) = c.slots.get(id) else { return };
        // Generation 1 and still this write's: the slot is new and no other write touched it.
        let created_here = began == 1 && slot.generation == began && slot.writing == 1;
        if created_here && slot.row.is_none() && slot.ranking.is_none() {
            c.slots.remove(id);
        } else {
            drop(c);
            self.write_end(id, began, None, None);
        }
    }

    /// The write to `id` that began at generation `began` committed (or failed: the next read
    /// decides). `fresh` is the row (and the ranking, if the write set it) as the write left
    /// them (`RETURNING`): cached only if no other write to the row began or ended meanwhile,
    /// so they are its last committed state.
    fn write_end(
        &self,
        id: &str,
        began: u64,
        fresh: Option<Arc<BountyRow>>,
        ranking: Option<Arc<StoredRanking>>,
    ) {
        let mut c = self.lock();
        let slot = c.slots.entry(id.to_string()).or_default();
        let alone = slot.writing == 1 && slot.generation == began;
        slot.writing = slot.writing.saturating_sub(1);
        slot.generation += 1;
        slot.row = fresh.filter(|_| alone);
        if let Some(r) = ranking.filter(|_| alone) {
            slot.ranking = Some(r);
        }
    }
}

/// Ends a write to a cached row when dropped.
struct RowWriteGuard<'a> {
    cache: Option<&'a RowCache>,
    id: &'a str,
    began: u64,
    /// The committed row, when the write returned it.
    fresh: Option<Arc<BountyRow>>,
    /// The committed ranking, when the write set it.
    ranking: Option<Arc<StoredRanking>>,
}

impl RowWriteGuard<'_> {
    /// The write changed nothing: its mark is taken back without a trace when nothing else
    /// touched the row meanwhile (see [`RowCache::write_void`]).
    fn void(&mut self) {
        if let Some(cache) = self.cache.take() {
            cache.write_void(self.id, self.began);
        }
    }

    /// The write committed and left the row as `rows` say (`UPDATE … RETURNING *`: one row,
    /// or none when the update matched nothing).
    fn committed(&mut self, rows: &[sqlx::any::AnyRow]) {
        if self.cache.is_some() {
            self.fresh = match rows {
                [r] => MarketStore::row(r).ok().map(Arc::new),
                _ => None,
            };
        }
    }
}

impl Drop for RowWriteGuard<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache {
            cache.write_end(self.id, self.began, self.fresh.take(), self.ranking.take());
        }
    }
}

impl RowCacheInner {
    /// What `pick` takes from the slot of `id` while no write to it is in flight, or the
    /// ticket a read from the database fills it with.
    fn pick<T>(
        &self,
        id: &str,
        pick: impl FnOnce(&RowSlot) -> Option<T>,
    ) -> std::result::Result<T, RowTicket> {
        let Some(slot) = self.slots.get(id) else {
            return Err(RowTicket { epoch: self.epoch, generation: 0 });
        };
        match pick(slot) {
            Some(v) if slot.writing == 0 => Ok(v),
            _ => Err(RowTicket { epoch: self.epoch, generation: slot.generation }),
        }
    }

    /// Drops every row, keeping only the marks of writes in flight; tickets from before are void.
    fn clear(&mut self) {
        self.slots.retain(|_, s| s.writing > 0);
        self.slots.values_mut().for_each(|s| {
            s.row = None;
            s.ranking = None;
        });
        self.epoch += 1;
    }
}

/// Agents per outcome query (one bound parameter each).
const OUTCOME_AGENTS_PER_QUERY: usize = 500;

fn now_ms() -> i64 {
    reef_wire::unix_now_ms() as i64
}

fn to_json(v: Option<String>) -> Option<serde_json::Value> {
    v.and_then(|s| serde_json::from_str(&s).ok())
}

impl MarketStore {
    /// Connects to the node's database (`sqlite://…` or `postgres://…`) and migrates.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let url = if !postgres
            && url.starts_with("sqlite:")
            && !url.contains('?')
            && !url.contains(":memory:")
        {
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        // SQLite: one connection (statements are short and the writes serialize anyway; a
        // second connection's commits would empty this one's page cache; see the IoA store).
        // No method holds a transaction while it waits for another statement of the pool.
        let mut opts = AnyPoolOptions::new().max_connections(if postgres { 8 } else { 1 });
        if !postgres {
            // Lock waits in microseconds: the node's other connections write to the same file.
            // secure_delete: erased task data is overwritten in the file, not just unlinked.
            let init = reef_indexer::sqlite::connection_init(10_000, "PRAGMA secure_delete = ON;");
            opts = opts.after_connect(move |conn, _| {
                let init = init.clone();
                Box::pin(async move {
                    // WAL + synchronous=NORMAL, as the IoA store: a commit survives the node
                    // being killed (kill -9; the WAL is in the OS cache) but skips the fsync,
                    // which capped bid intake at the disk's flush rate. An OS crash or power
                    // loss can lose the last commits; the chain stays the source of truth and
                    // the work loop reconciles with it on restart.
                    sqlx::raw_sql(sqlx::AssertSqlSafe(init)).execute(conn).await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(&url).await?;
        let rows = (!postgres).then(Arc::default);
        let logs = (!postgres).then(Arc::default);
        let bids = BidWriter::spawn(pool.clone(), logs.clone());
        let me = Self {
            pool,
            postgres,
            rows,
            log_watchers: Arc::default(),
            bids,
            logs,
            full: Arc::default(),
        };
        me.migrate().await?;
        Ok(me)
    }

    /// The database pool (for the tables of other features, e.g. A2A tasks).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether the database is Postgres (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    async fn migrate(&self) -> Result<()> {
        let list =
            reef_indexer::migrate::for_backend(MIGRATIONS, MIGRATIONS_BY_BACKEND, self.postgres);
        let m = reef_indexer::migrate::Migrations {
            table: "market_migrations",
            applied_at: false,
            lock_key: 7262332,
            list: &list,
        };
        reef_indexer::migrate::run(&self.pool, self.postgres, m).await.map_err(Into::into)
    }

    /// Inserts a new bounty; false if the id exists already (idempotent posting).
    pub async fn insert_bounty(
        &self,
        id: &str,
        poster: Address,
        spec: &serde_json::Value,
        bid_close_at: u64,
    ) -> Result<bool> {
        self.insert_bounty_in(id, poster, spec, bid_close_at, Phase::Bidding, 0).await
    }

    /// Inserts a new bounty in `phase`; false if the id exists already or, with `cap` > 0,
    /// when `cap` bounties are in their bid window (admission control, checked in the same
    /// statement). The inserted row is cached (`RETURNING *`).
    pub async fn insert_bounty_in(
        &self,
        id: &str,
        poster: Address,
        spec: &serde_json::Value,
        bid_close_at: u64,
        phase: Phase,
        cap: u64,
    ) -> Result<bool> {
        let mut writing = self.writing(id);
        let now = now_ms();
        let rows = sqlx::query(
            "INSERT INTO market_bounties (id, poster, state, spec, bid_close_at, cursor, created_at, updated_at) \
             SELECT $1, $2, $6, $3, $4, 0, $5, $5 \
             WHERE $7 = 0 OR (SELECT COUNT(*) FROM market_bounties WHERE state = 'bidding') < $7 \
             ON CONFLICT (id) DO NOTHING RETURNING *",
        )
        .bind(id)
        .bind(poster.to_string())
        .bind(spec.to_string())
        .bind(bid_close_at as i64)
        .bind(now)
        .bind(phase.as_str())
        .bind(i64::try_from(cap).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            // Nothing was written (refused, or already there): the cache forgets the attempt,
            // so refused posts under overload do not crowd the cached rows out.
            writing.void();
        } else {
            writing.committed(&rows);
        }
        Ok(rows.len() == 1)
    }

    fn row(r: &sqlx::any::AnyRow) -> Result<BountyRow> {
        let state: String = r.try_get("state")?;
        let spec: String = r.try_get("spec")?;
        Ok(BountyRow {
            id: BountyKey::from_db(r.try_get("id")?)?,
            poster: address_of(&r.try_get::<String, _>("poster")?)?,
            phase: Phase::parse(&state)?,
            spec: serde_json::from_str(&spec).map_err(|e| MarketError::Internal(e.to_string()))?,
            bid_close_at: r.try_get::<i64, _>("bid_close_at")? as u64,
            bid_close_ms: r.try_get::<i64, _>("bid_close_ms")? as u64,
            winner: r
                .try_get::<Option<String>, _>("winner")?
                .as_deref()
                .map(address_of)
                .transpose()?,
            award_expiry: r.try_get::<i64, _>("award_expiry")?.max(0) as u64,
            cfp_group: r.try_get("cfp_group")?,
            work_group: r.try_get("work_group")?,
            cursor: r.try_get::<i64, _>("cursor")? as u64,
            verdict: to_json(r.try_get("verdict")?),
            awarded_at: r.try_get::<Option<i64>, _>("awarded_at")?.map(|v| v as u64),
            note: r.try_get("note")?,
            created_ms: r.try_get::<i64, _>("created_at")? as u64,
        })
    }

    /// One bounty.
    pub async fn bounty(&self, id: &str) -> Result<Option<Arc<BountyRow>>> {
        let ticket = match self.rows.as_ref().map(|c| c.get_row(id)) {
            Some(Ok(row)) => return Ok(row),
            Some(Err(ticket)) => Some(ticket),
            None => None,
        };
        let r = sqlx::query("SELECT * FROM market_bounties WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let row = r.as_ref().map(Self::row).transpose()?.map(Arc::new);
        match (&self.rows, ticket, &row) {
            (Some(cache), Some(ticket), Some(row)) => cache.fill(ticket, row),
            (Some(cache), Some(ticket), None) => cache.fill_absent(ticket, id),
            _ => {}
        }
        Ok(row)
    }

    /// Before a write to `id`'s row: reads go to the database until the guard is dropped
    /// (after the write committed or failed, or its future was dropped mid-way).
    fn writing<'a>(&'a self, id: &'a str) -> RowWriteGuard<'a> {
        self.writing_with(id, false)
    }

    /// [`Self::writing`] for a write that may also set the ranking (`ranking`: true).
    fn writing_with<'a>(&'a self, id: &'a str, ranking: bool) -> RowWriteGuard<'a> {
        let began = self.rows.as_ref().map_or(0, |cache| cache.write_begin(id, ranking));
        RowWriteGuard { cache: self.rows.as_deref(), id, began, fresh: None, ranking: None }
    }

    /// Ids of the bounties not yet final (the node's work list, also after a restart).
    pub async fn active_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM market_bounties WHERE state NOT IN ('settled', 'failed') ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
    }

    /// Ended bounties (settled or failed) whose task data is still stored, with the unix ms of
    /// their last update (when they ended, or later), oldest first (at most `limit`).
    pub async fn ended_unerased(&self, limit: i64) -> Result<Vec<(BountyRow, u64)>> {
        let rows = sqlx::query(
            "SELECT * FROM market_bounties WHERE state IN ('settled', 'failed') AND erased_at IS NULL \
             ORDER BY updated_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((Self::row(r)?, r.try_get::<i64, _>("updated_at")?.max(0) as u64)))
            .collect()
    }

    /// Assigned bounties whose input is still stored and whose terms forbid passing it on
    /// (the guard a restarted node puts back).
    pub async fn protected_assignments(&self) -> Result<Vec<BountyRow>> {
        let rows = sqlx::query(
            "SELECT * FROM market_bounties WHERE erased_at IS NULL AND winner IS NOT NULL \
             AND work_group IS NOT NULL AND spec LIKE $1",
        )
        .bind("%\"onward_sharing\":false%")
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::row).collect()
    }

    /// Replaces a bounty's spec and verdict with their erased forms (no task input, no result)
    /// and blanks its contest entries' results; marks it erased.
    pub async fn erase_task_data(
        &self,
        id: &str,
        spec: &serde_json::Value,
        verdict: Option<&serde_json::Value>,
    ) -> Result<()> {
        let update = sqlx::query(
            "UPDATE market_bounties SET spec = $1, verdict = $2, erased_at = $3 WHERE id = $4 RETURNING *",
        )
        .bind(spec.to_string())
        .bind(verdict.map(|v| v.to_string()))
        .bind(now_ms())
        .bind(id);
        self.update_row(id, update).await?;
        sqlx::query("UPDATE market_entries SET result = 'null' WHERE bounty_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// SQLite: checkpoint and truncate the write-ahead log (see the IoA store's).
    pub async fn checkpoint(&self) -> Result<()> {
        if !self.postgres {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_all(&self.pool).await?;
        }
        Ok(())
    }

    /// Bounties in `phase`, oldest first (at most `limit`).
    pub async fn in_phase(&self, phase: Phase, limit: i64) -> Result<Vec<BountyRow>> {
        let rows = sqlx::query(
            "SELECT * FROM market_bounties WHERE state = $1 ORDER BY created_at LIMIT $2",
        )
        .bind(phase.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::row).collect()
    }

    /// Admission control from memory, before a new bounty's insert: [`Admission::Full`] when
    /// the node was found full within the last [`FULL_MARK_TTL`] and every window closed here
    /// since has been offered to a post already.
    pub fn admission(&self) -> Admission {
        self.full.check()
    }

    /// Admission control refused a bounty with `open` windows open.
    pub fn mark_full(&self, open: u64) {
        self.full.set(open);
    }

    /// A post that checked a lapsed mark ([`Admission::Ask`] `probe`) was admitted: the next
    /// post checks the database too, and if it is admitted as well the mark ends.
    pub fn probe_admitted(&self) {
        self.full.probe_admitted();
    }

    /// How many bounties are in `phase`.
    pub async fn count_in_phase(&self, phase: Phase) -> Result<u64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM market_bounties WHERE state = $1")
            .bind(phase.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get::<i64, _>("n")?.max(0) as u64)
    }

    /// How many bounties are in each phase (every phase listed, zeros included).
    pub async fn count_by_phase(&self) -> Result<Vec<(&'static str, u64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM market_bounties GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<(&'static str, u64)> =
            Phase::ALL.iter().map(|p| (p.as_str(), 0)).collect();
        for r in rows {
            let phase = Phase::parse(&r.try_get::<String, _>("state")?)?;
            let n = r.try_get::<i64, _>("n")?.max(0) as u64;
            if let Some(slot) = out.iter_mut().find(|(name, _)| *name == phase.as_str()) {
                slot.1 = n;
            }
        }
        Ok(out)
    }

    /// All bounties, newest first (bounded).
    pub async fn list(&self, limit: i64) -> Result<Vec<BountyRow>> {
        let rows = sqlx::query("SELECT * FROM market_bounties ORDER BY created_at DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::row).collect()
    }

    /// Moves a bounty to `phase`, only if it is still in `from` (compare-and-set, so two
    /// workers or a restart never act twice). Returns whether it moved.
    pub async fn transition(&self, id: &str, from: Phase, to: Phase, note: &str) -> Result<bool> {
        self.move_row(self.writing(id), id, (from, to, note), None, None).await
    }

    /// [`Self::transition`] that also records when the award was made on-chain (the move to
    /// work), in the same statement.
    pub async fn transition_awarded(
        &self,
        id: &str,
        from: Phase,
        to: Phase,
        note: &str,
        awarded_at: u64,
    ) -> Result<bool> {
        self.move_row(self.writing(id), id, (from, to, note), Some(awarded_at), None).await
    }

    /// One move of a bounty: the state, note and time, and (when given) the award time or
    /// the winner and award expiry, in one statement. `writing` guards the row (and, for a
    /// ranked move, the ranking) from before the caller's first write.
    async fn move_row(
        &self,
        mut writing: RowWriteGuard<'_>,
        id: &str,
        (from, to, note): (Phase, Phase, &str),
        awarded_at: Option<u64>,
        winner: Option<(Address, u64)>,
    ) -> Result<bool> {
        let log = self.log_writing(id);
        // The move and its log line in one statement: the log line is the trigger's
        // (migration 8), written with the row's new state, note and time.
        let at = now_ms();
        let rows = sqlx::query(
            "UPDATE market_bounties SET state = $1, note = $2, updated_at = $3, \
             awarded_at = COALESCE($6, awarded_at), winner = COALESCE($7, winner), \
             award_expiry = COALESCE($8, award_expiry) WHERE id = $4 AND state = $5 RETURNING *",
        )
        .bind(to.as_str())
        .bind(note)
        .bind(at)
        .bind(id)
        .bind(from.as_str())
        .bind(awarded_at.map(|t| i64::try_from(t).unwrap_or(i64::MAX)))
        .bind(winner.map(|(w, _)| w.to_string()))
        .bind(winner.map(|(_, e)| i64::try_from(e).unwrap_or(i64::MAX)))
        .fetch_all(&self.pool)
        .await?;
        let moved = rows.len() == 1;
        if moved && from == Phase::Bidding {
            self.full.window_closed();
        }
        let line =
            moved.then(|| serde_json::json!({ "at_ms": at, "event": to.as_str(), "detail": note }));
        log.done(line, !moved);
        if moved && to == Phase::Settled {
            crate::metrics::inc(&crate::metrics::METRICS.settlements);
        }
        writing.committed(&rows);
        // The row is cached before followers wake: a view woken by the new line reads it
        // from the cache, not from the database behind a write still marked in flight.
        drop(writing);
        if moved {
            tracing::info!(bounty = %id, event = to.as_str(), detail = note, "bounty {}", to.as_str());
            self.log_watchers.appended(id);
        }
        Ok(moved)
    }

    /// A closed window's ranking with its winner: the ranking (in its own row), then the
    /// move to awaiting the award with the winner and when the winning bid expires in one
    /// statement. No transaction is needed: a crash between the two leaves the bounty
    /// bidding, and closing it again writes the ranking again. `Ok(false)`: the bounty was
    /// no longer in `from` (nothing but the ranking was written).
    pub async fn rank_and_move(
        &self,
        id: &str,
        ranking: Ranking,
        (winner, award_expiry): (Address, u64),
        (from, to, note): (Phase, Phase, &str),
    ) -> Result<bool> {
        let mut writing = self.writing_with(id, true);
        let ranking = self.upsert_ranking(id, ranking).await?;
        if writing.cache.is_some() {
            writing.ranking = Some(Arc::new(ranking));
        }
        self.move_row(writing, id, (from, to, note), None, Some((winner, award_expiry))).await
    }

    /// Writes the ranking's row; returns the ranking with the JSON it stored.
    async fn upsert_ranking(&self, id: &str, ranking: Ranking) -> Result<StoredRanking> {
        let ranking = StoredRanking::new(&ranking)
            .map_err(|e| MarketError::Internal(format!("ranking: {e}")))?;
        sqlx::query(
            "INSERT INTO market_rankings (bounty_id, ranking) VALUES ($1, $2) \
             ON CONFLICT (bounty_id) DO UPDATE SET ranking = excluded.ranking",
        )
        .bind(id)
        .bind(ranking.json().get())
        .execute(&self.pool)
        .await?;
        Ok(ranking)
    }

    /// Records the ranking (in its own row), the winner and when the winning bid expires.
    pub async fn set_ranking(
        &self,
        id: &str,
        ranking: Ranking,
        winner: Option<Address>,
        award_expiry: u64,
    ) -> Result<()> {
        let mut writing = self.writing_with(id, true);
        // Ranking first, then the row: a crash between them leaves the new ranking with the
        // old winner, which the next close or take-over writes again.
        let ranking = self.upsert_ranking(id, ranking).await?;
        let rows = sqlx::query(
            "UPDATE market_bounties SET winner = $1, award_expiry = $2, updated_at = $3 WHERE id = $4 RETURNING *",
        )
        .bind(winner.map(|w| w.to_string()))
        .bind(i64::try_from(award_expiry).unwrap_or(i64::MAX))
        .bind(now_ms())
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        writing.committed(&rows);
        if writing.cache.is_some() {
            writing.ranking = Some(Arc::new(ranking));
        }
        Ok(())
    }

    /// A bounty's ranking, once its window closed.
    pub async fn ranking(&self, id: &str) -> Result<Option<Arc<StoredRanking>>> {
        let ticket = match self.rows.as_ref().map(|c| c.get_ranking(id)) {
            Some(Ok(r)) => return Ok(Some(r)),
            Some(Err(ticket)) => Some(ticket),
            None => None,
        };
        let r = sqlx::query("SELECT ranking FROM market_rankings WHERE bounty_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let ranking = match r {
            Some(r) => {
                let text: String = r.try_get("ranking")?;
                // Written again rather than kept as read: the shown form is today's, also for
                // a ranking stored by an older node.
                let bad =
                    |e: serde_json::Error| MarketError::Internal(format!("stored ranking: {e}"));
                let bids: Ranking = serde_json::from_str(&text).map_err(bad)?;
                Some(Arc::new(StoredRanking::new(&bids).map_err(bad)?))
            }
            None => None,
        };
        if let (Some(cache), Some(ticket), Some(r)) = (&self.rows, ticket, &ranking) {
            cache.fill_ranking(ticket, id, r);
        }
        Ok(ranking)
    }

    /// Records a bounty's verdict, with its outcome for ranking (accepted, rejected, or none
    /// while `verdict` has no boolean `accept`, e.g. still with the evaluators).
    pub async fn set_verdict(&self, id: &str, verdict: &serde_json::Value) -> Result<()> {
        let outcome = verdict["accept"].as_bool().map(i64::from);
        let update = sqlx::query(
            "UPDATE market_bounties SET verdict = $1, outcome = $2, updated_at = $3 WHERE id = $4 RETURNING *",
        )
        .bind(verdict.to_string())
        .bind(outcome)
        .bind(now_ms())
        .bind(id);
        self.update_row(id, update).await.map(drop)
    }

    /// Records the winner (the provider the award names on-chain).
    pub async fn set_winner(&self, id: &str, winner: Address) -> Result<()> {
        self.set_field(id, "winner", &winner.to_string()).await
    }

    /// Sets a text column (`cfp_group`, `work_group`; `winner` through [`Self::set_winner`]).
    pub async fn set_field(&self, id: &str, field: &str, value: &str) -> Result<()> {
        let col = match field {
            "cfp_group" | "work_group" | "winner" => field,
            other => {
                return Err(MarketError::Internal(format!("not a settable column: {other}")));
            }
        };
        let sql = format!(
            "UPDATE market_bounties SET {col} = $1, updated_at = $2 WHERE id = $3 RETURNING *"
        );
        let update = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).bind(now_ms()).bind(id);
        self.update_row(id, update).await.map(drop)
    }

    /// Sets the exact end of a bounty's bid window (and `bid_close_at`, the whole second after
    /// it) while it is still bidding: the window is counted from the call for proposals.
    pub async fn set_close_ms(&self, id: &str, close_ms: u64) -> Result<()> {
        let update = sqlx::query("UPDATE market_bounties SET bid_close_at = $1, bid_close_ms = $2, updated_at = $3 WHERE id = $4 AND state = 'bidding' RETURNING *")
            .bind(close_ms.div_ceil(1000) as i64)
            .bind(close_ms as i64)
            .bind(now_ms())
            .bind(id);
        self.update_row(id, update).await.map(drop)
    }

    /// Records the call for proposals' group and, for a sealed window, when it closes
    /// (`close_ms`, unix ms; only while the bounty is still bidding), in one statement.
    pub async fn set_announced(&self, id: &str, group: &str, close_ms: Option<u64>) -> Result<()> {
        let Some(close_ms) = close_ms else { return self.set_field(id, "cfp_group", group).await };
        let update = sqlx::query("UPDATE market_bounties SET cfp_group = $1, bid_close_at = $2, bid_close_ms = $3, updated_at = $4 WHERE id = $5 AND state = 'bidding' RETURNING *")
            .bind(group.to_string())
            .bind(close_ms.div_ceil(1000) as i64)
            .bind(close_ms as i64)
            .bind(now_ms())
            .bind(id);
        self.update_row(id, update).await.map(drop)
    }

    /// Claims a one-time side effect (announcing, opening the work group) for this process:
    /// sets `field` to a `claimed:<ms>:<node id>` marker only if it is empty, holds a claim
    /// older than `stale_ms` (a node of a mesh that died between claim and completion), or
    /// holds a claim `me`'s node made before this process started (its previous life, killed
    /// mid-step: no need to wait out `stale_ms` after a restart). Safe across nodes sharing
    /// the database.
    pub async fn claim(&self, id: &str, field: &str, stale_ms: i64, me: &Claimant) -> Result<bool> {
        let col = match field {
            "cfp_group" | "work_group" => field,
            other => return Err(MarketError::Internal(format!("not a claimable column: {other}"))),
        };
        let now = now_ms();
        let marker = format!("claimed:{now:013}:{}", me.node);
        // Markers compare as text: the same prefix and 13-digit millisecond stamps, so a
        // marker sorts below `claimed:<t>` exactly when its stamp is below t. The node id
        // starts at character 23 ("claimed:" + 13 digits + ":").
        let sql = format!(
            "UPDATE market_bounties SET {col} = $1 WHERE id = $2 AND ({col} IS NULL OR ({col} LIKE 'claimed:%' AND \
             ({col} < $3 OR (substr({col}, 23) = $4 AND {col} < $5)))) RETURNING *"
        );
        let update = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&marker)
            .bind(id)
            .bind(format!("claimed:{:013}", now - stale_ms))
            .bind(&me.node)
            .bind(format!("claimed:{:013}", me.since_ms));
        Ok(self.update_row(id, update).await? == 1)
    }

    /// The award changed hands on-chain (take-over): records the new winner and its due time
    /// and drops the old work group, so the task is assigned afresh to the new provider.
    pub async fn hand_over(&self, id: &str, winner: Address, due: u64) -> Result<()> {
        let update = sqlx::query(
            "UPDATE market_bounties SET winner = $1, awarded_at = $2, work_group = NULL, cursor = 0, \
             updated_at = $3 WHERE id = $4 RETURNING *",
        )
        .bind(winner.to_string())
        .bind(due as i64)
        .bind(now_ms())
        .bind(id);
        self.update_row(id, update).await.map(drop)
    }

    /// Advances the work-group cursor.
    pub async fn set_cursor(&self, id: &str, cursor: u64) -> Result<()> {
        self.set_number(
            id,
            "UPDATE market_bounties SET cursor = $1 WHERE id = $2 RETURNING *",
            cursor,
        )
        .await
    }

    /// Runs `update` (one integer column, `$1`, of the row `$2`; `RETURNING *`).
    async fn set_number(&self, id: &str, update: &'static str, value: u64) -> Result<()> {
        let update = sqlx::query(update).bind(i64::try_from(value).unwrap_or(i64::MAX)).bind(id);
        self.update_row(id, update).await.map(drop)
    }

    /// Runs `update`, an `UPDATE … RETURNING *` of `id`'s row alone, as one write to the row
    /// cache: reads of the row go to the database while it runs, and the row it returns is
    /// cached. Returns how many rows it changed (0 or 1).
    async fn update_row<'q, A>(
        &self,
        id: &str,
        update: sqlx::query::Query<'q, sqlx::Any, A>,
    ) -> Result<usize>
    where
        A: sqlx::IntoArguments<sqlx::Any> + 'q,
    {
        let mut writing = self.writing(id);
        let rows = update.fetch_all(&self.pool).await?;
        writing.committed(&rows);
        Ok(rows.len())
    }

    /// Stores (or replaces, within the window) a bidder's sealed bid, unless the bounty holds
    /// `capacity` bids already and none of them is this bidder's: then false. Bids queued at
    /// the same time are written together by the bid writer ([`BidWriter`]); the answer comes
    /// after their commit.
    pub async fn upsert_bid(
        &self,
        bounty_id: &str,
        bidder: &str,
        bid: &SignedBid,
        eta_secs: u64,
        capacity: usize,
    ) -> Result<bool> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = BidJob {
            bounty_id: bounty_id.to_string(),
            bidder: bidder.to_string(),
            bid: serde_json::to_string(bid)
                .map_err(|e| MarketError::Internal(format!("bid: {e}")))?,
            eta_secs: i64::try_from(eta_secs).unwrap_or(i64::MAX),
            capacity,
            reply,
        };
        let gone = || MarketError::Internal("the bid writer stopped".into());
        self.bids.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Number of bids for a bounty.
    pub async fn bid_count(&self, bounty_id: &str) -> Result<u64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM market_bids WHERE bounty_id = $1")
            .bind(bounty_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get::<i64, _>("n")? as u64)
    }

    /// All bids of a bounty.
    pub async fn bids(&self, bounty_id: &str) -> Result<Vec<BidRow>> {
        let rows = sqlx::query(
            "SELECT bidder, bid, eta_secs FROM market_bids WHERE bounty_id = $1 ORDER BY bidder",
        )
        .bind(bounty_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let bid: String = r.try_get("bid")?;
                Ok(BidRow {
                    bidder: r.try_get("bidder")?,
                    bid: serde_json::from_str(&bid)
                        .map_err(|e| MarketError::Internal(e.to_string()))?,
                    eta_secs: r.try_get::<i64, _>("eta_secs")? as u64,
                })
            })
            .collect()
    }

    /// Verified outcomes of an agent's past wins on this node: (accepted, rejected).
    pub async fn outcomes(&self, agent: Address) -> Result<(u64, u64)> {
        Ok(self.outcomes_of(&[agent]).await?.get(&agent).copied().unwrap_or((0, 0)))
    }

    /// (accepted, rejected) for each of `agents`, in a few queries:
    /// ranking a window reads this once for all its bidders. Only those agents' outcomes are
    /// counted, from the (winner, outcome) index: neither the node's history nor the stored
    /// results are read. A missed ETA counts as a rejection; a verdict still with the
    /// evaluators counts as neither.
    pub async fn outcomes_of(&self, agents: &[Address]) -> Result<HashMap<Address, (u64, u64)>> {
        let mut acc: HashMap<Address, (u64, u64)> = HashMap::new();
        for (k, chunk) in agents.chunks(OUTCOME_AGENTS_PER_QUERY).enumerate() {
            // `eta_missed` details start with the late provider's address (the winner column
            // may already name whoever took the job over). Take-overs are rare; the index on
            // `event` reads just those lines, with the first chunk's outcomes (outcome -1).
            let missed = if k == 0 {
                " UNION ALL SELECT detail AS winner, -1 AS outcome, 1 AS n FROM market_log \
                 WHERE event = 'eta_missed'"
            } else {
                ""
            };
            let sql = format!(
                "SELECT winner, outcome, COUNT(*) AS n FROM market_bounties \
                 WHERE winner IN ({}) AND outcome IS NOT NULL GROUP BY winner, outcome{missed}",
                crate::ioa::store::placeholders(1, chunk.len())
            );
            // Only placeholders are formatted in; the addresses are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(a.to_string());
            }
            for r in q.fetch_all(&self.pool).await? {
                let n = r.try_get::<i64, _>("n")?.max(0) as u64;
                let who: String = r.try_get("winner")?;
                match r.try_get::<i64, _>("outcome")? {
                    -1 => {
                        if let Some(agent) =
                            who.split_whitespace().next().and_then(|a| a.parse::<Address>().ok())
                            && agents.contains(&agent)
                        {
                            acc.entry(agent).or_default().1 += n;
                        }
                    }
                    1 => acc.entry(address_of(&who)?).or_default().0 += n,
                    _ => acc.entry(address_of(&who)?).or_default().1 += n,
                }
            }
        }
        Ok(acc)
    }

    /// Stores a contest entry's result (first write wins: an entry cannot be swapped later).
    pub async fn insert_entry(
        &self,
        bounty_id: &str,
        agent: &str,
        result: &serde_json::Value,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO market_entries (bounty_id, agent, result, received_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (bounty_id, agent) DO NOTHING",
        )
        .bind(bounty_id)
        .bind(agent)
        .bind(result.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Contest entries, earliest first: (agent, result).
    pub async fn entries(&self, bounty_id: &str) -> Result<Vec<(String, serde_json::Value)>> {
        let rows = sqlx::query("SELECT agent, result FROM market_entries WHERE bounty_id = $1 ORDER BY received_at, agent")
            .bind(bounty_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let res: String = r.try_get("result")?;
                Ok((
                    r.try_get("agent")?,
                    serde_json::from_str(&res).map_err(|e| MarketError::Internal(e.to_string()))?,
                ))
            })
            .collect()
    }

    /// Appends to the progress log.
    pub async fn log(&self, bounty_id: &str, event: &str, detail: &str) -> Result<()> {
        let log = self.log_writing(bounty_id);
        let line = append_log(&self.pool, bounty_id, event, detail).await?;
        log.done(Some(line), false);
        tracing::info!(bounty = %bounty_id, event, detail, "bounty {event}");
        self.log_watchers.appended(bounty_id);
        Ok(())
    }

    /// Wake-ups of readers waiting for a bounty's log to grow (appends by this process).
    pub fn log_watchers(&self) -> &LogWatchers {
        &self.log_watchers
    }

    /// Before a write of `id`'s log: the [`LogCache`] ends the write when the guard is done
    /// (or dropped: a write that failed or whose future was dropped drops the entry).
    fn log_writing<'a>(&'a self, id: &'a str) -> LogWriteGuard<'a> {
        if let Some(c) = &self.logs {
            c.write_begin(id);
        }
        LogWriteGuard { cache: self.logs.as_deref(), id, ended: false }
    }

    /// The progress log of a bounty, oldest first.
    pub async fn events(&self, bounty_id: &str) -> Result<Vec<serde_json::Value>> {
        if let Some(Ok((log, _))) = self.logs.as_ref().map(|c| c.get(bounty_id)) {
            return Ok(Vec::clone(&log));
        }
        let rows = sqlx::query(
            "SELECT at_ms, event, detail FROM market_log WHERE bounty_id = $1 ORDER BY at_ms",
        )
        .bind(bounty_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(log_line).collect()
    }

    /// The progress log (oldest first) and the number of bids, in one round trip: what a
    /// bounty's view needs besides the row, read for every answer to a long-polling follower.
    pub async fn events_and_bid_count(
        &self,
        bounty_id: &str,
    ) -> Result<(Vec<serde_json::Value>, u64)> {
        let generation = match self.logs.as_ref().map(|c| c.get(bounty_id)) {
            Some(Ok((log, n))) => return Ok((Vec::clone(&log), n)),
            Some(Err(generation)) => Some(generation),
            None => None,
        };
        // The count travels as the first line (at_ms -1, before any real one).
        let rows = sqlx::query(
            "SELECT -1 AS at_ms, 'bids' AS event, CAST(COUNT(*) AS TEXT) AS detail FROM market_bids \
             WHERE bounty_id = $1 \
             UNION ALL SELECT at_ms, event, detail FROM market_log WHERE bounty_id = $1 ORDER BY at_ms",
        )
        .bind(bounty_id)
        .fetch_all(&self.pool)
        .await?;
        let Some((count, log)) = rows.split_first() else {
            return Err(MarketError::Internal("the bid count row is missing".into()));
        };
        let count: String = count.try_get("detail")?;
        let count = count
            .parse()
            .map_err(|e| MarketError::Internal(format!("bid count {count:?}: {e}")))?;
        let log: Vec<serde_json::Value> = log.iter().map(log_line).collect::<Result<_>>()?;
        if let (Some(c), Some(g)) = (&self.logs, generation) {
            c.fill(bounty_id, g, &log, count);
        }
        Ok((log, count))
    }
}

/// A write of a bounty's log in flight ([`MarketStore::log_writing`]).
struct LogWriteGuard<'a> {
    cache: Option<&'a LogCache>,
    id: &'a str,
    ended: bool,
}

impl LogWriteGuard<'_> {
    /// The write committed `line` (None: no line; `keep`: the cached entry is still right).
    fn done(mut self, line: Option<serde_json::Value>, keep: bool) {
        self.ended = true;
        if let Some(c) = self.cache {
            c.write_end(self.id, line, keep);
        }
    }
}

impl Drop for LogWriteGuard<'_> {
    fn drop(&mut self) {
        if !self.ended
            && let Some(c) = self.cache
        {
            c.write_end(self.id, None, false);
        }
    }
}

fn log_line(r: &sqlx::any::AnyRow) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "at_ms": r.try_get::<i64, _>("at_ms")?,
        "event": r.try_get::<String, _>("event")?,
        "detail": r.try_get::<String, _>("detail")?,
    }))
}

/// One progress-log line, on the pool or inside a transaction.
/// Returns the line as a view shows it.
async fn append_log<'e, E>(
    db: E,
    bounty_id: &str,
    event: &str,
    detail: &str,
) -> Result<serde_json::Value>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let at = now_ms();
    sqlx::query("INSERT INTO market_log (bounty_id, at_ms, event, detail) VALUES ($1, $2, $3, $4)")
        .bind(bounty_id)
        .bind(at)
        .bind(event)
        .bind(detail)
        .execute(db)
        .await?;
    Ok(serde_json::json!({ "at_ms": at, "event": event, "detail": detail }))
}
/// Who takes a claim: this node and when this process of it started.
#[derive(Debug, Clone)]
pub struct Claimant {
    /// The node id (unique within a mesh; one process per node id at a time).
    pub node: String,
    /// When this process started (unix ms): this node's older claims are from a dead process.
    pub since_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::ranking::RankedBid;

    /// Test addresses: a poster, winners, a late agent, its runner-up, a stranger.
    const POSTER: Address = Address::repeat_byte(0x01);
    const W: Address = Address::repeat_byte(0x02);
    const V: Address = Address::repeat_byte(0x03);
    const R: Address = Address::repeat_byte(0x04);
    const AGENT: Address = Address::repeat_byte(0x05);
    const RUNNER_UP: Address = Address::repeat_byte(0x06);
    const OTHER: Address = Address::repeat_byte(0x07);

    /// A (test) signed bid told apart by its nonce.
    fn bid(n: u64) -> SignedBid {
        SignedBid {
            bid: escrow_client::escrow::BidJson {
                bounty_id: alloy::primitives::U256::from(1),
                terms_hash: alloy::primitives::B256::ZERO,
                bidder: alloy::primitives::Address::ZERO,
                amount: "1".into(),
                deadline: 9,
                eta: 0,
                bond: "0".into(),
                nonce: n.to_string(),
            },
            signature: alloy::primitives::Bytes::from(vec![0u8; 65]),
        }
    }

    /// A one-bid ranking told apart by its price.
    fn ranking_priced(price: u64) -> Ranking {
        vec![RankedBid {
            bidder: alloy::primitives::Address::repeat_byte(0x0b),
            price: alloy::primitives::U256::from(price),
            eta_secs: 0,
            score: 1.0,
            components: Vec::new(),
            signed: bid(price),
            failed: false,
        }]
    }

    async fn store() -> MarketStore {
        let dir = std::env::temp_dir().join(format!("reef-market-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        MarketStore::connect(&format!("sqlite://{}/m.db", dir.display())).await.unwrap()
    }

    /// A SQLite database as a node of an older build left it: only the first `applied`
    /// migrations. Returns its directory, URL and a pool on it (close it before connecting).
    async fn database_at_migration(applied: usize) -> (std::path::PathBuf, String, AnyPool) {
        let dir = std::env::temp_dir().join(format!("reef-market-mig-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/m.db", dir.display());
        sqlx::any::install_default_drivers();
        let old = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        let before = reef_indexer::migrate::Migrations {
            table: "market_migrations",
            applied_at: false,
            lock_key: 7262332,
            list: &MIGRATIONS[..applied],
        };
        reef_indexer::migrate::run(&old, false, before).await.unwrap();
        (dir, url, old)
    }

    /// A node upgraded while a bounty awaited its award: the ranking stored in the bounty's
    /// row before migration 5 moves to its own table and is still read.
    #[tokio::test]
    async fn a_ranking_from_before_migration_5_moves_to_its_own_table() {
        let (dir, url, old) = database_at_migration(4).await;
        sqlx::query(
            "INSERT INTO market_bounties (id, poster, state, spec, bid_close_at, cursor, created_at, updated_at, ranking) \
             VALUES ('0x01', $2, 'awaiting_award', '{}', 1, 0, 1, 1, $1)",
        )
        .bind(serde_json::to_string(&ranking_priced(3)).unwrap())
        .bind(POSTER.to_string())
        .execute(&old)
        .await
        .unwrap();
        old.close().await;
        let s = MarketStore::connect(&url).await.unwrap();
        let row = s.bounty("0x01").await.unwrap().unwrap();
        assert_eq!((row.phase, row.award_expiry), (Phase::AwaitingAward, 0));
        let ranking = s.ranking("0x01").await.unwrap().unwrap();
        assert_eq!(ranking.bids().unwrap(), ranking_priced(3));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Verdicts stored before migration 6 (which has no outcome column) still count: the
    /// migration reads each one's `accept`, and a pending one counts as neither.
    #[tokio::test]
    async fn verdicts_from_before_migration_6_still_count() {
        let (dir, url, old) = database_at_migration(5).await;
        // As the node wrote them: serde_json objects, keys sorted.
        let verdicts = [
            ("0x01", serde_json::json!({"accept": true, "reason": "ok", "result": [1, 2]})),
            ("0x02", serde_json::json!({"accept": true, "reason": "ok", "result": "x"})),
            ("0x03", serde_json::json!({"accept": false, "reason": "wrong", "result": [2, 1]})),
            ("0x04", serde_json::json!({"pending": true, "quorum": 2, "result": [1]})),
        ];
        for (id, v) in &verdicts {
            sqlx::query(
                "INSERT INTO market_bounties (id, poster, state, spec, bid_close_at, cursor, created_at, updated_at, winner, verdict) \
                 VALUES ($1, $3, 'settled', '{}', 1, 0, 1, 1, $4, $2)",
            )
            .bind(*id)
            .bind(v.to_string())
            .bind(POSTER.to_string())
            .bind(AGENT.to_string())
            .execute(&old)
            .await
            .unwrap();
        }
        old.close().await;
        let s = MarketStore::connect(&url).await.unwrap();
        assert_eq!(s.outcomes(AGENT).await.unwrap(), (2, 1));
        // The pending one, decided after the upgrade, counts from then on.
        s.set_verdict("0x04", &serde_json::json!({"accept": false, "reason": "quorum"}))
            .await
            .unwrap();
        assert_eq!(s.outcomes(AGENT).await.unwrap(), (2, 2));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn transitions_are_compare_and_set_and_posting_is_idempotent() {
        let s = store().await;
        let spec = serde_json::json!({"x": 1});
        assert!(s.insert_bounty("0x01", POSTER, &spec, 10).await.unwrap());
        assert!(!s.insert_bounty("0x01", POSTER, &spec, 10).await.unwrap());
        assert!(
            s.transition("0x01", Phase::Bidding, Phase::AwaitingAward, "closed").await.unwrap()
        );
        // A second worker (or a restarted node) cannot repeat the same transition.
        assert!(
            !s.transition("0x01", Phase::Bidding, Phase::AwaitingAward, "again").await.unwrap()
        );
        assert_eq!(s.bounty("0x01").await.unwrap().unwrap().phase, Phase::AwaitingAward);
        assert_eq!(s.active_ids().await.unwrap().len(), 1);
        assert!(s.transition("0x01", Phase::AwaitingAward, Phase::Failed, "x").await.unwrap());
        assert!(s.active_ids().await.unwrap().is_empty());
    }

    /// A move writes exactly its one log line (the trigger of migration 8), read back from the
    /// database itself; a refused move and the other writes of the row write none.
    async fn check_transition_log(s: &MarketStore) {
        let stored = |id: &'static str| async move {
            sqlx::query("SELECT event, detail FROM market_log WHERE bounty_id = $1 ORDER BY at_ms")
                .bind(id)
                .fetch_all(&s.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<String, _>("event"), r.get::<String, _>("detail")))
                .collect::<Vec<_>>()
        };
        s.insert_bounty("0x0c", POSTER, &serde_json::json!({}), 1).await.unwrap();
        s.set_close_ms("0x0c", 5_000).await.unwrap();
        s.set_winner("0x0c", W).await.unwrap();
        assert!(stored("0x0c").await.is_empty(), "only moves write lines");
        assert!(s.transition("0x0c", Phase::Bidding, Phase::AwaitingAward, "1 bid").await.unwrap());
        assert!(!s.transition("0x0c", Phase::Bidding, Phase::Failed, "late").await.unwrap());
        assert!(
            s.transition_awarded("0x0c", Phase::AwaitingAward, Phase::Working, "awarded", 7)
                .await
                .unwrap()
        );
        // Sorted: two moves in the same millisecond have no order by time.
        let mut lines = stored("0x0c").await;
        lines.sort();
        assert_eq!(
            lines,
            [("awaiting_award".into(), "1 bid".into()), ("working".into(), "awarded".into())]
        );
        assert_eq!(s.bounty("0x0c").await.unwrap().unwrap().awarded_at, Some(7));
        let lines = s.events("0x0c").await.unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
    }

    #[tokio::test]
    async fn a_move_writes_its_log_line_in_the_same_statement() {
        check_transition_log(&store().await).await;
    }

    async fn check_outcomes(s: &MarketStore) {
        let spec = serde_json::json!({});
        for (id, accept) in [("0x01", true), ("0x02", false)] {
            s.insert_bounty(id, POSTER, &spec, 1).await.unwrap();
            s.set_winner(id, AGENT).await.unwrap();
            s.set_verdict(id, &serde_json::json!({"accept": accept, "result": [1, 2]}))
                .await
                .unwrap();
        }
        // 0x03 was taken over: the miss counts against the late agent named in the log, not
        // against the runner-up who holds the job now.
        s.insert_bounty("0x03", POSTER, &spec, 1).await.unwrap();
        s.set_winner("0x03", RUNNER_UP).await.unwrap();
        s.log("0x03", "eta_missed", &format!("{AGENT} promised delivery by 1700000000"))
            .await
            .unwrap();
        // 0x04 is still with its evaluators: neither an acceptance nor a rejection yet.
        s.insert_bounty("0x04", POSTER, &spec, 1).await.unwrap();
        s.set_winner("0x04", AGENT).await.unwrap();
        s.set_verdict("0x04", &serde_json::json!({"pending": true, "result": [3]})).await.unwrap();
        assert_eq!(s.outcomes(AGENT).await.unwrap(), (1, 2));
        assert_eq!(
            s.bounty("0x04").await.unwrap().unwrap().verdict,
            Some(serde_json::json!({"pending": true, "result": [3]})),
            "the verdict itself is kept whole"
        );
        assert_eq!(s.outcomes(RUNNER_UP).await.unwrap(), (0, 0));
        assert_eq!(s.outcomes(OTHER).await.unwrap(), (0, 0));
        // Asked for several at once, each gets its own; agents not asked for are left out.
        let many: Vec<Address> = (0..1_200u64)
            .map(|i| Address::left_padding_from(&(i + 0x1000).to_be_bytes()))
            .collect();
        let mut ask = many.clone();
        ask.extend([AGENT, RUNNER_UP]);
        let got = s.outcomes_of(&ask).await.unwrap();
        assert_eq!(got.get(&AGENT), Some(&(1, 2)));
        assert_eq!(got.get(&RUNNER_UP), None);
        let only_runner_up = s.outcomes_of(&[RUNNER_UP]).await.unwrap();
        assert!(only_runner_up.is_empty(), "{only_runner_up:?}");
    }

    #[tokio::test]
    async fn outcomes_count_verdicts_and_missed_etas() {
        check_outcomes(&store().await).await;
    }

    /// A closed window's ranking and its move with the winner: the row, the ranking and the
    /// log line are all there after it; once the bounty left bidding, a late close moves
    /// nothing and names no winner.
    async fn check_rank_and_move(s: &MarketStore) {
        s.insert_bounty("0x0d", POSTER, &serde_json::json!({}), 1).await.unwrap();
        let moved = s
            .rank_and_move(
                "0x0d",
                ranking_priced(5),
                (W, 4321),
                (Phase::Bidding, Phase::AwaitingAward, "1 bids; winner w"),
            )
            .await
            .unwrap();
        assert!(moved);
        let row = s.bounty("0x0d").await.unwrap().unwrap();
        assert_eq!(
            (row.phase, row.winner, row.award_expiry),
            (Phase::AwaitingAward, Some(W), 4321)
        );
        assert_eq!(s.ranking("0x0d").await.unwrap().unwrap().bids().unwrap(), ranking_priced(5));
        let lines = s.events("0x0d").await.unwrap();
        assert_eq!(lines.last().unwrap()["detail"], "1 bids; winner w", "{lines:?}");
        let late = s
            .rank_and_move(
                "0x0d",
                ranking_priced(6),
                (R, 1),
                (Phase::Bidding, Phase::AwaitingAward, "late"),
            )
            .await
            .unwrap();
        assert!(!late);
        let row = s.bounty("0x0d").await.unwrap().unwrap();
        assert_eq!((row.winner, row.award_expiry), (Some(W), 4321), "a late close names no winner");
        assert_eq!(s.events("0x0d").await.unwrap().len(), lines.len());
    }

    /// Admission control inside the insert: at `cap` bounties in their window a new one is
    /// refused and nothing is stored; a repeat is not new either; a move out of bidding frees
    /// a place; `cap` 0 (contests) admits regardless.
    async fn check_admission(s: &MarketStore) {
        let spec = serde_json::json!({});
        // Bounties other checks left bidding count too.
        let cap = s.count_in_phase(Phase::Bidding).await.unwrap() + 2;
        for id in ["0xa1", "0xa2"] {
            assert!(s.insert_bounty_in(id, POSTER, &spec, 1, Phase::Bidding, cap).await.unwrap());
        }
        assert!(!s.insert_bounty_in("0xa3", POSTER, &spec, 1, Phase::Bidding, cap).await.unwrap());
        assert!(s.bounty("0xa3").await.unwrap().is_none(), "a refused bounty is not stored");
        if let Some(cache) = &s.rows {
            assert!(!cache.lock().slots.contains_key("0xa3"), "a refused insert leaves no slot");
        }
        let (full, ask) = (Admission::Full(cap), Admission::Ask { probe: false });
        assert_eq!(s.admission(), ask, "nothing known: the database decides");
        s.mark_full(cap);
        assert_eq!(s.admission(), full, "the refusal is remembered");
        assert!(!s.insert_bounty_in("0xa1", POSTER, &spec, 1, Phase::Bidding, cap).await.unwrap());
        assert!(s.insert_bounty_in("0xa4", POSTER, &spec, 9, Phase::Contest, 0).await.unwrap());
        // A move that is not a window's close leaves the mark; a contest is not a window.
        s.transition("0xa4", Phase::Contest, Phase::Failed, "no entries").await.unwrap();
        assert_eq!(s.admission(), full, "only a closed window frees a place");
        s.transition("0xa1", Phase::Bidding, Phase::Failed, "no valid bids").await.unwrap();
        s.mark_full(cap);
        assert_eq!(s.admission(), ask, "a closed window lets one post through");
        assert_eq!(s.admission(), full, "and only one, though a refusal came in between");
        assert!(s.insert_bounty_in("0xa3", POSTER, &spec, 1, Phase::Bidding, cap).await.unwrap());
        let row = s.bounty("0xa3").await.unwrap().unwrap();
        assert_eq!((row.phase, row.poster, row.bid_close_at), (Phase::Bidding, POSTER, 1));
        assert_eq!(s.count_in_phase(Phase::Bidding).await.unwrap(), cap);
        // A window closed by another node sharing the database is seen once the mark lapses:
        // one post then checks the database again, the others are still refused meanwhile.
        s.mark_full(cap);
        tokio::time::sleep(FULL_MARK_TTL + std::time::Duration::from_millis(50)).await;
        assert_eq!(s.admission(), Admission::Ask { probe: true }, "lapsed after {FULL_MARK_TTL:?}");
        assert_eq!(s.admission(), full, "one post at a time checks the database");
        s.probe_admitted();
        let probe = Admission::Ask { probe: true };
        assert_eq!(s.admission(), probe, "an admitted probe: the next post probes at once");
        assert_eq!(s.admission(), full, "still one at a time");
        s.mark_full(cap);
        tokio::time::sleep(FULL_MARK_TTL + std::time::Duration::from_millis(50)).await;
        assert_eq!(s.admission(), probe);
        s.probe_admitted();
        assert_eq!(s.admission(), probe, "a refusal in between: the streak starts again");
        s.probe_admitted();
        assert_eq!((s.admission(), s.admission()), (ask, ask), "two admitted probes in a row");
    }

    #[tokio::test]
    async fn a_node_at_its_limit_admits_no_new_bounty() {
        check_admission(&store().await).await;
    }

    #[tokio::test]
    async fn a_ranking_and_its_winner_move_the_bounty() {
        check_rank_and_move(&store().await).await;
    }

    /// The same on Postgres (127.0.0.1:5432, a fresh database dropped afterwards): the
    /// migrations, indexes, the bound `IN (...)` list and the capped bid upsert work there too.
    #[tokio::test]
    async fn outcomes_and_bids_on_postgres() {
        sqlx::any::install_default_drivers();
        let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
        let admin = sqlx::AnyPool::connect(admin_url).await.expect("Postgres on 127.0.0.1:5432");
        let name = format!("reef_market_store_{}", rand::random::<u32>());
        let create = format!("CREATE DATABASE {name}");
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.unwrap();
        let s = MarketStore::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
            .await
            .unwrap();
        check_outcomes(&s).await;
        check_bids(&s).await;
        check_transition_log(&s).await;
        check_rank_and_move(&s).await;
        check_admission(&s).await;
        s.pool.close().await;
        let drop = format!("DROP DATABASE {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.unwrap();
    }

    #[tokio::test]
    async fn cached_rows_follow_every_write_and_a_racing_read_does_not_refill_an_old_row() {
        let s = store().await;
        let cache = s.rows.clone().expect("SQLite stores cache rows");
        s.insert_bounty("0x01", POSTER, &serde_json::json!({"k": 1}), 10).await.unwrap();
        let first = s.bounty("0x01").await.unwrap().unwrap();
        assert!(cache.get("0x01").is_ok(), "a read fills the cache");
        // Every kind of write is seen by the next read, which the write's own `RETURNING` row
        // answers from the cache.
        s.set_winner("0x01", W).await.unwrap();
        assert!(cache.get("0x01").is_ok(), "the write did not cache the row it returned");
        assert_eq!(s.bounty("0x01").await.unwrap().unwrap().winner, Some(W));
        s.set_close_ms("0x01", 20_500).await.unwrap();
        assert!(cache.get("0x01").is_ok(), "the write did not cache the row it returned");
        assert_eq!(s.bounty("0x01").await.unwrap().unwrap().bid_close_ms, 20_500);
        s.transition("0x01", Phase::Bidding, Phase::AwaitingAward, "closed").await.unwrap();
        assert!(cache.get("0x01").is_ok(), "the write did not cache the row it returned");
        assert_eq!(s.bounty("0x01").await.unwrap().unwrap().phase, Phase::AwaitingAward);
        s.set_ranking("0x01", ranking_priced(1), Some(V), 1234).await.unwrap();
        assert!(cache.get("0x01").is_ok(), "the write did not cache the row it returned");
        let row = s.bounty("0x01").await.unwrap().unwrap();
        assert_eq!((row.winner, row.award_expiry), (Some(V), 1234));
        assert_eq!(s.ranking("0x01").await.unwrap().unwrap().bids().unwrap(), ranking_priced(1));
        assert!(cache.get_ranking("0x01").is_ok(), "the ranking write did not cache it");
        // Other writes keep the cached ranking; a new ranking replaces it.
        s.hand_over("0x01", R, 77).await.unwrap();
        assert!(cache.get_ranking("0x01").is_ok(), "a write of the row dropped the ranking");
        s.set_ranking("0x01", ranking_priced(2), Some(R), 1234).await.unwrap();
        assert_eq!(s.ranking("0x01").await.unwrap().unwrap().bids().unwrap(), ranking_priced(2));
        // The JSON kept with it is the ranking's own form, as written and as read back.
        let form = serde_json::to_value(ranking_priced(2)).unwrap();
        let json = |r: &StoredRanking| serde_json::from_str::<serde_json::Value>(r.json().get());
        assert_eq!(json(&s.ranking("0x01").await.unwrap().unwrap()).unwrap(), form);
        cache.lock().clear();
        let read = s.ranking("0x01").await.unwrap().unwrap();
        assert_eq!(read.bids().unwrap(), ranking_priced(2));
        assert_eq!(json(&read).unwrap(), form);
        assert!(s.ranking("0x09").await.unwrap().is_none());
        s.hand_over("0x01", R, 77).await.unwrap();
        assert!(cache.get("0x01").is_ok(), "the write did not cache the row it returned");
        let row = s.bounty("0x01").await.unwrap().unwrap();
        assert_eq!((row.winner, row.awarded_at), (Some(R), Some(77)));
        s.set_cursor("0x01", 9).await.unwrap();
        assert!(cache.get("0x01").is_ok(), "the write did not cache the row it returned");
        assert_eq!(s.bounty("0x01").await.unwrap().unwrap().cursor, 9);
        s.transition_awarded("0x01", Phase::AwaitingAward, Phase::Working, "awarded", 88)
            .await
            .unwrap();
        assert!(cache.get("0x01").is_ok(), "the write did not cache the row it returned");
        let row = s.bounty("0x01").await.unwrap().unwrap();
        assert_eq!((row.phase, row.awarded_at), (Phase::Working, Some(88)));
        // A plain move keeps the award time.
        s.transition("0x01", Phase::Working, Phase::Working, "still working").await.unwrap();
        assert_eq!(s.bounty("0x01").await.unwrap().unwrap().awarded_at, Some(88));
        s.set_verdict("0x01", &serde_json::json!({"accept": true})).await.unwrap();
        assert!(cache.get("0x01").is_ok(), "the write did not cache the row it returned");
        s.transition_awarded("0x01", Phase::Working, Phase::Working, "re-awarded", 89)
            .await
            .unwrap();
        assert!(cache.get("0x01").is_ok(), "a row with an outcome was not cached");
        assert_eq!(
            s.bounty("0x01").await.unwrap().unwrap().verdict,
            Some(serde_json::json!({"accept": true}))
        );
        let me = Claimant { node: "n".into(), since_ms: 0 };
        assert!(s.claim("0x01", "work_group", 30_000, &me).await.unwrap());
        assert!(cache.get("0x01").is_ok(), "the write did not cache the row it returned");
        assert!(s.bounty("0x01").await.unwrap().unwrap().work_group.is_some());
        // A write that returned nothing (matched no row) leaves the next read to the database.
        assert!(!s.transition("0x01", Phase::Bidding, Phase::Failed, "late").await.unwrap());
        assert!(cache.get("0x01").is_err(), "a write that matched nothing cached a row");
        // Two writes in flight at once: neither's returned row is cached (their order of
        // completion need not be their order of commit).
        let row = s.bounty("0x01").await.unwrap().unwrap();
        let (one, two) = (cache.write_begin("0x01", false), cache.write_begin("0x01", false));
        cache.write_end("0x01", two, Some(row.clone()), None);
        cache.write_end("0x01", one, Some(row.clone()), None);
        assert!(cache.get("0x01").is_err(), "an overlapped write's row was cached");
        // A read that started before a write and ends after it must not cache what it read.
        let Err(ticket) = cache.get("0x02") else { panic!("nothing cached for 0x02") };
        let began = cache.write_begin("0x02", false);
        cache.write_end("0x02", began, None, None);
        let mut stale = BountyRow::clone(&first);
        stale.id = BountyKey::from_db("0x02".into()).unwrap();
        let stale = Arc::new(stale);
        cache.fill(ticket, &stale);
        assert!(cache.get("0x02").is_err(), "a read that raced a write refilled the cache");
        // Nor may a read that starts while a write is in flight (it may have read before the
        // commit), and a cached row is not served while a write is in flight.
        let Err(ticket) = cache.get("0x02") else { unreachable!() };
        cache.fill(ticket, &stale);
        assert!(cache.get("0x02").is_ok(), "a read with nothing written meanwhile is cached");
        let in_flight = cache.write_begin("0x02", false);
        assert!(cache.get("0x02").is_err(), "served a row while a write to it was in flight");
        let Err(during) = cache.get("0x02") else { unreachable!() };
        cache.fill(during, &stale);
        assert!(cache.get("0x02").is_err(), "a read during a write filled the cache");
        // Bounded: a full cache is cleared, reads that started before the clear skip it, and the
        // mark of the write still in flight survives the clear.
        let Err(old) = cache.get("0x03") else { unreachable!() };
        for i in 0..ROW_CACHE_MAX + 1 {
            let id = format!("0xf{i}");
            let began = cache.write_begin(&id, false);
            cache.write_end(&id, began, None, None);
        }
        assert!(cache.lock().slots.len() <= ROW_CACHE_MAX);
        let mut stale = BountyRow::clone(&stale);
        stale.id = BountyKey::from_db("0x03".into()).unwrap();
        let stale = Arc::new(stale);
        cache.fill(old, &stale);
        assert!(cache.get("0x03").is_err(), "a read from before a clear refilled the cache");
        let Err(after_clear) = cache.get("0x02") else { unreachable!() };
        let mut stale = BountyRow::clone(&stale);
        stale.id = BountyKey::from_db("0x02".into()).unwrap();
        let stale = Arc::new(stale);
        cache.fill(after_clear, &stale);
        assert!(cache.get("0x02").is_err(), "the clear forgot the write in flight");
        cache.write_end("0x02", in_flight, None, None);
        let Err(done) = cache.get("0x02") else { unreachable!() };
        cache.fill(done, &stale);
        assert!(cache.get("0x02").is_ok());
    }

    /// A read that finds no row is remembered (a full node's refused posters come back with
    /// the same ids) until a write to the id begins; a read that raced a write, or started
    /// before a clear, remembers nothing; a write that changed nothing leaves it absent.
    #[tokio::test]
    async fn a_missing_row_is_remembered_until_a_write_to_it() {
        let s = store().await;
        let cache = s.rows.clone().expect("SQLite stores cache rows");
        assert!(s.bounty("0x09").await.unwrap().is_none());
        assert!(cache.known_absent("0x09"));
        // Served from memory: a row written behind the store's back is not seen.
        sqlx::query(
            "INSERT INTO market_bounties (id, poster, state, spec, bid_close_at, cursor, created_at, updated_at) \
             VALUES ('0x09', $1, 'bidding', '{}', 1, 0, 1, 1)",
        )
        .bind(POSTER.to_string())
        .execute(&s.pool)
        .await
        .unwrap();
        assert!(s.bounty("0x09").await.unwrap().is_none(), "read the database again");
        s.set_field("0x09", "cfp_group", "g").await.unwrap();
        assert!(!cache.known_absent("0x09"), "a write ends it");
        assert!(s.bounty("0x09").await.unwrap().is_some());
        // An insert through the store ends it too.
        assert!(s.bounty("0x0b").await.unwrap().is_none());
        s.insert_bounty("0x0b", POSTER, &serde_json::json!({}), 10).await.unwrap();
        assert!(s.bounty("0x0b").await.unwrap().is_some());

        // Reads that raced a write.
        let Err(before) = cache.get("0x0a") else { unreachable!() };
        let began = cache.write_begin("0x0a", false);
        cache.fill_absent(before, "0x0a");
        assert!(!cache.known_absent("0x0a"), "read while a write was in flight");
        let Err(during) = cache.get("0x0a") else { unreachable!() };
        cache.write_end("0x0a", began, None, None);
        cache.fill_absent(before, "0x0a");
        cache.fill_absent(during, "0x0a");
        assert!(!cache.known_absent("0x0a"), "read before a write that committed");
        // A write that changed nothing (a refused insert) takes its mark back: still absent.
        let Err(before) = cache.get("0x0c") else { unreachable!() };
        let began = cache.write_begin("0x0c", false);
        cache.write_void("0x0c", began);
        cache.fill_absent(before, "0x0c");
        assert!(cache.known_absent("0x0c"));
        // Cleared meanwhile.
        let Err(old) = cache.get("0x0d") else { unreachable!() };
        cache.lock().clear();
        cache.fill_absent(old, "0x0d");
        assert!(!cache.known_absent("0x0d"), "a read from before a clear");
        // Bounded.
        for i in 0..ROW_CACHE_MAX + 1 {
            let id = format!("0xe{i}");
            let Err(t) = cache.get(&id) else { unreachable!() };
            cache.fill_absent(t, &id);
        }
        assert!(cache.lock().absent.len() <= ROW_CACHE_MAX);
    }

    #[tokio::test]
    async fn a_claim_is_taken_once_and_a_dead_process_claim_is_taken_over() {
        let s = store().await;
        s.insert_bounty("0x01", POSTER, &serde_json::json!({}), 1).await.unwrap();
        let first = Claimant { node: "n1".into(), since_ms: now_ms() - 60_000 };
        assert!(s.claim("0x01", "cfp_group", 30_000, &first).await.unwrap());
        // The same process, another node of the mesh: the claim holds.
        assert!(!s.claim("0x01", "cfp_group", 30_000, &first).await.unwrap());
        let peer = Claimant { node: "n2".into(), since_ms: now_ms() - 60_000 };
        assert!(!s.claim("0x01", "cfp_group", 30_000, &peer).await.unwrap());
        // A node id that is a suffix of the claimant's is another node.
        let suffix = Claimant { node: "1".into(), since_ms: now_ms() + 1 };
        assert!(!s.claim("0x01", "cfp_group", 30_000, &suffix).await.unwrap());
        // n1 restarted: its new process takes over its old process's claim at once.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let restarted = Claimant { node: "n1".into(), since_ms: now_ms() };
        assert!(s.claim("0x01", "cfp_group", 30_000, &restarted).await.unwrap());
        assert!(!s.claim("0x01", "cfp_group", 30_000, &restarted).await.unwrap());
        // Any node takes over a stale claim; a done side effect (no marker) is never claimed.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        assert!(s.claim("0x01", "cfp_group", 0, &peer).await.unwrap());
        s.set_field("0x01", "cfp_group", "g_1").await.unwrap();
        assert!(!s.claim("0x01", "cfp_group", 0, &restarted).await.unwrap());
        let marker = s.bounty("0x01").await.unwrap().unwrap().cfp_group.clone().unwrap();
        assert_eq!(marker, "g_1");
    }

    #[tokio::test]
    async fn bids_replace_within_the_window_and_entries_are_first_write() {
        check_bids(&store().await).await;
    }

    async fn check_bids(s: &MarketStore) {
        assert!(s.upsert_bid("0x01", "0xa", &bid(1), 10, 2).await.unwrap());
        assert!(s.upsert_bid("0x01", "0xa", &bid(2), 20, 2).await.unwrap());
        let bids = s.bids("0x01").await.unwrap();
        assert_eq!(bids.len(), 1);
        assert_eq!(bids[0].bid.bid.nonce, "2");
        // At capacity a new bidder is refused, and a bidder already in can still replace its bid.
        assert!(s.upsert_bid("0x01", "0xb", &bid(3), 30, 2).await.unwrap());
        assert!(!s.upsert_bid("0x01", "0xc", &bid(4), 40, 2).await.unwrap());
        assert!(s.upsert_bid("0x01", "0xb", &bid(5), 50, 2).await.unwrap());
        let bids = s.bids("0x01").await.unwrap();
        assert_eq!(bids.iter().map(|b| b.bid.bid.nonce.as_str()).collect::<Vec<_>>(), ["2", "5"]);
        // Capacity is per bounty.
        assert!(s.upsert_bid("0x02", "0xc", &bid(6), 60, 2).await.unwrap());
        // The view's single read: the log as `events` reads it, and the bid count.
        s.log("0x01", "posted", "first").await.unwrap();
        s.log("0x01", "announced", "second").await.unwrap();
        let (log, count) = s.events_and_bid_count("0x01").await.unwrap();
        assert_eq!((log, count), (s.events("0x01").await.unwrap(), 2));
        let (log, count) = s.events_and_bid_count("0x09").await.unwrap();
        assert_eq!((log.len(), count), (0, 0));
        assert!(s.insert_entry("0x01", "0xa", &serde_json::json!([1])).await.unwrap());
        assert!(!s.insert_entry("0x01", "0xa", &serde_json::json!([2])).await.unwrap());
        assert_eq!(s.entries("0x01").await.unwrap()[0].1, serde_json::json!([1]));
    }

    /// Bids arriving together are written in batches: the capacity holds across a batch
    /// (exactly `capacity` distinct bidders get in), a bidder's repeated bid in the same batch
    /// is accepted and the last one stored, and each answer comes after its commit.
    #[tokio::test]
    async fn concurrent_bids_respect_the_capacity_and_keep_the_last_bid_per_bidder() {
        let s = store().await;
        let calls = (0..40).map(|i| {
            let s = s.clone();
            async move {
                let bidder = format!("0x{:02}", i % 20);
                let ok = s.upsert_bid("0xb1", &bidder, &bid(i), 1, 7).await;
                (bidder, i, ok.unwrap())
            }
        });
        let answers = futures::future::join_all(calls).await;
        let bids = s.bids("0xb1").await.unwrap();
        assert_eq!(bids.len(), 7);
        let held: std::collections::HashSet<&str> =
            bids.iter().map(|b| b.bidder.as_str()).collect();
        for (bidder, i, ok) in &answers {
            assert_eq!(*ok, held.contains(bidder.as_str()), "bid {i} of {bidder}");
        }
        // Each held bidder's stored bid is its last accepted one (i + 20 after i).
        for b in &bids {
            let last =
                answers.iter().filter(|(w, _, ok)| *w == b.bidder && *ok).map(|(_, i, _)| *i).max();
            assert_eq!(b.bid.bid.nonce.parse::<u64>().ok(), last);
        }
        let (_, count) = s.events_and_bid_count("0xb1").await.unwrap();
        assert_eq!(count, 7);
    }

    /// The cached log a view reads stays what the database holds: lines appended by `log` and
    /// by transitions after it was cached, and the bid count after new bids.
    #[tokio::test]
    async fn the_cached_view_log_follows_appends_transitions_and_bids() {
        let s = store().await;
        s.insert_bounty("0x07", POSTER, &serde_json::json!({}), 10).await.unwrap();
        s.log("0x07", "posted", "one").await.unwrap();
        let fresh = |s: &MarketStore| {
            let s = MarketStore { logs: None, ..s.clone() };
            async move { s.events_and_bid_count("0x07").await.unwrap() }
        };
        assert_eq!(s.events_and_bid_count("0x07").await.unwrap(), fresh(&s).await);
        s.log("0x07", "announced", "two").await.unwrap();
        assert_eq!(s.events_and_bid_count("0x07").await.unwrap(), fresh(&s).await);
        assert!(s.transition("0x07", Phase::Bidding, Phase::AwaitingAward, "three").await.unwrap());
        // A transition that does not apply leaves the log as it is.
        assert!(!s.transition("0x07", Phase::Bidding, Phase::Failed, "no").await.unwrap());
        assert_eq!(s.events_and_bid_count("0x07").await.unwrap(), fresh(&s).await);
        assert!(s.upsert_bid("0x07", "0xa", &bid(0), 1, 10).await.unwrap());
        let (log, bids) = s.events_and_bid_count("0x07").await.unwrap();
        assert_eq!((log.len(), bids), (3, 1));
        assert_eq!((log.clone(), bids), fresh(&s).await);
        assert_eq!(s.events("0x07").await.unwrap(), log);
    }
}
