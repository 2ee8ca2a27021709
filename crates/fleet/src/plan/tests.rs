//! The planner against the shipped example, infeasible inputs, and brute-force enumeration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::demand::tests::{example, shipped};

fn example_demand(fleet: &Fleet) -> Demand {
    Demand::read(&shipped("demand.csv"), fleet).unwrap()
}

fn demand_of(fleet: &Fleet, csv: &str) -> Demand {
    Demand::parse(Path::new("demand.csv"), csv, fleet).unwrap()
}

/// Checks every promise a plan makes against the fleet, independently of the solver.
fn assert_honours_every_constraint(fleet: &Fleet, demand: &Demand, plan: &Plan) {
    for row in &demand.rows {
        let model = &fleet.models[row.model].name;
        let region = &fleet.user_regions[row.region].name;
        let (slo_name, slo) = &fleet.slo_classes[row.slo];
        let flows: Vec<&Flow> = plan
            .flows
            .iter()
            .filter(|flow| (&flow.model, &flow.region, &flow.slo) == (model, region, slo_name))
            .collect();
        let served: f64 = flows.iter().map(|flow| flow.requests_per_s).sum();
        assert!((served - row.requests_per_s).abs() < 1e-6, "{model}/{region}: {served}");
        for flow in flows {
            assert!(flow.ttft_ms <= slo.ttft_ms && flow.tpot_ms <= slo.tpot_ms, "{flow:?}");
        }
    }
    for placement in &plan.placements {
        assert!(
            placement.utilization <= plan.options.max_utilization + 1e-6,
            "{placement:?}"
        );
    }
    for (site, site_plan) in fleet.sites.iter().zip(&plan.sites) {
        assert!(site_plan.peak_power_w <= site.power_cap_w + 1e-6, "{site_plan:?}");
        for (name, installed) in &site.accelerators_available {
            let used: u32 = plan
                .placements
                .iter()
                .filter(|placement| placement.site == site.name && placement.accelerator == *name)
                .map(|placement| placement.chips)
                .sum();
            assert!(used <= *installed, "{} uses {used} {name} of {installed}", site.name);
        }
    }
}

#[test]
fn the_example_plan_serves_all_demand_within_slos_caps_and_chips() {
    let fleet = example();
    let demand = example_demand(&fleet);
    let plan = plan(&fleet, &demand, &PlanOptions::default()).unwrap();
    assert_honours_every_constraint(&fleet, &demand, &plan);
    assert_eq!(plan.totals.requests_per_s, 50.0);
    assert!(plan.totals.replicas > 0 && plan.totals.chips_to_buy == 0);
    let parts = plan.totals.hardware_usd_per_h + plan.totals.energy_usd_per_h + plan.totals.carbon_usd_per_h;
    assert!((plan.totals.total_usd_per_h - parts).abs() < 1e-9);
}

#[test]
fn a_higher_carbon_price_never_raises_carbon() {
    let fleet = example();
    let demand = example_demand(&fleet);
    let base = plan(&fleet, &demand, &PlanOptions::default()).unwrap();
    let rows = sensitivity(&fleet, &demand, &base).unwrap();
    let carbon = |case: &str| {
        let row = rows.iter().find(|row| row.case.starts_with(case)).unwrap();
        row.totals.as_ref().unwrap().carbon_kg_per_h
    };
    assert!(carbon("carbon price x2") <= carbon("base") + 1e-9);
    assert!(carbon("base") <= carbon("carbon price 0") + 1e-9);
    assert_eq!(rows.len(), 7);
}

#[test]
fn demand_above_every_cap_names_the_power_caps() {
    let fleet = example();
    let demand = example_demand(&fleet).scaled(4.0);
    let error = plan(&fleet, &demand, &PlanOptions::default()).unwrap_err().to_string();
    assert!(
        error.starts_with("infeasible: power caps: serving the demand needs "),
        "{error}"
    );
    assert!(
        error.contains("MW more than the sites' caps allow (0.078 MW in all)"),
        "{error}"
    );
    assert!(error.contains(" MW against its 0.0"), "{error}");
}

