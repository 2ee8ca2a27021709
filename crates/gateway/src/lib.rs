//! The gateway: one API in front of every model. It owns the OpenAI wire types, the providers behind them, the
//! model catalog, the usage ledger and the model metrics, and it is the only way any crate reaches a model.
//!
//! Invariant: every model request, whether it comes over HTTP or from another crate through [`GatewayClient`],
//! ends in exactly one ledger row.

mod admin;
pub mod anthropic;
mod budget;
mod cache;
mod chat;
mod dispatch;
mod embeddings;
mod error;
mod guarded;
pub mod guardrails;
mod http;
mod keys;
mod ledger;
mod limits;
pub mod metrics;
mod models;
pub mod openai;
mod provider;
pub mod responses;
mod routing;
mod schema;
mod shared;
mod tenants;
mod traces;
mod usage;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use store::{Database, StoreError};

pub use admin::{router as admin_router, usd_to_micros};
pub use budget::BudgetPeriod;
pub use cache::{CacheCharge, CacheMode, CachePolicy};
pub use chat::{ChatCompletionStream, unix_seconds};
pub use error::{ErrorBody, ErrorObject, GatewayError, UpstreamFailure};
pub use http::{HttpOptions, router};
pub use keys::{IssuedKey, KeyError, KeyInfo, KeyStore, KeyUpdate, NewKey, Rejection};
pub use ledger::{UsageLedger, UsageRecord};
pub use limits::LimitStatus;
pub use models::{
    DeploymentConfig, DeploymentInfo, ModelConfig, ModelConfigError, ModelInfo, ModelKind, ModelStatus, Price,
};
pub use provider::ProviderKind;
pub use provider::fault::FaultConfig;
pub use routing::{Candidate, PlacementAdvisor, PlacementQuery, Ranking, RoutingConfig, RoutingStrategy};
pub use tenants::TenantLimits;
pub use usage::{LedgerCall, UsageDimension, UsageGroup, parse_bound};

use budget::{BudgetLimit, Budgets, Scope};
use dispatch::Dispatcher;
use ledger::{Account, UsageSink};
use limits::{Limiter, Limits, RateLimiter};
use models::{Backend, ModelCatalog, ModelEntry};
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

impl Caller {
    /// Admin routes are for the master key, or anyone while auth is off.
    pub fn require_admin(&self) -> Result<(), GatewayError> {
        match self {
            Caller::Admin | Caller::Anonymous => Ok(()),
            Caller::Key(_) => Err(GatewayError::AdminOnly),
        }
    }
}

/// How often tenants' limits are re-read when other instances share the database: as stale as a key may be.
const TENANT_REFRESH: std::time::Duration = keys::AUTH_CACHE_TTL;

/// How the gateway is set up, beyond its database.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    /// With a master key every request must carry a valid key; without one auth is off (for local use).
    pub master_key: Option<String>,
    /// Models served by upstream providers (the embedded engine's models are added as they load).
    pub models: Vec<ModelConfig>,
    /// Retries, backoff and circuit breaking.
    pub routing: RoutingConfig,
    /// Redis, for rate limits and budgets shared with other instances; `None` keeps them in this process.
    pub shared: Option<store::SharedCounters>,
    /// Export a span per model call to the global OpenTelemetry tracer provider.
    pub traces: bool,
}

/// Why the gateway could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model configuration is inconsistent.
    #[error(transparent)]
    Models(#[from] ModelConfigError),
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
    tenants: tenants::TenantStore,
    /// SHA-256 of the master key; `None` means auth is off.
    master_key_hash: Option<String>,
    routing: RoutingConfig,
    cache: cache::ResponseCache,
    advisor: RwLock<Option<Arc<dyn PlacementAdvisor>>>,
    started_at: i64,
}

impl Gateway {
    /// Opens the gateway on `db` with no configured models, bringing its tables up to date.
    pub async fn open(db: Database, master_key: Option<&str>) -> Result<Gateway, StoreError> {
        schema::migrate(&db).await?;
        let config = GatewayConfig {
            master_key: master_key.map(str::to_owned),
            ..GatewayConfig::default()
        };
        let tenants = tenants::TenantStore::load(db.clone()).await?;
        Ok(Gateway::assemble(db, &config, ModelCatalog::default(), tenants))
    }

