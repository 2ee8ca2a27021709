//! `POST /v1/responses`, whole or as the Responses API's server-sent events (`event: <type>`, numbered).
//! Failures before the answer starts are OpenAI error bodies with the status [`GatewayError::status`] gives; a
//! failure mid-stream ends the stream with `response.failed`.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::translate::{self, EventTranslator};
use super::wire::{CreateResponse, SequencedEvent};
use crate::http::{AppState, Authenticated, OpenAiJson, chat_client, with_answer_headers};
use crate::{ChatCompletionStream, GatewayError};

/// The endpoint its calls are recorded under in the ledger.
const ENDPOINT: &str = "responses";

/// `POST /v1/responses`. Like `/v1/chat/completions`, it honours `x-flywheel-cache` and reports hit or miss.
pub(crate) async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    OpenAiJson(request): OpenAiJson<CreateResponse>,
) -> Result<Response, GatewayError> {
    let client = chat_client(state.gateway.client_for(&caller).on_endpoint(ENDPOINT), &headers)?;
    let (request, echo) = translate::request_to_chat(request)?;
    let limits = client.admit(ENDPOINT, &request.model).await?;
    let (response, cache) = if request.stream {
        let model = request.model.clone();
        let (chunks, cache) = client.chat_stream_traced(request).await?;
        let events = Sse::new(events(chunks, EventTranslator::new(echo, model))).keep_alive(KeepAlive::default());
        (events.into_response(), cache)
    } else {
        let (completion, cache) = client.chat_traced(request).await?;
        (
            Json(translate::completion_to_response(completion, &echo)).into_response(),
            cache,
        )
    };
    Ok(with_answer_headers(response, cache, limits))
}

/// The Responses events of a chat stream; an error from the upstream ends it with `response.failed`.
fn events(
    mut chunks: ChatCompletionStream,
    mut translator: EventTranslator,
) -> impl futures::Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(chunk) => {
                    for event in translator.push(&chunk) {
                        yield Ok(sse_event(&event));
                    }
                }
                Err(error) => {
                    for event in translator.fail(&error) {
                        yield Ok(sse_event(&event));
                    }
                    return;
                }
            }
        }
        for event in translator.finish() {
            yield Ok(sse_event(&event));
        }
    }
}

fn sse_event(event: &SequencedEvent) -> Event {
    let name = event.event.name();
    Event::default()
        .event(name)
        .json_data(event)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}