#[test]
fn too_few_chips_names_the_site_and_the_chips() {
    let mut fleet = example();
    for site in &mut fleet.sites {
        site.power_cap_w *= 100.0;
    }
    let demand = example_demand(&fleet).scaled(40.0);
    let error = plan(&fleet, &demand, &PlanOptions::default()).unwrap_err().to_string();
    assert!(error.starts_with("infeasible: chips at "), "{error}");
    assert!(error.contains("the demand needs"), "{error}");
}

#[test]
fn demand_no_site_can_serve_in_time_names_the_slo_and_the_nearest_sites() {
    let fleet = example();
    let header = "model,region,requests_per_s,prompt_tokens,output_tokens,slo\n";
    let demand = demand_of(&fleet, &format!("{header}llama-70b,asia,1,20000,100,interactive\n"));
    let error = plan(&fleet, &demand, &PlanOptions::default()).unwrap_err().to_string();
    assert!(
        error.starts_with("infeasible: 1 requests/s of llama-70b from asia (interactive: TTFT 2000 ms, TPOT 100 ms)"),
        "{error}"
    );
    assert!(error.contains("nearest: tokyo/"), "{error}");
    assert!(error.contains("above the 2000 ms TTFT target"), "{error}");
    let demand = demand_of(&fleet, &format!("{header}llama-70b,asia,1,900000,100,batch\n"));
    let error = plan(&fleet, &demand, &PlanOptions::default()).unwrap_err().to_string();
    assert!(
        error.contains("no room beside the weights for one 900100-token context"),
        "{error}"
    );
}

#[test]
fn capacity_buys_chips_and_grid_as_demand_grows() {
    let fleet = example();
    let demand = example_demand(&fleet);
    let steps = capacity(&fleet, &demand, &PlanOptions::default(), &[1.0, 3.0]).unwrap();
    assert_eq!(steps.len(), 2);
    assert!(steps[1].totals.chips > steps[0].totals.chips);
    let upgrade: f64 = steps[1].sites.iter().map(|site| site.grid_upgrade_mw).sum();
    assert!(upgrade > 0.0, "3x the demand cannot fit the example's caps");
    assert!(steps[0].sites.iter().all(|site| site.grid_upgrade_mw == 0.0));
    assert!(capacity(&fleet, &demand, &PlanOptions::default(), &[0.0]).is_err());
}

#[test]
fn bad_options_are_refused() {
    let fleet = example();
    let demand = example_demand(&fleet);
    for options in [
        PlanOptions {
            max_utilization: 0.0,
            ..PlanOptions::default()
        },
        PlanOptions {
            energy_price_factor: -1.0,
            ..PlanOptions::default()
        },
        PlanOptions {
            carbon_price_usd_per_tonne: Some(f64::NAN),
            ..PlanOptions::default()
        },
    ] {
        assert!(matches!(plan(&fleet, &demand, &options), Err(FleetError::Unknown(_))));
    }
}

/// A two-site fleet small enough to enumerate every replica count.
fn small_fleet(caps_kw: [f64; 2], chips: [[u32; 2]; 2], prices: [f64; 2], carbon: [f64; 2]) -> Fleet {
    let mut text = String::from("[[models]]\nname = \"m\"\nclass = \"70b\"\n");
    for site in 0..2 {
        text.push_str(&format!(
            "[[sites]]\nname = \"s{site}\"\nregion = \"r{site}\"\nlat = {}\nlon = -80\npower_cap_mw = {}\npue = 1.2\n\
             price = {{ constant = {} }}\ncarbon = {{ constant = {} }}\n\
             accelerators_available = {{ b200 = {}, mi300x = {} }}\n",
            35 + site * 10,
            caps_kw[site] / 1e3,
            prices[site],
            carbon[site],
            chips[site][0],
            chips[site][1],
        ));
    }
    text.push_str("[[user_regions]]\nname = \"north\"\nlat = 45\nlon = -80\nshare = 0.5\n");
    text.push_str("[[user_regions]]\nname = \"south\"\nlat = 35\nlon = -80\nshare = 0.5\n");
    Fleet::parse(Path::new("small.toml"), &text).unwrap()
}

