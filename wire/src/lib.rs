//! The Reef IoA wire protocol, version 1: the JSON frames agents and nodes exchange over
//! WebSocket (and the bodies of the equivalent REST calls), the chat [`Envelope`], the agent
//! card and discovery query, and the EIP-191 login message with signature recovery.
//!
//! This crate is only data and pure functions: it does no I/O, holds no connection and knows
//! nothing about storage. The server lives in `marketplace-node` (`reef node`), the client in
//! `reef-agent-sdk`. The normative description is `docs/protocol.md`.

use std::fmt;

use alloy_primitives::{Address, Signature, hex};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod swarm;

/// Protocol version spoken by this crate (the `v` field and the `/v1/` path prefix).
pub const PROTOCOL_VERSION: u32 = 1;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signature is not 65 hex-encoded bytes or does not recover to a key.
    #[error("invalid signature: {0}")]
    BadSignature(String),
    /// A frame could not be parsed; carries the code and message to send back.
    #[error("{code}: {message}")]
    Frame {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The conversation state carried by every chat message.
///
/// Unknown states are kept verbatim in [`State::Other`] (fail-open); the SDK's engine treats
/// them as [`State::Discussion`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum State {
    /// Free-form discussion between members.
    Discussion,
    /// A member assigns a task (see [`TaskDesc`]).
    TaskAssignment,
    /// Progress or result of a task being executed.
    Execution,
    /// The group's conversation is concluded; the result bubbles up to the parent group.
    Conclusion,
    /// A state this version does not know; delivered as-is.
    Other(String),
}

impl From<String> for State {
    fn from(s: String) -> Self {
        match s.as_str() {
            "discussion" => Self::Discussion,
            "task_assignment" => Self::TaskAssignment,
            "execution" => Self::Execution,
            "conclusion" => Self::Conclusion,
            _ => Self::Other(s),
        }
    }
}

impl From<State> for String {
    fn from(s: State) -> Self {
        s.as_str().to_owned()
    }
}

impl State {
    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Discussion => "discussion",
            Self::TaskAssignment => "task_assignment",
            Self::Execution => "execution",
            Self::Conclusion => "conclusion",
            Self::Other(s) => s,
        }
    }
}

/// A chat message as stored and delivered by the node.
///
/// `sender_id`, `seq` and `ts` are always set by the node; whatever a client puts there is
/// overwritten. Unknown fields are kept in `extra` and delivered unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Group (chat room) id.
    pub group_id: String,
    /// Authenticated address of the sender (set by the node).
    pub sender_id: Address,
    /// Conversation state.
    pub state: State,
    /// Client-chosen id, unique per group; re-sending the same id is idempotent.
    pub msg_id: String,
    /// Position in the group, assigned by the node, strictly increasing from 1.
    pub seq: u64,
    /// Node timestamp (unix milliseconds) when the message was sequenced.
    #[serde(default)]
    pub ts: u64,
    /// Task description (for `task_assignment`, see [`TaskDesc`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_desc: Option<Value>,
    /// Free-form payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Unknown fields, kept and ignored.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the SDK's conversation engine expects inside `task_desc` (all fields optional on
/// the wire; fail-open).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskDesc {
    /// Task id, unique within the group.
    #[serde(default)]
    pub task_id: String,
    /// Agent that must execute the task (absent: any member may).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<Address>,
    /// `sync` (the group waits for the result) or `async` (fire-and-forget).
    #[serde(default)]
    pub mode: TaskMode,
    /// Input handed to the executor.
    #[serde(default)]
    pub input: Value,
    /// Whether a successful result concludes the group (default true for sync tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concludes: Option<bool>,
}

/// How a task is awaited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskMode {
    /// Blocking: the group stays in execution until the result arrives.
    #[default]
    Sync,
    /// Fire-and-forget: discussion goes on; results may trigger paused work.
    Async,
}

