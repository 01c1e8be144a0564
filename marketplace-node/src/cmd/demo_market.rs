//! `reef demo`: the whole marketplace on a private anvil — a node with the marketplace and the
//! embedded indexer, eleven example agents (different skills and prices, one dishonest, one that
//! stalls past its ETA, one nested, one metered, three third-party evaluators), and a poster that
//! runs several bounties to completion: hash, command, unit-test, poster and 2-of-3 evaluator
//! verification, a take-over, a nested job, a contest with a 60/40 split and metered calls.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, U256, utils::format_ether, utils::parse_ether},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use escrow_client::{
    ClientOptions, ReefClient,
    deploy::{DeployConfig, deploy_all, empty_deployment},
    devnet::{AnvilOptions, AnvilProcess, dev_signer, free_port},
    escrow::net_of,
};
use eyre::{WrapErr, eyre};
use serde_json::{Value, json};

/// Kills a child process when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct AgentSpec {
    name: &'static str,
    skills: &'static str,
    price: &'static str,
    brain: &'static str,
    extra: &'static [&'static str],
}

const AGENTS: &[AgentSpec] = &[
    AgentSpec {
        name: "sorter-fast",
        skills: "sort,sort-rush",
        price: "4",
        brain: "sort.py",
        extra: &[],
    },
    AgentSpec { name: "sorter-cheap", skills: "sort", price: "3.5", brain: "sort.py", extra: &[] },
    AgentSpec {
        name: "cheater",
        skills: "sort",
        price: "3.4",
        brain: "sort_dishonest.py",
        extra: &[],
    },
    AgentSpec { name: "miner", skills: "pow", price: "2", brain: "pow.py", extra: &[] },
    AgentSpec { name: "fixer", skills: "code-fix", price: "6", brain: "code_fix.py", extra: &[] },
    AgentSpec {
        name: "splitter",
        skills: "sort-large",
        price: "8",
        brain: "split_sort.py",
        extra: &["--share-key-with-brain"],
    },
    // Wins rush jobs on its 3 s ETA (same price as sorter-fast, which promises 60 s), then never
    // delivers: take-over. The node, as evaluator, may hand a job over only at the same price
    // or lower (BountyEscrow caps an evaluator's reassignment), so the runner-up asks as much.
    AgentSpec {
        name: "stalled",
        skills: "sort-rush",
        price: "4",
        brain: "sort_stalled.py",
        extra: &[],
    },
    // Third-party evaluators for `--verify quorum` (they judge with the `sorted` verifier).
    AgentSpec { name: "judge-1", skills: "review", price: "0", brain: "sort.py", extra: &[] },
    AgentSpec { name: "judge-2", skills: "review", price: "0", brain: "sort.py", extra: &[] },
    AgentSpec { name: "judge-3", skills: "review", price: "0", brain: "sort.py", extra: &[] },
];

/// Finds the repository root (where `examples/` lives).
fn repo_root() -> eyre::Result<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::current_dir()
        .map(|d| d.ancestors().map(Path::to_path_buf).collect())
        .unwrap_or_default();
    roots.extend(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().map(Path::to_path_buf));
    roots.into_iter().find(|r| r.join("examples/agents/sort.py").is_file()).ok_or_else(|| {
        eyre!("cannot find the repository's examples/ directory; run `reef demo` from the repo")
    })
}

pub(crate) struct Demo {
    reef: PathBuf,
    tmp: PathBuf,
    rpc: String,
    http: String,
    ws: String,
    deployments: PathBuf,
}

