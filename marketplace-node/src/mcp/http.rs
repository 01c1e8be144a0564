//! `/mcp` on the node: the MCP server over streamable HTTP, behind the node's bearer tokens.

use std::sync::Arc;

use axum::{
    Router,
    extract::{FromRequestParts, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

use super::ReefMcp;
use crate::ioa::{Node, rest::Caller};

/// The `/mcp` route: `node_url` is where the tools reach the node's own REST API (its listen
/// address). A request without a valid bearer token (`POST /v1/auth/challenge`, then
/// `/v1/auth/login`) is refused with 401 before it reaches the MCP server.
pub fn router(node: Node, node_url: &str) -> Router {
    let url = node_url.to_string();
    let service = StreamableHttpService::new(
        move || Ok(ReefMcp::on_node(&url)),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    // `route_layer`: only `/mcp` is guarded (with `layer`, the router's fallback was too, so
    // once merged into the node's router every unknown path answered 401 instead of 404).
    Router::new()
        .nest_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(node, authenticate))
}

/// Refuses a request without a valid bearer token with the node's own 401 answer.
async fn authenticate(State(node): State<Node>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Err(e) = Caller::from_request_parts(&mut parts, &node).await {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
