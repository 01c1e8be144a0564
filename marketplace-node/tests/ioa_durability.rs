//! Group commit (batched, idempotent, ordered sends; bounded writer queue), presence that
//! survives node crashes (heartbeat TTL) and REST tokens valid across nodes and restarts —
//! against real `reef node` processes on SQLite and Postgres.

#[path = "ioa_support.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use reef_agent_sdk::Client;
use reef_wire::{AgentCard, ErrorCode, ServerFrame};
use serde_json::{Value, json};
use support::*;

/// Send a request frame and wait for the reply with the same `req_id`.
async fn request(ws: &mut Ws, mut frame: Value, req_id: &str) -> ServerFrame {
    frame["req_id"] = json!(req_id);
    send_json(ws, frame).await;
    wait_for(ws, |f| match f {
        ServerFrame::Ok { req_id: r, .. }
        | ServerFrame::Error { req_id: r, .. }
        | ServerFrame::Ack { req_id: r, .. } => r.as_deref() == Some(req_id),
        _ => false,
    })
    .await
}

async fn create_group(ws: &mut Ws, members: &[Address]) -> String {
    match request(ws, json!({"type":"create_group","name":"g","members":members}), "cg").await {
        ServerFrame::Ok { result, .. } => result["group_id"].as_str().unwrap().to_owned(),
        other => panic!("{other:?}"),
    }
}

/// The reply to each of `n` pipelined requests (by req_id), skipping pushed frames.
async fn replies(ws: &mut Ws, n: usize) -> HashMap<String, ServerFrame> {
    let mut out = HashMap::new();
    while out.len() < n {
        let f = next_frame(ws).await.unwrap_or_else(|c| panic!("closed {c:?}"));
        let id = match &f {
            ServerFrame::Ack { req_id, .. } | ServerFrame::Error { req_id, .. } => req_id.clone(),
            _ => None,
        };
        if let Some(id) = id {
            out.insert(id.to_string(), f);
        }
    }
    out
}

fn send_frame(gid: &str, msg_id: &str, req_id: &str) -> Value {
    json!({"type":"send","group_id":gid,"msg_id":msg_id,"state":"discussion","body":msg_id,"req_id":req_id})
}