    /// Opens the gateway on `db` with `config`, bringing its tables up to date and building the providers of
    /// the configured models.
    pub async fn open_with(db: Database, config: GatewayConfig) -> Result<Gateway, OpenError> {
        schema::migrate(&db).await?;
        let models = ModelCatalog::default();
        models.configure(&config.models)?;
        let tenants = tenants::TenantStore::load(db.clone()).await?;
        Ok(Gateway::assemble(db, &config, models, tenants))
    }

    fn assemble(db: Database, config: &GatewayConfig, models: ModelCatalog, tenants: tenants::TenantStore) -> Gateway {
        let ledger = UsageLedger::new(db.clone());
        let shared = config
            .shared
            .clone()
            .map(|counters| Arc::new(shared::SharedState::new(counters)));
        let limiter = match &shared {
            Some(shared) => Limiter::Shared(shared.clone()),
            None => Limiter::Local(RateLimiter::default()),
        };
        if db.is_shared() {
            // Other instances change tenants' limits too; their in-memory copy is refreshed.
            tenants.refresh_every(TENANT_REFRESH);
        }
        Gateway {
            inner: Arc::new(Inner {
                models,
                usage: UsageSink {
                    budgets: Arc::new(Budgets::new(ledger.clone(), shared)),
                    ledger,
                    limiter: Arc::new(limiter),
                    spans: traces::SpanExporter::new(config.traces),
                },
                keys: KeyStore::new(db),
                tenants,
                master_key_hash: config.master_key.as_deref().map(keys::hash_secret),
                routing: config.routing,
                cache: cache::ResponseCache::default(),
                advisor: RwLock::new(None),
                started_at: chat::unix_seconds(),
            }),
        }
    }

    /// Installs the placement advisor that `fleet` routing asks (the fleet planner).
    pub fn set_placement_advisor(&self, advisor: Arc<dyn PlacementAdvisor>) {
        let mut slot = self
            .inner
            .advisor
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(advisor);
    }

    /// Whether requests must carry a key.
    pub fn auth_enabled(&self) -> bool {
        self.inner.master_key_hash.is_some()
    }

    /// The tenants' virtual keys.
    pub fn keys(&self) -> &KeyStore {
        &self.inner.keys
    }

    /// Checks the key a request's headers present: `Authorization: Bearer <key>` (OpenAI clients) or
    /// `x-api-key: <key>` (Anthropic clients).
    pub async fn authenticate_headers(&self, headers: &axum::http::HeaderMap) -> Result<Caller, GatewayError> {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")));
        let api_key = headers.get("x-api-key").and_then(|value| value.to_str().ok());
        let secret = bearer.or(api_key).map(str::trim).filter(|secret| !secret.is_empty());
        self.authenticate(secret).await
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

    /// A client acting for `caller`: its tenant pays, its key's model list, limits and budget apply.
    pub fn client_for(&self, caller: &Caller) -> GatewayClient {
        match caller {
            Caller::Anonymous => self.client(PUBLIC_TENANT),
            Caller::Admin => self.client(ADMIN_TENANT),
            Caller::Key(key) => {
                let mut client = self.client(&key.tenant);
                if let Some(budget_micros) = key.budget_micros {
                    client.budgets.push(BudgetLimit {
                        scope: Scope::Key(key.id.clone()),
                        budget_micros,
                        period: key.budget_period,
                    });
                }
                client.account.key_id = Some(key.id.clone());
                client.allowed_models.clone_from(&key.models);
                client.limits = Limits {
                    rpm: key.rpm,
                    tpm: key.tpm,
                };
                client.guardrails = key.guardrails.clone().map(Arc::new);
                client.cache.clone_from(&key.cache);
                client
            }
        }
    }

    /// Announces an embedded model that is still loading: requests for it get 503 "loading", not 404.
    pub fn declare_model(&self, id: &str, kind: ModelKind) {
        self.inner.models.declare_embedded(id, kind);
    }

    /// Serves `id` with a chat model of the embedded engine.
    pub fn serve_embedded_chat(&self, id: &str, model: inference::ChatModel) {
        let model = Arc::new(model);
        crate::metrics::watch_engine(id, Arc::downgrade(&model));
        let provider = provider::embedded::EmbeddedChat::new(model);
        self.inner.models.attach_embedded(id, Backend::Chat(Arc::new(provider)));
    }

    /// Serves `id` with a sentence embedder of the embedded engine.
    pub fn serve_embedded_embedder(&self, id: &str, embedder: inference::Embedder) {
        let provider = provider::embedded::EmbeddedEmbedder::new(embedder);
        self.inner
            .models
            .attach_embedded(id, Backend::Embedding(Arc::new(provider)));
    }

    /// Marks a declared embedded model as failed to load; requests for it get 503 with `reason`.
    pub fn fail_model(&self, id: &str, reason: String) {
        self.inner.models.fail_embedded(id, reason);
    }

    /// The models and their state.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.inner.models.list()
    }

