//! Which bounties the work loop steps, and when.
//!
//! The loop used to step every unfinished bounty on every pass. At a few hundred bounties in
//! flight a pass took seconds, and every bounty waited for it: a window that had closed was
//! ranked seconds late, an award seconds after it was mined. Now a bounty is stepped when
//! something happened to it:
//!
//! - an escrow event names it (the chain view's log scan reports the ids it saw);
//! - a message arrived in one of its groups (the work group, the evaluator panel's group);
//! - its own timer fired: the end of the bid window, its ETA, deadline, review or challenge
//!   window (whichever comes first), and at the latest [`MAX_IDLE_MS`] after its last step;
//! - its step failed (retried after [`RETRY_MS`]), or moved it to another phase (stepped again
//!   at once: the next phase may have work to do right away).
//!
//! A bounty is never stepped twice at once: a wake-up that arrives while it is being stepped
//! makes it run again afterwards, so no event is lost between the read and the end of a step.

use std::collections::{BTreeSet, HashMap, HashSet};

/// Longest time a bounty waits between steps even if nothing woke it (a safety net for wake-ups
/// the loop cannot see, such as a clock jump on a devnet).
pub const MAX_IDLE_MS: u64 = 10_000;

/// Delay before a failed step is retried, and the poll period of a bounty whose deadline has
/// passed but whose step has not acted on it yet (the chain's clock lags the wall clock on an
/// idle devnet).
pub const RETRY_MS: u64 = 1_000;

/// Most group → bounty routes kept; beyond it the table is emptied and rebuilt as bounties are
/// stepped (a message in a forgotten group waits for the bounty's timer instead).
const MAX_ROUTES: usize = 200_000;

#[derive(Debug, Default)]
struct State {
    /// Due to be stepped now.
    ready: HashSet<String>,
    /// Being stepped.
    running: HashSet<String>,
    /// Woken while being stepped: stepped again when the current step ends.
    again: HashSet<String>,
    /// `(due ms, bounty)`, at most one per bounty (see `due`).
    timers: BTreeSet<(u64, String)>,
    due: HashMap<String, u64>,
    /// Group id → bounty id (work groups and evaluator groups).
    routes: HashMap<String, String>,
}

/// The work loop's run queue (thread-safe; shared by the loop and the REST handlers).
#[derive(Debug, Default)]
pub struct Scheduler {
    state: std::sync::Mutex<State>,
    notify: tokio::sync::Notify,
}

impl Scheduler {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Steps `bounty` as soon as possible (again after its current step, if one is running).
    pub fn wake(&self, bounty: &str) {
        let mut s = self.lock();
        if s.running.contains(bounty) {
            s.again.insert(bounty.to_string());
        } else {
            s.ready.insert(bounty.to_string());
        }
        drop(s);
        self.notify.notify_one();
    }

    /// Steps every bounty in `bounties` as soon as possible.
    pub fn wake_all<'a>(&self, bounties: impl IntoIterator<Item = &'a str>) {
        for b in bounties {
            self.wake(b);
        }
    }

    /// Wakes each of `bounties` that the scheduler does not know (no timer, not queued, not
    /// being stepped): bounties another node of a mesh registered, or that this node lost
    /// track of. Returns how many were woken.
    pub fn wake_unknown<'a>(&self, bounties: impl IntoIterator<Item = &'a str>) -> usize {
        let unknown: Vec<&str> = {
            let s = self.lock();
            bounties
                .into_iter()
                .filter(|b| {
                    !(s.due.contains_key(*b)
                        || s.ready.contains(*b)
                        || s.running.contains(*b)
                        || s.again.contains(*b))
                })
                .collect()
        };
        self.wake_all(unknown.iter().copied());
        unknown.len()
    }

    /// Wakes the bounty a message in `group` belongs to; false if the group is not routed.
    pub fn wake_group(&self, group: &str) -> bool {
        let bounty = self.lock().routes.get(group).cloned();
        match bounty {
            Some(b) => {
                self.wake(&b);
                true
            }
            None => false,
        }
    }

    /// Routes messages of `group` to `bounty`; true if the route is new (a message may have
    /// arrived before it existed, so the caller should step the bounty once more).
    pub fn route(&self, group: &str, bounty: &str) -> bool {
        let mut s = self.lock();
        if s.routes.get(group).is_some_and(|b| b == bounty) {
            return false;
        }
        if s.routes.len() >= MAX_ROUTES {
            s.routes.clear();
        }
        s.routes.insert(group.to_string(), bounty.to_string());
        true
    }

    /// Sets (replaces) the time, in unix ms, at which `bounty` is stepped unless woken earlier.
    pub fn set_timer(&self, bounty: &str, at_ms: u64) {
        let mut s = self.lock();
        if let Some(old) = s.due.insert(bounty.to_string(), at_ms) {
            s.timers.remove(&(old, bounty.to_string()));
        }
        s.timers.insert((at_ms, bounty.to_string()));
    }

    /// Drops everything about a finished bounty (its timer and its groups' routes).
    pub fn forget(&self, bounty: &str) {
        let mut s = self.lock();
        if let Some(old) = s.due.remove(bounty) {
            s.timers.remove(&(old, bounty.to_string()));
        }
        s.ready.remove(bounty);
        s.again.remove(bounty);
        s.routes.retain(|_, b| b != bounty);
    }

    /// Moves timers due at `now_ms` to the ready set and hands out every ready bounty that is
    /// not being stepped (marking it running). Each one must be given back with [`Self::done`].
    pub fn take(&self, now_ms: u64) -> Vec<String> {
        let mut s = self.lock();
        while let Some((at, b)) = s.timers.first().cloned() {
            if at > now_ms {
                break;
            }
            s.timers.pop_first();
            s.due.remove(&b);
            if s.running.contains(&b) {
                s.again.insert(b);
            } else {
                s.ready.insert(b);
            }
        }
        let st = &mut *s;
        let out: Vec<String> =
            st.ready.iter().filter(|b| !st.running.contains(*b)).cloned().collect();
        for b in &out {
            st.ready.remove(b);
            st.running.insert(b.clone());
        }
        out
    }

    /// Ends a step of `bounty` (from [`Self::take`]); re-queues it if it was woken meanwhile.
    pub fn done(&self, bounty: &str) {
        let mut s = self.lock();
        s.running.remove(bounty);
        if s.again.remove(bounty) {
            s.ready.insert(bounty.to_string());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// The earliest timer, in unix ms.
    pub fn next_timer(&self) -> Option<u64> {
        self.lock().timers.first().map(|(at, _)| *at)
    }

    /// Resolves when a wake-up was signalled since the last call.
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// (ready, running, timers, routes) sizes, for tests and metrics.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        let s = self.lock();
        (s.ready.len(), s.running.len(), s.timers.len(), s.routes.len())
    }
}

