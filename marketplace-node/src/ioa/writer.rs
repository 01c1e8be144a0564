//! Group commit: the node's single message writer. Sends from every transport go through one
//! bounded queue to one task that persists them in batches (one transaction per batch, see
//! [`Store::append_batch`]), then fans the new messages out in seq order (local hub and mesh)
//! and acks each sender. A full queue is answered with [`Error::Overloaded`] instead of growing
//! memory.

use std::sync::Arc;

use alloy_primitives::Address;
use axum::extract::ws::Utf8Bytes;
use reef_wire::{SendMessage, ServerFrame};
use tokio::sync::{mpsc, oneshot};

use super::encode;
use super::error::{Error, Result};
use super::hub::{ConnHandle, Hub};
use super::mesh::Mesh;
use super::store::{Appended, FrameTemplate, NewMessage, Store};

/// Largest batch (one transaction).
pub const MAX_BATCH: usize = 1024;

/// Outcome of one send: (seq, duplicate), or `None` when the sender may not post there.
type Reply = Result<Option<(u64, bool)>>;

/// Where the outcome of a send goes.
#[derive(Debug)]
enum ReplyTo {
    /// A waiting caller (REST).
    Wait(oneshot::Sender<Reply>),
    /// A WebSocket connection: the writer pushes the `ack` (or `error`) frame itself, so a
    /// connection can have many sends in flight (pipelining) while their order is kept.
    Conn(ConnHandle, Option<reef_wire::ReqId>),
}

#[derive(Debug)]
struct Job {
    caller: Address,
    msg: SendMessage,
    ts: u64,
    reply: ReplyTo,
    /// When the send entered the queue.
    queued: std::time::Instant,
}

/// Handle on the writer task (cheap to clone).
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Start the writer with a queue of `queue_len` sends. It runs on its own thread (a
    /// current-thread runtime with its own database connection), so that its statement round
    /// trips never wait behind the many connection tasks of the main runtime: the commit
    /// latency stays low under load.
    pub async fn spawn(
        database_url: &str,
        hub: Arc<Hub>,
        mesh: Option<Mesh>,
        queue_len: usize,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel(queue_len.max(1));
        let (ready_tx, ready) = oneshot::channel::<Result<()>>();
        let url = database_url.to_owned();
        std::thread::Builder::new()
            .name("reef-writer".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Internal(format!("writer runtime: {e}"))));
                        return;
                    }
                };
                rt.block_on(async move {
                    let stores = async {
                        let store = Store::connect_writer(&url).await?;
                        let checkpointer = if store.is_postgres() {
                            None
                        } else {
                            Some(Store::connect_checkpointer(&url).await?)
                        };
                        Ok::<_, Error>((store, checkpointer))
                    };
                    match stores.await {
                        Ok((store, checkpointer)) => {
                            let _ = ready_tx.send(Ok(()));
                            if let Some(c) = checkpointer {
                                tokio::spawn(checkpoints(c));
                            }
                            run(store, hub, mesh, rx).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| Error::Internal(format!("writer thread: {e}")))?;
        ready.await.map_err(|_| Error::Internal("writer thread died".into()))??;
        Ok(Self { tx })
    }

    /// Queue a send and wait for it to be committed and fanned out. `Ok(None)`: not a member
    /// (or no such group).
    pub async fn send(&self, caller: Address, msg: SendMessage, ts: u64) -> Reply {
        let (reply, rx) = oneshot::channel();
        let queued = std::time::Instant::now();
        self.queue(Job { caller, msg, ts, reply: ReplyTo::Wait(reply), queued })?;
        rx.await.map_err(|_| Error::Internal("writer dropped a send".into()))?
    }

    /// Queue a send from a WebSocket connection without waiting: its `ack` (or `error`) frame
    /// is pushed to `conn` after the commit. Sends of one connection keep their order.
    pub fn send_to_conn(
        &self,
        conn: &ConnHandle,
        req_id: Option<reef_wire::ReqId>,
        msg: SendMessage,
        ts: u64,
    ) -> Result<()> {
        self.queue(Job {
            caller: conn.address,
            msg,
            ts,
            reply: ReplyTo::Conn(conn.clone(), req_id),
            queued: std::time::Instant::now(),
        })
    }

    /// Sends queued and not yet taken by the writer.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    fn queue(&self, job: Job) -> Result<()> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Overloaded,
            mpsc::error::TrySendError::Closed(_) => Error::Internal("writer stopped".into()),
        })
    }
}

