//! The connection to a node: one supervisor task owns the WebSocket, authenticates, matches
//! replies to requests by `req_id`, deduplicates messages by `seq`, and on any disconnect
//! reconnects with back-off and re-joins every group the node had confirmed, with
//! `since_seq` = the last seq seen.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::Address;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use futures::SinkExt;
use reef_wire::{
    AgentCard, AgentInfo, AgentQuery, ClientFrame, Envelope, ErrorCode, GroupInfo, SendMessage,
    ServerFrame, State,
};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use yawc::{Frame, OpCode};

use crate::{Error, Result};

type Ws = yawc::TcpWebSocket;

/// Something that happened on the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message of a joined group (in seq order, each seq once).
    Message(Envelope),
    /// We were added to a group.
    Invited {
        /// Group.
        group_id: String,
        /// Inviter.
        by: Address,
        /// The node already joined this connection to the group (no [`Client::join`] needed:
        /// its messages arrive as [`Event::Message`]).
        joined: bool,
    },
    /// We were removed from a group.
    Removed {
        /// Group.
        group_id: String,
    },
    /// The connection dropped (reason); the client is reconnecting.
    Disconnected(String),
    /// The connection is (re-)established and groups were re-joined.
    Connected,
}

/// Stream of [`Event`]s.
pub type Events = mpsc::Receiver<Event>;

/// Connection options.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Keep reconnecting after the first successful connection.
    pub reconnect: bool,
    /// Capacity of the event channel (back-pressure on the socket when full).
    pub event_buffer: usize,
    /// Largest message accepted from the node (after decompression).
    pub max_message_bytes: usize,
    /// Offer permessage-deflate (RFC 7692) to the node; it is used when the node agrees
    /// (docs/protocol.md, "Compression"), plain frames otherwise.
    pub compression: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { reconnect: true, event_buffer: 4096, max_message_bytes: 4 << 20, compression: true }
    }
}

/// Runs `attempt` until it succeeds, fails for a reason `away` does not call "the node is away"
/// (not up yet, restarting), or `patience` has passed since the first try. Between tries it
/// pauses 250 ms, doubling up to [`MAX_RECONNECT_BACKOFF`], and tells `waiting` the failure,
/// the pause and the patience left. The one back-off every client of a node uses: the SDK's
/// connection, the earning-agent runtime's first requests, the CLI's REST calls.
pub async fn retry_while_away<T, E, F, Fut>(
    patience: Duration,
    away: impl Fn(&E) -> bool,
    mut waiting: impl FnMut(&E, Duration, Duration),
    mut attempt: F,
) -> std::result::Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
{
    let t0 = tokio::time::Instant::now();
    let mut step = Duration::from_millis(250);
    loop {
        match attempt().await {
            Err(e) if away(&e) && t0.elapsed() < patience => {
                let left = patience.saturating_sub(t0.elapsed());
                let pause = step.min(left);
                waiting(&e, pause, left);
                tokio::time::sleep(pause).await;
                step = (step * 2).min(MAX_RECONNECT_BACKOFF);
            }
            other => return other,
        }
    }
}

/// Longest pause between two reconnect attempts (the back-off doubles from 50 ms up to this).
/// A node that restarts waits this long, plus a margin, before it announces work that was
/// pending when it went down, so the agents of its previous life can reconnect first.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(5);

struct Cmd {
    frame: ClientFrame,
    reply: oneshot::Sender<Result<ServerFrame>>,
}

#[derive(Default)]
struct Shared {
    /// Joined groups → highest seq seen (from the moment a join is asked for, so that the
    /// replay following the node's `ok` is not dropped).
    joined: HashMap<String, u64>,
    /// Groups whose join the node confirmed: re-joined after a reconnect. A join still in
    /// flight is not among them, so a connection that comes up meanwhile does not join the
    /// group a second time (two replays of the same history on one queue).
    confirmed: HashSet<String>,
    /// Where swarm frames go (`swarm_query`, `swarm_award`, `swarm_paid`, `swarm_cancelled`),
    /// once [`Client::swarm_listen`] or [`Client::swarm_frames`] was called.
    swarm: Option<mpsc::Sender<crate::swarm::SwarmPush>>,
    /// Skills listened for (`swarm_listen`), sent again after a reconnect.
    listening: Option<Vec<String>>,
}

