//! A provider that misbehaves on purpose, as configured: errors at a given rate, latency, stalls, streams that
//! break after some chunks, and malformed output. It answers with a fixed reply otherwise. Used to test and
//! demonstrate fallbacks, retries, circuit breakers and fault accounting without a flaky real upstream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{ChatProvider, ChunkStream, EmbeddingOutput, EmbeddingProvider, collect_stream, estimate_tokens};
use crate::GatewayError;
use crate::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta, EmbeddingInput, EmbeddingRequest,
    FunctionCallDelta, ToolCallDelta, Usage,
};

/// How a fault deployment misbehaves. Everything defaults to "behave".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Fraction of requests (0 to 1) that fail with `status` before any output; spread evenly, not randomly,
    /// so tests are repeatable.
    pub error_rate: f64,
    /// The HTTP status of injected errors.
    pub status: u16,
    /// Delay before the first chunk.
    pub latency_ms: u64,
    /// Delay between chunks.
    pub chunk_delay_ms: u64,
    /// Break the stream after this many content chunks.
    pub reset_after_chunks: Option<u32>,
    /// Send a chunk that is not valid JSON after the first content chunk.
    pub malformed: bool,
    /// Never answer (for timeouts).
    pub hang: bool,
    /// The text of a successful answer, streamed one word per chunk.
    pub reply: String,
    /// Answer a request that offers tools (and does not forbid them with `tool_choice: "none"`) with a call of
    /// one: the tool `tool_choice` names, else the first. A request whose last message is a tool result gets
    /// the reply instead, so a client's tool loop ends.
    pub call_tools: bool,
    /// The arguments of that call, streamed in two pieces.
    pub call_arguments: String,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            error_rate: 0.0,
            status: 503,
            latency_ms: 0,
            chunk_delay_ms: 0,
            reset_after_chunks: None,
            malformed: false,
            hang: false,
            reply: "This is the fault provider's reply.".to_owned(),
            call_tools: false,
            call_arguments: "{}".to_owned(),
        }
    }
}

pub(crate) struct FaultProvider {
    config: FaultConfig,
    requests: AtomicU64,
}

impl FaultProvider {
    pub(crate) fn new(config: FaultConfig) -> FaultProvider {
        FaultProvider {
            config,
            requests: AtomicU64::new(0),
        }
    }

    /// Whether the next request fails: exactly `error_rate` of every run of requests, evenly spaced.
    fn next_fails(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) as f64;
        let rate = self.config.error_rate.clamp(0.0, 1.0);
        ((n + 1.0) * rate).floor() > (n * rate).floor()
    }

    async fn before_answer(&self) -> Result<(), GatewayError> {
        if self.config.hang {
            std::future::pending::<()>().await;
        }
        if self.config.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.config.latency_ms)).await;
        }
        if self.next_fails() {
            return Err(GatewayError::upstream_status(
                self.config.status,
                "injected fault".to_owned(),
            ));
        }
        Ok(())
    }
}

fn chunk(model: &str, delta: Delta, finish_reason: Option<&str>) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: String::new(),
        object: "chat.completion.chunk".to_owned(),
        created: 0,
        model: model.to_owned(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish_reason.map(str::to_owned),
            logprobs: None,
        }],
        usage: None,
        system_fingerprint: None,
    }
}

/// The tool a `call_tools` deployment calls for this request, if any.
fn tool_to_call(config: &FaultConfig, request: &ChatCompletionRequest) -> Option<String> {
    if !config.call_tools || request.messages.last().is_some_and(|message| message.role == "tool") {
        return None;
    }
    let first = request.tools.as_ref()?.first()?.function.name.clone();
    match &request.tool_choice {
        Some(choice) if choice == "none" => None,
        Some(choice) => Some(
            choice
                .pointer("/function/name")
                .and_then(serde_json::Value::as_str)
                .map_or(first, str::to_owned),
        ),
        None => Some(first),
    }
}

/// A chunk with one piece of the fault provider's tool call.
fn call_chunk(model: &str, name: Option<String>, arguments: &str) -> ChatCompletionChunk {
    let first = name.is_some();
    let call = ToolCallDelta {
        index: 0,
        id: first.then(|| "call_fault_0".to_owned()),
        kind: first.then(|| "function".to_owned()),
        function: Some(FunctionCallDelta {
            name,
            arguments: Some(arguments.to_owned()),
        }),
    };
    chunk(
        model,
        Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        },
        None,
    )
}

fn prompt_text(request: &ChatCompletionRequest) -> String {
    request.messages.iter().map(|message| message.text_content()).collect()
}

