//! REST routes of the marketplace (`/v1/market/...`), merged into the node's router. Writes
//! need the IoA bearer token (`POST /v1/auth/challenge`, `/v1/auth/login`).

use std::net::SocketAddr;

use axum::{
    Extension, Json, Router,
    extract::{ConnectInfo, FromRequestParts, Path, Query, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Market, MarketError,
    coordinator::{BidRequest, BountyView, PostRequest},
    store::Phase,
};
use crate::{ioa::rest::Caller, openapi};

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

/// The marketplace routes with their OpenAPI description ([`crate::openapi`]).
pub fn routes() -> OpenApiRouter<Market> {
    OpenApiRouter::new()
        .routes(routes!(info))
        .routes(routes!(post_bounty, list))
        .routes(routes!(view))
        .routes(routes!(bid))
        .routes(routes!(entry))
        .routes(routes!(reputation))
}

/// The marketplace routes.
pub fn router(market: Market) -> Router {
    let (router, _) = routes().split_for_parts();
    router.layer(axum::extract::DefaultBodyLimit::max(1 << 20)).with_state(market)
}

/// Chain facts a poster or agent needs (public).
#[utoipa::path(get, path = "/v1/market/info", tag = "market",
    responses(
        (status = 200, description = "The marketplace's chain facts", body = openapi::MarketInfo),
        (status = 404, description = "This node runs no marketplace and has no mesh (no_market)", body = openapi::ErrorBody),
        (status = 502, description = "The chain cannot be read (chain_unavailable)", body = openapi::ErrorBody),
    ))]
async fn info(State(m): State<Market>) -> Result<Json<Value>, MarketError> {
    m.info().await.map(Json)
}

/// An agent's reputation score with every component explained (public: built from on-chain
/// outcomes). 409 when the node runs without its embedded indexer.
#[utoipa::path(get, path = "/v1/market/agents/{address}/reputation", tag = "market",
    params(("address" = String, Path, pattern = "^0x[0-9a-fA-F]{40}$", description = "The agent's address (0x + 40 hex digits)")),
    responses(
        (status = 200, description = "The score and its components", body = openapi::Reputation),
        (status = 400, description = "Not an address (bad_request)", body = openapi::ErrorBody),
        (status = 404, description = "This node runs no marketplace and has no mesh (no_market)", body = openapi::ErrorBody),
        (status = 409, description = "The node runs without its embedded indexer (conflict)", body = openapi::ErrorBody),
    ))]
async fn reputation(
    State(m): State<Market>,
    Path(address): Path<String>,
) -> Result<Json<Value>, MarketError> {
    let agent: alloy::primitives::Address = address
        .parse()
        .map_err(|_| MarketError::BadRequest(format!("{address:?} is not an address")))?;
    m.reputation_of(agent).await.map(Json)
}

/// Registers a bounty posted by the caller and sends its call for proposals.
#[utoipa::path(post, path = "/v1/market/bounties", tag = "market",
    request_body = openapi::PostRequest,
    responses(
        (status = 201, description = "Registered (or registered already: `new` is false)", body = openapi::PostAnswer),
        (status = 400, description = "Malformed or inconsistent bounty (bad_request)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "record.poster is not the caller (forbidden)", body = openapi::ErrorBody),
        (status = 404, description = "This node runs no marketplace and has no mesh (no_market)", body = openapi::ErrorBody),
        (status = 409, description = "The bounty's state forbids it (conflict)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
        (status = 502, description = "The chain cannot be read (chain_unavailable)", body = openapi::ErrorBody),
        (status = 503, description = "Too many bid windows open: retry after `retry_after_ms` (busy; also a Retry-After header)", body = openapi::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = [])))]
