//! Replay speed: the example fleet and the Azure code trace, one simulated day at 20 copies, per policy;
//! prints simulated requests per second of wall time. `cargo bench -p fleet --bench replay`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;

use fleet::{Fleet, Policy, SimulationOptions, Trace, simulate};

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fleet");
    let fleet = Fleet::read(&data.join("example.toml")).unwrap();
    let trace = Trace::read(&data.join("traces/azure_code_2023-11-16.csv")).unwrap();
    for policy in Policy::ALL {
        let options = SimulationOptions {
            policy,
            days: 1.0,
            load_scale: 20,
            start_unix_s: None,
            model: 0,
        };
        let reports: Vec<_> = (0..3).map(|_| simulate(&fleet, &trace, &options).unwrap()).collect();
        let mut rates: Vec<f64> = reports.iter().map(|report| report.requests_per_wall_s).collect();
        rates.sort_by(f64::total_cmp);
        // The figures show that a faster router still makes the same decisions (compare docs/fleet.md).
        println!(
            "{:<16} {:>12.0} simulated requests/s (median of 3); energy {:.2} USD, carbon {:.1} kg, SLO {:.2}%",
            policy.name(),
            rates[1],
            reports[0].energy_cost_usd,
            reports[0].carbon_kg,
            reports[0].slo_attainment * 100.0
        );
    }
}
