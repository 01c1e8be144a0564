//! Gas benchmark on a real anvil, measured from transaction receipts.
//!
//! `cargo run --release -p escrow-client --example gas_bench [-- --json]`
//!
//! Reports: one full bounty lifecycle with an ERC-20 reward and a 38-character description
//! (post+fund, award, submit+attest+release) on a fresh escrow and in steady state, the
//! two-transaction path (post+fund+award, submit+attest+release), the ETH variant, and
//! `redeemBatch` gas per voucher at 1, 10 and 50 vouchers from distinct payers, and what the
//! ERC-8004 registries cost after a job (`giveBountyFeedback`, `recordBountyValidation`), and
//! one x402 payment (an EIP-3009 `transferWithAuthorization` submitted by a facilitator) next to
//! what a one-off payer spends to pay by voucher instead (approve + open a channel).

use alloy::primitives::{U256, utils::parse_ether};
use escrow_client::{
    ClientOptions, NewBounty, ReefClient,
    bindings::escrow::IBountyTypes::Bounty,
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    escrow::random_salt,
    signing::{self, TransferWithAuthorization, verdict},
};

/// 38 characters, as in the ERC-8183 reference measurement.
const DESCRIPTION: &str = "Sort these 10,000 integers, ascending.";

struct Row {
    name: String,
    txs: Vec<(String, u64)>,
}

impl Row {
    fn total(&self) -> u64 {
        self.txs.iter().map(|t| t.1).sum()
    }
}

async fn terms(
    poster: &ReefClient,
    evaluator: &ReefClient,
    token: alloy::primitives::Address,
) -> Bounty {
    let now = poster.chain_time().await.unwrap();
    let nb = NewBounty {
        token,
        amount: parse_ether("100").unwrap().to(),
        evaluator: Some(evaluator.address()),
        arbiter: alloy::primitives::Address::ZERO,
        deadline: now + 86_400,
        review_window: 3_600,
        challenge_window: 0,
        description: DESCRIPTION.into(),
        contest_winners: None,
    };
    poster.terms(&nb).await.unwrap()
}

async fn three_tx(
    name: &str,
    poster: &ReefClient,
    provider: &ReefClient,
    evaluator: &ReefClient,
    token: alloy::primitives::Address,
    nonce: u64,
) -> Row {
    let t = terms(poster, evaluator, token).await;
    let price = t.amount;
    let (id, b, txs) = poster.post_and_fund(random_salt(), t, true).await.unwrap();
    let post = txs.last().unwrap().gas_used;
    let deadline = poster.chain_time().await.unwrap() + 600;
    let (bid, sig) = provider.sign_bid(id, &b, price, deadline, 0, U256::from(nonce)).unwrap();
    let (b, award) = poster.award(id, &b, bid, sig).await.unwrap();
    let rh = alloy::primitives::keccak256(b"sorted output");
    let att = evaluator.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
    let (_, settle) = provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, att).await.unwrap();
    Row {
        name: name.into(),
        txs: vec![
            ("postAndFund".into(), post),
            ("award".into(), award.gas_used),
            ("submitAndAttest".into(), settle.gas_used),
        ],
    }
}

async fn two_tx(
    name: &str,
    poster: &ReefClient,
    provider: &ReefClient,
    evaluator: &ReefClient,
    token: alloy::primitives::Address,
    nonce: u64,
) -> (Row, U256, Bounty) {
    let t = terms(poster, evaluator, token).await;
    let salt = random_salt();
    let id = escrow_client::escrow::bounty_id(poster.address(), salt);
    let deadline = poster.chain_time().await.unwrap() + 600;
    let (bid, sig) = provider.sign_bid(id, &t, t.amount, deadline, 0, U256::from(nonce)).unwrap();
    let (_, b, txs) = poster.post_fund_and_award(salt, t, bid, sig, true).await.unwrap();
    let first = txs.last().unwrap().gas_used;
    let rh = alloy::primitives::keccak256(b"sorted output");
    let att = evaluator.sign_attestation(id, b.provider, rh, verdict::ACCEPT).unwrap();
    let (b, settle) = provider.submit_and_attest(id, &b, rh, verdict::ACCEPT, att).await.unwrap();
    let row = Row {
        name: name.into(),
        txs: vec![("postFundAndAward".into(), first), ("submitAndAttest".into(), settle.gas_used)],
    };
    (row, id, b)
}

