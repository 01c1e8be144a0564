//! The CLI's side of the node's REST API: the client itself is the earning-agent library's
//! [`NodeApi`] (challenge login with the account's key, JSON requests with the bearer token);
//! here is how the CLI waits for a node that is not up.

pub use reef_earning_agent::{ApiError, NodeApi, http_base};

/// Runs `attempt` until it succeeds, fails with anything but "unreachable", or `patience` has
/// passed since the first failure ([`reef_agent_sdk::retry_while_away`]), saying on stderr
/// before each pause that the node may not be up yet (`what` names the step).
pub async fn wait_for_node<T, F, Fut>(
    what: &str,
    patience: std::time::Duration,
    attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    reef_agent_sdk::retry_while_away(
        patience,
        ApiError::is_unreachable,
        |e, pause, left| {
            eprintln!(
                "{what}: {e}; the node may not be up yet, retrying in {:.1} s (gives up in {} s; --wait-node sets how long)",
                pause.as_secs_f32(),
                left.as_secs()
            )
        },
        attempt,
    )
    .await
}

/// The account a node login signs with: `--key` (or `REEF_PRIVATE_KEY`), else anvil's
/// `--dev-account N` (`reef dashboard login`, `reef group …`).
pub fn login_signer(
    key: Option<&str>,
    dev_account: Option<usize>,
) -> eyre::Result<alloy::signers::local::PrivateKeySigner> {
    match (key, dev_account) {
        (Some(k), _) => {
            k.trim().parse().map_err(|e| eyre::eyre!("--key is not a valid hex private key: {e}"))
        }
        (None, Some(i)) => escrow_client::devnet::dev_signer_checked(i)
            .map_err(|e| eyre::eyre!("--dev-account: {e}")),
        (None, None) => {
            eyre::bail!("no account: pass --key <hex> (or REEF_PRIVATE_KEY) or --dev-account N")
        }
    }
}

/// Connects to the node's IoA WebSocket as `signer`, waiting up to
/// [`crate::metered::payer::NODE_PATIENCE`] for a node that is not up yet and saying so on
/// stderr before each retry (`reef agent serve-metered`, `reef ask`, `reef swarm serve`).
pub async fn connect_ioa(
    node: &str,
    signer: alloy::signers::local::PrivateKeySigner,
) -> Result<(reef_agent_sdk::Client, reef_agent_sdk::Events), reef_agent_sdk::Error> {
    reef_agent_sdk::Client::connect_waiting(
        node,
        signer,
        Default::default(),
        crate::metered::payer::NODE_PATIENCE,
        |e, pause| {
            eprintln!("node {node} is not up yet ({e}); retrying in {:.1} s", pause.as_secs_f32())
        },
    )
    .await
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
        assert_eq!(e.status(), None);

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
        assert_eq!(e.status(), Some(404), "{e}");
        assert!(!ApiError::is_unreachable(&e));
        let e = api.get("/v1/private").await.expect_err("unauthorized");
        assert_eq!(e.status(), Some(401), "{e}");
        assert_eq!(e.busy_retry(), None);
    }

    /// The node's admission-control answer says how long to wait; other 503s do not.
    #[tokio::test]
    async fn a_busy_node_says_when_to_post_again() {
        use axum::{Json, http::StatusCode, routing::post};
        let app = axum::Router::new()
            .route(
                "/v1/market/bounties",
                post(|| async {
                    let body = serde_json::json!({ "code": "busy", "error": "busy", "message": "full", "retry_after_ms": 1500 });
                    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
                }),
            )
            .route(
                "/v1/other",
                post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let api = NodeApi::new(&base);
        let e = api.post("/v1/market/bounties", serde_json::json!({})).await.unwrap_err();
        assert_eq!(e.busy_retry(), Some(std::time::Duration::from_millis(1500)), "{e}");
        let e = api.post("/v1/other", serde_json::json!({})).await.unwrap_err();
        assert_eq!(e.status(), Some(503));
        assert_eq!(e.busy_retry(), None, "{e}");
    }
}
