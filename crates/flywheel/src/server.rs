//! Wires the crates into one HTTP server: opens the database, declares and loads the embedded models and the
//! catalog in the background, merges every crate's router, and shuts down cleanly on SIGINT or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use gateway::{Gateway, ModelKind};
use serde::Serialize;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::models::{CHAT_MODEL_ID, EMBEDDING_MODEL_ID, EmbeddedModel, Kind};
/// The tenant the storefront's own model calls are accounted to in the ledger.
const STOREFRONT_TENANT: &str = "storefront";

#[derive(Clone)]
struct Readiness {
    gateway: Gateway,
    storefront: commerce::Storefront,
}

/// Every key flywheel writes in Redis starts with this.
const REDIS_PREFIX: &str = "flywheel";

/// Runs the server until a shutdown signal.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let embedded = if settings.embedded_models {
        let embedded = crate::models::embedded_models(&settings.models_dir)?;
        let built_in: Vec<&Path> = embedded
            .iter()
            .filter(|model| model.built_in)
            .map(|model| model.path.as_path())
            .collect();
        check_models_present(&settings.models_dir, &built_in)?;
        embedded
    } else {
        Vec::new()
    };

    let db = crate::open_database(settings.database_url.as_deref(), &settings.data_dir).await?;
    tracing::info!(database = db.location(), "opened database");
    let shared = match &settings.redis_url {
        Some(url) => {
            let counters = store::SharedCounters::connect(url, REDIS_PREFIX).await?;
            tracing::info!(
                redis = counters.location(),
                "rate limits and budgets are shared through Redis"
            );
            Some(counters)
        }
        None => None,
    };
    let gateway_config = gateway::GatewayConfig {
        master_key: settings.master_key.clone(),
        models: settings.models.clone(),
        routing: settings.routing,
        shared,
        traces: settings.otlp_endpoint.is_some(),
    };
    let gateway = Gateway::open_with(db.clone(), gateway_config)
        .await
        .context("preparing the gateway")?;
    let mut fleet_router = None;
    if let Some(path) = &settings.fleet {
        let fleet = fleet::Fleet::read(path)?;
        tracing::info!(
            fleet = fleet.name,
            sites = fleet.sites.len(),
            policy = settings.fleet_policy.name(),
            "fleet routing on for models with routing = \"fleet\""
        );
        let advisor = std::sync::Arc::new(crate::fleet_advisor::FleetAdvisor::new(fleet, settings.fleet_policy));
        tokio::spawn(std::sync::Arc::clone(&advisor).check_replicas());
        gateway.set_placement_advisor(Arc::clone(&advisor) as Arc<dyn gateway::PlacementAdvisor>);
        fleet_router = Some(advisor);
    }
    if gateway.auth_enabled() {
        tracing::info!("auth on: requests need the master key or a tenant's virtual key");
    } else {
        tracing::warn!("auth off: no master key set, so the API and the admin API are open to anyone who can connect");
    }
    let metrics = gateway::metrics::install_recorder().context("installing the metrics recorder")?;
    let storefront = if settings.embedded_models {
        for model in &embedded {
            let kind = match model.kind {
                Kind::Chat => ModelKind::Chat,
                Kind::Embedding => ModelKind::Embedding,
            };
            gateway.declare_model(&model.id, kind);
        }
        spawn_model_loading(&settings, &gateway, embedded);
        commerce::Storefront::new()
            .with_assistant(commerce::ProductAssistant::new(
                gateway.client(STOREFRONT_TENANT).for_feature("product-assistant"),
                CHAT_MODEL_ID,
            ))
            .with_embedder(commerce::TextEmbedder::new(
                gateway.client(STOREFRONT_TENANT).for_feature("search"),
                EMBEDDING_MODEL_ID,
            ))
            .with_shopping_assistant(commerce::ShoppingAssistant::new(
                gateway.client(STOREFRONT_TENANT).for_feature("shopping-assistant"),
                CHAT_MODEL_ID,
            ))
            .with_listing_writer(commerce::ListingWriter::new(
                gateway.client(STOREFRONT_TENANT).for_feature("listing-writer"),
                CHAT_MODEL_ID,
            ))
    } else {
        tracing::info!("embedded models off: serving only the configured models");
        commerce::Storefront::new()
    };
    let catalog_store = commerce::CatalogStore::open(db.clone())
        .await
        .context("preparing the catalog tables")?;
    let ads = Arc::new(
        commerce::ads::Ads::open(db.clone(), commerce::ads::auction::AuctionRules::default())
            .await
            .context("preparing the ads tables")?,
    );
    let events = commerce::ShopperEvents::open(db.clone())
        .await
        .context("preparing the shopper events table")?;
    let carts = commerce::Carts::open(db.clone())
        .await
        .context("preparing the carts table")?;
    let loop_fleet = crate::loop_source::loop_fleet(settings.fleet.as_deref(), &settings.data_dir)
        .context("reading the fleet the loop plans on")?;
    let mut loop_source =
        crate::loop_source::LoopSource::new(db.clone(), gateway.clone(), Arc::clone(&events), Some(loop_fleet))
            .with_ads(Arc::clone(&ads));
    if let Some(router) = fleet_router {
        loop_source = loop_source.with_router(router);
        tokio::spawn(loop_source.clone().keep_router_on_plan());
    }
    let console = web::Console::new(Arc::new(loop_source), gateway.clone()).with_ads(Arc::clone(&ads));
    let storefront = storefront
        .with_ads(Arc::clone(&ads))
        .with_events(events)
        .with_carts(carts)
        .with_merchandising(
            commerce::Merchandising::open(db.clone())
                .await
                .context("preparing the merchandising table")?,
        );
    let agents = start_agents(&settings, &db, &gateway).await?;
    let console = console.with_agents(agents.journal().clone());
    spawn_catalog_sync(
        &settings,
        &storefront,
        catalog_store.clone(),
        settings.embedded_models.then(|| gateway.clone()),
    );

    let readiness = Readiness {
        gateway: gateway.clone(),
        storefront: storefront.clone(),
    };
    let health = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(readiness);
    let app = Router::new()
        .merge(gateway::router(
            gateway.clone(),
            gateway::HttpOptions {
                max_body_bytes: settings.max_body_bytes,
            },
        ))
        .merge(gateway::admin_router(
            gateway.clone(),
            commerce::admin_routes(storefront.clone(), catalog_store, gateway.clone())
                .merge(commerce::ads::admin_routes(ads, storefront.clone(), gateway.clone())),
        ))
        .merge(commerce::router(storefront.clone()))
        .merge(commerce::seller_router(
            storefront.clone(),
            gateway.clone(),
            CHAT_MODEL_ID,
        ))
        .merge(agents::router(agents.clone(), gateway.clone()))
        .merge(agents::mcp_router(agents, gateway.clone()))
        .merge(business_pages(&gateway, &storefront))
        .merge(web::console_router(console))
        .merge(web::router(storefront))
        .merge(health)
        .merge(gateway::metrics::metrics_router(metrics))
        .route_layer(axum::middleware::from_fn(gateway::metrics::track_http))
        .layer(TraceLayer::new_for_http());

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!("listening on http://{address}");
    crate::serve::serve(listener, app, shutdown_signal()).await;
    tracing::info!("in-flight requests finished; closing the database");
    gateway.ledger().flush().await;
    drop(gateway);
    db.close().await;
    tracing::info!("flywheel stopped");
    Ok(())
}

