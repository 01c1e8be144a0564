//! `reef agent`: run any program as an agent's brain on a Reef node (`run`), or make a key
//! (`keygen`).
//!
//! `run` connects and authenticates with the key, registers the card, joins every group the
//! agent belongs to (and every group it is invited to), feeds messages to the SDK's
//! conversation engine and, for each task assigned to it, runs `--exec` with the task JSON on
//! stdin; stdout (JSON, or text) is the result and the exit code says success. The result is
//! posted as an `execution` message; conclusions bubble up to parent groups.

use std::collections::HashMap;
use std::process::Stdio;

use alloy_signer_local::PrivateKeySigner;
use clap::{Args, Subcommand};
use eyre::WrapErr;
use reef_agent_sdk::{Action, Client, Engine, Event};
use reef_wire::{AgentCard, State, TaskDesc};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// Arguments of `reef agent`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  reef agent keygen --json\n  reef agent run --node ws://127.0.0.1:7700/v1/ws --key $KEY --name echo --skills echo,test --exec ./my-agent"
)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Run a program as the agent's brain.
    Run(Box<RunArgs>),
    /// Generate a new secp256k1 key and print it with its address.
    Keygen(KeygenArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef agent keygen --json   # {\"address\":\"0x…\",\"private_key\":\"0x…\"}"
)]
struct KeygenArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef agent run --node ws://127.0.0.1:7700/v1/ws --key $KEY --name summarizer \\\n    --description 'summarizes text' --skills summarization,english --price 2 --exec 'python3 brain.py'\n\nThe program gets {\"group_id\",\"task_id\",\"input\",\"assigner\",\"mode\"} on stdin and prints its result on stdout;\nexit code 0 = done, anything else = failed. With --json, one line per finished task goes to stdout."
)]
struct RunArgs {
    /// Node WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:7700/v1/ws", env = "REEF_NODE_URL")]
    node: String,
    /// The agent's private key (hex).
    #[arg(long, env = "REEF_AGENT_KEY", hide_env_values = true)]
    key: String,
    /// Card: name.
    #[arg(long, default_value = "reef-agent")]
    name: String,
    /// Card: description.
    #[arg(long, default_value = "")]
    description: String,
    /// Card: skills (comma separated).
    #[arg(long, value_delimiter = ',')]
    skills: Vec<String>,
    /// Card: price hint.
    #[arg(long)]
    price: Option<f64>,
    /// Card: accepted payment tokens (comma separated).
    #[arg(long, value_delimiter = ',')]
    payment_tokens: Vec<String>,
    /// Program run for each task (through `sh -c`).
    #[arg(long)]
    exec: String,
    /// Exit after this many tasks (default: run forever).
    #[arg(long)]
    max_tasks: Option<u64>,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

impl AgentArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        match self.command {
            AgentCommand::Keygen(k) => {
                let s = PrivateKeySigner::random();
                let key = alloy_primitives::hex::encode_prefixed(s.to_bytes());
                if k.json {
                    println!("{}", json!({ "address": s.address(), "private_key": key }));
                } else {
                    println!("address:     {}\nprivate key: {key}", s.address());
                }
                Ok(())
            }
            AgentCommand::Run(r) => r.run().await,
        }
    }
}

