//! The console at `/console`: the flywheel loop with live figures (shoppers → model calls and tokens →
//! forecast load → MW per site → cost and carbon), gateway usage per tenant and model, each model's forecast
//! against what happened, the fleet's sites with their prices and the plan, tenants' keys and limits, agent
//! sessions with their traces, and the sponsored-products report. Server-rendered, charts as inline SVG, no
//! script.
//!
//! With a master key set, every page needs it: sent as `Authorization: Bearer`, or typed once into the login
//! form, which sets an HttpOnly cookie naming a random session the server remembers until it restarts.

mod charts;
mod operations;
mod pages;
mod simulator;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use gateway::{Caller, Gateway};
use insights::{LoopOptions, LoopReport};
use serde::Deserialize;

/// The console's session cookie.
const SESSION_COOKIE: &str = "fw_console";

/// Console sessions remembered at once; the oldest are forgotten beyond this.
const MAX_SESSIONS: usize = 1024;

/// A boxed future, as trait objects return them.
pub type FiguresFuture<'a> = Pin<Box<dyn Future<Output = Result<LoopReport, String>> + Send + 'a>>;

/// A boxed future of a replay's comparison.
pub type ReplayFuture<'a> =
    Pin<Box<dyn Future<Output = Result<insights::replay::ReplayComparison, insights::InsightsError>> + Send + 'a>>;

/// A boxed future of a question's answer.
pub type AnswerFuture<'a> = Pin<Box<dyn Future<Output = Result<insights::ask::Answer, String>> + Send + 'a>>;

/// Where the console's figures come from (the binary reads the ledger and shopper events and plans the fleet).
pub trait LoopFigures: Send + Sync + 'static {
    /// The loop's figures for `[from_hour, to_hour)`, hours since the epoch.
    fn report(&self, from_hour: i64, to_hour: i64, options: LoopOptions) -> FiguresFuture<'_>;
    /// The fleet the forecast is planned on, if any.
    fn fleet(&self) -> Option<&fleet::Fleet>;
    /// The placement the gateway's fleet router routes over now, when fleet routing is on.
    fn live_placement(&self) -> Option<fleet::LivePlacement>;
    /// Replays the model calls of `[from_hour, to_hour)`, × `load_scale`, through the fleet under every policy,
    /// on the fleet file's placement and on `plan`'s.
    fn replay(
        &self,
        from_hour: i64,
        to_hour: i64,
        load_scale: u32,
        plan: Option<Vec<fleet::Placement>>,
    ) -> ReplayFuture<'_>;
    /// Runs a checked question read-only over the documented tables.
    fn ask(&self, question: insights::ask::Question) -> AnswerFuture<'_>;
}

/// The console's state.
#[derive(Clone)]
pub struct Console {
    pub(crate) figures: Arc<dyn LoopFigures>,
    gateway: Gateway,
    journal: Option<agents::Journal>,
    ads: Option<Arc<commerce::ads::Ads>>,
    sessions: Arc<Mutex<Vec<String>>>,
    /// The last report computed, reused for [`REPORT_REUSE`]: pages that refresh together, or a visitor going
    /// from page to page, read the ledger and solve the plan once.
    last_report: Arc<Mutex<Option<CachedReport>>>,
}

/// How long a computed report is shown again before the figures are read afresh.
const REPORT_REUSE: std::time::Duration = std::time::Duration::from_secs(10);

/// A report and what it was computed for.
struct CachedReport {
    /// From hour, to hour, growth's bits, what-ifs.
    key: (i64, i64, u64, bool),
    at: std::time::Instant,
    report: LoopReport,
}

impl Console {
    /// A console over `figures`, checking keys with `gateway`.
    pub fn new(figures: Arc<dyn LoopFigures>, gateway: Gateway) -> Console {
        Console {
            figures,
            gateway,
            journal: None,
            ads: None,
            sessions: Arc::new(Mutex::new(Vec::new())),
            last_report: Arc::new(Mutex::new(None)),
        }
    }