    /// True when no model is still loading.
    pub fn is_ready(&self) -> bool {
        self.models().iter().all(|model| model.status != ModelStatus::Loading)
    }

    /// The usage ledger.
    pub fn ledger(&self) -> &UsageLedger {
        &self.inner.usage.ledger
    }

    /// An in-process client whose requests are accounted to `tenant` (and held to the tenant's limits).
    pub fn client(&self, tenant: &str) -> GatewayClient {
        let tenant_limits = self.inner.tenants.get(tenant).unwrap_or_default();
        let budgets = tenant_limits
            .budget_micros
            .map(|budget_micros| BudgetLimit {
                scope: Scope::Tenant(tenant.to_owned()),
                budget_micros,
                period: tenant_limits.budget_period,
            })
            .into_iter()
            .collect();
        GatewayClient {
            gateway: self.clone(),
            account: Account {
                tenant: tenant.to_owned(),
                key_id: None,
                feature: None,
                trace_parent: None,
            },
            allowed_models: None,
            limits: Limits { rpm: None, tpm: None },
            tenant_limits: Limits {
                rpm: tenant_limits.rpm,
                tpm: tenant_limits.tpm,
            },
            budgets,
            guardrails: None,
            cache: None,
            endpoint: chat::ENDPOINT,
            region: None,
            slo: None,
        }
    }

    /// Every tenant that has limits of its own.
    pub fn tenant_limits(&self) -> Vec<(String, TenantLimits)> {
        self.inner.tenants.list()
    }

    /// One tenant's own limits, if it has any.
    pub fn tenant(&self, tenant: &str) -> Option<TenantLimits> {
        self.inner.tenants.get(tenant)
    }

    /// Sets a tenant's own limits.
    pub async fn set_tenant_limits(&self, tenant: &str, limits: TenantLimits) -> Result<(), StoreError> {
        self.inner.tenants.set(tenant, limits).await
    }

    /// Removes a tenant's own limits; returns whether it had any.
    pub async fn remove_tenant_limits(&self, tenant: &str) -> Result<bool, StoreError> {
        self.inner.tenants.remove(tenant).await
    }

    fn started_at(&self) -> i64 {
        self.inner.started_at
    }

    fn dispatcher(&self, query: PlacementQuery) -> Dispatcher<'_> {
        let advisor = self
            .inner
            .advisor
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Dispatcher {
            catalog: &self.inner.models,
            routing: &self.inner.routing,
            advisor,
            query,
        }
    }

    /// The placement advisor's scores for a request like `query`; `None` when no advisor is installed.
    pub fn explain_placement(&self, query: &PlacementQuery) -> Option<Result<serde_json::Value, String>> {
        let advisor = self
            .inner
            .advisor
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        Some(advisor.explain(query))
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
    /// The tenant's rate limits, over all its keys.
    tenant_limits: Limits,
    /// The budgets this client's spending counts against.
    budgets: Vec<BudgetLimit>,
    /// The key's guardrails.
    guardrails: Option<Arc<guardrails::GuardrailPolicy>>,
    /// How this client's chat requests use the response cache.
    cache: Option<CachePolicy>,
    /// The endpoint its chat requests are recorded under (`chat.completions`, or `messages` for Anthropic's).
    endpoint: &'static str,
    /// The user's region and SLO class, for fleet routing.
    region: Option<String>,
    slo: Option<String>,
}

