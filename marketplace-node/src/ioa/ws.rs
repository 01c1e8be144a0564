//! The WebSocket transport (`GET /v1/ws`): challenge → auth → frames, with one reader (this
//! task) and one writer task per connection joined by a bounded queue.

use std::time::Duration;

use alloy_primitives::Address;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use reef_wire::{ClientFrame, ErrorCode, PROTOCOL_VERSION, ReqId, ServerFrame};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{Instrument, field::Empty};

use super::hub::{ConnHandle, KillSwitch, Out};
use super::{CLOSE_GRACE, Error, Node, encode};
use crate::metrics::{self, METRICS};

/// Close code for an oversized message (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a policy violation (failed authentication).
pub const CLOSE_POLICY: u16 = 1008;

/// Upgrade handler.
pub async fn handler(State(node): State<Node>, ws: WebSocketUpgrade) -> Response {
    let max = node.config().max_frame_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(256 * 1024 + max)
        .on_upgrade(move |socket| {
            // `agent` and `conn` are filled in once the agent has authenticated.
            let span = tracing::info_span!("ws", agent = Empty, conn = Empty);
            session(node, socket).instrument(span)
        })
}

fn error_frame(req_id: Option<ReqId>, code: ErrorCode, message: impl Into<String>) -> Utf8Bytes {
    encode(&ServerFrame::Error { req_id, code, message: message.into() })
}

fn is_too_big(e: &axum::Error) -> bool {
    let s = e.to_string();
    s.contains("too long") || s.contains("too big") || s.contains("Space limit")
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason) }));
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(frame)).await;
}

/// Run the challenge/response; returns the authenticated address.
async fn authenticate(node: &Node, socket: &mut WebSocket) -> Option<Address> {
    let (nonce, expires, message) = node.challenge();
    let challenge = ServerFrame::Challenge {
        v: PROTOCOL_VERSION,
        node_id: node.config().node_id.clone(),
        nonce: nonce.clone(),
        expires,
        message,
    };
    socket.send(Message::Text(encode(&challenge))).await.ok()?;
    metrics::inc(&METRICS.ws_frames_sent);
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(node.config().challenge_ttl_secs + 10);
    let mut strikes = 0u32;
    loop {
        let msg = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Err(_) => {
                close(socket, CLOSE_POLICY, "authentication timeout").await;
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(e))) => {
                if is_too_big(&e) {
                    close(socket, CLOSE_TOO_BIG, "message too big").await;
                }
                return None;
            }
            Ok(Some(Ok(m))) => {
                metrics::inc(&METRICS.ws_frames_received);
                m
            }
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                let _ = socket
                    .send(Message::Text(error_frame(
                        None,
                        ErrorCode::InvalidFrame,
                        "binary frames are not supported",
                    )))
                    .await;
                continue;
            }
        };
        let (req_id, parsed) = reef_wire::parse_client_frame(&text);
        let reply = match parsed {
            Ok(ClientFrame::Auth { address, signature }) => match node
                .verify_login(&nonce, expires, &address, &signature)
            {
                Ok(()) => return Some(address),
                Err(e) => {
                    let (code, message) = e.public();
                    let _ = socket.send(Message::Text(error_frame(req_id, code, message))).await;
                    close(socket, CLOSE_POLICY, "authentication failed").await;
                    return None;
                }
            },
            Ok(_) => error_frame(
                req_id,
                ErrorCode::Unauthenticated,
                "authenticate first: answer the challenge with an `auth` frame",
            ),
            Err(reef_wire::Error::Frame { code, message }) => error_frame(req_id, code, message),
            Err(e) => error_frame(req_id, ErrorCode::InvalidFrame, e.to_string()),
        };
        strikes += 1;
        if socket.send(Message::Text(reply)).await.is_err() {
            return None;
        }
        metrics::inc(&METRICS.ws_frames_sent);
        if strikes >= 16 {
            close(socket, CLOSE_POLICY, "too many frames before authentication").await;
            return None;
        }
    }
}

