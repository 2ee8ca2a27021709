//! `POST /v1/messages` (whole, or as Anthropic server-sent events) and `POST /v1/messages/count_tokens`, on the
//! gateway's `/v1` router. Every failure, from a bad key to a body serde could not read to an error mid-stream,
//! answers with an Anthropic error body; the status is the one [`GatewayError::status`] gives. The
//! `anthropic-version` and `anthropic-beta` headers are accepted and ignored: there is one version here.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, RequestPartsExt};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::inbound::{self, EventTranslator};
use super::wire::{CountTokensRequest, CountTokensResponse, MessagesRequest, StreamEvent};
use crate::http::{AppState, Authenticated, chat_client, rejection_to_error, with_answer_headers};
use crate::{Caller, ChatCompletionStream, GatewayError};

/// The endpoint name for rate-limit refusals in the ledger.
const ENDPOINT: &str = "messages";

/// A gateway error answered with an Anthropic error body.
pub(crate) struct AnthropicError(GatewayError);

impl From<GatewayError> for AnthropicError {
    fn from(error: GatewayError) -> Self {
        AnthropicError(error)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&super::error_body(&self.0)).unwrap_or_default();
        // The status and headers (such as retry-after) come from the gateway's one mapping; only the body differs.
        let (mut parts, _) = self.0.into_response().into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        Response::from_parts(parts, Body::from(body))
    }
}

/// The checked caller, with an Anthropic error body for a bad key (`x-api-key` or a bearer token).
pub(crate) struct AnthropicCaller(Caller);

impl FromRequestParts<AppState> for AnthropicCaller {
    type Rejection = AnthropicError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authenticated(caller) = parts.extract_with_state::<Authenticated, AppState>(state).await?;
        Ok(AnthropicCaller(caller))
    }
}

/// A JSON body whose rejections (syntax, unknown fields, missing `max_tokens`, size, content type) are Anthropic
/// error bodies.
pub(crate) struct AnthropicJson<T>(T);

impl<T: DeserializeOwned> FromRequest<AppState> for AnthropicJson<T> {
    type Rejection = AnthropicError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(AnthropicJson(value)),
            Err(rejection) => Err(rejection_to_error(&rejection, state.options.max_body_bytes).into()),
        }
    }
}

/// `POST /v1/messages`. Like `/v1/chat/completions`, it honours `x-flywheel-cache` and reports hit or miss.
pub(crate) async fn messages(
    State(state): State<AppState>,
    AnthropicCaller(caller): AnthropicCaller,
    headers: HeaderMap,
    AnthropicJson(request): AnthropicJson<MessagesRequest>,
) -> Result<Response, AnthropicError> {
    let client = chat_client(state.gateway.client_for(&caller).on_endpoint(ENDPOINT), &headers)?;
    let request = inbound::request_to_openai(request)?;
    let limits = client.admit(ENDPOINT, &request.model).await?;
    let (response, cache) = if request.stream {
        let model = request.model.clone();
        let input_tokens_estimate = crate::chat::estimate_prompt_tokens(&request);
        let (chunks, cache) = client.chat_stream_traced(request).await?;
        let ping = Event::default().event("ping").data(r#"{"type":"ping"}"#);
        let events = Sse::new(events(chunks, EventTranslator::new(model, input_tokens_estimate)))
            .keep_alive(KeepAlive::default().event(ping));
        (events.into_response(), cache)
    } else {
        let (completion, cache) = client.chat_traced(request).await?;
        (Json(inbound::completion_to_response(completion)).into_response(), cache)
    };
    Ok(with_answer_headers(response, cache, limits))
}

/// The Anthropic events of a chat stream. An error (from the upstream, or a chunk that cannot be translated)
/// becomes an `error` event and ends the stream, as Anthropic's API does.
fn events(
    mut chunks: ChatCompletionStream,
    mut translator: EventTranslator,
) -> impl futures::Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        while let Some(chunk) = chunks.next().await {
            let translated = chunk.and_then(|chunk| translator.push(&chunk));
            match translated {
                Ok(events) => {
                    for event in events {
                        yield Ok(sse_event(&event));
                    }
                }
                Err(error) => {
                    yield Ok(error_event(&error));
                    return;
                }
            }
        }
        for event in translator.finish() {
            yield Ok(sse_event(&event));
        }
    }
}

/// Anthropic's framing: `event: <type>` and `data: <json>`.
fn sse_event(event: &StreamEvent) -> Event {
    Event::default()
        .event(event.name())
        .json_data(event)
        .unwrap_or_else(|_| Event::default().event(event.name()).data("{}"))
}

fn error_event(error: &GatewayError) -> Event {
    Event::default()
        .event("error")
        .json_data(super::error_body(error))
        .unwrap_or_else(|_| Event::default().event("error").data("{}"))
}

/// `POST /v1/messages/count_tokens`: the prompt's size for the model, without calling it.
pub(crate) async fn count_tokens(
    State(state): State<AppState>,
    AnthropicCaller(caller): AnthropicCaller,
    AnthropicJson(request): AnthropicJson<CountTokensRequest>,
) -> Result<Json<CountTokensResponse>, AnthropicError> {
    let client = state.gateway.client_for(&caller);
    let request = inbound::request_to_openai(request.into_messages_request())?;
    let input_tokens = client.count_tokens(&request)?;
    Ok(Json(CountTokensResponse { input_tokens }))
}
