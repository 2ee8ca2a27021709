//! The response cache, opt-in per key (its policy) or per request (the `x-flywheel-cache` header).
//!
//! - Exact: the same tenant sending the same request (model, messages, tools, sampling settings) within the TTL
//!   gets the stored answer. The key is a SHA-256 of the request's canonical JSON, so nothing of the prompt is
//!   kept in the key.
//! - Semantic: requests whose settings match and whose conversation embeds within a cosine similarity threshold
//!   of a stored one get its answer. Vectors come from an embedding model through the gateway itself, so that
//!   call is in the ledger like any other.
//!
//! Entries never cross tenants. The cache lives in this process's memory.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::openai::{ChatCompletion, ChatCompletionRequest, MessageContent};

/// How a key (or a request) uses the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePolicy {
    /// `exact` or `semantic` (semantic also answers exact repeats).
    pub mode: CacheMode,
    /// How long an answer stays reusable.
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// For semantic mode: the least cosine similarity that counts as the same question.
    #[serde(default = "default_similarity")]
    pub similarity: f32,
    /// For semantic mode: the embedding model that compares questions.
    pub embedding_model: Option<String>,
    /// What a cached answer costs the tenant: `free`, or `full` (the price of the original answer).
    #[serde(default)]
    pub charge: CacheCharge,
}

/// Exact or semantic matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    /// Identical requests only.
    Exact,
    /// Requests that mean the same, by embedding similarity.
    Semantic,
}

/// What a cache hit costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheCharge {
    /// Nothing: the tenant pays only for answers a model produced.
    #[default]
    Free,
    /// What the original answer cost.
    Full,
}

fn default_ttl() -> u64 {
    300
}

fn default_similarity() -> f32 {
    0.95
}

/// The embedding model semantic caching uses when the policy names none: the embedded one.
pub const DEFAULT_CACHE_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

impl CachePolicy {
    /// Checks the policy can be applied as written.
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl_secs == 0 || self.ttl_secs > 30 * 86_400 {
            return Err("'ttl_secs' must be between 1 and 2592000 (30 days)".to_owned());
        }
        if !(0.5..=1.0).contains(&self.similarity) {
            return Err("'similarity' must be between 0.5 and 1".to_owned());
        }
        Ok(())
    }

    /// The policy a request header asks for (`exact`, `semantic` or `off`), over the key's own.
    pub fn from_header(value: &str, key_policy: Option<&CachePolicy>) -> Result<Option<CachePolicy>, String> {
        let mode = match value.trim() {
            "off" | "none" => return Ok(None),
            "exact" => CacheMode::Exact,
            "semantic" => CacheMode::Semantic,
            other => {
                return Err(format!(
                    "x-flywheel-cache: '{other}' is not one of exact, semantic, off"
                ));
            }
        };
        let base = key_policy.cloned().unwrap_or(CachePolicy {
            mode,
            ttl_secs: default_ttl(),
            similarity: default_similarity(),
            embedding_model: None,
            charge: CacheCharge::Free,
        });
        Ok(Some(CachePolicy { mode, ..base }))
    }
}

/// A stored answer and what it cost.
#[derive(Clone)]
pub(crate) struct CachedAnswer {
    pub(crate) completion: ChatCompletion,
    pub(crate) cost_micros: i64,
    pub(crate) deployment: Option<String>,
}

struct SemanticEntry {
    bucket: [u8; 32],
    vector: Vec<f32>,
    answer: CachedAnswer,
    expires: Instant,
}

/// Exact entries in a bounded, expiring map; semantic entries in a bounded list scanned per lookup (a flat
/// scan over a few thousand 384-float vectors takes well under a millisecond, less than the embedding itself).
pub(crate) struct ResponseCache {
    exact: moka::sync::Cache<[u8; 32], (CachedAnswer, Instant)>,
    semantic: Mutex<Vec<SemanticEntry>>,
}

const EXACT_ENTRIES: u64 = 100_000;
const SEMANTIC_ENTRIES: usize = 10_000;
/// No entry outlives this, whatever its policy says.
const LONGEST_TTL: Duration = Duration::from_secs(30 * 86_400);

impl Default for ResponseCache {
    fn default() -> Self {
        ResponseCache {
            exact: moka::sync::Cache::builder()
                .max_capacity(EXACT_ENTRIES)
                .time_to_live(LONGEST_TTL)
                .build(),
            semantic: Mutex::new(Vec::new()),
        }
    }
}

