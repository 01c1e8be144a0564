//! The JSON-RPC binding: one dispatcher for A2A 1.0's methods, the SSE streams of
//! `SendStreamingMessage` and `SubscribeToTask`, `ListTasks` and `CancelTask`.

use std::{convert::Infallible, time::Duration};

use alloy::primitives::Address;
use axum::{
    Json,
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use serde_json::{Value, json};

use super::{
    A2a, A2aError, BLOCKING_WAIT, CANCEL_MARGIN, MAX_STREAMS, Result, VERSION_HEADER, now_ms,
    tasks::{self, TaskRow, TaskState},
    terms::TERMS_URI,
};

impl A2a {
    /// `CancelTask`: possible while the bounty is still collecting bids, at least
    /// [`CANCEL_MARGIN`] before its window closes (so the award cannot be under way). The
    /// follower is stopped, nothing was posted on-chain, and the whole payment goes back.
    async fn cancel(&self, row: TaskRow) -> Result<Value> {
        if row.outcome.is_some() {
            return Err(A2aError::NotCancelable(format!("task {} has ended", row.id)));
        }
        let view = self.view(&row.bounty).await;
        let open = view.as_ref().is_none_or(|v| {
            v["phase"] == "bidding"
                && v["bid_close_at"].as_u64().unwrap_or(0).saturating_mul(1000)
                    > now_ms() + CANCEL_MARGIN.as_millis() as u64
        });
        if !open {
            return Err(A2aError::NotCancelable(format!(
                "task {}'s bids are being ranked or its provider awarded: a Reef task can be cancelled only while it collects bids, until {} s before its window closes",
                row.id,
                CANCEL_MARGIN.as_secs()
            )));
        }
        let Some(follower) = self.followers().remove(&row.id) else {
            return Err(A2aError::NotCancelable(format!(
                "task {} is followed by a previous process of this node; it cannot be cancelled",
                row.id
            )));
        };
        follower.abort();
        let _ = follower.await;
        // Nothing may have reached the chain; if it had, the task goes on.
        let id =
            crate::market::parse_id(&row.bounty).map_err(|e| A2aError::Internal(e.to_string()))?;
        let (status, _) = self
            .market()
            .chain()
            .status_of(id)
            .await
            .map_err(|e| A2aError::Internal(e.to_string()))?;
        if status != escrow_client::Status::None {
            tokio::spawn(self.clone().watch_to_end(row.clone()));
            return Err(A2aError::NotCancelable(format!("task {}'s provider was awarded", row.id)));
        }
        let out = self
            .give_back(
                &row,
                row.paid,
                TaskState::Canceled,
                "cancelled by the caller before the award; the payment went back".into(),
            )
            .await;
        self.store().finish(&row.id, &out).await?;
        self.finished(&row.id);
        let row = self.store().get(&row.id).await?.unwrap_or(row);
        Ok(self.task_now(&row, None).await)
    }

    /// Waits until the task is terminal or `until`; returns it then.
    async fn wait_terminal(&self, id: &str, until: tokio::time::Instant) -> Result<TaskRow> {
        let mut done = self.inner.finished.subscribe();
        loop {
            let row =
                self.store().get(id).await?.ok_or_else(|| A2aError::TaskNotFound(id.into()))?;
            if row.outcome.is_some() || tokio::time::Instant::now() >= until {
                return Ok(row);
            }
            let _ = tokio::time::timeout_at(until, async {
                while let Ok(f) = done.recv().await {
                    if f == id {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// The stream of a task's updates as JSON-RPC responses (`StreamResponse` results): the
    /// task first, a status update on every change, the artifact, then the final status.
    fn stream(
        &self,
        row: TaskRow,
        rpc_id: Value,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Response {
        let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
        let me = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let frame = |result: Value| {
                Event::default()
                    .data(json!({ "jsonrpc": "2.0", "id": rpc_id, "result": result }).to_string())
            };
            let mut done = me.inner.finished.subscribe();
            let mut row = row;
            let mut view = me.view(&row.bounty).await;
            if tx
                .send(frame(
                    json!({ "task": tasks::task_json(&row, view.as_ref(), None, now_ms()) }),
                ))
                .await
                .is_err()
            {
                return;
            }
            let mut last = (
                row.state(view.as_ref()),
                view.as_ref().map_or(0, |v| v["events"].as_array().map_or(0, Vec::len)),
            );
            while !last.0.is_terminal() {
                // The bounty's log grows, or the follower records the outcome.
                let final_phase = view
                    .as_ref()
                    .is_some_and(|v| matches!(v["phase"].as_str(), Some("settled" | "failed")));
                if view.is_none() || final_phase {
                    let _ = tokio::time::timeout(Duration::from_millis(500), async {
                        while let Ok(f) = done.recv().await {
                            if f == row.id {
                                break;
                            }
                        }
                    })
                    .await;
                    view = me.view(&row.bounty).await;
                } else {
                    view =
                        me.view_wait(&row.bounty, last.1, Duration::from_secs(10)).await.or(view);
                }
                match me.store().get(&row.id).await {
                    Ok(Some(r)) => row = r,
                    _ => break,
                }
                let now = (
                    row.state(view.as_ref()),
                    view.as_ref().map_or(0, |v| v["events"].as_array().map_or(0, Vec::len)),
                );
                if now == last {
                    continue;
                }
                if now.0.is_terminal()
                    && let Some(a) = tasks::artifact_json(&row, view.as_ref())
                {
                    let up = json!({ "artifactUpdate": {
                        "taskId": row.id, "contextId": row.context_id, "artifact": a, "lastChunk": true,
                    }});
                    if tx.send(frame(up)).await.is_err() {
                        return;
                    }
                }
                let up = json!({ "statusUpdate": {
                    "taskId": row.id,
                    "contextId": row.context_id,
                    "status": tasks::status_json(&row, view.as_ref(), now_ms()),
                    "metadata": { TERMS_URI: tasks::reef_metadata(&row, view.as_ref()) },
                }});
                if tx.send(frame(up)).await.is_err() {
                    return;
                }
                last = now;
            }
        });
        let events = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
        });
        Sse::new(events)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response()
    }

    /// Answers one JSON-RPC request.
    pub(super) async fn rpc(
        &self,
        caller: Address,
        agent: Option<Address>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let req: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return rpc_error(Value::Null, &A2aError::Parse(e.to_string())),
        };
        let id = match req.get("id") {
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Null)) => v.clone(),
            None => Value::Null,
            Some(_) => {
                return rpc_error(
                    Value::Null,
                    &A2aError::InvalidRequest("id must be a string, a number or null".into()),
                );
            }
        };
        if req.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return rpc_error(
                id,
                &A2aError::InvalidRequest(
                    "a JSON-RPC 2.0 request object is needed (jsonrpc: \"2.0\")".into(),
                ),
            );
        }
        let Some(method) = req.get("method").and_then(Value::as_str) else {
            return rpc_error(
                id,
                &A2aError::InvalidRequest("method (a string) is required".into()),
            );
        };
        if let Some(v) = headers.get(VERSION_HEADER) {
            let v = v.to_str().unwrap_or("").trim();
            if !(v == "1" || v == "1.0" || v.starts_with("1.0.")) {
                return rpc_error(id, &A2aError::Version(v.chars().take(32).collect()));
            }
        }
        let empty = json!({});
        let params = match req.get("params") {
            None => &empty,
            Some(p) if p.is_object() => p,
            Some(_) => {
                return rpc_error(id, &A2aError::InvalidParams("params must be an object".into()));
            }
        };
        let history = params
            .get("historyLength")
            .and_then(Value::as_u64)
            .map(|h| h.min(u64::from(u32::MAX)) as u32);
        let task_id = || {
            params.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| {
                A2aError::InvalidParams("params.id (the task id) is required".into())
            })
        };
        let out: Result<Value> = match method {
            "SendMessage" => match self.create(caller, agent, params).await {
                Ok(row) => {
                    let immediate =
                        params.pointer("/configuration/returnImmediately").and_then(Value::as_bool)
                            == Some(true);
                    let row = if immediate {
                        Ok(row)
                    } else {
                        self.wait_terminal(&row.id, tokio::time::Instant::now() + BLOCKING_WAIT)
                            .await
                    };
                    match row {
                        Ok(row) => Ok(
                            json!({ "task": self.task_now(&row, params.pointer("/configuration/historyLength").and_then(Value::as_u64).map(|h| h as u32)).await }),
                        ),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
            "SendStreamingMessage" => {
                let Ok(permit) = self.inner.streams.clone().try_acquire_owned() else {
                    return rpc_error(
                        id,
                        &A2aError::Unsupported(format!(
                            "{MAX_STREAMS} streams are open on this node; poll GetTask instead"
                        )),
                    );
                };
                return match self.create(caller, agent, params).await {
                    Ok(row) => self.stream(row, id, permit),
                    Err(e) => rpc_error(id, &e),
                };
            }
            "SubscribeToTask" => {
                let row = match task_id() {
                    Ok(t) => self.task_of(caller, agent, t).await,
                    Err(e) => Err(e),
                };
                return match row {
                    Ok(row) if row.outcome.is_some() => rpc_error(
                        id,
                        &A2aError::Unsupported(
                            "the task is in a terminal state: read it with GetTask".into(),
                        ),
                    ),
                    Ok(row) => match self.inner.streams.clone().try_acquire_owned() {
                        Ok(permit) => self.stream(row, id, permit),
                        Err(_) => rpc_error(
                            id,
                            &A2aError::Unsupported(format!(
                                "{MAX_STREAMS} streams are open on this node; poll GetTask instead"
                            )),
                        ),
                    },
                    Err(e) => rpc_error(id, &e),
                };
            }
            "GetTask" => match task_id() {
                Ok(t) => match self.task_of(caller, agent, t).await {
                    Ok(row) => Ok(self.task_now(&row, history).await),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            "ListTasks" => self.list(caller, agent, params).await,
            "CancelTask" => match task_id() {
                Ok(t) => match self.task_of(caller, agent, t).await {
                    Ok(row) => self.cancel(row).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            "CreateTaskPushNotificationConfig"
            | "GetTaskPushNotificationConfig"
            | "ListTaskPushNotificationConfigs"
            | "DeleteTaskPushNotificationConfig" => Err(A2aError::PushNotSupported),
            "GetExtendedAgentCard" => Err(A2aError::NoExtendedCard),
            other => Err(A2aError::MethodNotFound(other.chars().take(64).collect())),
        };
        match out {
            Ok(result) => {
                Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response()
            }
            Err(e) => rpc_error(id, &e),
        }
    }

    /// `ListTasks`: the caller's tasks at this endpoint, newest first, filtered by context and
    /// state.
    async fn list(&self, caller: Address, agent: Option<Address>, params: &Value) -> Result<Value> {
        let size = params.get("pageSize").and_then(Value::as_u64).unwrap_or(50);
        if !(1..=100).contains(&size) {
            return Err(A2aError::InvalidParams("pageSize must be between 1 and 100".into()));
        }
        let offset = match params.get("pageToken").and_then(Value::as_str).filter(|s| !s.is_empty())
        {
            Some(t) => t.parse::<u64>().map_err(|_| {
                A2aError::InvalidParams("pageToken is not one this server gave".into())
            })?,
            None => 0,
        };
        let context = params.get("contextId").and_then(Value::as_str).filter(|s| !s.is_empty());
        let status = match params.get("status").and_then(Value::as_str) {
            None | Some("TASK_STATE_UNSPECIFIED") => None,
            Some(s) => Some(TaskState::parse(s).ok_or_else(|| {
                A2aError::InvalidParams(format!("status {s:?} is not a TaskState"))
            })?),
        };
        let history = params
            .get("historyLength")
            .and_then(Value::as_u64)
            .map(|h| h.min(u64::from(u32::MAX)) as u32);
        let artifacts = params.get("includeArtifacts").and_then(Value::as_bool).unwrap_or(false);
        // Newest 1000 of the caller's tasks; filtered, then paged.
        let rows = self.store().list(caller, 1000, 0).await?;
        let mut all = Vec::new();
        for row in
            rows.iter().filter(|r| r.agent == agent && context.is_none_or(|c| r.context_id == c))
        {
            let mut t = self.task_now(row, history).await;
            let state = TaskState::parse(t["status"]["state"].as_str().unwrap_or(""));
            if status.is_some() && state != status {
                continue;
            }
            if !artifacts && let Some(o) = t.as_object_mut() {
                o.remove("artifacts");
            }
            all.push(t);
        }
        let total = all.len() as u64;
        let page: Vec<Value> = all.into_iter().skip(offset as usize).take(size as usize).collect();
        let next = offset + page.len() as u64;
        Ok(json!({
            "tasks": page,
            "nextPageToken": if next < total { next.to_string() } else { String::new() },
            "pageSize": size,
            "totalSize": total,
        }))
    }
}

fn rpc_error(id: Value, e: &A2aError) -> Response {
    Json(json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() })).into_response()
}
