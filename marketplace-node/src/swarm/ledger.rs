//! The node's record of the cumulative voucher amount accepted per payment channel (SQLite or
//! Postgres, the node's database): what makes a replayed voucher stale across restarts.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use super::{Error, Result};

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("migrations/0001_swarm.sql"))];

/// Accepted cumulative amounts, cached in memory, written through.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: AnyPool,
    /// channel id → (cumulative accepted, payments); a channel is read from the database once.
    cache: Arc<tokio::sync::Mutex<HashMap<U256, (U256, u64)>>>,
    /// One async lock per channel: a channel's vouchers are checked and recorded one at a time.
    locks: Arc<std::sync::Mutex<HashMap<U256, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Ledger {
    /// Opens the ledger in the node's database (`sqlite://…` or `postgres://…`), migrating it.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let mut opts = AnyPoolOptions::new().max_connections(if postgres { 4 } else { 1 });
        if !postgres {
            let init = reef_indexer::sqlite::connection_init(10_000, "");
            opts = opts.after_connect(move |conn, _meta| {
                let init = init.clone();
                Box::pin(async move {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(init)).execute(conn).await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(url).await?;
        reef_indexer::migrate::run(
            &pool,
            postgres,
            reef_indexer::migrate::Migrations {
                table: "swarm_migrations",
                applied_at: true,
                lock_key: 7262340,
                list: MIGRATIONS,
            },
        )
        .await?;
        Ok(Self { pool, cache: Arc::default(), locks: Arc::default() })
    }

    /// The lock serializing the checks of `channel`'s vouchers.
    pub fn lock_of(&self, channel: U256) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(channel).or_default().clone()
    }

    /// The cumulative amount accepted on `channel` (zero if none).
    pub async fn accepted(&self, channel: U256) -> Result<U256> {
        let mut cache = self.cache.lock().await;
        if let Some((c, _)) = cache.get(&channel) {
            return Ok(*c);
        }
        let row =
            sqlx::query("SELECT cumulative, payments FROM swarm_channels WHERE channel_id = $1")
                .bind(channel.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let entry = match row {
            Some(r) => {
                let c: String = r.try_get("cumulative")?;
                let n: i64 = r.try_get("payments")?;
                (
                    c.parse::<U256>().map_err(|e| Error::Store(format!("bad amount {c}: {e}")))?,
                    n as u64,
                )
            }
            None => (U256::ZERO, 0),
        };
        cache.insert(channel, entry);
        Ok(entry.0)
    }

    /// Records `cumulative` as accepted on `channel` if the accepted amount is still `prev`
    /// (compare-and-set: nodes sharing the database never both accept on one amount; the
    /// caller holds [`Ledger::lock_of`]). `Ok(false)`: another node moved it first. Durable
    /// when this returns.
    pub async fn accept(
        &self,
        channel: U256,
        payer: Address,
        payee: Address,
        prev: U256,
        cumulative: U256,
    ) -> Result<bool> {
        if cumulative <= prev {
            return Err(Error::Store(format!("{cumulative} does not exceed {prev}")));
        }
        let now = reef_wire::unix_now() as i64;
        let res = if prev.is_zero() {
            sqlx::query(
                "INSERT INTO swarm_channels (channel_id, payer, payee, cumulative, payments, updated_at) \
                 VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (channel_id) DO NOTHING",
            )
            .bind(channel.to_string())
            .bind(payer.to_string())
            .bind(payee.to_string())
            .bind(cumulative.to_string())
            .bind(now)
            .execute(&self.pool)
            .await?
        } else {
            sqlx::query(
                "UPDATE swarm_channels SET cumulative = $2, payments = payments + 1, updated_at = $3 \
                 WHERE channel_id = $1 AND cumulative = $4",
            )
            .bind(channel.to_string())
            .bind(cumulative.to_string())
            .bind(now)
            .bind(prev.to_string())
            .execute(&self.pool)
            .await?
        };
        let mut cache = self.cache.lock().await;
        if res.rows_affected() == 0 {
            // Someone else moved the channel: read it again next time.
            cache.remove(&channel);
            return Ok(false);
        }
        let e = cache.entry(channel).or_insert((U256::ZERO, 0));
        *e = (cumulative, e.1 + 1);
        Ok(true)
    }
}
