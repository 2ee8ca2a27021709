//! Sentence embeddings with a BERT model (sentence-transformers layout) on candle's CPU backend.
//!
//! [`Embedder`] owns the weights and the tokenizer of one model directory and computes mean-pooled,
//! L2-normalized embeddings, as sentence-transformers does for models like all-MiniLM-L6-v2. Texts are truncated
//! to the model's `max_seq_length`, sorted by length and run in batches padded only to their longest member; the
//! attention mask keeps padding out of both attention and pooling, so a text embeds the same alone or in a batch.
//! All work happens on the calling thread; nothing here is async.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use crate::InferenceError;

/// How to load an embedder.
#[derive(Debug, Clone)]
pub struct EmbedderOptions {
    /// Most texts run through the model at once; larger batches use more memory.
    pub max_batch_size: usize,
}

impl Default for EmbedderOptions {
    /// Batches of up to 32 texts.
    fn default() -> EmbedderOptions {
        EmbedderOptions { max_batch_size: 32 }
    }
}

/// What a loaded embedder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderInfo {
    /// The model directory's name.
    pub name: String,
    /// Length of every embedding vector.
    pub dimensions: usize,
    /// Tokens read per text, special tokens included; the rest of a longer text is ignored.
    pub max_tokens: usize,
}

/// Embeddings of a list of texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One unit-length vector per text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read across all texts, special tokens included, padding not.
    pub prompt_tokens: u32,
}

/// A BERT sentence embedder. Shareable across threads; each call to [`Embedder::embed`] blocks its caller.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    pad_id: u32,
    max_batch_size: usize,
    info: EmbedderInfo,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("info", &self.info)
            .field("max_batch_size", &self.max_batch_size)
            .finish()
    }
}

/// `sentence_bert_config.json`: the sequence length the model was trained with.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// `1_Pooling/config.json`: which pooling the model was trained with.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

impl Embedder {
    /// Loads the model in `dir`: `config.json`, `tokenizer.json` and `model.safetensors` are required;
    /// `sentence_bert_config.json` (sequence length) and `1_Pooling/config.json` (must be mean pooling) are read
    /// if present.
    pub fn load(dir: &Path, options: EmbedderOptions) -> Result<Embedder, InferenceError> {
        let config_path = required_file(dir, "config.json")?;
        let tokenizer_path = required_file(dir, "tokenizer.json")?;
        let weights_path = required_file(dir, "model.safetensors")?;

        let config: Config = read_json(&config_path)?;
        let sentence_config_path = dir.join("sentence_bert_config.json");
        let max_tokens = if sentence_config_path.is_file() {
            read_json::<SentenceBertConfig>(&sentence_config_path)?.max_seq_length
        } else {
            config.max_position_embeddings
        };
        let pooling_path = dir.join("1_Pooling").join("config.json");
        if pooling_path.is_file() && !read_json::<PoolingConfig>(&pooling_path)?.pooling_mode_mean_tokens {
            return Err(InferenceError::UnsupportedModel {
                path: pooling_path,
                reason: "only mean pooling is supported".to_owned(),
            });
        }

        let corrupt = |path: &Path, reason: String| InferenceError::ModelCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|error| corrupt(&tokenizer_path, error.to_string()))?;
        // Padding is done per batch below. The file's own setting (all-MiniLM-L6-v2 ships a fixed 128) would pad
        // every text to that length, which is slow, and its truncation is shorter than the model's.
        let pad_id = tokenizer.get_padding().map_or_else(
            || u32::try_from(config.pad_token_id).unwrap_or(0),
            |padding| padding.pad_id,
        );
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|error| corrupt(&tokenizer_path, error.to_string()))?;

        let device = Device::Cpu;
        let weights: HashMap<String, Tensor> = candle_core::safetensors::load(&weights_path, &device)
            .map_err(|error| corrupt(&weights_path, error.to_string()))?;
        let model = BertModel::load(VarBuilder::from_tensors(weights, DType::F32, &device), &config)
            .map_err(|error| corrupt(&weights_path, error.to_string()))?;

        let info = EmbedderInfo {
            name: dir
                .file_name()
                .map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
            dimensions: config.hidden_size,
            max_tokens,
        };
        tracing::debug!(?info, "embedder loaded");
        Ok(Embedder {
            model,
            tokenizer,
            pad_id,
            max_batch_size: options.max_batch_size.max(1),
            info,
        })
    }

    /// What this embedder is.
    pub fn info(&self) -> &EmbedderInfo {
        &self.info
    }

    /// Embeds `texts`, one unit vector per text in the same order. Blocks for the whole computation.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings, InferenceError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|error| InferenceError::Backend(format!("tokenizing for embeddings: {error}")))?;
        let prompt_tokens: usize = encodings.iter().map(Encoding::len).sum();

        // Similar lengths batched together waste little on padding.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&index| encodings[index].len());
        let mut vectors = vec![Vec::new(); encodings.len()];
        for chunk in order.chunks(self.max_batch_size) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&index| &encodings[index]).collect();
            let batch_vectors = self
                .embed_batch(&batch)
                .map_err(|error| InferenceError::Backend(format!("computing embeddings: {error}")))?;
            for (&index, vector) in chunk.iter().zip(batch_vectors) {
                vectors[index] = vector;
            }
        }
        Ok(Embeddings {
            vectors,
            prompt_tokens: u32::try_from(prompt_tokens).unwrap_or(u32::MAX),
        })
    }

    /// Runs one padded batch through the model, then mean-pools over real tokens and normalizes.
    fn embed_batch(&self, batch: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let width = batch.iter().map(|encoding| encoding.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * width);
        let mut type_ids = Vec::with_capacity(batch.len() * width);
        let mut mask = Vec::with_capacity(batch.len() * width);
        for encoding in batch {
            let padding = width - encoding.len();
            ids.extend(
                encoding
                    .get_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(self.pad_id, padding)),
            );
            type_ids.extend(
                encoding
                    .get_type_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, padding)),
            );
            mask.extend(std::iter::repeat_n(1u32, encoding.len()).chain(std::iter::repeat_n(0, padding)));
        }
        let shape = (batch.len(), width);
        let device = &self.model.device;
        let ids = Tensor::from_vec(ids, shape, device)?;
        let type_ids = Tensor::from_vec(type_ids, shape, device)?;
        let mask = Tensor::from_vec(mask, shape, device)?;

        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let mean = summed.broadcast_div(&mask.sum(1)?)?;
        // sentence-transformers' Normalize: divide by the norm, floored at 1e-12.
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        mean.broadcast_div(&norms)?.to_vec2()
    }
}

fn required_file(dir: &Path, name: &str) -> Result<PathBuf, InferenceError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(InferenceError::ModelMissing { path })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, InferenceError> {
    let corrupt = |reason: String| InferenceError::ModelCorrupt {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| corrupt(error.to_string()))?;
    serde_json::from_str(&text).map_err(|error| corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn embedder_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Embedder>();
    }

    #[test]
    fn a_missing_directory_names_the_first_missing_file() {
        let dir = Path::new("/nonexistent/flywheel-embedder");
        let error = Embedder::load(dir, EmbedderOptions::default()).map(|_| ()).unwrap_err();
        assert!(matches!(&error, InferenceError::ModelMissing { path } if path == &dir.join("config.json")));
        let message = error.to_string();
        assert!(
            message.contains("/nonexistent/flywheel-embedder/config.json"),
            "{message}"
        );
        assert!(message.contains("run scripts/fetch-models"), "{message}");
    }
}
