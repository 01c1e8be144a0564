//! Bounty postings (`POST /v1/market/bounties`): the JSON body the node deserializes into a
//! `PostRequest` and `market::intake::check_post`, every check the handler runs before it
//! reads the chain or the store.
//!
//! Properties: no panic; an accepted posting is from its poster, as posted (no provider, price
//! or result), funded, committed to its description (and its data-usage terms), with a window in range; its own
//! serialization parses and is judged the same.
#![no_main]

use alloy_primitives::{Address, B256};
use libfuzzer_sys::fuzz_target;
use marketplace_node::market::{
    coordinator::{MIN_BID_WINDOW_MS, PostRequest},
    intake::{PostRules, check_post},
    verify::Verifiers,
};

const MAX_WINDOW_SECS: u64 = 3_600;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<PostRequest>(data) else { return };
    let verifiers = Verifiers::default();
    let rules = PostRules {
        evaluator: Address::repeat_byte(0xee),
        escrow: Address::repeat_byte(1),
        panel: Some(Address::repeat_byte(0xaa)),
        verifiers: &verifiers,
        max_bid_window_secs: MAX_WINDOW_SECS,
        region: Some("eu"),
    };
    let caller = req.record.poster;
    let first = check_post(&req, caller, &rules);
    if let Ok(p) = &first {
        assert_eq!(p.record.poster, caller);
        assert!(p.record.provider.is_zero() && p.record.price == 0);
        assert_eq!(p.record.resultHash, B256::ZERO);
        assert!(p.record.amount > 0);
        assert_eq!(
            p.record.specHash,
            escrow_client::policy::spec_hash(&req.description, req.policy.as_ref())
        );
        assert!((MIN_BID_WINDOW_MS..=MAX_WINDOW_SECS * 1000).contains(&p.window_ms));
    }
    let text = serde_json::to_vec(&req).expect("a parsed posting serializes");
    let again: PostRequest = serde_json::from_slice(&text)
        .unwrap_or_else(|e| panic!("serialized posting does not parse: {e}"));
    let second = check_post(&again, caller, &rules);
    assert_eq!(first.is_ok(), second.is_ok(), "a posting is judged differently after a round trip");
});
