//! The conversation engine: a finite-state machine per group, driven only by the messages the
//! agents exchange (the node never moves a conversation). Phases go
//! discussion → task assignment → execution → conclusion:
//!
//! * a `task_assignment` message carries a [`TaskDesc`]; a **sync** task blocks the group in
//!   [`Phase::Execution`] until its result arrives; an **async** task is fire-and-forget (the
//!   group stays in discussion) and an agent may [`Engine::pause_on`] task ids, to be
//!   triggered ([`Action::Resume`]) when they complete;
//! * an `execution` message with `task_desc.task_id` and `body.status` = `done`/`failed`
//!   completes a task; the assigner of a concluding sync task gets [`Action::Conclude`];
//! * a `conclusion` message ends the group; its sender gets [`Action::BubbleUp`] to post the
//!   result into the parent group.
//!
//! Unknown states are treated as discussion (fail-open). The engine is pure: it returns
//! [`Action`]s for the caller to carry out.

use std::collections::{HashMap, HashSet};

use alloy_primitives::Address;
use reef_wire::{Envelope, State, TaskDesc, TaskMode};
use serde_json::Value;

/// Phase of a group's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Talking.
    Discussion,
    /// A task was just assigned (async tasks return to discussion at once).
    TaskAssignment,
    /// Waiting for a sync task's result.
    Execution,
    /// Concluded; later messages do not reopen it.
    Concluded,
}

/// Status of a task known to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskStatus {
    /// Assigned, no result yet.
    Assigned,
    /// Finished successfully with a result.
    Done(Value),
    /// Finished with a failure.
    Failed(Value),
}

/// What the engine asks its caller to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// We are the assignee: run the task, then post an `execution` message with its result.
    Execute {
        /// Group.
        group_id: String,
        /// The task.
        task: TaskDesc,
        /// Who assigned it.
        assigner: Address,
    },
    /// A task we paused on completed (async trigger).
    Resume {
        /// Group.
        group_id: String,
        /// Task.
        task_id: String,
        /// Its final status.
        status: TaskStatus,
    },
    /// Our sync task completed: post a `conclusion` with this result.
    Conclude {
        /// Group.
        group_id: String,
        /// Result to conclude with.
        result: Value,
    },
    /// We concluded a child group: post the result into its parent.
    BubbleUp {
        /// Parent group.
        parent_group_id: String,
        /// Child group.
        child_group_id: String,
        /// Result.
        result: Value,
    },
}

#[derive(Debug, Clone)]
struct Task {
    desc: TaskDesc,
    assigner: Address,
    status: TaskStatus,
}

#[derive(Debug, Clone)]
struct Conversation {
    parent: Option<String>,
    phase: Phase,
    tasks: HashMap<String, Task>,
    paused_on: HashSet<String>,
    result: Option<Value>,
}

/// The engine of one agent, tracking any number of groups.
#[derive(Debug, Clone)]
pub struct Engine {
    me: Address,
    groups: HashMap<String, Conversation>,
}

impl Engine {
    /// An engine acting for `me`.
    pub fn new(me: Address) -> Self {
        Self { me, groups: HashMap::new() }
    }

    /// Declare a group and its parent (where conclusions bubble up).
    pub fn track(&mut self, group_id: &str, parent: Option<String>) {
        let c = self.conv(group_id);
        if parent.is_some() {
            c.parent = parent;
        }
    }

    fn conv(&mut self, group_id: &str) -> &mut Conversation {
        self.groups.entry(group_id.to_owned()).or_insert_with(|| Conversation {
            parent: None,
            phase: Phase::Discussion,
            tasks: HashMap::new(),
            paused_on: HashSet::new(),
            result: None,
        })
    }

    /// Current phase of a group.
    pub fn phase(&self, group_id: &str) -> Phase {
        self.groups.get(group_id).map(|c| c.phase).unwrap_or(Phase::Discussion)
    }

