//! The embedded engine as a provider: chat models and sentence embedders running in this process on the CPU.

mod tools;

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use inference::{ChatModel, Embedder, GenerationEvent, GenerationRequest, InferenceError, OutputFormat};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{ChatProvider, ChunkStream, EmbeddingOutput, EmbeddingProvider};
use crate::GatewayError;
use crate::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta, EmbeddingInput, EmbeddingRequest,
    FunctionCallDelta, MessageContent, ToolCallDelta, Usage,
};
use tools::{ToolAnswer, ToolPlan};

pub(crate) struct EmbeddedChat {
    model: Arc<ChatModel>,
}

impl EmbeddedChat {
    pub(crate) fn new(model: Arc<ChatModel>) -> EmbeddedChat {
        EmbeddedChat { model }
    }
}

fn to_gateway_error(model: &str, error: InferenceError) -> GatewayError {
    match error {
        InferenceError::ContextOverflow {
            prompt_tokens,
            context_length,
        } => GatewayError::ContextLengthExceeded {
            prompt_tokens: u32::try_from(prompt_tokens).unwrap_or(u32::MAX),
            context_length: u32::try_from(context_length).unwrap_or(u32::MAX),
        },
        InferenceError::Overloaded { .. } => GatewayError::Overloaded(model.to_owned()),
        InferenceError::InvalidRequest(message) => GatewayError::InvalidRequest { message, param: None },
        other => GatewayError::Provider(other.to_string()),
    }
}

/// What the embedded engine can do with a request: chat with sampling settings, as free text, as JSON held to a
/// schema (`response_format`), or as a call of one of its tools. Anything else is refused by name, so a client
/// learns which parameter to drop rather than getting a silently different answer.
fn generation_request(request: ChatCompletionRequest) -> Result<(GenerationRequest, Option<ToolPlan>), GatewayError> {
    let model = request.model.clone();
    let unsupported = |param: &str, reason: &str| GatewayError::UnsupportedParameter {
        param: param.to_owned(),
        model: model.clone(),
        reason: reason.to_owned(),
    };
    if request.functions.is_some() || request.function_call.is_some() {
        return Err(unsupported(
            "functions",
            "the legacy 'functions' parameter is not available on the embedded engine; use 'tools'",
        ));
    }
    let tool_plan = tools::plan(&request)?;
    let format = match &request.response_format {
        None => OutputFormat::Text,
        Some(format) => match format.get("type").and_then(|kind| kind.as_str()) {
            Some("text") => OutputFormat::Text,
            Some("json_object") => OutputFormat::JsonObject,
            Some("json_schema") => match format.pointer("/json_schema/schema") {
                Some(schema) => OutputFormat::JsonSchema(schema.clone()),
                None => {
                    return Err(GatewayError::invalid(
                        "response_format.json_schema.schema",
                        "a 'json_schema' response format needs 'json_schema.schema'",
                    ));
                }
            },
            _ => {
                return Err(GatewayError::invalid(
                    "response_format.type",
                    "'response_format.type' must be 'text', 'json_object' or 'json_schema'",
                ));
            }
        },
    };
    if tool_plan.is_some() && format != OutputFormat::Text {
        return Err(unsupported(
            "response_format",
            "a JSON response format cannot be combined with tools on the embedded engine",
        ));
    }
    if request.logprobs == Some(true) || request.top_logprobs.is_some() {
        return Err(unsupported(
            "logprobs",
            "log probabilities are not available on the embedded engine",
        ));
    }
    if request
        .logit_bias
        .as_ref()
        .is_some_and(|bias| bias.as_object().is_none_or(|map| !map.is_empty()))
    {
        return Err(unsupported(
            "logit_bias",
            "logit bias is not available on the embedded engine",
        ));
    }
    if request.audio.is_some() {
        return Err(unsupported("audio", "this is a text model"));
    }
    for (param, value) in [
        ("frequency_penalty", request.frequency_penalty),
        ("presence_penalty", request.presence_penalty),
    ] {
        if value.is_some_and(|v| v != 0.0) {
            return Err(unsupported(param, "penalties are not available on the embedded engine"));
        }
    }
    if request.n.is_some_and(|n| n > 1) {
        return Err(unsupported(
            "n",
            "only one choice per request (n=1) is available on the embedded engine",
        ));
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (index, message) in request.messages.into_iter().enumerate() {
        let param = format!("messages[{index}]");
        if let Some((role, content)) = tools::message_as_text(&message) {
            messages.push(inference::ChatMessage {
                role: role.to_owned(),
                content,
            });
            continue;
        }
        let role = match message.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            _ => {
                return Err(GatewayError::invalid(
                    &format!("{param}.role"),
                    "a message's role must be system, developer, user, assistant or tool",
                ));
            }
        };
        let content = match message.content {
            Some(MessageContent::Text(text)) => text,
            Some(MessageContent::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(part_text)) => text.push_str(&part_text),
                        (kind, _) => {
                            return Err(unsupported(
                                &param,
                                &format!("'{kind}' content parts: this is a text model"),
                            ));
                        }
                    }
                }
                text
            }
            None => String::new(),
        };
        messages.push(inference::ChatMessage {
            role: role.to_owned(),
            content,
        });
    }
    let format = match &tool_plan {
        Some(plan) => {
            match messages.first_mut() {
                Some(first) if first.role == "system" => {
                    first.content = format!("{}\n\n{}", first.content, plan.instructions);
                }
                _ => messages.insert(
                    0,
                    inference::ChatMessage {
                        role: "system".to_owned(),
                        content: plan.instructions.clone(),
                    },
                ),
            }
            OutputFormat::JsonSchema(plan.schema.clone())
        }
        None => format,
    };
    let temperature = request.temperature.unwrap_or(1.0);
    let top_p = request.top_p.unwrap_or(1.0);
    // top_p = 0 keeps only the most likely token: the same as greedy decoding.
    let (temperature, top_p) = if top_p == 0.0 { (0.0, 1.0) } else { (temperature, top_p) };
    let generation = GenerationRequest {
        messages,
        max_tokens: request
            .max_completion_tokens
            .or(request.max_tokens)
            .and_then(|n| u32::try_from(n).ok()),
        temperature: temperature as f32,
        top_p: top_p as f32,
        // An out-of-range top_k saturates; the engine checks the rest.
        top_k: request
            .top_k
            .map(|top_k| u32::try_from(top_k.max(0)).unwrap_or(u32::MAX)),
        min_p: request.min_p.map(|min_p| min_p as f32),
        repetition_penalty: request.repetition_penalty.map(|penalty| penalty as f32),
        // Seeds are opaque bits: a negative seed is as good as any other.
        seed: request.seed.map(|seed| seed as u64),
        stop: request.stop.map(|stop| stop.into_vec()).unwrap_or_default(),
        format,
    };
    Ok((generation, tool_plan))
}

