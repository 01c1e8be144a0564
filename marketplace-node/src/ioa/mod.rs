//! The IoA switchboard served by `reef node`: agent authentication (EIP-191 challenge),
//! registry and presence, discovery (tantivy BM25, sentence embeddings and reputation), groups with ACLs, ordered and persisted
//! group chat over WebSocket (`/v1/ws`) and REST (`/v1/...`), and cross-node fan-out over NATS.
//!
//! Layout: [`store`] (SQLite/Postgres), [`hub`] (local fan-out), [`discovery`] (search index),
//! [`semantic`] (embedding model and vectors),
//! [`mesh`] (NATS), [`ws`] and [`rest`] (transports), all sharing one [`Node`].

pub mod deflate;
pub mod discovery;
pub mod error;
pub mod hub;
pub mod mesh;
pub mod rest;
pub mod semantic;
pub mod store;
pub mod terms;
pub mod writer;
pub mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, hex};
use axum::extract::ws::Utf8Bytes;
use reef_wire::{AgentCard, AgentInfo, AgentQuery, ErrorCode, GroupInfo, SendMessage, ServerFrame};
use serde_json::Value;

pub use error::{AppError, Error, Result};

use discovery::Discovery;
use hub::Hub;
use mesh::Mesh;
use store::Store;
use writer::Writer;

/// Node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id (named in login messages; must differ between nodes of a mesh).
    pub node_id: String,
    /// `sqlite://path` or `postgres://…`.
    pub database_url: String,
    /// NATS server for the mesh (None: single node).
    pub nats_url: Option<String>,
    /// Largest accepted WebSocket message, bytes (larger: close 1009).
    pub max_frame_bytes: usize,
    /// Challenge lifetime in seconds (0: challenges are born expired; for tests).
    pub challenge_ttl_secs: u64,
    /// Token-bucket refill rate, frames per second per agent.
    pub rate_per_sec: f64,
    /// Token-bucket capacity.
    pub rate_burst: f64,
    /// Per-connection outgoing queue length (slow-consumer bound).
    pub queue_len: usize,
    /// Sends waiting for the group-commit writer (full: `overloaded` error, nothing stored).
    pub send_queue_len: usize,
    /// An agent is online while a node holding its connection refreshed its presence row
    /// within this many seconds (nodes refresh every third of it).
    pub presence_ttl_secs: u64,
    /// Lifetime of REST bearer tokens, seconds.
    pub token_ttl_secs: u64,
    /// permessage-deflate on the WebSocket (docs/protocol.md, "Compression").
    pub ws_compression: deflate::WsCompression,
    /// How often the node deletes the messages past their group's retention, seconds.
    pub retention_sweep_secs: u64,
    /// The sentence-embedding model of discovery (default here: none; `reef node` defaults
    /// to the repository's model folder).
    pub embedding_model: semantic::ModelChoice,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: "reef-node".into(),
            database_url: "sqlite://.reef/node.db".into(),
            nats_url: None,
            max_frame_bytes: 1 << 20,
            challenge_ttl_secs: 60,
            rate_per_sec: 200.0,
            rate_burst: 400.0,
            queue_len: 1024,
            send_queue_len: 8192,
            presence_ttl_secs: 30,
            token_ttl_secs: 24 * 3600,
            ws_compression: deflate::WsCompression::default(),
            retention_sweep_secs: 60,
            embedding_model: semantic::ModelChoice::Off,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Shared state of a running node (cheap to clone).
#[derive(Debug, Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    store: Store,
    hub: Arc<Hub>,
    discovery: Discovery,
    /// The embedding model and the agents' vectors (hybrid ranking).
    semantic: semantic::Semantic,
    /// The reputation book of the chain index, loaded at most every [`REPUTATION_TTL`]:
    /// discovery ranks with it, and so does the marketplace ([`Node::reputation`]).
    reputation: reef_indexer::reputation::BookCache,
    mesh: Option<Mesh>,
    /// REST challenges: nonce → expiry (single use).
    challenges: Mutex<HashMap<String, u64>>,
    /// Cache of REST bearer tokens seen valid in the database: token hash → (address, expiry).
    tokens: Mutex<HashMap<String, (Address, u64)>>,
    /// Group-commit writer of messages.
    writer: Writer,
    buckets: Mutex<HashMap<Address, Bucket>>,
    /// Agents that came online on this node: opened a connection (a start or a reconnect) or
    /// registered (or updated) their card.
    arrivals: tokio::sync::broadcast::Sender<Address>,
    /// When this process opened the node.
    started: std::time::Instant,
    /// Agents that were connected to this node's previous process when it stopped and have not
    /// connected again yet (see [`Node::reconnecting`]).
    returning: Mutex<std::collections::HashSet<Address>>,
    /// Swarm auctions, when this node runs them (it has a chain to check vouchers on).
    swarm: std::sync::OnceLock<crate::swarm::Swarm>,
    /// The embedded chain index and the identity registry (`eip155:{chain}:{registry}`), when
    /// a marketplace runs here: lookups and discovery show the agents' ERC-8004 identities.
    identity_index: std::sync::OnceLock<(reef_indexer::Store, String)>,
    /// The identities read from it, per state of the index.
    identity_cache: reef_indexer::reputation::IdentityCache,
    /// Idle deflate state shared by the WebSocket connections that agreed to no context
    /// takeover (memory then follows the messages in flight, not the connections).
    deflate_pool: yawc::DeflatePool,
    /// Task inputs whose bounty's terms forbid passing them on, by provider.
    terms: terms::TermsGuard,
}

