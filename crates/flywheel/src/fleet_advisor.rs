//! The gateway's placement advisor, backed by the fleet router: `routing = "fleet"` models go to the
//! deployment at the site the router picks for the request's region, size and SLO class, at this hour's
//! energy price and grid carbon, with the gateway's own in-flight counts as the replicas' load.
//!
//! Gateway deployments meet fleet replicas by site: a deployment with `site = "toronto"` stands for the fleet's
//! replicas of that model at Toronto. A gateway model meets a fleet model by name.
//!
//! Replicas with an `endpoint` are also checked actively: every few seconds their server's `/health` decides
//! whether they are in rotation, and its `/metrics` (vLLM, SGLang, llama.cpp, TGI) gives requests running and
//! queued and KV-cache use, which replace the gateway's own count when higher. Passive failures are the
//! gateway's circuit breakers, which take a failing deployment out of rotation on their own.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fleet::{Fleet, FleetState, Policy, RouteRequest, Router, ServerMetrics};
use gateway::{Candidate, PlacementAdvisor, PlacementQuery, Ranking};
use serde::Serialize;

/// How often each replica's server is checked, and how long one check may take.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Ranks deployments with the fleet router.
pub struct FleetAdvisor {
    router: Router<'static>,
    policy: Policy,
    /// Load, power and the hour's prices, refreshed from the gateway's counts on every decision.
    state: Mutex<FleetState>,
    /// The last active check of each replica, as [`Fleet::replicas`].
    health: RwLock<Vec<ReplicaHealth>>,
    /// Replica indices by model, then site: the fleet replicas a gateway deployment at that site stands for.
    replicas_at: Vec<Vec<Vec<usize>>>,
}

/// What the last check of one replica's server found.
#[derive(Debug, Clone, Default, Serialize)]
struct ReplicaHealth {
    replica: String,
    endpoint: Option<String>,
    /// Whether a check has answered yet; unchecked replicas (no endpoint, or before the first check) count as
    /// healthy.
    checked: bool,
    healthy: bool,
    /// Why the last check failed.
    error: Option<String>,
    metrics: ServerMetrics,
}

impl FleetAdvisor {
    /// An advisor over `fleet` (kept for the life of the process, as the gateway holds the advisor).
    pub fn new(fleet: Fleet, policy: Policy) -> FleetAdvisor {
        let fleet: &'static Fleet = Box::leak(Box::new(fleet));
        let health = fleet
            .replicas
            .iter()
            .map(|replica| ReplicaHealth {
                replica: replica.name.clone(),
                endpoint: replica.endpoint.clone(),
                healthy: true,
                ..ReplicaHealth::default()
            })
            .collect();
        let mut replicas_at = vec![vec![Vec::new(); fleet.sites.len()]; fleet.models.len()];
        for (index, replica) in fleet.replicas.iter().enumerate() {
            replicas_at[replica.model][replica.site].push(index);
        }
        FleetAdvisor {
            router: Router::new(fleet),
            policy,
            state: Mutex::new(FleetState::idle(fleet, unix_now())),
            health: RwLock::new(health),
            replicas_at,
        }
    }

