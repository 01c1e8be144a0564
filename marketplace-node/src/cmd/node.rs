//! `reef node`: run the IoA switchboard (WebSocket + REST) on SQLite or Postgres, optionally
//! meshed with other nodes over NATS.

use std::net::SocketAddr;

use clap::Args;

use crate::{
    ioa::{self, Config},
    market::{self, Market, MarketConfig},
};

/// Arguments of `reef node`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  reef node --listen 127.0.0.1:7700\n  reef node --listen 127.0.0.1:7701 --node-id n2 \\\n    --database-url postgres://postgres@127.0.0.1/reef --nats-url nats://127.0.0.1:4222\n\nAgents connect to ws://<listen>/v1/ws; scripts use http://<listen>/v1/... (docs/protocol.md)."
)]
pub struct NodeArgs {
    /// Address to listen on (port 0: pick a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7700", env = "REEF_LISTEN")]
    listen: SocketAddr,
    /// This node's id, named in login messages (must be unique within a mesh).
    #[arg(long, default_value = "reef-node", env = "REEF_NODE_ID")]
    node_id: String,
    /// Database: sqlite://path (created if missing) or postgres://...
    #[arg(long, default_value = "sqlite://.reef/node.db", env = "REEF_DATABASE_URL")]
    database_url: String,
    /// NATS server for cross-node fan-out (omit for a single node).
    #[arg(long, env = "REEF_NATS_URL")]
    nats_url: Option<String>,
    /// Largest accepted WebSocket message in bytes (larger: close 1009).
    #[arg(long, default_value_t = 1 << 20)]
    max_frame_bytes: usize,
    /// Challenge lifetime in seconds.
    #[arg(long, default_value_t = 60)]
    challenge_ttl_secs: u64,
    /// Per-agent rate limit: sustained frames per second.
    #[arg(long, default_value_t = 200.0)]
    rate_per_sec: f64,
    /// Per-agent rate limit: burst size.
    #[arg(long, default_value_t = 400.0)]
    rate_burst: f64,
    /// Per-connection outgoing queue length (full: the consumer is disconnected and replays).
    #[arg(long, default_value_t = 1024)]
    queue_len: usize,
    /// Sends queued for the group-commit writer (full: `overloaded` error frames).
    #[arg(long, default_value_t = 8192)]
    send_queue_len: usize,
    /// Seconds without a presence heartbeat after which an agent counts as offline.
    #[arg(long, default_value_t = 30)]
    presence_ttl_secs: u64,
    /// Lifetime of REST bearer tokens in seconds.
    #[arg(long, default_value_t = 86400)]
    token_ttl_secs: u64,
    /// permessage-deflate (RFC 7692) on the agents' WebSocket: `on` agrees to a client's
    /// offer within the bounds below, `off` never does (plain frames for everyone).
    #[arg(long, default_value_t = ioa::deflate::Switch::On, value_name = "on|off")]
    ws_compression: ioa::deflate::Switch,
    /// Largest deflate window, in bits (9..=15), the node compresses with and asks clients
    /// that let it choose to compress with: bounds each connection's deflate memory.
    #[arg(long, default_value_t = ioa::deflate::WsCompression::default().window_bits)]
    ws_window_bits: u8,
    /// Do not keep deflate dictionaries between messages: both sides are told
    /// `no_context_takeover`, and the node borrows its deflate state from a shared pool per
    /// message, so an idle connection holds none (at some cost in compression ratio).
    #[arg(long)]
    ws_no_context_takeover: bool,
    /// deflate level for the node's outgoing messages, 0 (none) to 9 (smallest).
    #[arg(long, default_value_t = ioa::deflate::WsCompression::default().level)]
    ws_compression_level: u32,
    /// How often, in seconds, the node deletes the messages past their group's retention
    /// (`reef group retention`) and the task data of settled bounties past theirs.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    retention_sweep_secs: u64,
    /// The region this node keeps its data in (e.g. `eu`): bounties whose data-usage terms
    /// name a region are accepted only by a node of that region.
    #[arg(long, env = "REEF_REGION")]
    region: Option<String>,
    /// Delete an ended bounty's task input and result this long after it ended (e.g. `30d`),
    /// unless its terms set their own retention (default: keep them).
    #[arg(long, value_parser = super::chain::parse_duration, value_name = "DURATION")]
    task_retention: Option<std::time::Duration>,
    /// The sentence-embedding model discovery ranks with: a folder holding all-MiniLM-L6-v2
    /// (`make model` unpacks it into models/all-MiniLM-L6-v2, the default when present), or
    /// `off` to rank by BM25 and reputation only. A folder named here that cannot be loaded
    /// stops the node; a missing default is a fallback to BM25, said at start-up
    /// (docs/discovery.md). Example: `--embedding-model off`.
    #[arg(long, env = "REEF_EMBEDDING_MODEL", value_name = "DIR|off")]
    embedding_model: Option<ioa::semantic::ModelChoice>,
    /// Print the bound address as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Enable the marketplace (bounties, sealed bids, verification) against this chain RPC.
    #[arg(long = "rpc-url", env = "REEF_RPC_URL")]
    market_rpc: Option<String>,
    /// Directory with `<chainId>.json` deployment files (marketplace).
    #[arg(long, env = "REEF_DEPLOYMENTS", default_value = "deployments")]
    deployments: std::path::PathBuf,
    /// The node's evaluator key (hex): signs attestations, pays gas for refunds and claims.
    /// Without it, on a local anvil (chain 31337) only, anvil's dev account 5 is used (with a
    /// warning at start); on any other chain the node refuses to start without one.
    #[arg(long, env = "REEF_MARKET_KEY", hide_env_values = true)]
    market_key: Option<String>,
    /// Use anvil's N-th dev account as the evaluator key (local chains only).
    #[arg(long, value_name = "N", conflicts_with_all = ["market_key", "market_account", "market_keystore"])]
    market_dev_account: Option<usize>,
    /// The evaluator key from the named keystore in Foundry's folder (see `reef wallet`).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["market_key", "market_keystore"])]
    market_account: Option<String>,
    /// The evaluator key from this encrypted keystore file.
    #[arg(long, value_name = "FILE", conflicts_with = "market_key")]
    market_keystore: Option<std::path::PathBuf>,
    /// File whose first line is the evaluator keystore's password (else
    /// $REEF_KEYSTORE_PASSWORD, else a prompt).
    #[arg(long, value_name = "FILE")]
    market_password_file: Option<std::path::PathBuf>,
    /// Accept --market-key (a raw hex key) on a chain that is not a local devnet.
    #[arg(long)]
    allow_raw_key: bool,
    /// Fee caps and stuck-transaction replacement for the node's own transactions.
    #[command(flatten)]
    fees: super::chain::FeeArgs,
    /// A verifier program posters may choose for `command` verification (repeatable).
    #[arg(long = "verifier", value_name = "NAME=PATH")]
    verifiers: Vec<String>,
    /// Most sealed bids kept per bounty.
    #[arg(long, default_value_t = 10_000)]
    bid_capacity: usize,
    /// Invite at most this many matching agents to each call for proposals (0 = all). The
    /// invitees are picked by a rendezvous hash of (bounty, agent), so the work spreads evenly
    /// over the market and a restart invites the same agents.
    #[arg(long, default_value_t = 0, value_name = "K")]
    cfp_fanout: usize,
    /// Seconds a winning bid must stay valid after the window closes (time for the award).
    #[arg(long, default_value_t = 300)]
    award_grace_secs: u64,
    /// Admission control: most bounties in their bid window at once (0 = no limit). A post
    /// beyond it is answered `503 busy` with a Retry-After, before anything is registered;
    /// `reef bounty post` waits and posts again.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_open_windows: usize,
    /// How many times a window that closes without a valid bid is extended by its own length
    /// (while the deadline leaves room) before the bounty fails, so that bids a loaded machine
    /// delivers late still count (0 = fail at once).
    #[arg(long, default_value_t = 3, value_name = "N")]
    max_window_extensions: u32,
    /// How often, in milliseconds, the marketplace work loop reads the chain head and new
    /// escrow events (bounties are stepped on events, messages and their own timers).
    #[arg(long, default_value_t = 200)]
    market_tick_ms: u64,
    /// Do not run the embedded chain indexer (bids are then ranked on this node's history only).
    #[arg(long)]
    no_indexer: bool,
    /// Copy each final bounty's verdict into the ERC-8004 ValidationRegistry: 100 for an
    /// accepted result, 0 for a rejection that became final, the evaluator (this node's key or
    /// the panel) as validator. One transaction per bounty whose provider has an ERC-8004
    /// agent identity, paid by the market key (docs/marketplace.md, "Validations").
    /// Example: `--record-validations false` on a chain where gas is dear.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    record_validations: bool,
    /// Most dashboard live-update streams (server-sent events) open at once; more are answered
    /// `503 busy` (docs/dashboard.md).
    #[arg(long, default_value_t = crate::dashboard::live::MAX_CLIENTS, value_name = "N")]
    dashboard_live_clients: usize,
}