async fn run(store: Store, hub: Arc<Hub>, mesh: Option<Mesh>, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch = std::mem::take(&mut jobs);
        let started = std::time::Instant::now();
        let results = match commit(&store, &batch).await {
            Ok(r) => r.into_iter().map(Ok).collect(),
            Err(e) if batch.len() > 1 => {
                // Isolate whatever failed: retry one by one so one bad send fails alone.
                tracing::warn!(error = %e, n = batch.len(), "batch commit failed; retrying singly");
                let mut r = Vec::with_capacity(batch.len());
                for job in &batch {
                    r.push(
                        commit(&store, std::slice::from_ref(job)).await.map(|mut v| v.remove(0)),
                    );
                }
                r
            }
            Err(e) => vec![Err(e)],
        };
        let n = batch.len();
        let m = &crate::metrics::METRICS;
        m.commit_batch_size.observe(n as u64);
        let committed = started.elapsed();
        m.commit_seconds.observe_secs(committed.as_secs_f64());
        let queued: u128 =
            batch.iter().map(|j| started.saturating_duration_since(j.queued).as_micros()).sum();
        let add = |c: &std::sync::atomic::AtomicU64, us: u128| {
            c.fetch_add(us.min(u64::MAX as u128) as u64, std::sync::atomic::Ordering::Relaxed);
        };
        add(&m.send_queue_wait_us, queued);
        add(&m.send_commit_wait_us, committed.as_micros() * n as u128);
        finish(&hub, mesh.as_ref(), batch, results).await;
        tracing::trace!(n, ?committed, total = ?started.elapsed(), "batch");
    }
}

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// SQLite: checkpoint the WAL beside the writer (its own connection, on the writer's thread
/// while the writer waits for its commits), so that no commit of the writer pays for one
/// ([`Store::connect_writer`]). Between two checkpoints the WAL grows by what was committed in
/// [`CHECKPOINT_EVERY`]; a checkpoint with nothing new to copy does no I/O. A failure is
/// logged once, not every pass, until a checkpoint succeeds again.
async fn checkpoints(store: Store) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        match store.checkpoint_passive().await {
            Ok((frames, copied)) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("WAL checkpoints work again");
                }
                tracing::trace!(frames, copied, took = ?started.elapsed(), "checkpoint");
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "WAL checkpoint failed; the writer's own \
                     checkpoints bound the WAL until one succeeds (retried every 100 ms)");
            }
            Err(_) => {}
        }
    }
}

async fn commit(store: &Store, batch: &[Job]) -> Result<Vec<Option<Appended>>> {
    let items: Vec<NewMessage<'_>> = batch
        .iter()
        .map(|j| NewMessage { group_id: &j.msg.group_id, msg_id: &j.msg.msg_id, sender: &j.caller })
        .collect();
    let out = store.append_batch(&items, |i| frame(&batch[i])).await?;
    if out.len() != batch.len() {
        return Err(Error::Internal("batch result length mismatch".into()));
    }
    Ok(out)
}

/// The stored `message` frame of a job (serialized once; shared by every recipient), around
/// its seq: the frame is serialized with a placeholder seq and cut at its digits.
fn frame(job: &Job) -> FrameTemplate {
    let m = &job.msg;
    let env = reef_wire::Envelope {
        group_id: m.group_id.clone(),
        sender_id: job.caller,
        state: m.state.clone(),
        msg_id: m.msg_id.clone(),
        seq: SEQ_PLACEHOLDER,
        ts: job.ts,
        task_desc: m.task_desc.clone(),
        body: m.body.clone(),
        extra: m.extra.clone(),
    };
    split_at_seq(serde_json::to_string(&ServerFrame::Message(env)).unwrap_or_default())
}

/// The seq a frame is serialized with before it is cut ([`split_at_seq`]).
const SEQ_PLACEHOLDER: u64 = u64::MAX;

/// The placeholder's member as serialized (checked against [`SEQ_PLACEHOLDER`] in a test):
/// found once per frame without formatting it again.
const SEQ_MEMBER: &str = "\"seq\":18446744073709551615";
/// Where the member's digits start.
const SEQ_DIGITS_AT: usize = "\"seq\":".len();

/// `text` cut around the placeholder seq. The envelope's `seq` member comes before its body
/// and extra members, and a quote inside a JSON string is escaped, so the first
/// `"seq":<placeholder>` is the member itself.
fn split_at_seq(text: String) -> FrameTemplate {
    match text.find(SEQ_MEMBER) {
        Some(at) => FrameTemplate {
            tail: text[at + SEQ_MEMBER.len()..].to_owned(),
            head: text[..at + SEQ_DIGITS_AT].to_owned(),
        },
        // Not reachable: an envelope of JSON values always serializes, with its seq.
        None => FrameTemplate { head: text, tail: String::new() },
    }
}

