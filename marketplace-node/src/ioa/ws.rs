//! The WebSocket transport (`GET /v1/ws`): challenge → auth → frames, with one reader (this
//! task) and one writer task per connection joined by a bounded queue.

use std::time::Duration;

use alloy_primitives::Address;
use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::Utf8Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use reef_wire::{ClientFrame, ErrorCode, PROTOCOL_VERSION, ReqId, ServerFrame};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{Instrument, field::Empty};
use yawc::close::CloseCode;
use yawc::{Frame, OpCode};

use super::deflate::{self, Agreed};
use super::hub::{ConnHandle, KillSwitch, Out};
use super::{CLOSE_GRACE, Error, Node, encode};
use crate::metrics::{self, METRICS};

/// Close code for an oversized message (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a policy violation (failed authentication).
pub const CLOSE_POLICY: u16 = 1008;

/// An upgraded agent connection: frames (decompressed, when permessage-deflate was agreed)
/// over the HTTP connection hyper handed over.
pub type WebSocket = yawc::WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, why).into_response()
}

fn header_has_token(req: &axum::extract::Request, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Upgrade handler: the RFC 6455 handshake, with permessage-deflate (RFC 7692) agreed by
/// [`deflate::negotiate`] within the node's bounds (or refused with `--ws-compression off`).
pub async fn handler(State(node): State<Node>, mut req: axum::extract::Request) -> Response {
    if !header_has_token(&req, header::CONNECTION, "upgrade") {
        return refuse(StatusCode::BAD_REQUEST, "Connection header did not include 'upgrade'");
    }
    if !header_has_token(&req, header::UPGRADE, "websocket") {
        return refuse(StatusCode::BAD_REQUEST, "`Upgrade` header did not include 'websocket'");
    }
    if req.headers().get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Version` header did not include '13'",
        );
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return refuse(StatusCode::BAD_REQUEST, "`Sec-WebSocket-Key` header missing");
    };
    if req.extensions().get::<hyper::upgrade::OnUpgrade>().is_none() {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket request couldn't be upgraded since no upgrade state was present",
        );
    }
    let offers: Vec<&str> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let agreed = deflate::negotiate(&node.config().ws_compression, offers);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let options = socket_options(&node, agreed.as_ref());
    let extensions = agreed.map(|a| a.to_string());
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut res = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(ext) = &extensions {
        res = res.header(header::SEC_WEBSOCKET_EXTENSIONS, ext.as_str());
    }
    // `agent` and `conn` are filled in once the agent has authenticated.
    let span =
        tracing::info_span!("ws", agent = Empty, conn = Empty, deflate = extensions.is_some());
    tokio::spawn(
        async move {
            let io = match on_upgrade.await {
                Ok(upgraded) => TokioIo::new(upgraded),
                Err(e) => {
                    tracing::debug!("upgrade failed: {e}");
                    return;
                }
            };
            match yawc::WebSocket::from_stream_with_extensions(
                io,
                yawc::Role::Server,
                extensions.as_deref(),
                options,
            ) {
                Ok(socket) => session(node, socket).await,
                Err(e) => tracing::warn!("websocket setup failed: {e}"),
            }
        }
        .instrument(span),
    );
    res.body(Body::empty()).unwrap_or_else(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "upgrade"))
}

/// The connection's buffers and limits, and its compressor settings when deflate was agreed
/// (the window bits come from the agreed header; level, pooling from the node's settings).
fn socket_options(node: &Node, agreed: Option<&Agreed>) -> yawc::Options {
    let max = node.config().max_frame_bytes;
    // yawc's bounds are exclusive: a message of exactly `max` bytes is accepted. They apply
    // to the inflated size too, so a small compressed frame cannot expand past them.
    let mut options = yawc::Options::default()
        .with_limits(max.saturating_add(1), max.saturating_add(1))
        .with_read_buffer_capacity(4 * 1024)
        .with_write_buffer_capacity(16 * 1024)
        .with_backpressure_boundary(256 * 1024 + max)
        .with_utf8();
    if let Some(a) = agreed {
        let cfg = node.config().ws_compression;
        options.compression = Some(yawc::DeflateOptions {
            level: yawc::CompressionLevel::new(cfg.level),
            server_max_window_bits: None,
            client_max_window_bits: None,
            server_no_context_takeover: a.server_no_context_takeover,
            client_no_context_takeover: a.client_no_context_takeover,
            compression_threshold: 0,
            // Without context takeover the deflate state is only needed while a message is
            // being (de)compressed: borrowed from the node's pool, not kept per connection.
            pool: (a.server_no_context_takeover || a.client_no_context_takeover)
                .then(|| node.deflate_pool().clone()),
        });
    }
    options
}

fn error_frame(req_id: Option<ReqId>, code: ErrorCode, message: impl Into<String>) -> Utf8Bytes {
    encode(&ServerFrame::Error { req_id, code, message: message.into() })
}

fn text(t: Utf8Bytes) -> Frame {
    Frame::text(bytes::Bytes::from(t))
}

fn close_frame(code: u16, reason: &str) -> Frame {
    Frame::close(CloseCode::from(code), reason)
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(close_frame(code, reason))).await;
}

/// A text frame's payload as the node's string type (`None`: not UTF-8).
fn utf8(frame: Frame) -> Option<Utf8Bytes> {
    Utf8Bytes::try_from(frame.into_payload()).ok()
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
    socket.send(text(encode(&challenge))).await.ok()?;
    metrics::inc(&METRICS.ws_frames_sent);
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(node.config().challenge_ttl_secs + 10);
    let mut strikes = 0u32;
    loop {
        // An oversized or malformed message: yawc has already queued its close (1009, 1007,
        // 1002) and flushes it with the error; nothing more to send.
        let frame = match tokio::time::timeout_at(deadline, socket.next_frame()).await {
            Err(_) => {
                close(socket, CLOSE_POLICY, "authentication timeout").await;
                return None;
            }
            Ok(Err(_)) => return None,
            Ok(Ok(f)) => {
                metrics::inc(&METRICS.ws_frames_received);
                f
            }
        };
        let input = match frame.opcode() {
            OpCode::Text => match utf8(frame) {
                Some(t) => t,
                None => return None,
            },
            OpCode::Close => return None,
            OpCode::Ping | OpCode::Pong | OpCode::Continuation => continue,
            OpCode::Binary => {
                let _ = socket
                    .send(text(error_frame(
                        None,
                        ErrorCode::InvalidFrame,
                        "binary frames are not supported",
                    )))
                    .await;
                continue;
            }
        };
        let (req_id, parsed) = reef_wire::parse_client_frame(&input);
        let reply = match parsed {
            Ok(ClientFrame::Auth { address, signature }) => {
                match node.verify_login(&nonce, expires, &address, &signature) {
                    Ok(()) => return Some(address),
                    Err(e) => {
                        let (code, message) = e.public();
                        let _ = socket.send(text(error_frame(req_id, code, message))).await;
                        close(socket, CLOSE_POLICY, "authentication failed").await;
                        return None;
                    }
                }
            }
            Ok(_) => error_frame(
                req_id,
                ErrorCode::Unauthenticated,
                "authenticate first: answer the challenge with an `auth` frame",
            ),
            Err(reef_wire::Error::Frame { code, message }) => error_frame(req_id, code, message),
            Err(e) => error_frame(req_id, ErrorCode::InvalidFrame, e.to_string()),
        };
        strikes += 1;
        if socket.send(text(reply)).await.is_err() {
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
        // `None`: the connection ended — closed by the agent, or by yawc after a protocol
        // error or an oversized message (it has then already queued its close code, 1009).
        let Some(frame) = msg else { break };
        metrics::inc(&METRICS.ws_frames_received);
        let text = match frame.opcode() {
            OpCode::Close => break,
            OpCode::Text => match utf8(frame) {
                Some(t) => t,
                None => break,
            },
            OpCode::Ping | OpCode::Pong | OpCode::Continuation => continue,
            OpCode::Binary => {
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
    Sent(Result<(), yawc::WebSocketError>),
    Kill(u16, String),
    Done,
}

async fn writer(
    mut sink: SplitSink<WebSocket, Frame>,
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
                        sink.feed(text(first.into_text())).await?;
                        let mut n = 1;
                        for _ in 0..64 {
                            match rx.try_recv() {
                                Ok(out) => {
                                    sink.feed(text(out.into_text())).await?;
                                    n += 1;
                                }
                                Err(_) => break,
                            }
                        }
                        sink.flush().await?;
                        METRICS.ws_frames_sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        Ok::<(), yawc::WebSocketError>(())
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
                let _ =
                    tokio::time::timeout(CLOSE_GRACE, sink.send(close_frame(code, &reason))).await;
                return;
            }
            Step::Done => {
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
                return;
            }
        }
    }
}
