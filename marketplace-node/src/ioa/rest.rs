//! The REST transport (`/v1/...`, JSON) for scripts: the same reads and writes as the
//! WebSocket, authenticated with a bearer token obtained by signing a challenge.

use alloy_primitives::Address;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use reef_wire::{AgentCard, AgentQuery, ErrorCode, SendMessage, State as MsgState};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::{AppError, Error, Node};

/// All routes, WebSocket included.
pub fn router(node: Node) -> Router {
    let limit = node.config().max_frame_bytes;
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/ws", get(super::ws::handler))
        .route("/v1/auth/challenge", post(challenge))
        .route("/v1/auth/login", post(login))
        .route("/v1/agents", post(register))
        .route("/v1/agents/{address}", get(get_agent))
        .route("/v1/discover", post(discover))
        .route("/v1/groups", post(create_group).get(list_groups))
        .route("/v1/groups/{id}", get(get_group))
        .route("/v1/groups/{id}/members", post(invite))
        .route("/v1/groups/{id}/members/{address}", delete(remove))
        .route("/v1/groups/{id}/messages", get(history).post(send))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(node)
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

type ApiResult = Result<Json<Value>, AppError>;

fn val<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn health(State(node): State<Node>) -> Json<Value> {
    Json(json!({ "ok": true, "node_id": node.config().node_id, "v": reef_wire::PROTOCOL_VERSION }))
}

async fn challenge(State(node): State<Node>) -> Json<Value> {
    let (nonce, expires, message) = node.rest_challenge();
    Json(
        json!({ "node_id": node.config().node_id, "nonce": nonce, "expires": expires, "message": message }),
    )
}

#[derive(Debug, Deserialize)]
struct Login {
    address: Address,
    nonce: String,
    signature: String,
}

async fn login(State(node): State<Node>, Body(l): Body<Login>) -> ApiResult {
    let token = node.rest_login(&l.nonce, &l.address, &l.signature).await?;
    Ok(Json(json!({ "token": token, "address": l.address })))
}

async fn register(
    State(node): State<Node>,
    Caller(me): Caller,
    Body(card): Body<AgentCard>,
) -> ApiResult {
    Ok(Json(val(&node.register(&me, card).await?)))
}

/// Public: agent cards are published to be found (a poster looks providers up before it logs
/// in; docs/protocol.md "Who may read what"). Writes and group reads need the token.
async fn get_agent(State(node): State<Node>, Path(address): Path<String>) -> ApiResult {
    let address: Address = address
        .parse()
        .map_err(|_| Error::BadRequest(ErrorCode::InvalidFrame, "bad address".into()))?;
    Ok(Json(val(&node.get_agent(&address).await?)))
}

/// Public, like [`get_agent`].
async fn discover(State(node): State<Node>, Body(q): Body<AgentQuery>) -> ApiResult {
    Ok(Json(json!({ "agents": val(&node.discover(&q).await?) })))
}

#[derive(Debug, Deserialize)]
struct NewGroup {
    name: String,
    #[serde(default)]
    members: Vec<Address>,
    #[serde(default)]
    parent_group_id: Option<String>,
}

async fn create_group(
    State(node): State<Node>,
    Caller(me): Caller,
    Body(g): Body<NewGroup>,
) -> ApiResult {
    Ok(Json(val(&node
        .create_group(&me, &g.name, &g.members, g.parent_group_id.as_deref())
        .await?)))
}

async fn list_groups(State(node): State<Node>, Caller(me): Caller) -> ApiResult {
    Ok(Json(json!({ "groups": val(&node.groups_of(&me).await?) })))
}

async fn get_group(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(Json(val(&node.group(&me, &id).await?)))
}

#[derive(Debug, Deserialize)]
struct Member {
    agent: Address,
}

async fn invite(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(m): Body<Member>,
) -> ApiResult {
    Ok(Json(val(&node.invite(&me, &id, &m.agent).await?)))
}

async fn remove(
    State(node): State<Node>,
    Caller(me): Caller,
    Path((id, address)): Path<(String, String)>,
) -> ApiResult {
    let agent: Address = address
        .parse()
        .map_err(|_| Error::BadRequest(ErrorCode::InvalidFrame, "bad address".into()))?;
    node.remove(&me, &id, &agent).await?;
    Ok(Json(json!({ "group_id": id, "removed": agent })))
}

#[derive(Debug, Deserialize)]
struct Since {
    #[serde(default)]
    since_seq: u64,
    #[serde(default)]
    limit: Option<u32>,
}

async fn history(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Query(q): Query<Since>,
) -> ApiResult {
    let messages = node.history(&me, &id, q.since_seq, q.limit.unwrap_or(100)).await?;
    Ok(Json(json!({ "messages": messages })))
}

#[derive(Debug, Deserialize)]
struct PostMessage {
    msg_id: String,
    state: MsgState,
    #[serde(default)]
    task_desc: Option<Value>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

async fn send(
    State(node): State<Node>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(p): Body<PostMessage>,
) -> ApiResult {
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
    Ok(Json(json!({ "group_id": id, "msg_id": p.msg_id, "seq": seq, "duplicate": duplicate })))
}
