//! Dense product vectors: one L2-normalized embedding per catalog product, searched exhaustively by dot
//! product (exact, and under a millisecond at the demo catalog's size; see docs/benchmarks.md for how it grows),
//! embedded through the gateway so the work lands in the ledger, and kept in a file next to the data so a restart
//! does not embed the catalog again.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway::GatewayClient;
use gateway::openai::{EmbeddingInput, EmbeddingRequest, EmbeddingVector};
use sha2::{Digest, Sha256};

use crate::{CommerceError, Product};

/// How many product texts go to the embedder per request.
const EMBED_BATCH: usize = 64;
/// Query embeddings remembered; shoppers repeat the head queries endlessly.
const QUERY_CACHE_ENTRIES: u64 = 10_000;
/// First bytes of a vector file, with the format's version.
const FILE_MAGIC: &[u8; 8] = b"FWVECS01";

/// What a product is embedded as: its name and its classes, the fields that say what it is. (The category path
/// repeats the class in more general words and dilutes the vector: measured on WANDS, docs/benchmarks.md.)
pub(crate) fn embedding_text(product: &Product) -> String {
    if product.class.is_empty() {
        product.name.clone()
    } else {
        format!("{} ({})", product.name, product.class.join(", "))
    }
}

/// Embeds texts with one embedding model through the gateway, remembering query vectors.
pub struct TextEmbedder {
    client: GatewayClient,
    model: String,
    queries: moka::sync::Cache<String, Arc<Vec<f32>>>,
}

impl TextEmbedder {
    /// An embedder calling `model` through `client`.
    pub fn new(client: GatewayClient, model: &str) -> TextEmbedder {
        TextEmbedder {
            client,
            model: model.to_owned(),
            queries: moka::sync::Cache::new(QUERY_CACHE_ENTRIES),
        }
    }

    /// The embedding model's id.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, CommerceError> {
        let count = texts.len();
        let response = self
            .client
            .embeddings(EmbeddingRequest {
                model: self.model.clone(),
                input: EmbeddingInput::Many(texts),
                encoding_format: None,
                dimensions: None,
                user: None,
            })
            .await
            .map_err(CommerceError::Embedding)?;
        let mut data = response.data;
        data.sort_by_key(|item| item.index);
        let vectors: Vec<Vec<f32>> = data
            .into_iter()
            .filter_map(|item| match item.embedding {
                EmbeddingVector::Float(vector) => Some(vector),
                EmbeddingVector::Base64(_) => None,
            })
            .collect();
        if vectors.len() != count {
            return Err(CommerceError::VectorsUnavailable(format!(
                "the embedder returned {} vectors for {count} texts",
                vectors.len()
            )));
        }
        Ok(vectors)
    }

    /// The vector of a search query, from the cache when it was asked before.
    pub async fn embed_query(&self, text: &str) -> Result<Arc<Vec<f32>>, CommerceError> {
        if let Some(vector) = self.queries.get(text) {
            return Ok(vector);
        }
        let vector = self
            .embed(vec![text.to_owned()])
            .await?
            .pop()
            .map(Arc::new)
            .ok_or_else(|| CommerceError::VectorsUnavailable("the embedder returned no vector".to_owned()))?;
        self.queries.insert(text.to_owned(), Arc::clone(&vector));
        Ok(vector)
    }
}

/// One vector per catalog product, in catalog order.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductVectors {
    dimensions: usize,
    values: Vec<f32>,
}

impl ProductVectors {
    /// Vectors from rows of equal length.
    pub fn from_rows(rows: Vec<Vec<f32>>) -> Result<ProductVectors, CommerceError> {
        let dimensions = rows.first().map_or(0, Vec::len);
        if dimensions == 0 || rows.iter().any(|row| row.len() != dimensions) {
            return Err(CommerceError::VectorsUnavailable(
                "product vectors must be non-empty and all of one length".to_owned(),
            ));
        }
        Ok(ProductVectors {
            dimensions,
            values: rows.into_iter().flatten().collect(),
        })
    }

    /// How many products have a vector.
    pub fn len(&self) -> usize {
        self.values.len() / self.dimensions.max(1)
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The vector of the product at catalog row `row`.
    pub fn row(&self, row: usize) -> Option<&[f32]> {
        let start = row.checked_mul(self.dimensions)?;
        self.values.get(start..start.checked_add(self.dimensions)?)
    }

    /// The vectors' length.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The `k` products most similar to `query` (cosine, as the vectors are normalized), best first, as
    /// (catalog row, similarity). A query of the wrong length matches nothing.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        self.nearest_where(query, k, |_| true)
    }

