//! A brute-force vector index: every agent's unit vector in one contiguous `f32` matrix
//! (row-major, [`DIM`] columns), scored against a query with one dot product per row. At
//! 10,000 agents that is 3.8 M multiply-adds per query, well under a millisecond on one core
//! (`make bench-discovery`), so no approximate index is needed at this size.

use std::collections::HashMap;

use alloy_primitives::{Address, B256};

use crate::DIM;

/// Agents' unit vectors, by address.
#[derive(Debug, Default, Clone)]
pub struct VectorIndex {
    /// `keys.len() × DIM` numbers.
    data: Vec<f32>,
    /// The agent of each row.
    keys: Vec<Address>,
    /// Row of each agent, and the hash of the text its vector was made from
    /// ([`crate::text_hash`]; the zero hash for a vector the agent supplied).
    rows: HashMap<Address, (usize, B256)>,
}

impl VectorIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many agents have a vector.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no agent has a vector.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The hash of the text `agent`'s current vector was made from, if it has one.
    pub fn source_of(&self, agent: &Address) -> Option<B256> {
        self.rows.get(agent).map(|(_, h)| *h)
    }

    /// `agent`'s vector, if it has one.
    pub fn get(&self, agent: &Address) -> Option<&[f32]> {
        let (row, _) = self.rows.get(agent)?;
        Some(&self.data[row * DIM..(row + 1) * DIM])
    }

    /// Sets `agent`'s vector (a unit vector of [`DIM`] numbers; other lengths are ignored,
    /// the caller checks them) made from the text with hash `source`.
    pub fn upsert(&mut self, agent: Address, vector: &[f32], source: B256) {
        if vector.len() != DIM {
            return;
        }
        match self.rows.get_mut(&agent) {
            Some((row, h)) => {
                self.data[*row * DIM..(*row + 1) * DIM].copy_from_slice(vector);
                *h = source;
            }
            None => {
                self.rows.insert(agent, (self.keys.len(), source));
                self.keys.push(agent);
                self.data.extend_from_slice(vector);
            }
        }
    }

    /// Removes `agent`'s vector (its row is replaced by the last one).
    pub fn remove(&mut self, agent: &Address) {
        let Some((row, _)) = self.rows.remove(agent) else { return };
        let last = self.keys.len() - 1;
        if row != last {
            let moved = self.keys[last];
            self.data.copy_within(last * DIM..(last + 1) * DIM, row * DIM);
            self.keys[row] = moved;
            if let Some((r, _)) = self.rows.get_mut(&moved) {
                *r = row;
            }
        }
        self.keys.pop();
        self.data.truncate(last * DIM);
    }

    /// Cosine similarity of every agent's vector with the unit vector `query`, for the
    /// agents at or above `min`, best first, at most `limit` of them.
    pub fn search(&self, query: &[f32], min: f32, limit: usize) -> Vec<(Address, f32)> {
        if query.len() != DIM {
            return Vec::new();
        }
        let mut hits: Vec<(Address, f32)> = self
            .data
            .chunks_exact(DIM)
            .zip(&self.keys)
            .filter_map(|(row, key)| {
                let s = dot(row, query);
                (s >= min).then_some((*key, s))
            })
            .collect();
        hits.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(limit);
        hits
    }
}

/// Dot product of two equally long slices (eight running sums, so the compiler vectorises).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; DIM];
        v[i] = 1.0;
        v
    }

    #[test]
    fn search_ranks_by_cosine_and_remove_keeps_rows_consistent() {
        let (a, b, c) = (Address::repeat_byte(1), Address::repeat_byte(2), Address::repeat_byte(3));
        let mut idx = VectorIndex::new();
        idx.upsert(a, &unit(0), B256::ZERO);
        idx.upsert(b, &unit(1), B256::ZERO);
        let mut mix = vec![0.0; DIM];
        mix[0] = 0.6;
        mix[1] = 0.8;
        idx.upsert(c, &mix, B256::repeat_byte(9));
        assert_eq!(idx.len(), 3);
        let hits = idx.search(&unit(1), 0.1, 10);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![b, c]);
        assert!((hits[1].1 - 0.8).abs() < 1e-6);
        assert_eq!(idx.search(&unit(1), 0.1, 1).len(), 1);

        idx.remove(&a);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.get(&c).unwrap()[1], 0.8);
        assert_eq!(idx.source_of(&c), Some(B256::repeat_byte(9)));
        idx.upsert(c, &unit(0), B256::ZERO);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.search(&unit(0), 0.5, 10), vec![(c, 1.0)]);
        idx.remove(&b);
        idx.remove(&c);
        assert!(idx.is_empty() && idx.search(&unit(0), -1.0, 10).is_empty());
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..DIM).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..DIM).map(|i| (i as f32 * 0.3).cos()).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0, 1.0, 1.0]), 6.0);
    }
}
