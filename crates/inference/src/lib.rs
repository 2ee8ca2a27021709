//! Embedded CPU inference: GGUF chat models through llama.cpp and BERT sentence embedders through candle.
//!
//! This crate owns the models and everything model-specific: prompt templates, tokenization, sampling, stop
//! strings and pooling. It knows nothing about HTTP, accounting or model catalogs; callers hand it plain requests
//! and get plain text, token counts and vectors back.
//!
//! - [`ChatModel`] runs one GGUF model on a dedicated worker thread that decodes concurrent requests together
//!   (continuous batching) and streams each one's text over a tokio channel; [`OutputFormat`] constrains a
//!   generation to JSON, optionally to a schema.
//! - [`GgufSummary`] reads what a GGUF file is (architecture, quantization, context) without loading it.
//! - [`Embedder`] turns texts into L2-normalized sentence embeddings; it blocks, so async callers use
//!   `spawn_blocking`.

mod batch;
mod chat;
mod embed;
mod gguf;
mod stop;
mod structured;
mod template;
mod utf8;

use std::path::PathBuf;

pub use chat::{
    ChatMessage, ChatModel, ChatModelInfo, ChatModelOptions, EngineStats, FinishReason, GenerationEvent,
    GenerationRequest, GenerationSummary,
};
pub use embed::{Embedder, EmbedderInfo, EmbedderOptions, Embeddings};
pub use gguf::GgufSummary;
pub use structured::OutputFormat;

/// Everything that can go wrong loading a model or running it.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// A file the model needs is not there.
    #[error("model file {} is missing; run scripts/fetch-models", path.display())]
    ModelMissing {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A model file exists but could not be read or parsed.
    #[error("model file {} could not be loaded ({reason}); it may be corrupt, run scripts/fetch-models", path.display())]
    ModelCorrupt {
        /// The file that failed to load.
        path: PathBuf,
        /// What the loader reported.
        reason: String,
    },
    /// A model file is readable but describes something this crate cannot run.
    #[error("model file {} is not supported: {reason}", path.display())]
    UnsupportedModel {
        /// The file that describes the unsupported feature.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// The request is malformed (no messages, an unknown role, an out-of-range sampling parameter).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The prompt leaves no room in the context for even one generated token.
    #[error("the prompt is {prompt_tokens} tokens but the context holds {context_length}, leaving no room for a reply")]
    ContextOverflow {
        /// Tokens in the rendered prompt.
        prompt_tokens: usize,
        /// The context length of the loaded model.
        context_length: usize,
    },
    /// Too many requests are already waiting for the model.
    #[error("the model is busy: {max_queue} requests are already waiting")]
    Overloaded {
        /// The configured queue limit.
        max_queue: usize,
    },
    /// The chat template failed to compile or rejected the messages.
    #[error("chat template: {0}")]
    Template(String),
    /// llama.cpp or candle failed while running the model.
    #[error("inference failed: {0}")]
    Backend(String),
    /// The model's worker thread is gone, so no more requests can run.
    #[error("the model worker has stopped")]
    WorkerStopped,
}
