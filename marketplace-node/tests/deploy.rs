//! `reef deploy` on a chain that is not the devnet (another chain id, blocks every second),
//! signed from a keystore: it deploys, writes `deployments/<chainId>.json`, and a second run sends
//! nothing. `reef devnet up --rpc-url` puts the devnet's contracts on an anvil it did not start.

use std::process::Command;

use escrow_client::{
    ClientOptions, Deployment, ReefClient,
    deploy::empty_deployment,
    devnet::{AnvilOptions, AnvilProcess, DEV_KEYS, dev_signer},
};
use serde_json::Value;

mod common;

async fn nonce(c: &ReefClient) -> u64 {
    use alloy::providers::Provider;
    c.provider().get_transaction_count(dev_signer(4).address()).await.unwrap()
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_to_another_chain_from_a_keystore_is_idempotent() {
    let dir = common::temp_dir("deploy");
    let anvil = AnvilProcess::spawn(AnvilOptions {
        chain_id: 84532,
        block_time: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    let keystores = dir.join("keystores");
    let pw = dir.join("pw.txt");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let mut import = common::reef()
        .args(["wallet", "import", "deployer", "--password-file"])
        .arg(&pw)
        .arg("--dir")
        .arg(&keystores)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(import.stdin.take().unwrap(), "{}", DEV_KEYS[4]).unwrap();
    assert!(import.wait().unwrap().success());

    let deploy = || {
        let mut c = common::reef();
        c.args(["deploy", "--rpc-url", &anvil.rpc_url, "--account", "deployer", "--json"])
            .args(["--test-token", "--fee-bps", "150"])
            .arg("--password-file")
            .arg(&pw)
            .arg("--deployments")
            .arg(dir.join("deployments"))
            .env("REEF_KEYSTORE_DIR", &keystores);
        c
    };
    let (ok, out, err) = run(&mut deploy());
    assert!(ok, "{err}");
    let first: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(first["fresh"], true, "{first}");
    assert_eq!(first["chain_id"], 84532);
    let dep = Deployment::load(&dir.join("deployments/84532.json")).unwrap();
    let reader = ReefClient::connect(
        &anvil.rpc_url,
        dev_signer(0),
        empty_deployment(84532),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    for (name, addr) in dep.contracts() {
        assert!(reader.has_code(addr).await.unwrap(), "{name} at {addr} has no code");
    }
    assert!(dep.test_token.is_some(), "--test-token deploys the token");

    // Again: nothing sent, the same addresses.
    let nonce_before = nonce(&reader).await;
    let (ok, out, err) = run(&mut deploy());
    assert!(ok, "{err}");
    let second: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(second["fresh"], false, "{second}");
    assert_eq!(second["deployment"], first["deployment"]);
    assert_eq!(nonce(&reader).await, nonce_before);

    // A raw key is refused here (chain 84532 is not a devnet).
    let (ok, _, err) = run(common::reef()
        .args(["deploy", "--rpc-url", &anvil.rpc_url, "--key", DEV_KEYS[4]])
        .arg("--deployments")
        .arg(dir.join("other")));
    assert!(!ok);
    assert!(err.contains("refused on chain 84532"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn devnet_up_attaches_to_an_anvil_it_did_not_start() {
    let dir = common::temp_dir("devnet-attach");
    let anvil = AnvilProcess::spawn(AnvilOptions { block_time: Some(1), ..Default::default() })
        .await
        .unwrap();
    let up = || {
        let mut c = common::reef();
        c.args(["devnet", "up", "--rpc-url", &anvil.rpc_url, "--json"])
            .arg("--deployments")
            .arg(dir.join("deployments"))
            .arg("--state-dir")
            .arg(dir.join("state"));
        c
    };
    let (ok, out, err) = run(&mut up());
    assert!(ok, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert!(status["deployment"]["testToken"].is_string(), "{status}");
    let (ok, out2, err) = run(&mut up());
    assert!(ok, "{err}");
    let again: Value = serde_json::from_str(&out2).unwrap();
    assert_eq!(again["deployment"], status["deployment"], "the second run reuses the contracts");
    // `down` does not stop what it did not start.
    let (ok, _, err) = run(common::reef()
        .args(["devnet", "down", "--json", "--state-dir"])
        .arg(dir.join("state"))
        .arg("--deployments")
        .arg(dir.join("deployments")));
    assert!(ok, "{err}");
    assert!(escrow_client::devnet::rpc_answers(&anvil.rpc_url).await, "anvil still runs");
    std::fs::remove_dir_all(&dir).unwrap();
}
