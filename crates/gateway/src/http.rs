//! The OpenAI-compatible HTTP API: `/v1/chat/completions` (whole or as server-sent events), `/v1/embeddings`
//! and `/v1/models`; `/v1/responses` is served from [`crate::responses`]. Every failure, including a body axum could not parse, answers with an OpenAI error body.
//! Anthropic's `/v1/messages` routes share this router; their handlers (and error bodies) live in
//! [`crate::anthropic`].

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::openai::{ChatCompletionRequest, EmbeddingRequest, ModelList, ModelObject};
use crate::{Caller, Gateway, GatewayError, LimitStatus};

/// Limits of the HTTP API.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) gateway: Gateway,
    pub(crate) options: HttpOptions,
}

impl FromRef<AppState> for Gateway {
    fn from_ref(state: &AppState) -> Gateway {
        state.gateway.clone()
    }
}

/// The checked caller of a request: OpenAI clients send `Authorization: Bearer <key>`, Anthropic clients
/// `x-api-key: <key>`; both are accepted everywhere.
pub(crate) struct Authenticated(pub(crate) Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated
where
    Gateway: FromRef<S>,
{
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Authenticated(
            Gateway::from_ref(state).authenticate_headers(&parts.headers).await?,
        ))
    }
}

/// The `/v1` routes, with OpenAI-style errors for unknown paths and methods under `/v1`.
pub fn router(gateway: Gateway, options: HttpOptions) -> Router {
    let state = AppState { gateway, options };
    let v1 = Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/responses", post(crate::responses::http::create))
        .route("/messages", post(crate::anthropic::http::messages))
        .route("/messages/count_tokens", post(crate::anthropic::http::count_tokens))
        .route("/embeddings", post(embeddings))
        .route("/models", get(list_models))
        .route("/models/{id}", get(get_model))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state);
    Router::new().nest("/v1", v1)
}

/// JSON body extractor whose rejections are OpenAI error bodies.
pub(crate) struct OpenAiJson<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for OpenAiJson<T> {
    type Rejection = GatewayError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(OpenAiJson(value)),
            Err(rejection) => Err(rejection_to_error(&rejection, state.options.max_body_bytes)),
        }
    }
}

pub(crate) fn rejection_to_error(rejection: &JsonRejection, limit_bytes: usize) -> GatewayError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => GatewayError::BodyTooLarge { limit_bytes },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => GatewayError::UnsupportedMediaType,
        _ => GatewayError::InvalidRequest {
            message: format!("invalid JSON body: {}", rejection.body_text()),
            param: None,
        },
    }
}

async fn chat_completions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: axum::http::HeaderMap,
    OpenAiJson(request): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, GatewayError> {
    let client = chat_client(state.gateway.client_for(&caller), &headers)?;
    let limits = client.admit(crate::chat::ENDPOINT, &request.model).await?;
    let (response, cache) = if request.stream {
        let (chunks, cache) = client.chat_stream_traced(request).await?;
        let events = chunks
            .map(|chunk| {
                let event = match chunk {
                    Ok(chunk) => Event::default().json_data(chunk),
                    Err(error) => Event::default().json_data(error.body()),
                };
                Ok::<Event, Infallible>(event.unwrap_or_else(|_| Event::default().data("{}")))
            })
            .chain(futures::stream::once(async { Ok(Event::default().data("[DONE]")) }));
        (Sse::new(events).keep_alive(KeepAlive::default()).into_response(), cache)
    } else {
        let (completion, cache) = client.chat_traced(request).await?;
        (Json(completion).into_response(), cache)
    };
    Ok(with_answer_headers(response, cache, limits))
}

/// Asks for (`exact`, `semantic`, `off`) and reports (`hit`, `miss`) the response cache.
pub(crate) const CACHE_HEADER: &str = "x-flywheel-cache";
pub(crate) const ROUTE_HEADER: &str = "x-flywheel-route";
const REGION_HEADER: &str = "x-flywheel-region";
const SLO_HEADER: &str = "x-flywheel-slo";
/// The product feature a call is recorded under in the ledger.
const FEATURE_HEADER: &str = "x-flywheel-feature";
/// The longest feature name.
const MAX_FEATURE_CHARS: usize = 64;
/// The W3C trace context header: a model call's span joins the caller's trace.
const TRACEPARENT_HEADER: &str = "traceparent";

/// `client` for one chat request: in the caller's trace, using the cache as `x-flywheel-cache` says, routed
/// for the region and SLO class `x-flywheel-region` and `x-flywheel-slo` name.
pub(crate) fn chat_client(
    client: crate::GatewayClient,
    headers: &axum::http::HeaderMap,
) -> Result<crate::GatewayClient, GatewayError> {
    let text = |name: &'static str| -> Result<Option<String>, GatewayError> {
        headers
            .get(name)
            .map(|value| {
                value
                    .to_str()
                    .map(str::to_owned)
                    .map_err(|_| GatewayError::invalid(name, format!("{name} must be visible ASCII")))
            })
            .transpose()
    };
    let client = featured_client(traced_client(client, headers), headers)?
        .with_placement(text(REGION_HEADER)?, text(SLO_HEADER)?);
    match headers.get(CACHE_HEADER) {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| GatewayError::invalid(CACHE_HEADER, "x-flywheel-cache must be exact, semantic or off"))?;
            client.with_cache_header(value)
        }
        None => Ok(client),
    }
}

