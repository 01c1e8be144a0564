//! A2A tasks on Reef: the state mapping from a bounty's phase, and the `Task` JSON.
//!
//! A task is one bounty the node posted for its caller. Until the node's follower ends
//! ([`Outcome`]), the task's state is read from the bounty's live view; after that the
//! outcome (what was paid, what went back to the caller) is final.

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::terms::TERMS_URI;

/// A2A 1.0 `TaskState` (its protocol buffer JSON names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Accepted, paid for; the bounty is looking for a provider (bidding, award).
    #[serde(rename = "TASK_STATE_SUBMITTED")]
    Submitted,
    /// A provider was awarded and works, or its result is being verified and paid.
    #[serde(rename = "TASK_STATE_WORKING")]
    Working,
    /// The result was verified and the provider paid: the artifact is the result.
    #[serde(rename = "TASK_STATE_COMPLETED")]
    Completed,
    /// No provider, a rejected result, or the follower failed.
    #[serde(rename = "TASK_STATE_FAILED")]
    Failed,
    /// Cancelled by the caller before the award (the budget went back).
    #[serde(rename = "TASK_STATE_CANCELED")]
    Canceled,
    /// Refused before work started (never stored: refusals are JSON-RPC errors).
    #[serde(rename = "TASK_STATE_REJECTED")]
    Rejected,
}

impl TaskState {
    /// Terminal states never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled | Self::Rejected)
    }

    /// The protocol buffer JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Submitted => "TASK_STATE_SUBMITTED",
            Self::Working => "TASK_STATE_WORKING",
            Self::Completed => "TASK_STATE_COMPLETED",
            Self::Failed => "TASK_STATE_FAILED",
            Self::Canceled => "TASK_STATE_CANCELED",
            Self::Rejected => "TASK_STATE_REJECTED",
        }
    }

    /// Parses a protocol buffer JSON name (for `ListTasks` filters).
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// The state of a task whose follower has not ended, from its bounty's view (`None`: the
/// bounty is not registered yet).
pub fn state_of_view(view: Option<&Value>) -> TaskState {
    let Some(v) = view else { return TaskState::Submitted };
    let accepted = v["verdict"]["accept"].as_bool();
    match v["phase"].as_str().unwrap_or("") {
        "bidding" | "awaiting_award" => TaskState::Submitted,
        "working" | "evaluating" | "awaiting_poster" | "contest" => TaskState::Working,
        "settling" if accepted == Some(false) => TaskState::Failed,
        "settling" => TaskState::Working,
        "settled" if accepted == Some(true) => TaskState::Completed,
        "settled" | "failed" => TaskState::Failed,
        _ => TaskState::Working,
    }
}

/// How a task ended: written once by its follower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The final state.
    pub state: TaskState,
    /// Why, in words.
    pub reason: String,
    /// The provider that was awarded.
    #[serde(default)]
    pub provider: Option<Address>,
    /// What the provider was awarded (base units).
    #[serde(default, with = "opt_decimal")]
    pub price: Option<U256>,
    /// What goes back to the caller (base units).
    #[serde(default, with = "opt_decimal")]
    pub refund: Option<U256>,
    /// The transfer that returned it.
    #[serde(default)]
    pub refund_tx: Option<B256>,
    /// The award transaction (post + fund + award).
    #[serde(default)]
    pub award_tx: Option<B256>,
}

mod opt_decimal {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<U256>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<U256>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| U256::from_str_radix(&s, 10).map_err(serde::de::Error::custom)).transpose()
    }
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    /// The task id.
    pub id: String,
    /// Its context id.
    pub context_id: String,
    /// Who sent it (and paid).
    pub owner: Address,
    /// The agent whose endpoint it was sent to (`None`: the node's).
    pub agent: Option<Address>,
    /// The bounty key (0x + 64 hex digits).
    pub bounty: String,
    /// The budget: the bounty's reward (base units).
    pub budget: U256,
    /// What the payment transferred (at least the budget; the part not spent goes back).
    pub paid: U256,
    /// The payment transaction.
    pub payment_tx: B256,
    /// The caller's message (protocol buffer JSON).
    pub message: Value,
    /// How it ended, once it did.
    pub outcome: Option<Outcome>,
    /// When it was accepted (unix ms).
    pub created_ms: u64,
}

