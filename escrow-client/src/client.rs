//! [`ReefClient`]: a typed, retrying client for Reef's contracts on one chain.
//!
//! Every write goes through one path ([`ReefClient::send_call`]): the fees come from the
//! client's last estimate (read again once it is older than [`ClientOptions::fee_ttl`] or a send
//! was refused as underpriced), the gas is estimated by the node on the latest block (a revert
//! at estimation is decoded into [`Revert`](crate::Revert)), the nonce follows the client's
//! last mined transaction (or the account's pending nonce is read, see
//! [`ClientOptions::nonce_ttl`]), the transaction is signed locally and sent. Where the RPC serves
//! `eth_sendRawTransactionSync` (EIP-7966) the send's answer is the receipt; otherwise it is
//! sent with retries on transport errors and its receipt polled. Either way it is then awaited
//! for the configured number of confirmations. Reads go through [`ReefClient::view`] with the
//! same retry policy.

use std::{sync::Arc, time::Duration};

use alloy::transports::http::reqwest;
use tokio::sync::Mutex;

use alloy::{
    eips::BlockId,
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{Filter, Log, TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolEvent},
    transports::{RpcError, TransportErrorKind},
};
use serde::Serialize;

use crate::{Deployment, Error, Result, RetryPolicy, Revert, fees::FeePolicy};

/// What a mined transaction cost and where it landed.
#[derive(Debug, Clone, Serialize)]
pub struct TxOutcome {
    /// Operation name (e.g. `postAndFund`).
    pub action: String,
    /// Transaction hash.
    pub hash: B256,
    /// Gas used as reported by the receipt.
    pub gas_used: u64,
    /// Block number it was mined in.
    pub block: u64,
    /// Logs emitted (not serialized).
    #[serde(skip)]
    pub logs: Vec<Log>,
}

impl TxOutcome {
    /// Decodes the first log of event `E` emitted by `from`.
    pub fn event<E: SolEvent>(&self, from: Address) -> Option<E> {
        self.logs
            .iter()
            .filter(|l| l.address() == from)
            .find_map(|l| E::decode_log_data(l.data()).ok())
    }
}

/// Options for [`ReefClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Retry policy for transport failures.
    pub retry: RetryPolicy,
    /// Confirmations to wait for after inclusion (1 = included).
    pub confirmations: u64,
    /// How long to wait for a receipt.
    pub tx_timeout: Duration,
    /// Retry policy of the first request (the chain-id check in [`ReefClient::connect`]).
    pub connect_retry: RetryPolicy,
    /// How long a fee estimate (`eth_feeHistory`) is reused for later sends. The estimate
    /// allows twice the base fee it saw, which covers several blocks of the largest base-fee
    /// rise; a send the node refuses as underpriced drops it and is signed again with fresh
    /// fees. `Duration::ZERO` asks for fees on every send.
    pub fee_ttl: Duration,
    /// Fee caps, and when a transaction that is not mined is replaced with higher fees.
    pub fees: FeePolicy,
    /// Send with `eth_sendRawTransactionSync` (EIP-7966) where the RPC serves it: the answer
    /// is the receipt, so no receipt is polled for (an RPC without it is asked once, then sent
    /// to the usual way). The client waits for that answer at most [`Self::tx_timeout`],
    /// [`Self::fees`]'s `replace_after` and 30 s, then polls and replaces as usual. Turn it off for a test
    /// that rewinds anvil (`evm_revert`) right after a send: anvil answers before it has pruned
    /// its pool, and the rewound chain then mines the transaction again.
    pub sync_send: bool,
    /// How long the nonce after this client's last mined transaction is used for its next
    /// send instead of reading the account's pending nonce (one JSON-RPC request less per
    /// transaction). A send refused for its nonce is signed again with the nonce read, and a
    /// transaction that is not mined in time is replaced and the gaps below it filled, so a
    /// nonce another process took, or a transaction a reorg dropped, costs a retry, not a
    /// lost send. Default 2 s, as [`Self::fee_ttl`]: the window in which another process's
    /// transaction still pending at the remembered nonce could be replaced by this one (a
    /// pending-nonce read has the same race, only shorter). `Duration::ZERO` reads the nonce
    /// for every send (a test that rewinds anvil with `evm_revert`, which drops mined
    /// transactions, wants that).
    pub nonce_ttl: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            confirmations: 1,
            tx_timeout: Duration::from_secs(120),
            connect_retry: RetryPolicy::quick(),
            fee_ttl: Duration::from_secs(2),
            fees: FeePolicy::default(),
            sync_send: true,
            nonce_ttl: Duration::from_secs(2),
        }
    }
}