/// What the HTTP layer reports of an answer beside its body: the response cache's part (`hit`, `miss`, or not
/// consulted) and where the request went (`x-flywheel-route`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AnswerMeta {
    pub(crate) cache: Option<&'static str>,
    pub(crate) route: Option<String>,
}

impl AnswerMeta {
    fn cache_hit() -> AnswerMeta {
        AnswerMeta {
            cache: Some("hit"),
            route: Some("cache".to_owned()),
        }
    }
}

/// Output tokens the fleet router assumes for a request that sets no limit.
const TYPICAL_OUTPUT_TOKENS: u32 = 256;

/// The chat provider behind a chat model's deployment (the catalog only builds chat backends for chat models).
fn chat_provider(backend: Backend) -> Result<Arc<dyn provider::ChatProvider>, GatewayError> {
    match backend {
        Backend::Chat(provider) => Ok(provider),
        Backend::Embedding(_) => Err(GatewayError::Internal(
            "a chat model has a non-chat deployment".to_owned(),
        )),
    }
}

/// A cache lookup that missed, kept to store the answer once it comes.
struct CacheMiss {
    policy: CachePolicy,
    exact: [u8; 32],
    semantic: Option<([u8; 32], Vec<f32>)>,
}

impl GatewayClient {
    /// The tenant this client's requests are accounted to.
    pub fn tenant(&self) -> &str {
        &self.account.tenant
    }

    /// Records this client's chat requests under `endpoint` (the API they came in on).
    pub(crate) fn on_endpoint(mut self, endpoint: &'static str) -> GatewayClient {
        self.endpoint = endpoint;
        self
    }

    /// Makes this client's model calls children of the caller's span, given as a W3C `traceparent` header
    /// value; an invalid value is ignored.
    pub fn with_traceparent(mut self, traceparent: &str) -> GatewayClient {
        self.account.trace_parent = traces::parse_traceparent(traceparent);
        self
    }

    /// Records this client's calls under a product feature (`shopping-assistant`, `search`, ...), so demand
    /// can be told apart by what caused it.
    pub fn for_feature(mut self, feature: &str) -> GatewayClient {
        self.account.feature = Some(feature.to_owned());
        self
    }

    /// Tells fleet routing the user's region and SLO class (the `x-flywheel-region` and `x-flywheel-slo`
    /// headers).
    pub fn with_placement(mut self, region: Option<String>, slo: Option<String>) -> GatewayClient {
        self.region = region;
        self.slo = slo;
        self
    }

    fn placement_query(&self, request: &ChatCompletionRequest, prompt_tokens: u32) -> PlacementQuery {
        PlacementQuery {
            model: request.model.clone(),
            region: self.region.clone(),
            slo: self.slo.clone(),
            prompt_tokens,
            output_tokens: request
                .max_completion_tokens
                .or(request.max_tokens)
                .and_then(|limit| u32::try_from(limit).ok())
                .unwrap_or(TYPICAL_OUTPUT_TOKENS),
        }
    }

    /// Uses the response cache as a request's `x-flywheel-cache` header says (`exact`, `semantic` or `off`),
    /// over the key's own policy.
    pub fn with_cache_header(mut self, value: &str) -> Result<GatewayClient, GatewayError> {
        self.cache = CachePolicy::from_header(value, self.cache.as_ref())
            .map_err(|message| GatewayError::invalid("x-flywheel-cache", message))?;
        Ok(self)
    }

