//! Live updates for the pages: one server-sent-event stream per open dashboard
//! (`GET /v1/dashboard/live`). It says *what* changed — a bounty (with its new phase) or a group
//! the viewer is a member of — and the page re-reads that part's JSON, so the stream itself
//! carries nothing private. A stranger's stream has no group events at all.
//!
//! Bounded like the rest of the node: at most `--dashboard-live-clients` streams at once
//! ([`MAX_CLIENTS`] by default; more are answered `503 busy`), and each stream's queue holds [`CLIENT_QUEUE`] events; a client that
//! lets it fill is dropped (its page reconnects and re-reads everything).

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use serde::Serialize;
use tokio::sync::{Semaphore, broadcast::error::RecvError, mpsc};

use super::{DashError, Dashboard, Result, auth::Viewer};

/// Most live streams open at once on a node, by default.
pub const MAX_CLIENTS: usize = 256;

/// Events queued per stream before the client counts as too slow and is dropped.
pub const CLIENT_QUEUE: usize = 64;

/// The live streams' limits.
#[derive(Debug)]
pub struct Live {
    slots: Arc<Semaphore>,
    queue: usize,
}

impl Live {
    /// At most `clients` streams, each with a queue of `queue` events.
    pub fn new(clients: usize, queue: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(clients)), queue: queue.max(1) }
    }
}

/// A bounty's log grew (`event: bounty`).
#[derive(Debug, Clone, Serialize)]
pub struct BountyChanged {
    /// The bounty's id.
    pub id: String,
    /// Its phase now.
    pub phase: crate::market::store::Phase,
}

/// A group the viewer is a member of got a message (`event: group`).
#[derive(Debug, Clone, Serialize)]
pub struct GroupChanged {
    /// The group's id.
    pub group_id: String,
}

fn event<T: Serialize>(name: &str, data: &T) -> Event {
    Event::default().event(name).data(serde_json::to_string(data).unwrap_or_default())
}

/// `GET /v1/dashboard/live`: the stream of changes this viewer may know about.
pub async fn stream(
    State(d): State<Dashboard>,
    viewer: Viewer,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let permit = d.live.slots.clone().try_acquire_owned().map_err(|_| DashError::Busy)?;
    let (tx, rx) = mpsc::channel::<Event>(d.live.queue);
    let mut bounties = d.market.as_ref().map(|m| m.store().log_watchers().changes());
    let mut groups = viewer.0.map(|_| d.node.group_activity());
    let _ = tx.try_send(event("hello", &super::auth::SessionInfo { address: viewer.0 }));
    tokio::spawn(async move {
        let _permit = permit;
        loop {
            let next = tokio::select! {
                _ = tx.closed() => break,
                b = recv(&mut bounties) => match b {
                    Ok(id) => match &d.market {
                        Some(m) => match m.store().bounty(&id).await {
                            Ok(Some(row)) => Some(event("bounty", &BountyChanged { id: id.to_string(), phase: row.phase })),
                            Ok(None) => None,
                            Err(e) => {
                                tracing::warn!(error = %e, "live dashboard: bounty read failed");
                                Some(Event::default().event("resync").data("{}"))
                            }
                        },
                        None => None,
                    },
                    Err(RecvError::Lagged(_)) => Some(Event::default().event("resync").data("{}")),
                    Err(RecvError::Closed) => { bounties = None; None }
                },
                g = recv(&mut groups) => match (g, viewer.0) {
                    (Ok(a), Some(me)) => match d.node.store().is_member(&a.group, &me).await {
                        Ok(true) => Some(event("group", &GroupChanged { group_id: a.group.to_string() })),
                        Ok(false) => None,
                        Err(e) => {
                            tracing::warn!(error = %e, "live dashboard: membership read failed");
                            None
                        }
                    },
                    (Err(RecvError::Lagged(_)), _) => Some(Event::default().event("resync").data("{}")),
                    (Err(RecvError::Closed), _) => { groups = None; None }
                    (Ok(_), None) => None,
                },
            };
            if let Some(ev) = next
                && tx.try_send(ev).is_err()
            {
                // Full (a slow client) or gone: drop it; its page reconnects and re-reads.
                tracing::debug!("live dashboard client dropped: its queue is full");
                break;
            }
        }
    });
    let s = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (Ok::<_, Infallible>(ev), rx))
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The next item of an optional broadcast; pending forever when there is none.
async fn recv<T: Clone>(
    rx: &mut Option<tokio::sync::broadcast::Receiver<T>>,
) -> std::result::Result<T, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