/// The cheapest plan found by trying every replica count within the bounds and routing optimally (an LP)
/// for each; `None` when no count serves the demand.
fn brute_force_optimum(problem: &Problem) -> Option<f64> {
    let bounds: Vec<u32> = (0..problem.pools.len())
        .map(|pool| problem.replica_bound(pool, false))
        .collect();
    let mut counts = vec![0u32; bounds.len()];
    let mut best: Option<f64> = None;
    loop {
        if let Some(cost) = cost_with_counts(problem, &counts) {
            best = Some(best.map_or(cost, |best: f64| best.min(cost)));
        }
        let Some(position) = (0..counts.len()).find(|index| counts[*index] < bounds[*index]) else {
            return best;
        };
        counts[position] += 1;
        counts[..position].iter_mut().for_each(|count| *count = 0);
    }
}

fn cost_with_counts(problem: &Problem, counts: &[u32]) -> Option<f64> {
    for pools in problem.inventory_groups().values() {
        let chips: u32 = pools
            .iter()
            .map(|pool| counts[*pool] * problem.pools[*pool].chips_per_replica)
            .sum();
        let installed = problem.pools[pools[0]].installed_chips;
        if chips > installed {
            return None;
        }
    }
    for (site_index, site) in problem.fleet.sites.iter().enumerate() {
        let peak: f64 = problem
            .pools
            .iter()
            .zip(counts)
            .filter(|(pool, _)| pool.site == site_index)
            .map(|(pool, count)| pool.peak_w_per_replica * *count as f64)
            .sum();
        if peak > site.power_cap_w {
            return None;
        }
    }
    let mut variables = ProblemVariables::new();
    let flows: Vec<Variable> = problem
        .candidates
        .iter()
        .map(|_| variables.add(variable().min(0)))
        .collect();
    let mut objective = Expression::default();
    for (candidate, flow) in problem.candidates.iter().zip(&flows) {
        objective.add_mul(candidate.dynamic_j * problem.pools[candidate.pool].usd_per_w_h, *flow);
    }
    let mut model = variables.minimise(objective.clone()).using(good_lp::microlp);
    for (row_index, row) in problem.demand.rows.iter().enumerate() {
        let mut served = Expression::default();
        for (candidate, flow) in problem.candidates.iter().zip(&flows) {
            if candidate.row == row_index {
                served.add_mul(1.0, *flow);
            }
        }
        model.add_constraint(served.eq(row.requests_per_s));
    }
    for (pool_index, count) in counts.iter().enumerate() {
        let mut busy = Expression::default();
        for (candidate, flow) in problem.candidates.iter().zip(&flows) {
            if candidate.pool == pool_index {
                busy.add_mul(candidate.service_s, *flow);
            }
        }
        model.add_constraint(busy.leq(problem.options.max_utilization * *count as f64));
    }
    let solution = model.solve().ok()?;
    let fixed: f64 = problem
        .pools
        .iter()
        .zip(counts)
        .map(|(pool, count)| {
            *count as f64 * (pool.hardware_usd_per_h_per_replica + pool.idle_w_per_replica * pool.usd_per_w_h)
        })
        .sum();
    Some(fixed + objective.eval_with(&solution))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_planner_finds_the_enumerated_optimum(
        caps_kw in prop::array::uniform2(1.0f64..6.0),
        chips in prop::array::uniform2(prop::array::uniform2(0u32..4)),
        prices in prop::array::uniform2(0.0f64..200.0),
        carbon in prop::array::uniform2(0.0f64..800.0),
        rates in prop::array::uniform2(0.5f64..4.0),
    ) {
        let fleet = small_fleet(caps_kw, chips, prices, carbon);
        let demand = demand_of(
            &fleet,
            &format!(
                "model,region,requests_per_s,prompt_tokens,output_tokens\nm,north,{},1500,200\nm,south,{},800,300\n",
                rates[0], rates[1]
            ),
        );
        let options = PlanOptions::default();
        let expected = Problem::new(&fleet, &demand, &options).ok().and_then(|problem| brute_force_optimum(&problem));
        match (plan(&fleet, &demand, &options), expected) {
            (Ok(plan), Some(optimum)) => {
                assert_honours_every_constraint(&fleet, &demand, &plan);
                prop_assert!(
                    (plan.totals.total_usd_per_h - optimum).abs() <= 1e-6 * optimum.max(1.0),
                    "planner {} vs enumerated {optimum}", plan.totals.total_usd_per_h
                );
            }
            (Err(FleetError::Infeasible { binding }), None) => prop_assert!(!binding.is_empty()),
            (got, expected) => prop_assert!(false, "planner {got:?} vs enumerated {expected:?}"),
        }
    }
}