/// The chunks that carry a finished tool-mode answer: one function call, or its text.
fn tool_answer_chunks(model: &str, answer: ToolAnswer, length_cut: bool) -> Vec<ChatCompletionChunk> {
    match answer {
        ToolAnswer::Calls(calls) => {
            let deltas = calls
                .into_iter()
                .enumerate()
                .map(|(index, call)| ToolCallDelta {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    id: Some(format!("call_{}", uuid::Uuid::new_v4().simple())),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(call.name),
                        arguments: Some(call.arguments),
                    }),
                })
                .collect();
            vec![
                chunk(
                    model,
                    Delta {
                        tool_calls: Some(deltas),
                        ..Delta::default()
                    },
                    None,
                    None,
                ),
                chunk(model, Delta::default(), Some("tool_calls".to_owned()), None),
            ]
        }
        ToolAnswer::Text(text) => vec![
            chunk(
                model,
                Delta {
                    content: Some(text),
                    ..Delta::default()
                },
                None,
                None,
            ),
            chunk(
                model,
                Delta::default(),
                Some(if length_cut { "length" } else { "stop" }.to_owned()),
                None,
            ),
        ],
    }
}

fn chunk(model: &str, delta: Delta, finish_reason: Option<String>, usage: Option<Usage>) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: String::new(),
        object: "chat.completion.chunk".to_owned(),
        created: 0,
        model: model.to_owned(),
        choices: if usage.is_some() {
            Vec::new()
        } else {
            vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
                logprobs: None,
            }]
        },
        usage: usage.map(Some),
        system_fingerprint: None,
    }
}

impl ChatProvider for EmbeddedChat {
    fn context_length(&self) -> Option<u32> {
        Some(self.model.info().context_length)
    }

