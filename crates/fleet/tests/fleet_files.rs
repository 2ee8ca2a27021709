//! The shipped example fleet and trace load, and bad fleet files fail with the file, line and field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use fleet::{Fleet, FleetState, Policy, RouteRequest, Router, Trace};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fleet")
}

#[test]
fn the_example_fleet_and_trace_load() {
    let fleet = Fleet::read(&data().join("example.toml")).unwrap();
    assert_eq!(fleet.sites.len(), 6);
    assert_eq!(fleet.replicas.len(), 56);
    assert!(
        fleet.sites.iter().all(|site| site.price.values().len() == 720),
        "November 2023, hourly"
    );
    let trace = Trace::read(&data().join("traces/azure_code_2023-11-16.csv")).unwrap();
    assert_eq!(trace.requests.len(), 8819);
}

#[test]
fn the_router_explains_and_decides_fast_enough_to_stay_out_of_the_way() {
    let fleet = Fleet::read(&data().join("example.toml")).unwrap();
    let router = Router::new(std::sync::Arc::new(fleet.clone()));
    let mut state = FleetState::idle(&fleet, 1_700_157_600.0);
    let request = RouteRequest {
        model: 0,
        prompt_tokens: 2000,
        output_tokens: 200,
        region: 0,
        slo: 0,
    };
    let explanation = router.explain(Policy::MultiObjective, &mut state, &request);
    assert_eq!(explanation.candidates.len(), 56);
    let chosen = explanation.chosen.unwrap();
    assert!(
        chosen.starts_with("toronto/"),
        "cheap, clean and 13 ms from us-east: {chosen}"
    );
    for policy in Policy::ALL {
        assert!(router.choose(policy, &mut state, &request).is_some(), "{policy:?}");
    }
}

fn error_of(text: &str) -> String {
    Fleet::parse(&data().join("bad.toml"), text).unwrap_err().to_string()
}

#[test]
fn bad_fleets_name_the_file_line_and_field() {
    let example = std::fs::read_to_string(data().join("example.toml")).unwrap();
    let unknown = example.replacen(
        "accelerator = \"h100\", count = 10, endpoint",
        "accelerator = \"h900\", count = 10, endpoint",
        1,
    );
    let error = error_of(&unknown);
    assert!(
        error.contains("bad.toml:")
            && error.contains("sites 'virginia'.replicas.accelerator: unknown accelerator 'h900'"),
        "{error}"
    );
    let line: usize = error.split(':').nth(1).unwrap().parse().unwrap();
    assert!(
        unknown.lines().nth(line - 1).unwrap().contains("h900"),
        "line {line} holds the bad value"
    );
    let error = error_of(&example.replacen("power_cap_mw = 0.016", "power_cap_mw = -1", 1));
    assert!(
        error.contains("power_cap_mw: must be a number of megawatts above 0"),
        "{error}"
    );
    let error = error_of(&example.replace("negative_prices = \"allow\"\n", ""));
    assert!(
        error.contains("_2023-11.csv:") && error.contains("negative price"),
        "{error}"
    );
    let error = error_of(&example.replacen("pue = 1.15", "pue = 115", 1));
    assert!(error.contains("is not a PUE"), "{error}");
    let error = error_of("[[models]]\nname = \"m\"\nclass = \"900b\"\n");
    assert!(
        error.starts_with(&format!("{}:3:", data().join("bad.toml").display())),
        "{error}"
    );
    let error = error_of("[[models]\n");
    assert!(error.contains("bad.toml:1: toml:"), "{error}");
}
