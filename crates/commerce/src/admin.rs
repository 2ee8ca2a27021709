//! Catalog administration, shared by the HTTP admin routes (`POST /admin/catalog/import`, `GET /admin/catalog`)
//! and the CLI: a product file is read with its field mapping, stored in the database (new products added,
//! changed ones updated in place), and the storefront serves the result.

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gateway::Gateway;
use serde::{Deserialize, Serialize};

use crate::import::{CatalogFormat, FieldMapping, RejectedRow, read_products};
use std::sync::Arc;

use crate::error::json_body;
use crate::merchandising::{Merchandising, Rule, SynonymSet};
use crate::{CatalogStore, CommerceError, Storefront};

/// The largest product file accepted over HTTP; larger ones go through `flywheel catalog import`.
const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// What importing a product file did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogImport {
    /// The format the file was read as.
    pub format: CatalogFormat,
    /// Valid products in the file.
    pub valid: usize,
    /// Of those, products new to the catalog.
    pub inserted: usize,
    /// Products whose record changed.
    pub updated: usize,
    /// Products that were already exactly so.
    pub unchanged: usize,
    /// Products removed because the file did not have them (only when replacing).
    pub removed: usize,
    /// The rows skipped, with their line and reason.
    pub rejected: Vec<RejectedRow>,
    /// The catalog's version after the import.
    pub version: i64,
}

/// Reads `file` (of `format`, or the detected one) through `mapping` and stores its valid products; with
/// `replace`, products the file lacks are removed. A file with rows but not one valid product is refused
/// whole, so that a wrong mapping never empties a catalog.
pub async fn import_catalog(
    store: &CatalogStore,
    file: &[u8],
    format: Option<CatalogFormat>,
    mapping: &FieldMapping,
    replace: bool,
    name: &str,
) -> Result<CatalogImport, CommerceError> {
    let format = format.unwrap_or_else(|| CatalogFormat::detect(file));
    let read = read_products(file, format, mapping, name)?;
    if read.products.is_empty() && !read.rejected.is_empty() {
        let first = &read.rejected[0];
        return Err(CommerceError::CatalogFormat {
            catalog: name.to_owned(),
            reason: format!(
                "none of its {} rows is a valid product (line {}: {})",
                read.rejected.len(),
                first.line,
                first.reason
            ),
        });
    }
    let summary = store.import(&read.products, replace).await?;
    Ok(CatalogImport {
        format,
        valid: read.products.len(),
        inserted: summary.inserted,
        updated: summary.updated,
        unchanged: summary.unchanged,
        removed: summary.removed,
        rejected: read.rejected,
        version: summary.version,
    })
}

#[derive(Clone)]
struct AdminState {
    storefront: Storefront,
    store: CatalogStore,
    gateway: Gateway,
}

/// The catalog admin routes, relative to `/admin`; pass them to the gateway's admin router.
pub fn admin_routes(storefront: Storefront, store: CatalogStore, gateway: Gateway) -> Router {
    Router::new()
        .route(
            "/catalog/import",
            post(import).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/catalog", get(status))
        .route("/catalog/synonyms", get(list_synonyms).post(add_synonyms))
        .route("/catalog/rules", get(list_rules).post(add_rule))
        .route("/catalog/merchandising/{id}", delete(remove_merchandising))
        .with_state(AdminState {
            storefront,
            store,
            gateway,
        })
}

/// `POST /admin/catalog/import` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportParams {
    format: Option<String>,
    /// Comma-separated `field=column` declarations.
    mapping: Option<String>,
    replace: Option<bool>,
}

async fn import(
    State(state): State<AdminState>,
    headers: HeaderMap,
    params: Result<Query<ImportParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CatalogImport>, CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => CommerceError::TooLarge(format!(
            "the file is larger than {} MiB; import it with flywheel catalog import",
            MAX_UPLOAD_BYTES >> 20
        )),
        _ => CommerceError::InvalidRequest(rejection.body_text()),
    })?;
    let Query(params) = params?;
    let format = params.format.as_deref().map(CatalogFormat::parse).transpose()?;
    let mapping = FieldMapping::parse(
        params
            .mapping
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|declaration| !declaration.trim().is_empty()),
    )?;
    if body.is_empty() {
        return Err(CommerceError::InvalidRequest(
            "the request body must be the product file".to_owned(),
        ));
    }
    let imported = import_catalog(
        &state.store,
        &body,
        format,
        &mapping,
        params.replace.unwrap_or(false),
        "the uploaded file",
    )
    .await?;
    // Searches see the import as soon as this answers; the product vectors follow in the background.
    state.storefront.sync(&state.store).await?;
    Ok(Json(imported))
}

fn merchandising(state: &AdminState) -> Result<Arc<Merchandising>, CommerceError> {
    state
        .storefront
        .merchandising()
        .ok_or_else(|| CommerceError::Database("this store keeps no merchandising".to_owned()))
}

async fn list_synonyms(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    Ok(Json(serde_json::json!({ "data": *merchandising(&state)?.synonyms() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SynonymsBody {
    words: Vec<String>,
}

async fn add_synonyms(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<Json<SynonymsBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SynonymSet>), CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    let body = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(merchandising(&state)?.add_synonyms(body.words).await?),
    ))
}

async fn list_rules(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    Ok(Json(serde_json::json!({ "data": merchandising(&state)?.rules() })))
}

async fn add_rule(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<Json<Rule>, JsonRejection>,
) -> Result<(StatusCode, Json<Rule>), CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    let rule = json_body(body)?;
    let storefront = state.storefront.clone();
    let rule = merchandising(&state)?
        .add_rule(rule, |id| storefront.product(id).is_ok())
        .await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

async fn remove_merchandising(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    if merchandising(&state)?.remove(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(CommerceError::NotFound(format!(
            "no synonym set or rule has the id '{id}'"
        )))
    }
}

/// `GET /admin/catalog`: what is stored and what is served.
#[derive(Serialize)]
struct CatalogStatus {
    products: usize,
    version: i64,
    served_version: Option<i64>,
    search: &'static str,
}

async fn status(State(state): State<AdminState>, headers: HeaderMap) -> Result<Json<CatalogStatus>, CommerceError> {
    authorize_admin(&state.gateway, &headers).await?;
    Ok(Json(CatalogStatus {
        products: state.store.count().await?,
        version: state.store.version().await?,
        served_version: state.storefront.catalog_version(),
        search: if state.storefront.has_vectors() {
            "hybrid"
        } else {
            "keyword"
        },
    }))
}

/// Admin routes take the master key (or anyone while auth is off), as the gateway's own do.
pub(crate) async fn authorize_admin(gateway: &Gateway, headers: &HeaderMap) -> Result<(), CommerceError> {
    gateway
        .authenticate_headers(headers)
        .await
        .and_then(|caller| caller.require_admin())
        .map_err(CommerceError::Auth)
}
