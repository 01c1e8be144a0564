//! Payer side: open (or reuse) a channel to a metered agent and pay each call with the next
//! cumulative voucher.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::primitives::{Address, Bytes, U256};
use escrow_client::ReefClient;
use reef_agent_sdk::{Client, Event, Events, client::new_msg_id};
use reef_wire::{SendMessage, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Error, Result,
    protocol::{KIND_CALL, KIND_ERROR, KIND_RESULT, MeteredErrorMsg, MeteredResult, VoucherJson},
};

/// How to reach and pay an agent.
#[derive(Debug, Clone)]
pub struct PayerConfig {
    /// Node WebSocket URL.
    pub node: String,
    /// The metered agent.
    pub agent: Address,
    /// Price per call (base units).
    pub price: U256,
    /// Token (ZERO = ETH).
    pub token: Address,
    /// Deposit when opening, and top-up when the deposit runs out (base units).
    pub deposit: u128,
    /// Challenge period of a new channel (seconds).
    pub challenge_period: u32,
    /// Where the payer remembers channels and the cumulative amount signed.
    pub state_dir: PathBuf,
    /// How long to wait for an answer before re-sending the same call.
    pub timeout: Duration,
    /// Re-sends before giving up.
    pub retries: u32,
}

/// A channel as the payer remembers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerChannel {
    /// Channel id.
    pub channel_id: U256,
    /// The agent.
    pub agent: Address,
    /// Token.
    pub token: Address,
    /// IoA group with the agent.
    pub group_id: String,
    /// Highest cumulative amount signed and handed out.
    pub cumulative: U256,
    /// Deposit as last seen.
    pub deposit: U256,
}

/// The payer's state file (`channels.json`), written atomically.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PayerState {
    /// Keyed by `<agent>/<token>`.
    pub channels: BTreeMap<String, PayerChannel>,
}

impl PayerState {
    fn path(dir: &Path) -> PathBuf {
        dir.join("channels.json")
    }

