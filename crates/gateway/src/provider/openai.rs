//! Any server that speaks the OpenAI API (vLLM, llama.cpp server, SGLang, TGI, Ollama, hosted APIs). Requests go
//! out as they came in, with only the model name changed; this is the gateway's fast path.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{ChatProvider, ChunkStream, EmbeddingOutput, EmbeddingProvider, estimate_tokens};
use crate::GatewayError;
use crate::openai::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, EmbeddingRequest, StreamOptions};

pub(crate) type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One pooled HTTP client for every upstream: connections are kept alive and reused across requests.
pub(crate) fn http_client() -> HttpsClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(https)
}

/// An OpenAI-compatible upstream.
pub(crate) struct OpenAiCompatible {
    client: HttpsClient,
    /// `.../v1`, without a trailing slash.
    base_url: String,
    /// `Bearer <key>`, when the upstream needs a key.
    authorization: Option<String>,
    context_length: Option<u32>,
}

impl OpenAiCompatible {
    pub(crate) fn new(
        client: HttpsClient,
        base_url: &str,
        api_key: Option<String>,
        context_length: Option<u32>,
    ) -> OpenAiCompatible {
        OpenAiCompatible {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            authorization: api_key.map(|key| format!("Bearer {key}")),
            context_length,
        }
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<hyper::Response<Incoming>, GatewayError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base_url))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
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
            Err(error_from_response(response).await)
        }
    }
}

/// The upstream's error, keeping its status and message (OpenAI-style bodies have `error.message`).
pub(crate) async fn error_from_response(response: hyper::Response<Incoming>) -> GatewayError {
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => return GatewayError::upstream_reset(format!("reading an error body: {error}")),
    };
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| {
            let error = value.get("error")?;
            error
                .get("message")
                .and_then(|m| m.as_str())
                .or_else(|| error.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    GatewayError::upstream_status(status.as_u16(), message)
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    response: hyper::Response<Incoming>,
) -> Result<T, GatewayError> {
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| GatewayError::upstream_reset(format!("reading the response: {error}")))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|error| GatewayError::upstream_malformed(format!("invalid JSON: {error}")))
}

impl ChatProvider for OpenAiCompatible {
    fn context_length(&self) -> Option<u32> {
        self.context_length
    }

    fn count_tokens(&self, text: &str) -> u32 {
        estimate_tokens(text)
    }

