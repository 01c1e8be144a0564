//! Shared setup for the indexer's integration tests: a real anvil with Reef deployed, some
//! on-chain activity, databases (SQLite temp files, unique Postgres databases), and a
//! [`FaultySource`] that injects errors, timeouts, duplicated and foreign logs.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, LogData, U256, utils::parse_ether},
    providers::Provider,
    rpc::types::Log,
};
use escrow_client::{
    ClientOptions, Deployment, NewBounty, ReefClient, RetryPolicy,
    bindings::{escrow::IBountyTypes::Bounty, token::ReefTestToken},
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    escrow::random_salt,
    signing::verdict,
};
use reef_indexer::{
    BlockRef, ChainSource, Error, EventRow, Indexer, IndexerConfig, RpcSource, Store,
    derived::{BountyRow, StakeRow},
};

pub struct Env {
    pub anvil: AnvilProcess,
    pub dep: Deployment,
    pub poster: ReefClient,
    pub provider: ReefClient,
    pub evaluator: ReefClient,
    pub token: Address,
}

/// The clients' nonce is read for every send: the reorg tests rewrite the chain under them,
/// and anvil does not return a reorged-out transaction to its pool, so a remembered nonce
/// would leave the next send behind a gap until the client fills it (a minute).
pub fn opts() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy::none(),
        nonce_ttl: Duration::ZERO,
        ..ClientOptions::default()
    }
}

pub async fn setup() -> Env {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.expect("anvil starts");
    let deployer =
        ReefClient::connect(&anvil.rpc_url, dev_signer(0), empty_deployment(31337), opts())
            .await
            .unwrap();
    let seed = (0..6).map(|i| dev_signer(i).address()).collect();
    let (dep, _) = deploy_all(&deployer, &DeployConfig::devnet(seed)).await.expect("deploys");
    let c = |i| {
        let dep = dep.clone();
        let url = anvil.rpc_url.clone();
        async move { ReefClient::connect(&url, dev_signer(i), dep, opts()).await.unwrap() }
    };
    let token = dep.test_token.unwrap();
    Env { poster: c(0).await, provider: c(1).await, evaluator: c(2).await, dep, token, anvil }
}

impl Env {
    pub fn new_bounty(&self, amount: u128, deadline: u64) -> NewBounty {
        NewBounty {
            token: self.token,
            amount,
            evaluator: Some(self.evaluator.address()),
            arbiter: dev_signer(3).address(),
            deadline,
            review_window: 3_600,
            challenge_window: 3_600,
            description: "Sort these numbers.".into(),
            contest_winners: None,
        }
    }

    /// Posted, funded and awarded by `poster` to `self.provider`.
    pub async fn awarded_by(&self, poster: &ReefClient, amount: u128) -> (U256, Bounty) {
        let now = poster.chain_time().await.unwrap();
        let terms = poster.terms(&self.new_bounty(amount, now + 86_400)).await.unwrap();
        let (id, b, _) = poster.post_and_fund(random_salt(), terms, true).await.unwrap();
        let (bid, sig) = self
            .provider
            .sign_bid(id, &b, amount, now + 600, 0, U256::from(rand::random::<u32>()))
            .unwrap();
        let (b, _) = poster.award(id, &b, bid, sig).await.unwrap();
        (id, b)
    }

    /// A full paid job: post, award, submit + accept.
    pub async fn completed_job_by(&self, poster: &ReefClient, amount: u128) -> U256 {
        let (id, b) = self.awarded_by(poster, amount).await;
        let rh = alloy::primitives::keccak256(id.to_be_bytes::<32>());
        let sig = self.evaluator.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
        self.provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, sig).await.unwrap();
        id
    }

    pub async fn completed_job(&self, amount: u128) -> U256 {
        self.completed_job_by(&self.poster, amount).await
    }

    /// Submitted then rejected by the evaluator (not yet final).
    pub async fn rejected_job(&self, amount: u128) -> U256 {
        let (id, b) = self.awarded_by(&self.poster, amount).await;
        let rh = B256::repeat_byte(7);
        let (b, _) = self.provider.submit(id, &b, rh).await.unwrap();
        self.evaluator.reject(id, &b).await.unwrap();
        id
    }

    pub async fn mine(&self, n: u64) {
        for _ in 0..n {
            let _: serde_json::Value =
                self.poster.provider().raw_request("evm_mine".into(), ()).await.unwrap();
        }
    }

    pub async fn head(&self) -> u64 {
        self.poster.block_number().await.unwrap()
    }

    /// Some of everything: jobs, a stake, a token transfer.
    pub async fn activity(&self) {
        self.completed_job(ether("3")).await;
        self.rejected_job(ether("1")).await;
        self.provider.stake(parse_ether("0.5").unwrap()).await.unwrap();
        self.poster
            .send_call(
                "transfer",
                self.token,
                &ReefTestToken::transferCall {
                    to: Address::repeat_byte(0x42),
                    value: U256::from(5),
                },
                U256::ZERO,
            )
            .await
            .unwrap();
    }

    pub fn config(&self) -> IndexerConfig {
        IndexerConfig::for_deployment(&self.dep)
    }
}

pub fn ether(s: &str) -> u128 {
    parse_ether(s).unwrap().to::<u128>()
}

// ---------------------------------------------------------------------------------------------
// Databases

pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Pg(String),
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let tag = format!("{}_{:08x}", std::process::id(), rand::random::<u32>());
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("reef-indexer-test-{tag}.db"));
                Self { url: format!("sqlite:{}", path.display()), cleanup: Cleanup::File(path) }
            }
            Backend::Postgres => {
                let name = format!("reef_idx_test_{tag}");
                sqlx::any::install_default_drivers();
                let admin =
                    sqlx::AnyPool::connect(PG_ADMIN).await.expect("Postgres on 127.0.0.1:5432");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                Self {
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    cleanup: Cleanup::Pg(name),
                }
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.unwrap()
    }

    pub async fn drop_db(self) {
        match self.cleanup {
            Cleanup::File(p) => {
                for ext in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
                }
            }
            Cleanup::Pg(name) => {
                let admin = sqlx::AnyPool::connect(PG_ADMIN).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await
                .unwrap();
                admin.close().await;
            }
        }
    }
}

/// What must be equal between an incrementally maintained index and a fresh one.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub events: Vec<EventRow>,
    pub bounties: Vec<BountyRow>,
    pub stakes: Vec<StakeRow>,
    pub funding: BTreeMap<String, String>,
    pub next_block: Option<u64>,
}

pub async fn snapshot(store: &Store) -> Snapshot {
    Snapshot {
        events: store.events().await.unwrap(),
        bounties: store.bounties().await.unwrap(),
        stakes: store.stakes().await.unwrap(),
        funding: store.funding().await.unwrap(),
        next_block: store.next_block().await.unwrap(),
    }
}

/// Indexes the chain from scratch into a new SQLite database and returns its snapshot.
pub async fn fresh_snapshot(env: &Env) -> Snapshot {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let mut ix =
        Indexer::new(RpcSource::new(&env.anvil.rpc_url).unwrap(), store.clone(), env.config())
            .await
            .unwrap();
    ix.sync_once().await.unwrap();
    let s = snapshot(&store).await;
    store.close().await;
    db.drop_db().await;
    s
}

// ---------------------------------------------------------------------------------------------
// A misbehaving RPC

/// Wraps a source; every knob is off by default.
pub struct FaultySource<S> {
    pub inner: S,
    /// Every n-th call (of any kind) fails (0 = never).
    pub fail_every: u64,
    /// Every n-th call times out (sleeps, then fails) (0 = never).
    pub timeout_every: u64,
    /// eth_getLogs over more than this many blocks fails like a provider limit (0 = no limit).
    pub max_log_range: u64,
    /// Return every log twice.
    pub duplicate_logs: bool,
    /// Add logs of an unknown contract and an unknown event of a known contract.
    pub foreign_logs: Option<Address>,
    /// After this many eth_getLogs calls, every call fails (simulates a crash mid-backfill).
    pub die_after_logs_calls: Option<u64>,
    pub calls: Arc<AtomicU64>,
    pub log_calls: Arc<AtomicU64>,
}

impl<S> FaultySource<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            fail_every: 0,
            timeout_every: 0,
            max_log_range: 0,
            duplicate_logs: false,
            foreign_logs: None,
            die_after_logs_calls: None,
            calls: Arc::default(),
            log_calls: Arc::default(),
        }
    }

    async fn gate(&self, what: &str) -> Result<(), Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
            return Err(Error::Rpc {
                what: what.into(),
                message: "injected: 503 Service Unavailable".into(),
            });
        }
        if self.timeout_every > 0 && n.is_multiple_of(self.timeout_every) {
            tokio::time::sleep(Duration::from_millis(30)).await;
            return Err(Error::Rpc {
                what: what.into(),
                message: "injected: request timed out".into(),
            });
        }
        Ok(())
    }
}

impl<S: ChainSource> ChainSource for FaultySource<S> {
    async fn chain_id(&self) -> Result<u64, Error> {
        self.gate("eth_chainId").await?;
        self.inner.chain_id().await
    }

    async fn head(&self) -> Result<u64, Error> {
        self.gate("eth_blockNumber").await?;
        self.inner.head().await
    }

    async fn block(&self, n: u64) -> Result<Option<BlockRef>, Error> {
        self.gate("eth_getBlockByNumber").await?;
        self.inner.block(n).await
    }

    async fn logs(&self, from: u64, to: u64, addresses: &[Address]) -> Result<Vec<Log>, Error> {
        let k = self.log_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.die_after_logs_calls.is_some_and(|d| k > d) {
            return Err(Error::Rpc {
                what: "eth_getLogs".into(),
                message: "injected: connection refused".into(),
            });
        }
        self.gate("eth_getLogs").await?;
        if self.max_log_range > 0 && to - from + 1 > self.max_log_range {
            return Err(Error::Rpc {
                what: "eth_getLogs".into(),
                message: format!("injected: block range too large (max {})", self.max_log_range),
            });
        }
        let mut logs = self.inner.logs(from, to, addresses).await?;
        if let (Some(foreign), Some(first)) = (self.foreign_logs, logs.first().cloned()) {
            let mut other = first.clone();
            other.inner.address = foreign;
            other.log_index = Some(10_000);
            let mut unknown = first.clone();
            unknown.inner.data =
                LogData::new_unchecked(vec![B256::repeat_byte(0xEE)], Default::default());
            unknown.log_index = Some(10_001);
            logs.push(other);
            logs.push(unknown);
        }
        if self.duplicate_logs {
            let copy = logs.clone();
            logs.extend(copy);
        }
        Ok(logs)
    }
}