    /// Looks the request up in the cache: the answer on a hit, what is needed to store the answer on a miss.
    async fn cache_lookup(&self, request: &ChatCompletionRequest) -> Option<Result<cache::CachedAnswer, CacheMiss>> {
        let policy = self.cache.clone()?;
        let responses = &self.gateway.inner.cache;
        let exact = cache::exact_key(&self.account.tenant, request);
        if let Some(answer) = responses.get_exact(&exact) {
            return Some(Ok(answer));
        }
        let mut semantic = None;
        if policy.mode == CacheMode::Semantic {
            let model = policy
                .embedding_model
                .clone()
                .unwrap_or_else(|| cache::DEFAULT_CACHE_EMBEDDING_MODEL.to_owned());
            let embedding = self
                .gateway
                .client(&self.account.tenant)
                .embeddings(EmbeddingRequest {
                    model,
                    input: openai::EmbeddingInput::One(cache::semantic_text(request)),
                    encoding_format: None,
                    dimensions: None,
                    user: None,
                })
                .await;
            match embedding.map(|response| response.data.into_iter().next().map(|item| item.embedding)) {
                Ok(Some(openai::EmbeddingVector::Float(vector))) => {
                    let bucket = cache::semantic_bucket(&self.account.tenant, request);
                    if let Some(answer) = responses.get_semantic(&bucket, &vector, policy.similarity) {
                        return Some(Ok(answer));
                    }
                    semantic = Some((bucket, vector));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "semantic cache: embedding failed; treating as a miss"),
            }
        }
        Some(Err(CacheMiss {
            policy,
            exact,
            semantic,
        }))
    }

    fn cache_store(responses: &cache::ResponseCache, miss: CacheMiss, answer: cache::CachedAnswer) {
        let ttl = std::time::Duration::from_secs(miss.policy.ttl_secs);
        if let Some((bucket, vector)) = miss.semantic {
            responses.put_semantic(bucket, vector, answer.clone(), ttl);
        }
        responses.put_exact(miss.exact, answer, ttl);
    }

    /// Answers from the cache: the stored completion under this request's id, charged as the policy says.
    async fn answer_from_cache(
        &self,
        record: chat::ChatRecord,
        answer: cache::CachedAnswer,
        requested_model: &str,
    ) -> ChatCompletion {
        let mut completion = answer.completion;
        completion.id = record.request_id().to_owned();
        completion.model = requested_model.to_owned();
        completion.created = chat::unix_seconds();
        let usage = completion.usage.unwrap_or_default();
        let charge = match self.cache.as_ref().map(|policy| policy.charge) {
            Some(CacheCharge::Full) => answer.cost_micros,
            _ => 0,
        };
        record.finish_cached(usage, charge, answer.deployment).await;
        completion
    }

