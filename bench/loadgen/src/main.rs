//! `loadgen`: a closed-loop HTTP/1.1 load generator. Each of `--concurrency` clients holds its own keep-alive
//! connection and sends the next request as soon as the previous answer has been read to the end. After a
//! warm-up it records, for every request that completes inside the measured window, the total latency and (for
//! SSE answers) the time to the first content chunk, in HDR histograms, and prints one JSON object.
//!
//! It must stay cheaper than what it measures: no JSON tree per response (only the SSE events up to the first
//! content chunk are parsed), one shared histogram behind an uncontended lock rather than one per client.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

/// Highest latency the histograms hold, in nanoseconds (ten minutes); longer values are clamped to it.
const MAX_LATENCY_NS: u64 = 600_000_000_000;
/// Pause after a failed connection attempt, so a dead server is not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// A closed-loop HTTP/1.1 load generator that prints latency percentiles as JSON.
#[derive(Parser)]
#[command(name = "loadgen", version, about)]
struct Args {
    /// Target URL, e.g. http://127.0.0.1:8080/v1/chat/completions (plain HTTP only).
    #[arg(long)]
    url: String,
    /// Concurrent clients, each on its own keep-alive connection.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Length of the measured window, in seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Warm-up before measuring, in seconds: connections open, caches fill, nothing is recorded.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Measure this many requests (after the warm-up) instead of a fixed duration.
    #[arg(long)]
    requests: Option<u64>,
    /// JSON request body: a file, or `-` for standard input [default: a short chat request].
    #[arg(long)]
    body: Option<String>,
    /// Stream: the built-in body asks for SSE with usage, and an answer that is not SSE counts as an error.
    #[arg(long)]
    stream: bool,
    /// Model named in the built-in body.
    #[arg(long, default_value = "bench-model")]
    model: String,
    /// Extra request header, `name: value`; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Runtime worker threads; 1 runs everything on one thread.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Per-request timeout, in seconds; a request past it counts as an error and its connection is dropped.
    #[arg(long, default_value_t = 60.0)]
    timeout_secs: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.threads > 0, "--threads must be at least 1");
    anyhow::ensure!(
        args.duration_secs > 0.0 && args.warmup_secs >= 0.0 && args.timeout_secs > 0.0,
        "durations must be positive"
    );
    let mut builder = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.threads);
        builder
    };
    let runtime = builder.enable_all().build().context("cannot start the async runtime")?;
    let report = runtime.block_on(run(args))?;
    println!("{report}");
    Ok(())
}

/// Everything the clients share: the request to send, the clock boundaries and the results.
struct Shared {
    address: SocketAddr,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    expect_sse: bool,
    timeout: Duration,
    /// Recording starts for requests that complete after this instant.
    measure_start: Instant,
    /// In duration mode, the end of the window: in-flight requests are abandoned then.
    end: Option<Instant>,
    /// In count mode, how many measured requests remain to be handed out.
    remaining: Option<AtomicU64>,
    results: Mutex<Results>,
}

