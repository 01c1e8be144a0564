//! The RPC goes down for 30 s in the middle of a bounty (while the provider works and gets its
//! verdict): the node, the agent and the poster retry, and the bounty still completes with
//! exactly one payout. The outage is a TCP proxy in front of anvil that resets every
//! connection while "down".

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use escrow_client::devnet::{AnvilOptions, AnvilProcess, DEV_KEYS, dev_signer};
use serde_json::Value;

mod common;

use common::{Kill, reef, repo, wait_with_deadline};

/// A TCP proxy to `upstream` that resets connections while `down` is set.
async fn proxy(upstream: String, down: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { continue };
            if down.load(Ordering::SeqCst) {
                drop(inbound); // connection refused/reset from the client's point of view
                continue;
            }
            let up = upstream.clone();
            let down = down.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&up).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = async { while !down.load(Ordering::SeqCst) { tokio::time::sleep(Duration::from_millis(20)).await } } => {}
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_down_for_30s_mid_bounty_then_completes() {
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    let down = Arc::new(AtomicBool::new(false));
    let pport = proxy(format!("127.0.0.1:{}", anvil.port), down.clone()).await;
    let rpc = format!("http://127.0.0.1:{pport}");
    let dir = std::env::temp_dir().join(format!("reef-outage-{}", rand::random::<u32>()));
    common::deploy_devnet(&anvil.rpc_url, &dir).await;
    let mut node = reef()
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--node-id",
            "outage-test",
            "--no-indexer",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}/node.db", dir.display()))
        .args(["--rpc-url", &rpc, "--market-dev-account", "5", "--award-grace-secs", "30"])
        .arg("--deployments")
        .arg(dir.join("deployments"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(node.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _node = Kill(node);
    let listen =
        serde_json::from_str::<Value>(&line).unwrap()["listen"].as_str().unwrap().to_string();
    let http = format!("http://{listen}");
    // The brain takes 3 s, so the result and the verdict land inside the outage.
    let brain = format!("sleep 3; python3 {}", repo().join("examples/agents/sort.py").display());
    let _agent = Kill(
        reef()
            .args(["agent", "run", "--node", &format!("ws://{listen}/v1/ws"), "--key", DEV_KEYS[1]])
            .args([
                "--skills",
                "sort",
                "--rpc-url",
                &rpc,
                "--bid-price",
                "4",
                "--eta",
                "5m",
                "--exec",
                &brain,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    common::wait_agent_online(&http, dev_signer(1).address(), "the agent").await;
    let poster =
        common::spawn_captured(common::post_sort(&http, &rpc, &dir.join("deployments")).args([
            "--verify",
            "hash",
            "--expect",
            "[1,3,5,9]",
        ]));
    // Take the RPC down as soon as the work starts, for 30 s.
    let t0 = Instant::now();
    loop {
        let list: Value = common::get_json(format!("{http}/v1/market/bounties")).await;
        if list[0]["phase"] == "working" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never started working: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    down.store(false, Ordering::SeqCst);
    let out = wait_with_deadline(poster, 240);
    assert!(out.status.success(), "poster failed: {}", String::from_utf8_lossy(&out.stderr));
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["phase"], "settled", "{res}");
    assert_eq!(res["status"], "completed", "{res}");
    let earned = reef()
        .args(["agent", "earnings", "--dev-account", "1", "--json", "--rpc-url", &anvil.rpc_url])
        .arg("--deployments")
        .arg(dir.join("deployments"))
        .output()
        .unwrap();
    let earned: Value = serde_json::from_slice(&earned.stdout).unwrap();
    assert_eq!(earned["payouts"].as_array().unwrap().len(), 1, "{earned}");
}
