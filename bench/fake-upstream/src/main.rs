//! `fake-upstream`: an OpenAI-compatible server that answers as fast as it can, for measuring what a gateway in
//! front of it adds. It serves `POST /v1/chat/completions` (a fixed completion, or the same completion as SSE
//! chunks in OpenAI's exact format), `POST /v1/embeddings` and `GET /v1/models` on plain HTTP/1.1 with keep-alive.
//!
//! It reads only what changes the answer (`model`, `stream`, `stream_options.include_usage`, the number of
//! embedding inputs) and never builds a JSON tree of the request. It must never do real work per token: its cost
//! is the floor every gateway figure is measured from.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

/// Largest request body read; a benchmark body is a few hundred bytes.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Prompt tokens reported in `usage`: fixed, since counting them would be work a real model does, not a fake.
const PROMPT_TOKENS: u64 = 10;
/// Length of the vector returned for each embedding input.
const EMBEDDING_DIMENSIONS: usize = 8;
/// The text of one content chunk; the non-streaming completion is this, `--chunks` times.
const CHUNK_TEXT: &str = "tok ";

/// A fast fake OpenAI-compatible upstream for gateway benchmarks.
#[derive(Parser)]
#[command(name = "fake-upstream", version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port. The first stdout line is `listening on ADDRESS`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Content chunks in a streamed completion (and tokens in a non-streamed one).
    #[arg(long, default_value_t = 10)]
    chunks: u64,
    /// Delay before each streamed content chunk, in milliseconds, to hold many streams open at once.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Runtime worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Model id listed by `GET /v1/models`.
    #[arg(long, default_value = "bench-model")]
    model: String,
}

/// What every request handler shares: the flags that shape the answers.
struct Settings {
    chunks: u64,
    chunk_delay: Option<Duration>,
    models_json: Bytes,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads > 0, "--threads must be at least 1");
        builder.worker_threads(threads);
    }
    let runtime = builder.enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("cannot read the bound address")?;
    let models_json = serde_json::json!({
        "object": "list",
        "data": [{"id": args.model, "object": "model", "created": 0, "owned_by": "fake-upstream"}],
    });
    let settings = Arc::new(Settings {
        chunks: args.chunks,
        chunk_delay: (args.chunk_delay_ms > 0).then(|| Duration::from_millis(args.chunk_delay_ms)),
        models_json: Bytes::from(serde_json::to_vec(&models_json)?),
    });
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {address}")?;
    stdout.flush()?;

    let mut http = http1::Builder::new();
    // No header-read timer: a timer per request is overhead the fake must not have.
    http.header_read_timeout(None).keep_alive(true);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors or a reset before accept: back off briefly rather than spin.
                eprintln!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small SSE frames must leave at once, not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let settings = Arc::clone(&settings);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| handle(request, Arc::clone(&settings))),
        );
        tokio::spawn(async move {
            // A client closing its connection mid-stream is normal at the end of a load run.
            let _ = connection.await;
        });
    }
}

async fn handle(request: Request<Incoming>, settings: Arc<Settings>) -> Result<Response<Reply>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => match read_body(request).await {
            Ok(body) => chat_completion(&body, &settings),
            Err(response) => response,
        },
        (&Method::POST, "/v1/embeddings") => match read_body(request).await {
            Ok(body) => embeddings(&body),
            Err(response) => response,
        },
        (&Method::GET, "/v1/models") => json_response(StatusCode::OK, settings.models_json.clone()),
        _ => error_response(StatusCode::NOT_FOUND, "no such route on the fake upstream"),
    };
    Ok(response)
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<Reply>> {
    match Limited::new(request.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(error_response(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the request body: {error}"),
        )),
    }
}

/// The fields of a chat request that change the answer; serde skips the rest without building anything.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// An embeddings request: only the model and how many inputs there are.
#[derive(Deserialize)]
struct EmbeddingsRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    input: EmbeddingInput,
}

/// `input` is one string (or one token array) or a list of them; only the count matters.
#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    Many(Vec<serde::de::IgnoredAny>),
    One(serde::de::IgnoredAny),
}

fn chat_completion(body: &[u8], settings: &Settings) -> Response<Reply> {
    let request: ChatRequest<'_> = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {error}")),
    };
    let model = json_string(&request.model);
    let created = unix_seconds();
    if request.stream == Some(true) {
        let include_usage = request.stream_options.and_then(|options| options.include_usage) == Some(true);
        let stream = SseStream::new(&model, created, include_usage, settings);
        let mut response = Response::new(Reply::Stream(Box::new(stream)));
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return response;
    }
    let content = json_string(&CHUNK_TEXT.repeat(settings.chunks_usize()));
    let completion_tokens = settings.chunks;
    let body = format!(
        concat!(
            r#"{{"id":"chatcmpl-fake","object":"chat.completion","created":{created},"model":{model},"#,
            r#""choices":[{{"index":0,"message":{{"role":"assistant","content":{content},"refusal":null,"#,
            r#""annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"usage":{usage},"#,
            r#""service_tier":"default","system_fingerprint":"fp_fake"}}"#
        ),
        created = created,
        model = model,
        content = content,
        usage = usage_json(completion_tokens),
    );
    json_response(StatusCode::OK, Bytes::from(body))
}

