//! x402 pay-per-request HTTP: an agent's call paid by one EIP-3009 transfer authorization.
//!
//! A caller without a payment gets `402 Payment Required` with the payment requirements
//! ([`requirements`]: x402 v2, scheme `exact`, CAIP-2 network `eip155:<chainId>`, the token,
//! the price, the payee and the token's EIP-712 domain in `extra`). It signs an EIP-3009
//! `TransferWithAuthorization` for them and repeats the request with the base64 payment payload
//! in the `PAYMENT-SIGNATURE` header. The server checks the payload ([`verify`]: version,
//! scheme, network, asset, payee, amount ≥ price, validity window, signature) and the chain
//! (nonce unused, balance), settles it as its own facilitator by submitting
//! `transferWithAuthorization` ([`settle`]), and only then runs the work, answering with the
//! result and the settlement in the `PAYMENT-RESPONSE` header ([`server`]). A replayed or
//! underpaying payload is refused (402 with the reason) before any work is done.
//!
//! What this is not: a hosted facilitator for third-party servers, or an `upto`/Permit2 scheme.
//! Many small calls from one payer are cheaper with payment-channel vouchers
//! ([`crate::metered`]); `docs/x402.md` compares the two with measured gas.

pub mod requirements;
pub mod server;
pub mod settle;
pub mod verify;

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};

pub use requirements::{PriceTerms, payment_required};
pub use server::{CallHandler, PaidCall, X402Service};
pub use settle::Facilitator;
pub use verify::{Refusal, Verified, verify};

/// The x402 protocol version spoken here (v2: requirements in the `PAYMENT-REQUIRED` header).
pub const X402_VERSION: u32 = 2;
/// The only scheme supported: pay exactly (here: at least) the price with EIP-3009.
pub const SCHEME_EXACT: &str = "exact";
/// Request header carrying the base64 JSON payment payload (x402 v2).
pub const PAYMENT_SIGNATURE_HEADER: &str = "payment-signature";
/// Response header of a 402 carrying the base64 JSON payment requirements (x402 v2).
pub const PAYMENT_REQUIRED_HEADER: &str = "payment-required";
/// Response header carrying the base64 JSON settlement response (x402 v2).
pub const PAYMENT_RESPONSE_HEADER: &str = "payment-response";
/// The x402 v1 request header; refused with a reason (this server speaks v2).
pub const X_PAYMENT_HEADER: &str = "x-payment";

/// Errors of the x402 module (setup and I/O; a refused payment is a [`Refusal`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Chain call failed.
    #[error(transparent)]
    Chain(Box<escrow_client::Error>),
    /// The token cannot be paid with x402's `exact` scheme (no EIP-3009 or no EIP-712 domain).
    #[error("token {token}: {reason}")]
    UnsupportedToken {
        /// The token.
        token: Address,
        /// Why.
        reason: String,
    },
    /// A network id that is not `eip155:<chainId>`.
    #[error("invalid CAIP-2 network {0:?} (expected eip155:<chainId>)")]
    Network(String),
    /// Invalid argument.
    #[error("{0}")]
    Invalid(String),
}

impl From<escrow_client::Error> for Error {
    fn from(e: escrow_client::Error) -> Self {
        Self::Chain(Box::new(e))
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The CAIP-2 id of an EVM chain: `eip155:<chainId>`.
pub fn caip2(chain_id: u64) -> String {
    format!("eip155:{chain_id}")
}

/// The chain id of a CAIP-2 `eip155:<chainId>` network.
pub fn parse_caip2(network: &str) -> Result<u64> {
    network
        .strip_prefix("eip155:")
        .and_then(|id| id.parse::<u64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::Network(network.to_owned()))
}

/// Amounts and times as x402 writes them: decimal strings of base units / unix seconds.
/// `0x…` hex is accepted on input too.
pub mod dec {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Serializes as a decimal string.
    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    /// Parses a decimal (or `0x` hex) string, or a JSON integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(U256::from(n)),
            Raw::S(s) => parse(&s).map_err(D::Error::custom),
        }
    }

    /// Parses a decimal or `0x` hex amount.
    pub fn parse(s: &str) -> Result<U256, String> {
        let s = s.trim();
        let r = match s.strip_prefix("0x") {
            Some(hex) => U256::from_str_radix(hex, 16),
            None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                U256::from_str_radix(s, 10)
            }
            None => return Err(format!("{s:?} is not a decimal amount")),
        };
        r.map_err(|e| format!("{s:?}: {e}"))
    }
}

/// The token's EIP-712 domain, which the client signs under (`extra` of the requirements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenDomain {
    /// EIP-712 domain name (the token's `name()` for `ReefTestToken`).
    pub name: String,
    /// EIP-712 domain version.
    pub version: String,
}

