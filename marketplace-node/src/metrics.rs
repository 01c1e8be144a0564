//! `GET /metrics`: process counters in the Prometheus text exposition format (version 0.0.4).
//!
//! The counters are plain atomics in one process-wide registry ([`METRICS`]), bumped where the
//! events happen (WebSocket transport, hub, group-commit writer, marketplace). Gauges that
//! already live elsewhere (send-queue depth, bounties by phase) are read at scrape time. The
//! route is public: it holds only counts. See docs/metrics.md for the names and meanings.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::{Router, extract::State, http::header, response::IntoResponse};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{ioa::Node, market::Market};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the group-commit batch-size histogram buckets (`+Inf` is added).
pub const BATCH_BUCKETS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// A histogram of small integers with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BATCH_BUCKETS.len()],
    count: AtomicU64,
    sum: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BATCH_BUCKETS.len()],
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: u64) {
        if let Some(i) = BATCH_BUCKETS.iter().position(|&b| v <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
    }
}

/// Upper bounds of the SQL statement latency buckets, in microseconds (`+Inf` is added).
pub const STATEMENT_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// A latency histogram with fixed buckets ([`STATEMENT_BUCKETS_US`]), kept in microseconds and
/// exposed in seconds.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; STATEMENT_BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; STATEMENT_BUCKETS_US.len()],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Records one observation of `secs` seconds (negative or NaN counts as zero).
    pub fn observe_secs(&self, secs: f64) {
        let us = (secs * 1e6) as u64; // saturating; NaN becomes 0
        if let Some(i) = STATEMENT_BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        // `{labels,le=…}`, or `{le=…}` and no braces on the sum and count without labels.
        let (lead, own) = if labels.is_empty() {
            (String::new(), String::new())
        } else {
            (format!("{labels},"), format!("{{{labels}}}"))
        };
        let mut cumulative = 0;
        for (b, c) in STATEMENT_BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += c.load(Relaxed);
            let le = *b as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{lead}le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{lead}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{own} {sum}");
        let _ = writeln!(out, "{name}_count{own} {count}");
    }
}

/// The kinds of SQL statement timed by [`Metrics::db_statement`] (the `statement` label).
pub const STATEMENT_KINDS: [&str; 6] =
    ["select", "insert", "update", "delete", "transaction", "other"];

/// The [`STATEMENT_KINDS`] index of a statement from its first word.
pub fn statement_kind(first_word: &str) -> usize {
    let w = first_word.trim_start_matches('(');
    let is = |k: &str| w.eq_ignore_ascii_case(k);
    if is("select") || is("with") {
        0
    } else if is("insert") {
        1
    } else if is("update") {
        2
    } else if is("delete") {
        3
    } else if is("begin") || is("commit") || is("rollback") || is("savepoint") || is("release") {
        4
    } else {
        5
    }
}

