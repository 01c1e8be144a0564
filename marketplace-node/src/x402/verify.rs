//! Checks of a payment payload that need no chain: version, scheme, network, asset, payee,
//! amount, validity window and the EIP-712 signature. The chain checks (nonce unused,
//! balance) and the settlement are in [`super::settle`].

use alloy::primitives::{Address, Bytes, U256};
use escrow_client::signing::{self, TransferWithAuthorization};

use super::{PaymentPayload, SCHEME_EXACT, X402_VERSION, requirements::PriceTerms};

/// Seconds an authorization must still be valid for when it is checked: the settlement
/// transaction has to be mined before `validBefore`.
pub const MIN_VALIDITY_LEFT: u64 = 6;

/// Why a payment was not accepted; nothing was served or charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Refusal {
    /// Machine-readable reason (x402's error codes where one exists, e.g.
    /// `invalid_exact_evm_payload_signature`).
    pub reason: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// True when the refusal is ours (chain unreachable): retry later, the payment is still
    /// unused (503 instead of 402).
    pub retry: bool,
}

impl Refusal {
    /// A refusal of the payment (402).
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), retry: false }
    }

    /// A temporary failure on our side (503): the payment was not used.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { reason: reason::UNAVAILABLE, message: message.into(), retry: true }
    }
}

/// Reason codes of refusals (x402's names where the spec or its SDKs define one).
pub mod reason {
    /// No payment header.
    pub const PAYMENT_REQUIRED: &str = "payment_required";
    /// The header is not base64 JSON of a v2 payment payload.
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
    /// `x402Version` is not 2 (or the v1 `X-PAYMENT` header was used).
    pub const INVALID_VERSION: &str = "invalid_x402_version";
    /// Scheme other than `exact`.
    pub const UNSUPPORTED_SCHEME: &str = "unsupported_scheme";
    /// Network other than this chain's `eip155:<chainId>`.
    pub const NETWORK_MISMATCH: &str = "network_mismatch";
    /// Another token.
    pub const ASSET_MISMATCH: &str = "invalid_exact_evm_asset_mismatch";
    /// Pays someone else.
    pub const RECIPIENT_MISMATCH: &str = "invalid_exact_evm_payload_recipient_mismatch";
    /// Pays less than the price.
    pub const VALUE_MISMATCH: &str = "invalid_exact_evm_payload_authorization_value_mismatch";
    /// `validBefore` passed, too close, or further than `maxTimeoutSeconds`.
    pub const VALID_BEFORE: &str = "invalid_exact_evm_payload_authorization_valid_before";
    /// `validAfter` is not in the past yet.
    pub const VALID_AFTER: &str = "invalid_exact_evm_payload_authorization_valid_after";
    /// The signature is not `from`'s over this authorization and token domain.
    pub const INVALID_SIGNATURE: &str = "invalid_exact_evm_payload_signature";
    /// The authorization's nonce was already used (a replay) or canceled.
    pub const NONCE_USED: &str = "invalid_exact_evm_nonce_already_used";
    /// `from` holds less than `value`.
    pub const INSUFFICIENT_BALANCE: &str = "invalid_exact_evm_insufficient_balance";
    /// The same authorization is being settled by a concurrent request.
    pub const SETTLEMENT_PENDING: &str = "settlement_pending";
    /// The settlement transaction reverted.
    pub const TRANSACTION_FAILED: &str = "transaction_failed";
    /// The chain could not be read or written (503, retry).
    pub const UNAVAILABLE: &str = "unavailable";
}

/// A payload that passed every off-chain check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The authorization, typed as the token's EIP-712 struct.
    pub auth: TransferWithAuthorization,
    /// Its signature.
    pub signature: Bytes,
}

impl Verified {
    /// The payer.
    pub fn payer(&self) -> Address {
        self.auth.from
    }
}

