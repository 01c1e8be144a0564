//! The agent's durable record of accepted vouchers (SQLite, `synchronous = FULL`).
//!
//! A voucher is committed here *before* the call is served, so a crash at any point never
//! loses an accepted payment: `reef agent redeem` reads the latest voucher of every channel
//! from this file. Also remembers every call's result (idempotent retries) and, per IoA group,
//! the last handled message (no double handling after a restart).

use std::{path::Path, str::FromStr, time::Duration};

use alloy::primitives::{Address, Bytes, U256};
use serde_json::Value;
use sqlx::{
    Row,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use super::{Error, Result};

/// The latest accepted voucher of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    /// Channel id.
    pub channel_id: U256,
    /// Its payer.
    pub payer: Address,
    /// Its token (ZERO = ETH).
    pub token: Address,
    /// Highest accepted cumulative amount.
    pub cumulative: U256,
    /// Payer's signature over the voucher for `cumulative`.
    pub signature: Bytes,
    /// Calls accepted on this channel.
    pub calls: u64,
    /// Cumulative amount known to be redeemed on-chain.
    pub redeemed: U256,
    /// Calls covered by `redeemed`.
    pub calls_redeemed: u64,
}

impl ChannelRow {
    /// Accepted but not yet redeemed.
    pub fn unredeemed(&self) -> U256 {
        self.cumulative.saturating_sub(self.redeemed)
    }
}

/// A call already accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    /// Cumulative amount of the voucher that paid for it.
    pub cumulative: U256,
    /// That voucher's signature.
    pub signature: Bytes,
    /// `(ok, result)` once served; None if accepted but not (yet) served.
    pub outcome: Option<(bool, Value)>,
}

/// A voucher to record with [`Store::accept`].
#[derive(Debug, Clone, Copy)]
pub struct Accept<'a> {
    /// Channel payer.
    pub payer: Address,
    /// Channel token.
    pub token: Address,
    /// Channel id.
    pub channel_id: U256,
    /// The call it pays for.
    pub call_id: &'a str,
    /// Voucher amount.
    pub cumulative: U256,
    /// Voucher signature.
    pub signature: &'a Bytes,
    /// On-chain `redeemed` of the channel (the floor for a channel new to us).
    pub redeemed_floor: U256,
}

/// Handle on the state database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn u256(s: &str) -> Result<U256> {
    U256::from_str(s).map_err(|e| Error::Store(format!("corrupt amount {s:?}: {e}")))
}

fn parse<T: FromStr>(s: &str, what: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| Error::Store(format!("corrupt {what} {s:?}: {e}")))
}

fn now() -> i64 {
    reef_wire::unix_now() as i64
}

