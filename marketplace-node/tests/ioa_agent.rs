//! `reef agent run` as a real process: a task assigned in a group is executed by the `--exec`
//! program (task JSON on stdin, result on stdout, exit code = success), the result comes back as
//! an `execution` message, and the assigner's engine concludes. Also the Python example agent.

#[path = "ioa_support.rs"]
mod support;

use std::process::{Command, Stdio};

use alloy_signer_local::PrivateKeySigner;
use reef_agent_sdk::{Action, Client, Engine, Event};
use reef_wire::State;
use serde_json::{Value, json};
use support::*;

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Drive one sync task through a group and return the executor's `execution` body.
async fn assign_and_wait(
    node: &NodeProc,
    boss: &PrivateKeySigner,
    worker: alloy_primitives::Address,
    input: Value,
) -> Value {
    let (b, mut ev) = Client::connect(&node.ws_url(), boss.clone()).await.unwrap();
    // Wait until the worker is online (registered and connected).
    poll(|| {
        let b = b.clone();
        async move { b.get_agent(worker).await.ok().filter(|a| a.online) }
    })
    .await;
    let g = b.create_group("job", &[worker], None).await.unwrap();
    b.join(&g.group_id, Some(0)).await.unwrap();
    let mut engine = Engine::new(boss.address());
    b.send(
        &g.group_id,
        State::TaskAssignment,
        None,
        Some(json!({"task_id":"t1","assignee":worker,"mode":"sync","input":input})),
    )
    .await
    .unwrap();
    loop {
        let Event::Message(m) =
            tokio::time::timeout(DEADLINE, ev.recv()).await.expect("timed out").unwrap()
        else {
            continue;
        };
        for a in engine.on_message(&m) {
            if let Action::Conclude { result, .. } = a {
                assert_eq!(m.sender_id, worker);
                return result;
            }
        }
    }
}

#[tokio::test]
async fn ioa_reef_agent_runs_exec_brain() {
    let node = spawn_node(&sqlite_url(), &[]);
    let worker = PrivateKeySigner::random();
    let key = alloy_primitives::hex::encode(worker.to_bytes());
    let script = r#"read line; case "$line" in *fail*) echo '"nope"'; exit 3;; esac; echo "{\"got\": $line}""#;
    let agent = Kill(
        Command::new(env!("CARGO_BIN_EXE_reef"))
            .args([
                "agent",
                "run",
                "--node",
                &node.ws_url(),
                "--key",
                &key,
                "--name",
                "echo",
                "--skills",
                "echo",
                "--exec",
                script,
                "--json",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let boss = PrivateKeySigner::random();
    let r = assign_and_wait(&node, &boss, worker.address(), json!({"x": 1})).await;
    assert_eq!(r["status"], "done", "{r}");
    assert_eq!(r["result"]["got"]["input"], json!({"x": 1}));
    assert_eq!(r["result"]["got"]["task_id"], "t1");
    let r = assign_and_wait(&node, &boss, worker.address(), json!("please fail")).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["result"], "nope");
    // The agent, having connected, worked and answered, runs on one thread (no tokio workers;
    // a blocking-pool thread, if any, is `reef-blocking`); the node keeps its workers.
    if let (Some(in_agent), Some(in_node)) =
        (tokio_workers(agent.0.id()), tokio_workers(node.child.id()))
    {
        assert_eq!(in_agent, 0, "reef agent run has no tokio worker threads");
        assert!(in_node >= 1, "the node runs tokio's workers ({in_node}): the check sees them");
    }
}

/// Threads of `pid` named as tokio names a multi-threaded runtime's workers (Linux `/proc`;
/// `None` elsewhere).
fn tokio_workers(pid: u32) -> Option<usize> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .filter(|name| name.starts_with("tokio-r"))
            .count(),
    )
}

/// The Python example speaks the raw protocol (needs `pip install websockets eth-account`;
/// the test installs them into a private venv under the target dir and is skipped, loudly,
/// when PyPI is unreachable).
#[tokio::test]
async fn ioa_python_example_agent() {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ioa-pyvenv");
    let py = venv.join("bin/python");
    if !py.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "python3 -m venv failed");
    }
    let have = Command::new(&py)
        .args(["-c", "import websockets, eth_account"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        let ok = Command::new(&py)
            .args(["-m", "pip", "install", "-q", "websockets", "eth-account"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("SKIPPED: could not pip install websockets eth-account");
            return;
        }
    }
    let node = spawn_node(&sqlite_url(), &[]);
    let worker = PrivateKeySigner::random();
    let key = alloy_primitives::hex::encode_prefixed(worker.to_bytes());
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python/agent.py");
    let _agent = Kill(
        Command::new(&py)
            .arg(example)
            .args(["--node", &node.ws_url(), "--key", &key, "--max-tasks", "1"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let boss = PrivateKeySigner::random();
    let r = assign_and_wait(&node, &boss, worker.address(), json!({"text": "hello reef"})).await;
    assert_eq!(r["status"], "done", "{r}");
    assert_eq!(r["result"]["upper"], "HELLO REEF");
}
