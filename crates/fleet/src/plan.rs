//! Placement and capacity planning: how many replicas of each model to run on which accelerators at which
//! sites so that every stream of demand is served within its SLO class, no site draws more than its power cap
//! and no site uses more chips than it has, at the least hardware + energy + carbon cost per hour.
//!
//! It is a mixed-integer program solved exactly (good_lp with the pure-Rust microlp solver): an integer count of
//! replicas per pool (site × accelerator × model) and a continuous flow of requests per second from each demand
//! row to each pool that can meet its SLO. The performance model is the simulator's: prefill at the profile's
//! tokens/s, decode steps that grow with the batch, batches bounded by the TPOT target and by the memory left
//! beside the weights. Power caps are planned against each replica's peak draw (every chip at its prefill
//! power), the way a facility provisions power, so a plan never breaches a cap; cost counts the mean draw.

use std::collections::BTreeMap;

use good_lp::{
    Expression, ProblemVariables, ResolutionError, Solution, SolverModel, Variable, WithTimeLimit, variable,
};
use serde::Serialize;

use crate::{Demand, Fleet, FleetError, ModelClass, ServingProfile};

/// Longest one solve may take; small fleets solve in milliseconds, this only bounds pathological inputs.
const SOLVER_TIME_LIMIT_S: f64 = 30.0;
/// What the elastic problem charges per chip beyond a site's inventory and per watt beyond its cap, in USD/h:
/// far above any real cost, so the solver only uses them when nothing else serves the demand.
const CHIP_SLACK_PENALTY_USD_PER_H: f64 = 1e5;
const POWER_SLACK_PENALTY_USD_PER_W_H: f64 = 1e3;
const HOURS_PER_YEAR: f64 = 8_760.0;

/// Which chips a plan may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inventory {
    /// Only the chips each site has (`accelerators_available`).
    Installed,
    /// Any number of the kinds each site has, as when planning purchases; power caps may be exceeded at a
    /// high price, and the excess is reported as the grid upgrade the site needs.
    Expandable,
}

/// What a plan optimises and how hard it may load replicas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanOptions {
    /// The busiest a replica may be planned (0–1]; the rest absorbs bursts and queueing.
    pub max_utilization: f64,
    /// Multiplies every site's energy price (for sensitivity analysis).
    pub energy_price_factor: f64,
    /// USD per tonne CO2e; the fleet's own price when `None`.
    pub carbon_price_usd_per_tonne: Option<f64>,
    /// Which chips may be used.
    pub inventory: Inventory,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            max_utilization: 0.8,
            energy_price_factor: 1.0,
            carbon_price_usd_per_tonne: None,
            inventory: Inventory::Installed,
        }
    }
}

/// Replicas of one model on one accelerator kind at one site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// The site.
    pub site: String,
    /// The accelerator kind.
    pub accelerator: String,
    /// The model.
    pub model: String,
    /// Replicas.
    pub replicas: u32,
    /// Chips they occupy.
    pub chips: u32,
    /// Requests per second routed to them.
    pub requests_per_s: f64,
    /// Their planned busy share (0–1).
    pub utilization: f64,
}

/// Requests of one demand row served by one placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    /// The model.
    pub model: String,
    /// The user region.
    pub region: String,
    /// The SLO class.
    pub slo: String,
    /// The site.
    pub site: String,
    /// The accelerator kind.
    pub accelerator: String,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Network round trip plus prefill, ms (queueing is what `max_utilization` leaves room for).
    pub ttft_ms: f64,
    /// Time per output token at the planned batch, ms.
    pub tpot_ms: f64,
    /// Sequences decoding together: the smaller of what the TPOT target and the memory allow.
    pub batch: u32,
}

/// One site's share of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SitePlan {
    /// The site.
    pub site: String,
    /// Replicas.
    pub replicas: u32,
    /// Chips in use.
    pub chips: u32,
    /// Chips in use beyond those installed (only with [`Inventory::Expandable`]).
    pub chips_to_buy: u32,
    /// What the purchases cost.
    pub capex_usd: f64,
    /// Peak draw, facility overhead included, W.
    pub peak_power_w: f64,
    /// The site's cap, W.
    pub power_cap_w: f64,
    /// Mean draw, facility overhead included, W.
    pub mean_power_w: f64,
    /// Chip rental plus depreciation, USD/h.
    pub hardware_usd_per_h: f64,
    /// Chip rental alone (the part of hardware that is an operating cost), USD/h.
    pub rental_usd_per_h: f64,
    /// Energy at the site's mean price, USD/h.
    pub energy_usd_per_h: f64,
    /// Carbon at the site's mean intensity, kg CO2e/h.
    pub carbon_kg_per_h: f64,
}