impl ChatProvider for FaultProvider {
    fn context_length(&self) -> Option<u32> {
        None
    }

    fn count_tokens(&self, text: &str) -> u32 {
        estimate_tokens(text)
    }

    fn complete(&self, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, GatewayError>> {
        Box::pin(async move {
            let stream = self.stream(request).await?;
            collect_stream(stream, estimate_tokens).await
        })
    }

    fn stream(&self, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChunkStream, GatewayError>> {
        Box::pin(async move {
            self.before_answer().await?;
            let config = self.config.clone();
            let model = request.model.clone();
            let prompt_tokens = estimate_tokens(&prompt_text(&request));
            let words: Vec<String> = config.reply.split_inclusive(' ').map(str::to_owned).collect();
            let tool = tool_to_call(&config, &request);
            let stream = async_stream::stream! {
                let role = Delta { role: Some("assistant".to_owned()), content: Some(String::new()), ..Delta::default() };
                yield Ok(chunk(&model, role, None));
                if let Some(name) = tool {
                    let arguments = config.call_arguments.as_str();
                    let middle = (0..=arguments.len() / 2).rev().find(|at| arguments.is_char_boundary(*at)).unwrap_or(0);
                    yield Ok(call_chunk(&model, Some(name), &arguments[..middle]));
                    yield Ok(call_chunk(&model, None, &arguments[middle..]));
                    yield Ok(chunk(&model, Delta::default(), Some("tool_calls")));
                    let mut usage = chunk(&model, Delta::default(), None);
                    usage.choices.clear();
                    usage.usage = Some(Some(Usage::new(prompt_tokens, estimate_tokens(arguments))));
                    yield Ok(usage);
                    return;
                }
                let mut completion = String::new();
                for (index, word) in words.iter().enumerate() {
                    if config.chunk_delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(config.chunk_delay_ms)).await;
                    }
                    if config.reset_after_chunks.is_some_and(|after| index as u64 >= u64::from(after)) {
                        yield Err(GatewayError::upstream_reset("injected fault: the stream broke"));
                        return;
                    }
                    if config.malformed && index == 1 {
                        yield Err(GatewayError::upstream_malformed("injected fault: invalid stream chunk"));
                        return;
                    }
                    completion.push_str(word);
                    yield Ok(chunk(&model, Delta { content: Some(word.clone()), ..Delta::default() }, None));
                }
                yield Ok(chunk(&model, Delta::default(), Some("stop")));
                let mut usage = chunk(&model, Delta::default(), None);
                usage.choices.clear();
                usage.usage = Some(Some(Usage::new(prompt_tokens, estimate_tokens(&completion))));
                yield Ok(usage);
            };
            Ok(Box::pin(stream) as ChunkStream)
        })
    }
}

/// Dimensions of the fault provider's embeddings.
const FAULT_DIMENSIONS: usize = 64;

/// A bag-of-words vector: each lower-cased word adds ±1 to a dimension picked by its hash, so texts with the
/// same words are identical and texts with different words are nearly orthogonal. Deterministic, instant.
fn bag_of_words(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; FAULT_DIMENSIONS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let hash = word
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        let dimension = (hash % FAULT_DIMENSIONS as u64) as usize;
        vector[dimension] += if hash & (1 << 63) == 0 { 1.0 } else { -1.0 };
    }
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::EPSILON);
    vector.iter().map(|v| v / norm).collect()
}

/// The fault provider also embeds, with [`bag_of_words`].
impl EmbeddingProvider for FaultProvider {
    fn dimensions(&self) -> Option<usize> {
        Some(FAULT_DIMENSIONS)
    }

    fn embed(&self, request: EmbeddingRequest) -> BoxFuture<'_, Result<EmbeddingOutput, GatewayError>> {
        Box::pin(async move {
            self.before_answer().await?;
            let inputs = match request.input {
                EmbeddingInput::One(text) => vec![text],
                EmbeddingInput::Many(texts) => texts,
                _ => Vec::new(),
            };
            let vectors = inputs.iter().map(|text| bag_of_words(text)).collect();
            let prompt_tokens = inputs.iter().map(|text| estimate_tokens(text)).sum();
            Ok(EmbeddingOutput { vectors, prompt_tokens })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_is_exact_and_evenly_spread() {
        let provider = FaultProvider::new(FaultConfig {
            error_rate: 0.25,
            ..FaultConfig::default()
        });
        let fails: Vec<bool> = (0..8).map(|_| provider.next_fails()).collect();
        assert_eq!(fails, [false, false, false, true, false, false, false, true]);
    }
}