/// One way to pay (x402 v2 `PaymentRequirements`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    /// `exact`.
    pub scheme: String,
    /// CAIP-2 network, `eip155:<chainId>`.
    pub network: String,
    /// The ERC-20 (EIP-3009) token contract.
    pub asset: Address,
    /// Price in the token's base units (decimal string).
    #[serde(with = "dec")]
    pub amount: U256,
    /// The payee.
    pub pay_to: Address,
    /// Longest validity window the server accepts, seconds.
    pub max_timeout_seconds: u64,
    /// The token's EIP-712 domain name and version.
    pub extra: TokenDomain,
}

/// What is being paid for (x402 v2 `ResourceInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// The URL of the paid endpoint.
    pub url: String,
    /// What a call does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Media type of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// The body (and base64 `PAYMENT-REQUIRED` header) of a 402 (x402 v2 `PaymentRequired`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequired {
    /// 2.
    pub x402_version: u32,
    /// Why the request was not served (missing payment, or why the payment was refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The paid resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    /// Accepted ways to pay (one here).
    pub accepts: Vec<PaymentRequirements>,
}

/// EIP-3009 authorization fields as the x402 `exact` EVM payload carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// The payer (signer).
    pub from: Address,
    /// The payee.
    pub to: Address,
    /// Amount in base units (decimal string).
    #[serde(with = "dec")]
    pub value: U256,
    /// Valid strictly after this unix time (decimal string).
    #[serde(with = "dec")]
    pub valid_after: U256,
    /// Valid strictly before this unix time (decimal string).
    #[serde(with = "dec")]
    pub valid_before: U256,
    /// Random one-shot 32-byte nonce.
    pub nonce: B256,
}

/// The `exact` EVM scheme's inner payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactEvmPayload {
    /// What was signed.
    pub authorization: Authorization,
    /// 65-byte `r ‖ s ‖ v` EIP-712 signature of the authorization by `from`.
    pub signature: Bytes,
}

/// The decoded `PAYMENT-SIGNATURE` header (x402 v2 `PaymentPayload`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayload {
    /// 2.
    pub x402_version: u32,
    /// The signed authorization.
    pub payload: ExactEvmPayload,
    /// The requirements the client chose to fulfil (one of `accepts`).
    pub accepted: PaymentRequirements,
    /// The resource, as the client saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    /// Client extensions (ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
}

/// The decoded `PAYMENT-RESPONSE` header (x402 v2 `SettleResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    /// True: the transfer is mined.
    pub success: bool,
    /// The payer.
    pub payer: Address,
    /// The settlement transaction.
    pub transaction: B256,
    /// CAIP-2 network.
    pub network: String,
    /// Amount transferred, base units (decimal string).
    #[serde(with = "dec")]
    pub amount: U256,
}

/// Base64 (standard alphabet, padded) of a value's JSON, as x402 headers carry it.
pub fn encode_header<T: Serialize>(v: &T) -> String {
    use base64::Engine as _;
    let json = serde_json::to_vec(v).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// Decodes a base64 JSON header value (standard or URL-safe alphabet, padding optional).
pub fn decode_header<T: serde::de::DeserializeOwned>(value: &str) -> Result<T, String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let v = value.trim();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(v).ok())
        .ok_or_else(|| "not base64".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not a payment payload: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caip2_roundtrip_and_rejects() {
        assert_eq!(caip2(31337), "eip155:31337");
        assert_eq!(parse_caip2("eip155:31337").unwrap(), 31337);
        for bad in ["eip155:", "eip155:0", "solana:abc", "31337", "eip155:x"] {
            assert!(parse_caip2(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_are_decimal_strings_and_accept_hex() {
        assert_eq!(dec::parse("1000").unwrap(), U256::from(1000));
        assert_eq!(dec::parse("0x3e8").unwrap(), U256::from(1000));
        assert!(dec::parse("-1").is_err());
        assert!(dec::parse("1e3").is_err());
        assert!(dec::parse("").is_err());
        let a: Authorization = serde_json::from_value(serde_json::json!({
            "from": Address::repeat_byte(1), "to": Address::repeat_byte(2), "value": "5",
            "validAfter": 0, "validBefore": "99", "nonce": B256::repeat_byte(3)
        }))
        .unwrap();
        assert_eq!(a.value, U256::from(5));
        let back = serde_json::to_value(&a).unwrap();
        assert_eq!(back["validAfter"], "0");
        assert_eq!(back["validBefore"], "99");
    }

    #[test]
    fn headers_roundtrip_in_any_base64_alphabet() {
        let s = SettleResponse {
            success: true,
            payer: Address::repeat_byte(1),
            transaction: B256::repeat_byte(2),
            network: caip2(1),
            amount: U256::from(7),
        };
        let h = encode_header(&s);
        assert_eq!(decode_header::<SettleResponse>(&h).unwrap(), s);
        let url = h.replace('+', "-").replace('/', "_").trim_end_matches('=').to_owned();
        assert_eq!(decode_header::<SettleResponse>(&url).unwrap(), s);
        assert!(decode_header::<SettleResponse>("%%%").is_err());
        assert!(decode_header::<SettleResponse>(&encode_header(&1)).is_err());
    }
}
