//! Keystores both ways with the repo's own `cast` (Foundry 1.7.1): what `cast wallet import`
//! writes, `reef` signs with; what `reef wallet new|import` writes, `cast` reads. Then a real
//! on-chain post signed from a keystore, and a raw `--key` refused on a chain that is not a
//! local devnet.

use std::{path::Path, process::Command};

use escrow_client::devnet::{AnvilOptions, AnvilProcess, DEV_KEYS, dev_signer};
use serde_json::Value;

mod common;

/// `cast` from the repo's pinned npm package.
fn cast(home: &Path) -> Command {
    let bin = common::repo().join("node_modules/@foundry-rs/cast-linux-amd64/bin/cast");
    let mut c = Command::new(bin);
    c.env("HOME", home);
    c
}

/// `reef` with keystores under `home` (Foundry's default folder there) and no password in the
/// environment unless the test sets one.
fn reef(home: &Path) -> Command {
    let mut c = common::reef();
    c.env("HOME", home)
        .env_remove("REEF_KEYSTORE_DIR")
        .env_remove("FOUNDRY_KEYSTORES_DIR")
        .env_remove("REEF_KEYSTORE_PASSWORD")
        .env_remove("REEF_PRIVATE_KEY");
    c
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn keystores_round_trip_between_cast_and_reef() {
    let home = common::temp_dir("wallet-home");
    let pw = home.join("pw.txt");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let dev1 = dev_signer(1).address().to_string();

    // cast → reef: an account imported with cast is listed and decrypted by reef.
    let (ok, _, err) = run(cast(&home).args([
        "wallet",
        "import",
        "alice",
        "--private-key",
        DEV_KEYS[1],
        "--unsafe-password",
        "correct horse",
    ]));
    assert!(ok, "cast wallet import: {err}");
    let (ok, out, err) = run(reef(&home).args(["wallet", "list", "--json"]));
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["accounts"][0]["name"], "alice", "{listed}");
    let (ok, out, err) = run(reef(&home)
        .args(["wallet", "address", "--account", "alice", "--password-file"])
        .arg(&pw));
    assert!(ok, "{err}");
    assert_eq!(out, dev1);

    // A wrong password is named as such, and nothing secret is echoed.
    std::fs::write(home.join("bad.txt"), "wrong\n").unwrap();
    let (ok, _, err) = run(reef(&home)
        .args(["wallet", "address", "--account", "alice", "--password-file"])
        .arg(home.join("bad.txt")));
    assert!(!ok);
    assert!(err.contains("wrong password"), "{err}");
    // No password and no terminal: told how to give one.
    let (ok, _, err) = run(reef(&home).args(["wallet", "address", "--account", "alice"]));
    assert!(!ok);
    assert!(err.contains("--password-file") && err.contains("REEF_KEYSTORE_PASSWORD"), "{err}");
    // An unknown name says where it looked.
    let (ok, _, err) = run(reef(&home)
        .args(["wallet", "address", "--account", "nobody", "--password-file"])
        .arg(&pw));
    assert!(!ok);
    assert!(err.contains("no keystore named \"nobody\""), "{err}");

    // reef → cast: a new keystore, and an imported one (key on stdin), both read by cast.
    let (ok, out, err) =
        run(reef(&home).args(["wallet", "new", "bob", "--json", "--password-file"]).arg(&pw));
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let (ok, cast_addr, err) = run(cast(&home).args([
        "wallet",
        "address",
        "--account",
        "bob",
        "--password",
        "correct horse",
    ]));
    assert!(ok, "cast wallet address: {err}");
    assert_eq!(cast_addr.to_lowercase(), created["address"].as_str().unwrap().to_lowercase());

    let mut import = reef(&home)
        .args(["wallet", "import", "carol", "--password-file"])
        .arg(&pw)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(import.stdin.take().unwrap(), "{}", DEV_KEYS[2]).unwrap();
    let out = import.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(&DEV_KEYS[2][2..]), "the key is never echoed");
    let keystore = home.join(".foundry/keystores/carol");
    let (ok, cast_addr, err) = run(cast(&home)
        .args(["wallet", "address", "--keystore"])
        .arg(&keystore)
        .args(["--password-file"])
        .arg(&pw));
    assert!(ok, "cast wallet address: {err}");
    assert_eq!(cast_addr, dev_signer(2).address().to_string());
    // A name is never overwritten.
    let (ok, _, err) =
        run(reef(&home).args(["wallet", "new", "carol", "--password-file"]).arg(&pw));
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
    std::fs::remove_dir_all(&home).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keystore_signs_on_chain_and_raw_keys_are_refused_off_devnets() {
    let home = common::temp_dir("wallet-chain");
    let pw = home.join("pw.txt");
    std::fs::write(&pw, "pw\n").unwrap();
    let anvil = AnvilProcess::spawn(AnvilOptions::default()).await.unwrap();
    common::deploy_devnet(&anvil.rpc_url, &home).await;
    let (ok, _, err) = run(cast(&home).args([
        "wallet",
        "import",
        "poster",
        "--private-key",
        DEV_KEYS[3],
        "--unsafe-password",
        "pw",
    ]));
    assert!(ok, "{err}");

    // A bounty posted and funded from the keystore account (password from the environment).
    let (ok, out, err) = run(reef(&home)
        .args(["bounty", "post", "sort", "--reward", "1", "--token", "test", "--approve"])
        .args(["--deadline", "1h", "--json", "--account", "poster"])
        .args(["--rpc-url", &anvil.rpc_url])
        .arg("--deployments")
        .arg(home.join("deployments"))
        .env("REEF_KEYSTORE_PASSWORD", "pw"));
    assert!(ok, "{err}");
    let posted: Value = serde_json::from_str(&out).unwrap();
    let id = posted["id"].as_str().unwrap().to_string();
    let (ok, out, err) = run(reef(&home)
        .args(["bounty", "show", &id, "--json", "--rpc-url", &anvil.rpc_url])
        .arg("--deployments")
        .arg(home.join("deployments")));
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        shown["poster"].as_str().unwrap().to_lowercase(),
        dev_signer(3).address().to_string().to_lowercase(),
        "{shown}"
    );

    // Another chain id: a raw --key is refused before anything is sent, and allowed only with
    // --allow-raw-key; the node's evaluator key likewise.
    let other =
        AnvilProcess::spawn(AnvilOptions { chain_id: 84532, ..Default::default() }).await.unwrap();
    let (ok, _, err) = run(reef(&home)
        .args(["bounty", "post", "x", "--reward", "1", "--key", DEV_KEYS[3]])
        .args(["--rpc-url", &other.rpc_url]));
    assert!(!ok);
    assert!(err.contains("refused on chain 84532"), "{err}");
    assert!(!err.contains(&DEV_KEYS[3][2..]), "the key is never echoed: {err}");
    let (_, _, err) = run(reef(&home)
        .args(["bounty", "post", "x", "--reward", "1", "--key", DEV_KEYS[3], "--allow-raw-key"])
        .args(["--rpc-url", &other.rpc_url]));
    assert!(!err.contains("refused on chain"), "--allow-raw-key lets it through: {err}");
    let (ok, _, err) = run(reef(&home)
        .args(["node", "--listen", "127.0.0.1:0", "--market-key", DEV_KEYS[5]])
        .args(["--rpc-url", &other.rpc_url]));
    assert!(!ok);
    assert!(err.contains("--market-key") && err.contains("refused on chain 84532"), "{err}");
    std::fs::remove_dir_all(&home).unwrap();
}
