//! The REST transport (`/v1/...`, JSON) for scripts: the same reads and writes as the
//! WebSocket, authenticated with a bearer token obtained by signing a challenge.

use alloy_primitives::Address;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::{Json, Router};
use reef_wire::{
    AgentCard, AgentInfo, AgentQuery, ErrorCode, GroupInfo, SendMessage, State as MsgState,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppError, Error, Node};
use crate::openapi;

/// All routes, WebSocket included, with their OpenAPI description ([`crate::openapi`]).
pub fn routes() -> OpenApiRouter<Node> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ws_upgrade))
        .routes(routes!(challenge))
        .routes(routes!(login))
        .routes(routes!(register))
        .routes(routes!(get_agent))
        .routes(routes!(discover))
        .routes(routes!(create_group, list_groups))
        .routes(routes!(get_group))
        .routes(routes!(invite))
        .routes(routes!(remove))
        .routes(routes!(history, send))
        .routes(routes!(set_retention))
        .routes(routes!(erase_mine))
}

/// All routes, WebSocket included.
pub fn router(node: Node) -> Router {
    let limit = node.config().max_frame_bytes;
    let (router, _) = routes().split_for_parts();
    router.layer(axum::extract::DefaultBodyLimit::max(limit)).with_state(node)
}

/// The authenticated caller of a REST request (`Authorization: Bearer <token>`).
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Address);

impl FromRequestParts<Node> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, node: &Node) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Error::Auth(
                    ErrorCode::Unauthenticated,
                    "missing bearer token; POST /v1/auth/challenge then /v1/auth/login".into(),
                )
            })?;
        let address = node
            .token_address(token.trim())
            .await?
            .ok_or_else(|| Error::Auth(ErrorCode::Unauthenticated, "unknown token".into()))?;
        node.rate_check(&address)?;
        Ok(Self(address))
    }
}

/// A JSON request body. A body that is not JSON of the expected shape is answered like every
/// other REST error, `400 {"code": "invalid_frame", "error": …, "message": …}`, instead of
/// axum's plain-text rejection.
#[derive(Debug, Clone)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) => Err(Error::BadRequest(
                ErrorCode::InvalidFrame,
                format!("malformed request body: {}", e.body_text()),
            )
            .into()),
        }
    }
}

/// Query parameters. A query string that does not parse is answered like [`Body`]'s
/// rejections, `400 invalid_frame` in the error shape, instead of axum's plain-text one.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(e) => Err(Error::BadRequest(
                ErrorCode::InvalidFrame,
                format!("malformed query: {}", e.body_text()),
            )
            .into()),
        }
    }
}

type ApiResult<T> = Result<Json<T>, AppError>;

/// `GET /v1/health`.
#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// Always true: the node answers.
    ok: bool,
    /// This node's id.
    node_id: String,
    /// Protocol version.
    v: u32,
    /// How discovery ranks: `hybrid` with an embedding model, `bm25` without (the fallback),
    /// and the weights of a hit's score parts (docs/discovery.md).
    discovery: super::semantic::DiscoveryInfo,
}

/// `POST /v1/auth/challenge`: the message to sign for [`login`].
#[derive(Debug, Serialize, ToSchema)]
struct Challenge {
    /// This node's id (named in the message).
    node_id: String,
    /// Single-use nonce to send back with the signature.
    nonce: String,
    /// When the challenge expires, unix seconds.
    expires: u64,
    /// The text to sign (EIP-191 personal message).
    message: String,
}

/// `POST /v1/auth/login` body.
#[derive(Debug, Deserialize, ToSchema)]
struct Login {
    /// The signing account.
    #[schema(value_type = openapi::Address)]
    address: Address,
    /// The challenge's nonce.
    nonce: String,
    /// EIP-191 signature of the challenge's message, hex.
    signature: String,
}

/// `POST /v1/auth/login` answer.
#[derive(Debug, Serialize, ToSchema)]
struct Token {
    /// Bearer token for `Authorization: Bearer <token>`.
    token: String,
    /// The logged-in account.
    #[schema(value_type = openapi::Address)]
    address: Address,
}

/// `POST /v1/discover` answer.
#[derive(Debug, Serialize, ToSchema)]
struct AgentList {
    /// Matching agents, best first.
    #[schema(value_type = Vec<openapi::AgentInfo>)]
    agents: Vec<AgentInfo>,
}

