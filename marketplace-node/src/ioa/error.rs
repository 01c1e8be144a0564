//! The IoA server's error type and its mapping to wire error codes and HTTP responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reef_wire::ErrorCode;

/// Errors of the IoA server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid (bad field value, bad frame).
    #[error("{1}")]
    BadRequest(ErrorCode, String),
    /// Authentication is missing or failed.
    #[error("{1}")]
    Auth(ErrorCode, String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such group or agent.
    #[error("{0}")]
    NotFound(String),
    /// Rate limit hit.
    #[error("rate limit exceeded")]
    RateLimited,
    /// The node's write queue is full (back-pressure instead of unbounded memory).
    #[error("node overloaded: write queue full, retry later")]
    Overloaded,
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Search index failure.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// Mesh (NATS) failure.
    #[error("mesh: {0}")]
    Mesh(String),
    /// Anything else internal.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result alias of the IoA server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The wire code and the message safe to show to a client (internals are logged, not sent).
    pub fn public(&self) -> (ErrorCode, String) {
        match self {
            Self::BadRequest(c, m) | Self::Auth(c, m) => (*c, m.clone()),
            Self::Forbidden(m) => (ErrorCode::Forbidden, m.clone()),
            Self::NotFound(m) => (ErrorCode::NotFound, m.clone()),
            Self::RateLimited => (ErrorCode::RateLimited, self.to_string()),
            Self::Overloaded => (ErrorCode::Overloaded, self.to_string()),
            Self::Db(_) | Self::Index(_) | Self::Mesh(_) | Self::Internal(_) => {
                tracing::error!(error = %self, "internal error");
                (ErrorCode::Internal, "internal error".into())
            }
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(..) => StatusCode::BAD_REQUEST,
            Self::Auth(..) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// REST error response: `{ "code", "error", "message" }` (`error` repeats `code`, the name the
/// marketplace routes used first; docs/earning.md "Errors"), never leaking internals.
#[derive(Debug)]
pub struct AppError(pub Error);

impl<E: Into<Error>> From<E> for AppError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let (code, message) = self.0.public();
        (status, Json(serde_json::json!({ "code": code, "error": code, "message": message })))
            .into_response()
    }
}
