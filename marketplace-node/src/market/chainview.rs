//! The work loop's view of the escrow: bounty records and statuses cached per bounty and kept
//! coherent by one log scan per pass.
//!
//! Without it every unfinished bounty cost a `getLogs` over the whole chain, a `statusOf` call
//! and a block read on every pass (three RPC requests per bounty every 200 ms), which made the
//! node the heaviest client of its own chain. Now a pass costs:
//!
//! - one `eth_getBlockByNumber(latest)` (the head: number, hash, timestamp), and when the head
//!   moved, one header read of the previous head (reorg check) and one `eth_getLogs` over the
//!   new blocks for the escrow's address;
//! - a fresh read only for bounties that an event touched since they were cached.
//!
//! Coherence rule: every escrow event that changes a bounty carries its id as the first
//! indexed topic. An entry read while the head was `n` is dropped as soon as a log at a block
//! above `n` names its id. An entry is only stored if no sync happened while it was read
//! (otherwise its `n` would be unknown), and a reorg (the previous head's hash changed, or the
//! head went back) or a gap longer than [`MAX_LOG_SPAN`] blocks empties the cache.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256},
    rpc::types::Filter,
};
use escrow_client::{ReefClient, Status, escrow::BountyState};

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

#[derive(Debug, Clone, Copy)]
struct Head {
    number: u64,
    hash: B256,
    time: u64,
}

#[derive(Debug, Default)]
struct State {
    head: Option<Head>,
    /// Full records (events replayed), by bounty id, with the head they were read at.
    bounties: HashMap<U256, (BountyState, u64)>,
    /// `statusOf` answers (including `None` for a bounty not posted yet).
    statuses: HashMap<U256, ((Status, u64), u64)>,
    /// Bidders' stakes (a ranking input) with the time they were read.
    stakes: HashMap<Address, (U256, Instant)>,
}

/// Cached on-chain bounty state for the market's work loop.
#[derive(Debug)]
pub struct ChainView {
    chain: ReefClient,
    escrow: Address,
    state: Mutex<State>,
}

impl ChainView {
    /// A view over `chain`'s escrow; empty until the first [`sync`](Self::sync).
    pub fn new(chain: ReefClient) -> Self {
        let escrow = chain.deployment().bounty_escrow;
        Self { chain, escrow, state: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn header(&self, tag: BlockNumberOrTag) -> Result<Option<Head>> {
        let h = self.chain.block_header(tag).await?;
        Ok(h.map(|(number, hash, time)| Head { number, hash, time }))
    }

    /// Advances to the chain's head: drops every cached bounty an event touched since the last
    /// sync (or everything after a reorg). Called once at the start of each pass.
    pub async fn sync(&self) -> Result<()> {
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
                let still = self.header(BlockNumberOrTag::Number(p.number)).await?;
                if still.map(|h| h.hash) != Some(p.hash) {
                    None
                } else {
                    let filter = Filter::new()
                        .address(self.escrow)
                        .from_block(p.number + 1)
                        .to_block(head.number);
                    let logs = self.chain.logs(&filter).await?;
                    Some(
                        logs.iter()
                            .filter_map(|l| {
                                let id = l.topics().get(1)?;
                                Some((
                                    U256::from_be_bytes(id.0),
                                    l.block_number.unwrap_or(u64::MAX),
                                ))
                            })
                            .collect(),
                    )
                }
            }
        };
        let mut s = self.lock();
        match touched {
            None => {
                s.bounties.clear();
                s.statuses.clear();
            }
            Some(touched) => {
                for (id, block) in touched {
                    if s.bounties.get(&id).is_some_and(|(_, at)| block > *at) {
                        s.bounties.remove(&id);
                    }
                    if s.statuses.get(&id).is_some_and(|(_, at)| block > *at) {
                        s.statuses.remove(&id);
                    }
                }
            }
        }
        if s.bounties.len() + s.statuses.len() > MAX_CACHED {
            s.bounties.clear();
            s.statuses.clear();
        }
        s.stakes.retain(|_, (_, at)| at.elapsed() < STAKE_TTL);
        s.head = Some(head);
        Ok(())
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
        if let Some((b, _)) = self.lock().bounties.get(&id) {
            return Ok(b.clone());
        }
        let at = self.at();
        let b = self.chain.bounty(id).await?;
        self.store(at, |s, at| {
            s.statuses.insert(id, ((b.status, b.stamp), at));
            s.bounties.insert(id, (b.clone(), at));
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

    /// The head's timestamp as of the last sync (the chain's clock for deadlines); read from
    /// the chain before the first sync.
    pub async fn chain_time(&self) -> Result<u64> {
        let head = self.lock().head;
        match head {
            Some(h) => Ok(h.time),
            None => Ok(self.chain.chain_time().await?),
        }
    }

    /// Number of cached bounty records and statuses (for tests and metrics).
    pub fn cached(&self) -> (usize, usize) {
        let s = self.lock();
        (s.bounties.len(), s.statuses.len())
    }
}
