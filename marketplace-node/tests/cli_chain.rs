//! Runs the real `reef` binary against a real anvil: devnet up/status/down and the bounty verbs,
//! including the failure paths a user hits (dead RPC, no funds, refund too early).

use std::{path::Path, process::Command};

use serde_json::Value;

fn reef(args: &[&str], dir: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reef"))
        .args(args)
        .current_dir(dir)
        .env_remove("REEF_PRIVATE_KEY")
        .env_remove("REEF_RPC_URL")
        .env_remove("REEF_DEPLOYMENTS")
        .output()
        .expect("reef runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `reef` on a pseudo-terminal (`script`), typing `answer`; returns success and the
/// terminal's output (stdout and stderr together).
fn reef_at_terminal(args: &[&str], dir: &Path, answer: &str) -> (bool, String) {
    use std::io::Write;
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let line = std::iter::once(env!("CARGO_BIN_EXE_reef"))
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir)
        .env_remove("REEF_PRIVATE_KEY")
        .env_remove("REEF_RPC_URL")
        .env_remove("REEF_DEPLOYMENTS")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    // Keep stdin open until reef ends: its end would hang up the terminal.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

struct Devnet {
    dir: std::path::PathBuf,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = reef(&["devnet", "down"], &self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn devnet_and_bounty_commands_end_to_end() {
    let dir =
        std::env::temp_dir().join(format!("reef-cli-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let dn = Devnet { dir: dir.clone() };
    let port = escrow_client::devnet::free_port().unwrap().to_string();
    let rpc = format!("http://127.0.0.1:{port}");

    let (ok, out, err) = reef(&["devnet", "up", "--port", &port, "--json"], &dir);
    assert!(ok, "devnet up failed: {err}");
    let status = json(&out);
    assert_eq!(status["running"], true);
    assert!(status["deployment"]["bountyEscrow"].is_string());
    assert!(dir.join("deployments/31337.json").exists());

    // Idempotent: a second `up` reuses the chain and the deployment.
    let (ok, out2, err) = reef(&["devnet", "up", "--port", &port, "--json"], &dir);
    assert!(ok, "{err}");
    assert_eq!(json(&out2)["deployment"], status["deployment"]);
    assert!(err.contains("already running"), "{err}");

    // A 5 rUSD bounty escrowed on-chain only (no node).
    let post_plain = [
        "bounty",
        "post",
        "Sort these numbers",
        "--reward",
        "5",
        "--token",
        "test",
        "--deadline",
        "1h",
        "--rpc-url",
        &rpc,
        "--json",
    ];
    let (ok, out, err) = reef(&[&post_plain[..], &["--approve"]].concat(), &dir);
    assert!(ok, "post failed: {err}");
    let posted = json(&out);
    let id = posted["id"].as_str().unwrap().to_string();
    assert_eq!(posted["amount"], "5000000000000000000");
    assert!(
        posted["transactions"].as_array().unwrap().iter().any(|t| t["action"] == "postAndFund")
    );

    let (ok, out, err) = reef(&["bounty", "show", &id, "--rpc-url", &rpc, "--json"], &dir);
    assert!(ok, "{err}");
    let shown = json(&out);
    assert_eq!(shown["status"], "funded");
    assert_eq!(shown["history"][0]["event"], "BountyPosted");
    // Ids are 32-byte hex everywhere (leading zeros kept), and either form is accepted.
    assert_eq!(id.len(), 66, "{id}");
    assert_eq!(shown["id"], id.as_str());
    let short = format!("0x{}", id[2..].trim_start_matches('0'));
    let (ok, out, err) = reef(&["bounty", "show", &short, "--rpc-url", &rpc, "--json"], &dir);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["id"], id.as_str());

    // A dev-account index past the known dev keys is refused, not wrapped onto another account.
    let (ok, _, err) =
        reef(&["bounty", "list", "--mine", "--dev-account", "9", "--rpc-url", &rpc], &dir);
    assert!(!ok);
    assert!(err.contains("not one of the 6 funded dev accounts"), "{err}");

    let (ok, out, err) = reef(&["bounty", "list", "--mine", "--rpc-url", &rpc, "--json"], &dir);
    assert!(ok, "{err}");
    assert_eq!(json(&out).as_array().unwrap().len(), 1);

    // Refund before the deadline: a clear error, nothing sent.
    let (ok, _, err) = reef(&["bounty", "refund", &id, "--rpc-url", &rpc], &dir);
    assert!(!ok);
    assert!(err.contains("still running"), "{err}");

    // The allowance is spent: without --approve a script is told to approve, and nothing is
    // sent; at a terminal the poster is asked, and "n" sends nothing either.
    let (ok, _, err) = reef(&post_plain, &dir);
    assert!(!ok);
    assert!(err.contains("Approve first") && err.contains("--approve"), "{err}");
    let (ok, out) = reef_at_terminal(&post_plain, &dir, "n\n");
    assert!(!ok, "{out}");
    assert!(out.contains("Approve it for 5") && out.contains("not approved"), "{out}");
    let (ok, out, err) = reef(&["bounty", "list", "--mine", "--rpc-url", &rpc, "--json"], &dir);
    assert!(ok, "{err}");
    assert_eq!(json(&out).as_array().unwrap().len(), 1, "a refused approval posted nothing");
    // "y": the approval and the bounty go out.
    let (ok, out) = reef_at_terminal(&post_plain, &dir, "y\n");
    assert!(ok, "{out}");
    assert!(out.contains("\"approve\"") && out.contains("\"postAndFund\""), "{out}");

    // A one-unit post in `token`, with `extra` arguments.
    let post_one = |token: &str, extra: &[&str]| {
        let base = ["bounty", "post", "x", "--reward", "1", "--token", token, "--rpc-url", &rpc];
        reef(&[&base[..], extra].concat(), &dir)
    };

    // A key with no funds: told what is missing before any transaction.
    let broke = "0x1111111111111111111111111111111111111111111111111111111111111111";
    let (ok, _, err) = post_one("test", &["--approve", "--key", broke]);
    assert!(!ok);
    assert!(err.contains("holds 0"), "{err}");

    // An address with no contract is no token: said before anything is sent.
    let (ok, _, err) = post_one("0x000000000000000000000000000000000000dEaD", &[]);
    assert!(!ok);
    assert!(err.contains("has no code") && err.contains("--from-reward"), "{err}");

    // Garbage input is rejected with a message, not a panic.
    let (ok, _, err) = reef(&["bounty", "post", "x", "--reward", "lots", "--rpc-url", &rpc], &dir);
    assert!(!ok);
    assert!(err.contains("not a decimal number"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let (ok, out, err) = reef(&["devnet", "down", "--json"], &dir);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["stopped"], true);
    let (ok, out, _) = reef(&["devnet", "status", "--json"], &dir);
    assert!(ok);
    assert_eq!(json(&out)["running"], false);
    drop(dn);
}

#[test]
fn dead_rpc_says_what_to_do() {
    let dir = std::env::temp_dir();
    let port = escrow_client::devnet::free_port().unwrap();
    let rpc = format!("http://127.0.0.1:{port}");
    let (ok, _, err) = reef(&["bounty", "list", "--rpc-url", &rpc], &dir);
    assert!(!ok);
    assert!(err.contains("reef devnet"), "{err}");
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = std::env::temp_dir();
    for cmd in [
        vec!["devnet", "--help"],
        vec!["devnet", "up", "--help"],
        vec!["devnet", "status", "--help"],
        vec!["devnet", "down", "--help"],
        vec!["bounty", "--help"],
        vec!["bounty", "post", "--help"],
        vec!["bounty", "show", "--help"],
        vec!["bounty", "list", "--help"],
        vec!["bounty", "refund", "--help"],
        vec!["demo", "--help"],
    ] {
        let (ok, out, err) = reef(&cmd, &dir);
        assert!(ok, "{cmd:?}: {err}");
        assert!(out.contains("Example"), "{cmd:?} help has no example:\n{out}");
    }
}

fn rand_suffix() -> u32 {
    rand::random()
}
