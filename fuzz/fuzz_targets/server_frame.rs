//! Frames from a node as an agent reads them (`reef_wire::ServerFrame`, which carries the chat
//! `Envelope` of every delivered message) and the envelope alone (what the node stores and
//! replays).
//!
//! Properties: no panic; serializing a parsed frame gives text that parses again, and a
//! second serialization gives the same bytes (the relay is stable: what a node re-sends after
//! a replay is what it sent the first time).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reef_wire::{Envelope, ServerFrame};
use serde::{Serialize, de::DeserializeOwned};

fn stable<T: Serialize + DeserializeOwned>(text: &str) {
    let Ok(v) = serde_json::from_str::<T>(text) else { return };
    let once = serde_json::to_string(&v).expect("a parsed frame serializes");
    let back: T = serde_json::from_str(&once)
        .unwrap_or_else(|e| panic!("serialized frame {once:?} does not parse: {e}"));
    let twice = serde_json::to_string(&back).expect("a parsed frame serializes");
    assert_eq!(once, twice, "serialization is not stable");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    stable::<ServerFrame>(text);
    stable::<Envelope>(text);
});
