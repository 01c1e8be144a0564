//! Hybrid ranking: a discovery hit's score is a weighted sum of three parts, each in `[0, 1]`,
//! all returned with the hit ([`reef_wire::Ranking`]) so a client sees why an agent ranks
//! where it does:
//!
//! * `bm25`: the keyword score divided by the best keyword score of the same query;
//! * `semantic`: the cosine similarity of the query's and the card's embeddings (below 0: 0);
//! * `reputation`: the agent's reputation score.
//!
//! An agent is a hit when it shares a keyword with the query or its similarity reaches
//! [`MIN_SIMILARITY`]. The weights were chosen on the evaluation set (docs/discovery.md).

use reef_wire::Ranking;
use serde::{Deserialize, Serialize};

/// The weight of each part of the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// Weight of the normalised BM25 score.
    pub bm25: f32,
    /// Weight of the cosine similarity.
    pub semantic: f32,
    /// Weight of the reputation score.
    pub reputation: f32,
}

impl Weights {
    /// Keywords, meaning and reputation (a node with an embedding model).
    pub const HYBRID: Self = Self { bm25: 0.1, semantic: 0.8, reputation: 0.1 };
    /// Keywords and reputation only (a node without an embedding model).
    pub const KEYWORD: Self = Self { bm25: 0.9, semantic: 0.0, reputation: 0.1 };
    /// Meaning and reputation only (for the evaluation's "vector alone" line).
    pub const VECTOR: Self = Self { bm25: 0.0, semantic: 0.9, reputation: 0.1 };
}

/// Smallest cosine similarity that makes an agent without a common keyword a hit
/// (all-MiniLM-L6-v2 puts unrelated sentences around 0 to 0.15; chosen on the evaluation set).
pub const MIN_SIMILARITY: f32 = 0.2;

/// The explained score of one hit. `bm25` is the agent's raw BM25 score (0: no keyword in
/// common), `best_bm25` the best raw score of the query, `semantic` the cosine similarity
/// (`None`: no vector), `reputation` in `[0, 1]`.
pub fn explain(
    weights: &Weights,
    bm25: f32,
    best_bm25: f32,
    semantic: Option<f32>,
    reputation: f32,
) -> Ranking {
    let bm25 =
        if best_bm25 > 0.0 && bm25.is_finite() { (bm25 / best_bm25).clamp(0.0, 1.0) } else { 0.0 };
    let semantic = semantic.map(|s| if s.is_finite() { s.clamp(0.0, 1.0) } else { 0.0 });
    let reputation = if reputation.is_finite() { reputation.clamp(0.0, 1.0) } else { 0.0 };
    let score = weights.bm25 * bm25
        + weights.semantic * semantic.unwrap_or(0.0)
        + weights.reputation * reputation;
    Ranking { bm25, semantic, reputation, score }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_bounded_and_sum_to_the_score() {
        let r = explain(&Weights::HYBRID, 5.0, 10.0, Some(0.7), 0.5);
        assert_eq!((r.bm25, r.semantic, r.reputation), (0.5, Some(0.7), 0.5));
        assert!((r.score - (0.1 * 0.5 + 0.8 * 0.7 + 0.1 * 0.5)).abs() < 1e-6);

        // No keyword match, negative similarity, out-of-range reputation.
        let r = explain(&Weights::HYBRID, 0.0, 0.0, Some(-0.2), 1.5);
        assert_eq!((r.bm25, r.semantic, r.reputation), (0.0, Some(0.0), 1.0));
        assert!((r.score - 0.1).abs() < 1e-6);

        // Without a model there is no semantic part.
        let r = explain(&Weights::KEYWORD, 10.0, 10.0, None, 0.5);
        assert_eq!(r.semantic, None);
        assert!((r.score - 0.95).abs() < 1e-6);
        assert!(explain(&Weights::VECTOR, f32::NAN, 1.0, Some(f32::NAN), f32::NAN).score == 0.0);
    }

    #[test]
    fn weights_sum_to_one() {
        for w in [Weights::HYBRID, Weights::KEYWORD, Weights::VECTOR] {
            assert!((w.bm25 + w.semantic + w.reputation - 1.0).abs() < 1e-6);
        }
    }
}