/// Fan out the new messages in (group, seq) order, then ack every sender.
async fn finish(
    hub: &Arc<Hub>,
    mesh: Option<&Mesh>,
    batch: Vec<Job>,
    results: Vec<Result<Option<Appended>>>,
) {
    let mut fresh: Vec<(usize, u64, Utf8Bytes)> = Vec::new();
    let mut replies: Vec<(ReplyTo, String, String, Reply)> = Vec::with_capacity(batch.len());
    let mut groups: Vec<String> = Vec::with_capacity(batch.len());
    let mut senders: Vec<Address> = Vec::with_capacity(batch.len());
    for (i, (job, res)) in batch.into_iter().zip(results).enumerate() {
        let reply = match res {
            Ok(Some(a)) => {
                let r = Ok(Some((a.seq, a.duplicate)));
                if !a.duplicate {
                    fresh.push((i, a.seq, Utf8Bytes::from(a.frame)));
                }
                r
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        groups.push(job.msg.group_id.clone());
        senders.push(job.caller);
        replies.push((job.reply, job.msg.group_id, job.msg.msg_id, reply));
    }
    fresh.sort_by(|a, b| groups[a.0].cmp(&groups[b.0]).then(a.1.cmp(&b.1)));
    for (i, seq, f) in &fresh {
        hub.publish(&groups[*i], *seq, f.clone(), Some(senders[*i]));
    }
    if let Some(mesh) = mesh {
        for (i, seq, f) in &fresh {
            mesh.publish(&groups[*i], *seq, f).await;
        }
    }
    for (to, group_id, msg_id, r) in replies {
        match to {
            ReplyTo::Wait(tx) => {
                let _ = tx.send(r);
            }
            ReplyTo::Conn(conn, req_id) => {
                let frame = match r {
                    Ok(Some((seq, duplicate))) => {
                        ServerFrame::Ack { req_id, group_id, msg_id, seq, duplicate }
                    }
                    Ok(None) => ServerFrame::Error {
                        req_id,
                        code: reef_wire::ErrorCode::Forbidden,
                        message: super::not_member(&group_id),
                    },
                    Err(e) => {
                        let (code, message) = e.public();
                        ServerFrame::Error { req_id, code, message }
                    }
                };
                conn.push(encode(&frame));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored frame is exactly the envelope serialized with its seq, whatever the message
    /// carries (a body or extra member that spells the placeholder, quotes, a large seq).
    #[test]
    fn a_frame_cut_at_its_seq_is_the_envelope_with_that_seq() {
        let placeholder = format!("\"seq\":{SEQ_PLACEHOLDER}");
        assert_eq!(placeholder, SEQ_MEMBER);
        let msg: SendMessage = serde_json::from_value(serde_json::json!({
            "group_id": "g",
            "msg_id": format!("m {placeholder}"),
            "state": "discussion",
            "body": { "seq": SEQ_PLACEHOLDER, "text": placeholder },
            "note": placeholder,
        }))
        .unwrap();
        let (tx, _rx) = oneshot::channel();
        let job = Job {
            caller: Address::repeat_byte(7),
            msg,
            ts: 42,
            reply: ReplyTo::Wait(tx),
            queued: std::time::Instant::now(),
        };
        let t = frame(&job);
        for seq in [1u64, 9, 10, 123_456_789, SEQ_PLACEHOLDER - 1] {
            let stored = t.with_seq(seq);
            let mut env = match serde_json::from_str::<ServerFrame>(&stored).unwrap() {
                ServerFrame::Message(env) => env,
                other => panic!("not a message: {other:?}"),
            };
            assert_eq!(env.seq, seq);
            env.seq = SEQ_PLACEHOLDER;
            let body = env.body.clone().unwrap();
            assert_eq!(body["seq"], serde_json::json!(SEQ_PLACEHOLDER), "body untouched");
            assert_eq!(body["text"], serde_json::json!(placeholder));
            assert_eq!(env.extra["note"], serde_json::json!(placeholder));
            let direct =
                serde_json::to_string(&ServerFrame::Message(reef_wire::Envelope { seq, ..env }))
                    .unwrap();
            assert_eq!(stored, direct);
        }
    }
}