/// Idle compressors (and, apart, decompressors) the node keeps per window size for
/// connections without context takeover; more are dropped once their message is done.
const DEFLATE_POOL_IDLE: usize = 64;

/// The reputation of an agent without history (the engine's neutral prior).
static NEUTRAL_REPUTATION: std::sync::OnceLock<f32> = std::sync::OnceLock::new();

/// How long discovery ranks with the same reputation book before reading the chain index again.
const REPUTATION_TTL: Duration = Duration::from_secs(2);

/// How long after a start the node expects the agents its previous process held to come back:
/// the agent SDK's longest reconnect back-off, plus a margin to log in.
pub const RECONNECT_GRACE: Duration =
    Duration::from_millis(reef_agent_sdk::client::MAX_RECONNECT_BACKOFF.as_millis() as u64 + 1_500);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `card` lists every skill in `wanted` (case-insensitive): discovery's skill filter,
/// also used by the marketplace to invite an agent that comes online to an open call.
pub fn has_skills(card: &AgentCard, wanted: &[String]) -> bool {
    let have: Vec<String> = card.skills.iter().map(|s| s.to_lowercase()).collect();
    wanted.iter().all(|w| have.contains(&w.to_lowercase()))
}

/// A fresh random hex id of `bytes` bytes.
pub fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

/// Serialize a server frame (infallible for our types).
pub fn encode(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_else(|_| {
        "{\"type\":\"error\",\"code\":\"internal\",\"message\":\"encode\"}".into()
    }))
}

