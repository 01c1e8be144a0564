//! Tasks and the handlers that run them.

use std::{future::Future, pin::Pin};

use reef_wire::TaskMode;
use serde_json::{Value, json};

use crate::Cfp;

/// A task assigned to this agent: the work of a bounty it won (or a contest it enters), or a
/// task assigned directly in an IoA group.
#[derive(Debug, Clone)]
pub struct Task {
    /// The group the task was assigned in (`contest` for a contest entry).
    pub group_id: String,
    /// The task's id, unique within its group.
    pub task_id: String,
    /// What the assigner sent. For bounty work: `{"bounty_id", "description", "input",
    /// "record", ...}` with the poster's input under `input`; see [`Task::bounty_input`].
    pub input: Value,
    /// `sync` or `async`.
    pub mode: TaskMode,
    /// The node's contract deployment, once the marketplace side is connected (a handler that
    /// posts sub-bounties needs it).
    pub deployment: Option<escrow_client::Deployment>,
}

impl Task {
    /// The poster's input for bounty work (`input.input`), else the whole task input.
    pub fn bounty_input(&self) -> &Value {
        match &self.input {
            Value::Object(m) if m.contains_key("bounty_id") && m.contains_key("input") => {
                &m["input"]
            }
            other => other,
        }
    }

    /// The bounty this task is the work of, if any.
    pub fn bounty_id(&self) -> Option<&str> {
        self.input.get("bounty_id").and_then(Value::as_str)
    }

    /// The task as `reef agent run --exec` programs read it on stdin:
    /// `{"group_id", "task_id", "input", "mode"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "group_id": self.group_id,
            "task_id": self.task_id,
            "input": self.input,
            "mode": self.mode,
        })
    }
}

/// How a task ended: what is delivered as the `execution` message.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// Success (`status: done`) or failure (`status: failed`).
    pub ok: bool,
    /// The result (or, on failure, the reason).
    pub result: Value,
    /// Exit code reported with the result (0 for success, 1 for a failure of a closure).
    pub exit_code: i32,
}

impl TaskOutcome {
    /// A successful result.
    pub fn done(result: Value) -> Self {
        Self { ok: true, result, exit_code: 0 }
    }

    /// A failure with its reason.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self { ok: false, result: Value::String(reason.into()), exit_code: 1 }
    }
}

impl From<Result<Value, String>> for TaskOutcome {
    fn from(r: Result<Value, String>) -> Self {
        match r {
            Ok(v) => Self::done(v),
            Err(e) => Self::failed(e),
        }
    }
}

/// A boxed future, as [`TaskHandler::run`] returns it.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What does the work. A closure `Fn(Task) -> impl Future<Output = Result<Value, String>>` is
/// one (see [`crate::AgentBuilder::handler`]); implement the trait to also decline calls for
/// proposals the handler cannot serve, before a bid goes out.
pub trait TaskHandler: Send + Sync + 'static {
    /// Runs one task.
    fn run(&self, task: Task) -> BoxFuture<TaskOutcome>;

    /// Whether to bid on `cfp` (its skills already match the card): `Err(reason)` declines.
    fn check(&self, cfp: &Cfp) -> Result<(), String> {
        let _ = cfp;
        Ok(())
    }
}

/// A closure as a [`TaskHandler`].
pub(crate) struct FnHandler<F>(pub(crate) F);

impl<F, Fut> TaskHandler for FnHandler<F>
where
    F: Fn(Task) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, String>> + Send + 'static,
{
    fn run(&self, task: Task) -> BoxFuture<TaskOutcome> {
        let fut = (self.0)(task);
        Box::pin(async move { fut.await.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounty_input_is_the_posters_input() {
        let t = Task {
            group_id: "g".into(),
            task_id: "t".into(),
            input: json!({"bounty_id": "0x01", "input": [3, 1]}),
            mode: TaskMode::Sync,
            deployment: None,
        };
        assert_eq!(t.bounty_input(), &json!([3, 1]));
        assert_eq!(t.bounty_id(), Some("0x01"));
        let plain = Task { input: json!({"text": "hi"}), ..t };
        assert_eq!(plain.bounty_input(), &json!({"text": "hi"}));
        assert_eq!(plain.to_json()["mode"], "sync");
    }
}
