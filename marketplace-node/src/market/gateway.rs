//! The marketplace gateway of a mesh: a node that runs no marketplace (started without
//! `--rpc-url`) still answers `/v1/market/...` by forwarding each request over NATS to a node
//! of the same mesh that runs one. Agents connected anywhere in the mesh can so bid, enter
//! contests and follow bounties, and posters can post through any node.
//!
//! Wire: a NATS request on `reef.<mesh id>.market.http` (queue group `reef-market`, so one
//! marketplace node answers each request). Headers carry the method, the path with its query,
//! the caller's `Authorization` header and its address (long-polls are bounded per client);
//! the payload is the body. The reply's headers carry the status; its payload is the body.
//! Bearer tokens live in the mesh's shared database, so the answering node checks the token
//! the agent got from its own node. Bodies are bounded by the smaller of the marketplace's
//! own limit (1 MiB) and what the NATS server accepts; larger ones get 413, not a timeout.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_nats::{HeaderMap, HeaderValue};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Request, State},
    http::{HeaderName, StatusCode, header},
    response::Response,
    routing::any,
};
use futures::StreamExt;
use serde_json::json;
use tower::ServiceExt;

use super::rest::json_error as error;
use crate::ioa::mesh::Mesh;

/// The service name under the mesh's subjects.
const SERVICE: &str = "market.http";
/// Queue group of the answering marketplace nodes.
const QUEUE: &str = "reef-market";
/// Largest request or response body the marketplace takes (its `DefaultBodyLimit`).
const MAX_BODY: usize = 1 << 20;
/// Room left in a NATS message for the headers.
const HEADER_ROOM: usize = 8 << 10;
/// Longest a forwarded request may take: the longest long-poll (30 s) plus a chain call.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(45);
/// Forwarded requests a marketplace node serves at once (long-polls hold theirs); more are
/// answered 503 right away.
const MAX_IN_FLIGHT: usize = 1024;

const H_METHOD: &str = "Reef-Method";
const H_URI: &str = "Reef-Uri";
const H_PEER: &str = "Reef-Peer";
const H_STATUS: &str = "Reef-Status";
const H_AUTH: &str = "Authorization";
const H_TYPE: &str = "Content-Type";

fn body_limit(client: &async_nats::Client) -> usize {
    MAX_BODY.min(client.max_payload().saturating_sub(HEADER_ROOM))
}

/// The `/v1/market/...` routes of a node without a marketplace: each request is forwarded to
/// a marketplace node of the mesh.
pub fn router(mesh: Mesh) -> Router {
    Router::new()
        .route("/v1/market", any(forward))
        .route("/v1/market/{*rest}", any(forward))
        .with_state(mesh)
}

/// The `/v1/market/...` routes of a node with neither a marketplace nor a mesh: a clear 404.
pub fn absent_router() -> Router {
    async fn absent() -> Response {
        error(
            StatusCode::NOT_FOUND,
            "no_market",
            "this node runs no marketplace: start it with --rpc-url, or mesh it (--nats-url, \
             shared --database-url) with a node that does",
        )
    }
    Router::new().route("/v1/market", any(absent)).route("/v1/market/{*rest}", any(absent))
}

async fn forward(State(mesh): State<Mesh>, req: Request) -> Response {
    let client = mesh.client();
    let limit = body_limit(client);
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body over {limit} bytes"),
            );
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(H_METHOD, parts.method.as_str());
    let uri = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
    headers.insert(H_URI, uri);
    if let Some(peer) = peer {
        headers.insert(H_PEER, peer.to_string().as_str());
    }
    for (name, ours) in [(header::AUTHORIZATION, H_AUTH), (header::CONTENT_TYPE, H_TYPE)] {
        if let Some(v) = parts.headers.get(&name).and_then(|v| v.to_str().ok()) {
            headers.insert(ours, v);
        }
    }
    let request =
        async_nats::Request::new().headers(headers).payload(body).timeout(Some(FORWARD_TIMEOUT));
    let reply = match client.send_request(mesh.service_subject(SERVICE), request).await {
        Ok(m) => m,
        Err(e) => {
            use async_nats::RequestErrorKind as K;
            return match e.kind() {
                K::NoResponders => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_market",
                    "no node of this mesh runs the marketplace right now (start one with \
                     --rpc-url); retry later",
                ),
                K::TimedOut => error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "mesh_timeout",
                    format!(
                        "the marketplace node did not answer within {}s; retry",
                        FORWARD_TIMEOUT.as_secs()
                    ),
                ),
                K::MaxPayloadExceeded => error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("request over the mesh's message limit: {e}"),
                ),
                _ => error(
                    StatusCode::BAD_GATEWAY,
                    "mesh_unavailable",
                    format!("cannot reach the mesh over NATS: {e}; retry"),
                ),
            };
        }
    };
    let h = reply.headers.as_ref();
    let status = h
        .and_then(|h| h.get(H_STATUS))
        .and_then(|v| v.as_str().parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
    let Some(status) = status else {
        return error(StatusCode::BAD_GATEWAY, "mesh_reply", "malformed reply from the mesh");
    };
    let mut resp = Response::new(Body::from(reply.payload));
    *resp.status_mut() = status;
    if let Some(t) = h.and_then(|h| h.get(H_TYPE)).and_then(|v| v.as_str().parse().ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, t);
    }
    resp
}

