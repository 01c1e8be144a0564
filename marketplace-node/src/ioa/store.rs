//! Durable state of the IoA layer (agents, presence, groups, members, messages) over sqlx's
//! `Any` driver, so that the same SQL and the same migrations run on SQLite (the embedded
//! default) and on Postgres (shared by a mesh of nodes).

use alloy_primitives::Address;
use reef_wire::{AgentCard, AgentInfo, GroupInfo};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::error::{Error, Result};

/// Ordered migrations: (version, SQL). Every statement is valid on SQLite and Postgres.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_presence_tokens.sql")),
    (3, include_str!("migrations/0003_mesh.sql")),
    (4, include_str!("migrations/0004_retention.sql")),
];

/// Migrations written once per database (triggers differ between SQLite and Postgres), after
/// [`MIGRATIONS`]: `(version, SQLite, Postgres)`.
const MIGRATIONS_BY_BACKEND: &[(i64, &str, &str)] = &[
    (
        5,
        include_str!("migrations/0005_last_seq_trigger.sqlite.sql"),
        include_str!("migrations/0005_last_seq_trigger.postgres.sql"),
    ),
    (
        6,
        include_str!("migrations/0006_group_creation.sqlite.sql"),
        include_str!("migrations/0006_group_creation.postgres.sql"),
    ),
    // The same text on both (listed here so that it runs after 5 and 6).
    (
        7,
        include_str!("migrations/0007_drop_sender_index.sql"),
        include_str!("migrations/0007_drop_sender_index.sql"),
    ),
];

/// WAL pages after which a commit on one of the store's SQLite connections checkpoints.
const AUTOCHECKPOINT: u32 = 8192;

/// The same for the group-commit writer's connection, which leaves the copying to the
/// checkpointer ([`Store::connect_checkpointer`]). A checkpoint that runs inside a commit holds
/// every queued send until it has copied the WAL and fsynced the file: with the writer at 8192
/// pages, `ioa-bench` at 25 % of saturation showed a commit of 40–50 ms about every half
/// second, and the sends queued behind it made the next batches large and slow. The writer
/// still checkpoints past 16,384 pages (64 MiB): under sustained load the checkpointer never
/// finds the WAL without new frames, and SQLite starts the WAL over only after a checkpoint
/// that copied all of it and before any new commit. By then the checkpointer has copied nearly
/// everything, so the writer's checkpoint is short. The cost is disk: while sends keep coming
/// (measured: from 1,000 sends/s up) the WAL file grows to about 64 MiB and keeps that size;
/// only a node that goes quiet for longer than a checkpointer pass starts it over sooner.
/// 65,536 pages measured no better in `ioa-bench` (same-hour runs) for four times the disk.
const WRITER_AUTOCHECKPOINT: u32 = 16_384;

/// The SQLite checkpoints the store runs ([`Store::checkpoint_passive`], [`Store::checkpoint`]).
#[derive(Debug, Clone, Copy)]
enum WalCheckpoint {
    Passive,
    Truncate,
}

/// What `PRAGMA wal_checkpoint` answered: whether it could not finish (a reader or writer was
/// in the way), the WAL's frames, and how many of them are in the database now.
#[derive(Debug, Clone, Copy)]
struct CheckpointOutcome {
    busy: bool,
    frames: i64,
    copied: i64,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// SQL condition: message row `m` is within its group `g`'s retention horizon (`$n` is now,
/// unix ms). Groups without a retention keep everything.
fn within_horizon(m: &str, g: &str, now: usize) -> String {
    format!("({g}.retention_secs IS NULL OR {m}.ts >= ${now} - {g}.retention_secs * 1000)")
}

/// Largest number of values in one `IN (…)` list or rows in one multi-row `INSERT`.
const CHUNK: usize = 64;

/// Most sends [`Store::append_batch`] appends in one statement (6 parameters each); a larger
/// batch (a loaded node's) takes the locked path of a few statements per transaction.
const APPEND_ROWS: usize = 64;

/// Rows per multi-row INSERT of the locked path, largest first.
const INSERT_ROWS: [usize; 5] = [16, 8, 4, 2, 1];

/// `(a = $1 AND b = $2) OR (a = $3 AND b = $4) OR …` (`n` pairs). An OR chain rather than
/// `(a, b) IN (VALUES …)`, which SQLite answers with a full table scan; this form uses the
/// `(a, b)` index on both databases.
fn pair_match(a: &str, b: &str, n: usize) -> String {
    (0..n)
        .map(|k| format!("({a} = ${} AND {b} = ${})", 2 * k + 1, 2 * k + 2))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The rows `select` (`SELECT … FROM …`) finds whose columns `(a, b)` equal one of `pairs`,
/// asked [`CHUNK`] pairs at a time with [`pair_match`].
async fn rows_matching_pairs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    select: &str,
    (a, b): (&str, &str),
    pairs: &[(&str, &str)],
) -> Result<Vec<sqlx::any::AnyRow>> {
    let mut rows = Vec::new();
    for chunk in pairs.chunks(CHUNK) {
        let chunk = padded(chunk);
        let sql = format!("{select} WHERE {}", pair_match(a, b, chunk.len()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (x, y) in &chunk {
            q = q.bind((*x).to_owned()).bind((*y).to_owned());
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// `$first, $first+1, …` (`n` placeholders).
/// Most addresses bound in one `IN (…)` list (SQLite allows 32,766 parameters, Postgres 65,535).
const AGENTS_PER_QUERY: usize = 500;

pub(crate) fn placeholders(first: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 5);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('$');
        s.push_str(&(first + i).to_string());
    }
    s
}

/// `items` padded to a power-of-two length by repeating the last one (harmless in `IN` lists
/// and `CASE`), so that few distinct statements are prepared and cached.
fn padded<T: Copy>(items: &[T]) -> Vec<T> {
    let mut v = items.to_vec();
    if let Some(&last) = items.last() {
        v.resize(items.len().next_power_of_two(), last);
    }
    v
}

/// One message of a batch given to [`Store::append_batch`].
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// Target group.
    pub group_id: &'a str,
    /// Client idempotency key.
    pub msg_id: &'a str,
    /// Authenticated sender.
    pub sender: &'a Address,
}

/// A message's stored frame around its seq (`head ‖ seq ‖ tail`): the seq is only known
/// inside [`Store::append_batch`]'s statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTemplate {
    /// The frame's text before the seq's digits.
    pub head: String,
    /// The frame's text after them.
    pub tail: String,
}

impl FrameTemplate {
    /// The stored frame of the message numbered `seq`.
    pub fn with_seq(&self, seq: u64) -> String {
        format!("{}{seq}{}", self.head, self.tail)
    }
}

/// Outcome of [`Store::add_member_capped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CappedAdd {
    /// Added.
    Added,
    /// Already a member (or the creator); nothing changed.
    AlreadyMember,
    /// The group already has `cap` members besides its creator.
    Full,
    /// No such group.
    NoGroup,
    /// The caller is not the group's creator; nothing changed.
    NotCreator,
}

/// Database handle.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    postgres: bool,
}

/// Outcome of [`Store::append`].
#[derive(Debug, Clone)]
pub struct Appended {
    /// Seq of the message.
    pub seq: u64,
    /// The stored `message` frame text.
    pub frame: String,
    /// True when `msg_id` had already been stored (nothing new was written).
    pub duplicate: bool,
}

fn addr_key(a: &Address) -> String {
    a.to_string()
}

fn parse_addr(s: &str) -> Result<Address> {
    s.parse().map_err(|e| Error::Internal(format!("bad address in db: {e}")))
}

impl Store {
    /// Connect (creating the SQLite file and its directory if needed) and run migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let store = Self::open(url, None, AUTOCHECKPOINT).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// A second handle on an already migrated database with its own small pool, for a task
    /// running on another runtime (the group-commit writer). Its SQLite connection leaves
    /// checkpoints to [`Store::connect_checkpointer`] (see
    /// [`WRITER_AUTOCHECKPOINT`]).
    pub async fn connect_writer(url: &str) -> Result<Self> {
        Self::open(url, Some(1), WRITER_AUTOCHECKPOINT).await
    }