impl TaskRow {
    /// The task's state, given its bounty's view. A task is terminal only once its follower
    /// recorded the outcome (what was paid and returned): until then a final bounty is still
    /// `working` for the caller.
    pub fn state(&self, view: Option<&Value>) -> TaskState {
        match &self.outcome {
            Some(o) => o.state,
            None => match state_of_view(view) {
                s if s.is_terminal() => TaskState::Working,
                s => s,
            },
        }
    }
}

/// RFC 3339 (UTC, millisecond precision) of a unix time in ms: protocol buffer `Timestamp` JSON.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// What the status message says: the outcome's reason, or the bounty's last event.
fn status_text(row: &TaskRow, view: Option<&Value>) -> String {
    if let Some(o) = &row.outcome {
        return o.reason.clone();
    }
    let last = view.and_then(|v| v["events"].as_array()).and_then(|e| e.last());
    match last {
        Some(e) => format!(
            "{}: {}",
            e["event"].as_str().unwrap_or("event"),
            e["detail"].as_str().unwrap_or("")
        )
        .trim_end_matches([':', ' '])
        .to_string(),
        None => "paid; posting the bounty".into(),
    }
}

/// The task's `TaskStatus`.
pub fn status_json(row: &TaskRow, view: Option<&Value>, now_ms: u64) -> Value {
    json!({
        "state": row.state(view).name(),
        "message": {
            "messageId": format!("{}-status-{}", row.id, view.and_then(|v| v["events"].as_array()).map_or(0, Vec::len)),
            "contextId": row.context_id,
            "taskId": row.id,
            "role": "ROLE_AGENT",
            "parts": [{ "text": status_text(row, view) }],
        },
        "timestamp": rfc3339(now_ms),
    })
}

/// The result artifact, when the task completed with a result the node holds.
pub fn artifact_json(row: &TaskRow, view: Option<&Value>) -> Option<Value> {
    if row.state(view) != TaskState::Completed {
        return None;
    }
    let v = view?;
    let result = v["verdict"].get("result").filter(|r| !r.is_null())?;
    Some(json!({
        "artifactId": format!("{}-result", row.id),
        "name": "result",
        "description": "The provider's result, verified by the node before the provider was paid",
        "parts": [{ "data": result, "mediaType": "application/json" }],
        "metadata": { TERMS_URI: {
            "bounty": row.bounty,
            "provider": v["winner"],
            "verdict": v["verdict"]["reason"],
        }},
    }))
}

/// The Reef side of a task (`metadata[TERMS_URI]`).
pub fn reef_metadata(row: &TaskRow, view: Option<&Value>) -> Value {
    let mut m = json!({
        "bounty": row.bounty,
        "budget": row.budget.to_string(),
        "paid": row.paid.to_string(),
        "paymentTx": row.payment_tx,
        "phase": view.map_or(Value::Null, |v| v["phase"].clone()),
        "provider": view.map_or(Value::Null, |v| v["winner"].clone()),
    });
    if let Some(o) = &row.outcome {
        m["provider"] = json!(o.provider);
        m["price"] = json!(o.price.map(|p| p.to_string()));
        m["refund"] = json!(o.refund.map(|p| p.to_string()));
        m["refundTx"] = json!(o.refund_tx);
        m["awardTx"] = json!(o.award_tx);
    }
    m
}

