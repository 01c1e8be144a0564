//! Evaluator attestations: the `evaluation` message a panel member sends
//! (`market::intake::Evaluation`, read by the node's evaluating phase from untrusted group
//! messages) and the EIP-712 attestation signature it carries.
//!
//! The first byte picks the mode:
//! * even: the rest is a JSON message body. Properties: no panic; a verdict the node counts is
//!   accept or reject, is exactly the number the body carries, and is on the judged result.
//! * odd: an attestation built from the rest is signed by a key from the rest and sent as a
//!   body. Properties: the node reads back the same verdict and signature, the signature
//!   recovers the member, and it does not verify for another verdict or result.
#![no_main]

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use escrow_client::{
    bindings::escrow::IBountyTypes::Attestation,
    signing::{self, verdict},
};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use marketplace_node::market::intake::Evaluation;
use serde_json::{Value, json};

fn raw(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let Some(eval) = Evaluation::parse(&body) else { return };
    let rh = eval.result_hash.unwrap_or(B256::ZERO);
    if let Some(v) = eval.verdict_on(rh) {
        assert!(v == verdict::ACCEPT || v == verdict::REJECT);
        assert_eq!(body["verdict"].as_u64(), Some(u64::from(v)), "verdict misread from {body}");
        assert_eq!(body["result_hash"].as_str().and_then(|s| s.parse::<B256>().ok()), Some(rh));
    }
}

fn signed(data: &[u8]) -> libfuzzer_sys::arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let Ok(member) = PrivateKeySigner::from_slice(&u.arbitrary::<[u8; 32]>()?) else {
        return Ok(());
    };
    let code = if u.arbitrary()? { verdict::ACCEPT } else { verdict::REJECT };
    let att = Attestation {
        bountyId: U256::from_be_bytes(u.arbitrary::<[u8; 32]>()?),
        provider: Address::from(u.arbitrary::<[u8; 20]>()?),
        resultHash: B256::from(u.arbitrary::<[u8; 32]>()?),
        verdict: code,
    };
    let domain = signing::escrow_domain(u.arbitrary()?, Address::from(u.arbitrary::<[u8; 20]>()?));
    let sig = signing::sign_typed(&member, &att, &domain).expect("signing never fails");
    let body = json!({
        "kind": "evaluation", "verdict": code, "result_hash": att.resultHash, "signature": sig,
    });
    let eval = Evaluation::parse(&body).expect("a well-formed evaluation is read");
    assert_eq!(eval.verdict_on(att.resultHash), Some(code));
    assert_eq!(eval.signature, sig);
    let signer = signing::recover_typed(&att, &domain, &eval.signature).expect("recovers");
    assert_eq!(signer, member.address());
    let flipped = Attestation { verdict: verdict::ACCEPT + verdict::REJECT - code, ..att.clone() };
    assert!(signing::verify_typed(&flipped, &domain, &sig, member.address()).is_err());
    let other = B256::from(u.arbitrary::<[u8; 32]>()?);
    if other != att.resultHash {
        assert_eq!(eval.verdict_on(other), None, "a verdict on another result was counted");
        let moved = Attestation { resultHash: other, ..att };
        assert!(signing::verify_typed(&moved, &domain, &sig, member.address()).is_err());
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        raw(rest);
    } else {
        let _ = signed(rest);
    }
});
