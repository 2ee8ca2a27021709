//! Model providers behind one interface. Adding a provider means one new module here and one variant of
//! [`ProviderKind`]; nothing above this module knows which provider serves a deployment.
//!
//! The interface speaks the OpenAI wire types: they are the gateway's lingua franca, so an OpenAI-compatible
//! upstream needs no translation at all (the fast path), and every other protocol translates once at its edge.

pub(crate) mod anthropic;
pub(crate) mod embedded;
pub(crate) mod fault;
pub(crate) mod openai;

use std::pin::Pin;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use serde::Deserialize;

use crate::GatewayError;
use crate::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, EmbeddingRequest,
    EmbeddingResponse, FunctionCall, ToolCall, Usage,
};

/// The chunks of a streamed completion. The last chunk carries the usage (providers always ask for it).
pub(crate) type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk, GatewayError>> + Send>>;

/// Which provider a deployment uses, as named in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The embedded CPU engine in this process.
    Embedded,
    /// Any server speaking the OpenAI API: vLLM, llama.cpp server, SGLang, TGI, Ollama, hosted APIs.
    Openai,
    /// A provider that fails, stalls and garbles on purpose, for testing fallbacks and fault handling.
    Fault,
    /// Any server speaking Anthropic's Messages API (`base_url` is required: no host is assumed).
    Anthropic,
}

impl ProviderKind {
    /// The name used in configuration, the ledger and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Embedded => "embedded",
            ProviderKind::Openai => "openai",
            ProviderKind::Fault => "fault",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// A model that chats. The request's `model` is the name the provider knows the model by.
pub(crate) trait ChatProvider: Send + Sync {
    /// The context window in tokens, when the provider knows it.
    fn context_length(&self) -> Option<u32>;

    /// Counts (or, for remote providers, estimates) the tokens of `text`; used to account for requests that end
    /// before the provider reports usage.
    fn count_tokens(&self, text: &str) -> u32;