/// When a bounty with these pending instants (unix seconds, compared as "the clock is past
/// it") should be stepped next, given the clock `now_ms`: the earliest instant still ahead;
/// [`RETRY_MS`] from now if one has passed within the last [`MAX_IDLE_MS`] but the step did not
/// act on it yet (the chain's clock decides, and it can lag); never later than [`MAX_IDLE_MS`].
pub fn next_wake(now_ms: u64, instants: &[u64]) -> u64 {
    let mut at = now_ms + MAX_IDLE_MS;
    for &t in instants {
        // "past t" means t + 1 second at the earliest (deadlines are compared with `>`).
        let ms = t.saturating_add(1).saturating_mul(1000);
        if ms > now_ms {
            at = at.min(ms);
        } else if now_ms - ms < MAX_IDLE_MS {
            at = at.min(now_ms + RETRY_MS);
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_during_a_step_runs_the_bounty_again_after_it() {
        let s = Scheduler::default();
        s.wake("a");
        s.wake("b");
        let mut first = s.take(0);
        first.sort();
        assert_eq!(first, ["a", "b"]);
        // Woken while running, by a wake-up or a timer: not handed out twice at once.
        s.wake("a");
        s.set_timer("b", 0);
        assert!(s.take(0).is_empty());
        s.done("b");
        assert_eq!(s.take(0), ["b"], "b's timer fired during its step");
        s.done("b");
        s.done("a");
        assert_eq!(s.take(0), ["a"], "the wake-up during the step is not lost");
        s.done("a");
        assert_eq!(s.sizes(), (0, 0, 0, 0));
    }

    #[test]
    fn only_bounties_without_a_timer_or_a_step_are_woken_by_the_sweep() {
        let s = Scheduler::default();
        s.set_timer("timed", 5_000);
        s.wake("running");
        assert_eq!(s.take(0), ["running"]);
        assert_eq!(s.wake_unknown(["timed", "running", "new"]), 1);
        assert_eq!(s.take(0), ["new"], "only the bounty nobody planned is stepped");
    }

    #[test]
    fn timers_fire_in_order_and_a_new_timer_replaces_the_old() {
        let s = Scheduler::default();
        s.set_timer("a", 500);
        s.set_timer("b", 300);
        s.set_timer("a", 200); // replaces 500
        assert_eq!(s.next_timer(), Some(200));
        assert!(s.take(199).is_empty());
        assert_eq!(s.take(250), ["a"]);
        s.done("a");
        assert!(s.take(499).contains(&"b".to_string()));
        s.done("b");
        assert_eq!(s.take(10_000), Vec::<String>::new(), "the replaced timer does not fire");
        assert_eq!(s.next_timer(), None);
    }

    #[test]
    fn group_messages_reach_their_bounty_and_forget_drops_routes_and_timers() {
        let s = Scheduler::default();
        assert!(!s.wake_group("g1"));
        assert!(s.route("g1", "a"));
        assert!(!s.route("g1", "a"), "the same route is not new");
        assert!(s.wake_group("g1"));
        assert_eq!(s.take(0), ["a"]);
        s.done("a");
        s.set_timer("a", 100);
        s.forget("a");
        assert!(!s.wake_group("g1"));
        assert!(s.take(1_000).is_empty());
        assert_eq!(s.sizes(), (0, 0, 0, 0));
    }

    #[test]
    fn next_wake_picks_the_earliest_pending_instant() {
        let now = 1_000_000; // ms
        // Deadline at 1,005 s: step at 1,006 s (the clock must be past it).
        assert_eq!(next_wake(now, &[1_005, 2_000]), 1_006_000);
        // Nothing pending: the idle cap.
        assert_eq!(next_wake(now, &[]), now + MAX_IDLE_MS);
        // An instant that passed a moment ago and was not acted on: poll soon.
        assert_eq!(next_wake(now, &[995, 2_000]), now + RETRY_MS);
        // One that passed long ago does not make the bounty poll every second forever.
        assert_eq!(next_wake(now, &[100, 1_003]), 1_004_000);
        // Far future: capped.
        assert_eq!(next_wake(now, &[u64::MAX]), now + MAX_IDLE_MS);
    }
}