/// The `Task` JSON (`history_length`: how many messages of the history to include; the
/// history is the caller's message).
pub fn task_json(
    row: &TaskRow,
    view: Option<&Value>,
    history_length: Option<u32>,
    now_ms: u64,
) -> Value {
    let mut t = json!({
        "id": row.id,
        "contextId": row.context_id,
        "status": status_json(row, view, now_ms),
        "metadata": { TERMS_URI: reef_metadata(row, view) },
    });
    if history_length != Some(0) {
        t["history"] = json!([row.message]);
    }
    if let Some(a) = artifact_json(row, view) {
        t["artifacts"] = json!([a]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(phase: &str, accept: Option<bool>) -> Value {
        json!({
            "phase": phase,
            "winner": "0x00000000000000000000000000000000000000aa",
            "verdict": accept.map(|a| json!({ "accept": a, "reason": "hash matches", "result": [1, 2] })),
            "events": [{ "event": "posted", "detail": "by x" }, { "event": "awarded", "detail": "" }],
        })
    }

    fn row() -> TaskRow {
        TaskRow {
            id: "t1".into(),
            context_id: "c1".into(),
            owner: Address::repeat_byte(1),
            agent: None,
            bounty: format!("0x{}", "11".repeat(32)),
            budget: U256::from(5),
            paid: U256::from(6),
            payment_tx: B256::repeat_byte(2),
            message: json!({ "messageId": "m", "role": "ROLE_USER", "parts": [{ "text": "sort" }] }),
            outcome: None,
            created_ms: 0,
        }
    }

    #[test]
    fn every_phase_maps_to_an_a2a_state() {
        use TaskState::*;
        let cases = [
            (None, Submitted),
            (Some(view("bidding", None)), Submitted),
            (Some(view("awaiting_award", None)), Submitted),
            (Some(view("working", None)), Working),
            (Some(view("evaluating", None)), Working),
            (Some(view("awaiting_poster", None)), Working),
            (Some(view("settling", Some(true))), Working),
            (Some(view("settling", Some(false))), Failed),
            (Some(view("settled", Some(true))), Completed),
            (Some(view("settled", Some(false))), Failed),
            (Some(view("failed", None)), Failed),
        ];
        for (v, want) in cases {
            assert_eq!(state_of_view(v.as_ref()), want, "{v:?}");
        }
        assert!(Completed.is_terminal() && Failed.is_terminal() && Canceled.is_terminal());
        assert!(!Submitted.is_terminal() && !Working.is_terminal());
        assert_eq!(TaskState::parse("TASK_STATE_WORKING"), Some(Working));
        assert_eq!(TaskState::parse("working"), None);
    }

    #[test]
    fn the_outcome_overrides_the_view_and_the_artifact_needs_a_completed_result() {
        let mut r = row();
        let v = view("settled", Some(true));
        // Settled, but the follower has not recorded what was paid yet: still working.
        let t = task_json(&r, Some(&v), None, 0);
        assert_eq!(t["status"]["state"], "TASK_STATE_WORKING");
        assert!(t.get("artifacts").is_none());
        r.outcome = Some(Outcome {
            state: TaskState::Completed,
            reason: "paid".into(),
            provider: None,
            price: Some(U256::from(4)),
            refund: Some(U256::from(1)),
            refund_tx: None,
            award_tx: None,
        });
        let t = task_json(&r, Some(&v), None, 0);
        assert_eq!(t["status"]["state"], "TASK_STATE_COMPLETED");
        assert_eq!(t["artifacts"][0]["parts"][0]["data"], json!([1, 2]));
        assert_eq!(t["status"]["message"]["parts"][0]["text"], "paid");
        assert_eq!(t["metadata"][TERMS_URI]["price"], "4");
        r.outcome = Some(Outcome {
            state: TaskState::Failed,
            reason: "no bids".into(),
            provider: None,
            price: None,
            refund: Some(U256::from(5)),
            refund_tx: Some(B256::repeat_byte(3)),
            award_tx: None,
        });
        let t = task_json(&r, Some(&v), Some(0), 0);
        assert_eq!(t["status"]["state"], "TASK_STATE_FAILED");
        assert!(t.get("artifacts").is_none());
        assert!(t.get("history").is_none());
        assert_eq!(t["metadata"][TERMS_URI]["refund"], "5");
        let back: Outcome =
            serde_json::from_value(serde_json::to_value(r.outcome.as_ref().unwrap()).unwrap())
                .unwrap();
        assert_eq!(Some(back), r.outcome);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_767_225_599_000), "2025-12-31T23:59:59.000Z");
    }
}
