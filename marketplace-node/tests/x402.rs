//! x402 on a real anvil: the paid endpoint (`x402::X402Service`) answers 402 with the
//! requirements read from the deployed token, settles a signed EIP-3009 authorization with
//! `transferWithAuthorization`, runs the call once, and refuses replays, underpayments, bad
//! signatures, expired authorizations and unfunded payers before running anything.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256, utils::parse_ether};
use alloy::providers::Provider as _;
use alloy::signers::local::PrivateKeySigner;
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use escrow_client::{
    ClientOptions, ReefClient,
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    signing::{self, TransferWithAuthorization},
};
use marketplace_node::x402::{
    Authorization, CallHandler, ExactEvmPayload, Facilitator, PaidCall, PaymentPayload,
    PaymentRequired, PriceTerms, ResourceInfo, SettleResponse, X402Service, decode_header,
    encode_header, server::CALL_PATH, verify::reason,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Env {
    _anvil: AnvilProcess,
    payee: ReefClient,
    minter: ReefClient,
    token: Address,
    terms: PriceTerms,
    app: Router,
    runs: Arc<AtomicUsize>,
}

fn price() -> U256 {
    parse_ether("0.001").unwrap()
}

async fn setup() -> Env {
    setup_with(ClientOptions::default()).await
}

/// `payee_opts`: the options of the payee's client, which settles (the facilitator).
async fn setup_with(payee_opts: ClientOptions) -> Env {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let opts = ClientOptions::default();
    let deployer =
        ReefClient::connect(&anvil.rpc_url, dev_signer(0), empty_deployment(31337), opts.clone())
            .await
            .unwrap();
    let (dep, _) = deploy_all(
        &deployer,
        &DeployConfig::devnet((0..3).map(|i| dev_signer(i).address()).collect()),
    )
    .await
    .unwrap();
    let token = dep.test_token.unwrap();
    let payee =
        ReefClient::connect(&anvil.rpc_url, dev_signer(1), dep.clone(), payee_opts).await.unwrap();
    let minter = ReefClient::connect(&anvil.rpc_url, dev_signer(0), dep, opts).await.unwrap();
    let terms =
        PriceTerms::for_token(&payee, token, price(), payee.address(), Duration::from_secs(300))
            .await
            .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let handler: CallHandler = Arc::new(move |call: PaidCall| {
        let counter = counter.clone();
        futures::FutureExt::boxed(async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (true, json!({ "echo": call.input, "payer": call.payer }))
        })
    });
    let resource = ResourceInfo {
        url: format!("http://127.0.0.1{CALL_PATH}"),
        description: Some("echo".into()),
        mime_type: Some("application/json".into()),
    };
    let app = X402Service::new(terms.clone(), resource, Facilitator::new(payee.clone()), handler)
        .router();
    Env { _anvil: anvil, payee, minter, token, terms, app, runs }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

impl Env {
    /// A fresh payer holding `tokens` (and no ETH: the facilitator pays the gas).
    async fn payer(&self, tokens: U256) -> PrivateKeySigner {
        let key = PrivateKeySigner::random();
        if !tokens.is_zero() {
            self.minter.mint_test_tokens(self.token, key.address(), tokens).await.unwrap();
        }
        key
    }

    fn payload(&self, key: &PrivateKeySigner, value: U256, valid_before: u64) -> PaymentPayload {
        let auth = TransferWithAuthorization {
            from: key.address(),
            to: self.terms.pay_to,
            value,
            validAfter: U256::ZERO,
            validBefore: U256::from(valid_before),
            nonce: B256::from(rand::random::<[u8; 32]>()),
        };
        let domain = signing::token_domain(
            &self.terms.domain.name,
            &self.terms.domain.version,
            31337,
            self.token,
        );
        let signature = signing::sign_transfer_authorization(key, &auth, &domain).unwrap();
        PaymentPayload {
            x402_version: 2,
            payload: ExactEvmPayload {
                authorization: Authorization {
                    from: auth.from,
                    to: auth.to,
                    value: auth.value,
                    valid_after: auth.validAfter,
                    valid_before: auth.validBefore,
                    nonce: auth.nonce,
                },
                signature,
            },
            accepted: self.terms.requirements(),
            resource: None,
            extensions: None,
        }
    }

    async fn call(&self, payment: Option<&PaymentPayload>) -> (StatusCode, Value, Option<String>) {
        let mut req = Request::post(CALL_PATH).header("content-type", "application/json");
        if let Some(p) = payment {
            req = req.header("PAYMENT-SIGNATURE", encode_header(p));
        }
        let resp =
            self.app.clone().oneshot(req.body(Body::from("[3,1,2]")).unwrap()).await.unwrap();
        let status = resp.status();
        let header = resp
            .headers()
            .get(if status == StatusCode::OK { "payment-response" } else { "payment-required" })
            .map(|h| h.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap(), header)
    }

    async fn balance(&self, who: Address) -> U256 {
        self.payee.token_balance(self.token, who).await.unwrap()
    }
}

fn refusal(body: &Value) -> String {
    body["error"].as_str().unwrap().split(':').next().unwrap().to_owned()
}

#[tokio::test]
async fn pays_once_and_refuses_replays_and_bad_payments_before_the_work() {
    let env = setup().await;
    assert_eq!(env.terms.domain.name, "Reef Test USD");
    assert_eq!(env.terms.domain.version, "1");

    // No payment: 402 with the requirements in the body and the header.
    let (status, body, header) = env.call(None).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    let required: PaymentRequired = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(required.accepts, vec![env.terms.requirements()]);
    assert_eq!(decode_header::<PaymentRequired>(&header.unwrap()).unwrap(), required);
    assert_eq!(refusal(&body), "payment required");

    // A correct payment: settled on chain, then served once.
    let key = env.payer(parse_ether("1").unwrap()).await;
    let before = env.balance(env.terms.pay_to).await;
    let paid = env.payload(&key, price(), now() + 120);
    let (status, body, header) = env.call(Some(&paid)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["result"]["echo"], json!([3, 1, 2]));
    let settled: SettleResponse = decode_header(&header.unwrap()).unwrap();
    assert!(settled.success);
    assert_eq!(settled.payer, key.address());
    assert_eq!(settled.network, "eip155:31337");
    assert_eq!(format!("{:#x}", settled.transaction), body["transaction"].as_str().unwrap());
    assert_eq!(env.balance(env.terms.pay_to).await, before + price());
    assert_eq!(env.runs.load(Ordering::SeqCst), 1);
    let receipt =
        env.payee.provider().get_transaction_receipt(settled.transaction).await.unwrap().unwrap();
    eprintln!("x402 settlement (transferWithAuthorization) gas: {}", receipt.gas_used);

    // The same payload again: the nonce is used on chain, nothing runs, nothing moves.
    let (status, body, _) = env.call(Some(&paid)).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(refusal(&body), reason::NONCE_USED);
    assert_eq!(env.runs.load(Ordering::SeqCst), 1);
    assert_eq!(env.balance(env.terms.pay_to).await, before + price());

    // Underpaying, expired, signed by someone else, or from an empty wallet: refused.
    let under = env.payload(&key, price() - U256::from(1), now() + 120);
    assert_eq!(refusal(&env.call(Some(&under)).await.1), reason::VALUE_MISMATCH);
    let expired = env.payload(&key, price(), now() - 1);
    assert_eq!(refusal(&env.call(Some(&expired)).await.1), reason::VALID_BEFORE);
    let mut forged = env.payload(&PrivateKeySigner::random(), price(), now() + 120);
    forged.payload.authorization.from = key.address();
    assert_eq!(refusal(&env.call(Some(&forged)).await.1), reason::INVALID_SIGNATURE);
    let broke = env.payer(U256::ZERO).await;
    let unfunded = env.payload(&broke, price(), now() + 120);
    let (status, body, _) = env.call(Some(&unfunded)).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(refusal(&body), reason::INSUFFICIENT_BALANCE);
    assert_eq!(env.runs.load(Ordering::SeqCst), 1, "no refused payment ran the call");
    assert_eq!(env.balance(env.terms.pay_to).await, before + price());

    // One payload sent twice at once: one settles and is served, the other is refused.
    let twice = env.payload(&key, price(), now() + 120);
    let (a, b) = tokio::join!(env.call(Some(&twice)), env.call(Some(&twice)));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PAYMENT_REQUIRED], "{} / {}", a.1, b.1);
    let refused = if a.0 == StatusCode::OK { &b.1 } else { &a.1 };
    assert!(
        [reason::SETTLEMENT_PENDING, reason::NONCE_USED].contains(&refusal(refused).as_str()),
        "{refused}"
    );
    assert_eq!(env.runs.load(Ordering::SeqCst), 2);
    assert_eq!(env.balance(env.terms.pay_to).await, before + price() * U256::from(2));
}

