//! Where chain data comes from: the [`ChainSource`] trait and its JSON-RPC implementation.
//!
//! The trait is deliberately small (head, one block header, logs of a range) so tests can wrap
//! the real source to inject errors, timeouts, duplicated and foreign logs.

use std::{future::Future, time::Duration};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{Filter, Log},
};

use crate::{Error, Result};

/// The identity of one block: what reorg detection compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Height.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Parent's hash.
    pub parent: B256,
    /// Unix timestamp.
    pub timestamp: u64,
}

/// A source of blocks and logs (an RPC endpoint, or a test double around one).
pub trait ChainSource: Send + Sync {
    /// Chain id.
    fn chain_id(&self) -> impl Future<Output = Result<u64>> + Send;
    /// Latest block number.
    fn head(&self) -> impl Future<Output = Result<u64>> + Send;
    /// Header of block `n` (None if the chain is shorter).
    fn block(&self, n: u64) -> impl Future<Output = Result<Option<BlockRef>>> + Send;
    /// Logs emitted by `addresses` in blocks `from..=to`.
    fn logs(
        &self,
        from: u64,
        to: u64,
        addresses: &[Address],
    ) -> impl Future<Output = Result<Vec<Log>>> + Send;
}

/// [`ChainSource`] over HTTP JSON-RPC.
#[derive(Debug, Clone)]
pub struct RpcSource {
    provider: DynProvider,
    url: String,
}

fn rpc_err(what: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Rpc { what: what.into(), message: e.to_string() }
}

impl RpcSource {
    /// A source reading from `url` (http:// or https://; ws:// URLs are polled over HTTP).
    pub fn new(url: &str) -> Result<Self> {
        let http = if let Some(rest) = url.strip_prefix("ws://") {
            format!("http://{rest}")
        } else if let Some(rest) = url.strip_prefix("wss://") {
            format!("https://{rest}")
        } else {
            url.to_string()
        };
        let parsed = http
            .parse()
            .map_err(|e| Error::Config(format!("RPC URL {url:?} is not a URL: {e}")))?;
        let provider =
            ProviderBuilder::new().disable_recommended_fillers().connect_http(parsed).erased();
        Ok(Self { provider, url: url.to_string() })
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying provider.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }
}

/// Per-call timeout of [`RpcSource`] requests.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(20);

async fn timed<T, E: std::fmt::Display>(
    what: impl Into<String>,
    fut: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    let what = what.into();
    match tokio::time::timeout(RPC_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| rpc_err(what, e)),
        Err(_) => Err(rpc_err(what, format!("timed out after {RPC_TIMEOUT:?}"))),
    }
}

impl ChainSource for RpcSource {
    async fn chain_id(&self) -> Result<u64> {
        timed("eth_chainId", self.provider.get_chain_id()).await
    }

    async fn head(&self) -> Result<u64> {
        timed("eth_blockNumber", self.provider.get_block_number()).await
    }

    async fn block(&self, n: u64) -> Result<Option<BlockRef>> {
        let b = timed(format!("eth_getBlockByNumber {n}"), async {
            self.provider.get_block_by_number(BlockNumberOrTag::Number(n)).await
        })
        .await?;
        Ok(b.map(|b| BlockRef {
            number: b.header.number,
            hash: b.header.hash,
            parent: b.header.parent_hash,
            timestamp: b.header.timestamp,
        }))
    }

    async fn logs(&self, from: u64, to: u64, addresses: &[Address]) -> Result<Vec<Log>> {
        let filter = Filter::new().from_block(from).to_block(to).address(addresses.to_vec());
        timed(format!("eth_getLogs {from}..={to}"), self.provider.get_logs(&filter)).await
    }
}
