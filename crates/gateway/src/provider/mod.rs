//! Model providers behind one interface. Adding a provider means one new module here and one constructor on
//! [`crate::Gateway`]; nothing above this module knows which provider serves a model.

pub(crate) mod embedded;

use std::pin::Pin;

use futures::Stream;
use futures::future::BoxFuture;

use crate::GatewayError;

/// A chat request after validation, in the gateway's provider-neutral form.
#[derive(Debug, Clone)]
pub(crate) struct ProviderChatRequest {
    pub(crate) messages: Vec<ProviderMessage>,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) temperature: f32,
    pub(crate) top_p: f32,
    pub(crate) seed: Option<u64>,
    pub(crate) stop: Vec<String>,
}

/// One message with plain-text content.
#[derive(Debug, Clone)]
pub(crate) struct ProviderMessage {
    pub(crate) role: String,
    pub(crate) content: String,
}

/// What a provider's generation stream yields.
#[derive(Debug, Clone)]
pub(crate) enum ProviderEvent {
    /// The prompt was accepted; sent before any text so that an abandoned request can still be accounted.
    Started { prompt_tokens: u32 },
    /// More generated text.
    Text(String),
    /// Generation ended normally.
    Done {
        prompt_tokens: u32,
        completion_tokens: u32,
        finish_reason: String,
    },
}

pub(crate) type ProviderStream = Pin<Box<dyn Stream<Item = Result<ProviderEvent, GatewayError>> + Send>>;

/// A model that chats.
pub(crate) trait ChatProvider: Send + Sync {
    /// The context window in tokens: prompt plus completion.
    fn context_length(&self) -> u32;

    /// Counts the tokens of `text` with the model's tokenizer (used to account for cancelled requests).
    fn count_tokens(&self, text: &str) -> u32;

    /// Starts generating; fails before streaming anything when the request cannot be served.
    fn start(&self, request: ProviderChatRequest) -> BoxFuture<'_, Result<ProviderStream, GatewayError>>;
}

/// Embedding vectors and the tokens they consumed.
pub(crate) struct EmbeddingOutput {
    pub(crate) vectors: Vec<Vec<f32>>,
    pub(crate) prompt_tokens: u32,
}

/// A model that embeds text.
pub(crate) trait EmbeddingProvider: Send + Sync {
    /// The length of each vector.
    fn dimensions(&self) -> usize;

    /// Embeds each input.
    fn embed(&self, inputs: Vec<String>) -> BoxFuture<'_, Result<EmbeddingOutput, GatewayError>>;
}
