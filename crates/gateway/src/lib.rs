//! The gateway: one API in front of every model. It owns the OpenAI wire types, the providers behind them, the
//! model catalog, the usage ledger and the model metrics, and it is the only way any crate reaches a model.
//!
//! Invariant: every model request, whether it comes over HTTP or from another crate through [`GatewayClient`],
//! ends in exactly one ledger row.

mod admin;
mod chat;
mod embeddings;
mod error;
mod http;
mod keys;
mod ledger;
mod limits;
pub mod metrics;
mod models;
pub mod openai;
mod provider;
mod schema;
mod usage;

use std::sync::Arc;
use std::time::Instant;

use store::{Database, StoreError};

pub use admin::{router as admin_router, usd_to_micros};
pub use chat::{ChatCompletionStream, unix_seconds};
pub use error::{ErrorBody, ErrorObject, GatewayError};
pub use http::{HttpOptions, router};
pub use keys::{IssuedKey, KeyError, KeyInfo, KeyStore, NewKey, Rejection};
pub use ledger::{UsageLedger, UsageRecord};
pub use limits::LimitStatus;
pub use models::{ModelInfo, ModelKind, ModelStatus};
pub use usage::{UsageDimension, UsageGroup, parse_bound};

use ledger::{Account, UsageSink};
use limits::{Limits, RateLimiter};
use models::{Backend, ModelCatalog};
use openai::{ChatCompletion, ChatCompletionRequest, EmbeddingRequest, EmbeddingResponse};

/// The tenant of HTTP requests while no master key is set (auth off).
pub const PUBLIC_TENANT: &str = "public";
/// The tenant of model calls made with the master key.
pub const ADMIN_TENANT: &str = "admin";

/// Who is calling, once their key (if any) has been checked.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Auth is off (no master key): everyone is the public tenant, and the admin API is open.
    Anonymous,
    /// The master key: the admin API, and model calls as the admin tenant.
    Admin,
    /// A tenant's virtual key.
    Key(Box<KeyInfo>),
}

/// The gateway. Cheap to clone: clones share the catalog and the ledger.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    models: ModelCatalog,
    usage: UsageSink,
    keys: KeyStore,
    /// SHA-256 of the master key; `None` means auth is off.
    master_key_hash: Option<String>,
    started_at: i64,
}

