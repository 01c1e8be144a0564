//! The agent's side of swarm auctions: listen for skills, bid a fixed price on every query
//! it can take, answer awards with a brain, and keep the vouchers the node forwards in the
//! metered agent's voucher store, so `reef agent redeem` redeems them in one batch.

use std::process::Stdio;
use std::sync::Arc;

use alloy::primitives::{Address, Bytes, U256};
use escrow_client::{bindings::channel::PaymentChannel::Voucher, signing};
use reef_agent_sdk::{Client, SwarmPush};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::Result;
use crate::metered::Store;

/// How an agent answers a question.
#[derive(Debug, Clone)]
pub enum Brain {
    /// A program run through `sh -c` per award, with
    /// `{"query_id","poster","skill","question","price"}` on stdin; its stdout (JSON, else
    /// text) is the answer.
    Exec(String),
    /// Answers every question with this value (tests, benches).
    Fixed(Value),
    /// Never answers (tests of a silent winner).
    Silent,
}

/// A swarm agent's policy.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Skills listened for.
    pub skills: Vec<String>,
    /// Price bid on every query (base units of `token`).
    pub price: U256,
    /// Token accepted; queries in other tokens are skipped.
    pub token: Address,
    /// The answering brain.
    pub brain: Brain,
    /// Chain id and PaymentChannel address (the vouchers' EIP-712 domain).
    pub chain_id: u64,
    /// The PaymentChannel contract.
    pub payment_channel: Address,
}

/// Something the agent did (printed as JSON lines by `reef swarm serve --json`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    /// Listening.
    Ready {
        /// The agent.
        address: Address,
        /// Its skills.
        skills: Vec<String>,
    },
    /// A bid was sent (or refused by the node).
    Bid {
        /// Query.
        query_id: String,
        /// Price.
        price: U256,
        /// The node's refusal, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Won: answering.
    Won {
        /// Query.
        query_id: String,
        /// Price.
        price: U256,
    },
    /// Paid: the voucher is stored.
    Paid {
        /// Query.
        query_id: String,
        /// Price.
        price: U256,
        /// Channel.
        channel_id: U256,
        /// Cumulative amount now held on the channel.
        cumulative: U256,
    },
    /// An award ended unpaid, or a voucher was not stored.
    Unpaid {
        /// Query.
        query_id: String,
        /// Why.
        reason: String,
    },
}

/// Runs one answer through the brain.
pub async fn think(brain: &Brain, input: &Value) -> Option<Value> {
    match brain {
        Brain::Fixed(v) => Some(v.clone()),
        Brain::Silent => None,
        Brain::Exec(program) => {
            let mut child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(program)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .ok()?;
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(format!("{input}\n").as_bytes()).await;
            }
            let out = child.wait_with_output().await.ok()?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !out.status.success() {
                tracing::warn!(status = %out.status, "swarm brain failed; not answering");
                return None;
            }
            Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
    }
}

