//! The market dashboard that `reef node` serves at `/`: a few hand-written pages (HTML, CSS and
//! JavaScript embedded in the binary, no build step, nothing fetched from elsewhere) over the
//! JSON of [`api`], kept current by the server-sent events of [`live`].
//!
//! What is public on-chain is public here. Group transcripts, sealed bids, the ranking and task
//! inputs are shown only to a viewer allowed to see them, who logs in with the node's bearer
//! token ([`auth`]: a wallet-signed challenge or `reef dashboard login`), exchanged for an
//! `HttpOnly`, `SameSite=Strict` session cookie.

pub mod api;
pub mod auth;
pub mod live;

use std::sync::Arc;

use axum::{
    Router,
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    ioa::Node,
    market::{Market, MarketError},
    openapi,
};

/// The dashboard's state: the node, its marketplace when it runs one, the live-update limits.
#[derive(Debug, Clone)]
pub struct Dashboard {
    node: Node,
    market: Option<Market>,
    live: Arc<live::Live>,
}

impl Dashboard {
    /// A dashboard over `node` (and `market`, when this node runs the marketplace) with at
    /// most `live_clients` live streams open at once.
    pub fn new(node: Node, market: Option<Market>, live_clients: usize) -> Self {
        let live = Arc::new(live::Live::new(live_clients, live::CLIENT_QUEUE));
        Self { node, market, live }
    }

    fn market(&self) -> Result<&Market, DashError> {
        self.market.as_ref().ok_or(DashError::NoMarket)
    }
}

/// Errors of the dashboard's JSON routes.
#[derive(Debug, thiserror::Error)]
pub enum DashError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A session is needed (log in first).
    #[error("{0}")]
    Unauthenticated(String),
    /// The viewer may not see this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing by that name.
    #[error("{0}")]
    NotFound(String),
    /// This node runs no marketplace.
    #[error("this node runs no marketplace (start it with --rpc-url)")]
    NoMarket,
    /// Too many live-update streams are open.
    #[error("too many live dashboards are open on this node; try again later")]
    Busy,
    /// The marketplace failed.
    #[error(transparent)]
    Market(#[from] MarketError),
    /// The IoA layer failed.
    #[error(transparent)]
    Ioa(#[from] crate::ioa::Error),
    /// The embedded index failed.
    #[error("index: {0}")]
    Index(#[from] reef_indexer::Error),
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        use crate::market::rest::json_error;
        match self {
            Self::Market(e) => e.into_response(),
            Self::Ioa(e) => crate::ioa::AppError(e).into_response(),
            Self::BadRequest(m) => json_error(StatusCode::BAD_REQUEST, "bad_request", m),
            Self::Unauthenticated(m) => json_error(StatusCode::UNAUTHORIZED, "unauthenticated", m),
            Self::Forbidden(m) => json_error(StatusCode::FORBIDDEN, "forbidden", m),
            Self::NotFound(m) => json_error(StatusCode::NOT_FOUND, "not_found", m),
            e @ Self::NoMarket => json_error(StatusCode::NOT_FOUND, "no_market", e.to_string()),
            e @ Self::Busy => json_error(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
            Self::Index(e) => {
                tracing::error!(error = %e, "dashboard index read failed");
                json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the node's log",
                )
            }
        }
    }
}

/// Result alias of the dashboard's routes.
pub type Result<T, E = DashError> = std::result::Result<T, E>;

/// The dashboard's routes with their OpenAPI description ([`crate::openapi`]): the pages at
/// `/`, their assets under `/dashboard/`, the JSON under `/v1/dashboard/`.
pub fn routes() -> OpenApiRouter<Dashboard> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(asset))
        .routes(routes!(auth::login, auth::whoami, auth::logout))
        .routes(routes!(api::market))
        .routes(routes!(api::bounties))
        .routes(routes!(api::bounty))
        .routes(routes!(api::agents))
        .routes(routes!(api::agent))
        .routes(routes!(api::groups))
        .routes(routes!(api::group))
        .routes(routes!(live::stream))
}

/// The dashboard's routes; at most `live_clients` live streams at once ([`live::MAX_CLIENTS`]
/// is the node's default).
pub fn router(node: Node, market: Option<Market>, live_clients: usize) -> Router {
    let state = Dashboard::new(node, market, live_clients);
    let (router, _) = routes().split_for_parts();
    router.layer(axum::extract::DefaultBodyLimit::max(16 * 1024)).with_state(state)
}

/// The embedded files: name, content type, bytes.
pub(crate) const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("assets/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("assets/app.css")),
    ("favicon.svg", "image/svg+xml", include_str!("assets/favicon.svg")),
];

/// Headers every page and asset carries: nothing but this origin may run or be loaded.
fn secured(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    r
}

/// The dashboard's page (HTML; its script reads the JSON routes below).
#[utoipa::path(get, path = "/", operation_id = "dashboard_page", tag = "dashboard",
    description = "The dashboard's single page (docs/dashboard.md); its script and style are the assets under `/dashboard/`. Served with a Content-Security-Policy that allows this origin only.",
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
    ))]
async fn index() -> Response {
    let page = include_str!("assets/index.html");
    secured(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            page,
        )
            .into_response(),
    )
}

/// One of the page's embedded files.
#[utoipa::path(get, path = "/dashboard/{file}", operation_id = "dashboard_asset", tag = "dashboard",
    params(("file" = String, Path, description = "The file's name: `app.js`, `app.css` or `favicon.svg`")),
    responses(
        (status = 200, description = "The file: JavaScript, CSS or SVG", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "image/svg+xml"),
        )),
        (status = 404, description = "No such file (not_found)", body = openapi::ErrorBody),
    ))]
async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ty, body)) => secured(
            ([(header::CONTENT_TYPE, *ty), (header::CACHE_CONTROL, "no-cache")], *body)
                .into_response(),
        ),
        None => DashError::NotFound(format!("no dashboard file {file:?}")).into_response(),
    }
}
