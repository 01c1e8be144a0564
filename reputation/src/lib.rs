//! Reef's reputation engine: turns the on-chain history of an agent (paid jobs completed,
//! rejected, expired, disputes won and lost, its posters' ratings, stake) into a score in `[0, 1]` with a confidence
//! and an explanation of every component.
//!
//! It is pure computation: no I/O, no clock, no database. Callers (the indexer, the node)
//! translate what they read into [`Event`]s and feed them to a [`ReputationBook`], either one at
//! a time as they happen ([`ReputationBook::apply`], O(1) amortized) or all at once
//! ([`ReputationBook::from_events`], a fold over the same function). Time is whatever the events
//! carry (block timestamps); a score is evaluated "as of" a given time.
//!
//! # Model
//!
//! * **Success**: a Beta(`prior_alpha`, `prior_beta`) prior updated with weighted successes
//!   (completed jobs, disputes won) and failures (rejected, expired, disputes lost — the latter
//!   counted `dispute_loss_weight` times). A job's weight is `ln(1 + value / value_unit)` (only
//!   paid escrows exist as outcomes, so value is what was at stake), times a pair factor, times a
//!   funding factor, and every weight decays with a half-life of `half_life_secs`.
//! * **Sybil / collusion resistance**: the k-th outcome (k = 0, 1, …) between the same poster and
//!   agent weighs `1 / (1 + k)`, so farming one counterparty grows only logarithmically; outcomes
//!   whose poster was funded by the agent itself weigh `funded_by_agent_discount`.
//! * **On time**: weighted share of jobs delivered by their due time — the award's `dueBy` (the
//!   bid's ETA), else the deadline — Laplace-smoothed.
//! * **Disputes**: one minus the weighted share of jobs whose dispute the agent lost.
//! * **Feedback**: the posters' ERC-8004 ratings (each normalised to `[0, 1]`), averaged with
//!   a neutral pseudo-rating of weight `feedback_prior`; each rating weighs `ln(1 + value /
//!   value_unit)` of the paid bounty it is tied to (so a 1-wei bounty's five stars count for
//!   nothing next to a large job's), times the same pair and funding factors as outcomes (the
//!   k-th rating of one poster for one agent weighs `1 / (1 + k)`), decayed with the same
//!   half-life.
//! * **Stake** and **volume**: saturating `1 - exp(-x / ref)` of bonded stake and of decayed,
//!   discounted paid value.
//! * **Confidence**: `n / (n + confidence_k)` for the effective (weighted, decayed) job count `n`.
//!
//! A newcomer sits at the neutral prior (success 0.5) with zero confidence, so it can still win
//! small bounties: trust is a gradient, not a gate.
//!
//! This crate does not read the chain (the `reef-indexer` crate does) and does not rank bids
//! (the node does, using [`Score`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use alloy_primitives::Address;

/// Errors of the reputation engine.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// An event carried a value that is negative, NaN or infinite.
    #[error("invalid event for agent {agent}: {reason}")]
    InvalidEvent {
        /// The agent the event is about.
        agent: Address,
        /// What was wrong.
        reason: String,
    },
    /// Parameters are out of range (e.g. a non-positive half-life).
    #[error("invalid reputation parameters: {0}")]
    InvalidParams(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a paid job ended for the agent that was awarded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The result was accepted and the agent was paid.
    Completed,
    /// The result was rejected and the rejection became final (poster refunded).
    Rejected,
    /// The agent did not deliver before the deadline (poster refunded).
    Expired,
    /// A dispute was resolved giving the agent less than half of the price.
    DisputeLost,
    /// A dispute was resolved giving the agent at least half of the price.
    DisputeWon,
}

impl OutcomeKind {
    /// True for outcomes that count as a success (completed, dispute won).
    pub fn is_success(self) -> bool {
        matches!(self, Self::Completed | Self::DisputeWon)
    }
}

/// One finished, paid job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The agent (provider) that was awarded the job.
    pub agent: Address,
    /// Who posted and paid for the job.
    pub poster: Address,
    /// Value at stake, in whole token units (the agreed price).
    pub value: f64,
    /// How the job ended.
    pub kind: OutcomeKind,
    /// When it ended (unix seconds, block time).
    pub at: u64,
    /// Whether the result came before the promised deadline (None = unknown / not delivered).
    pub on_time: Option<bool>,
    /// True when the poster's funds demonstrably came from the agent itself.
    pub poster_funded_by_agent: bool,
}

