//! The marketplace side: bids on calls for proposals, enters contests, submits for poster
//! review, collects payment with the verdict's attestation, evaluates as a panel member, and
//! redeems pledge credits.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::Duration,
};

use alloy_primitives::{Address, B256, Bytes, U256};
use escrow_client::{
    Status,
    bindings::escrow::IBountyTypes::Bounty,
    escrow::{BidJson, RecordJson},
};
use reef_agent_sdk::Client;
use reef_wire::{State, TaskDesc, TaskMode};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::{
    Error, EvalRequest, Event, Result, Task, api::ApiError, api::NodeApi, builder::Config, id_hex,
    parse_id, result_hash,
};

/// A price computed per call for proposals (smallest unit; `None` = no bid).
pub type PriceFn = Arc<dyn Fn(&Cfp) -> Option<u128> + Send + Sync>;

/// How a bid is priced.
#[derive(Clone, Default)]
pub enum BidPolicy {
    /// Ask the whole budget.
    #[default]
    FullBudget,
    /// Ask this many whole token units (`"4"`, `"0.25"`, in the token's decimals); skip
    /// bounties whose budget is below it.
    Fixed(String),
    /// Ask what the function returns, in the token's smallest unit (`None` = no bid). A price
    /// above the budget is not bid.
    Custom(PriceFn),
    /// Like `Custom`, for a decision that takes time (an LLM, a quote service): the future's
    /// price in the token's smallest unit, `None` = no bid.
    Asking(AskFn),
}

/// An asynchronous price decision ([`BidPolicy::Asking`]).
pub type AskFn = Arc<dyn Fn(Cfp) -> crate::BoxFuture<Option<u128>> + Send + Sync>;

impl BidPolicy {
    /// A fixed price in whole token units (`"4"`, `"0.25"`).
    pub fn fixed(units: impl Into<String>) -> Self {
        Self::Fixed(units.into())
    }

    /// A price decided asynchronously per call for proposals (smallest unit; `None` = no bid).
    pub fn asking(
        f: impl Fn(Cfp) -> crate::BoxFuture<Option<u128>> + Send + Sync + 'static,
    ) -> Self {
        Self::Asking(Arc::new(f))
    }

    /// A price computed per call for proposals (smallest unit; `None` = no bid).
    pub fn custom(f: impl Fn(&Cfp) -> Option<u128> + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }
}

impl std::fmt::Debug for BidPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FullBudget => f.write_str("FullBudget"),
            Self::Fixed(p) => f.debug_tuple("Fixed").field(p).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
            Self::Asking(_) => f.write_str("Asking(..)"),
        }
    }
}

/// A call for proposals, as a bid policy and a handler see it.
#[derive(Debug, Clone)]
pub struct Cfp {
    /// The bounty.
    pub bounty_id: U256,
    /// The budget (the record's amount), in the token's smallest unit.
    pub budget: u128,
    /// The payment token (zero = ETH).
    pub token: Address,
    /// The token's decimals when the policy needed them (fixed and custom prices).
    pub decimals: Option<u8>,
    /// The skills the poster asked for.
    pub skills: Vec<String>,
    /// The task description.
    pub description: String,
    /// The poster's input.
    pub input: Value,
    /// The bounty's deadline (unix seconds).
    pub deadline: u64,
    /// The whole call for proposals as the node sent it.
    pub raw: Value,
}

fn malformed(what: &'static str) -> impl Fn(serde_json::Error) -> Error {
    move |e| Error::Malformed { what, reason: e.to_string() }
}

fn record_of(v: &Value, what: &'static str) -> Result<Bounty> {
    let record: RecordJson =
        serde_json::from_value(v["record"].clone()).map_err(malformed(what))?;
    Ok(Bounty::try_from(&record)?)
}

