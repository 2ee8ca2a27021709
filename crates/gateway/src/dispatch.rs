//! Running one request against a model's deployments: builds the plan (the model's deployments in routing
//! order, then each fallback model's), and walks it until an attempt succeeds, moving on at once after a
//! retryable failure and backing off with jitter before trying a deployment a second time. Deadlines, circuit
//! breakers and in-flight counts are kept here; what an attempt does is the caller's closure.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::GatewayError;
use crate::metrics;
use crate::models::{Backend, Deployment, ModelCatalog, ModelEntry};
use crate::routing::{PlacementAdvisor, PlacementQuery, RouteOption, RoutingConfig, order};

/// Counts a request in flight on a deployment until dropped.
pub(crate) struct InFlight(Arc<Deployment>);

impl InFlight {
    fn new(deployment: Arc<Deployment>) -> InFlight {
        deployment.health.begin();
        InFlight(deployment)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.health.end();
    }
}

/// A successful attempt.
pub(crate) struct Served<T> {
    pub(crate) value: T,
    pub(crate) deployment: Arc<Deployment>,
    pub(crate) in_flight: InFlight,
    pub(crate) attempts: u32,
    /// Where the request went and why, for the `x-flywheel-route` header.
    pub(crate) route: String,
}

/// Every attempt failed: the error to report (the last one), where it happened and how many attempts were made.
pub(crate) struct Unserved {
    pub(crate) error: GatewayError,
    pub(crate) deployment: Option<String>,
    pub(crate) attempts: u32,
}

pub(crate) struct Dispatcher<'a> {
    pub(crate) catalog: &'a ModelCatalog,
    pub(crate) routing: &'a RoutingConfig,
    pub(crate) advisor: Option<Arc<dyn PlacementAdvisor>>,
    /// What the advisor is told of the request.
    pub(crate) query: PlacementQuery,
}

impl Dispatcher<'_> {
    /// The deployments to try, in order, and the advisor's reason for the requested model's first choice.
    fn plan(&self, entry: &Arc<ModelEntry>) -> (Vec<Arc<Deployment>>, Option<String>) {
        let mut models = vec![Arc::clone(entry)];
        for fallback in &entry.fallbacks {
            if let Ok(model) = self.catalog.resolve(fallback)
                && !models.iter().any(|known| known.id == model.id)
            {
                models.push(model);
            }
        }
        let mut plan = Vec::new();
        let mut first_reason = None;
        for (position, model) in models.into_iter().enumerate() {
            let options: Vec<RouteOption> = model
                .deployments
                .iter()
                .map(|deployment| RouteOption {
                    deployment: &deployment.name,
                    site: deployment.site.as_deref(),
                    weight: deployment.weight,
                    in_flight: deployment.health.in_flight(),
                    latency_ms: deployment.health.latency_ms(),
                    cost_micros_per_mtok: deployment.price.input_micros_per_mtok
                        + deployment.price.output_micros_per_mtok,
                })
                .collect();
            let query = PlacementQuery {
                model: model.id.clone(),
                ..self.query.clone()
            };
            let (indices, reason) = order(model.strategy, &query, &options, self.advisor.as_deref());
            if position == 0 {
                first_reason = reason;
            }
            for index in indices {
                plan.push(Arc::clone(&model.deployments[index]));
            }
        }
        (plan, first_reason)
    }

    /// Runs `attempt` on deployments until one succeeds or the plan is exhausted. `attempt` gets the backend
    /// and the deployment (whose `upstream_model` names the model there) and must finish within the
    /// deployment's timeout.
    pub(crate) async fn run<T, F, Fut>(&self, entry: &Arc<ModelEntry>, mut attempt: F) -> Result<Served<T>, Unserved>
    where
        F: FnMut(Backend, Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, GatewayError>>,
    {
        let (plan, reason) = self.plan(entry);
        let total = plan.len().max(1 + self.routing.retries as usize);
        // Deployments that cannot serve at all now (loading, failed to load) are not worth a retry.
        let mut unavailable = vec![false; plan.len()];
        let mut last_error = None;
        let mut last_deployment = None;
        let mut attempts = 0u32;
        for step in 0..total {
            if plan.is_empty() || unavailable.iter().all(|&skip| skip) {
                break;
            }
            let index = step % plan.len();
            if unavailable[index] {
                continue;
            }
            let deployment = &plan[index];
            let pass = u32::try_from(step / plan.len()).unwrap_or(u32::MAX);
            if pass > 0 && index == 0 {
                tokio::time::sleep(self.routing.backoff(pass)).await;
            }
            if !deployment.health.try_acquire(Instant::now()) {
                last_error.get_or_insert_with(|| GatewayError::NoHealthyDeployment(entry.id.clone()));
                continue;
            }
            let backend = match self.catalog.backend(deployment) {
                Ok(backend) => backend,
                Err(error) => {
                    deployment.health.record_neutral();
                    unavailable[index] = true;
                    last_error = Some(error);
                    continue;
                }
            };
            attempts += 1;
            last_deployment = Some(deployment.name.clone());
            let in_flight = InFlight::new(Arc::clone(deployment));
            let started = Instant::now();
            let outcome = match tokio::time::timeout(deployment.timeout, attempt(backend, Arc::clone(deployment))).await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(GatewayError::upstream_timeout(format!(
                    "no answer from deployment '{}' within {} ms",
                    deployment.name,
                    deployment.timeout.as_millis()
                ))),
            };
            match outcome {
                Ok(value) => {
                    deployment.health.record_success(started.elapsed());
                    let route = route_description(deployment, attempts, index == 0, reason.as_deref(), &plan);
                    return Ok(Served {
                        value,
                        deployment: Arc::clone(deployment),
                        in_flight,
                        attempts,
                        route,
                    });
                }
                Err(error) if error.is_retryable() => {
                    deployment.health.record_failure(Instant::now(), self.routing);
                    metrics::record_retry(&entry.id, &deployment.name, error.code());
                    tracing::warn!(model = entry.id, deployment = deployment.name, %error, "attempt failed");
                    last_error = Some(error);
                }
                Err(error) => {
                    deployment.health.record_neutral();
                    return Err(Unserved {
                        error,
                        deployment: last_deployment,
                        attempts,
                    });
                }
            }
        }
        Err(Unserved {
            error: last_error.unwrap_or_else(|| GatewayError::NoHealthyDeployment(entry.id.clone())),
            deployment: last_deployment,
            attempts,
        })
    }
}

/// `deployment=...; site=...; attempts=N` and why: the advisor's reason when its first choice served, or which
/// choice it fell back from.
fn route_description(
    deployment: &Deployment,
    attempts: u32,
    first_choice: bool,
    reason: Option<&str>,
    plan: &[Arc<Deployment>],
) -> String {
    let mut route = format!("deployment={}", deployment.name);
    if let Some(site) = &deployment.site {
        route.push_str(&format!("; site={site}"));
    }
    route.push_str(&format!("; attempts={attempts}"));
    match (first_choice, reason, plan.first()) {
        (true, Some(reason), _) => route.push_str(&format!("; {reason}")),
        (false, _, Some(first)) => route.push_str(&format!("; fallback from {}", first.name)),
        _ => {}
    }
    route
}