/// A running node: its address and the task serving it.
#[derive(Debug)]
pub struct Running {
    /// Bound address.
    pub addr: SocketAddr,
    /// Shared state.
    pub node: Node,
    /// The server task.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Open storage, join the mesh, build the index and serve on `listen`.
pub async fn serve(config: Config, listen: SocketAddr) -> Result<Running> {
    let node = Node::open(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::Internal(format!("bind {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    let app = rest::router(node.clone()).merge(crate::metrics::router(node.clone(), None));
    let task = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
    });
    Ok(Running { addr, node, task })
}

impl Node {
    /// Open storage, connect the mesh and load the discovery index.
    pub async fn open(config: Config) -> Result<Self> {
        let store = Store::connect(&config.database_url).await?;
        // The agents the previous process held (it stopped without closing their rows): they
        // are reconnecting now, and the marketplace holds its calls for proposals for them.
        let returning = store.reset_presence(&config.node_id).await?;
        let hub = Hub::new(store.clone());
        let discovery = Discovery::new()?;
        let semantic = semantic::Semantic::open(&config.embedding_model).await?;
        crate::logging::notice(semantic.describe());
        let agents = store.all_agents(0).await?;
        for agent in &agents {
            discovery.upsert(&agent.address, &agent.card)?;
        }
        let cards: Vec<(Address, AgentCard)> =
            agents.into_iter().map(|a| (a.address, a.card)).collect();
        semantic.upsert_many(&cards).await?;
        let mesh = match &config.nats_url {
            Some(url) => Some(Mesh::connect(url, &config.node_id, &store.mesh_id().await?).await?),
            None => None,
        };
        let writer =
            Writer::spawn(&config.database_url, hub.clone(), mesh.clone(), config.send_queue_len)
                .await?;
        spawn_heartbeat(store.clone(), config.node_id.clone(), config.presence_ttl_secs);
        spawn_retention_sweep(store.clone(), config.retention_sweep_secs);
        let node = Self {
            inner: Arc::new(Inner {
                config,
                store,
                hub,
                discovery,
                semantic,
                reputation: Default::default(),
                mesh,
                challenges: Mutex::default(),
                tokens: Mutex::default(),
                buckets: Mutex::default(),
                writer,
                arrivals: tokio::sync::broadcast::channel(1024).0,
                started: std::time::Instant::now(),
                returning: Mutex::new(returning.into_iter().collect()),
                swarm: std::sync::OnceLock::new(),
                identity_index: std::sync::OnceLock::new(),
                identity_cache: Default::default(),
                deflate_pool: yawc::DeflatePool::new(DEFLATE_POOL_IDLE),
                terms: terms::TermsGuard::default(),
            }),
        };
        if let Some(mesh) = &node.inner.mesh {
            mesh.spawn_listener(node.clone()).await?;
        }
        Ok(node)
    }

    /// Groups that got a new message on this node or, over the mesh, on another
    /// (see [`Hub::activity`]).
    pub fn group_activity(&self) -> tokio::sync::broadcast::Receiver<hub::Activity> {
        self.inner.hub.activity()
    }

    /// Agents coming online on this node: every authenticated connection (a start, or a
    /// reconnect after a drop or a restart of this node) and every card registration, so the
    /// marketplace can invite an agent that came (back) online during an open call for
    /// proposals. Bounded: a receiver that lags loses the oldest addresses.
    pub fn arrivals(&self) -> tokio::sync::broadcast::Receiver<Address> {
        self.inner.arrivals.subscribe()
    }

    /// An agent came online on a mesh peer that runs no marketplace: hand it to this node's
    /// marketplace (if any) as if it had arrived here.
    pub fn arrived_elsewhere(&self, address: Address) {
        let _ = self.inner.arrivals.send(address);
    }

    /// `address` came online here (connected or registered): tell this node's marketplace, or
    /// the mesh's when none listens here.
    async fn arrived(&self, address: Address, registered: bool) {
        let unheard = self.inner.arrivals.receiver_count() == 0;
        if let Some(mesh) = &self.inner.mesh {
            if registered {
                mesh.agent_updated(&address, unheard).await;
            } else if unheard {
                mesh.agent_online(&address).await;
            }
        }
        // Nobody listening (no marketplace) is not an error.
        let _ = self.inner.arrivals.send(address);
    }

    /// How many agents that were connected to this node's previous process have not connected
    /// again, while they can still be expected ([`RECONNECT_GRACE`] after this process
    /// started; 0 after that). A call for proposals announced now would miss them.
    pub fn reconnecting(&self) -> usize {
        let mut returning = lock(&self.inner.returning);
        if returning.is_empty() {
            return 0;
        }
        if self.inner.started.elapsed() >= RECONNECT_GRACE {
            returning.clear();
            return 0;
        }
        returning.len()
    }

    /// An agent authenticated a connection: presence, the reconnect count, and its arrival.
    pub(crate) async fn connected(&self, address: Address) {
        self.presence(&address, true).await;
        lock(&self.inner.returning).remove(&address);
        self.arrived(address, false).await;
    }

    /// The NATS mesh (None: a single node).
    pub fn mesh(&self) -> Option<&Mesh> {
        self.inner.mesh.as_ref()
    }

    /// Runs swarm auctions on this node (once; a second call is ignored).
    pub fn set_swarm(&self, swarm: crate::swarm::Swarm) {
        let _ = self.inner.swarm.set(swarm);
    }

    /// Lets lookups and discovery show ERC-8004 identities from `index` (the marketplace's
    /// embedded indexer) in the registry `registry` (`eip155:{chain}:{address}`).
    pub fn set_identity_index(&self, index: reef_indexer::Store, registry: String) {
        let _ = self.inner.identity_index.set((index, registry));
    }

    /// The ERC-8004 identities of every owner in the chain index (`None` without one), read
    /// once per state of the index ([`reef_indexer::reputation::IdentityCache`]).
    pub async fn erc8004_identities(
        &self,
    ) -> Option<reef_indexer::Result<Arc<reef_indexer::reputation::IdentitiesByOwner>>> {
        let (index, _) = self.inner.identity_index.get()?;
        Some(self.inner.identity_cache.get(index).await)
    }

    /// Fills `agents`' ERC-8004 identities from the chain index. Without an index, or if it
    /// cannot be read, they stay empty: the answer is still useful, and the failure is logged.
    async fn with_identities(&self, agents: &mut [AgentInfo]) {
        let Some((_, registry)) = self.inner.identity_index.get() else { return };
        if agents.is_empty() {
            return;
        }
        match self.erc8004_identities().await {
            Some(Ok(by_owner)) => {
                for a in agents.iter_mut() {
                    a.erc8004 = by_owner
                        .get(&a.address)
                        .into_iter()
                        .flatten()
                        .map(|i| reef_wire::Erc8004Identity {
                            agent_id: i.agent_id.to_string(),
                            agent_registry: registry.clone(),
                            agent_uri: i.agent_uri.clone(),
                        })
                        .collect();
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "ERC-8004 identities unavailable"),
            None => {}
        }
    }

    /// The swarm auctioneer, when this node runs one.
    pub fn swarm(&self) -> Option<&crate::swarm::Swarm> {
        self.inner.swarm.get()
    }

    /// Configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The no-onward-sharing guard on messages (the marketplace fills it at assignments).
    pub fn terms(&self) -> &terms::TermsGuard {
        &self.inner.terms
    }

    /// The deflate state shared by connections without context takeover.
    pub fn deflate_pool(&self) -> &yawc::DeflatePool {
        &self.inner.deflate_pool
    }

    /// Sends waiting for the group-commit writer (the `reef_send_queue_depth` gauge).
    pub fn send_queue_depth(&self) -> usize {
        self.inner.writer.depth()
    }

    /// Local fan-out hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// Storage.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Discovery index.
    pub fn discovery(&self) -> &Discovery {
        &self.inner.discovery
    }

    /// The embedding model and the agents' vectors.
    pub fn semantic(&self) -> &semantic::Semantic {
        &self.inner.semantic
    }

    /// The reputation book of the chain index (`None` without one: no marketplace or no
    /// embedded indexer). Loaded at most once per [`REPUTATION_TTL`], and less often when the
    /// history makes a load long ([`reef_indexer::reputation::BookCache`]). Discovery and the
    /// marketplace's bid ranking share it: a node keeps one book and brings it up to date once.
    pub(crate) async fn reputation(
        &self,
    ) -> Option<reef_indexer::Result<Arc<reef_reputation::ReputationBook>>> {
        let (index, _) = self.inner.identity_index.get()?;
        Some(self.inner.reputation.get(index, REPUTATION_TTL).await)
    }

    /// [`Self::reputation`] for discovery (`None` also when it cannot be read: discovery then
    /// ranks everyone at the neutral prior).
    async fn reputation_book(&self) -> Option<Arc<reef_reputation::ReputationBook>> {
        match self.reputation().await? {
            Ok(book) => Some(book),
            Err(e) => {
                tracing::warn!(error = %e, "reputation unavailable to discovery; neutral prior");
                None
            }
        }
    }

    /// New challenge: (nonce, expires, message).
    pub fn challenge(&self) -> (String, u64, String) {
        let nonce = random_hex(16);
        let expires = reef_wire::unix_now() + self.inner.config.challenge_ttl_secs;
        let message = reef_wire::login_message(&self.inner.config.node_id, &nonce, expires);
        (nonce, expires, message)
    }

    /// Check an answer to a challenge this node issued.
    pub fn verify_login(
        &self,
        nonce: &str,
        expires: u64,
        address: &Address,
        signature: &str,
    ) -> Result<()> {
        if reef_wire::unix_now() >= expires {
            return Err(Error::Auth(
                ErrorCode::ChallengeExpired,
                "challenge expired; reconnect for a new one".into(),
            ));
        }
        let message = reef_wire::login_message(&self.inner.config.node_id, nonce, expires);
        let signer = reef_wire::recover_signer(&message, signature)
            .map_err(|e| Error::Auth(ErrorCode::AuthFailed, e.to_string()))?;
        if signer != *address {
            return Err(Error::Auth(
                ErrorCode::AuthFailed,
                "signature does not match address and challenge".into(),
            ));
        }
        Ok(())
    }

    /// REST: issue a single-use challenge.
    pub fn rest_challenge(&self) -> (String, u64, String) {
        let (nonce, expires, message) = self.challenge();
        let mut ch = lock(&self.inner.challenges);
        let now = reef_wire::unix_now();
        ch.retain(|_, exp| *exp > now);
        ch.insert(nonce.clone(), expires);
        (nonce, expires, message)
    }

    /// REST: consume a challenge and return a bearer token. Only the token's hash is stored
    /// (with its address and expiry), in the database, so the token works on every node
    /// sharing it and across restarts.
    pub async fn rest_login(
        &self,
        nonce: &str,
        address: &Address,
        signature: &str,
    ) -> Result<String> {
        let expires = lock(&self.inner.challenges).remove(nonce).ok_or_else(|| {
            Error::Auth(ErrorCode::AuthFailed, "unknown or already used challenge".into())
        })?;
        self.verify_login(nonce, expires, address, signature)?;
        let token = random_hex(32);
        let until = reef_wire::unix_now().saturating_add(self.inner.config.token_ttl_secs);
        self.inner
            .store
            .insert_token(&token_hash(&token), address, &self.inner.config.node_id, until)
            .await?;
        Ok(token)
    }

    /// REST: the address behind a bearer token (None: unknown or expired).
    pub async fn token_address(&self, token: &str) -> Result<Option<Address>> {
        let hash = token_hash(token);
        let now = reef_wire::unix_now();
        if let Some((a, exp)) = lock(&self.inner.tokens).get(&hash).copied()
            && exp > now
        {
            return Ok(Some(a));
        }
        let Some((a, exp)) = self.inner.store.token(&hash).await? else { return Ok(None) };
        let mut cache = lock(&self.inner.tokens);
        if cache.len() >= 100_000 {
            cache.retain(|_, (_, e)| *e > now);
            if cache.len() >= 100_000 {
                cache.clear();
            }
        }
        cache.insert(hash, (a, exp));
        Ok(Some(a))
    }

    /// Unix time from which a presence refresh counts as online.
    fn fresh_since(&self) -> u64 {
        reef_wire::unix_now().saturating_sub(self.inner.config.presence_ttl_secs)
    }

    /// Take one token from `address`'s bucket.
    pub fn rate_check(&self, address: &Address) -> Result<()> {
        let cfg = &self.inner.config;
        let mut buckets = lock(&self.inner.buckets);
        let now = Instant::now();
        let b = buckets.entry(*address).or_insert(Bucket { tokens: cfg.rate_burst, at: now });
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * cfg.rate_per_sec).min(cfg.rate_burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Error::RateLimited)
        }
    }

    /// Register (or update) the caller's card.
    pub async fn register(&self, caller: &Address, card: AgentCard) -> Result<AgentInfo> {
        if card.name.trim().is_empty() {
            return Err(Error::BadRequest(
                ErrorCode::InvalidFrame,
                "card.name must not be empty".into(),
            ));
        }
        check_card_sizes(&card)?;
        if let Some(own) = semantic::own_vector(&card) {
            own?;
        }
        self.inner.store.upsert_agent(caller, &card).await?;
        self.inner.discovery.upsert(caller, &card)?;
        self.inner.semantic.upsert(*caller, &card).await?;
        let info = self.get_agent(caller).await;
        self.arrived(*caller, true).await;
        info
    }

    /// Look up an agent.
    pub async fn get_agent(&self, address: &Address) -> Result<AgentInfo> {
        let a = self
            .inner
            .store
            .agent(address, self.fresh_since())
            .await?
            .ok_or_else(|| Error::NotFound(format!("agent {address} is not registered")))?;
        let mut one = [a];
        self.with_identities(&mut one).await;
        let [a] = one;
        Ok(a)
    }

    /// Reload one agent into the index (mesh notification).
    pub async fn reindex_agent(&self, address: &Address) -> Result<()> {
        if let Some(a) = self.inner.store.agent(address, 0).await? {
            self.inner.discovery.upsert(address, &a.card)?;
            self.inner.semantic.upsert(*address, &a.card).await?;
        }
        Ok(())
    }

    /// Ranked discovery: with a query, the agents that share a keyword with it or come close
    /// enough in meaning, scored by BM25, embedding similarity and reputation with the parts
    /// explained (`ranking`; docs/discovery.md); without one, every agent passing the filters.
    pub async fn discover(&self, q: &AgentQuery) -> Result<Vec<AgentInfo>> {
        self.discover_weighted(q, self.inner.semantic.weights()).await
    }

    /// [`Self::discover`] with other weights (the evaluation compares BM25 alone, vectors
    /// alone and both): a zero `semantic` weight ranks exactly as a node without a model.
    pub async fn discover_weighted(
        &self,
        q: &AgentQuery,
        weights: reef_semantic::Weights,
    ) -> Result<Vec<AgentInfo>> {
        let mut out = self.matching_agents(q, weights).await?;
        self.with_identities(&mut out).await;
        Ok(out)
    }

    /// [`Self::discover`] without the agents' ERC-8004 identities (two reads of the chain
    /// index per call), for the node's own use: the marketplace's calls for proposals only
    /// need the addresses.
    pub async fn discover_without_identities(&self, q: &AgentQuery) -> Result<Vec<AgentInfo>> {
        self.matching_agents(q, self.inner.semantic.weights()).await
    }

    /// The agents `q` selects, ranked with `weights`, best first.
    async fn matching_agents(
        &self,
        q: &AgentQuery,
        weights: reef_semantic::Weights,
    ) -> Result<Vec<AgentInfo>> {
        let limit = q.limit.unwrap_or(20).clamp(1, 100) as usize;
        let ranked = !q.query.trim().is_empty();
        let scores = self.inner.discovery.search(&q.query, 1000)?;
        let semantic = &self.inner.semantic;
        let query_vector = match ranked && weights.semantic > 0.0 {
            true => semantic.query_vector(&q.query).await?,
            false => None,
        };
        let sims = query_vector.map(|v| semantic.similarities(&v, 1000, scores.keys().copied()));
        // A ranked query keeps only agents with a BM25 match or a close enough vector (the
        // filter below): read just those rows, not every agent's card.
        let all = if ranked {
            let mut candidates: Vec<Address> = scores.keys().copied().collect();
            if let Some(s) = &sims {
                candidates.extend(
                    s.iter()
                        .filter(|(a, sim)| {
                            **sim >= reef_semantic::MIN_SIMILARITY && !scores.contains_key(*a)
                        })
                        .map(|(a, _)| *a),
                );
            }
            self.inner.store.agents_in(&candidates, self.fresh_since()).await?
        } else {
            self.inner.store.all_agents(self.fresh_since()).await?
        };
        let best = scores.values().copied().fold(0.0f32, f32::max);
        let book = if ranked { self.reputation_book().await } else { None };
        let neutral = NEUTRAL_REPUTATION.get_or_init(|| {
            reef_reputation::ReputationBook::default().score(&Address::ZERO).value as f32
        });
        let mut out: Vec<AgentInfo> = all
            .into_iter()
            .filter_map(|mut a| {
                if ranked {
                    let bm25 = scores.get(&a.address).copied();
                    let sim = sims.as_ref().and_then(|s| s.get(&a.address).copied());
                    if bm25.is_none() && sim.is_none_or(|s| s < reef_semantic::MIN_SIMILARITY) {
                        return None;
                    }
                    let reputation =
                        book.as_ref().map_or(*neutral, |b| b.score(&a.address).value as f32);
                    let r = reef_semantic::explain(
                        &weights,
                        bm25.unwrap_or(0.0),
                        best,
                        sim,
                        reputation,
                    );
                    a.score = r.score;
                    a.ranking = Some(r);
                }
                if !has_skills(&a.card, &q.skills) {
                    return None;
                }
                if let Some(max) = q.max_price
                    && a.card.price.is_some_and(|p| p > max)
                {
                    return None;
                }
                if q.online_only && !a.online {
                    return None;
                }
                // Hits carry the score's parts, not the 384 numbers of an agent's own vector.
                a.card.embedding = None;
                Some(a)
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(b.online.cmp(&a.online))
                .then(b.last_seen.cmp(&a.last_seen))
                .then(a.address.cmp(&b.address))
        });
        out.truncate(limit);
        Ok(out)
    }

    /// Create a group; returns it.
    pub async fn create_group(
        &self,
        caller: &Address,
        name: &str,
        members: &[Address],
        parent: Option<&str>,
    ) -> Result<GroupInfo> {
        if name.len() > 200 || members.len() > 1000 {
            return Err(Error::BadRequest(
                ErrorCode::InvalidFrame,
                "group name or member list too large".into(),
            ));
        }
        if let Some(p) = parent
            && !self.inner.store.is_member(p, caller).await?
        {
            return Err(Error::Forbidden(format!("not a member of parent group {p}")));
        }
        let group_id = format!("g_{}", random_hex(12));
        let group = self.inner.store.create_group(&group_id, name, caller, members, parent).await?;
        self.inner.hub.created(&group.group_id);
        // The invitees' connections here follow the new group at once (their invitation says
        // from which seq), instead of each sending a join that reads the database. Their
        // connections on mesh peers are told to join, as before.
        let plain = encode(&ServerFrame::Invited { group_id, by: *caller, joined_since_seq: None });
        for m in members.iter().filter(|m| *m != caller) {
            self.inner.hub.invite_joined(&group.group_id, m, caller);
            if let Some(mesh) = &self.inner.mesh {
                mesh.notify(m, &plain).await;
            }
        }
        Ok(group)
    }

    /// A group, visible to members only.
    pub async fn group(&self, caller: &Address, group_id: &str) -> Result<GroupInfo> {
        let g = self
            .inner
            .store
            .group(group_id)
            .await?
            .ok_or_else(|| Error::Forbidden(not_member(group_id)))?;
        if !g.members.contains(caller) {
            return Err(Error::Forbidden(not_member(group_id)));
        }
        Ok(g)
    }

    /// The last seq of a group the caller may join (members only), with the first page of
    /// stored frames after `since_seq` to replay, in one read.
    pub async fn join(
        &self,
        caller: &Address,
        group_id: &str,
        since_seq: u64,
    ) -> Result<(u64, Vec<(u64, String)>)> {
        self.inner
            .store
            .join(group_id, caller, since_seq, hub::REPLAY_PAGE)
            .await?
            .ok_or_else(|| Error::Forbidden(not_member(group_id)))
    }

    /// The caller's groups.
    pub async fn groups_of(&self, caller: &Address) -> Result<Vec<GroupInfo>> {
        self.inner.store.groups_of(caller).await
    }

    /// Add `agent` to a group (creator only).
    pub async fn invite(
        &self,
        caller: &Address,
        group_id: &str,
        agent: &Address,
    ) -> Result<GroupInfo> {
        let g = self.group(caller, group_id).await?;
        if g.creator != *caller {
            return Err(Error::Forbidden("only the group's creator may invite".into()));
        }
        if self.inner.store.add_member(group_id, agent).await? {
            self.notify_invited(agent, group_id, caller).await;
        }
        self.group(caller, group_id).await
    }

    /// Add `agent` (creator only) while the group has fewer than `cap` members besides its
    /// creator, atomically: concurrent invitations cannot push it past `cap`. True if added;
    /// false if the group is full or `agent` is a member already.
    pub async fn invite_capped(
        &self,
        caller: &Address,
        group_id: &str,
        agent: &Address,
        cap: usize,
    ) -> Result<bool> {
        use store::CappedAdd;
        match self.inner.store.add_member_capped(group_id, caller, agent, cap).await? {
            CappedAdd::Added => {
                self.notify_invited(agent, group_id, caller).await;
                Ok(true)
            }
            CappedAdd::AlreadyMember | CappedAdd::Full => Ok(false),
            CappedAdd::NoGroup => Err(Error::Forbidden(not_member(group_id))),
            CappedAdd::NotCreator => {
                Err(Error::Forbidden("only the group's creator may invite".into()))
            }
        }
    }

    /// Remove `agent` (creator only, or the agent itself leaving).
    pub async fn remove(&self, caller: &Address, group_id: &str, agent: &Address) -> Result<()> {
        let g = self.group(caller, group_id).await?;
        if g.creator != *caller && caller != agent {
            return Err(Error::Forbidden("only the group's creator may remove others".into()));
        }
        if agent == &g.creator {
            return Err(Error::BadRequest(
                ErrorCode::InvalidFrame,
                "the creator cannot be removed".into(),
            ));
        }
        if self.inner.store.remove_member(group_id, agent).await? {
            self.removed_locally(group_id, agent);
            if let Some(mesh) = &self.inner.mesh {
                mesh.removed(group_id, agent).await;
            }
        }
        Ok(())
    }

    /// Apply a removal on this node (end subscriptions, tell the agent).
    pub fn removed_locally(&self, group_id: &str, agent: &Address) {
        self.inner.hub.unsubscribe_agent(group_id, agent);
        self.inner
            .hub
            .notify_agent(agent, &encode(&ServerFrame::Removed { group_id: group_id.into() }));
    }

    /// Tells `agent` (here and across the mesh) that `by` added it to `group_id`.
    async fn notify_invited(&self, agent: &Address, group_id: &str, by: &Address) {
        let frame = encode(&ServerFrame::Invited {
            group_id: group_id.into(),
            by: *by,
            joined_since_seq: None,
        });
        self.notify_agent(agent, frame).await;
    }

    async fn notify_agent(&self, agent: &Address, frame: Utf8Bytes) {
        self.inner.hub.notify_agent(agent, &frame);
        if let Some(mesh) = &self.inner.mesh {
            mesh.notify(agent, &frame).await;
        }
    }

    /// Sequence, store and fan out a message; returns (seq, duplicate).
    pub async fn send(&self, caller: &Address, msg: SendMessage) -> Result<(u64, bool)> {
        check_send(&msg)?;
        self.inner.terms.check(caller, &msg)?;
        let group_id = msg.group_id.clone();
        self.inner
            .writer
            .send(*caller, msg, reef_wire::unix_now_ms())
            .await?
            .ok_or_else(|| Error::Forbidden(not_member(&group_id)))
    }

    /// Queue a message from a WebSocket connection (pipelined: returns once queued); the
    /// writer pushes the `ack` (or `error`) frame to `conn` after the commit.
    pub fn send_pipelined(
        &self,
        conn: &hub::ConnHandle,
        req_id: Option<reef_wire::ReqId>,
        msg: SendMessage,
    ) -> Result<()> {
        check_send(&msg)?;
        self.inner.terms.check(&conn.address, &msg)?;
        self.inner.writer.send_to_conn(conn, req_id, msg, reef_wire::unix_now_ms())
    }

    /// Stored messages after `since_seq` (members only), as JSON values.
    pub async fn history(
        &self,
        caller: &Address,
        group_id: &str,
        since_seq: u64,
        limit: u32,
    ) -> Result<Vec<Value>> {
        // The membership check and the page in one read (a join's read).
        let Some((_, rows)) =
            self.inner.store.join(group_id, caller, since_seq, limit.clamp(1, 1000)).await?
        else {
            return Err(Error::Forbidden(not_member(group_id)));
        };
        Ok(rows
            .into_iter()
            .filter_map(|(_, f)| serde_json::from_str::<Value>(&f).ok())
            .map(|mut v| {
                if let Value::Object(o) = &mut v {
                    o.remove("type");
                }
                v
            })
            .collect())
    }

    /// Set (`Some`) or clear (`None`) the retention of a group the caller created: from then
    /// on its messages older than that are deleted by the sweep and never replayed.
    pub async fn set_retention(
        &self,
        caller: &Address,
        group_id: &str,
        retention_secs: Option<u64>,
    ) -> Result<()> {
        if retention_secs == Some(0) {
            return Err(Error::BadRequest(
                ErrorCode::InvalidFrame,
                "retention_secs must be at least 1 (null: keep everything)".into(),
            ));
        }
        let g = self.group(caller, group_id).await?;
        if g.creator != *caller {
            return Err(Error::Forbidden("only the group's creator may set its retention".into()));
        }
        if !self.inner.store.set_retention(group_id, caller, retention_secs).await? {
            return Err(Error::Forbidden(not_member(group_id)));
        }
        Ok(())
    }

    /// Delete every message the caller stored in `group_id` (members only; the rows go, and
    /// on SQLite their bytes are zeroed and the log truncated). Returns how many were deleted.
    pub async fn erase_own(&self, caller: &Address, group_id: &str) -> Result<u64> {
        if !self.inner.store.is_member(group_id, caller).await? {
            return Err(Error::Forbidden(not_member(group_id)));
        }
        let n = self.inner.store.erase_sender(group_id, caller).await?;
        if n > 0 {
            self.inner.store.checkpoint().await?;
        }
        Ok(n)
    }

    /// Presence bookkeeping for a connection opening or closing.
    pub async fn presence(&self, address: &Address, up: bool) {
        if let Err(e) = self.inner.store.presence(address, &self.inner.config.node_id, up).await {
            tracing::warn!(error = %e, "presence update failed");
        }
    }
}

/// Keep this node's presence rows fresh: one batched UPDATE per third of the TTL.
fn spawn_heartbeat(store: Store, node_id: String, ttl_secs: u64) {
    let period = Duration::from_secs_f64((ttl_secs as f64 / 3.0).clamp(0.2, 60.0));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = store.heartbeat(&node_id).await {
                tracing::warn!(error = %e, "presence heartbeat failed");
            }
        }
    });
}

