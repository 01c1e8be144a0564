//! Swarm frames on the node's WebSocket (`/v1/ws`). `swarm_ask` and `swarm_pay` run in their
//! own task and answer later with the request's `req_id`, so the connection keeps reading
//! (a poster may have many queries open on one connection).

use axum::extract::ws::Utf8Bytes;
use reef_wire::{ClientFrame, ErrorCode, ReqId, ServerFrame};
use serde_json::json;

use crate::ioa::hub::ConnHandle;
use crate::ioa::{Node, encode};

fn ok(req_id: Option<ReqId>, result: serde_json::Value) -> Utf8Bytes {
    encode(&ServerFrame::Ok { req_id, result })
}

fn error(req_id: Option<ReqId>, e: &crate::ioa::Error) -> Utf8Bytes {
    let (code, message) = e.public();
    encode(&ServerFrame::Error { req_id, code, message })
}

fn value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Handles a swarm frame; the reply to queue now, if any (asks and payments reply later).
pub fn handle(
    node: &Node,
    conn: &ConnHandle,
    req_id: Option<ReqId>,
    frame: ClientFrame,
) -> Option<Utf8Bytes> {
    let Some(swarm) = node.swarm() else {
        return Some(encode(&ServerFrame::Error {
            req_id,
            code: ErrorCode::NotFound,
            message: "this node runs no swarm auctions (it was started without --rpc-url)".into(),
        }));
    };
    let me = conn.address;
    Some(match frame {
        ClientFrame::SwarmListen(l) => match swarm.listen(conn, &l.skills) {
            Ok(n) => ok(req_id, json!({ "skills": n })),
            Err(e) => error(req_id, &e),
        },
        ClientFrame::SwarmBid(b) => match swarm.bid(conn, &b) {
            Ok(()) => ok(req_id, json!({ "query_id": b.query_id })),
            Err(e) => error(req_id, &e),
        },
        ClientFrame::SwarmAnswer(a) => {
            let id = a.query_id.clone();
            match swarm.answer(conn, a) {
                Ok(()) => ok(req_id, json!({ "query_id": id })),
                Err(e) => error(req_id, &e),
            }
        }
        ClientFrame::SwarmAsk(ask) => {
            let (swarm, conn) = (swarm.clone(), conn.clone());
            tokio::spawn(async move {
                let reply = match swarm.ask(me, ask).await {
                    Ok(outcome) => ok(req_id, value(&outcome)),
                    Err(e) => error(req_id, &e),
                };
                conn.push(reply);
            });
            return None;
        }
        ClientFrame::SwarmPay(pay) => {
            let (swarm, conn) = (swarm.clone(), conn.clone());
            tokio::spawn(async move {
                let reply = match swarm.pay(me, pay).await {
                    Ok(outcome) => ok(req_id, value(&outcome)),
                    Err(e) => error(req_id, &e),
                };
                conn.push(reply);
            });
            return None;
        }
        _ => encode(&ServerFrame::Error {
            req_id,
            code: ErrorCode::InvalidFrame,
            message: "not a swarm frame".into(),
        }),
    })
}
