//! `flywheel report`: the loop's figures for a time range (shoppers → model calls and tokens → forecast load →
//! the fleet plan's MW, cost and carbon), as tables or JSON.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use insights::{LoopOptions, LoopReport, PlanFigures};

/// `flywheel report` flags.
#[derive(Args)]
pub struct ReportArgs {
    /// Directory holding the database [default: ./.flywheel]
    #[arg(long, env = "FLYWHEEL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A shared PostgreSQL database instead of SQLite in the data directory
    #[arg(long, env = "FLYWHEEL_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Start of the range: RFC 3339 time or a date [default: 7 days before the current hour]
    #[arg(long)]
    from: Option<String>,
    /// End of the range (exclusive) [default: the end of the current hour; the hour in progress is shown but
    /// not fitted]
    #[arg(long)]
    to: Option<String>,
    /// Hours to forecast past the range
    #[arg(long, default_value_t = 48)]
    horizon: usize,
    /// Multiply the forecast before planning ("the store with this many times today's shoppers")
    #[arg(long, default_value_t = 1.0)]
    growth: f64,
    /// The fleet to plan on [default: the storefront fleet in <data-dir>/fleet]
    #[arg(long, env = "FLYWHEEL_FLEET")]
    fleet: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long)]
    json: bool,
}

/// Runs `flywheel report`.
pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(|| PathBuf::from(".flywheel"));
    let now_hour = jiff::Timestamp::now().as_second().div_euclid(3600);
    let to_hour = match &args.to {
        Some(text) => insights::unix_hour(text)?,
        None => now_hour + 1,
    };
    let from_hour = match &args.from {
        Some(text) => insights::unix_hour(text)?,
        None => to_hour - 7 * 24,
    };
    let options = LoopOptions {
        horizon_hours: args.horizon,
        growth: args.growth,
        ..LoopOptions::default()
    };
    let fleet = crate::loop_source::loop_fleet(args.fleet.as_deref(), &data_dir)?;
    let steps = crate::loop_source::REPORT_STEPS;
    let progress = indicatif::ProgressBar::new(steps.len() as u64 + 1).with_message("opening the database");
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.enable_steady_tick(std::time::Duration::from_millis(120));
    let db = crate::open_database(args.database_url.as_deref(), &data_dir).await?;
    let gateway = gateway::Gateway::open(db.clone(), None)
        .await
        .context("preparing the gateway's tables")?;
    let events = commerce::ShopperEvents::open(db.clone())
        .await
        .context("preparing the shopper events table")?;
    let ads = commerce::ads::Ads::open(db.clone(), commerce::ads::auction::AuctionRules::default())
        .await
        .context("preparing the ads tables")?;
    let source = crate::loop_source::LoopSource::new(db.clone(), gateway, events, Some(fleet))
        .with_ads(std::sync::Arc::new(ads));
    let report = source
        .report_in_steps(from_hour, to_hour, &options, |step| {
            progress.inc(1);
            progress.set_message(step);
        })
        .await;
    progress.finish_and_clear();
    db.close().await;
    let report = report?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report);
    }
    Ok(())
}

fn optional(value: Option<f64>, precision: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.precision$}"))
}