/// The process-wide counters.
#[derive(Debug)]
pub struct Metrics {
    /// WebSocket connections open now (upgraded, authenticated or not).
    pub ws_connections_open: AtomicU64,
    /// WebSocket connections accepted since start.
    pub ws_connections_total: AtomicU64,
    /// WebSocket frames received from clients.
    pub ws_frames_received: AtomicU64,
    /// WebSocket frames sent to clients.
    pub ws_frames_sent: AtomicU64,
    /// Group messages handed to a subscriber's connection (live or replayed).
    pub messages_delivered: AtomicU64,
    /// Group-commit batch sizes (one observation per committed batch).
    pub commit_batch_size: Histogram,
    /// How long each group-commit batch's transaction took, per batch (the per-send waits
    /// are `send_queue_wait_us` and `send_commit_wait_us`).
    pub commit_seconds: LatencyHistogram,
    /// Microseconds the committed sends waited in the writer's queue before their batch
    /// began, summed over the sends.
    pub send_queue_wait_us: AtomicU64,
    /// Microseconds the committed sends waited for their own batch's transaction, summed over
    /// the sends (a batch of `n` adds `n` times its commit time): per send, unlike
    /// `commit_seconds`, which counts a batch of 300 and a batch of 1 alike.
    pub send_commit_wait_us: AtomicU64,
    /// Sealed bids the marketplace accepted.
    pub bids_accepted: AtomicU64,
    /// Sealed bids the marketplace refused.
    pub bids_refused: AtomicU64,
    /// Verdicts concluded with accept.
    pub verdicts_accept: AtomicU64,
    /// Verdicts concluded with reject.
    pub verdicts_reject: AtomicU64,
    /// Bounties that reached the `settled` phase in this process.
    pub settlements: AtomicU64,
    /// SQL statement latency by kind ([`STATEMENT_KINDS`]), from sqlx's statement events
    /// (see [`crate::logging`]).
    pub db_statement: [LatencyHistogram; STATEMENT_KINDS.len()],
    /// Transactions begun on the node's own databases (IoA, market, metered; each costs a
    /// `BEGIN` and a `COMMIT` or `ROLLBACK`, which sqlx does not report as statements).
    pub db_transactions: AtomicU64,
    /// SQL statements run, by statement text ([`statement_label`]): where the statements go.
    pub db_statements_by_text: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// The registry.
pub static METRICS: Metrics = Metrics {
    ws_connections_open: AtomicU64::new(0),
    ws_connections_total: AtomicU64::new(0),
    ws_frames_received: AtomicU64::new(0),
    ws_frames_sent: AtomicU64::new(0),
    messages_delivered: AtomicU64::new(0),
    commit_batch_size: Histogram::new(),
    commit_seconds: LatencyHistogram::new(),
    send_queue_wait_us: AtomicU64::new(0),
    send_commit_wait_us: AtomicU64::new(0),
    bids_accepted: AtomicU64::new(0),
    bids_refused: AtomicU64::new(0),
    verdicts_accept: AtomicU64::new(0),
    verdicts_reject: AtomicU64::new(0),
    settlements: AtomicU64::new(0),
    db_statement: [const { LatencyHistogram::new() }; STATEMENT_KINDS.len()],
    db_transactions: AtomicU64::new(0),
    db_statements_by_text: std::sync::Mutex::new(std::collections::BTreeMap::new()),
};

/// Counts a transaction about to begin ([`Metrics::db_transactions`]).
pub fn transaction_begun() {
    inc(&METRICS.db_transactions);
}

/// Most distinct statement texts counted apart; the rest are counted under [`OTHER_STATEMENTS`].
/// The node's statements are literals in its source, so the bound is never reached in
/// practice; it keeps a statement built from input from growing the registry.
pub const MAX_STATEMENT_LABELS: usize = 256;

/// The label of statements past [`MAX_STATEMENT_LABELS`].
pub const OTHER_STATEMENTS: &str = "(other)";

/// Longest statement label, in characters.
const STATEMENT_LABEL_CHARS: usize = 96;

/// The `statement` label of a SQL text: whitespace collapsed, cut at
/// [`STATEMENT_LABEL_CHARS`] characters, and an `IN (…)` list of placeholders folded to
/// `IN (…)` so one statement with lists of different lengths is one label.
pub fn statement_label(sql: &str) -> String {
    let mut out = String::with_capacity(STATEMENT_LABEL_CHARS + 4);
    let mut words = sql.split_whitespace().peekable();
    let mut chars = 0;
    while let Some(w) = words.next() {
        if !out.is_empty() {
            out.push(' ');
        }
        if w.eq_ignore_ascii_case("in") && words.peek().is_some_and(|n| n.starts_with("($")) {
            out.push_str("IN (…)");
            // Skip the placeholder list up to its closing parenthesis.
            for n in words.by_ref() {
                if n.contains(')') {
                    break;
                }
            }
            chars += 7;
            continue;
        }
        for c in w.chars() {
            if chars >= STATEMENT_LABEL_CHARS {
                out.push('…');
                return out;
            }
            out.push(c);
            chars += 1;
        }
        chars += 1;
    }
    out
}

/// Counts one statement run, by its text ([`Metrics::db_statements_by_text`]).
pub fn count_statement(sql: &str) {
    let label = statement_label(sql);
    let mut map = METRICS.db_statements_by_text.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = map.get_mut(&label) {
        *n += 1;
    } else if map.len() < MAX_STATEMENT_LABELS {
        map.insert(label, 1);
    } else {
        *map.entry(OTHER_STATEMENTS.to_string()).or_default() += 1;
    }
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// Counts one open WebSocket connection while alive.
#[derive(Debug)]
pub struct ConnectionGuard(());

impl ConnectionGuard {
    /// A connection opened.
    pub fn open() -> Self {
        inc(&METRICS.ws_connections_total);
        inc(&METRICS.ws_connections_open);
        Self(())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        METRICS.ws_connections_open.fetch_sub(1, Relaxed);
    }
}

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Sends queued for the group-commit writer.
    pub send_queue_depth: u64,
    /// Bounties per phase (every phase listed, zeros included); None: no marketplace.
    pub bounties_by_phase: Option<Vec<(&'static str, u64)>>,
    /// Chain head minus the embedded indexer's last indexed block; None: no indexer.
    pub indexer_lag_blocks: Option<u64>,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn scalar(out: &mut String, name: &str, kind: &str, help: &str, v: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {v}");
}

/// A label value escaped for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Renders the registry and `snap` in the text exposition format.
pub fn render(snap: &Snapshot) -> String {
    let m = &METRICS;
    let mut out = String::with_capacity(4096);
    let get = |c: &AtomicU64| c.load(Relaxed);
    scalar(
        &mut out,
        "reef_ws_connections_open",
        "gauge",
        "WebSocket connections open now.",
        get(&m.ws_connections_open),
    );
    scalar(
        &mut out,
        "reef_ws_connections_total",
        "counter",
        "WebSocket connections accepted since start.",
        get(&m.ws_connections_total),
    );
    scalar(
        &mut out,
        "reef_ws_frames_received_total",
        "counter",
        "WebSocket frames received from clients.",
        get(&m.ws_frames_received),
    );
    scalar(
        &mut out,
        "reef_ws_frames_sent_total",
        "counter",
        "WebSocket frames sent to clients.",
        get(&m.ws_frames_sent),
    );
    scalar(
        &mut out,
        "reef_messages_delivered_total",
        "counter",
        "Group messages handed to a subscriber connection (live or replayed).",
        get(&m.messages_delivered),
    );
    scalar(
        &mut out,
        "reef_send_queue_depth",
        "gauge",
        "Sends waiting for the group-commit writer.",
        snap.send_queue_depth,
    );
    let h = &m.commit_batch_size;
    family(
        &mut out,
        "reef_commit_batch_size",
        "histogram",
        "Messages per group-commit batch (one transaction each).",
    );
    let mut cumulative = 0;
    for (b, c) in BATCH_BUCKETS.iter().zip(&h.buckets) {
        cumulative += get(c);
        let _ = writeln!(out, "reef_commit_batch_size_bucket{{le=\"{b}\"}} {cumulative}");
    }
    let count = get(&h.count);
    let _ = writeln!(out, "reef_commit_batch_size_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "reef_commit_batch_size_sum {}", get(&h.sum));
    let _ = writeln!(out, "reef_commit_batch_size_count {count}");
    family(
        &mut out,
        "reef_commit_seconds",
        "histogram",
        "Time each group-commit batch's transaction took (a message is delivered after it).",
    );
    m.commit_seconds.render(&mut out, "reef_commit_seconds", "");
    family(
        &mut out,
        "reef_send_wait_seconds_total",
        "counter",
        "Time committed sends waited, summed over the sends: in the writer's queue, and for \
         their own batch's transaction (divide by reef_commit_batch_size_sum for the mean).",
    );
    for (phase, us) in [("queue", &m.send_queue_wait_us), ("commit", &m.send_commit_wait_us)] {
        let secs = get(us) as f64 / 1e6;
        let _ = writeln!(out, "reef_send_wait_seconds_total{{phase=\"{phase}\"}} {secs}");
    }
    family(&mut out, "reef_bids_total", "counter", "Sealed bids by outcome (accepted, refused).");
    let _ = writeln!(out, "reef_bids_total{{outcome=\"accepted\"}} {}", get(&m.bids_accepted));
    let _ = writeln!(out, "reef_bids_total{{outcome=\"refused\"}} {}", get(&m.bids_refused));
    family(&mut out, "reef_verdicts_total", "counter", "Verdicts concluded by outcome.");
    let _ = writeln!(out, "reef_verdicts_total{{outcome=\"accept\"}} {}", get(&m.verdicts_accept));
    let _ = writeln!(out, "reef_verdicts_total{{outcome=\"reject\"}} {}", get(&m.verdicts_reject));
    scalar(
        &mut out,
        "reef_settlements_total",
        "counter",
        "Bounties that reached the settled phase in this process.",
        get(&m.settlements),
    );
    let rpc = escrow_client::rpc_metrics::snapshot();
    family(
        &mut out,
        "reef_rpc_calls_total",
        "counter",
        "Chain JSON-RPC calls made by the escrow client, by method (retries count again).",
    );
    for (method, calls, _) in &rpc {
        let _ = writeln!(out, "reef_rpc_calls_total{{method=\"{}\"}} {calls}", label(method));
    }
    family(
        &mut out,
        "reef_rpc_errors_total",
        "counter",
        "Chain JSON-RPC calls of the escrow client that failed (transport or error answer).",
    );
    for (method, _, errors) in &rpc {
        let _ = writeln!(out, "reef_rpc_errors_total{{method=\"{}\"}} {errors}", label(method));
    }
    family(
        &mut out,
        "reef_db_statement_seconds",
        "histogram",
        "SQL statement latency (all of the node's databases), by statement kind.",
    );
    for (kind, h) in STATEMENT_KINDS.iter().zip(&m.db_statement) {
        h.render(&mut out, "reef_db_statement_seconds", &format!("statement=\"{kind}\""));
    }
    scalar(
        &mut out,
        "reef_db_transactions_total",
        "counter",
        "Transactions begun on the node's IoA, market and metered databases (each also runs a BEGIN and a COMMIT or ROLLBACK, not in reef_db_statements_total).",
        get(&m.db_transactions),
    );
    family(
        &mut out,
        "reef_db_statements_total",
        "counter",
        "SQL statements run (all of the node's databases), by statement text (whitespace collapsed, cut at 96 characters, IN lists folded).",
    );
    let by_text = m.db_statements_by_text.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (text, n) in &by_text {
        let _ = writeln!(out, "reef_db_statements_total{{statement=\"{}\"}} {n}", label(text));
    }
    if let Some(lag) = snap.indexer_lag_blocks {
        scalar(
            &mut out,
            "reef_indexer_lag_blocks",
            "gauge",
            "Chain head (as of the marketplace's last pass) minus the embedded indexer's last indexed block.",
            lag,
        );
    }
    if let Some(phases) = &snap.bounties_by_phase {
        family(&mut out, "reef_bounties", "gauge", "Bounties stored on this node by phase.");
        for (phase, n) in phases {
            let _ = writeln!(out, "reef_bounties{{phase=\"{phase}\"}} {n}");
        }
    }
    out
}

/// What a scrape reads.
#[derive(Clone)]
pub(crate) struct MetricsState {
    node: Node,
    market: Option<Market>,
}

/// The node's metrics in the Prometheus text format (public).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    description = "Prometheus text exposition (version 0.0.4) of the node's counters, gauges and histograms; docs/metrics.md lists them.",
    responses((status = 200, description = "The metrics", content_type = "text/plain", body = String)))]
async fn scrape(State(s): State<MetricsState>) -> impl IntoResponse {
    let bounties_by_phase = match &s.market {
        Some(m) => match m.store().count_by_phase().await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: counting bounties by phase failed");
                None
            }
        },
        None => None,
    };
    let indexer_lag_blocks = match &s.market {
        Some(m) => m.indexer_lag().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics: reading the indexer's progress failed");
            None
        }),
        None => None,
    };
    let snap = Snapshot {
        send_queue_depth: s.node.send_queue_depth() as u64,
        bounties_by_phase,
        indexer_lag_blocks,
    };
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&snap))
}

