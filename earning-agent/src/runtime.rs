//! The agent's main loop: connect, register, follow groups, run assigned tasks, and hand
//! marketplace messages (calls for proposals, verdicts, evaluation requests) to the market side.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use reef_agent_sdk::{Action, Client, Engine, Event as SdkEvent};
use reef_wire::{State, TaskDesc};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::{
    Error, Event, Result, Task, TaskOutcome, api::ApiError, builder::Config, market::Bidder,
};

/// Runs `attempt` until it succeeds, fails with something other than the node being away
/// (no connection, or the connection dropped mid-request), or `cfg.wait_node` has passed
/// ([`reef_agent_sdk::retry_while_away`]), reporting [`Event::NodeAway`] before each pause.
async fn while_node_away<T, F, Fut>(cfg: &Config, what: &'static str, attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reef_agent_sdk::Result<T>>,
{
    use reef_agent_sdk::Error as E;
    reef_agent_sdk::retry_while_away(
        cfg.wait_node,
        |e| matches!(e, E::Connect(_) | E::Disconnected),
        |e, retry_in, gives_up_in| {
            cfg.emit(Event::NodeAway {
                what,
                url: cfg.node.clone(),
                error: e.to_string(),
                retry_in,
                gives_up_in,
            })
        },
        attempt,
    )
    .await
    .map_err(|source| Error::Node { what, url: cfg.node.clone(), source })
}

/// A task this agent executed and reported.
struct TaskDone {
    group_id: String,
    task_id: String,
    outcome: TaskOutcome,
    seq: u64,
}

/// Sends `msg` until the node acknowledges it, riding out disconnections (the SDK reconnects
/// underneath); gives up after about ten minutes.
pub(crate) async fn send_reliably(
    cfg: &Config,
    client: &Client,
    msg: reef_wire::SendMessage,
) -> Result<u64> {
    let mut delay = Duration::from_millis(250);
    for _ in 0..150 {
        match client.send_message(msg.clone()).await {
            Ok((seq, _)) => return Ok(seq),
            Err(e) => {
                cfg.warn(format!("sending to {} failed ({e}); retrying", msg.group_id));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    Err(Error::Undelivered(msg.group_id))
}

/// Connects the marketplace side (an RPC URL given) unless it is connected or was disabled
/// for good. A node without a marketplace (404) disables it; anything else (the node or the
/// chain unreachable) leaves `retry` set so the next attempt tries again.
async fn connect_market(cfg: &Arc<Config>, market: &mut Option<Bidder>, retry: &mut bool) {
    let Some(rpc) = cfg.rpc.as_deref().filter(|_| market.is_none() && *retry) else {
        return;
    };
    match Bidder::connect(cfg.clone(), rpc).await {
        Ok(b) => {
            cfg.emit(Event::MarketReady { chain_id: b.chain.deployment().chain_id });
            *market = Some(b);
            *retry = false;
        }
        Err(Error::Api(e @ ApiError::Status { status: 404, .. })) => {
            cfg.emit(Event::MarketDisabled { reason: e.to_string() });
            *retry = false;
        }
        Err(e) => cfg.emit(Event::MarketNotReady { reason: e.to_string() }),
    }
}

/// The runtime behind [`crate::EarningAgent::run`].
pub(crate) async fn run(cfg: Arc<Config>) -> Result<()> {
    let (client, mut events) =
        while_node_away(&cfg, "connecting", || Client::connect(&cfg.node, cfg.signer.clone()))
            .await?;
    let me = client.address();
    // The node may go away between the connection and these first requests (the SDK
    // reconnects meanwhile): try them again instead of exiting.
    while_node_away(&cfg, "registering", || client.register(cfg.card.clone())).await?;
    cfg.emit(Event::Registered { address: me, node_id: client.node_id() });
    // The marketplace side: connected now, or (when the node or the chain could not be
    // reached, e.g. the node restarted just after we registered) again after the next
    // reconnect or call for proposals, instead of never bidding in this run.
    let mut market: Option<Bidder> = None;
    let mut market_retry = cfg.rpc.is_some();
    connect_market(&cfg, &mut market, &mut market_retry).await;
    let mut engine = Engine::new(me);
    // Seq up to which a group's messages are history (already handled in an earlier run).
    let mut caught_up: HashMap<String, u64> = HashMap::new();
    let groups = while_node_away(&cfg, "listing groups", || client.list_groups()).await?;
    for g in groups {
        let last =
            while_node_away(&cfg, "joining a group", || client.join(&g.group_id, Some(0))).await?;
        engine.track(&g.group_id, g.parent_group_id.clone());
        caught_up.insert(g.group_id, last);
    }
    let mut deferred: Vec<(String, TaskDesc)> = Vec::new();
    let mut done = 0u64;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.parallel));
    // Tasks (group, task id) started in this process: none is started twice.
    let mut started: HashSet<(String, String)> = Default::default();
    let mut jobs: tokio::task::JoinSet<Result<TaskDone>> = tokio::task::JoinSet::new();
    loop {
        let ev = tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            Some(finished) = jobs.join_next(), if !jobs.is_empty() => {
                let t = finished.map_err(|e| Error::TaskPanicked(e.to_string()))??;
                cfg.emit(Event::TaskDone {
                    group_id: t.group_id,
                    task_id: t.task_id,
                    ok: t.outcome.ok,
                    result: t.outcome.result,
                    seq: t.seq,
                });
                done += 1;
                if cfg.max_tasks.is_some_and(|m| done >= m) {
                    return Ok(());
                }
                continue;
            }
        };
        match ev {
            SdkEvent::Invited { group_id, by, joined } => {
                tracing::debug!(%group_id, %by, "invited");
                // Groups the marketplace opens (calls for proposals, work, evaluation) never
                // have a parent: skip listing every group we are in, which cost O(groups)
                // per invitation and stalled agents under a burst of calls for proposals.
                if market.as_ref().and_then(|b| b.evaluator) == Some(by) {
                    engine.track(&group_id, None);
                } else if let Ok(g) = client
                    .list_groups()
                    .await
                    .map(|gs| gs.into_iter().find(|g| g.group_id == group_id))
                {
                    engine.track(&group_id, g.and_then(|g| g.parent_group_id));
                }
                // A group created with us as a member: the node joined this connection
                // already (nothing was sent to it before), so there is nothing to replay.
                // The node may go away mid-join (a restart): the group is joined again on
                // reconnect (`Connected` below), so this is not fatal.
                if joined {
                    tracing::debug!(%group_id, "joined by the node");
                    caught_up.insert(group_id, 0);
                } else {
                    match client.join(&group_id, Some(0)).await {
                        Ok(last) => {
                            tracing::debug!(%group_id, last, "joined");
                            caught_up.insert(group_id, last);
                        }
                        Err(e) => cfg.warn(format!(
                            "could not join {group_id} yet ({e}); retrying after reconnecting"
                        )),
                    }
                }
            }
            SdkEvent::Message(m) => {
                seen.insert(m.group_id.clone(), m.seq);
                if market.is_none() && m.body.as_ref().is_some_and(|b| b["kind"] == "cfp") {
                    connect_market(&cfg, &mut market, &mut market_retry).await;
                }
                if let (Some(b), Some(body)) = (&market, &m.body) {
                    let from_node = Some(m.sender_id) == b.evaluator;
                    let span = bounty_span(body, &m.group_id);
                    match body["kind"].as_str() {
                        Some("cfp") if from_node && !cfg.no_bid => span.in_scope(|| b.on_cfp(body)),
                        Some("verdict") if from_node => {
                            // In the background: the payout transaction must not hold up bids
                            // and other tasks.
                            let (b, body) = (b.clone(), body.clone());
                            tokio::spawn(async move { b.on_verdict(&body).await }.instrument(span));
                        }
                        Some("evaluate") if from_node && cfg.evaluator.is_some() => {
                            span.in_scope(|| b.on_evaluate(&client, &m.group_id, body));
                        }
                        Some("awaiting_poster") if from_node => {
                            let (b, body) = (b.clone(), body.clone());
                            tokio::spawn(
                                async move { b.on_awaiting_poster(&body).await }.instrument(span),
                            );
                        }
                        _ => {}
                    }
                }
                for action in engine.on_message(&m) {
                    match action {
                        Action::Execute { group_id, task, .. } => {
                            tracing::debug!(%group_id, task = %task.task_id, seq = m.seq, "task assigned");
                            deferred.push((group_id, task))
                        }
                        Action::Conclude { group_id, result } => {
                            if m.seq >= caught_up.get(&group_id).copied().unwrap_or(0)
                                && let Err(e) = client
                                    .send(&group_id, State::Conclusion, Some(result), None)
                                    .await
                            {
                                cfg.warn(format!(
                                    "could not post the conclusion to {group_id}: {e}"
                                ));
                            }
                        }
                        Action::BubbleUp { parent_group_id, child_group_id, result } => {
                            if m.seq >= caught_up.get(&child_group_id).copied().unwrap_or(0) {
                                let body = json!({ "status": "done", "result": result, "child_group_id": child_group_id });
                                if let Err(e) = client
                                    .send(
                                        &parent_group_id,
                                        State::Execution,
                                        Some(body),
                                        Some(json!({ "task_id": child_group_id })),
                                    )
                                    .await
                                {
                                    cfg.warn(format!("could not bubble a result up: {e}"));
                                }
                            }
                        }
                        Action::Resume { .. } => {}
                    }
                }
                // Run tasks once their group's history is replayed and they are still open.
                let ready: Vec<(String, TaskDesc)> = {
                    let (ready, keep) = deferred.drain(..).partition(|(g, _)| {
                        seen.get(g).copied().unwrap_or(0) >= caught_up.get(g).copied().unwrap_or(0)
                    });
                    deferred = keep;
                    ready
                };
                if !deferred.is_empty() {
                    tracing::debug!(
                        waiting = deferred.len(),
                        "tasks wait for their group's history"
                    );
                }
                for (group_id, task) in ready {
                    let status = engine.task_status(&group_id, &task.task_id);
                    tracing::debug!(%group_id, task = %task.task_id, ?status, "task ready");
                    if status != Some(reef_agent_sdk::engine::TaskStatus::Assigned)
                        || !started.insert((group_id.clone(), task.task_id.clone()))
                    {
                        continue;
                    }
                    let deployment = market.as_ref().map(|b| b.chain.deployment().clone());
                    let (cfg, client, slots) = (cfg.clone(), client.clone(), slots.clone());
                    let span = tracing::info_span!(
                        "job",
                        bounty = task.input["bounty_id"].as_str(),
                        group = %group_id,
                        task = %task.task_id
                    );
                    jobs.spawn(
                        async move {
                            let _slot = slots
                                .acquire_owned()
                                .await
                                .map_err(|_| Error::TaskPanicked("task slots closed".into()))?;
                            let t = Task {
                                group_id: group_id.clone(),
                                task_id: task.task_id.clone(),
                                input: task.input.clone(),
                                mode: task.mode,
                                deployment,
                            };
                            tracing::info!("job started");
                            let outcome = cfg.handler.run(t).await;
                            let body = json!({
                                "status": if outcome.ok { "done" } else { "failed" },
                                "result": outcome.result,
                                "exit_code": outcome.exit_code,
                            });
                            // A deterministic msg_id makes the send idempotent, so it can be
                            // retried across a node restart without delivering it twice.
                            let msg = reef_wire::SendMessage {
                                group_id: group_id.clone(),
                                msg_id: format!("result-{}", task.task_id),
                                state: State::Execution,
                                task_desc: Some(json!({ "task_id": task.task_id })),
                                body: Some(body),
                                extra: Default::default(),
                            };
                            let seq = send_reliably(&cfg, &client, msg).await?;
                            tracing::info!(ok = outcome.ok, seq, "job done");
                            Ok(TaskDone { group_id, task_id: task.task_id, outcome, seq })
                        }
                        .instrument(span),
                    );
                }
            }
            SdkEvent::Disconnected(reason) => cfg.emit(Event::Disconnected { reason }),
            SdkEvent::Connected => {
                connect_market(&cfg, &mut market, &mut market_retry).await;
                // The SDK re-joins the groups we follow, but an invitation sent while we were
                // away (or a join cut off by a restart) is lost: follow every group we are a
                // member of and do not know. If the node goes away again meanwhile, the next
                // `Connected` does the rest.
                let groups = match client.list_groups().await {
                    Ok(gs) => gs,
                    Err(e) => {
                        cfg.warn(format!(
                            "could not list groups ({e}); retrying after reconnecting"
                        ));
                        Vec::new()
                    }
                };
                for g in groups {
                    if caught_up.contains_key(&g.group_id) {
                        continue;
                    }
                    match client.join(&g.group_id, Some(0)).await {
                        Ok(last) => {
                            engine.track(&g.group_id, g.parent_group_id.clone());
                            caught_up.insert(g.group_id, last);
                        }
                        Err(e) => {
                            cfg.warn(format!(
                                "could not join {} ({e}); retrying after reconnecting",
                                g.group_id
                            ));
                            break;
                        }
                    }
                }
            }
            SdkEvent::Removed { .. } => {}
        }
    }
    Ok(())
}

/// The span of the work a marketplace message starts: its bounty (`bounty_id` of the body)
/// and group.
fn bounty_span(body: &Value, group_id: &str) -> tracing::Span {
    tracing::info_span!(
        "market",
        bounty = body["bounty_id"].as_str(),
        group = %group_id,
        kind = body["kind"].as_str()
    )
}
