//! Where chain data comes from: the [`ChainSource`] trait and its JSON-RPC implementation.
//!
//! The trait is deliberately small (head, one block header, logs of a range) so tests can wrap
//! the real source to inject errors, timeouts, duplicated and foreign logs.

use std::{future::Future, time::Duration};

use tokio::sync::watch;

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
    /// Pushed new-head numbers, if this source can subscribe to them (a ws:// RPC URL): the live
    /// tail then syncs as soon as a block arrives instead of waiting for its next poll. `None`
    /// (the default) means poll only. Must be called within a Tokio runtime.
    fn head_notifications(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// [`ChainSource`] over HTTP JSON-RPC; with a ws:// URL, requests still go over HTTP (same host
/// and port) and new heads are pushed over an `eth_subscribe("newHeads")` WebSocket.
#[derive(Debug, Clone)]
pub struct RpcSource {
    provider: DynProvider,
    url: String,
}

fn rpc_err(what: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Rpc { what: what.into(), message: e.to_string() }
}

impl RpcSource {
    /// A source reading from `url` (http://, https://, or ws:// — see [`RpcSource`]; wss:// is
    /// read over https:// and polled, as the WebSocket client is built without TLS).
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

    fn head_notifications(&self) -> Option<watch::Receiver<u64>> {
        if !self.url.starts_with("ws://") {
            return None;
        }
        let (tx, rx) = watch::channel(0u64);
        tokio::spawn(follow_heads(self.url.clone(), tx));
        Some(rx)
    }
}

/// Keeps an `eth_subscribe("newHeads")` WebSocket open to `url` (reconnecting with backoff) and
/// publishes each new head's number, until every receiver is gone.
async fn follow_heads(url: String, tx: watch::Sender<u64>) {
    let mut delay = Duration::from_millis(250);
    loop {
        tokio::select! {
            r = subscribe_heads(&url, &tx) => match r {
                Ok(()) => tracing::debug!(%url, "newHeads subscription closed; reconnecting"),
                Err(e) => tracing::warn!(%url, error = %e, "newHeads subscription failed; polling meanwhile"),
            },
            () = tx.closed() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = tx.closed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// One subscription: connect, subscribe, forward heads until the socket closes.
async fn subscribe_heads(url: &str, tx: &watch::Sender<u64>) -> Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (mut ws, _) =
        timed(format!("connect {url}"), tokio_tungstenite::connect_async(url)).await?;
    let req = r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;
    ws.send(Message::text(req)).await.map_err(|e| rpc_err("eth_subscribe", e))?;
    while let Some(msg) = ws.next().await {
        let text = match msg.map_err(|e| rpc_err("newHeads", e))? {
            Message::Text(t) => t,
            Message::Ping(p) => {
                ws.send(Message::Pong(p)).await.map_err(|e| rpc_err("newHeads", e))?;
                continue;
            }
            Message::Close(_) => return Ok(()),
            _ => continue,
        };
        let v: serde_json::Value =
            serde_json::from_str(text.as_str()).map_err(|e| rpc_err("newHeads", e))?;
        if let Some(err) = v.get("error") {
            return Err(rpc_err("eth_subscribe", err));
        }
        let number = v["params"]["result"]["number"]
            .as_str()
            .and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok());
        if let Some(n) = number {
            tx.send_replace(n);
        }
    }
    Ok(())
}
