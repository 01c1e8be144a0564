//! Sealed bids (`POST /v1/market/bounties/{id}/bids`): the JSON body the node deserializes into
//! a `BidRequest` and `market::intake::check_bid`, the field and EIP-712 signature checks the
//! handler runs before a bid is stored.
//!
//! The first byte picks the mode:
//! * even: the rest is a JSON body, checked against a fixed bounty. Properties: no panic; an
//!   accepted bid was signed by its bidder, who is the caller, and its ETA fits the deadline.
//! * odd: a bid built from the rest (a random key, price, deadline, ETA, nonce, bond) is signed
//!   and sent as JSON. Properties: a bid whose fields are within the bounty's terms is accepted
//!   with the signer as bidder; the same bid from another caller, or with a byte of its
//!   signature's r or s changed, is refused.
#![no_main]

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use escrow_client::{
    bindings::escrow::IBountyTypes::{Bid, Bounty},
    escrow::{BidJson, terms_hash},
    signing,
};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use marketplace_node::market::{
    coordinator::BidRequest,
    id_hex,
    intake::{BidRules, check_bid},
};

const CLOSE_AT: u64 = 1_700_000_000;
const GRACE: u64 = 30;

fn record(poster: Address, amount: u128, deadline: u64) -> Bounty {
    Bounty {
        poster,
        amount,
        deadline,
        evaluator: Address::repeat_byte(0xee),
        specHash: B256::repeat_byte(7),
        ..Default::default()
    }
}

fn raw(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<BidRequest>(data) else { return };
    let domain = signing::escrow_domain(31337, Address::repeat_byte(1));
    let rec = record(Address::repeat_byte(2), 1_000_000, CLOSE_AT + 3_600);
    let key = id_hex(req.bid.bounty_id);
    let caller = req.bid.bidder;
    let rules = BidRules {
        key: &key,
        record: &rec,
        bid_close_at: CLOSE_AT,
        award_grace_secs: GRACE,
        domain: &domain,
    };
    if let Ok((bid, eta)) = check_bid(&req, caller, &rules) {
        let signer = signing::recover_typed(&bid, &domain, &req.signature).expect("verified");
        assert_eq!(signer, caller);
        assert!(eta <= rec.deadline - CLOSE_AT);
    }
}

fn signed(data: &[u8]) -> libfuzzer_sys::arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let Ok(bidder) = PrivateKeySigner::from_slice(&u.arbitrary::<[u8; 32]>()?) else {
        return Ok(());
    };
    let reward = u.int_in_range(1u128..=u128::MAX)?;
    let deadline = CLOSE_AT + u.int_in_range(0u64..=1_000_000)?;
    let rec = record(Address::repeat_byte(2), reward, deadline);
    let bid = Bid {
        bountyId: U256::from_be_bytes(u.arbitrary::<[u8; 32]>()?),
        termsHash: terms_hash(&rec),
        bidder: bidder.address(),
        amount: U256::from(u.int_in_range(0u128..=u128::MAX)?),
        deadline: u.arbitrary()?,
        eta: u.arbitrary()?,
        bond: U256::from_be_bytes(u.arbitrary::<[u8; 32]>()?),
        nonce: U256::from_be_bytes(u.arbitrary::<[u8; 32]>()?),
    };
    let domain = signing::escrow_domain(u.arbitrary()?, Address::from(u.arbitrary::<[u8; 20]>()?));
    let sig = signing::sign_typed(&bidder, &bid, &domain).expect("signing never fails");
    // Over the wire, as a bidder sends it.
    let body = serde_json::json!({ "bid": BidJson::from(&bid), "signature": sig });
    let req: BidRequest = serde_json::from_value(body).expect("a signed bid parses");
    let key = id_hex(bid.bountyId);
    let rules = BidRules {
        key: &key,
        record: &rec,
        bid_close_at: CLOSE_AT,
        award_grace_secs: GRACE,
        domain: &domain,
    };
    let max_eta = deadline - CLOSE_AT;
    let within_terms = !bid.amount.is_zero()
        && bid.amount <= U256::from(reward)
        && bid.deadline >= CLOSE_AT + GRACE
        && (bid.eta == 0 || u64::from(bid.eta) <= max_eta);
    match check_bid(&req, bidder.address(), &rules) {
        Ok((got, eta)) => {
            assert!(within_terms, "a bid outside the terms was accepted: {bid:?}");
            assert_eq!(got, bid, "the bid changed on the wire");
            assert_eq!(eta, if bid.eta == 0 { max_eta } else { u64::from(bid.eta) });
        }
        Err(e) => assert!(!within_terms, "a bid within the terms was refused: {e}"),
    }
    let stranger = Address::from(u.arbitrary::<[u8; 20]>()?);
    if stranger != bidder.address() {
        assert!(check_bid(&req, stranger, &rules).is_err(), "a bid was accepted from another caller");
    }
    // A byte of r or s (v = 0/1 and 27/28 are the same recovery id, accepted alike).
    let at = u.choose_index(64)?;
    let flip = u.int_in_range(1u8..=255)?;
    let mut bad = req.clone();
    let mut bytes = bad.signature.to_vec();
    bytes[at] ^= flip;
    bad.signature = bytes.into();
    assert!(check_bid(&bad, bidder.address(), &rules).is_err(), "a tampered signature passed");
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