fn print_tables(report: &LoopReport) {
    outln!(
        "flywheel loop, {} to {} ({} hours)",
        report.from,
        report.to,
        report.hours
    );
    outln!("");
    outln!("shoppers: {} events", report.shoppers.events);
    for kind in &report.shoppers.by_kind {
        outln!("  {:<12} {:>10}", kind.name, kind.value);
    }
    let gateway = &report.gateway;
    outln!("");
    outln!(
        "gateway: {} requests ({} failed), {} prompt + {} output tokens, {:.4} USD",
        gateway.requests,
        gateway.failed,
        gateway.prompt_tokens,
        gateway.completion_tokens,
        gateway.cost_usd
    );
    outln!(
        "  {:<8} {:<28} {:>10} {:>12} {:>10}",
        "",
        "name",
        "requests",
        "tokens",
        "USD"
    );
    for (label, shares) in [
        ("tenant", &gateway.by_tenant),
        ("model", &gateway.by_model),
        ("feature", &gateway.by_feature),
    ] {
        for share in shares.iter() {
            outln!(
                "  {:<8} {:<28} {:>10} {:>12} {:>10.4}",
                label,
                share.name,
                share.requests,
                share.tokens,
                share.cost_usd
            );
        }
    }
    let conversion = &report.conversion;
    outln!("");
    outln!(
        "shoppers → models ({}): {} requests, {} tokens and {} USD per 1,000 events; {} of all tokens",
        conversion.shopper_tenant,
        optional(conversion.requests_per_shopper_event.map(|value| value * 1000.0), 1),
        optional(conversion.tokens_per_shopper_event.map(|value| value * 1000.0), 0),
        optional(conversion.cost_usd_per_1000_shopper_events, 4),
        optional(conversion.share_of_tokens.map(|value| value * 100.0), 1) + "%",
    );
    outln!("");
    outln!(
        "forecast, requests per hour for the next {} hours:",
        report.forecasts.first().map_or(0, |forecast| forecast.forecast.len())
    );
    outln!(
        "  {:<28} {:<13} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "model",
        "method",
        "last h",
        "mean",
        "peak90",
        "MAE",
        "vs naive"
    );
    for forecast in &report.forecasts {
        let mean =
            forecast.forecast.iter().map(|point| point.mean).sum::<f64>() / forecast.forecast.len().max(1) as f64;
        let method = serde_json::to_value(forecast.fitted.method)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        outln!(
            "  {:<28} {:<13} {:>9.0} {:>9.1} {:>9.1} {:>9} {:>9}",
            forecast.model,
            method,
            forecast.history.last().copied().unwrap_or(0.0),
            mean,
            forecast.peak_requests_per_hour,
            optional(forecast.backtest.map(|backtest| backtest.mae), 1),
            optional(forecast.backtest.map(|backtest| backtest.relative_mae), 2),
        );
    }
    outln!("");
    match &report.plan {
        PlanFigures::Planned {
            fleet,
            growth,
            demand,
            unplaced,
            sites,
            totals,
            ..
        } => {
            let requests: f64 = demand.iter().map(|row| row.requests_per_s).sum();
            outln!(
                "plan on fleet {fleet} for the forecast peak x{growth}: {requests:.3} requests/s on {} replicas",
                totals.replicas
            );
            outln!(
                "  {:<12} {:>8} {:>6} {:>9} {:>8} {:>6} {:>10} {:>9}",
                "site",
                "replicas",
                "chips",
                "peak MW",
                "cap MW",
                "cap %",
                "energy $/h",
                "CO2 kg/h"
            );
            for site in sites {
                outln!(
                    "  {:<12} {:>8} {:>6} {:>9.5} {:>8.4} {:>6.1} {:>10.4} {:>9.3}",
                    site.site,
                    site.replicas,
                    site.chips,
                    site.peak_mw,
                    site.cap_mw,
                    site.cap_used * 100.0,
                    site.energy_usd_per_h,
                    site.carbon_kg_per_h
                );
            }
            outln!(
                "  total {:.4} USD/h (hardware {:.4}, energy {:.4}, carbon {:.4}); capex {:.0} USD",
                totals.total_usd_per_h,
                totals.hardware_usd_per_h,
                totals.energy_usd_per_h,
                totals.carbon_usd_per_h,
                totals.capex_usd
            );
            if !unplaced.is_empty() {
                outln!("  not in the fleet, left out of the plan: {}", unplaced.join(", "));
            }
        }
        PlanFigures::NotPlanned { reason, unplaced } => {
            outln!("no plan: {reason}");
            if !unplaced.is_empty() {
                outln!("  not in the fleet: {}", unplaced.join(", "));
            }
        }
    }
}