impl RunArgs {
    async fn run(self) -> eyre::Result<()> {
        let signer: PrivateKeySigner =
            self.key.trim().parse().wrap_err("--key is not a valid private key")?;
        let (client, mut events) = Client::connect(&self.node, signer).await?;
        let me = client.address();
        client
            .register(AgentCard {
                name: self.name.clone(),
                description: self.description.clone(),
                skills: self.skills.clone(),
                price: self.price,
                payment_tokens: self.payment_tokens.clone(),
                ..Default::default()
            })
            .await?;
        eprintln!("agent {me} registered on node {}", client.node_id());
        let mut engine = Engine::new(me);
        // Seq up to which a group's messages are history (already handled in an earlier run).
        let mut caught_up: HashMap<String, u64> = HashMap::new();
        for g in client.list_groups().await? {
            let last = client.join(&g.group_id, Some(0)).await?;
            engine.track(&g.group_id, g.parent_group_id.clone());
            caught_up.insert(g.group_id, last);
        }
        let mut deferred: Vec<(String, TaskDesc)> = Vec::new();
        let mut done = 0u64;
        let mut seen: HashMap<String, u64> = HashMap::new();
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Invited { group_id, .. } => {
                    if let Ok(g) = client
                        .list_groups()
                        .await
                        .map(|gs| gs.into_iter().find(|g| g.group_id == group_id))
                    {
                        engine.track(&group_id, g.and_then(|g| g.parent_group_id));
                    }
                    let last = client.join(&group_id, Some(0)).await?;
                    caught_up.insert(group_id, last);
                }
                Event::Message(m) => {
                    seen.insert(m.group_id.clone(), m.seq);
                    for action in engine.on_message(&m) {
                        match action {
                            Action::Execute { group_id, task, .. } => {
                                deferred.push((group_id, task))
                            }
                            Action::Conclude { group_id, result } => {
                                if m.seq >= caught_up.get(&group_id).copied().unwrap_or(0) {
                                    client
                                        .send(&group_id, State::Conclusion, Some(result), None)
                                        .await?;
                                }
                            }
                            Action::BubbleUp { parent_group_id, child_group_id, result } => {
                                if m.seq >= caught_up.get(&child_group_id).copied().unwrap_or(0) {
                                    let body = json!({ "status": "done", "result": result, "child_group_id": child_group_id });
                                    client
                                        .send(
                                            &parent_group_id,
                                            State::Execution,
                                            Some(body),
                                            Some(json!({ "task_id": child_group_id })),
                                        )
                                        .await?;
                                }
                            }
                            Action::Resume { .. } => {}
                        }
                    }
                    // Run tasks once their group's history is replayed and they are still open.
                    let ready: Vec<(String, TaskDesc)> = {
                        let (ready, keep) = deferred.drain(..).partition(|(g, _)| {
                            seen.get(g).copied().unwrap_or(0)
                                >= caught_up.get(g).copied().unwrap_or(0)
                        });
                        deferred = keep;
                        ready
                    };
                    for (group_id, task) in ready {
                        if engine.task_status(&group_id, &task.task_id)
                            != Some(reef_agent_sdk::engine::TaskStatus::Assigned)
                        {
                            continue;
                        }
                        let (ok, result, code) = execute(&self.exec, &group_id, &task).await;
                        let body = json!({ "status": if ok { "done" } else { "failed" }, "result": result, "exit_code": code });
                        let seq = client
                            .send(
                                &group_id,
                                State::Execution,
                                Some(body.clone()),
                                Some(json!({ "task_id": task.task_id })),
                            )
                            .await?;
                        if self.json {
                            println!(
                                "{}",
                                json!({ "group_id": group_id, "task_id": task.task_id, "ok": ok, "seq": seq, "result": result })
                            );
                        } else {
                            eprintln!(
                                "task {} in {group_id}: {}",
                                task.task_id,
                                if ok { "done" } else { "failed" }
                            );
                        }
                        done += 1;
                        if self.max_tasks.is_some_and(|m| done >= m) {
                            return Ok(());
                        }
                    }
                }
                Event::Disconnected(reason) => eprintln!("disconnected ({reason}); reconnecting"),
                Event::Connected | Event::Removed { .. } => {}
            }
        }
        Ok(())
    }
}

/// Run the brain program; returns (success, result, exit code).
async fn execute(program: &str, group_id: &str, task: &TaskDesc) -> (bool, Value, i32) {
    let input = json!({
        "group_id": group_id,
        "task_id": task.task_id,
        "input": task.input,
        "mode": task.mode,
    });
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (false, json!(format!("cannot start program: {e}")), -1),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{input}\n").as_bytes()).await;
    }
    match child.wait_with_output().await {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let result = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let code = out.status.code().unwrap_or(-1);
            (out.status.success(), result, code)
        }
        Err(e) => (false, json!(format!("program failed: {e}")), -1),
    }
}