/// The whole plan's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanTotals {
    /// Requests per second served.
    pub requests_per_s: f64,
    /// Replicas.
    pub replicas: u32,
    /// Chips in use.
    pub chips: u32,
    /// Chips to buy.
    pub chips_to_buy: u32,
    /// What the purchases cost.
    pub capex_usd: f64,
    /// Peak draw over all sites, W.
    pub peak_power_w: f64,
    /// Mean draw over all sites, W.
    pub mean_power_w: f64,
    /// Chip rental plus depreciation, USD/h.
    pub hardware_usd_per_h: f64,
    /// Energy, USD/h.
    pub energy_usd_per_h: f64,
    /// Carbon, kg CO2e/h.
    pub carbon_kg_per_h: f64,
    /// Carbon at the plan's carbon price, USD/h.
    pub carbon_usd_per_h: f64,
    /// What the plan minimises: hardware + energy + carbon, USD/h.
    pub total_usd_per_h: f64,
    /// That cost per million tokens served (prompt and output).
    pub usd_per_million_tokens: f64,
}

/// A placement that serves the demand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The options it was made with.
    pub options: PlanOptions,
    /// The carbon price it used, USD per tonne.
    pub carbon_price_usd_per_tonne: f64,
    /// Replicas per site, accelerator and model (only non-empty ones).
    pub placements: Vec<Placement>,
    /// Where each demand row's requests go.
    pub flows: Vec<Flow>,
    /// Per site, in fleet order.
    pub sites: Vec<SitePlan>,
    /// Sums.
    pub totals: PlanTotals,
}

/// Why a pool cannot serve a demand row.
#[derive(Debug, Clone, PartialEq)]
enum Unfit {
    WeightsDoNotFit {
        weights_gb: f64,
        usable_gb: f64,
    },
    ContextDoesNotFit {
        context_tokens: f64,
    },
    StepTooSlow {
        step_ms: f64,
        tpot_ms: f64,
    },
    FirstTokenTooLate {
        network_ms: f64,
        prefill_ms: f64,
        ttft_ms: f64,
    },
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::WeightsDoNotFit { weights_gb, usable_gb } => {
                write!(
                    f,
                    "weights of {weights_gb:.0} GB do not fit in {usable_gb:.0} GB usable memory"
                )
            }
            Unfit::ContextDoesNotFit { context_tokens } => {
                write!(
                    f,
                    "no room beside the weights for one {context_tokens:.0}-token context"
                )
            }
            Unfit::StepTooSlow { step_ms, tpot_ms } => {
                write!(
                    f,
                    "one decode step takes {step_ms:.1} ms, above the {tpot_ms:.0} ms TPOT target"
                )
            }
            Unfit::FirstTokenTooLate {
                network_ms,
                prefill_ms,
                ttft_ms,
            } => write!(
                f,
                "first token after {:.0} ms (network {network_ms:.0} + prefill {prefill_ms:.0}), above the {ttft_ms:.0} ms TTFT target",
                network_ms + prefill_ms
            ),
        }
    }
}

/// Replicas of one model on one accelerator kind at one site: the planner's integer decision.
#[derive(Debug, Clone)]
struct Pool {
    site: usize,
    accelerator: usize,
    model: usize,
    profile: ServingProfile,
    chips_per_replica: u32,
    installed_chips: u32,
    peak_w_per_replica: f64,
    idle_w_per_replica: f64,
    hardware_usd_per_h_per_replica: f64,
    rental_usd_per_h_per_replica: f64,
    capex_usd_per_chip: f64,
    /// USD per watt sustained for an hour at this site: energy price plus carbon price.
    usd_per_w_h: f64,
    mean_price_usd_per_mwh: f64,
    mean_carbon_g_per_kwh: f64,
}

/// A demand row a pool can serve within its SLO.
#[derive(Debug, Clone)]
struct Candidate {
    row: usize,
    pool: usize,
    /// Replica-seconds each request occupies: prefill, then its share of batched decode steps.
    service_s: f64,
    /// Energy each request adds above idle, facility overhead included, J.
    dynamic_j: f64,
    ttft_ms: f64,
    tpot_ms: f64,
    batch: u32,
}

/// The planning problem: pools, and which demand rows each can serve.
struct Problem<'a> {
    fleet: &'a Fleet,
    demand: &'a Demand,
    options: PlanOptions,
    carbon_price: f64,
    pools: Vec<Pool>,
    candidates: Vec<Candidate>,
}

/// What a solve decided.
struct Solved {
    replicas: Vec<u32>,
    flows: Vec<f64>,
    chip_slack: BTreeMap<(usize, usize), f64>,
    power_slack_w: Vec<f64>,
}

