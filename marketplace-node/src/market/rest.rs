//! REST routes of the marketplace (`/v1/market/...`), merged into the node's router. Writes
//! need the IoA bearer token (`POST /v1/auth/challenge`, `/v1/auth/login`).

use std::net::SocketAddr;

use axum::{
    Extension, Json, Router,
    extract::{ConnectInfo, FromRequestParts, Path, Query, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::{
    Market, MarketError,
    coordinator::{BidRequest, PostRequest},
};
use crate::ioa::rest::Caller;

impl IntoResponse for MarketError {
    fn into_response(self) -> Response {
        let this = match self {
            Self::Ioa(e) => return crate::ioa::AppError(e).into_response(),
            other => other,
        };
        if let Self::Busy { retry_after_ms, .. } = &this {
            let body = json!({ "code": "busy", "error": "busy", "message": this.to_string(), "retry_after_ms": retry_after_ms });
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            if let Ok(v) =
                axum::http::HeaderValue::from_str(&retry_after_ms.div_ceil(1000).to_string())
            {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            return r;
        }
        let (status, code) = match &this {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::Chain(_) => (StatusCode::BAD_GATEWAY, "chain_unavailable"),
            Self::Ioa(_) | Self::Db(_) | Self::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let message = match status {
            StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %this, "market request failed");
                "internal error; see the node's log".to_string()
            }
            _ => this.to_string(),
        };
        json_error(status, code, message)
    }
}

/// The marketplace's error answer: `{"code": <code>, "error": <code>, "message": <what to do>}`,
/// the same shape as the IoA routes' errors (`error` is kept for clients written against the
/// first marketplace answers; docs/earning.md "Errors").
pub(crate) fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "code": code, "error": code, "message": message.into() })))
        .into_response()
}

/// The authenticated caller of a market request.
#[derive(Debug, Clone, Copy)]
pub struct MarketCaller(pub alloy::primitives::Address);

impl FromRequestParts<Market> for MarketCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, m: &Market) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, m.node())
            .await
            .map(|c| Self(c.0))
            .map_err(IntoResponse::into_response)
    }
}

/// Optional caller (reads work without a token, but the poster sees more with one).
#[derive(Debug, Clone, Copy)]
pub struct MaybeCaller(pub Option<alloy::primitives::Address>);

impl FromRequestParts<Market> for MaybeCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, m: &Market) -> Result<Self, Self::Rejection> {
        if parts.headers.get(axum::http::header::AUTHORIZATION).is_none() {
            return Ok(Self(None));
        }
        MarketCaller::from_request_parts(parts, m).await.map(|c| Self(Some(c.0)))
    }
}

/// The marketplace routes.
pub fn router(market: Market) -> Router {
    Router::new()
        .route("/v1/market/info", get(info))
        .route("/v1/market/bounties", post(post_bounty).get(list))
        .route("/v1/market/bounties/{id}", get(view))
        .route("/v1/market/bounties/{id}/bids", post(bid))
        .route("/v1/market/bounties/{id}/entries", post(entry))
        .route("/v1/market/agents/{address}/reputation", get(reputation))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(market)
}

async fn info(State(m): State<Market>) -> Result<Json<Value>, MarketError> {
    m.info().await.map(Json)
}

/// An agent's reputation score with every component explained (public: built from on-chain
/// outcomes). 404 `no_index` when the node runs without its embedded indexer.
async fn reputation(
    State(m): State<Market>,
    Path(address): Path<String>,
) -> Result<Json<Value>, MarketError> {
    let agent: alloy::primitives::Address = address
        .parse()
        .map_err(|_| MarketError::BadRequest(format!("{address:?} is not an address")))?;
    m.reputation_of(agent).await.map(Json)
}

async fn post_bounty(
    State(m): State<Market>,
    MarketCaller(caller): MarketCaller,
    body: Result<Json<PostRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), MarketError> {
    let Json(req) = body.map_err(|e| MarketError::BadRequest(format!("malformed bounty: {e}")))?;
    let v = m.post(caller, req).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn bid(
    State(m): State<Market>,
    MarketCaller(caller): MarketCaller,
    Path(id): Path<String>,
    body: Result<Json<BidRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, MarketError> {
    let Json(req) = body.map_err(|e| MarketError::BadRequest(format!("malformed bid: {e}")))?;
    m.bid(caller, &normalize(&id)?, req).await.map(Json)
}

async fn entry(
    State(m): State<Market>,
    MarketCaller(caller): MarketCaller,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, MarketError> {
    let Json(v) = body.map_err(|e| MarketError::BadRequest(format!("malformed entry: {e}")))?;
    let result = v
        .get("result")
        .cloned()
        .ok_or_else(|| MarketError::BadRequest("entry needs a `result`".into()))?;
    m.entry(caller, &normalize(&id)?, result).await.map(Json)
}

/// Long-poll parameters of a bounty view.
#[derive(Debug, Default, serde::Deserialize)]
struct ViewQuery {
    /// Wait (up to this many ms, at most 30 s) for the bounty to change.
    wait_ms: Option<u64>,
    /// The number of log events the client has seen: answer once there are more.
    after_events: Option<usize>,
}

async fn view(
    State(m): State<Market>,
    MaybeCaller(caller): MaybeCaller,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(id): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Result<Json<Value>, MarketError> {
    let id = normalize(&id)?;
    match q.wait_ms {
        Some(ms) if ms > 0 => {
            // Long-polls are bounded per client: the logged-in address, else the peer's IP.
            let client = match (caller, peer) {
                (Some(a), _) => a.to_string(),
                (None, Some(Extension(ConnectInfo(addr)))) => format!("ip {}", addr.ip()),
                (None, None) => "anonymous".to_string(),
            };
            let wait = std::time::Duration::from_millis(ms);
            m.view_wait(caller, &client, &id, q.after_events.unwrap_or(0), wait).await.map(Json)
        }
        _ => m.view(caller, &id).await.map(Json),
    }
}

async fn list(State(m): State<Market>) -> Result<Json<Value>, MarketError> {
    let rows = m.store().list(200).await?;
    let v: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "id": r.id, "phase": r.phase, "poster": r.poster, "winner": r.winner, "note": r.note }))
        .collect();
    Ok(Json(Value::Array(v)))
}

fn normalize(id: &str) -> Result<String, MarketError> {
    super::parse_id(id).map(super::id_hex)
}
