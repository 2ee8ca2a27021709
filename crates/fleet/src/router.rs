//! Choosing a replica for a request: a pure function of the request, the fleet and its current state.
//!
//! The router never blocks and never allocates on the hot path ([`Router::choose`]); [`Router::explain`]
//! scores every candidate for people (the `x-flywheel-route` header, the debug endpoint, the CLI).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::spec::Fleet;

/// A routing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Each replica of the model in turn.
    RoundRobin,
    /// The replica with the least queued work.
    LeastLoaded,
    /// The site with the lowest network latency to the user, least loaded within it (latency-only routing).
    Nearest,
    /// The site with the lowest energy price this hour, least loaded within it.
    CheapestEnergy,
    /// The site with the lowest grid carbon this hour, least loaded within it.
    LowestCarbon,
    /// flywheel's policy: the lowest energy cost plus carbon priced in dollars, among replicas expected to meet
    /// the request's TTFT and TPOT targets without pushing their site over its power cap.
    MultiObjective,
}

impl Policy {
    /// Every policy, in report order.
    pub const ALL: [Policy; 6] = [
        Policy::RoundRobin,
        Policy::LeastLoaded,
        Policy::Nearest,
        Policy::CheapestEnergy,
        Policy::LowestCarbon,
        Policy::MultiObjective,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round-robin",
            Policy::LeastLoaded => "least-loaded",
            Policy::Nearest => "nearest",
            Policy::CheapestEnergy => "cheapest-energy",
            Policy::LowestCarbon => "lowest-carbon",
            Policy::MultiObjective => "multi-objective",
        }
    }

    /// The policy called `name`.
    pub fn parse(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|policy| policy.name() == name)
    }
}

/// One request as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteRequest {
    /// Index into [`Fleet::models`].
    pub model: usize,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens expected.
    pub output_tokens: u32,
    /// Index into [`Fleet::user_regions`].
    pub region: usize,
    /// Index into [`Fleet::slo_classes`].
    pub slo: usize,
}

/// What the router knows of one replica now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaLoad {
    /// When the prompts queued on it will have been prefilled, in the state's clock (seconds).
    pub prefill_free_at_s: f64,
    /// Sequences decoding on it.
    pub decoding: u32,
    /// Prefilled sequences waiting for a batch slot.
    pub waiting: u32,
    /// Whether it is in rotation (health checks pass, error rate low).
    pub healthy: bool,
}

impl Default for ReplicaLoad {
    fn default() -> Self {
        ReplicaLoad {
            prefill_free_at_s: 0.0,
            decoding: 0,
            waiting: 0,
            healthy: true,
        }
    }
}

/// The fleet's state at one moment: per-replica load, per-site power draw, and this hour's price and carbon.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetState {
    /// The clock, in seconds (the simulator's or Unix time).
    pub now_s: f64,
    /// Per replica, as [`Fleet::replicas`].
    pub loads: Vec<ReplicaLoad>,
    /// Power each site draws now, facility overhead included, in watts.
    pub site_power_w: Vec<f64>,
    /// Energy price at each site this hour, USD/MWh.
    pub site_price: Vec<f64>,
    /// Grid carbon at each site this hour, gCO2eq/kWh.
    pub site_carbon: Vec<f64>,
    round_robin_next: Vec<usize>,
    /// Sites in the order the multi-objective policy visits them, reused so that routing never allocates.
    site_order: Vec<(f64, usize)>,
}

impl FleetState {
    /// All replicas idle and healthy, each site at its idle draw, with the price and carbon of `unix_s`.
    pub fn idle(fleet: &Fleet, unix_s: f64) -> Self {
        let mut site_power_w = vec![0.0; fleet.sites.len()];
        for replica in &fleet.replicas {
            site_power_w[replica.site] += replica.idle_w * replica.accelerators as f64 * fleet.sites[replica.site].pue;
        }
        let mut state = FleetState {
            now_s: unix_s,
            loads: vec![ReplicaLoad::default(); fleet.replicas.len()],
            site_power_w,
            site_price: vec![0.0; fleet.sites.len()],
            site_carbon: vec![0.0; fleet.sites.len()],
            round_robin_next: vec![0; fleet.models.len()],
            site_order: Vec::with_capacity(fleet.sites.len()),
        };
        state.set_hour(fleet, unix_s);
        state
    }

