//! The model catalog: the models clients can name (ids and aliases), what each costs, and the deployments that
//! serve it. Models come from configuration (`[[models]]` in flywheel.toml) and from the embedded engine, whose
//! models are declared before they load so that clients get "loading" (503) rather than "unknown" (404).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::GatewayError;
use crate::provider::anthropic::AnthropicCompatible;
use crate::provider::fault::{FaultConfig, FaultProvider};
use crate::provider::openai::OpenAiCompatible;
use crate::provider::{ChatProvider, EmbeddingProvider, ProviderKind};
use crate::routing::{DeploymentHealth, RoutingStrategy};

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Chat completions.
    #[default]
    Chat,
    /// Embeddings.
    Embedding,
}

/// Where a model is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum ModelStatus {
    /// Declared, not loaded yet.
    Loading,
    /// Serving.
    Ready,
    /// Loading failed; the reason is shown to clients.
    Failed(String),
}

/// One `[[models]]` entry of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients use.
    pub id: String,
    /// Other names for the same model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Chat or embedding.
    #[serde(default)]
    pub kind: ModelKind,
    /// Prompt plus completion, in tokens; requests asking for more are refused before reaching an upstream.
    pub context_length: Option<u32>,
    /// Price of input tokens, USD per million.
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    /// Price of output tokens, USD per million.
    #[serde(default)]
    pub output_usd_per_mtok: f64,
    /// How a deployment is chosen.
    #[serde(default)]
    pub routing: RoutingStrategy,
    /// Models to try, in order, when every deployment of this one fails.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Where the model runs; may be empty only for an embedded model, which then serves itself.
    #[serde(default)]
    pub deployments: Vec<DeploymentConfig>,
}

/// One upstream serving a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// A name for the ledger and metrics; default `<provider>-<n>`.
    pub name: Option<String>,
    /// Which provider.
    pub provider: ProviderKind,
    /// The upstream's API root, e.g. `http://127.0.0.1:8000/v1` (OpenAI- and Anthropic-compatible providers).
    pub base_url: Option<String>,
    /// The environment variable holding the upstream's API key (keeps secrets out of the file).
    pub api_key_env: Option<String>,
    /// The model's name at the upstream (or the embedded model's id); default: the model's id.
    pub upstream_model: Option<String>,
    /// Share of traffic under weighted routing.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The site (data centre, region) it runs in, for energy- and carbon-aware placement.
    pub site: Option<String>,
    /// Time allowed for a whole answer, or for the first chunk of a stream.
    pub timeout_ms: Option<u64>,
    /// Prices at this deployment, when they differ from the model's (used by `lowest-cost` routing).
    pub input_usd_per_mtok: Option<f64>,
    /// See `input_usd_per_mtok`.
    pub output_usd_per_mtok: Option<f64>,
    /// How a `fault` deployment misbehaves.
    pub fault: Option<FaultConfig>,
}

fn default_weight() -> u32 {
    1
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Prices in micro-dollars per million tokens: money is integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Price {
    /// Input (prompt) tokens.
    pub input_micros_per_mtok: u64,
    /// Output (completion) tokens.
    pub output_micros_per_mtok: u64,
}

impl Price {
    /// From dollars per million tokens; configuration checks that prices are finite and non-negative.
    fn from_usd(input: f64, output: f64) -> Price {
        let micros = |usd: f64| (usd.clamp(0.0, 1e12) * 1e6).round() as u64;
        Price {
            input_micros_per_mtok: micros(input),
            output_micros_per_mtok: micros(output),
        }
    }

    /// The cost of a request in micro-dollars, rounded up so that no request is free by rounding.
    pub fn cost_micros(&self, prompt_tokens: u64, completion_tokens: u64) -> i64 {
        let total = u128::from(prompt_tokens) * u128::from(self.input_micros_per_mtok)
            + u128::from(completion_tokens) * u128::from(self.output_micros_per_mtok);
        i64::try_from(total.div_ceil(1_000_000)).unwrap_or(i64::MAX)
    }
}

/// A model as listed by [`crate::Gateway::models`].
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The id clients use.
    pub id: String,
    /// Other names that reach it.
    pub aliases: Vec<String>,
    /// What the model does.
    pub kind: ModelKind,
    /// Loading, ready or failed.
    pub status: ModelStatus,
    /// Its context window, when known.
    pub context_length: Option<u32>,
    /// Its prices.
    pub price: Price,
    /// Its deployments: name, provider and site.
    pub deployments: Vec<DeploymentInfo>,
    /// The models tried when it fails.
    pub fallbacks: Vec<String>,
}