/// Three members pipeline the SAME 100 msg_ids concurrently (duplicates race into the same
/// batches), a non-member tries too: one seq per msg_id, gap-free, duplicates flagged, the
/// non-member refused, and a replay from 0 returns exactly the stored order.
async fn group_commit(url: &str) {
    let node = spawn_node(url, &["--rate-per-sec", "100000", "--rate-burst", "100000"]);
    let keys: Vec<PrivateKeySigner> = (0..4).map(|_| PrivateKeySigner::random()).collect();
    let mut conns = Vec::new();
    for k in &keys {
        conns.push(raw_login(&node, k).await);
    }
    let members = [keys[1].address(), keys[2].address()];
    let gid = create_group(&mut conns[0], &members).await;
    let n = 100;
    let mut tasks = Vec::new();
    for (c, mut ws) in conns.into_iter().enumerate() {
        let gid = gid.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                send_text(
                    &mut ws,
                    &send_frame(&gid, &format!("m-{i}"), &format!("{c}-{i}")).to_string(),
                )
                .await;
            }
            (c, replies(&mut ws, n).await)
        }));
    }
    let mut seq_of: BTreeMap<String, u64> = BTreeMap::new();
    let mut firsts: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let (c, rs) = t.await.unwrap();
        for (req, f) in rs {
            let i = req.split_once('-').unwrap().1;
            let msg = format!("m-{i}");
            match f {
                ServerFrame::Ack { msg_id, seq, duplicate, .. } => {
                    assert!(c < 3, "non-member acked");
                    assert_eq!(msg_id, msg);
                    let prev = *seq_of.entry(msg.clone()).or_insert(seq);
                    assert_eq!(prev, seq, "one seq per msg_id");
                    if !duplicate {
                        *firsts.entry(msg).or_default() += 1;
                    }
                }
                ServerFrame::Error { code, .. } => {
                    assert_eq!(c, 3, "member refused: {code:?}");
                    assert_eq!(code, ErrorCode::Forbidden);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(seq_of.len(), n);
    assert!(firsts.values().all(|&k| k == 1) && firsts.len() == n, "exactly one original each");
    let mut seqs: Vec<u64> = seq_of.values().copied().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>(), "gap-free");

    // Replay from 0 on a fresh connection: stored order = acked seqs.
    let mut ws = raw_login(&node, &keys[1]).await;
    match request(&mut ws, json!({"type":"join","group_id":gid,"since_seq":0}), "j").await {
        ServerFrame::Ok { result, .. } => assert_eq!(result["last_seq"], n),
        other => panic!("{other:?}"),
    }
    for want in 1..=n as u64 {
        let f = wait_for(&mut ws, |f| matches!(f, ServerFrame::Message(_))).await;
        let ServerFrame::Message(m) = f else { unreachable!() };
        assert_eq!(m.seq, want);
        assert_eq!(seq_of[&m.msg_id], m.seq);
    }
}

#[tokio::test]
async fn ioa_group_commit_sqlite() {
    group_commit(&sqlite_url()).await;
}

#[tokio::test]
async fn ioa_group_commit_postgres() {
    let db = PgDb::new();
    group_commit(&db.url).await;
}

/// With a writer queue of one, a burst from many connections is answered send by send with
/// an ack or an `overloaded` error (never dropped, connections stay up), and only acked
/// messages are stored.
#[tokio::test]
async fn ioa_full_writer_queue_answers_overloaded() {
    let node = spawn_node(
        &sqlite_url(),
        &["--send-queue-len", "1", "--rate-per-sec", "100000", "--rate-burst", "100000"],
    );
    let keys: Vec<PrivateKeySigner> = (0..20).map(|_| PrivateKeySigner::random()).collect();
    let mut conns = Vec::new();
    for k in &keys {
        conns.push(raw_login(&node, k).await);
    }
    let others: Vec<Address> = keys[1..].iter().map(|k| k.address()).collect();
    let gid = create_group(&mut conns[0], &others).await;
    let n = 30;
    let mut tasks = Vec::new();
    for (c, mut ws) in conns.into_iter().enumerate() {
        let gid = gid.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                let id = format!("{c}-{i}");
                send_text(&mut ws, &send_frame(&gid, &id, &id).to_string()).await;
            }
            let rs = replies(&mut ws, n).await;
            // Still up.
            send_json(&mut ws, json!({"type":"ping","req_id":"p"})).await;
            wait_for(&mut ws, |f| matches!(f, ServerFrame::Pong { .. })).await;
            rs
        }));
    }
    let mut acked = 0u64;
    for t in tasks {
        for f in t.await.unwrap().into_values() {
            match f {
                ServerFrame::Ack { duplicate: false, .. } => acked += 1,
                ServerFrame::Error { code: ErrorCode::Overloaded, .. } => {}
                other => panic!("{other:?}"),
            }
        }
    }
    let mut ws = raw_login(&node, &keys[0]).await;
    match request(&mut ws, json!({"type":"join","group_id":gid,"since_seq":0}), "j").await {
        ServerFrame::Ok { result, .. } => assert_eq!(result["last_seq"], acked),
        other => panic!("{other:?}"),
    }
}

fn online(addr: &str, who: Address) -> bool {
    let (st, v) = http(addr, "GET", &format!("/v1/agents/{who}"), None, None);
    assert_eq!(st, 200, "{v}");
    v["online"].as_bool().unwrap()
}

