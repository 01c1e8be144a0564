//! Property tests of the reputation model: bounded, monotone, decaying, Sybil-resistant.

use proptest::prelude::*;
use reef_reputation::{Address, Event, Outcome, OutcomeKind, Params, ReputationBook};

const DAY: u64 = 86_400;

fn agent() -> Address {
    Address::repeat_byte(0xA1)
}

fn outcome(poster: u8, value: f64, kind: OutcomeKind, at: u64, funded: bool) -> Event {
    Event::Outcome(Outcome {
        agent: agent(),
        poster: Address::repeat_byte(poster),
        value,
        kind,
        at,
        on_time: kind.is_success().then_some(true),
        poster_funded_by_agent: funded,
    })
}

fn kind_strategy() -> impl Strategy<Value = OutcomeKind> {
    prop_oneof![
        Just(OutcomeKind::Completed),
        Just(OutcomeKind::Rejected),
        Just(OutcomeKind::Expired),
        Just(OutcomeKind::DisputeLost),
        Just(OutcomeKind::DisputeWon),
    ]
}

fn history() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (
            0u8..6,
            0.0f64..10_000.0,
            kind_strategy(),
            0u64..400 * DAY,
            any::<bool>(),
            prop::option::of(any::<bool>()),
        ),
        0..60,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(p, value, kind, at, funded, on_time)| {
                Event::Outcome(Outcome {
                    agent: agent(),
                    poster: Address::repeat_byte(p),
                    value,
                    kind,
                    at,
                    on_time,
                    poster_funded_by_agent: funded,
                })
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn scores_are_bounded(events in history(), stake in 0.0f64..1e6) {
        let mut book = ReputationBook::from_events(Params::default(), &events).unwrap();
        book.apply(&Event::Stake { agent: agent(), bonded: stake, at: 1 }).unwrap();
        let s = book.score(&agent());
        prop_assert!((0.0..=1.0).contains(&s.value));
        prop_assert!((0.0..1.0).contains(&s.confidence));
        for c in &s.components {
            prop_assert!((0.0..=1.0).contains(&c.value), "{} = {}", c.name, c.value);
        }
        let total: f64 = s.components.iter().map(|c| c.weight).sum();
        prop_assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn one_more_success_never_lowers_the_score(events in history(), value in 0.01f64..1_000.0, poster in 0u8..10) {
        let book = ReputationBook::from_events(Params::default(), &events).unwrap();
        let at = book.latest();
        let before = book.score_at(&agent(), at);
        let mut after_book = book.clone();
        after_book.apply(&outcome(poster, value, OutcomeKind::Completed, at, false)).unwrap();
        let after = after_book.score_at(&agent(), at);
        prop_assert!(after.value >= before.value - 1e-12, "{} -> {}", before.value, after.value);
        prop_assert!(after.confidence >= before.confidence - 1e-12);
    }

    #[test]
    fn one_more_failure_never_raises_the_score(events in history(), value in 0.01f64..1_000.0, kind in prop_oneof![Just(OutcomeKind::Rejected), Just(OutcomeKind::Expired), Just(OutcomeKind::DisputeLost)]) {
        let book = ReputationBook::from_events(Params::default(), &events).unwrap();
        let at = book.latest();
        let before = book.score_at(&agent(), at).components[0].value;
        let mut after_book = book.clone();
        after_book.apply(&outcome(9, value, kind, at, false)).unwrap();
        let after = after_book.score_at(&agent(), at).components[0].value;
        prop_assert!(after <= before + 1e-12, "success {} -> {}", before, after);
    }

    #[test]
    fn history_decays_towards_the_prior(events in history()) {
        let book = ReputationBook::from_events(Params::default(), &events).unwrap();
        let fresh = ReputationBook::default().score(&agent());
        let now = book.latest();
        let s_now = book.score_at(&agent(), now);
        let s_later = book.score_at(&agent(), now + 365 * DAY);
        let s_much_later = book.score_at(&agent(), now + 20 * 365 * DAY);
        prop_assert!(s_later.confidence <= s_now.confidence + 1e-12);
        // distance of the success component to the prior mean shrinks
        let d = |s: &reef_reputation::Score| (s.components[0].value - 0.5).abs();
        prop_assert!(d(&s_later) <= d(&s_now) + 1e-12);
        prop_assert!(d(&s_much_later) < 1e-6);
        prop_assert!((s_much_later.value - fresh.value).abs() < 1e-3);
    }

    #[test]
    fn incremental_equals_full_recompute(events in history()) {
        let full = ReputationBook::from_events(Params::default(), &events).unwrap();
        let mut inc = ReputationBook::default();
        for e in &events {
            inc.apply(e).unwrap();
        }
        prop_assert_eq!(full.score(&agent()), inc.score(&agent()));
    }

    #[test]
    fn pair_farming_gains_less_than_honest_volume(n in 2usize..80, value in 0.5f64..500.0, funded in any::<bool>()) {
        // Farmer: n jobs from one poster (optionally funded by the agent); honest: n distinct posters.
        let t0 = 1_000_000;
        let farm: Vec<Event> = (0..n).map(|i| outcome(7, value, OutcomeKind::Completed, t0 + i as u64, funded)).collect();
        let honest: Vec<Event> = (0..n)
            .map(|i| {
                let mut e = outcome(0, value, OutcomeKind::Completed, t0 + i as u64, false);
                if let Event::Outcome(o) = &mut e {
                    let mut b = [0u8; 20];
                    b[..8].copy_from_slice(&(i as u64 + 1_000).to_be_bytes());
                    o.poster = Address::from(b);
                }
                e
            })
            .collect();
        let f = ReputationBook::from_events(Params::default(), &farm).unwrap().score(&agent());
        let h = ReputationBook::from_events(Params::default(), &honest).unwrap().score(&agent());
        prop_assert!(f.value < h.value, "farm {} honest {}", f.value, h.value);
        prop_assert!(f.confidence < h.confidence);
    }
}

#[test]
fn self_funded_posters_are_discounted() {
    let plain = ReputationBook::from_events(
        Params::default(),
        &[outcome(1, 50.0, OutcomeKind::Completed, 10, false)],
    )
    .unwrap()
    .score(&agent());
    let funded = ReputationBook::from_events(
        Params::default(),
        &[outcome(1, 50.0, OutcomeKind::Completed, 10, true)],
    )
    .unwrap()
    .score(&agent());
    assert!(funded.value < plain.value);
    assert!(funded.confidence < plain.confidence / 4.0);
    assert_eq!(funded.counts.self_funded, 1);
}

#[test]
fn newcomer_can_still_compete_for_small_work() {
    // A newcomer sits between a proven bad agent and a proven good one.
    let mut book = ReputationBook::default();
    let good = Address::repeat_byte(0x01);
    let bad = Address::repeat_byte(0x02);
    for i in 0..10u8 {
        let mk = |agent, kind| {
            Event::Outcome(Outcome {
                agent,
                poster: Address::repeat_byte(0x10 + i),
                value: 20.0,
                kind,
                at: 100 + u64::from(i),
                on_time: kind.is_success().then_some(true),
                poster_funded_by_agent: false,
            })
        };
        book.apply(&mk(good, OutcomeKind::Completed)).unwrap();
        book.apply(&mk(bad, OutcomeKind::Rejected)).unwrap();
    }
    let newcomer = book.score(&Address::repeat_byte(0x03));
    let (g, b) = (book.score(&good), book.score(&bad));
    assert!(
        b.value < newcomer.value && newcomer.value < g.value,
        "{} {} {}",
        b.value,
        newcomer.value,
        g.value
    );
    assert_eq!(newcomer.confidence, 0.0);
    let top = book.top(2);
    assert_eq!(top[0].agent, good);
    assert_eq!(top.len(), 2);
}
