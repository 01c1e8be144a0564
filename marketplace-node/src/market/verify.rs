//! Verification of a provider's result. The verdict becomes the evaluator's EIP-712
//! attestation on-chain (the node is the evaluator for `hash` and `command`).
//!
//! * `hash` — the poster committed `keccak256(canonical JSON of the expected result)`; the
//!   result matches or not.
//! * `command` — a verifier program, chosen by name from the node's allowlist
//!   (`reef node --verifier name=path`; posters never run arbitrary commands on the node), gets
//!   `{"input": …, "result": …}` on stdin in the [`sandbox`](super::sandbox); exit 0 accepts.
//! * `poster` — the poster accepts or rejects from the CLI; silence past the review window is
//!   acceptance (the escrow's optimistic path).
//! * `evaluator` / `quorum` — third-party evaluator agents (skill `evaluate`), chosen by the node
//!   by reputation when the bounty is posted, judge with their own verifiers; `quorum` matching
//!   signed verdicts (1 of 1 for `evaluator`) become the `EvaluatorPanel`'s ERC-1271 attestation,
//!   and the panel pays each of those members the fee the poster escrowed.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, keccak256};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sandbox::{SandboxLimits, run_sandboxed};

/// How a bounty's result is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum VerifySpec {
    /// Result must hash to `expected`.
    Hash {
        /// keccak256 of the canonical JSON of the expected result.
        expected: B256,
    },
    /// A node-side verifier program judges.
    Command {
        /// Name in the node's verifier allowlist.
        verifier: String,
    },
    /// The poster judges (optimistic auto-accept after the review window).
    Poster,
    /// One third-party evaluator agent judges (a panel of one).
    Evaluator {
        /// The evaluator chosen by the node (filled in when the bounty is registered).
        #[serde(default)]
        members: Vec<Address>,
    },
    /// `quorum` of `size` third-party evaluator agents must agree.
    Quorum {
        /// Matching verdicts needed.
        quorum: u8,
        /// Panel size.
        size: u8,
        /// The evaluators chosen by the node (filled in when the bounty is registered).
        #[serde(default)]
        members: Vec<Address>,
    },
}

impl VerifySpec {
    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hash { .. } => "hash",
            Self::Command { .. } => "command",
            Self::Poster => "poster",
            Self::Evaluator { .. } => "evaluator",
            Self::Quorum { .. } => "quorum",
        }
    }

    /// `(quorum, size, members)` of the evaluator-panel modes.
    pub fn panel(&self) -> Option<(u8, u8, &[Address])> {
        match self {
            Self::Evaluator { members } => Some((1, 1, members)),
            Self::Quorum { quorum, size, members } => Some((*quorum, *size, members)),
            _ => None,
        }
    }

    /// The same spec with the panel's members set.
    pub fn with_members(&self, chosen: Vec<Address>) -> Self {
        match self {
            Self::Evaluator { .. } => Self::Evaluator { members: chosen },
            Self::Quorum { quorum, size, .. } => {
                Self::Quorum { quorum: *quorum, size: *size, members: chosen }
            }
            other => other.clone(),
        }
    }
}

/// Canonical bytes of a JSON result: serde_json with sorted object keys and no whitespace.
pub fn canonical_bytes(v: &Value) -> Vec<u8> {
    // serde_json's default `Map` is a BTreeMap, so keys serialize sorted.
    serde_json::to_vec(v).unwrap_or_default()
}

/// The on-chain `resultHash` of a JSON result.
pub fn result_hash(v: &Value) -> B256 {
    keccak256(canonical_bytes(v))
}

/// A verdict with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Accepted?
    pub accept: bool,
    /// Why.
    pub reason: String,
}

/// Node-side verifier programs by name.
#[derive(Debug, Clone, Default)]
pub struct Verifiers {
    programs: HashMap<String, String>,
    limits: SandboxLimits,
}

