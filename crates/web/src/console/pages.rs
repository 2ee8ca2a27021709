//! The console's pages (maud).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use insights::{LoopReport, ModelForecast, PlanFigures};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::charts::{Band, Line, hourly_chart};
use super::{RANGES, Range};

/// Live pages refresh themselves this often, seconds.
const REFRESH_SECONDS: u32 = 30;

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
header{background:#1d2433;color:#fff;padding:.7rem 1.5rem;display:flex;gap:1.5rem;align-items:center;flex-wrap:wrap}
header a{color:#cfd8ea;text-decoration:none}header a[aria-current]{color:#fff;font-weight:600}
header .brand{font-weight:700;color:#fff}
main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem 3rem}
.loop{display:grid;grid-template-columns:repeat(5,1fr);gap:.6rem;margin:1rem 0}
.stage{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:.7rem .8rem;position:relative}
.stage h2{font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:#5b6578;margin:0 0 .3rem}
.stage .figure{font-size:1.5rem;font-weight:650}.stage p{margin:.2rem 0;color:#5b6578;font-size:.85rem}
.stage:not(:last-child)::after{content:'→';position:absolute;right:-.55rem;top:40%;color:#8a94a6}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5rem 0 1.2rem}
th,td{padding:.35rem .6rem;border-bottom:1px solid #e6e9ef;text-align:right}th:first-child,td:first-child{text-align:left}
th{font-size:.8rem;color:#5b6578;font-weight:600}
.chart{background:#fff;border:1px solid #dde2ea;border-radius:8px;margin:.6rem 0;overflow-x:auto}
.chart svg{display:block;max-width:100%;height:auto}
.controls{display:flex;gap:1rem;align-items:center;flex-wrap:wrap}.controls a{margin-right:.4rem}
.bar{background:#e6e9ef;border-radius:3px;height:.6rem;min-width:6rem}.bar span{display:block;height:100%;background:#2c7be5;border-radius:3px}
.bar span.over{background:#d64545}.note{color:#5b6578}.problem{background:#fff3f3;border:1px solid #f0c2c2;padding:1rem;border-radius:8px}
@media (max-width:800px){.loop{grid-template-columns:1fr 1fr}.stage::after{display:none}}
";

const NAV: [(&str, &str); 9] = [
    ("/console", "Loop"),
    ("/console/usage", "Usage"),
    ("/console/forecast", "Forecast"),
    ("/console/fleet", "Fleet"),
    ("/console/simulate", "Simulator"),
    ("/console/keys", "Keys"),
    ("/console/agents", "Agents"),
    ("/console/ads", "Ads"),
    ("/console/ask", "Ask"),
];

pub(crate) fn layout(title: &str, current: &str, range: Option<&Range>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if range.is_some() {
                    meta http-equiv="refresh" content=(REFRESH_SECONDS);
                }
                title { (title) " · flywheel console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "flywheel console" }
                    nav aria-label="Console" {
                        @for (path, name) in NAV {
                            @let link = match range { Some(range) => format!("{path}?{}", range.query()), None => path.to_owned() };
                            a href=(link) aria-current=[(path == current).then_some("page")] { (name) } " "
                        }
                    }
                    a href="/" { "Storefront" }
                }
                main {
                    h1 { (title) }
                    @if let Some(range) = range { (controls(current, range)) }
                    (body)
                }
            }
        }
    }
}

fn controls(path: &str, range: &Range) -> Markup {
    html! {
        div.controls {
            span {
                "Range: "
                @for hours in RANGES {
                    @let label = match hours { 24 => "24 h", 72 => "3 days", 168 => "7 days", _ => "30 days" };
                    @if hours == range.hours { strong { (label) } " " }
                    @else { a href=(format!("{path}?hours={hours}&growth={}", range.growth)) { (label) } }
                }
            }
            form method="get" action=(path) {
                input type="hidden" name="hours" value=(range.hours);
                label { "Plan for " input name="growth" type="number" min="0.01" step="any" value=(range.growth) size="6"; " × the forecast " }
                button type="submit" { "Re-plan" }
            }
        }
    }
}

/// A page saying what went wrong, with its status.
pub(crate) fn problem(status: StatusCode, message: &str) -> Response {
    let body = html! { p.problem role="alert" { (message) } };
    (status, layout("Problem", "", None, body)).into_response()
}

pub(crate) fn login(error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(error) = error { p.problem role="alert" { (error) } }
        form method="post" action="/console/login" {
            label { "Master key " input name="key" type="password" autocomplete="current-password" required; }
            " " button type="submit" { "Sign in" }
        }
    };
    layout("Sign in", "", None, body)
}

fn number(value: f64) -> String {
    if value >= 100.0 || value == 0.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// Power in the unit that shows it: kW below a tenth of a megawatt.
fn power(megawatts: f64) -> String {
    if megawatts < 0.1 {
        format!("{:.2} kW", megawatts * 1000.0)
    } else {
        format!("{megawatts:.2} MW")
    }
}

/// Three significant digits, however small: a replay of a few calls on CPUs spends micro-dollars.
pub(crate) fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let decimals = (2 - value.abs().log10().floor() as i32).clamp(0, 12) as usize;
    format!("{value:.decimals$}")
}

pub(crate) fn usd(value: f64) -> String {
    if value >= 1.0 {
        format!("${value:.2}")
    } else {
        format!("${value:.4}")
    }
}

fn chart(svg: String) -> Markup {
    html! { div.chart { (PreEscaped(svg)) } }
}

pub(crate) fn overview(range: &Range, report: &LoopReport) -> Markup {
    let gateway = &report.gateway;
    let peak: f64 = report
        .forecasts
        .iter()
        .map(|forecast| forecast.peak_requests_per_hour)
        .sum();
    let body = html! {
        p.note { (report.from) " to " (report.to) ". Refreshes every " (REFRESH_SECONDS) " s." }
        section.loop aria-label="The loop" {
            div.stage #stage-shoppers {
                h2 { "Shoppers" }
                div.figure { (report.shoppers.events) }
                p { "events: " @for (index, kind) in report.shoppers.by_kind.iter().enumerate() { @if index > 0 { ", " } (kind.value) " " (kind.name) } }
            }
            div.stage #stage-tokens {
                h2 { "Model calls" }
                div.figure { (gateway.prompt_tokens + gateway.completion_tokens) " tokens" }
                p { (gateway.requests) " requests, " (gateway.failed) " failed" }
                @if let Some(per_event) = report.conversion.tokens_per_shopper_event {
                    p { (number(per_event)) " tokens per shopper event" }
                }
            }
            div.stage #stage-load {
                h2 { "Forecast load" }
                div.figure { (number(peak)) " req/h" }
                p { "peak (90% upper) over the next " (report.forecasts.first().map_or(0, |forecast| forecast.forecast.len())) " h" }
            }
            div.stage #stage-power {
                h2 { "Fleet power" }
                @match &report.plan {
                    PlanFigures::Planned { totals, sites, .. } => {
                        div.figure { (power(totals.peak_power_w / 1e6)) }
                        p { "of " (power(sites.iter().map(|site| site.cap_mw).sum())) " of caps; " (totals.replicas) " replicas" }
                    }
                    PlanFigures::NotPlanned { .. } => { div.figure { "—" } p { "not planned" } }
                }
            }
            div.stage #stage-cost {
                h2 { "Cost and carbon" }
                @match &report.plan {
                    PlanFigures::Planned { totals, .. } => {
                        div.figure { (usd(totals.total_usd_per_h)) "/h" }
                        p { (format!("{:.3}", totals.carbon_kg_per_h)) " kg CO2e/h; energy " (usd(totals.energy_usd_per_h)) "/h" }
                    }
                    PlanFigures::NotPlanned { reason, .. } => { div.figure { "—" } p { (reason) } }
                }
            }
        }
        p { "Gateway spend in range: " strong { (usd(gateway.cost_usd)) }
            @if let Some(cost) = report.conversion.cost_usd_per_1000_shopper_events { " · " (usd(cost)) " per 1,000 shopper events" }
            @if let Some(share) = report.conversion.share_of_tokens { " · shoppers cause " (format!("{:.0}", share * 100.0)) "% of all tokens" }
        }
        (chart(hourly_chart("shopper events per hour", "events", &[Line { name: "events", start: 0, values: &report.shoppers.per_hour }], None)))
        (chart(hourly_chart("tokens per hour", "tokens", &[Line { name: "tokens", start: 0, values: &gateway.tokens_per_hour }], None)))
    };
    layout("The flywheel loop", "/console", Some(range), body)
}

pub(crate) fn usage(range: &Range, report: &LoopReport) -> Markup {
    let gateway = &report.gateway;
    let body = html! {
        p { (gateway.requests) " requests, " (gateway.failed) " failed, " (gateway.prompt_tokens) " prompt and "
            (gateway.completion_tokens) " output tokens, " (usd(gateway.cost_usd)) "." }
        @for (caption, id, shares) in [("Per tenant", "by-tenant", &gateway.by_tenant), ("Per model", "by-model", &gateway.by_model), ("Per feature", "by-feature", &gateway.by_feature)] {
            h2 { (caption) }
            table id=(id) {
                thead { tr { th { "name" } th { "requests" } th { "tokens" } th { "cost" } } }
                tbody {
                    @for share in shares.iter() {
                        tr { td { (share.name) } td { (share.requests) } td { (share.tokens) } td { (usd(share.cost_usd)) } }
                    }
                    @if shares.is_empty() { tr { td colspan="4" { "No model calls in this range." } } }
                }
            }
        }
        (chart(hourly_chart("requests per hour", "requests", &[Line { name: "requests", start: 0, values: &gateway.requests_per_hour }], None)))
        @if !gateway.feature_requests_per_hour.is_empty() {
            @let lines: Vec<Line<'_>> = gateway.feature_requests_per_hour.iter().map(|series| Line { name: &series.feature, start: 0, values: &series.requests_per_hour }).collect();
            (chart(hourly_chart("requests per hour by feature", "requests", &lines, None)))
        }
    };
    layout("Gateway usage", "/console/usage", Some(range), body)
}

fn forecast_chart(forecast: &ModelForecast) -> String {
    let start = forecast.forecast_start;
    let mean: Vec<f64> = forecast.forecast.iter().map(|point| point.mean).collect();
    let lower: Vec<f64> = forecast.forecast.iter().map(|point| point.lower).collect();
    let upper: Vec<f64> = forecast.forecast.iter().map(|point| point.upper).collect();
    hourly_chart(
        &format!(
            "{}: requests per hour, then the forecast with its 90% interval",
            forecast.model
        ),
        "requests",
        &[
            Line {
                name: "history",
                start: 0,
                values: &forecast.history,
            },
            Line {
                name: "forecast",
                start,
                values: &mean,
            },
        ],
        Some(&Band {
            start,
            lower: &lower,
            upper: &upper,
        }),
    )
}

pub(crate) fn forecast(range: &Range, report: &LoopReport) -> Markup {
    let body = html! {
        p.note { "Holt-Winters with a damped trend and a daily season once two days of history exist; a damped trend before that. The backtest holds out the last 24 hours and compares with the same hours a day earlier." }
        table {
            thead { tr { th { "model" } th { "method" } th { "peak req/h (90%)" } th { "tokens/request" } th { "backtest MAE" } th { "vs seasonal naive" } th { "interval coverage" } } }
            tbody {
                @for forecast in &report.forecasts {
                    @let method = match forecast.fitted.method { insights::Method::HoltWinters => "Holt-Winters", insights::Method::Holt => "Holt (no season yet)", insights::Method::LastValue => "last value" };
                    tr {
                        td { (forecast.model) } td { (method) } td { (number(forecast.peak_requests_per_hour)) }
                        td { (number(forecast.prompt_tokens_per_request + forecast.output_tokens_per_request)) }
                        @match forecast.backtest {
                            Some(backtest) => { td { (number(backtest.mae)) } td { (format!("{:.2}", backtest.relative_mae)) } td { (format!("{:.0}%", backtest.interval_coverage * 100.0)) } }
                            None => { td colspan="3" { "needs 72 hours of history" } }
                        }
                    }
                }
                @if report.forecasts.is_empty() { tr { td colspan="7" { "No model calls in this range to forecast." } } }
            }
        }
        @for forecast in &report.forecasts { (chart(forecast_chart(forecast))) }
    };
    layout("Forecast", "/console/forecast", Some(range), body)
}

/// The capacity table (demand growth → chips, MW, capex, opex, carbon) and the sensitivity table.
fn what_ifs(capacity: &[fleet::CapacityStep], sensitivity: &[fleet::Sensitivity], problem: Option<&str>) -> Markup {
    html! {
        @if let Some(problem) = problem { p.problem { "No what-ifs: " (problem) } }
        @if !capacity.is_empty() {
            h2 { "Capacity as demand grows" }
            p.note { "Multiples of the planned demand, chips bought where the installed ones run out; power beyond a cap is the grid upgrade the site needs." }
            table #capacity {
                thead { tr { th { "demand" } th { "req/s" } th { "chips" } th { "to buy" } th { "capex" } th { "peak MW" } th { "grid upgrade MW" } th { "opex / year" } th { "CO2 t / year" } } }
                tbody { @for step in capacity {
                    @let upgrade: f64 = step.sites.iter().map(|site| site.grid_upgrade_mw).sum();
                    @let carbon: f64 = step.sites.iter().map(|site| site.carbon_t_per_year).sum();
                    tr { td { "× " (step.growth) } td { (format!("{:.3}", step.requests_per_s)) } td { (step.totals.chips) } td { (step.totals.chips_to_buy) }
                         td { (usd(step.totals.capex_usd)) } td { (format!("{:.5}", step.totals.peak_power_w / 1e6)) } td { (format!("{upgrade:.5}")) }
                         td { (usd(step.opex_usd_per_year)) } td { (format!("{carbon:.2}")) } }
                } }
            }
        }
        @if !sensitivity.is_empty() {
            h2 { "Sensitivity" }
            table #sensitivity {
                thead { tr { th { "case" } th { "total $/h" } th { "energy $/h" } th { "CO2 kg/h" } th { "replicas" } th { "moved" } } }
                tbody { @for case in sensitivity {
                    tr { td { (case.case) }
                        @match &case.totals {
                            Some(totals) => { td { (usd(totals.total_usd_per_h)) } td { (usd(totals.energy_usd_per_h)) } td { (format!("{:.3}", totals.carbon_kg_per_h)) } td { (totals.replicas) } }
                            None => { td colspan="4" { (case.infeasible.as_deref().unwrap_or("infeasible")) } }
                        }
                        td { (case.moved.join(", ")) } }
                } }
            }
        }
    }
}

