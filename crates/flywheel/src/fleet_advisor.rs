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

use fleet::{Fleet, FleetState, LivePlacement, Placement, Policy, RouteRequest, Router, ServerMetrics};
use gateway::{Candidate, PlacementAdvisor, PlacementQuery, Ranking};
use serde::Serialize;

/// How often each replica's server is checked, and how long one check may take.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Ranks deployments with the fleet router.
pub struct FleetAdvisor {
    policy: Policy,
    /// The fleet as its file describes it: the placement until a plan is adopted, and where placed replicas
    /// answer.
    file_fleet: Fleet,
    /// The placement routed over and its load, replaced together when a plan is adopted.
    live: Mutex<Live>,
    /// The last active check of each server, one per distinct endpoint of the file's replicas.
    health: RwLock<Vec<EndpointHealth>>,
}

/// What the router routes over now.
struct Live {
    router: Router,
    /// Load, power and the hour's prices, refreshed from the gateway's counts on every decision.
    state: FleetState,
    /// Replica indices by model, then site: the fleet replicas a gateway deployment at that site stands for.
    replicas_at: Vec<Vec<Vec<usize>>>,
    /// Each replica's server in `health`, when it has an endpoint.
    server_of: Vec<Option<usize>>,
    placement: LivePlacement,
}

/// What the last check of one server found.
#[derive(Debug, Clone, Default)]
struct EndpointHealth {
    /// The server's root, where `/health` and `/metrics` answer.
    root: String,
    /// Whether a check has answered yet; unchecked servers count as healthy.
    checked: bool,
    healthy: bool,
    /// Why the last check failed.
    error: Option<String>,
    metrics: ServerMetrics,
}

/// One replica's health as the debug endpoint shows it.
#[derive(Serialize)]
struct ReplicaHealth<'a> {
    replica: &'a str,
    endpoint: Option<&'a str>,
    checked: bool,
    healthy: bool,
    error: Option<&'a str>,
    metrics: Option<&'a ServerMetrics>,
}

impl Live {
    fn new(fleet: Fleet, servers: &[EndpointHealth], placement: LivePlacement) -> Live {
        let mut replicas_at = vec![vec![Vec::new(); fleet.sites.len()]; fleet.models.len()];
        for (index, replica) in fleet.replicas.iter().enumerate() {
            replicas_at[replica.model][replica.site].push(index);
        }
        let server_of = fleet
            .replicas
            .iter()
            .map(|replica| {
                let root = server_root(replica.endpoint.as_deref()?);
                servers.iter().position(|server| server.root == root)
            })
            .collect();
        let state = FleetState::idle(&fleet, unix_now());
        Live {
            router: Router::new(Arc::new(fleet)),
            state,
            replicas_at,
            server_of,
            placement,
        }
    }
}

impl FleetAdvisor {
    /// An advisor over `fleet`, routing over the replicas its file gives until a plan is adopted.
    pub fn new(fleet: Fleet, policy: Policy) -> FleetAdvisor {
        let mut servers: Vec<EndpointHealth> = Vec::new();
        for endpoint in fleet.replicas.iter().filter_map(|replica| replica.endpoint.as_deref()) {
            let root = server_root(endpoint);
            if !servers.iter().any(|server| server.root == root) {
                servers.push(EndpointHealth {
                    root,
                    healthy: true,
                    ..EndpointHealth::default()
                });
            }
        }
        let placement = LivePlacement {
            source: "fleet file",
            since: jiff::Timestamp::now().to_string(),
            basis: String::new(),
            replicas: fleet.replica_counts(),
        };
        FleetAdvisor {
            policy,
            live: Mutex::new(Live::new(fleet.clone(), &servers, placement)),
            file_fleet: fleet,
            health: RwLock::new(servers),
        }
    }

    /// Puts a plan's placement in service: from the next request on, the router routes over the placed
    /// replicas (models the plan does not place keep the file's). Returns whether the placement changed.
    pub fn adopt(&self, placements: &[Placement], basis: &str) -> Result<bool, fleet::FleetError> {
        let placed = self.file_fleet.with_placements(placements)?;
        let replicas = placed.replica_counts();
        let mut live = self.lock();
        if live.placement.source == "plan" && live.placement.replicas == replicas {
            live.placement.basis = basis.to_owned();
            return Ok(false);
        }
        let placement = LivePlacement {
            source: "plan",
            since: jiff::Timestamp::now().to_string(),
            basis: basis.to_owned(),
            replicas,
        };
        let health = self.health.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        *live = Live::new(placed, &health, placement);
        Ok(true)
    }

    /// The placement the router routes over now.
    pub fn placement(&self) -> LivePlacement {
        self.lock().placement.clone()
    }

