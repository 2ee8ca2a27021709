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

use super::{Ads, Campaign, CampaignReport, CampaignStatus, ClickOutcome, OrderOutcome, Target};
use crate::admin::authorize_admin;
use crate::error::json_body;
use crate::unix_millis as now_ms;
use crate::{CommerceError, Storefront};

/// Keyword and category targets per campaign, and products: enough for any real campaign, bounded so one
/// request cannot make every search slow.
const MAX_TARGETS: usize = 200;
const MAX_PRODUCTS: usize = 1_000;

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

/// A bid as people write it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetBody {
    value: String,
    bid_usd: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCampaign {
    advertiser: String,
    name: String,
    daily_budget_usd: f64,
    products: Vec<String>,
    #[serde(default)]
    keywords: Vec<TargetBody>,
    #[serde(default)]
    categories: Vec<TargetBody>,
}

fn micros(usd: f64, what: &str) -> Result<i64, CommerceError> {
    if !usd.is_finite() || usd <= 0.0 || usd > 1e9 {
        return Err(CommerceError::InvalidRequest(format!(
            "{what} must be a positive number of dollars, got {usd}"
        )));
    }
    Ok((usd * 1e6).round() as i64)
}

async fn create_campaign(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<Json<NewCampaign>, JsonRejection>,
) -> Result<(StatusCode, Json<Campaign>), CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    let body = json_body(body)?;
    for (text, what) in [(&body.advertiser, "advertiser"), (&body.name, "name")] {
        if text.trim().is_empty() {
            return Err(CommerceError::InvalidRequest(format!(
                "the campaign's {what} must not be empty"
            )));
        }
    }
    if body.products.is_empty() || body.products.len() > MAX_PRODUCTS {
        return Err(CommerceError::InvalidRequest(format!(
            "a campaign advertises 1 to {MAX_PRODUCTS} products, got {}",
            body.products.len()
        )));
    }
    for id in &body.products {
        state.storefront.product(id).map_err(|error| match error {
            CommerceError::ProductNotFound(id) => {
                CommerceError::InvalidRequest(format!("the catalog has no product '{id}' to advertise"))
            }
            other => other,
        })?;
    }
    if body.keywords.is_empty() && body.categories.is_empty() {
        return Err(CommerceError::InvalidRequest(
            "a campaign needs at least one keyword or category target".to_owned(),
        ));
    }
    let targets = |bodies: Vec<TargetBody>, kind: &str| -> Result<Vec<Target>, CommerceError> {
        if bodies.len() > MAX_TARGETS {
            return Err(CommerceError::InvalidRequest(format!(
                "at most {MAX_TARGETS} {kind} targets, got {}",
                bodies.len()
            )));
        }
        bodies
            .into_iter()
            .map(|target| {
                if target.value.trim().is_empty() {
                    return Err(CommerceError::InvalidRequest(format!("a {kind} target is empty")));
                }
                Ok(Target {
                    value: target.value.trim().to_owned(),
                    bid_micros: micros(target.bid_usd, &format!("the bid on '{}'", target.value))?,
                })
            })
            .collect()
    };
    let campaign = Campaign {
        id: format!("cmp_{}", uuid::Uuid::new_v4().simple()),
        advertiser: body.advertiser.trim().to_owned(),
        name: body.name.trim().to_owned(),
        status: CampaignStatus::Active,
        daily_budget_micros: micros(body.daily_budget_usd, "daily_budget_usd")?,
        products: body.products,
        keywords: targets(body.keywords, "keyword")?,
        categories: targets(body.categories, "category")?,
    };
    state.ads.save_campaign(&campaign).await?;
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
    let Path(id) = id.map_err(|rejection| CommerceError::InvalidRequest(rejection.body_text()))?;
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
    let Query(params) = params.map_err(|rejection| CommerceError::InvalidRequest(rejection.body_text()))?;
    let to = params.to.unwrap_or_else(|| now_ms() + 1);
    let from = params.from.unwrap_or(to - 30 * super::DAY_MS);
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