/// An agent's self-description, stored durably by the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentCard {
    /// Display name.
    pub name: String,
    /// Free text describing what the agent does.
    #[serde(default)]
    pub description: String,
    /// Skill tags.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Price hint (in the smallest unit of the first accepted token), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// Accepted payment tokens (symbols or addresses).
    #[serde(default)]
    pub payment_tokens: Vec<String>,
    /// Supported verification modes.
    #[serde(default)]
    pub verification_modes: Vec<String>,
    /// Optional ERC-8004 agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erc8004_id: Option<String>,
    /// Optional image URL (the ERC-8004 registration file's `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Optional capability vector the agent supplies for semantic discovery: exactly
    /// [`EMBEDDING_DIM`] finite numbers in the space of all-MiniLM-L6-v2 sentence embeddings
    /// (the node scales it to unit length). Without it the node embeds the card's name,
    /// description and skills itself. Not echoed in discovery hits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// Dimension of a card's `embedding` (all-MiniLM-L6-v2).
pub const EMBEDDING_DIM: usize = 384;

/// How a discovery hit's `score` was made: each part in `[0, 1]` and their weighted sum
/// (the weights are in `GET /v1/health`, `discovery.weights`; docs/discovery.md).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// BM25 keyword relevance, divided by the best BM25 score of this query (0: no keyword
    /// in common).
    pub bm25: f32,
    /// Cosine similarity of the query's and the card's embeddings, below 0 counted as 0;
    /// `null` when the node runs without an embedding model or the agent has no vector.
    pub semantic: Option<f32>,
    /// The agent's reputation score (the marketplace's reputation engine; the neutral prior
    /// for agents without history or on a node without a marketplace).
    pub reputation: f32,
    /// `weights.bm25 × bm25 + weights.semantic × semantic + weights.reputation × reputation`
    /// (= the hit's `score`).
    pub score: f32,
}

/// A registered agent as returned by lookups and discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's address.
    pub address: Address,
    /// Its card.
    pub card: AgentCard,
    /// Whether at least one session is connected to some node.
    pub online: bool,
    /// Last time the agent was seen (unix seconds).
    pub last_seen: u64,
    /// Relevance score (discovery only; 0 otherwise).
    #[serde(default)]
    pub score: f32,
    /// ERC-8004 identities the address owns in the node's AgentRegistry, read from the chain
    /// by the node's indexer (not claimed by the agent; empty when none or no indexer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erc8004: Vec<Erc8004Identity>,
    /// The parts of `score` (discovery with a query only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Ranking>,
}

/// An ERC-8004 identity: an agent id in an identity registry and its registration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erc8004Identity {
    /// The agent id (ERC-721 token id), decimal.
    pub agent_id: String,
    /// `eip155:{chainId}:{identityRegistry}`.
    pub agent_registry: String,
    /// Its `agentURI` (the registration file).
    pub agent_uri: String,
}

/// A discovery request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentQuery {
    /// Natural-language query (may be empty: filters only).
    #[serde(default)]
    pub query: String,
    /// Required skills (all must match).
    #[serde(default)]
    pub skills: Vec<String>,
    /// Maximum price hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<f64>,
    /// Only agents currently online.
    #[serde(default)]
    pub online_only: bool,
    /// Maximum number of results (default 20, at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A group as returned by the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Group id (assigned by the node).
    pub group_id: String,
    /// Display name.
    pub name: String,
    /// Creator (the only one who may invite or remove).
    pub creator: Address,
    /// Parent group, where conclusions bubble up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_group_id: Option<String>,
    /// Current members.
    pub members: Vec<Address>,
    /// Highest seq assigned so far (0: no message yet).
    pub last_seq: u64,
}

/// Machine-readable error codes of `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON (or not a JSON object).
    MalformedJson,
    /// The `type` field names no known frame kind.
    UnknownType,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong type or an invalid value.
    InvalidFrame,
    /// Nothing but `auth` is accepted before authentication.
    Unauthenticated,
    /// The signature does not match the claimed address or the challenge.
    AuthFailed,
    /// The challenge expired before it was answered.
    ChallengeExpired,
    /// The caller is not allowed to do this (e.g. not a group member).
    Forbidden,
    /// No such group or agent.
    NotFound,
    /// The per-agent rate limit was hit; retry later.
    RateLimited,
    /// The node is overloaded (its write queue is full); retry later.
    Overloaded,
    /// Internal error (details are in the node's log, never on the wire).
    Internal,
    /// A code this version does not know.
    #[serde(other)]
    Unknown,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        write!(f, "{}", v.as_str().unwrap_or("unknown"))
    }
}

