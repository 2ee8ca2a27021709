//! `flywheel fleet ...`: show a fleet, explain a routing decision, replay traces through it under each
//! policy, plan placement and capacity, and export Kubernetes manifests.

mod plan;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use fleet::{Fleet, FleetState, K8sOptions, Policy, RouteRequest, Router, SimulationOptions, Trace};

/// `flywheel fleet` flags.
#[derive(Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Print the fleet's sites, replicas and user regions.
    Show {
        /// The fleet description (TOML).
        #[arg(long)]
        fleet: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the accelerator profiles (power, memory, cost, speed per model class) with their sources.
    Accelerators {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Explain where one request would go under a policy, with every candidate's scores.
    Route {
        /// The fleet description (TOML).
        #[arg(long)]
        fleet: PathBuf,
        /// The model [default: the fleet's first]
        #[arg(long)]
        model: Option<String>,
        /// The user region [default: the fleet's first]
        #[arg(long)]
        region: Option<String>,
        /// The SLO class [default: the fleet's first]
        #[arg(long)]
        slo: Option<String>,
        /// Prompt tokens.
        #[arg(long, default_value_t = 1000)]
        prompt_tokens: u32,
        /// Output tokens expected.
        #[arg(long, default_value_t = 200)]
        output_tokens: u32,
        /// The policy.
        #[arg(long, default_value = "multi-objective", value_parser = parse_policy)]
        policy: Policy,
        /// When (UTC, e.g. 2023-11-16T18:00:00Z) for the hour's price and carbon [default: now]
        #[arg(long)]
        at: Option<String>,
    },
    /// Place replicas for a demand file within power caps, chips and SLOs at the least cost, then grow the
    /// demand into a capacity plan and show how the plan moves with prices and headroom.
    Plan(plan::PlanArgs),
    /// Replay a request trace through the fleet under each policy; one report per policy.
    Simulate {
        /// The fleet description (TOML).
        #[arg(long)]
        fleet: PathBuf,
        /// The trace: Azure LLM inference CSV, Mooncake JSON Lines, or CSV with timestamp, prompt_tokens,
        /// output_tokens.
        #[arg(long)]
        trace: PathBuf,
        /// A policy name, or `all`.
        #[arg(long, default_value = "all")]
        policy: String,
        /// Days to simulate (the trace repeats back to back).
        #[arg(long, default_value_t = 1.0)]
        days: f64,
        /// Copies of the trace replayed together, to reach a fleet-sized load.
        #[arg(long, default_value_t = 1)]
        load_scale: u32,
        /// When to start (UTC) [default: the trace's own date]
        #[arg(long)]
        start: Option<String>,
        /// The model the trace's requests ask for [default: the fleet's first]
        #[arg(long)]
        model: Option<String>,
        /// Write SVG charts into this directory.
        #[arg(long)]
        charts: Option<PathBuf>,
        /// Print one JSON object per policy, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Write deployment manifests for the fleet.
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
}

#[derive(Subcommand)]
enum ExportTarget {
    /// Kubernetes: a namespace, the gateway, and a vLLM Deployment with its Service, autoscaler and
    /// disruption budget per replica group, plus a kustomization.yaml (`kubectl apply -k OUT`).
    K8s {
        /// The fleet description (TOML).
        #[arg(long)]
        fleet: PathBuf,
        /// The directory to write into (created when missing).
        #[arg(long)]
        out: PathBuf,
        /// The namespace [default: flywheel]
        #[arg(long)]
        namespace: Option<String>,
        /// The gateway's image [default: flywheel:latest]
        #[arg(long)]
        gateway_image: Option<String>,
        /// The model servers' image [default: vllm/vllm-openai:latest]
        #[arg(long)]
        model_image: Option<String>,
    },
}

fn parse_policy(name: &str) -> Result<Policy, String> {
    Policy::parse(name).ok_or_else(|| {
        format!(
            "unknown policy '{name}'; known: {}",
            Policy::ALL
                .iter()
                .map(|policy| policy.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn parse_time(text: &str) -> anyhow::Result<f64> {
    let timestamp: jiff::Timestamp = text
        .parse()
        .or_else(|_| {
            text.replace('T', " ")
                .parse::<jiff::civil::DateTime>()
                .and_then(|civil| civil.to_zoned_datetime(jiff::tz::TimeZone::UTC))
                .map(|zoned| zoned.timestamp())
        })
        .with_context(|| format!("'{text}' is not a UTC time such as 2023-11-16T18:00:00Z"))?;
    Ok(timestamp.as_second() as f64)
}

fn lookup(
    what: &str,
    name: Option<&str>,
    find: impl Fn(&str) -> Option<usize>,
    known: Vec<&str>,
) -> anyhow::Result<usize> {
    match name {
        None => Ok(0),
        Some(name) => find(name).with_context(|| format!("no {what} '{name}'; known: {}", known.join(", "))),
    }
}

/// Runs a `flywheel fleet` command.
pub fn run(args: FleetArgs) -> anyhow::Result<()> {
    match args.command {
        FleetCommand::Show { fleet, json } => show(&Fleet::read(&fleet)?, json),
        FleetCommand::Plan(args) => plan::run(args),
        FleetCommand::Accelerators { json } => accelerators(json),
        FleetCommand::Route {
            fleet,
            model,
            region,
            slo,
            prompt_tokens,
            output_tokens,
            policy,
            at,
        } => {
            let fleet = Fleet::read(&fleet)?;
            let request = RouteRequest {
                model: lookup(
                    "model",
                    model.as_deref(),
                    |name| fleet.model_index(name),
                    fleet.models.iter().map(|m| m.name.as_str()).collect(),
                )?,
                region: lookup(
                    "region",
                    region.as_deref(),
                    |name| fleet.region_index(name),
                    fleet.user_regions.iter().map(|r| r.name.as_str()).collect(),
                )?,
                slo: lookup(
                    "SLO class",
                    slo.as_deref(),
                    |name| fleet.slo_index(name),
                    fleet.slo_classes.iter().map(|(name, _)| name.as_str()).collect(),
                )?,
                prompt_tokens,
                output_tokens,
            };
            let at = match at {
                Some(at) => parse_time(&at)?,
                None => jiff::Timestamp::now().as_second() as f64,
            };
            let mut state = FleetState::idle(&fleet, at);
            let explanation = Router::new(std::sync::Arc::new(fleet.clone())).explain(policy, &mut state, &request);
            outln!("{}", serde_json::to_string_pretty(&explanation)?);
            Ok(())
        }
        FleetCommand::Simulate {
            fleet: fleet_path,
            trace,
            policy,
            days,
            load_scale,
            start,
            model,
            charts,
            json,
        } => {
            let fleet = Fleet::read(&fleet_path)?;
            let trace = Trace::read(&trace)?;
            let policies = if policy == "all" {
                Policy::ALL.to_vec()
            } else {
                vec![parse_policy(&policy).map_err(anyhow::Error::msg)?]
            };
            anyhow::ensure!(days.is_finite() && days > 0.0, "--days must be above 0");
            anyhow::ensure!(load_scale >= 1, "--load-scale must be at least 1");
            let model = lookup(
                "model",
                model.as_deref(),
                |name| fleet.model_index(name),
                fleet.models.iter().map(|m| m.name.as_str()).collect(),
            )?;
            let start_unix_s = start.as_deref().map(parse_time).transpose()?;
            let reports = simulate_policies(&fleet, &trace, &policies, days, load_scale, start_unix_s, model)?;
            if let Some(directory) = charts {
                for path in fleet::write_simulation_charts(&directory, &reports)? {
                    eprintln!("wrote {}", path.display());
                }
            }
            if json {
                for report in &reports {
                    outln!("{}", serde_json::to_string(report)?);
                }
            } else {
                print_simulation_table(&reports);
            }
            Ok(())
        }
        FleetCommand::Export {
            target:
                ExportTarget::K8s {
                    fleet: fleet_path,
                    out,
                    namespace,
                    gateway_image,
                    model_image,
                },
        } => {
            // Read once: the same text is parsed and kept in the ConfigMap.
            let fleet_toml = std::fs::read_to_string(&fleet_path).map_err(|cause| fleet::FleetError::Io {
                path: fleet_path.clone(),
                cause,
            })?;
            let fleet = Fleet::parse(&fleet_path, &fleet_toml)?;
            // Unset flags keep the library's defaults, so they are written down in one place.
            let defaults = K8sOptions::default();
            let options = K8sOptions {
                namespace: namespace.unwrap_or(defaults.namespace),
                gateway_image: gateway_image.unwrap_or(defaults.gateway_image),
                model_image: model_image.unwrap_or(defaults.model_image),
                fleet_toml: Some(fleet_toml),
            };
            let manifests = fleet::kubernetes_manifests(&fleet, &options)?;
            for path in fleet::write_kubernetes_manifests(&out, &manifests)? {
                outln!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}

/// Runs each policy's replay, two at a time (the machines we target have few cores).
fn simulate_policies(
    fleet: &Fleet,
    trace: &Trace,
    policies: &[Policy],
    days: f64,
    load_scale: u32,
    start_unix_s: Option<f64>,
    model: usize,
) -> anyhow::Result<Vec<fleet::SimulationReport>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(policies.len())
        .max(1);
    let mut reports: Vec<Option<anyhow::Result<fleet::SimulationReport>>> = (0..policies.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        for (worker, chunk) in reports.chunks_mut(policies.len().div_ceil(workers)).enumerate() {
            let offset = worker * policies.len().div_ceil(workers);
            scope.spawn(move || {
                for (index, slot) in chunk.iter_mut().enumerate() {
                    let options = SimulationOptions {
                        policy: policies[offset + index],
                        days,
                        load_scale,
                        start_unix_s,
                        model,
                    };
                    *slot = Some(fleet::simulate(fleet, trace, &options).map_err(anyhow::Error::from));
                }
            });
        }
    });
    reports
        .into_iter()
        .map(|report| report.unwrap_or_else(|| Err(anyhow::anyhow!("a simulation thread stopped"))))
        .collect()
}

fn print_simulation_table(reports: &[fleet::SimulationReport]) {
    outln!(
        "{:<16} {:>10} {:>11} {:>12} {:>11} {:>9} {:>9} {:>9} {:>8} {:>6} {:>11}",
        "policy",
        "requests",
        "energy kWh",
        "energy $",
        "carbon kg",
        "$/1M tok",
        "p50 TTFT",
        "p99 TTFT",
        "p99 TPOT",
        "SLO %",
        "cap breaks"
    );
    for report in reports {
        outln!(
            "{:<16} {:>10} {:>11.1} {:>12.2} {:>11.1} {:>9.3} {:>9.0} {:>9.0} {:>8.1} {:>6.2} {:>11}",
            report.policy,
            report.requests,
            report.energy_kwh,
            report.energy_cost_usd,
            report.carbon_kg,
            report.cost_per_mtok_usd,
            report.p50_ttft_ms,
            report.p99_ttft_ms,
            report.p99_tpot_ms,
            report.slo_attainment * 100.0,
            report.cap_violations
        );
    }
    if let Some(baseline) = reports.iter().find(|report| report.policy == "nearest") {
        for report in reports.iter().filter(|report| report.policy != "nearest") {
            outln!(
                "{} vs nearest (latency-only): energy cost {:+.1}%, carbon {:+.1}%",
                report.policy,
                percent_change(baseline.energy_cost_usd, report.energy_cost_usd),
                percent_change(baseline.carbon_kg, report.carbon_kg)
            );
        }
    }
    let requests: u64 = reports.iter().map(|report| report.requests).sum();
    let wall: f64 = reports.iter().map(|report| report.wall_s).sum();
    outln!(
        "simulated {requests} requests in {wall:.2} s of replay time ({:.0} requests/s)",
        requests as f64 / wall.max(1e-9)
    );
}

fn percent_change(baseline: f64, value: f64) -> f64 {
    if baseline == 0.0 {
        0.0
    } else {
        (value - baseline) / baseline.abs() * 100.0
    }
}

fn show(fleet: &Fleet, json: bool) -> anyhow::Result<()> {
    let peak = fleet.site_peak_w();
    if json {
        let sites: Vec<_> = fleet
            .sites
            .iter()
            .enumerate()
            .map(|(index, site)| {
                serde_json::json!({
                    "site": site,
                    "replicas": fleet.replicas.iter().filter(|replica| replica.site == index).map(|replica| &replica.name).collect::<Vec<_>>(),
                    "peak_mw": peak[index] / 1e6,
                    "mean_price_usd_per_mwh": site.price.mean(),
                    "mean_carbon_g_per_kwh": site.carbon.mean(),
                })
            })
            .collect();
        let body = serde_json::json!({
            "name": fleet.name,
            "carbon_price_usd_per_tonne": fleet.carbon_price_usd_per_tonne,
            "models": fleet.models,
            "slo_classes": fleet.slo_classes,
            "sites": sites,
            "user_regions": fleet.user_regions,
            "latency_ms": fleet.latency_ms,
        });
        outln!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    outln!(
        "fleet {} ({} sites, {} replicas)",
        fleet.name,
        fleet.sites.len(),
        fleet.replicas.len()
    );
    outln!(
        "{:<12} {:<15} {:>7} {:>5} {:>8} {:>9} {:>9} {:>9}",
        "site",
        "region",
        "cap MW",
        "PUE",
        "peak MW",
        "$/MWh",
        "gCO2/kWh",
        "replicas"
    );
    for (index, site) in fleet.sites.iter().enumerate() {
        outln!(
            "{:<12} {:<15} {:>7.3} {:>5.2} {:>8.3} {:>9.1} {:>9.0} {:>9}",
            site.name,
            site.region,
            site.power_cap_w / 1e6,
            site.pue,
            peak[index] / 1e6,
            site.price.mean(),
            site.carbon.mean(),
            fleet.replicas.iter().filter(|replica| replica.site == index).count()
        );
    }
    outln!("user regions (share; round trip to each site in ms):");
    for (index, region) in fleet.user_regions.iter().enumerate() {
        let latencies: Vec<String> = fleet
            .sites
            .iter()
            .zip(&fleet.latency_ms[index])
            .map(|(site, ms)| format!("{} {ms:.0}", site.name))
            .collect();
        outln!(
            "  {:<12} {:>5.1}%  {}",
            region.name,
            region.share * 100.0,
            latencies.join(", ")
        );
    }
    Ok(())
}

fn accelerators(json: bool) -> anyhow::Result<()> {
    let catalog = fleet::AcceleratorCatalog::built_in()?;
    if json {
        outln!("{}", serde_json::to_string_pretty(catalog.all())?);
        return Ok(());
    }
    outln!(
        "{:<12} {:>7} {:>8} {:>7} {:>9} {:>8} {:>8}  classes",
        "accelerator",
        "mem GB",
        "TB/s",
        "idle W",
        "prefill W",
        "decode W",
        "$/hour"
    );
    for accelerator in catalog.all() {
        outln!(
            "{:<12} {:>7.0} {:>8.2} {:>7.0} {:>9.0} {:>8.0} {:>8.2}  {}",
            accelerator.name,
            accelerator.memory_gb,
            accelerator.memory_bandwidth_tb_s,
            accelerator.idle_w,
            accelerator.prefill_w,
            accelerator.decode_w,
            accelerator.hourly_cost_usd(),
            accelerator.classes.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}