/// A request sent and waiting for its reply.
struct Pending {
    reply: oneshot::Sender<Result<ServerFrame>>,
    /// The group, when the request is a join.
    join: Option<String>,
}

/// A connected agent. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    address: Address,
    node_id: Arc<Mutex<String>>,
    cmds: mpsc::Sender<Cmd>,
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("address", &self.address).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh random message id.
pub fn new_msg_id() -> String {
    let v: [u8; 12] = rand::random();
    alloy_primitives::hex::encode(v)
}

async fn connect_and_auth(
    url: &str,
    signer: &PrivateKeySigner,
    opts: &ConnectOptions,
) -> Result<(Ws, String)> {
    // yawc's bounds are exclusive; they also bound an inflated message.
    let max = opts.max_message_bytes.saturating_add(1);
    let mut options = yawc::Options::default().with_limits(max, max).with_utf8().with_no_delay();
    if opts.compression {
        // Offer `client_max_window_bits` so that the node can bound the window we compress
        // with (and so its memory for our connection).
        options = options
            .with_compression_level(yawc::CompressionLevel::default())
            .with_client_max_window_bits(15);
    }
    let url = url.parse().map_err(|e| Error::Connect(format!("{url}: {e}")))?;
    let mut ws = yawc::WebSocket::connect(url)
        .with_options(options)
        .await
        .map_err(|e| Error::Connect(e.to_string()))?;
    let first = next_frame(&mut ws).await?;
    let ServerFrame::Challenge { node_id, message, .. } = first else {
        return Err(Error::Protocol("expected a challenge".into()));
    };
    let sig =
        signer.sign_message_sync(message.as_bytes()).map_err(|e| Error::Signer(e.to_string()))?;
    let auth = ClientFrame::Auth {
        address: signer.address(),
        signature: alloy_primitives::hex::encode_prefixed(sig.as_bytes()),
    };
    ws.send(Frame::text(reef_wire::encode_client_frame(None, &auth)))
        .await
        .map_err(|e| Error::Connect(e.to_string()))?;
    match next_frame(&mut ws).await? {
        ServerFrame::Welcome { .. } => Ok((ws, node_id)),
        ServerFrame::Error { code, message, .. } => Err(Error::Auth { code, message }),
        other => Err(Error::Protocol(format!("unexpected frame before welcome: {other:?}"))),
    }
}

/// "closed 1008 reason" for a close frame.
fn close_text(f: &Frame) -> String {
    match f.close_code() {
        Some(code) => format!(
            "closed {} {}",
            u16::from(code),
            f.close_reason().ok().flatten().unwrap_or_default()
        ),
        None => "closed".into(),
    }
}

async fn next_frame(ws: &mut Ws) -> Result<ServerFrame> {
    loop {
        let f = match ws.next_frame().await {
            Ok(f) => f,
            Err(yawc::WebSocketError::ConnectionClosed) => return Err(Error::Disconnected),
            Err(e) => return Err(Error::Connect(e.to_string())),
        };
        match f.opcode() {
            OpCode::Text => {
                return serde_json::from_slice(f.payload())
                    .map_err(|e| Error::Protocol(e.to_string()));
            }
            OpCode::Close => return Err(Error::Connect(close_text(&f))),
            _ => continue,
        }
    }
}

impl Client {
    /// Connect to `url` (e.g. `ws://127.0.0.1:7700/v1/ws`) and authenticate as `signer`.
    pub async fn connect(url: &str, signer: PrivateKeySigner) -> Result<(Self, Events)> {
        Self::connect_with(url, signer, ConnectOptions::default()).await
    }