/// Plans placement for `demand` on `fleet`.
///
/// Fails with [`FleetError::Infeasible`] naming the binding constraint (a demand row no site can serve within
/// its SLO, a site's chips, or a site's power cap) when no placement serves all of it.
pub fn plan(fleet: &Fleet, demand: &Demand, options: &PlanOptions) -> Result<Plan, FleetError> {
    let problem = Problem::new(fleet, demand, options)?;
    let elastic_power = options.inventory == Inventory::Expandable;
    let failed = |error: ResolutionError| FleetError::Unknown(format!("the planner's solver failed: {error}"));
    // The relaxation (fractional replicas) proves most infeasibility in milliseconds, where branch and bound
    // would search every integer combination first. With expandable chips and elastic power it is always
    // feasible, so there is nothing to prove.
    if !elastic_power {
        match problem.solve(false, false, false) {
            Ok(_) => {}
            Err(ResolutionError::Infeasible) => return Err(problem.diagnose(false)),
            Err(other) => return Err(failed(other)),
        }
    }
    match problem.solve(false, elastic_power, true) {
        Ok(solved) => Ok(problem.report(&solved)),
        Err(ResolutionError::Infeasible) => Err(problem.diagnose(true)),
        Err(other) => Err(failed(other)),
    }
}

impl<'a> Problem<'a> {
    fn new(fleet: &'a Fleet, demand: &'a Demand, options: &PlanOptions) -> Result<Self, FleetError> {
        if !(options.max_utilization > 0.0 && options.max_utilization <= 1.0) {
            return Err(FleetError::Unknown(format!(
                "max utilization must be in (0, 1], not {}",
                options.max_utilization
            )));
        }
        if !(options.energy_price_factor.is_finite() && options.energy_price_factor >= 0.0) {
            return Err(FleetError::Unknown(
                "the energy price factor must be a number >= 0".to_owned(),
            ));
        }
        let carbon_price = options
            .carbon_price_usd_per_tonne
            .unwrap_or(fleet.carbon_price_usd_per_tonne);
        if !(carbon_price.is_finite() && carbon_price >= 0.0) {
            return Err(FleetError::Unknown("the carbon price must be a number >= 0".to_owned()));
        }
        let pools = pools(fleet, options, carbon_price);
        let mut problem = Problem {
            fleet,
            demand,
            options: *options,
            carbon_price,
            pools,
            candidates: Vec::new(),
        };
        let mut unserved = Vec::new();
        for (row_index, row) in demand.rows.iter().enumerate() {
            if row.requests_per_s <= 0.0 {
                continue;
            }
            let mut reasons = Vec::new();
            for (pool_index, pool) in problem.pools.iter().enumerate() {
                if pool.model != row.model {
                    continue;
                }
                match problem.fit(row_index, pool_index) {
                    Ok(candidate) => problem.candidates.push(candidate),
                    Err(unfit) => reasons.push((pool_index, unfit)),
                }
            }
            if !problem.candidates.iter().any(|candidate| candidate.row == row_index) {
                unserved.push((row_index, reasons));
            }
        }
        if let Some((row_index, reasons)) = unserved.first() {
            return Err(FleetError::Infeasible {
                binding: problem.explain_unserved(*row_index, reasons),
            });
        }
        Ok(problem)
    }

    /// Whether `pool` can serve demand row `row` within its SLO, and at what cost per request.
    fn fit(&self, row_index: usize, pool_index: usize) -> Result<Candidate, Unfit> {
        let row = &self.demand.rows[row_index];
        let pool = &self.pools[pool_index];
        let slo = self.fleet.slo_classes[row.slo].1;
        let accelerator = &self.fleet.accelerators.all()[pool.accelerator];
        let profile = &pool.profile;
        let class_name = &self.fleet.models[pool.model].class;
        let mut batch = profile.batch_within(slo.tpot_ms);
        if let Some(class) = self.fleet.accelerators.model_class(class_name) {
            let context = row.prompt_tokens + row.output_tokens;
            let in_memory = class.sequences_in_memory(accelerator.memory_gb, pool.chips_per_replica, context);
            if in_memory == 0 {
                return Err(
                    if class.sequences_in_memory(accelerator.memory_gb, pool.chips_per_replica, 1.0) == 0 {
                        Unfit::WeightsDoNotFit {
                            weights_gb: class.weights_gb,
                            usable_gb: ModelClass::usable_memory_gb(accelerator.memory_gb, pool.chips_per_replica),
                        }
                    } else {
                        Unfit::ContextDoesNotFit {
                            context_tokens: context,
                        }
                    },
                );
            }
            batch = batch.min(in_memory);
        }
        let step_s = profile.step_s(batch);
        if profile.step_s(1) * 1e3 > slo.tpot_ms {
            return Err(Unfit::StepTooSlow {
                step_ms: profile.step_s(1) * 1e3,
                tpot_ms: slo.tpot_ms,
            });
        }
        let network_ms = self.fleet.latency_ms[row.region][pool.site];
        let prefill_s = row.prompt_tokens / profile.prefill_tokens_per_s;
        let ttft_ms = network_ms + prefill_s * 1e3;
        if ttft_ms > slo.ttft_ms {
            return Err(Unfit::FirstTokenTooLate {
                network_ms,
                prefill_ms: prefill_s * 1e3,
                ttft_ms: slo.ttft_ms,
            });
        }
        let decode_s = row.output_tokens * step_s / batch as f64;
        let site = &self.fleet.sites[pool.site];
        let chips = pool.chips_per_replica as f64;
        let dynamic_j = site.pue
            * chips
            * ((accelerator.prefill_w - accelerator.idle_w) * prefill_s
                + (accelerator.decode_w - accelerator.idle_w) * decode_s);
        Ok(Candidate {
            row: row_index,
            pool: pool_index,
            service_s: prefill_s + decode_s,
            dynamic_j,
            ttft_ms,
            tpot_ms: step_s * 1e3,
            batch,
        })
    }

