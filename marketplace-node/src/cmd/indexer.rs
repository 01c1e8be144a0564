//! `reef indexer run|status`: follow the chain into SQL, and report how far it got.

use std::path::PathBuf;

use alloy::primitives::Address;
use clap::{Args, Subcommand};
use escrow_client::Deployment;
use eyre::{Context, eyre};
use reef_indexer::{ChainSource, Indexer, IndexerConfig, RpcSource, Store};

/// Where the chain and the index live (shared by `reef indexer` and `reef agents`).
#[derive(Debug, Clone, Args)]
pub struct IndexArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, global = true, env = "REEF_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// Directory holding `<chainId>.json` deployment files.
    #[arg(long, global = true, env = "REEF_DEPLOYMENTS", default_value = "deployments")]
    pub deployments: PathBuf,
    /// Database URL (`sqlite:path` or `postgres://…`); default `sqlite:.reef/indexer-<chainId>.db`.
    #[arg(long, global = true, env = "REEF_INDEXER_DB")]
    pub db: Option<String>,
    /// Blocks a fact must be below the head before scores and balances use it (default by chain
    /// id: 0 on local devnets, 12 on Ethereum, 10 on OP-stack and Arbitrum chains, 64 on
    /// Polygon PoS, 12 on any other).
    #[arg(long, global = true)]
    pub confirmations: Option<u64>,
}

impl IndexArgs {
    /// The chain id the RPC reports.
    pub async fn chain_id(&self) -> eyre::Result<u64> {
        RpcSource::new(&self.rpc_url)?
            .chain_id()
            .await
            .wrap_err_with(|| format!("cannot reach {}", self.rpc_url))
    }

    /// The database URL for `chain_id`.
    pub fn db_url(&self, chain_id: u64) -> String {
        self.db.clone().unwrap_or_else(|| format!("sqlite:.reef/indexer-{chain_id}.db"))
    }

    /// The confirmation depth for `chain_id`.
    pub fn confirmations(&self, chain_id: u64) -> u64 {
        self.confirmations.unwrap_or(reef_indexer::profile(chain_id).confirmations)
    }

    /// Opens the index: with `--db`, without contacting the chain (the chain id is the one the
    /// database was indexed from, `None` for an index never run); otherwise by chain id.
    pub async fn open(&self) -> eyre::Result<(Store, Option<u64>)> {
        let (url, chain) = match &self.db {
            Some(url) => (url.clone(), None),
            None => {
                let id = self.chain_id().await?;
                (self.db_url(id), Some(id))
            }
        };
        let store = Store::connect(&url)
            .await
            .wrap_err_with(|| format!("cannot open index database {url}"))?;
        let chain = match chain {
            Some(id) => Some(id),
            None => indexed_chain(&store).await?,
        };
        Ok((store, chain))
    }

    /// The confirmation depth of an index opened by [`Self::open`]: by its chain id, and for an
    /// index whose chain is unknown the default of chains not listed (never the devnet's 0).
    pub fn confirmations_of(&self, chain: Option<u64>) -> u64 {
        match chain {
            Some(id) => self.confirmations(id),
            None => self.confirmations.unwrap_or(reef_indexer::profile(u64::MAX).confirmations),
        }
    }
}

/// The chain id an index database was built from (its `chain:escrow` identity), if it was.
async fn indexed_chain(store: &Store) -> eyre::Result<Option<u64>> {
    let Some(identity) = store.meta("identity").await? else { return Ok(None) };
    let id = identity.split_once(':').and_then(|(id, _)| id.parse::<u64>().ok());
    match id {
        Some(id) => Ok(Some(id)),
        None => Err(eyre!("the index database names no chain it was built from ({identity:?})")),
    }
}

/// `reef indexer`.
#[derive(Debug, Args)]
#[command(after_help = "Example: reef indexer run --rpc-url http://127.0.0.1:8545")]
pub struct IndexerArgs {
    #[command(flatten)]
    index: IndexArgs,
    #[command(subcommand)]
    cmd: IndexerCmd,
}