    fn complete(&self, mut request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, GatewayError>> {
        Box::pin(async move {
            request.stream = false;
            request.stream_options = None;
            let body = serde_json::to_vec(&request)
                .map_err(|error| GatewayError::Internal(format!("encoding the upstream request: {error}")))?;
            let response = self.post("/chat/completions", body).await?;
            read_json(response).await
        })
    }

    fn stream(&self, mut request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChunkStream, GatewayError>> {
        Box::pin(async move {
            request.stream = true;
            // Always ask for usage: the ledger needs real token counts whatever the client asked for.
            request.stream_options = Some(StreamOptions {
                include_usage: true,
                include_obfuscation: None,
            });
            let body = serde_json::to_vec(&request)
                .map_err(|error| GatewayError::Internal(format!("encoding the upstream request: {error}")))?;
            let response = self.post("/chat/completions", body).await?;
            Ok(sse_chunks(response.into_body()))
        })
    }
}

impl EmbeddingProvider for OpenAiCompatible {
    fn dimensions(&self) -> Option<usize> {
        None
    }

    fn embed(&self, mut request: EmbeddingRequest) -> BoxFuture<'_, Result<EmbeddingOutput, GatewayError>> {
        Box::pin(async move {
            // The gateway encodes vectors itself, so it always asks for floats.
            request.encoding_format = None;
            let body = serde_json::to_vec(&request)
                .map_err(|error| GatewayError::Internal(format!("encoding the upstream request: {error}")))?;
            let response = self.post("/embeddings", body).await?;
            super::embedding_output(read_json(response).await?)
        })
    }
}

/// The payloads of an upstream's server-sent events, in order. A body that ends or breaks is an upstream
/// reset; callers stop reading at their protocol's last event (`end` names it, for the error message), so the
/// reset is only seen when that event never came.
pub(crate) fn sse_payloads(
    mut body: Incoming,
    end: &'static str,
) -> std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, GatewayError>> + Send>> {
    Box::pin(async_stream::stream! {
        let mut parser = SseParser::default();
        loop {
            let frame = match body.frame().await {
                None => {
                    yield Err(GatewayError::upstream_reset(format!("the upstream closed the stream before {end}")));
                    return;
                }
                Some(Err(error)) => {
                    yield Err(GatewayError::upstream_reset(format!("the upstream stream broke: {error}")));
                    return;
                }
                Some(Ok(frame)) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            parser.push(&data);
            while let Some(payload) = parser.next_event() {
                yield Ok(payload);
            }
        }
    })
}

/// Parses an upstream's server-sent events into chunks, ending at `data: [DONE]`; an `error` event is the
/// upstream's error.
fn sse_chunks(body: Incoming) -> ChunkStream {
    let mut payloads = sse_payloads(body, "[DONE]");
    Box::pin(async_stream::stream! {
        while let Some(payload) = payloads.next().await {
            let chunk = payload.and_then(|payload| {
                if payload == b"[DONE]" { Ok(None) } else { parse_chunk(&payload).map(Some) }
            });
            match chunk {
                Ok(Some(chunk)) => yield Ok(chunk),
                Ok(None) => return,
                Err(error) => {
                    yield Err(error);
                    return;
                }
            }
        }
    })
}

fn parse_chunk(payload: &[u8]) -> Result<ChatCompletionChunk, GatewayError> {
    match serde_json::from_slice::<ChatCompletionChunk>(payload) {
        Ok(chunk) => Ok(chunk),
        Err(parse_error) => {
            let upstream_error = serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|value| value.get("error").cloned());
            match upstream_error {
                Some(error) => {
                    let message = error
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("the upstream failed mid-stream");
                    let status = error
                        .get("code")
                        .and_then(serde_json::Value::as_u64)
                        .and_then(|code| u16::try_from(code).ok())
                        .filter(|code| StatusCode::from_u16(*code).is_ok())
                        .unwrap_or(502);
                    Err(GatewayError::upstream_status(status, message.to_owned()))
                }
                None => Err(GatewayError::upstream_malformed(format!(
                    "invalid stream chunk: {parse_error}"
                ))),
            }
        }
    }
}

/// Splits a byte stream into the `data` of server-sent events. Events end at a blank line (`\n\n` or
/// `\r\n\r\n`); several `data:` lines of one event are joined with `\n`; comments and other fields are skipped.
#[derive(Default)]
pub(crate) struct SseParser {
    buffer: BytesMut,
}

impl SseParser {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event's data, if a whole event is buffered. Events without data are skipped.
    pub(crate) fn next_event(&mut self) -> Option<Vec<u8>> {
        loop {
            let (end, separator) = find_event_end(&self.buffer)?;
            let event = self.buffer.split_to(end + separator);
            let mut data: Option<Vec<u8>> = None;
            for line in event[..end].split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(value) = line.strip_prefix(b"data:") {
                    let value = value.strip_prefix(b" ").unwrap_or(value);
                    match &mut data {
                        Some(joined) => {
                            joined.push(b'\n');
                            joined.extend_from_slice(value);
                        }
                        None => data = Some(value.to_vec()),
                    }
                }
            }
            if data.is_some() {
                return data;
            }
        }
    }
}

/// Where the first event in `buffer` ends, and the length of the blank-line separator after it.
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut index = 0;
    while index + 1 < buffer.len() {
        if buffer[index] == b'\n' {
            if buffer[index + 1] == b'\n' {
                return Some((index, 2));
            }
            if buffer[index + 1] == b'\r' && buffer.get(index + 2) == Some(&b'\n') {
                return Some((index, 3));
            }
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn events(input: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for piece in input {
            parser.push(piece);
            while let Some(event) = parser.next_event() {
                out.push(event);
            }
        }
        out
    }

    #[test]
    fn splits_events_and_skips_comments() {
        let got = events(&[b": keep-alive\n\ndata: {\"a\":1}\n\ndata: [DONE]\n\n"]);
        assert_eq!(got, vec![b"{\"a\":1}".to_vec(), b"[DONE]".to_vec()]);
    }

    #[test]
    fn handles_crlf_and_multiline_data() {
        let got = events(&[b"event: x\r\ndata: a\r\ndata: b\r\n\r\ndata:c\n\n"]);
        assert_eq!(got, vec![b"a\nb".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn upstream_error_events_keep_their_message() {
        let error = parse_chunk(br#"{"error":{"message":"boom","code":503}}"#)
            .err()
            .unwrap();
        assert!(error.to_string().contains("boom"), "{error}");
        assert_eq!(error.status(), 502);
        assert_eq!(parse_chunk(b"{not json").err().unwrap().code(), "upstream_malformed");
    }

    proptest! {
        /// However the bytes are cut into network reads, the same events come out.
        #[test]
        fn events_do_not_depend_on_read_boundaries(
            payloads in proptest::collection::vec("[a-z0-9{}\":, ]{0,20}", 1..8),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let mut wire = Vec::new();
            for payload in &payloads {
                wire.extend_from_slice(format!("data: {payload}\n\n").as_bytes());
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut % (wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for cut in cuts {
                pieces.push(&wire[last..cut]);
                last = cut;
            }
            pieces.push(&wire[last..]);
            let expected: Vec<Vec<u8>> = payloads.iter().map(|p| p.as_bytes().to_vec()).collect();
            prop_assert_eq!(events(&pieces), expected);
        }
    }
}