    /// The most replicas of `pool` that could ever be useful: enough for all the demand it can serve, and no
    /// more than its site's chips allow unless `beyond_inventory`.
    fn replica_bound(&self, pool_index: usize, beyond_inventory: bool) -> u32 {
        let load: f64 = self
            .candidates
            .iter()
            .filter(|candidate| candidate.pool == pool_index)
            .map(|candidate| self.demand.rows[candidate.row].requests_per_s * candidate.service_s)
            .sum();
        let needed = (load / self.options.max_utilization).ceil().min(u32::MAX as f64) as u32;
        let pool = &self.pools[pool_index];
        if beyond_inventory || self.options.inventory == Inventory::Expandable {
            needed
        } else {
            needed.min(pool.installed_chips / pool.chips_per_replica)
        }
    }

    /// Solves the program; `elastic_chips` and `elastic_power` let inventory and power caps be exceeded at a
    /// penalty, to find out which of them binds (or, for power, how much grid a capacity plan needs).
    /// `whole_replicas: false` solves the relaxation, with fractional replicas.
    fn solve(&self, elastic_chips: bool, elastic_power: bool, whole_replicas: bool) -> Result<Solved, ResolutionError> {
        let mut variables = ProblemVariables::new();
        let replicas: Vec<Variable> = (0..self.pools.len())
            .map(|pool| {
                let count = variable().min(0).max(self.replica_bound(pool, elastic_chips));
                variables.add(if whole_replicas { count.integer() } else { count })
            })
            .collect();
        let flows: Vec<Variable> = self
            .candidates
            .iter()
            .map(|_| variables.add(variable().min(0)))
            .collect();
        let groups = self.inventory_groups();
        let chip_slack: BTreeMap<(usize, usize), Variable> = if elastic_chips {
            groups
                .keys()
                .map(|key| (*key, variables.add(variable().min(0))))
                .collect()
        } else {
            BTreeMap::new()
        };
        let power_slack: Vec<Option<Variable>> = self
            .fleet
            .sites
            .iter()
            .map(|_| elastic_power.then(|| variables.add(variable().min(0))))
            .collect();

        let mut objective = Expression::with_capacity(replicas.len() + flows.len());
        for (pool, replica) in self.pools.iter().zip(&replicas) {
            let per_replica = pool.hardware_usd_per_h_per_replica + pool.idle_w_per_replica * pool.usd_per_w_h;
            objective.add_mul(per_replica, *replica);
        }
        for (candidate, flow) in self.candidates.iter().zip(&flows) {
            objective.add_mul(candidate.dynamic_j * self.pools[candidate.pool].usd_per_w_h, *flow);
        }
        for slack in chip_slack.values() {
            objective.add_mul(CHIP_SLACK_PENALTY_USD_PER_H, *slack);
        }
        for slack in power_slack.iter().flatten() {
            objective.add_mul(POWER_SLACK_PENALTY_USD_PER_W_H, *slack);
        }

        let mut model = variables
            .minimise(objective)
            .using(good_lp::microlp)
            .with_time_limit(SOLVER_TIME_LIMIT_S);
        for (row_index, row) in self.demand.rows.iter().enumerate() {
            if row.requests_per_s <= 0.0 {
                continue;
            }
            let mut served = Expression::default();
            for (candidate, flow) in self.candidates.iter().zip(&flows) {
                if candidate.row == row_index {
                    served.add_mul(1.0, *flow);
                }
            }
            model.add_constraint(served.eq(row.requests_per_s));
        }
        for (pool_index, replica) in replicas.iter().enumerate() {
            let mut busy = Expression::default();
            for (candidate, flow) in self.candidates.iter().zip(&flows) {
                if candidate.pool == pool_index {
                    busy.add_mul(candidate.service_s, *flow);
                }
            }
            busy.add_mul(-self.options.max_utilization, *replica);
            model.add_constraint(busy.leq(0.0));
        }
        if self.options.inventory == Inventory::Installed {
            for (key, pool_indices) in &groups {
                let mut chips = Expression::default();
                for pool_index in pool_indices {
                    chips.add_mul(self.pools[*pool_index].chips_per_replica as f64, replicas[*pool_index]);
                }
                if let Some(slack) = chip_slack.get(key) {
                    chips.add_mul(-1.0, *slack);
                }
                let installed = pool_indices
                    .first()
                    .map_or(0, |first| self.pools[*first].installed_chips);
                model.add_constraint(chips.leq(installed as f64));
            }
        }
        for (site_index, site) in self.fleet.sites.iter().enumerate() {
            let mut power = Expression::default();
            for (pool, replica) in self.pools.iter().zip(&replicas) {
                if pool.site == site_index {
                    power.add_mul(pool.peak_w_per_replica, *replica);
                }
            }
            if let Some(slack) = power_slack[site_index] {
                power.add_mul(-1.0, slack);
            }
            model.add_constraint(power.leq(site.power_cap_w));
        }

        let solution = model.solve()?;
        Ok(Solved {
            replicas: replicas
                .iter()
                .map(|replica| solution.value(*replica).round().max(0.0) as u32)
                .collect(),
            flows: flows.iter().map(|flow| solution.value(*flow).max(0.0)).collect(),
            chip_slack: chip_slack
                .iter()
                .map(|(key, slack)| (*key, solution.value(*slack)))
                .collect(),
            power_slack_w: power_slack
                .iter()
                .map(|slack| slack.map_or(0.0, |slack| solution.value(slack).max(0.0)))
                .collect(),
        })
    }

