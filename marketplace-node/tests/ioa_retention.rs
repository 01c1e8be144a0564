//! The privacy lifecycle of group messages against a real `reef node`: a group's retention
//! deletes its expired messages (the test reads the database files themselves to see that a
//! marker is gone from them, not just hidden), a replay never returns a message older than
//! the horizon, a member erases its own messages, `reef group purge` deletes and vacuums, and
//! the same on Postgres (rows gone; the table's file after `purge`'s VACUUM FULL).

#[path = "ioa_support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use alloy_signer_local::PrivateKeySigner;
use reef_wire::ServerFrame;
use serde_json::{Value, json};
use support::*;

fn db_path(url: &str) -> PathBuf {
    PathBuf::from(url.trim_start_matches("sqlite://"))
}

/// Whether `marker` occurs in the database file or its write-ahead log.
fn in_files(db: &Path, marker: &str) -> bool {
    let mut found = false;
    for suffix in ["", "-wal", "-journal"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&p) {
            found |= bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
        }
    }
    found
}

fn create_group(node: &NodeProc, token: &str, members: &[&PrivateKeySigner]) -> String {
    let members: Vec<_> = members.iter().map(|k| k.address()).collect();
    let (st, g) = http(
        &node.addr,
        "POST",
        "/v1/groups",
        Some(token),
        Some(&json!({"name":"private","members":members})),
    );
    assert_eq!(st, 200, "{g}");
    g["group_id"].as_str().unwrap().to_owned()
}

fn post(node: &NodeProc, token: &str, group: &str, text: &str) -> u64 {
    let (st, v) = http(
        &node.addr,
        "POST",
        &format!("/v1/groups/{group}/messages"),
        Some(token),
        Some(&json!({"msg_id":rand_hex(8),"state":"discussion","body":{"text":text}})),
    );
    assert_eq!(st, 200, "{v}");
    v["seq"].as_u64().unwrap()
}

fn history(node: &NodeProc, token: &str, group: &str) -> Vec<Value> {
    let (st, v) =
        http(&node.addr, "GET", &format!("/v1/groups/{group}/messages"), Some(token), None);
    assert_eq!(st, 200, "{v}");
    v["messages"].as_array().unwrap().clone()
}

fn set_retention(node: &NodeProc, token: &str, group: &str, secs: Option<u64>) -> (u16, Value) {
    http(
        &node.addr,
        "PUT",
        &format!("/v1/groups/{group}/retention"),
        Some(token),
        Some(&json!({"retention_secs": secs})),
    )
}

#[tokio::test]
async fn expired_messages_are_deleted_from_the_sqlite_files() {
    let url = sqlite_url();
    let node = spawn_node(&url, &["--retention-sweep-secs", "1"]);
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let (ta, tb) = (rest_login(&node.addr, &alice), rest_login(&node.addr, &bob));
    let group = create_group(&node, &ta, &[&bob]);

    // Only the creator sets the retention, and it must be at least a second.
    assert_eq!(set_retention(&node, &tb, &group, Some(1)).0, 403);
    assert_eq!(set_retention(&node, &ta, &group, Some(0)).0, 400);
    let (st, v) = set_retention(&node, &ta, &group, Some(2));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({"group_id": group, "retention_secs": 2}));

    let marker = format!("SECRET-{}", rand_hex(12));
    post(&node, &ta, &group, &marker);
    // The control: the bytes are in the files while the message lives.
    assert!(in_files(&db_path(&url), &marker), "the marker should be stored first");
    assert_eq!(history(&node, &tb, &group).len(), 1);

    poll(|| async { history(&node, &tb, &group).is_empty().then_some(()) }).await;
    poll(|| async { (!in_files(&db_path(&url), &marker)).then_some(()) }).await;

    // New messages are kept until their own time comes; the seq goes on from where it was.
    let seq = post(&node, &tb, &group, "still here");
    assert_eq!(seq, 2);
    assert_eq!(history(&node, &ta, &group).len(), 1);
}

