//! What the node reads from a verifier program (`market::verify::parse_score` over its stdout)
//! and the canonical JSON of a provider's result (`canonical_bytes` / `result_hash`, what the
//! `hash` verification mode and every attestation commit to).
//!
//! Properties: no panic; a score is always finite; canonical bytes are a fixed point (the
//! canonical form of the canonical form is itself, so a result re-sent by any party hashes
//! the same).
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketplace_node::market::verify::{canonical_bytes, parse_score, result_hash};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(x) = parse_score(&text) {
        assert!(x.is_finite(), "score {x} from {text:?}");
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return };
    let canon = canonical_bytes(&v);
    let again: serde_json::Value =
        serde_json::from_slice(&canon).expect("canonical bytes are JSON");
    assert_eq!(canonical_bytes(&again), canon, "canonical form is not a fixed point");
    assert_eq!(result_hash(&again), result_hash(&v));
});
