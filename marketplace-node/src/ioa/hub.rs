//! In-memory fan-out of one node: which local connections follow which group, in-order
//! delivery per group (buffering out-of-order seqs and filling gaps from the database), and
//! the slow-consumer policy (bounded queue; when full, the connection is closed with a reason
//! and the member replays on reconnect).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use alloy_primitives::Address;
use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use super::error::Result;
use super::store::Store;

/// Close code sent to a consumer whose queue overflowed (application range).
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;

/// An outgoing item for a connection's writer task.
#[derive(Debug)]
pub enum Out {
    /// A text frame: a reply, a notification or a live message.
    Text(Utf8Bytes),
    /// A replayed message, holding one of its connection's replay slots until the writer takes
    /// it off the queue (see [`ConnHandle::replay_slots`]).
    Replay(Utf8Bytes, OwnedSemaphorePermit),
}

impl Out {
    /// The frame to write (a replay slot is released here, as the frame leaves the queue).
    pub fn into_text(self) -> Utf8Bytes {
        match self {
            Self::Text(t) | Self::Replay(t, _) => t,
        }
    }
}

/// Asks a connection's writer to close with a code and reason, bypassing its queue.
#[derive(Debug, Default)]
pub struct KillSwitch {
    reason: OnceLock<(u16, String)>,
    notify: Notify,
}

impl KillSwitch {
    /// Request the close (first request wins).
    pub fn kill(&self, code: u16, reason: &str) {
        if self.reason.set((code, reason.to_owned())).is_ok() {
            self.notify.notify_one();
        }
    }

    /// Wait until a close is requested; returns its code and reason.
    pub async fn killed(&self) -> (u16, String) {
        loop {
            if let Some(r) = self.reason.get() {
                return r.clone();
            }
            self.notify.notified().await;
        }
    }
}

/// A handle on one authenticated connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Node-local connection id.
    pub id: u64,
    /// Authenticated address.
    pub address: Address,
    /// Bounded queue to the writer.
    pub tx: mpsc::Sender<Out>,
    /// Out-of-band close.
    pub kill: Arc<KillSwitch>,
    /// Queue slots a replay may fill: half the queue, so that a replay pushing as fast as the
    /// consumer reads cannot leave the replies to its requests (the `ok` of a second join, the
    /// `ack` of a send) a full queue, which would close it as a slow consumer although it reads.
    pub replay_slots: Arc<Semaphore>,
}

impl ConnHandle {
    /// A handle on the connection writing `tx`'s queue.
    pub fn new(id: u64, address: Address, tx: mpsc::Sender<Out>) -> Self {
        let slots = (tx.max_capacity() / 2).max(1);
        Self {
            id,
            address,
            tx,
            kill: Arc::default(),
            replay_slots: Arc::new(Semaphore::new(slots)),
        }
    }

