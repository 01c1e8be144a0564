//! The node's OpenAPI 3.1 description, served at `GET /v1/openapi.json` on every node.
//!
//! Generated from the code: the IoA, marketplace, metrics and dashboard routers are `utoipa-axum`
//! [`OpenApiRouter`](utoipa_axum::router::OpenApiRouter)s, so a route and its description are
//! registered by the same `routes!(...)` call; the few routes that are not plain handlers (the MCP
//! service, this document) are described here. Bodies that the protocol's JSON Schemas
//! (`docs/schemas/`) already define are components built from those very files (one source for
//! both, so they cannot disagree); REST-only bodies are `ToSchema` structs next to their handlers.
//! docs/openapi.md says how it is checked (schemathesis against a live node).

use std::{borrow::Cow, sync::OnceLock};

use axum::{Json, Router};
use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ObjectBuilder, RefOr,
        schema::Schema,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

/// Where the document is served.
pub const PATH: &str = "/v1/openapi.json";

/// The name of the bearer security scheme (a token from `POST /v1/auth/login`).
pub const BEARER: &str = "bearer";

/// The name of the dashboard's session-cookie security scheme (the `reef_session` cookie that
/// `POST /v1/dashboard/session` sets).
pub const SESSION: &str = "session";

/// Declares a unit type standing for a body whose JSON Schema lives in `docs/schemas/`, and the
/// table of those files: the type gives handlers' `#[utoipa::path]` something to reference,
/// and [`document`] replaces its placeholder component with the file's schema.
macro_rules! protocol_schemas {
    ($($(#[$doc:meta])* $ty:ident as $name:literal = $file:literal;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $ty;

            impl utoipa::PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new()
                        .description(Some(concat!("docs/schemas/", $file)))
                        .into()
                }
            }

            impl utoipa::ToSchema for $ty {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed($name)
                }
            }
        )*

        /// (component name, file in docs/schemas, its text).
        const PROTOCOL_SCHEMAS: &[(&str, &str, &str)] = &[
            $(($name, $file, include_str!(concat!("../../docs/schemas/", $file))),)*
        ];
    };
}

protocol_schemas! {
    /// Every REST error answer: `{code, error, message}` (+ `retry_after_ms` when busy).
    ErrorBody as "Error" = "rest_error.json";
    /// An agent's self-description (`POST /v1/agents`).
    AgentCard as "AgentCard" = "agent_card.json";
    /// A discovery query (`POST /v1/discover`).
    AgentQuery as "AgentQuery" = "agent_query.json";
    /// A registered agent.
    AgentInfo as "AgentInfo" = "agent_info.json";
    /// A group and its members.
    GroupInfo as "GroupInfo" = "group_info.json";
    /// A stored group message (the WebSocket `message` frame without its `type`).
    GroupMessage as "GroupMessage" = "server.message.json";
    /// `GET /v1/market/info`.
    MarketInfo as "MarketInfo" = "market.info.json";
    /// A bounty as the public (or, with more fields, its poster) sees it.
    BountyView as "BountyView" = "market.bounty_view.json";
    /// `POST /v1/market/bounties` body.
    PostRequest as "PostRequest" = "market.post_request.json";
    /// `POST /v1/market/bounties` answer.
    PostAnswer as "PostAnswer" = "market.post_answer.json";
    /// A sealed bid (`POST /v1/market/bounties/{id}/bids`).
    BidRequest as "BidRequest" = "market.bid_request.json";
    /// The answer to a sealed bid.
    BidAnswer as "BidAnswer" = "market.bid_answer.json";
    /// A contest entry (`POST /v1/market/bounties/{id}/entries`).
    EntryRequest as "EntryRequest" = "market.entry_request.json";
    /// The answer to a contest entry.
    EntryAnswer as "EntryAnswer" = "market.entry_answer.json";
    /// An agent's reputation with every component explained.
    Reputation as "Reputation" = "market.reputation.json";
    /// `POST /v1/swarm/ask` body (the `swarm_ask` frame's fields).
    SwarmAskBody as "SwarmAsk" = "swarm.ask.json";
    /// `POST /v1/swarm/ask` answer (the `swarm_ask` frame's `ok` result).
    SwarmAskOutcome as "SwarmAskOutcome" = "swarm.ask_outcome.json";
    /// `POST /v1/swarm/pay` body (the `swarm_pay` frame's fields).
    SwarmPayBody as "SwarmPay" = "swarm.pay.json";
    /// `POST /v1/swarm/pay` answer (the `swarm_pay` frame's `ok` result).
    SwarmPayOutcome as "SwarmPayOutcome" = "swarm.pay_outcome.json";
}