/// The exact key: tenant, then the request's canonical JSON without the fields that do not change the answer.
pub(crate) fn exact_key(tenant: &str, request: &ChatCompletionRequest) -> [u8; 32] {
    let mut canonical = request.clone();
    canonical.stream = false;
    canonical.stream_options = None;
    canonical.user = None;
    canonical.metadata = None;
    canonical.store = None;
    let mut hasher = Sha256::new();
    hasher.update(tenant.as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(&canonical).unwrap_or_default());
    hasher.finalize().into()
}

/// The semantic bucket: everything but the conversation's text must match exactly.
pub(crate) fn semantic_bucket(tenant: &str, request: &ChatCompletionRequest) -> [u8; 32] {
    let mut settings = request.clone();
    settings
        .messages
        .retain(|message| message.role == "system" || message.role == "developer");
    exact_key(tenant, &settings)
}

/// The text semantic matching compares: the conversation's non-system messages.
pub(crate) fn semantic_text(request: &ChatCompletionRequest) -> String {
    let mut text = String::new();
    for message in &request.messages {
        if message.role == "system" || message.role == "developer" {
            continue;
        }
        if let Some(MessageContent::Text(_) | MessageContent::Parts(_)) = &message.content {
            text.push_str(&message.role);
            text.push_str(": ");
            text.push_str(&message.text_content());
            text.push('\n');
        }
    }
    text
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::EPSILON)
}

impl ResponseCache {
    pub(crate) fn get_exact(&self, key: &[u8; 32]) -> Option<CachedAnswer> {
        let (answer, expires) = self.exact.get(key)?;
        if Instant::now() < expires {
            Some(answer)
        } else {
            self.exact.invalidate(key);
            None
        }
    }

    pub(crate) fn put_exact(&self, key: [u8; 32], answer: CachedAnswer, ttl: Duration) {
        self.exact.insert(key, (answer, Instant::now() + ttl));
    }

    /// The most similar live entry in `bucket` at or above `threshold`.
    pub(crate) fn get_semantic(&self, bucket: &[u8; 32], vector: &[f32], threshold: f32) -> Option<CachedAnswer> {
        let now = Instant::now();
        let mut entries = self.semantic.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|entry| entry.expires > now);
        entries
            .iter()
            .filter(|entry| &entry.bucket == bucket)
            .map(|entry| (cosine(&entry.vector, vector), entry))
            .filter(|(similarity, _)| *similarity >= threshold)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, entry)| entry.answer.clone())
    }

    pub(crate) fn put_semantic(&self, bucket: [u8; 32], vector: Vec<f32>, answer: CachedAnswer, ttl: Duration) {
        let mut entries = self.semantic.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= SEMANTIC_ENTRIES {
            // Oldest first out: entries are appended in time order.
            entries.remove(0);
        }
        entries.push(SemanticEntry {
            bucket,
            vector,
            answer,
            expires: Instant::now() + ttl,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(json: serde_json::Value) -> ChatCompletionRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn exact_keys_ignore_streaming_and_separate_tenants() {
        let a = request(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        let b = request(
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                           "stream": true, "stream_options": {"include_usage": true}}),
        );
        let c = request(
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                           "temperature": 0.5}),
        );
        assert_eq!(exact_key("t", &a), exact_key("t", &b));
        assert_ne!(exact_key("t", &a), exact_key("u", &a));
        assert_ne!(exact_key("t", &a), exact_key("t", &c));
    }

    #[test]
    fn header_overrides_and_policies_are_checked() {
        assert_eq!(CachePolicy::from_header("off", None).unwrap(), None);
        let exact = CachePolicy::from_header("exact", None).unwrap().unwrap();
        assert_eq!((exact.mode, exact.ttl_secs), (CacheMode::Exact, 300));
        assert!(CachePolicy::from_header("sometimes", None).is_err());
        let mut bad = exact;
        bad.similarity = 2.0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn semantic_lookup_takes_the_closest_live_entry_above_the_threshold() {
        let cache = ResponseCache::default();
        let answer = |id: &str| CachedAnswer {
            completion: serde_json::from_value(serde_json::json!({"id": id, "model": "m", "choices": []})).unwrap(),
            cost_micros: 1,
            deployment: None,
        };
        let bucket = [1u8; 32];
        cache.put_semantic(bucket, vec![1.0, 0.0], answer("x"), Duration::from_secs(60));
        cache.put_semantic(bucket, vec![0.8, 0.6], answer("y"), Duration::from_secs(60));
        let hit = cache.get_semantic(&bucket, &[0.79, 0.61], 0.9).unwrap();
        assert_eq!(hit.completion.id, "y");
        assert!(cache.get_semantic(&bucket, &[0.0, 1.0], 0.9).is_none());
        assert!(cache.get_semantic(&[2u8; 32], &[0.8, 0.6], 0.9).is_none());
    }
}
