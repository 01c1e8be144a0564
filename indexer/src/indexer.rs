//! The sync loop: adaptive `eth_getLogs` backfill, header-checked live tail, reorg rewind.
//!
//! Blocks deeper than `reorg_window` below the head are backfilled with logs only, several
//! ranges at a time; the range grows while requests are fast and small and halves on any error
//! (providers signal "too many results" and "range too large" as errors). Blocks within the
//! window are indexed with their headers, which are checked for parent linkage against what was
//! stored; a mismatch (or a changed hash at the stored tip) walks back to the common ancestor and
//! rewinds the database to it. Every batch and its checkpoint commit in one transaction.

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    time::{Duration, Instant},
};

use alloy::{primitives::Address, rpc::types::Log};
use futures::{StreamExt, stream};
use tokio::sync::watch;

use crate::{
    BlockRef, ChainSource, Contracts, Error, EventRow, Result, Store, decode::decode, store::Batch,
};

/// Tunables of the indexer.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// Contracts to follow.
    pub contracts: Contracts,
    /// ERC-20 tokens whose transfers are indexed from the start (more are discovered from
    /// BountyPosted).
    pub tokens: Vec<Address>,
    /// First block to index when the database is empty.
    pub start_block: u64,
    /// Blocks below the head a fact must be before money and reputation act on it.
    pub confirmations: u64,
    /// Recent blocks whose headers are kept and checked for reorgs.
    pub reorg_window: u64,
    /// First `eth_getLogs` range size.
    pub initial_range: u64,
    /// Largest `eth_getLogs` range.
    pub max_range: u64,
    /// Concurrent `eth_getLogs` / header requests.
    pub concurrency: usize,
    /// Head polling interval of the live tail.
    pub poll_interval: Duration,
    /// Attempts per request before giving up on a sync step.
    pub max_retries: u32,
    /// First retry delay (doubles per attempt, capped at 5 s).
    pub backoff: Duration,
}

impl IndexerConfig {
    /// Defaults for a deployment: its contracts, its test token, from its start block, with its
    /// chain's confirmations and reorg window ([`crate::chains::profile`]).
    pub fn for_deployment(dep: &escrow_client::Deployment) -> Self {
        Self {
            contracts: Contracts::of(dep),
            tokens: dep.test_token.into_iter().collect(),
            start_block: dep.start_block,
            confirmations: crate::chains::profile(dep.chain_id).confirmations,
            reorg_window: crate::chains::profile(dep.chain_id).reorg_window,
            initial_range: 1_000,
            max_range: 50_000,
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
            max_retries: 8,
            backoff: Duration::from_millis(100),
        }
    }
}

/// What one [`Indexer::sync_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// Chain head seen.
    pub head: u64,
    /// First block indexed in this step (== `next_block` if nothing to do).
    pub from: u64,
    /// First block not yet indexed after this step.
    pub next_block: u64,
    /// Events stored (after deduplication within batches).
    pub events: usize,
    /// Reorgs detected and rewound.
    pub reorgs: u32,
    /// Logs ignored (unknown contract or event).
    pub ignored: usize,
}

/// Follows one deployment into one [`Store`].
#[derive(Debug)]
pub struct Indexer<S> {
    src: S,
    store: Store,
    cfg: IndexerConfig,
    range: u64,
    tokens: Vec<Address>,
}

fn backoff(cfg: &IndexerConfig, attempt: u32) -> Duration {
    (cfg.backoff * 2u32.saturating_pow(attempt.min(16))).min(Duration::from_secs(5))
}

impl<S: ChainSource> Indexer<S> {
    /// Opens the indexer: checks the database belongs to this chain and these contracts.
    pub async fn new(src: S, store: Store, cfg: IndexerConfig) -> Result<Self> {
        let chain_id = retry(&cfg, "eth_chainId", || src.chain_id()).await?;
        let identity = format!("{chain_id}:{:#x}", cfg.contracts.escrow);
        match store.meta("identity").await? {
            Some(id) if id != identity => {
                return Err(Error::Config(format!(
                    "database indexes {id}, not {identity} (chain:escrow); use another database"
                )));
            }
            Some(_) => {}
            None => store.set_meta("identity", &identity).await?,
        }
        let mut tokens = cfg.tokens.clone();
        for t in store.tokens().await? {
            if !tokens.contains(&t) {
                tokens.push(t);
            }
        }
        let range = cfg.initial_range.max(1);
        Ok(Self { src, store, cfg, range, tokens })
    }