/// What [`ReefClient::block_header`] reads of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHead {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// The parent block's hash.
    pub parent_hash: B256,
    /// Unix timestamp.
    pub timestamp: u64,
}

/// A client bound to one chain, one deployment and one signing key.
#[derive(Debug, Clone)]
pub struct ReefClient {
    provider: DynProvider,
    rpc_url: String,
    signer: PrivateKeySigner,
    deployment: Deployment,
    opts: ClientOptions,
    /// Serializes sends from this client and remembers its last fee estimate.
    send_state: Arc<Mutex<SendState>>,
}

/// What consecutive sends from one client reuse instead of asking the RPC every time.
///
/// The nonce is remembered only after a mined transaction, and for [`ClientOptions::nonce_ttl`]:
/// any doubt (a send refused for its nonce, a transaction not mined) reads it again. Either way
/// it is raised past this client's own transactions still on their way to the node
/// ([`SendState::in_flight`]): a synchronous send leaves the lock before the node has it.
#[derive(Debug, Default)]
struct SendState {
    /// The last fee estimate and when it was made.
    fees: Option<(std::time::Instant, u128, u128)>,
    /// Nonces of this client's transactions sent and not yet mined (or given up on). A lower
    /// nonce of the account that is neither mined nor here was left by another process (a
    /// crashed one): a gap that [`ReefClient::fill_gaps`] fills.
    in_flight: std::collections::BTreeSet<u64>,
    /// The chain id signatures are made for (read once, for the synchronous send).
    chain_id: Option<u64>,
    /// Whether the RPC serves `eth_sendRawTransactionSync` (`None`: not tried yet).
    sync: Option<bool>,
    /// The nonce after this client's last mined transaction, and when it was mined.
    next_nonce: Option<(std::time::Instant, u64)>,
}

/// How a send reached the node.
enum Sent {
    /// Accepted into its pool (at that instant): the receipt is to be polled for.
    Pending(B256, TransactionRequest, std::time::Instant),
    /// Mined: the synchronous send's answer.
    Mined(Box<TransactionReceipt>, TransactionRequest),
}

/// Whether the node does not know `eth_sendRawTransactionSync` (nothing was sent).
fn is_unsupported_method(err: &RpcError<TransportErrorKind>) -> bool {
    let RpcError::ErrorResp(payload) = err else { return false };
    let msg = payload.message.to_lowercase();
    payload.code == -32601
        || msg.contains("method not found")
        || msg.contains("does not exist")
        || msg.contains("not supported")
        || msg.contains("unsupported method")
}

/// Whether the node refused a send because its nonce or fees are stale, which a second try
/// with a fresh nonce and fresh fees fixes (another client of the same key took the same
/// nonce at the same time, or the base fee rose past the remembered estimate).
fn is_stale_send(err: &RpcError<TransportErrorKind>) -> bool {
    let RpcError::ErrorResp(payload) = err else { return false };
    if payload.as_revert_data().is_some() {
        return false;
    }
    let msg = payload.message.to_lowercase();
    ["nonce too low", "nonce too high", "underpriced", "less than block base fee"]
        .iter()
        .any(|needle| msg.contains(needle))
}

/// Whether the node already holds this very transaction (a replacement identical to one sent).
fn is_known(err: &RpcError<TransportErrorKind>) -> bool {
    let RpcError::ErrorResp(payload) = err else { return false };
    let msg = payload.message.to_lowercase();
    msg.contains("already known") || msg.contains("already imported")
}

/// Whether the node took a synchronous send into its pool but gave up waiting for it to be
/// mined, without naming the hash as EIP-7966 asks (anvil answers "Transaction confirmation
/// timeout" after 30 s, e.g. while a nonce below it is missing): the transaction is followed
/// by the hash signed here, not reported as refused.
fn is_confirmation_timeout(err: &RpcError<TransportErrorKind>) -> bool {
    let RpcError::ErrorResp(payload) = err else { return false };
    payload.message.to_lowercase().contains("confirmation timeout")
}

/// A wait for a transaction, with the nonce it held (to release from the in-flight set).
type Mined = std::result::Result<(TransactionReceipt, Option<u64>), (Error, Option<u64>)>;

/// The nonce of a mined (or failed) wait, for releasing it from the in-flight set.
fn sent_nonce(r: &Mined) -> Option<u64> {
    match r {
        Ok((_, n)) | Err((_, n)) => *n,
    }
}