async fn session(node: Node, mut socket: WebSocket) {
    let _open = metrics::ConnectionGuard::open();
    let Some(address) = authenticate(&node, &mut socket).await else { return };
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(node.config().queue_len.max(1));
    let conn = node.hub().attach(address, tx);
    let span = tracing::Span::current();
    span.record("agent", tracing::field::display(address));
    span.record("conn", conn.id);
    tracing::info!("agent connected");
    let writer = tokio::spawn(writer(sink, rx, conn.kill.clone()));
    conn.push(encode(&ServerFrame::Welcome {
        v: PROTOCOL_VERSION,
        address,
        node_id: node.config().node_id.clone(),
    }));
    // After the welcome: an invitation the arrival triggers reaches a connection that is up.
    node.connected(address).await;

    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = conn.kill.killed() => break,
        };
        if let Some(Ok(_)) = &msg {
            metrics::inc(&METRICS.ws_frames_received);
        }
        let text = match msg {
            None | Some(Ok(Message::Close(_))) => break,
            Some(Err(e)) => {
                if is_too_big(&e) {
                    conn.kill.kill(CLOSE_TOO_BIG, "message too big");
                }
                break;
            }
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                conn.push(error_frame(
                    None,
                    ErrorCode::InvalidFrame,
                    "binary frames are not supported",
                ));
                continue;
            }
        };
        if let Err(e) = node.rate_check(&address) {
            let (code, message) = e.public();
            // Refused before parsing, but a pipelining client must still learn which request
            // was refused: read only the `req_id` (the rest of the frame is skipped, not built).
            conn.push(error_frame(reef_wire::peek_req_id(&text), code, message));
            continue;
        }
        let (req_id, parsed) = reef_wire::parse_client_frame(&text);
        let frame = match parsed {
            Ok(f) => f,
            Err(reef_wire::Error::Frame { code, message }) => {
                conn.push(error_frame(req_id, code, message));
                continue;
            }
            Err(e) => {
                conn.push(error_frame(req_id, ErrorCode::InvalidFrame, e.to_string()));
                continue;
            }
        };
        let span = frame_span(&frame);
        let reply = match handle(&node, &conn, req_id.clone(), frame).instrument(span).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                let (code, message) = e.public();
                error_frame(req_id, code, message)
            }
        };
        conn.push(reply);
    }

    tracing::info!("agent disconnected");
    node.hub().detach(&conn);
    if let Some(swarm) = node.swarm() {
        swarm.detach(&conn);
    }
    node.presence(&address, false).await;
    conn.kill.kill(1000, "bye");
    let _ = tokio::time::timeout(CLOSE_GRACE * 2, writer).await;
}

/// A span for handling one frame: its type, and its group when it names one.
fn frame_span(frame: &ClientFrame) -> tracing::Span {
    let group = match frame {
        ClientFrame::Invite { group_id, .. }
        | ClientFrame::Remove { group_id, .. }
        | ClientFrame::Join { group_id, .. }
        | ClientFrame::Leave { group_id }
        | ClientFrame::Send(reef_wire::SendMessage { group_id, .. }) => Some(group_id.as_str()),
        _ => None,
    };
    let kind = match frame {
        ClientFrame::Auth { .. } => "auth",
        ClientFrame::Register { .. } => "register",
        ClientFrame::GetAgent { .. } => "get_agent",
        ClientFrame::Discover { .. } => "discover",
        ClientFrame::CreateGroup { .. } => "create_group",
        ClientFrame::Invite { .. } => "invite",
        ClientFrame::Remove { .. } => "remove",
        ClientFrame::ListGroups {} => "list_groups",
        ClientFrame::Join { .. } => "join",
        ClientFrame::Leave { .. } => "leave",
        ClientFrame::Send(_) => "send",
        ClientFrame::Ping {} => "ping",
        ClientFrame::SwarmListen(_) => "swarm_listen",
        ClientFrame::SwarmAsk(_) => "swarm_ask",
        ClientFrame::SwarmBid(_) => "swarm_bid",
        ClientFrame::SwarmAnswer(_) => "swarm_answer",
        ClientFrame::SwarmPay(_) => "swarm_pay",
    };
    tracing::info_span!("frame", kind, group)
}