/// A request id as the client sent it: a JSON string or a JSON number. Replies echo it with the
/// same JSON type (`"req_id": 7` comes back as `7`, `"req_id": "7"` as `"7"`), so a client can
/// match replies with the value it sent. Derefs to its text (`"7"` for both).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReqId {
    /// The string, or the number's JSON text.
    text: String,
    /// Whether it was (and is echoed as) a JSON number.
    numeric: bool,
}

impl ReqId {
    /// A string request id.
    pub fn string(s: impl Into<String>) -> Self {
        Self { text: s.into(), numeric: false }
    }

    /// A numeric request id.
    pub fn number(n: &serde_json::Number) -> Self {
        Self { text: n.to_string(), numeric: true }
    }

    /// The request id in `v`, if `v` is a string or a number (anything else is not readable).
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(Self::string(s.clone())),
            Value::Number(n) => Some(Self::number(n)),
            _ => None,
        }
    }

    /// Its text: the string, or the number as JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is a JSON number.
    pub fn is_number(&self) -> bool {
        self.numeric
    }

    /// As a JSON value of its original type.
    pub fn to_value(&self) -> Value {
        if self.numeric
            && let Ok(n) = self.text.parse::<serde_json::Number>()
        {
            return Value::Number(n);
        }
        Value::String(self.text.clone())
    }
}

impl std::ops::Deref for ReqId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ReqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq<str> for ReqId {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for ReqId {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl From<String> for ReqId {
    fn from(s: String) -> Self {
        Self::string(s)
    }
}

impl From<&str> for ReqId {
    fn from(s: &str) -> Self {
        Self::string(s)
    }
}

impl Serialize for ReqId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReqId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::from_value(&v)
            .ok_or_else(|| serde::de::Error::custom("req_id must be a string or a number"))
    }
}

/// Frames sent by an agent to the node. Every frame may carry a `req_id`, echoed in the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Answer to the node's challenge.
    Auth {
        /// The address the agent claims (must equal the recovered signer).
        address: Address,
        /// 65-byte EIP-191 signature over [`login_message`], hex.
        signature: String,
    },
    /// Create or update the caller's agent card.
    Register {
        /// The card.
        card: AgentCard,
    },
    /// Look up a registered agent.
    GetAgent {
        /// Its address.
        address: Address,
    },
    /// Search agents.
    Discover {
        /// The query.
        query: AgentQuery,
    },
    /// Create a group; the caller becomes its creator and first member.
    CreateGroup {
        /// Display name.
        name: String,
        /// Initial members besides the creator.
        #[serde(default)]
        members: Vec<Address>,
        /// Parent group (the caller must be a member of it).
        #[serde(default)]
        parent_group_id: Option<String>,
    },
    /// Add a member (creator only).
    Invite {
        /// Group.
        group_id: String,
        /// Agent to add.
        agent: Address,
    },
    /// Remove a member (creator only, or a member removing itself).
    Remove {
        /// Group.
        group_id: String,
        /// Agent to remove.
        agent: Address,
    },
    /// List the caller's groups.
    ListGroups {},
    /// Subscribe to a group's messages on this connection, replaying every message with
    /// `seq > since_seq` first, in order.
    Join {
        /// Group.
        group_id: String,
        /// Last seq the agent has seen (0 or absent: from the beginning).
        #[serde(default)]
        since_seq: u64,
    },
    /// Stop receiving a group's messages on this connection (membership is unchanged).
    Leave {
        /// Group.
        group_id: String,
    },
    /// Post a message.
    Send(SendMessage),
    /// Liveness check; answered with `pong`.
    Ping {},
    /// Swarm auctions: listen for queries of some skills (`docs/swarm.md`).
    SwarmListen(swarm::SwarmListen),
    /// Swarm auctions: ask a question.
    SwarmAsk(swarm::SwarmAsk),
    /// Swarm auctions: bid on a query.
    SwarmBid(swarm::SwarmBid),
    /// Swarm auctions: answer an awarded query.
    SwarmAnswer(swarm::SwarmAnswer),
    /// Swarm auctions: pay an invoiced query with a voucher.
    SwarmPay(swarm::SwarmPay),
}

