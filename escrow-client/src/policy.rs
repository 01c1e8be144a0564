//! Data-usage terms of a bounty (the IoA paper's "policy tokens"): how long the task input and
//! result may be kept after settlement, whether the provider may pass the input on, and the
//! region the data must stay in. They are committed on-chain through the record's `specHash`
//! (so every bid, which signs `termsHash = keccak256(abi.encode(record))`, signs them too):
//!
//! * no policy: `specHash = keccak256(description)` (as before);
//! * a policy: `specHash = keccak256(description ‖ 0x00 ‖ canonical JSON of the policy)`, the
//!   canonical JSON being [`Policy::canonical`] (keys sorted, no spaces, every key present).
//!
//! docs/earning.md ("Data-usage terms") and `docs/schemas/market.policy.json` describe them for
//! agents in any language.

use alloy::primitives::{B256, keccak256};
use serde::{Deserialize, Serialize};

/// Longest accepted retention (about 100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// A bounty's data-usage terms.
///
/// Field order is the canonical JSON's key order (alphabetical): do not reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Whether the provider may pass the task input on: into sub-bounties, or in messages to
    /// other agents. `false`: the node refuses both when it sees a verbatim copy.
    #[serde(default = "yes")]
    pub onward_sharing: bool,
    /// Region the data must stay in (a code such as `eu`, 1–32 letters, digits or `-`; case
    /// does not matter): only a node configured with that `--region` accepts the bounty.
    /// `None`: anywhere.
    #[serde(default)]
    pub region: Option<String>,
    /// Days after the bounty ends (settles or fails) that the node keeps its task input and
    /// result (0: delete at once). `None`: as long as the node's default.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

fn yes() -> bool {
    true
}

impl Policy {
    /// The canonical JSON that `specHash` commits to: `{"onward_sharing":…,"region":…,
    /// "retention_days":…}` with keys in that order, no whitespace, `null` for absent values,
    /// the region lower-cased.
    pub fn canonical(&self) -> String {
        let norm =
            Self { region: self.region.as_ref().map(|r| r.to_ascii_lowercase()), ..self.clone() };
        // A struct of a bool, an optional restricted string and an optional integer always
        // serializes.
        serde_json::to_string(&norm).unwrap_or_default()
    }

    /// Checks the bounds of the terms (a clear message for the poster otherwise).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(r) = &self.region
            && (r.is_empty()
                || r.len() > 32
                || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(format!(
                "policy.region must be 1-32 letters, digits or '-' (like `eu` or `us-east`), not {r:?}"
            ));
        }
        if let Some(d) = self.retention_days
            && d > MAX_RETENTION_DAYS
        {
            return Err(format!("policy.retention_days must be at most {MAX_RETENTION_DAYS}"));
        }
        Ok(())
    }
}

/// The record's `specHash` for a task `description` and its data-usage terms.
pub fn spec_hash(description: &str, policy: Option<&Policy>) -> B256 {
    match policy {
        None => keccak256(description.as_bytes()),
        Some(p) => {
            let mut doc = description.as_bytes().to_vec();
            doc.push(0);
            doc.extend_from_slice(p.canonical().as_bytes());
            keccak256(doc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_fixed() {
        let p =
            Policy { onward_sharing: false, region: Some("EU".into()), retention_days: Some(30) };
        assert_eq!(p.canonical(), r#"{"onward_sharing":false,"region":"eu","retention_days":30}"#);
        let q: Policy = serde_json::from_str("{}").unwrap();
        assert_eq!(q.canonical(), r#"{"onward_sharing":true,"region":null,"retention_days":null}"#);
        assert!(serde_json::from_str::<Policy>(r#"{"retention":3}"#).is_err());
    }

    #[test]
    fn spec_hash_commits_to_the_policy() {
        let p = Policy { onward_sharing: false, region: None, retention_days: Some(0) };
        assert_eq!(spec_hash("sort", None), keccak256("sort"));
        let with = spec_hash("sort", Some(&p));
        assert_ne!(with, keccak256("sort"));
        assert_eq!(
            with,
            keccak256(b"sort\0{\"onward_sharing\":false,\"region\":null,\"retention_days\":0}")
        );
        let other = Policy { onward_sharing: true, ..p.clone() };
        assert_ne!(spec_hash("sort", Some(&other)), with);
        // Region case does not change the commitment.
        let a = Policy { region: Some("EU".into()), ..p.clone() };
        let b = Policy { region: Some("eu".into()), ..p };
        assert_eq!(spec_hash("x", Some(&a)), spec_hash("x", Some(&b)));
    }

    #[test]
    fn bounds() {
        let ok = Policy {
            onward_sharing: true,
            region: Some("us-east".into()),
            retention_days: Some(7),
        };
        assert!(ok.validate().is_ok());
        assert!(Policy { region: Some("eu west".into()), ..ok.clone() }.validate().is_err());
        assert!(Policy { region: Some(String::new()), ..ok.clone() }.validate().is_err());
        assert!(Policy { retention_days: Some(MAX_RETENTION_DAYS + 1), ..ok }.validate().is_err());
    }
}
