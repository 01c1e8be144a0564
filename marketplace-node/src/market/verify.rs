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

/// Canonical bytes of a JSON result: serde_json with sorted object keys and no whitespace; the
/// exact rule (string escapes, number formats) is docs/earning.md section 8, pinned by the
/// vectors in docs/vectors/canonical_json.json.
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

/// `path` as an absolute path to an executable file: relative paths from the current
/// directory, bare names (no `/`) from `PATH`.
fn resolve_program(path: &str) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<std::path::PathBuf> = if path.contains('/') {
        vec![std::path::PathBuf::from(path)]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(path)).collect())
            .unwrap_or_default()
    };
    let found = candidates.iter().find(|c| c.is_file()).ok_or_else(|| {
        if path.contains('/') {
            let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
            format!("no such file (looked for {path} from {cwd}); give an existing path")
        } else {
            format!("{path} is not on PATH; give its path")
        }
    })?;
    let abs = std::fs::canonicalize(found).map_err(|e| format!("{}: {e}", found.display()))?;
    let mode = std::fs::metadata(&abs).map_err(|e| e.to_string())?.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(format!("{} is not executable (chmod +x it)", abs.display()));
    }
    Ok(abs)
}

impl Verifiers {
    /// Builds the allowlist from `name=path` pairs. Each program is resolved now, to an
    /// absolute path (a relative path from the current directory, a bare name from `PATH`),
    /// because the sandbox runs it from a private working directory; a program that is missing
    /// or not executable is refused with what to do, before the node serves anything.
    pub fn parse(pairs: &[String], limits: SandboxLimits) -> Result<Self, String> {
        let mut programs = HashMap::new();
        for p in pairs {
            let (name, path) =
                p.split_once('=').ok_or_else(|| format!("--verifier {p:?} is not name=path"))?;
            if name.is_empty() || path.is_empty() {
                return Err(format!("--verifier {p:?} is not name=path"));
            }
            let resolved =
                resolve_program(path).map_err(|why| format!("--verifier {p:?}: {why}"))?;
            programs.insert(name.to_string(), resolved.display().to_string());
        }
        Ok(Self { programs, limits })
    }

    /// The resolved program of `name`.
    pub fn program(&self, name: &str) -> Option<&str> {
        self.programs.get(name).map(String::as_str)
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
        self.verify_scored(spec, input, result).await.map(|(v, _)| v)
    }

    /// [`Self::verify`], plus the score an accepting verifier program printed (see
    /// [`parse_score`]); contests pay their best-scored verified entries.
    pub async fn verify_scored(
        &self,
        spec: &VerifySpec,
        input: &Value,
        result: &Value,
    ) -> Option<(Verdict, Option<f64>)> {
        match spec {
            VerifySpec::Hash { expected } => {
                let got = result_hash(result);
                Some((
                    if got == *expected {
                        Verdict {
                            accept: true,
                            reason: "result hash matches the poster's commitment".into(),
                        }
                    } else {
                        Verdict {
                            accept: false,
                            reason: format!(
                                "result hash {got} differs from the committed {expected}"
                            ),
                        }
                    },
                    None,
                ))
            }
            VerifySpec::Command { verifier } => {
                let Some(program) = self.programs.get(verifier) else {
                    return Some((
                        Verdict {
                            accept: false,
                            reason: format!("verifier {verifier:?} is not installed on this node"),
                        },
                        None,
                    ));
                };
                let stdin =
                    serde_json::to_vec(&serde_json::json!({ "input": input, "result": result }))
                        .unwrap_or_default();
                let out = run_sandboxed(program, &[], &stdin, &self.limits).await;
                Some(if out.accepted {
                    let score = parse_score(&out.stdout);
                    let reason = match score {
                        Some(x) => format!("verifier {verifier} accepted (score {x})"),
                        None => format!("verifier {verifier} accepted"),
                    };
                    (Verdict { accept: true, reason }, score)
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
                    let reason =
                        format!("verifier {verifier} rejected: {why} {tail}").trim().to_string();
                    (Verdict { accept: false, reason }, None)
                })
            }
            // The poster, or the evaluator panel, decides: no automatic verdict here.
            VerifySpec::Poster | VerifySpec::Evaluator { .. } | VerifySpec::Quorum { .. } => None,
        }
    }
}