impl Demo {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.reef);
        c.env_remove("REEF_PRIVATE_KEY").env("RUST_LOG", "warn");
        c
    }

    fn log(&self, name: &str) -> eyre::Result<std::fs::File> {
        Ok(std::fs::File::create(self.tmp.join(format!("{name}.log")))?)
    }

    /// Runs `reef bounty post …` as the poster and returns its JSON.
    fn post(&self, title: &str, args: &[&str]) -> eyre::Result<Value> {
        eprintln!("\n▶ {title}");
        let out = self
            .cmd()
            .args([
                "bounty",
                "post",
                title,
                "--token",
                "test",
                "--node",
                &self.http,
                "--bid-window",
                "2s",
            ])
            .args([
                "--deadline",
                "30m",
                "--approve",
                "--dev-account",
                "0",
                "--json",
                "--rpc-url",
                &self.rpc,
            ])
            .arg("--deployments")
            .arg(&self.deployments)
            .args(args)
            .stderr(Stdio::inherit())
            .output()?;
        // 3 and 4 are outcomes (not paid, rejected), reported in the JSON like a success.
        let ended = [super::bounty::EXIT_NOT_SETTLED, super::bounty::EXIT_REJECTED]
            .map(i32::from)
            .contains(&out.status.code().unwrap_or(1));
        if !out.status.success() && !ended {
            return Err(eyre!("posting {title:?} failed"));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn chain_cmd(&self, args: &[&str]) -> eyre::Result<Value> {
        let out = self
            .cmd()
            .args(args)
            .args(["--json", "--rpc-url", &self.rpc])
            .arg("--deployments")
            .arg(&self.deployments)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err(eyre!("`reef {}` failed", args.join(" ")));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

/// Runs the marketplace demo.
pub(crate) async fn run(json_out: bool, serve: bool) -> eyre::Result<()> {
    let t0 = Instant::now();
    let root = repo_root()?;
    let reef = std::env::current_exe()?;
    let tmp = std::env::temp_dir().join(format!("reef-demo-{}", std::process::id()));
    std::fs::create_dir_all(tmp.join("deployments"))?;

    eprintln!("▶ starting a private anvil and deploying Reef's contracts");
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await?;
    let deployer = ReefClient::connect(
        &anvil.rpc_url,
        dev_signer(0),
        empty_deployment(anvil.chain_id),
        ClientOptions::default(),
    )
    .await?;
    let (dep, _) = deploy_all(
        &deployer,
        &DeployConfig::devnet((0..6).map(|i| dev_signer(i).address()).collect()),
    )
    .await?;
    let deployments = tmp.join("deployments");
    dep.save(&escrow_client::Deployment::path_in(&deployments, dep.chain_id))?;
    let token = dep.test_token.ok_or_else(|| eyre!("no test token"))?;
    eprintln!("  anvil {} · escrow {}", anvil.rpc_url, dep.bounty_escrow);

    let port = free_port()?;
    let demo = Demo {
        reef,
        tmp: tmp.clone(),
        rpc: anvil.rpc_url.clone(),
        http: format!("http://127.0.0.1:{port}"),
        ws: format!("ws://127.0.0.1:{port}/v1/ws"),
        deployments: deployments.clone(),
    };

    eprintln!("▶ starting the node (IoA switchboard + marketplace + embedded indexer, SQLite)");
    let v = |name: &str| {
        format!("{name}={}", root.join("examples/verifiers").join(format!("{name}.py")).display())
    };
    let mut node = demo
        .cmd()
        .args(["node", "--listen", &format!("127.0.0.1:{port}"), "--json", "--node-id", "demo"])
        .arg("--database-url")
        .arg(format!("sqlite://{}/node.db", tmp.display()))
        .args(["--rpc-url", &demo.rpc, "--market-dev-account", "5", "--award-grace-secs", "30"])
        .arg("--deployments")
        .arg(&deployments)
        .args(["--verifier", &v("sorted"), "--verifier", &v("pow"), "--verifier", &v("unittest")])
        .stdout(Stdio::piped())
        .stderr(demo.log("node")?)
        .spawn()?;
    let mut line = String::new();
    BufReader::new(node.stdout.take().ok_or_else(|| eyre!("node stdout"))?).read_line(&mut line)?;
    let _node = Proc(node);
    if !line.contains("listen") {
        return Err(eyre!("the node did not start; see {}", tmp.join("node.log").display()));
    }
    let dashboard = format!("{}/", demo.http);
    eprintln!("  dashboard: {dashboard} (live; `reef demo --serve` keeps it up after the run)");

    eprintln!("▶ funding and starting {} agents (+1 metered, +1 MCP tool server)", AGENTS.len());
    let mut names: Vec<(Address, &'static str)> = vec![(dev_signer(0).address(), "poster")];
    let mut procs = Vec::new();
    let mut keys = Vec::new();
    for spec in AGENTS.iter().map(Some).chain([None]) {
        let key = PrivateKeySigner::random();
        deployer.send_eth(key.address(), parse_ether("2")?).await?;
        deployer.mint_test_tokens(token, key.address(), parse_ether("100")?).await?;
        let hex_key = alloy::primitives::hex::encode_prefixed(key.to_bytes());
        let mut c = demo.cmd();
        match spec {
            Some(s) => {
                c.args(["agent", "run", "--node", &demo.ws, "--key", &hex_key, "--name", s.name])
                    .args([
                        "--skills",
                        s.skills,
                        "--rpc-url",
                        &demo.rpc,
                        "--bid-price",
                        s.price,
                        "--eta",
                        if s.name == "stalled" { "3s" } else { "60s" },
                    ])
                    .arg("--exec")
                    .arg(format!(
                        "python3 {}",
                        root.join("examples/agents").join(s.brain).display()
                    ))
                    .args(s.extra);
                if s.name.starts_with("judge") {
                    c.arg("--no-bid")
                        .arg("--evaluate")
                        .arg(root.join("examples/verifiers/sorted.py"));
                }
                names.push((key.address(), s.name));
            }
            None => {
                c.args([
                    "agent",
                    "serve-metered",
                    "--node",
                    &demo.ws,
                    "--key",
                    &hex_key,
                    "--name",
                    "metered-sorter",
                ])
                .args([
                    "--skills",
                    "sort-metered",
                    "--price",
                    "0.01",
                    "--token",
                    "test",
                    "--rpc-url",
                    &demo.rpc,
                ])
                .arg("--deployments")
                .arg(&deployments)
                .arg("--state-dir")
                .arg(tmp.join("metered"))
                .arg("--exec")
                .arg(format!("python3 {}", root.join("examples/agents/metered_sort.py").display()));
                names.push((key.address(), "metered-sorter"));
            }
        }
        let name = spec.map(|s| s.name).unwrap_or("metered-sorter");
        c.stdout(Stdio::null()).stderr(demo.log(name)?);
        procs.push(Proc(c.spawn()?));
        keys.push((name, hex_key, key.address()));
    }
    // An unmodified MCP tool server from npm (`make deps` installs it) earning as it is.
    {
        let server =
            std::env::var_os("REEF_MCP_EVERYTHING").map(PathBuf::from).unwrap_or_else(|| {
                root.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
            });
        if !server.is_file() {
            return Err(eyre!(
                "{} is missing: `make deps` installs @modelcontextprotocol/server-everything",
                server.display()
            ));
        }
        let key = PrivateKeySigner::random();
        deployer.send_eth(key.address(), parse_ether("2")?).await?;
        let hex_key = alloy::primitives::hex::encode_prefixed(key.to_bytes());
        let mut c = demo.cmd();
        c.args(["agent", "run", "--node", &demo.ws, "--key", &hex_key, "--name", "mcp-everything"])
            .args(["--rpc-url", &demo.rpc, "--bid-price", "1", "--eta", "60s"])
            .arg("--mcp")
            .arg(format!("node {} stdio", server.display()))
            .stdout(Stdio::null())
            .stderr(demo.log("mcp-everything")?);
        procs.push(Proc(c.spawn()?));
        names.push((key.address(), "mcp-everything"));
        keys.push(("mcp-everything", hex_key, key.address()));
    }
    let api = super::nodeapi::NodeApi::new(&demo.http);
    let deadline = Instant::now() + Duration::from_secs(60);
    for (name, _, addr) in &keys {
        while api
            .get(&format!("/v1/agents/{addr}"))
            .await
            .map(|v| v["online"] != true)
            .unwrap_or(true)
        {
            if Instant::now() > deadline {
                return Err(eyre!(
                    "agent {name} did not come online; see {}",
                    tmp.join(format!("{name}.log")).display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("  {name:<15} {addr} online");
    }
    let name_of = |a: &str| -> String {
        names
            .iter()
            .find(|(x, _)| x.to_string().eq_ignore_ascii_case(a))
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| a.to_string())
    };

    let mut rows: Vec<Value> = Vec::new();
    let numbers = json!([42, 7, 19, 3, 88, 23, 61, 5, 14, 70, 36, 9]);
    let sorted = {
        let mut v: Vec<i64> = serde_json::from_value(numbers.clone())?;
        v.sort();
        json!(v)
    };
    let mut record = |label: &str, mode: &str, r: &Value| {
        rows.push(json!({ "label": label, "mode": mode, "result": r }))
    };

    // 1. The cheapest bidder is dishonest: hash verification stops its payment.
    let r = demo.post(
        "Sort 12 numbers (hash-verified)",
        &[
            "--reward",
            "5",
            "--skills",
            "sort",
            "--input",
            &numbers.to_string(),
            "--verify",
            "hash",
            "--expect",
            &sorted.to_string(),
            "--detach",
        ],
    )?;
    wait_verdict(&api, &r).await?;
    record("sort #1", "auction · hash", &r);
    // 2. Same job again: the cheater's failed verdict now weighs on its reputation.
    let r = demo.post(
        "Sort 12 numbers again (hash-verified)",
        &[
            "--reward",
            "5",
            "--skills",
            "sort",
            "--input",
            &numbers.to_string(),
            "--verify",
            "hash",
            "--expect",
            &sorted.to_string(),
        ],
    )?;
    record("sort #2", "auction · hash", &r);
    // 3. Proof of work, checked by a sandboxed verifier.
    let r = demo.post(
        "Find a nonce: sha256(reef + nonce) starts with 0000",
        &[
            "--reward",
            "3",
            "--skills",
            "pow",
            "--input",
            r#"{"prefix":"reef","zeros":4}"#,
            "--verify",
            "command",
            "--verifier",
            "pow",
        ],
    )?;
    record("proof of work", "auction · command", &r);
    // 4. A code fix that must pass the poster's unit test.
    let code = json!({ "code": "def total(xs):\n    s = 0\n    for i in range(len(xs) - 1):\n        s += xs[i]\n    return s\n", "test": "assert total([1, 2, 3]) == 6\nassert total([]) == 0\n" });
    let r = demo.post(
        "Fix total() so the unit test passes",
        &[
            "--reward",
            "8",
            "--skills",
            "code-fix",
            "--input",
            &code.to_string(),
            "--verify",
            "command",
            "--verifier",
            "unittest",
        ],
    )?;
    record("code fix", "auction · unit test", &r);
    // 5. Nested: the splitter posts two sub-bounties and merges their verified results.
    let big: Vec<i64> = (0..20).map(|i| (i * 37 + 11) % 101).collect();
    let r = demo.post(
        "Sort 20 numbers (may be split)",
        &[
            "--reward",
            "10",
            "--skills",
            "sort-large",
            "--input",
            &json!(big).to_string(),
            "--verify",
            "command",
            "--verifier",
            "sorted",
        ],
    )?;
    record("nested sort", "auction · nested", &r);
    // 6. The poster verifies: accept from the CLI once the provider committed its result.
    let r = demo.post(
        "Sort 12 numbers (poster-verified)",
        &[
            "--reward",
            "5",
            "--skills",
            "sort",
            "--input",
            &numbers.to_string(),
            "--verify",
            "poster",
            "--detach",
        ],
    )?;
    let id = r["id"].as_str().unwrap_or_default().to_string();
    let until = Instant::now() + Duration::from_secs(60);
    while demo.chain_cmd(&["bounty", "show", &id, "--dev-account", "0"])?["status"] != "submitted" {
        if Instant::now() > until {
            return Err(eyre!("poster-verified bounty never got a submission"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("  poster accepts the submitted result: reef bounty accept {id}");
    demo.chain_cmd(&["bounty", "accept", &id, "--dev-account", "0"])?;
    record("poster-verified sort", "auction · poster", &r);

    // 6b. Third-party evaluators: 2 of 3 judges must agree; the two who signed are paid.
    let r = demo.post(
        "Sort 12 numbers (2-of-3 evaluator quorum)",
        &[
            "--reward",
            "5",
            "--skills",
            "sort",
            "--input",
            &numbers.to_string(),
            "--verify",
            "quorum",
            "--quorum",
            "2/3",
            "--eval-fee",
            "0.2",
        ],
    )?;
    record("quorum-verified sort", "auction · quorum 2/3", &r);
    // 6c. Take-over: the cheapest bidder promises 3 s and stalls; the runner-up gets the job.
    let r = demo.post(
        "Sort 12 numbers (rush: winner must deliver in its ETA)",
        &[
            "--reward",
            "5",
            "--skills",
            "sort-rush",
            "--input",
            &numbers.to_string(),
            "--verify",
            "hash",
            "--expect",
            &sorted.to_string(),
        ],
    )?;
    record("rush sort (take-over)", "auction · hash · ETA", &r);

    // 6d. An MCP tool server earns: `reef agent run --mcp 'node …/server-everything stdio'`
    //     advertises its tools as skills, wins the `echo` bounty and runs the tool.
    let r = demo.post(
        "Echo a message (any MCP tool server can earn)",
        &[
            "--reward",
            "2",
            "--skills",
            "echo",
            "--input",
            r#"{"message":"hello from Reef"}"#,
            "--verify",
            "hash",
            "--expect",
            r#""Echo: hello from Reef""#,
        ],
    )?;
    record("MCP tool echo", "auction · hash · MCP", &r);

    // 7. Contest: every sorter works in parallel; the first two verified entries split the reward
    //    60/40.
    eprintln!("\n▶ Contest: sort 12 numbers, 2 winners split 9 rUSD 60/40 (command-verified)");
    let mut contest = demo
        .cmd()
        .args([
            "bounty",
            "post",
            "Sort 12 numbers (contest)",
            "--token",
            "test",
            "--node",
            &demo.http,
            "--reward",
            "9",
        ])
        .args([
            "--deadline",
            "2m",
            "--mode",
            "contest",
            "--winners",
            "2",
            "--split",
            "60,40",
            "--skills",
            "sort",
            "--input",
            &numbers.to_string(),
        ])
        .args([
            "--verify",
            "command",
            "--verifier",
            "sorted",
            "--approve",
            "--dev-account",
            "0",
            "--json",
            "--rpc-url",
            &demo.rpc,
        ])
        .arg("--deployments")
        .arg(&deployments)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let list = api.get("/v1/market/bounties").await?;
        let entries = match list[0]["id"].as_str() {
            Some(id) if list[0]["phase"] == "contest" => {
                api.get(&format!("/v1/market/bounties/{id}")).await?["events"]
                    .as_array()
                    .map(|e| e.iter().filter(|x| x["event"] == "entry").count())
                    .unwrap_or(0)
            }
            _ => 0,
        };
        if entries >= 3 {
            break;
        }
        if Instant::now() > until {
            return Err(eyre!("contest entries did not arrive"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "  3 entries committed on-chain; fast-forwarding this private chain past the deadline"
    );
    let _: Value = deployer.provider().raw_request("evm_increaseTime".into(), (150u64,)).await?;
    let _: Value = deployer.provider().raw_request("evm_mine".into(), ()).await?;
    let out = contest.stdout.take().ok_or_else(|| eyre!("contest stdout"))?;
    if !contest.wait()?.success() {
        return Err(eyre!("the contest poster failed"));
    }
    let r: Value = serde_json::from_reader(out)?;
    let contest_winners: Vec<String> = r["verdict"]["winners"]
        .as_array()
        .map(|w| w.iter().filter_map(|a| a.as_str()).map(&name_of).collect())
        .unwrap_or_default();
    record("contest (2 winners)", "contest · command", &r);

    // 8. Metered: 20 calls paid with cumulative vouchers, redeemed in one transaction.
    eprintln!("\n▶ metered: 20 calls at 0.01 rUSD each, paid with payment-channel vouchers");
    let metered =
        keys.iter().find(|k| k.0 == "metered-sorter").ok_or_else(|| eyre!("metered agent"))?;
    let paid = demo.chain_cmd(&[
        "pay",
        "call",
        "--node",
        &demo.ws,
        "--agent",
        &metered.2.to_string(),
        "--price",
        "0.01",
        "--token",
        "test",
        "--deposit",
        "1",
        "--input",
        &numbers.to_string(),
        "--count",
        "20",
        "--dev-account",
        "0",
    ])?;
    let redeem = demo.chain_cmd(&[
        "agent",
        "redeem",
        "--key",
        &metered.1,
        "--state-dir",
        &tmp.join("metered").display().to_string(),
    ])?;
    eprintln!("  {} calls, redeemed with gas {}", paid["calls"], redeem["gas_used"]);

    // Table: on-chain truth for each bounty.
    let client =
        ReefClient::connect(&demo.rpc, dev_signer(0), dep.clone(), ClientOptions::default())
            .await?;
    let mut table = Vec::new();
    for row in &rows {
        let r = &row["result"];
        let Some(id) = r["id"].as_str() else { continue };
        let idn = super::chain::parse_bounty_id(id)?;
        let state = client.bounty(idn).await?;
        let gas = bounty_gas(&client, &state).await;
        let node_view = api.get(&format!("/v1/market/bounties/{id}")).await.unwrap_or_default();
        let verdict = match node_view["verdict"]["accept"].as_bool() {
            Some(true) => "accept".to_string(),
            Some(false) => "REJECT".to_string(),
            None if state.status == escrow_client::Status::Completed => {
                "poster accepted".to_string()
            }
            None => "-".to_string(),
        };
        let winner = if state.record.provider.is_zero() {
            if contest_winners.is_empty() || row["mode"] != "contest · command" {
                "-".into()
            } else {
                contest_winners.join("+")
            }
        } else {
            name_of(&state.record.provider.to_string())
        };
        let payout = if state.status == escrow_client::Status::Completed
            && state.record.provider.is_zero()
        {
            format_ether(net_of(state.record.amount, state.record.feeBps))
        } else if state.status == escrow_client::Status::Completed {
            format_ether(net_of(state.record.price, state.record.feeBps))
        } else {
            "0".into()
        };
        table.push(json!({
            "bounty": row["label"], "mode": row["mode"], "id": id, "winner": winner,
            "price": format_ether(U256::from(if state.record.provider.is_zero() { state.record.amount } else { state.record.price })), "verdict": verdict,
            "status": state.status.name(), "gas": gas, "payout": payout,
        }));
        // Sub-bounties the provider funded from this reward (the nested run).
        if !state.record.provider.is_zero() {
            table.extend(sub_bounty_rows(&client, idn, state.record.provider, &name_of).await?);
        }
    }
    table.push(json!({
        "bounty": "metered sort ×20", "mode": "vouchers", "id": "-", "winner": "metered-sorter",
        "price": "0.01/call", "verdict": "per-call voucher check", "status": "redeemed",
        "gas": redeem["gas_used"], "payout": format!("{}", paid["total_paid"].as_str().unwrap_or("0.2")),
    }));
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "bounties": table, "seconds": t0.elapsed().as_secs(), "dashboard": dashboard })
            )?
        );
    } else {
        // The winner and verdict columns fit their longest entry (a contest lists every paid
        // winner; the metered row describes its per-call check).
        let width = |key: &str, min: usize| {
            table
                .iter()
                .map(|t| t[key].as_str().map_or(0, |w| w.chars().count()))
                .max()
                .unwrap_or(0)
                .max(min)
        };
        let (ww, vw) = (width("winner", 15), width("verdict", 16));
        println!(
            "\n{:<22} {:<20} {:<ww$} {:>9} {:<vw$} {:<10} {:>8} {:>9}",
            "bounty", "mode", "winner", "price", "verdict", "status", "gas", "payout"
        );
        for t in &table {
            println!(
                "{:<22} {:<20} {:<ww$} {:>9} {:<vw$} {:<10} {:>8} {:>9}",
                t["bounty"].as_str().unwrap_or(""),
                t["mode"].as_str().unwrap_or(""),
                t["winner"].as_str().unwrap_or(""),
                trim(t["price"].as_str().unwrap_or("")),
                t["verdict"].as_str().unwrap_or(""),
                t["status"].as_str().unwrap_or(""),
                t["gas"],
                trim(t["payout"].as_str().unwrap_or("")),
            );
        }
        println!(
            "\nrewards in rUSD; payout = price minus the 1% platform fee; gas = all transactions of the bounty"
        );
        println!(
            "the rejected bounty refunds the poster at its deadline (anyone may call `reef bounty refund`)"
        );
        println!(
            "the nested sort's provider funded its sub-bounties from its pending reward (`--from-reward`): \
             they paid in pledge credits, redeemed once the nested sort settled; its own payout is the rest"
        );
        println!("logs of the node and every agent: {}", tmp.display());
        println!("finished in {}s", t0.elapsed().as_secs());
        println!("dashboard: {dashboard}");
    }
    if serve {
        // The poster's login link, so the private parts (rankings, inputs, transcripts) show.
        let mut api = super::nodeapi::NodeApi::new(&demo.http);
        let login = match api.login(&dev_signer(0)).await {
            Ok(()) => api.token().map(|t| format!("{}#login={t}", dashboard)),
            Err(e) => {
                eprintln!("  (no poster login link: {e})");
                None
            }
        };
        eprintln!("\n▶ the demo market keeps running until Ctrl-C");
        eprintln!("  dashboard:           {dashboard}");
        if let Some(l) = login {
            eprintln!("  logged in as poster: {l}");
        }
        tokio::signal::ctrl_c().await?;
        eprintln!("stopping the demo");
    }
    drop(procs);
    let _ = &anvil;
    Ok(())
}

/// Gas of all the transactions in a bounty's history.
async fn bounty_gas(client: &ReefClient, state: &escrow_client::escrow::BountyState) -> u64 {
    let mut gas = 0u64;
    let mut seen = std::collections::HashSet::new();
    for h in state.history.iter().filter_map(|h| h.tx) {
        if seen.insert(h)
            && let Ok(Some(rc)) = client.provider().get_transaction_receipt(h).await
        {
            gas += rc.gas_used;
        }
    }
    gas
}

/// Rows for the sub-bounties `provider` funded from its reward on `parent`: each sub-provider is
/// paid in pledge credits, which its agent redeems once the parent settled (waited for here, up
/// to 20 s, so the table shows what was redeemed).
async fn sub_bounty_rows(
    client: &ReefClient,
    parent: U256,
    provider: alloy_primitives::Address,
    name_of: &dyn Fn(&str) -> String,
) -> eyre::Result<Vec<serde_json::Value>> {
    let pt = client.pledge_token_of(parent, provider);
    let Some(pledge) = client.pledge(pt).await? else { return Ok(Vec::new()) };
    let mut rows = Vec::new();
    for sid in client.bounty_ids(Some(provider)).await? {
        let sub = client.bounty(sid).await?;
        if sub.record.token != pt {
            continue;
        }
        let r = &sub.record;
        let net = net_of(r.price, r.feeBps);
        let mut redeemed = false;
        if sub.status == escrow_client::Status::Completed {
            let t0 = std::time::Instant::now();
            while t0.elapsed() < std::time::Duration::from_secs(20) {
                if client.ledger_credit(pt, r.provider).await?.is_zero() {
                    redeemed = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        let payout = match (sub.status, redeemed) {
            (escrow_client::Status::Completed, true) => {
                format!("{} redeemed", trim(&format_ether(pledge.value_of(net))))
            }
            (escrow_client::Status::Completed, false) => {
                format!("{} credit", trim(&format_ether(net)))
            }
            _ => "0".into(),
        };
        rows.push(json!({
            "bounty": "  sub-sort (pledged)", "mode": "from parent's reward", "id": format!("{sid:#066x}"),
            "winner": name_of(&r.provider.to_string()), "price": format_ether(U256::from(r.price)),
            "verdict": if sub.status == escrow_client::Status::Completed { "accept" } else { "-" },
            "status": sub.status.name(), "gas": bounty_gas(client, &sub).await, "payout": payout,
        }));
    }
    Ok(rows)
}

fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Follows a detached bounty on the node until its verdict is in.
async fn wait_verdict(api: &super::nodeapi::NodeApi, posted: &Value) -> eyre::Result<()> {
    let id = posted["id"].as_str().ok_or_else(|| eyre!("no id"))?;
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let v = api.get(&format!("/v1/market/bounties/{id}")).await?;
        if !v["verdict"].is_null() {
            let ok = v["verdict"]["accept"] == true;
            eprintln!(
                "  verdict: {} ({})",
                if ok { "accept" } else { "reject" },
                v["verdict"]["reason"].as_str().unwrap_or("")
            );
            return Ok(());
        }
        if Instant::now() > until {
            return Err(eyre!("no verdict for {id}")).wrap_err("the demo's agents did not deliver");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