#[tokio::test]
async fn bad_bodies_and_headers_get_clear_answers() {
    let env = setup().await;
    // Not base64 JSON.
    let req =
        Request::post(CALL_PATH).header("PAYMENT-SIGNATURE", "%%%").body(Body::from("1")).unwrap();
    let resp = env.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap())
            .unwrap();
    assert_eq!(refusal(&body), reason::INVALID_PAYLOAD);
    // The x402 v1 header.
    let req = Request::post(CALL_PATH).header("X-PAYMENT", "e30=").body(Body::empty()).unwrap();
    let resp = env.app.clone().oneshot(req).await.unwrap();
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap())
            .unwrap();
    assert_eq!(refusal(&body), reason::INVALID_VERSION);
    // A body that is not JSON.
    let req = Request::post(CALL_PATH).body(Body::from("{")).unwrap();
    let resp = env.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(env.runs.load(Ordering::SeqCst), 0);
    // ETH cannot be paid with x402 `exact`; neither can a contract without EIP-3009.
    assert!(
        PriceTerms::for_token(
            &env.payee,
            Address::ZERO,
            price(),
            env.payee.address(),
            Duration::from_secs(60)
        )
        .await
        .is_err()
    );
    let channel = env.payee.deployment().payment_channel;
    let err = PriceTerms::for_token(
        &env.payee,
        channel,
        price(),
        env.payee.address(),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("EIP-3009") || err.to_string().contains("EIP-712"), "{err}");
}

