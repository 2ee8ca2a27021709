//! The simulator page: the range's own model calls replayed through the fleet under every routing policy, on
//! the fleet file's placement and on the plan's, side by side.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use insights::replay::{MAX_LOAD_SCALE, ReplayComparison};
use insights::{InsightsError, PlanFigures};
use maud::{Markup, PreEscaped, html};

use super::charts::{Line, hourly_chart};
use super::pages::{layout, problem, significant, usd};
use super::{Console, Range, RangeParams, figures};

pub(crate) async fn page(
    State(console): State<Console>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Response {
    let scale = match &params {
        Ok(Query(params)) => params.scale.unwrap_or(1),
        Err(_) => 1,
    };
    if !(1..=MAX_LOAD_SCALE).contains(&scale) {
        let message = format!("scale must be 1 to {MAX_LOAD_SCALE}, not {scale}.");
        return problem(StatusCode::BAD_REQUEST, &message);
    }
    let (range, report) = match figures(&console, params, false).await {
        Ok(figures) => figures,
        Err(response) => return response,
    };
    let plan = match report.plan {
        PlanFigures::Planned { placements, .. } => Some(placements),
        PlanFigures::NotPlanned { .. } => None,
    };
    let to_hour = super::current_hour() + 1;
    let outcome = console
        .figures
        .replay(to_hour - range.hours, to_hour, scale, plan)
        .await;
    match outcome {
        Ok(comparison) => render(&range, scale, Ok(&comparison)).into_response(),
        Err(InsightsError::Unanswerable(reason)) => render(&range, scale, Err(&reason)).into_response(),
        Err(InsightsError::InvalidOption(reason)) => problem(StatusCode::BAD_REQUEST, &reason),
        Err(error) => {
            tracing::error!(%error, "console replay failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string())
        }
    }
}

/// A share of the largest value as a bar.
fn bar(value: f64, largest: f64) -> Markup {
    let width = if largest > 0.0 {
        (value / largest * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    html! { div.bar { span style=(format!("width:{width:.1}%")) {} } }
}

fn render(range: &Range, scale: u32, comparison: Result<&ReplayComparison, &str>) -> Markup {
    let body = html! {
        form.controls method="get" action="/console/simulate" {
            input type="hidden" name="hours" value=(range.hours);
            input type="hidden" name="growth" value=(range.growth);
            label { "Replay " input name="scale" type="number" min="1" max=(MAX_LOAD_SCALE) value=(scale) size="5"; " copies of the calls together " }
            button type="submit" { "Replay" }
        }
        @match comparison {
            Err(reason) => p.note #replay-empty { "Nothing to replay: " (reason) "." }
            Ok(comparison) => {
                p #replay-basis { (comparison.calls) " model calls of the fleet's models from this range, × " (comparison.load_scale)
                    ", replayed once through the fleet by its simulator (prefill queue and batched decode per replica) at the fleet's prices and carbon of "
                    (comparison.priced_from) " to " (comparison.priced_to) " (the same hours of the day as the calls)."
                    @for reason in &comparison.without_replicas { " Not replayed: " (reason) "." }
                    @if !comparison.not_in_fleet.is_empty() { " Not in the fleet: " (comparison.not_in_fleet.join(", ")) "." } }
                @let cost = |replay: &insights::replay::PolicyReplay| replay.report.energy_cost_usd + replay.report.hardware_cost_usd;
                @let most_cost = comparison.replays.iter().map(cost).fold(0.0, f64::max);
                @let most_carbon = comparison.replays.iter().map(|replay| replay.report.carbon_kg).fold(0.0, f64::max);
                table #replays {
                    thead { tr {
                        th { "placement" } th { "model" } th { "policy" } th { "requests" } th { "Wh" } th { "energy $" }
                        th { "energy + hardware $" } th { "" } th { "CO2 g" } th { "" } th { "$ / 1M tok" }
                        th { "TTFT p50 / p99 ms" } th { "SLO met" } th { "over cap" }
                    } }
                    tbody { @for replay in &comparison.replays {
                        @let report = &replay.report;
                        tr {
                            td { (replay.placement) } td { (replay.model) } td { (report.policy) } td { (report.requests) }
                            td { (significant(report.energy_kwh * 1e3)) } td { "$" (significant(report.energy_cost_usd)) }
                            td { "$" (significant(cost(replay))) } td { (bar(cost(replay), most_cost)) }
                            td { (significant(report.carbon_kg * 1e3)) } td { (bar(report.carbon_kg, most_carbon)) }
                            td { (usd(report.cost_per_mtok_usd)) }
                            td { (format!("{:.0} / {:.0}", report.p50_ttft_ms, report.p99_ttft_ms)) }
                            td { (format!("{:.1}%", report.slo_attainment * 100.0)) } td { (report.cap_violations) }
                        }
                    } }
                }
                @if let Some(replay) = comparison.replays.iter().rev().find(|replay| {
                    replay.report.policy == "multi-objective" && replay.report.sites.iter().any(|site| site.hourly_mw.len() > 1)
                }) {
                    @let lines: Vec<Line<'_>> = replay.report.sites.iter().map(|site| Line { name: &site.site, start: 0, values: &site.hourly_mw }).collect();
                    @let title = format!("power per site, multi-objective on the {} placement, MW", replay.placement);
                    div.chart { (PreEscaped(hourly_chart(&title, "MW", &lines, None))) }
                }
                p.note { "Same calls, same hours, every policy: the differences are the policies' and the placements' alone. "
                    "The fleet CLI replays any trace the same way: " code { "flywheel fleet simulate" } "." }
            }
        }
    };
    layout("Simulator", "/console/simulate", Some(range), body)
}