fn ok(req_id: Option<ReqId>, result: serde_json::Value) -> Utf8Bytes {
    encode(&ServerFrame::Ok { req_id, result })
}

async fn handle(
    node: &Node,
    conn: &ConnHandle,
    req_id: Option<ReqId>,
    frame: ClientFrame,
) -> Result<Option<Utf8Bytes>, Error> {
    let me = &conn.address;
    Ok(Some(match frame {
        ClientFrame::Auth { .. } => {
            error_frame(req_id, ErrorCode::InvalidFrame, "already authenticated")
        }
        ClientFrame::Ping {} => encode(&ServerFrame::Pong { req_id }),
        ClientFrame::Register { card } => ok(req_id, to_value(&node.register(me, card).await?)),
        ClientFrame::GetAgent { address } => ok(req_id, to_value(&node.get_agent(&address).await?)),
        ClientFrame::Discover { query } => {
            ok(req_id, json!({ "agents": to_value(&node.discover(&query).await?) }))
        }
        ClientFrame::CreateGroup { name, members, parent_group_id } => ok(
            req_id,
            to_value(&node.create_group(me, &name, &members, parent_group_id.as_deref()).await?),
        ),
        ClientFrame::Invite { group_id, agent } => {
            ok(req_id, to_value(&node.invite(me, &group_id, &agent).await?))
        }
        ClientFrame::Remove { group_id, agent } => {
            node.remove(me, &group_id, &agent).await?;
            ok(req_id, json!({ "group_id": group_id, "removed": agent }))
        }
        ClientFrame::ListGroups {} => {
            ok(req_id, json!({ "groups": to_value(&node.groups_of(me).await?) }))
        }
        ClientFrame::Join { group_id, since_seq } => {
            let (last_seq, first_page) = node.join(me, &group_id, since_seq).await?;
            // Reply first so the replayed messages follow the `ok`.
            conn.push(ok(req_id, json!({ "group_id": group_id, "last_seq": last_seq })));
            node.hub().subscribe(&group_id, conn, since_seq, first_page).await?;
            return Ok(None);
        }
        ClientFrame::Leave { group_id } => {
            node.hub().leave(&group_id, conn);
            ok(req_id, json!({ "group_id": group_id }))
        }
        ClientFrame::Send(msg) => {
            // Pipelined: the group-commit writer pushes the `ack` after the commit.
            node.send_pipelined(conn, req_id, msg)?;
            return Ok(None);
        }
        f @ (ClientFrame::SwarmListen(_)
        | ClientFrame::SwarmAsk(_)
        | ClientFrame::SwarmBid(_)
        | ClientFrame::SwarmAnswer(_)
        | ClientFrame::SwarmPay(_)) => return Ok(crate::swarm::ws::handle(node, conn, req_id, f)),
    }))
}

fn to_value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

enum Step {
    Sent(Result<(), axum::Error>),
    Kill(u16, String),
    Done,
}

async fn writer(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Out>,
    kill: std::sync::Arc<KillSwitch>,
) {
    loop {
        let step = tokio::select! {
            biased;
            (code, reason) = kill.killed() => Step::Kill(code, reason),
            item = rx.recv() => match item {
                None => Step::Done,
                Some(first) => {
                    let batch = async {
                        sink.feed(Message::Text(first.into_text())).await?;
                        let mut n = 1;
                        for _ in 0..64 {
                            match rx.try_recv() {
                                Ok(out) => {
                                    sink.feed(Message::Text(out.into_text())).await?;
                                    n += 1;
                                }
                                Err(_) => break,
                            }
                        }
                        sink.flush().await?;
                        METRICS.ws_frames_sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        Ok::<(), axum::Error>(())
                    };
                    tokio::select! {
                        biased;
                        (code, reason) = kill.killed() => Step::Kill(code, reason),
                        r = batch => Step::Sent(r),
                    }
                }
            },
        };
        match step {
            Step::Sent(Ok(())) => {}
            Step::Sent(Err(_)) => {
                kill.kill(1006, "write failed");
                return;
            }
            Step::Kill(code, reason) => {
                let frame =
                    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason) }));
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(frame)).await;
                return;
            }
            Step::Done => {
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
                return;
            }
        }
    }
}
