//! The seller API, `/api/seller/...`: `POST /api/seller/listings` writes a listing from notes and scores it,
//! `POST /api/seller/listings/score` scores a listing the seller wrote. Callers authenticate like the gateway's
//! (any tenant key, or the master key; open while auth is off), and the model's tokens are their tenant's.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use gateway::Gateway;
use serde::{Deserialize, Serialize};

use crate::error::json_body;
use crate::listing::{Listing, ListingQuality, ListingWriter, score_listing};
use crate::{CommerceError, Storefront};

#[derive(Clone)]
struct SellerState {
    storefront: Storefront,
    gateway: Gateway,
    model: String,
}

/// The seller routes, at `/api/seller`; listings are written by `model`.
pub fn seller_router(storefront: Storefront, gateway: Gateway, model: &str) -> Router {
    let routes = Router::new()
        .route("/listings", post(write_listing))
        .route("/listings/score", post(score))
        .with_state(SellerState {
            storefront,
            gateway,
            model: model.to_owned(),
        });
    Router::new().nest("/api/seller", routes)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingBody {
    notes: String,
}

/// A written listing and its score.
#[derive(Serialize)]
struct WrittenListing {
    listing: Listing,
    quality: ListingQuality,
}

async fn write_listing(
    State(state): State<SellerState>,
    headers: HeaderMap,
    body: Result<Json<ListingBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, CommerceError> {
    let caller = state
        .gateway
        .authenticate_headers(&headers)
        .await
        .map_err(CommerceError::Auth)?;
    let body = json_body(body)?;
    let writer = ListingWriter::new(state.gateway.client_for(&caller), state.model.clone());
    let listing = writer.write(&state.storefront, &body.notes).await?;
    let quality = score_listing(&listing, Some(&body.notes));
    Ok(Json(
        serde_json::to_value(WrittenListing { listing, quality }).unwrap_or_default(),
    ))
}

async fn score(
    State(state): State<SellerState>,
    headers: HeaderMap,
    body: Result<Json<Listing>, JsonRejection>,
) -> Result<Json<ListingQuality>, CommerceError> {
    state
        .gateway
        .authenticate_headers(&headers)
        .await
        .map_err(CommerceError::Auth)?;
    Ok(Json(score_listing(&json_body(body)?, None)))
}