#[tokio::test]
async fn a_replay_never_returns_a_message_older_than_the_horizon() {
    let url = sqlite_url();
    // The sweep is far away: only the replay's own horizon hides the message.
    let node = spawn_node(&url, &["--retention-sweep-secs", "3600"]);
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let ta = rest_login(&node.addr, &alice);
    let group = create_group(&node, &ta, &[&bob]);
    let marker = format!("OLD-{}", rand_hex(12));
    post(&node, &ta, &group, &marker);
    assert_eq!(set_retention(&node, &ta, &group, Some(1)).0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let fresh = post(&node, &ta, &group, "fresh");

    let mut ws = raw_login(&node, &bob).await;
    send_json(&mut ws, json!({"type":"join","req_id":"j","group_id":group,"since_seq":0})).await;
    let ok = wait_for(&mut ws, |f| matches!(f, ServerFrame::Ok { .. })).await;
    let ServerFrame::Ok { result, .. } = ok else { unreachable!() };
    assert_eq!(result["last_seq"], 2);
    let m = wait_for(&mut ws, |f| matches!(f, ServerFrame::Message(_))).await;
    let ServerFrame::Message(env) = m else { unreachable!() };
    assert_eq!(env.seq, fresh, "the expired message was replayed: {env:?}");
    assert_eq!(history(&node, &ta, &group).len(), 1);
    // Still on disk (not swept yet): `reef group purge` deletes it and vacuums.
    assert!(in_files(&db_path(&url), &marker));
    let out = Command::new(env!("CARGO_BIN_EXE_reef"))
        .args(["group", "purge", "--database-url", &url, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["deleted"], 1, "{v}");
    poll(|| async { (!in_files(&db_path(&url), &marker)).then_some(()) }).await;
    assert_eq!(history(&node, &ta, &group).len(), 1);
}

#[tokio::test]
async fn a_member_erases_its_own_messages_and_only_those() {
    let url = sqlite_url();
    let node = spawn_node(&url, &[]);
    let (alice, bob, carol) =
        (PrivateKeySigner::random(), PrivateKeySigner::random(), PrivateKeySigner::random());
    let (ta, tb, tc) = (
        rest_login(&node.addr, &alice),
        rest_login(&node.addr, &bob),
        rest_login(&node.addr, &carol),
    );
    let group = create_group(&node, &ta, &[&bob]);
    let mine = format!("BOBS-{}", rand_hex(12));
    let theirs = format!("ALICES-{}", rand_hex(12));
    post(&node, &tb, &group, &mine);
    post(&node, &ta, &group, &theirs);
    post(&node, &tb, &group, &mine);
    assert!(in_files(&db_path(&url), &mine));

    // Not a member: refused.
    let (st, _) =
        http(&node.addr, "DELETE", &format!("/v1/groups/{group}/messages/mine"), Some(&tc), None);
    assert_eq!(st, 403);
    // Through the CLI, as bob.
    let key = alloy_primitives::hex::encode_prefixed(bob.to_bytes());
    let out = Command::new(env!("CARGO_BIN_EXE_reef"))
        .args(["group", "erase", &group, "--node", &format!("http://{}", node.addr), "--json"])
        .env("REEF_PRIVATE_KEY", key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["erased"], 2, "{v}");

    let left = history(&node, &ta, &group);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["body"]["text"], theirs);
    poll(|| async { (!in_files(&db_path(&url), &mine)).then_some(()) }).await;
    assert!(in_files(&db_path(&url), &theirs), "alice's message must stay");

    // A live member still gets new messages after the erased seqs.
    let mut ws = raw_login(&node, &alice).await;
    send_json(&mut ws, json!({"type":"join","req_id":"j","group_id":group,"since_seq":3})).await;
    wait_for(&mut ws, |f| matches!(f, ServerFrame::Ok { .. })).await;
    post(&node, &tb, &group, "after");
    let m = wait_for(&mut ws, |f| matches!(f, ServerFrame::Message(_))).await;
    let ServerFrame::Message(env) = m else { unreachable!() };
    assert_eq!(env.seq, 4);
}

fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atc", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn expired_messages_are_deleted_on_postgres() {
    let pg = PgDb::new();
    let node = spawn_node(&pg.url, &["--retention-sweep-secs", "1"]);
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let ta = rest_login(&node.addr, &alice);
    let group = create_group(&node, &ta, &[&bob]);
    assert_eq!(set_retention(&node, &ta, &group, Some(5)).0, 200);
    let marker = format!("PGSECRET-{}", rand_hex(12));
    post(&node, &ta, &group, &marker);
    let count = |_: ()| {
        psql(&pg.name, &format!("SELECT count(*) FROM ioa_messages WHERE group_id = '{group}'"))
    };
    let table_has_marker = || {
        psql(&pg.name, "CHECKPOINT");
        let dir = psql(&pg.name, "SHOW data_directory");
        let rel = psql(&pg.name, "SELECT pg_relation_filepath('ioa_messages')");
        let file = Path::new(&dir).join(rel);
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
    };
    assert_eq!(count(()), "1");
    // The control: flushed to the table's file while the message lives.
    assert!(table_has_marker(), "the marker should be in the table's file first");
    poll(|| async { (count(()) == "0").then_some(()) }).await;
    assert!(history(&node, &ta, &group).is_empty());

    // `purge` rewrites the table (VACUUM FULL): its file holds no copy of the marker.
    let out = Command::new(env!("CARGO_BIN_EXE_reef"))
        .args(["group", "purge", "--database-url", &pg.url, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!table_has_marker(), "the marker is still in the table's file");
}
