//! The admin API: tenants' virtual keys (`/admin/keys` to create and list, `/admin/keys/{id}` to read, change
//! and revoke, `/admin/keys/{id}/rotate` for a new secret), usage reports from the ledger (`/admin/usage`), tenants' own limits
//! (`/admin/tenants/{name}`) and the model catalog with deployment health (`/admin/models`). It needs the master key; with auth off (no master key,
//! local use) it is open like everything else.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::http::Authenticated;
use crate::{Caller, Gateway, GatewayError, IssuedKey, KeyInfo, NewKey, UsageDimension, parse_bound};

/// The `/admin` routes, with `extra` admin routes of other crates (paths relative to `/admin`) served beside
/// the gateway's; they check the caller with [`Gateway::authenticate_headers`] and [`Caller::require_admin`].
pub fn router(gateway: Gateway, extra: Router) -> Router {
    let admin = Router::new()
        .route("/keys", post(create_key).get(list_keys))
        .route("/keys/{id}", get(get_key).patch(update_key).delete(revoke_key))
        .route("/keys/{id}/rotate", post(rotate_key))
        .route("/usage", get(usage))
        .route("/placement", get(placement))
        .route("/models", get(list_models))
        .route("/tenants", get(list_tenants))
        .route("/tenants/{name}", get(get_tenant).put(set_tenant).delete(remove_tenant))
        .fallback(|request: axum::extract::Request| async move {
            GatewayError::RouteNotFound {
                method: request.method().to_string(),
                path: request.uri().path().to_owned(),
            }
        })
        .with_state(gateway);
    Router::new().nest("/admin", extra.merge(admin))
}

fn require_admin(caller: &Caller) -> Result<(), GatewayError> {
    caller.require_admin()
}

/// `POST /admin/keys` body: the key's limits, with the budget in dollars for people.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    tenant: String,
    name: Option<String>,
    models: Option<Vec<String>>,
    rpm: Option<u32>,
    tpm: Option<u32>,
    budget_usd: Option<f64>,
    #[serde(default)]
    budget_period: crate::BudgetPeriod,
    expires_at: Option<i64>,
    metadata: Option<serde_json::Value>,
    guardrails: Option<crate::guardrails::GuardrailPolicy>,
    cache: Option<crate::CachePolicy>,
}

/// Dollars to integer micro-dollars, refusing what is not a sane amount (negative, NaN, infinite, absurd).
pub fn usd_to_micros(usd: f64) -> Result<i64, GatewayError> {
    if !(0.0..=1e12).contains(&usd) {
        return Err(GatewayError::invalid(
            "budget_usd",
            "'budget_usd' must be a non-negative amount of dollars",
        ));
    }
    // Rounded to the nearest micro-dollar; the range check above keeps it inside i64.
    Ok((usd * 1e6).round() as i64)
}

async fn create_key(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    body: Result<Json<CreateKey>, JsonRejection>,
) -> Result<(StatusCode, Json<IssuedKey>), GatewayError> {
    require_admin(&caller)?;
    let Json(body) = body.map_err(|rejection| GatewayError::InvalidRequest {
        message: format!("invalid JSON body: {}", rejection.body_text()),
        param: None,
    })?;
    let new = NewKey {
        tenant: body.tenant,
        name: body.name,
        models: body.models,
        rpm: body.rpm,
        tpm: body.tpm,
        budget_micros: body.budget_usd.map(usd_to_micros).transpose()?,
        budget_period: body.budget_period,
        expires_at: body.expires_at,
        metadata: body.metadata,
        guardrails: body.guardrails,
        cache: body.cache,
    };
    Ok((StatusCode::CREATED, Json(gateway.keys().create(new).await?)))
}

/// `GET /admin/models`: every model with its aliases, prices, deployments (and whether each is in rotation),
/// fallbacks and state.
async fn list_models(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
) -> Result<Json<serde_json::Value>, GatewayError> {
    require_admin(&caller)?;
    Ok(Json(serde_json::json!({ "object": "list", "data": gateway.models() })))
}

/// `PUT /admin/tenants/{name}` body: limits over all of a tenant's keys, with the budget in dollars.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetTenant {
    rpm: Option<u32>,
    tpm: Option<u32>,
    budget_usd: Option<f64>,
    #[serde(default)]
    budget_period: crate::BudgetPeriod,
}

fn tenant_json(name: &str, limits: &crate::TenantLimits) -> serde_json::Value {
    serde_json::json!({
        "tenant": name,
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "budget_micros": limits.budget_micros,
        "budget_period": limits.budget_period,
    })
}

async fn list_tenants(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
) -> Result<Json<serde_json::Value>, GatewayError> {
    require_admin(&caller)?;
    let data: Vec<serde_json::Value> = gateway
        .tenant_limits()
        .iter()
        .map(|(name, limits)| tenant_json(name, limits))
        .collect();
    Ok(Json(serde_json::json!({ "object": "list", "data": data })))
}