/// `client` in the caller's trace, when the request names one (an invalid `traceparent` is ignored, as the W3C
/// specification asks).
fn traced_client(client: crate::GatewayClient, headers: &axum::http::HeaderMap) -> crate::GatewayClient {
    match headers.get(TRACEPARENT_HEADER).and_then(|value| value.to_str().ok()) {
        Some(value) => client.with_traceparent(value),
        None => client,
    }
}

/// `client` recording its calls under the feature `x-flywheel-feature` names: 1 to 64 letters, digits, `.`,
/// `_`, `-` or `:`.
pub(crate) fn featured_client(
    client: crate::GatewayClient,
    headers: &axum::http::HeaderMap,
) -> Result<crate::GatewayClient, GatewayError> {
    let Some(value) = headers.get(FEATURE_HEADER) else {
        return Ok(client);
    };
    let valid = value.to_str().ok().filter(|text| {
        !text.is_empty()
            && text.len() <= MAX_FEATURE_CHARS
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
    });
    match valid {
        Some(feature) => Ok(client.for_feature(feature)),
        None => Err(GatewayError::invalid(
            FEATURE_HEADER,
            format!("{FEATURE_HEADER} must be 1 to {MAX_FEATURE_CHARS} letters, digits, '.', '_', '-' or ':'"),
        )),
    }
}

/// A chat answer's headers: whether the response cache served it (`x-flywheel-cache`), where it ran and why
/// (`x-flywheel-route`), and the key's limits.
pub(crate) fn with_answer_headers(
    mut response: Response,
    meta: crate::AnswerMeta,
    limits: Option<LimitStatus>,
) -> Response {
    if let Some(cache) = meta.cache {
        response
            .headers_mut()
            .insert(CACHE_HEADER, axum::http::HeaderValue::from_static(cache));
    }
    // A deployment or site name outside visible ASCII cannot go into a header; the ledger still has it.
    if let Some(route) = meta.route
        && let Ok(value) = axum::http::HeaderValue::from_str(&route)
    {
        response.headers_mut().insert(ROUTE_HEADER, value);
    }
    with_limit_headers(response, limits)
}

/// OpenAI's `x-ratelimit-*` headers, for keys that have limits.
pub(crate) fn with_limit_headers(mut response: Response, limits: Option<LimitStatus>) -> Response {
    let Some(limits) = limits else {
        return response;
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit-requests", limits.limit_requests),
        ("x-ratelimit-remaining-requests", limits.remaining_requests),
        ("x-ratelimit-limit-tokens", limits.limit_tokens),
        ("x-ratelimit-remaining-tokens", limits.remaining_tokens),
    ] {
        if let Some(value) = value {
            headers.insert(name, axum::http::HeaderValue::from(value));
        }
    }
    response
}

async fn embeddings(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: axum::http::HeaderMap,
    OpenAiJson(request): OpenAiJson<EmbeddingRequest>,
) -> Result<Response, GatewayError> {
    let client = featured_client(traced_client(state.gateway.client_for(&caller), &headers), &headers)?;
    let limits = client.admit(crate::embeddings::ENDPOINT, &request.model).await?;
    let response = Json(client.embeddings(request).await?).into_response();
    Ok(with_limit_headers(response, limits))
}

fn model_object(gateway: &Gateway, id: String) -> ModelObject {
    ModelObject {
        id,
        object: "model",
        created: gateway.started_at(),
        owned_by: "flywheel".to_owned(),
    }
}

async fn list_models(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Json<ModelList> {
    let client = state.gateway.client_for(&caller);
    // Every name a client can call: ids and aliases, as far as the key may use them.
    let data = state
        .gateway
        .models()
        .into_iter()
        .flat_map(|model| {
            let id_allowed = client.allows_model(&model.id);
            std::iter::once(model.id.clone())
                .chain(model.aliases)
                .filter(|name| id_allowed || client.allows_model(name))
                .collect::<Vec<_>>()
        })
        .map(|name| model_object(&state.gateway, name))
        .collect();
    Json(ModelList { object: "list", data })
}

async fn get_model(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<ModelObject>, GatewayError> {
    let client = state.gateway.client_for(&caller);
    let known = state
        .gateway
        .models()
        .into_iter()
        .find(|model| model.id == id || model.aliases.contains(&id));
    let visible = known.is_some_and(|model| client.allows_model(&id) || client.allows_model(&model.id));
    if visible {
        Ok(Json(model_object(&state.gateway, id)))
    } else {
        Err(GatewayError::ModelNotFound(id))
    }
}

async fn unknown_route(request: Request) -> GatewayError {
    GatewayError::RouteNotFound {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
}

async fn method_not_allowed(request: Request) -> Response {
    let error = GatewayError::InvalidRequest {
        message: format!("method {} is not allowed on {}", request.method(), request.uri().path()),
        param: None,
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(error.body())).into_response()
}
