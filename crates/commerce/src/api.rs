//! The storefront's JSON API: `GET /api/search` (`q`, `limit`, `offset`, `mode`, `typo_tolerance`, `rerank`,
//! `filter`, `facets`, `sort`, `ads`), `GET /api/products/{id}` and `POST /api/products/{id}/ask`.
//! Every failure, including a malformed query string or body, answers with the `{"error":{"code","message"}}`
//! body of [`CommerceError`].

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use futures::StreamExt;

use crate::events::{EventKind, MAX_SESSION_CHARS};
use crate::shopping::{AssistantEvent, Turn};
use crate::{
    CommerceError, Filter, Product, ProductAnswer, SearchMode, SearchPage, SearchQuery, SortOrder, Storefront,
    parse_facets,
};

/// Hits per page when the client does not say.
const DEFAULT_LIMIT: usize = 10;

/// The storefront API routes, serving from `storefront`.
pub fn router(storefront: Storefront) -> Router {
    let ads = storefront.ads();
    let api = Router::new()
        .route("/search", get(search))
        .route("/products/{id}", get(product))
        .route("/products/{id}/ask", post(ask))
        .route("/products/{id}/also-viewed", get(also_viewed))
        .route("/products/{id}/also-bought", get(also_bought))
        .route("/suggest", get(suggest))
        .route("/assistant", post(assistant))
        .route("/cart", get(cart))
        .route("/cart/items", post(add_to_cart))
        .route("/cart/items/{product_id}", delete(remove_from_cart))
        .route("/events", post(record_event))
        .fallback(unknown_route)
        .with_state(storefront);
    let api = match ads {
        Some(ads) => crate::ads::public_routes(ads).merge(api),
        None => api,
    };
    Router::new().nest("/api", api)
}

/// `GET /api/search` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    mode: Option<String>,
    typo_tolerance: Option<bool>,
    rerank: Option<bool>,
    filter: Option<String>,
    facets: Option<String>,
    sort: Option<String>,
    ads: Option<bool>,
    session: Option<String>,
    highlight: Option<bool>,
}

async fn search(
    State(storefront): State<Storefront>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchPage>, CommerceError> {
    let Query(params) = params?;
    let text = params.q.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(CommerceError::InvalidRequest(
            "the query parameter 'q' is required and must not be empty".to_owned(),
        ));
    }
    let defaults = SearchQuery::new(&text);
    let query = SearchQuery {
        limit: params.limit.unwrap_or(DEFAULT_LIMIT),
        offset: params.offset.unwrap_or(0),
        mode: params.mode.as_deref().map_or(Ok(defaults.mode), SearchMode::parse)?,
        typo_tolerance: params.typo_tolerance.unwrap_or(defaults.typo_tolerance),
        rerank: params.rerank.unwrap_or(defaults.rerank),
        filter: params.filter.as_deref().map_or(Ok(Filter::default()), Filter::parse)?,
        facets: params.facets.as_deref().map_or(Ok(Vec::new()), parse_facets)?,
        sort: params
            .sort
            .as_deref()
            .map_or(Ok(SortOrder::Relevance), SortOrder::parse)?,
        sponsored: params.ads.unwrap_or(true),
        session: params.session.map(checked_session).transpose()?,
        highlight: params.highlight.unwrap_or(false),
        ..defaults
    };
    // Ranking in-RAM indexes takes about a millisecond, so it runs here rather than on the blocking pool.
    Ok(Json(storefront.search(&query).await?))
}

/// `GET /api/products/{id}` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductParams {
    /// The shopping session viewing it, if the client tracks one: views teach "customers also viewed".
    session: Option<String>,
}

async fn product(
    State(storefront): State<Storefront>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<ProductParams>, QueryRejection>,
) -> Result<Json<Product>, CommerceError> {
    let Path(id) = id?;
    let Query(params) = params?;
    let product = storefront.product(&id)?;
    if let Some(session) = params.session.map(checked_session).transpose()? {
        storefront.record(EventKind::View, &session, Some(&id), None);
    }
    Ok(Json(product))
}

