//! `flywheel fleet ...` end to end: the shipped example fleet replayed under every policy and exported as
//! Kubernetes manifests, and bad input as one readable line with a non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/fleet")
        .join(name)
}

fn flywheel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn simulate_prints_one_json_object_per_policy_and_writes_charts() {
    let charts = tempfile::tempdir().unwrap();
    let fleet = data("example.toml");
    let trace = data("traces/azure_code_2023-11-16.csv");
    let output = flywheel(&[
        "fleet",
        "simulate",
        "--fleet",
        fleet.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--days",
        "0.05",
        "--load-scale",
        "5",
        "--json",
        "--charts",
        charts.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let reports: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(reports.len(), 6);
    for report in &reports {
        for key in [
            "policy",
            "requests",
            "energy_kwh",
            "energy_cost_usd",
            "carbon_kg",
            "p99_ttft_ms",
            "slo_attainment",
            "cap_violations",
        ] {
            assert!(report.get(key).is_some(), "{key} in {report}");
        }
    }
    let by = |name: &str| reports.iter().find(|report| report["policy"] == name).unwrap();
    let (nearest, multi) = (by("nearest"), by("multi-objective"));
    assert_eq!(nearest["requests"], multi["requests"]);
    assert!(multi["energy_cost_usd"].as_f64().unwrap() < nearest["energy_cost_usd"].as_f64().unwrap());
    assert!(multi["carbon_kg"].as_f64().unwrap() < nearest["carbon_kg"].as_f64().unwrap());
    assert_eq!(multi["cap_violations"], 0);
    let svg = std::fs::read_to_string(charts.path().join("policies.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("multi-objective"));
    assert!(charts.path().join("site-power-nearest.svg").exists());
}

#[test]
fn show_route_and_accelerators_answer() {
    let fleet = data("example.toml");
    let output = flywheel(&["fleet", "show", "--fleet", fleet.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("toronto"));
    let output = flywheel(&[
        "fleet",
        "route",
        "--fleet",
        fleet.to_str().unwrap(),
        "--region",
        "europe",
        "--at",
        "2023-11-16T18:00:00Z",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let explanation: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(explanation["policy"], "multi-objective");
    assert_eq!(explanation["candidates"].as_array().unwrap().len(), 56);
    let output = flywheel(&["fleet", "accelerators"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("trainium2"));
}

#[test]
fn bad_input_is_one_line_and_a_failure() {
    let directory = tempfile::tempdir().unwrap();
    let bad = directory.path().join("bad.toml");
    std::fs::write(&bad, "[[models]]\nname = \"m\"\nclass = \"70b\"\n\n[[sites]]\nname = \"s\"\nregion = \"r\"\nlat = 1.0\nlon = 1.0\npower_cap_mw = 1\npue = 1.1\nprice = { constant = 5 }\ncarbon = { constant = 5 }\nreplicas = [{ model = \"m\", accelerator = \"h900\" }]\n").unwrap();
    let trace = data("traces/azure_code_2023-11-16.csv");
    let example = data("example.toml");
    let simulate = |fleet: &Path, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "fleet",
            "simulate",
            "--fleet",
            fleet.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args
    };
    for args in [
        simulate(&bad, &[]),
        simulate(&example, &["--policy", "fastest"]),
        simulate(&example, &["--days", "60"]),
    ] {
        let output = flywheel(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    let output = flywheel(&[
        "fleet",
        "simulate",
        "--fleet",
        bad.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("bad.toml:14: sites 's'.replicas.accelerator: unknown accelerator 'h900'")
    );
}

#[test]
fn plan_places_grows_and_names_what_binds() {
    let fleet = data("example.toml");
    let demand = data("demand.csv");
    let plan_of = |demand: &Path, extra: &[&str]| {
        let mut args = vec![
            "fleet",
            "plan",
            "--fleet",
            fleet.to_str().unwrap(),
            "--demand",
            demand.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        flywheel(&args)
    };
    let output = plan_of(&demand, &["--growth", "1,2", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let plan = &body["plan"];
    assert_eq!(plan["totals"]["requests_per_s"], 50.0);
    let served: f64 = plan["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flow| flow["requests_per_s"].as_f64().unwrap())
        .sum();
    assert!((served - 50.0).abs() < 1e-6);
    for site in plan["sites"].as_array().unwrap() {
        assert!(
            site["peak_power_w"].as_f64().unwrap() <= site["power_cap_w"].as_f64().unwrap() + 1e-6,
            "{site}"
        );
    }
    assert_eq!(body["capacity"].as_array().unwrap().len(), 2);
    assert_eq!(body["sensitivity"].as_array().unwrap().len(), 7);

    let directory = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = directory.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let header = "model,region,requests_per_s,prompt_tokens,output_tokens\n";
    let too_much = write("too-much.csv", &format!("{header}llama-70b,us-east,500,2048,256\n"));
    let bad_rate = write("bad-rate.csv", &format!("{header}llama-70b,us-east,lots,2048,256\n"));
    for (demand, expected) in [
        (
            too_much.as_path(),
            "error: infeasible: power caps: serving the demand needs ",
        ),
        (
            bad_rate.as_path(),
            "bad-rate.csv:2: requests_per_s: 'lots' is not a number >= 0",
        ),
    ] {
        let output = plan_of(demand, &[]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let output = plan_of(&demand, &["--max-utilization", "1.5"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("max utilization must be in (0, 1]"));
}

fn export_k8s(fleet: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "fleet",
        "export",
        "k8s",
        "--fleet",
        fleet.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    flywheel(&args)
}

#[test]
fn export_k8s_writes_every_manifest_and_says_so() {
    let out = tempfile::tempdir().unwrap();
    let directory = out.path().join("manifests");
    let output = export_k8s(&data("example.toml"), &directory, &["--namespace", "inference"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let written: Vec<&str> = stdout
        .lines()
        .map(|line| line.strip_prefix("wrote ").unwrap())
        .collect();
    // Namespace, ConfigMap, the gateway's four objects, four per replica group (six), kustomization.yaml.
    assert_eq!(written.len(), 31, "{stdout}");
    for path in &written {
        assert!(
            Path::new(path).starts_with(&directory) && Path::new(path).is_file(),
            "{path}"
        );
    }
    let kustomization = std::fs::read_to_string(directory.join("kustomization.yaml")).unwrap();
    assert!(
        kustomization.contains("flywheel-gateway.deployment.yaml"),
        "{kustomization}"
    );
    let namespace = std::fs::read_to_string(directory.join("inference.namespace.yaml")).unwrap();
    assert!(namespace.contains("name: inference"), "{namespace}");
    let config = std::fs::read_to_string(directory.join("flywheel-config.configmap.yaml")).unwrap();
    assert!(config.contains("fleet.toml") && config.contains("virginia"), "{config}");
}

#[test]
fn export_k8s_failures_are_one_line() {
    let directory = tempfile::tempdir().unwrap();
    let a_file = directory.path().join("a-file");
    std::fs::write(&a_file, "not a directory").unwrap();
    let example = data("example.toml");
    let missing = directory.path().join("missing.toml");
    for (fleet, out, says) in [
        (&missing, directory.path().to_path_buf(), "missing.toml"),
        (&example, a_file.join("manifests"), "a-file/manifests"),
    ] {
        let output = export_k8s(fleet, &out, &[]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(says), "{stderr}");
    }
}