#[tokio::main]
async fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.expect("anvil starts");
    let opts = ClientOptions::default();
    let deployer =
        ReefClient::connect(&anvil.rpc_url, dev_signer(0), empty_deployment(31337), opts.clone())
            .await
            .unwrap();
    // Seed many payers for the voucher batches (dev keys 0..5 plus random funded keys).
    let (dep, _) = deploy_all(
        &deployer,
        &DeployConfig::devnet((0..6).map(|i| dev_signer(i).address()).collect()),
    )
    .await
    .unwrap();
    let c =
        |i: usize| ReefClient::connect(&anvil.rpc_url, dev_signer(i), dep.clone(), opts.clone());
    let (poster, provider, evaluator) =
        (c(0).await.unwrap(), c(1).await.unwrap(), c(2).await.unwrap());
    let token = dep.test_token.unwrap();
    let fee = poster.fee_bps().await.unwrap();

    let mut rows = Vec::new();
    rows.push(
        three_tx(
            "ERC-20, 3 tx, first bounty on a fresh escrow",
            &poster,
            &provider,
            &evaluator,
            token,
            1,
        )
        .await,
    );
    rows.push(
        three_tx("ERC-20, 3 tx, steady state", &poster, &provider, &evaluator, token, 2).await,
    );
    let (row, first_id, first_record) = two_tx(
        "ERC-20, 2 tx (post+fund+award, submit+attest+release)",
        &poster,
        &provider,
        &evaluator,
        token,
        3,
    )
    .await;
    rows.push(row);
    rows.push(
        three_tx(
            "ETH, 3 tx, steady state",
            &poster,
            &provider,
            &evaluator,
            alloy::primitives::Address::ZERO,
            4,
        )
        .await,
    );
    let (row, second_id, second_record) =
        two_tx("ETH, 2 tx", &poster, &provider, &evaluator, alloy::primitives::Address::ZERO, 5)
            .await;
    rows.push(row);
    // The rows above use consecutive bid nonces (one bitmap word), as agents do with
    // `signing::BidNonces`. A random nonce per bid opens a new word at every award.
    rows.push(
        two_tx(
            "ERC-20, 2 tx, bid nonce in a new bitmap word (random nonce per bid)",
            &poster,
            &provider,
            &evaluator,
            token,
            rand::random::<u64>() | 1 << 63,
        )
        .await
        .0,
    );

    // ERC-8004 after a job: the provider's identity, the poster's rating, the verdict copied
    // into the ValidationRegistry (the first for this agent and validator writes their lists'
    // first slots; the second only appends).
    let (agent_id, register) =
        provider.register_agent("https://sorter.example/a.json").await.unwrap();
    let rating = escrow_client::feedback::Rating { value: 90, ..Default::default() };
    let (_, feedback) =
        poster.give_bounty_feedback(first_id, &first_record, agent_id, &rating).await.unwrap();
    let (_, validation1) =
        evaluator.record_bounty_validation(first_id, &first_record, agent_id).await.unwrap();
    let (_, validation2) =
        evaluator.record_bounty_validation(second_id, &second_record, agent_id).await.unwrap();
    let erc8004 = [
        ("register (AgentRegistry, once per agent)", register.gas_used),
        ("giveBountyFeedback (ReputationRegistry)", feedback.gas_used),
        ("recordBountyValidation, the agent's first", validation1.gas_used),
        ("recordBountyValidation, steady state", validation2.gas_used),
    ];

    // Vouchers: n payers (fresh keys funded with ETH and tokens) → one payee, one batch.
    let mut batches = Vec::new();
    for n in [1usize, 10, 50] {
        let mut vouchers = Vec::new();
        let mut sigs = Vec::new();
        for _ in 0..n {
            let key = alloy::signers::local::PrivateKeySigner::random();
            let payer = poster.with_signer(key).unwrap();
            poster.send_eth(payer.address(), parse_ether("1").unwrap()).await.unwrap();
            poster
                .mint_test_tokens(token, payer.address(), parse_ether("10").unwrap())
                .await
                .unwrap();
            let (ch, _) = payer
                .open_channel(provider.address(), token, parse_ether("10").unwrap().to(), 3_600)
                .await
                .unwrap();
            // 1,000 micropayments: the payee only keeps the latest cumulative voucher.
            let mut last = None;
            for i in 1..=1_000u64 {
                last = Some(
                    payer
                        .sign_voucher(
                            ch,
                            provider.address(),
                            U256::from(i) * parse_ether("0.001").unwrap(),
                        )
                        .unwrap(),
                );
            }
            let (v, s) = last.unwrap();
            vouchers.push(v);
            sigs.push(s);
        }
        let out = provider.redeem_batch(vouchers, sigs).await.unwrap();
        batches.push((n, out.gas_used));
    }

    // x402: 10 payments from 10 fresh payers (tokens only, no ETH: the facilitator pays the
    // gas) to the provider, who already holds tokens; each authorization uses a new nonce.
    let domain = signing::token_domain(signing::TEST_TOKEN_DOMAIN_NAME, "1", dep.chain_id, token);
    let mut x402 = Vec::new();
    for i in 0..10u8 {
        let key = alloy::signers::local::PrivateKeySigner::random();
        poster.mint_test_tokens(token, key.address(), parse_ether("1").unwrap()).await.unwrap();
        let auth = TransferWithAuthorization {
            from: key.address(),
            to: provider.address(),
            value: parse_ether("0.001").unwrap(),
            validAfter: U256::ZERO,
            validBefore: U256::from(u64::MAX),
            nonce: alloy::primitives::B256::repeat_byte(i + 1),
        };
        let sig = signing::sign_transfer_authorization(&key, &auth, &domain).unwrap();
        let out = evaluator.transfer_with_authorization(token, &auth, sig).await.unwrap();
        x402.push(out.gas_used);
    }
    let x402_avg = x402.iter().sum::<u64>() / x402.len() as u64;
    // The same one-off payment by voucher: the payer approves and opens a channel first.
    let key = alloy::signers::local::PrivateKeySigner::random();
    let one_off = poster.with_signer(key).unwrap();
    poster.send_eth(one_off.address(), parse_ether("1").unwrap()).await.unwrap();
    poster.mint_test_tokens(token, one_off.address(), parse_ether("1").unwrap()).await.unwrap();
    let approve = one_off
        .approve(token, dep.payment_channel, parse_ether("0.001").unwrap())
        .await
        .unwrap()
        .gas_used;
    let (_, open) = one_off
        .open_channel(provider.address(), token, parse_ether("0.001").unwrap().to(), 3_600)
        .await
        .unwrap();
    let one_off_setup = [("approve", approve), ("open (PaymentChannel)", open.gas_used)];

    if json {
        let v = serde_json::json!({
            "feeBps": fee,
            "lifecycles": rows.iter().map(|r| serde_json::json!({
                "name": r.name, "total": r.total(),
                "txs": r.txs.iter().map(|(n, g)| serde_json::json!({"action": n, "gas": g})).collect::<Vec<_>>()
            })).collect::<Vec<_>>(),
            "redeemBatch": batches.iter().map(|(n, g)| serde_json::json!({
                "vouchers": n, "gas": g, "perVoucher": g / *n as u64,
                "perMicropaymentAt1000": (*g as f64) / (*n as f64) / 1000.0
            })).collect::<Vec<_>>(),
            "erc8004": erc8004.iter().map(|(n, g)| serde_json::json!({"action": n, "gas": g})).collect::<Vec<_>>(),
            "x402": { "transferWithAuthorization": x402, "average": x402_avg },
            "voucherOneOffSetup": one_off_setup.iter().map(|(n, g)| serde_json::json!({"action": n, "gas": g})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return;
    }
    println!(
        "Reef gas benchmark (anvil receipts, platform fee {fee} bps, description {} chars)\n",
        DESCRIPTION.len()
    );
    println!("| lifecycle | transactions (gas) | total |\n|---|---|---|");
    for r in &rows {
        let parts: Vec<String> = r.txs.iter().map(|(n, g)| format!("{n} {g}")).collect();
        println!("| {} | {} | **{}** |", r.name, parts.join(" + "), r.total());
    }
    println!(
        "\nReference: ERC-8183 reference escrow, 6 transactions: 521,237 gas (../shared/TOOLCHAIN.md).\n"
    );
    println!(
        "| redeemBatch vouchers | tx gas | gas per voucher | gas per micropayment at 1,000 payments/voucher |\n|---|---|---|---|"
    );
    for (n, g) in &batches {
        println!("| {n} | {g} | {} | {:.1} |", g / *n as u64, (*g as f64) / (*n as f64) / 1000.0);
    }
    println!("\n| ERC-8004 after a job | tx gas |\n|---|---|");
    for (n, g) in &erc8004 {
        println!("| {n} | {g} |");
    }
    println!(
        "\n| x402 payment (transferWithAuthorization, facilitator pays) | tx gas |\n|---|---|"
    );
    println!(
        "| average of {} payments from distinct payers (min {}, max {}) | **{x402_avg}** |",
        x402.len(),
        x402.iter().min().copied().unwrap_or_default(),
        x402.iter().max().copied().unwrap_or_default()
    );
    for (n, g) in &one_off_setup {
        println!("| one-off voucher payer's {n} | {g} |");
    }
}