#[derive(Debug, Subcommand)]
enum IndexerCmd {
    /// Backfill from the deployment's start block, then follow the head (Ctrl-C stops).
    #[command(after_help = "Example: reef indexer run --db sqlite:.reef/idx.db --once")]
    Run(RunArgs),
    /// Show the checkpoint, lag behind the head and table counts.
    #[command(after_help = "Example: reef indexer status --json")]
    Status(StatusArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Stop after catching up with the head instead of following it.
    #[arg(long)]
    once: bool,
    /// BountyEscrow address (overrides the deployment file; needs all four contract flags).
    #[arg(long, requires_all = ["channel", "registry", "reputation"])]
    escrow: Option<Address>,
    /// PaymentChannel address.
    #[arg(long)]
    channel: Option<Address>,
    /// AgentRegistry address.
    #[arg(long)]
    registry: Option<Address>,
    /// ReputationRegistry address.
    #[arg(long)]
    reputation: Option<Address>,
    /// ValidationRegistry address (optional with the other four flags).
    #[arg(long, requires = "escrow")]
    validation: Option<Address>,
    /// First block to index (default: the deployment's start block).
    #[arg(long)]
    from_block: Option<u64>,
    /// Also index transfers of this ERC-20 (repeatable; bounty tokens are discovered anyway).
    #[arg(long = "token")]
    tokens: Vec<Address>,
    /// Recent blocks kept for reorg detection (default by chain id: 64 on local devnets, 128 on
    /// Ethereum, OP-stack and Arbitrum chains, 256 on Polygon PoS, 128 on any other).
    #[arg(long)]
    reorg_window: Option<u64>,
    /// Concurrent RPC requests.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl IndexerArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> eyre::Result<()> {
        match self.cmd {
            IndexerCmd::Run(a) => run(&self.index, a).await,
            IndexerCmd::Status(a) => status(&self.index, a).await,
        }
    }
}

async fn config(index: &IndexArgs, a: &RunArgs, chain_id: u64) -> eyre::Result<IndexerConfig> {
    let mut cfg = match (a.escrow, a.channel, a.registry, a.reputation) {
        (Some(escrow), Some(channel), Some(registry), Some(reputation)) => {
            let dep = Deployment {
                chain_id,
                start_block: a.from_block.unwrap_or(0),
                bounty_escrow: escrow,
                payment_channel: channel,
                agent_registry: registry,
                reputation_registry: reputation,
                validation_registry: a.validation,
                evaluator_panel: None,
                test_token: None,
            };
            IndexerConfig::for_deployment(&dep)
        }
        _ => {
            let path = Deployment::path_in(&index.deployments, chain_id);
            IndexerConfig::for_deployment(&Deployment::load(&path)?)
        }
    };
    if let Some(b) = a.from_block {
        cfg.start_block = b;
    }
    cfg.tokens.extend(a.tokens.iter().copied());
    cfg.confirmations = index.confirmations(chain_id);
    cfg.reorg_window = a
        .reorg_window
        .unwrap_or(reef_indexer::profile(chain_id).reorg_window)
        .max(cfg.confirmations);
    cfg.concurrency = a.concurrency.max(1);
    Ok(cfg)
}

/// Builds an indexer for `index` (used by `reef indexer run` and embeddable by `reef node`).
pub async fn build(
    index: &IndexArgs,
    chain_id: u64,
    cfg: IndexerConfig,
) -> eyre::Result<Indexer<RpcSource>> {
    let url = index.db_url(chain_id);
    let store =
        Store::connect(&url).await.wrap_err_with(|| format!("cannot open index database {url}"))?;
    Ok(Indexer::new(RpcSource::new(&index.rpc_url)?, store, cfg).await?)
}

