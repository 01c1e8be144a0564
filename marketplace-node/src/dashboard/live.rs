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
use crate::openapi;

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
#[utoipa::path(get, path = "/v1/dashboard/live", operation_id = "dashboard_live", tag = "dashboard",
    description = "Server-sent events for the open pages: `hello {\"address\"}` first, `bounty {\"id\", \"phase\"}` when a bounty's log grows, `group {\"group_id\"}` for the viewer's groups (none for a stranger), `resync {}` when the stream lagged. The stream does not end; a comment every 15 s keeps it open. At most `--dashboard-live-clients` streams at once.",
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 503, description = "Too many live streams are open (busy)", body = openapi::ErrorBody),
    ),
    security((), ("session" = []), ("bearer" = [])))]
pub async fn stream(
    State(d): State<Dashboard>,
    viewer: Viewer,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let permit = d.live.slots.clone().try_acquire_owned().map_err(|_| DashError::Busy)?;
    let (tx, rx) = mpsc::channel::<Event>(d.live.queue);
    let bounties = d.market.as_ref().map(|m| m.store().log_watchers().changes());
    let groups = viewer.0.map(|_| d.node.group_activity());
    let _ = tx.try_send(event("hello", &super::auth::SessionInfo { address: viewer.0 }));
    let changes = Box::pin(futures::stream::unfold(
        (d, viewer, bounties, groups),
        |(d, viewer, mut bounties, mut groups)| async move {
            loop {
                let next = tokio::select! {
                    b = recv(&mut bounties) => match b {
                        Ok(id) => bounty_event(&d, &id).await,
                        Err(RecvError::Lagged(_)) => Some(resync()),
                        Err(RecvError::Closed) => { bounties = None; None }
                    },
                    g = recv(&mut groups) => match (g, viewer.0) {
                        (Ok(a), Some(me)) => group_event(&d, &a.group, me).await,
                        (Err(RecvError::Lagged(_)), _) => Some(resync()),
                        (Err(RecvError::Closed), _) => { groups = None; None }
                        (Ok(_), None) => None,
                    },
                };
                if let Some(ev) = next {
                    return Some((ev, (d, viewer, bounties, groups)));
                }
            }
        },
    ));
    tokio::spawn(async move {
        let _permit = permit;
        let end = pump(&tx, changes).await;
        tracing::debug!(?end, "live dashboard stream ended");
    });
    let s = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (Ok::<_, Infallible>(ev), rx))
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn resync() -> Event {
    Event::default().event("resync").data("{}")
}

/// `event: bounty` for a bounty whose log grew (public: its id and phase).
async fn bounty_event(d: &Dashboard, id: &str) -> Option<Event> {
    let m = d.market.as_ref()?;
    match m.store().bounty(id).await {
        Ok(Some(row)) => {
            Some(event("bounty", &BountyChanged { id: id.to_string(), phase: row.phase }))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "live dashboard: bounty read failed");
            Some(resync())
        }
    }
}

/// `event: group` for a group that got a message, only when the viewer is a member.
async fn group_event(d: &Dashboard, group: &str, me: alloy_primitives::Address) -> Option<Event> {
    match d.node.store().is_member(group, &me).await {
        Ok(true) => Some(event("group", &GroupChanged { group_id: group.to_string() })),
        Ok(false) => None,
        Err(e) => {
            tracing::warn!(error = %e, "live dashboard: membership read failed");
            None
        }
    }
}

/// Why a live stream's pump stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpEnd {
    /// The client went away.
    Gone,
    /// The client let its queue fill: dropped (its page reconnects and re-reads).
    TooSlow,
    /// The changes ended.
    Ended,
}

/// Moves `changes` into a client's queue `tx` until the client is gone, lets the queue fill
/// (a slow client is dropped, never waited for), or the changes end.
pub async fn pump<S>(tx: &mpsc::Sender<Event>, mut changes: S) -> PumpEnd
where
    S: Stream<Item = Event> + Unpin,
{
    use futures::StreamExt;
    loop {
        let next = tokio::select! {
            _ = tx.closed() => return PumpEnd::Gone,
            ev = changes.next() => ev,
        };
        let Some(ev) = next else { return PumpEnd::Ended };
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return PumpEnd::TooSlow,
            Err(mpsc::error::TrySendError::Closed(_)) => return PumpEnd::Gone,
        }
    }
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

#[cfg(test)]
mod tests {
    use axum::response::sse::Event;
    use tokio::sync::mpsc;

    use super::{PumpEnd, pump};

    fn events(n: usize) -> futures::stream::Iter<std::vec::IntoIter<Event>> {
        futures::stream::iter(
            (0..n).map(|i| Event::default().data(i.to_string())).collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_dropped_when_its_queue_is_full() {
        let (tx, mut rx) = mpsc::channel(4);
        assert_eq!(pump(&tx, events(100)).await, PumpEnd::TooSlow);
        // What was queued before is still delivered; nothing after.
        let mut got = 0;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, 4);
    }

    #[tokio::test]
    async fn a_reading_client_gets_everything_and_a_gone_one_stops_the_pump() {
        let (tx, mut rx) = mpsc::channel(4);
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while rx.recv().await.is_some() {
                n += 1;
            }
            n
        });
        // Three at a time, each batch read before the next: never full.
        assert_eq!(pump(&tx, events(3)).await, PumpEnd::Ended);
        drop(tx);
        assert_eq!(reader.await.unwrap(), 3);
        let (tx, rx) = mpsc::channel(4);
        drop(rx);
        assert_eq!(pump(&tx, futures::stream::pending()).await, PumpEnd::Gone);
    }

    #[test]
    fn the_limit_refuses_one_more_stream_and_a_closed_one_gives_its_slot_back() {
        let live = super::Live::new(2, 8);
        let a = live.slots.clone().try_acquire_owned().unwrap();
        let _b = live.slots.clone().try_acquire_owned().unwrap();
        assert!(live.slots.clone().try_acquire_owned().is_err());
        drop(a);
        assert!(live.slots.clone().try_acquire_owned().is_ok());
    }
}