/// A poster's rating of the agent for one paid bounty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The agent (the bounty's provider).
    pub agent: Address,
    /// The poster who rated it.
    pub poster: Address,
    /// Paid value of the bounty the rating is tied to, in whole token units.
    pub value: f64,
    /// The rating normalised to `[0, 1]` (0 worst, 1 best).
    pub rating: f64,
    /// When it was given (unix seconds, block time).
    pub at: u64,
    /// True when the poster's funds demonstrably came from the agent itself.
    pub poster_funded_by_agent: bool,
}

/// Input of the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A paid job finished.
    Outcome(Outcome),
    /// A poster rated the agent for a paid bounty (ERC-8004 feedback tied to that bounty).
    Feedback(Feedback),
    /// The agent's bonded stake changed to `bonded` (whole native units).
    Stake {
        /// The staking account.
        agent: Address,
        /// New bonded total.
        bonded: f64,
        /// When (unix seconds).
        at: u64,
    },
}

impl Event {
    /// The agent this event is about.
    pub fn agent(&self) -> Address {
        match self {
            Self::Outcome(o) => o.agent,
            Self::Feedback(f) => f.agent,
            Self::Stake { agent, .. } => *agent,
        }
    }

    /// Time of the event.
    pub fn at(&self) -> u64 {
        match self {
            Self::Outcome(o) => o.at,
            Self::Feedback(f) => f.at,
            Self::Stake { at, .. } => *at,
        }
    }
}

/// Tunables of the model. [`Params::default`] is what the node uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Beta prior pseudo-successes.
    pub prior_alpha: f64,
    /// Beta prior pseudo-failures.
    pub prior_beta: f64,
    /// Half-life of every outcome's weight, seconds.
    pub half_life_secs: f64,
    /// Token amount that counts as "one unit" of value.
    pub value_unit: f64,
    /// Weight multiplier when the poster was funded by the agent.
    pub funded_by_agent_discount: f64,
    /// A lost dispute counts this many failures.
    pub dispute_loss_weight: f64,
    /// Effective job count at which confidence reaches 0.5.
    pub confidence_k: f64,
    /// Stake at which the stake component reaches 1 - 1/e.
    pub stake_ref: f64,
    /// Paid value at which the volume component reaches 1 - 1/e.
    pub volume_ref: f64,
    /// Weight of the neutral pseudo-rating (0.5) the feedback average starts from.
    pub feedback_prior: f64,
    /// Weights of (success, on time, disputes, stake, volume, feedback); must sum to 1.
    pub weights: [f64; 6],
}

impl Default for Params {
    fn default() -> Self {
        Self {
            prior_alpha: 2.0,
            prior_beta: 2.0,
            half_life_secs: 90.0 * 86_400.0,
            value_unit: 1.0,
            funded_by_agent_discount: 0.1,
            dispute_loss_weight: 2.0,
            confidence_k: 3.0,
            stake_ref: 1.0,
            volume_ref: 1_000.0,
            feedback_prior: 1.0,
            weights: [0.50, 0.15, 0.10, 0.10, 0.05, 0.10],
        }
    }
}

impl Params {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        let pos = [
            ("prior_alpha", self.prior_alpha),
            ("prior_beta", self.prior_beta),
            ("half_life_secs", self.half_life_secs),
            ("value_unit", self.value_unit),
            ("confidence_k", self.confidence_k),
            ("stake_ref", self.stake_ref),
            ("volume_ref", self.volume_ref),
            ("feedback_prior", self.feedback_prior),
        ];
        for (name, v) in pos {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::InvalidParams(format!("{name} must be positive, got {v}")));
            }
        }
        if !(0.0..=1.0).contains(&self.funded_by_agent_discount) {
            return Err(Error::InvalidParams("funded_by_agent_discount must be in [0, 1]".into()));
        }
        if !(self.dispute_loss_weight.is_finite() && self.dispute_loss_weight >= 1.0) {
            return Err(Error::InvalidParams("dispute_loss_weight must be >= 1".into()));
        }
        let sum: f64 = self.weights.iter().sum();
        if self.weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) || (sum - 1.0).abs() > 1e-9 {
            return Err(Error::InvalidParams(format!(
                "weights must be non-negative and sum to 1, got {sum}"
            )));
        }
        Ok(())
    }
}