/// Whether the node's error answer says the call reverted (with or without revert data).
fn is_revert(payload: &alloy::rpc::json_rpc::ErrorPayload) -> bool {
    payload.as_revert_data().is_some() || payload.message.to_lowercase().contains("revert")
}

/// A provider that signs with `signer`, estimates gas and reads the account's pending nonce
/// for every transaction. The fees are filled by [`ReefClient`] from its [`SendState`].
fn build_provider(url: reqwest::Url, signer: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer.clone()))
        .connect_client(
            alloy::rpc::client::ClientBuilder::default()
                .layer(crate::rpc_metrics::CountingLayer)
                .http(url),
        )
        .erased()
}

impl ReefClient {
    /// Connects to `rpc_url`, checks that it serves `deployment.chain_id`, and signs with `signer`.
    pub async fn connect(
        rpc_url: &str,
        signer: PrivateKeySigner,
        deployment: Deployment,
        opts: ClientOptions,
    ) -> Result<Self> {
        let me = Self::connect_unchecked(rpc_url, signer, deployment, opts)?;
        let p = me.provider.clone();
        let actual = me
            .opts
            .connect_retry
            .run(|| {
                let p = p.clone();
                async move { p.get_chain_id().await }
            })
            .await
            .map_err(|e| me.rpc_err(e))?;
        if actual != me.deployment.chain_id {
            return Err(Error::WrongChain { expected: me.deployment.chain_id, actual });
        }
        Ok(me)
    }

    /// Builds a client without contacting the RPC (no chain check); for probing the chain id.
    pub fn connect_unchecked(
        rpc_url: &str,
        signer: PrivateKeySigner,
        deployment: Deployment,
        opts: ClientOptions,
    ) -> Result<Self> {
        let url = rpc_url
            .parse()
            .map_err(|e| Error::InvalidInput(format!("RPC URL {rpc_url:?} is not a URL: {e}")))?;
        Ok(Self {
            provider: build_provider(url, &signer),
            rpc_url: rpc_url.to_string(),
            signer,
            deployment,
            opts,
            send_state: Arc::default(),
        })
    }

    /// A read-only client of `rpc_url` bound to no deployment and no real key, for asking the
    /// chain what it is (its id) before the signing client can be built.
    pub fn probe(rpc_url: &str, opts: ClientOptions) -> Result<Self> {
        Self::connect_unchecked(
            rpc_url,
            crate::devnet::dev_signer(0),
            crate::deploy::empty_deployment(0),
            opts,
        )
    }

    /// The chain id `rpc_url` reports (transport failures retried as `ClientOptions::default()`
    /// does).
    pub async fn chain_id_at(rpc_url: &str) -> Result<u64> {
        Self::probe(rpc_url, ClientOptions::default())?.chain_id_on_rpc().await
    }

    /// The chain id the RPC endpoint reports.
    pub async fn chain_id_on_rpc(&self) -> Result<u64> {
        self.rpc(|p| async move { p.get_chain_id().await }).await
    }