/// Checks `p` against `terms` at unix time `now` (no chain access).
pub fn verify(p: &PaymentPayload, terms: &PriceTerms, now: u64) -> Result<Verified, Refusal> {
    use reason::*;
    let want = terms.requirements();
    if p.x402_version != X402_VERSION {
        return Err(Refusal::new(
            INVALID_VERSION,
            format!("x402Version {} (this server speaks {X402_VERSION})", p.x402_version),
        ));
    }
    let acc = &p.accepted;
    if acc.scheme != SCHEME_EXACT {
        return Err(Refusal::new(UNSUPPORTED_SCHEME, format!("scheme {:?}", acc.scheme)));
    }
    if acc.network != want.network {
        return Err(Refusal::new(
            NETWORK_MISMATCH,
            format!("network {} (this server is paid on {})", acc.network, want.network),
        ));
    }
    if acc.asset != want.asset {
        return Err(Refusal::new(
            ASSET_MISMATCH,
            format!("asset {} (this server charges in {})", acc.asset, want.asset),
        ));
    }
    let a = &p.payload.authorization;
    for (what, to) in [("payTo", acc.pay_to), ("authorization.to", a.to)] {
        if to != want.pay_to {
            return Err(Refusal::new(
                RECIPIENT_MISMATCH,
                format!("{what} is {to}, the payee is {}", want.pay_to),
            ));
        }
    }
    if a.value < want.amount {
        return Err(Refusal::new(
            VALUE_MISMATCH,
            format!("authorizes {} but the price is {}", a.value, want.amount),
        ));
    }
    let now_u = U256::from(now);
    if a.valid_before <= now_u + U256::from(MIN_VALIDITY_LEFT) {
        return Err(Refusal::new(
            VALID_BEFORE,
            format!(
                "validBefore {} leaves less than {MIN_VALIDITY_LEFT} s to settle (now {now})",
                a.valid_before
            ),
        ));
    }
    if a.valid_before > now_u + U256::from(want.max_timeout_seconds) + U256::from(60) {
        return Err(Refusal::new(
            VALID_BEFORE,
            format!(
                "validBefore {} is further than maxTimeoutSeconds {} from now ({now})",
                a.valid_before, want.max_timeout_seconds
            ),
        ));
    }
    if a.valid_after >= now_u {
        return Err(Refusal::new(
            VALID_AFTER,
            format!("validAfter {} is not in the past (now {now})", a.valid_after),
        ));
    }
    let auth = TransferWithAuthorization {
        from: a.from,
        to: a.to,
        value: a.value,
        validAfter: a.valid_after,
        validBefore: a.valid_before,
        nonce: a.nonce,
    };
    let domain =
        signing::token_domain(&want.extra.name, &want.extra.version, terms.chain_id, want.asset);
    match signing::recover_typed(&auth, &domain, &p.payload.signature) {
        Ok(signer) if signer == a.from => {}
        Ok(signer) => {
            return Err(Refusal::new(
                INVALID_SIGNATURE,
                format!("signed by {signer}, not by the payer {}", a.from),
            ));
        }
        Err(e) => return Err(Refusal::new(INVALID_SIGNATURE, e.to_string())),
    }
    Ok(Verified { auth, signature: p.payload.signature.clone() })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use alloy::{primitives::B256, signers::local::PrivateKeySigner};

    use super::*;
    use crate::x402::{Authorization, ExactEvmPayload, TokenDomain};

    pub(crate) const NOW: u64 = 1_800_000_000;

    pub(crate) fn terms() -> PriceTerms {
        PriceTerms {
            chain_id: 31337,
            asset: Address::repeat_byte(0xaa),
            domain: TokenDomain { name: "Reef Test USD".into(), version: "1".into() },
            amount: U256::from(1000),
            pay_to: Address::repeat_byte(0xbb),
            max_timeout: Duration::from_secs(300),
        }
    }

    /// A payload as the official client builds it, signed by `key` under `terms`' domain.
    pub(crate) fn signed(key: &PrivateKeySigner, t: &PriceTerms, value: u64) -> PaymentPayload {
        let auth = TransferWithAuthorization {
            from: key.address(),
            to: t.pay_to,
            value: U256::from(value),
            validAfter: U256::ZERO,
            validBefore: U256::from(NOW + 120),
            nonce: B256::repeat_byte(7),
        };
        resign(key, t, auth)
    }

    fn resign(
        key: &PrivateKeySigner,
        t: &PriceTerms,
        auth: TransferWithAuthorization,
    ) -> PaymentPayload {
        let domain = signing::token_domain(&t.domain.name, &t.domain.version, t.chain_id, t.asset);
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
            accepted: t.requirements(),
            resource: None,
            extensions: None,
        }
    }

    fn reason_of(p: &PaymentPayload, t: &PriceTerms) -> &'static str {
        verify(p, t, NOW).unwrap_err().reason
    }

    #[test]
    fn accepts_a_correct_payment_and_a_tip() {
        let key = PrivateKeySigner::random();
        let t = terms();
        let v = verify(&signed(&key, &t, 1000), &t, NOW).unwrap();
        assert_eq!(v.payer(), key.address());
        assert_eq!(v.auth.value, U256::from(1000));
        assert!(verify(&signed(&key, &t, 1500), &t, NOW).is_ok(), "more than the price is fine");
    }

    #[test]
    fn refuses_underpayment() {
        let key = PrivateKeySigner::random();
        let t = terms();
        assert_eq!(reason_of(&signed(&key, &t, 999), &t), reason::VALUE_MISMATCH);
    }

    #[test]
    fn refuses_a_bad_signature() {
        let key = PrivateKeySigner::random();
        let t = terms();
        // Signed by someone else than `from`.
        let mut p = signed(&key, &t, 1000);
        p.payload.authorization.from = Address::repeat_byte(0x11);
        assert_eq!(reason_of(&p, &t), reason::INVALID_SIGNATURE);
        // A field changed after signing.
        let mut p = signed(&key, &t, 1000);
        p.payload.authorization.value = U256::from(2000);
        assert_eq!(reason_of(&p, &t), reason::INVALID_SIGNATURE);
        // Garbage.
        let mut p = signed(&key, &t, 1000);
        p.payload.signature = Bytes::from(vec![1u8; 64]);
        assert_eq!(reason_of(&p, &t), reason::INVALID_SIGNATURE);
        // Signed under another token domain (another version).
        let mut other = t.clone();
        other.domain.version = "2".into();
        let p = signed(&key, &other, 1000);
        assert_eq!(reason_of(&p, &t), reason::INVALID_SIGNATURE);
    }

    #[test]
    fn refuses_the_wrong_pay_to() {
        let key = PrivateKeySigner::random();
        let t = terms();
        let mut elsewhere = t.clone();
        elsewhere.pay_to = Address::repeat_byte(0xcc);
        // Signed for another payee and says so.
        assert_eq!(reason_of(&signed(&key, &elsewhere, 1000), &t), reason::RECIPIENT_MISMATCH);
        // Claims our payTo in `accepted`, but the signed authorization pays someone else.
        let mut p = signed(&key, &elsewhere, 1000);
        p.accepted.pay_to = t.pay_to;
        assert_eq!(reason_of(&p, &t), reason::RECIPIENT_MISMATCH);
    }

    #[test]
    fn refuses_expired_and_not_yet_valid() {
        let key = PrivateKeySigner::random();
        let t = terms();
        let base = signed(&key, &t, 1000);
        let with = |f: &dyn Fn(&mut TransferWithAuthorization)| {
            let a = &base.payload.authorization;
            let mut auth = TransferWithAuthorization {
                from: a.from,
                to: a.to,
                value: a.value,
                validAfter: a.valid_after,
                validBefore: a.valid_before,
                nonce: a.nonce,
            };
            f(&mut auth);
            resign(&key, &t, auth)
        };
        let expired = with(&|a| a.validBefore = U256::from(NOW - 1));
        assert_eq!(reason_of(&expired, &t), reason::VALID_BEFORE);
        let too_close = with(&|a| a.validBefore = U256::from(NOW + MIN_VALIDITY_LEFT));
        assert_eq!(reason_of(&too_close, &t), reason::VALID_BEFORE);
        let too_far = with(&|a| a.validBefore = U256::from(NOW + 10 * 86_400));
        assert_eq!(reason_of(&too_far, &t), reason::VALID_BEFORE);
        let early = with(&|a| a.validAfter = U256::from(NOW));
        assert_eq!(reason_of(&early, &t), reason::VALID_AFTER);
        assert!(verify(&with(&|a| a.validAfter = U256::from(NOW - 1)), &t, NOW).is_ok());
    }

    #[test]
    fn refuses_the_wrong_chain_scheme_asset_and_version() {
        let key = PrivateKeySigner::random();
        let t = terms();
        let mut other_chain = t.clone();
        other_chain.chain_id = 8453;
        assert_eq!(reason_of(&signed(&key, &other_chain, 1000), &t), reason::NETWORK_MISMATCH);
        // The network string says ours but the signature is for chain 8453's domain.
        let mut p = signed(&key, &other_chain, 1000);
        p.accepted.network = "eip155:31337".into();
        assert_eq!(reason_of(&p, &t), reason::INVALID_SIGNATURE);
        let mut p = signed(&key, &t, 1000);
        p.accepted.scheme = "upto".into();
        assert_eq!(reason_of(&p, &t), reason::UNSUPPORTED_SCHEME);
        let mut p = signed(&key, &t, 1000);
        p.accepted.asset = Address::repeat_byte(0xee);
        assert_eq!(reason_of(&p, &t), reason::ASSET_MISMATCH);
        let mut p = signed(&key, &t, 1000);
        p.x402_version = 1;
        assert_eq!(reason_of(&p, &t), reason::INVALID_VERSION);
    }
}