    /// Queue a frame without waiting; on a full queue apply the slow-consumer policy.
    pub fn push(&self, frame: Utf8Bytes) -> bool {
        match self.tx.try_send(Out::Text(frame)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kill.kill(
                    CLOSE_SLOW_CONSUMER,
                    "slow consumer: queue full, reconnect and replay with since_seq",
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[derive(Debug)]
struct Sub {
    conn: ConnHandle,
    live: bool,
    cursor: u64,
    /// Which join of the connection this is: a later join of the same group on the same
    /// connection replaces the subscription, and the earlier join's replay stops.
    join: u64,
}

#[derive(Debug, Default)]
struct GroupState {
    /// Set once `delivered` was read from the database. Until then every published frame is
    /// buffered: a frame stored and published between that read and the hub's registration
    /// would otherwise be in neither the replay nor the live stream (it was lost that way when
    /// an agent joined a group in the instant its first message was posted).
    ready: bool,
    delivered: u64,
    pending: BTreeMap<u64, Utf8Bytes>,
    subs: HashMap<u64, Sub>,
    filling: bool,
    overflowed: u64,
}

#[derive(Debug, Default)]
struct GroupHub {
    state: Mutex<GroupState>,
}

impl GroupHub {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Bound on out-of-order frames buffered per group before the oldest gap is force-filled.
const MAX_PENDING: usize = 4096;
/// Page size of replays and gap fills.
const PAGE: u32 = 256;

/// Frames a join reads with its membership check, for the first page of its replay.
pub const REPLAY_PAGE: u32 = PAGE;

/// The node's fan-out hub.
#[derive(Debug)]
pub struct Hub {
    store: Store,
    /// Read-mostly (every publish looks its group up): readers do not contend.
    groups: RwLock<HashMap<String, Arc<GroupHub>>>,
    conns: Mutex<HashMap<Address, HashMap<u64, ConnHandle>>>,
    next_conn: AtomicU64,
    next_join: AtomicU64,
    gap_wait: Duration,
    /// The main runtime: gap fills are spawned there even when `publish` is called from the
    /// group-commit writer's own thread.
    runtime: tokio::runtime::Handle,
    /// The group (and sender, when known) of every published message, for in-process
    /// observers such as the marketplace's work loop; nothing is sent while nobody listens.
    activity: tokio::sync::broadcast::Sender<Activity>,
}

/// A message was published in `group`.
#[derive(Debug, Clone)]
pub struct Activity {
    /// The group's id.
    pub group: Arc<str>,
    /// Who sent it, when this node accepted it; `None` for messages from the mesh and for
    /// replays (an observer must then assume anyone did).
    pub sender: Option<Address>,
}

/// Group ids buffered per activity observer; a slower observer is told it lagged.
const ACTIVITY_BUFFER: usize = 8192;

impl Hub {
    /// A hub reading gaps and replays from `store` (call from within the main runtime).
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            groups: RwLock::default(),
            conns: Mutex::default(),
            next_conn: AtomicU64::new(1),
            next_join: AtomicU64::new(1),
            gap_wait: Duration::from_millis(20),
            runtime: tokio::runtime::Handle::current(),
            activity: tokio::sync::broadcast::channel(ACTIVITY_BUFFER).0,
        })
    }

    /// A stream of the groups that got a new message (possibly repeated). On
    /// `RecvError::Lagged` the observer missed some and should assume any group changed.
    pub fn activity(&self) -> tokio::sync::broadcast::Receiver<Activity> {
        self.activity.subscribe()
    }

    fn groups_read(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<GroupHub>>> {
        self.groups.read().unwrap_or_else(|p| p.into_inner())
    }

    fn groups_write(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<GroupHub>>> {
        self.groups.write().unwrap_or_else(|p| p.into_inner())
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<Address, HashMap<u64, ConnHandle>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a new authenticated connection.
    pub fn attach(&self, address: Address, tx: mpsc::Sender<Out>) -> ConnHandle {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let h = ConnHandle::new(id, address, tx);
        self.conns().entry(address).or_default().insert(id, h.clone());
        h
    }

    /// Forget a connection and all its subscriptions.
    pub fn detach(&self, conn: &ConnHandle) {
        {
            let mut conns = self.conns();
            if let Some(m) = conns.get_mut(&conn.address) {
                m.remove(&conn.id);
                if m.is_empty() {
                    conns.remove(&conn.address);
                }
            }
        }
        let groups: Vec<(String, Arc<GroupHub>)> =
            self.groups_read().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (gid, g) in groups {
            let empty = {
                let mut st = g.lock();
                st.subs.remove(&conn.id);
                st.subs.is_empty()
            };
            if empty {
                self.drop_group_if_idle(&gid);
            }
        }
    }

    fn drop_group_if_idle(&self, group_id: &str) {
        let mut groups = self.groups_write();
        // A hub still being set up (no subscriber yet) stays: it buffers what is published.
        if let Some(g) = groups.get(group_id)
            && let st = g.lock()
            && st.ready
            && st.subs.is_empty()
        {
            drop(st);
            groups.remove(group_id);
        }
    }

    /// Send a frame to every local connection of `address` (e.g. `invited`).
    pub fn notify_agent(&self, address: &Address, frame: &Utf8Bytes) {
        let handles: Vec<ConnHandle> =
            self.conns().get(address).map(|m| m.values().cloned().collect()).unwrap_or_default();
        for h in handles {
            h.push(frame.clone());
        }
    }

    /// Tells every local connection of `address` that `by` added it to `group_id`, a group
    /// [`Self::created`] just now, and joins each one live at the group's current seq (0 unless
    /// an earlier invitee already wrote to it): `invited` carries that seq, and the agent sends
    /// no join (whose database read this saves). Should the group's hub be gone (dropped as
    /// idle by a concurrent detach), the invitation is the plain one and the agent joins.
    pub fn invite_joined(&self, group_id: &str, address: &Address, by: &Address) {
        let handles: Vec<ConnHandle> =
            self.conns().get(address).map(|m| m.values().cloned().collect()).unwrap_or_default();
        if handles.is_empty() {
            return;
        }
        let invited = |joined_since_seq| {
            super::encode(&reef_wire::ServerFrame::Invited {
                group_id: group_id.to_owned(),
                by: *by,
                joined_since_seq,
            })
        };
        let g = self.groups_read().get(group_id).cloned();
        let Some(g) = g.filter(|g| g.lock().ready) else {
            let frame = invited(None);
            handles.iter().for_each(|h| _ = h.push(frame.clone()));
            return;
        };
        let mut st = g.lock();
        let cursor = st.delivered;
        let frame = invited(Some(cursor));
        for h in handles {
            let join = self.next_join.fetch_add(1, Ordering::Relaxed);
            st.subs.insert(h.id, Sub { conn: h.clone(), live: true, cursor, join });
            // Under the group's lock: no later message of the group can overtake it.
            h.push(frame.clone());
        }
    }

    /// End the subscriptions of `address` to `group_id` on this node (after removal).
    pub fn unsubscribe_agent(&self, group_id: &str, address: &Address) {
        let g = self.groups_read().get(group_id).cloned();
        if let Some(g) = g {
            g.lock().subs.retain(|_, s| s.conn.address != *address);
            self.drop_group_if_idle(group_id);
        }
    }

    /// Stop following a group on one connection.
    pub fn leave(&self, group_id: &str, conn: &ConnHandle) {
        let g = self.groups_read().get(group_id).cloned();
        if let Some(g) = g {
            g.lock().subs.remove(&conn.id);
            self.drop_group_if_idle(group_id);
        }
    }

    /// A group this node just created (its creation committed, nothing published to it yet):
    /// its hub goes live at seq 0 at once, so the first subscriber needs no read of the
    /// stored last seq (one statement per group the marketplace opens).
    pub fn created(self: &Arc<Self>, group_id: &str) {
        let g = self.groups_write().entry(group_id.to_owned()).or_default().clone();
        self.init_hub(group_id, &g, 0);
    }

    /// The live hub of `group_id`, registered *before* its last stored seq is read, so that a
    /// frame published meanwhile is buffered instead of dropped: everything up to the read seq
    /// is replayed from the database, everything after it was published into the hub.
    async fn group_hub(self: &Arc<Self>, group_id: &str) -> Result<Arc<GroupHub>> {
        let existing = self.groups_read().get(group_id).cloned();
        let g = match existing {
            Some(g) => g,
            None => self.groups_write().entry(group_id.to_owned()).or_default().clone(),
        };
        if g.lock().ready {
            return Ok(g);
        }
        let last = self.store.last_seq(group_id).await?.unwrap_or(0);
        self.init_hub(group_id, &g, last);
        Ok(g)
    }

    /// Makes a registered hub live at `last` (the stored last seq, read after registration):
    /// frames published meanwhile above it are delivered in order, gaps are filled.
    fn init_hub(self: &Arc<Self>, group_id: &str, g: &Arc<GroupHub>, last: u64) {
        let mut st = g.lock();
        if !st.ready {
            st.ready = true;
            st.delivered = last;
            st.pending.retain(|seq, _| *seq > last);
            loop {
                let next = st.delivered + 1;
                let Some(f) = st.pending.remove(&next) else { break };
                deliver(&mut st, next, &f);
            }
            if (!st.pending.is_empty() || st.overflowed > st.delivered) && !st.filling {
                st.filling = true;
                let (hub, gid, g2) = (self.clone(), group_id.to_owned(), g.clone());
                self.runtime.spawn(async move { hub.fill_gaps(gid, g2).await });
            }
        }
    }

    /// A sequenced message of `group_id` (from this node or the mesh, possibly twice, possibly
    /// out of order), sent by `sender` when known. Delivered to live subscribers strictly in
    /// seq order.
    pub fn publish(
        self: &Arc<Self>,
        group_id: &str,
        seq: u64,
        frame: Utf8Bytes,
        sender: Option<Address>,
    ) {
        if self.activity.receiver_count() > 0 {
            let _ = self.activity.send(Activity { group: Arc::from(group_id), sender });
        }
        let Some(g) = self.groups_read().get(group_id).cloned() else { return };
        let mut st = g.lock();
        if !st.ready {
            // The hub is being set up: keep the frame for `group_hub` to deliver.
            if st.pending.len() < MAX_PENDING {
                st.pending.insert(seq, frame);
            } else {
                st.overflowed = st.overflowed.max(seq);
            }
            return;
        }
        if seq <= st.delivered {
            return;
        }
        if seq == st.delivered + 1 {
            deliver(&mut st, seq, &frame);
            loop {
                let next = st.delivered + 1;
                let Some(f) = st.pending.remove(&next) else { break };
                deliver(&mut st, next, &f);
            }
        } else {
            if st.pending.len() < MAX_PENDING {
                st.pending.insert(seq, frame);
            } else {
                // Keep memory bounded: the gap filler reloads anything not buffered from the DB.
                st.overflowed = st.overflowed.max(seq);
            }
            if !st.filling {
                st.filling = true;
                let hub = self.clone();
                let gid = group_id.to_owned();
                let g2 = g.clone();
                self.runtime.spawn(async move { hub.fill_gaps(gid, g2).await });
            }
        }
    }

    async fn fill_gaps(self: Arc<Self>, group_id: String, g: Arc<GroupHub>) {
        loop {
            tokio::time::sleep(self.gap_wait).await;
            let (from, to) = {
                let mut st = g.lock();
                let last =
                    st.pending.last_key_value().map(|(k, _)| *k).unwrap_or(0).max(st.overflowed);
                if last <= st.delivered {
                    st.filling = false;
                    st.overflowed = 0;
                    return;
                }
                (st.delivered, last)
            };
            match self.store.frames(&group_id, from, to, PAGE).await {
                Ok(rows) => {
                    // Seqs the database no longer has below the first one it returned (or
                    // below the first buffered one, when it returned none) were erased (a
                    // member erasing its messages, a retention): they will never come, so
                    // delivery moves past them instead of waiting.
                    {
                        let mut st = g.lock();
                        let next_kept = match rows.first() {
                            Some((seq, _)) => Some(*seq),
                            None => st.pending.first_key_value().map(|(k, _)| *k),
                        };
                        if let Some(next) = next_kept
                            && st.delivered == from
                            && next > from + 1
                        {
                            st.delivered = next - 1;
                            for sub in st.subs.values_mut() {
                                if sub.live && sub.cursor == from {
                                    sub.cursor = next - 1;
                                }
                            }
                        }
                    }
                    if rows.is_empty() {
                        let mut st = g.lock();
                        loop {
                            let next = st.delivered + 1;
                            let Some(f) = st.pending.remove(&next) else { break };
                            deliver(&mut st, next, &f);
                        }
                    }
                    for (seq, frame) in rows {
                        self.publish(&group_id, seq, Utf8Bytes::from(frame), None);
                    }
                }
                Err(e) => tracing::warn!(group_id, error = %e, "gap fill failed"),
            }
        }
    }

    /// Follow `group_id` on `conn`, first replaying everything after `since_seq` from the
    /// database (with back-pressure), then switching to live delivery without gap or repeat.
    /// `first_page` is what the join already read after `since_seq` (stored frames in seq
    /// order, possibly empty): the replay starts with it instead of reading it again.
    pub async fn subscribe(
        self: &Arc<Self>,
        group_id: &str,
        conn: &ConnHandle,
        since_seq: u64,
        first_page: Vec<(u64, String)>,
    ) -> Result<()> {
        let g = self.group_hub(group_id).await?;
        let join = self.next_join.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = g.lock();
            let sub = Sub { conn: conn.clone(), live: false, cursor: since_seq, join };
            st.subs.insert(conn.id, sub);
        }
        // Make sure the group stays registered (a concurrent detach may have dropped it).
        self.groups_write().entry(group_id.to_owned()).or_insert_with(|| g.clone());
        let hub = self.clone();
        let conn = conn.clone();
        let gid = group_id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = hub.catch_up(&gid, &g, &conn, join, since_seq, first_page).await {
                tracing::warn!(group_id = gid, error = %e, "replay failed");
                conn.kill.kill(1011, "replay failed");
            }
        });
        Ok(())
    }

    async fn catch_up(
        &self,
        group_id: &str,
        g: &GroupHub,
        conn: &ConnHandle,
        join: u64,
        since_seq: u64,
        first_page: Vec<(u64, String)>,
    ) -> Result<()> {
        let mut cursor = since_seq;
        let mut first_page = Some(first_page);
        loop {
            let target = {
                let mut st = g.lock();
                let delivered = st.delivered;
                let Some(sub) = st.subs.get_mut(&conn.id).filter(|s| s.join == join) else {
                    return Ok(());
                };
                if cursor >= delivered {
                    sub.live = true;
                    sub.cursor = cursor.min(delivered);
                    return Ok(());
                }
                delivered
            };
            // The join's page serves when it starts right after the cursor; past `target`
            // frames are the live path's (or the next page's).
            let rows = match first_page.take() {
                Some(mut page) if page.first().is_some_and(|(seq, _)| *seq == cursor + 1) => {
                    page.retain(|(seq, _)| *seq <= target);
                    page
                }
                _ => self.store.frames(group_id, cursor, target, PAGE).await?,
            };
            if rows.is_empty() {
                // Nothing stored in (cursor, target]: cannot happen with a sane DB; go live.
                cursor = target;
                continue;
            }
            for (seq, frame) in rows {
                // Left, replaced by a later join, or dropped with its connection: stop here.
                if g.lock().subs.get(&conn.id).is_none_or(|s| s.join != join) {
                    return Ok(());
                }
                let send = async {
                    let Ok(slot) = conn.replay_slots.clone().acquire_owned().await else {
                        return Err(());
                    };
                    conn.tx.send(Out::Replay(Utf8Bytes::from(frame), slot)).await.map_err(|_| ())
                };
                let sent = tokio::time::timeout(Duration::from_secs(10), send).await;
                match sent {
                    Ok(Ok(())) => {
                        crate::metrics::inc(&crate::metrics::METRICS.messages_delivered);
                        cursor = seq;
                    }
                    Ok(Err(_)) => return Ok(()),
                    Err(_) => {
                        conn.kill.kill(CLOSE_SLOW_CONSUMER, "slow consumer during replay");
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Number of groups with local subscribers (for tests and metrics).
    pub fn active_groups(&self) -> usize {
        self.groups_read().len()
    }
}

fn deliver(st: &mut GroupState, seq: u64, frame: &Utf8Bytes) {
    st.delivered = seq;
    st.subs.retain(|_, sub| {
        if !sub.live || sub.cursor + 1 != seq {
            return true;
        }
        if sub.conn.push(frame.clone()) {
            crate::metrics::inc(&crate::metrics::METRICS.messages_delivered);
            sub.cursor = seq;
            true
        } else {
            false
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioa::store::{FrameTemplate, NewMessage};

    /// A store on a fresh SQLite file in its own temporary directory (removed by the test).
    async fn temp_store() -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("reef-hub-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&format!("sqlite://{}/hub.db", dir.display())).await.unwrap();
        (dir, store)
    }

    /// Observers (the marketplace's work loop) hear of every published message's group, also
    /// for groups nobody is subscribed to; nothing is queued while nobody listens.
    #[tokio::test(flavor = "multi_thread")]
    async fn activity_names_the_group_of_every_published_message() {
        let (dir, store) = temp_store().await;
        let hub = Hub::new(store);
        hub.publish("g_before", 1, Utf8Bytes::from_static("{}"), None);
        let mut seen = hub.activity();
        let alice = Address::repeat_byte(7);
        hub.publish("g_a", 1, Utf8Bytes::from_static("{}"), Some(alice));
        hub.publish("g_b", 1, Utf8Bytes::from_static("{}"), None);
        let a = seen.recv().await.unwrap();
        assert_eq!((&*a.group, a.sender), ("g_a", Some(alice)), "nothing from before subscribing");
        let b = seen.recv().await.unwrap();
        assert_eq!((&*b.group, b.sender), ("g_b", None));
        assert!(seen.try_recv().is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The race that lost a group's first message: an agent joins (the hub is registered and
    /// reads the group's last seq: 0) while the message is stored and published; only then is
    /// the hub made live. The published frame must not be dropped.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_frame_published_while_the_hub_is_set_up_reaches_the_new_subscriber() {
        let (dir, store) = temp_store().await;
        let hub = Hub::new(store.clone());
        let (creator, member) = (Address::repeat_byte(1), Address::repeat_byte(2));
        store.create_group("g_race", "race", &creator, &[member], None).await.unwrap();

        // Registered, not ready; the last-seq read happened now and saw 0.
        let g = hub.groups_write().entry("g_race".into()).or_default().clone();
        assert!(!g.lock().ready);
        let read_last = store.last_seq("g_race").await.unwrap().unwrap_or(0);
        assert_eq!(read_last, 0);

        // The first message is stored and published before the hub is live.
        let msg = NewMessage { group_id: "g_race", msg_id: "m1", sender: &creator };
        let appended = store
            .append_batch(&[msg], |_| FrameTemplate { head: "{\"seq\":".into(), tail: "}".into() })
            .await
            .unwrap();
        let a = appended[0].clone().unwrap();
        assert_eq!(a.seq, 1);
        hub.publish("g_race", a.seq, Utf8Bytes::from(a.frame.clone()), Some(creator));

        hub.init_hub("g_race", &g, read_last);
        let (tx, mut rx) = mpsc::channel(8);
        let conn = ConnHandle::new(7, member, tx);
        hub.subscribe("g_race", &conn, 0, Vec::new()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the first message never arrived")
            .unwrap();
        assert_eq!(got.into_text().as_str(), a.frame);
        // Exactly once.
        assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv()).await.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A group created with an online member: its connection gets `invited` saying it follows
    /// the group from seq 0, then the group's messages live, without a join (no database read);
    /// a member whose group hub is gone is told to join instead.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_invitation_to_a_new_group_joins_the_connection() {
        let (dir, store) = temp_store().await;
        let hub = Hub::new(store.clone());
        let (creator, member) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let (tx, mut rx) = mpsc::channel(8);
        let _conn = hub.attach(member, tx);
        store.create_group("g_new", "new", &creator, &[member], None).await.unwrap();
        hub.created("g_new");
        hub.invite_joined("g_new", &member, &creator);
        let next = |rx: &mut mpsc::Receiver<Out>| {
            let f = rx.try_recv().expect("a frame").into_text();
            serde_json::from_str::<serde_json::Value>(f.as_str()).unwrap()
        };
        let invited = next(&mut rx);
        assert_eq!(invited["type"], "invited");
        assert_eq!(invited["joined_since_seq"], 0, "{invited}");
        hub.publish("g_new", 1, Utf8Bytes::from_static("{\"seq\":1}"), Some(creator));
        assert_eq!(next(&mut rx)["seq"], 1, "delivered live without a join");

        // A hub that is not there (dropped as idle): the plain invitation, and nothing follows.
        hub.invite_joined("g_gone", &member, &creator);
        let plain = next(&mut rx);
        assert_eq!(plain["type"], "invited");
        assert!(plain.get("joined_since_seq").is_none(), "{plain}");
        hub.publish("g_gone", 1, Utf8Bytes::from_static("{\"seq\":1}"), Some(creator));
        assert!(rx.try_recv().is_err(), "not joined: nothing is pushed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