    /// Checks every replica that has an endpoint, all at once, every [`CHECK_INTERVAL`], until the process
    /// ends. Returns at once when no replica has an endpoint.
    pub async fn check_replicas(self: Arc<Self>) {
        let endpoints: Vec<(usize, String)> = self
            .fleet()
            .replicas
            .iter()
            .enumerate()
            .filter_map(|(index, replica)| Some((index, server_root(replica.endpoint.as_deref()?))))
            .collect();
        if endpoints.is_empty() {
            return;
        }
        let client = match reqwest::Client::builder().timeout(CHECK_TIMEOUT).build() {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build the client for replica health checks; replicas stay in rotation");
                return;
            }
        };
        loop {
            let mut checks = tokio::task::JoinSet::new();
            for (index, root) in &endpoints {
                let (client, root, index) = (client.clone(), root.clone(), *index);
                checks.spawn(async move { (index, check(&client, &root).await) });
            }
            while let Some(Ok((index, outcome))) = checks.join_next().await {
                let mut health = self.health.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(entry) = health.get_mut(index) else {
                    continue;
                };
                if entry.checked && entry.healthy != outcome.is_ok() {
                    tracing::warn!(
                        replica = entry.replica,
                        healthy = outcome.is_ok(),
                        "replica health changed"
                    );
                }
                entry.checked = true;
                match outcome {
                    Ok(metrics) => {
                        entry.healthy = true;
                        entry.error = None;
                        entry.metrics = metrics;
                    }
                    Err(error) => {
                        entry.healthy = false;
                        entry.error = Some(error);
                        entry.metrics = ServerMetrics::default();
                    }
                }
            }
            tokio::time::sleep(CHECK_INTERVAL).await;
        }
    }

    fn fleet(&self) -> &'static Fleet {
        self.router.fleet()
    }

    /// The router's view of `query`, or why the fleet cannot route it.
    fn route_request(&self, query: &PlacementQuery) -> Result<RouteRequest, String> {
        let fleet = self.fleet();
        let names = |items: Vec<&str>| items.join(", ");
        let model = fleet.model_index(&query.model).ok_or_else(|| {
            format!(
                "the fleet has no model '{}' (it has {})",
                query.model,
                names(fleet.models.iter().map(|model| model.name.as_str()).collect())
            )
        })?;
        let region = match &query.region {
            None => 0,
            Some(name) => fleet.region_index(name).ok_or_else(|| {
                format!(
                    "x-flywheel-region: the fleet has no user region '{name}' (it has {})",
                    names(fleet.user_regions.iter().map(|region| region.name.as_str()).collect())
                )
            })?,
        };
        let slo = match &query.slo {
            None => 0,
            Some(name) => fleet.slo_index(name).ok_or_else(|| {
                format!(
                    "x-flywheel-slo: the fleet has no SLO class '{name}' (it has {})",
                    names(fleet.slo_classes.iter().map(|(name, _)| name.as_str()).collect())
                )
            })?,
        };
        Ok(RouteRequest {
            model,
            prompt_tokens: query.prompt_tokens,
            output_tokens: query.output_tokens.max(1),
            region,
            slo,
        })
    }

    /// Takes failed replicas out of rotation and raises loads to what their servers report.
    fn apply_health(&self, state: &mut FleetState) {
        let health = self.health.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (load, replica) in state.loads.iter_mut().zip(health.iter()) {
            load.healthy = !replica.checked || replica.healthy;
            if let Some(running) = replica.metrics.running {
                load.decoding = load.decoding.max(running as u32);
            }
            if let Some(waiting) = replica.metrics.waiting {
                load.waiting = waiting as u32;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FleetState> {
        // The state is plain numbers rewritten on every decision; a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The server's root from its OpenAI-compatible base URL (`http://host:8000/v1` serves `/health` at
/// `http://host:8000/health`).
fn server_root(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_owned()
}

/// One check: `/health` must answer 2xx; `/metrics` is read when the server has it.
async fn check(client: &reqwest::Client, root: &str) -> Result<ServerMetrics, String> {
    let response = client
        .get(format!("{root}/health"))
        .send()
        .await
        .map_err(|error| format!("GET {root}/health: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {root}/health answered {}", response.status()));
    }
    let metrics = match client.get(format!("{root}/metrics")).send().await {
        Ok(response) if response.status().is_success() => response.text().await.unwrap_or_default(),
        _ => String::new(),
    };
    Ok(ServerMetrics::parse(&metrics))
}

fn unix_now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1e3
}

impl PlacementAdvisor for FleetAdvisor {
    fn rank(&self, query: &PlacementQuery, candidates: &[Candidate]) -> Ranking {
        let fleet = self.fleet();
        let request = match self.route_request(query) {
            Ok(request) => request,
            // A hint the fleet does not know must not fail the request: the deployments keep their order.
            Err(error) => {
                return Ranking {
                    order: Vec::new(),
                    reason: Some(format!("fleet could not route: {error}")),
                };
            }
        };
        let mut state = self.lock();
        let now = unix_now();
        state.now_s = now;
        state.set_hour(fleet, now);
        // The gateway's in-flight requests at a site are its replicas' load there, spread over them.
        for load in &mut state.loads {
            load.decoding = 0;
            load.waiting = 0;
            load.prefill_free_at_s = now;
        }
        for candidate in candidates {
            let Some(site) = candidate.site.as_deref().and_then(|name| fleet.site_index(name)) else {
                continue;
            };
            let replicas = &self.replicas_at[request.model][site];
            for (position, &replica) in replicas.iter().enumerate() {
                let share = candidate.in_flight / replicas.len() as u32
                    + u32::from((position as u32) < candidate.in_flight % replicas.len() as u32);
                state.loads[replica].decoding += share;
            }
        }
        self.apply_health(&mut state);
        let Some(choice) = self.router.choose(self.policy, &mut state, &request) else {
            return Ranking::default();
        };
        let chosen = &fleet.replicas[choice.replica];
        let chosen_site = &fleet.sites[chosen.site];
        // The chosen site's deployments first, then the others by their network distance to the user.
        let mut order: Vec<(f64, usize)> = candidates
            .iter()
            .enumerate()
            .filter_map(|(index, candidate)| {
                let site = fleet.site_index(candidate.site.as_deref()?)?;
                let rank = if site == chosen.site {
                    -1.0
                } else {
                    fleet.latency_ms[request.region][site]
                };
                Some((rank, index))
            })
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let price = state.site_price[chosen.site];
        let carbon = state.site_carbon[chosen.site];
        Ranking {
            order: order.into_iter().map(|(_, index)| index).collect(),
            reason: Some(format!(
                "fleet {}: {} for {} (est. TTFT {:.0} ms, TPOT {:.1} ms, {:.0} USD/MWh, {:.0} gCO2/kWh{})",
                self.policy.name(),
                chosen_site.name,
                fleet.user_regions[request.region].name,
                choice.ttft_ms,
                choice.tpot_ms,
                price,
                carbon,
                if choice.meets_slo { "" } else { ", SLO at risk" }
            )),
        }
    }

    fn explain(&self, query: &PlacementQuery) -> Result<serde_json::Value, String> {
        let request = self.route_request(query)?;
        let fleet = self.fleet();
        let mut state = self.lock();
        let now = unix_now();
        state.now_s = now;
        state.set_hour(fleet, now);
        self.apply_health(&mut state);
        let explanation = self.router.explain(self.policy, &mut state, &request);
        let mut body = serde_json::to_value(explanation).map_err(|error| error.to_string())?;
        let health = self.health.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let health = serde_json::to_value(&*health).map_err(|error| error.to_string())?;
        if let Some(object) = body.as_object_mut() {
            object.insert("health".to_owned(), health);
        }
        Ok(body)
    }
}
