//! Semantic addressing in the node: the embedding model ([`reef_semantic::Embedder`]) and the
//! agents' vectors ([`reef_semantic::VectorIndex`]) beside the BM25 index, so that
//! [`super::Node::discover`] ranks by keywords, meaning and reputation (docs/discovery.md).
//!
//! Cards are embedded once per change of their text (an agent re-registering the same card
//! costs no inference), on a blocking thread, never on the async runtime. Without a model the
//! node ranks by BM25 and reputation only, and says so at start-up and in `GET /v1/health`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use alloy_primitives::{Address, B256};
use reef_semantic::{Embedder, VectorIndex, Weights};
use reef_wire::AgentCard;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{Error, Result};

/// Where the node's default model lives, relative to the working directory or to the
/// checkout the `reef` binary was built in (what `make model` fills).
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";

/// Cards embedded per inference call when the index is built at start-up.
const BATCH: usize = 32;

/// Query vectors kept (the cache is emptied when it is full).
const QUERY_CACHE: usize = 1024;

/// Which embedding model the node runs (`reef node --embedding-model`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ModelChoice {
    /// The repository's model folder ([`DEFAULT_MODEL_DIR`]) if it is there, else none.
    #[default]
    Default,
    /// No model: BM25 and reputation only.
    Off,
    /// This folder (the node refuses to start if it cannot load it).
    Dir(PathBuf),
}

impl std::str::FromStr for ModelChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "" => Err("--embedding-model needs a folder, or `off`".into()),
            "off" => Ok(Self::Off),
            dir => Ok(Self::Dir(PathBuf::from(dir))),
        }
    }
}

/// Where the default model folder is: the working directory's [`DEFAULT_MODEL_DIR`], else
/// the one of the checkout holding the running binary (`target/<profile>/reef`).
pub fn default_model_dir() -> Option<PathBuf> {
    let here = PathBuf::from(DEFAULT_MODEL_DIR);
    if here.join("config.json").is_file() {
        return Some(here);
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(4)
        .map(|d| d.join(DEFAULT_MODEL_DIR))
        .find(|d| d.join("config.json").is_file())
}

/// How discovery ranks on this node (`GET /v1/health`, `discovery`).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct DiscoveryInfo {
    /// `hybrid` (BM25, embeddings and reputation) or `bm25` (no embedding model: BM25 and
    /// reputation).
    #[schema(example = "hybrid")]
    pub ranking: String,
    /// The embedding model's name (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why there is no model (absent with one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// The weight of each part of a hit's score.
    pub weights: WeightsInfo,
}

/// The weights of a hit's score parts.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq)]
pub struct WeightsInfo {
    /// Weight of the normalised BM25 score.
    pub bm25: f32,
    /// Weight of the cosine similarity.
    pub semantic: f32,
    /// Weight of the reputation score.
    pub reputation: f32,
}

/// The model, the agents' vectors and a cache of query vectors.
pub struct Semantic {
    embedder: Option<Arc<Embedder>>,
    fallback: Option<String>,
    index: RwLock<VectorIndex>,
    /// The text each agent's vector must come from (its latest card's), so an embedding
    /// that finishes after a newer registration's is dropped, not stored over it.
    wanted: Mutex<HashMap<Address, B256>>,
    queries: Mutex<HashMap<B256, Arc<Vec<f32>>>>,
}

impl std::fmt::Debug for Semantic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semantic")
            .field("embedder", &self.embedder)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("embedding: {e}"))
}

impl Semantic {
    /// Loads the chosen model (on a blocking thread: reading 90 MB of weights). A folder
    /// named explicitly that cannot be loaded is an error; a missing default is a fallback.
    pub async fn open(choice: &ModelChoice) -> Result<Self> {
        let dir = match choice {
            ModelChoice::Off => return Ok(Self::without("turned off (--embedding-model off)")),
            ModelChoice::Default => match default_model_dir() {
                Some(d) => d,
                None => {
                    return Ok(Self::without(&format!(
                        "no model in ./{DEFAULT_MODEL_DIR} (run `make model`)"
                    )));
                }
            },
            ModelChoice::Dir(d) => d.clone(),
        };
        let embedder = load(dir).await?;
        Ok(Self {
            embedder: Some(Arc::new(embedder)),
            fallback: None,
            index: RwLock::default(),
            wanted: Mutex::default(),
            queries: Mutex::default(),
        })
    }

    /// Ranking without a model, for `reason`.
    pub fn without(reason: &str) -> Self {
        Self {
            embedder: None,
            fallback: Some(reason.to_string()),
            index: RwLock::default(),
            wanted: Mutex::default(),
            queries: Mutex::default(),
        }
    }

    /// Whether a model is loaded.
    pub fn enabled(&self) -> bool {
        self.embedder.is_some()
    }

    /// The weights of the score parts.
    pub fn weights(&self) -> Weights {
        if self.enabled() { Weights::HYBRID } else { Weights::KEYWORD }
    }

