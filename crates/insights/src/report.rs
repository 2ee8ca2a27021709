//! The loop's figures for a time range: shoppers → model calls and tokens → forecast load per model → the
//! fleet plan that serves the forecast peak (replicas, MW per site against its cap, energy cost, carbon, capex).

use std::collections::BTreeMap;

use fleet::{CapacityStep, Demand, DemandRow, Fleet, Placement, PlanOptions, PlanTotals, Sensitivity};
use serde::Serialize;

use crate::demand::{dense, hour_label, totals_by};
use crate::forecast::{self, Backtest, Fitted, ForecastPoint};
use crate::{InsightsError, LedgerHour, ShopperHour};

/// The longest range a report covers: 90 days of hours.
const MAX_RANGE_HOURS: i64 = 90 * 24;

/// The longest forecast: a week.
const MAX_HORIZON_HOURS: usize = 7 * 24;

/// How the loop is computed.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Hours to forecast past the range.
    pub horizon_hours: usize,
    /// Hours held out at the end of each model's history to measure the forecaster.
    pub backtest_hours: usize,
    /// Multiplies the forecast before planning: "what if the store had this many times today's shoppers".
    pub growth: f64,
    /// Gateway model → fleet model, where their names differ.
    pub model_map: BTreeMap<String, String>,
    /// The tenant the storefront calls models as: its calls are the ones shoppers cause.
    pub shopper_tenant: String,
    /// Also plan the what-ifs: the capacity needed at several multiples of the planned demand, and the plan's
    /// sensitivity to energy price, carbon price and utilization (a dozen more solves).
    pub what_ifs: bool,
}

/// Multiples of the planned demand the capacity table shows.
const CAPACITY_GROWTH: [f64; 5] = [1.0, 2.0, 5.0, 10.0, 100.0];

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            horizon_hours: 48,
            backtest_hours: 24,
            growth: 1.0,
            model_map: BTreeMap::new(),
            shopper_tenant: "storefront".to_owned(),
            what_ifs: false,
        }
    }
}

/// What the loop is computed from: hourly counts over `[from_hour, to_hour)`.
#[derive(Debug, Clone, Copy)]
pub struct LoopInput<'a> {
    /// First hour (hours since the epoch).
    pub from_hour: i64,
    /// The hour after the last; leave the current, unfinished hour out so it does not look like a drop.
    pub to_hour: i64,
    /// Model calls.
    pub ledger: &'a [LedgerHour],
    /// Shopper events.
    pub shoppers: &'a [ShopperHour],
    /// The hour still in progress, when the range includes it: shown, but not fitted (a partial hour would look
    /// like a drop), so the forecast starts at it.
    pub current_hour: Option<i64>,
}

/// A count by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareOfTotal {
    /// The name.
    pub name: String,
    /// The count.
    pub value: i64,
}

/// What shoppers did.
#[derive(Debug, Clone, Serialize)]
pub struct ShopperFigures {
    /// Events of every kind.
    pub events: i64,
    /// Per kind, most first.
    pub by_kind: Vec<ShareOfTotal>,
    /// Events per hour over the range.
    pub per_hour: Vec<f64>,
}

/// Model calls by one tenant or of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageShare {
    /// The tenant or model.
    pub name: String,
    /// Requests.
    pub requests: i64,
    /// Prompt plus output tokens.
    pub tokens: i64,
    /// What they cost, USD.
    pub cost_usd: f64,
}

/// What the gateway served.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayFigures {
    /// Requests, whatever their outcome.
    pub requests: i64,
    /// Requests that did not end `ok`.
    pub failed: i64,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// What they cost, USD.
    pub cost_usd: f64,
    /// Per tenant, most tokens first.
    pub by_tenant: Vec<UsageShare>,
    /// Per model, most tokens first.
    pub by_model: Vec<UsageShare>,
    /// Per product feature (`unattributed` for callers that did not say), most tokens first.
    pub by_feature: Vec<UsageShare>,
    /// Requests per hour of the busiest features.
    pub feature_requests_per_hour: Vec<FeatureSeries>,
    /// Requests per hour over the range.
    pub requests_per_hour: Vec<f64>,
    /// Tokens per hour over the range.
    pub tokens_per_hour: Vec<f64>,
}

/// One feature's demand hour by hour.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSeries {
    /// The feature.
    pub feature: String,
    /// Requests per hour over the range.
    pub requests_per_hour: Vec<f64>,
}

