//! The HTTP routes: the agent cards (public) and the JSON-RPC endpoints (bearer token), with
//! their OpenAPI description.

use alloy::primitives::Address;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, request::Parts},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{A2a, card};
use crate::{ioa::rest::Caller, market::MarketError, openapi};

/// The authenticated caller of an A2A request (the node's bearer token).
#[derive(Debug, Clone, Copy)]
pub struct A2aCaller(pub Address);

impl FromRequestParts<A2a> for A2aCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, a: &A2a) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, a.market().node())
            .await
            .map(|c| Self(c.0))
            .map_err(IntoResponse::into_response)
    }
}
use crate::erc8004::base_url;

impl A2a {
    /// The node's own card.
    fn node_card(&self, base: &str) -> Value {
        card::node_card(base, &self.market().node().config().node_id, self.terms().clone())
    }
}

/// The node's A2A agent card (public): hire the market's agents by skills.
#[utoipa::path(get, path = "/.well-known/agent-card.json", tag = "a2a",
    responses(
        (status = 200, description = "The A2A 1.0 AgentCard of the node (docs/a2a.md); its Reef terms extension's params follow docs/schemas/a2a.terms.json", body = Object),
        (status = 400, description = "No valid Host header (bad_request)", body = openapi::ErrorBody),
    ))]
async fn node_card(State(a): State<A2a>, headers: HeaderMap) -> Result<Json<Value>, MarketError> {
    let base = base_url(&headers)?;
    Ok(Json(a.node_card(&base)))
}

/// An agent's A2A agent card (public): hire the agent's skills through the market.
#[utoipa::path(get, path = "/a2a/agents/{address}/.well-known/agent-card.json", tag = "a2a",
    params(("address" = String, Path, pattern = "^0x[0-9a-fA-F]{40}$", description = "The agent's address (0x + 40 hex digits)")),
    responses(
        (status = 200, description = "The A2A 1.0 AgentCard of the agent (docs/a2a.md)", body = Object),
        (status = 400, description = "Not an address, or no Host header (bad_request)", body = openapi::ErrorBody),
        (status = 404, description = "No agent with this address on this node (not_found)", body = openapi::ErrorBody),
    ))]
async fn agent_card(
    State(a): State<A2a>,
    Path(address): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, MarketError> {
    let base = base_url(&headers)?;
    let (agent, info) = crate::erc8004::known_agent(a.market().node(), &address).await?;
    let description = if info.card.description.is_empty() {
        format!("Reef agent {agent}, hired through the node's marketplace")
    } else {
        info.card.description.clone()
    };
    Ok(Json(card::agent_card(&card::CardInputs {
        name: if info.card.name.is_empty() { agent.to_string() } else { info.card.name.clone() },
        description,
        skills: info.card.skills.clone(),
        image: info.card.image.clone(),
        endpoint: format!("{base}/a2a/agents/{agent}"),
        base_url: base,
        terms: a.terms().clone(),
    })))
}

/// The node's A2A JSON-RPC endpoint (A2A 1.0 methods; `SendStreamingMessage` and
/// `SubscribeToTask` answer with server-sent events).
#[utoipa::path(post, path = "/a2a", tag = "a2a",
    request_body(content = Object, description = "A JSON-RPC 2.0 request: SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask, SubscribeToTask (docs/a2a.md)", content_type = "application/json"),
    responses(
        (status = 200, description = "A JSON-RPC response (a result, or an error with an A2A code), or for the streaming methods an event stream of JSON-RPC responses", content(
            (Object = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 401, description = "No valid bearer token (unauthenticated)", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn node_rpc(
    State(a): State<A2a>,
    caller: A2aCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    a.rpc(caller.0, None, &headers, &body).await
}

/// An agent's A2A JSON-RPC endpoint: tasks are posted for the agent's skills.
#[utoipa::path(post, path = "/a2a/agents/{address}", tag = "a2a",
    params(("address" = String, Path, pattern = "^0x[0-9a-fA-F]{40}$", description = "The agent's address (0x + 40 hex digits)")),
    request_body(content = Object, description = "A JSON-RPC 2.0 request (see POST /a2a)", content_type = "application/json"),
    responses(
        (status = 200, description = "A JSON-RPC response, or an event stream of them", content(
            (Object = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "Not an address (bad_request)", body = openapi::ErrorBody),
        (status = 401, description = "No valid bearer token (unauthenticated)", body = openapi::ErrorBody),
        (status = 404, description = "No agent with this address on this node (not_found)", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn agent_rpc(
    State(a): State<A2a>,
    Path(address): Path<String>,
    caller: A2aCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(agent) = address.parse::<Address>() else {
        return MarketError::BadRequest(format!("{address:?} is not an address")).into_response();
    };
    match a.market().node().get_agent(&agent).await {
        Ok(_) => a.rpc(caller.0, Some(agent), &headers, &body).await,
        Err(crate::ioa::Error::NotFound(_)) => {
            MarketError::NotFound(format!("agent {agent} on this node")).into_response()
        }
        Err(e) => MarketError::from(e).into_response(),
    }
}

/// The A2A routes with their OpenAPI description.
pub fn routes() -> OpenApiRouter<A2a> {
    OpenApiRouter::new()
        .routes(routes!(node_card))
        .routes(routes!(agent_card))
        .routes(routes!(node_rpc))
        .routes(routes!(agent_rpc))
}

/// The A2A routes.
pub fn router(a: A2a) -> Router {
    let (router, _) = routes().split_for_parts();
    router.with_state(a)
}