/// Body of a `send` frame / `POST /v1/groups/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    /// Group.
    pub group_id: String,
    /// Client-chosen id, unique per group (idempotency key).
    pub msg_id: String,
    /// Conversation state.
    pub state: State,
    /// Task description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_desc: Option<Value>,
    /// Payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Unknown fields: stored and delivered as-is (minus `type`, `req_id`, `v`, and the
    /// node-owned `sender_id`, `seq`, `ts`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The kinds of [`ClientFrame`], as spelled on the wire.
pub const CLIENT_FRAME_TYPES: &[&str] = &[
    "auth",
    "register",
    "get_agent",
    "discover",
    "create_group",
    "invite",
    "remove",
    "list_groups",
    "join",
    "leave",
    "send",
    "ping",
    "swarm_listen",
    "swarm_ask",
    "swarm_bid",
    "swarm_answer",
    "swarm_pay",
];

/// Frames sent by the node to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every connection.
    Challenge {
        /// Protocol version.
        v: u32,
        /// The node's id (named in the login message).
        node_id: String,
        /// Random nonce, hex.
        nonce: String,
        /// Expiry, unix seconds.
        expires: u64,
        /// The exact text to sign with EIP-191 `personal_sign`.
        message: String,
    },
    /// Authentication succeeded; the session is bound to `address`.
    Welcome {
        /// Protocol version.
        v: u32,
        /// The authenticated address.
        address: Address,
        /// The node's id.
        node_id: String,
    },
    /// Successful reply to a request.
    Ok {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
        /// Result (shape depends on the request).
        #[serde(default)]
        result: Value,
    },
    /// Failed request or rejected frame; the connection stays up unless stated otherwise.
    Error {
        /// Echoed request id, when the frame had a readable one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// A sent message was sequenced (or was a duplicate of an already sequenced one).
    Ack {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
        /// Group.
        group_id: String,
        /// The message's id.
        msg_id: String,
        /// Its seq.
        seq: u64,
        /// True when `msg_id` had already been sequenced (nothing new was stored).
        #[serde(default)]
        duplicate: bool,
    },
    /// A chat message of a joined group.
    Message(Envelope),
    /// The agent was added to a group (sent to online invitees).
    Invited {
        /// Group.
        group_id: String,
        /// Who invited.
        by: Address,
        /// Set when the node already joined this connection to the group: it receives every
        /// message with a seq above this one without sending `join` (a group created with the
        /// agent as a member: one write for all invitees instead of one join each). Absent:
        /// send `join` to follow the group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        joined_since_seq: Option<u64>,
    },
    /// The agent was removed from a group; its subscription ended.
    Removed {
        /// Group.
        group_id: String,
    },
    /// Reply to `ping`.
    Pong {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// Swarm auctions: a query open for bids (to listening agents).
    SwarmQuery(swarm::SwarmQuery),
    /// Swarm auctions: the receiver's bid won; answer it.
    SwarmAward(swarm::SwarmAward),
    /// Swarm auctions: the poster paid the receiver's answer (the voucher to redeem).
    SwarmPaid(swarm::SwarmPaid),
    /// Swarm auctions: the receiver's award ended unpaid.
    SwarmCancelled(swarm::SwarmCancelled),
}

/// The text an agent signs (EIP-191 `personal_sign`) to log into `node_id`.
pub fn login_message(node_id: &str, nonce: &str, expires: u64) -> String {
    format!("Reef node {node_id} login\nnonce: {nonce}\nexpires: {expires}")
}

/// Recover the address that produced the EIP-191 `signature` (65 bytes, hex) over `message`.
pub fn recover_signer(message: &str, signature: &str) -> Result<Address> {
    let bytes = hex::decode(signature.trim()).map_err(|e| Error::BadSignature(e.to_string()))?;
    if bytes.len() != 65 {
        return Err(Error::BadSignature(format!("expected 65 bytes, got {}", bytes.len())));
    }
    let sig = Signature::from_raw(&bytes).map_err(|e| Error::BadSignature(e.to_string()))?;
    sig.recover_address_from_msg(message.as_bytes()).map_err(|e| Error::BadSignature(e.to_string()))
}

/// Parse a client frame, classifying failures into wire error codes.
///
/// Returns the request id (when readable) alongside the result so that errors can echo it.
pub fn parse_client_frame(text: &str) -> (Option<ReqId>, Result<ClientFrame>) {
    let frame_err = |code, message: String| Error::Frame { code, message };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return (None, Err(frame_err(ErrorCode::MalformedJson, e.to_string()))),
    };
    let Value::Object(mut obj) = value else {
        return (
            None,
            Err(frame_err(ErrorCode::MalformedJson, "frame must be a JSON object".into())),
        );
    };
    let req_id = obj.remove("req_id").as_ref().and_then(ReqId::from_value);
    obj.remove("v");
    let kind = match obj.get("type") {
        None => {
            return (
                req_id,
                Err(frame_err(ErrorCode::MissingField, "missing field `type`".into())),
            );
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return (
                req_id,
                Err(frame_err(ErrorCode::InvalidFrame, "`type` must be a string".into())),
            );
        }
    };
    if !CLIENT_FRAME_TYPES.contains(&kind.as_str()) {
        return (
            req_id,
            Err(frame_err(ErrorCode::UnknownType, format!("unknown frame type `{kind}`"))),
        );
    }
    if kind == "send" {
        for node_owned in ["sender_id", "seq", "ts"] {
            obj.remove(node_owned);
        }
    }
    let res = serde_json::from_value::<ClientFrame>(Value::Object(obj)).map_err(|e| {
        let msg = e.to_string();
        let code = if msg.starts_with("missing field") {
            ErrorCode::MissingField
        } else {
            ErrorCode::InvalidFrame
        };
        frame_err(code, msg)
    });
    (req_id, res)
}