async fn get_tenant(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, GatewayError> {
    require_admin(&caller)?;
    let limits = gateway.tenant(&name).unwrap_or_default();
    Ok(Json(tenant_json(&name, &limits)))
}

async fn set_tenant(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    body: Result<Json<SetTenant>, JsonRejection>,
) -> Result<Json<serde_json::Value>, GatewayError> {
    require_admin(&caller)?;
    let Json(body) = body.map_err(|rejection| GatewayError::InvalidRequest {
        message: format!("invalid JSON body: {}", rejection.body_text()),
        param: None,
    })?;
    if name.trim().is_empty() || name.len() > 128 {
        return Err(GatewayError::invalid("name", "a tenant name is 1 to 128 characters"));
    }
    let limits = crate::TenantLimits {
        rpm: body.rpm,
        tpm: body.tpm,
        budget_micros: body.budget_usd.map(usd_to_micros).transpose()?,
        budget_period: body.budget_period,
    };
    gateway
        .set_tenant_limits(&name, limits.clone())
        .await
        .map_err(|error| GatewayError::Internal(error.to_string()))?;
    Ok(Json(tenant_json(&name, &limits)))
}

async fn remove_tenant(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, GatewayError> {
    require_admin(&caller)?;
    gateway
        .remove_tenant_limits(&name)
        .await
        .map_err(|error| GatewayError::Internal(error.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_keys(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
) -> Result<Json<serde_json::Value>, GatewayError> {
    require_admin(&caller)?;
    Ok(Json(
        serde_json::json!({ "object": "list", "data": gateway.keys().list().await? }),
    ))
}

async fn get_key(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<KeyInfo>, GatewayError> {
    require_admin(&caller)?;
    Ok(Json(gateway.keys().get(&id).await?))
}

/// `PATCH /admin/keys/{id}`: the body names what changes (left out: unchanged; `null`: restriction lifted), as
/// [`crate::KeyUpdate`] does, but with the budget in dollars (`budget_usd`) for people.
async fn update_key(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<Json<KeyInfo>, GatewayError> {
    require_admin(&caller)?;
    let Json(mut body) = body.map_err(|rejection| GatewayError::InvalidRequest {
        message: format!("invalid JSON body: {}", rejection.body_text()),
        param: None,
    })?;
    if body.contains_key("budget_micros") {
        return Err(GatewayError::invalid(
            "budget_micros",
            "set the budget with 'budget_usd'",
        ));
    }
    if let Some(budget_usd) = body.remove("budget_usd") {
        let micros = match budget_usd {
            serde_json::Value::Null => serde_json::Value::Null,
            value => {
                let usd = value.as_f64().ok_or_else(|| {
                    GatewayError::invalid("budget_usd", "'budget_usd' must be a number of dollars or null")
                })?;
                serde_json::Value::from(usd_to_micros(usd)?)
            }
        };
        body.insert("budget_micros".to_owned(), micros);
    }
    let update: crate::KeyUpdate =
        serde_json::from_value(serde_json::Value::Object(body)).map_err(|error| GatewayError::InvalidRequest {
            message: format!("invalid key update: {error}"),
            param: None,
        })?;
    Ok(Json(gateway.keys().update(&id, update).await?))
}

async fn revoke_key(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<KeyInfo>, GatewayError> {
    require_admin(&caller)?;
    Ok(Json(gateway.keys().revoke(&id).await?))
}

async fn rotate_key(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<IssuedKey>, GatewayError> {
    require_admin(&caller)?;
    Ok(Json(gateway.keys().rotate(&id).await?))
}

/// A query string's parameters, or a 400 saying what is wrong with them.
fn query_params<T>(params: Result<Query<T>, QueryRejection>) -> Result<T, GatewayError> {
    params
        .map(|Query(params)| params)
        .map_err(|rejection| GatewayError::InvalidRequest {
            message: rejection.body_text(),
            param: None,
        })
}

/// `GET /admin/placement` parameters: a request as the fleet router would see it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlacementParams {
    model: String,
    region: Option<String>,
    slo: Option<String>,
    prompt_tokens: Option<u32>,
    output_tokens: Option<u32>,
}

/// Where the fleet router would send a request now, with every candidate replica's scores.
async fn placement(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    params: Result<Query<PlacementParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, GatewayError> {
    require_admin(&caller)?;
    let params = query_params(params)?;
    let query = crate::PlacementQuery {
        model: params.model,
        region: params.region,
        slo: params.slo,
        prompt_tokens: params.prompt_tokens.unwrap_or(1000),
        output_tokens: params.output_tokens.unwrap_or(256),
    };
    match gateway.explain_placement(&query) {
        None => Err(GatewayError::NoFleet),
        Some(Ok(explanation)) => Ok(Json(explanation)),
        Some(Err(message)) => Err(GatewayError::InvalidRequest { message, param: None }),
    }
}

/// `GET /admin/usage` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageParams {
    /// Comma-separated dimensions.
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn usage(
    State(gateway): State<Gateway>,
    Authenticated(caller): Authenticated,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, GatewayError> {
    require_admin(&caller)?;
    let params = query_params(params)?;
    let group_by = params
        .group_by
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<UsageDimension>, _>>()?;
    let from = params
        .from
        .as_deref()
        .map(|text| parse_bound("from", text))
        .transpose()?;
    let to = params.to.as_deref().map(|text| parse_bound("to", text)).transpose()?;
    let data = gateway
        .ledger()
        .report(&group_by, from.as_deref(), to.as_deref())
        .await
        .map_err(|error| GatewayError::Internal(error.to_string()))?;
    Ok(Json(
        serde_json::json!({ "object": "list", "from": from, "to": to, "data": data }),
    ))
}