/// Deletes, every `period_secs`, the messages older than their group's retention (and on
/// SQLite truncates the log so no copy of them stays there).
fn spawn_retention_sweep(store: Store, period_secs: u64) {
    let period = Duration::from_secs(period_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.purge_expired(store::now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(deleted = n, "expired messages deleted");
                    if let Err(e) = store.checkpoint().await {
                        tracing::warn!(error = %e, "checkpoint after the retention sweep failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
            }
        }
    });
}

/// Hex keccak-256 of a bearer token (only the hash is stored).
fn token_hash(token: &str) -> String {
    hex::encode(alloy_primitives::keccak256(token.as_bytes()))
}

fn check_send(msg: &SendMessage) -> Result<()> {
    if msg.msg_id.is_empty() || msg.msg_id.len() > 200 {
        return Err(Error::BadRequest(
            ErrorCode::InvalidFrame,
            "msg_id must be 1..=200 bytes".into(),
        ));
    }
    if msg.group_id.len() > 200 {
        return Err(Error::BadRequest(ErrorCode::InvalidFrame, "group_id too long".into()));
    }
    Ok(())
}

/// A card's documented size limits (`docs/schemas/agent_card.json`), in characters as JSON
/// Schema counts them: one error naming the first field over its limit.
fn check_card_sizes(card: &AgentCard) -> Result<()> {
    let over = |field: &str, len: usize, max: usize, unit: &str| {
        Error::BadRequest(
            ErrorCode::InvalidFrame,
            format!("card.{field} has {len} {unit}; at most {max} allowed"),
        )
    };
    let chars = |s: &str| s.chars().count();
    let limits = [
        ("name", chars(&card.name), CARD_NAME_MAX),
        ("description", chars(&card.description), CARD_DESCRIPTION_MAX),
        ("image", card.image.as_deref().map_or(0, chars), CARD_IMAGE_MAX),
    ];
    if let Some((field, len, max)) = limits.into_iter().find(|(_, len, max)| len > max) {
        return Err(over(field, len, max, "characters"));
    }
    if card.skills.len() > CARD_SKILLS_MAX {
        return Err(over("skills", card.skills.len(), CARD_SKILLS_MAX, "entries"));
    }
    Ok(())
}

/// Longest card name, in characters.
const CARD_NAME_MAX: usize = 200;
/// Longest card description, in characters.
const CARD_DESCRIPTION_MAX: usize = 10_000;
/// Longest card image URL, in characters.
const CARD_IMAGE_MAX: usize = 2048;
/// Most skills on one card.
const CARD_SKILLS_MAX: usize = 100;

fn not_member(group_id: &str) -> String {
    format!("not a member of group {group_id} (or no such group)")
}

/// How long a writer waits for a close frame to go out.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);
