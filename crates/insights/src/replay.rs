//! The platform's own traffic replayed through the fleet: the model calls the ledger recorded, as a trace,
//! under every routing policy, on the fleet file's placement and on the plan's, so an operator sees what each
//! policy and the plan would have cost in energy, dollars, carbon and latency on the requests that really came.

use fleet::{Fleet, Placement, Policy, SimulationOptions, SimulationReport, Trace, TraceRequest};
use serde::Serialize;

use crate::InsightsError;

/// One model call: when, what for, how big.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Unix seconds.
    pub unix_s: f64,
    /// The gateway model.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
}

/// How to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayOptions {
    /// Copies of the calls replayed together, each shifted by an equal part of their span, to see the fleet
    /// under more load than it had.
    pub load_scale: u32,
}

/// The most copies a replay may add.
pub const MAX_LOAD_SCALE: u32 = 1000;

/// The most requests one replay simulates (calls × copies), per policy and placement: a console page stays
/// within a few seconds.
pub const MAX_REPLAYED_REQUESTS: usize = 200_000;

/// One policy on one placement.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReplay {
    /// `fleet file` or `plan`.
    pub placement: &'static str,
    /// The fleet model replayed.
    pub model: String,
    /// What the simulator measured.
    pub report: SimulationReport,
}

/// Every policy on every placement.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayComparison {
    /// Calls of the fleet's models replayed (before scaling).
    pub calls: usize,
    /// The fleet hours whose prices and carbon were used, `YYYY-MM-DDTHH:00Z` to the hour after the last: the
    /// same hours of the day as the calls, within the fleet's series.
    pub priced_from: String,
    /// The hour after the last priced.
    pub priced_to: String,
    /// The load scale.
    pub load_scale: u32,
    /// Per placement, model and policy.
    pub replays: Vec<PolicyReplay>,
    /// Gateway models with calls that the fleet does not serve.
    pub not_in_fleet: Vec<String>,
    /// Placements left out because they hold no replica of a model with calls, in words.
    pub without_replicas: Vec<String>,
}

