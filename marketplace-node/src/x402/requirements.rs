//! What a call costs, as x402 v2 payment requirements (`402` body and `PAYMENT-REQUIRED`).

use std::time::Duration;

use alloy::primitives::{Address, U256};
use escrow_client::{ReefClient, bindings::token::ReefTestToken};

use super::{
    Error, PaymentRequired, PaymentRequirements, ResourceInfo, Result, SCHEME_EXACT, TokenDomain,
    X402_VERSION, caip2,
};

/// The price of one call and who is paid, in terms the `exact` scheme can express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTerms {
    /// Chain id of the token.
    pub chain_id: u64,
    /// The EIP-3009 token.
    pub asset: Address,
    /// The token's EIP-712 domain.
    pub domain: TokenDomain,
    /// Price per call, base units (> 0).
    pub amount: U256,
    /// The payee.
    pub pay_to: Address,
    /// Longest validity window accepted (the client's `validBefore − now`).
    pub max_timeout: Duration,
}

impl PriceTerms {
    /// Reads the token's EIP-712 domain (ERC-5267 `eip712Domain()`) and checks that it speaks
    /// EIP-3009 (`authorizationState` answers) and lives on `chain`'s chain.
    pub async fn for_token(
        chain: &ReefClient,
        asset: Address,
        amount: U256,
        pay_to: Address,
        max_timeout: Duration,
    ) -> Result<Self> {
        let unsupported = |reason: String| Error::UnsupportedToken { token: asset, reason };
        if asset.is_zero() {
            return Err(unsupported("x402 `exact` pays with an EIP-3009 ERC-20, not ETH".into()));
        }
        if amount.is_zero() {
            return Err(Error::Invalid("the x402 price must be above zero".into()));
        }
        let d = chain.view(asset, ReefTestToken::eip712DomainCall {}).await.map_err(|e| {
            unsupported(format!("no ERC-5267 eip712Domain() (not an EIP-3009 token?): {e}"))
        })?;
        let chain_id = chain.deployment().chain_id;
        if d.verifyingContract != asset || d.chainId != U256::from(chain_id) {
            return Err(unsupported(format!(
                "its EIP-712 domain names chain {} / contract {}, not chain {chain_id} / {asset}",
                d.chainId, d.verifyingContract
            )));
        }
        chain
            .view(
                asset,
                ReefTestToken::authorizationStateCall {
                    authorizer: Address::ZERO,
                    nonce: Default::default(),
                },
            )
            .await
            .map_err(|e| unsupported(format!("no EIP-3009 authorizationState(): {e}")))?;
        Ok(Self {
            chain_id,
            asset,
            domain: TokenDomain { name: d.name, version: d.version },
            amount,
            pay_to,
            max_timeout,
        })
    }

    /// The one `accepts` entry for these terms.
    pub fn requirements(&self) -> PaymentRequirements {
        PaymentRequirements {
            scheme: SCHEME_EXACT.into(),
            network: caip2(self.chain_id),
            asset: self.asset,
            amount: self.amount,
            pay_to: self.pay_to,
            max_timeout_seconds: self.max_timeout.as_secs(),
            extra: self.domain.clone(),
        }
    }
}

/// The 402 answer: the requirements, the resource and why the request was not served.
pub fn payment_required(
    terms: &PriceTerms,
    resource: &ResourceInfo,
    error: impl Into<String>,
) -> PaymentRequired {
    PaymentRequired {
        x402_version: X402_VERSION,
        error: Some(error.into()),
        resource: Some(resource.clone()),
        accepts: vec![terms.requirements()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms() -> PriceTerms {
        PriceTerms {
            chain_id: 31337,
            asset: Address::repeat_byte(0xaa),
            domain: TokenDomain { name: "Reef Test USD".into(), version: "1".into() },
            amount: U256::from(1_000_000_000_000_000u64),
            pay_to: Address::repeat_byte(0xbb),
            max_timeout: Duration::from_secs(300),
        }
    }

    #[test]
    fn requirements_speak_x402_v2_exact() {
        let res = ResourceInfo {
            url: "http://127.0.0.1:1/v1/x402/call".into(),
            description: Some("sort".into()),
            mime_type: Some("application/json".into()),
        };
        let pr = payment_required(&terms(), &res, "payment required");
        let v = serde_json::to_value(&pr).unwrap();
        assert_eq!(v["x402Version"], 2);
        assert_eq!(v["error"], "payment required");
        let a = &v["accepts"][0];
        assert_eq!(a["scheme"], "exact");
        assert_eq!(a["network"], "eip155:31337");
        assert_eq!(a["amount"], "1000000000000000");
        assert_eq!(a["payTo"], format!("{:#x}", Address::repeat_byte(0xbb)));
        assert_eq!(a["maxTimeoutSeconds"], 300);
        assert_eq!(a["extra"]["name"], "Reef Test USD");
        assert_eq!(a["extra"]["version"], "1");
        assert_eq!(v["resource"]["mimeType"], "application/json");
        let back: PaymentRequired = serde_json::from_value(v).unwrap();
        assert_eq!(back, pr);
    }
}