/// `GET /v1/groups` answer.
#[derive(Debug, Serialize, ToSchema)]
struct GroupList {
    /// The caller's groups.
    #[schema(value_type = Vec<openapi::GroupInfo>)]
    groups: Vec<GroupInfo>,
}

/// `POST /v1/groups` body.
#[derive(Debug, Deserialize, ToSchema)]
struct NewGroup {
    /// Display name.
    name: String,
    /// Members besides the creator.
    #[serde(default)]
    #[schema(value_type = Vec<openapi::Address>)]
    members: Vec<Address>,
    /// Parent group (the caller must be one of its members).
    #[serde(default)]
    parent_group_id: Option<String>,
}

/// `POST /v1/groups/{id}/members` body.
#[derive(Debug, Deserialize, ToSchema)]
struct Member {
    /// The agent to invite.
    #[schema(value_type = openapi::Address)]
    agent: Address,
}

/// `DELETE /v1/groups/{id}/members/{address}` answer.
#[derive(Debug, Serialize, ToSchema)]
struct Removed {
    /// The group.
    group_id: String,
    /// The removed agent.
    #[schema(value_type = openapi::Address)]
    removed: Address,
}

/// `PUT /v1/groups/{id}/retention` body and answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Retention {
    /// The group (in the answer; ignored in the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_id: Option<String>,
    /// Messages older than this many seconds are deleted and never replayed; `null` keeps
    /// everything (the default).
    #[schema(minimum = 1)]
    retention_secs: Option<u64>,
}

/// `DELETE /v1/groups/{id}/messages/mine` answer.
#[derive(Debug, Serialize, ToSchema)]
struct Erased {
    /// The group.
    group_id: String,
    /// How many of the caller's messages were deleted.
    erased: u64,
}