/// Serves swarm queries on `ioa` until the connection closes: bids, answers, stores vouchers
/// in `store` (None: vouchers are only reported). `emit` is told every event.
pub async fn serve(
    ioa: Client,
    store: Option<Store>,
    cfg: AgentConfig,
    emit: impl Fn(AgentEvent) + Send + Sync + 'static,
) -> Result<()> {
    let mut pushes = ioa.swarm_listen(cfg.skills.clone()).await?;
    let emit = Arc::new(emit);
    emit(AgentEvent::Ready { address: ioa.address(), skills: cfg.skills.clone() });
    let domain = signing::channel_domain(cfg.chain_id, cfg.payment_channel);
    let me = ioa.address();
    let questions: Arc<std::sync::Mutex<std::collections::HashMap<String, Value>>> = Arc::default();
    while let Some(push) = pushes.recv().await {
        match push {
            SwarmPush::Query(q) => {
                if q.token != cfg.token || q.max_price < cfg.price {
                    continue;
                }
                let (ioa, emit, price) = (ioa.clone(), emit.clone(), cfg.price);
                let input = json!({
                    "query_id": q.query_id, "poster": q.poster, "skill": q.skill,
                    "question": q.question, "price": price,
                });
                questions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(q.query_id.clone(), input);
                tokio::spawn(async move {
                    let error =
                        ioa.swarm_bid(&q.query_id, price).await.err().map(|e| e.to_string());
                    emit(AgentEvent::Bid { query_id: q.query_id, price, error });
                });
            }
            SwarmPush::Award(a) => {
                emit(AgentEvent::Won { query_id: a.query_id.clone(), price: a.price });
                let input = questions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&a.query_id)
                    .unwrap_or_else(|| {
                        json!({"query_id": a.query_id, "poster": a.poster, "question": a.question, "price": a.price})
                    });
                let (ioa, brain) = (ioa.clone(), cfg.brain.clone());
                tokio::spawn(async move {
                    if let Some(answer) = think(&brain, &input).await
                        && let Err(e) = ioa.swarm_answer(&a.query_id, answer).await
                    {
                        tracing::warn!(query = a.query_id, error = %e, "answer refused");
                    }
                });
            }
            SwarmPush::Paid(p) => {
                let v = Voucher {
                    channelId: p.voucher.channel_id,
                    payer: p.voucher.payer,
                    payee: p.voucher.payee,
                    cumulativeAmount: p.voucher.cumulative_amount,
                };
                // Trust, but check what we will redeem: it pays us and its payer signed it.
                if v.payee != me
                    || signing::verify_typed(&v, &domain, &p.signature, v.payer).is_err()
                {
                    emit(AgentEvent::Unpaid {
                        query_id: p.query_id,
                        reason:
                            "the forwarded voucher does not pay us or is not signed by its payer"
                                .into(),
                    });
                    continue;
                }
                match keep(store.as_ref(), &v, &p.signature, &p.query_id, cfg.token).await {
                    Ok(()) => emit(AgentEvent::Paid {
                        query_id: p.query_id,
                        price: p.price,
                        channel_id: v.channelId,
                        cumulative: v.cumulativeAmount,
                    }),
                    Err(reason) => emit(AgentEvent::Unpaid { query_id: p.query_id, reason }),
                }
            }
            SwarmPush::Cancelled(c) => {
                questions.lock().unwrap_or_else(|p| p.into_inner()).remove(&c.query_id);
                emit(AgentEvent::Unpaid {
                    query_id: c.query_id,
                    reason: format!("{}: {}", c.code, c.message),
                });
            }
        }
        // Queries that were never awarded to us: keep the map small.
        let mut q = questions.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() > 10_000 {
            q.clear();
        }
    }
    Ok(())
}

/// Stores a voucher as the channel's latest if it is worth more than the one held.
async fn keep(
    store: Option<&Store>,
    v: &Voucher,
    sig: &Bytes,
    query_id: &str,
    token: Address,
) -> Result<(), String> {
    let Some(store) = store else { return Ok(()) };
    let held = store.channel(v.channelId).await.map_err(|e| e.to_string())?;
    if held.as_ref().is_some_and(|h| h.cumulative >= v.cumulativeAmount) {
        return Err(format!(
            "voucher of {} does not exceed the {} held on channel {}",
            v.cumulativeAmount,
            held.map(|h| h.cumulative).unwrap_or_default(),
            v.channelId
        ));
    }
    store
        .accept(&crate::metered::store::Accept {
            payer: v.payer,
            token,
            channel_id: v.channelId,
            call_id: &format!("swarm:{query_id}"),
            cumulative: v.cumulativeAmount,
            signature: sig,
            redeemed_floor: U256::ZERO,
        })
        .await
        .map_err(|e| e.to_string())?;
    store
        .finish(v.channelId, &format!("swarm:{query_id}"), true, &Value::Null)
        .await
        .map_err(|e| e.to_string())
}