/// One explained part of a [`Score`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Short name (`success`, `on_time`, `disputes`, `stake`, `volume`, `feedback`).
    pub name: String,
    /// Value in `[0, 1]`.
    pub value: f64,
    /// Weight in the final score (weights sum to 1).
    pub weight: f64,
    /// Human-readable reason.
    pub explanation: String,
}

/// An agent's reputation as of some time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The agent.
    pub agent: Address,
    /// Overall score in `[0, 1]` (weighted sum of the components).
    pub value: f64,
    /// How much evidence backs it, in `[0, 1)`.
    pub confidence: f64,
    /// Explained components.
    pub components: Vec<Component>,
    /// Lifetime counts of outcomes by kind.
    pub counts: Counts,
    /// Time the score was evaluated at (unix seconds).
    pub as_of: u64,
}

/// Lifetime (undecayed, unweighted) counts of an agent's outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Completed jobs.
    pub completed: u64,
    /// Final rejections.
    pub rejected: u64,
    /// Expired jobs.
    pub expired: u64,
    /// Disputes lost.
    pub disputes_lost: u64,
    /// Disputes won.
    pub disputes_won: u64,
    /// Outcomes whose poster was funded by the agent.
    pub self_funded: u64,
    /// Ratings (ERC-8004 feedback) received.
    #[serde(default)]
    pub feedback: u64,
}

/// Decayed, weighted accumulators of one agent, all expressed at time `t_ref`.
#[derive(Debug, Clone, Default)]
struct AgentState {
    t_ref: u64,
    succ: f64,
    fail: f64,
    lost: f64,
    on_time: f64,
    with_eta: f64,
    volume: f64,
    stake: f64,
    /// Weighted sum of ratings, and their total weight.
    rated: f64,
    rated_w: f64,
    counts: Counts,
}

impl AgentState {
    /// Multiplier that moves a quantity from time `from` to the later time `to`.
    fn decay(params: &Params, from: u64, to: u64) -> f64 {
        if to <= from {
            1.0
        } else {
            (-((to - from) as f64) / params.half_life_secs * std::f64::consts::LN_2).exp()
        }
    }

    fn advance(&mut self, params: &Params, t: u64) {
        if t > self.t_ref {
            let f = Self::decay(params, self.t_ref, t);
            self.succ *= f;
            self.fail *= f;
            self.lost *= f;
            self.on_time *= f;
            self.with_eta *= f;
            self.volume *= f;
            self.rated *= f;
            self.rated_w *= f;
            self.t_ref = t;
        }
    }

    /// Adds an outcome of base weight `w` (value, pair and funding factors already applied).
    fn add(&mut self, params: &Params, o: &Outcome, w: f64, eff_value: f64) {
        self.advance(params, o.at);
        // An event older than t_ref (out-of-order delivery) is decayed to t_ref.
        let w = w * Self::decay(params, o.at, self.t_ref);
        let eff_value = eff_value * Self::decay(params, o.at, self.t_ref);
        match o.kind {
            OutcomeKind::Completed => {
                self.succ += w;
                self.volume += eff_value;
                self.counts.completed += 1;
            }
            OutcomeKind::DisputeWon => {
                self.succ += w;
                self.volume += eff_value;
                self.counts.disputes_won += 1;
            }
            OutcomeKind::Rejected => {
                self.fail += w;
                self.counts.rejected += 1;
            }
            OutcomeKind::Expired => {
                self.fail += w;
                self.counts.expired += 1;
            }
            OutcomeKind::DisputeLost => {
                self.fail += w * params.dispute_loss_weight;
                self.lost += w;
                self.counts.disputes_lost += 1;
            }
        }
        if let Some(on_time) = o.on_time {
            self.with_eta += w;
            if on_time {
                self.on_time += w;
            }
        }
        if o.poster_funded_by_agent {
            self.counts.self_funded += 1;
        }
    }