    /// Pools sharing one site's chips of one kind, by (site, accelerator).
    fn inventory_groups(&self) -> BTreeMap<(usize, usize), Vec<usize>> {
        let mut groups: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (index, pool) in self.pools.iter().enumerate() {
            groups.entry((pool.site, pool.accelerator)).or_default().push(index);
        }
        groups
    }

    /// Says which constraint makes the program infeasible, from the elastic program's slack.
    fn diagnose(&self, whole_replicas: bool) -> FleetError {
        let solved = match self.solve(true, true, whole_replicas) {
            Ok(solved) => solved,
            Err(error) => {
                return FleetError::Infeasible {
                    binding: format!("no placement serves the demand (the diagnosis failed too: {error})"),
                };
            }
        };
        let mut reasons = Vec::new();
        let short_w: f64 = solved.power_slack_w.iter().filter(|slack| **slack > 1.0).sum();
        if short_w > 0.0 {
            // Which sites get the extra power is one cheapest choice among many; the shortfall is the fact.
            let additions: Vec<String> = solved
                .power_slack_w
                .iter()
                .zip(&self.fleet.sites)
                .filter(|(slack, _)| **slack > 1.0)
                .map(|(slack, site)| {
                    format!(
                        "{} needs {:.3} MW against its {:.3} MW cap",
                        site.name,
                        (site.power_cap_w + slack) / 1e6,
                        site.power_cap_w / 1e6
                    )
                })
                .collect();
            let caps_w: f64 = self.fleet.sites.iter().map(|site| site.power_cap_w).sum();
            reasons.push(format!(
                "power caps: serving the demand needs {:.3} MW more than the sites' caps allow ({:.3} MW in all); \
                 the cheapest way: {}",
                short_w / 1e6,
                caps_w / 1e6,
                additions.join(", ")
            ));
        }
        for ((site_index, accelerator_index), slack) in &solved.chip_slack {
            if *slack > 1e-6 {
                let installed = self
                    .pools
                    .iter()
                    .find(|pool| (pool.site, pool.accelerator) == (*site_index, *accelerator_index))
                    .map_or(0, |pool| pool.installed_chips);
                reasons.push(format!(
                    "chips at {}: the demand needs {:.0} {} there and it has {installed}",
                    self.fleet.sites[*site_index].name,
                    installed as f64 + slack.ceil(),
                    self.fleet.accelerators.all()[*accelerator_index].name
                ));
            }
        }
        let served: f64 = solved.flows.iter().sum();
        let binding = if reasons.is_empty() {
            format!(
                "no placement serves the {:.1} requests/s with whole replicas within the caps and chips",
                served
            )
        } else {
            reasons.join("; ")
        };
        FleetError::Infeasible { binding }
    }