    /// Like [`ProductVectors::nearest`], among the rows `keep` accepts.
    pub fn nearest_where(&self, query: &[f32], k: usize, keep: impl Fn(usize) -> bool) -> Vec<(usize, f32)> {
        if query.len() != self.dimensions || k == 0 {
            return Vec::new();
        }
        let mut scored: Vec<(usize, f32)> = self
            .values
            .chunks_exact(self.dimensions)
            .enumerate()
            .filter(|(row, _)| keep(*row))
            .map(|(row, vector)| (row, dot(vector, query)))
            .collect();
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, best_first);
            scored.truncate(k);
        }
        scored.sort_unstable_by(best_first);
        scored
    }

    /// Reads vectors saved by [`ProductVectors::save`] for the same `fingerprint`; `None` when the file is
    /// missing, from another catalog or model, or damaged, so that the caller embeds afresh.
    pub fn load(path: &Path, fingerprint: &[u8; 32]) -> Option<ProductVectors> {
        let mut file = fs::File::open(path).ok()?;
        let mut header = [0u8; 8 + 32 + 8 + 8];
        file.read_exact(&mut header).ok()?;
        let (magic, rest) = header.split_at(8);
        let (stored_fingerprint, rest) = rest.split_at(32);
        let (dimensions, rows) = rest.split_at(8);
        if magic != FILE_MAGIC || stored_fingerprint != fingerprint {
            return None;
        }
        let dimensions = usize::try_from(u64::from_le_bytes(dimensions.try_into().ok()?)).ok()?;
        let rows = usize::try_from(u64::from_le_bytes(rows.try_into().ok()?)).ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        if dimensions == 0 || bytes.len() != dimensions.checked_mul(rows)?.checked_mul(4)? {
            return None;
        }
        let values = bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect();
        Some(ProductVectors { dimensions, values })
    }

    /// Writes the vectors under `fingerprint`, through a temporary file so a crash never leaves half a file.
    pub fn save(&self, path: &Path, fingerprint: &[u8; 32]) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        // Unique per writer: several servers sharing one cache directory may save the same vectors at once.
        let partial = PathBuf::from(format!("{}.{}.partial", path.display(), uuid::Uuid::new_v4().simple()));
        let mut file = io::BufWriter::new(fs::File::create(&partial)?);
        file.write_all(FILE_MAGIC)?;
        file.write_all(fingerprint)?;
        file.write_all(&(self.dimensions as u64).to_le_bytes())?;
        file.write_all(&(self.len() as u64).to_le_bytes())?;
        for value in &self.values {
            file.write_all(&value.to_le_bytes())?;
        }
        file.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
        fs::rename(&partial, path)
    }
}

/// What identifies a set of product vectors: the model and every text embedded, in order.
pub(crate) fn fingerprint<'a>(model: &str, texts: impl IntoIterator<Item = &'a str>) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(model.as_bytes());
    for text in texts {
        hash.update([0]);
        hash.update(text.as_bytes());
    }
    hash.finalize().into()
}

/// Embeds `texts` in batches, except those `known` already has a vector for; progress is reported as (done,
/// total) texts embedded.
pub(crate) async fn embed_all(
    embedder: &TextEmbedder,
    texts: &[String],
    mut known: HashMap<String, Vec<f32>>,
    mut progress: impl FnMut(usize, usize),
) -> Result<ProductVectors, CommerceError> {
    let missing: Vec<&String> = texts.iter().filter(|text| !known.contains_key(*text)).collect();
    let mut done = 0;
    for batch in missing.chunks(EMBED_BATCH) {
        let vectors = embedder
            .embed(batch.iter().map(|text| (*text).clone()).collect())
            .await?;
        for (text, vector) in batch.iter().zip(vectors) {
            known.insert((*text).clone(), vector);
        }
        done += batch.len();
        progress(done, missing.len());
    }
    let rows = texts
        .iter()
        .map(|text| known.get(text).cloned().unwrap_or_default())
        .collect();
    ProductVectors::from_rows(rows)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler keep a vector register busy instead of one serial chain.
    let mut sums = [0.0f32; 8];
    let (a_chunks, a_rest) = a.as_chunks::<8>();
    let (b_chunks, b_rest) = b.as_chunks::<8>();
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..8 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    sums.iter().sum::<f32>() + rest
}

/// Orders (row, score) pairs best first, ties by row.
pub(crate) fn best_first(a: &(usize, f32), b: &(usize, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn normalized(values: &[f32]) -> Vec<f32> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / norm).collect()
    }

    #[test]
    fn nearest_ranks_by_cosine_and_ties_by_row() {
        let vectors = ProductVectors::from_rows(vec![
            normalized(&[1.0, 0.0, 0.0]),
            normalized(&[0.0, 1.0, 0.0]),
            normalized(&[1.0, 1.0, 0.0]),
            normalized(&[0.0, 1.0, 0.0]),
        ])
        .unwrap();
        let query = normalized(&[0.1, 1.0, 0.0]);
        let rows: Vec<usize> = vectors.nearest(&query, 3).into_iter().map(|(row, _)| row).collect();
        assert_eq!(rows, vec![1, 3, 2]);
        assert_eq!(vectors.nearest(&query, 10).len(), 4);
        assert!(vectors.nearest(&[1.0, 0.0], 3).is_empty());
    }

    #[test]
    fn dot_matches_the_plain_sum_for_every_length() {
        for length in [1, 7, 8, 9, 384] {
            let a: Vec<f32> = (0..length).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..length).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "{length}");
        }
    }

    #[test]
    fn saved_vectors_load_only_for_the_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors/products.bin");
        let vectors = ProductVectors::from_rows(vec![vec![0.5, -0.25], vec![1.0, 2.0]]).unwrap();
        let texts = ["a", "b"];
        let key = fingerprint("model", texts);
        vectors.save(&path, &key).unwrap();
        assert_eq!(ProductVectors::load(&path, &key), Some(vectors));
        assert_eq!(ProductVectors::load(&path, &fingerprint("model", ["a", "c"])), None);
        assert_eq!(ProductVectors::load(&path, &fingerprint("other", texts)), None);
        fs::write(&path, b"FWVECS01 truncated").unwrap();
        assert_eq!(ProductVectors::load(&path, &key), None);
    }

    #[test]
    fn rows_of_unequal_length_are_refused() {
        assert!(ProductVectors::from_rows(vec![vec![1.0], vec![1.0, 2.0]]).is_err());
        assert!(ProductVectors::from_rows(Vec::new()).is_err());
    }
}
