//! The x402-paid HTTP endpoint of an agent: `POST /v1/x402/call`.
//!
//! Without a payment it answers 402 with the requirements (JSON body, and base64 in the
//! `PAYMENT-REQUIRED` header as x402 v2 clients read them). With a `PAYMENT-SIGNATURE` header
//! it verifies the payment, settles it on chain, runs the call and answers 200 with the result
//! and the settlement in `PAYMENT-RESPONSE`. A refused payment is a 402 whose `error` says why;
//! the call is not run. The request body is the call's input (any JSON; empty = `null`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    PAYMENT_REQUIRED_HEADER, PAYMENT_RESPONSE_HEADER, PAYMENT_SIGNATURE_HEADER, PaymentPayload,
    ResourceInfo, X_PAYMENT_HEADER, decode_header, encode_header,
    requirements::{PriceTerms, payment_required},
    settle::Facilitator,
    verify::{Refusal, reason, verify},
};

/// Path of the paid endpoint.
pub const CALL_PATH: &str = "/v1/x402/call";

/// A call whose payment is settled on chain: run it.
#[derive(Debug, Clone)]
pub struct PaidCall {
    /// Id of the call: the settlement transaction's hash (`0x…`).
    pub call_id: String,
    /// Who paid.
    pub payer: Address,
    /// How much was transferred (≥ the price).
    pub amount: U256,
    /// The settlement transaction.
    pub transaction: B256,
    /// The request body.
    pub input: Value,
}

/// Runs a paid call: `(ok, result)`.
pub type CallHandler = Arc<dyn Fn(PaidCall) -> BoxFuture<'static, (bool, Value)> + Send + Sync>;

/// Told about every served call and every refusal (one JSON object each), e.g. for logs.
pub type Notify = Arc<dyn Fn(Value) + Send + Sync>;

/// The 200 body of a paid call.
#[derive(Debug, Clone, Serialize)]
pub struct CallResult {
    /// The call's id (the settlement transaction hash).
    pub call_id: String,
    /// Whether the program succeeded (a failed run is still paid: the work was attempted).
    pub ok: bool,
    /// The program's output (JSON, else text).
    pub result: Value,
    /// Who paid.
    pub payer: Address,
    /// Amount transferred, base units (decimal string).
    #[serde(with = "super::dec")]
    pub amount: U256,
    /// The settlement transaction.
    pub transaction: B256,
}

/// The paid endpoint's state (cheap to clone).
#[derive(Clone)]
pub struct X402Service {
    terms: Arc<PriceTerms>,
    resource: Arc<ResourceInfo>,
    facilitator: Facilitator,
    handler: CallHandler,
    notify: Option<Notify>,
}

impl std::fmt::Debug for X402Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X402Service")
            .field("terms", &self.terms)
            .field("resource", &self.resource)
            .field("facilitator", &self.facilitator.address())
            .finish_non_exhaustive()
    }
}

impl X402Service {
    /// A service charging `terms` for `resource`, settling with `facilitator` and running
    /// paid calls with `handler`.
    pub fn new(
        terms: PriceTerms,
        resource: ResourceInfo,
        facilitator: Facilitator,
        handler: CallHandler,
    ) -> Self {
        Self {
            terms: Arc::new(terms),
            resource: Arc::new(resource),
            facilitator,
            handler,
            notify: None,
        }
    }

    /// Reports served calls and refusals to `notify`.
    pub fn with_notify(mut self, notify: Notify) -> Self {
        self.notify = Some(notify);
        self
    }

    /// The terms.
    pub fn terms(&self) -> &PriceTerms {
        &self.terms
    }

    /// The router serving [`CALL_PATH`].
    pub fn router(self) -> Router {
        // The literal is CALL_PATH (the route scan of openapi/tests.rs reads literals).
        Router::new().route("/v1/x402/call", post(call)).with_state(self)
    }

    fn tell(&self, v: Value) {
        if let Some(n) = &self.notify {
            n(v);
        }
    }

    /// The 402 (or 503) for a refusal, with the requirements to pay again.
    fn refuse(&self, r: &Refusal, payer: Option<Address>) -> Response {
        self.tell(json!({ "event": "x402_refused", "reason": r.reason, "message": r.message,
            "payer": payer }));
        let error = if r.reason == reason::PAYMENT_REQUIRED {
            r.message.clone()
        } else {
            format!("{}: {}", r.reason, r.message)
        };
        let body = payment_required(&self.terms, &self.resource, error);
        let status =
            if r.retry { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::PAYMENT_REQUIRED };
        let mut resp = (status, Json(&body)).into_response();
        if let Ok(h) = HeaderValue::from_str(&encode_header(&body)) {
            resp.headers_mut().insert(PAYMENT_REQUIRED_HEADER, h);
        }
        resp
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// `POST /v1/x402/call`.
async fn call(State(s): State<X402Service>, headers: HeaderMap, body: Bytes) -> Response {
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({ "error": format!("the body must be JSON (the call's input): {e}") })),
                )
                    .into_response();
            }
        }
    };
    let Some(raw) = headers.get(PAYMENT_SIGNATURE_HEADER) else {
        let r = if headers.contains_key(X_PAYMENT_HEADER) {
            Refusal::new(
                reason::INVALID_VERSION,
                "X-PAYMENT is x402 v1; this server speaks v2 (PAYMENT-SIGNATURE header)",
            )
        } else {
            Refusal::new(reason::PAYMENT_REQUIRED, "payment required: send PAYMENT-SIGNATURE")
        };
        return s.refuse(&r, None);
    };
    let payload: PaymentPayload =
        match raw.to_str().map_err(|e| e.to_string()).and_then(decode_header) {
            Ok(p) => p,
            Err(e) => return s.refuse(&Refusal::new(reason::INVALID_PAYLOAD, e), None),
        };
    let payer = payload.payload.authorization.from;
    let verified = match verify(&payload, &s.terms, now()) {
        Ok(v) => v,
        Err(r) => return s.refuse(&r, Some(payer)),
    };
    let settled = match s.facilitator.settle(&verified, &s.terms).await {
        Ok(r) => r,
        Err(r) => return s.refuse(&r, Some(payer)),
    };
    let call = PaidCall {
        call_id: format!("{:#x}", settled.transaction),
        payer,
        amount: settled.amount,
        transaction: settled.transaction,
        input,
    };
    let call_id = call.call_id.clone();
    let (ok, result) = (s.handler)(call).await;
    s.tell(json!({ "event": "x402_call", "call_id": call_id, "payer": payer, "ok": ok,
        "amount": settled.amount.to_string(), "transaction": settled.transaction }));
    let out = CallResult {
        call_id,
        ok,
        result,
        payer,
        amount: settled.amount,
        transaction: settled.transaction,
    };
    let mut resp = (StatusCode::OK, Json(&out)).into_response();
    if let Ok(h) = HeaderValue::from_str(&encode_header(&settled)) {
        resp.headers_mut().insert(PAYMENT_RESPONSE_HEADER, h);
    }
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("PAYMENT-RESPONSE, PAYMENT-REQUIRED"),
    );
    resp
}