    /// Says why no pool can serve a demand row, nearest sites first.
    fn explain_unserved(&self, row_index: usize, reasons: &[(usize, Unfit)]) -> String {
        let row = &self.demand.rows[row_index];
        let model = &self.fleet.models[row.model];
        let region = &self.fleet.user_regions[row.region].name;
        let (slo_name, slo) = &self.fleet.slo_classes[row.slo];
        let what = format!(
            "{} requests/s of {} from {region} ({slo_name}: TTFT {:.0} ms, TPOT {:.0} ms)",
            row.requests_per_s, model.name, slo.ttft_ms, slo.tpot_ms
        );
        if reasons.is_empty() {
            return format!(
                "{what}: no site has an accelerator with a serving profile for model class '{}'",
                model.class
            );
        }
        let mut by_distance: Vec<&(usize, Unfit)> = reasons.iter().collect();
        by_distance.sort_by(|a, b| {
            let latency = |pool: usize| self.fleet.latency_ms[row.region][self.pools[pool].site];
            latency(a.0).total_cmp(&latency(b.0))
        });
        let details: Vec<String> = by_distance
            .iter()
            .take(3)
            .map(|(pool_index, unfit)| {
                let pool = &self.pools[*pool_index];
                format!(
                    "{}/{}: {unfit}",
                    self.fleet.sites[pool.site].name,
                    self.fleet.accelerators.all()[pool.accelerator].name
                )
            })
            .collect();
        format!(
            "{what}: no site can serve it within its SLO; nearest: {}",
            details.join("; ")
        )
    }

    fn report(&self, solved: &Solved) -> Plan {
        let mut placements = Vec::new();
        let mut pool_requests = vec![0.0; self.pools.len()];
        let mut pool_busy_s = vec![0.0; self.pools.len()];
        let mut pool_dynamic_w = vec![0.0; self.pools.len()];
        let mut flows = Vec::new();
        let mut tokens_per_s = 0.0;
        for (candidate, rate) in self.candidates.iter().zip(&solved.flows) {
            if *rate <= 1e-9 {
                continue;
            }
            let row = &self.demand.rows[candidate.row];
            let pool = &self.pools[candidate.pool];
            pool_requests[candidate.pool] += rate;
            pool_busy_s[candidate.pool] += rate * candidate.service_s;
            pool_dynamic_w[candidate.pool] += rate * candidate.dynamic_j;
            tokens_per_s += rate * (row.prompt_tokens + row.output_tokens);
            flows.push(Flow {
                model: self.fleet.models[row.model].name.clone(),
                region: self.fleet.user_regions[row.region].name.clone(),
                slo: self.fleet.slo_classes[row.slo].0.clone(),
                site: self.fleet.sites[pool.site].name.clone(),
                accelerator: self.fleet.accelerators.all()[pool.accelerator].name.clone(),
                requests_per_s: *rate,
                ttft_ms: candidate.ttft_ms,
                tpot_ms: candidate.tpot_ms,
                batch: candidate.batch,
            });
        }
        let mut sites: Vec<SitePlan> = self
            .fleet
            .sites
            .iter()
            .map(|site| SitePlan {
                site: site.name.clone(),
                replicas: 0,
                chips: 0,
                chips_to_buy: 0,
                capex_usd: 0.0,
                peak_power_w: 0.0,
                power_cap_w: site.power_cap_w,
                mean_power_w: 0.0,
                hardware_usd_per_h: 0.0,
                rental_usd_per_h: 0.0,
                energy_usd_per_h: 0.0,
                carbon_kg_per_h: 0.0,
            })
            .collect();
        let mut chips_by_group: BTreeMap<(usize, usize), u32> = BTreeMap::new();
        for (index, pool) in self.pools.iter().enumerate() {
            let replicas = solved.replicas[index];
            if replicas == 0 {
                continue;
            }
            let chips = replicas * pool.chips_per_replica;
            *chips_by_group.entry((pool.site, pool.accelerator)).or_default() += chips;
            let mean_w = replicas as f64 * pool.idle_w_per_replica + pool_dynamic_w[index];
            let site = &mut sites[pool.site];
            site.replicas += replicas;
            site.chips += chips;
            site.peak_power_w += replicas as f64 * pool.peak_w_per_replica;
            site.mean_power_w += mean_w;
            site.hardware_usd_per_h += replicas as f64 * pool.hardware_usd_per_h_per_replica;
            site.rental_usd_per_h += replicas as f64 * pool.rental_usd_per_h_per_replica;
            site.energy_usd_per_h += mean_w * pool.mean_price_usd_per_mwh * self.options.energy_price_factor / 1e6;
            site.carbon_kg_per_h += mean_w * pool.mean_carbon_g_per_kwh / 1e6;
            placements.push(Placement {
                site: self.fleet.sites[pool.site].name.clone(),
                accelerator: self.fleet.accelerators.all()[pool.accelerator].name.clone(),
                model: self.fleet.models[pool.model].name.clone(),
                replicas,
                chips,
                requests_per_s: pool_requests[index],
                utilization: pool_busy_s[index] / replicas as f64,
            });
        }
        for ((site_index, accelerator_index), chips) in chips_by_group {
            let Some(pool) = self
                .pools
                .iter()
                .find(|pool| (pool.site, pool.accelerator) == (site_index, accelerator_index))
            else {
                continue;
            };
            let to_buy = chips.saturating_sub(pool.installed_chips);
            sites[site_index].chips_to_buy += to_buy;
            sites[site_index].capex_usd += to_buy as f64 * pool.capex_usd_per_chip;
        }
        let totals = totals(
            &sites,
            self.demand.total_requests_per_s(),
            tokens_per_s,
            self.carbon_price,
        );
        Plan {
            options: self.options,
            carbon_price_usd_per_tonne: self.carbon_price,
            placements,
            flows,
            sites,
            totals,
        }
    }
}

