//! permessage-deflate on the agents' WebSocket against a real `reef node`: a client that offers
//! it gets it (and its frames really are compressed on the wire), one that does not still
//! works, `--ws-compression off` never agrees to it, and a compressed frame that inflates past
//! `--max-frame-bytes` is closed with 1009 like a plain one.

#[path = "ioa_support.rs"]
mod support;

use alloy_signer_local::PrivateKeySigner;
use futures::SinkExt;
use marketplace_node::traffic::{Counted, Counters};
use reef_wire::ServerFrame;
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yawc::{Frame, OpCode};

type Sock = yawc::WebSocket<Counted<TcpStream>>;

/// A hand-made upgrade request (so the test sees the node's exact answer), then the frames
/// with yawc on the same counted stream, deflating when the node agreed to.
async fn connect(node: &NodeProc, offer: Option<&str>) -> (Sock, Option<String>, Counters) {
    let tcp = TcpStream::connect(&node.addr).await.unwrap();
    let (mut io, counters) = Counted::new(tcp);
    let mut req = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        node.addr
    );
    if let Some(o) = offer {
        req.push_str(&format!("Sec-WebSocket-Extensions: {o}\r\n"));
    }
    req.push_str("\r\n");
    io.write_all(req.as_bytes()).await.unwrap();
    // Read the answer byte by byte: nothing past its blank line may be consumed here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        io.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
        assert!(head.len() < 8192, "no end of the upgrade answer");
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "wrong accept key: {head}");
    let ext = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("sec-websocket-extensions").then(|| v.trim().to_owned())
    });
    let mut options = yawc::Options::default();
    if offer.is_some() {
        options = options.with_compression_level(yawc::CompressionLevel::default());
    }
    let ws = yawc::WebSocket::from_stream_with_extensions(
        io,
        yawc::Role::Client,
        ext.as_deref(),
        options,
    )
    .unwrap();
    (ws, ext, counters)
}

async fn next_json(ws: &mut Sock) -> Value {
    loop {
        let f = tokio::time::timeout(DEADLINE, ws.next_frame()).await.expect("frame").unwrap();
        match f.opcode() {
            OpCode::Text => return serde_json::from_slice(f.payload()).unwrap(),
            OpCode::Close => panic!("closed: {:?}", f.close_code()),
            _ => continue,
        }
    }
}

async fn login(ws: &mut Sock, key: &PrivateKeySigner) {
    let ch = next_json(ws).await;
    assert_eq!(ch["type"], "challenge");
    let sig = sign(key, ch["message"].as_str().unwrap());
    let auth = json!({"type":"auth","address":key.address(),"signature":sig});
    ws.send(Frame::text(auth.to_string())).await.unwrap();
    assert_eq!(next_json(ws).await["type"], "welcome");
}

/// A card whose description repeats: deflate shrinks it many times over.
fn big_card() -> Value {
    let description = "sorts lists of numbers ascending, stable, any length; ".repeat(150);
    json!({"name":"sorter","skills":["sort"],"description":description,"price":4})
}

/// Register the big card and read the `ok` (which echoes it): returns the bytes that moved
/// on the socket for that exchange and the size of the JSON both ways.
async fn register_exchange(ws: &mut Sock, counters: &Counters) -> (u64, u64) {
    let before = counters.total();
    let req = json!({"type":"register","req_id":"r","card":big_card()}).to_string();
    ws.send(Frame::text(req.clone())).await.unwrap();
    let ok = next_json(ws).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(ok["result"]["card"]["description"], big_card()["description"]);
    (counters.total() - before, (req.len() + ok.to_string().len()) as u64)
}

#[tokio::test]
async fn an_offer_of_permessage_deflate_is_agreed_and_frames_are_compressed() {
    let node = spawn_node(&sqlite_url(), &["--ws-window-bits", "11"]);
    let key = PrivateKeySigner::random();
    let (mut ws, ext, counters) =
        connect(&node, Some("permessage-deflate; client_max_window_bits")).await;
    assert_eq!(
        ext.as_deref(),
        Some("permessage-deflate; server_max_window_bits=11; client_max_window_bits=11")
    );
    login(&mut ws, &key).await;
    let (wire, json) = register_exchange(&mut ws, &counters).await;
    assert!(wire * 5 < json, "compressed exchange took {wire} bytes for {json} bytes of JSON");

    // The same exchange without the extension costs at least the JSON itself.
    let key2 = PrivateKeySigner::random();
    let (mut plain, ext, counters) = connect(&node, None).await;
    assert_eq!(ext, None);
    login(&mut plain, &key2).await;
    let (wire, json) = register_exchange(&mut plain, &counters).await;
    assert!(wire >= json, "plain exchange took {wire} bytes for {json} bytes of JSON");
}

#[tokio::test]
async fn a_client_that_offers_nothing_still_works_uncompressed() {
    let node = spawn_node(&sqlite_url(), &[]);
    // tokio-tungstenite offers no extension at all.
    let key = PrivateKeySigner::random();
    let mut ws = raw_login(&node, &key).await;
    send_json(&mut ws, json!({"type":"ping","req_id":1})).await;
    let f = wait_for(&mut ws, |f| matches!(f, ServerFrame::Pong { .. })).await;
    assert!(matches!(f, ServerFrame::Pong { .. }));
    // A raw upgrade without the header gets no extension in the answer.
    let (mut ws, ext, _) = connect(&node, None).await;
    assert_eq!(ext, None);
    login(&mut ws, &PrivateKeySigner::random()).await;
}

#[tokio::test]
async fn ws_compression_off_refuses_to_negotiate() {
    let node = spawn_node(&sqlite_url(), &["--ws-compression", "off"]);
    let key = PrivateKeySigner::random();
    let (mut ws, ext, counters) =
        connect(&node, Some("permessage-deflate; client_max_window_bits, permessage-deflate"))
            .await;
    assert_eq!(ext, None, "the node agreed to {ext:?} with compression off");
    login(&mut ws, &key).await;
    let (wire, json) = register_exchange(&mut ws, &counters).await;
    assert!(wire >= json, "{wire} bytes on the wire for {json} bytes of JSON");
}

#[tokio::test]
async fn a_malformed_offer_is_declined_not_fatal() {
    let node = spawn_node(&sqlite_url(), &[]);
    let (mut ws, ext, _) =
        connect(&node, Some("permessage-deflate; server_max_window_bits=99; bogus")).await;
    assert_eq!(ext, None);
    login(&mut ws, &PrivateKeySigner::random()).await;
}

#[tokio::test]
async fn a_compressed_frame_that_inflates_past_the_limit_closes_1009() {
    let node = spawn_node(&sqlite_url(), &["--max-frame-bytes", "65536"]);
    let key = PrivateKeySigner::random();
    let (mut ws, ext, counters) = connect(&node, Some("permessage-deflate")).await;
    assert!(ext.is_some());
    login(&mut ws, &key).await;
    // ~200 KB of JSON that deflates to a few hundred bytes: small on the wire, too big inflated.
    let bomb = json!({"type":"ping","req_id":"x".repeat(200_000)}).to_string();
    let before = counters.written();
    ws.send(Frame::text(bomb)).await.unwrap();
    assert!(counters.written() - before < 4096, "the frame went out uncompressed");
    let code = loop {
        let f = tokio::time::timeout(DEADLINE, ws.next_frame()).await.expect("close");
        match f {
            Ok(f) if f.opcode() == OpCode::Close => break f.close_code().map(u16::from),
            Ok(_) => continue,
            Err(e) => panic!("connection ended without a close frame: {e}"),
        }
    };
    assert_eq!(code, Some(1009));
}