    /// [`Client::connect`] with options.
    pub async fn connect_with(
        url: &str,
        signer: PrivateKeySigner,
        opts: ConnectOptions,
    ) -> Result<(Self, Events)> {
        let (ws, node_id) = connect_and_auth(url, &signer, &opts).await?;
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (ev_tx, ev_rx) = mpsc::channel(opts.event_buffer.max(1));
        let client = Self {
            address: signer.address(),
            node_id: Arc::new(Mutex::new(node_id)),
            cmds: cmd_tx,
            shared: Arc::default(),
        };
        let sup = Supervisor {
            url: url.to_owned(),
            signer,
            opts,
            shared: client.shared.clone(),
            node_id: client.node_id.clone(),
            events: ev_tx,
            cmds: cmd_rx,
            next_req: AtomicU64::new(1),
        };
        tokio::spawn(sup.run(ws));
        Ok((client, ev_rx))
    }

    /// [`Client::connect_with`], waiting for a node that is not up yet (not started, or
    /// restarting) with [`retry_while_away`]: `waiting` is told each failed connection and the
    /// pause before the next try. A refused login is returned at once.
    pub async fn connect_waiting(
        url: &str,
        signer: PrivateKeySigner,
        opts: ConnectOptions,
        patience: Duration,
        mut waiting: impl FnMut(&Error, Duration),
    ) -> Result<(Self, Events)> {
        retry_while_away(
            patience,
            |e| matches!(e, Error::Connect(_)),
            |e, pause, _| waiting(e, pause),
            || Self::connect_with(url, signer.clone(), opts.clone()),
        )
        .await
    }

    /// Our address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The id of the node we are connected to.
    pub fn node_id(&self) -> String {
        lock(&self.node_id).clone()
    }