/// The `req_id` of a frame, read without parsing the rest into a frame: for answering a frame
/// that is refused before it is parsed (`rate_limited`). Other fields are skipped, not built.
pub fn peek_req_id(text: &str) -> Option<ReqId> {
    /// The last `req_id` of an object, as [`parse_client_frame`] reads it (a repeated key's
    /// last value wins, as in a JSON object parsed into a map); other values are skipped.
    struct Peek(Option<Value>);

    impl<'de> Deserialize<'de> for Peek {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct Fields;
            impl<'de> serde::de::Visitor<'de> for Fields {
                type Value = Peek;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }

                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Peek, A::Error> {
                    let mut req_id = None;
                    while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                        if key == "req_id" {
                            req_id = Some(map.next_value::<Value>()?);
                        } else {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                    Ok(Peek(req_id))
                }
            }
            d.deserialize_map(Fields)
        }
    }
    let Peek(req_id) = serde_json::from_str(text).ok()?;
    req_id.as_ref().and_then(ReqId::from_value)
}

/// Serialize a client frame with its request id (and `v`).
pub fn encode_client_frame(req_id: Option<&str>, frame: &ClientFrame) -> String {
    let mut v = serde_json::to_value(frame).unwrap_or(Value::Null);
    if let Value::Object(obj) = &mut v {
        obj.insert("v".into(), PROTOCOL_VERSION.into());
        if let Some(id) = req_id {
            obj.insert("req_id".into(), id.into());
        }
    }
    v.to_string()
}

