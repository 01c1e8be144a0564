//! Bounds on long-polling view requests (`GET /v1/market/bounties/{id}?wait_ms=N`).
//!
//! A long-poll holds a request, a task and a watcher open for up to 30 s. Without a bound one
//! client could hold thousands of them. Each client (its authenticated address, or its IP
//! address when it did not log in) may hold [`PER_CLIENT`] at once and the node [`TOTAL`]. A
//! request past either bound is not refused: it is answered at once, like a plain view, and
//! says so, so a follower keeps working and simply polls until a slot is free.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Long-polls one client may hold open at once.
pub const PER_CLIENT: usize = 64;
/// Long-polls the node holds open at once, over all clients.
pub const TOTAL: usize = 4096;

#[derive(Debug, Default)]
struct Counts {
    per_client: HashMap<String, usize>,
    total: usize,
}

/// The open long-polls, per client.
#[derive(Debug, Clone)]
pub struct LongPolls {
    counts: Arc<Mutex<Counts>>,
    per_client: usize,
    total: usize,
}

impl Default for LongPolls {
    fn default() -> Self {
        Self::with_limits(PER_CLIENT, TOTAL)
    }
}

/// One open long-poll; its slot is given back when this is dropped (also when the client
/// hangs up and the request's future is dropped).
#[derive(Debug)]
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    client: String,
}

impl LongPolls {
    /// Bounds other than the defaults (tests).
    pub fn with_limits(per_client: usize, total: usize) -> Self {
        Self { counts: Arc::default(), per_client, total }
    }

    /// Takes a slot for `client`, or says why there is none.
    pub fn acquire(&self, client: &str) -> Result<Slot, String> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.total {
            return Err(format!(
                "the node holds {} long-polls already; answered at once, ask again later",
                self.total
            ));
        }
        let mine = c.per_client.get(client).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(format!(
                "{} long-polls are open for this client; answered at once, ask again later or \
                 follow fewer bounties at once",
                self.per_client
            ));
        }
        c.per_client.insert(client.to_string(), mine + 1);
        c.total += 1;
        Ok(Slot { counts: self.counts.clone(), client: client.to_string() })
    }

    /// Long-polls open now, for `client` and in all.
    pub fn open(&self, client: &str) -> (usize, usize) {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        (c.per_client.get(client).copied().unwrap_or(0), c.total)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_bound_is_declined_and_others_are_not() {
        let lp = LongPolls::with_limits(2, 10);
        let a1 = lp.acquire("a").unwrap();
        let _a2 = lp.acquire("a").unwrap();
        let err = lp.acquire("a").unwrap_err();
        assert!(err.contains("2 long-polls are open for this client"), "{err}");
        let _b = lp.acquire("b").expect("another client has its own bound");
        assert_eq!(lp.open("a"), (2, 3));
        drop(a1);
        assert_eq!(lp.open("a"), (1, 2));
        let _a3 = lp.acquire("a").expect("a slot given back can be taken again");
    }

    #[test]
    fn the_node_wide_bound_holds_over_all_clients() {
        let lp = LongPolls::with_limits(5, 3);
        let slots: Vec<_> = ["a", "b", "c"].iter().map(|c| lp.acquire(c).unwrap()).collect();
        let err = lp.acquire("d").unwrap_err();
        assert!(err.contains("the node holds 3 long-polls"), "{err}");
        drop(slots);
        assert_eq!(lp.open("a"), (0, 0));
        assert!(lp.acquire("d").is_ok());
    }

    #[tokio::test]
    async fn a_dropped_request_gives_its_slot_back() {
        let lp = LongPolls::with_limits(1, 10);
        let held = lp.clone();
        // A request future that holds a slot and is dropped before it finishes (the client
        // hung up): the slot must come back.
        let task = tokio::spawn(async move {
            let _slot = held.acquire("a").unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(3_600)).await;
        });
        while lp.open("a").0 == 0 {
            tokio::task::yield_now().await;
        }
        assert!(lp.acquire("a").is_err());
        task.abort();
        let _ = task.await;
        assert_eq!(lp.open("a"), (0, 0));
        assert!(lp.acquire("a").is_ok());
    }
}
