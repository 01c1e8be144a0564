//! The one schema-migration runner of Reef's SQL stores (this indexer's, and the node's IoA
//! and marketplace stores), on SQLite and Postgres. It lives here, the lowest crate with a
//! database, so every store shares it.
//!
//! Each store lists its migrations as `(version, sql)` and records the applied versions in its
//! own table. A migration and its record commit in one transaction, so a node killed halfway
//! leaves neither and applies the migration again at its next start. On Postgres an advisory
//! lock (one key per store) serializes nodes of a mesh that start at the same time.

use sqlx::AnyPool;

/// One store's migrations.
#[derive(Debug, Clone, Copy)]
pub struct Migrations<'a> {
    /// The table that records applied versions (`version BIGINT PRIMARY KEY`).
    pub table: &'a str,
    /// Whether that table also has an `applied_at` column (unix seconds, NOT NULL).
    pub applied_at: bool,
    /// The Postgres advisory-lock key of this store.
    pub lock_key: i64,
    /// `(version, sql)`, oldest first.
    pub list: &'a [(i64, &'a str)],
}

/// A store's migrations for one database: `common` (valid on both), then each
/// `(version, SQLite, Postgres)` of `by_backend` in the text written for that database
/// (triggers differ between them).
pub fn for_backend<'a>(
    common: &[(i64, &'a str)],
    by_backend: &[(i64, &'a str, &'a str)],
    postgres: bool,
) -> Vec<(i64, &'a str)> {
    common
        .iter()
        .copied()
        .chain(by_backend.iter().map(|&(v, sqlite, pg)| (v, if postgres { pg } else { sqlite })))
        .collect()
}

/// Applies the migrations of `m` not applied yet.
pub async fn run(pool: &AnyPool, postgres: bool, m: Migrations<'_>) -> sqlx::Result<()> {
    let mut conn = pool.acquire().await?;
    if postgres {
        sqlx::query("SELECT pg_advisory_lock($1)").bind(m.lock_key).execute(&mut *conn).await?;
    }
    let res = async {
        let create = if m.applied_at {
            format!(
                "CREATE TABLE IF NOT EXISTS {} (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                m.table
            )
        } else {
            format!("CREATE TABLE IF NOT EXISTS {} (version BIGINT PRIMARY KEY)", m.table)
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut *conn).await?;
        let select = format!("SELECT version FROM {} WHERE version = $1", m.table);
        let record = if m.applied_at {
            format!("INSERT INTO {} (version, applied_at) VALUES ($1, $2)", m.table)
        } else {
            format!("INSERT INTO {} (version) VALUES ($1)", m.table)
        };
        for (version, sql) in m.list {
            let done = sqlx::query(sqlx::AssertSqlSafe(select.as_str()))
                .bind(*version)
                .fetch_optional(&mut *conn)
                .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
            let applied = async {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *conn).await?;
                let mut q = sqlx::query(sqlx::AssertSqlSafe(record.as_str())).bind(*version);
                if m.applied_at {
                    q = q.bind(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64),
                    );
                }
                q.execute(&mut *conn).await?;
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
        Ok(())
    }
    .await;
    if postgres {
        let _ =
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(m.lock_key).execute(&mut *conn).await;
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool() -> AnyPool {
        sqlx::any::install_default_drivers();
        let dir = std::env::temp_dir().join(format!("reef-migrate-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        AnyPool::connect(&format!("sqlite://{}/m.db?mode=rwc", dir.display())).await.unwrap()
    }

    async fn tables(pool: &AnyPool) -> Vec<String> {
        use sqlx::Row;
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .collect()
    }

    #[tokio::test]
    async fn a_failing_migration_leaves_neither_its_changes_nor_its_record() {
        let pool = pool().await;
        let good: &[(i64, &str)] = &[(1, "CREATE TABLE a (x BIGINT)")];
        // Version 2 creates a table, then fails: the table must not survive.
        let bad: &[(i64, &str)] = &[
            (1, "CREATE TABLE a (x BIGINT)"),
            (2, "CREATE TABLE b (x BIGINT); SELECT * FROM nope"),
        ];
        let m = |list| Migrations { table: "t_migrations", applied_at: true, lock_key: 1, list };
        run(&pool, false, m(good)).await.unwrap();
        assert!(run(&pool, false, m(bad)).await.is_err());
        assert_eq!(tables(&pool).await, ["a", "t_migrations"]);
        // Fixed, it applies from the beginning; applied versions are not run twice.
        let fixed: &[(i64, &str)] =
            &[(1, "CREATE TABLE a (x BIGINT)"), (2, "CREATE TABLE b (x BIGINT)")];
        run(&pool, false, m(fixed)).await.unwrap();
        run(&pool, false, m(fixed)).await.unwrap();
        assert_eq!(tables(&pool).await, ["a", "b", "t_migrations"]);
    }
}