    /// The store written to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The source read from.
    pub fn source(&self) -> &S {
        &self.src
    }

    /// The configuration.
    pub fn config(&self) -> &IndexerConfig {
        &self.cfg
    }

    /// Current `eth_getLogs` range size.
    pub fn range(&self) -> u64 {
        self.range
    }

    /// Tokens whose transfers are indexed.
    pub fn tokens(&self) -> &[Address] {
        &self.tokens
    }

    /// Highest block fully indexed (None if nothing yet).
    pub async fn indexed_tip(&self) -> Result<Option<u64>> {
        Ok(self.store.next_block().await?.and_then(|n| n.checked_sub(1)))
    }

    /// Highest indexed block at least `confirmations` deep below the last head seen.
    pub async fn confirmed_tip(&self) -> Result<Option<u64>> {
        confirmed_tip(&self.store, self.cfg.confirmations).await
    }

    /// Catches up to the current head once (handling reorgs) and returns what it did.
    pub async fn sync_once(&mut self) -> Result<SyncReport> {
        let head = retry(&self.cfg, "eth_blockNumber", || self.src.head()).await?;
        let mut report = SyncReport { head, ..SyncReport::default() };
        report.reorgs += self.check_tip().await?;
        let mut next = self.store.next_block().await?.unwrap_or(self.cfg.start_block);
        report.from = next;
        let mut unstable = 0u32;
        while next <= head {
            let safe = head.saturating_sub(self.cfg.reorg_window);
            let step = if next <= safe {
                self.backfill_step(next, safe).await?
            } else {
                self.tail_step(next, head).await?
            };
            match step {
                Step::Indexed { next: n, events, ignored } => {
                    next = n;
                    report.events += events;
                    report.ignored += ignored;
                    unstable = 0;
                }
                Step::Reorged => {
                    report.reorgs += 1;
                    next = self.store.next_block().await?.unwrap_or(self.cfg.start_block);
                }
                Step::Unstable => {
                    // The chain changed while we read it: back off and read again.
                    unstable += 1;
                    if unstable > self.cfg.max_retries {
                        return Err(Error::Rpc {
                            what: format!("blocks {next}..={head}"),
                            message: "headers and logs keep disagreeing (chain reorganising?)"
                                .into(),
                        });
                    }
                    tokio::time::sleep(backoff(&self.cfg, unstable)).await;
                }
            }
        }
        self.store.set_meta("chain_head", &head.to_string()).await?;
        report.next_block = next;
        Ok(report)
    }

