//! Prometheus metrics: the recorder, the `/metrics` route, an HTTP middleware that times every request, and the
//! model-level series the gateway records (requests, tokens in and out, latency, time to first token).

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

const HTTP_REQUESTS: &str = "flywheel_http_requests_total";
const HTTP_DURATION: &str = "flywheel_http_request_duration_seconds";
const MODEL_REQUESTS: &str = "flywheel_model_requests_total";
const MODEL_TOKENS: &str = "flywheel_model_tokens_total";
const MODEL_DURATION: &str = "flywheel_model_request_duration_seconds";
const MODEL_TTFT: &str = "flywheel_model_time_to_first_token_seconds";
const MODEL_COST: &str = "flywheel_model_cost_microdollars_total";
const MODEL_RETRIES: &str = "flywheel_model_retries_total";
const LIMIT_REJECTIONS: &str = "flywheel_limit_rejections_total";
const CACHE_LOOKUPS: &str = "flywheel_cache_lookups_total";
const ENGINE_RUNNING: &str = "flywheel_engine_running_requests";
const ENGINE_WAITING: &str = "flywheel_engine_waiting_requests";
const ENGINE_TOKENS: &str = "flywheel_engine_tokens_decoded_total";
const ENGINE_REUSED: &str = "flywheel_engine_prompt_tokens_reused_total";
const ENGINE_SUSPENSIONS: &str = "flywheel_engine_suspensions_total";
const ENGINE_BATCHES: &str = "flywheel_engine_batches_total";

/// How often the embedded engine's state is copied into the metrics.
const ENGINE_SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the process-wide Prometheus recorder; call once at start-up.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)?
        .install_recorder()
}

/// `GET /metrics` in the Prometheus text format.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(move || std::future::ready(handle.render())))
}

/// Middleware recording the count and duration of every HTTP request by route template (never the raw path,
/// which would let clients create unbounded series).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

/// Records one finished model request from its ledger row.
pub(crate) fn record_model_request(row: &crate::UsageRecord) {
    let model = row.model.clone();
    let deployment = row.deployment.clone().unwrap_or_else(|| "none".to_owned());
    metrics::counter!(MODEL_REQUESTS, "model" => model.clone(), "deployment" => deployment.clone(),
        "endpoint" => row.endpoint.clone(), "status" => row.status.clone())
    .increment(1);
    let prompt = u64::try_from(row.prompt_tokens).unwrap_or(0);
    let completion = u64::try_from(row.completion_tokens).unwrap_or(0);
    metrics::counter!(MODEL_TOKENS, "model" => model.clone(), "direction" => "input").increment(prompt);
    metrics::counter!(MODEL_TOKENS, "model" => model.clone(), "direction" => "output").increment(completion);
    metrics::counter!(MODEL_COST, "model" => model.clone()).increment(u64::try_from(row.cost_micros).unwrap_or(0));
    metrics::histogram!(MODEL_DURATION, "model" => model, "deployment" => deployment, "endpoint" => row.endpoint.clone())
        .record(row.latency_ms / 1e3);
    if let Some(cache) = &row.cache {
        metrics::counter!(CACHE_LOOKUPS, "endpoint" => row.endpoint.clone(), "result" => cache.clone()).increment(1);
    }
}

/// Copies an embedded chat model's engine state (requests running and waiting, tokens decoded, prefix reuse,
/// suspensions, batches) into the metrics every second, for as long as the model is loaded. Outside a tokio
/// runtime there is nothing to run the sampler on, and the engine series are absent.
pub(crate) fn watch_engine(model_id: &str, model: std::sync::Weak<inference::ChatModel>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let model_id = model_id.to_owned();
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(ENGINE_SAMPLE_INTERVAL);
        loop {
            ticks.tick().await;
            let Some(model) = model.upgrade() else { return };
            let stats = model.stats();
            drop(model);
            let label = model_id.clone();
            metrics::gauge!(ENGINE_RUNNING, "model" => label.clone()).set(stats.running as f64);
            metrics::gauge!(ENGINE_WAITING, "model" => label.clone()).set(stats.waiting as f64);
            metrics::counter!(ENGINE_TOKENS, "model" => label.clone()).absolute(stats.tokens_decoded);
            metrics::counter!(ENGINE_REUSED, "model" => label.clone()).absolute(stats.prompt_tokens_reused);
            metrics::counter!(ENGINE_SUSPENSIONS, "model" => label.clone()).absolute(stats.suspensions);
            metrics::counter!(ENGINE_BATCHES, "model" => label).absolute(stats.steps);
        }
    });
}

/// Records the time to the first generated token of a chat request.
pub(crate) fn record_time_to_first_token(model: &str, seconds: f64) {
    metrics::histogram!(MODEL_TTFT, "model" => model.to_owned()).record(seconds);
}

/// Records a failed attempt that was retried on another (or the same) deployment.
pub(crate) fn record_retry(model: &str, deployment: &str, code: &'static str) {
    metrics::counter!(MODEL_RETRIES, "model" => model.to_owned(), "deployment" => deployment.to_owned(), "code" => code)
        .increment(1);
}

/// Records a request refused by a rate limit or budget (`rpm`, `tpm`, `budget`).
pub(crate) fn record_limit_rejection(limit: &'static str) {
    metrics::counter!(LIMIT_REJECTIONS, "limit" => limit).increment(1);
}