async fn post_bounty(
    State(m): State<Market>,
    MarketCaller(caller): MarketCaller,
    body: Result<Json<PostRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), MarketError> {
    let Json(req) = body.map_err(|e| MarketError::BadRequest(format!("malformed bounty: {e}")))?;
    let v = m.post(caller, req).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// A sealed bid on a bounty in its bid window.
#[utoipa::path(post, path = "/v1/market/bounties/{id}/bids", tag = "market",
    params(("id" = String, Path, pattern = "^(0x)?[0-9a-fA-F]{1,64}$", description = "Bounty id (hex, up to 64 digits)")),
    request_body = openapi::BidRequest,
    responses(
        (status = 200, description = "Accepted", body = openapi::BidAnswer),
        (status = 400, description = "Malformed or invalid bid, or a bad id (bad_request)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "bid.bidder is not the caller, or the caller may not bid (forbidden)", body = openapi::ErrorBody),
        (status = 404, description = "No such bounty (not_found), or no marketplace (no_market)", body = openapi::ErrorBody),
        (status = 409, description = "The bid window is closed (conflict)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
        (status = 502, description = "The chain cannot be read (chain_unavailable)", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn bid(
    State(m): State<Market>,
    MarketCaller(caller): MarketCaller,
    Path(id): Path<String>,
    body: Result<Json<BidRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, MarketError> {
    let Json(req) = body.map_err(|e| MarketError::BadRequest(format!("malformed bid: {e}")))?;
    m.bid(caller, &normalize(&id)?, req).await.map(Json)
}

/// A contest entry's result (after `submitEntry` on-chain).
#[utoipa::path(post, path = "/v1/market/bounties/{id}/entries", tag = "market",
    params(("id" = String, Path, pattern = "^(0x)?[0-9a-fA-F]{1,64}$", description = "Bounty id (hex, up to 64 digits)")),
    request_body = openapi::EntryRequest,
    responses(
        (status = 200, description = "Stored (`accepted` false: entered already)", body = openapi::EntryAnswer),
        (status = 400, description = "Malformed entry or a bad id (bad_request)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "The poster cannot enter its own contest (forbidden)", body = openapi::ErrorBody),
        (status = 404, description = "No such bounty (not_found), or no marketplace (no_market)", body = openapi::ErrorBody),
        (status = 409, description = "Not an open contest, or past its deadline (conflict)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
        (status = 502, description = "The chain cannot be read (chain_unavailable)", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
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
#[derive(Debug, Default, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ViewQuery {
    /// Wait (up to this many ms, at most 30 s) for the bounty to change.
    wait_ms: Option<u64>,
    /// The number of log events the client has seen: answer once there are more.
    after_events: Option<usize>,
}

/// A bounty's view; its poster (with the token) also sees the ranking and the winning bid.
#[utoipa::path(get, path = "/v1/market/bounties/{id}", tag = "market",
    description = "Public. With `wait_ms`, a long-poll: answered once the bounty's log holds more than `after_events` events, it is final, or the wait (at most 30 s) is over; past the node's long-poll bounds it is answered at once with `long_poll_declined`.",
    params(("id" = String, Path, pattern = "^(0x)?[0-9a-fA-F]{1,64}$", description = "Bounty id (hex, up to 64 digits)"), ViewQuery),
    responses(
        (status = 200, description = "The bounty", body = openapi::BountyView),
        (status = 400, description = "Not a hex bounty id, or a bad query parameter (bad_request)", body = openapi::ErrorBody),
        (status = 401, description = "An Authorization header with an unknown token", body = openapi::ErrorBody),
        (status = 404, description = "No such bounty (not_found), or no marketplace (no_market)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security((), ("bearer" = [])))]
async fn view(
    State(m): State<Market>,
    MaybeCaller(caller): MaybeCaller,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(id): Path<String>,
    query: Result<Query<ViewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<BountyView>, MarketError> {
    let Query(q) = query.map_err(|e| MarketError::BadRequest(format!("malformed query: {e}")))?;
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

/// One bounty of the list.
#[derive(Debug, Serialize, ToSchema)]
struct BountySummary {
    /// Bounty id (0x + 64 lower-case hex digits).
    #[schema(pattern = "^0x[0-9a-f]{64}$")]
    id: String,
    /// Lifecycle phase.
    #[schema(value_type = String)]
    phase: Phase,
    /// The poster's address.
    poster: String,
    /// The winning bidder, once chosen.
    winner: Option<String>,
    /// Human note on the last transition.
    note: Option<String>,
}

/// The most recent bounties on this node (public).
#[utoipa::path(get, path = "/v1/market/bounties", tag = "market",
    responses(
        (status = 200, description = "Up to 200 bounties, newest first", body = Vec<BountySummary>),
        (status = 404, description = "This node runs no marketplace and has no mesh (no_market)", body = openapi::ErrorBody),
    ))]
async fn list(State(m): State<Market>) -> Result<Json<Vec<BountySummary>>, MarketError> {
    let rows = m.store().list(200).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| BountySummary {
                id: r.id.to_string(),
                phase: r.phase,
                poster: r.poster.to_string(),
                winner: r.winner.map(|w| w.to_string()),
                note: r.note,
            })
            .collect(),
    ))
}

fn normalize(id: &str) -> Result<String, MarketError> {
    super::parse_id(id).map(super::id_hex)
}