/// The name calls without a feature are shown under.
pub const UNATTRIBUTED: &str = "unattributed";

/// Features charted hour by hour, the busiest first.
const CHARTED_FEATURES: usize = 6;

fn feature_of(row: &LedgerHour) -> &str {
    if row.feature.is_empty() {
        UNATTRIBUTED
    } else {
        &row.feature
    }
}

/// How shopper behaviour turns into model demand.
#[derive(Debug, Clone, Serialize)]
pub struct Conversion {
    /// The tenant whose calls shoppers cause.
    pub shopper_tenant: String,
    /// Its model requests per shopper event.
    pub requests_per_shopper_event: Option<f64>,
    /// Its tokens per shopper event.
    pub tokens_per_shopper_event: Option<f64>,
    /// Its cost per 1,000 shopper events, USD.
    pub cost_usd_per_1000_shopper_events: Option<f64>,
    /// Its share of all tokens the gateway served (0-1).
    pub share_of_tokens: Option<f64>,
}

/// One model's load, past and forecast.
#[derive(Debug, Clone, Serialize)]
pub struct ModelForecast {
    /// The model as clients name it.
    pub model: String,
    /// Requests per hour from the first hour with any model call in the range to its end.
    pub history: Vec<f64>,
    /// The fitted forecaster.
    pub fitted: Fitted,
    /// How it did on held-out hours, when the history is long enough.
    pub backtest: Option<Backtest>,
    /// Requests per hour from `forecast_start` on.
    pub forecast: Vec<ForecastPoint>,
    /// Where the forecast's first step falls, as an index into `history`'s hours (its length, or the hour in
    /// progress).
    pub forecast_start: usize,
    /// The highest upper bound of the forecast: what capacity is planned for.
    pub peak_requests_per_hour: f64,
    /// Mean prompt tokens per request.
    pub prompt_tokens_per_request: f64,
    /// Mean output tokens per request.
    pub output_tokens_per_request: f64,
}

/// The demand one model puts on the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedDemand {
    /// The gateway's model.
    pub model: String,
    /// The fleet's model it is planned as.
    pub fleet_model: String,
    /// The forecast peak times the growth, requests per second.
    pub requests_per_s: f64,
    /// Prompt tokens per request.
    pub prompt_tokens: f64,
    /// Output tokens per request.
    pub output_tokens: f64,
}

/// One site under the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteFigures {
    /// The site.
    pub site: String,
    /// Replicas placed there.
    pub replicas: u32,
    /// Chips they use.
    pub chips: u32,
    /// Peak draw, facility overhead included, MW.
    pub peak_mw: f64,
    /// The site's power cap, MW.
    pub cap_mw: f64,
    /// `peak_mw / cap_mw`.
    pub cap_used: f64,
    /// Energy, USD/h.
    pub energy_usd_per_h: f64,
    /// Carbon, kg CO2e/h.
    pub carbon_kg_per_h: f64,
    /// Chip rental and depreciation, USD/h.
    pub hardware_usd_per_h: f64,
}

/// What the forecast asks of the fleet.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PlanFigures {
    /// The fleet planner placed the forecast peak.
    Planned {
        /// The fleet's name.
        fleet: String,
        /// The growth factor applied.
        growth: f64,
        /// Demand per model.
        demand: Vec<PlannedDemand>,
        /// Gateway models the fleet does not serve (left out of the plan).
        unplaced: Vec<String>,
        /// Replicas per site, accelerator and model.
        placements: Vec<Placement>,
        /// Per site, in fleet order.
        sites: Vec<SiteFigures>,
        /// Sums.
        totals: Box<PlanTotals>,
        /// Chips, MW, capex and opex per site at multiples of the planned demand (with what-ifs).
        capacity: Vec<CapacityStep>,
        /// The plan re-made with one input changed at a time (with what-ifs).
        sensitivity: Vec<Sensitivity>,
        /// Why the what-ifs could not be planned, when asked for.
        what_ifs_problem: Option<String>,
    },
    /// No plan: why.
    NotPlanned {
        /// In words.
        reason: String,
        /// Gateway models the fleet does not serve.
        unplaced: Vec<String>,
    },
}

