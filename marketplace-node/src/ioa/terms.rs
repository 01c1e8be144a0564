//! The node's enforcement of "no onward sharing" data-usage terms on messages: while a
//! provider holds the task input of a bounty whose terms forbid passing it on, a message from
//! that provider into any group other than the bounty's own work group is refused if it
//! carries a verbatim copy of the input (or of a sizeable part of it). The node can only see
//! what crosses it: a paraphrase, or data sent outside Reef, is beyond it (docs/earning.md,
//! "Data-usage terms").

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use alloy_primitives::Address;
use reef_wire::SendMessage;
use serde_json::Value;

use super::error::{Error, Result};

/// Shortest piece of an input (canonical JSON text) that counts as a copy when found.
pub const MIN_FINGERPRINT: usize = 8;
/// Most fingerprints kept per protected input (the largest pieces first).
pub const MAX_FINGERPRINTS: usize = 64;
/// Most protected bounties remembered per provider (the oldest are forgotten first).
pub const MAX_PER_AGENT: usize = 256;

/// Canonical JSON text (object keys sorted, no whitespace): the same text whatever order a
/// sender wrote its keys in.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The pieces of `input` whose presence in a message counts as forwarding it: the whole input
/// and every nested array, object and string of at least [`MIN_FINGERPRINT`] characters of
/// canonical text (strings without their quotes, so a copy inside a longer string is found).
pub fn fingerprints(input: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        let piece = match v {
            Value::String(s) => {
                let quoted = Value::String(s.clone()).to_string();
                quoted[1..quoted.len() - 1].to_owned()
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => return,
            other => canonical(other),
        };
        if piece.len() >= MIN_FINGERPRINT {
            out.push(piece);
        }
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(input, &mut out);
    out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    out.dedup();
    // The largest pieces first: a copy of anything smaller inside them is found anyway when
    // the message copies the larger piece.
    out.truncate(MAX_FINGERPRINTS);
    out
}

/// The first fingerprint found in `text`.
pub fn leak<'a>(fingerprints: &'a [String], text: &str) -> Option<&'a str> {
    fingerprints.iter().find(|f| text.contains(f.as_str())).map(String::as_str)
}

#[derive(Debug)]
struct Protected {
    bounty: String,
    allowed_group: String,
    fingerprints: Arc<[String]>,
}

/// Protected inputs by provider.
#[derive(Debug, Default)]
pub struct TermsGuard {
    by_agent: RwLock<HashMap<Address, Vec<Protected>>>,
}

impl TermsGuard {
    /// `agent` holds the input of `bounty`, whose terms forbid passing it on: from now on its
    /// messages outside `allowed_group` must not carry it.
    pub fn protect(&self, agent: Address, bounty: &str, allowed_group: &str, input: &Value) {
        let fingerprints: Arc<[String]> = fingerprints(input).into();
        if fingerprints.is_empty() {
            return;
        }
        let mut map = self.by_agent.write().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(agent).or_default();
        list.retain(|p| p.bounty != bounty);
        if list.len() >= MAX_PER_AGENT {
            list.remove(0);
        }
        list.push(Protected {
            bounty: bounty.to_owned(),
            allowed_group: allowed_group.to_owned(),
            fingerprints,
        });
    }

    /// The input of `bounty` is gone (erased after its retention): nothing to protect.
    pub fn release(&self, bounty: &str) {
        let mut map = self.by_agent.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, list| {
            list.retain(|p| p.bounty != bounty);
            !list.is_empty()
        });
    }

    /// Refuses `msg` from `sender` if it forwards a protected input out of its work group.
    pub fn check(&self, sender: &Address, msg: &SendMessage) -> Result<()> {
        let map = self.by_agent.read().unwrap_or_else(|p| p.into_inner());
        let Some(list) = map.get(sender) else { return Ok(()) };
        let outside: Vec<&Protected> =
            list.iter().filter(|p| p.allowed_group != msg.group_id).collect();
        if outside.is_empty() {
            return Ok(());
        }
        let text = serde_json::to_value(msg).map(|v| canonical(&v)).unwrap_or_default();
        for p in outside {
            if leak(&p.fingerprints, &text).is_some() {
                return Err(Error::Forbidden(format!(
                    "the terms of bounty {} forbid passing its task input on (policy.onward_sharing = false)",
                    p.bounty
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(group: &str, body: Value) -> SendMessage {
        serde_json::from_value(
            json!({"group_id": group, "msg_id": "m", "state": "discussion", "body": body}),
        )
        .unwrap()
    }

    #[test]
    fn copies_are_found_whatever_the_key_order() {
        let input = json!({"patient": "Jane Q. Example", "values": [120, 80, 72]});
        let g = TermsGuard::default();
        let a = Address::repeat_byte(1);
        g.protect(a, "0xb1", "g_work", &input);
        // Inside the work group: allowed.
        assert!(g.check(&a, &msg("g_work", json!({"input": input}))).is_ok());
        // Elsewhere: the whole input with its keys reordered, a string of it, a sub-array.
        let reordered = json!({"values": [120, 80, 72], "patient": "Jane Q. Example"});
        assert!(g.check(&a, &msg("g_other", json!({"x": reordered}))).is_err());
        assert!(g.check(&a, &msg("g_other", json!({"note": "about Jane Q. Example"}))).is_err());
        assert!(g.check(&a, &msg("g_other", json!([[120, 80, 72]]))).is_err());
        // Unrelated text, and other senders, pass.
        assert!(g.check(&a, &msg("g_other", json!({"text": "hello"}))).is_ok());
        assert!(g.check(&Address::repeat_byte(2), &msg("g_other", json!(input))).is_ok());
        g.release("0xb1");
        assert!(g.check(&a, &msg("g_other", json!({"x": input}))).is_ok());
    }

    #[test]
    fn small_scalars_are_not_fingerprints() {
        assert_eq!(fingerprints(&json!([1, 2])), Vec::<String>::new());
        assert_eq!(fingerprints(&json!([5, 3, 9, 1])), vec!["[5,3,9,1]".to_owned()]);
        assert_eq!(canonical(&json!({"b": 1, "a": [true, null]})), r#"{"a":[true,null],"b":1}"#);
    }
}