/// The score a verifier program reports: its last non-empty stdout line, either a number or a
/// JSON object with a numeric `score` (`{"score": 0.93}`). Higher is better; anything else
/// (including NaN or infinity) is no score.
pub fn parse_score(stdout: &str) -> Option<f64> {
    let line = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    let v: Value = serde_json::from_str(line).ok()?;
    let x = match &v {
        Value::Number(n) => n.as_f64(),
        Value::Object(o) => o.get("score").and_then(Value::as_f64),
        _ => None,
    }?;
    x.is_finite().then_some(x)
}

/// Orders a contest's verified entries, given in arrival order, best first: highest score
/// first; entries with equal scores, and entries without a score (after all scored ones), keep
/// their arrival order.
pub fn rank_entries<T>(entries: Vec<(T, Option<f64>)>) -> Vec<T> {
    let mut e: Vec<(usize, T, Option<f64>)> =
        entries.into_iter().enumerate().map(|(i, (t, s))| (i, t, s)).collect();
    e.sort_by(|a, b| match (a.2, b.2) {
        (Some(x), Some(y)) => y.total_cmp(&x).then(a.0.cmp(&b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    e.into_iter().map(|(_, t, _)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `verifier_output` fuzz target (fuzz/): an integer beyond 64 bits is read as
    /// a float, and serde_json's default (fast, not always correctly rounded) float parsing
    /// read the canonical text of that float back as its neighbour, so the canonical form of a
    /// result re-sent by another party changed, and with it the result hash. serde_json's
    /// `float_roundtrip` (workspace dependency) makes the canonical form a fixed point.
    #[test]
    fn canonical_form_is_a_fixed_point_for_big_numbers() {
        let crash = "[-7, 0, 18446744073372036709551615, -9223372036854775808]";
        let v: Value = serde_json::from_str(crash).unwrap();
        let canon = canonical_bytes(&v);
        let again: Value = serde_json::from_slice(&canon).unwrap();
        assert_eq!(canonical_bytes(&again), canon, "{}", String::from_utf8_lossy(&canon));
        assert_eq!(result_hash(&again), result_hash(&v));
    }

    /// A verifier is resolved when the node starts: to an absolute path (the sandbox runs it
    /// from a private directory), and a missing or non-executable one is refused at once.
    #[test]
    fn verifiers_are_resolved_and_checked_at_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("reef-verifiers-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.sh");
        std::fs::write(&ok, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.join("plain.sh");
        std::fs::write(&plain, "exit 0\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();

        let v =
            Verifiers::parse(&[format!("ok={}", ok.display())], SandboxLimits::default()).unwrap();
        let resolved = std::path::Path::new(v.program("ok").unwrap());
        assert!(resolved.is_absolute(), "{}", resolved.display());
        let e = Verifiers::parse(&[format!("p={}", plain.display())], SandboxLimits::default())
            .unwrap_err();
        assert!(e.contains("not executable") && e.contains("chmod +x"), "{e}");
        let e = Verifiers::parse(&["gone=./no/such/verifier.py".into()], SandboxLimits::default())
            .unwrap_err();
        assert!(e.contains("no such file"), "{e}");
        let e =
            Verifiers::parse(&["x=reef-no-such-program-on-path".into()], SandboxLimits::default())
                .unwrap_err();
        assert!(e.contains("not on PATH"), "{e}");
        // A bare name is looked up on PATH.
        let sh = Verifiers::parse(&["sh=sh".into()], SandboxLimits::default()).unwrap();
        assert!(std::path::Path::new(sh.program("sh").unwrap()).is_absolute());
        std::fs::remove_dir_all(&dir).ok();
    }
    use serde_json::json;

    /// The documented canonical form (docs/earning.md section 8) is what the node hashes: the
    /// shared vectors that other implementations (the Python package) are tested against.
    #[test]
    fn canonical_json_matches_the_documented_vectors() {
        let doc: Value =
            serde_json::from_str(include_str!("../../../docs/vectors/canonical_json.json"))
                .unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let input: Value = serde_json::from_str(case["input"].as_str().unwrap()).unwrap();
            let got = String::from_utf8(canonical_bytes(&input)).unwrap();
            assert_eq!(got, case["canonical"].as_str().unwrap(), "input {}", case["input"]);
        }
    }

    #[test]
    fn canonical_hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a": [1, 2], "b": 1 }"#).unwrap();
        assert_eq!(result_hash(&a), result_hash(&b));
        assert_ne!(result_hash(&a), result_hash(&json!({"a":[2,1],"b":1})));
    }

    #[test]
    fn scores_come_from_the_last_stdout_line() {
        assert_eq!(parse_score("checking\n{\"score\": 0.75}\n\n"), Some(0.75));
        assert_eq!(parse_score("12"), Some(12.0));
        assert_eq!(parse_score("{\"score\": 1}\nok"), None, "the last line decides");
        assert_eq!(parse_score("{\"score\": \"high\"}"), None);
        assert_eq!(parse_score(""), None);
        assert_eq!(parse_score("1e999"), None, "not finite");
    }

    #[test]
    fn contest_entries_rank_by_score_then_arrival() {
        let ranked =
            rank_entries(vec![("a", None), ("b", Some(0.5)), ("c", Some(0.9)), ("d", Some(0.5))]);
        assert_eq!(ranked, ["c", "b", "d", "a"]);
        // No scores at all: first verified, first paid.
        assert_eq!(rank_entries(vec![("x", None), ("y", None)]), ["x", "y"]);
    }

    #[tokio::test]
    async fn hash_mode() {
        let v = Verifiers::default();
        let spec = VerifySpec::Hash { expected: result_hash(&json!([1, 2, 3])) };
        assert!(v.verify(&spec, &json!(null), &json!([1, 2, 3])).await.unwrap().accept);
        assert!(!v.verify(&spec, &json!(null), &json!([3, 2, 1])).await.unwrap().accept);
    }

    /// An executable Python script `name` in `dir`, installed as verifier `name`.
    fn verifier(dir: &std::path::Path, name: &str, body: &str) -> Verifiers {
        let script = dir.join(format!("{name}.py"));
        std::fs::write(&script, format!("#!/usr/bin/env python3\nimport json,sys\n{body}"))
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Verifiers::parse(&[format!("{name}={}", script.display())], SandboxLimits::default())
            .unwrap()
    }

    #[tokio::test]
    async fn command_mode_uses_only_allowlisted_programs() {
        let dir = std::env::temp_dir().join(format!("reef-verifier-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let v = verifier(
            &dir,
            "sorted",
            "d=json.load(sys.stdin)\nr=d['result']\nsys.exit(0 if r==sorted(d['input']) else 1)\n",
        );
        let spec = VerifySpec::Command { verifier: "sorted".into() };
        assert!(v.verify(&spec, &json!([3, 1, 2]), &json!([1, 2, 3])).await.unwrap().accept);
        assert!(!v.verify(&spec, &json!([3, 1, 2]), &json!([3, 1, 2])).await.unwrap().accept);
        // A verifier that prints a score: the score comes back with the accepting verdict.
        let scored = verifier(
            &dir,
            "scored",
            "d=json.load(sys.stdin)\nprint('looks fine')\nprint(json.dumps({'score': len(d['result'])}))\n",
        );
        let spec = VerifySpec::Command { verifier: "scored".into() };
        let (verdict, score) =
            scored.verify_scored(&spec, &json!(0), &json!([1, 2, 3])).await.unwrap();
        assert!(verdict.accept, "{verdict:?}");
        assert_eq!(score, Some(3.0));
        let unknown = VerifySpec::Command { verifier: "rm-rf".into() };
        assert!(!v.verify(&unknown, &json!(1), &json!(1)).await.unwrap().accept);
        assert!(Verifiers::parse(&["nonsense".into()], SandboxLimits::default()).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
