//! Logging setup: logs on stderr (stdout stays for the commands' own output), filtered by
//! `RUST_LOG` (default `warn`), as human-readable text or as one JSON object per line
//! (`--log-format json`) carrying the fields of the current span and of every span it is in
//! (`bounty`, `group`, `agent`, `conn`), for log shippers and `jq`.
//!
//! The subscriber also times SQL statements for `/metrics` (`reef_db_statement_seconds`): sqlx
//! emits one event per statement (target `sqlx::query`, field `elapsed_secs`); a layer with
//! its own filter observes them into the histogram without printing them, whatever `RUST_LOG`
//! says.

use std::fmt;

use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::Targets,
    layer::{Context, SubscriberExt},
    util::SubscriberInitExt,
};

use crate::metrics::{METRICS, count_statement, statement_kind};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the current span (`span`) and all enclosing spans
    /// (`spans`) and their fields.
    Json,
}

/// The format [`init`] installed (text until then).
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Target of [`notice`] events: always shown, whatever `RUST_LOG` says.
const NOTICE_TARGET: &str = "reef::notice";

/// A line for the operator on stderr (where the node listens, a dev-key warning): as is in
/// text mode, as a JSON log line (target `reef::notice`, never filtered out) in json mode, so
/// that every stderr line of a `--log-format json` process is JSON.
pub fn notice(message: impl fmt::Display) {
    match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => eprintln!("{message}"),
        LogFormat::Json => tracing::info!(target: NOTICE_TARGET, "{message}"),
    }
}

/// Install the global tracing subscriber writing to stderr in `format`.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let filter = match format!("{NOTICE_TARGET}=info").parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    let fmt_layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let statements = Targets::new().with_target("sqlx::query", Level::TRACE);
    let _ = tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter))
        .with(StatementTimer.with_filter(statements))
        .try_init();
}

/// Observes sqlx's per-statement events into [`crate::metrics::Metrics::db_statement`].
#[derive(Debug, Clone, Copy)]
pub struct StatementTimer;

impl<S: Subscriber> Layer<S> for StatementTimer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = StatementFields::default();
        event.record(&mut f);
        if let Some(secs) = f.elapsed_secs {
            METRICS.db_statement[f.kind].observe_secs(secs);
            count_statement(
                f.statement.as_deref().filter(|s| !s.trim().is_empty()).unwrap_or(&f.summary),
            );
        }
    }
}

/// The fields of a sqlx statement event the timer reads.
#[derive(Debug, Default)]
struct StatementFields {
    /// Index in [`crate::metrics::STATEMENT_KINDS`] (from the statement's first word).
    kind: usize,
    /// Execution time.
    elapsed_secs: Option<f64>,
    /// sqlx's summary (the statement's first words).
    summary: String,
    /// The whole statement (sqlx sends it only when the summary cut it short).
    statement: Option<String>,
}

impl Visit for StatementFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => {
                self.kind = statement_kind(value.split_whitespace().next().unwrap_or(""));
                self.summary = value.to_string();
            }
            "db.statement" => self.statement = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timer reads sqlx's real statement events: a statement run through sqlx (in-memory
    /// SQLite) under a subscriber with only the timer moves the histogram of its kind. Global:
    /// SQLite statements run on sqlx's worker thread. No other test of this crate installs one.
    #[tokio::test]
    async fn statements_are_timed_from_sqlx_events() {
        let subscriber = tracing_subscriber::registry().with(
            StatementTimer.with_filter(Targets::new().with_target("sqlx::query", Level::TRACE)),
        );
        tracing::subscriber::set_global_default(subscriber).unwrap();
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let kind = statement_kind("delete");
        let before = METRICS.db_statement[kind].count();
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&pool).await.unwrap();
        sqlx::query("DELETE FROM t WHERE x = 1").execute(&pool).await.unwrap();
        assert!(METRICS.db_statement[kind].count() > before);
    }

    /// What timing statements costs: the same indexed SELECT on in-memory SQLite under the
    /// node's subscriber (text logs at `warn`), with the timer switched off and on in turns
    /// (its filter's interest is rebuilt at each switch, so "off" is exactly the old subscriber
    /// where sqlx skips its event). Process CPU time per statement, medians of 10 rounds each,
    /// on stderr; nothing asserted.
    #[tokio::test]
    #[ignore = "benchmark: cargo test -p marketplace-node --lib statement_timer_overhead -- --ignored --nocapture"]
    async fn statement_timer_overhead() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tracing::{Metadata, subscriber::Interest};
        use tracing_subscriber::layer::{Context as Cx, Filter};

        static ON: AtomicBool = AtomicBool::new(false);
        struct Switch;
        impl<S> Filter<S> for Switch {
            fn enabled(&self, meta: &Metadata<'_>, _: &Cx<'_, S>) -> bool {
                ON.load(Ordering::Relaxed) && meta.target() == "sqlx::query"
            }
            fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
                if ON.load(Ordering::Relaxed) && meta.target() == "sqlx::query" {
                    Interest::always()
                } else {
                    Interest::never()
                }
            }
        }
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_filter(EnvFilter::new("warn")))
            .with(StatementTimer.with_filter(Switch));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)").execute(&pool).await.unwrap();
        for i in 0..1000 {
            sqlx::query("INSERT INTO t VALUES (?, 'row')").bind(i).execute(&pool).await.unwrap();
        }
        let n = 5_000;
        // Process CPU time (all threads: sqlx runs SQLite on a worker thread), which other
        // processes on a loaded machine disturb less than wall time.
        let cpu = || {
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: getrusage writes into the struct it is given.
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
            let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
            t(u.ru_utime) + t(u.ru_stime)
        };
        let run = |pool: sqlx::SqlitePool| async move {
            let t0 = cpu();
            for i in 0..n {
                let _: (String,) = sqlx::query_as("SELECT y FROM t WHERE x = ?")
                    .bind(i % 1000)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            }
            (cpu() - t0) * 1e6 / f64::from(n)
        };
        run(pool.clone()).await; // warm-up
        let kind = statement_kind("select");
        let (mut off, mut on) = (Vec::new(), Vec::new());
        let before = METRICS.db_statement[kind].count();
        for _ in 0..10 {
            for (flag, out) in [(false, &mut off), (true, &mut on)] {
                ON.store(flag, Ordering::Relaxed);
                tracing::callsite::rebuild_interest_cache();
                out.push(run(pool.clone()).await);
            }
        }
        let counted = METRICS.db_statement[kind].count() - before;
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (off, on) = (median(&mut off), median(&mut on));
        eprintln!(
            "BENCH statement timer: {off:.2} us CPU/statement off, {on:.2} us on ({:+.2} us, {:+.1}%); {counted} of {} statements counted",
            on - off,
            (on / off - 1.0) * 100.0,
            10 * n
        );
    }
}