/// The agents runtime: its journal in the database, the retail store in the data directory (seeded with the
/// demo store), the retail service agent, every spec in `<data-dir>/agents`, and the runs a previous process
/// left unfinished, resumed.
async fn start_agents(settings: &Settings, db: &store::Database, gateway: &Gateway) -> anyhow::Result<agents::Runtime> {
    let journal = agents::Journal::open(db.clone())
        .await
        .context("preparing the agent session tables")?;
    let runtime = agents::Runtime::new(journal, Arc::new(agents::GatewayModels::new(gateway.clone())));
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
    let store_file = settings.data_dir.join("retail-store.json");
    let store = agents::retail::open_or_seed(&store_file)?;
    runtime.add_toolset(
        agents::retail::TOOLSET,
        Arc::new(agents::retail::RetailToolset::saved_to(
            Arc::new(std::sync::Mutex::new(store)),
            &store_file,
        )),
    );
    runtime.add_agent(agents::retail::service_agent(CHAT_MODEL_ID, agents::retail::POLICY))?;
    let specs_dir = settings.data_dir.join("agents");
    if let Ok(entries) = std::fs::read_dir(&specs_dir) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let spec = agents::AgentSpec::load(&path)?;
            let name = spec.name.clone();
            runtime
                .add_agent(spec)
                .with_context(|| format!("loading the agent in {}", path.display()))?;
            tracing::info!(agent = %name, spec = %path.display(), "loaded agent");
        }
    }
    let resumer = runtime.clone();
    let models = gateway.clone();
    tokio::spawn(async move {
        // The unfinished runs need their models, which load in the background.
        while !models.is_ready() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        match resumer.resume_interrupted().await {
            Ok(0) => {}
            Ok(resumed) => tracing::info!(resumed, "resumed agent runs a previous process left unfinished"),
            Err(error) => tracing::error!(%error, "could not resume the unfinished agent runs"),
        }
    });
    Ok(runtime)
}

