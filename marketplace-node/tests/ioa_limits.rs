//! Bad input and limits against a real `reef node`: every case ends in an error frame (with the
//! connection still usable) or in the documented close code, never in a half-applied change.

#[path = "ioa_support.rs"]
mod support;

use alloy_signer_local::PrivateKeySigner;
use futures::StreamExt;
use reef_wire::{ErrorCode, ServerFrame};
use serde_json::json;
use support::*;

fn code_of(f: &ServerFrame) -> Option<ErrorCode> {
    match f {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    }
}

async fn ping_ok(ws: &mut Ws) {
    send_json(ws, json!({"type":"ping","req_id":"p"})).await;
    let f = wait_for(ws, |f| matches!(f, ServerFrame::Pong { .. })).await;
    assert!(matches!(f, ServerFrame::Pong { req_id: Some(ref r) } if r == "p"));
}

#[tokio::test]
async fn ioa_bad_frames_get_error_frames_and_connection_survives() {
    let node = spawn_node(&sqlite_url(), &[]);
    let key = PrivateKeySigner::random();
    let mut ws = raw_login(&node, &key).await;
    let _welcome_done = ();
    send_text(&mut ws, "{not json").await;
    assert_eq!(code_of(&next_frame(&mut ws).await.unwrap()), Some(ErrorCode::MalformedJson));
    send_json(&mut ws, json!({"type":"teleport","req_id":"x"})).await;
    let f = next_frame(&mut ws).await.unwrap();
    assert!(
        matches!(&f, ServerFrame::Error { code: ErrorCode::UnknownType, req_id: Some(r), .. } if r == "x"),
        "{f:?}"
    );
    send_json(&mut ws, json!({"type":"send","group_id":"g"})).await;
    assert_eq!(code_of(&next_frame(&mut ws).await.unwrap()), Some(ErrorCode::MissingField));
    send_json(&mut ws, json!({"type":"create_group","name":7})).await;
    assert_eq!(code_of(&next_frame(&mut ws).await.unwrap()), Some(ErrorCode::InvalidFrame));
    send_json(&mut ws, json!({"type":"auth","address":key.address(),"signature":"0x00"})).await;
    assert_eq!(code_of(&next_frame(&mut ws).await.unwrap()), Some(ErrorCode::InvalidFrame));
    ping_ok(&mut ws).await;
}