/// Answer the mesh's forwarded marketplace requests with `app` (the marketplace's routes)
/// until the NATS subscription ends.
pub async fn serve(mesh: Mesh, app: Router) -> crate::ioa::error::Result<()> {
    let client = mesh.client().clone();
    let mut requests = client
        .queue_subscribe(mesh.service_subject(SERVICE), QUEUE.to_string())
        .await
        .map_err(|e| crate::ioa::error::Error::Mesh(e.to_string()))?;
    client.flush().await.map_err(|e| crate::ioa::error::Error::Mesh(e.to_string()))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            let Some(reply_to) = msg.reply.clone() else { continue };
            let (client, app) = (client.clone(), app.clone());
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                let busy = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "the marketplace node is busy; retry",
                );
                tokio::spawn(async move { answer(&client, reply_to, busy).await });
                continue;
            };
            tokio::spawn(async move {
                let resp = match rebuild(msg.headers.as_ref(), msg.payload) {
                    Ok(req) => match app.oneshot(req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    },
                    Err(why) => error(StatusCode::BAD_REQUEST, "bad_request", why),
                };
                answer(&client, reply_to, resp).await;
                drop(permit);
            });
        }
    });
    Ok(())
}

/// The HTTP request a forwarded message stands for.
fn rebuild(h: Option<&HeaderMap>, body: Bytes) -> Result<Request, String> {
    let h = h.ok_or("forwarded request without headers")?;
    let get = |name: &str| h.get(name).map(HeaderValue::as_str);
    let method: axum::http::Method =
        get(H_METHOD).ok_or("no method")?.parse().map_err(|_| "bad method")?;
    let uri: axum::http::Uri = get(H_URI).ok_or("no uri")?.parse().map_err(|_| "bad uri")?;
    if uri.path() != "/v1/market" && !uri.path().starts_with("/v1/market/") {
        return Err(format!("{} is not a marketplace path", uri.path()));
    }
    let mut req = Request::builder().method(method).uri(uri);
    for (ours, name) in [(H_AUTH, header::AUTHORIZATION), (H_TYPE, header::CONTENT_TYPE)] {
        if let Some(v) = get(ours) {
            req = req.header::<HeaderName, &str>(name, v);
        }
    }
    let mut req = req.body(Body::from(body)).map_err(|e| e.to_string())?;
    if let Some(peer) = get(H_PEER).and_then(|p| p.parse::<SocketAddr>().ok()) {
        req.extensions_mut().insert(ConnectInfo(peer));
    }
    Ok(req)
}

async fn answer(client: &async_nats::Client, reply_to: async_nats::Subject, resp: Response) {
    let limit = body_limit(client);
    let status = resp.status();
    let content_type =
        resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, content_type, body) = match axum::body::to_bytes(resp.into_body(), limit).await {
        Ok(b) => (status, content_type, b),
        Err(_) => {
            let body = json!({
                "code": "too_large",
                "error": "too_large",
                "message": format!("the answer is over the mesh's {limit}-byte message limit; ask the marketplace node directly"),
            });
            (StatusCode::BAD_GATEWAY, Some("application/json".into()), body.to_string().into())
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(H_STATUS, status.as_str());
    if let Some(t) = content_type {
        headers.insert(H_TYPE, t.as_str());
    }
    if let Err(e) = client.publish_with_headers(reply_to, headers, body).await {
        tracing::warn!(error = %e, "mesh: cannot answer a forwarded marketplace request");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(method: &str, uri: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(H_METHOD, method);
        h.insert(H_URI, uri);
        h
    }

    /// A forwarded message becomes the request it stands for, with the caller's token and
    /// address; anything else, or a path outside the marketplace, is refused.
    #[test]
    fn forwarded_requests_are_rebuilt_and_checked() {
        let mut h = headers("POST", "/v1/market/bounties/0xab/bids?x=1");
        h.insert(H_AUTH, "Bearer t0k");
        h.insert(H_TYPE, "application/json");
        h.insert(H_PEER, "10.1.2.3:4567");
        let req = rebuild(Some(&h), Bytes::from_static(b"{}")).unwrap();
        assert_eq!(req.method(), axum::http::Method::POST);
        assert_eq!(req.uri(), "/v1/market/bounties/0xab/bids?x=1");
        assert_eq!(req.headers()[header::AUTHORIZATION], "Bearer t0k");
        assert_eq!(req.headers()[header::CONTENT_TYPE], "application/json");
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().unwrap().0;
        assert_eq!(peer, "10.1.2.3:4567".parse().unwrap());

        let refused = |h: Option<&HeaderMap>| rebuild(h, Bytes::new()).unwrap_err();
        assert!(refused(None).contains("without headers"));
        assert!(refused(Some(&headers("GET", "/v1/groups"))).contains("not a marketplace path"));
        assert!(refused(Some(&headers("GET", "/v1/marketx"))).contains("not a marketplace path"));
        assert!(refused(Some(&headers("G E T", "/v1/market/info"))).contains("bad method"));
        assert!(refused(Some(&HeaderMap::new())).contains("no method"));
        let no_peer = rebuild(Some(&headers("GET", "/v1/market/info")), Bytes::new()).unwrap();
        assert!(no_peer.extensions().get::<ConnectInfo<SocketAddr>>().is_none());
    }
}