    /// Adds a rating `r` in `[0, 1]` of weight `w`.
    fn rate(&mut self, params: &Params, at: u64, r: f64, w: f64) {
        self.advance(params, at);
        let w = w * Self::decay(params, at, self.t_ref);
        self.rated += w * r;
        self.rated_w += w;
        self.counts.feedback += 1;
    }

    /// The raw component values (success, on_time, disputes, stake, volume, feedback) and
    /// confidence.
    fn components(&self, p: &Params) -> ([f64; 6], f64) {
        let success =
            (p.prior_alpha + self.succ) / (p.prior_alpha + p.prior_beta + self.succ + self.fail);
        let on_time = (1.0 + self.on_time) / (2.0 + self.with_eta);
        let jobs = self.succ + self.fail;
        let disputes = 1.0 - self.lost / (jobs + 2.0);
        let stake = 1.0 - (-self.stake / p.stake_ref).exp();
        let volume = 1.0 - (-self.volume / p.volume_ref).exp();
        let feedback = (0.5 * p.feedback_prior + self.rated) / (p.feedback_prior + self.rated_w);
        let n = self.succ + self.fail;
        let confidence = n / (n + p.confidence_k);
        (clamp_all([success, on_time, disputes, stake, volume, feedback]), clamp01(confidence))
    }

    fn value(&self, p: &Params) -> f64 {
        let (c, _) = self.components(p);
        clamp01(c.iter().zip(p.weights.iter()).map(|(c, w)| c * w).sum())
    }
}

