//! The node's marketplace coordinator: validates postings and bids, runs the work loop that
//! moves each bounty through its phases, and talks to agents over IoA groups.

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    signers::local::PrivateKeySigner,
};
use escrow_client::{
    ClientOptions, Deployment, ReefClient, Status,
    bindings::escrow::IBountyTypes::{Bid, Bounty},
    escrow::{RecordJson, bounty_id, terms_hash},
    signing::verdict as verdict_code,
};
use reef_wire::{AgentQuery, SendMessage, State as MsgState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use super::{
    MarketError, Result,
    auction::{BidBook, Candidate, ScoringConfig},
    id_hex,
    ranking::{RankedBid, Ranking, SignedBid, next_runner_up, top_bid_expiry},
    scheduler::{MAX_IDLE_MS, RETRY_MS, Scheduler, next_wake},
    store::{Admission, BountyRow, MarketStore, Phase},
    verify::{Verdict, Verifiers, VerifySpec, result_hash},
};
use crate::ioa::Node;

mod announce;
mod award;
mod bidding;
mod contest;
mod posting;
mod retention;
mod settlement;
mod verification;
mod view;
pub use view::BountyView;
mod work;
mod work_loop;

/// Marketplace settings of a node.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// Chain RPC endpoint.
    pub rpc_url: String,
    /// Contract addresses.
    pub deployment: Deployment,
    /// The node's evaluator key (signs attestations, pays gas for refunds and claims).
    pub key: PrivateKeySigner,
    /// How the node's transactions are sent: fee caps and stuck-transaction replacement.
    pub chain_options: ClientOptions,
    /// Bid ranking weights.
    pub scoring: ScoringConfig,
    /// Most bids kept per bounty.
    pub bid_capacity: usize,
    /// Most agents invited per call for proposals (0 = every matching online agent).
    pub cfp_fanout: usize,
    /// A bid must stay valid at least this long after the window closes (time to award).
    pub award_grace_secs: u64,
    /// Longest accepted bid window.
    pub max_bid_window_secs: u64,
    /// Admission control: most bounties in their bid window at once; a post beyond it is
    /// refused with `503 busy` and a retry time, before anything is registered (0 = no limit).
    pub max_open_windows: usize,
    /// How many times a window that closes without a valid bid is extended (by its own
    /// length, while the deadline leaves room) before the bounty fails: bids that a loaded
    /// machine delivers late still count.
    pub max_window_extensions: u32,
    /// Work-loop period.
    pub tick: Duration,
    /// Verifier programs offered to posters.
    pub verifiers: Verifiers,
    /// The embedded indexer's store: bidders are ranked with the reputation engine's scores.
    pub reputation: Option<reef_indexer::Store>,
    /// Copy each final bounty's verdict into the ERC-8004 ValidationRegistry (one transaction
    /// per bounty whose provider has an agent identity, paid by the node's key).
    pub record_validations: bool,
    /// The region this node keeps its data in (`--region`): bounties whose terms name
    /// another region (or any region, when this is `None`) are refused.
    pub region: Option<String>,
    /// Default time an ended bounty's task input and result are kept when its terms set no
    /// retention (`None`: kept).
    pub task_retention: Option<Duration>,
    /// How often ended bounties past their retention are looked for.
    pub retention_sweep: Duration,
}

/// What a poster sends to register a bounty with the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostRequest {
    /// Salt that, with the poster, determines the bounty id.
    pub salt: B256,
    /// The record as it will be posted on-chain (no provider, price or result yet).
    pub record: RecordJson,
    /// Task description (its keccak256 must equal `record.specHash`).
    pub description: String,
    /// Task input handed to the provider.
    #[serde(default)]
    pub input: Value,
    /// Skills a provider needs (discovery filter for the call for proposals).
    #[serde(default)]
    pub skills: Vec<String>,
    /// How the result is verified.
    pub verify: VerifySpec,
    /// Sealed-bid window in seconds (ignored when `bid_window_ms` is given).
    #[serde(default)]
    pub bid_window_secs: u64,
    /// Sealed-bid window in milliseconds, for agents that answer within a second.
    #[serde(default)]
    pub bid_window_ms: Option<u64>,
    /// Contest: shares of the paid entries in basis points, best first (empty = equal).
    #[serde(default)]
    pub split: Vec<u16>,
    /// The bounty is funded from the poster's pending reward on this parent bounty (hex id,
    /// `postFromReward`): `record.token` must be the poster's pledge token on it. Bidders get
    /// it in the call for proposals, to check the parent before they bid.
    #[serde(default)]
    pub from_reward: Option<String>,
    /// Data-usage terms (retention, onward sharing, region), committed through
    /// `record.specHash` ([`escrow_client::policy::spec_hash`]).
    #[serde(default)]
    pub policy: Option<escrow_client::policy::Policy>,
}