/// An account address in a body: `0x` and 40 hex digits (any case).
#[derive(Debug, Clone, Copy)]
pub struct Address;

impl utoipa::PartialSchema for Address {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^0x[0-9a-fA-F]{40}$"))
            .description(Some("An account address: 0x and 40 hex digits"))
            .into()
    }
}

impl utoipa::ToSchema for Address {}

/// A transaction hash in a body: `0x` and 64 lower-case hex digits.
#[derive(Debug, Clone, Copy)]
pub struct TxHash;

impl utoipa::PartialSchema for TxHash {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^0x[0-9a-f]{64}$"))
            .description(Some("A transaction hash: 0x and 64 lower-case hex digits"))
            .into()
    }
}

impl utoipa::ToSchema for TxHash {}

/// The protocol JSON Schema behind `component`, as an OpenAPI component: the file without its
/// `$schema`/`$id` (the document is the context). `GroupMessage` is the `message` frame as
/// stored, without the frame's `type`.
fn protocol_component(component: &str, text: &str) -> Value {
    let mut schema: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        // The files are checked in and parsed by the tests below; a broken one still gives a
        // valid document that says so.
        Err(e) => return serde_json::json!({ "description": format!("unreadable schema: {e}") }),
    };
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
        o.remove("$id");
        if component == "GroupMessage" {
            if let Some(Value::Object(p)) = o.get_mut("properties") {
                p.remove("type");
            }
            if let Some(Value::Array(r)) = o.get_mut("required") {
                r.retain(|f| f != "type");
            }
            o.insert("title".into(), "stored message".into());
            o.insert(
                "description".into(),
                "A stored group message: the WebSocket `message` frame (docs/schemas/server.message.json) without its `type`.".into(),
            );
        }
    }
    schema
}

/// The bearer-token security scheme.
struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `POST /v1/auth/login` (sign the message of `POST /v1/auth/challenge` with the account's key, EIP-191).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::dashboard::auth::COOKIE,
                "The dashboard's session: a bearer token traded for an `HttpOnly` cookie by `POST /v1/dashboard/session` (docs/dashboard.md).",
            ))),
        );
    }
}

