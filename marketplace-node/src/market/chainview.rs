//! The work loop's view of the escrow: bounty records and statuses cached per bounty and kept
//! coherent by one log scan per pass.
//!
//! Without it every unfinished bounty cost a `getLogs` over the whole chain, a `statusOf` call
//! and a block read on every pass (three RPC requests per bounty every 200 ms), which made the
//! node the heaviest client of its own chain. Now a pass costs:
//!
//! - one `eth_getBlockByNumber(latest)` (the head: number, hash, parent hash, timestamp), and
//!   when the head moved, one `eth_getLogs` over the new blocks for the escrow's address, after
//!   a reorg check: the new head's parent hash when it is one block on (the usual case on a
//!   real chain, where a pass is shorter than a block), else a header read of the previous head;
//! - no read at all for a cached record: the new events are replayed into it (the same replay
//!   as a full read, [`escrow_client::escrow::apply_log`]); a bounty first seen as not posted
//!   yet (`statusOf` = `None`, as the node sees every bounty it announces) gets its record
//!   from the scan as well. A status an event touched is taken from the events too
//!   ([`escrow_client::escrow::status_effect`]: the status each event leaves, stamped with the
//!   log's block time or the award's due time); it is read again (one `statusOf` call) only
//!   when the last event does not say (a log without `blockTimestamp`, an unknown event).
//! - a full read (`eth_getLogs` over the escrow's whole history for that id) only for a bounty
//!   this process has not followed since it was posted, or after the cache was emptied.
//!
//! The platform fee (`feeBps()`, checked against every posted record) is read once and kept
//! until the scan sees a `FeeUpdated` event.
//!
//! A posting's "already on-chain?" check ([`ChainView::status_of_new`]) costs no request when
//! the embedded indexer and the scans can show that no escrow log ever named the id.
//!
//! Coherence rule: every escrow event that changes a bounty carries its id as the first
//! indexed topic. An entry read while the head was `n` is dropped as soon as a log at a block
//! above `n` names its id. An entry is only stored if no sync happened while it was read
//! (otherwise its `n` would be unknown), and a reorg (the previous head's hash changed, or the
//! head went back) or a gap longer than [`MAX_LOG_SPAN`] blocks empties the cache.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::Filter,
};
use escrow_client::{
    BlockHead, ReefClient, Status,
    bindings::escrow::IBountyTypes::Bounty,
    escrow::{BountyState, HistoryEntry, StatusEffect, apply_log, status_effect},
};

use super::MarketError;

type Result<T> = std::result::Result<T, MarketError>;

/// Most cached bounties; beyond it the cache is emptied (the next pass re-reads what it needs).
const MAX_CACHED: usize = 100_000;

/// Longest block range scanned for events in one pass. Hosted RPC endpoints cap `eth_getLogs`
/// ranges; after a longer gap (the node was down, or the RPC was) the cache is emptied instead.
pub const MAX_LOG_SPAN: u64 = 2_000;

/// How long a bidder's stake is reused for ranking. Stakes live in the agent registry (not
/// in the escrow's logs), and unbonding takes days, so a few seconds of staleness only shifts a
/// ranking input; the escrow checks the stake gate itself at award time.
const STAKE_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct State {
    head: Option<BlockHead>,
    /// Records (events replayed), by bounty id, with the block up to which every event of the
    /// bounty is in them.
    bounties: HashMap<U256, Followed>,
    /// `statusOf` answers (including `None` for a bounty not posted yet).
    statuses: HashMap<U256, ((Status, u64), u64)>,
    /// Bidders' stakes (a ranking input) with the time they were read.
    stakes: HashMap<Address, (U256, Instant)>,
    /// The escrow's platform fee (`feeBps()`), until a `FeeUpdated` event (or a reorg).
    fee_bps: Option<u16>,
    /// The first block of the scans since the cache was last emptied: every escrow log from
    /// it to the head has been through [`ChainView::sync`] (`None` before the first sync).
    seen_from: Option<u64>,
    /// The ids those logs name (a posting's id not among them had no event since `seen_from`).
    seen: HashSet<U256>,
}

#[derive(Debug, Clone)]
struct Followed {
    record: Bounty,
    history: Vec<HistoryEntry>,
    through: u64,
}