/// The loop's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    /// First hour, `YYYY-MM-DDTHH:00Z`.
    pub from: String,
    /// The hour after the last.
    pub to: String,
    /// Hours covered.
    pub hours: usize,
    /// Shoppers.
    pub shoppers: ShopperFigures,
    /// Model calls.
    pub gateway: GatewayFigures,
    /// Shoppers → model calls.
    pub conversion: Conversion,
    /// Per model, busiest first.
    pub forecasts: Vec<ModelForecast>,
    /// The fleet's answer to the forecast.
    pub plan: PlanFigures,
}

/// Computes the loop's figures; `fleet` plans the forecast when given.
pub fn build_report(
    input: &LoopInput<'_>,
    fleet: Option<&Fleet>,
    options: &LoopOptions,
) -> Result<LoopReport, InsightsError> {
    let LoopInput {
        from_hour: from,
        to_hour: to,
        ledger,
        shoppers,
        current_hour,
    } = *input;
    if to <= from {
        return Err(InsightsError::EmptyRange);
    }
    if to - from > MAX_RANGE_HOURS {
        return Err(InsightsError::InvalidOption(format!(
            "the range covers {} hours; a report covers at most {MAX_RANGE_HOURS} (90 days)",
            to - from
        )));
    }
    if !(1..=MAX_HORIZON_HOURS).contains(&options.horizon_hours) {
        return Err(InsightsError::InvalidOption(format!(
            "the forecast horizon must be 1 to {MAX_HORIZON_HOURS} hours, not {}",
            options.horizon_hours
        )));
    }
    if !(options.growth.is_finite() && options.growth > 0.0 && options.growth <= 1e6) {
        return Err(InsightsError::InvalidOption(format!(
            "growth must be above 0 and at most 1000000, not {}",
            options.growth
        )));
    }
    let ledger: Vec<&LedgerHour> = ledger.iter().filter(|row| (from..to).contains(&row.hour)).collect();
    let shoppers: Vec<&ShopperHour> = shoppers.iter().filter(|row| (from..to).contains(&row.hour)).collect();

    let shopper_figures = ShopperFigures {
        events: shoppers.iter().map(|row| row.events).sum(),
        by_kind: totals_by(&shoppers, |row| &row.kind, |row| row.events)
            .into_iter()
            .map(|(name, value)| ShareOfTotal { name, value })
            .collect(),
        per_hour: dense(&shoppers, from, to, |row| row.hour, |row| row.events as f64),
    };
    let gateway = gateway_figures(&ledger, from, to);
    let conversion = conversion(&ledger, &shopper_figures, &gateway, &options.shopper_tenant);

    // Hours before the first model call are not quiet hours but hours before anyone measured: the series start
    // at the first call in the range.
    let observed_from = ledger.iter().map(|row| row.hour).min().unwrap_or(from);
    let mut forecasts = Vec::new();
    for model in &gateway.by_model {
        let rows: Vec<&LedgerHour> = ledger.iter().copied().filter(|row| row.model == model.name).collect();
        let history = dense(&rows, observed_from, to, |row| row.hour, |row| row.requests as f64);
        let complete = match current_hour {
            // With no complete hour yet, the hour in progress is all there is to go on.
            Some(hour) if hour > observed_from && hour < to => usize::try_from(hour - observed_from).unwrap_or(0),
            _ => history.len(),
        };
        let fitted = forecast::fit(&history[..complete])?;
        let points = fitted.forecast(options.horizon_hours, Some(0.0));
        let requests = model.requests.max(1) as f64;
        forecasts.push(ModelForecast {
            model: model.name.clone(),
            backtest: forecast::backtest(&history[..complete], options.backtest_hours, Some(0.0))?,
            forecast_start: complete,
            peak_requests_per_hour: points.iter().map(|point| point.upper).fold(0.0, f64::max),
            forecast: points,
            fitted,
            history,
            prompt_tokens_per_request: rows.iter().map(|row| row.prompt_tokens).sum::<i64>() as f64 / requests,
            output_tokens_per_request: rows.iter().map(|row| row.completion_tokens).sum::<i64>() as f64 / requests,
        });
    }
    let plan = plan_figures(&forecasts, fleet, options);
    Ok(LoopReport {
        from: hour_label(from),
        to: hour_label(to),
        hours: usize::try_from(to - from).unwrap_or(0),
        shoppers: shopper_figures,
        gateway,
        conversion,
        forecasts,
        plan,
    })
}

