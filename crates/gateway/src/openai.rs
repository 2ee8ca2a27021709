//! OpenAI wire types for chat completions, embeddings and models. Requests reject fields that the API does not
//! define (as OpenAI does), so a typo in a client reaches its author as a 400 instead of being silently ignored.

use serde::{Deserialize, Serialize};

/// `POST /v1/chat/completions` request body. `Default` gives an empty request for in-process callers to fill.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // field names are OpenAI's, documented there
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub n: Option<i64>,
    pub stop: Option<StopSequences>,
    pub seed: Option<i64>,
    pub user: Option<String>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub logit_bias: Option<serde_json::Value>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
    pub response_format: Option<serde_json::Value>,
    pub tools: Option<serde_json::Value>,
    pub tool_choice: Option<serde_json::Value>,
    pub parallel_tool_calls: Option<bool>,
    pub functions: Option<serde_json::Value>,
    pub function_call: Option<serde_json::Value>,
    pub metadata: Option<serde_json::Value>,
    pub store: Option<bool>,
    pub service_tier: Option<String>,
    pub reasoning_effort: Option<String>,
    pub modalities: Option<serde_json::Value>,
    pub audio: Option<serde_json::Value>,
    pub prediction: Option<serde_json::Value>,
    pub web_search_options: Option<serde_json::Value>,
    pub verbosity: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub safety_identifier: Option<String>,
}

/// `stream_options` of a chat request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Send a final chunk with the usage of the whole request.
    #[serde(default)]
    pub include_usage: bool,
    /// Accepted for compatibility; obfuscation padding is not needed on loopback and self-hosted links.
    pub include_obfuscation: Option<bool>,
}

/// `stop`: one string or a list of up to four.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

impl StopSequences {
    /// The stop strings as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopSequences::One(s) => vec![s],
            StopSequences::Many(v) => v,
        }
    }
}

/// One message of a chat request.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
    pub name: Option<String>,
    pub tool_calls: Option<serde_json::Value>,
    pub tool_call_id: Option<String>,
    pub refusal: Option<String>,
}

impl ChatMessage {
    /// A message with plain-text content.
    pub fn text(role: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.to_owned(),
            content: Some(MessageContent::Text(content.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            refusal: None,
        }
    }
}

/// Message content: a string or a list of typed parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts such as `{"type":"text","text":"..."}`.
    Parts(Vec<ContentPart>),
}

/// One typed part of a message's content.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// The part's type: `text` is the one a text model understands.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    pub text: Option<String>,
}

/// `POST /v1/chat/completions` response without streaming.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
    pub system_fingerprint: Option<String>,
}

/// One choice of a chat completion.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: String,
    pub logprobs: Option<serde_json::Value>,
}

/// The assistant's reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct AssistantMessage {
    pub role: String,
    pub content: String,
    pub refusal: Option<String>,
}

/// Token counts of a request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    /// Usage from prompt and completion counts.
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// One server-sent event of a streamed chat completion.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Present (and `null` on every chunk but the last) when the client asked for `include_usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
    pub system_fingerprint: Option<String>,
}

/// One choice of a streamed chunk.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<String>,
    pub logprobs: Option<serde_json::Value>,
}

/// The change a chunk brings to the assistant message.
#[derive(Debug, Clone, Default, Serialize)]
#[allow(missing_docs)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `POST /v1/embeddings` request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    pub encoding_format: Option<String>,
    pub dimensions: Option<i64>,
    pub user: Option<String>,
}

/// `input` of an embeddings request. Token-id inputs are recognised so they can be refused with a clear message.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One string.
    One(String),
    /// Several strings.
    Many(Vec<String>),
    /// Pre-tokenized input (one list of token ids).
    Tokens(Vec<i64>),
    /// Pre-tokenized input (several lists of token ids).
    TokenBatches(Vec<Vec<i64>>),
}

/// `POST /v1/embeddings` response.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct EmbeddingResponse {
    pub object: &'static str,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

/// One embedding vector, as floats or as base64 of little-endian f32.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct EmbeddingData {
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

/// The encoding of one embedding.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// `encoding_format: float`.
    Float(Vec<f32>),
    /// `encoding_format: base64`.
    Base64(String),
}

/// Token counts of an embeddings request.
#[derive(Debug, Clone, Copy, Serialize)]
#[allow(missing_docs)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
}

/// `GET /v1/models` response.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

/// One model in `GET /v1/models`.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct ModelObject {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: String,
}