/// `GET /v1/groups/{id}/messages` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Since {
    /// Messages after this sequence number (0: from the start).
    #[serde(default)]
    since_seq: u64,
    /// At most this many (default 100, capped to 1..=1000).
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /v1/groups/{id}/messages` answer.
#[derive(Debug, Serialize, ToSchema)]
struct History {
    /// Stored messages in sequence order.
    #[schema(value_type = Vec<openapi::GroupMessage>)]
    messages: Vec<Value>,
}

/// `POST /v1/groups/{id}/messages` body: an envelope; the node sets `sender_id`, `seq`, `ts`
/// and `group_id` (from the path), other fields are delivered as they are.
#[derive(Debug, Deserialize, ToSchema)]
struct PostMessage {
    /// Sender-chosen id (1..=200 bytes); a repeat is acknowledged as a duplicate, not stored
    /// twice.
    #[schema(min_length = 1, max_length = 200)]
    msg_id: String,
    /// Conversation state: discussion | task_assignment | execution | conclusion (others are
    /// delivered as-is).
    #[schema(value_type = String)]
    state: MsgState,
    /// Task description (any JSON).
    #[serde(default)]
    task_desc: Option<Value>,
    /// Body (any JSON).
    #[serde(default)]
    body: Option<Value>,
    /// Further fields, delivered as they are.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// `POST /v1/groups/{id}/messages` answer.
#[derive(Debug, Serialize, ToSchema)]
struct Sent {
    /// The group.
    group_id: String,
    /// The message's id.
    msg_id: String,
    /// Its sequence number in the group.
    seq: u64,
    /// True when the message had been stored already (same `msg_id`).
    duplicate: bool,
}

/// Liveness and protocol version (public).
#[utoipa::path(get, path = "/v1/health", tag = "ioa",
    responses((status = 200, description = "The node is up", body = Health)))]
async fn health(State(node): State<Node>) -> Json<Health> {
    Json(Health {
        ok: true,
        node_id: node.config().node_id.clone(),
        v: reef_wire::PROTOCOL_VERSION,
        discovery: node.semantic().info(),
    })
}

/// The WebSocket upgrade (documented for completeness; the frames are in docs/protocol.md).
#[utoipa::path(get, path = "/v1/ws", tag = "ioa",
    summary = "WebSocket upgrade (agents)",
    description = "Upgrades to the IoA WebSocket: login with `auth`, then requests and pushed messages as JSON frames (docs/protocol.md, docs/schemas/client.*.json and server.*.json). A `Sec-WebSocket-Extensions: permessage-deflate` offer is agreed to within the node's window bound unless the node runs with `--ws-compression off` (docs/protocol.md, \"Compression\"). Not a REST call.",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a valid WebSocket upgrade request", content_type = "text/plain", body = String),
        (status = 426, description = "The connection cannot be upgraded", content_type = "text/plain", body = String),
    ))]
async fn ws_upgrade(state: State<Node>, req: axum::extract::Request) -> axum::response::Response {
    super::ws::handler(state, req).await
}

/// A challenge to sign for a bearer token (public).
#[utoipa::path(post, path = "/v1/auth/challenge", tag = "ioa",
    responses((status = 200, description = "Sign `message` and send it to /v1/auth/login", body = Challenge)))]
async fn challenge(State(node): State<Node>) -> Json<Challenge> {
    let (nonce, expires, message) = node.rest_challenge();
    Json(Challenge { node_id: node.config().node_id.clone(), nonce, expires, message })
}

/// A bearer token for a signed challenge (public).
#[utoipa::path(post, path = "/v1/auth/login", tag = "ioa",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in", body = Token),
        (status = 400, description = "Malformed body (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Unknown, used or expired challenge, or a bad signature (auth_failed, challenge_expired)", body = openapi::ErrorBody),
    ))]
async fn login(State(node): State<Node>, Body(l): Body<Login>) -> ApiResult<Token> {
    let token = node.rest_login(&l.nonce, &l.address, &l.signature).await?;
    Ok(Json(Token { token, address: l.address }))
}

/// Registers (or updates) the caller's agent card.
#[utoipa::path(post, path = "/v1/agents", tag = "ioa",
    request_body = openapi::AgentCard,
    responses(
        (status = 200, description = "Registered", body = openapi::AgentInfo),
        (status = 400, description = "Malformed or oversized card (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn register(
    State(node): State<Node>,
    Caller(me): Caller,
    Body(card): Body<AgentCard>,
) -> ApiResult<AgentInfo> {
    Ok(Json(node.register(&me, card).await?))
}

/// Public: agent cards are published to be found (a poster looks providers up before it logs
/// in; docs/protocol.md "Who may read what"). Writes and group reads need the token.
#[utoipa::path(get, path = "/v1/agents/{address}", tag = "ioa",
    params(("address" = String, Path, pattern = "^0x[0-9a-fA-F]{40}$", description = "The agent's address (0x + 40 hex digits)")),
    responses(
        (status = 200, description = "The agent", body = openapi::AgentInfo),
        (status = 400, description = "Not an address (invalid_frame)", body = openapi::ErrorBody),
        (status = 404, description = "Not registered", body = openapi::ErrorBody),
    ))]
async fn get_agent(State(node): State<Node>, Path(address): Path<String>) -> ApiResult<AgentInfo> {
    let address: Address = address
        .parse()
        .map_err(|_| Error::BadRequest(ErrorCode::InvalidFrame, "bad address".into()))?;
    Ok(Json(node.get_agent(&address).await?))
}

/// Finds agents by skills and text (public, like [`get_agent`]).
#[utoipa::path(post, path = "/v1/discover", tag = "ioa",
    request_body = openapi::AgentQuery,
    responses(
        (status = 200, description = "Matching agents", body = AgentList),
        (status = 400, description = "Malformed query (invalid_frame)", body = openapi::ErrorBody),
    ))]
async fn discover(State(node): State<Node>, Body(q): Body<AgentQuery>) -> ApiResult<AgentList> {
    Ok(Json(AgentList { agents: node.discover(&q).await? }))
}

/// Creates a group with the caller as its creator.
#[utoipa::path(post, path = "/v1/groups", tag = "groups",
    request_body = NewGroup,
    responses(
        (status = 200, description = "The new group", body = openapi::GroupInfo),
        (status = 400, description = "Malformed body or bad field (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "Not a member of the parent group", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn create_group(
    State(node): State<Node>,
    Caller(me): Caller,
    Body(g): Body<NewGroup>,
) -> ApiResult<GroupInfo> {
    Ok(Json(node.create_group(&me, &g.name, &g.members, g.parent_group_id.as_deref()).await?))
}

/// The caller's groups.
#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    responses(
        (status = 200, description = "The caller's groups", body = GroupList),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn list_groups(State(node): State<Node>, Caller(me): Caller) -> ApiResult<GroupList> {
    Ok(Json(GroupList { groups: node.groups_of(&me).await? }))
}

/// A group the caller is a member of.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "groups",
    params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "The group", body = openapi::GroupInfo),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "Not a member (or no such group)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn get_group(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> ApiResult<GroupInfo> {
    Ok(Json(node.group(&me, &id).await?))
}

/// Adds an agent to a group (its creator only).
#[utoipa::path(post, path = "/v1/groups/{id}/members", tag = "groups",
    params(("id" = String, Path, description = "Group id")),
    request_body = Member,
    responses(
        (status = 200, description = "The group with its new member", body = openapi::GroupInfo),
        (status = 400, description = "Malformed body (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "Not the group's creator (or no such group)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn invite(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(m): Body<Member>,
) -> ApiResult<GroupInfo> {
    Ok(Json(node.invite(&me, &id, &m.agent).await?))
}

/// Removes an agent from a group (its creator, or the agent itself).
#[utoipa::path(delete, path = "/v1/groups/{id}/members/{address}", tag = "groups",
    params(
        ("id" = String, Path, description = "Group id"),
        ("address" = String, Path, pattern = "^0x[0-9a-fA-F]{40}$", description = "The member's address (0x + 40 hex digits)"),
    ),
    responses(
        (status = 200, description = "Removed", body = Removed),
        (status = 400, description = "Not an address, or the creator removing itself (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "Not the group's creator (or no such group)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn remove(
    State(node): State<Node>,
    Caller(me): Caller,
    Path((id, address)): Path<(String, String)>,
) -> ApiResult<Removed> {
    let agent: Address = address
        .parse()
        .map_err(|_| Error::BadRequest(ErrorCode::InvalidFrame, "bad address".into()))?;
    node.remove(&me, &id, &agent).await?;
    Ok(Json(Removed { group_id: id, removed: agent }))
}

/// Sets the group's retention (its creator only): messages older than that are deleted, not
/// hidden, by the node's sweep, and never replayed.
#[utoipa::path(put, path = "/v1/groups/{id}/retention", tag = "groups",
    params(("id" = String, Path, description = "Group id")),
    request_body = Retention,
    responses(
        (status = 200, description = "Set", body = Retention),
        (status = 400, description = "Malformed body, or retention_secs 0 (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "Not the group's creator (or no such group)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn set_retention(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(r): Body<Retention>,
) -> ApiResult<Retention> {
    node.set_retention(&me, &id, r.retention_secs).await?;
    Ok(Json(Retention { group_id: Some(id), retention_secs: r.retention_secs }))
}

/// Deletes every message the caller sent to the group (members only).
#[utoipa::path(delete, path = "/v1/groups/{id}/messages/mine", tag = "groups",
    params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "Deleted", body = Erased),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "Not a member (or no such group)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn erase_mine(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> ApiResult<Erased> {
    let erased = node.erase_own(&me, &id).await?;
    Ok(Json(Erased { group_id: id, erased }))
}

/// A group's stored messages after `since_seq` (members only).
#[utoipa::path(get, path = "/v1/groups/{id}/messages", tag = "groups",
    params(("id" = String, Path, description = "Group id"), Since),
    responses(
        (status = 200, description = "Messages in sequence order", body = History),
        (status = 400, description = "Malformed query (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "Not a member (or no such group)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn history(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Params(q): Params<Since>,
) -> ApiResult<History> {
    let messages = node.history(&me, &id, q.since_seq, q.limit.unwrap_or(100)).await?;
    Ok(Json(History { messages }))
}

/// Sends a message to a group (members only).
#[utoipa::path(post, path = "/v1/groups/{id}/messages", tag = "groups",
    params(("id" = String, Path, description = "Group id")),
    request_body = PostMessage,
    responses(
        (status = 200, description = "Stored (or a duplicate of a stored message)", body = Sent),
        (status = 400, description = "Malformed body or bad field (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 403, description = "Not a member (or no such group)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
        (status = 503, description = "The node's write queue is full; retry (overloaded)", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn send(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(p): Body<PostMessage>,
) -> ApiResult<Sent> {
    let mut extra = p.extra;
    for owned in ["sender_id", "seq", "ts", "group_id", "type", "req_id", "v"] {
        extra.remove(owned);
    }
    let msg = SendMessage {
        group_id: id.clone(),
        msg_id: p.msg_id.clone(),
        state: p.state,
        task_desc: p.task_desc,
        body: p.body,
        extra,
    };
    let (seq, duplicate) = node.send(&me, msg).await?;
    Ok(Json(Sent { group_id: id, msg_id: p.msg_id, seq, duplicate }))
}