impl NodeArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        let mut config = Config {
            node_id: self.node_id.clone(),
            database_url: self.database_url.clone(),
            nats_url: self.nats_url.clone(),
            max_frame_bytes: self.max_frame_bytes,
            challenge_ttl_secs: self.challenge_ttl_secs,
            rate_per_sec: self.rate_per_sec,
            rate_burst: self.rate_burst,
            queue_len: self.queue_len,
            send_queue_len: self.send_queue_len,
            presence_ttl_secs: self.presence_ttl_secs,
            token_ttl_secs: self.token_ttl_secs,
            ws_compression: ioa::deflate::WsCompression {
                enabled: self.ws_compression == ioa::deflate::Switch::On,
                window_bits: self.ws_window_bits,
                context_takeover: !self.ws_no_context_takeover,
                level: self.ws_compression_level,
            },
            ..Config::default()
        };
        config.retention_sweep_secs = self.retention_sweep_secs.max(1);
        config.embedding_model = self.embedding_model.clone().unwrap_or_default();
        config.ws_compression.validate().map_err(|e| eyre::eyre!(e))?;
        let node_id = config.node_id.clone();
        let node = ioa::Node::open(config).await?;
        let mut app = ioa::rest::router(node.clone())
            .merge(crate::openapi::router())
            .merge(crate::swarm::rest::router(node.clone()));
        let mut market_addr = None;
        let mut market_for_a2a = None;
        let live = self.dashboard_live_clients;
        match (&self.market_rpc, node.mesh()) {
            (Some(rpc), mesh) => {
                let market = self.open_market(node.clone(), rpc).await?;
                market_addr = Some(market.address());
                market_for_a2a = Some(market.clone());
                let routes = market::rest::router(market.clone());
                if let Some(mesh) = mesh {
                    // Answer the mesh's nodes that run no marketplace.
                    market::gateway::serve(mesh.clone(), routes.clone()).await?;
                }
                app = app
                    .merge(routes)
                    .merge(crate::erc8004::router(market.clone()))
                    .merge(crate::metrics::router(node.clone(), Some(market.clone())))
                    .merge(crate::dashboard::router(node.clone(), Some(market.clone()), live));
                tokio::spawn(market.run());
            }
            (None, Some(mesh)) => {
                app = app
                    .merge(market::gateway::router(mesh.clone()))
                    .merge(crate::metrics::router(node.clone(), None))
                    .merge(crate::dashboard::router(node.clone(), None, live));
            }
            (None, None) => {
                app = app
                    .merge(market::gateway::absent_router())
                    .merge(crate::metrics::router(node.clone(), None))
                    .merge(crate::dashboard::router(node.clone(), None, live));
            }
        }
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|e| eyre::eyre!("cannot listen on {}: {e}", self.listen))?;
        let addr = listener.local_addr()?;
        // MCP over streamable HTTP; its tools reach this node's REST API on the loopback.
        let loopback = match addr.ip() {
            ip if ip.is_unspecified() => {
                std::net::SocketAddr::new([127, 0, 0, 1].into(), addr.port())
            }
            _ => addr,
        };
        app = app.merge(crate::mcp::http::router(node.clone(), &format!("http://{loopback}")));
        // A2A: the node's and its agents' cards, and tasks that become bounties.
        if let Some(market) = market_for_a2a {
            match crate::a2a::A2a::open(market, &format!("http://{loopback}")).await {
                Ok(Some(a2a)) => app = app.merge(crate::a2a::router(a2a)),
                Ok(None) => crate::logging::notice(
                    "A2A is off: the deployment has no ERC-20 (testToken) to take task budgets in",
                ),
                Err(e) => crate::logging::notice(format!("A2A is off: {e:#}")),
            }
        }
        if self.json {
            println!(
                "{}",
                serde_json::json!({ "listen": addr.to_string(), "node_id": node_id, "evaluator": market_addr })
            );
        } else {
            println!("listening on {addr}");
        }
        crate::logging::notice(format!(
            "reef node {node_id}: ws://{addr}/v1/ws; dashboard http://{loopback}/"
        ));
        match (market_addr, node.mesh()) {
            (Some(a), _) => crate::logging::notice(format!("marketplace enabled; evaluator {a}")),
            (None, Some(_)) => {
                crate::logging::notice("marketplace requests go to the mesh's marketplace nodes")
            }
            (None, None) => {}
        }
        let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>());
        tokio::select! {
            r = server => { r?; }
            _ = tokio::signal::ctrl_c() => { crate::logging::notice("shutting down"); }
        }
        Ok(())
    }

    async fn open_market(&self, node: ioa::Node, rpc: &str) -> eyre::Result<Market> {
        use escrow_client::{Deployment, ReefClient, devnet::dev_signer};
        let chain_id = ReefClient::chain_id_at(rpc).await?;
        let spec = super::chain::KeySpec {
            key_flag: "--market-key",
            key: self.market_key.as_deref(),
            account: self.market_account.as_deref(),
            keystore: self.market_keystore.as_deref(),
            password_file: self.market_password_file.as_deref(),
            allow_raw_key: self.allow_raw_key,
        };
        let key = match (spec.resolve(Some(chain_id))?, self.market_dev_account, chain_id) {
            (Some(k), _, _) => k,
            (None, Some(i), 31337) => escrow_client::devnet::dev_signer_checked(i)
                .map_err(|e| eyre::eyre!("--market-dev-account: {e}"))?,
            (None, Some(_), other) => {
                eyre::bail!("--market-dev-account only works on anvil (31337), not chain {other}")
            }
            (None, None, 31337) => {
                crate::logging::notice(
                    "warning: no --market-key: on this local anvil the evaluator key is anvil's dev account 5 (never on another chain)",
                );
                dev_signer(5)
            }
            (None, None, _) => eyre::bail!(
                "the marketplace needs an evaluator key: --market-account NAME (a keystore, see `reef wallet`), --market-keystore FILE, or --market-key with --allow-raw-key"
            ),
        };
        let deployment = Deployment::load(&Deployment::path_in(&self.deployments, chain_id))?;
        let verifiers = market::verify::Verifiers::parse(&self.verifiers, Default::default())
            .map_err(|e| eyre::eyre!(e))?;
        // Embedded indexer (same database, `idx_` tables): feeds the reputation engine that
        // ranks bids.
        let reputation = if self.no_indexer {
            None
        } else {
            let store = reef_indexer::Store::connect(&self.database_url).await?;
            let source = reef_indexer::RpcSource::new(rpc)?;
            let mut indexer = reef_indexer::Indexer::new(
                source,
                store.clone(),
                reef_indexer::IndexerConfig::for_deployment(&deployment),
            )
            .await?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                let _keep = stop_tx;
                if let Err(e) = indexer.run(stop_rx).await {
                    tracing::error!(error = %e, "embedded indexer stopped");
                }
            });
            Some(store)
        };
        let cfg = MarketConfig {
            rpc_url: rpc.to_string(),
            deployment,
            key,
            chain_options: escrow_client::ClientOptions {
                fees: self.fees.policy(),
                ..Default::default()
            },
            scoring: Default::default(),
            bid_capacity: self.bid_capacity,
            cfp_fanout: self.cfp_fanout,
            award_grace_secs: self.award_grace_secs,
            max_bid_window_secs: 3_600,
            max_open_windows: self.max_open_windows,
            max_window_extensions: self.max_window_extensions,
            tick: std::time::Duration::from_millis(self.market_tick_ms),
            verifiers,
            reputation,
            record_validations: self.record_validations,
            region: self.region.clone(),
            task_retention: self.task_retention,
            retention_sweep: std::time::Duration::from_secs(self.retention_sweep_secs.max(1)),
        };
        // Swarm auctions check vouchers on the same chain (reads only).
        let swarm_chain = ReefClient::connect(
            rpc,
            cfg.key.clone(),
            cfg.deployment.clone(),
            cfg.chain_options.clone(),
        )
        .await?;
        let ledger = crate::swarm::ledger::Ledger::connect(&self.database_url).await?;
        let swarm_cfg = crate::swarm::SwarmConfig::default();
        let payments = crate::swarm::Payments::new(swarm_chain, ledger, swarm_cfg.payment.clone());
        node.set_swarm(crate::swarm::Swarm::new(node.hub().clone(), payments, swarm_cfg));
        Ok(Market::open(node, cfg).await?)
    }
}