fn check_models_present(models_dir: &Path, paths: &[&Path]) -> anyhow::Result<()> {
    let missing: Vec<String> = paths
        .iter()
        .filter(|path| !path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "embedded models not found: {}\n  fetch them with: scripts/fetch-models {}",
        missing.join(", "),
        models_dir.display()
    )
}

/// Loads every embedded model in the background, each chat model with its own worker and KV cache. An added
/// model whose file is missing or broken is marked failed (503 for it) while the others serve.
fn spawn_model_loading(settings: &Settings, gateway: &Gateway, embedded: Vec<EmbeddedModel>) {
    let chat_options = inference::ChatModelOptions {
        threads: settings.threads,
        context_length: settings.context_length,
        max_sequences: settings.max_sequences,
        kv_cache_tokens: settings.kv_cache_tokens,
        ..inference::ChatModelOptions::default()
    };
    for model in embedded {
        match model.kind {
            Kind::Chat => {
                let options = chat_options.clone();
                load_model_in_background(
                    gateway,
                    model.id,
                    model.path,
                    move |path| {
                        let model = inference::ChatModel::load(path, options)?;
                        let info = model.info();
                        let summary = format!(
                            "context {} tokens, {} sequences in a {}-token KV cache",
                            info.context_length, info.max_sequences, info.kv_cache_tokens
                        );
                        Ok((summary, model))
                    },
                    Gateway::serve_embedded_chat,
                );
            }
            Kind::Embedding => load_model_in_background(
                gateway,
                model.id,
                model.path,
                |path| {
                    let embedder = inference::Embedder::load(path, inference::EmbedderOptions::default())?;
                    Ok((format!("{} dimensions", embedder.info().dimensions), embedder))
                },
                Gateway::serve_embedded_embedder,
            ),
        }
    }
}

/// The advertiser and seller pages change the store with no key to show, so they are served only while auth is
/// off; with a master key, the admin API does the same.
fn business_pages(gateway: &Gateway, storefront: &commerce::Storefront) -> Router {
    if gateway.auth_enabled() {
        Router::new()
    } else {
        web::business_router(storefront.clone())
    }
}

/// How often the server looks for catalog imports made by another process (`flywheel catalog import`).
const CATALOG_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Imports the configured product file (or the demo catalog into an empty database), then keeps the
/// storefront serving the database's catalog: each new version is indexed, and, when `embedder_gateway` serves
/// the embedding model, its products are embedded (or their vectors read from the vector cache) for dense and
/// hybrid search.
fn spawn_catalog_sync(
    settings: &Settings,
    storefront: &commerce::Storefront,
    store: commerce::CatalogStore,
    embedder_gateway: Option<Gateway>,
) {
    let vector_dir = settings.vector_cache_dir.clone();
    let seed = settings.catalog.clone();
    let storefront = storefront.clone();
    tokio::spawn(async move {
        if let Err(error) = seed_catalog(&store, seed.as_deref()).await {
            tracing::error!(%error, "failed to import the catalog");
            if store.count().await.unwrap_or_default() == 0 {
                storefront.fail(error.to_string());
                return;
            }
        }
        let mut embedder_ready = None;
        // A catalog version whose vectors failed is not embedded again every poll; the next version is.
        let mut vectors_failed_for = None;
        loop {
            let started = Instant::now();
            match storefront.sync(&store).await {
                Ok(Some(summary)) => tracing::info!(
                    products = summary.products,
                    version = storefront.catalog_version(),
                    seconds = started.elapsed().as_secs_f64(),
                    "loaded catalog and built the search index"
                ),
                Ok(None) => {}
                Err(error) => tracing::error!(%error, "failed to load the catalog"),
            }
            if let Some(gateway) = &embedder_gateway
                && storefront.is_ready()
                && !storefront.has_vectors()
                && vectors_failed_for != Some(storefront.catalog_version())
            {
                if embedder_ready.is_none() {
                    embedder_ready = Some(embedding_model_ready(gateway).await);
                }
                if embedder_ready == Some(true) && !build_vectors(&storefront, &vector_dir).await {
                    vectors_failed_for = Some(storefront.catalog_version());
                }
            }
            tokio::time::sleep(CATALOG_POLL).await;
        }
    });
}

