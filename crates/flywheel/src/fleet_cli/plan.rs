//! `flywheel fleet plan`: placement for a demand file, the capacity it grows into, and how the plan moves
//! when prices and headroom change.

use std::path::PathBuf;

use clap::Args;
use fleet::{CapacityStep, Demand, Fleet, Inventory, Plan, PlanOptions, Sensitivity};

/// `flywheel fleet plan` flags.
#[derive(Args)]
pub struct PlanArgs {
    /// The fleet description (TOML).
    #[arg(long)]
    fleet: PathBuf,
    /// Demand: CSV with model,region,requests_per_s,prompt_tokens,output_tokens and optionally slo.
    #[arg(long)]
    demand: PathBuf,
    /// The busiest a replica may be planned, in (0, 1].
    #[arg(long, default_value_t = 0.8)]
    max_utilization: f64,
    /// Multiplies every site's energy price.
    #[arg(long, default_value_t = 1.0)]
    energy_price_factor: f64,
    /// USD per tonne CO2e [default: the fleet's]
    #[arg(long)]
    carbon_price: Option<f64>,
    /// Demand multiples for the capacity table, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,1.25,1.5,2,3")]
    growth: Vec<f64>,
    /// Plan purchases: any number of the chip kinds each site has, instead of only those installed.
    #[arg(long)]
    expandable: bool,
    /// Print one JSON object with the plan, the capacity steps and the sensitivity table.
    #[arg(long)]
    json: bool,
}

/// Runs `flywheel fleet plan`.
pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    let fleet = Fleet::read(&args.fleet)?;
    let demand = Demand::read(&args.demand, &fleet)?;
    let options = PlanOptions {
        max_utilization: args.max_utilization,
        energy_price_factor: args.energy_price_factor,
        carbon_price_usd_per_tonne: args.carbon_price,
        inventory: if args.expandable {
            Inventory::Expandable
        } else {
            Inventory::Installed
        },
    };
    let plan = fleet::plan(&fleet, &demand, &options)?;
    let capacity = fleet::capacity(&fleet, &demand, &options, &args.growth)?;
    let sensitivity = fleet::sensitivity(&fleet, &demand, &plan)?;
    if args.json {
        let body = serde_json::json!({
            "fleet": fleet.name,
            "plan": plan,
            "capacity": capacity,
            "sensitivity": sensitivity,
        });
        outln!("{}", serde_json::to_string(&body)?);
    } else {
        print_plan(&fleet, &plan);
        print_capacity(&capacity);
        print_sensitivity(&sensitivity);
    }
    Ok(())
}

fn print_plan(fleet: &Fleet, plan: &Plan) {
    let totals = &plan.totals;
    outln!(
        "plan for fleet {}: {:.1} requests/s on {} replicas ({} chips), max utilization {:.2}, carbon at {:.0} USD/t",
        fleet.name,
        totals.requests_per_s,
        totals.replicas,
        totals.chips,
        plan.options.max_utilization,
        plan.carbon_price_usd_per_tonne
    );
    outln!(
        "{:<12} {:<12} {:<14} {:>8} {:>6} {:>9} {:>6}",
        "site",
        "accelerator",
        "model",
        "replicas",
        "chips",
        "req/s",
        "busy"
    );
    for placement in &plan.placements {
        outln!(
            "{:<12} {:<12} {:<14} {:>8} {:>6} {:>9.2} {:>5.0}%",
            placement.site,
            placement.accelerator,
            placement.model,
            placement.replicas,
            placement.chips,
            placement.requests_per_s,
            placement.utilization * 100.0
        );
    }
    outln!(
        "{:<12} {:<12} {:<10} {:<18} {:>8} {:>9} {:>9} {:>6}",
        "region",
        "slo",
        "model",
        "site",
        "req/s",
        "TTFT ms",
        "TPOT ms",
        "batch"
    );
    for flow in &plan.flows {
        outln!(
            "{:<12} {:<12} {:<10} {:<18} {:>8.2} {:>9.0} {:>9.1} {:>6}",
            flow.region,
            flow.slo,
            flow.model,
            format!("{}/{}", flow.site, flow.accelerator),
            flow.requests_per_s,
            flow.ttft_ms,
            flow.tpot_ms,
            flow.batch
        );
    }
    outln!(
        "{:<12} {:>8} {:>6} {:>9} {:>8} {:>9} {:>11} {:>10} {:>10}",
        "site",
        "replicas",
        "chips",
        "peak MW",
        "cap MW",
        "mean MW",
        "hardware $/h",
        "energy $/h",
        "CO2 kg/h"
    );
    for site in &plan.sites {
        outln!(
            "{:<12} {:>8} {:>6} {:>9.4} {:>8.4} {:>9.4} {:>11.2} {:>10.3} {:>10.2}",
            site.site,
            site.replicas,
            site.chips,
            site.peak_power_w / 1e6,
            site.power_cap_w / 1e6,
            site.mean_power_w / 1e6,
            site.hardware_usd_per_h,
            site.energy_usd_per_h,
            site.carbon_kg_per_h
        );
    }
    outln!(
        "total: {:.2} USD/h = hardware {:.2} + energy {:.3} + carbon {:.3} ({:.2} kg CO2e/h); {:.4} USD per 1M tokens",
        totals.total_usd_per_h,
        totals.hardware_usd_per_h,
        totals.energy_usd_per_h,
        totals.carbon_usd_per_h,
        totals.carbon_kg_per_h,
        totals.usd_per_million_tokens
    );
}