    /// Loads the price and carbon of the hour holding `unix_s`.
    pub fn set_hour(&mut self, fleet: &Fleet, unix_s: f64) {
        for (index, site) in fleet.sites.iter().enumerate() {
            self.site_price[index] = site.price.at(unix_s);
            self.site_carbon[index] = site.carbon.at(unix_s);
        }
    }
}

/// The router's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// Index into [`Fleet::replicas`].
    pub replica: usize,
    /// Expected time to first token, network included, ms.
    pub ttft_ms: f64,
    /// Expected time per output token, ms.
    pub tpot_ms: f64,
    /// Whether the replica is expected to meet the request's SLO.
    pub meets_slo: bool,
    /// Whether the site stays within its power cap.
    pub within_cap: bool,
}

/// One candidate's scores, for explanations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateScore {
    /// The replica's name.
    pub replica: String,
    /// Its site.
    pub site: String,
    /// Network round trip from the user's region, ms.
    pub rtt_ms: f64,
    /// Expected TTFT, ms.
    pub ttft_ms: f64,
    /// Expected TPOT, ms.
    pub tpot_ms: f64,
    /// Energy this request is expected to add, Wh (facility overhead included).
    pub energy_wh: f64,
    /// Its energy cost, micro-dollars.
    pub energy_cost_micros: f64,
    /// Its carbon, grams CO2e.
    pub carbon_g: f64,
    /// Energy cost plus carbon at the fleet's carbon price, micro-dollars.
    pub objective_micros: f64,
    /// Expected to meet the SLO.
    pub meets_slo: bool,
    /// Its site stays within the power cap.
    pub within_cap: bool,
    /// In rotation.
    pub healthy: bool,
}

/// Why a replica was chosen, with every candidate's scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The policy.
    pub policy: Policy,
    /// The chosen replica's name, if any could serve.
    pub chosen: Option<String>,
    /// In words.
    pub reason: String,
    /// Every replica of the model, in fleet order.
    pub candidates: Vec<CandidateScore>,
}

/// A router over one fleet: the replicas of each model, indexed once, also by site.
#[derive(Debug, Clone)]
pub struct Router {
    fleet: Arc<Fleet>,
    by_model: Vec<Vec<usize>>,
    /// Per model, each site holding replicas of it, with the least energy any of them can spend per token.
    by_model_site: Vec<Vec<SiteReplicas>>,
}

/// The multi-objective policy's running bests: (replica, value) for the lowest score among replicas meeting
/// the SLO within their cap, the fastest within its cap, and the fastest.
#[derive(Default)]
struct MultiObjectiveBests {
    feasible: Option<(usize, f64)>,
    within_cap: Option<(usize, f64)>,
    fastest: Option<(usize, f64)>,
}

impl MultiObjectiveBests {
    fn choice(&self) -> Option<usize> {
        self.feasible
            .or(self.within_cap)
            .or(self.fastest)
            .map(|(replica, _)| replica)
    }
}

/// A model's replicas at one site, and a floor under the energy any of them spends on a request.
#[derive(Debug, Clone)]
struct SiteReplicas {
    site: usize,
    replicas: Vec<usize>,
    /// Least Wh per prompt token and per output token (at the fullest batch) over these replicas, facility
    /// overhead included: `prompt x this + output x that` never exceeds a request's estimated energy here.
    min_wh_per_prompt_token: f64,
    min_wh_per_output_token: f64,
}

/// Keep this share of the TTFT target as headroom for estimation error.
const TTFT_HEADROOM: f64 = 0.8;

#[derive(Clone, Copy)]
struct Estimate {
    ttft_ms: f64,
    tpot_ms: f64,
    power_increase_w: f64,
    energy_wh: f64,
    backlog_s: f64,
}

