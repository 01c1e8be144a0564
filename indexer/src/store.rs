//! SQL storage over sqlx's `Any` driver: the same migrations and statements on SQLite (default)
//! and Postgres.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, B256, U256};
use sqlx::{
    AnyPool, AssertSqlSafe, Row,
    any::{AnyArguments, AnyPoolOptions, AnyRow},
    query::Query,
};

use crate::{
    BlockRef, Error, EventRow, Result,
    decode::addr_hex,
    derived::{BOUNTY_KINDS, BountyRow, STAKE_KINDS, StakeRow},
};

/// Ordered migrations (version, SQL), from `indexer/migrations/`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_settled_index.sql")),
];

/// Rows per multi-row INSERT (13 columns × 400 stays below SQLite's 32,766 bind limit).
const CHUNK: usize = 400;

/// Database handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    postgres: bool,
}

/// Everything one sync step writes, committed atomically with the checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Decoded events (any order; duplicates allowed).
    pub events: Vec<EventRow>,
    /// Headers to remember for reorg detection.
    pub blocks: Vec<BlockRef>,
    /// Tokens first seen in this batch, with the block they were first seen in.
    pub new_tokens: Vec<(Address, u64)>,
    /// New checkpoint: first block not yet indexed.
    pub next_block: u64,
    /// Forget remembered headers below this height.
    pub prune_below: u64,
}

/// Counts shown by `reef indexer status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Raw events stored.
    pub events: i64,
    /// Bounties known.
    pub bounties: i64,
    /// Bounties in a terminal state.
    pub settled_bounties: i64,
    /// Accounts with stake.
    pub stakers: i64,
    /// Accounts with a known funding source.
    pub funded_accounts: i64,
    /// Headers kept for reorg detection.
    pub window_blocks: i64,
}

/// The checkpoint as stored in `idx_meta` (text), as a block number.
fn parse_next_block(value: Option<String>) -> Result<Option<u64>> {
    value.map(|s| s.parse().map_err(|e| corrupt("next_block", e))).transpose()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{what}: {e}"))
}

/// `rows` tuples of `cols` bind parameters: `($1,$2),($3,$4)` on Postgres, `(?,?),(?,?)` on
/// SQLite. SQLite resolves every numbered parameter's name by a linear scan of the statement's
/// parameter list (`sqlite3_bind_parameter_name`, which sqlx calls per parameter), so binding a
/// statement with thousands of `$N`s is quadratic; anonymous `?`s have no names to scan.
fn placeholders(pg: bool, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * if pg { 6 } else { 2 } + rows * 3);
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            if pg {
                s.push('$');
                s.push_str(&(r * cols + c + 1).to_string());
            } else {
                s.push('?');
            }
        }
        s.push(')');
    }
    s
}

/// `n` bind parameters for an `IN (…)` list (see [`placeholders`]).
fn in_list(pg: bool, n: usize) -> String {
    if pg {
        (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(",")
    } else {
        vec!["?"; n].join(",")
    }
}

type AnyQuery<'q> = Query<'q, sqlx::Any, AnyArguments>;

fn bind_bounty<'q>(q: AnyQuery<'q>, b: &BountyRow) -> AnyQuery<'q> {
    q.bind(b.id.clone())
        .bind(b.poster.clone())
        .bind(b.token.clone())
        .bind(b.amount.clone())
        .bind(b.price.clone())
        .bind(b.provider.clone())
        .bind(b.deadline)
        .bind(b.status.clone())
        .bind(i64::from(b.funded))
        .bind(b.posted_block)
        .bind(b.submitted_at)
        .bind(b.settled_at)
        .bind(b.settled_block)
        .bind(b.paid.clone())
        .bind(b.provider_bps)
        .bind(b.last_block)
        .bind(b.last_log)
}

const BOUNTY_COLS: &str = "id, poster, token, amount, price, provider, deadline, status, funded, posted_block, \
    submitted_at, settled_at, settled_block, paid, provider_bps, last_block, last_log";