/// A deployment as listed in [`ModelInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentInfo {
    /// Its name.
    pub name: String,
    /// Its provider.
    pub provider: &'static str,
    /// Its site.
    pub site: Option<String>,
    /// Whether its circuit breaker lets requests through.
    pub healthy: bool,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Chat(Arc<dyn ChatProvider>),
    Embedding(Arc<dyn EmbeddingProvider>),
}

/// Where a deployment's requests go.
pub(crate) enum Target {
    /// A provider built from configuration.
    Ready(Backend),
    /// An embedded model, found by id when a request arrives (it may still be loading).
    Embedded(String),
}

pub(crate) struct Deployment {
    pub(crate) name: String,
    pub(crate) provider: ProviderKind,
    pub(crate) upstream_model: String,
    pub(crate) target: Target,
    pub(crate) weight: u32,
    pub(crate) site: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) price: Price,
    pub(crate) health: DeploymentHealth,
}

#[derive(Clone)]
pub(crate) struct ModelEntry {
    pub(crate) id: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) kind: ModelKind,
    pub(crate) context_length: Option<u32>,
    pub(crate) price: Price,
    pub(crate) strategy: RoutingStrategy,
    pub(crate) fallbacks: Vec<String>,
    pub(crate) deployments: Vec<Arc<Deployment>>,
}

enum Slot {
    Loading,
    Ready(Backend),
    Failed(String),
}

#[derive(Default)]
struct Tables {
    models: BTreeMap<String, Arc<ModelEntry>>,
    aliases: HashMap<String, String>,
    embedded: HashMap<String, Slot>,
}

#[derive(Default)]
pub(crate) struct ModelCatalog {
    tables: RwLock<Tables>,
}

/// Problems in the `[[models]]` configuration, reported at start-up.
#[derive(Debug, thiserror::Error)]
#[error("model '{model}': {message}")]
pub struct ModelConfigError {
    /// The model's id.
    pub model: String,
    /// What is wrong.
    pub message: String,
}