/// Cached on-chain bounty state for the market's work loop.
#[derive(Debug)]
pub struct ChainView {
    chain: ReefClient,
    escrow: Address,
    /// The embedded indexer, for the blocks before `seen_from` (see [`Self::status_of_new`]).
    index: Option<reef_indexer::Store>,
    state: Mutex<State>,
    /// Gas used by transactions, from their receipts (a mined transaction's gas never changes
    /// unless a reorg drops it; the dashboard shows it beside the hash).
    gas: Mutex<HashMap<B256, u64>>,
}

impl ChainView {
    /// A view over `chain`'s escrow; empty until the first [`sync`](Self::sync).
    pub fn new(chain: ReefClient) -> Self {
        let escrow = chain.deployment().bounty_escrow;
        Self { chain, escrow, index: None, state: Mutex::default(), gas: Mutex::default() }
    }

    /// Answers [`Self::status_of_new`] from `index` (the embedded indexer of the same escrow)
    /// where it can.
    pub fn with_index(mut self, index: Option<reef_indexer::Store>) -> Self {
        self.index = index;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn header(&self, tag: BlockNumberOrTag) -> Result<Option<BlockHead>> {
        Ok(self.chain.block_header(tag).await?)
    }

    /// Advances to the chain's head: drops every cached bounty an event touched since the last
    /// sync (or everything after a reorg). Called once at the start of each pass.
    ///
    /// Returns the ids named by the new events (the bounties to step), or `None` when the
    /// whole cache was dropped (first sync, reorg, long gap): then any bounty may have changed.
    pub async fn sync(&self) -> Result<Option<Vec<U256>>> {
        let head = self
            .header(BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| MarketError::Internal("the RPC node returned no latest block".into()))?;
        let prev = self.lock().head;
        let touched = match prev {
            None => None, // first pass: nothing cached yet
            Some(p) if head.number == p.number && head.hash == p.hash => Some(Vec::new()),
            Some(p) if head.number <= p.number => None, // went back or sideways: reorg
            Some(p) if head.number - p.number > MAX_LOG_SPAN => None, // too far to scan
            Some(p) => {
                // Is the previous head still on the chain? One block on, the new head's parent
                // says so; further on, its header is read again.
                let kept = if head.number == p.number + 1 {
                    head.parent_hash == p.hash
                } else {
                    let still = self.header(BlockNumberOrTag::Number(p.number)).await?;
                    still.map(|h| h.hash) == Some(p.hash)
                };
                if !kept {
                    None
                } else {
                    let filter = Filter::new()
                        .address(self.escrow)
                        .from_block(p.number + 1)
                        .to_block(head.number);
                    Some(self.chain.logs(&filter).await?)
                }
            }
        };
        let mut s = self.lock();
        let fee_updated =
            <escrow_client::bindings::escrow::BountyEscrow::FeeUpdated as alloy::sol_types::SolEvent>::SIGNATURE_HASH;
        let ids = match &touched {
            None => {
                s.bounties.clear();
                s.statuses.clear();
                s.fee_bps = None;
                s.seen.clear();
                s.seen_from = Some(head.number + 1);
                None
            }
            Some(logs) => {
                if logs.iter().any(|l| l.topics().first() == Some(&fee_updated)) {
                    s.fee_bps = None;
                }
                // The logs come oldest first; group them by bounty, keeping that order.
                let mut by_id: Vec<(U256, Vec<&alloy::rpc::types::Log>)> = Vec::new();
                let mut index: HashMap<U256, usize> = HashMap::new();
                for l in logs {
                    let Some(t) = l.topics().get(1) else { continue };
                    let id = U256::from_be_bytes(t.0);
                    let i = *index.entry(id).or_insert_with(|| {
                        by_id.push((id, Vec::new()));
                        by_id.len() - 1
                    });
                    by_id[i].1.push(l);
                }
                for (id, logs) in &by_id {
                    s.seen.insert(*id);
                    let block = |l: &alloy::rpc::types::Log| l.block_number.unwrap_or(u64::MAX);
                    let not_posted_at = match s.statuses.get(id) {
                        Some(((Status::None, _), at)) => Some(*at),
                        _ => None,
                    };
                    if let Some(f) = s.bounties.get_mut(id) {
                        // Replay what the record does not hold yet (a full read may already
                        // have seen some of these blocks).
                        let mut record = Some(f.record.clone());
                        for l in logs.iter().filter(|l| block(l) > f.through) {
                            apply_log(&mut record, &mut f.history, l);
                        }
                        if let Some(r) = record {
                            f.record = r;
                        }
                        f.through = head.number;
                    } else if let Some(at) = not_posted_at {
                        // Not posted as of `at`, and no event of it since (or the status would
                        // have been dropped): its whole history is in this scan.
                        let (mut record, mut history) = (None, Vec::new());
                        for l in logs.iter().filter(|l| block(l) > at) {
                            apply_log(&mut record, &mut history, l);
                        }
                        if let Some(record) = record {
                            s.bounties
                                .insert(*id, Followed { record, history, through: head.number });
                        }
                    }
                    // The status after these logs is the one the last status-setting event set
                    // (each sets it whole, so logs the cached answer already saw do no harm).
                    // Only for bounties this view follows: others' are never read.
                    if s.statuses.contains_key(id) || s.bounties.contains_key(id) {
                        let last = logs
                            .iter()
                            .rev()
                            .map(|l| status_effect(l))
                            .find(|e| *e != StatusEffect::Keep)
                            .unwrap_or(StatusEffect::Keep);
                        match last {
                            StatusEffect::Set(status, stamp) => {
                                s.statuses.insert(*id, ((status, stamp), head.number));
                            }
                            StatusEffect::Keep => {
                                if let Some((_, at)) = s.statuses.get_mut(id) {
                                    *at = head.number;
                                }
                            }
                            StatusEffect::Unknown => {
                                s.statuses.remove(id);
                            }
                        }
                    }
                }
                Some(by_id.into_iter().map(|(id, _)| id).collect::<Vec<_>>())
            }
        };
        if s.bounties.len() + s.statuses.len() > MAX_CACHED {
            s.bounties.clear();
            s.statuses.clear();
        }
        if s.seen.len() > MAX_CACHED {
            s.seen.clear();
            s.seen_from = Some(head.number + 1);
        }
        s.stakes.retain(|_, (_, at)| at.elapsed() < STAKE_TTL);
        s.head = Some(head);
        Ok(ids)
    }

    /// The head's number as of the last sync (None before the first).
    pub fn head_number(&self) -> Option<u64> {
        self.at()
    }

    /// The head's number if synced (reads are cached against it).
    fn at(&self) -> Option<u64> {
        self.lock().head.map(|h| h.number)
    }

    /// Stores `f(value)` read at head `at` unless a sync ran meanwhile.
    fn store(&self, at: Option<u64>, f: impl FnOnce(&mut State, u64)) {
        let mut s = self.lock();
        if let (Some(at), Some(h)) = (at, s.head)
            && h.number == at
        {
            f(&mut s, at);
        }
    }

    /// The bounty's record, status and history (cached).
    pub async fn bounty(&self, id: U256) -> Result<BountyState> {
        let followed = self.lock().bounties.get(&id).cloned();
        if let Some(f) = followed {
            let (status, stamp) = self.status_of(id).await?;
            return Ok(BountyState { id, record: f.record, status, stamp, history: f.history });
        }
        let at = self.at();
        let b = self.chain.bounty(id).await?;
        self.store(at, |s, at| {
            s.statuses.insert(id, ((b.status, b.stamp), at));
            // Every event up to `at` is in the read (it may hold later ones too: a later scan
            // replays only blocks above `through`).
            let through = b.history.last().map_or(at, |h| h.block.max(at));
            s.bounties.insert(
                id,
                Followed { record: b.record.clone(), history: b.history.clone(), through },
            );
        });
        Ok(b)
    }

    /// `statusOf(id)` (cached).
    pub async fn status_of(&self, id: U256) -> Result<(Status, u64)> {
        if let Some((st, _)) = self.lock().statuses.get(&id) {
            return Ok(*st);
        }
        let at = self.at();
        let st = self.chain.status_of(id).await?;
        self.store(at, |s, at| {
            s.statuses.insert(id, (st, at));
        });
        Ok(st)
    }

    /// [`Self::status_of`] for a bounty the node is about to register, which is almost never
    /// on-chain yet: `None` is answered without a JSON-RPC request when no escrow log ever
    /// named `id`. The embedded indexer holds every block below its checkpoint, this view's
    /// scans every block from `seen_from` to the head; when the two ranges meet and neither
    /// names `id`, the bounty was not posted as of the head (the same anchor as a `statusOf`
    /// answer of `None`: the next scans build its record). Otherwise (no indexer, an indexer
    /// behind the view's first block, an id either one knows, a failed read) it is read.
    ///
    /// A reorg the view sees empties it and moves `seen_from` to the new head, so the index
    /// must then have caught up past that head before it answers again.
    pub async fn status_of_new(&self, id: U256) -> Result<(Status, u64)> {
        let (at, from, seen, cached) = {
            let s = self.lock();
            (
                s.head.map(|h| h.number),
                s.seen_from,
                s.seen.contains(&id),
                s.statuses.get(&id).map(|(st, _)| *st),
            )
        };
        if let Some(st) = cached {
            return Ok(st);
        }
        if let (Some(index), Some(at), Some(from), false) = (&self.index, at, from, seen) {
            match index.bounty_seen(id).await {
                Ok((Some(next), false)) if next >= from => {
                    let none = (Status::None, 0);
                    self.store(Some(at), |s, at| {
                        s.statuses.insert(id, (none, at));
                    });
                    return Ok(none);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the index could not say whether a bounty was posted; reading statusOf");
                }
            }
        }
        self.status_of(id).await
    }

    /// The escrow's platform fee in basis points (cached until a `FeeUpdated` event).
    pub async fn fee_bps(&self) -> Result<u16> {
        if let Some(fee) = self.lock().fee_bps {
            return Ok(fee);
        }
        let at = self.at();
        let fee = self.chain.fee_bps().await?;
        self.store(at, |s, _| s.fee_bps = Some(fee));
        Ok(fee)
    }

    /// `who`'s stake in the agent registry (reused for [`STAKE_TTL`]).
    pub async fn stake_of(&self, who: Address) -> Result<U256> {
        if let Some((v, at)) = self.lock().stakes.get(&who)
            && at.elapsed() < STAKE_TTL
        {
            return Ok(*v);
        }
        let v = self.chain.stake_of(who).await?;
        self.lock().stakes.insert(who, (v, Instant::now()));
        Ok(v)
    }

    /// Gas used by transaction `tx` (its receipt, read once and kept); `None` while the
    /// transaction has no receipt.
    pub async fn gas_used(&self, tx: B256) -> Result<Option<u64>> {
        if let Some(g) = self.gas.lock().unwrap_or_else(|p| p.into_inner()).get(&tx) {
            return Ok(Some(*g));
        }
        let receipt =
            self.chain.provider().get_transaction_receipt(tx).await.map_err(|source| {
                let url = self.chain.rpc_url().to_string();
                MarketError::Chain(Box::new(escrow_client::Error::Rpc { url, source }))
            })?;
        let Some(r) = receipt else { return Ok(None) };
        let mut cache = self.gas.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(tx, r.gas_used);
        Ok(Some(r.gas_used))
    }

    /// The head's timestamp as of the last sync (the chain's clock for deadlines); read from
    /// the chain before the first sync.
    pub async fn chain_time(&self) -> Result<u64> {
        let head = self.lock().head;
        match head {
            Some(h) => Ok(h.timestamp),
            None => Ok(self.chain.chain_time().await?),
        }
    }

    /// The cached `statusOf(id)` answer, without reading the chain.
    pub fn cached_status(&self, id: U256) -> Option<(Status, u64)> {
        self.lock().statuses.get(&id).map(|(st, _)| *st)
    }

    /// The head's timestamp as of the last sync, without reading the chain.
    pub fn synced_time(&self) -> Option<u64> {
        self.lock().head.map(|h| h.timestamp)
    }

    /// Number of cached bounty records and statuses (for tests and metrics).
    pub fn cached(&self) -> (usize, usize) {
        let s = self.lock();
        (s.bounties.len(), s.statuses.len())
    }
}
