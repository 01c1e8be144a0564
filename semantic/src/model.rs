//! The sentence-embedding model: all-MiniLM-L6-v2 (BERT, 6 layers, 384 dimensions) loaded
//! from a folder holding `config.json`, `tokenizer.json`, `model.safetensors` and
//! `1_Pooling/config.json` (what `make model` unpacks), run on the CPU.
//!
//! A sentence's vector is the mean of the model's last hidden states over its real tokens
//! (weighted by the attention mask, so padding never counts), scaled to unit length: the
//! cosine similarity of two sentences is then the dot product of their vectors.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};

use crate::{DIM, Error, MAX_TOKENS, Result};

/// The files of a model folder, in the order they are checked.
const FILES: [&str; 4] =
    ["config.json", "tokenizer.json", "model.safetensors", "1_Pooling/config.json"];

/// A loaded model and its tokenizer (thread-safe; inference is CPU-bound, so async callers
/// run [`Embedder::embed`] on a blocking thread).
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    dir: PathBuf,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn model_err(dir: &Path, reason: impl Into<String>) -> Error {
    Error::Model { dir: dir.display().to_string(), reason: reason.into() }
}

impl Embedder {
    /// Loads the model in `dir` (see the module documentation for the files it needs).
    pub fn load(dir: &Path) -> Result<Self> {
        for f in FILES {
            if !dir.join(f).is_file() {
                return Err(model_err(dir, format!("{f} is missing")));
            }
        }
        let read =
            |f: &str| std::fs::read(dir.join(f)).map_err(|e| model_err(dir, format!("{f}: {e}")));
        let pooling: serde_json::Value = serde_json::from_slice(&read("1_Pooling/config.json")?)
            .map_err(|e| model_err(dir, format!("1_Pooling/config.json: {e}")))?;
        if pooling["pooling_mode_mean_tokens"] != serde_json::Value::Bool(true)
            || pooling["word_embedding_dimension"].as_u64() != Some(DIM as u64)
        {
            return Err(model_err(
                dir,
                format!("1_Pooling/config.json must ask for mean pooling over {DIM} dimensions"),
            ));
        }
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| model_err(dir, format!("config.json: {e}")))?;
        if config.hidden_size != DIM {
            return Err(model_err(
                dir,
                format!("config.json: hidden_size {} is not {DIM}", config.hidden_size),
            ));
        }
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| model_err(dir, format!("tokenizer.json: {e}")))?;
        // The file pads every input to 128 tokens; a batch is padded to its longest input
        // instead (the attention mask keeps padding out of the mean either way).
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                ..Default::default()
            }))
            .map_err(|e| model_err(dir, format!("tokenizer.json: {e}")))?;
        let weights = read("model.safetensors")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
        let model = BertModel::load(vb, &config)?;
        Ok(Self { model, tokenizer, dir: dir.to_path_buf() })
    }

    /// The folder the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One unit vector of [`DIM`] numbers per text, in order (texts past [`MAX_TOKENS`]
    /// tokens are truncated).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let n = encodings.len();
        let len = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(n * len);
        let mut types = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &encodings {
            if e.len() != len {
                return Err(Error::Tokenizer(format!(
                    "batch padding gave {} tokens, expected {len}",
                    e.len()
                )));
            }
            ids.extend_from_slice(e.get_ids());
            types.extend_from_slice(e.get_type_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, (n, len), &dev)?;
        let types = Tensor::from_vec(types, (n, len), &dev)?;
        let mask = Tensor::from_vec(mask, (n, len), &dev)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (n, len, DIM)
        // Mean over the real tokens only: padding positions are weighted 0.
        let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&weights)?.sum(1)?; // (n, DIM)
        let counts = weights.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
        let unit = mean.broadcast_div(&norms)?;
        Ok(unit.to_vec2::<f32>()?)
    }

    /// The vector of one text.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        self.embed(&[text])?
            .pop()
            .ok_or_else(|| Error::Tokenizer("the model returned no vector".into()))
    }
}