impl Store {
    /// Opens (creating) `dir/vouchers.db`.
    pub async fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Store(format!("create {}: {e}", dir.display())))?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("vouchers.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(opts).await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS channels (
                channel_id TEXT PRIMARY KEY, payer TEXT NOT NULL, token TEXT NOT NULL,
                cumulative TEXT NOT NULL, signature TEXT NOT NULL, calls INTEGER NOT NULL,
                redeemed TEXT NOT NULL, calls_redeemed INTEGER NOT NULL, updated_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS calls (
                channel_id TEXT NOT NULL, call_id TEXT NOT NULL, cumulative TEXT NOT NULL,
                signature TEXT NOT NULL, ok INTEGER, result TEXT, at INTEGER NOT NULL,
                PRIMARY KEY (channel_id, call_id));
             CREATE TABLE IF NOT EXISTS cursors (group_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);",
        )
        .execute(&pool)
        .await?;
        Ok(Self { pool })
    }

    fn row(r: &sqlx::sqlite::SqliteRow) -> Result<ChannelRow> {
        let sig: String = r.try_get("signature")?;
        Ok(ChannelRow {
            channel_id: u256(&r.try_get::<String, _>("channel_id")?)?,
            payer: parse(&r.try_get::<String, _>("payer")?, "address")?,
            token: parse(&r.try_get::<String, _>("token")?, "address")?,
            cumulative: u256(&r.try_get::<String, _>("cumulative")?)?,
            signature: parse(&sig, "signature")?,
            calls: r.try_get::<i64, _>("calls")? as u64,
            redeemed: u256(&r.try_get::<String, _>("redeemed")?)?,
            calls_redeemed: r.try_get::<i64, _>("calls_redeemed")? as u64,
        })
    }

    /// The latest voucher of `channel_id`, if any was accepted.
    pub async fn channel(&self, channel_id: U256) -> Result<Option<ChannelRow>> {
        let r = sqlx::query("SELECT * FROM channels WHERE channel_id = ?")
            .bind(channel_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(Self::row).transpose()
    }

    /// Every channel.
    pub async fn channels(&self) -> Result<Vec<ChannelRow>> {
        let rows = sqlx::query("SELECT * FROM channels").fetch_all(&self.pool).await?;
        rows.iter().map(Self::row).collect()
    }

    /// A call already accepted on `channel_id`.
    pub async fn call(&self, channel_id: U256, call_id: &str) -> Result<Option<CallRow>> {
        let r = sqlx::query(
            "SELECT cumulative, signature, ok, result FROM calls WHERE channel_id = ? AND call_id = ?",
        )
        .bind(channel_id.to_string())
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = r else { return Ok(None) };
        let ok: Option<i64> = r.try_get("ok")?;
        let result: Option<String> = r.try_get("result")?;
        let outcome = match (ok, result) {
            (Some(ok), Some(res)) => {
                Some((ok != 0, serde_json::from_str(&res).unwrap_or(Value::String(res))))
            }
            _ => None,
        };
        Ok(Some(CallRow {
            cumulative: u256(&r.try_get::<String, _>("cumulative")?)?,
            signature: parse(&r.try_get::<String, _>("signature")?, "signature")?,
            outcome,
        }))
    }

    /// Atomically records an accepted voucher (as the channel's latest) and its call. Durable
    /// (fsynced) when this returns. `redeemed_floor` is the channel's on-chain `redeemed`,
    /// used when the channel is new to us.
    pub async fn accept(&self, a: &Accept<'_>) -> Result<()> {
        let Accept { payer, token, channel_id, call_id, cumulative, signature, redeemed_floor } =
            *a;
        crate::metrics::transaction_begun();
        let mut tx = self.pool.begin().await?;
        let ch = channel_id.to_string();
        let sig = signature.to_string();
        sqlx::query(
            "INSERT INTO channels (channel_id, payer, token, cumulative, signature, calls, redeemed, calls_redeemed, updated_at)
             VALUES (?, ?, ?, ?, ?, 1, ?, 0, ?)
             ON CONFLICT (channel_id) DO UPDATE SET cumulative = excluded.cumulative,
                signature = excluded.signature, calls = channels.calls + 1, updated_at = excluded.updated_at",
        )
        .bind(&ch)
        .bind(payer.to_string())
        .bind(token.to_string())
        .bind(cumulative.to_string())
        .bind(&sig)
        .bind(redeemed_floor.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO calls (channel_id, call_id, cumulative, signature, at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&ch)
        .bind(call_id)
        .bind(cumulative.to_string())
        .bind(&sig)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the outcome of a served call.
    pub async fn finish(
        &self,
        channel_id: U256,
        call_id: &str,
        ok: bool,
        result: &Value,
    ) -> Result<()> {
        sqlx::query("UPDATE calls SET ok = ?, result = ? WHERE channel_id = ? AND call_id = ?")
            .bind(i64::from(ok))
            .bind(result.to_string())
            .bind(channel_id.to_string())
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that `channel_id` is redeemed on-chain up to `redeemed` (never lowers it).
    pub async fn mark_redeemed(&self, channel_id: U256, redeemed: U256, calls: u64) -> Result<()> {
        let Some(row) = self.channel(channel_id).await? else { return Ok(()) };
        if redeemed <= row.redeemed {
            return Ok(());
        }
        sqlx::query("UPDATE channels SET redeemed = ?, calls_redeemed = MAX(calls_redeemed, ?) WHERE channel_id = ?")
            .bind(redeemed.to_string())
            .bind(calls as i64)
            .bind(channel_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sum of accepted-but-unredeemed amounts over all channels.
    pub async fn unredeemed_total(&self) -> Result<U256> {
        Ok(self.channels().await?.iter().map(ChannelRow::unredeemed).fold(U256::ZERO, |a, b| a + b))
    }

    /// Last handled seq of an IoA group (0 if none).
    pub async fn cursor(&self, group_id: &str) -> Result<u64> {
        let r = sqlx::query("SELECT seq FROM cursors WHERE group_id = ?")
            .bind(group_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.try_get::<i64, _>("seq")).transpose()?.unwrap_or(0) as u64)
    }

    /// Advances a group's cursor.
    pub async fn set_cursor(&self, group_id: &str, seq: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO cursors (group_id, seq) VALUES (?, ?)
             ON CONFLICT (group_id) DO UPDATE SET seq = MAX(cursors.seq, excluded.seq)",
        )
        .bind(group_id)
        .bind(seq as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
