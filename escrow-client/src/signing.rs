//! EIP-712 signing and verification of bids, attestations and vouchers.
//!
//! The typed data is exactly what `eth_signTypedData_v4` signs, so any wallet can produce these
//! signatures; the integration tests compare our signatures with anvil's
//! `eth_signTypedData_v4` and with the contracts' own digest functions.

use alloy::{
    primitives::{Address, B256, Bytes, Signature},
    signers::SignerSync,
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};

use crate::{
    Error, Result,
    bindings::{
        channel::PaymentChannel::Voucher,
        escrow::IBountyTypes::{Attestation, Bid},
    },
};

/// EIP-712 domain name of the BountyEscrow.
pub const ESCROW_DOMAIN_NAME: &str = "ReefBountyEscrow";
/// EIP-712 domain name of the PaymentChannel.
pub const CHANNEL_DOMAIN_NAME: &str = "ReefPaymentChannel";

/// The BountyEscrow's EIP-712 domain on `chain_id` at `escrow`.
pub fn escrow_domain(chain_id: u64, escrow: Address) -> Eip712Domain {
    eip712_domain! { name: ESCROW_DOMAIN_NAME, version: "1", chain_id: chain_id, verifying_contract: escrow, }
}

/// The PaymentChannel's EIP-712 domain on `chain_id` at `channel`.
pub fn channel_domain(chain_id: u64, channel: Address) -> Eip712Domain {
    eip712_domain! { name: CHANNEL_DOMAIN_NAME, version: "1", chain_id: chain_id, verifying_contract: channel, }
}

/// Signs any EIP-712 struct; returns the 65-byte `r || s || v` signature (v = 27/28).
pub fn sign_typed<T: SolStruct>(
    signer: &impl SignerSync,
    value: &T,
    domain: &Eip712Domain,
) -> Result<Bytes> {
    let sig = signer.sign_hash_sync(&value.eip712_signing_hash(domain))?;
    Ok(Bytes::from(sig.as_bytes().to_vec()))
}

/// Recovers the EOA that signed `value` under `domain`.
pub fn recover_typed<T: SolStruct>(
    value: &T,
    domain: &Eip712Domain,
    sig: &[u8],
) -> Result<Address> {
    let sig = Signature::try_from(sig).map_err(|e| {
        Error::InvalidInput(format!("malformed signature ({} bytes): {e}", sig.len()))
    })?;
    let digest: B256 = value.eip712_signing_hash(domain);
    sig.recover_address_from_prehash(&digest)
        .map_err(|e| Error::InvalidInput(format!("unrecoverable signature: {e}")))
}

/// Checks that `sig` over `value` was made by `expected`.
pub fn verify_typed<T: SolStruct>(
    value: &T,
    domain: &Eip712Domain,
    sig: &[u8],
    expected: Address,
) -> Result<()> {
    let recovered = recover_typed(value, domain, sig)?;
    if recovered == expected { Ok(()) } else { Err(Error::BadSignature { expected, recovered }) }
}

/// Signs a bid as its bidder.
pub fn sign_bid(signer: &impl SignerSync, bid: &Bid, domain: &Eip712Domain) -> Result<Bytes> {
    sign_typed(signer, bid, domain)
}

/// Signs an evaluator's attestation.
pub fn sign_attestation(
    signer: &impl SignerSync,
    att: &Attestation,
    domain: &Eip712Domain,
) -> Result<Bytes> {
    sign_typed(signer, att, domain)
}

/// Signs a cumulative voucher as its payer.
pub fn sign_voucher(signer: &impl SignerSync, v: &Voucher, domain: &Eip712Domain) -> Result<Bytes> {
    sign_typed(signer, v, domain)
}

/// Verdict codes of an [`Attestation`].
pub mod verdict {
    /// The result is accepted: pay the provider.
    pub const ACCEPT: u8 = 1;
    /// The result is rejected: refund the poster.
    pub const REJECT: u8 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devnet::dev_signer;
    use alloy::primitives::{U256, address};

    fn bid() -> Bid {
        Bid {
            bountyId: U256::from(7),
            termsHash: alloy::primitives::B256::repeat_byte(9),
            bidder: dev_signer(1).address(),
            amount: U256::from(1000),
            deadline: 2_000_000_000,
            nonce: U256::from(1),
        }
    }

    #[test]
    fn sign_and_recover_roundtrip() {
        let d = escrow_domain(31337, address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"));
        let s = dev_signer(1);
        let sig = sign_bid(&s, &bid(), &d).unwrap();
        assert_eq!(sig.len(), 65);
        verify_typed(&bid(), &d, &sig, s.address()).unwrap();
    }

    #[test]
    fn signature_bound_to_chain_and_contract() {
        let c = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
        let s = dev_signer(1);
        let sig = sign_bid(&s, &bid(), &escrow_domain(31337, c)).unwrap();
        let other_chain = verify_typed(&bid(), &escrow_domain(1, c), &sig, s.address());
        assert!(matches!(other_chain, Err(Error::BadSignature { .. })));
        let other_contract =
            verify_typed(&bid(), &escrow_domain(31337, Address::ZERO), &sig, s.address());
        assert!(matches!(other_contract, Err(Error::BadSignature { .. })));
        let mut changed = bid();
        changed.amount = U256::from(999);
        assert!(verify_typed(&changed, &escrow_domain(31337, c), &sig, s.address()).is_err());
    }

    #[test]
    fn malformed_signature_is_an_error_not_a_panic() {
        let d = escrow_domain(31337, Address::ZERO);
        assert!(matches!(recover_typed(&bid(), &d, &[1, 2, 3]), Err(Error::InvalidInput(_))));
    }
}