async fn run(index: &IndexArgs, a: RunArgs) -> eyre::Result<()> {
    let chain_id = index.chain_id().await?;
    let cfg = config(index, &a, chain_id).await?;
    eprintln!(
        "indexing chain {chain_id} from block {} into {} (confirmations {}, reorg window {})",
        cfg.start_block,
        index.db_url(chain_id),
        cfg.confirmations,
        cfg.reorg_window
    );
    let mut ix = build(index, chain_id, cfg).await?;
    let started = std::time::Instant::now();
    let report = ix.sync_once().await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "caught up: blocks {}..{} ({} events, {} reorgs) in {secs:.1}s",
        report.from, report.next_block, report.events, report.reorgs
    );
    if a.once {
        if a.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        return Ok(());
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    eprintln!("following the head (Ctrl-C stops)");
    ix.run(rx).await?;
    Ok(())
}

async fn status(index: &IndexArgs, a: StatusArgs) -> eyre::Result<()> {
    // `open` names the chain: the RPC's, or with `--db` the one the index was built from.
    let (store, chain) = index.open().await?;
    let chain_id = chain.ok_or_else(|| eyre!("the database has never been indexed"))?;
    let next = store.next_block().await?;
    let head = match RpcSource::new(&index.rpc_url) {
        Ok(src) => src.head().await.ok(),
        Err(_) => None,
    };
    let confirmations = index.confirmations(chain_id);
    let confirmed = reef_indexer::indexer::confirmed_tip(&store, confirmations).await?;
    let stats = store.stats().await?;
    let indexed = next.and_then(|n| n.checked_sub(1));
    let lag = match (head, indexed) {
        (Some(h), Some(i)) => Some(h.saturating_sub(i)),
        _ => None,
    };
    if a.json {
        let v = serde_json::json!({
            "chainId": chain_id,
            "identity": store.meta("identity").await?,
            "indexedBlock": indexed,
            "chainHead": head,
            "lagBlocks": lag,
            "confirmations": confirmations,
            "confirmedBlock": confirmed,
            "stats": stats,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let show = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        println!("chain            {chain_id}");
        println!("indexed up to    {}", show(indexed));
        println!("chain head       {}", show(head));
        println!("lag              {} blocks", show(lag));
        println!("confirmed up to  {} ({confirmations} confirmations)", show(confirmed));
        println!("events           {}", stats.events);
        println!("bounties         {} ({} settled)", stats.bounties, stats.settled_bounties);
        println!("stakers          {}", stats.stakers);
        println!("funding sources  {}", stats.funded_accounts);
        println!("reorg window     {} blocks kept", stats.window_blocks);
    }
    store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(db: &str) -> IndexArgs {
        IndexArgs {
            // Nothing listens there: `--db` must not need the chain.
            rpc_url: "http://127.0.0.1:9".into(),
            deployments: PathBuf::from("deployments"),
            db: Some(db.into()),
            confirmations: None,
        }
    }

    /// `reef agents … --db` takes the confirmation depth of the chain the index was built
    /// from (not the devnet's 0 for every database), and the strict default when it is unknown.
    #[tokio::test]
    async fn an_index_opened_by_path_keeps_its_chains_confirmations() {
        let dir = std::env::temp_dir().join(format!("reef-idx-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            (Some("84532:0x00000000000000000000000000000000000000aa"), Some(84532), 10),
            (Some("31337:0x00000000000000000000000000000000000000aa"), Some(31337), 0),
            (None, None, 12),
        ];
        for (i, (identity, chain, confirmations)) in cases.into_iter().enumerate() {
            let url = format!("sqlite:{}/idx{i}.db", dir.display());
            let store = Store::connect(&url).await.unwrap();
            if let Some(identity) = identity {
                store.set_meta("identity", identity).await.unwrap();
            }
            drop(store);
            let a = args(&url);
            let (_, got) = a.open().await.unwrap();
            assert_eq!(got, chain, "{identity:?}");
            assert_eq!(a.confirmations_of(got), confirmations, "{identity:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
