//! The embedded engine as a provider: chat models and sentence embedders running in this process on the CPU.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use inference::{ChatModel, Embedder, GenerationEvent, GenerationRequest, InferenceError};
use tokio_stream::wrappers::ReceiverStream;

use super::{ChatProvider, EmbeddingOutput, EmbeddingProvider, ProviderChatRequest, ProviderEvent, ProviderStream};
use crate::GatewayError;

pub(crate) struct EmbeddedChat {
    model: Arc<ChatModel>,
}

impl EmbeddedChat {
    pub(crate) fn new(model: ChatModel) -> EmbeddedChat {
        EmbeddedChat { model: Arc::new(model) }
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

impl ChatProvider for EmbeddedChat {
    fn context_length(&self) -> u32 {
        self.model.info().context_length
    }

    fn count_tokens(&self, text: &str) -> u32 {
        self.model
            .count_tokens(text)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn start(&self, request: ProviderChatRequest) -> BoxFuture<'_, Result<ProviderStream, GatewayError>> {
        Box::pin(async move {
            let name = self.model.info().name.clone();
            let request = GenerationRequest {
                messages: request
                    .messages
                    .into_iter()
                    .map(|m| inference::ChatMessage {
                        role: m.role,
                        content: m.content,
                    })
                    .collect(),
                max_tokens: request.max_tokens,
                temperature: request.temperature,
                top_p: request.top_p,
                seed: request.seed,
                stop: request.stop,
            };
            let receiver = self
                .model
                .generate(request)
                .map_err(|error| to_gateway_error(&name, error))?;
            let events = ReceiverStream::new(receiver).map(move |event| match event {
                GenerationEvent::Started { prompt_tokens } => Ok(ProviderEvent::Started { prompt_tokens }),
                GenerationEvent::Text(text) => Ok(ProviderEvent::Text(text)),
                GenerationEvent::Done(summary) => Ok(ProviderEvent::Done {
                    prompt_tokens: summary.prompt_tokens,
                    completion_tokens: summary.completion_tokens,
                    finish_reason: summary.finish_reason.as_str().to_owned(),
                }),
                GenerationEvent::Failed(error) => Err(to_gateway_error(&name, error)),
            });
            Ok(Box::pin(events) as ProviderStream)
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
    fn dimensions(&self) -> usize {
        self.embedder.info().dimensions
    }

    fn embed(&self, inputs: Vec<String>) -> BoxFuture<'_, Result<EmbeddingOutput, GatewayError>> {
        let embedder = Arc::clone(&self.embedder);
        Box::pin(async move {
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