/// What the clients record, merged in one place.
struct Results {
    latency_ns: Histogram<u64>,
    ttft_ns: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    last_completion: Option<Instant>,
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    let uri: Uri = args
        .url
        .parse()
        .with_context(|| format!("invalid --url {}", args.url))?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be plain http://");
    }
    let authority = uri.authority().context("--url needs a host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let address = tokio::net::lookup_host((authority.host(), port))
        .await
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let request_uri: Uri = path.parse().context("invalid path in --url")?;

    let body = match &args.body {
        None => Bytes::from(serde_json::to_vec(&default_body(&args.model, args.stream))?),
        Some(source) => Bytes::from(read_body(source)?),
    };
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(authority.as_str())?);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header:?} is not `name: value`"))?;
        headers.insert(
            HeaderName::from_bytes(name.trim().as_bytes()).with_context(|| format!("bad header name {name:?}"))?,
            HeaderValue::from_str(value.trim()).with_context(|| format!("bad header value in {header:?}"))?,
        );
    }

    let started = Instant::now();
    let measure_start = started + Duration::from_secs_f64(args.warmup_secs);
    let end = args
        .requests
        .is_none()
        .then(|| measure_start + Duration::from_secs_f64(args.duration_secs));
    let shared = Arc::new(Shared {
        address,
        uri: request_uri,
        headers,
        body,
        expect_sse: args.stream,
        timeout: Duration::from_secs_f64(args.timeout_secs),
        measure_start,
        end,
        remaining: args.requests.map(AtomicU64::new),
        results: Mutex::new(Results {
            latency_ns: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)?,
            ttft_ns: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)?,
            errors: BTreeMap::new(),
            last_completion: None,
        }),
    });

    let clients: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(client(Arc::clone(&shared))))
        .collect();
    for client in clients {
        client.await.context("a client task failed")?;
    }

    let results = shared
        .results
        .lock()
        .map_err(|_| anyhow::anyhow!("a client panicked while recording"))?;
    let window = match end {
        Some(end) => end.saturating_duration_since(measure_start),
        None => results
            .last_completion
            .map_or(Duration::ZERO, |last| last.saturating_duration_since(measure_start)),
    };
    let requests = results.latency_ns.len();
    let error_count: u64 = results.errors.values().sum();
    let mut report = serde_json::json!({
        "url": args.url,
        "concurrency": args.concurrency,
        "streaming": args.stream,
        "window_s": window.as_secs_f64(),
        "requests": requests,
        "error_count": error_count,
        "errors": results.errors,
        "requests_per_s": if window.is_zero() { 0.0 } else { requests as f64 / window.as_secs_f64() },
        "latency_us": percentiles(&results.latency_ns, &[("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]),
    });
    if !results.ttft_ns.is_empty() {
        report["ttft_us"] = percentiles(&results.ttft_ns, &[("p50", 0.5), ("p99", 0.99)]);
    }
    Ok(report)
}

/// The built-in request: a short chat turn, streamed with usage when asked.
fn default_body(model: &str, stream: bool) -> serde_json::Value {
    let mut body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        "max_tokens": 16,
    });
    if stream {
        body["stream"] = serde_json::Value::Bool(true);
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    body
}

fn read_body(source: &str) -> anyhow::Result<Vec<u8>> {
    if source == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the body from standard input")?;
        Ok(bytes)
    } else {
        std::fs::read(source).with_context(|| format!("cannot read the body file {source}"))
    }
}

/// Percentiles (and the maximum and mean) of a nanosecond histogram, in microseconds.
fn percentiles(histogram: &Histogram<u64>, quantiles: &[(&str, f64)]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, quantile) in quantiles {
        out.insert((*name).to_owned(), micros(histogram.value_at_quantile(*quantile)));
    }
    out.insert("max".to_owned(), micros(histogram.max()));
    out.insert(
        "mean".to_owned(),
        serde_json::json!((histogram.mean() / 100.0).round() / 10.0),
    );
    serde_json::Value::Object(out)
}

/// Nanoseconds as microseconds with one decimal.
fn micros(nanoseconds: u64) -> serde_json::Value {
    serde_json::json!((nanoseconds as f64 / 100.0).round() / 10.0)
}

/// How one request ended.
enum Outcome {
    /// A complete answer: total latency and, for SSE, the time to the first content chunk.
    Done { total: Duration, ttft: Option<Duration> },
    /// An answer that counts as an error (status, broken stream); the connection is still usable.
    Failed(String),
    /// A transport failure; the connection must be replaced.
    Broken(String),
}