fn checked_session(session: String) -> Result<String, CommerceError> {
    if session.trim().is_empty() || session.chars().count() > MAX_SESSION_CHARS {
        return Err(CommerceError::InvalidRequest(format!(
            "session must be 1 to {MAX_SESSION_CHARS} characters"
        )));
    }
    Ok(session)
}

/// Related products listed per request, at most.
const MAX_RELATED: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitParams {
    limit: Option<usize>,
}

fn related_limit(params: Result<Query<LimitParams>, QueryRejection>) -> Result<usize, CommerceError> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_RELATED).contains(&limit) {
        return Err(CommerceError::InvalidRequest(format!(
            "limit must be between 1 and {MAX_RELATED}, got {limit}"
        )));
    }
    Ok(limit)
}

async fn also_viewed(
    State(storefront): State<Storefront>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<LimitParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, CommerceError> {
    let Path(id) = id?;
    let products = storefront.also(EventKind::View, &id, related_limit(params)?).await?;
    Ok(Json(serde_json::json!({ "product_id": id, "products": products })))
}

async fn also_bought(
    State(storefront): State<Storefront>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<LimitParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, CommerceError> {
    let Path(id) = id?;
    let products = storefront.also(EventKind::Order, &id, related_limit(params)?).await?;
    Ok(Json(serde_json::json!({ "product_id": id, "products": products })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuggestParams {
    q: Option<String>,
    limit: Option<usize>,
}

async fn suggest(
    State(storefront): State<Storefront>,
    params: Result<Query<SuggestParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, CommerceError> {
    let Query(params) = params?;
    let prefix = params.q.unwrap_or_default();
    let limit = params.limit.unwrap_or(8);
    if !(1..=MAX_RELATED).contains(&limit) {
        return Err(CommerceError::InvalidRequest(format!(
            "limit must be between 1 and {MAX_RELATED}, got {limit}"
        )));
    }
    let suggestions = storefront.suggest(&prefix, limit)?;
    Ok(Json(
        serde_json::json!({ "q": prefix, "queries": suggestions.queries, "categories": suggestions.categories }),
    ))
}

/// `POST /api/assistant` body: the conversation so far, the shopper's turn last.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssistantBody {
    messages: Vec<Turn>,
    session: Option<String>,
    /// Server-sent events as the answer forms (the default), or one JSON document at the end.
    stream: Option<bool>,
}

async fn assistant(
    State(storefront): State<Storefront>,
    body: Result<Json<AssistantBody>, JsonRejection>,
) -> Result<Response, Response> {
    let Json(body) = body.map_err(body_rejection)?;
    let answer = async {
        let session = body.session.map(checked_session).transpose()?;
        storefront.converse(&body.messages, session.as_deref()).await
    };
    let events = answer.await.map_err(IntoResponse::into_response)?;
    if body.stream.unwrap_or(true) {
        let events = events.map(|event| {
            let name = serde_json::to_value(&event)
                .ok()
                .and_then(|value| value["type"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Event::default().event(name).json_data(&event)
        });
        return Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response());
    }
    let events: Vec<AssistantEvent> = events.collect().await;
    let text = AssistantEvent::text_of(&events);
    Ok(Json(serde_json::json!({ "text": text, "events": events })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionParams {
    session: Option<String>,
}

fn required_session(params: Result<Query<SessionParams>, QueryRejection>) -> Result<String, CommerceError> {
    let Query(params) = params?;
    let session = params
        .session
        .ok_or_else(|| CommerceError::InvalidRequest("the query parameter 'session' is required".to_owned()))?;
    checked_session(session)
}

async fn cart(
    State(storefront): State<Storefront>,
    params: Result<Query<SessionParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, CommerceError> {
    let session = required_session(params)?;
    let lines = storefront.cart(&session).await?;
    Ok(Json(serde_json::json!({ "session": session, "items": lines })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CartItemBody {
    session: String,
    product_id: String,
    quantity: Option<i64>,
}

async fn add_to_cart(
    State(storefront): State<Storefront>,
    body: Result<Json<CartItemBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Response> {
    let Json(body) = body.map_err(body_rejection)?;
    let added = async {
        let session = checked_session(body.session)?;
        let lines = storefront
            .add_to_cart(&session, &body.product_id, body.quantity.unwrap_or(1))
            .await?;
        Ok::<_, CommerceError>(serde_json::json!({ "session": session, "items": lines }))
    };
    Ok(Json(added.await.map_err(IntoResponse::into_response)?))
}

async fn remove_from_cart(
    State(storefront): State<Storefront>,
    product_id: Result<Path<String>, PathRejection>,
    params: Result<Query<SessionParams>, QueryRejection>,
) -> Result<StatusCode, CommerceError> {
    let Path(product_id) = product_id?;
    let session = required_session(params)?;
    if storefront.remove_from_cart(&session, &product_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(CommerceError::NotFound(format!(
            "the cart has no product '{product_id}'"
        )))
    }
}

/// `POST /api/events` body: what a shopper did, for clients that render their own pages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    kind: String,
    session: String,
    product_id: Option<String>,
    query: Option<String>,
}

async fn record_event(
    State(storefront): State<Storefront>,
    body: Result<Json<EventBody>, JsonRejection>,
) -> Result<StatusCode, Response> {
    let Json(body) = body.map_err(body_rejection)?;
    let event = || -> Result<(), CommerceError> {
        let kind = EventKind::parse(&body.kind)?;
        let session = checked_session(body.session.clone())?;
        match (kind, &body.product_id, &body.query) {
            (EventKind::Search, _, Some(query)) if !query.trim().is_empty() => {}
            (EventKind::Search, _, _) => {
                return Err(CommerceError::InvalidRequest(
                    "a search event needs its query".to_owned(),
                ));
            }
            (_, Some(product_id), _) => {
                storefront.product(product_id)?;
            }
            (_, None, _) => {
                return Err(CommerceError::InvalidRequest(format!(
                    "a {} event needs its product_id",
                    body.kind
                )));
            }
        }
        storefront.record(kind, &session, body.product_id.as_deref(), body.query.as_deref());
        Ok(())
    };
    event().map_err(IntoResponse::into_response)?;
    Ok(StatusCode::ACCEPTED)
}

/// Unknown paths under `/api` answer in the API's error shape, not with the storefront's HTML.
async fn unknown_route(uri: axum::http::Uri) -> Response {
    let body = serde_json::json!({ "error": { "code": "unknown_url", "message": format!("unknown endpoint {}", uri.path()) } });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// `POST /api/products/{id}/ask` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskBody {
    question: String,
}

async fn ask(
    State(storefront): State<Storefront>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<AskBody>, JsonRejection>,
) -> Result<Json<ProductAnswer>, Response> {
    let Path(id) = id.map_err(|rejection| CommerceError::from(rejection).into_response())?;
    let Json(body) = body.map_err(body_rejection)?;
    Ok(Json(
        storefront
            .ask(&id, &body.question)
            .await
            .map_err(IntoResponse::into_response)?,
    ))
}

/// A body axum could not take, in our error shape with axum's status (400, 413 or 415).
fn body_rejection(rejection: JsonRejection) -> Response {
    let status = match rejection.status() {
        status @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE) => status,
        _ => StatusCode::BAD_REQUEST,
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid_request",
    };
    let body = serde_json::json!({ "error": { "code": code, "message": rejection.body_text() } });
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::LazyLock;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    static DEMO: LazyLock<Storefront> = LazyLock::new(|| {
        let storefront = Storefront::new();
        storefront.load_demo().unwrap();
        storefront
    });

    async fn get_json(storefront: &Storefront, uri: &str) -> (StatusCode, Value) {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let response = router(storefront.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn error_code(body: &Value) -> &str {
        body["error"]["code"].as_str().unwrap()
    }

    #[tokio::test]
    async fn search_returns_ranked_products() {
        let (status, body) = get_json(&DEMO, "/api/search?q=king+poster+bed").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["understood"], json!({"size": "king"}));
        assert_eq!(body["query"], "king poster bed");
        assert!(body["total"].as_u64().unwrap() > 10);
        assert!(body["took_ms"].as_f64().unwrap() >= 0.0);
        let hits = body["hits"].as_array().unwrap();
        assert_eq!(hits.len(), DEFAULT_LIMIT);
        let mut fields: Vec<&str> = hits[0].as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "category_path",
                "class",
                "id",
                "name",
                "rating",
                "review_count",
                "score"
            ]
        );
        assert_eq!(hits[0]["rating"], Value::Null);
        assert_eq!(hits[0]["review_count"], 0);
    }

    #[tokio::test]
    async fn limit_and_offset_page_the_results() {
        let (_, all) = get_json(&DEMO, "/api/search?q=oak+table&limit=4").await;
        let (status, second) = get_json(&DEMO, "/api/search?q=oak+table&limit=2&offset=2").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            second["hits"].as_array().unwrap()[..],
            all["hits"].as_array().unwrap()[2..]
        );
    }

    #[tokio::test]
    async fn odd_query_text_is_searched_not_rejected() {
        for uri in [
            "/api/search?q=%22name%3Abed%20(AND%20-%5B",
            "/api/search?q=%F0%9F%98%80%20%E6%A4%85%E5%AD%90",
            "/api/search?q=the",
        ] {
            let (status, body) = get_json(&DEMO, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        }
        let long = format!("/api/search?q={}", "sofa+".repeat(2_000));
        assert_eq!(get_json(&DEMO, &long).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn bad_parameters_are_400_with_our_error_shape() {
        for uri in [
            "/api/search",
            "/api/search?q=",
            "/api/search?q=%20%20",
            "/api/search?q=bed&limit=0",
            "/api/search?q=bed&limit=101",
            "/api/search?q=bed&limit=ten",
            "/api/search?q=bed&offset=-1",
            "/api/search?q=bed&offset=99999",
            "/api/search?q=bed&lmit=5",
        ] {
            let (status, body) = get_json(&DEMO, uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(error_code(&body), "invalid_request", "{uri}");
            assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn filters_narrow_the_hits_and_facets_count_disjunctively() {
        let (status, body) = get_json(
            &DEMO,
            "/api/search?q=chair&mode=keyword&filter=category:Outdoor&facets=category,class&limit=100",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let hits = body["hits"].as_array().unwrap();
        assert!(!hits.is_empty());
        for hit in hits {
            assert!(
                hit["category_path"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|level| level == "Outdoor"),
                "{hit}"
            );
        }
        let facets = body["facets"].as_array().unwrap();
        assert_eq!(facets[0]["field"], "category");
        let count = |value: &str| {
            facets[0]["values"]
                .as_array()
                .unwrap()
                .iter()
                .find(|entry| entry["value"] == value)
                .map(|entry| entry["count"].as_u64().unwrap())
        };
        // The category facet ignores the category clause: other departments still show their counts.
        assert!(count("Furniture").unwrap() > 0);
        assert_eq!(count("Outdoor"), body["total"].as_u64());
        // The class facet applies it: every class counted is one of an Outdoor product.
        let classes = facets[1]["values"].as_array().unwrap();
        assert!(
            classes
                .iter()
                .map(|entry| entry["count"].as_u64().unwrap())
                .sum::<u64>()
                >= hits.len() as u64
        );

        let (_, unfiltered) = get_json(&DEMO, "/api/search?q=chair&mode=keyword&limit=1").await;
        assert!(unfiltered["total"].as_u64() > body["total"].as_u64());
        assert!(unfiltered.get("facets").is_none(), "facets only when asked");

        let (status, sorted) = get_json(&DEMO, "/api/search?q=chair&mode=keyword&sort=price_asc&limit=5").await;
        assert_eq!(status, StatusCode::OK, "{sorted}");
        assert_eq!(
            sorted["hits"].as_array().unwrap().len(),
            5,
            "unpriced products still list"
        );
        for uri in [
            "/api/search?q=chair&filter=category",
            "/api/search?q=chair&filter=price:cheap",
            "/api/search?q=chair&sort=cheapest",
            "/api/search?q=chair&facets=,,",
        ] {
            let (status, body) = get_json(&DEMO, uri).await;
            if uri.ends_with(",,") {
                assert_eq!(status, StatusCode::OK, "empty facet lists are no facets");
                continue;
            }
            assert_eq!(
                (status, error_code(&body)),
                (StatusCode::BAD_REQUEST, "invalid_request"),
                "{uri}"
            );
        }
    }

    #[tokio::test]
    async fn products_by_id() {
        let (status, body) = get_json(&DEMO, "/api/products/13").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({
                "id": "13",
                "name": "king tufted low profile standard bed",
                "class": ["Beds"],
                "category_path": ["Furniture", "Bedroom Furniture", "Beds & Headboards", "Beds"],
                "rating": null,
                "review_count": 0
            })
        );
        let (status, body) = get_json(&DEMO, "/api/products/no-such-product").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_code(&body), "product_not_found");
    }

    async fn post_ask(storefront: &Storefront, uri: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::post(uri)
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router(storefront.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn asking_checks_product_question_and_body_before_any_model_call() {
        let json = "application/json";
        for (uri, content_type, body, status, code) in [
            (
                "/api/products/nope/ask",
                json,
                r#"{"question":"is it oak?"}"#,
                404,
                "product_not_found",
            ),
            (
                "/api/products/13/ask",
                json,
                r#"{"question":"   "}"#,
                400,
                "invalid_request",
            ),
            (
                "/api/products/13/ask",
                json,
                r#"{"question":"x","extra":1}"#,
                400,
                "invalid_request",
            ),
            ("/api/products/13/ask", json, r#"{"question":"#, 400, "invalid_request"),
            (
                "/api/products/13/ask",
                "text/plain",
                r#"{"question":"x"}"#,
                415,
                "unsupported_media_type",
            ),
            // A valid question on a store that has no assistant.
            (
                "/api/products/13/ask",
                json,
                r#"{"question":"is it oak?"}"#,
                503,
                "assistant_unavailable",
            ),
        ] {
            let (got_status, got) = post_ask(&DEMO, uri, content_type, body).await;
            assert_eq!(got_status, status, "{body}: {got}");
            assert_eq!(error_code(&got), code, "{body}");
        }
        // Too long a question, the wrong type, and a body past axum's default limit (2 MB).
        let too_long = json!({ "question": "é".repeat(crate::assistant::MAX_QUESTION_CHARS + 1) }).to_string();
        let huge = json!({ "question": "x".repeat(3 << 20) }).to_string();
        for (body, status, code) in [
            (too_long.as_str(), 400, "invalid_request"),
            (r#"{"question":5}"#, 400, "invalid_request"),
            (huge.as_str(), 413, "body_too_large"),
        ] {
            let (got_status, got) = post_ask(&DEMO, "/api/products/13/ask", json, body).await;
            assert_eq!(got_status, status, "{code}: {got}");
            assert_eq!(error_code(&got), code, "{code}");
        }
    }

    #[tokio::test]
    async fn unknown_api_paths_are_json_404s() {
        let (status, body) = get_json(&DEMO, "/api/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_code(&body), "unknown_url");
    }

    #[tokio::test]
    async fn a_loading_catalog_is_503() {
        let loading = Storefront::new();
        for uri in ["/api/search?q=bed", "/api/products/13"] {
            let (status, body) = get_json(&loading, uri).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
            assert_eq!(error_code(&body), "catalog_loading");
        }
    }
}