fn bounty_from_row(r: &AnyRow) -> Result<BountyRow> {
    let g = |e: sqlx::Error| corrupt("idx_bounties", e);
    Ok(BountyRow {
        id: r.try_get("id").map_err(g)?,
        poster: r.try_get("poster").map_err(g)?,
        token: r.try_get("token").map_err(g)?,
        amount: r.try_get("amount").map_err(g)?,
        price: r.try_get("price").map_err(g)?,
        provider: r.try_get("provider").map_err(g)?,
        deadline: r.try_get("deadline").map_err(g)?,
        status: r.try_get("status").map_err(g)?,
        funded: r.try_get::<i64, _>("funded").map_err(g)? != 0,
        posted_block: r.try_get("posted_block").map_err(g)?,
        submitted_at: r.try_get("submitted_at").map_err(g)?,
        settled_at: r.try_get("settled_at").map_err(g)?,
        settled_block: r.try_get("settled_block").map_err(g)?,
        paid: r.try_get("paid").map_err(g)?,
        provider_bps: r.try_get("provider_bps").map_err(g)?,
        last_block: r.try_get("last_block").map_err(g)?,
        last_log: r.try_get("last_log").map_err(g)?,
    })
}

fn event_from_row(r: &AnyRow) -> Result<EventRow> {
    let g = |e: sqlx::Error| corrupt("idx_events", e);
    let addr = |s: Option<String>| -> Result<Option<Address>> {
        s.map(|s| s.parse::<Address>().map_err(|e| corrupt("address", e))).transpose()
    };
    let hash = |s: String| s.parse::<B256>().map_err(|e| corrupt("hash", e));
    Ok(EventRow {
        block_number: r.try_get::<i64, _>("block_number").map_err(g)? as u64,
        log_index: r.try_get::<i64, _>("log_index").map_err(g)? as u64,
        block_hash: hash(r.try_get("block_hash").map_err(g)?)?,
        tx_hash: hash(r.try_get("tx_hash").map_err(g)?)?,
        block_time: r.try_get::<i64, _>("block_time").map_err(g)? as u64,
        contract: addr(Some(r.try_get("contract").map_err(g)?))?.unwrap_or_default(),
        kind: r.try_get("kind").map_err(g)?,
        ref_id: r.try_get("ref_id").map_err(g)?,
        actor: addr(r.try_get("actor").map_err(g)?)?,
        counterparty: addr(r.try_get("counterparty").map_err(g)?)?,
        amount: r.try_get("amount").map_err(g)?,
        amount2: r.try_get("amount2").map_err(g)?,
        extra: r.try_get("extra").map_err(g)?,
    })
}

const EVENT_COLS: &str = "block_number, log_index, block_hash, tx_hash, block_time, contract, kind, ref_id, actor, counterparty, amount, amount2, extra";