/// Every (site, accelerator, model) where the site has (or, when expandable, may add) that accelerator and the
/// accelerator has a serving profile for the model's class.
fn pools(fleet: &Fleet, options: &PlanOptions, carbon_price: f64) -> Vec<Pool> {
    let mut pools = Vec::new();
    for (site_index, site) in fleet.sites.iter().enumerate() {
        let mean_price = site.price.mean().max(0.0);
        let mean_carbon = site.carbon.mean().max(0.0);
        let usd_per_w_h = mean_price * options.energy_price_factor / 1e6 + mean_carbon * carbon_price / 1e9;
        for (name, installed) in &site.accelerators_available {
            let Some(accelerator_index) = fleet.accelerators.find(name) else {
                continue;
            };
            if *installed == 0 && options.inventory == Inventory::Installed {
                continue;
            }
            let accelerator = &fleet.accelerators.all()[accelerator_index];
            for (model_index, model) in fleet.models.iter().enumerate() {
                let Some(profile) = accelerator.classes.get(&model.class) else {
                    continue;
                };
                let chips = profile.accelerators_per_replica as f64;
                let rental = accelerator.hourly_cost_usd.unwrap_or(0.0);
                pools.push(Pool {
                    site: site_index,
                    accelerator: accelerator_index,
                    model: model_index,
                    profile: profile.clone(),
                    chips_per_replica: profile.accelerators_per_replica,
                    installed_chips: *installed,
                    peak_w_per_replica: site.pue * chips * accelerator.prefill_w.max(accelerator.decode_w),
                    idle_w_per_replica: site.pue * chips * accelerator.idle_w,
                    hardware_usd_per_h_per_replica: chips * accelerator.hourly_cost_usd(),
                    rental_usd_per_h_per_replica: chips * rental,
                    capex_usd_per_chip: if accelerator.hourly_cost_usd.is_some() {
                        0.0
                    } else {
                        accelerator.capex_usd.unwrap_or(0.0)
                    },
                    usd_per_w_h,
                    mean_price_usd_per_mwh: mean_price,
                    mean_carbon_g_per_kwh: mean_carbon,
                });
            }
        }
    }
    pools
}

fn totals(sites: &[SitePlan], requests_per_s: f64, tokens_per_s: f64, carbon_price: f64) -> PlanTotals {
    let sum = |value: fn(&SitePlan) -> f64| sites.iter().map(value).sum::<f64>();
    let hardware = sum(|site| site.hardware_usd_per_h);
    let energy = sum(|site| site.energy_usd_per_h);
    let carbon_kg = sum(|site| site.carbon_kg_per_h);
    let carbon_usd = carbon_kg / 1e3 * carbon_price;
    let total = hardware + energy + carbon_usd;
    let tokens_per_h = tokens_per_s * 3600.0;
    PlanTotals {
        requests_per_s,
        replicas: sites.iter().map(|site| site.replicas).sum(),
        chips: sites.iter().map(|site| site.chips).sum(),
        chips_to_buy: sites.iter().map(|site| site.chips_to_buy).sum(),
        capex_usd: sum(|site| site.capex_usd),
        peak_power_w: sum(|site| site.peak_power_w),
        mean_power_w: sum(|site| site.mean_power_w),
        hardware_usd_per_h: hardware,
        energy_usd_per_h: energy,
        carbon_kg_per_h: carbon_kg,
        carbon_usd_per_h: carbon_usd,
        total_usd_per_h: total,
        usd_per_million_tokens: if tokens_per_h > 0.0 {
            total / tokens_per_h * 1e6
        } else {
            0.0
        },
    }
}

/// One step of demand growth in a capacity plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityStep {
    /// Demand as a multiple of the file's.
    pub growth: f64,
    /// Requests per second at that growth.
    pub requests_per_s: f64,
    /// Per site: chips, MW, capex and opex.
    pub sites: Vec<SiteCapacity>,
    /// Sums.
    pub totals: PlanTotals,
    /// Opex over all sites, USD per year.
    pub opex_usd_per_year: f64,
}

/// What one site needs at one step of growth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteCapacity {
    /// The site.
    pub site: String,
    /// Chips in use.
    pub chips: u32,
    /// Chips to buy beyond those installed.
    pub chips_to_buy: u32,
    /// Their price.
    pub capex_usd: f64,
    /// Peak draw, MW.
    pub peak_mw: f64,
    /// The site's cap, MW.
    pub power_cap_mw: f64,
    /// How far the peak exceeds the cap: the grid connection the site must add, MW.
    pub grid_upgrade_mw: f64,
    /// Energy plus chip rental, USD per year.
    pub opex_usd_per_year: f64,
    /// Carbon, tonnes CO2e per year.
    pub carbon_t_per_year: f64,
}