    /// Runs the live tail until `stop` turns true: sync, then poll the head about every
    /// `poll_interval`, or sooner when the source pushes a new head (ws:// RPC URLs subscribe to
    /// `newHeads`; see [`ChainSource::head_notifications`]). Transient errors are logged and
    /// retried; a deep reorg or a configuration error ends the loop.
    pub async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut failures = 0u32;
        // Pushed heads (ws:// sources) wake the loop early; polling stays as the fallback.
        let mut heads = self.src.head_notifications();
        loop {
            if let Some(h) = heads.as_mut() {
                h.mark_unchanged();
            }
            if *stop.borrow() {
                return Ok(());
            }
            match self.sync_once().await {
                Ok(r) => {
                    failures = 0;
                    if r.events > 0 || r.reorgs > 0 {
                        tracing::info!(
                            head = r.head,
                            next = r.next_block,
                            events = r.events,
                            reorgs = r.reorgs,
                            "indexed"
                        );
                    }
                }
                Err(e @ (Error::DeepReorg { .. } | Error::Config(_) | Error::Corrupt(_))) => {
                    return Err(e);
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "indexer step failed; retrying");
                }
            }
            let wait =
                if failures > 0 { backoff(&self.cfg, failures) } else { self.cfg.poll_interval };
            let pushed = async {
                match heads.as_mut() {
                    Some(h) if failures == 0 => h.changed().await.is_ok(),
                    _ => std::future::pending().await,
                }
            };
            let alive = tokio::select! {
                _ = tokio::time::sleep(wait) => true,
                _ = stop.changed() => true,
                alive = pushed => alive,
            };
            if !alive {
                heads = None;
            }
        }
    }

    /// If the stored tip is no longer canonical, rewinds to the common ancestor.
    async fn check_tip(&mut self) -> Result<u32> {
        let Some(tip) = self.store.tip_block().await? else { return Ok(0) };
        let canon = retry(&self.cfg, "eth_getBlockByNumber", || self.src.block(tip.number)).await?;
        if canon.map(|c| c.hash) == Some(tip.hash) {
            return Ok(0);
        }
        self.rewind_from(tip.number).await?;
        Ok(1)
    }

    /// Walks back from stored block `n` to the newest one still canonical and rewinds past it.
    async fn rewind_from(&mut self, mut n: u64) -> Result<()> {
        let tip = n;
        loop {
            let Some(stored) = self.store.block(n).await? else {
                return Err(Error::DeepReorg { window: self.cfg.reorg_window, tip });
            };
            let canon = retry(&self.cfg, "eth_getBlockByNumber", || self.src.block(n)).await?;
            if canon.map(|c| c.hash) == Some(stored.hash) {
                tracing::warn!(
                    fork = n + 1,
                    depth = tip - n,
                    "reorg: rewinding to common ancestor"
                );
                self.store.rewind(n + 1).await?;
                return Ok(());
            }
            if n == 0 {
                return Err(Error::DeepReorg { window: self.cfg.reorg_window, tip });
            }
            n -= 1;
        }
    }

    /// Indexes deep blocks `next..=safe` (up to `concurrency` ranges) from logs alone.
    async fn backfill_step(&mut self, next: u64, safe: u64) -> Result<Step> {
        let mut ranges = Vec::new();
        let mut s = next;
        while ranges.len() < self.cfg.concurrency.max(1) && s <= safe {
            let e = s.saturating_add(self.range - 1).min(safe);
            ranges.push((s, e));
            s = e + 1;
        }
        let to = ranges.last().map_or(next, |r| r.1);
        let addrs = self.addresses();
        let started = Instant::now();
        let results: Vec<Result<(Vec<Log>, Option<u64>)>> =
            futures::future::join_all(ranges.iter().map(|&(a, b)| self.fetch_logs(a, b, &addrs)))
                .await;
        let mut logs = Vec::new();
        // After a split: the widest range the provider answered (the narrowest such over the
        // concurrent ranges).
        let mut shrunk: Option<u64> = None;
        for r in results {
            let (l, s) = r?;
            if let Some(w) = s {
                shrunk = Some(shrunk.map_or(w, |v| v.min(w)));
            }
            logs.extend(l);
        }
        let elapsed = started.elapsed();
        let n_logs = logs.len();
        let t1 = Instant::now();
        let times = self.timestamps(&logs, &BTreeMap::new()).await?;
        let t2 = Instant::now();
        let (events, ignored, new_tokens) = self.decode_all(&logs, &times, next, to).await?;
        let n = events.len();
        let t3 = Instant::now();
        self.store
            .commit(&Batch {
                events,
                blocks: Vec::new(),
                new_tokens,
                next_block: to + 1,
                prune_below: 0,
            })
            .await?;
        tracing::debug!(
            from = next,
            to,
            logs = n_logs,
            fetch = ?elapsed,
            timestamps = ?(t2 - t1),
            decode = ?(t3 - t2),
            commit = ?t3.elapsed(),
            "backfilled"
        );
        // Adapt: after errors, at most half and at most what the provider then answered (a
        // capped provider is learnt in one step); double while requests are quick and small.
        if let Some(widest_ok) = shrunk {
            self.range = (self.range / 2).min(widest_ok).max(1);
        } else if elapsed < Duration::from_secs(2) && n_logs < 5_000 * ranges.len() {
            self.range = (self.range * 2).min(self.cfg.max_range.max(1));
        }
        Ok(Step::Indexed { next: to + 1, events: n, ignored })
    }

    /// Indexes recent blocks `next..=head` (one range) with header checks.
    async fn tail_step(&mut self, next: u64, head: u64) -> Result<Step> {
        let to = next.saturating_add(self.range.min(self.cfg.reorg_window.max(1)) - 1).min(head);
        let (src, cfg) = (&self.src, &self.cfg);
        let headers: Vec<Result<Option<BlockRef>>> = stream::iter(next..=to)
            .map(|n| async move { retry(cfg, "eth_getBlockByNumber", || src.block(n)).await })
            .buffered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        let mut blocks = Vec::with_capacity(headers.len());
        for h in headers {
            match h? {
                Some(b) => blocks.push(b),
                None => return Ok(Step::Unstable),
            }
        }
        // Parent linkage: with what we stored, then within the range.
        if let Some(prev) = next.checked_sub(1)
            && let Some(stored) = self.store.block(prev).await?
            && blocks[0].parent != stored.hash
        {
            self.rewind_from(prev).await?;
            return Ok(Step::Reorged);
        }
        if blocks.windows(2).any(|w| w[1].parent != w[0].hash || w[1].number != w[0].number + 1) {
            return Ok(Step::Unstable);
        }
        let addrs = self.addresses();
        let (logs, _) = self.fetch_logs(next, to, &addrs).await?;
        let by_number: BTreeMap<u64, BlockRef> = blocks.iter().map(|b| (b.number, *b)).collect();
        if logs
            .iter()
            .any(|l| l.block_number.and_then(|n| by_number.get(&n)).map(|b| b.hash) != l.block_hash)
        {
            return Ok(Step::Unstable);
        }
        let times = self.timestamps(&logs, &by_number).await?;
        let (events, ignored, new_tokens) = self.decode_all(&logs, &times, next, to).await?;
        let n = events.len();
        let prune_below = to.saturating_sub(self.cfg.reorg_window);
        let t3 = Instant::now();
        self.store
            .commit(&Batch { events, blocks, new_tokens, next_block: to + 1, prune_below })
            .await?;
        tracing::debug!(from = next, to, events = n, commit = ?t3.elapsed(), "tail step indexed");
        Ok(Step::Indexed { next: to + 1, events: n, ignored })
    }

    fn addresses(&self) -> Vec<Address> {
        let mut v = self.cfg.contracts.all();
        v.extend(self.tokens.iter().copied());
        v
    }

    /// Logs of `from..=to`, splitting the range on errors (single blocks are retried with
    /// backoff). Returns the logs in chain order and, if any split happened, the widest range
    /// the provider then answered (what a capped provider allows).
    async fn fetch_logs(
        &self,
        from: u64,
        to: u64,
        addrs: &[Address],
    ) -> Result<(Vec<Log>, Option<u64>)> {
        let mut out = Vec::new();
        let mut stack = vec![(from, to)];
        let mut shrunk = false;
        let mut widest_ok = 0u64;
        let mut attempts = 0u32;
        while let Some((a, b)) = stack.pop() {
            match self.src.logs(a, b, addrs).await {
                Ok(logs) => {
                    attempts = 0;
                    widest_ok = widest_ok.max(b - a + 1);
                    out.extend(logs.into_iter().filter(|l| {
                        !l.removed && l.block_number.is_some_and(|n| (a..=b).contains(&n))
                    }));
                }
                Err(e) if b > a => {
                    tracing::debug!(error = %e, a, b, "eth_getLogs failed; splitting the range");
                    shrunk = true;
                    let mid = a + (b - a) / 2;
                    stack.push((mid + 1, b));
                    stack.push((a, mid));
                }
                Err(e) => {
                    attempts += 1;
                    if attempts > self.cfg.max_retries {
                        return Err(e);
                    }
                    tokio::time::sleep(backoff(&self.cfg, attempts)).await;
                    stack.push((a, b));
                }
            }
        }
        out.sort_by_key(|l| (l.block_number, l.log_index));
        Ok((out, shrunk.then_some(widest_ok.max(1))))
    }

    /// Block timestamps for logs that do not carry one (fetched with bounded concurrency).
    async fn timestamps(
        &self,
        logs: &[Log],
        known: &BTreeMap<u64, BlockRef>,
    ) -> Result<BTreeMap<u64, u64>> {
        let mut times: BTreeMap<u64, u64> = known.iter().map(|(n, b)| (*n, b.timestamp)).collect();
        let missing: BTreeSet<u64> = logs
            .iter()
            .filter(|l| l.block_timestamp.is_none())
            .filter_map(|l| l.block_number)
            .filter(|n| !times.contains_key(n))
            .collect();
        let fetched: Vec<(u64, Result<Option<BlockRef>>)> = stream::iter(missing)
            .map(|n| async move {
                (n, retry(&self.cfg, "eth_getBlockByNumber", || self.src.block(n)).await)
            })
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        for (n, b) in fetched {
            if let Some(b) = b? {
                times.insert(n, b.timestamp);
            }
        }
        Ok(times)
    }

    /// Decodes logs; discovers new bounty tokens and catches up their transfers up to `to`.
    async fn decode_all(
        &mut self,
        logs: &[Log],
        times: &BTreeMap<u64, u64>,
        _from: u64,
        to: u64,
    ) -> Result<(Vec<EventRow>, usize, Vec<(Address, u64)>)> {
        let c = self.cfg.contracts.clone();
        let mut ignored = 0;
        let mut events: Vec<EventRow> = Vec::with_capacity(logs.len());
        for l in logs {
            let t = l.block_number.and_then(|n| times.get(&n).copied()).unwrap_or(0);
            match decode(l, &c, &self.tokens, t) {
                Some(e) => events.push(e),
                None => ignored += 1,
            }
        }
        let mut new_tokens = Vec::new();
        for e in &events {
            if e.kind == "BountyPosted"
                && let Some(tok) = e.counterparty
                && !tok.is_zero()
                && !self.tokens.contains(&tok)
                && !new_tokens.iter().any(|(t, _)| *t == tok)
            {
                new_tokens.push((tok, e.block_number));
            }
        }
        for (tok, _) in &new_tokens {
            tracing::info!(token = %tok, "new bounty token: indexing its transfers");
            self.tokens.push(*tok);
            let mut a = self.cfg.start_block;
            while a <= to {
                let b = a.saturating_add(self.cfg.max_range - 1).min(to);
                let (logs, _) = self.fetch_logs(a, b, &[*tok]).await?;
                let times = self.timestamps(&logs, &BTreeMap::new()).await?;
                for l in &logs {
                    let t = l.block_number.and_then(|n| times.get(&n).copied()).unwrap_or(0);
                    if let Some(e) = decode(l, &c, &[*tok], t) {
                        events.push(e);
                    }
                }
                a = b + 1;
            }
        }
        Ok((events, ignored, new_tokens))
    }
}

enum Step {
    Indexed { next: u64, events: usize, ignored: usize },
    Reorged,
    Unstable,
}

/// Retries `op` with exponential backoff up to `cfg.max_retries` times.
async fn retry<T, F, Fut>(cfg: &IndexerConfig, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < cfg.max_retries => {
                attempt += 1;
                tracing::debug!(error = %e, what, attempt, "retrying");
                tokio::time::sleep(backoff(cfg, attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Highest indexed block at least `confirmations` below the last head the indexer saw.
pub async fn confirmed_tip(store: &Store, confirmations: u64) -> Result<Option<u64>> {
    let Some(next) = store.next_block().await? else { return Ok(None) };
    let head: u64 = store
        .meta("chain_head")
        .await?
        .and_then(|s| s.parse().ok())
        .unwrap_or(next.saturating_sub(1));
    let indexed = next.checked_sub(1);
    Ok(indexed.and_then(|i| head.checked_sub(confirmations).map(|c| c.min(i))))
}
