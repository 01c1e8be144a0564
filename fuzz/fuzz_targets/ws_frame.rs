//! WebSocket text frames from an agent: `reef_wire::parse_client_frame` (what the node's
//! `/v1/ws` reader runs on every text frame) and `peek_req_id` (what it runs on a frame refused
//! by the rate limiter).
//!
//! Properties: no panic; a frame that parses re-encodes (`encode_client_frame`) into text that
//! parses to the same frame with the same request id; `peek_req_id` reads the same request id
//! as the full parse whenever the text is a JSON object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reef_wire::{encode_client_frame, parse_client_frame, peek_req_id};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (req_id, parsed) = parse_client_frame(text);
    let peeked = peek_req_id(text);
    if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).is_ok() {
        assert_eq!(peeked, req_id, "peek and parse disagree on the req_id of {text:?}");
    }
    let Ok(frame) = parsed else { return };
    // The encoder takes a string id; a numeric one is echoed as a number by the node but
    // re-encoded here as its text, so compare texts.
    let again = encode_client_frame(req_id.as_deref(), &frame);
    let (req_id2, parsed2) = parse_client_frame(&again);
    let frame2 = parsed2.unwrap_or_else(|e| panic!("re-encoded frame {again:?} fails: {e}"));
    assert_eq!(frame, frame2, "round trip changed the frame");
    assert_eq!(req_id.as_deref(), req_id2.as_deref(), "round trip changed the req_id");
});
