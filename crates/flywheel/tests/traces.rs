//! OpenTelemetry export over real OTLP/HTTP (JSON encoding) to a receiver on 127.0.0.1: every model call, served
//! or refused, becomes one span named and attributed by the GenAI conventions, joined to the caller's trace when
//! the request carries a `traceparent`, and with no prompt text in it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use common::Server;
use serde_json::{Value, json};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP trace receiver: keeps every span it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                let mut kept = kept.lock().unwrap();
                for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                    let service = attribute(&resource["resource"], "service.name");
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        for span in scope["spans"].as_array().into_iter().flatten() {
                            let mut span = span.clone();
                            span["service"] = service.clone();
                            kept.push(span);
                        }
                    }
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, spans)
}

/// An attribute's value from an OTLP JSON object holding `attributes`.
fn attribute(holder: &Value, key: &str) -> Value {
    holder["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|attribute| attribute["key"] == key)
        .map(|attribute| {
            let value = &attribute["value"];
            if let Some(text) = value.get("stringValue") {
                text.clone()
            } else if let Some(number) = value.get("intValue") {
                // OTLP JSON writes 64-bit integers as strings.
                json!(
                    number
                        .as_str()
                        .map_or_else(|| number.as_i64().unwrap(), |n| n.parse().unwrap())
                )
            } else {
                value.clone()
            }
        })
        .unwrap_or(Value::Null)
}

/// The same receiver over TLS, with a server certificate for 127.0.0.1 signed by a CA made for the test (by the
/// `openssl` command). Returns the collector's base URL, the CA's PEM file, and the spans it keeps.
async fn tls_receiver(dir: &std::path::Path) -> (String, std::path::PathBuf, Arc<Mutex<Vec<Value>>>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl command");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=flywheel test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "server.ext",
    ]);
    let certificates = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (plain_base, spans) = receiver().await;
    // TLS in front of the plain receiver: each decrypted connection is piped to it.
    let plain_address = plain_base.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let plain_address = plain_address.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut plain = tokio::net::TcpStream::connect(plain_address).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (base, dir.join("ca.pem"), spans)
}

/// One embeddings call, which must succeed: a model call that becomes one span.
async fn embed_velvet_sofa(server: &Server) {
    let (status, _) = server
        .call(
            None,
            "POST",
            "/v1/embeddings",
            Some(json!({"model": "all-minilm-l6-v2", "input": "velvet sofa"})),
        )
        .await;
    assert_eq!(status, 200);
}

async fn wait_for_spans(spans: &Mutex<Vec<Value>>, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = spans.lock().unwrap().clone();
        if got.len() >= count {
            return got;
        }
        assert!(Instant::now() < deadline, "only {} spans arrived: {got:#?}", got.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn model_calls_are_exported_as_gen_ai_spans() {
    let (collector, spans) = receiver().await;
    let server = Server::start_with_env(
        &["--otlp-endpoint", &collector],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let client = common::http_client();
    let prompt = "a secret prompt about velvet sofas";
    let served = client
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"model": "smollm2-135m-instruct", "max_tokens": 8,
                      "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let answer: Value = served.json().await.unwrap();
    let (status, _) = server
        .call(
            None,
            "POST",
            "/v1/chat/completions",
            Some(json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(status, 404);
    embed_velvet_sofa(&server).await;

    let spans = wait_for_spans(&spans, 3).await;
    let chat = spans
        .iter()
        .find(|span| span["name"] == "chat smollm2-135m-instruct")
        .unwrap_or_else(|| panic!("no chat span: {spans:#?}"));
    assert_eq!(chat["service"], "flywheel");
    assert_eq!(chat["traceId"], CALLER_TRACE, "the span joins the caller's trace");
    assert_eq!(chat["parentSpanId"], CALLER_SPAN);
    assert_eq!(attribute(chat, "gen_ai.operation.name"), "chat");
    assert_eq!(attribute(chat, "gen_ai.provider.name"), "flywheel.embedded");
    assert_eq!(attribute(chat, "gen_ai.request.model"), "smollm2-135m-instruct");
    assert_eq!(attribute(chat, "gen_ai.response.id"), answer["id"]);
    assert_eq!(
        attribute(chat, "gen_ai.usage.input_tokens"),
        answer["usage"]["prompt_tokens"]
    );
    assert_eq!(
        attribute(chat, "gen_ai.usage.output_tokens"),
        answer["usage"]["completion_tokens"]
    );
    assert_eq!(attribute(chat, "flywheel.tenant"), "public");
    assert_eq!(attribute(chat, "flywheel.status"), "ok");
    let start: u128 = chat["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u128 = chat["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(end > start, "a span lasts as long as its call");

    let refused = spans
        .iter()
        .find(|span| span["name"] == "chat no-such-model")
        .unwrap_or_else(|| panic!("no span for the refused call: {spans:#?}"));
    assert_eq!(attribute(refused, "error.type"), "model_not_found");
    assert_eq!(refused["status"]["code"], 2, "an error status");
    assert_ne!(
        refused["traceId"], CALLER_TRACE,
        "a call without traceparent starts its own trace"
    );

    let embeddings = spans
        .iter()
        .find(|span| span["name"] == "embeddings all-minilm-l6-v2")
        .unwrap_or_else(|| panic!("no embeddings span: {spans:#?}"));
    assert_eq!(attribute(embeddings, "gen_ai.operation.name"), "embeddings");

    let exported = serde_json::to_string(&spans).unwrap();
    assert!(!exported.contains("velvet"), "prompts never enter a span");
}

#[tokio::test]
async fn an_https_collector_receives_spans_when_its_ca_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, ca, spans) = tls_receiver(dir.path()).await;
    let ca = ca.to_str().unwrap().to_owned();
    let server = Server::start_with_env(
        &["--otlp-endpoint", &collector],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
        ],
    )
    .await;
    embed_velvet_sofa(&server).await;
    let spans = wait_for_spans(&spans, 1).await;
    assert_eq!(spans[0]["name"], "embeddings all-minilm-l6-v2");
}