fn embeddings(body: &[u8]) -> Response<Reply> {
    let request: EmbeddingsRequest<'_> = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {error}")),
    };
    let inputs = match request.input {
        EmbeddingInput::One(_) => 1,
        EmbeddingInput::Many(items) => items.len(),
    };
    let data: Vec<serde_json::Value> = (0..inputs)
        .map(|index| {
            // A fixed unit-length vector with the index in it, so clients can tell the items apart.
            let mut vector = vec![0.0_f32; EMBEDDING_DIMENSIONS];
            if let Some(slot) = vector.get_mut(index % EMBEDDING_DIMENSIONS) {
                *slot = 1.0;
            }
            serde_json::json!({"object": "embedding", "index": index, "embedding": vector})
        })
        .collect();
    let tokens = PROMPT_TOKENS * inputs as u64;
    let reply = serde_json::json!({
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    match serde_json::to_vec(&reply) {
        Ok(bytes) => json_response(StatusCode::OK, Bytes::from(bytes)),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

impl Settings {
    fn chunks_usize(&self) -> usize {
        usize::try_from(self.chunks).unwrap_or(usize::MAX)
    }
}

/// `usage` as OpenAI reports it, details included, so strict clients see the real shape.
fn usage_json(completion_tokens: u64) -> String {
    format!(
        concat!(
            r#"{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{total},"#,
            r#""prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"#,
            r#""completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"#,
            r#""accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#
        ),
        prompt = PROMPT_TOKENS,
        completion = completion_tokens,
        total = PROMPT_TOKENS + completion_tokens,
    )
}

/// A string as a JSON string literal, quotes and escapes included.
fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""))
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Reply> {
    let mut response = Response::new(Reply::Full(Some(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(status: StatusCode, message: &str) -> Response<Reply> {
    let body = serde_json::json!({
        "error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}
    });
    json_response(status, Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
}

/// A response body: one buffer, or a stream of SSE events. An enum rather than a boxed trait object, so the
/// common case costs no allocation beyond its bytes.
enum Reply {
    Full(Option<Bytes>),
    Stream(Box<SseStream>),
}

impl Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Reply::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Reply::Stream(stream) => stream
                .poll_event(cx)
                .map(|event| event.map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Reply::Full(bytes) => bytes.is_none(),
            Reply::Stream(stream) => stream.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Reply::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Reply::Full(None) => SizeHint::with_exact(0),
            Reply::Stream(_) => SizeHint::default(),
        }
    }
}

/// Where a streamed completion is: the role chunk, `chunks` content chunks, the finish chunk, the usage chunk
/// when asked for, then `[DONE]`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Role,
    Content(u64),
    Finish,
    Usage,
    Done,
    Ended,
}

/// A streamed completion in OpenAI's exact chunk format. Each event is rendered once per request; content chunks
/// share one buffer.
struct SseStream {
    role: Bytes,
    content: Bytes,
    finish: Bytes,
    usage: Option<Bytes>,
    chunks: u64,
    step: Step,
    delay: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    /// Whether the delay before the current content chunk has been waited out.
    waited: bool,
}

impl SseStream {
    fn new(model: &str, created: u64, include_usage: bool, settings: &Settings) -> SseStream {
        let head = format!(
            r#"data: {{"id":"chatcmpl-fake","object":"chat.completion.chunk","created":{created},"model":{model},"service_tier":"default","system_fingerprint":"fp_fake","choices":"#
        );
        // With include_usage, OpenAI sends `"usage":null` on every chunk before the usage chunk.
        let tail = if include_usage { r#","usage":null}"# } else { "}" };
        let event = |choices: &str| Bytes::from(format!("{head}{choices}{tail}\n\n"));
        let role = event(
            r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
        );
        let content = event(&format!(
            r#"[{{"index":0,"delta":{{"content":{}}},"logprobs":null,"finish_reason":null}}]"#,
            json_string(CHUNK_TEXT)
        ));
        let finish = event(r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#);
        let usage =
            include_usage.then(|| Bytes::from(format!("{head}[],\"usage\":{}}}\n\n", usage_json(settings.chunks))));
        SseStream {
            role,
            content,
            finish,
            usage,
            chunks: settings.chunks,
            step: Step::Role,
            delay: settings
                .chunk_delay
                .map(|delay| (delay, Box::pin(tokio::time::sleep(Duration::ZERO)))),
            waited: false,
        }
    }

    fn is_done(&self) -> bool {
        self.step == Step::Ended
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let event = match self.step {
            Step::Role => {
                self.step = if self.chunks > 0 {
                    Step::Content(0)
                } else {
                    Step::Finish
                };
                self.role.clone()
            }
            Step::Content(index) => {
                if let Some((delay, sleep)) = self.delay.as_mut() {
                    if !self.waited {
                        sleep.as_mut().reset(tokio::time::Instant::now() + *delay);
                        self.waited = true;
                    }
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.waited = false;
                }
                self.step = if index + 1 < self.chunks {
                    Step::Content(index + 1)
                } else {
                    Step::Finish
                };
                self.content.clone()
            }
            Step::Finish => {
                self.step = if self.usage.is_some() { Step::Usage } else { Step::Done };
                self.finish.clone()
            }
            Step::Usage => {
                self.step = Step::Done;
                self.usage.take().unwrap_or_default()
            }
            Step::Done => {
                self.step = Step::Ended;
                Bytes::from_static(b"data: [DONE]\n\n")
            }
            Step::Ended => return Poll::Ready(None),
        };
        Poll::Ready(Some(event))
    }
}