fn online_only(addr: &str) -> Vec<Address> {
    let (st, v) =
        http(addr, "POST", "/v1/discover", None, Some(&json!({"query":"","online_only":true})));
    assert_eq!(st, 200, "{v}");
    v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn card(name: &str) -> AgentCard {
    AgentCard { name: name.into(), description: "presence".into(), ..Default::default() }
}

/// Node A is killed (no clean disconnect): its agent turns offline once A's heartbeats are
/// older than the TTL, while an agent on node B (connected earlier) stays online thanks to
/// B's heartbeats; `online_only` discovery agrees.
async fn presence_after_crash(url: &str) {
    let ttl = ["--presence-ttl-secs", "3"];
    let b = spawn_node(url, &ttl);
    let a = spawn_node(url, &ttl);
    let (kb, ka) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let (cb, _eb) = Client::connect(&b.ws_url(), kb.clone()).await.unwrap();
    cb.register(card("Bee")).await.unwrap();
    let (ca, _ea) = Client::connect(&a.ws_url(), ka.clone()).await.unwrap();
    ca.register(card("Aye")).await.unwrap();
    assert!(online(&b.addr, ka.address()) && online(&b.addr, kb.address()));
    let seen = online_only(&b.addr);
    assert!(seen.contains(&ka.address()) && seen.contains(&kb.address()));

    drop(a); // SIGKILL: node A never records the disconnect
    let gone = ka.address();
    poll(|| {
        let addr = b.addr.clone();
        async move { (!online(&addr, gone)).then_some(()) }
    })
    .await;
    // B's agent connected before A's agent was last refreshed, so more than the TTL has passed
    // since it connected: it is online only because B keeps refreshing it.
    assert!(online(&b.addr, kb.address()));
    let seen = online_only(&b.addr);
    assert!(!seen.contains(&ka.address()) && seen.contains(&kb.address()), "{seen:?}");
}

#[tokio::test]
async fn ioa_presence_expires_after_crash_sqlite() {
    presence_after_crash(&sqlite_url()).await;
}

#[tokio::test]
async fn ioa_presence_expires_after_crash_postgres() {
    let db = PgDb::new();
    presence_after_crash(&db.url).await;
}

/// A token issued by node A works on node B (shared Postgres) and after both restart; unknown
/// and expired tokens are refused.
#[tokio::test]
async fn ioa_rest_token_across_mesh_and_restart() {
    let db = PgDb::new();
    let k = PrivateKeySigner::random();
    let (token, gid) = {
        let a = spawn_node(&db.url, &[]);
        let b = spawn_node(&db.url, &[]);
        let token = rest_login(&a.addr, &k);
        let (st, v) =
            http(&b.addr, "POST", "/v1/groups", Some(&token), Some(&json!({"name":"rest"})));
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["creator"].as_str().unwrap().parse::<Address>().unwrap(), k.address());
        let (st, _) = http(&b.addr, "GET", "/v1/groups", Some("not-a-token"), None);
        assert_eq!(st, 401);
        (token, v["group_id"].as_str().unwrap().to_owned())
    };
    let c = spawn_node(&db.url, &[]);
    let (st, v) = http(&c.addr, "GET", &format!("/v1/groups/{gid}"), Some(&token), None);
    assert_eq!(st, 200, "{v}");

    let d = spawn_node(&db.url, &["--token-ttl-secs", "0"]);
    let expired = rest_login(&d.addr, &k);
    for node in [&c, &d] {
        let (st, v) = http(&node.addr, "GET", "/v1/groups", Some(&expired), None);
        assert_eq!(st, 401, "{v}");
    }
}

/// Two nodes sharing Postgres, every connection pipelining sends to four groups at once (so
/// both writers lock several counter rows per batch): no deadlock, and per group the acked
/// seqs are unique and gap-free.
#[tokio::test]
async fn ioa_two_nodes_multi_group_batches_never_share_a_seq() {
    let db = PgDb::new();
    let flags = ["--rate-per-sec", "100000", "--rate-burst", "100000"];
    let nodes = [spawn_node(&db.url, &flags), spawn_node(&db.url, &flags)];
    let keys: Vec<PrivateKeySigner> = (0..6).map(|_| PrivateKeySigner::random()).collect();
    let mut conns = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        conns.push(raw_login(&nodes[i % 2], k).await);
    }
    let others: Vec<Address> = keys[1..].iter().map(|k| k.address()).collect();
    let mut gids = Vec::new();
    for _ in 0..4 {
        gids.push(create_group(&mut conns[0], &others).await);
    }
    let n = 80;
    let mut tasks = Vec::new();
    for (c, mut ws) in conns.into_iter().enumerate() {
        let gids = gids.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                let gid = &gids[(i + c) % gids.len()];
                let id = format!("{c}-{i}");
                send_text(&mut ws, &send_frame(gid, &id, &id).to_string()).await;
            }
            replies(&mut ws, n).await
        }));
    }
    let mut per_group: HashMap<String, Vec<u64>> = HashMap::new();
    for t in tasks {
        for f in t.await.unwrap().into_values() {
            let ServerFrame::Ack { group_id, seq, duplicate: false, .. } = f else {
                panic!("{f:?}")
            };
            per_group.entry(group_id).or_default().push(seq);
        }
    }
    let total: usize = per_group.values().map(Vec::len).sum();
    assert_eq!(total, 6 * n);
    for (g, mut seqs) in per_group {
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "group {g}");
    }
}