/// Current unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Current unix time in milliseconds.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_state_and_fields_round_trip() {
        let text = r#"{"type":"message","group_id":"g","sender_id":"0x0000000000000000000000000000000000000001","state":"haggling","msg_id":"m","seq":3,"ts":1,"mood":"ok"}"#;
        let ServerFrame::Message(env) = serde_json::from_str::<ServerFrame>(text).unwrap() else {
            panic!()
        };
        assert_eq!(env.state, State::Other("haggling".into()));
        assert_eq!(env.extra.get("mood"), Some(&Value::from("ok")));
        let back = serde_json::to_value(ServerFrame::Message(env)).unwrap();
        assert_eq!(back["state"], "haggling");
        assert_eq!(back["mood"], "ok");
    }

    #[test]
    fn classify_bad_frames() {
        let code = |t: &str| match parse_client_frame(t).1 {
            Err(Error::Frame { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code("{nope"), ErrorCode::MalformedJson);
        assert_eq!(code("[1]"), ErrorCode::MalformedJson);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"x":1}"#), ErrorCode::MissingField);
        assert_eq!(code(r#"{"type":"join"}"#), ErrorCode::MissingField);
        assert_eq!(code(r#"{"type":"join","group_id":5}"#), ErrorCode::InvalidFrame);
        let (id, f) = parse_client_frame(
            r#"{"type":"send","req_id":"7","group_id":"g","msg_id":"m","state":"discussion","sender_id":"spoof","seq":99,"x":1}"#,
        );
        assert_eq!(id.as_deref(), Some("7"));
        let ClientFrame::Send(s) = f.unwrap() else { panic!() };
        assert!(!s.extra.contains_key("sender_id") && !s.extra.contains_key("seq"));
        assert_eq!(s.extra["x"], 1);
    }

    #[test]
    fn req_ids_are_echoed_with_their_json_type() {
        let (id, _) = parse_client_frame(r#"{"type":"ping","req_id":7}"#);
        let id = id.unwrap();
        assert!(id.is_number() && id == "7");
        let pong = serde_json::to_value(ServerFrame::Pong { req_id: Some(id) }).unwrap();
        assert_eq!(pong["req_id"], serde_json::json!(7));
        let (id, _) = parse_client_frame(r#"{"type":"ping","req_id":"7"}"#);
        let pong = serde_json::to_value(ServerFrame::Pong { req_id: id }).unwrap();
        assert_eq!(pong["req_id"], serde_json::json!("7"));
        let (id, _) = parse_client_frame(r#"{"type":"ping","req_id":1.5e3}"#);
        let ok = serde_json::to_string(&ServerFrame::Ok { req_id: id, result: Value::Null });
        let back: Value = serde_json::from_str(&ok.unwrap()).unwrap();
        assert_eq!(back["req_id"].as_f64(), Some(1500.0));
        // Objects and arrays are not readable ids: no echo.
        assert!(parse_client_frame(r#"{"type":"ping","req_id":{"a":1}}"#).0.is_none());
        // A reply parses back to the same id.
        let f: ServerFrame = serde_json::from_str(r#"{"type":"pong","req_id":42}"#).unwrap();
        assert!(
            matches!(f, ServerFrame::Pong { req_id: Some(ref r) } if r.is_number() && r == "42")
        );
    }

    #[test]
    fn peek_reads_the_req_id_of_any_frame() {
        assert_eq!(
            peek_req_id(r#"{"type":"send","body":{"x":[1,2]},"req_id":9}"#).unwrap().to_value(),
            serde_json::json!(9)
        );
        assert_eq!(peek_req_id(r#"{"req_id":"a"}"#).unwrap(), "a");
        assert!(peek_req_id(r#"{"type":"ping"}"#).is_none());
        assert!(peek_req_id("{nope").is_none());
        assert!(peek_req_id("[1]").is_none());
    }

    /// Found by the `ws_frame` fuzz target (fuzz/): with a repeated `req_id` the peek read no
    /// id (serde refuses a duplicate struct field) while the full parse took the last one, so a
    /// rate-limited pipelined request was answered without its id. Both now take the last.
    #[test]
    fn peek_and_parse_agree_on_a_repeated_req_id() {
        let crash = r#"{"": "send", "req_id": 7, "gr/up_id": "g1", "msg_id": "m-1", "state": "task_assignment", "tasype": "send", "req_id": 7, "groud": 7, "grotype":"dance","req_id":1.5e3}"#;
        for text in [crash, r#"{"req_id":"a","type":"ping","req_id":9}"#, r#"{"req\u005fid":3}"#] {
            let (parsed, _) = parse_client_frame(text);
            assert!(parsed.is_some(), "{text}");
            assert_eq!(peek_req_id(text), parsed, "{text}");
        }
        assert_eq!(peek_req_id(crash).unwrap().to_value(), serde_json::json!(1500.0));
    }

    #[test]
    fn login_message_is_stable() {
        assert_eq!(login_message("n1", "ab", 5), "Reef node n1 login\nnonce: ab\nexpires: 5");
        assert!(recover_signer("x", "0x1234").is_err());
    }
}