    /// The report for `[from_hour, to_hour)`: the cached one while it is fresh (one with what-ifs also serves
    /// pages that do not show them), else computed and remembered.
    async fn report(&self, from_hour: i64, to_hour: i64, options: LoopOptions) -> Result<LoopReport, String> {
        let key = (from_hour, to_hour, options.growth.to_bits(), options.what_ifs);
        let reusable = |cached: &CachedReport| {
            let (from, to, growth, what_ifs) = cached.key;
            (from, to, growth) == (key.0, key.1, key.2) && (what_ifs || !key.3) && cached.at.elapsed() < REPORT_REUSE
        };
        if let Some(cached) = self.last_report.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
            && reusable(cached)
        {
            return Ok(cached.report.clone());
        }
        let report = self.figures.report(from_hour, to_hour, options).await?;
        *self.last_report.lock().unwrap_or_else(PoisonError::into_inner) = Some(CachedReport {
            key,
            at: std::time::Instant::now(),
            report: report.clone(),
        });
        Ok(report)
    }

    /// The same console, showing agent sessions and their traces from `journal`.
    pub fn with_agents(self, journal: agents::Journal) -> Console {
        Console {
            journal: Some(journal),
            ..self
        }
    }

    /// The same console, showing the sponsored-products report of `ads`.
    pub fn with_ads(self, ads: Arc<commerce::ads::Ads>) -> Console {
        Console { ads: Some(ads), ..self }
    }

    fn remembers(&self, token: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|known| known == token)
    }

    fn open_session(&self) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= MAX_SESSIONS {
            sessions.remove(0);
        }
        sessions.push(token.clone());
        token
    }
}

/// The console's pages.
pub fn console_router(console: Console) -> Router {
    Router::new()
        .route("/console", get(overview))
        .route("/console/usage", get(usage))
        .route("/console/forecast", get(forecast))
        .route("/console/fleet", get(fleet_page))
        .route("/console/simulate", get(simulator::page))
        .route("/console/keys", get(operations::keys))
        .route("/console/agents", get(operations::sessions))
        .route("/console/agents/{id}", get(operations::trace))
        .route("/console/ads", get(operations::ads))
        .route("/console/ask", get(operations::ask))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), require_admin))
        .route("/console/login", get(login_page).post(login))
        .with_state(console)
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

async fn require_admin(State(console): State<Console>, request: Request, next: Next) -> Response {
    if !console.gateway.auth_enabled() {
        return next.run(request).await;
    }
    if cookie_token(request.headers()).is_some_and(|token| console.remembers(&token)) {
        return next.run(request).await;
    }
    let bearer = request.headers().contains_key(header::AUTHORIZATION);
    match console.gateway.authenticate_headers(request.headers()).await {
        Ok(Caller::Admin) => next.run(request).await,
        Ok(_) if bearer => pages::problem(StatusCode::FORBIDDEN, "The console is for the master key.").into_response(),
        Err(_) if bearer => pages::problem(StatusCode::UNAUTHORIZED, "That key is not valid.").into_response(),
        _ => Redirect::to("/console/login").into_response(),
    }
}

async fn login_page(State(console): State<Console>) -> Response {
    if !console.gateway.auth_enabled() {
        return Redirect::to("/console").into_response();
    }
    pages::login(None).into_response()
}

/// `POST /console/login` form.
#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

async fn login(State(console): State<Console>, form: Result<Form<LoginForm>, FormRejection>) -> Response {
    let Ok(Form(form)) = form else {
        return (StatusCode::BAD_REQUEST, pages::login(Some("Type the master key."))).into_response();
    };
    match console.gateway.authenticate(Some(form.key.trim())).await {
        Ok(Caller::Admin) | Ok(Caller::Anonymous) => {
            let token = console.open_session();
            let cookie = format!("{SESSION_COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict");
            let mut response = Redirect::to("/console").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            pages::login(Some("That is not the master key.")),
        )
            .into_response(),
    }
}