/// The marketplace side of an earning agent.
#[derive(Clone)]
pub(crate) struct Bidder {
    cfg: Arc<Config>,
    api: NodeApi,
    pub(crate) chain: escrow_client::ReefClient,
    pub(crate) evaluator: Option<Address>,
    /// Token decimals, read once per token.
    decimals: Arc<Mutex<HashMap<Address, u8>>>,
    /// Whether a token is a pledge token, learnt with its decimals.
    pledge_kind: Arc<Mutex<HashMap<Address, bool>>>,
    /// Nonces of this run's bids.
    nonces: Arc<escrow_client::signing::BidNonces>,
    /// Pledge tokens this agent may hold credits in (sub-bounties it was paid for, or funded
    /// from its own rewards); redeemed in the background once their parent settles.
    pledges: Arc<Mutex<HashSet<Address>>>,
    /// Set once the background redeemer runs.
    redeemer: Arc<AtomicBool>,
}

impl Bidder {
    pub(crate) async fn connect(cfg: Arc<Config>, rpc: &str) -> Result<Self> {
        let mut api = NodeApi::new(&cfg.node);
        let info = api.get("/v1/market/info").await?;
        let deployment: escrow_client::Deployment =
            serde_json::from_value(info["deployment"].clone()).map_err(malformed("deployment"))?;
        let chain = escrow_client::ReefClient::connect(
            rpc,
            cfg.signer.clone(),
            deployment,
            Default::default(),
        )
        .await?;
        api.login(&cfg.signer).await?;
        let evaluator = info["evaluator"].as_str().and_then(|s| s.parse().ok());
        Ok(Self {
            cfg,
            api,
            chain,
            evaluator,
            decimals: Default::default(),
            pledge_kind: Default::default(),
            nonces: Default::default(),
            pledges: Default::default(),
            redeemer: Default::default(),
        })
    }