/// What a bidder sends: the EIP-712 bid and its signature.
pub type BidRequest = SignedBid;

/// The coordinator (cheap to clone).
#[derive(Debug, Clone)]
pub struct Market {
    inner: Arc<Inner>,
}

/// A bounty's data-usage terms, if it has any.
fn policy_of(row: &BountyRow) -> Option<escrow_client::policy::Policy> {
    serde_json::from_value(row.spec["policy"].clone()).ok().flatten()
}

/// Bounties stepped at once by the work loop (each step is a compare-and-set per bounty; the
/// chain client serializes the node's own transactions).
const STEP_CONCURRENCY: usize = 16;

/// Most open calls for proposals an agent that comes online is considered for.
const LATE_INVITE_SCAN: i64 = 1_000;

/// Stake reads in flight at once while ranking a window.
const STAKE_READS: usize = 16;

#[derive(Debug)]
struct Inner {
    /// When this process started, unix ms (a window that opened before it may have lost
    /// bids; agents connected to the previous process are still reconnecting).
    started_ms: u64,
    /// Claims on one-time side effects are taken as this node and process.
    claimant: super::store::Claimant,
    node: Node,
    store: MarketStore,
    chain: ReefClient,
    /// The work loop's cached view of the escrow (one log scan per pass).
    view: super::chainview::ChainView,
    cfg: MarketConfig,
    /// Which bounties the work loop steps next (event- and timer-driven).
    sched: Scheduler,
    /// How many long-polls each client holds open (bounded).
    long_polls: super::longpoll::LongPolls,
    /// Copies verdicts of final bounties into the ERC-8004 ValidationRegistry.
    validations: super::validations::ValidationRecorder,
}

/// Longest a long-polling view request waits for a change.
pub const MAX_VIEW_WAIT: Duration = Duration::from_secs(30);

fn now() -> u64 {
    reef_wire::unix_now()
}

/// Shortest bid window re-opened after a restart (agents must reconnect first).
pub const REOPEN_MIN_SECS: u64 = 10;

/// Shortest sealed-bid window (agents need a round trip to answer a call for proposals).
pub const MIN_BID_WINDOW_MS: u64 = 100;

/// Shortest extension of a window that closed without bids (a loaded agent needs time).
pub const MIN_EXTENSION_MS: u64 = 2_000;

/// How long a poster refused for a full node is told to wait, at least.
pub const BUSY_RETRY_MS: u64 = 1_000;

/// Whether the bounty's call for proposals went out (its group exists, not just a claim).
fn announced(row: &BountyRow) -> bool {
    row.cfp_group.as_deref().is_some_and(|g| !g.starts_with("claimed:"))
}

/// When bidding closes, in unix milliseconds: the window's exact end, or the stored whole
/// second once the window was re-opened (after a restart).
fn close_ms_of(row: &BountyRow) -> u64 {
    match row.bid_close_ms {
        ms if ms > 0 && ms.div_ceil(1000) == row.bid_close_at => ms,
        _ => row.bid_close_at.saturating_mul(1000),
    }
}

/// The `k` agents with the highest rendezvous hash `keccak256(bounty ‖ agent)`: every agent is
/// equally likely to be invited to a given call, the choice is the same after a restart, and
/// adding or removing an agent only changes the calls where that agent ranks in the top `k`.
fn fanout_pick(bounty: &str, mut agents: Vec<Address>, k: usize) -> Vec<Address> {
    let weight = |a: &Address| {
        let mut buf = bounty.as_bytes().to_vec();
        buf.extend_from_slice(a.as_slice());
        alloy::primitives::keccak256(buf)
    };
    agents.sort_by_cached_key(|a| std::cmp::Reverse(weight(a)));
    agents.truncate(k);
    agents
}

