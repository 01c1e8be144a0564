//! Swarm auctions: query-style auctions in milliseconds, paid with payment-channel vouchers,
//! with no chain transaction per query (`docs/swarm.md`).
//!
//! A poster asks (`swarm_ask`, or `POST /v1/swarm/ask`); the node sends the question to the
//! agents listening for its skill on this node (`swarm_listen`) over their open WebSockets;
//! they bid within the window (50–200 ms). When it closes, the lowest price wins (ties: the
//! earliest bid, i.e. the quickest bidder); the winner answers to the node, which holds the
//! answer and invoices the poster. The poster pays with a cumulative voucher on a
//! `PaymentChannel` to the winner; the node checks it ([`payment`]) and only then releases
//! the answer, and hands the voucher to the winner, who redeems its vouchers in one batch later
//! (`reef agent redeem`). A winner that does not answer in time is replaced by the runner-up
//! (at most [`MAX_AWARDS`] awards); the poster is never asked to pay for an answer it cannot
//! get. Bids are authenticated by the bidder's logged-in session (see the docs for why not by
//! a signature per bid) and bounded: one per asked agent and query.
//!
//! What this is not: a marketplace bounty (no escrow, no verification of the answer). The
//! node is trusted to hold the answer and to forward the voucher; both parties' money is
//! protected by the channel (the poster can only lose the price of answers it was given).

pub mod agent;
pub mod ledger;
pub mod payment;
pub mod poster;
pub mod rest;
pub mod ws;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use axum::extract::ws::Utf8Bytes;
use reef_wire::ServerFrame;
use reef_wire::swarm::{
    AskOutcome, MAX_ANSWER_MS, MAX_AWARDS, MAX_LISTEN_SKILLS, MAX_QUESTION_BYTES, MAX_SKILL_BYTES,
    MAX_WINDOW_MS, MIN_WINDOW_MS, PayOutcome, SwarmAnswer, SwarmAsk, SwarmAward, SwarmBid,
    SwarmCancelled, SwarmCode, SwarmPaid, SwarmPay, SwarmQuery,
};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::ioa::hub::{ConnHandle, Hub};
use crate::ioa::{self, encode};

pub use payment::{PaymentConfig, Payments};

/// Errors of the swarm's own storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored value is invalid, or a write was refused.
    #[error("{0}")]
    Store(String),
    /// A chain call failed.
    #[error(transparent)]
    Chain(Box<escrow_client::Error>),
    /// The node connection failed or refused a request.
    #[error("node: {0}")]
    Node(#[from] reef_agent_sdk::Error),
    /// The payment state (channels, vouchers) could not be read or written.
    #[error(transparent)]
    Metered(#[from] crate::metered::Error),
    /// The query ended without an answer (no agents, no bids, no answer); nothing is owed.
    #[error("{code}: {message}")]
    Failed {
        /// Why.
        code: SwarmCode,
        /// The node's explanation.
        message: String,
    },
    /// The node refused our voucher; nothing was paid and the answer was not released.
    #[error("voucher refused: {code}: {message}")]
    Refused {
        /// Why.
        code: SwarmCode,
        /// The node's explanation.
        message: String,
    },
    /// Invalid argument.
    #[error("{0}")]
    Invalid(String),
}

impl From<escrow_client::Error> for Error {
    fn from(e: escrow_client::Error) -> Self {
        Self::Chain(Box::new(e))
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Limits of the swarm.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Most queries one poster may have open at once (more: `rate_limited`).
    pub max_open_per_poster: usize,
    /// Most agents one query is sent to.
    pub max_fanout: usize,
    /// How long an invoice waits for the poster's voucher before the answer is dropped.
    pub pay_timeout: Duration,
    /// Largest answer, bytes of JSON.
    pub max_answer_bytes: usize,
    /// Voucher checks.
    pub payment: PaymentConfig,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            max_open_per_poster: 64,
            max_fanout: 1_000,
            pay_timeout: Duration::from_secs(30),
            max_answer_bytes: 256 * 1024,
            payment: PaymentConfig::default(),
        }
    }
}

/// One bid.
#[derive(Debug, Clone)]
struct Bid {
    agent: Address,
    conn: ConnHandle,
    price: U256,
    at: Instant,
}