    /// Remembers a pledge token to redeem this agent's credits in once its parent settles, and
    /// starts the background redeemer if it is not running.
    fn watch_pledge(&self, token: Address) {
        if let Ok(mut p) = self.pledges.lock() {
            p.insert(token);
        }
        if !self.redeemer.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let me = self.clone();
            tokio::spawn(async move { me.redeem_pledges().await });
        }
    }

    /// Every 2 s: redeems the credits of each watched pledge whose parent settled, and forgets
    /// the pledges that were redeemed or turned out void.
    async fn redeem_pledges(self) {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let tokens: Vec<_> =
                self.pledges.lock().map(|p| p.iter().copied().collect()).unwrap_or_default();
            for token in tokens {
                match self.redeem_pledge(token).await {
                    Ok(true) => {
                        if let Ok(mut p) = self.pledges.lock() {
                            p.remove(&token);
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.cfg.warn(format!("pledge {token}: redeeming failed, retrying: {e}"))
                    }
                }
            }
        }
    }

    /// Redeems this agent's credits in `token` if its parent settled; true once nothing is
    /// left to wait for (redeemed, void, or no credits after the settlement).
    async fn redeem_pledge(&self, token: Address) -> Result<bool> {
        use escrow_client::pledge::PledgeState;
        let Some(p) = self.chain.pledge(token).await? else { return Ok(true) };
        if p.state == PledgeState::Pending {
            return Ok(false);
        }
        let credit = self.chain.ledger_credit(token, self.chain.address()).await?;
        if credit.is_zero() {
            return Ok(true);
        }
        if p.state == PledgeState::Void {
            self.cfg.emit(Event::PledgeVoid {
                token,
                parent: p.parent,
                parent_status: p.parent_status.to_string(),
                provider: p.provider,
                credit,
            });
            return Ok(true);
        }
        let tx = self.chain.redeem_read_pledge(&p, credit).await?;
        self.cfg.emit(Event::Redeemed {
            token,
            credit,
            parent: p.parent,
            value: p.value_of(credit),
            underlying: p.underlying,
            tx: tx.hash,
        });
        // A nested pledge pays in the parent's own pledge token: redeem that one next.
        if self.chain.pledge(p.underlying).await?.is_some() {
            self.watch_pledge(p.underlying);
        }
        Ok(true)
    }

    pub(crate) fn on_cfp(&self, cfp: &Value) {
        if cfp["record"]["mode"] == 1 {
            self.enter_contest(cfp);
            return;
        }
        // Bid in the background: a burst of calls for proposals must not queue behind each
        // other (or behind this agent's own work).
        let (me, cfp) = (self.clone(), cfp.clone());
        tokio::spawn(
            async move {
                if let Err(e) = me.bid(&cfp).await {
                    me.cfg.emit(Event::NoBid {
                        bounty: cfp["bounty_id"].as_str().unwrap_or("?").to_string(),
                        reason: e.to_string(),
                    });
                }
            }
            .instrument(tracing::Span::current()),
        );
    }

    async fn token_decimals(&self, token: Address) -> Result<u8> {
        if token.is_zero() {
            return Ok(18);
        }
        if let Some(d) = self.decimals.lock().ok().and_then(|m| m.get(&token).copied()) {
            return Ok(d);
        }
        let asked = self
            .chain
            .view(token, escrow_client::bindings::token::ReefTestToken::decimalsCall {})
            .await;
        let pledge = asked.is_err();
        let d = match asked {
            Ok(d) => d,
            // A sub-bounty funded from a reward is paid in a pledge token (no code): its amounts
            // are in the units of the real token behind it.
            Err(e) => match self.chain.underlying_token(token).await? {
                real if real == token => return Err(e.into()),
                real if real.is_zero() => 18,
                real => {
                    self.chain
                        .view(real, escrow_client::bindings::token::ReefTestToken::decimalsCall {})
                        .await?
                }
            },
        };
        self.remember_token(token, d, pledge);
        Ok(d)
    }

    /// Caches a token's decimals and whether it is a pledge token.
    fn remember_token(&self, token: Address, decimals: u8, pledge: bool) {
        if let Ok(mut m) = self.decimals.lock() {
            m.insert(token, decimals);
        }
        if let Ok(mut m) = self.pledge_kind.lock() {
            m.insert(token, pledge);
        }
    }

    async fn bid(&self, cfp: &Value) -> Result<()> {
        let wanted: Vec<String> = serde_json::from_value(cfp["skills"].clone()).unwrap_or_default();
        // The card's skills, without the `evaluate` the evaluator role adds.
        if let Some(missing) = wanted.iter().find(|w| !self.cfg.bid_skills.contains(w)) {
            return Err(Error::Declined(format!("lacks skill {missing:?}")));
        }
        let record = record_of(cfp, "cfp record")?;
        let id = parse_id(cfp["bounty_id"].as_str().unwrap_or_default())?;
        // Paid in pledge credits? The call for proposals names the parent (checked against
        // the token below); a token it does not explain must be ETH, an ERC-20, or a pledge
        // the escrow already knows.
        let named = cfp["from_reward"].as_str().map(parse_id).transpose()?;
        let parent = match named {
            Some(p) => Some(p),
            None => self.unnamed_pledge(record.token).await?,
        };
        if let Some(parent) = parent {
            if self.cfg.no_pledges {
                return Err(Error::Declined(format!(
                    "paid in pledge credits on bounty {parent:#x}; this agent runs with --no-pledges"
                )));
            }
            self.check_pledge_backing(&record, parent).await?;
        }
        let budget = record.amount;
        let mut view = Cfp {
            bounty_id: id,
            budget,
            token: record.token,
            decimals: None,
            skills: wanted,
            description: cfp["description"].as_str().unwrap_or_default().to_string(),
            input: cfp["input"].clone(),
            deadline: record.deadline,
            raw: cfp.clone(),
        };
        self.cfg.handler.check(&view).map_err(Error::Declined)?;
        let price = match &self.cfg.bid {
            crate::BidPolicy::FullBudget => budget,
            crate::BidPolicy::Fixed(p) => {
                let decimals = self.token_decimals(record.token).await?;
                let want: u128 = crate::parse_amount(p, decimals)?
                    .try_into()
                    .map_err(|_| Error::InvalidConfig("price too large".into()))?;
                if want > budget {
                    return Err(Error::Declined(format!(
                        "budget {budget} is below my price {want}"
                    )));
                }
                want
            }
            crate::BidPolicy::Asking(f) => {
                view.decimals = Some(self.token_decimals(record.token).await?);
                let Some(want) = f(view.clone()).await else {
                    return Err(Error::Declined("the bid policy passed".into()));
                };
                if want > budget {
                    return Err(Error::Declined(format!(
                        "budget {budget} is below my price {want}"
                    )));
                }
                want
            }
            crate::BidPolicy::Custom(f) => {
                view.decimals = Some(self.token_decimals(record.token).await?);
                let Some(want) = f(&view) else {
                    return Err(Error::Declined("the bid policy passed".into()));
                };
                if want > budget {
                    return Err(Error::Declined(format!(
                        "budget {budget} is below my price {want}"
                    )));
                }
                want
            }
        };
        let close = cfp["bid_close_at"].as_u64().unwrap_or_default();
        // Valid until the bounty's deadline: a runner-up can still take the job over if the
        // winner misses its ETA. The ETA is signed: the escrow enforces it.
        let deadline = record.deadline;
        let eta = u32::try_from(self.cfg.eta.as_secs().max(1)).unwrap_or(u32::MAX);
        // Consecutive nonces: awards after the first in a bitmap word cost about 17,000 gas less.
        let nonce = self.nonces.next_nonce();
        let (bid, sig) = self.chain.sign_bid(id, &record, price, deadline, eta, nonce)?;
        let body = json!({ "bid": BidJson::from(&bid), "signature": sig });
        let path = format!("/v1/market/bounties/{}/bids", id_hex(id));
        // The node may be restarting: retry until the window closes.
        loop {
            match self.api.post(&path, body.clone()).await {
                Ok(_) => break,
                Err(ApiError::Unreachable { .. }) if reef_wire::unix_now() < close => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.cfg.emit(Event::Bid { bounty: id, price });
        Ok(())
    }

    /// Poster-verified bounties: commit the result hash on-chain so the poster can accept it
    /// (or the review window auto-accepts it).
    pub(crate) async fn on_awaiting_poster(&self, v: &Value) {
        let run = async {
            let record = record_of(v, "record")?;
            if record.provider != self.chain.address() {
                return Ok(());
            }
            let id = parse_id(v["bounty_id"].as_str().unwrap_or_default())?;
            if self.chain.status_of(id).await?.0 != Status::Awarded {
                return Ok(());
            }
            let rh: B256 = serde_json::from_value(v["result_hash"].clone())
                .map_err(malformed("result_hash"))?;
            let (_, tx) = self.chain.submit(id, &record, rh).await?;
            self.cfg.emit(Event::Submitted { bounty: id, tx: tx.hash });
            Ok::<_, Error>(())
        };
        if let Err(e) = run.await {
            self.cfg.warn(format!(
                "submission of {} failed: {e}",
                v["bounty_id"].as_str().unwrap_or("?")
            ));
        }
    }

    /// Contest: do the work right away, commit the result hash on-chain with `submitEntry`,
    /// and hand the result to the node (which judges after the deadline). Runs in the
    /// background so the agent keeps serving messages.
    fn enter_contest(&self, cfp: &Value) {
        let (me, cfp) = (self.clone(), cfp.clone());
        tokio::spawn(async move {
            let run = async {
                let record = record_of(&cfp, "cfp record")?;
                let key = cfp["bounty_id"].as_str().unwrap_or_default().to_string();
                let id = parse_id(&key)?;
                // Wait for the poster's funding transaction.
                while me.chain.status_of(id).await?.0 != Status::Funded {
                    if me.chain.chain_time().await? > record.deadline {
                        return Err(Error::Declined("the contest was never funded".into()));
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let desc = TaskDesc {
                    task_id: format!("contest-{}", key.get(2..14).unwrap_or(&key)),
                    input: json!({ "bounty_id": key, "description": cfp["description"], "input": cfp["input"], "record": cfp["record"] }),
                    ..Default::default()
                };
                let task = Task {
                    group_id: "contest".into(),
                    task_id: desc.task_id,
                    input: desc.input,
                    mode: TaskMode::default(),
                    deployment: Some(me.chain.deployment().clone()),
                };
                let out = me.cfg.handler.run(task).await;
                if !out.ok {
                    return Err(Error::Declined(format!("brain failed (exit {})", out.exit_code)));
                }
                let rh = result_hash(&out.result);
                me.chain.submit_entry(id, &record, rh).await?;
                me.api
                    .post(
                        &format!("/v1/market/bounties/{key}/entries"),
                        json!({ "result": out.result }),
                    )
                    .await?;
                me.cfg.emit(Event::ContestEntered { bounty: key });
                Ok::<_, Error>(())
            };
            if let Err(e) = run.await {
                me.cfg.warn(format!("contest entry failed: {e}"));
            }
        });
    }

    /// An evaluation request from the node (we sit on the bounty's evaluator panel): judge the
    /// provider's result and answer with a signed attestation. In the background: a slow
    /// evaluator must not hold up this agent's other work.
    pub(crate) fn on_evaluate(&self, client: &Client, group: &str, req: &Value) {
        let (me, client, group, req) =
            (self.clone(), client.clone(), group.to_string(), req.clone());
        tokio::spawn(
            async move {
                let bounty = req["bounty_id"].as_str().unwrap_or("?").to_string();
                if let Err(e) = me.evaluate(&client, &group, &req).await {
                    me.cfg.warn(format!("evaluation of {bounty} failed: {e}"));
                }
            }
            .instrument(tracing::Span::current()),
        );
    }

    async fn evaluate(&self, client: &Client, group: &str, req: &Value) -> Result<()> {
        let Some(judge) = self.cfg.evaluator.clone() else { return Ok(()) };
        let id = parse_id(req["bounty_id"].as_str().unwrap_or_default())?;
        let result = &req["result"];
        let rh = result_hash(result);
        // Sign only what we checked: the hash of the result we were shown.
        if req["result_hash"].as_str() != Some(&rh.to_string()) {
            return Err(Error::Declined(
                "the request's result_hash does not match its result".into(),
            ));
        }
        // The attestation names the provider whose result it judges (no replay after a take-over).
        let provider: alloy::primitives::Address = req["provider"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Declined("the evaluation request names no provider".into()))?;
        let accepted = judge(EvalRequest {
            bounty_id: id,
            input: req["input"].clone(),
            result: result.clone(),
        })
        .await;
        let verdict = if accepted {
            escrow_client::signing::verdict::ACCEPT
        } else {
            escrow_client::signing::verdict::REJECT
        };
        let sig = self.chain.sign_attestation(id, provider, rh, verdict)?;
        let body = json!({
            "kind": "evaluation",
            "bounty_id": id_hex(id),
            "result_hash": rh,
            "verdict": verdict,
            "signature": sig,
        });
        let msg = reef_wire::SendMessage {
            group_id: group.to_string(),
            // One answer per evaluator, bounty and result (msg_ids are unique per group): a
            // replay after a restart is deduplicated.
            msg_id: format!("eval-{}-{}-{rh}", self.chain.address(), id_hex(id)),
            state: State::Conclusion,
            task_desc: None,
            body: Some(body),
            extra: Default::default(),
        };
        crate::runtime::send_reliably(&self.cfg, client, msg).await?;
        self.cfg.emit(Event::Evaluated { bounty: id, accepted });
        Ok(())
    }

    pub(crate) async fn on_verdict(&self, v: &Value) {
        if let Err(e) = self.collect(v).await {
            self.cfg.warn(format!(
                "settlement of {} failed: {e}",
                v["bounty_id"].as_str().unwrap_or("?")
            ));
        }
    }

    /// On an accepting verdict for our work: submit the result with the attestation and get paid.
    async fn collect(&self, v: &Value) -> Result<()> {
        let record = record_of(v, "verdict record")?;
        if record.provider != self.chain.address() || v["accept"] != true {
            return Ok(());
        }
        let id = parse_id(v["bounty_id"].as_str().unwrap_or_default())?;
        let rh: B256 =
            serde_json::from_value(v["result_hash"].clone()).map_err(malformed("result_hash"))?;
        let att: Bytes =
            serde_json::from_value(v["attestation"].clone()).map_err(malformed("attestation"))?;
        // No `statusOf` read first (one RPC request per bounty): when the bounty is no longer
        // awarded, the gas estimate reverts before anything is sent (`BountyMismatch` once the
        // record moved on, `InvalidStatus` otherwise), and only then is the status read.
        let sent = self
            .chain
            .submit_and_attest(id, &record, rh, escrow_client::signing::verdict::ACCEPT, att)
            .await;
        let (_, tx) = match sent {
            Ok(done) => done,
            Err(e)
                if matches!(
                    e.revert_name().as_deref(),
                    Some("InvalidStatus" | "BountyMismatch")
                ) && self.chain.status_of(id).await?.0 != Status::Awarded =>
            {
                // Already settled (e.g. a verdict replayed after a restart).
                tracing::debug!(bounty = %id_hex(id), "not awarded any more");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        self.cfg.emit(Event::Paid {
            bounty: id,
            token: record.token,
            tx: tx.hash,
            gas_used: tx.gas_used,
        });
        // Paid in a pledge token: credits, redeemed once the parent bounty settles.
        if self.is_pledge(record.token).await {
            self.watch_pledge(record.token);
        }
        // The handler may have funded sub-bounties from this reward: this agent holds the
        // unspent part of their budgets as credits.
        if self.cfg.sub_bounties {
            let own = self.chain.pledge_token_of(id, self.chain.address());
            match self.chain.pledge(own).await {
                Ok(Some(_)) => self.watch_pledge(own),
                Ok(None) => {}
                Err(e) => self.cfg.warn(format!(
                    "could not read pledge {own} of bounty {}: {e}; redeem its credits with `reef bounty redeem {own}`",
                    id_hex(id)
                )),
            }
        }
        Ok(())
    }

    /// A bounty funded from its poster's pending reward on `parent` pays in credits that are
    /// worth something only if the poster is paid for `parent`: before bidding, check that the
    /// record's token is that pledge and that `parent` is awarded to the poster, and learn the
    /// pledge's decimals (those of the real token behind it).
    async fn check_pledge_backing(&self, record: &Bounty, parent: U256) -> Result<()> {
        let pt = self.chain.pledge_token_of(parent, record.poster);
        if pt != record.token {
            return Err(Error::Declined(format!(
                "token {} is not the poster's pledge on bounty {parent:#x}",
                record.token
            )));
        }
        let state = self.chain.bounty(parent).await?;
        if state.status != Status::Awarded || state.record.provider != record.poster {
            return Err(Error::Declined(format!(
                "paid from the reward on bounty {parent:#x}, which is {} with provider {}: no reward to back it",
                state.status, state.record.provider
            )));
        }
        let real = self.chain.underlying_token(state.record.token).await?;
        let d = self.token_decimals(real).await?;
        self.remember_token(pt, d, true);
        Ok(())
    }

    /// For a token the call for proposals does not say is a pledge: the parent bounty when
    /// the escrow knows it as one (sub-bounties posted up front, like contests), `None` for ETH
    /// and contracts (remembered), and an error for an address without code, whose "payment"
    /// nobody could ever redeem. An RPC failure is an error too: no bid goes out on a bounty
    /// whose payment could not be checked.
    async fn unnamed_pledge(&self, token: Address) -> Result<Option<U256>> {
        if token.is_zero()
            || self.pledge_kind.lock().ok().and_then(|m| m.get(&token).copied()) == Some(false)
        {
            return Ok(None);
        }
        if let Some(p) = self.chain.pledge(token).await? {
            return Ok(Some(p.parent));
        }
        if !self.chain.has_code(token).await? {
            return Err(Error::Declined(format!(
                "token {token} has no code: neither ETH, an ERC-20, nor a pledge the call for proposals names"
            )));
        }
        if let Ok(mut m) = self.pledge_kind.lock() {
            m.insert(token, false);
        }
        Ok(None)
    }

    /// Whether `token` is a pledge token: known from bidding (its decimals), else asked once.
    async fn is_pledge(&self, token: Address) -> bool {
        if token.is_zero() {
            return false;
        }
        if let Some(k) = self.pledge_kind.lock().ok().and_then(|m| m.get(&token).copied()) {
            return k;
        }
        let Ok(found) = self.chain.pledge(token).await else { return false };
        if let Ok(mut m) = self.pledge_kind.lock() {
            m.insert(token, found.is_some());
        }
        found.is_some()
    }
}