    /// Status of a task.
    pub fn task_status(&self, group_id: &str, task_id: &str) -> Option<TaskStatus> {
        self.groups.get(group_id)?.tasks.get(task_id).map(|t| t.status.clone())
    }

    /// Result a concluded group ended with.
    pub fn result(&self, group_id: &str) -> Option<&Value> {
        self.groups.get(group_id)?.result.as_ref()
    }

    /// Pause until the given async tasks complete; each completion yields [`Action::Resume`].
    /// Already finished tasks yield their action immediately.
    pub fn pause_on(&mut self, group_id: &str, task_ids: &[&str]) -> Vec<Action> {
        let c = self.conv(group_id);
        let mut out = Vec::new();
        for id in task_ids {
            match c.tasks.get(*id).map(|t| t.status.clone()) {
                Some(status @ (TaskStatus::Done(_) | TaskStatus::Failed(_))) => {
                    out.push(Action::Resume {
                        group_id: group_id.into(),
                        task_id: (*id).into(),
                        status,
                    })
                }
                _ => {
                    c.paused_on.insert((*id).to_owned());
                }
            }
        }
        out
    }

    /// Feed one delivered message (in seq order); returns what to do.
    pub fn on_message(&mut self, env: &Envelope) -> Vec<Action> {
        let me = self.me;
        let c = self.conv(&env.group_id);
        let mut out = Vec::new();
        if c.phase == Phase::Concluded {
            return out;
        }
        match &env.state {
            State::Discussion | State::Other(_) => {}
            State::TaskAssignment => {
                let desc: TaskDesc = env
                    .task_desc
                    .clone()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                let id =
                    if desc.task_id.is_empty() { env.msg_id.clone() } else { desc.task_id.clone() };
                let desc = TaskDesc { task_id: id.clone(), ..desc };
                if c.tasks.contains_key(&id) {
                    return out;
                }
                c.phase = match desc.mode {
                    TaskMode::Sync => Phase::Execution,
                    TaskMode::Async => Phase::Discussion,
                };
                if desc.assignee == Some(me) {
                    out.push(Action::Execute {
                        group_id: env.group_id.clone(),
                        task: desc.clone(),
                        assigner: env.sender_id,
                    });
                }
                c.tasks.insert(
                    id,
                    Task { desc, assigner: env.sender_id, status: TaskStatus::Assigned },
                );
            }
            State::Execution => {
                let Some(task_id) =
                    env.task_desc.as_ref().and_then(|t| t.get("task_id")).and_then(Value::as_str)
                else {
                    return out;
                };
                let body = env.body.clone().unwrap_or(Value::Null);
                let result = body.get("result").cloned().unwrap_or(Value::Null);
                let status = match body.get("status").and_then(Value::as_str) {
                    Some("done") => TaskStatus::Done(result),
                    Some("failed") => TaskStatus::Failed(result),
                    _ => return out, // progress report
                };
                let Some(task) = c.tasks.get_mut(task_id) else { return out };
                if task.status != TaskStatus::Assigned {
                    return out;
                }
                task.status = status.clone();
                let sync = task.desc.mode == TaskMode::Sync;
                let concludes = task.desc.concludes.unwrap_or(sync);
                let assigner = task.assigner;
                if c.paused_on.remove(task_id) {
                    out.push(Action::Resume {
                        group_id: env.group_id.clone(),
                        task_id: task_id.into(),
                        status: status.clone(),
                    });
                }
                if sync {
                    let still_blocked = c
                        .tasks
                        .values()
                        .any(|t| t.desc.mode == TaskMode::Sync && t.status == TaskStatus::Assigned);
                    if !still_blocked {
                        c.phase = Phase::Discussion;
                    }
                }
                if concludes && assigner == me {
                    let result = match status {
                        TaskStatus::Done(r) => {
                            serde_json::json!({ "status": "done", "task_id": task_id, "result": r })
                        }
                        TaskStatus::Failed(r) => {
                            serde_json::json!({ "status": "failed", "task_id": task_id, "result": r })
                        }
                        TaskStatus::Assigned => Value::Null,
                    };
                    out.push(Action::Conclude { group_id: env.group_id.clone(), result });
                }
            }
            State::Conclusion => {
                c.phase = Phase::Concluded;
                let result = env.body.clone().unwrap_or(Value::Null);
                c.result = Some(result.clone());
                if env.sender_id == me
                    && let Some(parent) = c.parent.clone()
                {
                    out.push(Action::BubbleUp {
                        parent_group_id: parent,
                        child_group_id: env.group_id.clone(),
                        result,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn env(
        seq: u64,
        from: Address,
        state: State,
        task: Option<Value>,
        body: Option<Value>,
    ) -> Envelope {
        Envelope {
            group_id: "g".into(),
            sender_id: from,
            state,
            msg_id: format!("m{seq}"),
            seq,
            ts: 0,
            task_desc: task,
            body,
            extra: Map::new(),
        }
    }

    #[test]
    fn sync_task_flows_to_conclusion_and_bubbles_up() {
        let boss = Address::repeat_byte(1);
        let worker = Address::repeat_byte(2);
        let mut b = Engine::new(boss);
        let mut w = Engine::new(worker);
        b.track("g", Some("parent".into()));
        let msgs = [
            env(1, boss, State::Discussion, None, Some(json!("hi"))),
            env(
                2,
                boss,
                State::TaskAssignment,
                Some(json!({"task_id":"t1","assignee":worker,"mode":"sync","input":{"x":1}})),
                None,
            ),
        ];
        for m in &msgs {
            assert!(b.on_message(m).is_empty());
        }
        assert_eq!(b.phase("g"), Phase::Execution);
        assert!(w.on_message(&msgs[0]).is_empty());
        let acts = w.on_message(&msgs[1]);
        assert!(
            matches!(&acts[..], [Action::Execute { task, .. }] if task.task_id == "t1" && task.input == json!({"x":1}))
        );
        let done = env(
            3,
            worker,
            State::Execution,
            Some(json!({"task_id":"t1"})),
            Some(json!({"status":"done","result":42})),
        );
        let acts = b.on_message(&done);
        assert!(matches!(&acts[..], [Action::Conclude { result, .. }] if result["result"] == 42));
        assert_eq!(b.phase("g"), Phase::Discussion);
        let concl = env(4, boss, State::Conclusion, None, Some(json!({"result":42})));
        let acts = b.on_message(&concl);
        assert!(
            matches!(&acts[..], [Action::BubbleUp { parent_group_id, .. }] if parent_group_id == "parent")
        );
        assert_eq!(b.phase("g"), Phase::Concluded);
        assert!(w.on_message(&concl).is_empty(), "only the concluder bubbles up");
    }

    #[test]
    fn async_tasks_pause_and_trigger_and_unknown_state_is_discussion() {
        let me = Address::repeat_byte(1);
        let other = Address::repeat_byte(2);
        let mut e = Engine::new(me);
        e.on_message(&env(
            1,
            me,
            State::TaskAssignment,
            Some(json!({"task_id":"a","assignee":other,"mode":"async"})),
            None,
        ));
        assert_eq!(e.phase("g"), Phase::Discussion);
        assert!(e.pause_on("g", &["a"]).is_empty());
        assert!(e.on_message(&env(2, other, State::Other("haggle".into()), None, None)).is_empty());
        assert_eq!(e.phase("g"), Phase::Discussion);
        let acts = e.on_message(&env(
            3,
            other,
            State::Execution,
            Some(json!({"task_id":"a"})),
            Some(json!({"status":"failed"})),
        ));
        assert!(
            matches!(&acts[..], [Action::Resume { task_id, status: TaskStatus::Failed(_), .. }] if task_id == "a")
        );
        // Duplicate result is ignored.
        assert!(
            e.on_message(&env(
                4,
                other,
                State::Execution,
                Some(json!({"task_id":"a"})),
                Some(json!({"status":"done"}))
            ))
            .is_empty()
        );
    }
}