impl Verifiers {
    /// Builds the allowlist from `name=path` pairs.
    pub fn parse(pairs: &[String], limits: SandboxLimits) -> Result<Self, String> {
        let mut programs = HashMap::new();
        for p in pairs {
            let (name, path) =
                p.split_once('=').ok_or_else(|| format!("--verifier {p:?} is not name=path"))?;
            if name.is_empty() || path.is_empty() {
                return Err(format!("--verifier {p:?} is not name=path"));
            }
            programs.insert(name.to_string(), path.to_string());
        }
        Ok(Self { programs, limits })
    }

    /// Names offered to posters.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.programs.keys().cloned().collect();
        v.sort();
        v
    }

    /// Whether `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.programs.contains_key(name)
    }

    /// Runs the check for `spec` (poster mode has no automatic verdict: `None`).
    pub async fn verify(
        &self,
        spec: &VerifySpec,
        input: &Value,
        result: &Value,
    ) -> Option<Verdict> {
        match spec {
            VerifySpec::Hash { expected } => {
                let got = result_hash(result);
                Some(if got == *expected {
                    Verdict {
                        accept: true,
                        reason: "result hash matches the poster's commitment".into(),
                    }
                } else {
                    Verdict {
                        accept: false,
                        reason: format!("result hash {got} differs from the committed {expected}"),
                    }
                })
            }
            VerifySpec::Command { verifier } => {
                let Some(program) = self.programs.get(verifier) else {
                    return Some(Verdict {
                        accept: false,
                        reason: format!("verifier {verifier:?} is not installed on this node"),
                    });
                };
                let stdin =
                    serde_json::to_vec(&serde_json::json!({ "input": input, "result": result }))
                        .unwrap_or_default();
                let out = run_sandboxed(program, &[], &stdin, &self.limits).await;
                Some(if out.accepted {
                    Verdict { accept: true, reason: format!("verifier {verifier} accepted") }
                } else {
                    let why = out.rejection.map(|r| format!("{r:?}")).unwrap_or_default();
                    let tail: String = out
                        .stderr
                        .chars()
                        .rev()
                        .take(200)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    Verdict {
                        accept: false,
                        reason: format!("verifier {verifier} rejected: {why} {tail}")
                            .trim()
                            .to_string(),
                    }
                })
            }
            // The poster, or the evaluator panel, decides: no automatic verdict here.
            VerifySpec::Poster | VerifySpec::Evaluator { .. } | VerifySpec::Quorum { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a": [1, 2], "b": 1 }"#).unwrap();
        assert_eq!(result_hash(&a), result_hash(&b));
        assert_ne!(result_hash(&a), result_hash(&json!({"a":[2,1],"b":1})));
    }

    #[tokio::test]
    async fn hash_mode() {
        let v = Verifiers::default();
        let spec = VerifySpec::Hash { expected: result_hash(&json!([1, 2, 3])) };
        assert!(v.verify(&spec, &json!(null), &json!([1, 2, 3])).await.unwrap().accept);
        assert!(!v.verify(&spec, &json!(null), &json!([3, 2, 1])).await.unwrap().accept);
    }

    #[tokio::test]
    async fn command_mode_uses_only_allowlisted_programs() {
        let dir = std::env::temp_dir().join(format!("reef-verifier-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("sorted.py");
        std::fs::write(
            &script,
            "#!/usr/bin/env python3\nimport json,sys\nd=json.load(sys.stdin)\nr=d['result']\nsys.exit(0 if r==sorted(d['input']) else 1)\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let v =
            Verifiers::parse(&[format!("sorted={}", script.display())], SandboxLimits::default())
                .unwrap();
        let spec = VerifySpec::Command { verifier: "sorted".into() };
        assert!(v.verify(&spec, &json!([3, 1, 2]), &json!([1, 2, 3])).await.unwrap().accept);
        assert!(!v.verify(&spec, &json!([3, 1, 2]), &json!([3, 1, 2])).await.unwrap().accept);
        let unknown = VerifySpec::Command { verifier: "rm-rf".into() };
        assert!(!v.verify(&unknown, &json!(1), &json!(1)).await.unwrap().accept);
        assert!(Verifiers::parse(&["nonsense".into()], SandboxLimits::default()).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