fn clamp01(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

fn clamp_all(v: [f64; 6]) -> [f64; 6] {
    v.map(clamp01)
}

/// All agents' reputations, updated one event at a time.
#[derive(Debug, Clone)]
pub struct ReputationBook {
    params: Params,
    agents: HashMap<Address, AgentState>,
    /// Outcomes seen so far per (poster, agent) pair.
    pairs: HashMap<(Address, Address), u32>,
    /// Ratings seen so far per (poster, agent) pair.
    rated_pairs: HashMap<(Address, Address), u32>,
    latest: u64,
    applied: u64,
}

impl Default for ReputationBook {
    fn default() -> Self {
        Self::new(Params::default()).expect("default parameters are valid")
    }
}

impl ReputationBook {
    /// An empty book with `params`.
    pub fn new(params: Params) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            params,
            agents: HashMap::new(),
            pairs: HashMap::new(),
            rated_pairs: HashMap::new(),
            latest: 0,
            applied: 0,
        })
    }

    /// A book built by applying `events` in order (a full recompute).
    pub fn from_events<'a>(
        params: Params,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Self> {
        let mut book = Self::new(params)?;
        for e in events {
            book.apply(e)?;
        }
        Ok(book)
    }

    /// The parameters in use.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Number of events applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Latest event time seen (the default "as of" for scores).
    pub fn latest(&self) -> u64 {
        self.latest
    }

    /// Number of agents with any history.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// True when no agent has any history.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Applies one event. O(1) amortized. Invalid values are rejected without changing state.
    pub fn apply(&mut self, event: &Event) -> Result<()> {
        match event {
            Event::Outcome(o) => {
                if !(o.value.is_finite() && o.value >= 0.0) {
                    return Err(Error::InvalidEvent {
                        agent: o.agent,
                        reason: format!("value {}", o.value),
                    });
                }
                let k = self.pairs.entry((o.poster, o.agent)).or_insert(0);
                let pair_w = 1.0 / (1.0 + f64::from(*k));
                *k = k.saturating_add(1);
                let fund_w = if o.poster_funded_by_agent {
                    self.params.funded_by_agent_discount
                } else {
                    1.0
                };
                let w = (o.value / self.params.value_unit).ln_1p() * pair_w * fund_w;
                let eff_value = o.value * pair_w * fund_w;
                let params = &self.params;
                self.agents.entry(o.agent).or_default().add(params, o, w, eff_value);
            }
            Event::Feedback(f) => {
                if !(f.value.is_finite() && f.value >= 0.0) {
                    return Err(Error::InvalidEvent {
                        agent: f.agent,
                        reason: format!("feedback value {}", f.value),
                    });
                }
                if !(f.rating.is_finite() && (0.0..=1.0).contains(&f.rating)) {
                    return Err(Error::InvalidEvent {
                        agent: f.agent,
                        reason: format!("rating {} outside [0, 1]", f.rating),
                    });
                }
                let k = self.rated_pairs.entry((f.poster, f.agent)).or_insert(0);
                let pair_w = 1.0 / (1.0 + f64::from(*k));
                *k = k.saturating_add(1);
                let fund_w = if f.poster_funded_by_agent {
                    self.params.funded_by_agent_discount
                } else {
                    1.0
                };
                let w = (f.value / self.params.value_unit).ln_1p() * pair_w * fund_w;
                let params = &self.params;
                self.agents.entry(f.agent).or_default().rate(params, f.at, f.rating, w);
            }
            Event::Stake { agent, bonded, at } => {
                if !(bonded.is_finite() && *bonded >= 0.0) {
                    return Err(Error::InvalidEvent {
                        agent: *agent,
                        reason: format!("stake {bonded}"),
                    });
                }
                let params = &self.params;
                let st = self.agents.entry(*agent).or_default();
                st.advance(params, *at);
                st.stake = *bonded;
            }
        }
        self.latest = self.latest.max(event.at());
        self.applied += 1;
        Ok(())
    }

    /// The agent's score as of the latest event seen.
    pub fn score(&self, agent: &Address) -> Score {
        self.score_at(agent, self.latest)
    }

    /// The agent's score as of `now` (unix seconds). Unknown agents get the neutral prior.
    pub fn score_at(&self, agent: &Address, now: u64) -> Score {
        let mut st = self.agents.get(agent).cloned().unwrap_or_default();
        st.advance(&self.params, now);
        explain(&self.params, *agent, &st, now.max(st.t_ref))
    }

    /// The `n` best agents as of the latest event (by value, then confidence, then address).
    pub fn top(&self, n: usize) -> Vec<Score> {
        self.top_at(n, self.latest)
    }

    /// The `n` best agents as of `now`.
    pub fn top_at(&self, n: usize, now: u64) -> Vec<Score> {
        let mut ranked: Vec<(f64, f64, Address)> = self
            .agents
            .iter()
            .map(|(a, st)| {
                let mut st = st.clone();
                st.advance(&self.params, now);
                let (_, conf) = st.components(&self.params);
                (st.value(&self.params), conf, *a)
            })
            .collect();
        ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(y.1.total_cmp(&x.1)).then(x.2.cmp(&y.2)));
        ranked.truncate(n);
        ranked.into_iter().map(|(_, _, a)| self.score_at(&a, now)).collect()
    }
}