/// Imports `path` into the catalog, or the built-in demo catalog when there is no path and the catalog is empty.
async fn seed_catalog(store: &commerce::CatalogStore, path: Option<&Path>) -> anyhow::Result<()> {
    let (file, name) = match path {
        Some(path) => (
            tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?,
            path.display().to_string(),
        ),
        None if store.count().await? == 0 => (commerce::DEMO_CATALOG.to_vec(), "the built-in demo catalog".to_owned()),
        None => return Ok(()),
    };
    let started = Instant::now();
    let imported =
        commerce::import_catalog(store, &file, None, &commerce::FieldMapping::default(), false, &name).await?;
    for row in &imported.rejected {
        tracing::warn!(catalog = %name, line = row.line, reason = %row.reason, "catalog row skipped");
    }
    tracing::info!(
        catalog = %name,
        inserted = imported.inserted,
        updated = imported.updated,
        unchanged = imported.unchanged,
        rejected = imported.rejected.len(),
        seconds = started.elapsed().as_secs_f64(),
        "imported catalog"
    );
    Ok(())
}

/// Builds the served catalog's product vectors; false if that failed.
async fn build_vectors(storefront: &commerce::Storefront, vector_dir: &Path) -> bool {
    let started = Instant::now();
    let mut logged = 0;
    let progress = |done: usize, total: usize| {
        // A line per quarter, so a first start on a large catalog shows it is moving.
        if done * 4 >= (logged + 1) * total {
            logged = done * 4 / total.max(1);
            tracing::info!(done, total, "embedding products");
        }
    };
    match storefront.build_vectors(Some(vector_dir), progress).await {
        Ok(summary) => {
            tracing::info!(
                products = summary.products,
                dimensions = summary.dimensions,
                from_cache = summary.from_cache,
                seconds = started.elapsed().as_secs_f64(),
                "product vectors ready: hybrid search on"
            );
            true
        }
        Err(error) => {
            tracing::error!(%error, "could not build the product vectors; search stays keyword-only");
            false
        }
    }
}

/// Waits while the embedding model loads; false if it failed.
async fn embedding_model_ready(gateway: &Gateway) -> bool {
    loop {
        let status = gateway
            .models()
            .into_iter()
            .find(|model| model.id == EMBEDDING_MODEL_ID)
            .map(|model| model.status);
        match status {
            Some(gateway::ModelStatus::Ready) => return true,
            Some(gateway::ModelStatus::Loading) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            _ => return false,
        }
    }
}

/// Loads a model on the blocking pool, then serves it (or marks it failed) under `id`. `load` also returns a
/// short description of what was loaded, for the log.
fn load_model_in_background<M: Send + 'static>(
    gateway: &Gateway,
    id: String,
    path: PathBuf,
    load: impl FnOnce(&Path) -> Result<(String, M), inference::InferenceError> + Send + 'static,
    serve: fn(&Gateway, &str, M),
) {
    let gateway = gateway.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        match load(&path) {
            Ok((description, model)) => {
                tracing::info!(
                    model = %id,
                    path = %path.display(),
                    seconds = started.elapsed().as_secs_f64(),
                    "loaded model ({description})"
                );
                serve(&gateway, &id, model);
            }
            Err(error) => {
                tracing::error!(model = %id, %error, "failed to load model");
                gateway.fail_model(&id, error.to_string());
            }
        }
    });
}

#[derive(Serialize)]
struct ReadyReport {
    ready: bool,
    models: Vec<gateway::ModelInfo>,
    catalog: &'static str,
    /// `hybrid` once the product vectors are built, `keyword` until then (readiness does not wait for them).
    search: &'static str,
}

/// 200 once every model and the catalog are loaded, 503 before (or if one failed).
async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, Json<ReadyReport>) {
    let catalog_ready = readiness.storefront.is_ready();
    let ready = catalog_ready && readiness.gateway.is_ready();
    let report = ReadyReport {
        ready,
        models: readiness.gateway.models(),
        catalog: if catalog_ready { "ready" } else { "loading" },
        search: if readiness.storefront.has_vectors() {
            "hybrid"
        } else {
            "keyword"
        },
    };
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(report),
    )
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