impl Store {
    /// Connects to `url` (`sqlite:path`, `sqlite::memory:`, `postgres://…`), creating the SQLite
    /// file and its directory if needed, and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        if !postgres && !url.starts_with("sqlite:") {
            return Err(Error::Config(format!(
                "database URL {url:?} must start with sqlite: or postgres://"
            )));
        }
        let url = if !postgres && !url.contains('?') && !url.contains(":memory:") {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Config(format!("cannot create {dir:?}: {e}")))?;
            }
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        let mut opts = AnyPoolOptions::new().max_connections(if postgres { 8 } else { 4 });
        if url.contains(":memory:") {
            // Every SQLite connection opens its own in-memory database: keep exactly one, forever.
            opts = opts.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
        }
        if !postgres {
            // Lock waits in microseconds (`crate::sqlite`): in a node, other connections write
            // to the same file.
            let init = crate::sqlite::connection_init(
                10_000,
                "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;",
            );
            opts = opts.after_connect(move |conn, _meta| {
                let init = init.clone();
                Box::pin(async move {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(init)).execute(conn).await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(&url).await?;
        let store = Self { pool, postgres };
        store.migrate().await?;
        Ok(store)
    }

    /// Whether this is a Postgres database.
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<()> {
        let m = crate::migrate::Migrations {
            table: "idx_migrations",
            applied_at: false,
            lock_key: 7262333,
            list: MIGRATIONS,
        };
        crate::migrate::run(&self.pool, self.postgres, m).await.map_err(Into::into)
    }

    /// Reads a metadata value.
    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM idx_meta WHERE key = $1")
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>("value")).transpose()?)
    }

    /// Writes a metadata value.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO idx_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key.to_string())
            .bind(value.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The checkpoint: first block not yet indexed (None before the first run).
    pub async fn next_block(&self) -> Result<Option<u64>> {
        parse_next_block(self.meta("next_block").await?)
    }

    /// Whether bounty `id` was ever posted, as far as the index knows: the first block not yet
    /// indexed (every event below it is in the index; `None` before the first run) and whether
    /// the index holds an event of `id`. One statement.
    pub async fn bounty_seen(&self, id: U256) -> Result<(Option<u64>, bool)> {
        let row = sqlx::query(
            "SELECT (SELECT value FROM idx_meta WHERE key = 'next_block') AS next_block, \
             (SELECT CAST(COUNT(*) AS BIGINT) FROM idx_bounties WHERE id = $1) AS n",
        )
        .bind(crate::decode::id_hex(id))
        .fetch_one(&self.pool)
        .await?;
        let next = parse_next_block(row.try_get("next_block")?)?;
        let n: i64 = row.try_get("n")?;
        Ok((next, n > 0))
    }

    /// The remembered header at height `n`.
    pub async fn block(&self, n: u64) -> Result<Option<BlockRef>> {
        let row = sqlx::query(
            "SELECT number, hash, parent_hash, timestamp FROM idx_blocks WHERE number = $1",
        )
        .bind(n as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| block_from_row(&r)).transpose()
    }

    /// The highest remembered header.
    pub async fn tip_block(&self) -> Result<Option<BlockRef>> {
        let row = sqlx::query("SELECT number, hash, parent_hash, timestamp FROM idx_blocks ORDER BY number DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| block_from_row(&r)).transpose()
    }

    /// Tokens discovered in BountyPosted events.
    pub async fn tokens(&self) -> Result<Vec<Address>> {
        let rows = sqlx::query("SELECT token FROM idx_tokens").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                r.try_get::<String, _>("token")?.parse::<Address>().map_err(|e| corrupt("token", e))
            })
            .collect::<std::result::Result<Vec<_>, Error>>()
    }

    /// Commits a batch and the new checkpoint atomically.
    pub async fn commit(&self, batch: &Batch) -> Result<()> {
        // Deduplicate by position (a source may repeat logs) and order by chain position.
        let mut events: BTreeMap<(u64, u64), &EventRow> = BTreeMap::new();
        for e in &batch.events {
            events.entry((e.block_number, e.log_index)).or_insert(e);
        }
        let events: Vec<&EventRow> = events.into_values().collect();
        let pg = self.postgres;
        let mut tx = self.pool.begin().await?;
        for chunk in events.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO idx_events ({EVENT_COLS}) VALUES {} ON CONFLICT (block_number, log_index) DO NOTHING",
                placeholders(pg, chunk.len(), 13)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(e.block_number as i64)
                    .bind(e.log_index as i64)
                    .bind(e.block_hash.to_string())
                    .bind(e.tx_hash.to_string())
                    .bind(e.block_time as i64)
                    .bind(addr_hex(e.contract))
                    .bind(e.kind.clone())
                    .bind(e.ref_id.clone())
                    .bind(e.actor.map(addr_hex))
                    .bind(e.counterparty.map(addr_hex))
                    .bind(e.amount.clone())
                    .bind(e.amount2.clone())
                    .bind(e.extra.clone());
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in batch.blocks.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO idx_blocks (number, hash, parent_hash, timestamp) VALUES {} \
                 ON CONFLICT (number) DO UPDATE SET hash = excluded.hash, parent_hash = excluded.parent_hash, timestamp = excluded.timestamp",
                placeholders(pg, chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for b in chunk {
                q = q
                    .bind(b.number as i64)
                    .bind(b.hash.to_string())
                    .bind(b.parent.to_string())
                    .bind(b.timestamp as i64);
            }
            q.execute(&mut *tx).await?;
        }
        for (token, block) in &batch.new_tokens {
            sqlx::query("INSERT INTO idx_tokens (token, first_block) VALUES ($1, $2) ON CONFLICT (token) DO NOTHING")
                .bind(addr_hex(*token))
                .bind(*block as i64)
                .execute(&mut *tx)
                .await?;
        }
        // Funding sources: the earliest inbound transfer per account wins.
        let transfers: Vec<&EventRow> =
            events.iter().copied().filter(|e| e.kind == "Transfer").collect();
        let mut first: BTreeMap<Address, &EventRow> = BTreeMap::new();
        for t in &transfers {
            if let Some(to) = t.counterparty {
                first.entry(to).or_insert(t);
            }
        }
        let first: Vec<(Address, &EventRow)> = first.into_iter().collect();
        for chunk in first.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO idx_funding (account, token, first_from, amount, block_number, log_index) VALUES {} \
                 ON CONFLICT (account) DO UPDATE SET token = excluded.token, first_from = excluded.first_from, \
                 amount = excluded.amount, block_number = excluded.block_number, log_index = excluded.log_index \
                 WHERE excluded.block_number < idx_funding.block_number \
                 OR (excluded.block_number = idx_funding.block_number AND excluded.log_index < idx_funding.log_index)",
                placeholders(pg, chunk.len(), 6)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (to, t) in chunk {
                q = q
                    .bind(addr_hex(*to))
                    .bind(addr_hex(t.contract))
                    .bind(t.actor.map(addr_hex).unwrap_or_default())
                    .bind(t.amount.clone().unwrap_or_default())
                    .bind(t.block_number as i64)
                    .bind(t.log_index as i64);
            }
            q.execute(&mut *tx).await?;
        }
        fold_derived(&mut tx, pg, &events).await?;
        sqlx::query("INSERT INTO idx_meta (key, value) VALUES ('next_block', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(batch.next_block.to_string())
            .execute(&mut *tx)
            .await?;
        if batch.prune_below > 0 {
            sqlx::query("DELETE FROM idx_blocks WHERE number < $1")
                .bind(batch.prune_below as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Undoes everything at or above block `fork`: events, headers, funding, tokens; recomputes
    /// the derived rows that those events touched from the remaining events; moves the checkpoint
    /// back to `fork`.
    pub async fn rewind(&self, fork: u64) -> Result<()> {
        let f = fork as i64;
        let pg = self.postgres;
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = sqlx::query("SELECT id FROM idx_bounties WHERE last_block >= $1")
            .bind(f)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
        let accounts: Vec<String> =
            sqlx::query("SELECT account FROM idx_stakes WHERE last_block >= $1")
                .bind(f)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("account"))
                .collect::<std::result::Result<_, _>>()?;
        for sql in [
            "DELETE FROM idx_events WHERE block_number >= $1",
            "DELETE FROM idx_blocks WHERE number >= $1",
            "DELETE FROM idx_funding WHERE block_number >= $1",
            "DELETE FROM idx_tokens WHERE first_block >= $1",
            "DELETE FROM idx_bounties WHERE last_block >= $1",
            "DELETE FROM idx_stakes WHERE last_block >= $1",
        ] {
            sqlx::query(sql).bind(f).execute(&mut *tx).await?;
        }
        // Re-fold the affected keys from their surviving events.
        let mut replay: Vec<EventRow> = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT {EVENT_COLS} FROM idx_events WHERE ref_id IN ({}) AND kind IN ({}) ORDER BY block_number, log_index",
                in_list(pg, chunk.len()),
                BOUNTY_KINDS.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(",")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.clone());
            }
            for r in q.fetch_all(&mut *tx).await? {
                replay.push(event_from_row(&r)?);
            }
        }
        for chunk in accounts.chunks(CHUNK) {
            let sql = format!(
                "SELECT {EVENT_COLS} FROM idx_events WHERE actor IN ({}) AND kind IN ('Staked', 'UnbondRequested', 'Slashed') ORDER BY block_number, log_index",
                in_list(pg, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(a.clone());
            }
            for r in q.fetch_all(&mut *tx).await? {
                replay.push(event_from_row(&r)?);
            }
        }
        replay.sort_by_key(|e| (e.block_number, e.log_index));
        replay.dedup_by_key(|e| (e.block_number, e.log_index));
        let refs: Vec<&EventRow> = replay.iter().collect();
        fold_derived(&mut tx, pg, &refs).await?;
        sqlx::query("INSERT INTO idx_meta (key, value) VALUES ('next_block', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(fork.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Table counts.
    pub async fn stats(&self) -> Result<Stats> {
        let one = |sql: &'static str| async move {
            let r = sqlx::query(sql).fetch_one(&self.pool).await?;
            Ok::<i64, Error>(r.try_get::<i64, _>(0)?)
        };
        Ok(Stats {
            events: one("SELECT CAST(COUNT(*) AS BIGINT) FROM idx_events").await?,
            bounties: one("SELECT CAST(COUNT(*) AS BIGINT) FROM idx_bounties").await?,
            settled_bounties: one(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM idx_bounties WHERE status IN ('completed','expired','resolved','cancelled','refunded')",
            )
            .await?,
            stakers: one("SELECT CAST(COUNT(*) AS BIGINT) FROM idx_stakes").await?,
            funded_accounts: one("SELECT CAST(COUNT(*) AS BIGINT) FROM idx_funding").await?,
            window_blocks: one("SELECT CAST(COUNT(*) AS BIGINT) FROM idx_blocks").await?,
        })
    }

    /// All raw events in chain order (tests and small tools; use ranges on big databases).
    pub async fn events(&self) -> Result<Vec<EventRow>> {
        let sql = format!("SELECT {EVENT_COLS} FROM idx_events ORDER BY block_number, log_index");
        sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    /// Raw events of one kind at or below `max_block`, in chain order.
    pub async fn events_of_kind(&self, kind: &str, max_block: u64) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM idx_events WHERE kind = $1 AND block_number <= $2 \
             ORDER BY block_number, log_index"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(kind)
            .bind(max_block as i64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    /// Raw events about one object (`ref_id`: a bounty, channel or agent id), in chain order.
    pub async fn events_of_ref(&self, ref_id: &str) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM idx_events WHERE ref_id = $1 ORDER BY block_number, log_index"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(ref_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    /// The latest `limit` raw events whose main account is `actor`, newest first.
    pub async fn events_of_actor(&self, actor: Address, limit: u32) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM idx_events WHERE actor = $1 \
             ORDER BY block_number DESC, log_index DESC LIMIT $2"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(crate::decode::addr_hex(actor))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    /// The latest `limit` raw events of the given kinds, newest first.
    pub async fn latest_of_kinds(&self, kinds: &[&str], limit: u32) -> Result<Vec<EventRow>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let list = (0..kinds.len()).map(|i| format!("${}", i + 1)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {EVENT_COLS} FROM idx_events WHERE kind IN ({list}) \
             ORDER BY block_number DESC, log_index DESC LIMIT ${}",
            kinds.len() + 1
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for k in kinds {
            q = q.bind(*k);
        }
        q.bind(i64::from(limit)).fetch_all(&self.pool).await?.iter().map(event_from_row).collect()
    }

    /// All bounty rows ordered by id.
    pub async fn bounties(&self) -> Result<Vec<BountyRow>> {
        let sql = format!("SELECT {BOUNTY_COLS} FROM idx_bounties ORDER BY id");
        sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(bounty_from_row)
            .collect()
    }

    /// Bounties settled at or below `max_block` that had a provider, ordered by settlement.
    pub async fn settled_bounties(&self, max_block: u64) -> Result<Vec<BountyRow>> {
        self.settled_bounties_between(None, max_block).await
    }

    /// [`Store::settled_bounties`] settled after block `after` (all when `None`).
    pub async fn settled_bounties_between(
        &self,
        after: Option<u64>,
        max_block: u64,
    ) -> Result<Vec<BountyRow>> {
        sqlx::query(AssertSqlSafe(settled_between_sql()))
            .bind(max_block as i64)
            .bind(after.map_or(-1, |a| a as i64))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(bounty_from_row)
            .collect()
    }

    /// The events of `kinds` about `ids` (their `ref_id`) at or below `max_block`, in chain
    /// order.
    pub async fn events_about(
        &self,
        ids: &[String],
        kinds: &[&'static str],
        max_block: u64,
    ) -> Result<Vec<EventRow>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            // The kinds are the caller's constants; the ids are bound.
            let sql = format!(
                "SELECT {EVENT_COLS} FROM idx_events WHERE ref_id IN ({}) AND kind IN ({}) \
                 AND block_number <= {max_block} ORDER BY block_number, log_index",
                in_list(self.postgres, chunk.len()),
                kinds.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(",")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(event_from_row(&r)?);
            }
        }
        out.sort_by_key(|e| (e.block_number, e.log_index));
        Ok(out)
    }

    /// Whether blocks `(after, upto]` hold anything that changes the reputation events of a
    /// history folded up to block `after`: a new funding source, a stake change, an ERC-8004
    /// transfer or feedback event, an event about a bounty settled by then, or whether the
    /// index holds any `AwardRevoked` at all (a take-over's outcome depends on the bounty's
    /// provider at the time it is read).
    pub async fn reputation_inputs_changed(&self, after: u64, upto: u64) -> Result<bool> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM idx_funding WHERE block_number > $1) + \
             (SELECT COUNT(*) FROM idx_stakes WHERE last_block > $1) + \
             (SELECT COUNT(*) FROM idx_events WHERE block_number > $1 AND block_number <= $2 \
               AND kind IN ('AgentTransfer', 'FeedbackAuthorized', 'NewFeedback', 'FeedbackRevoked')) + \
             (SELECT COUNT(*) FROM idx_events e JOIN idx_bounties b ON b.id = e.ref_id \
               WHERE e.block_number > $1 AND b.settled_block IS NOT NULL AND b.settled_block <= $1) + \
             (SELECT COUNT(*) FROM idx_events WHERE kind = 'AwardRevoked') AS n",
        )
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(upto.min(i64::MAX as u64) as i64)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// All stake rows.
    pub async fn stakes(&self) -> Result<Vec<StakeRow>> {
        let rows = sqlx::query("SELECT account, bonded, slashed, updated_at, last_block, last_log FROM idx_stakes ORDER BY account")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stake_from_row).collect()
    }

    /// Funding sources: account → first sender of a watched token.
    pub async fn funding(&self) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query("SELECT account, first_from FROM idx_funding")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("account")?, r.try_get("first_from")?))).collect()
    }

    /// The raw pool (for ad-hoc queries).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// [`Store::settled_bounties_between`]'s statement: blocks `($2, $1]`, by `idx_bounties_settled`.