    /// What `GET /v1/health` shows.
    pub fn info(&self) -> DiscoveryInfo {
        let w = self.weights();
        DiscoveryInfo {
            ranking: if self.enabled() { "hybrid" } else { "bm25" }.into(),
            model: self.embedder.as_ref().map(|_| "all-MiniLM-L6-v2".to_string()),
            fallback: self.fallback.clone(),
            weights: WeightsInfo { bm25: w.bm25, semantic: w.semantic, reputation: w.reputation },
        }
    }

    /// The start-up line saying how discovery ranks.
    pub fn describe(&self) -> String {
        match (&self.embedder, &self.fallback) {
            (Some(e), _) => format!(
                "discovery: hybrid ranking (BM25 + all-MiniLM-L6-v2 embeddings from {} + reputation)",
                e.dir().display()
            ),
            (None, reason) => format!(
                "discovery: falling back to BM25 ranking (no embedding model: {})",
                reason.as_deref().unwrap_or("none")
            ),
        }
    }

    /// How many agents have a vector.
    pub fn len(&self) -> usize {
        self.index.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no agent has a vector.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the vectors of many agents (start-up): the cards' own vectors, and the others
    /// embedded in batches of [`BATCH`] on a blocking thread.
    pub async fn upsert_many(&self, agents: &[(Address, AgentCard)]) -> Result<()> {
        let Some(embedder) = &self.embedder else { return Ok(()) };
        let mut todo: Vec<(Address, String, B256)> = Vec::new();
        {
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            for (addr, card) in agents {
                match own_vector(card) {
                    Some(v) => {
                        index.upsert(*addr, &v?, B256::ZERO);
                        wanted.insert(*addr, B256::ZERO);
                    }
                    None => {
                        let text = card_text(card);
                        let hash = reef_semantic::text_hash(&text);
                        wanted.insert(*addr, hash);
                        if index.source_of(addr) != Some(hash) {
                            todo.push((*addr, text, hash));
                        }
                    }
                }
            }
        }
        for chunk in todo.chunks(BATCH) {
            let texts: Vec<String> = chunk.iter().map(|(_, t, _)| t.clone()).collect();
            let e = embedder.clone();
            let vectors = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                e.embed(&refs)
            })
            .await
            .map_err(internal)?
            .map_err(internal)?;
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            let wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            for ((addr, _, hash), v) in chunk.iter().zip(vectors) {
                if wanted.get(addr) == Some(hash) {
                    index.upsert(*addr, &v, *hash);
                }
            }
        }
        Ok(())
    }

    /// Sets one agent's vector: its card's own, or the model's embedding of the card's text
    /// (skipped when the text did not change).
    pub async fn upsert(&self, addr: Address, card: &AgentCard) -> Result<()> {
        self.upsert_many(&[(addr, card.clone())]).await
    }

    /// The unit vector of a query (`None` without a model); cached by text.
    pub async fn query_vector(&self, query: &str) -> Result<Option<Arc<Vec<f32>>>> {
        let Some(embedder) = &self.embedder else { return Ok(None) };
        let key = reef_semantic::text_hash(query);
        if let Some(v) = self.queries.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Some(v.clone()));
        }
        let e = embedder.clone();
        let text = query.to_string();
        let v = tokio::task::spawn_blocking(move || e.embed_one(&text))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let v = Arc::new(v);
        let mut cache = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= QUERY_CACHE {
            cache.clear();
        }
        cache.insert(key, v.clone());
        Ok(Some(v))
    }

    /// The agents at least [`reef_semantic::MIN_SIMILARITY`] similar to `query` (at most
    /// `limit`), plus the similarity of each agent in `also` (the keyword hits), by address.
    pub fn similarities(
        &self,
        query: &[f32],
        limit: usize,
        also: impl IntoIterator<Item = Address>,
    ) -> HashMap<Address, f32> {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let mut out: HashMap<Address, f32> =
            index.search(query, reef_semantic::MIN_SIMILARITY, limit).into_iter().collect();
        for a in also {
            if let Some(v) = index.get(&a) {
                out.entry(a).or_insert_with(|| reef_semantic::index::dot(v, query));
            }
        }
        out
    }
}

/// The text the model embeds for `card`.
pub fn card_text(card: &AgentCard) -> String {
    reef_semantic::card_text(&card.name, &card.description, &card.skills)
}

/// The card's own vector, checked and scaled to unit length (`None`: it has none).
pub fn own_vector(card: &AgentCard) -> Option<Result<Vec<f32>>> {
    card.embedding.as_ref().map(|v| {
        reef_semantic::check_vector(v)
            .map_err(|e| Error::BadRequest(reef_wire::ErrorCode::InvalidFrame, e.to_string()))
    })
}

async fn load(dir: PathBuf) -> Result<Embedder> {
    let shown = dir.clone();
    tokio::task::spawn_blocking(move || Embedder::load(Path::new(&dir)))
        .await
        .map_err(internal)?
        .map_err(|e| {
            Error::Internal(format!("cannot load the embedding model {}: {e}", shown.display()))
        })
}