fn explain(p: &Params, agent: Address, st: &AgentState, as_of: u64) -> Score {
    let (c, confidence) = st.components(p);
    let k = st.counts;
    let names = ["success", "on_time", "disputes", "stake", "volume", "feedback"];
    let explanations = [
        format!(
            "Beta({}, {}) prior + {:.2} weighted successes vs {:.2} failures ({} completed, {} disputes won; {} rejected, {} expired, {} disputes lost; {} from self-funded posters, discounted)",
            p.prior_alpha,
            p.prior_beta,
            st.succ,
            st.fail,
            k.completed,
            k.disputes_won,
            k.rejected,
            k.expired,
            k.disputes_lost,
            k.self_funded
        ),
        if st.with_eta > 0.0 {
            format!(
                "{:.2} of {:.2} weighted deliveries on time (by the award's due time: the bid's ETA, else the deadline)",
                st.on_time, st.with_eta
            )
        } else {
            "no deliveries yet: neutral".to_string()
        },
        format!(
            "{:.2} weighted disputes lost over {:.2} weighted jobs",
            st.lost,
            st.succ + st.fail
        ),
        format!("{:.4} bonded (reference {})", st.stake, p.stake_ref),
        format!("{:.2} decayed, discounted value paid (reference {})", st.volume, p.volume_ref),
        if k.feedback > 0 {
            format!(
                "{} poster ratings averaging {:.2} (weighted by each bounty's paid value, ln(1 + value); total weight {:.2}) with a neutral prior of weight {}",
                k.feedback,
                if st.rated_w > 0.0 { st.rated / st.rated_w } else { 0.5 },
                st.rated_w,
                p.feedback_prior
            )
        } else {
            "no ratings yet: neutral".to_string()
        },
    ];
    let components: Vec<Component> = names
        .iter()
        .zip(explanations)
        .enumerate()
        .map(|(i, (name, explanation))| Component {
            name: (*name).to_string(),
            value: c[i],
            weight: p.weights[i],
            explanation,
        })
        .collect();
    let value = clamp01(components.iter().map(|c| c.value * c.weight).sum());
    Score { agent, value, confidence, components, counts: k, as_of }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newcomer_is_neutral_with_zero_confidence() {
        let book = ReputationBook::default();
        let s = book.score(&Address::repeat_byte(1));
        assert_eq!(s.confidence, 0.0);
        let success = &s.components[0];
        assert_eq!(success.value, 0.5);
        // 0.50*0.5 + 0.15*0.5 + 0.10*1 + 0 + 0 + 0.10*0.5
        assert!((s.value - 0.475).abs() < 1e-12, "{}", s.value);
    }

    #[test]
    fn invalid_values_are_rejected_without_panicking() {
        let mut book = ReputationBook::default();
        let bad = Event::Stake { agent: Address::ZERO, bonded: f64::NAN, at: 1 };
        assert!(book.apply(&bad).is_err());
        assert_eq!(book.applied(), 0);
        let p = Params { weights: [1.0; 6], ..Params::default() };
        assert!(ReputationBook::new(p).is_err());
    }

    fn rated(agent: u8, value: f64, rating: f64, at: u64) -> Event {
        Event::Feedback(Feedback {
            agent: Address::repeat_byte(agent),
            poster: Address::repeat_byte(9),
            value,
            rating,
            at,
            poster_funded_by_agent: false,
        })
    }

    fn feedback_of(book: &ReputationBook, agent: u8) -> f64 {
        book.score(&Address::repeat_byte(agent)).components[5].value
    }

    #[test]
    fn feedback_is_weighted_by_the_paid_value() {
        // Agent 1: five stars on a 1-wei bounty, then one star on a 100-token one (the same
        // poster's second rating: pair factor 1/2).
        let book = ReputationBook::from_events(
            Params::default(),
            &[rated(1, 1e-18, 1.0, 10), rated(1, 100.0, 0.0, 10)],
        )
        .unwrap();
        let w = 101f64.ln() / 2.0;
        let expected = (0.5 + 1e-18) / (1.0 + w + 1e-18);
        let got = feedback_of(&book, 1);
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!(got < 0.2, "the big bounty's bad rating dominates: {got}");
        // Reversed: the large job's top rating dominates.
        let book = ReputationBook::from_events(
            Params::default(),
            &[rated(2, 1e-18, 0.0, 10), rated(2, 100.0, 1.0, 10)],
        )
        .unwrap();
        assert!(feedback_of(&book, 2) > 0.8, "{}", feedback_of(&book, 2));
    }

    #[test]
    fn feedback_moves_the_score_and_is_explained() {
        let neutral = ReputationBook::default().score(&Address::repeat_byte(3));
        let book =
            ReputationBook::from_events(Params::default(), &[rated(3, 10.0, 1.0, 5)]).unwrap();
        let s = book.score(&Address::repeat_byte(3));
        let w = 11f64.ln();
        let expected = (0.5 + w) / (1.0 + w);
        assert!((s.components[5].value - expected).abs() < 1e-12);
        assert!((s.value - (neutral.value + 0.10 * (expected - 0.5))).abs() < 1e-12);
        assert_eq!(s.counts.feedback, 1);
        assert!(s.components[5].explanation.starts_with("1 poster ratings averaging 1.00"));
        assert_eq!(neutral.components[5].explanation, "no ratings yet: neutral");
        // A rating outside [0, 1] is refused and changes nothing.
        let mut book = book;
        assert!(book.apply(&rated(3, 1.0, 1.5, 6)).is_err());
        assert_eq!(book.score(&Address::repeat_byte(3)).counts.feedback, 1);
    }
}