/// The range and what-if every page takes.
#[derive(Deserialize)]
struct RangeParams {
    /// Hours back from the current hour.
    hours: Option<i64>,
    /// Demand multiple for the plan.
    growth: Option<f64>,
    /// Copies of the calls the simulator page replays together.
    scale: Option<u32>,
}

/// Ranges the pages offer, in hours.
const RANGES: [i64; 4] = [24, 72, 168, 720];

/// A page's range, checked, with the report for it.
pub(crate) struct Range {
    pub(crate) hours: i64,
    pub(crate) growth: f64,
}

impl Range {
    pub(crate) fn query(&self) -> String {
        format!("hours={}&growth={}", self.hours, self.growth)
    }
}

/// The hour in progress, in hours since the epoch.
fn current_hour() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs() / 3600).unwrap_or(0))
}

/// The report for a page's range; `what_ifs` adds the capacity and sensitivity tables.
async fn figures(
    console: &Console,
    params: Result<Query<RangeParams>, QueryRejection>,
    what_ifs: bool,
) -> Result<(Range, LoopReport), Response> {
    let Query(params) =
        params.map_err(|rejection| pages::problem(StatusCode::BAD_REQUEST, &rejection.body_text()).into_response())?;
    let hours = params.hours.unwrap_or(168);
    if !RANGES.contains(&hours) {
        let message = format!("hours must be one of 24, 72, 168 or 720, not {hours}.");
        return Err(pages::problem(StatusCode::BAD_REQUEST, &message).into_response());
    }
    let growth = params.growth.unwrap_or(1.0);
    if !(growth.is_finite() && growth > 0.0 && growth <= 1e6) {
        let message = format!("growth must be above 0 and at most 1000000, not {growth}.");
        return Err(pages::problem(StatusCode::BAD_REQUEST, &message).into_response());
    }
    let options = LoopOptions {
        growth,
        what_ifs,
        ..LoopOptions::default()
    };
    // The current hour is included, so the figures move while one watches; the forecast starts after it.
    let to_hour = current_hour() + 1;
    match console.report(to_hour - hours, to_hour, options).await {
        Ok(report) => Ok((Range { hours, growth }, report)),
        Err(message) => {
            tracing::error!(%message, "console figures failed");
            Err(pages::problem(StatusCode::INTERNAL_SERVER_ERROR, &message).into_response())
        }
    }
}

async fn overview(State(console): State<Console>, params: Result<Query<RangeParams>, QueryRejection>) -> Response {
    match figures(&console, params, false).await {
        Ok((range, report)) => pages::overview(&range, &report).into_response(),
        Err(response) => response,
    }
}

async fn usage(State(console): State<Console>, params: Result<Query<RangeParams>, QueryRejection>) -> Response {
    match figures(&console, params, false).await {
        Ok((range, report)) => pages::usage(&range, &report).into_response(),
        Err(response) => response,
    }
}

async fn forecast(State(console): State<Console>, params: Result<Query<RangeParams>, QueryRejection>) -> Response {
    match figures(&console, params, false).await {
        Ok((range, report)) => pages::forecast(&range, &report).into_response(),
        Err(response) => response,
    }
}

async fn fleet_page(State(console): State<Console>, params: Result<Query<RangeParams>, QueryRejection>) -> Response {
    match figures(&console, params, true).await {
        Ok((range, report)) => pages::fleet(
            &range,
            &report,
            console.figures.fleet(),
            console.figures.live_placement().as_ref(),
        )
        .into_response(),
        Err(response) => response,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("fw_session=a; fw_console=tok"));
        assert_eq!(cookie_token(&headers).as_deref(), Some("tok"));
        assert!(cookie_token(&HeaderMap::new()).is_none());
    }
}