/// Replays `calls` on `fleet` (and on `plan`'s placement when given) under every policy.
pub fn compare(
    fleet: &Fleet,
    calls: &[Call],
    plan: Option<&[Placement]>,
    options: ReplayOptions,
) -> Result<ReplayComparison, InsightsError> {
    if !(1..=MAX_LOAD_SCALE).contains(&options.load_scale) {
        return Err(InsightsError::InvalidOption(format!(
            "the load scale must be 1 to {MAX_LOAD_SCALE}, not {}",
            options.load_scale
        )));
    }
    if calls.len().saturating_mul(options.load_scale as usize) > MAX_REPLAYED_REQUESTS {
        return Err(InsightsError::InvalidOption(format!(
            "{} calls × {} copies is more than the {MAX_REPLAYED_REQUESTS} requests a replay simulates; pick a lower scale or a shorter range",
            calls.len(),
            options.load_scale
        )));
    }
    let first = calls
        .iter()
        .map(|call| call.unix_s)
        .min_by(f64::total_cmp)
        .ok_or_else(|| InsightsError::Unanswerable("no model calls were recorded in this range".to_owned()))?;
    let last = calls.iter().map(|call| call.unix_s).fold(first, f64::max);
    // Priced hours: enough for any model's calls with their copies (each shifted by less than its span).
    let hours = ((first.rem_euclid(3600.0) + 2.0 * (last - first) + 2.0) / 3600.0).ceil() as u32;
    let start_hour = priced_start_hour(fleet, first, hours)?;
    let start_unix_s = start_hour as f64 * 3600.0 + first.rem_euclid(3600.0);

    let mut placements = vec![("fleet file", fleet.clone())];
    if let Some(plan) = plan {
        let placed = fleet
            .with_placements(plan)
            .map_err(|error| InsightsError::InvalidOption(error.to_string()))?;
        placements.push(("plan", placed));
    }
    let mut models: Vec<&str> = calls.iter().map(|call| call.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    let mut not_in_fleet = Vec::new();
    let mut without_replicas = Vec::new();
    let mut replays = Vec::new();
    for name in models {
        let Some(model) = fleet.model_index(name) else {
            not_in_fleet.push(name.to_owned());
            continue;
        };
        let trace = trace_of(calls, name, options.load_scale);
        // Replayed once: up to half a mean gap past the last request, as the simulator repeats a trace
        // back to back, one mean gap after its last request, to fill its days.
        let requests = trace.requests.len();
        let tail_s = if requests > 1 && trace.span_s() > 0.0 {
            trace.span_s() / (requests - 1) as f64 / 2.0
        } else {
            0.5
        };
        let days = (trace.span_s() + tail_s) / 86_400.0;
        for (placement, placed) in &placements {
            if !placed.replicas.iter().any(|replica| replica.model == model) {
                without_replicas.push(format!("the {placement} places no replica of {name}"));
                continue;
            }
            for policy in Policy::ALL {
                let simulation = SimulationOptions {
                    policy,
                    days,
                    load_scale: 1,
                    start_unix_s: Some(start_unix_s),
                    model,
                };
                let report = fleet::simulate(placed, &trace, &simulation)
                    .map_err(|error| InsightsError::InvalidOption(error.to_string()))?;
                replays.push(PolicyReplay {
                    placement,
                    model: name.to_owned(),
                    report,
                });
            }
        }
    }
    Ok(ReplayComparison {
        calls: calls
            .iter()
            .filter(|call| fleet.model_index(&call.model).is_some())
            .count(),
        priced_from: crate::hour_label(start_hour),
        priced_to: crate::hour_label(start_hour + i64::from(hours)),
        load_scale: options.load_scale,
        replays,
        not_in_fleet,
        without_replicas,
    })
}

/// The calls for `model` as a trace dated at the first, each call `copies` times: copy `k` arrives `k/copies`
/// of the mean gap between calls later, so the copies interleave instead of arriving in bursts.
fn trace_of(calls: &[Call], model: &str, copies: u32) -> Trace {
    let mut arrivals: Vec<(f64, u32, u32)> = calls
        .iter()
        .filter(|call| call.model == model)
        .map(|call| (call.unix_s, call.prompt_tokens.max(1), call.output_tokens.max(1)))
        .collect();
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = arrivals.first().map(|arrival| arrival.0).unwrap_or(0.0);
    let last = arrivals.last().map(|arrival| arrival.0).unwrap_or(0.0);
    let gap = if arrivals.len() > 1 {
        (last - first) / (arrivals.len() - 1) as f64
    } else {
        1.0
    };
    let mut requests: Vec<TraceRequest> = arrivals
        .iter()
        .flat_map(|&(at, prompt_tokens, output_tokens)| {
            (0..copies).map(move |copy| TraceRequest {
                arrival_s: at - first + gap * f64::from(copy) / f64::from(copies),
                prompt_tokens,
                output_tokens,
            })
        })
        .collect();
    requests.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    Trace {
        start_unix_s: Some(first),
        requests,
    }
}

/// The latest hour within every site's price and carbon series from which `hours` are covered, at the same
/// hour of the day as `first_call_s`: the calls keep their daily rhythm against the grid's.
fn priced_start_hour(fleet: &Fleet, first_call_s: f64, hours: u32) -> Result<i64, InsightsError> {
    let call_hour = (first_call_s / 3600.0).floor() as i64;
    let mut covered: Option<(i64, i64)> = None;
    for site in &fleet.sites {
        for series in [&site.price, &site.carbon] {
            if series.is_constant() {
                continue;
            }
            let (from, to) = series.hours();
            covered = Some(match covered {
                None => (from, to),
                Some((low, high)) => (low.max(from), high.min(to)),
            });
        }
    }
    let Some((low, high)) = covered else {
        return Ok(call_hour);
    };
    if low <= call_hour && call_hour + i64::from(hours) < high {
        return Ok(call_hour);
    }
    // One spare hour: the calls start part-way into their first hour.
    let latest = high - i64::from(hours) - 1;
    let start = latest - (latest - call_hour).rem_euclid(24);
    if start < low {
        return Err(InsightsError::InvalidOption(format!(
            "the fleet's price and carbon series cover {} hours together, too few to replay {hours}; pick a shorter range",
            (high - low).max(0)
        )));
    }
    Ok(start)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fleet/storefront.toml");
        Fleet::read(&path).unwrap()
    }

    fn calls(count: usize, start_s: f64) -> Vec<Call> {
        (0..count)
            .map(|index| Call {
                unix_s: start_s + index as f64 * 90.0,
                model: "smollm2-135m-instruct".to_owned(),
                prompt_tokens: 300,
                output_tokens: 60,
            })
            .collect()
    }

    /// One CPU server at each of the first `sites` sites.
    fn plan(fleet: &Fleet, sites: usize) -> Vec<Placement> {
        fleet.sites[..sites]
            .iter()
            .map(|site| Placement {
                site: site.name.clone(),
                accelerator: "cpu".to_owned(),
                model: fleet.models[0].name.clone(),
                replicas: 1,
                chips: 1,
                requests_per_s: 0.1,
                utilization: 0.1,
            })
            .collect()
    }

    #[test]
    fn every_policy_replays_the_calls_at_the_same_hours_of_the_grids_day() {
        let fleet = fleet();
        // 2026-12-01 14:05 UTC, long after the fleet's November 2023 series.
        let start = 1_795_960_000.0 + 300.0;
        let comparison = compare(
            &fleet,
            &calls(40, start),
            Some(&plan(&fleet, 3)),
            ReplayOptions { load_scale: 1 },
        )
        .unwrap();
        assert_eq!(comparison.replays.len(), Policy::ALL.len());
        assert_eq!(
            comparison.without_replicas,
            ["the fleet file places no replica of smollm2-135m-instruct"]
        );
        assert!(
            comparison.replays.iter().all(|replay| replay.report.requests == 40),
            "replayed once"
        );
        assert!(
            comparison.priced_from.starts_with("2023-11"),
            "{}",
            comparison.priced_from
        );
        let call_hour = (start / 3600.0).floor() as i64;
        assert_eq!(
            &comparison.priced_from[11..13],
            &crate::hour_label(call_hour)[11..13],
            "same hour of the day"
        );
        let policy = |name: &str| {
            &comparison
                .replays
                .iter()
                .find(|replay| replay.report.policy == name)
                .unwrap()
                .report
        };
        assert!(policy("cheapest-energy").energy_cost_usd <= policy("round-robin").energy_cost_usd * 1.0001);
        assert!(policy("lowest-carbon").carbon_kg <= policy("round-robin").carbon_kg * 1.0001);
    }

    #[test]
    fn one_planned_site_serves_everything_and_bad_options_are_refused() {
        let fleet = fleet();
        let options = ReplayOptions { load_scale: 3 };
        let comparison = compare(&fleet, &calls(10, 1_795_960_000.0), Some(&plan(&fleet, 1)), options).unwrap();
        assert_eq!(comparison.replays.len(), Policy::ALL.len());
        assert!(comparison.replays.iter().all(|replay| {
            replay.report.requests == 30 && replay.report.sites.iter().filter(|site| site.requests > 0).count() == 1
        }));

        // Calls recorded in the same instant are replayed once each, not forever.
        let mut together = calls(3, 1_795_960_000.0);
        together.iter_mut().for_each(|call| call.unix_s = 1_795_960_000.0);
        let comparison = compare(
            &fleet,
            &together,
            Some(&plan(&fleet, 1)),
            ReplayOptions { load_scale: 1 },
        )
        .unwrap();
        assert!(comparison.replays.iter().all(|replay| replay.report.requests == 3));

        let mut unknown = calls(2, 1_795_960_000.0);
        unknown[1].model = "gpt-9".to_owned();
        let comparison = compare(&fleet, &unknown, None, options).unwrap();
        assert_eq!(comparison.not_in_fleet, ["gpt-9"]);

        assert!(compare(&fleet, &[], None, options).is_err());
        let too_many_copies = ReplayOptions {
            load_scale: MAX_LOAD_SCALE + 1,
        };
        assert!(compare(&fleet, &calls(2, 1_795_960_000.0), None, too_many_copies).is_err());
        let too_many_requests = ReplayOptions { load_scale: 1000 };
        let error = compare(&fleet, &calls(201, 1_795_960_000.0), None, too_many_requests).unwrap_err();
        assert!(error.to_string().contains("pick a lower scale"), "{error}");
        // Calls spanning longer than the fleet's month of prices.
        let mut long = calls(2, 1_795_960_000.0);
        long[1].unix_s += 40.0 * 86_400.0;
        let error = compare(&fleet, &long, None, options).unwrap_err();
        assert!(error.to_string().contains("too few to replay"), "{error}");
    }
}
