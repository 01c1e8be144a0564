//! A small REST client for a Reef node's `/v1` API: challenge login with the account's key and
//! JSON requests with the bearer token. Used by `reef bounty post --node` and `reef agent run`.

use alloy::{
    signers::{SignerSync, local::PrivateKeySigner},
    transports::http::reqwest,
};
use eyre::{Context, eyre};
use serde_json::{Value, json};

/// Why a request to the node failed. Callers decide on retries by the variant, never by
/// matching the message text (which can contain anything, e.g. a port number).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer at all: the node is down, restarting, or the address is wrong.
    #[error("node {base} unreachable ({reason}); is `reef node` running there?")]
    Unreachable {
        /// The node's base URL.
        base: String,
        /// What the HTTP client reported.
        reason: String,
    },
    /// The node answered with an error status.
    #[error("node answered {status} to {method} {path}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// `GET` or `POST`.
        method: String,
        /// The request path.
        path: String,
        /// The node's error message (or the body when it sent no JSON message).
        message: String,
        /// The node's error code (`busy`, `conflict`, ...), when it sent one.
        code: Option<String>,
        /// For `busy`: when the node asks to be asked again.
        retry_after_ms: Option<u64>,
    },
}

impl ApiError {
    /// The HTTP status the node answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Unreachable { .. } => None,
        }
    }

    /// The `ApiError` inside `report`, if the failure came from the node API.
    pub fn of(report: &eyre::Report) -> Option<&Self> {
        report.downcast_ref::<Self>()
    }

    /// Whether `report` is "the node could not be reached" (worth retrying).
    pub fn is_unreachable(report: &eyre::Report) -> bool {
        matches!(Self::of(report), Some(Self::Unreachable { .. }))
    }

    /// The HTTP status in `report`, if the node answered with an error.
    pub fn status_of(report: &eyre::Report) -> Option<u16> {
        Self::of(report).and_then(Self::status)
    }

    /// When `report` is the node's `503 busy` (admission control): how long it asks to wait.
    pub fn busy_retry(report: &eyre::Report) -> Option<std::time::Duration> {
        match Self::of(report)? {
            Self::Status { status: 503, code, retry_after_ms, .. }
                if code.as_deref() == Some("busy") =>
            {
                Some(std::time::Duration::from_millis(retry_after_ms.unwrap_or(1_000)))
            }
            _ => None,
        }
    }
}

/// Longest pause between two attempts to reach a node that is not up.
pub const MAX_WAIT_STEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `attempt` until it succeeds, fails with anything but "unreachable", or `patience` has
/// passed since the first failure; between attempts it waits 250 ms, doubling up to
/// [`MAX_WAIT_STEP`], and says so on stderr (`what` names the step).
pub async fn wait_for_node<T, F, Fut>(
    what: &str,
    patience: std::time::Duration,
    mut attempt: F,
) -> eyre::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = eyre::Result<T>>,
{
    let t0 = std::time::Instant::now();
    let mut step = std::time::Duration::from_millis(250);
    loop {
        match attempt().await {
            Err(e) if ApiError::is_unreachable(&e) && t0.elapsed() < patience => {
                let left = patience.saturating_sub(t0.elapsed());
                let pause = step.min(left);
                eprintln!(
                    "{what}: {e}; the node may not be up yet, retrying in {:.1} s (gives up in {} s; --wait-node sets how long)",
                    pause.as_secs_f32(),
                    left.as_secs()
                );
                tokio::time::sleep(pause).await;
                step = (step * 2).min(MAX_WAIT_STEP);
            }
            other => return other,
        }
    }
}

/// An authenticated session with a node.
#[derive(Debug, Clone)]
pub struct NodeApi {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// `ws://host:port/v1/ws` or `http://host:port[/...]` → `http://host:port`.
pub fn http_base(url: &str) -> String {
    let u = url.trim_end_matches('/');
    let u = u.strip_suffix("/v1/ws").unwrap_or(u);
    if let Some(rest) = u.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = u.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        u.to_string()
    }
}

