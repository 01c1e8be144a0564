//! A2A tasks in the node's database (the marketplace's SQLite or Postgres), so a task and its
//! payment survive a restart and a payment transaction pays for one task only.

use alloy::primitives::{Address, B256, U256};
use sqlx::{AnyPool, Row};

use super::tasks::{Outcome, TaskRow};

const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS a2a_tasks (\
        id TEXT PRIMARY KEY, \
        context_id TEXT NOT NULL, \
        owner TEXT NOT NULL, \
        agent TEXT, \
        bounty TEXT NOT NULL, \
        budget TEXT NOT NULL, \
        paid TEXT NOT NULL, \
        payment_tx TEXT NOT NULL UNIQUE, \
        message TEXT NOT NULL, \
        outcome TEXT, \
        created_ms BIGINT NOT NULL); \
     CREATE INDEX IF NOT EXISTS a2a_tasks_owner ON a2a_tasks (owner, created_ms)",
)];

/// Storage errors.
pub type Result<T, E = sqlx::Error> = std::result::Result<T, E>;

/// The task table (cheap to clone).
#[derive(Debug, Clone)]
pub struct TaskStore {
    pool: AnyPool,
}

fn decode(r: &sqlx::any::AnyRow) -> Result<TaskRow> {
    let bad = |what: &str, e: String| sqlx::Error::Decode(format!("a2a_tasks.{what}: {e}").into());
    let id: String = r.try_get("id")?;
    let owner: String = r.try_get("owner")?;
    let agent: Option<String> = r.try_get("agent")?;
    let budget: String = r.try_get("budget")?;
    let paid: String = r.try_get("paid")?;
    let payment: String = r.try_get("payment_tx")?;
    let message: String = r.try_get("message")?;
    let outcome: Option<String> = r.try_get("outcome")?;
    let created: i64 = r.try_get("created_ms")?;
    Ok(TaskRow {
        context_id: r.try_get("context_id")?,
        owner: owner.parse().map_err(|e| bad("owner", format!("{e}")))?,
        agent: agent
            .map(|a| a.parse::<Address>())
            .transpose()
            .map_err(|e| bad("agent", format!("{e}")))?,
        bounty: r.try_get("bounty")?,
        budget: U256::from_str_radix(&budget, 10).map_err(|e| bad("budget", e.to_string()))?,
        paid: U256::from_str_radix(&paid, 10).map_err(|e| bad("paid", e.to_string()))?,
        payment_tx: payment.parse::<B256>().map_err(|e| bad("payment_tx", e.to_string()))?,
        message: serde_json::from_str(&message).map_err(|e| bad("message", e.to_string()))?,
        outcome: outcome
            .map(|o| serde_json::from_str::<Outcome>(&o))
            .transpose()
            .map_err(|e| bad("outcome", e.to_string()))?,
        created_ms: u64::try_from(created).unwrap_or_default(),
        id,
    })
}

impl TaskStore {
    /// Opens the table in `pool` (migrating it).
    pub async fn open(pool: AnyPool, postgres: bool) -> Result<Self> {
        let m = reef_indexer::migrate::Migrations {
            table: "a2a_migrations",
            applied_at: false,
            lock_key: 7262333,
            list: MIGRATIONS,
        };
        reef_indexer::migrate::run(&pool, postgres, m).await?;
        Ok(Self { pool })
    }

    /// Inserts a new task; `false` when its payment transaction pays for another task already.
    pub async fn insert(&self, t: &TaskRow) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO a2a_tasks (id, context_id, owner, agent, bounty, budget, paid, payment_tx, message, outcome, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10) ON CONFLICT (payment_tx) DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.context_id)
        .bind(t.owner.to_string())
        .bind(t.agent.map(|a| a.to_string()))
        .bind(&t.bounty)
        .bind(t.budget.to_string())
        .bind(t.paid.to_string())
        .bind(t.payment_tx.to_string())
        .bind(serde_json::to_string(&t.message).unwrap_or_default())
        .bind(i64::try_from(t.created_ms).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Whether a payment transaction paid for a task already.
    pub async fn payment_used(&self, tx: B256) -> Result<bool> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM a2a_tasks WHERE payment_tx = $1")
            .bind(tx.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get::<i64, _>("n")? > 0)
    }

    /// One task.
    pub async fn get(&self, id: &str) -> Result<Option<TaskRow>> {
        sqlx::query("SELECT * FROM a2a_tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// The caller's tasks, newest first (at most `limit`, from `offset`).
    pub async fn list(&self, owner: Address, limit: u32, offset: u64) -> Result<Vec<TaskRow>> {
        sqlx::query(
            "SELECT * FROM a2a_tasks WHERE owner = $1 ORDER BY created_ms DESC, id LIMIT $2 OFFSET $3",
        )
        .bind(owner.to_string())
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode)
        .collect()
    }

    /// Tasks whose follower has not ended (to resume after a restart).
    pub async fn open_tasks(&self) -> Result<Vec<TaskRow>> {
        sqlx::query("SELECT * FROM a2a_tasks WHERE outcome IS NULL ORDER BY created_ms")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    /// Records how a task ended (once: a second outcome is ignored).
    pub async fn finish(&self, id: &str, o: &Outcome) -> Result<bool> {
        let r = sqlx::query("UPDATE a2a_tasks SET outcome = $1 WHERE id = $2 AND outcome IS NULL")
            .bind(serde_json::to_string(o).unwrap_or_default())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::a2a::tasks::TaskState;
    use serde_json::json;

    async fn store() -> TaskStore {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        TaskStore::open(pool, false).await.unwrap()
    }

    fn row(id: &str, tx: u8) -> TaskRow {
        TaskRow {
            id: id.into(),
            context_id: "c".into(),
            owner: Address::repeat_byte(1),
            agent: Some(Address::repeat_byte(9)),
            bounty: format!("0x{}", "22".repeat(32)),
            budget: U256::from(5),
            paid: U256::MAX,
            payment_tx: B256::repeat_byte(tx),
            message: json!({ "parts": [{ "text": "x" }] }),
            outcome: None,
            created_ms: 7,
        }
    }

    #[tokio::test]
    async fn a_payment_pays_for_one_task_and_an_outcome_is_written_once() {
        let s = store().await;
        assert!(s.insert(&row("a", 1)).await.unwrap());
        assert!(!s.insert(&row("b", 1)).await.unwrap(), "the same payment twice");
        assert!(s.payment_used(B256::repeat_byte(1)).await.unwrap());
        assert!(!s.payment_used(B256::repeat_byte(2)).await.unwrap());
        assert_eq!(s.get("a").await.unwrap(), Some(row("a", 1)));
        assert_eq!(s.get("b").await.unwrap(), None);
        assert_eq!(s.open_tasks().await.unwrap().len(), 1);
        let o = Outcome {
            state: TaskState::Completed,
            reason: "paid".into(),
            provider: Some(Address::repeat_byte(4)),
            price: Some(U256::from(3)),
            refund: Some(U256::from(2)),
            refund_tx: None,
            award_tx: Some(B256::repeat_byte(5)),
        };
        assert!(s.finish("a", &o).await.unwrap());
        assert!(!s.finish("a", &o).await.unwrap());
        assert_eq!(s.get("a").await.unwrap().unwrap().outcome, Some(o));
        assert!(s.open_tasks().await.unwrap().is_empty());
        assert_eq!(s.list(Address::repeat_byte(1), 10, 0).await.unwrap().len(), 1);
        assert!(s.list(Address::repeat_byte(2), 10, 0).await.unwrap().is_empty());
    }
}