async fn client(shared: Arc<Shared>) {
    let mut connection: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let now = Instant::now();
        if shared.end.is_some_and(|end| now >= end) {
            return;
        }
        let measured = now >= shared.measure_start;
        if measured
            && let Some(remaining) = &shared.remaining
            && remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
                .is_err()
        {
            return;
        }
        let sender = match connection.as_mut() {
            Some(sender) if !sender.is_closed() => sender,
            _ => match connect(shared.address).await {
                Ok(sender) => connection.insert(sender),
                Err(error) => {
                    record_error(&shared, measured, &format!("connect: {}", error.kind()));
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let deadline = match shared.end {
            Some(end) => end.min(started + shared.timeout),
            None => started + shared.timeout,
        };
        let outcome = match tokio::time::timeout_at(deadline, one_request(&shared, sender, started)).await {
            Ok(outcome) => outcome,
            Err(_) if shared.end.is_some_and(|end| Instant::now() >= end) => return,
            Err(_) => Outcome::Broken("timeout".to_owned()),
        };
        let finished = Instant::now();
        // Duration mode counts what completes inside the window; count mode counts the requests it handed out.
        let counted = match shared.end {
            Some(end) => finished >= shared.measure_start && finished <= end,
            None => measured,
        };
        match outcome {
            Outcome::Done { total, ttft } => {
                if counted && let Ok(mut results) = shared.results.lock() {
                    results.latency_ns.saturating_record(nanos(total));
                    if let Some(ttft) = ttft {
                        results.ttft_ns.saturating_record(nanos(ttft));
                    }
                    results.last_completion = Some(finished);
                }
            }
            Outcome::Failed(kind) => record_error(&shared, counted, &kind),
            Outcome::Broken(kind) => {
                record_error(&shared, counted, &kind);
                connection = None;
            }
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX).max(1)
}

fn record_error(shared: &Shared, counted: bool, kind: &str) {
    if counted && let Ok(mut results) = shared.results.lock() {
        *results.errors.entry(kind.to_owned()).or_default() += 1;
    }
}

async fn connect(address: SocketAddr) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        // Ends when the server closes the connection or the client drops its sender.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn one_request(shared: &Shared, sender: &mut SendRequest<Full<Bytes>>, started: Instant) -> Outcome {
    if let Err(error) = sender.ready().await {
        return Outcome::Broken(format!("connection: {}", error_kind(&error)));
    }
    let mut request = Request::new(Full::new(shared.body.clone()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = shared.uri.clone();
    *request.headers_mut() = shared.headers.clone();
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(error) => return Outcome::Broken(format!("request: {}", error_kind(&error))),
    };
    let status = response.status();
    let is_sse = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if !status.is_success() {
        return match response.into_body().collect().await {
            Ok(_) => Outcome::Failed(status.as_u16().to_string()),
            Err(error) => Outcome::Broken(format!("body: {}", error_kind(&error))),
        };
    }
    if is_sse {
        return read_sse(response, started).await;
    }
    if shared.expect_sse {
        let _ = response.into_body().collect().await;
        return Outcome::Failed("not_sse".to_owned());
    }
    match response.into_body().collect().await {
        Ok(_) => Outcome::Done {
            total: started.elapsed(),
            ttft: None,
        },
        Err(error) => Outcome::Broken(format!("body: {}", error_kind(&error))),
    }
}

/// Reads an SSE answer to the end: notes when the first event with non-empty `delta.content` arrives, and
/// checks that the stream ends with `data: [DONE]`.
async fn read_sse(response: Response<Incoming>, started: Instant) -> Outcome {
    let mut body = response.into_body();
    let mut ttft = None;
    // Unparsed bytes up to the first content chunk; after it only the tail is kept, to find `[DONE]`.
    let mut pending: Vec<u8> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => return Outcome::Broken(format!("body: {}", error_kind(&error))),
        };
        let Ok(data) = frame.into_data() else { continue };
        if ttft.is_none() {
            pending.extend_from_slice(&data);
            if first_content_arrived(&mut pending) {
                ttft = Some(started.elapsed());
                pending = Vec::new();
            }
        }
        tail.extend_from_slice(&data);
        if tail.len() > 64 {
            tail.drain(..tail.len() - 64);
        }
    }
    let total = started.elapsed();
    let ended_with_done = std::str::from_utf8(&tail).is_ok_and(|text| text.trim_end().ends_with("data: [DONE]"));
    match (ttft, ended_with_done) {
        (Some(ttft), true) => Outcome::Done {
            total,
            ttft: Some(ttft),
        },
        (None, _) => Outcome::Failed("sse_without_content".to_owned()),
        (Some(_), false) => Outcome::Failed("sse_without_done".to_owned()),
    }
}

/// Consumes the complete lines of `pending` and says whether one of them was an event carrying content.
fn first_content_arrived(pending: &mut Vec<u8>) -> bool {
    let mut consumed = 0;
    let mut found = false;
    while let Some(newline) = pending[consumed..].iter().position(|&byte| byte == b'\n') {
        let line = &pending[consumed..consumed + newline];
        consumed += newline + 1;
        let Some(payload) = line.strip_prefix(b"data:") else {
            continue;
        };
        let payload = payload.trim_ascii();
        if payload == b"[DONE]" {
            continue;
        }
        if let Ok(event) = serde_json::from_slice::<serde_json::Value>(payload)
            && event["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|content| !content.is_empty())
        {
            found = true;
            break;
        }
    }
    pending.drain(..consumed);
    found
}

/// A short, stable error label: the kind of a hyper error, without per-request detail.
fn error_kind(error: &hyper::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_incomplete_message() {
        "incomplete"
    } else if error.is_closed() || error.is_canceled() {
        "closed"
    } else if error.is_parse() {
        "parse"
    } else {
        "io"
    }
}