    /// A whole completion.
    fn complete(&self, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, GatewayError>>;

    /// A streamed completion; fails before streaming anything when the request cannot be served.
    fn stream(&self, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChunkStream, GatewayError>>;
}

/// Embedding vectors and the tokens they consumed.
pub(crate) struct EmbeddingOutput {
    pub(crate) vectors: Vec<Vec<f32>>,
    pub(crate) prompt_tokens: u32,
}

/// A model that embeds text.
pub(crate) trait EmbeddingProvider: Send + Sync {
    /// The length of each vector, when the provider knows it.
    fn dimensions(&self) -> Option<usize>;

    /// Embeds each input.
    fn embed(&self, request: EmbeddingRequest) -> BoxFuture<'_, Result<EmbeddingOutput, GatewayError>>;
}

/// A rough token count for text whose tokenizer is not at hand: about four characters per token in English.
pub(crate) fn estimate_tokens(text: &str) -> u32 {
    estimate_tokens_of_chars(text.chars().count())
}

/// [`estimate_tokens`] for a text of which only the length in characters is kept.
pub(crate) fn estimate_tokens_of_chars(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

/// Turns an embeddings response from an upstream into vectors.
pub(crate) fn embedding_output(response: EmbeddingResponse) -> Result<EmbeddingOutput, GatewayError> {
    let mut data = response.data;
    data.sort_by_key(|item| item.index);
    let vectors = data
        .into_iter()
        .map(|item| match item.embedding {
            crate::openai::EmbeddingVector::Float(vector) => Ok(vector),
            crate::openai::EmbeddingVector::Base64(_) => Err(GatewayError::upstream_malformed(
                "the upstream answered with base64 embeddings to a float request",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EmbeddingOutput {
        vectors,
        prompt_tokens: response.usage.prompt_tokens,
    })
}

/// Drains a chunk stream into one completion: text and tool calls joined per choice, usage from the last chunk
/// (or estimated with `count_tokens` when the stream had none).
pub(crate) async fn collect_stream(
    mut stream: ChunkStream,
    count_tokens: impl Fn(&str) -> u32,
) -> Result<ChatCompletion, GatewayError> {
    let mut builder = CompletionBuilder::default();
    while let Some(chunk) = stream.next().await {
        builder.push(&chunk?);
    }
    builder.finish(count_tokens)
}

/// Accumulates chunks into a completion.
#[derive(Default)]
pub(crate) struct CompletionBuilder {
    first: Option<ChatCompletionChunk>,
    choices: Vec<ChoiceBuilder>,
    usage: Option<Usage>,
}

#[derive(Default)]
struct ChoiceBuilder {
    content: String,
    refusal: Option<String>,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<String>,
    logprobs: Option<Vec<serde_json::Value>>,
}

impl CompletionBuilder {
    pub(crate) fn push(&mut self, chunk: &ChatCompletionChunk) {
        if let Some(Some(usage)) = chunk.usage {
            self.usage = Some(usage);
        }
        for choice in &chunk.choices {
            let index = choice.index as usize;
            if self.choices.len() <= index {
                self.choices.resize_with(index + 1, ChoiceBuilder::default);
            }
            let built = &mut self.choices[index];
            if let Some(text) = &choice.delta.content {
                built.content.push_str(text);
            }
            if let Some(refusal) = &choice.delta.refusal {
                built.refusal.get_or_insert_with(String::new).push_str(refusal);
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                let at = call.index as usize;
                if built.tool_calls.len() <= at {
                    built.tool_calls.resize_with(at + 1, || ToolCall {
                        id: String::new(),
                        kind: "function".to_owned(),
                        function: FunctionCall {
                            name: String::new(),
                            arguments: String::new(),
                        },
                    });
                }
                let target = &mut built.tool_calls[at];
                if let Some(id) = &call.id {
                    target.id.clone_from(id);
                }
                if let Some(function) = &call.function {
                    if let Some(name) = &function.name {
                        target.function.name.push_str(name);
                    }
                    if let Some(arguments) = &function.arguments {
                        target.function.arguments.push_str(arguments);
                    }
                }
            }
            if let Some(logprobs) = &choice.logprobs {
                built.logprobs.get_or_insert_with(Vec::new).push(logprobs.clone());
            }
            if choice.finish_reason.is_some() {
                built.finish_reason.clone_from(&choice.finish_reason);
            }
        }
        if self.first.is_none() {
            self.first = Some(chunk.clone());
        }
    }

    /// The text generated so far, over all choices (for estimating tokens of an unfinished request).
    pub(crate) fn text_so_far(&self) -> String {
        let mut text = String::new();
        for choice in &self.choices {
            text.push_str(&choice.content);
            for call in &choice.tool_calls {
                text.push_str(&call.function.name);
                text.push_str(&call.function.arguments);
            }
        }
        text
    }

    pub(crate) fn finish(self, count_tokens: impl Fn(&str) -> u32) -> Result<ChatCompletion, GatewayError> {
        let Some(first) = self.first else {
            return Err(GatewayError::upstream_malformed("the stream ended before any chunk"));
        };
        if self.choices.is_empty() || self.choices.iter().any(|choice| choice.finish_reason.is_none()) {
            return Err(GatewayError::upstream_malformed(
                "the model stopped without finishing its answer",
            ));
        }
        let usage = match self.usage {
            Some(usage) => usage,
            None => {
                let completion: String = self.choices.iter().map(|choice| choice.content.as_str()).collect();
                Usage::new(0, count_tokens(&completion))
            }
        };
        let choices = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(index, choice)| ChatChoice {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                message: AssistantMessage {
                    role: "assistant".to_owned(),
                    content: if choice.content.is_empty() && !choice.tool_calls.is_empty() {
                        None
                    } else {
                        Some(choice.content)
                    },
                    refusal: choice.refusal,
                    tool_calls: (!choice.tool_calls.is_empty()).then_some(choice.tool_calls),
                },
                finish_reason: choice.finish_reason,
                logprobs: choice.logprobs.map(merge_logprobs),
            })
            .collect();
        Ok(ChatCompletion {
            id: first.id,
            object: "chat.completion".to_owned(),
            created: first.created,
            model: first.model,
            choices,
            usage: Some(usage),
            system_fingerprint: first.system_fingerprint,
        })
    }
}

/// Streams carry log probabilities chunk by chunk (`{"content": [...]}` each); a completion has one list.
fn merge_logprobs(parts: Vec<serde_json::Value>) -> serde_json::Value {
    let mut content = Vec::new();
    for part in parts {
        if let Some(serde_json::Value::Array(items)) = part.get("content").cloned() {
            content.extend(items);
        }
    }
    serde_json::json!({ "content": content })
}