/// The MCP endpoint: the node's MCP server over streamable HTTP (JSON-RPC messages).
#[utoipa::path(
    post,
    path = "/mcp",
    tag = "mcp",
    summary = "MCP streamable-HTTP endpoint",
    description = "The node's MCP server (tools to find agents, post and follow bounties; docs/mcp.md) over the MCP streamable-HTTP transport: POST JSON-RPC messages, answered as JSON or an event stream; GET opens the server's event stream of a session; DELETE ends it. Needs the bearer token; a request without a valid one is refused before it reaches the MCP server.",
    request_body(content = Value, content_type = "application/json", description = "A JSON-RPC 2.0 message or batch (MCP)"),
    responses(
        (status = 200, description = "JSON-RPC answer", content(
            (Value = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 202, description = "Notification or response accepted"),
        (status = 400, description = "Not an MCP request"),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 404, description = "Unknown MCP session"),
        (status = 406, description = "The Accept header allows neither JSON nor an event stream"),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
#[allow(dead_code)] // described only: the route is the MCP service (crate::mcp::http)
fn mcp_post() {}

/// The MCP endpoint's event stream.
#[utoipa::path(
    get,
    path = "/mcp",
    tag = "mcp",
    summary = "MCP server-sent event stream",
    description = "The MCP streamable-HTTP transport's GET: the server's event stream of the session named in `Mcp-Session-Id`.",
    responses(
        (status = 200, description = "Event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "No session named"),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 404, description = "Unknown MCP session"),
        (status = 406, description = "The Accept header does not allow an event stream"),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
#[allow(dead_code)] // described only, like mcp_post
fn mcp_get() {}

/// Ends an MCP session.
#[utoipa::path(
    delete,
    path = "/mcp",
    tag = "mcp",
    summary = "End an MCP session",
    description = "The MCP streamable-HTTP transport's DELETE: ends the session named in `Mcp-Session-Id`.",
    responses(
        (status = 200, description = "Session ended"),
        (status = 202, description = "Session ended"),
        (status = 400, description = "No session named"),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 404, description = "Unknown MCP session"),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
#[allow(dead_code)] // described only, like mcp_post
fn mcp_delete() {}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    summary = "This OpenAPI description",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
async fn openapi_json() -> Json<Value> {
    Json(document().clone())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Reef node REST API",
        description = "The REST endpoints of a Reef node: the IoA switchboard (login, agent registry, discovery, groups) and the marketplace (`/v1/market/...`: bounties, sealed bids, contest entries, reputation), the web dashboard (`/`, `/dashboard/...`, `/v1/dashboard/...`), plus `/metrics`, the MCP endpoint and the WebSocket upgrade.\n\nProtocol: https://github.com/reef-network/reef/blob/main/docs/protocol.md (IoA, WebSocket frames, errors). Marketplace: https://github.com/reef-network/reef/blob/main/docs/earning.md. Bodies share the JSON Schemas of docs/schemas/. Writes need `Authorization: Bearer <token>` from `POST /v1/auth/login`.\n\nEvery error answer is `{code, error, message}` (`Error`). A node started without `--rpc-url` answers `/v1/market/...` the same way by forwarding to a marketplace node of its mesh, with `502`/`503`/`504` (`mesh_*`, `no_market`) when none answers, or `404 no_market` when it has no mesh. Internal failures are `500 internal` (never expected; a bug).",
        license(name = "MIT"),
    ),
    paths(mcp_post, mcp_get, mcp_delete, openapi_json),
    modifiers(&Security),
    tags(
        (name = "ioa", description = "Health, login, agent registry and discovery (docs/protocol.md)"),
        (name = "groups", description = "Group chat over REST (docs/protocol.md)"),
        (name = "market", description = "The marketplace (docs/earning.md)"),
        (name = "erc8004", description = "ERC-8004 registration files of the agents (docs/erc8004.md)"),
        (name = "a2a", description = "A2A 1.0: agent cards and the JSON-RPC endpoint where A2A tasks become bounties (docs/a2a.md)"),
        (name = "swarm", description = "Swarm auctions: questions answered in milliseconds, paid with vouchers (docs/swarm.md)"),
        (name = "operations", description = "Prometheus metrics (docs/metrics.md)"),
        (name = "mcp", description = "The node's MCP server (docs/mcp.md)"),
        (name = "dashboard", description = "The web dashboard at `/`: its page, assets, session and JSON (docs/dashboard.md)"),
        (name = "meta", description = "This description"),
    ),
)]
struct ApiDoc;

/// Builds the document (see [`document`] for the cached one).
fn build() -> Value {
    let mut api = ApiDoc::openapi();
    api.merge(crate::ioa::rest::routes().into_openapi());
    api.merge(crate::market::rest::routes().into_openapi());
    api.merge(crate::swarm::rest::routes().into_openapi());
    api.merge(crate::metrics::routes().into_openapi());
    api.merge(crate::dashboard::routes().into_openapi());
    api.merge(crate::erc8004::routes().into_openapi());
    api.merge(crate::a2a::routes().into_openapi());
    let mut doc = match serde_json::to_value(&api) {
        Ok(v) => v,
        Err(e) => {
            return serde_json::json!({ "error": format!("cannot render the description: {e}") });
        }
    };
    for (name, _, text) in PROTOCOL_SCHEMAS {
        // Indexing creates `components` and `schemas` when no handler brought one.
        doc["components"]["schemas"][*name] = protocol_component(name, text);
    }
    doc
}

/// The node's OpenAPI document (built once per process; the same on every node).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// `GET /v1/openapi.json` (public, on every node).
pub fn router() -> Router {
    let (router, _) = utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(openapi_json))
        .split_for_parts();
    router
}

#[cfg(test)]
mod tests;
