//! Semantic addressing for Reef's agent discovery: a sentence-embedding model
//! (all-MiniLM-L6-v2, a 6-layer BERT, run on the CPU with candle) that turns agent cards and
//! natural-language queries into unit vectors of [`DIM`] numbers, a brute-force vector index
//! over a contiguous `f32` matrix, and the hybrid ranking that mixes BM25, vector similarity
//! and reputation into one explained score.
//!
//! What it is not: it holds no keyword index (the node's tantivy index does BM25), reads no
//! reputation (the caller hands the values in) and does no I/O besides loading the model
//! folder once. It never downloads anything: the model comes from `make model`.

pub mod index;
pub mod model;
pub mod rank;

pub use index::VectorIndex;
pub use model::Embedder;
pub use rank::{MIN_SIMILARITY, Weights, explain};

/// Dimension of every vector (all-MiniLM-L6-v2's hidden size).
pub const DIM: usize = 384;

/// Longest input the model reads, in tokens (longer texts are truncated).
pub const MAX_TOKENS: usize = 128;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model folder is missing a file, or a file is malformed.
    #[error("embedding model at {dir}: {reason} (run `make model`)")]
    Model {
        /// The folder that was read.
        dir: String,
        /// What is wrong.
        reason: String,
    },
    /// The tensor library failed (shapes, weights).
    #[error("embedding inference: {0}")]
    Candle(#[from] candle_core::Error),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A vector supplied by an agent is unusable.
    #[error("{0}")]
    BadVector(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks a vector an agent supplies on its card (exactly [`DIM`] finite numbers, not all
/// zero) and returns it scaled to unit length, as the index stores every vector.
pub fn check_vector(v: &[f32]) -> Result<Vec<f32>> {
    if v.len() != DIM {
        return Err(Error::BadVector(format!(
            "card.embedding must have {DIM} numbers (all-MiniLM-L6-v2's dimension), got {}",
            v.len()
        )));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::BadVector(format!(
            "card.embedding[{i}] is not a finite number ({})",
            v[i]
        )));
    }
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(Error::BadVector("card.embedding must not be all zeros".into()));
    }
    Ok(v.iter().map(|x| (f64::from(*x) / norm) as f32).collect())
}

/// The text of a card the model embeds: its name, description and skills in one sentence
/// group (what an agent says it does; prices and tokens are filters, not meaning).
pub fn card_text(name: &str, description: &str, skills: &[String]) -> String {
    let mut s = String::with_capacity(name.len() + description.len() + 16 * skills.len() + 16);
    s.push_str(name.trim());
    let d = description.trim();
    if !d.is_empty() {
        s.push_str(". ");
        s.push_str(d);
    }
    if !skills.is_empty() {
        s.push_str(". Skills: ");
        s.push_str(&skills.join(", "));
    }
    s
}

/// A 32-byte digest of a text (the key of the embedding caches: a card whose text did not
/// change is not embedded again).
pub fn text_hash(text: &str) -> alloy_primitives::B256 {
    alloy_primitives::keccak256(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_vector_normalises_and_refuses_bad_input() {
        let mut v = vec![0.0f32; DIM];
        v[0] = 3.0;
        v[1] = 4.0;
        let u = check_vector(&v).unwrap();
        assert!((u[0] - 0.6).abs() < 1e-6 && (u[1] - 0.8).abs() < 1e-6);

        let e = check_vector(&[1.0; 3]).unwrap_err().to_string();
        assert!(e.contains("384") && e.contains("got 3"), "{e}");
        let mut nan = vec![0.1f32; DIM];
        nan[7] = f32::NAN;
        let e = check_vector(&nan).unwrap_err().to_string();
        assert!(e.contains("card.embedding[7]") && e.contains("finite"), "{e}");
        let mut inf = vec![0.1f32; DIM];
        inf[2] = f32::INFINITY;
        assert!(check_vector(&inf).unwrap_err().to_string().contains("[2]"));
        let e = check_vector(&[0.0; DIM]).unwrap_err().to_string();
        assert!(e.contains("zeros"), "{e}");
    }

    #[test]
    fn card_text_joins_the_parts() {
        let t = card_text(" Sorter ", "sorts numbers", &["sort".into(), "math".into()]);
        assert_eq!(t, "Sorter. sorts numbers. Skills: sort, math");
        assert_eq!(card_text("X", "", &[]), "X");
        assert_ne!(text_hash("a"), text_hash("b"));
    }
}
