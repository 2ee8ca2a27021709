//! The console's operational pages: tenants' keys and their limits, agent sessions with each one's trace (every
//! journaled step with its time), the sponsored-products report, and ask-your-data.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use super::pages::{layout, problem, usd};

/// Sessions listed at once.
const SESSION_LIMIT: i64 = 200;

/// A step's details are cut beyond this many characters on the trace page.
const MAX_DETAIL_CHARS: usize = 2000;

fn time(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms).map_or_else(
        |_| unix_ms.to_string(),
        |at| at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

pub(crate) async fn keys(State(console): State<Console>) -> Response {
    let keys = match console.gateway.keys().list().await {
        Ok(keys) => keys,
        Err(error) => return problem(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let limit = |value: Option<u32>| value.map_or_else(|| "—".to_owned(), |value| value.to_string());
    let body = html! {
        p.note { "Tenants' virtual keys and their limits (secrets are never shown: only the prefix). Create, rotate and revoke them with " code { "flywheel keys" } " or " code { "/admin/keys" } "." }
        table #keys {
            thead { tr { th { "tenant" } th { "name" } th { "prefix" } th { "models" } th { "req/min" } th { "tokens/min" } th { "budget" } th { "expires" } th { "state" } } }
            tbody {
                @for key in &keys {
                    tr {
                        td { (key.tenant) } td { (key.name.as_deref().unwrap_or("")) } td { code { (key.prefix) "…" } }
                        td { (key.models.as_ref().map_or_else(|| "all".to_owned(), |models| models.join(", "))) }
                        td { (limit(key.rpm)) } td { (limit(key.tpm)) }
                        td { (key.budget_micros.map_or_else(|| "—".to_owned(), |micros| format!("{} {}", usd(micros as f64 / 1e6), key.budget_period.as_str()))) }
                        td { (key.expires_at.map_or_else(|| "never".to_owned(), |at| time(at.saturating_mul(1000)))) }
                        td { @if key.revoked_at.is_some() { "revoked" } @else { "active" } }
                    }
                }
                @if keys.is_empty() { tr { td colspan="9" { "No keys yet." } } }
            }
        }
    };
    layout("Keys and limits", "/console/keys", None, body).into_response()
}

/// `GET /console/agents` parameters.
#[derive(Deserialize)]
pub(crate) struct SessionParams {
    agent: Option<String>,
}

pub(crate) async fn sessions(
    State(console): State<Console>,
    params: Result<Query<SessionParams>, QueryRejection>,
) -> Response {
    let Some(journal) = &console.journal else {
        return problem(StatusCode::NOT_FOUND, "Agents are not running in this server.");
    };
    let Ok(Query(params)) = params else {
        return problem(StatusCode::BAD_REQUEST, "The only parameter is 'agent'.");
    };
    let agent = params.agent.filter(|agent| !agent.is_empty());
    let sessions = match journal.sessions(agent.as_deref(), SESSION_LIMIT).await {
        Ok(sessions) => sessions,
        Err(error) => return problem(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let body = html! {
        p.note { "The newest " (SESSION_LIMIT) " sessions" @if let Some(agent) = &agent { " of " (agent) } ". Open one for its trace." }
        table #sessions {
            thead { tr { th { "session" } th { "agent" } th { "user" } th { "status" } th { "started" } th { "last step" } } }
            tbody {
                @for session in &sessions {
                    tr {
                        td { a href=(format!("/console/agents/{}", session.id)) { (session.id) } }
                        td { a href=(format!("/console/agents?agent={}", session.agent)) { (session.agent) } }
                        td { (session.subject) }
                        td { (serde_json::to_value(session.status).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()) }
                        td { (time(session.created_at)) } td { (time(session.updated_at)) }
                    }
                }
                @if sessions.is_empty() { tr { td colspan="6" { "No agent sessions yet." } } }
            }
        }
    };
    layout("Agent sessions", "/console/agents", None, body).into_response()
}

fn step_row(start_ms: i64, previous_ms: i64, recorded: &agents::Recorded) -> Markup {
    let mut value = serde_json::to_value(recorded).unwrap_or_default();
    let kind = value["type"].as_str().unwrap_or("event").to_owned();
    if let Some(fields) = value.as_object_mut() {
        for name in ["type", "seq", "at"] {
            fields.remove(name);
        }
    }
    let mut details = serde_json::to_string_pretty(&value).unwrap_or_default();
    if details.chars().count() > MAX_DETAIL_CHARS {
        details = details.chars().take(MAX_DETAIL_CHARS).collect::<String>() + " …";
    }
    html! {
        tr {
            td { (recorded.seq) }
            td { "+" (recorded.at - start_ms) " ms" }
            td { (recorded.at - previous_ms) " ms" }
            td { (kind) }
            td style="text-align:left" { pre style="margin:0;white-space:pre-wrap;font-size:.8rem" { (details) } }
        }
    }
}

pub(crate) async fn trace(State(console): State<Console>, id: Result<Path<String>, PathRejection>) -> Response {
    let Some(journal) = &console.journal else {
        return problem(StatusCode::NOT_FOUND, "Agents are not running in this server.");
    };
    let Ok(Path(id)) = id else {
        return problem(StatusCode::BAD_REQUEST, "That is not a session id.");
    };
    let session = match journal.session(&id).await {
        Ok(Some(session)) => session,
        Ok(None) => return problem(StatusCode::NOT_FOUND, &format!("There is no session {id}.")),
        Err(error) => return problem(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let events = match journal.events(&id).await {
        Ok(events) => events,
        Err(error) => return problem(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let start = events.first().map_or(session.created_at, |event| event.at);
    let body = html! {
        p { "Agent " strong { (session.agent) } ", user " (session.subject) ", started " (time(session.created_at)) ", "
            (events.len()) " steps. Each step was written to the journal before the next began." }
        table #trace {
            thead { tr { th { "step" } th { "at" } th { "since previous" } th { "kind" } th style="text-align:left" { "details" } } }
            tbody {
                @for (index, recorded) in events.iter().enumerate() {
                    (step_row(start, if index == 0 { start } else { events[index - 1].at }, recorded))
                }
            }
        }
    };
    layout(&format!("Session {id}"), "/console/agents", None, body).into_response()
}

pub(crate) async fn ads(State(console): State<Console>) -> Response {
    let Some(ads) = &console.ads else {
        return problem(
            StatusCode::NOT_FOUND,
            "Sponsored products are not running in this server.",
        );
    };
    let reports = match ads.recent_report().await {
        Ok(reports) => reports,
        Err(error) => return problem(error.status(), &error.to_string()),
    };
    let ratio = |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |value| format!("{:.1}%", value * 100.0));
    let body = html! {
        p.note { "Sponsored products over the report window: what shoppers saw and clicked, what it cost, and the orders attributed to the last click within 7 days." }
        table #ads {
            thead { tr { th { "campaign" } th { "advertiser" } th { "impressions" } th { "clicks" } th { "CTR" } th { "spend" } th { "orders" } th { "sales" } th { "ACoS" } } }
            tbody {
                @for report in &reports {
                    tr {
                        td { (report.name) } td { (report.advertiser) } td { (report.impressions) } td { (report.clicks) }
                        td { (ratio(report.ctr)) } td { (usd(report.spend_micros as f64 / 1e6)) } td { (report.orders) }
                        td { (usd(report.sales_micros as f64 / 1e6)) } td { (ratio(report.acos)) }
                    }
                }
                @if reports.is_empty() { tr { td colspan="9" { "No campaigns yet." } } }
            }
        }
    };
    layout("Sponsored products", "/console/ads", None, body).into_response()
}

/// `GET /console/ask` parameters.
#[derive(Deserialize)]
pub(crate) struct AskParams {
    q: Option<String>,
}

/// Questions longer than this are refused.
const MAX_QUESTION_CHARS: usize = 500;

pub(crate) async fn ask(State(console): State<Console>, params: Result<Query<AskParams>, QueryRejection>) -> Response {
    let Ok(Query(params)) = params else {
        return problem(StatusCode::BAD_REQUEST, "The only parameter is 'q', the question.");
    };
    let text = params.q.unwrap_or_default();
    let text = text.trim();
    let mut status = StatusCode::OK;
    let outcome = if text.is_empty() {
        None
    } else if text.chars().count() > MAX_QUESTION_CHARS {
        status = StatusCode::BAD_REQUEST;
        Some(Err(format!("Ask in at most {MAX_QUESTION_CHARS} characters.")))
    } else {
        let question = insights::ask::read_by_rules(text);
        match insights::ask::check(&question) {
            Err(reason) => {
                status = StatusCode::UNPROCESSABLE_ENTITY;
                Some(Err(format!("I cannot answer that: {reason}")))
            }
            Ok(()) => Some(console.figures.ask(question).await),
        }
    };
    let top = match &outcome {
        Some(Ok(answer)) => answer.rows.iter().map(|row| row.value.abs()).fold(0.0, f64::max),
        _ => 0.0,
    };
    let body = html! {
        form method="get" action="/console/ask" {
            label { "Question " input name="q" type="search" size="60" value=(text)
                placeholder="which model cost most last week per tenant?"; }
            " " button type="submit" { "Ask" }
        }
        p.note { "Questions about model calls (requests, tokens, cost, failures, latency by model, tenant, feature, day or hour) and shopper events (searches, views, carts, orders, assistant turns by kind, day or hour). Each becomes one read-only query over the tables in docs/ask.md, shown below its answer." }
        @match &outcome {
            None => {}
            Some(Err(message)) => { p.problem role="alert" { (message) } }
            Some(Ok(answer)) => {
                p #answer { strong { (answer.summary) } }
                table #answer-rows {
                    thead { tr { @for column in &answer.columns { th { (column) } } th { "" } } }
                    tbody { @for row in &answer.rows {
                        tr {
                            @for label in &row.labels { td { (label) } }
                            td { (format!("{}", (row.value * 10_000.0).round() / 10_000.0)) }
                            td { div.bar { span style=(format!("width:{:.1}%", if top > 0.0 { row.value.abs() / top * 100.0 } else { 0.0 })) {} } }
                        }
                    } }
                }
                details { summary { "SQL" } pre { code { (answer.sql) } } }
            }
        }
    };
    (status, layout("Ask your data", "/console/ask", None, body)).into_response()
}