fn print_capacity(steps: &[CapacityStep]) {
    outln!("capacity as demand grows (chips beyond those installed are bought; power beyond a cap is a grid upgrade):");
    outln!(
        "{:>7} {:>8} {:>6} {:>6} {:>9} {:>10} {:>12} {:>13} {:>11}",
        "growth",
        "req/s",
        "chips",
        "buy",
        "peak MW",
        "grid +MW",
        "capex $",
        "opex $/year",
        "CO2 t/year"
    );
    for step in steps {
        let upgrade: f64 = step.sites.iter().map(|site| site.grid_upgrade_mw).sum();
        let carbon: f64 = step.sites.iter().map(|site| site.carbon_t_per_year).sum();
        outln!(
            "{:>6.2}x {:>8.1} {:>6} {:>6} {:>9.4} {:>10.4} {:>12.0} {:>13.0} {:>11.1}",
            step.growth,
            step.requests_per_s,
            step.totals.chips,
            step.totals.chips_to_buy,
            step.totals.peak_power_w / 1e6,
            upgrade,
            step.totals.capex_usd,
            step.opex_usd_per_year,
            carbon
        );
        let pressed: Vec<String> = step
            .sites
            .iter()
            .filter(|site| site.chips_to_buy > 0 || site.grid_upgrade_mw > 0.0)
            .map(|site| {
                format!(
                    "{} +{} chips, {:.4} MW over its {:.3} MW cap",
                    site.site, site.chips_to_buy, site.grid_upgrade_mw, site.power_cap_mw
                )
            })
            .collect();
        if !pressed.is_empty() {
            outln!("         {}", pressed.join("; "));
        }
    }
}

fn print_sensitivity(rows: &[Sensitivity]) {
    outln!("sensitivity (the plan re-solved with one input changed):");
    outln!(
        "{:<28} {:>9} {:>12} {:>10} {:>9} {:>8}  moved",
        "case",
        "total $/h",
        "hardware $/h",
        "energy $/h",
        "CO2 kg/h",
        "replicas"
    );
    for row in rows {
        match (&row.totals, &row.infeasible) {
            (Some(totals), _) => outln!(
                "{:<28} {:>9.2} {:>12.2} {:>10.3} {:>9.2} {:>8}  {}",
                row.case,
                totals.total_usd_per_h,
                totals.hardware_usd_per_h,
                totals.energy_usd_per_h,
                totals.carbon_kg_per_h,
                totals.replicas,
                row.moved.join(", ")
            ),
            (None, infeasible) => outln!(
                "{:<28} infeasible: {}",
                row.case,
                infeasible.as_deref().unwrap_or("no plan")
            ),
        }
    }
}