impl NodeApi {
    /// A client for the node at `url` (http(s) or ws(s)).
    pub fn new(url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap_or_default();
        Self { base: http_base(url), http, token: None }
    }

    /// A client for the node at `url` that sends `token` (from `POST /v1/auth/login`).
    pub fn with_token(url: &str, token: String) -> Self {
        Self { token: Some(token), ..Self::new(url) }
    }

    /// Logs in by signing the node's challenge (EIP-191) with `signer`.
    pub async fn login(&mut self, signer: &PrivateKeySigner) -> eyre::Result<()> {
        let ch = self.request("POST", "/v1/auth/challenge", Some(json!({}))).await?;
        let message =
            ch["message"].as_str().ok_or_else(|| eyre!("node sent no challenge message"))?;
        let nonce = ch["nonce"].as_str().ok_or_else(|| eyre!("node sent no challenge nonce"))?;
        let sig =
            signer.sign_message_sync(message.as_bytes()).wrap_err("signing the login challenge")?;
        let sig_hex = format!("0x{}", alloy::primitives::hex::encode(sig.as_bytes()));
        let out = self
            .request(
                "POST",
                "/v1/auth/login",
                Some(json!({ "address": signer.address(), "nonce": nonce, "signature": sig_hex })),
            )
            .await?;
        self.token =
            Some(out["token"].as_str().ok_or_else(|| eyre!("node sent no token"))?.to_string());
        Ok(())
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> eyre::Result<Value> {
        self.request("GET", path, None).await
    }

    /// POST `body` to `path`.
    pub async fn post(&self, path: &str, body: Value) -> eyre::Result<Value> {
        self.request("POST", path, Some(body)).await
    }

    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> eyre::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| ApiError::Unreachable {
            base: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if !status.is_success() {
            let msg = v["message"].as_str().map(str::to_string).unwrap_or(text);
            return Err(ApiError::Status {
                status: status.as_u16(),
                method: method.to_string(),
                path: path.to_string(),
                message: msg,
                code: v["error"].as_str().or(v["code"].as_str()).map(str::to_string),
                retry_after_ms: v["retry_after_ms"].as_u64(),
            }
            .into());
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retries and give-ups are decided by the kind of failure, never by the message text:
    /// an unreachable node whose port contains "404" is not a 404.
    #[tokio::test]
    async fn failures_are_classified_by_kind_not_by_text() {
        // A port that contains 404 and has nothing listening (bind, then close it).
        let closed = (40400..40500)
            .chain(14040..14050)
            .find_map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .map(|l| l.local_addr().unwrap().port())
            .expect("a free port containing 404");
        let e = NodeApi::new(&format!("http://127.0.0.1:{closed}")).get("/v1/market/info").await;
        let e = e.expect_err("nothing listens there");
        assert!(e.to_string().contains("404"), "{e}");
        assert!(ApiError::is_unreachable(&e), "{e}");
        assert_eq!(ApiError::status_of(&e), None);

        // A node that answers 404 (no such route) and 401.
        let app = axum::Router::new().route(
            "/v1/private",
            axum::routing::get(|| async { axum::http::StatusCode::UNAUTHORIZED }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let api = NodeApi::new(&base);
        let e = api.get("/v1/market/info").await.expect_err("no such route");
        assert_eq!(ApiError::status_of(&e), Some(404), "{e}");
        assert!(!ApiError::is_unreachable(&e));
        let e = api.get("/v1/private").await.expect_err("unauthorized");
        assert_eq!(ApiError::status_of(&e), Some(401), "{e}");
    }

    #[test]
    fn bases() {
        assert_eq!(http_base("ws://127.0.0.1:7700/v1/ws"), "http://127.0.0.1:7700");
        assert_eq!(http_base("http://127.0.0.1:7700/"), "http://127.0.0.1:7700");
        assert_eq!(http_base("wss://n.example/v1/ws"), "https://n.example");
    }
}
