//! `cargo bench -p reef-reputation`: full recompute over 1,000,000 events and the cost of one
//! incremental update. Prints figures; no statistics framework (goals: ≤ 2 s, ≤ 50 µs).

#![allow(missing_docs)]

use std::time::Instant;

use reef_reputation::{Address, Event, Outcome, OutcomeKind, Params, ReputationBook};

fn addr(i: u64) -> Address {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&i.to_be_bytes());
    Address::from(b)
}

fn main() {
    let n: usize =
        std::env::var("REEF_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    // Deterministic pseudo-random history: 10,000 agents, 50,000 posters.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let kinds = [
        OutcomeKind::Completed,
        OutcomeKind::Completed,
        OutcomeKind::Completed,
        OutcomeKind::Rejected,
        OutcomeKind::Expired,
        OutcomeKind::DisputeLost,
        OutcomeKind::DisputeWon,
    ];
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let r = next();
            if r % 50 == 0 {
                Event::Stake {
                    agent: addr(r % 10_000),
                    bonded: (r % 1000) as f64 / 100.0,
                    at: i as u64 * 3,
                }
            } else {
                Event::Outcome(Outcome {
                    agent: addr(r % 10_000),
                    poster: addr(1_000_000 + (r >> 20) % 50_000),
                    value: ((r >> 40) % 10_000) as f64 / 10.0,
                    kind: kinds[(r >> 8) as usize % kinds.len()],
                    at: i as u64 * 3,
                    on_time: Some(r & 1 == 0),
                    poster_funded_by_agent: r % 97 == 0,
                })
            }
        })
        .collect();

    let t = Instant::now();
    let book = ReputationBook::from_events(Params::default(), &events).expect("valid events");
    let full = t.elapsed();
    println!(
        "full recompute: {n} events, {} agents in {:.3} s ({:.0} events/s; goal <= 2 s)",
        book.len(),
        full.as_secs_f64(),
        n as f64 / full.as_secs_f64()
    );

    let mut book = book;
    let extra = 100_000usize;
    let t = Instant::now();
    for e in events.iter().take(extra) {
        book.apply(e).expect("valid event");
    }
    let per = t.elapsed().as_secs_f64() / extra as f64;
    println!("incremental apply: {:.3} µs/event over {extra} events (goal <= 50 µs)", per * 1e6);

    let t = Instant::now();
    let top = book.top(10);
    println!(
        "top(10) over {} agents: {:.1} ms (best {:.4})",
        book.len(),
        t.elapsed().as_secs_f64() * 1e3,
        top[0].value
    );
    let t = Instant::now();
    let s = book.score(&top[0].agent);
    println!(
        "score(agent) with explanation: {:.1} µs ({} components)",
        t.elapsed().as_secs_f64() * 1e6,
        s.components.len()
    );
}