    /// Send any frame and wait for its reply frame.
    pub async fn request(&self, frame: ClientFrame) -> Result<ServerFrame> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd { frame, reply: tx }).await.map_err(|_| Error::Closed)?;
        let reply = rx.await.map_err(|_| Error::Disconnected)??;
        match reply {
            ServerFrame::Error { code, message, .. } => Err(Error::Server { code, message }),
            other => Ok(other),
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        frame: ClientFrame,
        key: Option<&str>,
    ) -> Result<T> {
        match self.request(frame).await? {
            ServerFrame::Ok { mut result, .. } => {
                if let Some(k) = key {
                    result = result.get_mut(k).map(Value::take).unwrap_or(Value::Null);
                }
                serde_json::from_value(result).map_err(|e| Error::Protocol(e.to_string()))
            }
            other => Err(Error::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Create or update our agent card.
    pub async fn register(&self, card: AgentCard) -> Result<AgentInfo> {
        self.call(ClientFrame::Register { card }, None).await
    }

    /// Look up an agent.
    pub async fn get_agent(&self, address: Address) -> Result<AgentInfo> {
        self.call(ClientFrame::GetAgent { address }, None).await
    }

    /// Ranked search of agents.
    pub async fn discover(&self, query: AgentQuery) -> Result<Vec<AgentInfo>> {
        self.call(ClientFrame::Discover { query }, Some("agents")).await
    }

    /// Create a group with initial members (and optional parent group).
    pub async fn create_group(
        &self,
        name: &str,
        members: &[Address],
        parent_group_id: Option<&str>,
    ) -> Result<GroupInfo> {
        let frame = ClientFrame::CreateGroup {
            name: name.into(),
            members: members.to_vec(),
            parent_group_id: parent_group_id.map(Into::into),
        };
        self.call(frame, None).await
    }

    /// Add a member (creator only).
    pub async fn invite(&self, group_id: &str, agent: Address) -> Result<GroupInfo> {
        self.call(ClientFrame::Invite { group_id: group_id.into(), agent }, None).await
    }

    /// Remove a member (creator only, or ourselves).
    pub async fn remove(&self, group_id: &str, agent: Address) -> Result<()> {
        self.call::<Value>(ClientFrame::Remove { group_id: group_id.into(), agent }, None)
            .await
            .map(|_| ())
    }

    /// Our groups.
    pub async fn list_groups(&self) -> Result<Vec<GroupInfo>> {
        self.call(ClientFrame::ListGroups {}, Some("groups")).await
    }

    /// Follow a group, receiving every message with `seq > since_seq` (None: continue after the
    /// last one this client saw, or from the start). Returns the group's last seq at join time.
    pub async fn join(&self, group_id: &str, since_seq: Option<u64>) -> Result<u64> {
        let since = since_seq
            .unwrap_or_else(|| lock(&self.shared).joined.get(group_id).copied().unwrap_or(0));
        lock(&self.shared).joined.insert(group_id.to_owned(), since);
        let res: Value = self
            .call(ClientFrame::Join { group_id: group_id.into(), since_seq: since }, None)
            .await
            .inspect_err(|_| {
                let mut sh = lock(&self.shared);
                sh.joined.remove(group_id);
                sh.confirmed.remove(group_id);
            })?;
        Ok(res.get("last_seq").and_then(Value::as_u64).unwrap_or(0))
    }

    /// Stop following a group on this connection.
    pub async fn leave(&self, group_id: &str) -> Result<()> {
        {
            let mut sh = lock(&self.shared);
            sh.joined.remove(group_id);
            sh.confirmed.remove(group_id);
        }
        self.call::<Value>(ClientFrame::Leave { group_id: group_id.into() }, None).await.map(|_| ())
    }

    /// Post a message with a fresh `msg_id`; returns its seq.
    pub async fn send(
        &self,
        group_id: &str,
        state: State,
        body: Option<Value>,
        task_desc: Option<Value>,
    ) -> Result<u64> {
        self.send_message(SendMessage {
            group_id: group_id.into(),
            msg_id: new_msg_id(),
            state,
            task_desc,
            body,
            extra: Map::new(),
        })
        .await
        .map(|(seq, _)| seq)
    }

    /// Post a fully specified message (idempotent on `msg_id`); returns (seq, duplicate).
    pub async fn send_message(&self, msg: SendMessage) -> Result<(u64, bool)> {
        match self.request(ClientFrame::Send(msg)).await? {
            ServerFrame::Ack { seq, duplicate, .. } => Ok((seq, duplicate)),
            other => Err(Error::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Highest seq seen per joined group.
    pub fn cursors(&self) -> HashMap<String, u64> {
        lock(&self.shared).joined.clone()
    }

    /// Routes swarm frames to a new receiver (replacing an earlier one).
    pub(crate) fn swarm_channel(&self, cap: usize) -> mpsc::Receiver<crate::swarm::SwarmPush> {
        let (tx, rx) = mpsc::channel(cap.max(1));
        lock(&self.shared).swarm = Some(tx);
        rx
    }

    /// Remembers the skills listened for (re-sent after a reconnect).
    pub(crate) fn set_listening(&self, skills: Option<Vec<String>>) {
        lock(&self.shared).listening = skills;
    }
}

struct Supervisor {
    url: String,
    signer: PrivateKeySigner,
    opts: ConnectOptions,
    shared: Arc<Mutex<Shared>>,
    node_id: Arc<Mutex<String>>,
    events: mpsc::Sender<Event>,
    cmds: mpsc::Receiver<Cmd>,
    next_req: AtomicU64,
}

enum End {
    Shutdown,
    Dropped(String),
}

impl Supervisor {
    async fn run(mut self, first: Ws) {
        let mut ws = Some(first);
        let mut backoff = Duration::from_millis(50);
        loop {
            if let Some(socket) = ws.take() {
                backoff = Duration::from_millis(50);
                match self.serve(socket).await {
                    End::Shutdown => return,
                    End::Dropped(reason) => {
                        if self.events.send(Event::Disconnected(reason)).await.is_err()
                            || !self.opts.reconnect
                        {
                            return;
                        }
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
            match connect_and_auth(&self.url, &self.signer, &self.opts).await {
                Ok((s, node_id)) => {
                    *lock(&self.node_id) = node_id;
                    ws = Some(s);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "reconnect failed");
                    if self.cmds.is_closed() {
                        return;
                    }
                }
            }
        }
    }

    async fn serve(&mut self, mut ws: Ws) -> End {
        let mut pending: HashMap<String, Pending> = HashMap::new();
        // Re-join every group the node had confirmed, after the last seq we saw.
        let joined: Vec<(String, u64)> = {
            let sh = lock(&self.shared);
            sh.confirmed
                .iter()
                .map(|g| (g.clone(), sh.joined.get(g).copied().unwrap_or(0)))
                .collect()
        };
        for (group_id, since_seq) in joined {
            let f = reef_wire::encode_client_frame(
                Some("rejoin"),
                &ClientFrame::Join { group_id, since_seq },
            );
            if let Err(e) = ws.send(Frame::text(f)).await {
                return End::Dropped(e.to_string());
            }
        }
        let listening = lock(&self.shared).listening.clone();
        if let Some(skills) = listening {
            let f = reef_wire::encode_client_frame(
                Some("relisten"),
                &ClientFrame::SwarmListen(reef_wire::swarm::SwarmListen { skills }),
            );
            if let Err(e) = ws.send(Frame::text(f)).await {
                return End::Dropped(e.to_string());
            }
        }
        let _ = self.events.send(Event::Connected).await;
        let end = loop {
            tokio::select! {
                cmd = self.cmds.recv() => {
                    let Some(cmd) = cmd else {
                        let _ = ws.close().await;
                        break End::Shutdown;
                    };
                    let id = self.next_req.fetch_add(1, Ordering::Relaxed).to_string();
                    let text = reef_wire::encode_client_frame(Some(&id), &cmd.frame);
                    let join = match &cmd.frame {
                        ClientFrame::Join { group_id, .. } => Some(group_id.clone()),
                        _ => None,
                    };
                    pending.insert(id, Pending { reply: cmd.reply, join });
                    if let Err(e) = ws.send(Frame::text(text)).await {
                        break End::Dropped(e.to_string());
                    }
                }
                msg = ws.next_frame() => {
                    let f = match msg {
                        Err(yawc::WebSocketError::ConnectionClosed) => {
                            break End::Dropped("connection closed".into())
                        }
                        Err(e) => break End::Dropped(e.to_string()),
                        Ok(f) => f,
                    };
                    match f.opcode() {
                        OpCode::Close => break End::Dropped(close_text(&f)),
                        OpCode::Text => {}
                        _ => continue,
                    }
                    let frame: ServerFrame = match serde_json::from_slice(f.payload()) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(error = %e, "unparseable frame from node");
                            continue;
                        }
                    };
                    if !self.dispatch(frame, &mut pending).await {
                        break End::Shutdown;
                    }
                }
            }
        };
        for (_, p) in pending.drain() {
            let _ = p.reply.send(Err(Error::Disconnected));
        }
        end
    }

    /// Route one frame; false when the event receiver is gone and no one can use us anymore.
    async fn dispatch(
        &mut self,
        frame: ServerFrame,
        pending: &mut HashMap<String, Pending>,
    ) -> bool {
        let req_id = match &frame {
            ServerFrame::Ok { req_id, .. }
            | ServerFrame::Error { req_id, .. }
            | ServerFrame::Ack { req_id, .. }
            | ServerFrame::Pong { req_id } => req_id.clone(),
            _ => None,
        };
        if let Some(id) = req_id {
            if let Some(p) = pending.remove(id.as_str()) {
                if let (Some(group), ServerFrame::Ok { .. }) = (p.join, &frame) {
                    lock(&self.shared).confirmed.insert(group);
                }
                let _ = p.reply.send(Ok(frame));
            } else if let ServerFrame::Error { code, message, .. } = &frame {
                tracing::warn!(%code, message, "error frame for request {id}");
            }
            return true;
        }
        let frame = match crate::swarm::SwarmPush::from_frame(frame) {
            Ok(push) => {
                let tx = lock(&self.shared).swarm.clone();
                if let Some(tx) = tx
                    && tx.try_send(push).is_err()
                {
                    tracing::warn!("swarm frame dropped: the receiver is full or gone");
                }
                return true;
            }
            Err(other) => *other,
        };
        let event = match frame {
            ServerFrame::Message(env) => {
                {
                    let mut sh = lock(&self.shared);
                    let Some(last) = sh.joined.get_mut(&env.group_id) else { return true };
                    if env.seq <= *last {
                        return true;
                    }
                    *last = env.seq;
                }
                Event::Message(env)
            }
            ServerFrame::Invited { group_id, by, joined_since_seq } => {
                // Joined by the node at the invitation: follow it as if our own join had been
                // confirmed (messages above that seq pass, a reconnect re-joins it).
                if let Some(since) = joined_since_seq {
                    let mut sh = lock(&self.shared);
                    sh.joined.entry(group_id.clone()).or_insert(since);
                    sh.confirmed.insert(group_id.clone());
                }
                Event::Invited { group_id, by, joined: joined_since_seq.is_some() }
            }
            ServerFrame::Removed { group_id } => {
                let mut sh = lock(&self.shared);
                sh.joined.remove(&group_id);
                sh.confirmed.remove(&group_id);
                drop(sh);
                Event::Removed { group_id }
            }
            ServerFrame::Error { code, message, .. } => {
                if matches!(code, ErrorCode::RateLimited | ErrorCode::Overloaded) {
                    tracing::debug!("rate limited: {message}");
                } else {
                    tracing::warn!(%code, message, "error frame from node");
                }
                return true;
            }
            _ => return true,
        };
        if self.events.send(event).await.is_err() {
            // Nobody listens for events; keep serving requests.
            return !self.cmds.is_closed();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message;

    async fn send(
        ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        f: ServerFrame,
    ) {
        ws.send(Message::text(serde_json::to_string(&f).unwrap())).await.unwrap();
    }

    /// Plays a node's side of the login on `ws` (challenge, then welcome for whoever signed).
    async fn fake_login(
        ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        node_id: &str,
    ) {
        let challenge = ServerFrame::Challenge {
            v: 1,
            node_id: node_id.into(),
            nonce: "00".into(),
            expires: u64::MAX,
            message: "log in".into(),
        };
        send(ws, challenge).await;
        let auth = ws.next().await.unwrap().unwrap();
        let auth: Value = serde_json::from_str(auth.to_text().unwrap()).unwrap();
        let address = auth["address"].as_str().unwrap().parse().unwrap();
        send(ws, ServerFrame::Welcome { v: 1, address, node_id: node_id.into() }).await;
    }

    /// A node that starts late is waited for: the connection fails while nothing listens,
    /// `waiting` hears each failure, and the client connects once the node is up.
    #[tokio::test]
    async fn connect_waiting_rides_out_a_node_that_starts_late() {
        // A port with nothing listening yet.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let url = format!("ws://{addr}");
        let node = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let listener = TcpListener::bind(addr).await.unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            fake_login(&mut ws, "late").await;
            ws
        });
        let mut waits = 0;
        let signer = PrivateKeySigner::random();
        let (client, _events) = Client::connect_waiting(
            &url,
            signer,
            ConnectOptions { reconnect: false, ..Default::default() },
            Duration::from_secs(30),
            |e, _| {
                assert!(matches!(e, Error::Connect(_)), "{e}");
                waits += 1;
            },
        )
        .await
        .expect("connects once the node is up");
        assert!(waits >= 1, "the node was down at first");
        assert_eq!(client.node_id(), "late");
        drop(node.await.unwrap());

        // Nobody ever listens: it gives up after its patience with the connection error.
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let Err(e) = Client::connect_waiting(
            &format!("ws://{gone}"),
            PrivateKeySigner::random(),
            ConnectOptions::default(),
            Duration::from_millis(600),
            |_, _| {},
        )
        .await
        else {
            panic!("nothing listens there");
        };
        assert!(matches!(e, Error::Connect(_)), "{e}");
    }

    /// A join asked for at once after connecting (before the supervisor took the socket over)
    /// reaches the node once: only groups the node confirmed are re-joined on a (re)connect.
    /// Joining twice made the node replay the history twice into one bounded queue.
    #[tokio::test]
    async fn a_join_in_flight_is_sent_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let node = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            fake_login(&mut ws, "n").await;
            let mut joins = Vec::new();
            let quiet = tokio::time::sleep(Duration::from_millis(300));
            tokio::pin!(quiet);
            loop {
                tokio::select! {
                    _ = &mut quiet => break,
                    m = ws.next() => {
                        let Some(Ok(Message::Text(t))) = m else { break };
                        let v: Value = serde_json::from_str(t.as_str()).unwrap();
                        let req_id = reef_wire::ReqId::from_value(&v["req_id"]);
                        if v["type"] == "join" {
                            joins.push(req_id.as_deref().unwrap_or_default().to_owned());
                        }
                        let ok = ServerFrame::Ok { req_id, result: serde_json::json!({"last_seq": 0}) };
                        send(&mut ws, ok).await;
                    }
                }
            }
            joins
        });
        let (client, _events) = Client::connect(&url, PrivateKeySigner::random()).await.unwrap();
        client.join("g_1", Some(0)).await.unwrap();
        let joins = node.await.unwrap();
        assert_eq!(joins.len(), 1, "joins sent: {joins:?}");
        assert!(lock(&client.shared).confirmed.contains("g_1"), "re-joined after a reconnect");
    }

    /// The client offers permessage-deflate (letting the node bound its window) and talks
    /// deflated frames with a node that agrees.
    #[tokio::test]
    async fn the_client_offers_and_uses_permessage_deflate() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/ws", listener.local_addr().unwrap());
        let node = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                tcp.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let key = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("sec-websocket-key: ").or(l.strip_prefix("Sec-WebSocket-Key: "))
                })
                .unwrap()
                .trim()
                .to_owned();
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let ext = "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10";
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: {ext}\r\n\r\n"
            );
            tcp.write_all(answer.as_bytes()).await.unwrap();
            let opts =
                yawc::Options::default().with_compression_level(yawc::CompressionLevel::default());
            let mut ws = yawc::WebSocket::from_stream_with_extensions(
                tcp,
                yawc::Role::Server,
                Some(ext),
                opts,
            )
            .unwrap();
            let challenge = ServerFrame::Challenge {
                v: 1,
                node_id: "z".into(),
                nonce: "00".into(),
                expires: u64::MAX,
                message: "log in".into(),
            };
            ws.send(Frame::text(serde_json::to_string(&challenge).unwrap())).await.unwrap();
            let auth: Value =
                serde_json::from_slice(ws.next_frame().await.unwrap().payload()).unwrap();
            let address = auth["address"].as_str().unwrap().parse().unwrap();
            let welcome = ServerFrame::Welcome { v: 1, address, node_id: "z".into() };
            ws.send(Frame::text(serde_json::to_string(&welcome).unwrap())).await.unwrap();
            let reg: Value =
                serde_json::from_slice(ws.next_frame().await.unwrap().payload()).unwrap();
            assert_eq!(reg["type"], "register");
            let ok = ServerFrame::Ok {
                req_id: reef_wire::ReqId::from_value(&reg["req_id"]),
                result: serde_json::json!({"address": address, "card": reg["card"],
                    "online": true, "last_seen": 0, "score": 0.0}),
            };
            ws.send(Frame::text(serde_json::to_string(&ok).unwrap())).await.unwrap();
            head
        });
        let (client, _events) = Client::connect(&url, PrivateKeySigner::random()).await.unwrap();
        let card = AgentCard {
            name: "z".into(),
            description: "compressed ".repeat(50),
            skills: vec!["sort".into()],
            ..Default::default()
        };
        let info = client.register(card.clone()).await.unwrap();
        assert_eq!(info.card.description, card.description);
        let head = node.await.unwrap().to_ascii_lowercase();
        assert!(
            head.contains(
                "sec-websocket-extensions: permessage-deflate; client_max_window_bits=15"
            ),
            "{head}"
        );
    }
}