#[tokio::test]
async fn ioa_oversized_frame_closes_1009_and_nothing_is_applied() {
    let node = spawn_node(&sqlite_url(), &["--max-frame-bytes", "4096"]);
    let key = PrivateKeySigner::random();
    let mut ws = raw_login(&node, &key).await;
    send_json(&mut ws, json!({"type":"create_group","name":"g","req_id":"c"})).await;
    let ServerFrame::Ok { result, .. } =
        wait_for(&mut ws, |f| matches!(f, ServerFrame::Ok { .. })).await
    else {
        unreachable!()
    };
    let gid = result["group_id"].as_str().unwrap().to_owned();
    let big = "x".repeat(10_000);
    send_json(
        &mut ws,
        json!({"type":"send","group_id":gid,"msg_id":"big","state":"discussion","body":big}),
    )
    .await;
    let closed = loop {
        match next_frame(&mut ws).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(closed, Some(1009));
    let mut ws = raw_login(&node, &key).await;
    send_json(&mut ws, json!({"type":"join","group_id":gid,"req_id":"j"})).await;
    let ServerFrame::Ok { result, .. } =
        wait_for(&mut ws, |f| matches!(f, ServerFrame::Ok { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(result["last_seq"], 0, "the oversized message was not stored");
}

#[tokio::test]
async fn ioa_auth_rejections() {
    let node = spawn_node(&sqlite_url(), &[]);
    let key = PrivateKeySigner::random();
    let other = PrivateKeySigner::random();

    // Anything before auth is refused (connection stays up for the auth).
    let (mut ws, ch) = raw_connect(&node).await;
    send_json(&mut ws, json!({"type":"create_group","name":"x"})).await;
    assert_eq!(code_of(&next_frame(&mut ws).await.unwrap()), Some(ErrorCode::Unauthenticated));
    // Forged: signed by another key while claiming `key`'s address.
    let ServerFrame::Challenge { message, node_id, .. } = ch else { panic!() };
    assert!(
        message.contains(&node_id) && message.contains("nonce: ") && message.contains("expires: ")
    );
    send_json(
        &mut ws,
        json!({"type":"auth","address":key.address(),"signature":sign(&other, &message)}),
    )
    .await;
    assert_eq!(code_of(&next_frame(&mut ws).await.unwrap()), Some(ErrorCode::AuthFailed));
    assert_eq!(next_frame(&mut ws).await.unwrap_err(), Some(1008));

    // Replayed: a valid signature for connection 1's challenge, presented on connection 2.
    let (_ws1, ch1) = raw_connect(&node).await;
    let ServerFrame::Challenge { message: m1, .. } = ch1 else { panic!() };
    let (mut ws2, _) = raw_connect(&node).await;
    send_json(&mut ws2, json!({"type":"auth","address":key.address(),"signature":sign(&key, &m1)}))
        .await;
    assert_eq!(code_of(&next_frame(&mut ws2).await.unwrap()), Some(ErrorCode::AuthFailed));

    // A signature for another node id is useless here.
    let foreign = reef_wire::login_message("some-other-node", "00", reef_wire::unix_now() + 60);
    let (mut ws3, _) = raw_connect(&node).await;
    send_json(
        &mut ws3,
        json!({"type":"auth","address":key.address(),"signature":sign(&key, &foreign)}),
    )
    .await;
    assert_eq!(code_of(&next_frame(&mut ws3).await.unwrap()), Some(ErrorCode::AuthFailed));

    // REST: a challenge is single use.
    let (_, ch) = http(&node.addr, "POST", "/v1/auth/challenge", None, None);
    let body = json!({"address":key.address(),"nonce":ch["nonce"],"signature":sign(&key, ch["message"].as_str().unwrap())});
    assert_eq!(http(&node.addr, "POST", "/v1/auth/login", None, Some(&body)).0, 200);
    let (st, v) = http(&node.addr, "POST", "/v1/auth/login", None, Some(&body));
    assert_eq!((st, v["code"].as_str()), (401, Some("auth_failed")));

    // Expired challenge (a node whose challenges are born expired).
    let node0 = spawn_node(&sqlite_url(), &["--challenge-ttl-secs", "0"]);
    let (mut ws, ch) = raw_connect(&node0).await;
    let ServerFrame::Challenge { message, .. } = ch else { panic!() };
    send_json(
        &mut ws,
        json!({"type":"auth","address":key.address(),"signature":sign(&key, &message)}),
    )
    .await;
    assert_eq!(code_of(&next_frame(&mut ws).await.unwrap()), Some(ErrorCode::ChallengeExpired));
}

#[tokio::test]
async fn ioa_sender_cannot_be_spoofed() {
    let node = spawn_node(&sqlite_url(), &[]);
    let key = PrivateKeySigner::random();
    let mut ws = raw_login(&node, &key).await;
    send_json(&mut ws, json!({"type":"create_group","name":"g"})).await;
    let ServerFrame::Ok { result, .. } =
        wait_for(&mut ws, |f| matches!(f, ServerFrame::Ok { .. })).await
    else {
        unreachable!()
    };
    let gid = result["group_id"].as_str().unwrap().to_owned();
    send_json(&mut ws, json!({"type":"join","group_id":gid})).await;
    send_json(
        &mut ws,
        json!({"type":"send","group_id":gid,"msg_id":"1","state":"discussion",
        "sender_id":"0x000000000000000000000000000000000000dEaD","seq":1000,"ts":1}),
    )
    .await;
    let ServerFrame::Message(m) = wait_for(&mut ws, |f| matches!(f, ServerFrame::Message(_))).await
    else {
        unreachable!()
    };
    assert_eq!((m.sender_id, m.seq), (key.address(), 1));
    assert!(m.ts > 1);
}

#[tokio::test]
async fn ioa_rate_limit_answers_with_error_frames_not_disconnects() {
    let node = spawn_node(&sqlite_url(), &["--rate-per-sec", "1", "--rate-burst", "5"]);
    let key = PrivateKeySigner::random();
    let mut ws = raw_login(&node, &key).await;
    for i in 0..20 {
        send_json(&mut ws, json!({"type":"ping","req_id":i.to_string()})).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..20 {
        match next_frame(&mut ws).await.expect("connection must stay up") {
            ServerFrame::Pong { .. } => pongs += 1,
            ServerFrame::Error { code: ErrorCode::RateLimited, .. } => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!((5..=7).contains(&pongs), "burst honoured: {pongs}");
    assert_eq!(pongs + limited, 20);
}

/// The next text frame as raw JSON (to see the JSON type of `req_id`, which `ServerFrame`
/// hides).
async fn next_raw(ws: &mut Ws) -> serde_json::Value {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .expect("timed out waiting for a frame");
        match m {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn ioa_req_ids_are_echoed_with_their_json_type() {
    let node = spawn_node(&sqlite_url(), &[]);
    let key = PrivateKeySigner::random();
    let mut ws = raw_login(&node, &key).await;
    // Replies of each kind (pong, ok, error, ack), each with a numeric and a string id.
    send_json(&mut ws, json!({"type":"ping","req_id":7})).await;
    send_json(&mut ws, json!({"type":"ping","req_id":"7"})).await;
    send_json(&mut ws, json!({"type":"create_group","name":"g","req_id":8})).await;
    send_json(&mut ws, json!({"type":"teleport","req_id":9})).await;
    send_json(&mut ws, json!({"type":"teleport","req_id":"9"})).await;
    let mut got = Vec::new();
    while got.len() < 5 {
        got.push(next_raw(&mut ws).await);
    }
    let ids: Vec<(String, serde_json::Value)> =
        got.iter().map(|f| (f["type"].as_str().unwrap().to_owned(), f["req_id"].clone())).collect();
    assert_eq!(
        ids,
        vec![
            ("pong".into(), json!(7)),
            ("pong".into(), json!("7")),
            ("ok".into(), json!(8)),
            ("error".into(), json!(9)),
            ("error".into(), json!("9")),
        ],
        "{got:?}"
    );
    let gid = got[2]["result"]["group_id"].as_str().unwrap().to_owned();
    send_json(
        &mut ws,
        json!({"type":"send","group_id":gid,"msg_id":"m","state":"discussion","req_id":10}),
    )
    .await;
    let ack = loop {
        let f = next_raw(&mut ws).await;
        if f["type"] == "ack" {
            break f;
        }
    };
    assert_eq!(ack["req_id"], json!(10), "{ack}");
}

#[tokio::test]
async fn ioa_rate_limited_frames_echo_their_req_id() {
    let node = spawn_node(&sqlite_url(), &["--rate-per-sec", "1", "--rate-burst", "3"]);
    let key = PrivateKeySigner::random();
    let mut ws = raw_login(&node, &key).await;
    // Pipelined: every request must get a reply naming it, refused ones included.
    for i in 0..12 {
        let id = if i % 2 == 0 { json!(i) } else { json!(format!("s{i}")) };
        send_json(&mut ws, json!({"type":"ping","req_id":id})).await;
    }
    let mut limited = 0;
    let mut answered = Vec::new();
    for _ in 0..12 {
        let f = next_raw(&mut ws).await;
        if f["code"] == "rate_limited" {
            limited += 1;
        }
        answered.push(f["req_id"].clone());
    }
    assert!(limited >= 6, "the burst of 3 was not enforced: {answered:?}");
    let expected: Vec<serde_json::Value> =
        (0..12).map(|i| if i % 2 == 0 { json!(i) } else { json!(format!("s{i}")) }).collect();
    assert_eq!(answered, expected, "each reply names its request, in order");
}

#[tokio::test]
async fn ioa_rest_errors_have_one_shape_even_for_malformed_bodies() {
    let node = spawn_node(&sqlite_url(), &[]);
    let key = PrivateKeySigner::random();
    let token = rest_login(&node.addr, &key);
    let shape = |st: u16, v: &serde_json::Value, want: (u16, &str)| {
        assert_eq!((st, v["code"].as_str()), (want.0, Some(want.1)), "{v}");
        assert_eq!(v["error"], v["code"], "`error` repeats `code`: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    };
    // Not JSON, and JSON of the wrong shape: the documented error, not a plain-text rejection.
    let (st, v) = http(&node.addr, "POST", "/v1/agents", Some(&token), Some(&json!("nope")));
    shape(st, &v, (400, "invalid_frame"));
    let (st, v) =
        http(&node.addr, "POST", "/v1/discover", None, Some(&json!({"skills": "not a list"})));
    shape(st, &v, (400, "invalid_frame"));
    let (st, v) = http(&node.addr, "POST", "/v1/groups", None, Some(&json!({"name":"g"})));
    shape(st, &v, (401, "unauthenticated"));
    let (st, v) = http(
        &node.addr,
        "GET",
        "/v1/agents/0x0000000000000000000000000000000000000001",
        None,
        None,
    );
    shape(st, &v, (404, "not_found"));
    // Discovery of public cards needs no token (docs/protocol.md, "Who may read what").
    let (st, v) = http(&node.addr, "POST", "/v1/discover", None, Some(&json!({})));
    assert_eq!(st, 200, "{v}");
    // A node without a marketplace answers /v1/market in the same shape.
    let (st, v) = http(&node.addr, "GET", "/v1/market/info", None, None);
    shape(st, &v, (404, "no_market"));
}

#[tokio::test]
async fn ioa_card_limits_are_the_schemas_counted_in_characters_and_a_refusal_changes_nothing() {
    let node = spawn_node(&sqlite_url(), &[]);
    let key = PrivateKeySigner::random();
    let token = rest_login(&node.addr, &key);
    let register =
        |card: serde_json::Value| http(&node.addr, "POST", "/v1/agents", Some(&token), Some(&card));
    // At each limit, in characters: 2,048 two-byte characters are 4,096 bytes and still fit.
    let image = "é".repeat(2048);
    let (st, v) = register(json!({"name": "n".repeat(200), "image": image}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["card"]["image"].as_str().map(|s| s.chars().count()), Some(2048));
    // One over: refused with the field, its length and the limit, and the stored card stays.
    let cases = [
        (json!({"name": "a", "image": "x".repeat(2049)}), "card.image has 2049 characters"),
        (json!({"name": "é".repeat(201)}), "card.name has 201 characters"),
        (json!({"name": "a", "description": "d".repeat(10_001)}), "card.description has 10001"),
        (json!({"name": "a", "skills": vec!["s"; 101]}), "card.skills has 101 entries"),
        (json!({"name": " \t"}), "card.name must not be empty"),
    ];
    for (card, want) in cases {
        let (st, v) = register(card);
        assert_eq!((st, v["code"].as_str()), (400, Some("invalid_frame")), "{v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{message} should say {want}");
    }
    let (st, v) = http(&node.addr, "GET", &format!("/v1/agents/{}", key.address()), None, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["card"]["image"].as_str(), Some(image.as_str()), "the refusals changed nothing");
}

#[tokio::test]
async fn ioa_slow_consumer_is_disconnected_then_replays() {
    let node = small_queue_node();
    let (slow, fast) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let (f, _fe) = reef_agent_sdk::Client::connect(&node.ws_url(), fast.clone()).await.unwrap();
    let g = f.create_group("firehose", &[slow.address()], None).await.unwrap();
    // The slow member joins with a raw socket and then stops reading.
    let mut ws = raw_login(&node, &slow).await;
    send_json(&mut ws, json!({"type":"join","group_id":g.group_id,"req_id":"j"})).await;
    wait_for(&mut ws, |f| matches!(f, ServerFrame::Ok { .. })).await;
    // Far more than the queue (8 frames) plus socket buffers can hold.
    let body = "y".repeat(30_000);
    let sent = 600u64;
    for _ in 0..sent {
        f.send(&g.group_id, reef_wire::State::Discussion, Some(json!(body)), None).await.unwrap();
    }
    // Now read: some messages, then the node's close (4008 with its reason when the close frame
    // could still be written within the grace period, else the TCP connection just ends).
    let mut got = 0u64;
    let closed_code = loop {
        match tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("the slow consumer must be disconnected")
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(c))) => {
                break c.map(|c| u16::from(c.code));
            }
            Some(Ok(_)) => got += 1,
            Some(Err(_)) | None => break None,
        }
    };
    assert!(got < sent, "the node did not buffer everything for the slow reader ({got})");
    assert!(closed_code.is_none() || closed_code == Some(hub_close()), "{closed_code:?}");
    // Reconnect and replay everything in order.
    let (s, mut se) = reef_agent_sdk::Client::connect(&node.ws_url(), slow.clone()).await.unwrap();
    s.join(&g.group_id, Some(0)).await.unwrap();
    let mut expect = 1;
    while expect <= sent {
        match tokio::time::timeout(DEADLINE, se.recv()).await.unwrap().unwrap() {
            reef_agent_sdk::Event::Message(m) => {
                assert_eq!(m.seq, expect);
                expect += 1;
            }
            _ => continue,
        }
    }
}

/// A node whose connections queue at most 8 frames, with no practical rate limit.
fn small_queue_node() -> NodeProc {
    spawn_node(
        &sqlite_url(),
        &["--queue-len", "8", "--rate-per-sec", "100000", "--rate-burst", "100000"],
    )
}

fn hub_close() -> u16 {
    marketplace_node::ioa::hub::CLOSE_SLOW_CONSUMER
}

/// A member whose replay fills its queue (it reads slower than the node replays) still gets
/// the replies to what it asks meanwhile: the replay holds at most half the queue. A second
/// join of the same group replaces the first: the first replay stops, the second starts at its
/// own `since_seq`.
#[tokio::test]
async fn ioa_requests_during_a_replay_are_answered_and_a_later_join_replaces_it() {
    let node = small_queue_node();
    let (member, sender) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let (f, _fe) = reef_agent_sdk::Client::connect(&node.ws_url(), sender.clone()).await.unwrap();
    let g = f.create_group("history", &[member.address()], None).await.unwrap();
    // More history than the queue and the socket buffers hold.
    let body = "h".repeat(60_000);
    let sent = 400u64;
    for _ in 0..sent {
        f.send(&g.group_id, reef_wire::State::Discussion, Some(json!(body)), None).await.unwrap();
    }
    let mut ws = raw_login(&node, &member).await;
    send_json(&mut ws, json!({"type":"join","group_id":g.group_id,"since_seq":0,"req_id":"j1"}))
        .await;
    // Let the replay fill the buffers while we do not read, then ask for more.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let since = sent - 20;
    send_json(&mut ws, json!({"type":"ping","req_id":"p"})).await;
    send_json(
        &mut ws,
        json!({"type":"join","group_id":g.group_id,"since_seq":since,"req_id":"j2"}),
    )
    .await;
    let (mut pong, mut second_ok, mut stale) = (false, false, 0u64);
    let mut after = Vec::new();
    while after.last() != Some(&sent) {
        let frame = next_frame(&mut ws).await.unwrap_or_else(|c| panic!("closed {c:?}"));
        match frame {
            ServerFrame::Pong { .. } => pong = true,
            ServerFrame::Ok { req_id: Some(r), .. } if r == "j2" => second_ok = true,
            ServerFrame::Message(m) if second_ok && m.seq > since => after.push(m.seq),
            ServerFrame::Message(_) if second_ok => stale += 1,
            _ => {}
        }
    }
    assert!(pong, "the ping asked during the replay was answered");
    assert_eq!(after, (since + 1..=sent).collect::<Vec<_>>(), "the second join's replay, in order");
    // The first replay stops at its next frame: what it had already taken a replay slot for
    // (4 of the 8-frame queue) may still follow the second join's `ok`, not the ~300 it had left.
    assert!(stale <= 5, "the first replay stopped at the second join ({stale} frames after it)");
    // Still connected and live.
    f.send(&g.group_id, reef_wire::State::Discussion, Some(json!("live")), None).await.unwrap();
    let live = wait_for(&mut ws, |f| matches!(f, ServerFrame::Message(_))).await;
    assert!(matches!(live, ServerFrame::Message(m) if m.seq == sent + 1));
}
