//! A2A errors: each one answers with its A2A 1.0 JSON-RPC code and a `google.rpc.ErrorInfo`
//! reason, as the official SDKs map them to typed errors.

use serde_json::{Value, json};

use super::terms::TERMS_URI;
use crate::market::MarketError;

/// A2A errors, each with its JSON-RPC code (A2A 1.0, "JSON-RPC error codes").
#[derive(Debug, thiserror::Error)]
pub enum A2aError {
    /// The body is not JSON (-32700).
    #[error("the body is not JSON: {0}")]
    Parse(String),
    /// Not a JSON-RPC 2.0 request (-32600).
    #[error("{0}")]
    InvalidRequest(String),
    /// No such method (-32601).
    #[error("method {0:?} is not an A2A 1.0 method this server offers")]
    MethodNotFound(String),
    /// Bad parameters, or terms and payment refused before any work (-32602).
    #[error("{0}")]
    InvalidParams(String),
    /// The node failed (-32603; the message never leaks internals).
    #[error("internal error; see the node's log")]
    Internal(String),
    /// No task with this id for this caller (-32001).
    #[error("no task {0:?} for this caller")]
    TaskNotFound(String),
    /// The task cannot be cancelled (-32002).
    #[error("{0}")]
    NotCancelable(String),
    /// Push notifications are not offered (-32003).
    #[error("push notifications are not supported: follow a task with SubscribeToTask or GetTask")]
    PushNotSupported,
    /// The operation is not supported here (-32004).
    #[error("{0}")]
    Unsupported(String),
    /// A part's media type is not accepted (-32005).
    #[error("{0}")]
    ContentType(String),
    /// There is no extended card (-32007).
    #[error("this agent has no extended card: its public card is complete")]
    NoExtendedCard,
    /// The request does not use the required Reef terms extension (-32008).
    #[error(
        "send the Reef terms (budget, paymentTx, verify) in the message metadata under {TERMS_URI:?}; the card's capabilities.extensions[0].params says how to pay"
    )]
    ExtensionRequired,
    /// The client's protocol version is not spoken here (-32009).
    #[error("A2A version {0:?} is not supported: this server speaks 1.0")]
    Version(String),
}

impl A2aError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            Self::Parse(_) => -32700,
            Self::InvalidRequest(_) => -32600,
            Self::MethodNotFound(_) => -32601,
            Self::InvalidParams(_) => -32602,
            Self::Internal(_) => -32603,
            Self::TaskNotFound(_) => -32001,
            Self::NotCancelable(_) => -32002,
            Self::PushNotSupported => -32003,
            Self::Unsupported(_) => -32004,
            Self::ContentType(_) => -32005,
            Self::NoExtendedCard => -32007,
            Self::ExtensionRequired => -32008,
            Self::Version(_) => -32009,
        }
    }

    /// The `google.rpc.ErrorInfo` reason A2A 1.0 clients read from `error.data`.
    fn reason(&self) -> &'static str {
        match self {
            Self::Parse(_) => "PARSE_ERROR",
            Self::InvalidRequest(_) => "INVALID_REQUEST",
            Self::MethodNotFound(_) => "METHOD_NOT_FOUND",
            Self::InvalidParams(_) => "INVALID_PARAMS",
            Self::Internal(_) => "INTERNAL",
            Self::TaskNotFound(_) => "TASK_NOT_FOUND",
            Self::NotCancelable(_) => "TASK_NOT_CANCELABLE",
            Self::PushNotSupported => "PUSH_NOTIFICATION_NOT_SUPPORTED",
            Self::Unsupported(_) => "UNSUPPORTED_OPERATION",
            Self::ContentType(_) => "CONTENT_TYPE_NOT_SUPPORTED",
            Self::NoExtendedCard => "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
            Self::ExtensionRequired => "EXTENSION_SUPPORT_REQUIRED",
            Self::Version(_) => "VERSION_NOT_SUPPORTED",
        }
    }

    /// The JSON-RPC `error` object.
    pub fn to_json(&self) -> Value {
        if let Self::Internal(detail) = self {
            tracing::error!(error = %detail, "A2A request failed");
        }
        json!({
            "code": self.code(),
            "message": self.to_string(),
            "data": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": self.reason(),
                "domain": "a2a-protocol.org",
                "metadata": {},
            }],
        })
    }
}

impl From<MarketError> for A2aError {
    fn from(e: MarketError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for A2aError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}