pub(crate) fn fleet(
    range: &Range,
    report: &LoopReport,
    fleet: Option<&fleet::Fleet>,
    live: Option<&fleet::LivePlacement>,
) -> Markup {
    let body = html! {
        h2 { "Router placement in service" }
        @match live {
            Some(live) => {
                p #live-placement { "The gateway's fleet router routes over the " strong { (live.source) } "'s placement since " (live.since) "."
                    @if !live.basis.is_empty() { " It answers " (live.basis) "." } }
                table #live-replicas {
                    thead { tr { th { "site" } th { "accelerator" } th { "model" } th { "replicas" } } }
                    tbody { @for row in &live.replicas { tr { td { (row.site) } td { (row.accelerator) } td { (row.model) } td { (row.replicas) } } } }
                }
            }
            None => p #live-placement { "Fleet routing is off: start with " code { "--fleet FILE" } " and give models " code { "routing = \"fleet\"" }
                " to have the router route over the plan below, re-planned every five minutes." }
        }
        @match &report.plan {
            PlanFigures::Planned { fleet: name, growth, demand, unplaced, placements, sites, totals, capacity, sensitivity, what_ifs_problem } => {
                h2 { "Plan for the forecast peak × " (growth) " on fleet " (name) }
                p { @for row in demand { (row.model) ": " (format!("{:.4}", row.requests_per_s)) " req/s as " (row.fleet_model) ". " }
                    @if !unplaced.is_empty() { "Not in the fleet: " (unplaced.join(", ")) "." } }
                table #plan-sites {
                    thead { tr { th { "site" } th { "replicas" } th { "chips" } th { "peak MW" } th { "cap MW" } th { "of cap" } th { "energy $/h" } th { "CO2 kg/h" } } }
                    tbody {
                        @for site in sites {
                            @let used = (site.cap_used * 100.0).clamp(0.0, 100.0);
                            tr {
                                td { (site.site) } td { (site.replicas) } td { (site.chips) }
                                td { (format!("{:.5}", site.peak_mw)) } td { (format!("{:.4}", site.cap_mw)) }
                                td { div.bar title=(format!("{:.1}%", site.cap_used * 100.0)) { span.over[site.cap_used > 1.0] style=(format!("width:{used:.1}%")) {} } }
                                td { (format!("{:.4}", site.energy_usd_per_h)) } td { (format!("{:.3}", site.carbon_kg_per_h)) }
                            }
                        }
                    }
                }
                p { "Total " strong { (usd(totals.total_usd_per_h)) "/h" } ": hardware " (usd(totals.hardware_usd_per_h))
                    ", energy " (usd(totals.energy_usd_per_h)) ", carbon " (usd(totals.carbon_usd_per_h)) "; "
                    (usd(totals.usd_per_million_tokens)) " per 1M tokens." }
                h2 { "Placements" }
                table {
                    thead { tr { th { "site" } th { "accelerator" } th { "model" } th { "replicas" } th { "req/s" } th { "busy" } } }
                    tbody { @for placement in placements {
                        tr { td { (placement.site) } td { (placement.accelerator) } td { (placement.model) } td { (placement.replicas) }
                             td { (format!("{:.4}", placement.requests_per_s)) } td { (format!("{:.0}%", placement.utilization * 100.0)) } }
                    } }
                }
                (what_ifs(capacity, sensitivity, what_ifs_problem.as_deref()))
            }
            PlanFigures::NotPlanned { reason, .. } => { p.problem { "No plan: " (reason) } }
        }
        @if let Some(fleet) = fleet {
            h2 { "Sites" }
            table #sites {
                thead { tr { th { "site" } th { "region" } th { "cap MW" } th { "PUE" } th { "mean price $/MWh" } th { "carbon g/kWh" } th { "price source" } } }
                tbody { @for site in &fleet.sites {
                    tr { td { (site.name) } td { (site.region) } td { (format!("{:.4}", site.power_cap_w / 1e6)) } td { (site.pue) }
                         td { (format!("{:.1}", site.price.mean())) } td { (format!("{:.0}", site.carbon.mean())) } td { (site.price_source) } }
                } }
            }
            @let prices: Vec<(&str, &[f64])> = fleet.sites.iter().filter(|site| !site.price.is_constant()).map(|site| (site.name.as_str(), site.price.values())).collect();
            @if !prices.is_empty() {
                @let lines: Vec<Line<'_>> = prices.iter().map(|(name, values)| Line { name, start: 0, values: &values[..values.len().min(7 * 24)] }).collect();
                (chart(hourly_chart("energy price, first week of the series, USD/MWh", "USD/MWh", &lines, None)))
            }
            @let carbon: Vec<(&str, &[f64])> = fleet.sites.iter().filter(|site| !site.carbon.is_constant()).map(|site| (site.name.as_str(), site.carbon.values())).collect();
            @if !carbon.is_empty() {
                @let lines: Vec<Line<'_>> = carbon.iter().map(|(name, values)| Line { name, start: 0, values: &values[..values.len().min(7 * 24)] }).collect();
                (chart(hourly_chart("grid carbon, first week of the series, gCO2/kWh", "gCO2/kWh", &lines, None)))
            }
        }
    };
    layout("Fleet and capacity plan", "/console/fleet", Some(range), body)
}