    /// A handle with one connection of its own for [`Store::checkpoint_passive`], so that the copy of
    /// the WAL into the database and its fsyncs run beside the group-commit writer, not inside
    /// one of its commits.
    pub async fn connect_checkpointer(url: &str) -> Result<Self> {
        Self::open(url, Some(1), AUTOCHECKPOINT).await
    }

    /// Whether this store is on Postgres (which checkpoints by itself).
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    async fn open(url: &str, max_connections: Option<u32>, autocheckpoint: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let url = if !postgres
            && url.starts_with("sqlite:")
            && !url.contains('?')
            && !url.contains(":memory:")
        {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Internal(format!("create {dir:?}: {e}")))?;
            }
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        // SQLite: 2 connections (the group-commit writer has its own, `connect_writer`).
        // Every commit on one connection makes the others drop their page cache at their next
        // read, so more connections to the one file cost CPU without adding write concurrency
        // (this pool at 2 and the market's at 1, instead of 4 and 2, took about a tenth off
        // the node's CPU per bounty in `market_bench`, same-hour A/B).
        let max = max_connections.unwrap_or(if postgres { 16 } else { 2 });
        let mut opts = AnyPoolOptions::new().max_connections(max);
        if !postgres {
            // WAL + synchronous=NORMAL: commits do not fsync (see docs/protocol.md,
            // "durability"); a bigger page cache and rarer checkpoints cut the per-commit page
            // I/O of the group-commit writer; lock waits in microseconds (`reef_indexer::sqlite`),
            // as the node's other connections write to the same file. No memory-mapped reads:
            // in WAL mode a connection that sees another's commit unmaps the whole file before
            // its next read (munmap, a TLB shootdown on every core, then page faults to map it
            // again), and the market and the indexer commit to this file all the time. Turned
            // off, the node's CPU per settled bounty in `market_bench` at 40 posts/s fell about
            // 7 % (same-hour A/B), and `ioa-bench` at saturation did not drop.
            let init = reef_indexer::sqlite::connection_init(
                10_000,
                // secure_delete: a deleted message's bytes are overwritten with zeros in its page
                // (and freed pages zeroed), so an expired or erased message is gone from the
                // file, not just unlinked (docs/protocol.md, "Retention and erasure").
                &format!(
                    "PRAGMA cache_size = -16384; PRAGMA mmap_size = 0; \
                     PRAGMA wal_autocheckpoint = {autocheckpoint}; PRAGMA secure_delete = ON;"
                ),
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
        Ok(Self { pool, postgres })
    }

    async fn migrate(&self) -> Result<()> {
        let list =
            reef_indexer::migrate::for_backend(MIGRATIONS, MIGRATIONS_BY_BACKEND, self.postgres);
        let m = reef_indexer::migrate::Migrations {
            table: "ioa_migrations",
            applied_at: true,
            lock_key: 7262331,
            list: &list,
        };
        reef_indexer::migrate::run(&self.pool, self.postgres, m).await.map_err(Into::into)
    }

    /// Create or replace an agent's card.
    pub async fn upsert_agent(&self, address: &Address, card: &AgentCard) -> Result<()> {
        let json = serde_json::to_string(card).map_err(|e| Error::Internal(e.to_string()))?;
        let now = reef_wire::unix_now() as i64;
        sqlx::query(
            "INSERT INTO ioa_agents (address, card, registered_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (address) DO UPDATE SET card = excluded.card, updated_at = excluded.updated_at",
        )
        .bind(addr_key(address))
        .bind(json)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All registered agents with presence: online when some node holds a connection of the
    /// agent and refreshed that row at or after `fresh_since` (unix s), so the agents of a
    /// crashed node turn offline once its heartbeats are older than the TTL.
    pub async fn all_agents(&self, fresh_since: u64) -> Result<Vec<AgentInfo>> {
        let rows = sqlx::query(
            "SELECT a.address, a.card, \
             CAST(COALESCE(SUM(CASE WHEN p.last_seen >= $1 AND p.conns > 0 THEN p.conns ELSE 0 END), 0) AS BIGINT) AS conns, \
             CAST(COALESCE(MAX(p.last_seen), a.updated_at) AS BIGINT) AS last_seen \
             FROM ioa_agents a LEFT JOIN ioa_presence p ON p.address = a.address \
             GROUP BY a.address, a.card, a.updated_at",
        )
        .bind(fresh_since.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// The agents among `addresses` with presence (see [`Store::all_agents`]), in a few
    /// queries: a ranked discovery reads only its candidates, not every agent.
    pub async fn agents_in(
        &self,
        addresses: &[Address],
        fresh_since: u64,
    ) -> Result<Vec<AgentInfo>> {
        let mut out = Vec::with_capacity(addresses.len());
        for chunk in addresses.chunks(AGENTS_PER_QUERY) {
            let sql = format!(
                "SELECT a.address, a.card, \
                 CAST(COALESCE(SUM(CASE WHEN p.last_seen >= $1 AND p.conns > 0 THEN p.conns ELSE 0 END), 0) AS BIGINT) AS conns, \
                 CAST(COALESCE(MAX(p.last_seen), a.updated_at) AS BIGINT) AS last_seen \
                 FROM ioa_agents a LEFT JOIN ioa_presence p ON p.address = a.address \
                 WHERE a.address IN ({}) GROUP BY a.address, a.card, a.updated_at",
                placeholders(2, chunk.len())
            );
            // Only placeholders are formatted in; the addresses are bound.
            let mut q =
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(fresh_since.min(i64::MAX as u64) as i64);
            for a in chunk {
                q = q.bind(addr_key(a));
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(agent_from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// One agent with presence (see [`Store::all_agents`] for `fresh_since`).
    pub async fn agent(&self, address: &Address, fresh_since: u64) -> Result<Option<AgentInfo>> {
        let row = sqlx::query(
            "SELECT a.address, a.card, \
             CAST(COALESCE(SUM(CASE WHEN p.last_seen >= $2 AND p.conns > 0 THEN p.conns ELSE 0 END), 0) AS BIGINT) AS conns, \
             CAST(COALESCE(MAX(p.last_seen), a.updated_at) AS BIGINT) AS last_seen \
             FROM ioa_agents a LEFT JOIN ioa_presence p ON p.address = a.address \
             WHERE a.address = $1 GROUP BY a.address, a.card, a.updated_at",
        )
        .bind(addr_key(address))
        .bind(fresh_since.min(i64::MAX as u64) as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    /// Refresh `last_seen` of every presence row of `node_id` that has open connections: one
    /// statement per heartbeat for all of the node's connections.
    pub async fn heartbeat(&self, node_id: &str) -> Result<()> {
        sqlx::query("UPDATE ioa_presence SET last_seen = $2 WHERE node_id = $1 AND conns > 0")
            .bind(node_id.to_owned())
            .bind(reef_wire::unix_now() as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Store a REST bearer token (by hash) for `address`, valid until `expires_at` (unix s), and
    /// drop expired ones.
    pub async fn insert_token(
        &self,
        token_hash: &str,
        address: &Address,
        node_id: &str,
        expires_at: u64,
    ) -> Result<()> {
        let now = reef_wire::unix_now() as i64;
        sqlx::query("DELETE FROM ioa_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO ioa_tokens (token_hash, address, node_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash.to_owned())
        .bind(addr_key(address))
        .bind(node_id.to_owned())
        .bind(now)
        .bind(expires_at.min(i64::MAX as u64) as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The id of the mesh this database serves: created at random by the first caller, the
    /// same for every node sharing the database afterwards.
    pub async fn mesh_id(&self) -> Result<String> {
        sqlx::query(
            "INSERT INTO ioa_mesh (id, mesh_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(format!("m{}", super::random_hex(8)))
        .execute(&self.pool)
        .await?;
        let row =
            sqlx::query("SELECT mesh_id FROM ioa_mesh WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get::<String, _>("mesh_id")?)
    }

    /// The address and expiry (unix s) of a token hash, if stored and not expired.
    pub async fn token(&self, token_hash: &str) -> Result<Option<(Address, u64)>> {
        let row = sqlx::query(
            "SELECT address, expires_at FROM ioa_tokens WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash.to_owned())
        .bind(reef_wire::unix_now() as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                parse_addr(&r.try_get::<String, _>("address")?)?,
                r.try_get::<i64, _>("expires_at")?.max(0) as u64,
            ))
        })
        .transpose()
    }

    /// Record a connection (`up`) or disconnection of `address` on `node_id`.
    pub async fn presence(&self, address: &Address, node_id: &str, up: bool) -> Result<()> {
        let sql = if up {
            "INSERT INTO ioa_presence (address, node_id, conns, last_seen) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (address, node_id) DO UPDATE SET conns = ioa_presence.conns + 1, last_seen = $3"
        } else {
            "UPDATE ioa_presence SET conns = conns - 1, last_seen = $3 WHERE address = $1 AND node_id = $2 AND conns > 0"
        };
        sqlx::query(sql)
            .bind(addr_key(address))
            .bind(node_id.to_owned())
            .bind(reef_wire::unix_now() as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forget this node's presence rows (start-up after a crash); returns the agents that were
    /// connected to it when its previous process stopped.
    pub async fn reset_presence(&self, node_id: &str) -> Result<Vec<Address>> {
        let rows = sqlx::query(
            "UPDATE ioa_presence SET conns = 0 WHERE node_id = $1 AND conns > 0 RETURNING address",
        )
        .bind(node_id.to_owned())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>("address").ok())
            .filter_map(|a| a.parse().ok())
            .collect())
    }

    /// Create a group with its creator and initial members.
    pub async fn create_group(
        &self,
        group_id: &str,
        name: &str,
        creator: &Address,
        members: &[Address],
        parent: Option<&str>,
    ) -> Result<GroupInfo> {
        let now = reef_wire::unix_now() as i64;
        let mut all = vec![*creator];
        for m in members {
            if !all.contains(m) {
                all.push(*m);
            }
        }
        let list: Vec<String> = all.iter().map(addr_key).collect();
        let list = serde_json::to_string(&list)
            .map_err(|e| Error::Internal(format!("member list: {e}")))?;
        // One statement: the view's trigger (migration 6) inserts the group and its members.
        sqlx::query(
            "INSERT INTO ioa_group_creations (group_id, name, creator, parent_group_id, created_at, members) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(group_id.to_owned())
        .bind(name.to_owned())
        .bind(addr_key(creator))
        .bind(parent.map(str::to_owned))
        .bind(now)
        .bind(list)
        .execute(&self.pool)
        .await?;
        // The group as created (members in address order, as SQLite reads them back),
        // without reading it back.
        all.sort_by_cached_key(addr_key);
        Ok(GroupInfo {
            group_id: group_id.to_owned(),
            name: name.to_owned(),
            creator: *creator,
            parent_group_id: parent.map(str::to_owned),
            members: all,
            last_seq: 0,
        })
    }

    /// What a member joining `group_id` needs, in one read: the group's last seq and the first
    /// stored frames after `after` (at most `limit`, in order). `None` if `address` is not a
    /// member.
    pub async fn join(
        &self,
        group_id: &str,
        address: &Address,
        after: u64,
        limit: u32,
    ) -> Result<Option<(u64, Vec<(u64, String)>)>> {
        // One row per frame, or one row without a frame when there is none to replay.
        let rows = sqlx::query(
            "SELECT g.last_seq, m.seq, m.frame FROM ioa_groups g \
             JOIN ioa_members mb ON mb.group_id = g.group_id AND mb.address = $2 \
             LEFT JOIN ioa_messages m ON m.group_id = g.group_id AND m.seq > $3 AND m.seq <= g.last_seq \
             AND (g.retention_secs IS NULL OR m.ts >= $5 - g.retention_secs * 1000) \
             WHERE g.group_id = $1 ORDER BY m.seq LIMIT $4",
        )
        .bind(group_id.to_owned())
        .bind(addr_key(address))
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(i64::from(limit.max(1)))
        .bind(now_ms() as i64)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let last = first.try_get::<i64, _>("last_seq")?.max(0) as u64;
        let mut frames = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(seq) = r.try_get::<Option<i64>, _>("seq")? {
                frames.push((seq.max(0) as u64, r.try_get::<String, _>("frame")?));
            }
        }
        Ok(Some((last, frames)))
    }

    /// A group with its members, if it exists.
    pub async fn group(&self, group_id: &str) -> Result<Option<GroupInfo>> {
        let Some(row) = sqlx::query("SELECT group_id, name, creator, parent_group_id, last_seq FROM ioa_groups WHERE group_id = $1")
            .bind(group_id.to_owned())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let members = sqlx::query(
            "SELECT address FROM ioa_members WHERE group_id = $1 ORDER BY added_at, address",
        )
        .bind(group_id.to_owned())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| parse_addr(&r.try_get::<String, _>("address")?))
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(GroupInfo {
            group_id: row.try_get("group_id")?,
            name: row.try_get("name")?,
            creator: parse_addr(&row.try_get::<String, _>("creator")?)?,
            parent_group_id: row.try_get("parent_group_id")?,
            members,
            last_seq: row.try_get::<i64, _>("last_seq")?.max(0) as u64,
        }))
    }

    /// Groups `address` belongs to.
    pub async fn groups_of(&self, address: &Address) -> Result<Vec<GroupInfo>> {
        let ids: Vec<String> =
            sqlx::query("SELECT group_id FROM ioa_members WHERE address = $1 ORDER BY group_id")
                .bind(addr_key(address))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("group_id"))
                .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(g) = self.group(&id).await? {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// Whether `address` is a member of `group_id`.
    pub async fn is_member(&self, group_id: &str, address: &Address) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 AS one FROM ioa_members WHERE group_id = $1 AND address = $2")
            .bind(group_id.to_owned())
            .bind(addr_key(address))
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Add a member; false if already one.
    pub async fn add_member(&self, group_id: &str, address: &Address) -> Result<bool> {
        let res = sqlx::query(
            "INSERT INTO ioa_members (group_id, address, added_at) VALUES ($1, $2, $3) ON CONFLICT (group_id, address) DO NOTHING",
        )
        .bind(group_id.to_owned())
        .bind(addr_key(address))
        .bind(reef_wire::unix_now() as i64)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Adds `address` to `group_id` for its creator `by`, only while the group has fewer than
    /// `cap` members besides the creator. The group's row is locked first, so concurrent adds
    /// (two latecomers at once, or two nodes of a mesh) cannot both take the last place.
    pub async fn add_member_capped(
        &self,
        group_id: &str,
        by: &Address,
        address: &Address,
        cap: usize,
    ) -> Result<CappedAdd> {
        crate::metrics::transaction_begun();
        let mut tx = self.pool.begin().await?;
        let lock = if self.postgres {
            "SELECT creator FROM ioa_groups WHERE group_id = $1 FOR UPDATE"
        } else {
            // Takes SQLite's write lock up front, as the writer's batches do.
            "UPDATE ioa_groups SET last_seq = last_seq WHERE group_id = $1 RETURNING creator"
        };
        let Some(row) =
            sqlx::query(lock).bind(group_id.to_owned()).fetch_optional(&mut *tx).await?
        else {
            return Ok(CappedAdd::NoGroup);
        };
        let creator: String = row.try_get("creator")?;
        if creator != addr_key(by) {
            return Ok(CappedAdd::NotCreator);
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COUNT(CASE WHEN address = $2 THEN 1 END) AS me \
             FROM ioa_members WHERE group_id = $1 AND address <> $3",
        )
        .bind(group_id.to_owned())
        .bind(addr_key(address))
        .bind(&creator)
        .fetch_one(&mut *tx)
        .await?;
        let members = row.try_get::<i64, _>("n")?.max(0) as usize;
        let already = row.try_get::<i64, _>("me")? > 0;
        if already || creator == addr_key(address) {
            return Ok(CappedAdd::AlreadyMember);
        }
        if members >= cap {
            return Ok(CappedAdd::Full);
        }
        sqlx::query("INSERT INTO ioa_members (group_id, address, added_at) VALUES ($1, $2, $3)")
            .bind(group_id.to_owned())
            .bind(addr_key(address))
            .bind(reef_wire::unix_now() as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(CappedAdd::Added)
    }

    /// Remove a member; false if it was not one.
    pub async fn remove_member(&self, group_id: &str, address: &Address) -> Result<bool> {
        let res = sqlx::query("DELETE FROM ioa_members WHERE group_id = $1 AND address = $2")
            .bind(group_id.to_owned())
            .bind(addr_key(address))
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Highest seq of a group (None: no such group).
    pub async fn last_seq(&self, group_id: &str) -> Result<Option<u64>> {
        Ok(sqlx::query("SELECT last_seq FROM ioa_groups WHERE group_id = $1")
            .bind(group_id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<i64, _>("last_seq"))
            .transpose()?
            .map(|s| s.max(0) as u64))
    }

    /// Group commit: append a batch of messages in ONE transaction and return, per input
    /// (same order), `None` when the sender is not a member (or the group does not exist),
    /// else the stored message. A batch of up to [`APPEND_ROWS`] sends (every batch of a
    /// lightly loaded node) is one autocommitted statement; a larger one takes
    /// [`Store::append_locked`]'s few statements.
    ///
    /// The statement reads each group's counter, keeps the messages whose sender is a member
    /// and whose `msg_id` is not stored yet, numbers them per group in arrival order
    /// (`last_seq + row_number()`), inserts them with their frames, and a trigger on
    /// `ioa_messages` (migration 5) moves each group's counter to its last new seq. One
    /// statement is one transaction, on both databases, so no two writers ever assign the
    /// same seq: SQLite takes its write lock when a writing statement starts, and on Postgres
    /// the counter rows are read `FOR UPDATE` in group-id order, so concurrent nodes lock in
    /// one global order and cannot deadlock. A node whose sends waited on that lock reads the
    /// counters its predecessor committed.
    ///
    /// Idempotent on `(group_id, msg_id)`, including repeats inside the batch: a repeat gets
    /// the first message's seq and frame with `duplicate`. Inputs the statement did not store
    /// (rare: a re-sent message, or a stranger's send) are looked up afterwards, a stored
    /// message only on behalf of a member of its group.
    ///
    /// `make_frame(index)` builds the stored frame of `batch[index]` around its seq, which only
    /// the statement knows: the frame is `head ‖ seq ‖ tail`.
    pub async fn append_batch(
        &self,
        batch: &[NewMessage<'_>],
        mut make_frame: impl FnMut(usize) -> FrameTemplate,
    ) -> Result<Vec<Option<Appended>>> {
        use std::collections::HashMap;
        if batch.len() > APPEND_ROWS {
            return self.append_locked(batch, |i, seq| make_frame(i).with_seq(seq)).await;
        }
        let mut out: Vec<Option<Appended>> = vec![None; batch.len()];
        if batch.is_empty() {
            return Ok(out);
        }
        let senders: Vec<String> = batch.iter().map(|m| addr_key(m.sender)).collect();
        // The first input of every (group, msg_id, sender), by its place in `fresh`; a repeat
        // points at it. The same id from two members of a group in one batch fails the
        // statement (unique key), and the writer then retries its sends one by one: the second
        // becomes a duplicate.
        let mut first: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(batch.len());
        let mut repeat_of: Vec<Option<usize>> = vec![None; batch.len()];
        let mut fresh: Vec<usize> = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            match first.entry((m.group_id, m.msg_id, senders[i].as_str())) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    repeat_of[i] = Some(fresh[*e.get()]);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(fresh.len());
                    fresh.push(i);
                }
            }
        }
        // One statement (at most APPEND_ROWS rows: SQLite looks every `$n` parameter up by
        // name, so a statement's cost grows with the square of its parameters).
        let templates: Vec<FrameTemplate> = fresh.iter().map(|&i| make_frame(i)).collect();
        let q = self.append_query(batch, &senders, &fresh, &templates, now_ms() as i64);
        let stored = q.fetch_all(&self.pool).await?;
        for r in stored {
            let key: (String, String, String) =
                (r.try_get("group_id")?, r.try_get("msg_id")?, r.try_get("sender")?);
            let Some(&k) = first.get(&(key.0.as_str(), key.1.as_str(), key.2.as_str())) else {
                return Err(Error::Internal(format!("stored an unknown message {key:?}")));
            };
            let (i, t) = (fresh[k], &templates[k]);
            let seq = r.try_get::<i64, _>("seq")?.max(0) as u64;
            out[i] = Some(Appended { seq, frame: t.with_seq(seq), duplicate: false });
        }

        // Inputs not stored now: already stored before (a duplicate, told only to a member of
        // its group), or not allowed (`None`).
        let missing: Vec<usize> = fresh.iter().copied().filter(|&i| out[i].is_none()).collect();
        for chunk in missing.chunks(CHUNK) {
            let chunk = padded(chunk);
            let cond = (0..chunk.len())
                .map(|k| {
                    format!(
                        "(x.group_id = ${} AND x.msg_id = ${} AND mb.address = ${})",
                        3 * k + 1,
                        3 * k + 2,
                        3 * k + 3
                    )
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            let sql = format!(
                "SELECT x.group_id, x.msg_id, mb.address AS sender, x.seq, x.frame \
                 FROM ioa_messages x JOIN ioa_members mb ON mb.group_id = x.group_id WHERE {cond}"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &i in &chunk {
                q = q
                    .bind(batch[i].group_id.to_owned())
                    .bind(batch[i].msg_id.to_owned())
                    .bind(senders[i].clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                let key: (String, String, String) =
                    (r.try_get("group_id")?, r.try_get("msg_id")?, r.try_get("sender")?);
                if let Some(&k) = first.get(&(key.0.as_str(), key.1.as_str(), key.2.as_str())) {
                    let i = fresh[k];
                    out[i] = Some(Appended {
                        seq: r.try_get::<i64, _>("seq")?.max(0) as u64,
                        frame: r.try_get("frame")?,
                        duplicate: true,
                    });
                }
            }
        }
        // Repeats inside the batch (same group, id and sender): the first one's outcome.
        for i in 0..batch.len() {
            if let Some(f) = repeat_of[i] {
                out[i] = out[f].clone().map(|a| Appended { duplicate: true, ..a });
            }
        }
        Ok(out)
    }

    /// [`Store::append_batch`] for a batch of more than [`APPEND_ROWS`] sends (a loaded
    /// node's): one transaction of few statements, whatever the batch's size. Lock the counter
    /// rows of every group of the batch (Postgres: `SELECT … ORDER BY group_id FOR UPDATE`, so
    /// concurrent nodes lock in one global order and cannot deadlock; SQLite: an
    /// `UPDATE … RETURNING`, which takes the write lock up front), read membership, give every
    /// new message the next seq of its group in arrival order and insert the rows (the
    /// counters follow them by the trigger). Already stored `msg_id`s are found
    /// optimistically: the rows are inserted with `ON CONFLICT (group_id, msg_id) DO
    /// NOTHING`, and only if one of them was skipped is the transaction rolled back and the
    /// batch redone with an explicit lookup of stored ids first.
    async fn append_locked(
        &self,
        batch: &[NewMessage<'_>],
        mut make_frame: impl FnMut(usize, u64) -> String,
    ) -> Result<Vec<Option<Appended>>> {
        if let Some(out) = self.try_append(batch, &mut make_frame, false).await? {
            return Ok(out);
        }
        self.try_append(batch, &mut make_frame, true)
            .await?
            .ok_or_else(|| Error::Internal("duplicate msg_id not found by lookup".into()))
    }

    /// One attempt of [`Store::append_batch`]; `Ok(None)`: an insert hit an already stored
    /// `msg_id` that was not looked up (the transaction was rolled back).
    async fn try_append(
        &self,
        batch: &[NewMessage<'_>],
        make_frame: &mut impl FnMut(usize, u64) -> String,
        lookup: bool,
    ) -> Result<Option<Vec<Option<Appended>>>> {
        use std::collections::{HashMap, HashSet};
        let mut out: Vec<Option<Appended>> = vec![None; batch.len()];
        let senders: Vec<String> = batch.iter().map(|m| addr_key(m.sender)).collect();
        let mut gids: Vec<&str> = batch.iter().map(|m| m.group_id).collect();
        gids.sort_unstable();
        gids.dedup();
        crate::metrics::transaction_begun();
        let mut tx = self.pool.begin().await?;

        // 1. Lock the counters (sorted chunks, sorted inside each chunk: one global order).
        let mut next: HashMap<&str, u64> = HashMap::with_capacity(gids.len());
        for chunk in gids.chunks(CHUNK) {
            let chunk = padded(chunk);
            let sql = if self.postgres {
                format!(
                    "SELECT group_id, last_seq FROM ioa_groups WHERE group_id IN ({}) \
                     ORDER BY group_id COLLATE \"C\" FOR UPDATE",
                    placeholders(1, chunk.len())
                )
            } else {
                format!(
                    "UPDATE ioa_groups SET last_seq = last_seq WHERE group_id IN ({}) RETURNING group_id, last_seq",
                    placeholders(1, chunk.len())
                )
            };
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for g in &chunk {
                q = q.bind((*g).to_owned());
            }
            for r in q.fetch_all(&mut *tx).await? {
                let g: String = r.try_get("group_id")?;
                if let Some(k) = chunk.iter().find(|k| **k == g) {
                    next.insert(k, r.try_get::<i64, _>("last_seq")?.max(0) as u64);
                }
            }
        }

        // 2. Membership of (group, sender) pairs of existing groups.
        let mut pairs: Vec<(&str, &str)> = batch
            .iter()
            .zip(&senders)
            .filter(|(m, _)| next.contains_key(m.group_id))
            .map(|(m, s)| (m.group_id, s.as_str()))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut members: HashSet<(String, String)> = HashSet::with_capacity(pairs.len());
        let select = "SELECT group_id, address FROM ioa_members";
        for r in rows_matching_pairs(&mut tx, select, ("group_id", "address"), &pairs).await? {
            members.insert((r.try_get("group_id")?, r.try_get("address")?));
        }
        let allowed: Vec<usize> = (0..batch.len())
            .filter(|&i| members.contains(&(batch[i].group_id.to_owned(), senders[i].clone())))
            .collect();

        // 3. Already stored msg_ids, on the second attempt only (the counter row locks order
        //    us after any other writer of these groups).
        let mut keys: Vec<(&str, &str)> = if lookup {
            allowed.iter().map(|&i| (batch[i].group_id, batch[i].msg_id)).collect()
        } else {
            Vec::new()
        };
        keys.sort_unstable();
        keys.dedup();
        let mut known: HashMap<(String, String), Appended> = HashMap::new();
        let select = "SELECT group_id, msg_id, seq, frame FROM ioa_messages";
        for r in rows_matching_pairs(&mut tx, select, ("group_id", "msg_id"), &keys).await? {
            known.insert(
                (r.try_get("group_id")?, r.try_get("msg_id")?),
                Appended {
                    seq: r.try_get::<i64, _>("seq")?.max(0) as u64,
                    frame: r.try_get("frame")?,
                    duplicate: true,
                },
            );
        }

        // 4. Seqs in arrival order, per group.
        let mut fresh: Vec<usize> = Vec::new();
        for &i in &allowed {
            let m = batch[i];
            let key = (m.group_id.to_owned(), m.msg_id.to_owned());
            if let Some(prev) = known.get(&key) {
                out[i] = Some(prev.clone());
                continue;
            }
            let Some(seq) = next.get_mut(m.group_id) else { continue };
            *seq += 1;
            let a = Appended { seq: *seq, frame: make_frame(i, *seq), duplicate: false };
            known.insert(key, Appended { duplicate: true, ..a.clone() });
            out[i] = Some(a);
            fresh.push(i);
        }
        if !fresh.is_empty() {
            let stored_at = now_ms() as i64;
            // 5. Insert (multi-row statements of power-of-two sizes: few distinct statements).
            let mut rest = &fresh[..];
            while !rest.is_empty() {
                let take = INSERT_ROWS.iter().copied().find(|&k| k <= rest.len()).unwrap_or(1);
                let (chunk, tail) = rest.split_at(take);
                rest = tail;
                let mut sql = String::from(
                    "INSERT INTO ioa_messages (group_id, seq, msg_id, sender, frame, ts) VALUES ",
                );
                let rows = chunk.len() as u64;
                for k in 0..chunk.len() {
                    if k > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    sql.push_str(&placeholders(k * 5 + 2, 5));
                    sql.push_str(", $1)");
                }
                sql.push_str(" ON CONFLICT (group_id, msg_id) DO NOTHING");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(stored_at);
                for &i in chunk {
                    let a = out[i].as_ref().ok_or_else(|| Error::Internal("lost row".into()))?;
                    q = q
                        .bind(batch[i].group_id.to_owned())
                        .bind(a.seq as i64)
                        .bind(batch[i].msg_id.to_owned())
                        .bind(senders[i].clone())
                        .bind(a.frame.clone());
                }
                if q.execute(&mut *tx).await?.rows_affected() != rows {
                    tx.rollback().await?;
                    return Ok(None);
                }
            }
            // 6. The counters follow the rows (the trigger of migration 5).
        }
        tx.commit().await?;
        Ok(Some(out))
    }

    /// One statement of [`Store::append_batch`]: the inputs `rows` (indexes into `batch`,
    /// with their frame templates), padded to a power of two with rows of no group (they match
    /// nothing), so that few distinct statements are prepared and cached.
    fn append_query<'q>(
        &self,
        batch: &[NewMessage<'_>],
        senders: &[String],
        rows: &[usize],
        templates: &[FrameTemplate],
        stored_at: i64,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        let padded_len = rows.len().next_power_of_two();
        let mut values = String::with_capacity(padded_len * 40);
        for k in 0..padded_len {
            if k > 0 {
                values.push_str(", ");
            }
            values.push('(');
            values.push_str(&placeholders(k * 6 + 2, 6));
            values.push(')');
        }
        let lock = if self.postgres { " ORDER BY group_id COLLATE \"C\" FOR UPDATE" } else { "" };
        let sql = format!(
            "WITH v (i, group_id, msg_id, sender, head, tail) AS (VALUES {values}), \
             g AS (SELECT group_id, last_seq FROM ioa_groups \
                   WHERE group_id IN (SELECT group_id FROM v){lock}), \
             ok AS MATERIALIZED (SELECT v.group_id, v.msg_id, v.sender, v.head, v.tail, \
                   g.last_seq + row_number() OVER (PARTITION BY v.group_id ORDER BY v.i) AS seq \
                   FROM v JOIN g ON g.group_id = v.group_id \
                   WHERE EXISTS (SELECT 1 FROM ioa_members mb \
                                 WHERE mb.group_id = v.group_id AND mb.address = v.sender) \
                   AND NOT EXISTS (SELECT 1 FROM ioa_messages x \
                                   WHERE x.group_id = v.group_id AND x.msg_id = v.msg_id)) \
             INSERT INTO ioa_messages (group_id, seq, msg_id, sender, frame, ts) \
             SELECT group_id, seq, msg_id, sender, head || CAST(seq AS TEXT) || tail, $1 \
             FROM ok RETURNING group_id, msg_id, sender, seq"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(stored_at);
        for k in 0..padded_len {
            match (rows.get(k), templates.get(k)) {
                (Some(&i), Some(t)) => {
                    q = q
                        .bind(i as i64)
                        .bind(batch[i].group_id.to_owned())
                        .bind(batch[i].msg_id.to_owned())
                        .bind(senders[i].clone())
                        .bind(t.head.clone())
                        .bind(t.tail.clone());
                }
                _ => {
                    q = q
                        .bind((batch.len() + k) as i64)
                        .bind(None::<String>)
                        .bind(None::<String>)
                        .bind(None::<String>)
                        .bind(None::<String>)
                        .bind(None::<String>);
                }
            }
        }
        q
    }

    /// Set (or, with `None`, clear) the retention of `group_id`; only its creator may.
    /// `Ok(false)`: no such group, or `address` is not its creator.
    pub async fn set_retention(
        &self,
        group_id: &str,
        address: &Address,
        retention_secs: Option<u64>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE ioa_groups SET retention_secs = $3 WHERE group_id = $1 AND creator = $2",
        )
        .bind(group_id.to_owned())
        .bind(addr_key(address))
        .bind(retention_secs.map(|s| s.min(i64::MAX as u64 / 1000) as i64))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The retention of `group_id` in seconds (`Ok(None)`: none, or no such group).
    pub async fn retention(&self, group_id: &str) -> Result<Option<u64>> {
        Ok(sqlx::query("SELECT retention_secs FROM ioa_groups WHERE group_id = $1")
            .bind(group_id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<Option<i64>, _>("retention_secs"))
            .transpose()?
            .flatten()
            .map(|s| s.max(0) as u64))
    }

    /// Delete every message older than its group's retention at `now` (unix ms): the rows
    /// go, not a flag. Returns how many were deleted.
    pub async fn purge_expired(&self, now: u64) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM ioa_messages WHERE EXISTS (SELECT 1 FROM ioa_groups g \
             WHERE g.group_id = ioa_messages.group_id AND g.retention_secs IS NOT NULL \
             AND ioa_messages.ts < $1 - g.retention_secs * 1000)",
        )
        .bind(now.min(i64::MAX as u64) as i64)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Delete every message `sender` stored in `group_id`. Returns how many were deleted.
    /// It reads the group's rows through the primary key: no index on the sender is kept, as
    /// every stored message would pay a scattered index page for this rare request
    /// (migration 0007).
    pub async fn erase_sender(&self, group_id: &str, sender: &Address) -> Result<u64> {
        let r = sqlx::query("DELETE FROM ioa_messages WHERE group_id = $1 AND sender = $2")
            .bind(group_id.to_owned())
            .bind(addr_key(sender))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Delete every message of `group_id` (a settled bounty's groups once its retention
    /// passed). Returns how many were deleted.
    pub async fn erase_group(&self, group_id: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM ioa_messages WHERE group_id = $1")
            .bind(group_id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Rewrite the message table's storage so no freed space keeps old rows: SQLite
    /// `VACUUM` (the file is rebuilt without its free pages), Postgres `VACUUM FULL
    /// ioa_messages` (the table gets a new file; takes an exclusive lock for its duration).
    pub async fn vacuum_freed(&self) -> Result<bool> {
        let sql = if self.postgres { "VACUUM FULL ioa_messages" } else { "VACUUM" };
        sqlx::raw_sql(sql).execute(&self.pool).await?;
        Ok(true)
    }

    /// SQLite: move the write-ahead log into the database file and truncate it, so that the
    /// zeroed pages of deleted rows replace the old ones in the file and no copy of them stays
    /// in the log (`true` when the log was emptied; another connection's open read can keep it
    /// for a moment). Postgres: nothing to do here (`true`).
    ///
    /// The group-commit writer's checkpointer may be in a pass, and SQLite runs one checkpoint
    /// at a time: a TRUNCATE then answers busy at once. It is tried again every 10 ms for up
    /// to 2 s, so that an erasure or a retention sweep does not leave the old pages in the log
    /// because of that pass (`ioa_retention` caught it about once in seven runs).
    pub async fn checkpoint(&self) -> Result<bool> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match self.wal_checkpoint(WalCheckpoint::Truncate).await? {
                Some(c) if c.busy && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                outcome => return Ok(outcome.is_none_or(|c| !c.busy)),
            }
        }
    }

    /// SQLite: copy what the WAL holds into the database file without waiting for readers or
    /// writers (`PRAGMA wal_checkpoint(PASSIVE)`); returns the WAL's frames and how many of
    /// them are now in the database. Postgres: nothing to do, `(0, 0)`.
    pub async fn checkpoint_passive(&self) -> Result<(i64, i64)> {
        Ok(self
            .wal_checkpoint(WalCheckpoint::Passive)
            .await?
            .map_or((0, 0), |c| (c.frames, c.copied)))
    }

    /// `PRAGMA wal_checkpoint(<mode>)` on SQLite; `None` on Postgres.
    async fn wal_checkpoint(&self, mode: WalCheckpoint) -> Result<Option<CheckpointOutcome>> {
        if self.postgres {
            return Ok(None);
        }
        let sql = match mode {
            WalCheckpoint::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
            WalCheckpoint::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        };
        let r = sqlx::query(sql).fetch_one(&self.pool).await?;
        Ok(Some(CheckpointOutcome {
            busy: r.try_get::<i64, _>(0)? != 0,
            frames: r.try_get(1)?,
            copied: r.try_get(2)?,
        }))
    }

    /// Stored frames with `after < seq <= upto`, in order, at most `limit`.
    pub async fn frames(
        &self,
        group_id: &str,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        let sql = format!(
            "SELECT m.seq, m.frame FROM ioa_messages m JOIN ioa_groups g ON g.group_id = m.group_id \
             WHERE m.group_id = $1 AND m.seq > $2 AND m.seq <= $3 AND {} ORDER BY m.seq LIMIT $4",
            within_horizon("m", "g", 5)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(group_id.to_owned())
            .bind(after as i64)
            .bind(upto.min(i64::MAX as u64) as i64)
            .bind(i64::from(limit))
            .bind(now_ms() as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((r.try_get::<i64, _>("seq")?.max(0) as u64, r.try_get::<String, _>("frame")?))
            })
            .collect()
    }
}

fn agent_from_row(row: &AnyRow) -> Result<AgentInfo> {
    let card: AgentCard = serde_json::from_str(&row.try_get::<String, _>("card")?)
        .map_err(|e| Error::Internal(format!("bad card in db: {e}")))?;
    Ok(AgentInfo {
        address: parse_addr(&row.try_get::<String, _>("address")?)?,
        card,
        online: row.try_get::<i64, _>("conns")? > 0,
        last_seen: row.try_get::<i64, _>("last_seen")?.max(0) as u64,
        score: 0.0,
        erc8004: Vec::new(),
        ranking: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("reef-ioa-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Store::connect(&format!("sqlite://{}/ioa.db", dir.display())).await.unwrap();
        (s, dir)
    }

    /// A group and its members in one statement: every member is stored once (the creator
    /// and a member listed twice too), only members get a join read, and an existing group id
    /// is refused without touching the group.
    async fn check_create(s: &Store) {
        let creator = Address::repeat_byte(0xee);
        let mut members: Vec<Address> = (0..(CHUNK as u16 + 50))
            .map(|i| Address::left_padding_from(&i.to_be_bytes()))
            .collect();
        members.push(creator);
        members.push(members[3]);
        let created = s.create_group("g_big", "big", &creator, &members, None).await.unwrap();
        let g = s.group("g_big").await.unwrap().unwrap();
        assert_eq!(created, g, "the group returned at creation is the one read back");
        assert_eq!(g.members.len(), CHUNK + 50 + 1);
        for m in &members {
            assert!(g.members.contains(m), "{m} missing");
        }
        let empty = Some((0, Vec::new()));
        assert_eq!(s.join("g_big", &members[CHUNK + 10], 0, 10).await.unwrap(), empty);
        assert_eq!(s.join("g_big", &creator, 0, 10).await.unwrap(), empty);
        let stranger = Address::repeat_byte(0x77);
        assert_eq!(s.join("g_big", &stranger, 0, 10).await.unwrap(), None);
        assert_eq!(s.join("g_none", &creator, 0, 10).await.unwrap(), None);
        assert!(s.create_group("g_big", "again", &stranger, &[stranger], None).await.is_err());
        let again = s.group("g_big").await.unwrap().unwrap();
        assert_eq!(again, g, "a refused creation changes nothing");
        let alone = s.create_group("g_alone", "alone", &creator, &[], Some("g_big")).await.unwrap();
        assert_eq!(s.group("g_alone").await.unwrap().unwrap(), alone);
        assert_eq!(alone.members, vec![creator]);
    }

    #[tokio::test]
    async fn a_group_is_created_with_its_members_in_one_statement() {
        let (s, dir) = store().await;
        check_create(&s).await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_group_is_created_with_its_members_in_one_statement_on_postgres() {
        let (s, admin, name) = postgres_store("reef_ioa_create").await;
        check_create(&s).await;
        drop_postgres(s, admin, &name).await;
    }

    /// A join reads the last seq and the first page of frames to replay in one query: only
    /// frames after the member's seq, in order, at most a page; none for a stranger.
    #[tokio::test]
    async fn a_join_reads_the_last_seq_with_the_first_page_to_replay() {
        let (s, dir) = store().await;
        let (creator, member) = (Address::repeat_byte(0xee), Address::repeat_byte(0x01));
        s.create_group("g_j", "j", &creator, &[member], None).await.unwrap();
        let ids: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
        let batch: Vec<NewMessage<'_>> = ids
            .iter()
            .map(|id| NewMessage { group_id: "g_j", msg_id: id, sender: &creator })
            .collect();
        s.append_batch(&batch, |i| FrameTemplate {
            head: format!("frame {i} at "),
            tail: String::new(),
        })
        .await
        .unwrap();
        let (last, page) = s.join("g_j", &member, 2, 2).await.unwrap().unwrap();
        assert_eq!(last, 5);
        assert_eq!(page, vec![(3, "frame 2 at 3".to_string()), (4, "frame 3 at 4".to_string())]);
        let (last, page) = s.join("g_j", &creator, 0, 100).await.unwrap().unwrap();
        assert_eq!((last, page.len()), (5, 5));
        assert_eq!(
            page,
            s.frames("g_j", 0, 5, 100).await.unwrap(),
            "the same frames as a replay read"
        );
        assert_eq!(s.join("g_j", &member, 5, 100).await.unwrap(), Some((5, Vec::new())));
        assert_eq!(s.join("g_j", &Address::repeat_byte(0x77), 0, 100).await.unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn at(i: usize) -> FrameTemplate {
        FrameTemplate { head: format!("{{\"n\":{i},\"seq\":"), tail: "}".into() }
    }

    /// A batch in one statement: per-group seqs in arrival order, members only, repeats and
    /// re-sends as duplicates (told to members only), counters moved by the trigger; a batch
    /// larger than one statement takes (the locked path) gets the same answers; and concurrent
    /// writers (two handles) never share a seq.
    async fn check_append(s: &Store, other: &Store) {
        let (a, b, c) =
            (Address::repeat_byte(0xa), Address::repeat_byte(0xb), Address::repeat_byte(0xc));
        s.create_group("g1", "one", &a, &[b], None).await.unwrap();
        s.create_group("g2", "two", &a, &[], None).await.unwrap();
        let m = |group_id, msg_id, sender| NewMessage { group_id, msg_id, sender };
        let batch = [
            m("g1", "m1", &a),
            m("g1", "m2", &b),
            m("g1", "m3", &c),
            m("g2", "m1", &a),
            m("g1", "m1", &a),
            m("g_none", "m9", &a),
            m("g1", "m4", &b),
        ];
        let out = s.append_batch(&batch, at).await.unwrap();
        let seqs: Vec<Option<(u64, bool)>> =
            out.iter().map(|o| o.as_ref().map(|a| (a.seq, a.duplicate))).collect();
        assert_eq!(
            seqs,
            vec![
                Some((1, false)),
                Some((2, false)),
                None,
                Some((1, false)),
                Some((1, true)),
                None,
                Some((3, false))
            ]
        );
        assert_eq!(out[0].as_ref().unwrap().frame, "{\"n\":0,\"seq\":1}");
        assert_eq!(
            out[4].as_ref().unwrap().frame,
            "{\"n\":0,\"seq\":1}",
            "a repeat gets the first frame"
        );
        assert_eq!(out[6].as_ref().unwrap().frame, "{\"n\":6,\"seq\":3}");
        assert_eq!(s.last_seq("g1").await.unwrap(), Some(3));
        assert_eq!(s.last_seq("g2").await.unwrap(), Some(1));
        assert_eq!(s.frames("g1", 0, 3, 10).await.unwrap().len(), 3);

        // Re-sends: a member's is a duplicate with the stored frame; a stranger re-using a
        // stored id learns nothing; new messages continue the sequence.
        let out = s
            .append_batch(&[m("g1", "m2", &b), m("g1", "m1", &c), m("g1", "m5", &a)], at)
            .await
            .unwrap();
        assert_eq!(
            out[0].as_ref().map(|x| (x.seq, x.duplicate, x.frame.as_str())),
            Some((2, true, "{\"n\":1,\"seq\":2}"))
        );
        assert!(out[1].is_none(), "{:?}", out[1]);
        assert_eq!(out[2].as_ref().map(|x| (x.seq, x.duplicate)), Some((4, false)));
        // A member re-sending another member's id is told it is stored (the id is the group's).
        let out = s.append_batch(&[m("g1", "m1", &b)], at).await.unwrap();
        assert_eq!(out[0].as_ref().map(|x| (x.seq, x.duplicate)), Some((1, true)));

        // One id from two members in one batch fails the statement and stores nothing; sent
        // one by one (as the writer retries), the second is a duplicate.
        let twice = [m("g1", "m6", &a), m("g1", "m6", &b)];
        assert!(s.append_batch(&twice, at).await.is_err());
        assert_eq!(s.last_seq("g1").await.unwrap(), Some(4));
        let first = s.append_batch(&twice[..1], at).await.unwrap();
        let second = s.append_batch(&twice[1..], at).await.unwrap();
        assert_eq!(first[0].as_ref().map(|x| (x.seq, x.duplicate)), Some((5, false)));
        assert_eq!(second[0].as_ref().map(|x| (x.seq, x.duplicate)), Some((5, true)));

        // A batch of more than APPEND_ROWS sends (the locked path): every group's sends
        // numbered in arrival order, strangers refused.
        let big: Vec<String> = (0..3 * APPEND_ROWS).map(|i| format!("b{i}")).collect();
        let groups = ["g2", "g1", "g1"];
        let batch: Vec<NewMessage<'_>> = big
            .iter()
            .enumerate()
            .map(|(i, id)| m(groups[i % 3], id, if i % 7 == 3 { &c } else { &a }))
            .collect();
        let (g1_before, g2_before) =
            (s.last_seq("g1").await.unwrap().unwrap(), s.last_seq("g2").await.unwrap().unwrap());
        let out = s.append_batch(&batch, at).await.unwrap();
        let (mut n1, mut n2) = (g1_before, g2_before);
        for (i, o) in out.iter().enumerate() {
            if i % 7 == 3 {
                assert!(o.is_none(), "a stranger's send at {i}");
                continue;
            }
            let next = if groups[i % 3] == "g1" { &mut n1 } else { &mut n2 };
            *next += 1;
            let o = o.as_ref().unwrap();
            assert_eq!((o.seq, o.duplicate), (*next, false), "send {i}");
            assert_eq!(o.frame, format!("{{\"n\":{i},\"seq\":{}}}", *next));
        }
        assert_eq!(s.last_seq("g1").await.unwrap(), Some(n1));
        assert_eq!(s.last_seq("g2").await.unwrap(), Some(n2));
        let stored = s.frames("g1", g1_before, n1, 1000).await.unwrap();
        assert_eq!(stored.len() as u64, n1 - g1_before);
        assert!(stored.iter().all(|(q, f)| f.ends_with(&format!("\"seq\":{q}}}"))));
        // The same large batch again: every member's send is a duplicate of its first copy.
        let again = s.append_batch(&batch, at).await.unwrap();
        for (first, second) in out.iter().zip(&again) {
            let first = first.as_ref().map(|x| (x.seq, x.frame.clone(), true));
            assert_eq!(first, second.as_ref().map(|x| (x.seq, x.frame.clone(), x.duplicate)));
        }
        assert_eq!(s.last_seq("g1").await.unwrap(), Some(n1));

        // Two writers on one database: every message gets its own seq, no gap.
        let ids: Vec<String> = (0..120).map(|i| format!("c{i}")).collect();
        let write = |st: Store, half: usize| {
            let ids = ids.clone();
            async move {
                for chunk in ids[half * 60..half * 60 + 60].chunks(5) {
                    let batch: Vec<NewMessage<'_>> = chunk
                        .iter()
                        .map(|id| NewMessage { group_id: "g2", msg_id: id, sender: &a })
                        .collect();
                    st.append_batch(&batch, at).await.unwrap();
                }
            }
        };
        futures::future::join(write(s.clone(), 0), write(other.clone(), 1)).await;
        let mut seqs: Vec<u64> =
            s.frames("g2", n2, n2 + 200, 500).await.unwrap().into_iter().map(|(q, _)| q).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (n2 + 1..=n2 + 120).collect::<Vec<u64>>());
        assert_eq!(s.last_seq("g2").await.unwrap(), Some(n2 + 120));
    }

    /// The writer's connection leaves the WAL to the checkpointer: what it commits stays in the
    /// WAL (below its safety net) until a passive checkpoint on another connection copies it,
    /// all of it when nothing else is writing. The other connections keep their own threshold.
    /// And migration 0007 left no index on the sender, while a member can still erase its own
    /// messages.
    #[tokio::test]
    async fn the_writer_leaves_checkpoints_to_the_checkpointer() {
        let (s, dir) = store().await;
        let url = format!("sqlite://{}/ioa.db", dir.display());
        let writer = Store::connect_writer(&url).await.unwrap();
        let checkpointer = Store::connect_checkpointer(&url).await.unwrap();
        let threshold = |st: &Store| {
            let pool = st.pool.clone();
            async move {
                let r = sqlx::query("PRAGMA wal_autocheckpoint").fetch_one(&pool).await.unwrap();
                r.try_get::<i64, _>(0).unwrap()
            }
        };
        assert_eq!(threshold(&writer).await, i64::from(WRITER_AUTOCHECKPOINT));
        assert_eq!(threshold(&s).await, i64::from(AUTOCHECKPOINT));
        assert_eq!(threshold(&checkpointer).await, i64::from(AUTOCHECKPOINT));

        let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
        s.create_group("g", "g", &a, &[b], None).await.unwrap();
        checkpointer.checkpoint_passive().await.unwrap();
        let ids: Vec<String> = (0..400).map(|i| format!("m{i}")).collect();
        for chunk in ids.chunks(40) {
            let batch: Vec<NewMessage<'_>> = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| NewMessage {
                    group_id: "g",
                    msg_id: id,
                    sender: if i % 2 == 0 { &a } else { &b },
                })
                .collect();
            let out = writer.append_batch(&batch, at).await.unwrap();
            assert!(out.iter().all(|o| o.as_ref().is_some_and(|a| !a.duplicate)));
        }
        let (frames, copied) = checkpointer.checkpoint_passive().await.unwrap();
        assert!(frames > 0, "the writer's commits are in the WAL");
        assert_eq!(copied, frames, "a passive checkpoint with no other writer copies all of it");

        let indexes: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ioa_messages'",
        )
        .fetch_all(&s.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("name").unwrap())
        .collect();
        assert!(!indexes.iter().any(|n| n == "ioa_messages_sender"), "{indexes:?}");
        assert!(indexes.iter().any(|n| n == "ioa_messages_ts"), "{indexes:?}");
        assert_eq!(s.erase_sender("g", &b).await.unwrap(), 200);
        assert_eq!(s.erase_sender("g", &b).await.unwrap(), 0);
        assert_eq!(s.erase_sender("g", &a).await.unwrap(), 200);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_batch_is_appended_in_one_statement() {
        let (s, dir) = store().await;
        let other = Store::connect(&format!("sqlite://{}/ioa.db", dir.display())).await.unwrap();
        check_append(&s, &other).await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_batch_is_appended_in_one_statement_on_postgres() {
        let (s, admin, name) = postgres_store("reef_ioa_append").await;
        let other =
            Store::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}")).await.unwrap();
        check_append(&s, &other).await;
        other.pool.close().await;
        drop_postgres(s, admin, &name).await;
    }

    /// A store on a fresh Postgres database (127.0.0.1:5432) named after `prefix`; the admin
    /// pool and the name drop it afterwards ([`drop_postgres`]).
    async fn postgres_store(prefix: &str) -> (Store, sqlx::AnyPool, String) {
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
            .await
            .expect("Postgres on 127.0.0.1:5432");
        let name = format!("{prefix}_{}", rand::random::<u32>());
        let create = format!("CREATE DATABASE {name}");
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.unwrap();
        let s =
            Store::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}")).await.unwrap();
        (s, admin, name)
    }

    async fn drop_postgres(s: Store, admin: sqlx::AnyPool, name: &str) {
        s.pool.close().await;
        let drop = format!("DROP DATABASE {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.unwrap();
    }

    /// Invitations under a cap: concurrent adds never push a group past it, the creator is
    /// not counted, repeats and strangers change nothing.
    async fn check_capped(s: &Store) {
        let creator = Address::repeat_byte(0xee);
        s.create_group("g_cap", "cap", &creator, &[Address::repeat_byte(0x01)], None)
            .await
            .unwrap();
        let adds = (2u8..12).map(|i| {
            let s = s.clone();
            async move { s.add_member_capped("g_cap", &creator, &Address::repeat_byte(i), 4).await }
        });
        let got = futures::future::join_all(adds).await;
        let added = got.iter().filter(|r| matches!(r, Ok(CappedAdd::Added))).count();
        let full = got.iter().filter(|r| matches!(r, Ok(CappedAdd::Full))).count();
        assert_eq!((added, full), (3, 7), "{got:?}");
        let g = s.group("g_cap").await.unwrap().unwrap();
        assert_eq!(g.members.len(), 5, "4 invited + the creator: {:?}", g.members);
        let member = Address::repeat_byte(0x01);
        assert_eq!(
            s.add_member_capped("g_cap", &creator, &member, 10).await.unwrap(),
            CappedAdd::AlreadyMember
        );
        assert_eq!(
            s.add_member_capped("g_cap", &creator, &creator, 10).await.unwrap(),
            CappedAdd::AlreadyMember
        );
        assert_eq!(
            s.add_member_capped("g_cap", &member, &Address::repeat_byte(0x50), 10).await.unwrap(),
            CappedAdd::NotCreator
        );
        assert_eq!(
            s.add_member_capped("g_nope", &creator, &member, 10).await.unwrap(),
            CappedAdd::NoGroup
        );
        // A higher cap makes room again.
        assert_eq!(
            s.add_member_capped("g_cap", &creator, &Address::repeat_byte(0x50), 5).await.unwrap(),
            CappedAdd::Added
        );
        assert_eq!(s.group("g_cap").await.unwrap().unwrap().members.len(), 6);
    }

    #[tokio::test]
    async fn capped_invitations_never_pass_the_cap() {
        let (s, dir) = store().await;
        check_capped(&s).await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The same on Postgres (127.0.0.1:5432, a fresh database dropped afterwards), where the
    /// adds run on several connections at once.
    #[tokio::test]
    async fn capped_invitations_never_pass_the_cap_on_postgres() {
        let (s, admin, name) = postgres_store("reef_ioa_cap").await;
        check_capped(&s).await;
        drop_postgres(s, admin, &name).await;
    }

    /// Every node on one database reads the same mesh id (the first one written); another
    /// database has another.
    #[tokio::test]
    async fn nodes_sharing_a_database_share_its_mesh_id() {
        let (s, dir) = store().await;
        let first = s.mesh_id().await.unwrap();
        let other = Store::connect(&format!("sqlite://{}/ioa.db", dir.display())).await.unwrap();
        assert_eq!(other.mesh_id().await.unwrap(), first);
        assert_eq!(s.mesh_id().await.unwrap(), first);
        assert!(first.bytes().all(|b| b.is_ascii_alphanumeric()), "a NATS subject token: {first}");
        let (elsewhere, dir2) = store().await;
        assert_ne!(elsewhere.mesh_id().await.unwrap(), first);
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(dir2).unwrap();
    }
}