    /// Checks every server the fleet file names, all at once, every [`CHECK_INTERVAL`], until the process
    /// ends. Returns at once when no replica has an endpoint.
    pub async fn check_replicas(self: Arc<Self>) {
        let roots: Vec<String> = self
            .health
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|server| server.root.clone())
            .collect();
        if roots.is_empty() {
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
            for (index, root) in roots.iter().enumerate() {
                let (client, root) = (client.clone(), root.clone());
                checks.spawn(async move { (index, check(&client, &root).await) });
            }
            while let Some(Ok((index, outcome))) = checks.join_next().await {
                let mut health = self.health.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(entry) = health.get_mut(index) else {
                    continue;
                };
                if entry.checked && entry.healthy != outcome.is_ok() {
                    tracing::warn!(server = entry.root, healthy = outcome.is_ok(), "replica health changed");
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

    /// The router's view of `query`, or why the fleet cannot route it.
    fn route_request(fleet: &Fleet, query: &PlacementQuery) -> Result<RouteRequest, String> {
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

    /// Takes replicas whose server failed out of rotation and raises loads to what their servers report.
    fn apply_health(&self, live: &mut Live) {
        let health = self.health.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (load, server) in live.state.loads.iter_mut().zip(&live.server_of) {
            let Some(server) = server.and_then(|index| health.get(index)) else {
                load.healthy = true;
                continue;
            };
            load.healthy = !server.checked || server.healthy;
            if let Some(running) = server.metrics.running {
                load.decoding = load.decoding.max(running as u32);
            }
            if let Some(waiting) = server.metrics.waiting {
                load.waiting = waiting as u32;
            }
        }
    }

    fn replica_health(&self, live: &Live) -> Result<serde_json::Value, String> {
        let health = self.health.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let replicas: Vec<ReplicaHealth<'_>> = live
            .router
            .fleet()
            .replicas
            .iter()
            .zip(&live.server_of)
            .map(|(replica, server)| {
                let server = server.and_then(|index| health.get(index));
                ReplicaHealth {
                    replica: &replica.name,
                    endpoint: replica.endpoint.as_deref(),
                    checked: server.is_some_and(|server| server.checked),
                    healthy: server.is_none_or(|server| !server.checked || server.healthy),
                    error: server.and_then(|server| server.error.as_deref()),
                    metrics: server.map(|server| &server.metrics),
                }
            })
            .collect();
        serde_json::to_value(replicas).map_err(|error| error.to_string())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        // The state is plain numbers rewritten on every decision; a panic elsewhere cannot corrupt it.
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let mut guard = self.lock();
        let live = &mut *guard;
        let request = match Self::route_request(live.router.fleet(), query) {
            Ok(request) => request,
            // A hint the fleet does not know must not fail the request: the deployments keep their order.
            Err(error) => {
                return Ranking {
                    order: Vec::new(),
                    reason: Some(format!("fleet could not route: {error}")),
                };
            }
        };
        let now = unix_now();
        live.state.now_s = now;
        live.state.set_hour(live.router.fleet(), now);
        // The gateway's in-flight requests at a site are its replicas' load there, spread over them.
        for load in &mut live.state.loads {
            load.decoding = 0;
            load.waiting = 0;
            load.prefill_free_at_s = now;
        }
        for candidate in candidates {
            let Some(site) = candidate
                .site
                .as_deref()
                .and_then(|name| live.router.fleet().site_index(name))
            else {
                continue;
            };
            let replicas = &live.replicas_at[request.model][site];
            for (position, &replica) in replicas.iter().enumerate() {
                let share = candidate.in_flight / replicas.len() as u32
                    + u32::from((position as u32) < candidate.in_flight % replicas.len() as u32);
                live.state.loads[replica].decoding += share;
            }
        }
        self.apply_health(live);
        let Some(choice) = live.router.choose(self.policy, &mut live.state, &request) else {
            return Ranking::default();
        };
        let fleet = live.router.fleet();
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
        let price = live.state.site_price[chosen.site];
        let carbon = live.state.site_carbon[chosen.site];
        Ranking {
            order: order.into_iter().map(|(_, index)| index).collect(),
            reason: Some(format!(
                "fleet {}: {} for {} (est. TTFT {:.0} ms, TPOT {:.1} ms, {:.0} USD/MWh, {:.0} gCO2/kWh{}; placement from the {})",
                self.policy.name(),
                chosen_site.name,
                fleet.user_regions[request.region].name,
                choice.ttft_ms,
                choice.tpot_ms,
                price,
                carbon,
                if choice.meets_slo { "" } else { ", SLO at risk" },
                live.placement.source,
            )),
        }
    }

    fn explain(&self, query: &PlacementQuery) -> Result<serde_json::Value, String> {
        let mut guard = self.lock();
        let live = &mut *guard;
        let request = Self::route_request(live.router.fleet(), query)?;
        let now = unix_now();
        live.state.now_s = now;
        live.state.set_hour(live.router.fleet(), now);
        self.apply_health(live);
        let explanation = live.router.explain(self.policy, &mut live.state, &request);
        let mut body = serde_json::to_value(explanation).map_err(|error| error.to_string())?;
        let health = self.replica_health(live)?;
        let placement = serde_json::to_value(&live.placement).map_err(|error| error.to_string())?;
        if let Some(object) = body.as_object_mut() {
            object.insert("health".to_owned(), health);
            object.insert("placement".to_owned(), placement);
        }
        Ok(body)
    }
}
