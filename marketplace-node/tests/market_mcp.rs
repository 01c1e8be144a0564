//! Any MCP tool server can earn (issue 19 §3): `reef agent run --mcp '<server command>'` with
//! UNMODIFIED servers installed from the registries by `make deps` / `make mcp-servers`
//! (`@modelcontextprotocol/server-everything` from npm, `mcp-server-time` from PyPI). A bounty
//! posted with `reef bounty post` is won, executed by the tool server and paid on anvil; an
//! input that does not fit the tool's input schema gets no bid, with the reason.
//!
//! Server locations: `REEF_MCP_EVERYTHING` (its `dist/index.js`) and `REEF_MCP_TIME` (the
//! `mcp-server-time` executable) override the repo's `node_modules` and `.venv`.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use escrow_client::devnet::{AnvilOptions, AnvilProcess, DEV_KEYS, dev_signer, free_port};
use serde_json::Value;

mod common;

use common::{Kill, reef, repo, start_node};

fn server_everything() -> String {
    let js = std::env::var_os("REEF_MCP_EVERYTHING").map(PathBuf::from).unwrap_or_else(|| {
        repo().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
    });
    assert!(
        js.exists(),
        "{} is missing: `make deps` installs @modelcontextprotocol/server-everything (package.json)",
        js.display()
    );
    format!("node {} stdio", js.display())
}

fn server_time() -> String {
    let bin = std::env::var_os("REEF_MCP_TIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/mcp-server-time"));
    assert!(
        bin.exists(),
        "{} is missing: `make mcp-servers` installs mcp-server-time",
        bin.display()
    );
    format!("{} --local-timezone UTC", bin.display())
}

struct Env {
    _anvil: AnvilProcess,
    _node: Kill,
    dir: PathBuf,
    rpc: String,
    http: String,
    ws: String,
}

async fn setup(tag: &str) -> Env {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let dir = common::temp_dir(tag);
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let port = free_port().unwrap();
    let verifier = format!("tz={}", repo().join("examples/verifiers/tz_converted.py").display());
    let node = start_node(&dir, &anvil.rpc_url, port, tag, &["--verifier", &verifier]);
    Env {
        rpc: anvil.rpc_url.clone(),
        _anvil: anvil,
        _node: node,
        dir,
        http: format!("http://127.0.0.1:{port}"),
        ws: format!("ws://127.0.0.1:{port}/v1/ws"),
    }
}

impl Env {
    /// `reef agent run --mcp <server>` as dev account `dev`, bidding `price`; its stderr goes
    /// to `<dir>/agent-<dev>.log`.
    fn mcp_agent(&self, dev: usize, server: &str, price: &str, extra: &[&str]) -> Kill {
        self.tool_agent(dev, &["--mcp", server], price, extra)
    }

