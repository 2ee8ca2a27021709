//! An Anthropic-compatible upstream (`POST {base_url}/messages`, `x-api-key`, `anthropic-version`). Requests
//! and answers are translated at this edge by [`crate::anthropic::outbound`]; upstream failures keep their
//! status (429, 529 overloaded, 5xx) so that retries, breakers and fallbacks treat them like any upstream's.

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, header};

use super::openai::{HttpsClient, error_from_response, read_json, sse_payloads};
use super::{ChatProvider, ChunkStream, estimate_tokens};
use crate::GatewayError;
use crate::anthropic::outbound::{self, ChunkTranslator};
use crate::anthropic::wire::{MessagesRequest, MessagesResponse, StreamEvent};
use crate::openai::{ChatCompletion, ChatCompletionRequest};

/// The Messages API version this provider speaks.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// An Anthropic-compatible upstream.
pub(crate) struct AnthropicCompatible {
    client: HttpsClient,
    /// `.../v1`, without a trailing slash.
    base_url: String,
    api_key: Option<String>,
    context_length: Option<u32>,
}

impl AnthropicCompatible {
    pub(crate) fn new(
        client: HttpsClient,
        base_url: &str,
        api_key: Option<String>,
        context_length: Option<u32>,
    ) -> AnthropicCompatible {
        AnthropicCompatible {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            context_length,
        }
    }

    async fn post(&self, body: &MessagesRequest) -> Result<hyper::Response<Incoming>, GatewayError> {
        let body = serde_json::to_vec(body)
            .map_err(|error| GatewayError::Internal(format!("encoding the upstream request: {error}")))?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/messages", self.base_url))
            .header(header::CONTENT_TYPE, "application/json")
            .header("anthropic-version", ANTHROPIC_VERSION);
        if let Some(api_key) = &self.api_key {
            request = request.header("x-api-key", api_key);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| GatewayError::Internal(format!("building the upstream request: {error}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| GatewayError::upstream_connect(format!("{}: {error}", self.base_url)))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            // Anthropic error bodies have `error.message` too, so the OpenAI reader keeps the message.
            Err(error_from_response(response).await)
        }
    }
}

impl ChatProvider for AnthropicCompatible {
    fn context_length(&self) -> Option<u32> {
        self.context_length
    }

    fn count_tokens(&self, text: &str) -> u32 {
        estimate_tokens(text)
    }

    fn complete(&self, mut request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, GatewayError>> {
        Box::pin(async move {
            request.stream = false;
            let body = outbound::request_from_openai(request)?;
            let response = self.post(&body).await?;
            let message: MessagesResponse = read_json(response).await?;
            Ok(outbound::response_to_completion(message))
        })
    }

    fn stream(&self, mut request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChunkStream, GatewayError>> {
        Box::pin(async move {
            request.stream = true;
            let body = outbound::request_from_openai(request)?;
            let response = self.post(&body).await?;
            Ok(event_chunks(response.into_body(), &body.model))
        })
    }
}

/// Parses an upstream's Anthropic events into OpenAI chunks, ending at `message_stop`; an `error` event is the
/// upstream's error.
fn event_chunks(body: Incoming, model: &str) -> ChunkStream {
    let mut translator = ChunkTranslator::new(model);
    let mut payloads = sse_payloads(body, "message_stop");
    Box::pin(async_stream::stream! {
        while let Some(payload) = payloads.next().await {
            let chunks = payload.and_then(|payload| {
                let event = serde_json::from_slice::<StreamEvent>(&payload)
                    .map_err(|error| GatewayError::upstream_malformed(format!("invalid stream event: {error}")))?;
                translator.push(event)
            });
            match chunks {
                Ok(chunks) => {
                    for chunk in chunks {
                        yield Ok(chunk);
                    }
                }
                Err(error) => {
                    yield Err(error);
                    return;
                }
            }
            if translator.is_finished() {
                return;
            }
        }
    })
}