fn fmt_window(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

fn task_id(id: &str) -> String {
    format!("bounty-{}", &id[2..14])
}
impl Market {
    /// Connects to the chain and the node's database; does not start the work loop.
    pub async fn open(node: Node, cfg: MarketConfig) -> Result<Self> {
        let started_ms = reef_wire::unix_now_ms();
        if let Some(index) = &cfg.reputation {
            let d = &cfg.deployment;
            node.set_identity_index(
                index.clone(),
                format!("eip155:{}:{}", d.chain_id, d.agent_registry),
            );
        }
        let store = MarketStore::connect(&node.config().database_url).await?;
        let chain = ReefClient::connect(
            &cfg.rpc_url,
            cfg.key.clone(),
            cfg.deployment.clone(),
            cfg.chain_options.clone(),
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                started_ms,
                claimant: super::store::Claimant {
                    node: node.config().node_id.clone(),
                    since_ms: started_ms as i64,
                },
                node,
                store,
                view: super::chainview::ChainView::new(chain.clone())
                    .with_index(cfg.reputation.clone()),
                chain,
                validations: super::validations::ValidationRecorder::new(cfg.record_validations),
                cfg,
                sched: Scheduler::default(),
                long_polls: Default::default(),
            }),
        })
    }

    /// The node's evaluator address.
    pub fn address(&self) -> Address {
        self.inner.cfg.key.address()
    }

    /// Storage (for the REST layer).
    pub fn store(&self) -> &MarketStore {
        &self.inner.store
    }

    /// The IoA node.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The work loop's cached view of the chain (receipts, stakes, the fee).
    pub fn chain_view(&self) -> &super::chainview::ChainView {
        &self.inner.view
    }

    /// The contracts this marketplace settles on.
    pub fn deployment(&self) -> &Deployment {
        &self.inner.cfg.deployment
    }

    /// The node's own chain client (its market key; it serializes the node's transactions).
    pub fn chain(&self) -> &ReefClient {
        &self.inner.chain
    }

    /// The marketplace's configuration.
    pub fn config(&self) -> &MarketConfig {
        &self.inner.cfg
    }

    /// The embedded indexer's store (`idx_` tables), when the node runs one.
    pub fn index(&self) -> Option<&reef_indexer::Store> {
        self.inner.cfg.reputation.as_ref()
    }

    /// Chain facts a poster or agent needs.
    pub async fn info(&self) -> Result<Value> {
        Ok(json!({
            "evaluator": self.address(),
            "deployment": self.inner.cfg.deployment,
            "fee_bps": self.inner.view.fee_bps().await?,
            "verifiers": self.inner.cfg.verifiers.names(),
            "award_grace_secs": self.inner.cfg.award_grace_secs,
            "max_bid_window_secs": self.inner.cfg.max_bid_window_secs,
            "scoring": self.inner.cfg.scoring,
            "node_id": self.inner.node.config().node_id,
        }))
    }

    /// `agent`'s reputation score with its components (the reputation engine's explanation
    /// over the embedded index), or NotFound when this node runs no indexer.
    pub async fn reputation_of(&self, agent: Address) -> Result<Value> {
        let book = self.reputation_book().await.ok_or_else(|| {
            MarketError::Conflict(
                "this node runs without its embedded indexer: no reputation to explain".into(),
            )
        })?;
        serde_json::to_value(book.score(&agent)).map_err(|e| MarketError::Internal(e.to_string()))
    }

    /// How many blocks the embedded indexer is behind the chain head the work loop last saw
    /// (`None`: no indexer, or no head seen yet). Reads one row of the indexer's store.
    pub async fn indexer_lag(&self) -> Result<Option<u64>> {
        let (Some(store), Some(head)) = (&self.inner.cfg.reputation, self.inner.view.head_number())
        else {
            return Ok(None);
        };
        let next = store
            .next_block()
            .await
            .map_err(|e| MarketError::Internal(format!("indexer store: {e}")))?
            .unwrap_or(self.inner.cfg.deployment.start_block);
        Ok(Some(head.saturating_sub(next.saturating_sub(1))))
    }

    async fn row(&self, key: &str) -> Result<Arc<BountyRow>> {
        self.inner.store.bounty(key).await?.ok_or_else(|| MarketError::NotFound(key.to_string()))
    }

    fn record_of(row: &BountyRow) -> Result<Bounty> {
        let r: RecordJson = serde_json::from_value(row.spec["record"].clone())
            .map_err(|e| MarketError::Internal(format!("stored record: {e}")))?;
        Bounty::try_from(&r).map_err(|e| MarketError::Internal(e.to_string()))
    }

    fn verify_spec(row: &BountyRow) -> Result<VerifySpec> {
        serde_json::from_value(row.spec["verify"].clone())
            .map_err(|e| MarketError::Internal(format!("stored verify: {e}")))
    }

    /// The on-chain record (with provider) as rebuilt from events.
    async fn chain_record(&self, row: &BountyRow) -> Result<(Bounty, Status, u64)> {
        let s = self.inner.view.bounty(row.id.id()).await?;
        Ok((s.record, s.status, s.stamp))
    }

    /// Posts a message as the node's market identity. `msg_id`s are deterministic per bounty,
    /// so a repeat after a restart is not delivered twice.
    async fn send_as_market(
        &self,
        group: &str,
        msg_id: String,
        state: MsgState,
        task_desc: Option<Value>,
        body: Value,
    ) -> Result<()> {
        let msg = SendMessage {
            group_id: group.to_string(),
            msg_id,
            state,
            task_desc,
            body: Some(body),
            extra: Default::default(),
        };
        self.inner.node.send(&self.address(), msg).await?;
        Ok(())
    }

    /// A conclusion-state message tagged `<tag>-<bounty id>`.
    async fn say(&self, group: &str, id: &str, tag: &str, body: Value) -> Result<()> {
        self.send_as_market(group, format!("{tag}-{id}"), MsgState::Conclusion, None, body).await
    }

    /// The reputation engine's book over the embedded index (None if not configured/failing):
    /// the node's ([`Node::reputation`], the one discovery ranks with; [`Self::open`] gives
    /// the node this index). A burst of windows closing together (or a panel chosen per post)
    /// shares one load instead of one each.
    async fn reputation_book(&self) -> Option<Arc<reef_reputation::ReputationBook>> {
        self.inner.cfg.reputation.as_ref()?;
        match self.inner.node.reputation().await? {
            Ok(book) => Some(book),
            Err(e) => {
                tracing::warn!(error = %e, "reputation engine unavailable; ranking with local history");
                None
            }
        }
    }
}