    /// Loads (empty if missing).
    pub fn load(dir: &Path) -> Result<Self> {
        match std::fs::read(Self::path(dir)) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::Store(format!("{}: {e}", Self::path(dir).display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes atomically (temp file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("channels.json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(|e| Error::Store(e.to_string()))?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, Self::path(dir))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Key of a channel.
    pub fn key(agent: Address, token: Address) -> String {
        format!("{agent:#x}/{token:#x}")
    }
}

/// Outcome of a paid call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallOutcome {
    /// The call id.
    pub call_id: String,
    /// Whether the agent's program succeeded.
    pub ok: bool,
    /// Its result.
    pub result: Value,
    /// Cumulative amount paid on the channel after this call.
    pub cumulative: U256,
}

/// A payer bound to one agent and channel.
#[derive(Debug)]
pub struct Payer {
    chain: ReefClient,
    ioa: Client,
    events: Events,
    cfg: PayerConfig,
    ch: PayerChannel,
    state: PayerState,
    opened: bool,
}

/// How long a payer waits for a node that is not up before it gives up.
pub const NODE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

impl Payer {
    /// Connects to the node (waiting up to [`NODE_PATIENCE`] for one that is not up), reuses a usable channel from the state file or opens a new one,
    /// and sets up the IoA group with the agent.
    pub async fn open(chain: ReefClient, cfg: PayerConfig) -> Result<Self> {
        if cfg.price.is_zero() {
            return Err(Error::Invalid("price must be > 0".into()));
        }
        let (ioa, events) = Client::connect_waiting(
            &cfg.node,
            chain.signer().clone(),
            Default::default(),
            NODE_PATIENCE,
            |e, pause| {
                tracing::warn!(
                    "node {} is not up yet ({e}); retrying in {:.1} s",
                    cfg.node,
                    pause.as_secs_f32()
                )
            },
        )
        .await?;
        let mut state = PayerState::load(&cfg.state_dir)?;
        let key = PayerState::key(cfg.agent, cfg.token);
        let mut reuse = None;
        if let Some(prev) = state.channels.get(&key) {
            let ch = chain.channel(prev.channel_id).await?;
            if ch.payer == chain.address()
                && ch.payee == cfg.agent
                && ch.token == cfg.token
                && !ch.closed
                && ch.closeRequestedAt == 0
            {
                let mut p = prev.clone();
                p.cumulative = p.cumulative.max(U256::from(ch.redeemed));
                p.deposit = U256::from(ch.deposit);
                reuse = Some(p);
            }
        }
        let opened = reuse.is_none();
        let mut ch = match reuse {
            Some(p) => p,
            None => {
                let (id, _) = chain
                    .open_channel(cfg.agent, cfg.token, cfg.deposit, cfg.challenge_period)
                    .await?;
                PayerChannel {
                    channel_id: id,
                    agent: cfg.agent,
                    token: cfg.token,
                    group_id: String::new(),
                    cumulative: U256::ZERO,
                    deposit: U256::from(cfg.deposit),
                }
            }
        };
        let mut joined = false;
        if !ch.group_id.is_empty() {
            joined = ioa.join(&ch.group_id, None).await.is_ok();
        }
        if !joined {
            let g =
                ioa.create_group(&format!("metered {}", ch.channel_id), &[cfg.agent], None).await?;
            ioa.join(&g.group_id, Some(g.last_seq)).await?;
            ch.group_id = g.group_id;
        }
        state.channels.insert(key, ch.clone());
        state.save(&cfg.state_dir)?;
        Ok(Self { chain, ioa, events, cfg, ch, state, opened })
    }

    /// The channel in use.
    pub fn channel(&self) -> &PayerChannel {
        &self.ch
    }

    /// Whether [`Payer::open`] opened a new channel (false: reused one).
    pub fn opened_new_channel(&self) -> bool {
        self.opened
    }

    /// The chain client.
    pub fn chain(&self) -> &ReefClient {
        &self.chain
    }

    fn persist(&mut self) -> Result<()> {
        self.state
            .channels
            .insert(PayerState::key(self.cfg.agent, self.cfg.token), self.ch.clone());
        self.state.save(&self.cfg.state_dir)
    }

    /// Signs a voucher for `cumulative` on this channel.
    pub fn sign(&self, cumulative: U256) -> Result<(VoucherJson, Bytes)> {
        let (v, sig) = self.chain.sign_voucher(self.ch.channel_id, self.cfg.agent, cumulative)?;
        Ok((VoucherJson::from(&v), sig))
    }

    /// A `metered_call` body.
    pub fn call_body(&self, call_id: &str, input: &Value, v: &VoucherJson, sig: &Bytes) -> Value {
        json!({
            "kind": KIND_CALL, "call_id": call_id, "channel_id": v.channel_id,
            "input": input, "voucher": v, "signature": sig,
        })
    }

    /// Pays for and makes one call: signs `cumulative + price` (topping the deposit up first if
    /// needed), records it, sends it, waits for the answer (re-sending the same call on timeout).
    /// On refusal the signed amount is rolled back (the agent accepted nothing).
    pub async fn call(&mut self, input: Value) -> Result<CallOutcome> {
        let next = self.ch.cumulative + self.cfg.price;
        if next > self.ch.deposit {
            let top = self.cfg.deposit.max(self.cfg.price.saturating_to::<u128>());
            self.chain.deposit_channel(self.ch.channel_id, self.cfg.token, top).await?;
            self.ch.deposit = U256::from(self.chain.channel(self.ch.channel_id).await?.deposit);
        }
        let (v, sig) = self.sign(next)?;
        let prev = self.ch.cumulative;
        self.ch.cumulative = next;
        self.persist()?;
        let call_id = new_msg_id();
        let body = self.call_body(&call_id, &input, &v, &sig);
        match self.request(body, Some(&call_id)).await {
            Ok(reply) => match reply["kind"].as_str() {
                Some(KIND_RESULT) => {
                    let r: MeteredResult = serde_json::from_value(reply)
                        .map_err(|e| Error::Invalid(format!("bad metered_result: {e}")))?;
                    Ok(CallOutcome { call_id, ok: r.ok, result: r.result, cumulative: next })
                }
                _ => {
                    let e: MeteredErrorMsg = serde_json::from_value(reply)
                        .map_err(|e| Error::Invalid(format!("bad metered_error: {e}")))?;
                    self.ch.cumulative = prev;
                    self.persist()?;
                    Err(Error::Refused { code: e.code, message: e.message })
                }
            },
            Err(e) => Err(e),
        }
    }

    /// Sends any body into the group and waits for the agent's `metered_result` /
    /// `metered_error` naming `call_id` (None: an error without a call id). Re-sends (new
    /// `msg_id`, same body) on timeout.
    pub async fn request(&mut self, body: Value, call_id: Option<&str>) -> Result<Value> {
        for _ in 0..=self.cfg.retries {
            self.ioa
                .send_message(SendMessage {
                    group_id: self.ch.group_id.clone(),
                    msg_id: new_msg_id(),
                    state: State::Discussion,
                    task_desc: None,
                    body: Some(body.clone()),
                    extra: Default::default(),
                })
                .await?;
            let deadline = tokio::time::Instant::now() + self.cfg.timeout;
            loop {
                let ev = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                    Err(_) => break,
                    Ok(None) => return Err(Error::Node(reef_agent_sdk::Error::Closed)),
                    Ok(Some(ev)) => ev,
                };
                let Event::Message(m) = ev else { continue };
                if m.group_id != self.ch.group_id || m.sender_id != self.cfg.agent {
                    continue;
                }
                let Some(b) = m.body else { continue };
                let kind = b["kind"].as_str();
                if !matches!(kind, Some(KIND_RESULT) | Some(KIND_ERROR)) {
                    continue;
                }
                if b["call_id"].as_str() == call_id {
                    return Ok(b);
                }
            }
        }
        Err(Error::Timeout(self.cfg.agent, call_id.unwrap_or("-").to_owned()))
    }
}
