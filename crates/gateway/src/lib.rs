//! The gateway: one API in front of every model. It owns the OpenAI wire types, the providers behind them, the
//! model catalog, the usage ledger and the model metrics, and it is the only way any crate reaches a model.
//!
//! Invariant: every model request, whether it comes over HTTP or from another crate through [`GatewayClient`],
//! ends in exactly one ledger row.

mod chat;
mod embeddings;
mod error;
mod http;
mod ledger;
pub mod metrics;
mod models;
pub mod openai;
mod provider;

use std::sync::Arc;
use std::time::Instant;

use store::{Database, StoreError};

pub use chat::ChatCompletionStream;
pub use error::{ErrorBody, ErrorObject, GatewayError};
pub use http::{HttpOptions, router};
pub use ledger::{UsageLedger, UsageRecord};
pub use models::{ModelInfo, ModelKind, ModelStatus};

use models::{Backend, ModelCatalog};
use openai::{ChatCompletion, ChatCompletionRequest, EmbeddingRequest, EmbeddingResponse};

/// The tenant of HTTP requests while keys and tenants are not configured.
pub const PUBLIC_TENANT: &str = "public";

/// The gateway. Cheap to clone: clones share the catalog and the ledger.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    models: ModelCatalog,
    ledger: UsageLedger,
    started_at: i64,
}

impl Gateway {
    /// Opens the gateway on `db`, creating the ledger table on first use.
    pub async fn open(db: Database) -> Result<Gateway, StoreError> {
        Ok(Gateway {
            inner: Arc::new(Inner {
                models: ModelCatalog::default(),
                ledger: UsageLedger::open(db).await?,
                started_at: chat::unix_seconds(),
            }),
        })
    }

    /// Announces a model that is still loading: requests for it get 503 "loading", not 404.
    pub fn declare_model(&self, id: &str, kind: ModelKind) {
        self.inner.models.declare(id, kind);
    }

    /// Serves `id` with a chat model of the embedded engine.
    pub fn serve_embedded_chat(&self, id: &str, model: inference::ChatModel) {
        let provider = provider::embedded::EmbeddedChat::new(model);
        self.inner.models.attach(id, Backend::Chat(Arc::new(provider)));
    }

    /// Serves `id` with a sentence embedder of the embedded engine.
    pub fn serve_embedded_embedder(&self, id: &str, embedder: inference::Embedder) {
        let provider = provider::embedded::EmbeddedEmbedder::new(embedder);
        self.inner.models.attach(id, Backend::Embedding(Arc::new(provider)));
    }

    /// Marks a declared model as failed to load; requests for it get 503 with `reason`.
    pub fn fail_model(&self, id: &str, reason: String) {
        self.inner.models.fail(id, reason);
    }

    /// The declared models and their state.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.inner.models.list()
    }

    /// True when every declared model is ready.
    pub fn is_ready(&self) -> bool {
        self.models().iter().all(|model| model.status == ModelStatus::Ready)
    }

    /// The usage ledger.
    pub fn ledger(&self) -> &UsageLedger {
        &self.inner.ledger
    }

    /// An in-process client whose requests are accounted to `tenant`.
    pub fn client(&self, tenant: &str) -> GatewayClient {
        GatewayClient {
            gateway: self.clone(),
            tenant: tenant.to_owned(),
        }
    }

    fn started_at(&self) -> i64 {
        self.inner.started_at
    }
}

/// The in-process way to call a model: the same path as the HTTP API, ledger included, without the network.
#[derive(Clone)]
pub struct GatewayClient {
    gateway: Gateway,
    tenant: String,
}

impl GatewayClient {
    /// The tenant this client's requests are accounted to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// A chat completion, streamed chunk by chunk. `request.stream` is ignored: this is always a stream.
    pub async fn chat_stream(&self, request: ChatCompletionRequest) -> Result<ChatCompletionStream, GatewayError> {
        let started = Instant::now();
        let model = request.model.clone();
        let provider = match self.gateway.inner.models.backend(&model) {
            Ok(Backend::Chat(provider)) => provider,
            Ok(Backend::Embedding(_)) => {
                let error = GatewayError::WrongModelKind {
                    model: model.clone(),
                    endpoint: "chat completions",
                };
                return Err(self.refuse(error, chat::ENDPOINT, &model, started).await);
            }
            Err(error) => return Err(self.refuse(error, chat::ENDPOINT, &model, started).await),
        };
        let validated = match chat::validate(request, provider.context_length()) {
            Ok(validated) => validated,
            Err(error) => return Err(self.refuse(error, chat::ENDPOINT, &model, started).await),
        };
        chat::start(chat::ChatRun {
            ledger: self.gateway.inner.ledger.clone(),
            tenant: self.tenant.clone(),
            model,
            provider,
            validated,
            started,
        })
        .await
    }

    /// A chat completion, whole.
    pub async fn chat(&self, request: ChatCompletionRequest) -> Result<ChatCompletion, GatewayError> {
        let include_usage = openai::StreamOptions {
            include_usage: true,
            include_obfuscation: None,
        };
        let request = ChatCompletionRequest {
            stream: true,
            stream_options: Some(include_usage),
            ..request
        };
        chat::collect(self.chat_stream(request).await?).await
    }

    /// Embeddings for one or more inputs.
    pub async fn embeddings(&self, request: EmbeddingRequest) -> Result<EmbeddingResponse, GatewayError> {
        let started = Instant::now();
        match self.gateway.inner.models.backend(&request.model) {
            Ok(Backend::Embedding(provider)) => {
                embeddings::run(&self.gateway.inner.ledger, &self.tenant, provider.as_ref(), request).await
            }
            Ok(Backend::Chat(_)) => {
                let error = GatewayError::WrongModelKind {
                    model: request.model.clone(),
                    endpoint: "embeddings",
                };
                Err(self.refuse(error, embeddings::ENDPOINT, &request.model, started).await)
            }
            Err(error) => Err(self.refuse(error, embeddings::ENDPOINT, &request.model, started).await),
        }
    }

    /// Records a request refused before reaching a model, and hands the error back.
    async fn refuse(&self, error: GatewayError, endpoint: &'static str, model: &str, started: Instant) -> GatewayError {
        let prefix = if endpoint == embeddings::ENDPOINT {
            "embd"
        } else {
            "chatcmpl"
        };
        let row = UsageRecord {
            request_id: chat::new_request_id(prefix),
            tenant: self.tenant.clone(),
            model: model.to_owned(),
            endpoint: endpoint.to_owned(),
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            ttft_ms: None,
            status: error.code().to_owned(),
        };
        metrics::record_model_request(model, endpoint, error.code(), 0, 0, row.latency_ms / 1e3);
        chat::write_row(&self.gateway.inner.ledger, row).await;
        error
    }
}
