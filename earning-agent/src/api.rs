//! A small REST client for the node's `/v1` API: challenge login with the account's key and
//! JSON requests with the bearer token (market info, bids, contest entries; the `reef` CLI's
//! posts and follows use it too).

use alloy::{
    signers::{SignerSync, local::PrivateKeySigner},
    transports::http::reqwest,
};
use serde_json::{Value, json};

/// Why a request to the node failed. Retries are decided by the variant, never by the text.
#[derive(Debug, Clone, thiserror::Error)]
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
        method: &'static str,
        /// The request path.
        path: String,
        /// The node's error message (or the body when it sent no JSON message).
        message: String,
        /// The node's error code (`busy`, `conflict`, ...), when it sent one.
        code: Option<String>,
        /// For `busy` (admission control): when the node asks to be asked again.
        retry_after_ms: Option<u64>,
    },
    /// A 2xx answer that lacks what the protocol says it carries.
    #[error("node sent no {0}")]
    Missing(&'static str),
}

impl ApiError {
    /// The HTTP status the node answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the node could not be reached at all (worth retrying).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// For the node's `503 busy` (admission control): how long it asks to wait.
    pub fn busy_retry(&self) -> Option<std::time::Duration> {
        match self {
            Self::Status { status: 503, code, retry_after_ms, .. }
                if code.as_deref() == Some("busy") =>
            {
                Some(std::time::Duration::from_millis(retry_after_ms.unwrap_or(1_000)))
            }
            _ => None,
        }
    }
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

/// An (optionally authenticated) session with a node's REST API.
#[derive(Debug, Clone)]
pub struct NodeApi {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
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

    /// The bearer token of the last [`login`](Self::login) (or the one given), if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Logs in by signing the node's challenge (EIP-191) with `signer`.
    pub async fn login(&mut self, signer: &PrivateKeySigner) -> Result<(), ApiError> {
        let ch = self.request("POST", "/v1/auth/challenge", Some(json!({}))).await?;
        let message = ch["message"].as_str().ok_or(ApiError::Missing("challenge message"))?;
        let nonce = ch["nonce"].as_str().ok_or(ApiError::Missing("challenge nonce"))?;
        let sig = signer
            .sign_message_sync(message.as_bytes())
            .map_err(|_| ApiError::Missing("signable challenge"))?;
        let sig_hex = alloy_primitives::hex::encode_prefixed(sig.as_bytes());
        let out = self
            .request(
                "POST",
                "/v1/auth/login",
                Some(json!({ "address": signer.address(), "nonce": nonce, "signature": sig_hex })),
            )
            .await?;
        self.token = Some(out["token"].as_str().ok_or(ApiError::Missing("token"))?.to_string());
        Ok(())
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.request("GET", path, None).await
    }

    /// POST `body` to `path`.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        self.request("POST", path, Some(body)).await
    }

    /// PUT `body` to `path`.
    pub async fn put(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        self.request("PUT", path, Some(body)).await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Result<Value, ApiError> {
        self.request("DELETE", path, None).await
    }

    async fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "GET" => self.http.get(&url),
            "PUT" => self.http.put(&url),
            "DELETE" => self.http.delete(&url),
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
            let message = v["message"].as_str().map(str::to_string).unwrap_or(text);
            return Err(ApiError::Status {
                status: status.as_u16(),
                method,
                path: path.to_string(),
                message,
                code: v["code"].as_str().or(v["error"].as_str()).map(str::to_string),
                retry_after_ms: v["retry_after_ms"].as_u64(),
            });
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        assert_eq!(http_base("ws://127.0.0.1:7700/v1/ws"), "http://127.0.0.1:7700");
        assert_eq!(http_base("http://127.0.0.1:7700/"), "http://127.0.0.1:7700");
        assert_eq!(http_base("wss://n.example/v1/ws"), "https://n.example");
    }

    /// An unreachable node is told apart from a node answering an error by the variant.
    #[tokio::test]
    async fn unreachable_is_a_variant() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = NodeApi::new(&format!("http://127.0.0.1:{port}")).get("/v1/x").await.unwrap_err();
        assert!(matches!(e, ApiError::Unreachable { .. }), "{e}");
        assert_eq!(e.status(), None);
    }
}
