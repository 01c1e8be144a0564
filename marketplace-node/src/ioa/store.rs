//! Durable state of the IoA layer (agents, presence, groups, members, messages) over sqlx's
//! `Any` driver, so that the same SQL and the same migrations run on SQLite (the embedded
//! default) and on Postgres (shared by a mesh of nodes).

use alloy_primitives::Address;
use reef_wire::{AgentCard, AgentInfo, GroupInfo};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::error::{Error, Result};

/// Ordered migrations: (version, SQL). Every statement is valid on SQLite and Postgres.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

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
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let url = if !postgres && url.starts_with("sqlite:") && !url.contains('?') && !url.contains(":memory:") {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| Error::Internal(format!("create {dir:?}: {e}")))?;
            }
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        let mut opts = AnyPoolOptions::new().max_connections(if postgres { 16 } else { 4 });
        if !postgres {
            opts = opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;")
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(&url).await?;
        let store = Self { pool, postgres };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        if self.postgres {
            // Serialize concurrent node start-ups sharing one database.
            sqlx::query("SELECT pg_advisory_lock(7262331)").execute(&mut *conn).await?;
        }
        let res = async {
            sqlx::raw_sql("CREATE TABLE IF NOT EXISTS ioa_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                .execute(&mut *conn)
                .await?;
            for (version, sql) in MIGRATIONS {
                let done = sqlx::query("SELECT version FROM ioa_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *conn)
                    .await?;
                if done.is_some() {
                    continue;
                }
                sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
                let applied = async {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *conn).await?;
                    sqlx::query("INSERT INTO ioa_migrations (version, applied_at) VALUES ($1, $2)")
                        .bind(*version)
                        .bind(reef_wire::unix_now() as i64)
                        .execute(&mut *conn)
                        .await?;
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                match applied {
                    Ok(()) => sqlx::raw_sql("COMMIT").execute(&mut *conn).await?,
                    Err(e) => {
                        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                        return Err(e);
                    }
                };
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        if self.postgres {
            let _ = sqlx::query("SELECT pg_advisory_unlock(7262331)").execute(&mut *conn).await;
        }
        res.map_err(Into::into)
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

    /// All registered agents with presence.
    pub async fn all_agents(&self) -> Result<Vec<AgentInfo>> {
        let rows = sqlx::query(
            "SELECT a.address, a.card, CAST(COALESCE(SUM(p.conns), 0) AS BIGINT) AS conns, \
             CAST(COALESCE(MAX(p.last_seen), a.updated_at) AS BIGINT) AS last_seen \
             FROM ioa_agents a LEFT JOIN ioa_presence p ON p.address = a.address \
             GROUP BY a.address, a.card, a.updated_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// One agent with presence.
    pub async fn agent(&self, address: &Address) -> Result<Option<AgentInfo>> {
        let row = sqlx::query(
            "SELECT a.address, a.card, CAST(COALESCE(SUM(p.conns), 0) AS BIGINT) AS conns, \
             CAST(COALESCE(MAX(p.last_seen), a.updated_at) AS BIGINT) AS last_seen \
             FROM ioa_agents a LEFT JOIN ioa_presence p ON p.address = a.address \
             WHERE a.address = $1 GROUP BY a.address, a.card, a.updated_at",
        )
        .bind(addr_key(address))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(agent_from_row).transpose()
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

    /// Forget this node's presence rows (start-up after a crash).
    pub async fn reset_presence(&self, node_id: &str) -> Result<()> {
        sqlx::query("UPDATE ioa_presence SET conns = 0 WHERE node_id = $1")
            .bind(node_id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Create a group with its creator and initial members.
    pub async fn create_group(
        &self,
        group_id: &str,
        name: &str,
        creator: &Address,
        members: &[Address],
        parent: Option<&str>,
    ) -> Result<()> {
        let now = reef_wire::unix_now() as i64;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO ioa_groups (group_id, name, creator, parent_group_id, last_seq, created_at) VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(group_id.to_owned())
        .bind(name.to_owned())
        .bind(addr_key(creator))
        .bind(parent.map(str::to_owned))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut all = vec![*creator];
        for m in members {
            if !all.contains(m) {
                all.push(*m);
            }
        }
        for m in all {
            sqlx::query("INSERT INTO ioa_members (group_id, address, added_at) VALUES ($1, $2, $3)")
                .bind(group_id.to_owned())
                .bind(addr_key(&m))
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
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
        let members = sqlx::query("SELECT address FROM ioa_members WHERE group_id = $1 ORDER BY added_at, address")
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
        let ids: Vec<String> = sqlx::query("SELECT group_id FROM ioa_members WHERE address = $1 ORDER BY group_id")
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

    /// Atomically check membership, assign the next seq and store the message.
    ///
    /// `make_frame(seq)` builds the stored `message` frame text. Idempotent on
    /// `(group_id, msg_id)`: a repeated id returns the stored message with `duplicate`.
    /// Returns `Ok(None)` when `sender` is not a member (or the group does not exist).
    pub async fn append(
        &self,
        group_id: &str,
        msg_id: &str,
        sender: &Address,
        make_frame: impl Fn(u64) -> String,
    ) -> Result<Option<Appended>> {
        let mut tx = self.pool.begin().await?;
        // The first statement writes, so SQLite takes the write lock up front (no upgrade
        // deadlock) and Postgres row-locks the counter until commit: seqs of one group are
        // committed in order, whichever node assigns them.
        let row = sqlx::query(
            "UPDATE ioa_groups SET last_seq = last_seq + 1 WHERE group_id = $1 \
             AND EXISTS (SELECT 1 FROM ioa_members m WHERE m.group_id = $1 AND m.address = $2) RETURNING last_seq",
        )
        .bind(group_id.to_owned())
        .bind(addr_key(sender))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let seq = row.try_get::<i64, _>("last_seq")?.max(0) as u64;
        let frame = make_frame(seq);
        let inserted = sqlx::query(
            "INSERT INTO ioa_messages (group_id, seq, msg_id, sender, frame) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (group_id, msg_id) DO NOTHING",
        )
        .bind(group_id.to_owned())
        .bind(seq as i64)
        .bind(msg_id.to_owned())
        .bind(addr_key(sender))
        .bind(frame.clone())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(Some(Appended { seq, frame, duplicate: false }));
        }
        tx.rollback().await?;
        let row = sqlx::query("SELECT seq, frame FROM ioa_messages WHERE group_id = $1 AND msg_id = $2")
            .bind(group_id.to_owned())
            .bind(msg_id.to_owned())
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(Appended {
            seq: row.try_get::<i64, _>("seq")?.max(0) as u64,
            frame: row.try_get("frame")?,
            duplicate: true,
        }))
    }

    /// Stored frames with `after < seq <= upto`, in order, at most `limit`.
    pub async fn frames(&self, group_id: &str, after: u64, upto: u64, limit: u32) -> Result<Vec<(u64, String)>> {
        let rows = sqlx::query(
            "SELECT seq, frame FROM ioa_messages WHERE group_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        )
        .bind(group_id.to_owned())
        .bind(after as i64)
        .bind(upto.min(i64::MAX as u64) as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>("seq")?.max(0) as u64, r.try_get::<String, _>("frame")?)))
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
    })
}
