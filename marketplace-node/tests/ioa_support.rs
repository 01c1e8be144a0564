//! Shared helpers of the IoA integration tests: start real `reef node` processes, make
//! throw-away Postgres databases, speak raw WebSocket/HTTP. Included with `#[path]`.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::new_without_default)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use futures::{SinkExt, StreamExt};
use reef_wire::ServerFrame;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn rand_hex(n: usize) -> String {
    (0..n).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

pub fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("reef-ioa-test-{}", rand_hex(6)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running `reef node` child process, killed on drop.
pub struct NodeProc {
    pub child: Child,
    pub addr: String,
    pub node_id: String,
}

impl NodeProc {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `reef node` on a random port with the given extra args; waits for its JSON line.
pub fn spawn_node(database_url: &str, extra: &[&str]) -> NodeProc {
    let node_id = format!("node-{}", rand_hex(4));
    let mut child = Command::new(env!("CARGO_BIN_EXE_reef"))
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--node-id",
            &node_id,
            "--database-url",
            database_url,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn reef node");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read node stdout");
    let v: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("node did not start: {e}: {line:?}"));
    NodeProc { child, addr: v["listen"].as_str().unwrap().to_owned(), node_id }
}

pub fn sqlite_url() -> String {
    format!("sqlite://{}/node.db", temp_dir().display())
}

/// A throw-away Postgres database, dropped on drop.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub fn new() -> Self {
        let name = format!("reef_ioa_{}", rand_hex(6));
        let ok = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qc",
                &format!("CREATE DATABASE {name}"),
            ])
            .status()
            .expect("psql");
        assert!(ok.success(), "create database");
        Self { url: format!("postgres://postgres@127.0.0.1:5432/{name}"), name }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}

/// Raw WebSocket connect; returns the socket and the challenge.
pub async fn raw_connect(node: &NodeProc) -> (Ws, ServerFrame) {
    let (mut ws, _) = tokio_tungstenite::connect_async(node.ws_url()).await.expect("connect");
    let ch = next_frame(&mut ws).await.expect("challenge");
    (ws, ch)
}

pub fn sign(key: &PrivateKeySigner, message: &str) -> String {
    let sig = key.sign_message_sync(message.as_bytes()).unwrap();
    alloy_primitives::hex::encode_prefixed(sig.as_bytes())
}

/// Raw connect + authenticate.
pub async fn raw_login(node: &NodeProc, key: &PrivateKeySigner) -> Ws {
    let (mut ws, ch) = raw_connect(node).await;
    let ServerFrame::Challenge { message, .. } = ch else { panic!("{ch:?}") };
    send_json(
        &mut ws,
        serde_json::json!({"type":"auth","address":key.address(),"signature":sign(key, &message)}),
    )
    .await;
    let w = next_frame(&mut ws).await.unwrap();
    assert!(matches!(w, ServerFrame::Welcome { .. }), "{w:?}");
    ws
}

pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

pub async fn send_text(ws: &mut Ws, t: &str) {
    ws.send(Message::text(t.to_owned())).await.expect("send");
}

/// Next text frame as a ServerFrame; Err(close code) when the node closed.
pub async fn next_frame(ws: &mut Ws) -> Result<ServerFrame, Option<u16>> {
    loop {
        let m =
            tokio::time::timeout(DEADLINE, ws.next()).await.expect("timed out waiting for a frame");
        match m {
            Some(Ok(Message::Text(t))) => {
                return Ok(serde_json::from_str(t.as_str()).unwrap_or_else(|e| panic!("{e}: {t}")));
            }
            Some(Ok(Message::Close(c))) => return Err(c.map(|c| u16::from(c.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// Skip frames until one matches.
pub async fn wait_for(ws: &mut Ws, mut pred: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
    loop {
        let f = next_frame(ws).await.unwrap_or_else(|c| panic!("closed {c:?} while waiting"));
        if pred(&f) {
            return f;
        }
    }
}

/// Minimal HTTP/1.1 JSON call (no client library needed): returns (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).expect("http connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status: u16 = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let payload = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

/// REST login; returns the bearer token.
pub fn rest_login(addr: &str, key: &PrivateKeySigner) -> String {
    let (_, ch) = http(addr, "POST", "/v1/auth/challenge", None, None);
    let sig = sign(key, ch["message"].as_str().unwrap());
    let (st, v) = http(
        addr,
        "POST",
        "/v1/auth/login",
        None,
        Some(&serde_json::json!({"address":key.address(),"nonce":ch["nonce"],"signature":sig})),
    );
    assert_eq!(st, 200, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

/// Poll `f` until it returns Some, or panic at the deadline.
pub async fn poll<T, F: std::future::Future<Output = Option<T>>>(mut f: impl FnMut() -> F) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "condition not met before the deadline");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