impl Router {
    /// Indexes `fleet`'s replicas by model.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        let mut by_model = vec![Vec::new(); fleet.models.len()];
        let mut by_model_site: Vec<Vec<SiteReplicas>> = vec![Vec::new(); fleet.models.len()];
        for (index, replica) in fleet.replicas.iter().enumerate() {
            by_model[replica.model].push(index);
            let scale = replica.accelerators as f64 * fleet.sites[replica.site].pue / 3600.0;
            let profile = &replica.profile;
            let per_prompt_token = (replica.prefill_w - replica.idle_w) * scale / profile.prefill_tokens_per_s;
            // Decode energy per token is step(batch) / batch x the decode power above idle: smallest at one
            // end of the batch range, whichever sign that power has.
            let decode_w = (replica.decode_w - replica.idle_w) * scale;
            let per_output_token = (profile.step_s(1) * decode_w)
                .min(profile.step_s(profile.max_batch) / profile.max_batch as f64 * decode_w);
            let sites = &mut by_model_site[replica.model];
            match sites.iter_mut().find(|entry| entry.site == replica.site) {
                Some(entry) => {
                    entry.replicas.push(index);
                    entry.min_wh_per_prompt_token = entry.min_wh_per_prompt_token.min(per_prompt_token);
                    entry.min_wh_per_output_token = entry.min_wh_per_output_token.min(per_output_token);
                }
                None => sites.push(SiteReplicas {
                    site: replica.site,
                    replicas: vec![index],
                    min_wh_per_prompt_token: per_prompt_token,
                    min_wh_per_output_token: per_output_token,
                }),
            }
        }
        Router {
            fleet,
            by_model,
            by_model_site,
        }
    }

    /// The fleet.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    fn estimate(&self, state: &FleetState, request: &RouteRequest, replica_index: usize) -> Estimate {
        let replica = &self.fleet.replicas[replica_index];
        let load = &state.loads[replica_index];
        let site = &self.fleet.sites[replica.site];
        let profile = &replica.profile;
        let rtt_ms = self.fleet.latency_ms[request.region][replica.site];
        let backlog_s = (load.prefill_free_at_s - state.now_s).max(0.0);
        let prefill_s = request.prompt_tokens as f64 / profile.prefill_tokens_per_s;
        let batch = load.decoding + load.waiting + 1;
        let step_s = profile.step_s(batch.min(profile.max_batch));
        // A full batch makes the newcomer wait for a slot: about one sequence's decode per batch-full ahead.
        let slot_wait_s = if batch > profile.max_batch {
            (batch - profile.max_batch) as f64 / profile.max_batch as f64 * step_s * request.output_tokens as f64
        } else {
            0.0
        };
        let chips = replica.accelerators as f64;
        let idle = load.decoding == 0 && backlog_s <= 0.0;
        let power_increase_w = if backlog_s > 0.0 {
            0.0
        } else if idle {
            (replica.prefill_w - replica.idle_w) * chips * site.pue
        } else {
            (replica.prefill_w - replica.decode_w).max(0.0) * chips * site.pue
        };
        let decode_s = request.output_tokens as f64 * step_s;
        let energy_wh = (prefill_s * (replica.prefill_w - replica.idle_w)
            + decode_s * (replica.decode_w - replica.idle_w) / batch.min(profile.max_batch) as f64)
            * chips
            * site.pue
            / 3600.0;
        Estimate {
            ttft_ms: rtt_ms + (backlog_s + prefill_s) * 1e3,
            tpot_ms: step_s * 1e3 + slot_wait_s * 1e3 / request.output_tokens.max(1) as f64,
            power_increase_w,
            energy_wh,
            backlog_s,
        }
    }

    fn objective_micros(&self, state: &FleetState, site: usize, energy_wh: f64) -> f64 {
        // USD/MWh x Wh = micro-dollars; g/kWh x Wh = mg; $/t x mg = micro-dollars / 1000.
        let energy = energy_wh * state.site_price[site];
        let carbon = energy_wh * state.site_carbon[site] * self.fleet.carbon_price_usd_per_tonne / 1e3;
        energy + carbon
    }

    fn choice(&self, state: &FleetState, request: &RouteRequest, replica: usize) -> Choice {
        let estimate = self.estimate(state, request, replica);
        let slo = self.fleet.slo_classes[request.slo].1;
        let site = self.fleet.replicas[replica].site;
        Choice {
            replica,
            ttft_ms: estimate.ttft_ms,
            tpot_ms: estimate.tpot_ms,
            meets_slo: estimate.ttft_ms <= slo.ttft_ms && estimate.tpot_ms <= slo.tpot_ms,
            within_cap: state.site_power_w[site] + estimate.power_increase_w <= self.fleet.sites[site].power_cap_w,
        }
    }

    fn work_s(&self, state: &FleetState, replica: usize) -> f64 {
        let load = &state.loads[replica];
        let profile = &self.fleet.replicas[replica].profile;
        (load.prefill_free_at_s - state.now_s).max(0.0)
            + (load.decoding + load.waiting) as f64 * profile.step_s(1) * 50.0 / profile.max_batch as f64
    }

    /// The least loaded healthy replica of the model among those `keep` accepts.
    fn least_loaded(&self, state: &FleetState, model: usize, keep: impl Fn(usize) -> bool) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for &replica in &self.by_model[model] {
            if !state.loads[replica].healthy || !keep(replica) {
                continue;
            }
            let work = self.work_s(state, replica);
            if best.is_none_or(|(_, best_work)| work < best_work) {
                best = Some((replica, work));
            }
        }
        best.map(|(replica, _)| replica)
    }

    /// The healthy replica of the model at the site that `site_score` ranks lowest, least loaded within it.
    fn best_site(&self, state: &FleetState, model: usize, site_score: impl Fn(usize) -> f64) -> Option<usize> {
        let mut best_site: Option<(usize, f64)> = None;
        for &replica in &self.by_model[model] {
            if !state.loads[replica].healthy {
                continue;
            }
            let site = self.fleet.replicas[replica].site;
            let score = site_score(site);
            if best_site.is_none_or(|(_, best)| score < best) {
                best_site = Some((site, score));
            }
        }
        let (site, _) = best_site?;
        self.least_loaded(state, model, |replica| self.fleet.replicas[replica].site == site)
    }

    /// Chooses a replica for `request` under `policy`; `None` when the model has no healthy replica.
    /// Round-robin advances its turn in `state`.
    pub fn choose(&self, policy: Policy, state: &mut FleetState, request: &RouteRequest) -> Option<Choice> {
        let replicas = self.by_model.get(request.model)?;
        if replicas.is_empty() {
            return None;
        }
        let chosen = match policy {
            Policy::RoundRobin => {
                let turn = state.round_robin_next.get_mut(request.model)?;
                let mut found = None;
                for offset in 0..replicas.len() {
                    let replica = replicas[(*turn + offset) % replicas.len()];
                    if state.loads[replica].healthy {
                        *turn = (*turn + offset + 1) % replicas.len();
                        found = Some(replica);
                        break;
                    }
                }
                found
            }
            Policy::LeastLoaded => self.least_loaded(state, request.model, |_| true),
            Policy::Nearest => self.best_site(state, request.model, |site| self.fleet.latency_ms[request.region][site]),
            Policy::CheapestEnergy => self.best_site(state, request.model, |site| state.site_price[site]),
            Policy::LowestCarbon => self.best_site(state, request.model, |site| state.site_carbon[site]),
            Policy::MultiObjective => {
                let mut order = std::mem::take(&mut state.site_order);
                let chosen = self.multi_objective(state, request, &mut order);
                state.site_order = order;
                chosen
            }
        }?;
        Some(self.choice(state, request, chosen))
    }

    /// Lowest priced energy and carbon among replicas that meet the SLO (with headroom) within their site's cap;
    /// failing that, the fastest within the cap; failing that, the fastest.
    ///
    /// Sites are visited cheapest floor first (the least energy a request could cost there, at this hour's
    /// price and carbon), and the visit stops once the next floor is above the best feasible score found: the
    /// choice is the same as scoring every replica (ties go to the lowest replica index either way), in a
    /// fraction of the work.
    fn multi_objective(
        &self,
        state: &FleetState,
        request: &RouteRequest,
        order: &mut Vec<(f64, usize)>,
    ) -> Option<usize> {
        let sites = self.by_model_site.get(request.model)?;
        order.clear();
        for (position, entry) in sites.iter().enumerate() {
            let floor_wh = request.prompt_tokens as f64 * entry.min_wh_per_prompt_token
                + request.output_tokens as f64 * entry.min_wh_per_output_token;
            let cost_per_wh = self.objective_micros(state, entry.site, 1.0);
            // With a negative price the floor bounds nothing: such a site is visited first.
            let floor = if cost_per_wh < 0.0 {
                f64::NEG_INFINITY
            } else {
                floor_wh * cost_per_wh
            };
            order.push((floor, position));
        }
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut bests = MultiObjectiveBests::default();
        for &(floor, position) in order.iter() {
            if bests.feasible.is_some_and(|(_, best)| floor > best) {
                break;
            }
            for &replica in &sites[position].replicas {
                self.score_multi_objective(state, request, replica, &mut bests);
            }
        }
        bests.choice()
    }

    /// Scores one replica for the multi-objective policy into the running bests; on equal values the lower
    /// replica index wins, whatever order replicas are visited in.
    fn score_multi_objective(
        &self,
        state: &FleetState,
        request: &RouteRequest,
        replica: usize,
        bests: &mut MultiObjectiveBests,
    ) {
        let slo = self.fleet.slo_classes[request.slo].1;
        let MultiObjectiveBests {
            feasible: best_feasible,
            within_cap: fastest_within_cap,
            fastest,
        } = bests;
        let better = |candidate: f64, best: &Option<(usize, f64)>| {
            best.is_none_or(|(best_replica, best)| candidate < best || (candidate == best && replica < best_replica))
        };
        {
            if !state.loads[replica].healthy {
                return;
            }
            let estimate = self.estimate(state, request, replica);
            let site = self.fleet.replicas[replica].site;
            let within_cap = state.site_power_w[site] + estimate.power_increase_w <= self.fleet.sites[site].power_cap_w;
            if better(estimate.ttft_ms, fastest) {
                *fastest = Some((replica, estimate.ttft_ms));
            }
            if !within_cap {
                return;
            }
            if better(estimate.ttft_ms, fastest_within_cap) {
                *fastest_within_cap = Some((replica, estimate.ttft_ms));
            }
            if estimate.ttft_ms <= slo.ttft_ms * TTFT_HEADROOM && estimate.tpot_ms <= slo.tpot_ms {
                // Ties (equal price) go to the replica with less queued work.
                let score = self.objective_micros(state, site, estimate.energy_wh) + estimate.backlog_s * 1e-3;
                if better(score, best_feasible) {
                    *best_feasible = Some((replica, score));
                }
            }
        }
    }

    /// Chooses as [`Router::choose`] does and says why, with every candidate's scores.
    pub fn explain(&self, policy: Policy, state: &mut FleetState, request: &RouteRequest) -> Explanation {
        let slo = self.fleet.slo_classes.get(request.slo).map(|(_, slo)| *slo);
        let candidates = self
            .by_model
            .get(request.model)
            .map(|replicas| {
                replicas
                    .iter()
                    .map(|&index| {
                        let replica = &self.fleet.replicas[index];
                        let estimate = self.estimate(state, request, index);
                        let energy_cost = estimate.energy_wh * state.site_price[replica.site];
                        let carbon_g = estimate.energy_wh * state.site_carbon[replica.site] / 1e3;
                        CandidateScore {
                            replica: replica.name.clone(),
                            site: self.fleet.sites[replica.site].name.clone(),
                            rtt_ms: self.fleet.latency_ms[request.region][replica.site],
                            ttft_ms: estimate.ttft_ms,
                            tpot_ms: estimate.tpot_ms,
                            energy_wh: estimate.energy_wh,
                            energy_cost_micros: energy_cost,
                            carbon_g,
                            objective_micros: self.objective_micros(state, replica.site, estimate.energy_wh),
                            meets_slo: slo
                                .is_some_and(|slo| estimate.ttft_ms <= slo.ttft_ms && estimate.tpot_ms <= slo.tpot_ms),
                            within_cap: state.site_power_w[replica.site] + estimate.power_increase_w
                                <= self.fleet.sites[replica.site].power_cap_w,
                            healthy: state.loads[index].healthy,
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let choice = self.choose(policy, state, request);
        let chosen = choice.map(|choice| self.fleet.replicas[choice.replica].name.clone());
        let reason = match (policy, choice) {
            (_, None) => "no healthy replica serves this model".to_owned(),
            (Policy::MultiObjective, Some(choice)) if choice.meets_slo && choice.within_cap => {
                "lowest energy cost plus priced carbon among replicas meeting the SLO within their site's power cap"
                    .to_owned()
            }
            (Policy::MultiObjective, Some(choice)) if choice.within_cap => {
                "no replica is expected to meet the SLO; the fastest within its site's power cap".to_owned()
            }
            (Policy::MultiObjective, Some(_)) => "every site is at its power cap; the fastest replica".to_owned(),
            (Policy::RoundRobin, Some(_)) => "next replica in turn".to_owned(),
            (Policy::LeastLoaded, Some(_)) => "least queued work".to_owned(),
            (Policy::Nearest, Some(_)) => "lowest network latency to the user's region, least loaded there".to_owned(),
            (Policy::CheapestEnergy, Some(_)) => "lowest energy price this hour, least loaded there".to_owned(),
            (Policy::LowestCarbon, Some(_)) => "lowest grid carbon this hour, least loaded there".to_owned(),
        };
        Explanation {
            policy,
            chosen,
            reason,
            candidates,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::demand::tests::example;

    /// The multi-objective choice by scoring every replica in fleet order, with no site pruning.
    fn every_replica_scored(router: &Router, state: &FleetState, request: &RouteRequest) -> Option<usize> {
        let mut bests = MultiObjectiveBests::default();
        for &replica in &router.by_model[request.model] {
            router.score_multi_objective(state, request, replica, &mut bests);
        }
        bests.choice()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn pruning_sites_never_changes_the_multi_objective_choice(
            loads in prop::collection::vec((0u32..80, 0u32..10, 0.0f64..5.0, prop::bool::weighted(0.9)), 56),
            site_power in prop::collection::vec(0.0f64..0.02e6, 6),
            hour in 0i64..720,
            requests in prop::collection::vec((1u32..8000, 1u32..1000, 0usize..5, 0usize..2), 1..20),
        ) {
            let fleet = example();
            let router = Router::new(Arc::new(fleet.clone()));
            let now = 1_698_796_800.0 + hour as f64 * 3600.0;
            let mut state = FleetState::idle(&fleet, now);
            for (load, (decoding, waiting, backlog, healthy)) in state.loads.iter_mut().zip(&loads) {
                load.decoding = *decoding;
                load.waiting = *waiting;
                load.prefill_free_at_s = now + backlog;
                load.healthy = *healthy;
            }
            state.site_power_w.copy_from_slice(&site_power);
            for (prompt_tokens, output_tokens, region, slo) in requests {
                let request = RouteRequest { model: 0, prompt_tokens, output_tokens, region, slo };
                let expected = every_replica_scored(&router, &state, &request);
                let chosen = router.choose(Policy::MultiObjective, &mut state, &request).map(|choice| choice.replica);
                prop_assert_eq!(chosen, expected);
            }
        }
    }
}