fn settled_between_sql() -> String {
    format!(
        "SELECT {BOUNTY_COLS} FROM idx_bounties WHERE provider IS NOT NULL AND settled_block IS NOT NULL \
         AND settled_block <= $1 AND settled_block > $2 ORDER BY settled_block, last_log, id"
    )
}

fn block_from_row(r: &AnyRow) -> Result<BlockRef> {
    let h = |s: String| s.parse::<B256>().map_err(|e| corrupt("block hash", e));
    Ok(BlockRef {
        number: r.try_get::<i64, _>("number")? as u64,
        hash: h(r.try_get("hash")?)?,
        parent: h(r.try_get("parent_hash")?)?,
        timestamp: r.try_get::<i64, _>("timestamp")? as u64,
    })
}

fn stake_from_row(r: &AnyRow) -> Result<StakeRow> {
    let u = |s: String| s.parse::<U256>().map_err(|e| corrupt("stake amount", e));
    Ok(StakeRow {
        account: r.try_get("account")?,
        bonded: u(r.try_get("bonded")?)?,
        slashed: u(r.try_get("slashed")?)?,
        updated_at: r.try_get("updated_at")?,
        last_block: r.try_get("last_block")?,
        last_log: r.try_get("last_log")?,
    })
}

/// Folds `events` (chain order, deduplicated) into the bounty and stake rows they touch.
async fn fold_derived(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    pg: bool,
    events: &[&EventRow],
) -> Result<()> {
    let bounty_events: Vec<&EventRow> = events
        .iter()
        .copied()
        .filter(|e| BOUNTY_KINDS.contains(&e.kind.as_str()) && e.ref_id.is_some())
        .collect();
    let stake_events: Vec<&EventRow> = events
        .iter()
        .copied()
        .filter(|e| STAKE_KINDS.contains(&e.kind.as_str()) && e.actor.is_some())
        .collect();

    if !bounty_events.is_empty() {
        let ids: BTreeSet<String> = bounty_events.iter().filter_map(|e| e.ref_id.clone()).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let mut rows: BTreeMap<String, BountyRow> = BTreeMap::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT {BOUNTY_COLS} FROM idx_bounties WHERE id IN ({})",
                in_list(pg, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.clone());
            }
            for r in q.fetch_all(&mut **tx).await? {
                let b = bounty_from_row(&r)?;
                rows.insert(b.id.clone(), b);
            }
        }
        let mut changed: BTreeSet<String> = BTreeSet::new();
        for e in &bounty_events {
            let id = e.ref_id.clone().unwrap_or_default();
            if rows.entry(id.clone()).or_insert_with(|| BountyRow::new(&id)).apply(e) {
                changed.insert(id);
            }
        }
        let changed: Vec<&BountyRow> = changed.iter().filter_map(|id| rows.get(id)).collect();
        for chunk in changed.chunks(CHUNK / 2) {
            let sql = format!(
                "INSERT INTO idx_bounties ({BOUNTY_COLS}) VALUES {} ON CONFLICT (id) DO UPDATE SET \
                 poster = excluded.poster, token = excluded.token, amount = excluded.amount, price = excluded.price, \
                 provider = excluded.provider, deadline = excluded.deadline, status = excluded.status, \
                 funded = excluded.funded, posted_block = excluded.posted_block, submitted_at = excluded.submitted_at, \
                 settled_at = excluded.settled_at, settled_block = excluded.settled_block, paid = excluded.paid, \
                 provider_bps = excluded.provider_bps, last_block = excluded.last_block, last_log = excluded.last_log",
                placeholders(pg, chunk.len(), 17)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for b in chunk {
                q = bind_bounty(q, b);
            }
            q.execute(&mut **tx).await?;
        }
    }

    if !stake_events.is_empty() {
        let accounts: BTreeSet<String> =
            stake_events.iter().filter_map(|e| e.actor.map(addr_hex)).collect();
        let accounts: Vec<String> = accounts.into_iter().collect();
        let mut rows: BTreeMap<String, StakeRow> = BTreeMap::new();
        for chunk in accounts.chunks(CHUNK) {
            let sql = format!(
                "SELECT account, bonded, slashed, updated_at, last_block, last_log FROM idx_stakes WHERE account IN ({})",
                in_list(pg, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(a.clone());
            }
            for r in q.fetch_all(&mut **tx).await? {
                let s = stake_from_row(&r)?;
                rows.insert(s.account.clone(), s);
            }
        }
        for e in &stake_events {
            let a = e.actor.map(addr_hex).unwrap_or_default();
            rows.entry(a.clone()).or_insert_with(|| StakeRow::new(&a)).apply(e);
        }
        for s in rows.values() {
            sqlx::query(
                "INSERT INTO idx_stakes (account, bonded, slashed, updated_at, last_block, last_log) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (account) DO UPDATE SET bonded = excluded.bonded, slashed = excluded.slashed, \
                 updated_at = excluded.updated_at, last_block = excluded.last_block, last_log = excluded.last_log",
            )
            .bind(s.account.clone())
            .bind(s.bonded.to_string())
            .bind(s.slashed.to_string())
            .bind(s.updated_at)
            .bind(s.last_block)
            .bind(s.last_log)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// A fresh Postgres database on 127.0.0.1:5432 that a test's store runs on.
#[cfg(test)]
pub(crate) struct TestDatabase {
    admin: AnyPool,
    name: String,
}

/// A store on a fresh Postgres database named `prefix_<random>` (tests).
#[cfg(test)]
pub(crate) async fn postgres_store(prefix: &str) -> (Store, TestDatabase) {
    sqlx::any::install_default_drivers();
    let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
    let admin = AnyPool::connect(admin_url).await.expect("Postgres on 127.0.0.1:5432");
    let name = format!("{prefix}_{}", rand::random::<u32>());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
    let store =
        Store::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}")).await.unwrap();
    (store, TestDatabase { admin, name })
}

#[cfg(test)]
impl TestDatabase {
    /// Closes `store` and drops the database.
    pub(crate) async fn drop_with(self, store: Store) {
        store.close().await;
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        sqlx::query(AssertSqlSafe(drop)).execute(&self.admin).await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(block: u64, log: u64, kind: &str, id: u64) -> EventRow {
        EventRow {
            block_number: block,
            log_index: log,
            block_hash: B256::with_last_byte(block as u8),
            tx_hash: B256::with_last_byte(log as u8),
            block_time: 1_000 + block,
            contract: Address::with_last_byte(1),
            kind: kind.into(),
            ref_id: Some(format!("{id:#066x}")),
            actor: Some(Address::with_last_byte((id % 7) as u8 + 2)),
            counterparty: Some(Address::with_last_byte(9)),
            amount: Some((id * 10).to_string()),
            amount2: None,
            extra: Some(r#"{"deadline":5,"funded":true}"#.into()),
        }
    }

    /// The dashboard's reads: one object's events in chain order, one account's and the latest
    /// of some kinds newest first.
    #[tokio::test]
    async fn events_by_ref_actor_and_kind() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let events = vec![
            ev(1, 0, "BountyPosted", 1),
            ev(1, 1, "BountyPosted", 2),
            ev(2, 0, "BountyAwarded", 1),
            ev(3, 0, "BountyCompleted", 1),
            ev(4, 0, "BountyRefunded", 2),
        ];
        store.commit(&Batch { events, next_block: 5, ..Batch::default() }).await.unwrap();
        let of1 = store.events_of_ref(&format!("{:#066x}", 1)).await.unwrap();
        let kinds: Vec<&str> = of1.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["BountyPosted", "BountyAwarded", "BountyCompleted"]);
        assert!(store.events_of_ref("0x99").await.unwrap().is_empty());
        let actor = Address::with_last_byte(2 + 2); // ev's actor of id 2
        let by = store.events_of_actor(actor, 10).await.unwrap();
        assert_eq!(by.iter().map(|e| e.block_number).collect::<Vec<_>>(), [4, 1]);
        assert_eq!(store.events_of_actor(actor, 1).await.unwrap().len(), 1);
        let ends = store.latest_of_kinds(&["BountyCompleted", "BountyRefunded"], 10).await.unwrap();
        assert_eq!(ends.iter().map(|e| e.block_number).collect::<Vec<_>>(), [4, 3]);
        assert!(store.latest_of_kinds(&[], 10).await.unwrap().is_empty());
    }

    /// `bounty_seen`: nothing before the first run; after a batch, the checkpoint and whether
    /// the id has a row; a rewind below its posting forgets it again.
    async fn check_bounty_seen(store: &Store) {
        let (one, two) = (U256::from(1), U256::from(2));
        assert_eq!(store.bounty_seen(one).await.unwrap(), (None, false));
        let events = vec![ev(1, 0, "BountyPosted", 1), ev(3, 0, "BountyAwarded", 1)];
        store.commit(&Batch { events, next_block: 5, ..Batch::default() }).await.unwrap();
        assert_eq!(store.bounty_seen(one).await.unwrap(), (Some(5), true));
        assert_eq!(store.bounty_seen(two).await.unwrap(), (Some(5), false));
        store.rewind(1).await.unwrap();
        assert_eq!(store.bounty_seen(one).await.unwrap(), (Some(1), false));
    }

    /// The bounties settled since a block are found by the settlement index, not by reading
    /// every bounty (a reputation book is brought up to date with them every few seconds).
    #[tokio::test]
    async fn settlements_since_a_block_are_read_by_their_index() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let plan = format!("EXPLAIN QUERY PLAN {}", settled_between_sql());
        let rows = sqlx::query(AssertSqlSafe(plan))
            .bind(10i64)
            .bind(5i64)
            .fetch_all(&store.pool)
            .await
            .unwrap();
        let detail: Vec<String> = rows.iter().map(|r| r.try_get("detail").unwrap()).collect();
        assert!(detail.iter().any(|d| d.contains("idx_bounties_settled")), "{detail:?}");
    }

    #[tokio::test]
    async fn bounty_seen_sqlite() {
        check_bounty_seen(&Store::connect("sqlite::memory:").await.unwrap()).await;
    }

    /// The same statement on Postgres (127.0.0.1:5432, a fresh database dropped afterwards).
    #[tokio::test]
    async fn bounty_seen_postgres() {
        let (store, db) = postgres_store("reef_idx_seen").await;
        check_bounty_seen(&store).await;
        db.drop_with(store).await;
    }

    /// Several full multi-row chunks (anonymous `?` parameters on SQLite) round-trip in order,
    /// fold the derived rows, and rewind.
    #[tokio::test]
    async fn multi_chunk_commit_and_rewind_sqlite() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let n = 3 * CHUNK as u64 + 17;
        let mut events: Vec<EventRow> = Vec::new();
        for i in 0..n {
            events.push(ev(1 + i / 100, i % 100 * 2, "BountyPosted", i));
            events.push(ev(1 + i / 100, i % 100 * 2 + 1, "BountyAwarded", i));
        }
        events.push(events[5].clone()); // duplicate
        let next_block = 2 + n / 100;
        store
            .commit(&Batch { events: events.clone(), next_block, ..Batch::default() })
            .await
            .unwrap();
        let stored = store.events().await.unwrap();
        assert_eq!(stored.len(), 2 * n as usize);
        let mut want = events[..2 * n as usize].to_vec();
        want.sort_by_key(|e| (e.block_number, e.log_index));
        assert_eq!(stored, want);
        let bounties = store.bounties().await.unwrap();
        assert_eq!(bounties.len(), n as usize);
        assert!(bounties.iter().all(|b| b.status == escrow_client::Status::Awarded.name()));
        assert_eq!(store.next_block().await.unwrap(), Some(next_block));

        store.rewind(3).await.unwrap();
        assert_eq!(store.events().await.unwrap().len(), 2 * 200);
        assert_eq!(store.bounties().await.unwrap().len(), 200);
        assert_eq!(store.next_block().await.unwrap(), Some(3));
    }
}