    /// Whether this client may call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        keys::model_allowed(self.allowed_models.as_deref(), model)
    }

    /// Takes one request out of the key's rate limits for a call to `model` on `endpoint` (`chat.completions` or
    /// `embeddings`), returning where the key stands (`None` for a client without a key). A refusal is recorded
    /// in the ledger like any other refused request.
    pub async fn admit(&self, endpoint: &'static str, model: &str) -> Result<Option<LimitStatus>, GatewayError> {
        let started = Instant::now();
        let tenant_limited = self.tenant_limits.rpm.is_some() || self.tenant_limits.tpm.is_some();
        let mut status = None;
        if tenant_limited {
            let scope = limits::tenant_scope(&self.account.tenant);
            status = Some(
                self.admit_scope(&scope, self.tenant_limits, true, endpoint, model, started)
                    .await?,
            );
        }
        if let Some(key_id) = &self.account.key_id {
            status = Some(
                self.admit_scope(key_id, self.limits, false, endpoint, model, started)
                    .await?,
            );
        }
        Ok(status)
    }

    /// Takes one request out of one scope's limits, refusing (and recording the refusal) when they are spent.
    async fn admit_scope(
        &self,
        scope: &str,
        scope_limits: Limits,
        is_tenant: bool,
        endpoint: &'static str,
        model: &str,
        started: Instant,
    ) -> Result<LimitStatus, GatewayError> {
        let exceeded = match self.gateway.inner.usage.limiter.admit(scope, scope_limits).await {
            Ok(Ok(status)) => return Ok(status),
            Ok(Err(exceeded)) => exceeded,
            Err(error) => return Err(self.refuse(error, endpoint, model, started).await),
        };
        metrics::record_limit_rejection(match (is_tenant, exceeded.what) {
            (true, "requests") => "tenant_rpm",
            (true, _) => "tenant_tpm",
            (false, "requests") => "rpm",
            (false, _) => "tpm",
        });
        let error = GatewayError::RateLimited {
            what: exceeded.what,
            limit: exceeded.limit,
            retry_after_secs: exceeded.retry_after.as_secs().max(1),
        };
        Err(self.refuse(error, endpoint, model, started).await)
    }

    /// The model `name` refers to, if this client may call it for `endpoint`.
    fn model_for(&self, name: &str, kind: ModelKind) -> Result<Arc<ModelEntry>, GatewayError> {
        let entry = self.gateway.inner.models.resolve(name)?;
        if !(self.allows_model(name) || self.allows_model(&entry.id)) {
            return Err(GatewayError::ModelNotAllowed(name.to_owned()));
        }
        if entry.kind != kind {
            return Err(GatewayError::WrongModelKind {
                model: name.to_owned(),
                endpoint: match kind {
                    ModelKind::Chat => "chat completions",
                    ModelKind::Embedding => "embeddings",
                },
            });
        }
        Ok(entry)
    }

    /// Everything that happens before a chat request is sent anywhere: the model, the checks, the budget.
    async fn prepare_chat(
        &self,
        request: &mut ChatCompletionRequest,
        started: Instant,
    ) -> Result<(Arc<ModelEntry>, chat::ChatRecord), GatewayError> {
        let checked = self
            .model_for(&request.model, ModelKind::Chat)
            .and_then(|entry| chat::validate(request, entry.context_length).map(|()| entry));
        let entry = match checked {
            Ok(entry) => entry,
            Err(error) => return Err(self.refuse(error, self.endpoint, &request.model, started).await),
        };
        let verdict = self
            .guardrails
            .as_deref()
            .map(|policy| guarded::check_request(policy, request));
        if let Some(guardrails::Verdict::Blocked { rule, detail }) = &verdict {
            let error = GatewayError::Blocked {
                rule: rule.clone(),
                detail: detail.clone(),
            };
            let label = verdict.as_ref().map(guardrails::Verdict::label);
            return Err(self
                .refuse_with(error, self.endpoint, &request.model, started, label)
                .await);
        }
        let model = request.model.as_str();
        let prompt_estimate = chat::estimate_prompt_tokens(request);
        let reservation = if self.budgets.is_empty() {
            None
        } else {
            let price = entry
                .deployments
                .iter()
                .map(|deployment| deployment.price)
                .max_by_key(|price| price.input_micros_per_mtok + price.output_micros_per_mtok)
                .unwrap_or(entry.price);
            let worst_case = chat::worst_case_cost(request, prompt_estimate, entry.context_length, price);
            match self
                .gateway
                .inner
                .usage
                .budgets
                .reserve(&self.budgets, worst_case)
                .await
            {
                Ok(reservation) => Some(reservation),
                Err(error) => return Err(self.refuse(error, self.endpoint, model, started).await),
            }
        };
        let mut record = chat::ChatRecord::new(
            self.gateway.inner.usage.clone(),
            &self.account,
            model,
            started,
            prompt_estimate,
            reservation,
        );
        if let Some(row) = record.row_mut() {
            row.endpoint = self.endpoint.to_owned();
            if let Some(verdict) = &verdict {
                row.guardrail = Some(verdict.label());
            }
        }
        Ok((entry, record))
    }

    /// A chat completion, streamed chunk by chunk. `request.stream` is ignored: this is always a stream.
    pub async fn chat_stream(&self, request: ChatCompletionRequest) -> Result<ChatCompletionStream, GatewayError> {
        Ok(self.chat_stream_traced(request).await?.0)
    }

    /// [`GatewayClient::chat_stream`], also telling whether the cache was hit (`Some("hit")`), missed, or not
    /// consulted.
    pub(crate) async fn chat_stream_traced(
        &self,
        mut request: ChatCompletionRequest,
    ) -> Result<(ChatCompletionStream, AnswerMeta), GatewayError> {
        if self.guardrails.as_ref().is_some_and(|policy| policy.check_output) {
            // The answer must be checked whole before any of it reaches the client.
            let include_usage = request
                .stream_options
                .as_ref()
                .is_some_and(|options| options.include_usage);
            let (completion, cache) = self.chat_traced(request).await?;
            return Ok((guarded::completion_as_stream(completion, include_usage), cache));
        }
        let started = Instant::now();
        let (entry, mut record) = self.prepare_chat(&mut request, started).await?;
        let include_usage = request
            .stream_options
            .as_ref()
            .is_some_and(|options| options.include_usage);
        let requested_model = request.model.clone();
        let miss = match self.cache_lookup(&request).await {
            Some(Ok(answer)) => {
                let completion = self.answer_from_cache(record, answer, &requested_model).await;
                return Ok((
                    guarded::completion_as_stream(completion, include_usage),
                    AnswerMeta::cache_hit(),
                ));
            }
            Some(Err(miss)) => Some(record.cache_missed(miss)),
            None => None,
        };
        let dispatcher = self
            .gateway
            .dispatcher(self.placement_query(&request, record.prompt_estimate()));
        let served = dispatcher
            .run(&entry, |backend, deployment| {
                let mut request = request.clone();
                async move {
                    let provider = chat_provider(backend)?;
                    request.model.clone_from(&deployment.upstream_model);
                    let mut chunks = provider.stream(request).await?;
                    // The first chunk proves the deployment is answering; failures before it can still move
                    // to another deployment, failures after it reach the client.
                    match futures::StreamExt::next(&mut chunks).await {
                        Some(Ok(first)) => {
                            let rest: provider::ChunkStream =
                                Box::pin(futures::StreamExt::chain(futures::stream::iter([Ok(first)]), chunks));
                            Ok(rest)
                        }
                        Some(Err(error)) => Err(error),
                        None => Err(GatewayError::upstream_reset("the upstream ended the stream at once")),
                    }
                }
            })
            .await;
        match served {
            Ok(served) => {
                record.served_by(&served.deployment, served.attempts);
                let gateway = self.gateway.clone();
                let deployment = served.deployment.name.clone();
                let on_complete = miss.map(|miss| {
                    Box::new(move |completion: ChatCompletion, cost_micros: i64| {
                        let answer = cache::CachedAnswer {
                            completion,
                            cost_micros,
                            deployment: Some(deployment),
                        };
                        GatewayClient::cache_store(&gateway.inner.cache, miss, answer);
                    }) as Box<dyn FnOnce(ChatCompletion, i64) + Send>
                });
                let meta = AnswerMeta {
                    cache: on_complete.as_ref().map(|_| "miss"),
                    route: Some(served.route),
                };
                let stream = chat::client_stream(
                    served.value,
                    chat::StreamContext {
                        record,
                        deployment: served.deployment,
                        in_flight: served.in_flight,
                        routing: self.gateway.inner.routing,
                        requested_model,
                        include_usage,
                        on_complete,
                    },
                );
                Ok((stream, meta))
            }
            Err(unserved) => Err(self.unserved(record, unserved).await),
        }
    }

    /// A chat completion, whole.
    pub async fn chat(&self, request: ChatCompletionRequest) -> Result<ChatCompletion, GatewayError> {
        Ok(self.chat_traced(request).await?.0)
    }

    /// [`GatewayClient::chat`], also telling whether the cache was hit, missed, or not consulted.
    pub(crate) async fn chat_traced(
        &self,
        mut request: ChatCompletionRequest,
    ) -> Result<(ChatCompletion, AnswerMeta), GatewayError> {
        let started = Instant::now();
        let (entry, mut record) = self.prepare_chat(&mut request, started).await?;
        let requested_model = request.model.clone();
        let miss = match self.cache_lookup(&request).await {
            Some(Ok(answer)) => {
                return Ok((
                    self.answer_from_cache(record, answer, &requested_model).await,
                    AnswerMeta::cache_hit(),
                ));
            }
            Some(Err(miss)) => Some(record.cache_missed(miss)),
            None => None,
        };
        let dispatcher = self
            .gateway
            .dispatcher(self.placement_query(&request, record.prompt_estimate()));
        let served = dispatcher
            .run(&entry, |backend, deployment| {
                let mut request = request.clone();
                async move {
                    let provider = chat_provider(backend)?;
                    request.model.clone_from(&deployment.upstream_model);
                    request.stream = false;
                    request.stream_options = None;
                    provider.complete(request).await
                }
            })
            .await;
        match served {
            Ok(served) => {
                record.served_by(&served.deployment, served.attempts);
                let mut completion = served.value;
                if let Some(policy) = self.guardrails.as_deref()
                    && let Err(error) = guarded::check_completion(policy, &mut completion, &mut record)
                {
                    let usage = completion.usage.unwrap_or_default();
                    record.finish(error.code(), usage).await;
                    return Err(error);
                }
                let meta = AnswerMeta {
                    cache: miss.as_ref().map(|_| "miss"),
                    route: Some(served.route),
                };
                if let Some(miss) = miss {
                    let usage = completion.usage.unwrap_or_default();
                    let answer = cache::CachedAnswer {
                        completion: completion.clone(),
                        cost_micros: record.cost_of(usage),
                        deployment: Some(served.deployment.name.clone()),
                    };
                    GatewayClient::cache_store(&self.gateway.inner.cache, miss, answer);
                }
                Ok((
                    chat::finish_completion(completion, record, &requested_model).await,
                    meta,
                ))
            }
            Err(unserved) => Err(self.unserved(record, unserved).await),
        }
    }

    /// The prompt's size in tokens as `model` would see it (an estimate from its text), without calling the
    /// model: for clients that size prompts before sending them (Anthropic's `count_tokens`).
    pub fn count_tokens(&self, request: &ChatCompletionRequest) -> Result<u32, GatewayError> {
        self.model_for(&request.model, ModelKind::Chat)?;
        Ok(chat::estimate_prompt_tokens(request))
    }

    /// Records a request that no deployment served, and hands its error back.
    async fn unserved(&self, mut record: chat::ChatRecord, unserved: dispatch::Unserved) -> GatewayError {
        if let Some(row) = record.row_mut() {
            row.deployment = unserved.deployment;
            row.attempts = i64::from(unserved.attempts);
        }
        record.fail(&unserved.error).await;
        unserved.error
    }

    /// Embeddings for one or more inputs.
    pub async fn embeddings(&self, request: EmbeddingRequest) -> Result<EmbeddingResponse, GatewayError> {
        let started = Instant::now();
        let model = request.model.clone();
        let entry = match self.model_for(&model, ModelKind::Embedding) {
            Ok(entry) => entry,
            Err(error) => return Err(self.refuse(error, embeddings::ENDPOINT, &model, started).await),
        };
        embeddings::run(embeddings::EmbeddingRun {
            sink: &self.gateway.inner.usage,
            account: &self.account,
            dispatcher: self.gateway.dispatcher(PlacementQuery::default()),
            entry,
            budgets: &self.budgets,
            request,
            started,
        })
        .await
    }

    /// Records a request refused before reaching a model, and hands the error back.
    async fn refuse(&self, error: GatewayError, endpoint: &'static str, model: &str, started: Instant) -> GatewayError {
        self.refuse_with(error, endpoint, model, started, None).await
    }

    /// [`GatewayClient::refuse`] with the guardrails' verdict for the ledger.
    async fn refuse_with(
        &self,
        error: GatewayError,
        endpoint: &'static str,
        model: &str,
        started: Instant,
        guardrail: Option<String>,
    ) -> GatewayError {
        let prefix = if endpoint == embeddings::ENDPOINT {
            "embd"
        } else {
            "chatcmpl"
        };
        let mut row = UsageRecord::pending(chat::new_request_id(prefix), &self.account, model, endpoint);
        row.latency_ms = started.elapsed().as_secs_f64() * 1e3;
        row.status = error.code().to_owned();
        row.guardrail = guardrail;
        self.gateway.inner.usage.write(row, None).await;
        error
    }
}