#[derive(Debug)]
enum Phase {
    Bidding { asked: HashMap<Address, ConnHandle>, bids: Vec<Bid> },
    Awarded { winner: Address, tx: Option<oneshot::Sender<Value>> },
    Held { winner: Address, price: U256, answer: Value, paying: bool },
    Done,
}

#[derive(Debug)]
struct Query {
    poster: Address,
    token: Address,
    max_price: U256,
    closes_at: Instant,
    phase: Mutex<Phase>,
    /// Set once the query left the open set (see [`Swarm::end`]).
    ended: std::sync::atomic::AtomicBool,
}

impl Query {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The swarm auctioneer of one node (cheap to clone).
#[derive(Debug, Clone)]
pub struct Swarm {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: SwarmConfig,
    hub: Arc<Hub>,
    payments: Payments,
    /// skill (lowercase) → connection id → connection.
    listeners: RwLock<HashMap<String, HashMap<u64, ConnHandle>>>,
    /// connection id → the skills it listens for.
    listening: Mutex<HashMap<u64, Vec<String>>>,
    queries: Mutex<HashMap<String, Arc<Query>>>,
    open: Mutex<HashMap<Address, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn bad(msg: impl Into<String>) -> ioa::Error {
    ioa::Error::BadRequest(reef_wire::ErrorCode::InvalidFrame, msg.into())
}

impl Swarm {
    /// A swarm pushing frames through `hub` and checking vouchers with `payments`.
    pub fn new(hub: Arc<Hub>, payments: Payments, cfg: SwarmConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg,
                hub,
                payments,
                listeners: RwLock::default(),
                listening: Mutex::default(),
                queries: Mutex::default(),
                open: Mutex::default(),
            }),
        }
    }

    /// The limits.
    pub fn config(&self) -> &SwarmConfig {
        &self.inner.cfg
    }

    /// `conn` listens for `skills` (replacing what it listened for; empty: stop).
    pub fn listen(&self, conn: &ConnHandle, skills: &[String]) -> ioa::Result<usize> {
        if skills.len() > MAX_LISTEN_SKILLS {
            return Err(bad(format!("at most {MAX_LISTEN_SKILLS} skills")));
        }
        let mut norm: Vec<String> = Vec::with_capacity(skills.len());
        for s in skills {
            let s = s.trim().to_lowercase();
            if s.is_empty() || s.len() > MAX_SKILL_BYTES {
                return Err(bad(format!("a skill is 1 to {MAX_SKILL_BYTES} bytes")));
            }
            if !norm.contains(&s) {
                norm.push(s);
            }
        }
        self.detach(conn);
        let mut l = self.inner.listeners.write().unwrap_or_else(|p| p.into_inner());
        for s in &norm {
            l.entry(s.clone()).or_default().insert(conn.id, conn.clone());
        }
        let n = norm.len();
        if n > 0 {
            lock(&self.inner.listening).insert(conn.id, norm);
        }
        Ok(n)
    }

    /// Forgets a closed connection.
    pub fn detach(&self, conn: &ConnHandle) {
        let Some(skills) = lock(&self.inner.listening).remove(&conn.id) else { return };
        let mut l = self.inner.listeners.write().unwrap_or_else(|p| p.into_inner());
        for s in skills {
            if let Some(m) = l.get_mut(&s) {
                m.remove(&conn.id);
                if m.is_empty() {
                    l.remove(&s);
                }
            }
        }
    }

    /// How many connections listen for `skill`.
    pub fn listeners(&self, skill: &str) -> usize {
        let l = self.inner.listeners.read().unwrap_or_else(|p| p.into_inner());
        l.get(&skill.to_lowercase()).map_or(0, HashMap::len)
    }

    fn validate(ask: &SwarmAsk) -> ioa::Result<()> {
        if ask.question.trim().is_empty() || ask.question.len() > MAX_QUESTION_BYTES {
            return Err(bad(format!("the question is 1 to {MAX_QUESTION_BYTES} bytes")));
        }
        if ask.skill.trim().is_empty() || ask.skill.len() > MAX_SKILL_BYTES {
            return Err(bad(format!("the skill is 1 to {MAX_SKILL_BYTES} bytes")));
        }
        if ask.max_price.is_zero() {
            return Err(bad("max_price must be > 0"));
        }
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&ask.window_ms) {
            return Err(bad(format!(
                "window_ms must be {MIN_WINDOW_MS} to {MAX_WINDOW_MS}, not {}",
                ask.window_ms
            )));
        }
        if !(1..=MAX_ANSWER_MS).contains(&ask.answer_ms) {
            return Err(bad(format!("answer_ms must be 1 to {MAX_ANSWER_MS}")));
        }
        Ok(())
    }

    /// Runs one query for `poster`: fan-out, window, award (runners-up after a silent
    /// winner), answer held. Returns the invoice or why the query failed.
    pub async fn ask(&self, poster: Address, ask: SwarmAsk) -> ioa::Result<AskOutcome> {
        Self::validate(&ask)?;
        {
            let mut open = lock(&self.inner.open);
            let n = open.entry(poster).or_default();
            if *n >= self.inner.cfg.max_open_per_poster {
                return Err(ioa::Error::RateLimited);
            }
            *n += 1;
        }
        let id = ioa::random_hex(16);
        let skill = ask.skill.trim().to_lowercase();
        let asked: HashMap<Address, ConnHandle> = {
            let l = self.inner.listeners.read().unwrap_or_else(|p| p.into_inner());
            l.get(&skill)
                .map(|m| {
                    m.values()
                        .filter(|c| c.address != poster)
                        .take(self.inner.cfg.max_fanout)
                        .map(|c| (c.address, c.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let n_asked = asked.len() as u32;
        if asked.is_empty() {
            self.release(poster);
            return Ok(AskOutcome::Failed {
                query_id: id,
                code: SwarmCode::NoAgents,
                message: format!("no agent connected to this node listens for skill {skill:?}"),
                asked: 0,
                bids: 0,
            });
        }
        let window = Duration::from_millis(ask.window_ms);
        let closes_at = Instant::now() + window;
        let frame = encode(&ServerFrame::SwarmQuery(SwarmQuery {
            query_id: id.clone(),
            poster,
            skill: skill.clone(),
            question: ask.question.clone(),
            max_price: ask.max_price,
            token: ask.token,
            closes_at_ms: reef_wire::unix_now_ms() + ask.window_ms,
        }));
        let conns: Vec<ConnHandle> = asked.values().cloned().collect();
        let query = Arc::new(Query {
            poster,
            token: ask.token,
            max_price: ask.max_price,
            closes_at,
            phase: Mutex::new(Phase::Bidding { asked, bids: Vec::new() }),
            ended: Default::default(),
        });
        lock(&self.inner.queries).insert(id.clone(), query.clone());
        for c in &conns {
            c.push(frame.clone());
        }
        drop(conns);

        tokio::time::sleep_until(closes_at).await;
        // The decision: rank the bids (lowest price; ties: the earliest bid).
        let mut bids = match std::mem::replace(
            &mut *query.phase(),
            Phase::Awarded { winner: Address::ZERO, tx: None },
        ) {
            Phase::Bidding { bids, .. } => bids,
            _ => Vec::new(),
        };
        let n_bids = bids.len() as u32;
        bids.sort_by(|a, b| a.price.cmp(&b.price).then(a.at.cmp(&b.at)));
        if bids.is_empty() {
            *query.phase() = Phase::Done;
            self.end(&id, &query);
            return Ok(AskOutcome::Failed {
                query_id: id,
                code: SwarmCode::NoBids,
                message: format!(
                    "none of the {n_asked} agents asked bid within {} ms",
                    ask.window_ms
                ),
                asked: n_asked,
                bids: 0,
            });
        }
        let answer_wait = Duration::from_millis(ask.answer_ms);
        let mut decision_us = None;
        let mut awards = 0u32;
        for bid in bids.iter().take(MAX_AWARDS) {
            let (tx, rx) = oneshot::channel();
            *query.phase() = Phase::Awarded { winner: bid.agent, tx: Some(tx) };
            let award = encode(&ServerFrame::SwarmAward(SwarmAward {
                query_id: id.clone(),
                price: bid.price,
                poster,
                question: ask.question.clone(),
                answer_by_ms: reef_wire::unix_now_ms() + ask.answer_ms,
            }));
            let sent_at = Instant::now();
            let sent = bid.conn.push(award);
            decision_us.get_or_insert((sent_at - closes_at).as_micros() as u64);
            awards += 1;
            let answer = if sent {
                tokio::time::timeout(answer_wait, rx).await.ok().and_then(|r| r.ok())
            } else {
                None
            };
            match answer {
                Some(answer) => {
                    let answer_ms = sent_at.elapsed().as_millis() as u64;
                    *query.phase() =
                        Phase::Held { winner: bid.agent, price: bid.price, answer, paying: false };
                    let pay_timeout = self.inner.cfg.pay_timeout;
                    let swarm = self.clone();
                    let (qid, winner, q) = (id.clone(), bid.agent, query.clone());
                    // Whatever happens to the poster: the answer is dropped when the invoice
                    // expires unpaid, and the winner is told.
                    tokio::spawn(async move {
                        tokio::time::sleep(pay_timeout).await;
                        loop {
                            let unpaid = {
                                let mut phase = q.phase();
                                let unpaid = match &*phase {
                                    // A voucher being checked: let the check finish.
                                    Phase::Held { paying: true, .. } => None,
                                    Phase::Held { .. } => Some(true),
                                    _ => Some(false),
                                };
                                if unpaid == Some(true) {
                                    *phase = Phase::Done;
                                }
                                unpaid
                            };
                            match unpaid {
                                None => tokio::time::sleep(Duration::from_millis(200)).await,
                                Some(unpaid) => {
                                    if unpaid {
                                        swarm.cancel(
                                            winner,
                                            &qid,
                                            SwarmCode::Unpaid,
                                            "the poster did not pay in time",
                                        );
                                    }
                                    swarm.end(&qid, &q);
                                    return;
                                }
                            }
                        }
                    });
                    return Ok(AskOutcome::Invoice {
                        query_id: id,
                        winner: bid.agent,
                        price: bid.price,
                        token: ask.token,
                        asked: n_asked,
                        bids: n_bids,
                        decision_us: decision_us.unwrap_or_default(),
                        answer_ms,
                        awards,
                        pay_by_ms: reef_wire::unix_now_ms() + pay_timeout.as_millis() as u64,
                    });
                }
                None => self.cancel(
                    bid.agent,
                    &id,
                    SwarmCode::NoAnswer,
                    &format!(
                        "no answer within {} ms; the award went to the next bidder",
                        ask.answer_ms
                    ),
                ),
            }
        }
        *query.phase() = Phase::Done;
        self.end(&id, &query);
        Ok(AskOutcome::Failed {
            query_id: id,
            code: SwarmCode::NoAnswer,
            message: format!(
                "{awards} awarded bidder(s) did not answer within {} ms each; nothing is owed",
                ask.answer_ms
            ),
            asked: n_asked,
            bids: n_bids,
        })
    }

    /// Takes a query out of the open set (once).
    fn end(&self, id: &str, q: &Query) {
        if q.ended.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        lock(&self.inner.queries).remove(id);
        self.release(q.poster);
    }

    fn release(&self, poster: Address) {
        let mut open = lock(&self.inner.open);
        if let Some(n) = open.get_mut(&poster) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&poster);
            }
        }
    }

    fn cancel(&self, agent: Address, query_id: &str, code: SwarmCode, message: &str) {
        let f: Utf8Bytes = encode(&ServerFrame::SwarmCancelled(SwarmCancelled {
            query_id: query_id.into(),
            code,
            message: message.into(),
        }));
        self.inner.hub.notify_agent(&agent, &f);
    }

    fn query(&self, id: &str) -> Option<Arc<Query>> {
        lock(&self.inner.queries).get(id).cloned()
    }

    /// A bid from `conn` (only an agent the query was sent to, once, before the close, at most
    /// the poster's price).
    pub fn bid(&self, conn: &ConnHandle, bid: &SwarmBid) -> ioa::Result<()> {
        let Some(q) = self.query(&bid.query_id) else {
            return Err(ioa::Error::NotFound(format!("no open query {}", bid.query_id)));
        };
        if bid.price.is_zero() || bid.price > q.max_price {
            return Err(bad(format!("price must be > 0 and <= max_price {}", q.max_price)));
        }
        let now = Instant::now();
        let mut p = q.phase();
        let Phase::Bidding { asked, bids } = &mut *p else {
            return Err(ioa::Error::NotFound(format!("bidding on {} is closed", bid.query_id)));
        };
        if now >= q.closes_at {
            return Err(ioa::Error::NotFound(format!("bidding on {} is closed", bid.query_id)));
        }
        if !asked.contains_key(&conn.address) {
            return Err(ioa::Error::Forbidden(format!(
                "query {} was not sent to {}",
                bid.query_id, conn.address
            )));
        }
        if bids.iter().any(|b| b.agent == conn.address) {
            return Err(bad(format!("{} already bid on {}", conn.address, bid.query_id)));
        }
        bids.push(Bid { agent: conn.address, conn: conn.clone(), price: bid.price, at: now });
        Ok(())
    }

    /// The awarded agent's answer (held until the poster pays).
    pub fn answer(&self, conn: &ConnHandle, a: SwarmAnswer) -> ioa::Result<()> {
        let size = serde_json::to_vec(&a.answer).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > self.inner.cfg.max_answer_bytes {
            return Err(bad(format!(
                "answer of {size} bytes; at most {}",
                self.inner.cfg.max_answer_bytes
            )));
        }
        let q = self.query(&a.query_id);
        let tx = q.as_ref().and_then(|q| match &mut *q.phase() {
            Phase::Awarded { winner, tx } if *winner == conn.address => tx.take(),
            _ => None,
        });
        let Some(tx) = tx else {
            return Err(ioa::Error::NotFound(format!(
                "no award of query {} waits for an answer from {}",
                a.query_id, conn.address
            )));
        };
        tx.send(a.answer).map_err(|_| {
            ioa::Error::NotFound(format!("the award of query {} has just expired", a.query_id))
        })
    }

    /// The poster's payment: releases the answer if the voucher checks out.
    pub async fn pay(&self, poster: Address, pay: SwarmPay) -> ioa::Result<PayOutcome> {
        // The query id is echoed in every answer: refuse one the schema would not allow back.
        if pay.query_id.is_empty() || pay.query_id.len() > 128 {
            return Err(bad("query_id must be 1 to 128 characters (the `query_id` of an invoice)"));
        }
        let refused = |code, message: String, expected| PayOutcome::Refused {
            query_id: pay.query_id.clone(),
            code,
            message,
            expected,
        };
        let q = self.query(&pay.query_id).filter(|q| q.poster == poster);
        let Some(q) = q else {
            return Ok(refused(
                SwarmCode::UnknownQuery,
                format!("no query {} of yours awaits payment", pay.query_id),
                None,
            ));
        };
        let (winner, price) = match &mut *q.phase() {
            Phase::Held { winner, price, paying, .. } if !*paying => {
                *paying = true;
                (*winner, *price)
            }
            Phase::Held { .. } => {
                return Ok(refused(
                    SwarmCode::UnknownQuery,
                    format!("a payment of {} is being checked", pay.query_id),
                    None,
                ));
            }
            _ => {
                return Ok(refused(
                    SwarmCode::UnknownQuery,
                    format!("query {} is not awaiting payment", pay.query_id),
                    None,
                ));
            }
        };
        let checked = self
            .inner
            .payments
            .accept(poster, winner, q.token, price, &pay.voucher, &pay.signature)
            .await;
        let accepted = match checked {
            Ok(a) => a,
            Err(r) => {
                if let Phase::Held { paying, .. } = &mut *q.phase() {
                    *paying = false;
                }
                return Ok(refused(r.code, r.message, r.expected));
            }
        };
        // The expiry never moves a phase whose voucher is being checked, so it is still Held.
        let answer = match std::mem::replace(&mut *q.phase(), Phase::Done) {
            Phase::Held { answer, .. } => answer,
            _ => Value::Null,
        };
        self.end(&pay.query_id, &q);
        let paid = encode(&ServerFrame::SwarmPaid(SwarmPaid {
            query_id: pay.query_id.clone(),
            price,
            voucher: pay.voucher.clone(),
            signature: pay.signature.clone(),
        }));
        self.inner.hub.notify_agent(&winner, &paid);
        Ok(PayOutcome::Paid {
            query_id: pay.query_id,
            winner,
            price,
            cumulative: accepted.cumulative,
            answer,
        })
    }
}