fn usage_shares(ledger: &[&LedgerHour], key: impl Fn(&LedgerHour) -> &str) -> Vec<UsageShare> {
    let mut shares: BTreeMap<&str, UsageShare> = BTreeMap::new();
    for row in ledger {
        let share = shares.entry(key(row)).or_insert_with(|| UsageShare {
            name: key(row).to_owned(),
            requests: 0,
            tokens: 0,
            cost_usd: 0.0,
        });
        share.requests += row.requests;
        share.tokens += row.prompt_tokens + row.completion_tokens;
        share.cost_usd += micros_to_usd(row.cost_micros);
    }
    let mut shares: Vec<UsageShare> = shares.into_values().collect();
    shares.sort_by(|a, b| {
        (b.tokens, b.requests)
            .cmp(&(a.tokens, a.requests))
            .then_with(|| a.name.cmp(&b.name))
    });
    shares
}

fn micros_to_usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

fn gateway_figures(ledger: &[&LedgerHour], from: i64, to: i64) -> GatewayFigures {
    let by_feature = usage_shares(ledger, feature_of);
    GatewayFigures {
        requests: ledger.iter().map(|row| row.requests).sum(),
        failed: ledger.iter().map(|row| row.failed).sum(),
        prompt_tokens: ledger.iter().map(|row| row.prompt_tokens).sum(),
        completion_tokens: ledger.iter().map(|row| row.completion_tokens).sum(),
        cost_usd: micros_to_usd(ledger.iter().map(|row| row.cost_micros).sum()),
        by_tenant: usage_shares(ledger, |row| &row.tenant),
        by_model: usage_shares(ledger, |row| &row.model),
        by_feature: by_feature.clone(),
        feature_requests_per_hour: by_feature
            .iter()
            .take(CHARTED_FEATURES)
            .map(|share| {
                let rows: Vec<&LedgerHour> = ledger
                    .iter()
                    .copied()
                    .filter(|row| feature_of(row) == share.name)
                    .collect();
                FeatureSeries {
                    feature: share.name.clone(),
                    requests_per_hour: dense(&rows, from, to, |row| row.hour, |row| row.requests as f64),
                }
            })
            .collect(),
        requests_per_hour: dense(ledger, from, to, |row| row.hour, |row| row.requests as f64),
        tokens_per_hour: dense(
            ledger,
            from,
            to,
            |row| row.hour,
            |row| (row.prompt_tokens + row.completion_tokens) as f64,
        ),
    }
}

fn conversion(
    ledger: &[&LedgerHour],
    shoppers: &ShopperFigures,
    gateway: &GatewayFigures,
    shopper_tenant: &str,
) -> Conversion {
    let rows: Vec<&LedgerHour> = ledger
        .iter()
        .copied()
        .filter(|row| row.tenant == shopper_tenant)
        .collect();
    let requests: i64 = rows.iter().map(|row| row.requests).sum();
    let tokens: i64 = rows.iter().map(|row| row.prompt_tokens + row.completion_tokens).sum();
    let cost = micros_to_usd(rows.iter().map(|row| row.cost_micros).sum());
    let events = shoppers.events as f64;
    let per_event = |value: f64| (shoppers.events > 0).then(|| value / events);
    let all_tokens = gateway.prompt_tokens + gateway.completion_tokens;
    Conversion {
        shopper_tenant: shopper_tenant.to_owned(),
        requests_per_shopper_event: per_event(requests as f64),
        tokens_per_shopper_event: per_event(tokens as f64),
        cost_usd_per_1000_shopper_events: per_event(cost * 1000.0),
        share_of_tokens: (all_tokens > 0).then(|| tokens as f64 / all_tokens as f64),
    }
}

