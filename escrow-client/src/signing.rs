//! EIP-712 signing and verification of bids, attestations and vouchers.
//!
//! The typed data is exactly what `eth_signTypedData_v4` signs, so any wallet can produce these
//! signatures; the integration tests compare our signatures with anvil's
//! `eth_signTypedData_v4` and with the contracts' own digest functions.

use alloy::{
    primitives::{Address, B256, Bytes},
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

/// Half the secp256k1 group order: signatures with a larger `s` are malleable and rejected
/// (as OpenZeppelin's `ECDSA.recover` does on-chain).
const HALF_N: [u8; 32] =
    alloy::primitives::hex!("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0");

/// Recovers the signer of a 32-byte digest from a 65-byte `r‖s‖v` signature using
/// libsecp256k1 (several times faster than the pure-Rust path; used to verify bids in bulk).
pub fn recover_prehash(digest: &B256, sig: &[u8]) -> Result<Address> {
    use secp256k1::{
        Message,
        ecdsa::{RecoverableSignature, RecoveryId},
    };
    let bad = |why: &str| Error::InvalidInput(format!("malformed signature: {why}"));
    if sig.len() != 65 {
        return Err(bad(&format!("{} bytes, expected 65", sig.len())));
    }
    if sig[32..64] > HALF_N[..] {
        return Err(bad("high s value (malleable)"));
    }
    let v = match sig[64] {
        27 | 28 => sig[64] - 27,
        0 | 1 => sig[64],
        other => return Err(bad(&format!("v = {other}"))),
    };
    let rid = RecoveryId::try_from(i32::from(v)).map_err(|_| bad("recovery id"))?;
    let rs = RecoverableSignature::from_compact(&sig[..64], rid)
        .map_err(|_| bad("r or s out of range"))?;
    let pk = rs.recover(Message::from_digest(digest.0)).map_err(|_| bad("unrecoverable"))?;
    let ser = pk.serialize_uncompressed();
    Ok(Address::from_slice(&alloy::primitives::keccak256(&ser[1..])[12..]))
}

/// Recovers the EOA that signed `value` under `domain`.
pub fn recover_typed<T: SolStruct>(
    value: &T,
    domain: &Eip712Domain,
    sig: &[u8],
) -> Result<Address> {
    recover_prehash(&value.eip712_signing_hash(domain), sig)
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

/// Bid nonces that share storage words in the escrow's nonce bitmap.
///
/// The escrow consumes a winning bid's nonce in a Permit2-style bitmap: word `nonce >> 8`, bit
/// `nonce & 0xff`. Setting the first bit of an empty word writes a new storage slot (22,100
/// gas in the award transaction); setting a bit of a word that already has one costs 5,000.
/// A random nonce per bid lands in a new word nearly every time, so every award paid the
/// 22,100. This hands out consecutive nonces from a random starting word: the first award of
/// a word pays for the slot, the next 255 do not.
///
/// Nonces never repeat within one allocator. A new allocator (a restarted agent) starts at a
/// random word: with 64 random bits, meeting a word an earlier run used is negligible, so no
/// nonce state has to be stored.
#[derive(Debug)]
pub struct BidNonces {
    base: alloy::primitives::U256,
    next: std::sync::atomic::AtomicU64,
}

impl Default for BidNonces {
    fn default() -> Self {
        Self::starting_at_word(rand::random::<u64>())
    }
}

impl BidNonces {
    /// Nonces from bit 0 of word `word` on.
    pub fn starting_at_word(word: u64) -> Self {
        Self {
            base: alloy::primitives::U256::from(word) << 8,
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The next unused nonce.
    pub fn next_nonce(&self) -> alloy::primitives::U256 {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.base + alloy::primitives::U256::from(n)
    }
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

alloy::sol! {
    /// EIP-3009 `TransferWithAuthorization`: what a payer signs so that anyone (an x402
    /// facilitator) can move `value` of a token from `from` to `to` once, inside the window
    /// `validAfter < now < validBefore`, with a one-shot random `nonce`.
    #[derive(Debug, PartialEq, Eq)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }
}

/// EIP-712 domain name of the devnet `ReefTestToken` (its ERC-20 `name()`).
pub const TEST_TOKEN_DOMAIN_NAME: &str = "Reef Test USD";

/// The EIP-712 domain of an EIP-3009 token: `name / version / chain_id / token`.
pub fn token_domain(name: &str, version: &str, chain_id: u64, token: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(name.to_owned().into()),
        Some(version.to_owned().into()),
        Some(alloy::primitives::U256::from(chain_id)),
        Some(token),
        None,
    )
}

/// Signs an EIP-3009 transfer authorization as its payer (`auth.from`).
pub fn sign_transfer_authorization(
    signer: &impl SignerSync,
    auth: &TransferWithAuthorization,
    domain: &Eip712Domain,
) -> Result<Bytes> {
    sign_typed(signer, auth, domain)
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
    use alloy::primitives::{Signature, U256, address};

    #[test]
    fn bid_nonces_fill_a_bitmap_word_before_the_next_and_never_repeat() {
        let n = BidNonces::starting_at_word(7);
        let got: Vec<U256> = (0..300).map(|_| n.next_nonce()).collect();
        let words: Vec<U256> = got.iter().map(|x| *x >> 8).collect();
        assert!(words[..256].iter().all(|w| *w == U256::from(7)), "first 256 share word 7");
        assert!(words[256..].iter().all(|w| *w == U256::from(8)), "then word 8");
        assert_eq!(got[0] & U256::from(0xff), U256::ZERO);
        let distinct: std::collections::HashSet<_> = got.iter().collect();
        assert_eq!(distinct.len(), got.len());
        // Two allocators (two runs of an agent) start at different words.
        let (a, b) = (BidNonces::default(), BidNonces::default());
        assert_ne!(a.next_nonce() >> 8, b.next_nonce() >> 8);
    }

    fn bid() -> Bid {
        Bid {
            bountyId: U256::from(7),
            termsHash: alloy::primitives::B256::repeat_byte(9),
            bidder: dev_signer(1).address(),
            amount: U256::from(1000),
            deadline: 2_000_000_000,
            eta: 600,
            bond: U256::from(10).pow(U256::from(17)),
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
        // The bond is signed too: a poster cannot raise (or drop) the stake at risk.
        let mut rebonded = bid();
        rebonded.bond = U256::ZERO;
        assert!(verify_typed(&rebonded, &escrow_domain(31337, c), &sig, s.address()).is_err());
    }

    #[test]
    fn fast_recovery_matches_alloy() {
        let d = escrow_domain(31337, Address::repeat_byte(7));
        let s = dev_signer(2);
        let sig = sign_bid(&s, &bid(), &d).unwrap();
        let digest = bid().eip712_signing_hash(&d);
        let slow =
            Signature::try_from(&sig[..]).unwrap().recover_address_from_prehash(&digest).unwrap();
        assert_eq!(recover_prehash(&digest, &sig).unwrap(), slow);
        assert_eq!(slow, s.address());
        // v = 0/1 is accepted too; garbage v and high s are not.
        let mut v01 = sig.to_vec();
        v01[64] -= 27;
        assert_eq!(recover_prehash(&digest, &v01).unwrap(), s.address());
        let mut bad_v = sig.to_vec();
        bad_v[64] = 5;
        assert!(recover_prehash(&digest, &bad_v).is_err());
        let mut high_s = sig.to_vec();
        high_s[32] = 0xff;
        assert!(recover_prehash(&digest, &high_s).is_err());
    }

    #[test]
    fn malformed_signature_is_an_error_not_a_panic() {
        let d = escrow_domain(31337, Address::ZERO);
        assert!(matches!(recover_typed(&bid(), &d, &[1, 2, 3]), Err(Error::InvalidInput(_))));
    }
}