    fn count_tokens(&self, text: &str) -> u32 {
        self.model
            .count_tokens(text)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn complete(&self, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, GatewayError>> {
        Box::pin(async move {
            let stream = self.stream(request).await?;
            super::collect_stream(stream, |text| self.count_tokens(text)).await
        })
    }

    fn stream(&self, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChunkStream, GatewayError>> {
        Box::pin(async move {
            let name = self.model.info().name.clone();
            let model = request.model.clone();
            let (request, tool_plan) = generation_request(request)?;
            let receiver = self
                .model
                .generate(request)
                .map_err(|error| to_gateway_error(&name, error))?;
            let mut events = UnboundedReceiverStream::new(receiver);
            // The engine reports a prompt it cannot fit only once it starts: wait for that before streaming, so
            // such failures are an error status rather than a broken stream.
            match events.next().await {
                Some(GenerationEvent::Failed(error)) => return Err(to_gateway_error(&name, error)),
                None => {
                    return Err(GatewayError::Provider(
                        "the embedded engine stopped before starting".to_owned(),
                    ));
                }
                Some(_) => {}
            }
            let tool_mode = tool_plan.is_some();
            let chunks = async_stream::stream! {
                yield Ok(chunk(&model, Delta { role: Some("assistant".to_owned()), content: Some(String::new()), ..Delta::default() }, None, None));
                // A tool-mode answer is JSON saying whether it is a call: it is read whole before it is sent.
                let mut held = String::new();
                while let Some(event) = events.next().await {
                    match event {
                        GenerationEvent::Started { .. } => {}
                        GenerationEvent::Text(text) if tool_mode => held.push_str(&text),
                        GenerationEvent::Text(text) => {
                            yield Ok(chunk(&model, Delta { content: Some(text), ..Delta::default() }, None, None));
                        }
                        GenerationEvent::Done(summary) if tool_mode => {
                            let length_cut = summary.finish_reason.as_str() == "length";
                            match tools::read_answer(&held) {
                                Ok(answer) => {
                                    for piece in tool_answer_chunks(&model, answer, length_cut) {
                                        yield Ok(piece);
                                    }
                                }
                                Err(error) => {
                                    yield Err(error);
                                    return;
                                }
                            }
                            yield Ok(chunk(&model, Delta::default(), None, Some(Usage::new(summary.prompt_tokens, summary.completion_tokens))));
                            return;
                        }
                        GenerationEvent::Done(summary) => {
                            yield Ok(chunk(&model, Delta::default(), Some(summary.finish_reason.as_str().to_owned()), None));
                            yield Ok(chunk(&model, Delta::default(), None, Some(Usage::new(summary.prompt_tokens, summary.completion_tokens))));
                            return;
                        }
                        GenerationEvent::Failed(error) => {
                            yield Err(to_gateway_error(&name, error));
                            return;
                        }
                    }
                }
            };
            Ok(Box::pin(chunks) as ChunkStream)
        })
    }
}

pub(crate) struct EmbeddedEmbedder {
    embedder: Arc<Embedder>,
}

impl EmbeddedEmbedder {
    pub(crate) fn new(embedder: Embedder) -> EmbeddedEmbedder {
        EmbeddedEmbedder {
            embedder: Arc::new(embedder),
        }
    }
}

impl EmbeddingProvider for EmbeddedEmbedder {
    fn dimensions(&self) -> Option<usize> {
        Some(self.embedder.info().dimensions)
    }

    fn embed(&self, request: EmbeddingRequest) -> BoxFuture<'_, Result<EmbeddingOutput, GatewayError>> {
        let embedder = Arc::clone(&self.embedder);
        Box::pin(async move {
            let inputs = match request.input {
                EmbeddingInput::One(text) => vec![text],
                EmbeddingInput::Many(texts) => texts,
                EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
                    return Err(GatewayError::UnsupportedParameter {
                        param: "input".to_owned(),
                        model: request.model,
                        reason: "token-id input is not accepted; send text".to_owned(),
                    });
                }
            };
            // Embedding is CPU-bound for milliseconds to seconds: keep it off the async workers.
            let embeddings = tokio::task::spawn_blocking(move || {
                let texts: Vec<&str> = inputs.iter().map(String::as_str).collect();
                embedder.embed(&texts)
            })
            .await
            .map_err(|error| GatewayError::Provider(format!("embedding task failed: {error}")))?
            .map_err(|error| GatewayError::Provider(error.to_string()))?;
            Ok(EmbeddingOutput {
                vectors: embeddings.vectors,
                prompt_tokens: embeddings.prompt_tokens,
            })
        })
    }
}