fn plan_figures(forecasts: &[ModelForecast], fleet: Option<&Fleet>, options: &LoopOptions) -> PlanFigures {
    let Some(fleet) = fleet else {
        return PlanFigures::NotPlanned {
            reason: "no fleet is configured (--fleet)".to_owned(),
            unplaced: forecasts.iter().map(|forecast| forecast.model.clone()).collect(),
        };
    };
    let mut demand = Vec::new();
    let mut unplaced = Vec::new();
    for forecast in forecasts {
        let fleet_name = options.model_map.get(&forecast.model).unwrap_or(&forecast.model);
        let Some(index) = fleet.models.iter().position(|model| &model.name == fleet_name) else {
            unplaced.push(forecast.model.clone());
            continue;
        };
        let requests_per_s = forecast.peak_requests_per_hour / 3600.0 * options.growth;
        if requests_per_s > 0.0 {
            demand.push((
                index,
                PlannedDemand {
                    model: forecast.model.clone(),
                    fleet_model: fleet_name.clone(),
                    requests_per_s,
                    prompt_tokens: forecast.prompt_tokens_per_request.max(1.0),
                    output_tokens: forecast.output_tokens_per_request.max(1.0),
                },
            ));
        }
    }
    if demand.is_empty() {
        return PlanFigures::NotPlanned {
            reason: format!(
                "no forecast demand for any model of fleet '{}' (it serves {})",
                fleet.name,
                fleet
                    .models
                    .iter()
                    .map(|model| model.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            unplaced,
        };
    }
    let planned = Demand {
        rows: demand_rows(fleet, &demand),
    };
    match fleet::plan(fleet, &planned, &PlanOptions::default()) {
        Ok(plan) => {
            let what_ifs = options.what_ifs.then(|| {
                let capacity = fleet::capacity(fleet, &planned, &plan.options, &CAPACITY_GROWTH)?;
                let sensitivity = fleet::sensitivity(fleet, &planned, &plan)?;
                Ok::<_, fleet::FleetError>((capacity, sensitivity))
            });
            let (capacity, sensitivity, what_ifs_problem) = match what_ifs {
                None => (Vec::new(), Vec::new(), None),
                Some(Ok((capacity, sensitivity))) => (capacity, sensitivity, None),
                Some(Err(error)) => (Vec::new(), Vec::new(), Some(error.to_string())),
            };
            PlanFigures::Planned {
                fleet: fleet.name.clone(),
                growth: options.growth,
                demand: demand.into_iter().map(|(_, planned)| planned).collect(),
                unplaced,
                sites: plan
                    .sites
                    .iter()
                    .map(|site| SiteFigures {
                        site: site.site.clone(),
                        replicas: site.replicas,
                        chips: site.chips,
                        peak_mw: site.peak_power_w / 1e6,
                        cap_mw: site.power_cap_w / 1e6,
                        cap_used: if site.power_cap_w > 0.0 {
                            site.peak_power_w / site.power_cap_w
                        } else {
                            0.0
                        },
                        energy_usd_per_h: site.energy_usd_per_h,
                        carbon_kg_per_h: site.carbon_kg_per_h,
                        hardware_usd_per_h: site.hardware_usd_per_h,
                    })
                    .collect(),
                placements: plan.placements,
                totals: Box::new(plan.totals),
                capacity,
                sensitivity,
                what_ifs_problem,
            }
        }
        Err(error) => PlanFigures::NotPlanned {
            reason: format!("the fleet cannot serve the forecast peak: {error}"),
            unplaced,
        },
    }
}

/// Spreads each model's demand over the fleet's user regions and SLO classes by their shares.
fn demand_rows(fleet: &Fleet, demand: &[(usize, PlannedDemand)]) -> Vec<DemandRow> {
    let region_total: f64 = fleet.user_regions.iter().map(|region| region.share).sum();
    let slo_total: f64 = fleet.slo_mix.iter().sum();
    let mut rows = Vec::new();
    for (model, planned) in demand {
        for (region, user_region) in fleet.user_regions.iter().enumerate() {
            for (slo, share) in fleet.slo_mix.iter().enumerate() {
                let fraction = (user_region.share / region_total) * (share / slo_total);
                if fraction > 0.0 && fraction.is_finite() {
                    rows.push(DemandRow {
                        model: *model,
                        region,
                        slo,
                        requests_per_s: planned.requests_per_s * fraction,
                        prompt_tokens: planned.prompt_tokens,
                        output_tokens: planned.output_tokens,
                    });
                }
            }
        }
    }
    rows
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::path::Path;

    use super::*;

    const FLEET: &str = r#"
name = "test"
[[models]]
name = "chat"
class = "135m"
[[sites]]
name = "north"
region = "n-1"
lat = 60.0
lon = 10.0
power_cap_mw = 0.01
pue = 1.1
price = { constant = 40 }
carbon = { constant = 30 }
accelerators_available = { cpu = 64 }
[[sites]]
name = "south"
region = "s-1"
lat = 40.0
lon = 10.0
power_cap_mw = 0.01
pue = 1.3
price = { constant = 120 }
carbon = { constant = 400 }
accelerators_available = { cpu = 64 }
[[user_regions]]
name = "here"
lat = 50.0
lon = 10.0
share = 1.0
"#;

    fn ledger_row(hour: i64, model: &str, tenant: &str, requests: i64) -> LedgerHour {
        LedgerHour {
            feature: String::new(),
            hour,
            model: model.to_owned(),
            tenant: tenant.to_owned(),
            requests,
            failed: 0,
            prompt_tokens: requests * 300,
            completion_tokens: requests * 50,
            cost_micros: requests * 10,
        }
    }

    #[test]
    fn shoppers_become_demand_a_forecast_and_a_plan() {
        let fleet = Fleet::parse(Path::new("test.toml"), FLEET).unwrap();
        let mut ledger = Vec::new();
        let mut shoppers = Vec::new();
        for hour in 0..72 {
            let busy = 2000 + 1500 * i64::from(hour % 24 >= 8 && hour % 24 < 20);
            ledger.push(ledger_row(hour, "chat", "storefront", busy));
            ledger.push(ledger_row(hour, "embed", "storefront", busy / 2));
            ledger.push(ledger_row(hour, "chat", "acme", 10));
            shoppers.push(ShopperHour {
                hour,
                kind: "search".to_owned(),
                events: busy * 4,
            });
        }
        let input = LoopInput {
            from_hour: 0,
            to_hour: 72,
            ledger: &ledger,
            shoppers: &shoppers,
            current_hour: None,
        };
        let report = build_report(&input, Some(&fleet), &LoopOptions::default()).unwrap();
        assert_eq!(report.hours, 72);
        assert_eq!(report.gateway.by_model[0].name, "chat");
        assert_eq!(report.gateway.by_tenant[0].name, "storefront");
        let per_event = report.conversion.requests_per_shopper_event.unwrap();
        assert!((per_event - 0.375).abs() < 1e-9, "{per_event}");
        let chat = &report.forecasts[0];
        assert_eq!(chat.fitted.method, forecast::Method::HoltWinters);
        assert!(chat.backtest.unwrap().mae < 50.0);
        assert!(chat.peak_requests_per_hour >= 3510.0);
        let PlanFigures::Planned {
            sites,
            unplaced,
            demand,
            ..
        } = &report.plan
        else {
            panic!("not planned: {:?}", report.plan);
        };
        assert_eq!(unplaced, &["embed".to_owned()]);
        assert!((demand[0].requests_per_s - chat.peak_requests_per_hour / 3600.0).abs() < 1e-9);
        assert!(sites.iter().map(|site| site.replicas).sum::<u32>() >= 1);
        // The clean, cheap site takes the load first.
        assert!(sites[0].replicas >= sites[1].replicas, "{sites:?}");
        serde_json::to_string(&report).unwrap();
    }

    #[test]
    fn growth_beyond_the_fleet_says_which_constraint_binds() {
        let fleet = Fleet::parse(Path::new("test.toml"), FLEET).unwrap();
        let ledger: Vec<LedgerHour> = (0..6).map(|hour| ledger_row(hour, "chat", "storefront", 100)).collect();
        let input = LoopInput {
            from_hour: 0,
            to_hour: 6,
            ledger: &ledger,
            shoppers: &[],
            current_hour: Some(5),
        };
        let options = LoopOptions {
            growth: 100_000.0,
            ..LoopOptions::default()
        };
        let report = build_report(&input, Some(&fleet), &options).unwrap();
        assert_eq!(report.forecasts[0].forecast_start, 5);
        assert_eq!(report.forecasts[0].fitted.observations, 5);
        match &report.plan {
            PlanFigures::NotPlanned { reason, .. } => assert!(reason.contains("cannot serve"), "{reason}"),
            other => panic!("planned: {other:?}"),
        }
        assert!(report.conversion.requests_per_shopper_event.is_none());
    }

    #[test]
    fn bad_ranges_and_options_are_refused() {
        let input = LoopInput {
            from_hour: 10,
            to_hour: 10,
            ledger: &[],
            shoppers: &[],
            current_hour: None,
        };
        assert!(matches!(
            build_report(&input, None, &LoopOptions::default()),
            Err(InsightsError::EmptyRange)
        ));
        let input = LoopInput { to_hour: 20, ..input };
        let options = LoopOptions {
            growth: -1.0,
            ..LoopOptions::default()
        };
        assert!(matches!(
            build_report(&input, None, &options),
            Err(InsightsError::InvalidOption(_))
        ));
        let report = build_report(&input, None, &LoopOptions::default()).unwrap();
        assert!(matches!(report.plan, PlanFigures::NotPlanned { .. }));
    }
}