/// Shares (basis points, summing to 10,000) of the `n` paid contest entries, best first: the
/// poster's `split` cut to `n` and scaled up to the whole reward, or equal shares without one.
/// Rounding dust goes to the best entry.
pub fn contest_shares(split: &[u16], n: usize) -> Vec<u16> {
    if n == 0 {
        return Vec::new();
    }
    let used: Vec<u64> = if split.len() >= n {
        split[..n].iter().map(|s| u64::from(*s)).collect()
    } else {
        vec![1; n]
    };
    let total: u64 = used.iter().sum::<u64>().max(1);
    let mut shares: Vec<u16> = used.iter().map(|s| (s * 10_000 / total) as u16).collect();
    let sum: u32 = shares.iter().map(|s| u32::from(*s)).sum();
    shares[0] += (10_000 - sum) as u16;
    shares
}

#[cfg(test)]
mod tests {
    use super::{contest_shares, fanout_pick};
    use alloy::primitives::Address;

    #[test]
    fn fanout_invites_k_agents_deterministically_and_spreads_the_calls() {
        let agents: Vec<Address> = (1..=50u8).map(Address::repeat_byte).collect();
        let a = fanout_pick("0x01", agents.clone(), 8);
        assert_eq!(a.len(), 8);
        assert_eq!(a, fanout_pick("0x01", agents.iter().rev().copied().collect(), 8));
        let mut uniq = a.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 8, "no agent twice");
        // Over 1,000 calls each agent is invited about 1000 * 8 / 50 = 160 times.
        let mut count = std::collections::HashMap::<Address, u32>::new();
        for b in 0..1_000 {
            for x in fanout_pick(&format!("{b:#x}"), agents.clone(), 8) {
                *count.entry(x).or_default() += 1;
            }
        }
        assert_eq!(count.len(), 50, "every agent gets calls");
        assert!(count.values().all(|c| (100..=230).contains(c)), "{count:?}");
        // Removing an agent not picked for a call leaves that call's invitees unchanged.
        let out = agents.iter().find(|x| !a.contains(x)).copied().unwrap();
        let fewer: Vec<Address> = agents.iter().copied().filter(|x| *x != out).collect();
        assert_eq!(fanout_pick("0x01", fewer, 8), a);
    }

    #[test]
    fn contest_shares_follow_the_split_and_sum_to_the_reward() {
        assert_eq!(contest_shares(&[], 3), vec![3_334, 3_333, 3_333]);
        assert_eq!(contest_shares(&[7_000, 3_000], 2), vec![7_000, 3_000]);
        // One verified entry of a 70/30 contest takes everything.
        assert_eq!(contest_shares(&[7_000, 3_000], 1), vec![10_000]);
        // Two of a 50/30/20 split: scaled to 62.5/37.5.
        assert_eq!(contest_shares(&[5_000, 3_000, 2_000], 2), vec![6_250, 3_750]);
        assert!(contest_shares(&[], 0).is_empty());
        for n in 1..=32 {
            let s = contest_shares(&[], n);
            assert_eq!(s.iter().map(|x| u32::from(*x)).sum::<u32>(), 10_000);
            assert!(s.iter().all(|x| *x > 0));
        }
    }
}