impl Gateway {
    /// Opens the gateway on `db`, bringing its tables up to date. With a `master_key`, every request must carry
    /// a valid key; without one, auth is off (for local use).
    pub async fn open(db: Database, master_key: Option<&str>) -> Result<Gateway, StoreError> {
        schema::migrate(&db).await?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                models: ModelCatalog::default(),
                usage: UsageSink {
                    ledger: UsageLedger::new(db.clone()),
                    limiter: Arc::new(RateLimiter::default()),
                },
                keys: KeyStore::new(db),
                master_key_hash: master_key.map(keys::hash_secret),
                started_at: chat::unix_seconds(),
            }),
        })
    }

    /// Whether requests must carry a key.
    pub fn auth_enabled(&self) -> bool {
        self.inner.master_key_hash.is_some()
    }

    /// The tenants' virtual keys.
    pub fn keys(&self) -> &KeyStore {
        &self.inner.keys
    }

    /// Checks the secret a request presented (`None` when it presented none).
    pub async fn authenticate(&self, secret: Option<&str>) -> Result<Caller, GatewayError> {
        let Some(master_key_hash) = &self.inner.master_key_hash else {
            return Ok(Caller::Anonymous);
        };
        let secret = secret.ok_or_else(|| {
            GatewayError::Unauthorized(
                "no API key; send 'Authorization: Bearer <key>' or 'x-api-key: <key>'".to_owned(),
            )
        })?;
        if &keys::hash_secret(secret) == master_key_hash {
            return Ok(Caller::Admin);
        }
        match self
            .inner
            .keys
            .authenticate(secret)
            .await
            .map_err(|error| GatewayError::Internal(error.to_string()))?
        {
            Ok(key) => Ok(Caller::Key(Box::new(key))),
            Err(Rejection::Unknown) => Err(GatewayError::Unauthorized("the API key is not valid".to_owned())),
            Err(Rejection::Revoked) => Err(GatewayError::Unauthorized("the API key has been revoked".to_owned())),
            Err(Rejection::Expired) => Err(GatewayError::Unauthorized("the API key has expired".to_owned())),
        }
    }

    /// A client acting for `caller`: its tenant pays, its key's model list applies.
    pub fn client_for(&self, caller: &Caller) -> GatewayClient {
        match caller {
            Caller::Anonymous => self.client(PUBLIC_TENANT),
            Caller::Admin => self.client(ADMIN_TENANT),
            Caller::Key(key) => GatewayClient {
                gateway: self.clone(),
                account: Account {
                    tenant: key.tenant.clone(),
                    key_id: Some(key.id.clone()),
                },
                allowed_models: key.models.clone(),
                limits: Limits {
                    rpm: key.rpm,
                    tpm: key.tpm,
                },
            },
        }
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
        &self.inner.usage.ledger
    }

    /// An in-process client whose requests are accounted to `tenant`.
    pub fn client(&self, tenant: &str) -> GatewayClient {
        GatewayClient {
            gateway: self.clone(),
            account: Account {
                tenant: tenant.to_owned(),
                key_id: None,
            },
            allowed_models: None,
            limits: Limits { rpm: None, tpm: None },
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
    account: Account,
    /// The key's model list; `None` means every model.
    allowed_models: Option<Vec<String>>,
    /// The key's rate limits.
    limits: Limits,
}

impl GatewayClient {
    /// The tenant this client's requests are accounted to.
    pub fn tenant(&self) -> &str {
        &self.account.tenant
    }

    /// Whether this client may call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        keys::model_allowed(self.allowed_models.as_deref(), model)
    }

    /// Takes one request out of the key's rate limits for a call to `model` on `endpoint` (`chat.completions` or
    /// `embeddings`), returning where the key stands (`None` for a client without a key). A refusal is recorded
    /// in the ledger like any other refused request.
    pub async fn admit(&self, endpoint: &'static str, model: &str) -> Result<Option<LimitStatus>, GatewayError> {
        let Some(key_id) = &self.account.key_id else {
            return Ok(None);
        };
        let started = Instant::now();
        match self.gateway.inner.usage.limiter.admit(key_id, self.limits, started) {
            Ok(status) => Ok(Some(status)),
            Err(exceeded) => {
                let error = GatewayError::RateLimited {
                    what: exceeded.what,
                    limit: exceeded.limit,
                    retry_after_secs: exceeded.retry_after.as_secs().max(1),
                };
                Err(self.refuse(error, endpoint, model, started).await)
            }
        }
    }

    /// The backend serving `model`, if this client may call it.
    fn backend(&self, model: &str) -> Result<Backend, GatewayError> {
        let backend = self.gateway.inner.models.backend(model)?;
        if self.allows_model(model) {
            Ok(backend)
        } else {
            Err(GatewayError::ModelNotAllowed(model.to_owned()))
        }
    }

    /// A chat completion, streamed chunk by chunk. `request.stream` is ignored: this is always a stream.
    pub async fn chat_stream(&self, request: ChatCompletionRequest) -> Result<ChatCompletionStream, GatewayError> {
        let started = Instant::now();
        let model = request.model.clone();
        let provider = match self.backend(&model) {
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
            sink: self.gateway.inner.usage.clone(),
            account: self.account.clone(),
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
        match self.backend(&request.model) {
            Ok(Backend::Embedding(provider)) => {
                embeddings::run(&self.gateway.inner.usage, &self.account, provider.as_ref(), request).await
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
            tenant: self.account.tenant.clone(),
            key_id: self.account.key_id.clone(),
            model: model.to_owned(),
            endpoint: endpoint.to_owned(),
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            ttft_ms: None,
            status: error.code().to_owned(),
        };
        metrics::record_model_request(model, endpoint, error.code(), 0, 0, row.latency_ms / 1e3);
        self.gateway.inner.usage.write(row).await;
        error
    }
}