    /// `reef agent run` with `how` (`--mcp <cmd>` or `--mcp-url <url>`).
    fn tool_agent(&self, dev: usize, how: &[&str], price: &str, extra: &[&str]) -> Kill {
        let log = std::fs::File::create(self.log_path(dev)).unwrap();
        Kill(
            reef()
                .args(["agent", "run", "--node", &self.ws, "--key", DEV_KEYS[dev]])
                .args(["--rpc-url", &self.rpc, "--bid-price", price, "--eta", "5m"])
                .args(how)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    fn log_path(&self, dev: usize) -> PathBuf {
        self.dir.join(format!("agent-{dev}.log"))
    }

    fn log(&self, dev: usize) -> String {
        std::fs::read_to_string(self.log_path(dev)).unwrap_or_default()
    }

    /// `reef bounty post` by dev account 0 (5 rUSD of the test token, 3 s window) of `skills`
    /// with `input`; `extra` says how it is verified.
    fn post_cmd(&self, skills: &str, input: &str, extra: &[&str]) -> std::process::Command {
        let mut cmd = reef();
        cmd.args(["bounty", "post", "Run an MCP tool", "--reward", "5", "--token", "test"])
            .args(["--node", &self.http, "--skills", skills, "--input", input])
            .args(["--bid-window", "3s", "--deadline", "1h", "--approve", "--dev-account", "0"])
            .args(["--json", "--rpc-url", &self.rpc])
            .arg("--deployments")
            .arg(self.dir.join("deployments"))
            .args(extra);
        cmd
    }

    fn post(&self, skills: &str, input: &str, extra: &[&str]) -> Value {
        let out = common::wait_with_deadline(
            common::spawn_captured(&mut self.post_cmd(skills, input, extra)),
            180,
        );
        assert!(out.status.success(), "post failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn earnings(&self, dev: usize) -> Value {
        common::earnings(&self.rpc, &self.dir.join("deployments"), dev)
    }

    async fn wait_online(&self, dev: usize, agent: &mut Kill) {
        let t0 = Instant::now();
        let url = format!("{}/v1/agents/{}", self.http, dev_signer(dev).address());
        loop {
            if let Some(status) = agent.0.try_wait().unwrap() {
                panic!("the MCP agent exited ({status}):\n{}", self.log(dev));
            }
            let card: Option<Value> = match alloy::transports::http::reqwest::get(&url).await {
                Ok(r) if r.status().is_success() => r.json().await.ok(),
                _ => None,
            };
            if card.as_ref().is_some_and(|c| c["online"] == true) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the MCP agent never came online:\n{}",
                self.log(dev)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The poster's verdict and the agent's on-chain payouts: 4 rUSD minus the 1% fee each.
fn assert_paid(env: &Env, dev: usize, res: &Value, payouts: usize) {
    assert_eq!(res["phase"], "settled", "{res}\n{}", env.log(dev));
    assert_eq!(res["status"], "completed", "{res}\n{}", env.log(dev));
    assert_eq!(res["verdict"]["accept"], true, "{res}");
    let earned = env.earnings(dev);
    let paid = earned["payouts"].as_array().unwrap();
    assert_eq!(paid.len(), payouts, "{earned}");
    assert!(paid.iter().all(|p| p["paid"] == "3960000000000000000"), "{earned}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_everything_echo_wins_a_cli_bounty_and_is_paid() {
    let env = setup("mcp-everything").await;
    let mut agent = env.mcp_agent(1, &server_everything(), "4", &[]);
    env.wait_online(1, &mut agent).await;

    // Discovery finds the tools: the card's skills are the tool names, and its description
    // carries the tools' descriptions.
    let card =
        common::get_json(format!("{}/v1/agents/{}", env.http, dev_signer(1).address())).await;
    let skills: Vec<&str> =
        card["card"]["skills"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(skills.contains(&"echo") && skills.contains(&"get-sum"), "{card}");
    let desc = card["card"]["description"].as_str().unwrap_or_default();
    assert!(desc.contains("Echoes back the input string"), "{card}");

    // An object input is the tool's arguments.
    let res = env.post(
        "echo",
        r#"{"message":"hello reef"}"#,
        &["--verify", "hash", "--expect", r#""Echo: hello reef""#],
    );
    assert_paid(&env, 1, &res, 1);
    // A bare value fills the tool's only required parameter.
    let res = env.post(
        "echo",
        r#""bare value""#,
        &["--verify", "hash", "--expect", r#""Echo: bare value""#],
    );
    assert_paid(&env, 1, &res, 2);
}

/// The same unmodified server over streamable HTTP (`--mcp-url`): it runs as its own process
/// on a port of ours, and the agent reaches it by URL.
#[tokio::test(flavor = "multi_thread")]
async fn server_everything_over_streamable_http_earns_with_mcp_url() {
    let env = setup("mcp-http").await;
    let js = server_everything();
    let js = js.strip_prefix("node ").and_then(|j| j.strip_suffix(" stdio")).unwrap();
    let port = free_port().unwrap();
    let _server = Kill(
        std::process::Command::new("node")
            .args([js, "streamableHttp"])
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the MCP server never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut agent = env.tool_agent(3, &["--mcp-url", &url], "4", &[]);
    env.wait_online(3, &mut agent).await;
    let res = env.post(
        "echo",
        r#"{"message":"over http"}"#,
        &["--verify", "hash", "--expect", r#""Echo: over http""#],
    );
    assert_paid(&env, 3, &res, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_server_time_converts_a_time_and_is_paid() {
    let env = setup("mcp-time").await;
    // `timezones` is not a tool name: the skill mapping routes it to convert_time.
    let mut agent =
        env.mcp_agent(2, &server_time(), "4", &["--mcp-skill", "timezones=convert_time"]);
    env.wait_online(2, &mut agent).await;
    // The result carries today's date: a node-side verifier checks it (same instant, asked
    // zones and wall-clock time, offset difference).
    let res = env.post(
        "timezones",
        r#"{"source_timezone":"UTC","time":"12:00","target_timezone":"Asia/Tokyo"}"#,
        &["--verify", "command", "--verifier", "tz"],
    );
    assert_paid(&env, 2, &res, 1);
    let log = env.log(2);
    assert!(log.contains("convert_time"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_input_that_does_not_fit_the_tool_schema_gets_no_bid_with_the_reason() {
    let env = setup("mcp-refuse").await;
    let mut agent = env.mcp_agent(1, &server_everything(), "4", &[]);
    env.wait_online(1, &mut agent).await;
    // get-sum needs numbers a and b: "a" is a string and b is missing.
    let poster = common::spawn_captured(&mut env.post_cmd(
        "get-sum",
        r#"{"a":"one"}"#,
        &["--verify", "hash", "--expect", "3"],
    ));
    let _poster = Kill(poster);
    let t0 = Instant::now();
    let line = loop {
        let log = env.log(1);
        if let Some(l) = log.lines().find(|l| l.starts_with("no bid on ")) {
            break l.to_string();
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no refusal logged:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(line.contains(r#"tool "get-sum" needs "b""#), "{line}");
    // And no bid reached the node.
    let list = common::get_json(format!("{}/v1/market/bounties", env.http)).await;
    let id = list[0]["id"].as_str().expect("the bounty is on the node").to_string();
    let v = common::get_json(format!("{}/v1/market/bounties/{id}", env.http)).await;
    assert_eq!(v["bids"], 0, "{v}");
    assert!(agent.0.try_wait().unwrap().is_none(), "the agent exited:\n{}", env.log(1));
}
