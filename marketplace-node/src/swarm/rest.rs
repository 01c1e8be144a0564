//! Swarm auctions over REST, for posters that do not hold a WebSocket: `POST /v1/swarm/ask`
//! answers once a winner's answer is held (or the query failed), `POST /v1/swarm/pay` releases
//! it against a voucher. Bodies and answers are the WebSocket frames' (docs/swarm.md).

use axum::extract::State;
use axum::{Json, Router};
use reef_wire::swarm::{AskOutcome, PayOutcome, SwarmAsk, SwarmPay};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::ioa::rest::{Body, Caller};
use crate::ioa::{AppError, Error, Node};
use crate::openapi;

/// The swarm's REST routes with their OpenAPI description.
pub fn routes() -> OpenApiRouter<Node> {
    OpenApiRouter::new().routes(routes!(ask)).routes(routes!(pay))
}

/// The swarm's REST routes.
pub fn router(node: Node) -> Router {
    let (router, _) = routes().split_for_parts();
    router.with_state(node)
}

fn swarm(node: &Node) -> Result<crate::swarm::Swarm, AppError> {
    node.swarm().cloned().ok_or_else(|| {
        Error::NotFound("this node runs no swarm auctions (started without --rpc-url)".into())
            .into()
    })
}

/// Asks a question to the agents listening for its skill; answers with the invoice once the
/// winner's answer is held (pay it with `POST /v1/swarm/pay`), or why the query failed.
#[utoipa::path(post, path = "/v1/swarm/ask", tag = "swarm",
    request_body = openapi::SwarmAskBody,
    responses(
        (status = 200, description = "`status: invoice` (pay to get the answer) or `status: failed` (no_agents, no_bids, no_answer; nothing owed)", body = openapi::SwarmAskOutcome),
        (status = 400, description = "Malformed ask: empty or oversized question, window outside 50..=200 ms, max_price 0 (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 404, description = "This node runs no swarm auctions (not_found)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited, or too many open queries of this poster", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn ask(
    State(node): State<Node>,
    Caller(me): Caller,
    Body(req): Body<SwarmAsk>,
) -> Result<Json<AskOutcome>, AppError> {
    let swarm = swarm(&node)?;
    // In its own task: a client that hangs up does not cancel a query agents are bidding on.
    let outcome = tokio::spawn(async move { swarm.ask(me, req).await })
        .await
        .map_err(|e| Error::Internal(format!("swarm ask task: {e}")))??;
    Ok(Json(outcome))
}

/// Pays an invoiced query with a cumulative payment-channel voucher to the winner; answers
/// with the answer (`status: paid`) or the refusal (`status: refused`, the answer stays held
/// until the invoice's `pay_by_ms`).
#[utoipa::path(post, path = "/v1/swarm/pay", tag = "swarm",
    request_body = openapi::SwarmPayBody,
    responses(
        (status = 200, description = "`status: paid` with the answer, or `status: refused` with the reason (bad_signature, stale_voucher, wrong_amount, exceeds_deposit, …)", body = openapi::SwarmPayOutcome),
        (status = 400, description = "Malformed body (invalid_frame)", body = openapi::ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = openapi::ErrorBody),
        (status = 404, description = "This node runs no swarm auctions (not_found)", body = openapi::ErrorBody),
        (status = 429, description = "Rate limited", body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn pay(
    State(node): State<Node>,
    Caller(me): Caller,
    Body(req): Body<SwarmPay>,
) -> Result<Json<PayOutcome>, AppError> {
    let swarm = swarm(&node)?;
    let outcome = tokio::spawn(async move { swarm.pay(me, req).await })
        .await
        .map_err(|e| Error::Internal(format!("swarm pay task: {e}")))??;
    Ok(Json(outcome))
}
