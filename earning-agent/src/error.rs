//! The crate's error type.

/// Result alias with this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that stops an earning agent or one of its steps.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key is not a secp256k1 private key (the key itself is never shown).
    #[error("the agent key is not a valid private key")]
    InvalidKey,
    /// A builder setting the agent cannot run without was not given.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A setting has a value that cannot work.
    #[error("{0}")]
    InvalidConfig(String),
    /// The node's IoA WebSocket failed a step (after waiting for it as long as allowed).
    #[error("{what} ({url}): {source}")]
    Node {
        /// The step (`connecting`, `registering`, ...).
        what: &'static str,
        /// The node's URL.
        url: String,
        /// What the SDK reported.
        #[source]
        source: reef_agent_sdk::Error,
    },
    /// The node's REST API failed.
    #[error(transparent)]
    Api(#[from] crate::ApiError),
    /// A chain read or transaction failed (reverts decoded).
    #[error(transparent)]
    Chain(Box<escrow_client::Error>),
    /// A node message lacks a field or carries a malformed one.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which field.
        what: &'static str,
        /// Why it does not parse.
        reason: String,
    },
    /// The agent declines (no bid, or no work): the reason says why.
    #[error("{0}")]
    Declined(String),
    /// A message could not be delivered to the node for ten minutes.
    #[error("could not deliver a message to group {0} for ten minutes")]
    Undelivered(String),
    /// A task handler panicked.
    #[error("a task runner panicked: {0}")]
    TaskPanicked(String),
    /// The remote A2A agent's card could not be read or offers no JSON-RPC 1.0 interface.
    #[error("A2A agent: {0}")]
    A2a(String),
    /// The MCP server could not be started, listed or called.
    #[cfg(feature = "mcp")]
    #[error("MCP server: {0}")]
    Mcp(String),
}

impl From<escrow_client::Error> for Error {
    fn from(e: escrow_client::Error) -> Self {
        Self::Chain(Box::new(e))
    }
}