    /// The signing account.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The signing key (for EIP-712 signatures made by this account).
    pub fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }

    /// The deployment this client talks to.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The RPC endpoint.
    pub fn rpc_url(&self) -> &str {
        &self.rpc_url
    }

    /// The underlying provider (for reads not wrapped here).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The same client signing with another key.
    pub fn with_signer(&self, signer: PrivateKeySigner) -> Result<Self> {
        let url = self.rpc_url.parse().map_err(|e| Error::InvalidInput(format!("{e}")))?;
        let provider = build_provider(url, &signer);
        Ok(Self { provider, signer, send_state: Arc::default(), ..self.clone() })
    }

    /// Runs one RPC request under the client's retry policy (each attempt gets its own
    /// provider handle); the error is the transport's, for callers that classify it.
    async fn rpc_raw<T, F, Fut>(
        &self,
        op: F,
    ) -> std::result::Result<T, RpcError<TransportErrorKind>>
    where
        F: Fn(DynProvider) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RpcError<TransportErrorKind>>>,
    {
        self.opts.retry.run(|| op(self.provider.clone())).await
    }

    /// [`Self::rpc_raw`] with a failure reported as [`Error::Rpc`].
    async fn rpc<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(DynProvider) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RpcError<TransportErrorKind>>>,
    {
        self.rpc_raw(op).await.map_err(|e| self.rpc_err(e))
    }

    fn rpc_err(&self, source: RpcError<TransportErrorKind>) -> Error {
        Error::Rpc { url: self.rpc_url.clone(), source }
    }

    /// Maps an RPC error from sending or estimating `action` to a typed error.
    fn classify(&self, action: &str, err: RpcError<TransportErrorKind>) -> Error {
        if let RpcError::ErrorResp(payload) = &err {
            if let Some(data) = payload.as_revert_data() {
                return Error::Revert { action: action.to_string(), revert: Revert::decode(&data) };
            }
            let msg = payload.message.to_string();
            let lower = msg.to_lowercase();
            // With the fees set, a node estimating gas caps it at balance ÷ fee, so an account
            // that cannot pay for gas hears "gas required exceeds allowance" (the message is
            // kept, which shows the cap).
            if lower.contains("insufficient funds")
                || lower.contains("insufficient balance for transfer")
                || lower.contains("gas required exceeds allowance")
            {
                return Error::InsufficientFunds {
                    account: self.address(),
                    action: action.to_string(),
                    message: msg,
                };
            }
            if is_revert(payload) {
                return Error::Revert {
                    action: action.to_string(),
                    revert: Revert::Unknown(Bytes::new()),
                };
            }
            return Error::RpcRejected {
                url: self.rpc_url.clone(),
                what: action.to_string(),
                message: msg,
            };
        }
        self.rpc_err(err)
    }

    /// Reads a view function.
    pub async fn view<C: SolCall>(&self, to: Address, call: C) -> Result<C::Return> {
        let tx = TransactionRequest::default().with_to(to).with_input(call.abi_encode());
        let out = self
            .rpc_raw(|p| {
                let tx = tx.clone();
                // The latest block, not "pending" (see `sign_and_send`): a read after a mined
                // transaction sees it, and a node with a long queue is not made to run it.
                async move { p.call(tx).block(BlockId::latest()).await }
            })
            .await
            .map_err(|e| self.classify(C::SIGNATURE, e))?;
        C::abi_decode_returns(&out)
            .map_err(|e| Error::Decode { what: C::SIGNATURE.to_string(), reason: e.to_string() })
    }

    /// Sends `call` to `to` with `value` wei and waits for the receipt.
    pub async fn send_call<C: SolCall>(
        &self,
        action: &str,
        to: Address,
        call: &C,
        value: U256,
    ) -> Result<TxOutcome> {
        let tx = TransactionRequest::default()
            .with_from(self.address())
            .with_to(to)
            .with_input(call.abi_encode())
            .with_value(value);
        self.send_tx(action, tx).await
    }

    /// Sends `amount` wei of native ETH to `to`.
    pub async fn send_eth(&self, to: Address, amount: U256) -> Result<TxOutcome> {
        let tx =
            TransactionRequest::default().with_from(self.address()).with_to(to).with_value(amount);
        self.send_tx("send ETH", tx).await
    }

    /// Deploys creation `code` (bytecode ++ abi-encoded constructor args); returns the address.
    pub async fn deploy(&self, action: &str, code: Bytes) -> Result<(Address, TxOutcome)> {
        let tx = TransactionRequest::default().with_from(self.address()).with_deploy_code(code);
        let (outcome, receipt) = self.send_tx_receipt(action, tx).await?;
        let addr = receipt.contract_address.ok_or_else(|| Error::Decode {
            what: action.to_string(),
            reason: "receipt carries no contract address".into(),
        })?;
        Ok((addr, outcome))
    }

    async fn send_tx(&self, action: &str, tx: TransactionRequest) -> Result<TxOutcome> {
        self.send_tx_receipt(action, tx).await.map(|(o, _)| o)
    }

    async fn send_tx_receipt(
        &self,
        action: &str,
        tx: TransactionRequest,
    ) -> Result<(TxOutcome, TransactionReceipt)> {
        let mined = match self.sign_and_send(action, tx).await? {
            Sent::Pending(hash, sent, at) => self.await_mined(action, sent, hash, at).await,
            Sent::Mined(receipt, sent) => match self.await_confirmations(action, *receipt).await {
                Ok(r) => Ok((r, sent.nonce)),
                Err(e) => Err((e, sent.nonce)),
            },
        };
        if let Some(nonce) = sent_nonce(&mined) {
            let mut state = self.send_state.lock().await;
            state.in_flight.remove(&nonce);
            state.next_nonce = match (&mined, state.next_nonce) {
                // Mined (reverted or not): the nonce is used up; a later one may be already.
                (Ok(_), next) => Some((
                    std::time::Instant::now(),
                    next.map_or(nonce + 1, |(_, n)| n.max(nonce + 1)),
                )),
                // Not mined in time, or not confirmed: read the nonce again.
                (Err(_), _) => None,
            };
        }
        let receipt = mined.map(|(r, _)| r).map_err(|(e, _)| e)?;
        let hash = receipt.transaction_hash;
        if !receipt.status() {
            return Err(Error::TxReverted { action: action.to_string(), hash });
        }
        let outcome = TxOutcome {
            action: action.to_string(),
            hash,
            gas_used: receipt.gas_used,
            block: receipt.block_number.unwrap_or_default(),
            logs: receipt.inner.logs().to_vec(),
        };
        tracing::info!(action, %hash, gas = outcome.gas_used, "transaction mined");
        Ok((outcome, receipt))
    }

    /// Fills the fees from this client's [`SendState`] (estimating them when it has none or
    /// they are older than the TTL), estimates the gas on the latest block (a revert there is
    /// decoded), takes the nonce (remembered, or read), signs and sends. The state's lock is held until the node
    /// accepted the transaction, so the next send from this client sees it as pending. A send
    /// refused for a stale nonce or fee is tried once more with both read again.
    /// [`SendState::next_nonce`] is set by [`Self::send_tx_receipt`] once a send is mined.
    async fn sign_and_send(&self, action: &str, tx: TransactionRequest) -> Result<Sent> {
        let mut state = self.send_state.lock().await;
        let mut second_try = false;
        loop {
            // The nonce is read here (not by the provider's filler) so that a replacement can
            // be signed at the same one; past this client's sends the node may not have yet.
            let me = self.address();
            let remembered = state
                .next_nonce
                .filter(|(at, _)| !second_try && at.elapsed() < self.opts.nonce_ttl)
                .map(|(_, n)| n);
            let read = match remembered {
                Some(n) => n,
                None => {
                    self.rpc(|p| async move { p.get_transaction_count(me).pending().await }).await?
                }
            };
            let nonce = state.in_flight.last().map_or(read, |&n| read.max(n + 1));
            let fresh = |at: &std::time::Instant| at.elapsed() < self.opts.fee_ttl;
            let fees = match state.fees {
                Some((at, max_fee, tip)) if fresh(&at) => Some((max_fee, tip)),
                _ => {
                    let est =
                        self.rpc_raw(|p| async move { p.estimate_eip1559_fees().await }).await;
                    match est {
                        Ok(est) => {
                            let mut fees = (est.max_fee_per_gas, est.max_priority_fee_per_gas);
                            if second_try {
                                // Refused as underpriced: also cover twice the latest block's
                                // own base fee (a node's fee history can lag its newest block).
                                let base = self.block_base_fee().await?.unwrap_or_default();
                                fees.0 = fees.0.max(base.saturating_mul(2).saturating_add(fees.1));
                            }
                            state.fees = Some((std::time::Instant::now(), fees.0, fees.1));
                            Some(self.opts.fees.capped(fees))
                        }
                        // A chain without EIP-1559 fees: the gas filler prices it (legacy).
                        Err(RpcError::UnsupportedFeature(_)) => None,
                        Err(e) => return Err(self.rpc_err(e)),
                    }
                }
            };
            let mut tx = tx.clone().with_nonce(nonce);
            if let Some((max_fee, tip)) = fees.map(|f| self.opts.fees.capped(f)) {
                tx = tx.with_max_fee_per_gas(max_fee).with_max_priority_fee_per_gas(tip);
            }
            let gas = match self.estimate_gas(&tx).await {
                Ok(gas) => gas,
                Err(e) if !second_try && is_stale_send(&e) => {
                    tracing::debug!(action, error = %e, "stale nonce or fees; signing again");
                    state.fees = None;
                    state.next_nonce = None;
                    second_try = true;
                    continue;
                }
                Err(e) => return Err(self.classify(action, e)),
            };
            let tx = tx.with_gas_limit(gas);
            if self.opts.sync_send && state.sync != Some(false) && fees.is_some() {
                let chain_id = match state.chain_id {
                    Some(id) => id,
                    None => {
                        let id = self.chain_id_on_rpc().await?;
                        state.chain_id = Some(id);
                        id
                    }
                };
                // The node gets it after the lock is left: the next send skips its nonce.
                state.in_flight.insert(nonce);
                drop(state);
                let sent = self.send_sync(action, tx.with_chain_id(chain_id)).await;
                state = self.send_state.lock().await;
                match sent {
                    Ok(Some(sent)) => return Ok(sent),
                    Ok(None) => {
                        // No such method here: nothing was sent; from now on the usual way.
                        state.in_flight.remove(&nonce);
                        state.sync = Some(false);
                        continue;
                    }
                    Err(e) if !second_try && is_stale_send(&e) => {
                        tracing::debug!(action, error = %e, "stale nonce or fees; signing again");
                        state.in_flight.remove(&nonce);
                        state.fees = None;
                        state.next_nonce = None;
                        second_try = true;
                        continue;
                    }
                    Err(e) => {
                        state.in_flight.remove(&nonce);
                        return Err(self.classify(action, e));
                    }
                }
            }
            // The error, and whether the send was retried after a transport failure: then the
            // first attempt may have reached the node, and a "nonce too low" can mean our own
            // transaction, so no second one is signed.
            let sent = async {
                let signed = tx.clone();
                let attempts = std::sync::atomic::AtomicU32::new(0);
                let sent = self
                    .rpc_raw(|p| {
                        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let tx = tx.clone();
                        async move { p.send_transaction(tx).await }
                    })
                    .await;
                sent.map(|p| (*p.tx_hash(), signed)).map_err(|e| (e, attempts.into_inner() > 1))
            }
            .await;
            match sent {
                Ok((hash, signed)) => {
                    state.in_flight.insert(nonce);
                    return Ok(Sent::Pending(hash, signed, std::time::Instant::now()));
                }
                Err((e, false)) if !second_try && is_stale_send(&e) => {
                    tracing::debug!(action, error = %e, "stale nonce or fees; signing again");
                    state.fees = None;
                    state.next_nonce = None;
                    second_try = true;
                }
                Err((e, _)) => return Err(self.classify(action, e)),
            }
        }
    }

    /// Signs `tx` (complete: nonce, gas, fees, chain id) here and sends it with
    /// `eth_sendRawTransactionSync`, once (no retry: a repeat of a send that reached the node
    /// would be refused as known or stale). `Ok(None)`: the node does not serve the method and
    /// nothing was sent. A send whose answer does not come (the node's own timeout, a transport
    /// failure, or longer than the wait allowed here) may have reached the node: it is then
    /// [`Sent::Pending`] under the hash signed here, polled and replaced as any other. An error
    /// is the node's refusal of the transaction.
    async fn send_sync(
        &self,
        action: &str,
        tx: TransactionRequest,
    ) -> std::result::Result<Option<Sent>, RpcError<TransportErrorKind>> {
        use alloy::{eips::eip2718::Encodable2718, network::NetworkTransactionBuilder};
        let wallet = EthereumWallet::from(self.signer.clone());
        let envelope = tx.clone().with_from(self.address()).build(&wallet).await.map_err(|e| {
            RpcError::local_usage_str(&format!("cannot sign the transaction for {action}: {e}"))
        })?;
        let hash = *envelope.tx_hash();
        let raw = envelope.encoded_2718();
        // Within the time a receipt is awaited and before a replacement would be due.
        let mut wait = self.opts.tx_timeout.min(Duration::from_secs(30));
        if !self.opts.fees.replace_after.is_zero() {
            wait = wait.min(self.opts.fees.replace_after);
        }
        let sent_at = std::time::Instant::now();
        let answer =
            tokio::time::timeout(wait, self.provider.send_raw_transaction_sync(&raw)).await;
        let pending = || Ok(Some(Sent::Pending(hash, tx.clone(), sent_at)));
        match answer {
            Ok(Ok(receipt)) => {
                self.send_state.lock().await.sync = Some(true);
                Ok(Some(Sent::Mined(Box::new(receipt), tx)))
            }
            Ok(Err(e)) if is_unsupported_method(&e) => Ok(None),
            // Sent, not mined within the node's wait (EIP-7966 names the hash; anvil only
            // says so), or the node holds it already: follow it by its hash.
            Ok(Err(e))
                if e.tx_hash_data().is_some() || is_known(&e) || is_confirmation_timeout(&e) =>
            {
                pending()
            }
            Ok(Err(e @ RpcError::ErrorResp(_))) => Err(e),
            // A transport failure or no answer in time: it may be in the pool.
            Ok(Err(e)) => {
                tracing::debug!(action, %hash, error = %e, "synchronous send unanswered; polling");
                pending()
            }
            Err(_) => {
                tracing::debug!(action, %hash, waited_ms = wait.as_millis() as u64, "synchronous send still waiting; polling");
                pending()
            }
        }
    }

    /// Gas for `tx`, estimated on the latest block rather than alloy's default "pending": a
    /// node builds the pending block by executing every queued transaction first, so under a
    /// burst each estimate re-ran the whole pool (anvil's CPU per bounty grew several times
    /// over). What reverts there is estimated again on "pending", whose block time is now: a
    /// call that only became valid with time (a take-over after the due time, a refund after
    /// the deadline) must not be refused because the chain's last block is old.
    async fn estimate_gas(
        &self,
        tx: &TransactionRequest,
    ) -> std::result::Result<u64, RpcError<TransportErrorKind>> {
        let on = |block: BlockId| {
            self.rpc_raw(move |p| {
                let tx = tx.clone();
                async move { p.estimate_gas(tx).block(block).await }
            })
        };
        match on(BlockId::latest()).await {
            Err(RpcError::ErrorResp(e)) if is_revert(&e) => on(BlockId::pending()).await,
            other => other,
        }
    }

    /// Waits for one of the signings of `tx` (first sent as `first`, at `started`) to be mined,
    /// then for the configured confirmations. Polls at once, then backs off to 1 s. A transaction not
    /// mined within the fee policy's `replace_after` is signed again at the same nonce with
    /// higher fees (within the caps), and nonces below it that no transaction of this client
    /// holds are filled (a gap left by a crashed process would hold it back forever).
    async fn await_mined(
        &self,
        action: &str,
        mut tx: TransactionRequest,
        first: B256,
        started: std::time::Instant,
    ) -> Mined {
        let nonce = tx.nonce;
        let err = |e: Error| (e, nonce);
        let deadline = started + self.opts.tx_timeout;
        let mut hashes = vec![first];
        let mut last_send = started;
        let mut pause = Duration::from_millis(10);
        let mut capped_warned = false;
        loop {
            for &hash in hashes.iter().rev() {
                let r = self
                    .rpc(|p| async move { p.get_transaction_receipt(hash).await })
                    .await
                    .map_err(err)?;
                if let Some(r) = r {
                    let r = self.await_confirmations(action, r).await.map_err(err)?;
                    return Ok((r, nonce));
                }
            }
            let now = std::time::Instant::now();
            if now > deadline {
                return Err(err(Error::Timeout {
                    action: action.to_string(),
                    hash: *hashes.last().unwrap_or(&first),
                    waited: self.opts.tx_timeout,
                }));
            }
            let every = self.opts.fees.replace_after;
            if !every.is_zero()
                && now.duration_since(last_send) >= every
                && let (Some(n), Some(max_fee), Some(tip)) =
                    (nonce, tx.max_fee_per_gas, tx.max_priority_fee_per_gas)
            {
                last_send = now;
                self.fill_gaps(n).await.map_err(err)?;
                let fresh = self.fresh_fees().await.map_err(err)?;
                match self.opts.fees.replacement((max_fee, tip), fresh) {
                    Some((new_max, new_tip)) => {
                        let next = tx
                            .clone()
                            .with_max_fee_per_gas(new_max)
                            .with_max_priority_fee_per_gas(new_tip);
                        let sent = self
                            .rpc_raw(|p| {
                                let next = next.clone();
                                async move { p.send_transaction(next).await }
                            })
                            .await;
                        match sent {
                            Ok(p) => {
                                tracing::warn!(
                                    action,
                                    nonce = n,
                                    old_max_fee = max_fee,
                                    new_max_fee = new_max,
                                    new_tip,
                                    waited_ms = now.duration_since(started).as_millis() as u64,
                                    "transaction not mined in time: replaced with higher fees"
                                );
                                hashes.push(*p.tx_hash());
                                tx = next;
                            }
                            // An earlier signing was mined meanwhile, or the node still holds
                            // one it prefers: keep polling the hashes sent.
                            Err(e) if is_stale_send(&e) || is_known(&e) => {}
                            Err(e) => return Err(err(self.classify(action, e))),
                        }
                    }
                    None if !capped_warned => {
                        capped_warned = true;
                        tracing::warn!(
                            action,
                            nonce = n,
                            max_fee,
                            "transaction not mined and the fee caps leave no room to replace it; waiting"
                        );
                    }
                    None => {}
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// The fees a send would get now (uncapped; the policy caps them).
    async fn fresh_fees(&self) -> Result<(u128, u128)> {
        let est = self
            .rpc_raw(|p| async move { p.estimate_eip1559_fees().await })
            .await
            .map_err(|e| self.rpc_err(e))?;
        let base = self.block_base_fee().await?.unwrap_or_default();
        let tip = est.max_priority_fee_per_gas;
        Ok((est.max_fee_per_gas.max(base.saturating_mul(2).saturating_add(tip)), tip))
    }

    /// Fills the account's nonces below `nonce` that are neither mined nor held by one of this
    /// client's transactions with a zero-value transfer to itself, priced to be mined (and to
    /// replace whatever another process left at that nonce). Returns how many it sent.
    pub async fn fill_gaps(&self, nonce: u64) -> Result<usize> {
        let me = self.address();
        let mined = self.rpc(|p| async move { p.get_transaction_count(me).latest().await }).await?;
        if mined >= nonce {
            return Ok(0);
        }
        let owned = self.send_state.lock().await.in_flight.clone();
        let (max_fee, tip) = self.fresh_fees().await?;
        // Twice the estimate: above anything a crashed process priced at an older base fee.
        let (max_fee, tip) =
            self.opts.fees.capped((max_fee.saturating_mul(2), tip.saturating_mul(2).max(1)));
        let mut sent = 0;
        for n in (mined..nonce).filter(|n| !owned.contains(n)) {
            let fill = TransactionRequest::default()
                .with_from(me)
                .with_to(me)
                .with_value(U256::ZERO)
                .with_nonce(n)
                .with_gas_limit(21_000)
                .with_max_fee_per_gas(max_fee)
                .with_max_priority_fee_per_gas(tip);
            let r = self
                .rpc_raw(|p| {
                    let fill = fill.clone();
                    async move { p.send_transaction(fill).await }
                })
                .await;
            match r {
                Ok(p) => {
                    sent += 1;
                    tracing::warn!(nonce = n, hash = %p.tx_hash(), "nonce gap (left by an earlier process): filled with a zero-value transfer to self");
                }
                Err(e) if is_stale_send(&e) || is_known(&e) => {}
                Err(e) => return Err(self.classify("fill a nonce gap", e)),
            }
        }
        Ok(sent)
    }

    /// Waits until `receipt`'s block has the configured confirmations and checks the
    /// transaction is still in the chain (a reorg may drop it: then [`Error::Timeout`] says to
    /// check before retrying).
    async fn await_confirmations(
        &self,
        action: &str,
        receipt: TransactionReceipt,
    ) -> Result<TransactionReceipt> {
        if self.opts.confirmations <= 1 {
            return Ok(receipt);
        }
        let hash = receipt.transaction_hash;
        let Some(block) = receipt.block_number else { return Ok(receipt) };
        let want = block + self.opts.confirmations - 1;
        let deadline = std::time::Instant::now() + self.opts.tx_timeout;
        loop {
            if self.block_number().await? >= want {
                let again =
                    self.rpc(|p| async move { p.get_transaction_receipt(hash).await }).await?;
                if let Some(r) = again {
                    return Ok(r);
                }
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::Timeout {
                    action: action.to_string(),
                    hash,
                    waited: self.opts.tx_timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Fetches logs matching `filter`, with retries.
    pub async fn logs(&self, filter: &Filter) -> Result<Vec<Log>> {
        self.rpc(|p| {
            let f = filter.clone();
            async move { p.get_logs(&f).await }
        })
        .await
    }

    /// Native balance of `who`.
    pub async fn eth_balance(&self, who: Address) -> Result<U256> {
        self.rpc(|p| async move { p.get_balance(who).await }).await
    }

    /// Latest block number.
    pub async fn block_number(&self) -> Result<u64> {
        self.rpc(|p| async move { p.get_block_number().await }).await
    }

    /// Timestamp of the latest block.
    pub async fn chain_time(&self) -> Result<u64> {
        let head = self.block_header(alloy::eips::BlockNumberOrTag::Latest).await?;
        head.map(|h| h.timestamp).ok_or_else(|| Error::Decode {
            what: "latest block".into(),
            reason: "node returned none".into(),
        })
    }

    /// Number, hash, parent hash and timestamp of the block `tag` names (`None` if the node
    /// has no such block), with retries.
    pub async fn block_header(
        &self,
        tag: alloy::eips::BlockNumberOrTag,
    ) -> Result<Option<BlockHead>> {
        let block = self.rpc(|p| async move { p.get_block_by_number(tag).await }).await?;
        Ok(block.map(|b| BlockHead {
            number: b.header.number,
            hash: b.header.hash,
            parent_hash: b.header.parent_hash,
            timestamp: b.header.timestamp,
        }))
    }

    /// Base fee of the latest block (`None` before EIP-1559).
    async fn block_base_fee(&self) -> Result<Option<u128>> {
        let tag = alloy::eips::BlockNumberOrTag::Latest;
        let block = self.rpc(|p| async move { p.get_block_by_number(tag).await }).await?;
        Ok(block.and_then(|b| b.header.base_fee_per_gas).map(u128::from))
    }

    /// Whether code is deployed at `addr`.
    pub async fn has_code(&self, addr: Address) -> Result<bool> {
        let code = self.rpc(|p| async move { p.get_code_at(addr).await }).await?;
        Ok(!code.is_empty())
    }
}