/// From demand growth to chips, MW, capex and opex per site: plans each multiple of `demand` with expandable
/// inventory, so chips beyond those installed are bought and power beyond a cap shows as a grid upgrade.
pub fn capacity(
    fleet: &Fleet,
    demand: &Demand,
    options: &PlanOptions,
    growth: &[f64],
) -> Result<Vec<CapacityStep>, FleetError> {
    let options = PlanOptions {
        inventory: Inventory::Expandable,
        ..*options
    };
    let mut steps = Vec::new();
    for factor in growth {
        if !(factor.is_finite() && *factor > 0.0) {
            return Err(FleetError::Unknown(format!(
                "growth factors must be above 0, not {factor}"
            )));
        }
        let plan = plan(fleet, &demand.scaled(*factor), &options)?;
        let sites: Vec<SiteCapacity> = plan
            .sites
            .iter()
            .map(|site| SiteCapacity {
                site: site.site.clone(),
                chips: site.chips,
                chips_to_buy: site.chips_to_buy,
                capex_usd: site.capex_usd,
                peak_mw: site.peak_power_w / 1e6,
                power_cap_mw: site.power_cap_w / 1e6,
                grid_upgrade_mw: ((site.peak_power_w - site.power_cap_w) / 1e6).max(0.0),
                opex_usd_per_year: (site.energy_usd_per_h + site.rental_usd_per_h) * HOURS_PER_YEAR,
                carbon_t_per_year: site.carbon_kg_per_h * HOURS_PER_YEAR / 1e3,
            })
            .collect();
        steps.push(CapacityStep {
            growth: *factor,
            requests_per_s: plan.totals.requests_per_s,
            opex_usd_per_year: sites.iter().map(|site| site.opex_usd_per_year).sum(),
            sites,
            totals: plan.totals,
        });
    }
    Ok(steps)
}

/// One what-if of a sensitivity table: the plan's figures when one input changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    /// What changed, in words (`energy price x2`).
    pub case: String,
    /// The plan's totals, or why it became infeasible.
    pub totals: Option<PlanTotals>,
    /// Why the case has no plan.
    pub infeasible: Option<String>,
    /// Replicas per site where they differ from the base plan (`toronto 10 -> 12`).
    pub moved: Vec<String>,
}

/// Re-plans `demand` with each input of `base` (a plan of it) pushed up and down: energy price x0.5 and x2,
/// carbon price 0 and x2, and max utilization 0.6 and 0.9. The first row is `base` itself.
pub fn sensitivity(fleet: &Fleet, demand: &Demand, base: &Plan) -> Result<Vec<Sensitivity>, FleetError> {
    let options = &base.options;
    let carbon = base.carbon_price_usd_per_tonne;
    let cases = [
        (
            "energy price x0.5".to_owned(),
            PlanOptions {
                energy_price_factor: options.energy_price_factor * 0.5,
                ..*options
            },
        ),
        (
            "energy price x2".to_owned(),
            PlanOptions {
                energy_price_factor: options.energy_price_factor * 2.0,
                ..*options
            },
        ),
        (
            "carbon price 0".to_owned(),
            PlanOptions {
                carbon_price_usd_per_tonne: Some(0.0),
                ..*options
            },
        ),
        (
            format!("carbon price x2 ({:.0} USD/t)", carbon * 2.0),
            PlanOptions {
                carbon_price_usd_per_tonne: Some(carbon * 2.0),
                ..*options
            },
        ),
        (
            "max utilization 0.6".to_owned(),
            PlanOptions {
                max_utilization: 0.6,
                ..*options
            },
        ),
        (
            "max utilization 0.9".to_owned(),
            PlanOptions {
                max_utilization: 0.9,
                ..*options
            },
        ),
    ];
    let mut rows = vec![Sensitivity {
        case: "base".to_owned(),
        totals: Some(base.totals.clone()),
        infeasible: None,
        moved: Vec::new(),
    }];
    for (case, case_options) in cases {
        match plan(fleet, demand, &case_options) {
            Ok(case_plan) => {
                let moved = base
                    .sites
                    .iter()
                    .zip(&case_plan.sites)
                    .filter(|(before, after)| before.replicas != after.replicas)
                    .map(|(before, after)| format!("{} {} -> {}", before.site, before.replicas, after.replicas))
                    .collect();
                rows.push(Sensitivity {
                    case,
                    totals: Some(case_plan.totals),
                    infeasible: None,
                    moved,
                });
            }
            Err(FleetError::Infeasible { binding }) => rows.push(Sensitivity {
                case,
                totals: None,
                infeasible: Some(binding),
                moved: Vec::new(),
            }),
            Err(other) => return Err(other),
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;
