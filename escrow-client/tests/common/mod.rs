//! Shared setup for integration tests: a real anvil process with Reef deployed.

#![allow(dead_code, unreachable_pub, missing_docs)]

use alloy::{
    primitives::{Address, B256, U256, utils::parse_ether},
    providers::Provider,
};
use escrow_client::{
    ClientOptions, Deployment, NewBounty, ReefClient, RetryPolicy,
    bindings::escrow::IBountyTypes::Bounty,
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer},
    escrow::random_salt,
};

pub struct Env {
    pub anvil: AnvilProcess,
    pub dep: Deployment,
    pub poster: ReefClient,
    pub provider: ReefClient,
    pub evaluator: ReefClient,
    pub arbiter: ReefClient,
    pub stranger: ReefClient,
    pub token: Address,
}

pub fn opts() -> ClientOptions {
    ClientOptions { retry: RetryPolicy::none(), ..ClientOptions::default() }
}

pub async fn setup() -> Env {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.expect("anvil starts");
    let deployer =
        ReefClient::connect(&anvil.rpc_url, dev_signer(0), empty_deployment(31337), opts())
            .await
            .unwrap();
    let seed = (0..6).map(|i| dev_signer(i).address()).collect();
    let (dep, _) = deploy_all(&deployer, &DeployConfig::devnet(seed)).await.expect("deploys");
    let c = |i| {
        let dep = dep.clone();
        let url = anvil.rpc_url.clone();
        async move { ReefClient::connect(&url, dev_signer(i), dep, opts()).await.unwrap() }
    };
    let token = dep.test_token.unwrap();
    Env {
        poster: c(0).await,
        provider: c(1).await,
        evaluator: c(2).await,
        arbiter: c(3).await,
        stranger: c(4).await,
        dep,
        token,
        anvil,
    }
}

impl Env {
    pub fn new_bounty(&self, amount: u128, deadline: u64) -> NewBounty {
        NewBounty {
            token: self.token,
            amount,
            evaluator: Some(self.evaluator.address()),
            arbiter: self.arbiter.address(),
            deadline,
            review_window: 3_600,
            challenge_window: 3_600,
            description: "Sort these 10,000 numbers ascending.".into(),
            contest_winners: None,
        }
    }

    /// Posts and funds an ERC-20 bounty; returns (id, record).
    pub async fn posted(&self, amount: u128) -> (U256, Bounty) {
        let now = self.poster.chain_time().await.unwrap();
        let terms = self.poster.terms(&self.new_bounty(amount, now + 86_400)).await.unwrap();
        let (id, b, _) = self.poster.post_and_fund(random_salt(), terms, true).await.unwrap();
        (id, b)
    }

    /// Posted + awarded to `provider` at `price`.
    pub async fn awarded(&self, amount: u128, price: u128) -> (U256, Bounty) {
        self.awarded_bonded(amount, price, U256::ZERO).await
    }

    /// [`Self::awarded`] with a bid that bonds `bond` wei of the provider's stake.
    pub async fn awarded_bonded(&self, amount: u128, price: u128, bond: U256) -> (U256, Bounty) {
        let (id, b) = self.posted(amount).await;
        let deadline = self.poster.chain_time().await.unwrap() + 600;
        let (bid, sig) = self
            .provider
            .sign_bonded_bid(id, &b, price, deadline, 0, bond, U256::from(rand_nonce()))
            .unwrap();
        let (b, _) = self.poster.award(id, &b, bid, sig).await.unwrap();
        (id, b)
    }

    pub async fn warp(&self, secs: u64) {
        let p = self.poster.provider();
        let _: serde_json::Value = p.raw_request("evm_increaseTime".into(), (secs,)).await.unwrap();
        let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
    }

    pub async fn bal(&self, who: Address) -> U256 {
        self.poster.token_balance(self.token, who).await.unwrap()
    }
}

pub fn rand_nonce() -> u64 {
    rand::random::<u32>() as u64
}

pub fn result_hash(s: &str) -> B256 {
    alloy::primitives::keccak256(s.as_bytes())
}

pub fn ether(s: &str) -> u128 {
    parse_ether(s).unwrap().to::<u128>()
}