#[tokio::test]
async fn a_settlement_that_times_out_is_served_on_retry_once_mined_and_only_once() {
    let env = setup_with(ClientOptions {
        tx_timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    })
    .await;
    let key = env.payer(parse_ether("1").unwrap()).await;
    let provider = env.payee.provider();
    let rpc = |method: &'static str, params: Value| async move {
        provider.raw_request::<_, Value>(method.into(), params).await.unwrap()
    };
    rpc("evm_setAutomine", json!([false])).await;
    let before = env.balance(env.terms.pay_to).await;
    let paid = env.payload(&key, price(), now() + 120);

    // Sent, not mined within the facilitator's timeout: 503, nothing served.
    let (status, body, _) = env.call(Some(&paid)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(refusal(&body), reason::SETTLEMENT_PENDING);
    // The same payload again while it is still unmined: still pending, still not served.
    let (status, body, _) = env.call(Some(&paid)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(refusal(&body), reason::SETTLEMENT_PENDING);
    assert_eq!(env.runs.load(Ordering::SeqCst), 0);

    // Mined: the retry is served on that settlement, without a second transfer.
    rpc("evm_mine", json!([])).await;
    rpc("evm_setAutomine", json!([true])).await;
    let (status, body, header) = env.call(Some(&paid)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let settled: SettleResponse = decode_header(&header.unwrap()).unwrap();
    assert_eq!(env.runs.load(Ordering::SeqCst), 1);
    assert_eq!(env.balance(env.terms.pay_to).await, before + price());
    assert_eq!(format!("{:#x}", settled.transaction), body["transaction"].as_str().unwrap());

    // Served once: a further replay is refused.
    let (status, body, _) = env.call(Some(&paid)).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(refusal(&body), reason::NONCE_USED);
    assert_eq!(env.runs.load(Ordering::SeqCst), 1);
}