impl ModelCatalog {
    /// Adds the configured models, building their providers; fails on the first inconsistency.
    pub(crate) fn configure(&self, configs: &[ModelConfig]) -> Result<(), ModelConfigError> {
        let client = crate::provider::openai::http_client();
        let mut entries = Vec::new();
        for config in configs {
            entries.push(build_entry(config, &client)?);
        }
        let mut tables = self.write();
        for entry in entries {
            for name in std::iter::once(&entry.id).chain(&entry.aliases) {
                if tables.models.contains_key(name) || tables.aliases.contains_key(name) {
                    return Err(ModelConfigError {
                        model: entry.id.clone(),
                        message: format!("the name '{name}' is used twice"),
                    });
                }
            }
            for alias in &entry.aliases {
                tables.aliases.insert(alias.clone(), entry.id.clone());
            }
            tables.models.insert(entry.id.clone(), Arc::new(entry));
        }
        let known: Vec<String> = tables.models.keys().cloned().collect();
        for entry in tables.models.values() {
            for fallback in &entry.fallbacks {
                if !known.contains(fallback) && !tables.aliases.contains_key(fallback) {
                    return Err(ModelConfigError {
                        model: entry.id.clone(),
                        message: format!("the fallback '{fallback}' is not a configured model"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Announces an embedded model that is still loading. A configured model with the same id keeps its
    /// configuration; otherwise the model serves itself at no charge.
    pub(crate) fn declare_embedded(&self, id: &str, kind: ModelKind) {
        let mut tables = self.write();
        tables.embedded.insert(id.to_owned(), Slot::Loading);
        if !tables.models.contains_key(id) {
            tables
                .models
                .insert(id.to_owned(), Arc::new(unconfigured_embedded_entry(id, kind)));
        }
    }

    pub(crate) fn attach_embedded(&self, id: &str, backend: Backend) {
        let (kind, context_length) = match &backend {
            Backend::Chat(provider) => (ModelKind::Chat, provider.context_length()),
            Backend::Embedding(_) => (ModelKind::Embedding, None),
        };
        let mut tables = self.write();
        tables.embedded.insert(id.to_owned(), Slot::Ready(backend));
        let mut entry = match tables.models.get(id) {
            None => unconfigured_embedded_entry(id, kind),
            // The loaded model knows its window; configuration that set one wins.
            Some(existing) if existing.context_length.is_none() => ModelEntry::clone(existing),
            Some(_) => return,
        };
        entry.context_length = context_length;
        tables.models.insert(id.to_owned(), Arc::new(entry));
    }

    pub(crate) fn fail_embedded(&self, id: &str, reason: String) {
        let mut tables = self.write();
        if let Some(slot) = tables.embedded.get_mut(id) {
            *slot = Slot::Failed(reason);
        }
    }

    /// The model a client's name (id or alias) refers to.
    pub(crate) fn resolve(&self, name: &str) -> Result<Arc<ModelEntry>, GatewayError> {
        let tables = self.read();
        let id = tables.aliases.get(name).map_or(name, String::as_str);
        tables
            .models
            .get(id)
            .cloned()
            .ok_or_else(|| GatewayError::ModelNotFound(name.to_owned()))
    }

    /// The backend of a deployment, or why it cannot serve now.
    pub(crate) fn backend(&self, deployment: &Deployment) -> Result<Backend, GatewayError> {
        match &deployment.target {
            Target::Ready(backend) => Ok(backend.clone()),
            Target::Embedded(id) => match self.read().embedded.get(id) {
                None => Err(GatewayError::ModelUnavailable {
                    model: id.clone(),
                    reason: "no embedded model has this id; check `upstream_model` of the deployment".to_owned(),
                }),
                Some(Slot::Loading) => Err(GatewayError::ModelLoading(id.clone())),
                Some(Slot::Failed(reason)) => Err(GatewayError::ModelUnavailable {
                    model: id.clone(),
                    reason: reason.clone(),
                }),
                Some(Slot::Ready(backend)) => Ok(backend.clone()),
            },
        }
    }

    pub(crate) fn list(&self) -> Vec<ModelInfo> {
        let tables = self.read();
        tables
            .models
            .values()
            .map(|entry| ModelInfo {
                id: entry.id.clone(),
                aliases: entry.aliases.clone(),
                kind: entry.kind,
                status: status(&tables, entry),
                context_length: entry.context_length,
                price: entry.price,
                deployments: entry
                    .deployments
                    .iter()
                    .map(|deployment| DeploymentInfo {
                        name: deployment.name.clone(),
                        provider: deployment.provider.as_str(),
                        site: deployment.site.clone(),
                        healthy: deployment.health.is_closed(),
                    })
                    .collect(),
                fallbacks: entry.fallbacks.clone(),
            })
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        // A panic while holding this lock cannot leave a table half-written, so a poisoned lock is still sound.
        self.tables.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A model is ready when any deployment can serve; loading while an embedded one is loading; failed otherwise.
fn status(tables: &Tables, entry: &ModelEntry) -> ModelStatus {
    let mut loading = false;
    let mut failure = None;
    for deployment in &entry.deployments {
        match &deployment.target {
            Target::Ready(_) => return ModelStatus::Ready,
            Target::Embedded(id) => match tables.embedded.get(id) {
                Some(Slot::Ready(_)) => return ModelStatus::Ready,
                Some(Slot::Loading) => loading = true,
                Some(Slot::Failed(reason)) => failure = Some(reason.clone()),
                None => failure = Some(format!("no embedded model '{id}'")),
            },
        }
    }
    match (loading, failure) {
        (true, _) => ModelStatus::Loading,
        (false, Some(reason)) => ModelStatus::Failed(reason),
        (false, None) => ModelStatus::Failed("the model has no deployments".to_owned()),
    }
}

/// An embedded model nobody configured: it serves itself, free.
fn unconfigured_embedded_entry(id: &str, kind: ModelKind) -> ModelEntry {
    embedded_entry(
        id,
        kind,
        Price::default(),
        RoutingStrategy::default(),
        Vec::new(),
        Vec::new(),
    )
}

fn embedded_entry(
    id: &str,
    kind: ModelKind,
    price: Price,
    strategy: RoutingStrategy,
    aliases: Vec<String>,
    fallbacks: Vec<String>,
) -> ModelEntry {
    ModelEntry {
        id: id.to_owned(),
        aliases,
        kind,
        context_length: None,
        price,
        strategy,
        fallbacks,
        deployments: vec![Arc::new(Deployment {
            name: "embedded".to_owned(),
            provider: ProviderKind::Embedded,
            upstream_model: id.to_owned(),
            target: Target::Embedded(id.to_owned()),
            weight: 1,
            site: None,
            timeout: DEFAULT_TIMEOUT,
            price,
            health: DeploymentHealth::default(),
        })],
    }
}

fn build_entry(
    config: &ModelConfig,
    client: &crate::provider::openai::HttpsClient,
) -> Result<ModelEntry, ModelConfigError> {
    let error = |message: String| ModelConfigError {
        model: config.id.clone(),
        message,
    };
    if config.id.trim().is_empty() {
        return Err(error("the id must not be empty".to_owned()));
    }
    for (what, price) in [
        ("input_usd_per_mtok", config.input_usd_per_mtok),
        ("output_usd_per_mtok", config.output_usd_per_mtok),
    ] {
        if !(price.is_finite() && price >= 0.0) {
            return Err(error(format!("{what} must be a non-negative number")));
        }
    }
    let price = Price::from_usd(config.input_usd_per_mtok, config.output_usd_per_mtok);
    if config.deployments.is_empty() {
        // An embedded model, priced or given fallbacks by configuration.
        return Ok(ModelEntry {
            context_length: config.context_length,
            ..embedded_entry(
                &config.id,
                config.kind,
                price,
                config.routing,
                config.aliases.clone(),
                config.fallbacks.clone(),
            )
        });
    }
    let mut deployments = Vec::new();
    for (index, deployment) in config.deployments.iter().enumerate() {
        let name = deployment
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", deployment.provider.as_str(), index + 1));
        let upstream_model = deployment.upstream_model.clone().unwrap_or_else(|| config.id.clone());
        let target = match deployment.provider {
            ProviderKind::Embedded => Target::Embedded(upstream_model.clone()),
            ProviderKind::Openai | ProviderKind::Anthropic => {
                let base_url = deployment
                    .base_url
                    .as_deref()
                    .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
                    .ok_or_else(|| {
                        error(format!(
                            "deployment '{name}' needs a base_url starting with http:// or https://"
                        ))
                    })?;
                let api_key = match &deployment.api_key_env {
                    None => None,
                    Some(variable) => Some(std::env::var(variable).map_err(|_| {
                        error(format!(
                            "deployment '{name}': the environment variable {variable} is not set"
                        ))
                    })?),
                };
                if deployment.provider == ProviderKind::Anthropic {
                    if config.kind != ModelKind::Chat {
                        return Err(error(format!("deployment '{name}': the anthropic provider only chats")));
                    }
                    let provider = AnthropicCompatible::new(client.clone(), base_url, api_key, config.context_length);
                    Target::Ready(Backend::Chat(Arc::new(provider)))
                } else {
                    let provider = Arc::new(OpenAiCompatible::new(
                        client.clone(),
                        base_url,
                        api_key,
                        config.context_length,
                    ));
                    Target::Ready(match config.kind {
                        ModelKind::Chat => Backend::Chat(provider),
                        ModelKind::Embedding => Backend::Embedding(provider),
                    })
                }
            }
            ProviderKind::Fault => {
                let provider = Arc::new(FaultProvider::new(deployment.fault.clone().unwrap_or_default()));
                Target::Ready(match config.kind {
                    ModelKind::Chat => Backend::Chat(provider),
                    ModelKind::Embedding => Backend::Embedding(provider),
                })
            }
        };
        let deployment_price = match (deployment.input_usd_per_mtok, deployment.output_usd_per_mtok) {
            (None, None) => price,
            (input, output) => Price::from_usd(
                input.unwrap_or(config.input_usd_per_mtok),
                output.unwrap_or(config.output_usd_per_mtok),
            ),
        };
        deployments.push(Arc::new(Deployment {
            name,
            provider: deployment.provider,
            upstream_model,
            target,
            weight: deployment.weight,
            site: deployment.site.clone(),
            timeout: deployment.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis),
            price: deployment_price,
            health: DeploymentHealth::default(),
        }));
    }
    Ok(ModelEntry {
        id: config.id.clone(),
        aliases: config.aliases.clone(),
        kind: config.kind,
        context_length: config.context_length,
        price,
        strategy: config.routing,
        fallbacks: config.fallbacks.clone(),
        deployments,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cost_rounds_up_to_the_next_micro_dollar() {
        let price = Price::from_usd(0.15, 0.6);
        assert_eq!(price.input_micros_per_mtok, 150_000);
        assert_eq!(price.cost_micros(100, 0), 15);
        assert_eq!(price.cost_micros(1, 0), 1);
        assert_eq!(price.cost_micros(0, 0), 0);
        assert_eq!(price.cost_micros(1_000_000, 1_000_000), 750_000);
    }

    fn config(toml_text: &str) -> Vec<ModelConfig> {
        #[derive(Deserialize)]
        struct File {
            models: Vec<ModelConfig>,
        }
        serde_json::from_value::<File>(serde_json::to_value(toml_like(toml_text)).unwrap())
            .unwrap()
            .models
    }

    fn toml_like(json: &str) -> serde_json::Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn aliases_resolve_and_duplicates_and_unknown_fallbacks_are_refused() {
        let catalog = ModelCatalog::default();
        let models = config(
            r#"{"models": [{"id": "a", "aliases": ["b"], "deployments": [{"provider": "fault"}]},
                           {"id": "c", "fallbacks": ["b"], "deployments": [{"provider": "fault"}]}]}"#,
        );
        catalog.configure(&models).unwrap();
        assert_eq!(catalog.resolve("b").unwrap().id, "a");
        assert_eq!(catalog.resolve("zz").err().unwrap().code(), "model_not_found");

        let twice = config(r#"{"models": [{"id": "a", "deployments": [{"provider": "fault"}]}]}"#);
        assert!(
            catalog
                .configure(&twice)
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );

        let dangling =
            config(r#"{"models": [{"id": "x", "fallbacks": ["nope"], "deployments": [{"provider": "fault"}]}]}"#);
        let fresh = ModelCatalog::default();
        assert!(fresh.configure(&dangling).unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn an_openai_deployment_needs_a_url() {
        let models = config(r#"{"models": [{"id": "a", "deployments": [{"provider": "openai"}]}]}"#);
        let error = ModelCatalog::default().configure(&models).unwrap_err();
        assert!(error.to_string().contains("base_url"), "{error}");
    }
}
