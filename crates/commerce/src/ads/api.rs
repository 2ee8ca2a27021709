//! The ads HTTP API. For the store's admins (master key), relative to `/admin`: `POST /ads/campaigns` and
//! `GET /ads/campaigns`, `PATCH /ads/campaigns/{id}` (status, budget), `GET /ads/report?from=&to=`. For the
//! storefront's pages, under `/api`: `POST /api/ads/clicks` (an impression clicked) and `POST /api/ads/orders`
//! (a product bought, attributed to the ad clicked before it).

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use gateway::Gateway;
use serde::Deserialize;

use super::{Ads, Campaign, CampaignDraft, CampaignReport, CampaignStatus, ClickOutcome, OrderOutcome, micros};
use crate::admin::authorize_admin;
use crate::error::json_body;
use crate::unix_millis as now_ms;
use crate::{CommerceError, Storefront};

#[derive(Clone)]
struct AdminState {
    ads: Arc<Ads>,
    storefront: Storefront,
    gateway: Gateway,
}

/// The ads admin routes, relative to `/admin`.
pub fn admin_routes(ads: Arc<Ads>, storefront: Storefront, gateway: Gateway) -> Router {
    Router::new()
        .route("/ads/campaigns", post(create_campaign).get(list_campaigns))
        .route("/ads/campaigns/{id}", patch(update_campaign))
        .route("/ads/report", get(report))
        .with_state(AdminState {
            ads,
            storefront,
            gateway,
        })
}

/// The storefront's ad event routes, relative to `/api` (the storefront's API serves them when it has ads).
pub(crate) fn public_routes(ads: Arc<Ads>) -> Router {
    Router::new()
        .route("/ads/clicks", post(click))
        .route("/ads/orders", post(order))
        .with_state(ads)
}

async fn create_campaign(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<Json<CampaignDraft>, JsonRejection>,
) -> Result<(StatusCode, Json<Campaign>), CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    let draft = json_body(body)?;
    let campaign = state.ads.create_campaign(draft, &state.storefront).await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

async fn list_campaigns(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    let campaigns: Vec<serde_json::Value> = state
        .ads
        .campaigns()
        .iter()
        .map(|campaign| {
            let mut value = serde_json::to_value(campaign).unwrap_or_default();
            value["spent_today_micros"] = state.ads.spent_today(&campaign.id).into();
            value
        })
        .collect();
    Ok(Json(serde_json::json!({ "data": campaigns })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignUpdate {
    status: Option<CampaignStatus>,
    daily_budget_usd: Option<f64>,
}

async fn update_campaign(
    State(state): State<AdminState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<CampaignUpdate>, JsonRejection>,
) -> Result<Json<Campaign>, CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    let Path(id) = id?;
    let update = json_body(body)?;
    let mut campaign = state
        .ads
        .campaigns()
        .iter()
        .find(|campaign| campaign.id == id)
        .cloned()
        .ok_or_else(|| CommerceError::NotFound(format!("no campaign has the id '{id}'")))?;
    if let Some(status) = update.status {
        campaign.status = status;
    }
    if let Some(budget) = update.daily_budget_usd {
        campaign.daily_budget_micros = micros(budget, "daily_budget_usd")?;
    }
    state.ads.save_campaign(&campaign).await?;
    Ok(Json(campaign))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    /// Unix milliseconds, inclusive [default: 30 days ago].
    from: Option<i64>,
    /// Unix milliseconds, exclusive [default: now].
    to: Option<i64>,
}

async fn report(
    State(state): State<AdminState>,
    headers: HeaderMap,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    let Query(params) = params?;
    let to = params.to.unwrap_or_else(|| now_ms() + 1);
    let from = params.from.unwrap_or(to - super::REPORT_WINDOW_MS);
    if from >= to {
        return Err(CommerceError::InvalidRequest(format!(
            "from ({from}) must be before to ({to})"
        )));
    }
    let campaigns: Vec<CampaignReport> = state.ads.report(from, to).await?;
    Ok(Json(serde_json::json!({ "from": from, "to": to, "data": campaigns })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClickBody {
    impression_id: String,
}

async fn click(
    State(ads): State<Arc<Ads>>,
    body: Result<Json<ClickBody>, JsonRejection>,
) -> Result<Json<ClickOutcome>, CommerceError> {
    let body = json_body(body)?;
    Ok(Json(ads.click(&body.impression_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    product_id: String,
    amount_usd: f64,
}

async fn order(
    State(ads): State<Arc<Ads>>,
    body: Result<Json<OrderBody>, JsonRejection>,
) -> Result<(StatusCode, Json<OrderOutcome>), CommerceError> {
    let body = json_body(body)?;
    if body.product_id.trim().is_empty() {
        return Err(CommerceError::InvalidRequest("product_id must not be empty".to_owned()));
    }
    let amount = micros(body.amount_usd, "amount_usd")?;
    Ok((StatusCode::CREATED, Json(ads.order(&body.product_id, amount).await?)))
}
