//! Golden tests: small, hand-checkable histories with their exact scores.

use reef_reputation::{Address, Event, Outcome, OutcomeKind, Params, ReputationBook};

fn a(b: u8) -> Address {
    Address::repeat_byte(b)
}

fn job(
    agent: u8,
    poster: u8,
    value: f64,
    kind: OutcomeKind,
    at: u64,
    on_time: Option<bool>,
) -> Event {
    Event::Outcome(Outcome {
        agent: a(agent),
        poster: a(poster),
        value,
        kind,
        at,
        on_time,
        poster_funded_by_agent: false,
    })
}

fn close(x: f64, y: f64) -> bool {
    (x - y).abs() < 1e-9
}

#[test]
fn one_completed_job() {
    // value e-1 => weight ln(1 + e - 1) = 1.
    let e = std::f64::consts::E - 1.0;
    let book = ReputationBook::from_events(
        Params::default(),
        &[job(1, 2, e, OutcomeKind::Completed, 100, Some(true))],
    )
    .unwrap();
    let s = book.score(&a(1));
    let c: Vec<f64> = s.components.iter().map(|c| c.value).collect();
    assert!(close(c[0], 3.0 / 5.0), "success {}", c[0]); // (2+1)/(4+1)
    assert!(close(c[1], 2.0 / 3.0), "on_time {}", c[1]); // (1+1)/(2+1)
    assert!(close(c[2], 1.0));
    assert!(close(c[3], 0.0));
    assert!(close(c[4], 1.0 - (-e / 1000.0f64).exp()));
    assert!(close(s.confidence, 0.25), "{}", s.confidence); // 1/(1+3)
    // No rating yet: the feedback component sits at its neutral 0.5.
    assert!(close(c[5], 0.5));
    let expected = 0.50 * 0.6 + 0.15 * (2.0 / 3.0) + 0.10 + 0.05 * c[4] + 0.10 * 0.5;
    assert!(close(s.value, expected), "{} vs {expected}", s.value);
    assert_eq!(s.counts.completed, 1);
}

#[test]
fn lost_dispute_counts_double_and_hits_disputes_component() {
    let e = std::f64::consts::E - 1.0;
    let book = ReputationBook::from_events(
        Params::default(),
        &[
            job(1, 2, e, OutcomeKind::Completed, 100, Some(true)),
            job(1, 3, e, OutcomeKind::DisputeLost, 100, Some(false)),
        ],
    )
    .unwrap();
    let s = book.score(&a(1));
    let c: Vec<f64> = s.components.iter().map(|c| c.value).collect();
    assert!(close(c[0], 3.0 / 7.0), "success {}", c[0]); // (2+1)/(4+1+2)
    assert!(close(c[1], 2.0 / 4.0), "on_time {}", c[1]);
    assert!(close(c[2], 1.0 - 1.0 / 5.0), "disputes {}", c[2]); // 1 - 1/(3+2)
    assert!(close(s.confidence, 0.5));
    assert_eq!(s.counts.disputes_lost, 1);
}

#[test]
fn repeated_pair_weights_one_half_one_third() {
    let e = std::f64::consts::E - 1.0;
    let events: Vec<Event> =
        (0..3).map(|_| job(1, 2, e, OutcomeKind::Completed, 100, None)).collect();
    let s = ReputationBook::from_events(Params::default(), &events).unwrap().score(&a(1));
    let w = 1.0 + 0.5 + 1.0 / 3.0;
    assert!(close(s.components[0].value, (2.0 + w) / (4.0 + w)));
    assert!(close(s.confidence, w / (w + 3.0)));
}

#[test]
fn one_half_life_halves_the_evidence() {
    let e = std::f64::consts::E - 1.0;
    let p = Params::default();
    let hl = p.half_life_secs as u64;
    let book = ReputationBook::from_events(p, &[job(1, 2, e, OutcomeKind::Rejected, 1_000, None)])
        .unwrap();
    let s = book.score_at(&a(1), 1_000 + hl);
    assert!(close(s.components[0].value, 2.0 / 4.5), "{}", s.components[0].value); // 2/(4+0.5)
    assert!(close(s.confidence, 0.5 / 3.5));
}

#[test]
fn stake_component_and_json_shape() {
    let mut book = ReputationBook::default();
    book.apply(&Event::Stake { agent: a(1), bonded: 1.0, at: 5 }).unwrap();
    let s = book.score(&a(1));
    assert!(close(s.components[3].value, 1.0 - (-1.0f64).exp()));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["components"][3]["name"], "stake");
    assert!(json["components"][0]["explanation"].as_str().unwrap().contains("Beta(2, 2)"));
}