/// `GET /metrics` with its OpenAPI description ([`crate::openapi`]).
pub(crate) fn routes() -> OpenApiRouter<MetricsState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// `GET /metrics` (public).
pub fn router(node: Node, market: Option<Market>) -> Router {
    let (router, _) = routes().split_for_parts();
    router.with_state(MetricsState { node, market })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_the_histogram_is_cumulative() {
        METRICS.commit_batch_size.observe(3);
        METRICS.commit_batch_size.observe(3000);
        METRICS.db_statement[statement_kind("SELECT")].observe_secs(0.0003);
        METRICS.db_statement[statement_kind("commit")].observe_secs(9.0);
        let text = render(&Snapshot {
            send_queue_depth: 2,
            bounties_by_phase: Some(vec![("settled", 1), ("failed", 0)]),
            indexer_lag_blocks: Some(3),
        });
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "{line} before its # TYPE");
        }
        assert!(text.contains("reef_send_queue_depth 2\n"));
        assert!(text.contains("reef_bounties{phase=\"settled\"} 1\n"));
        let bucket = |le: &str| -> u64 {
            let p = format!("reef_commit_batch_size_bucket{{le=\"{le}\"}} ");
            text.lines().find_map(|l| l.strip_prefix(&p)).unwrap().parse().unwrap()
        };
        assert!(bucket("4") >= 1 && bucket("+Inf") > bucket("1024"));
        assert!(text.contains("reef_indexer_lag_blocks 3\n"));
        let series = |s: &str| -> u64 {
            let p = format!("reef_db_statement_seconds_bucket{{{s}}} ");
            text.lines().find_map(|l| l.strip_prefix(&p)).unwrap().parse().unwrap()
        };
        assert!(series("statement=\"select\",le=\"0.0005\"") >= 1);
        let tx = |le: &str| series(&format!("statement=\"transaction\",le=\"{le}\""));
        assert!(tx("+Inf") > tx("5"));
    }

    #[test]
    fn statement_labels_fold_whitespace_and_in_lists() {
        assert_eq!(
            statement_label("SELECT a\n   FROM t WHERE x IN ($1, $2, $3) AND y = $4"),
            "SELECT a FROM t WHERE x IN (…) AND y = $4"
        );
        assert_eq!(
            statement_label("SELECT a FROM t WHERE x IN ($1)"),
            statement_label("SELECT a FROM t WHERE x IN ($1, $2)")
        );
        let long = format!("SELECT {} FROM t", "column, ".repeat(40));
        let l = statement_label(&long);
        assert!(l.ends_with('…') && l.chars().count() <= STATEMENT_LABEL_CHARS + 1, "{l}");
        count_statement("UPDATE \"q\" SET x = 1");
        let text = render(&Snapshot::default());
        assert!(
            text.contains("reef_db_statements_total{statement=\"UPDATE \\\"q\\\" SET x = 1\"} ")
        );
    }
}
