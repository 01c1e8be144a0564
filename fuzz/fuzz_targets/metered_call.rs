//! Metered-call requests (`metered::protocol::parse_call`, what an agent selling metered calls
//! runs on every `metered_call` message body) and their vouchers' EIP-712 signatures.
//!
//! The first byte picks the mode:
//! * even: the rest is a JSON body. Properties: no panic; an accepted call has a 1..=128
//!   character call id, a 65-byte signature and matching channel ids, and parses again to the
//!   same call from its own serialization; a refusal carries the call id when the body had a
//!   string one.
//! * odd: a voucher built from the rest is signed with a key from the rest. Properties: the
//!   signature verifies for the payer, fails for any other payer, and survives the JSON body.
#![no_main]

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use escrow_client::{bindings::channel::PaymentChannel::Voucher, signing};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use marketplace_node::metered::protocol::{KIND_CALL, VoucherJson, parse_call};
use serde_json::{Value, json};

fn raw(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    match parse_call(&body) {
        Ok(call) => {
            assert!((1..=128).contains(&call.call_id.len()));
            assert_eq!(call.signature.len(), 65);
            assert_eq!(call.channel_id, call.voucher.channel_id);
            assert_eq!(call.kind, KIND_CALL);
            let again = parse_call(&serde_json::to_value(&call).expect("serializes"))
                .unwrap_or_else(|(_, r)| panic!("re-parse refused: {r:?}"));
            assert_eq!(again, call);
        }
        Err((id, _)) => {
            assert_eq!(id.as_deref(), body.get("call_id").and_then(Value::as_str));
        }
    }
}

fn signed(data: &[u8]) -> libfuzzer_sys::arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let key: [u8; 32] = u.arbitrary()?;
    let Ok(payer) = PrivateKeySigner::from_slice(&key) else { return Ok(()) };
    let voucher = Voucher {
        channelId: U256::from_be_bytes(u.arbitrary::<[u8; 32]>()?),
        payer: payer.address(),
        payee: Address::from(u.arbitrary::<[u8; 20]>()?),
        cumulativeAmount: U256::from_be_bytes(u.arbitrary::<[u8; 32]>()?),
    };
    let domain = signing::channel_domain(u.arbitrary()?, Address::from(u.arbitrary::<[u8; 20]>()?));
    let sig = signing::sign_typed(&payer, &voucher, &domain).expect("signing never fails");
    signing::verify_typed(&voucher, &domain, &sig, payer.address()).expect("own signature");
    let other = Address::from(u.arbitrary::<[u8; 20]>()?);
    if other != payer.address() {
        assert!(signing::verify_typed(&voucher, &domain, &sig, other).is_err());
    }
    let call_id: String = u.arbitrary()?;
    let body = json!({
        "kind": KIND_CALL, "call_id": call_id, "channel_id": voucher.channelId,
        "voucher": VoucherJson::from(&voucher), "signature": sig,
    });
    if let Ok(call) = parse_call(&body) {
        let back = Voucher::from(&call.voucher);
        assert_eq!(back, voucher, "the voucher changed on the wire");
        signing::verify_typed(&back, &domain, &call.signature, payer.address())
            .expect("the signature survives the wire");
    } else {
        assert!(call_id.is_empty() || call_id.len() > 128, "a well-formed call was refused");
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
