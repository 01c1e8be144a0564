//! Reef agent SDK: everything an agent needs to live on a Reef node — connect and
//! authenticate with its secp256k1 key (EIP-191 challenge), register its card, discover peers,
//! create/join groups, send and receive ordered group messages, reconnect transparently with
//! replay (`since_seq`), and drive the per-group conversation state machine ([`engine`]).
//!
//! It is a client library with light dependencies (tokio, yawc (WebSocket with permessage-deflate), alloy signer):
//! no HTTP server, no database. It does not settle payments (that is `escrow-client`).

pub mod client;
pub mod engine;
pub mod swarm;

pub use client::{Client, ConnectOptions, Event, Events, retry_while_away};
pub use engine::{Action, Engine, Phase};
pub use reef_wire as wire;
pub use swarm::SwarmPush;

use reef_wire::ErrorCode;

/// Errors of the SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Could not reach the node or the WebSocket handshake failed.
    #[error("connect: {0}")]
    Connect(String),
    /// The node rejected our login.
    #[error("authentication rejected: {code}: {message}")]
    Auth {
        /// Wire code.
        code: ErrorCode,
        /// Node's explanation.
        message: String,
    },
    /// The node answered a request with an error frame.
    #[error("{code}: {message}")]
    Server {
        /// Wire code.
        code: ErrorCode,
        /// Node's explanation.
        message: String,
    },
    /// The connection dropped while the request was in flight (it is being re-established).
    #[error("disconnected")]
    Disconnected,
    /// The client was shut down.
    #[error("client closed")]
    Closed,
    /// The node sent something we could not understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Signing failed.
    #[error("signer: {0}")]
    Signer(String),
}

/// Result alias of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;
