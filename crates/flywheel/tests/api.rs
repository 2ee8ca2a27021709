//! End-to-end tests of the OpenAI-compatible API, health, metrics and the ledger, over real HTTP against the real
//! binary with the real embedded models and SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Server;
use futures::StreamExt;
use serde_json::{Value, json};

const CHAT_MODEL: &str = "smollm2-135m-instruct";
const EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = common::http_client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn assert_openai_error(status: u16, body: &Value, expected_status: u16, expected_code: &str) {
    assert_eq!(status, expected_status, "{body}");
    let error = &body["error"];
    assert_eq!(error["code"], expected_code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error["type"].is_string(), "{body}");
}

#[tokio::test]
async fn chat_streaming_embeddings_errors_metrics_and_ledger() {
    let mut server = Server::start().await;
    let client = common::http_client();

    // A greedy completion is real text with real token counts.
    let (status, completion) = post(
        &server,
        "/v1/chat/completions",
        json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "What is 2+2?"}],
               "temperature": 0, "max_tokens": 24}),
    )
    .await;
    assert_eq!(status, 200, "{completion}");
    let text = completion["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.trim().is_empty());
    assert!(text.contains('4'), "{text}");
    let usage = &completion["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 10);
    assert!((1..=24).contains(&usage["completion_tokens"].as_u64().unwrap()));
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    // max_tokens is honoured and reported as finish_reason length.
    let (_, short) = post(
        &server,
        "/v1/chat/completions",
        json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
               "max_tokens": 3, "temperature": 0.7, "top_p": 0.9, "seed": 7}),
    )
    .await;
    assert_eq!(short["choices"][0]["finish_reason"], "length");
    assert_eq!(short["usage"]["completion_tokens"], 3);

    // Streaming: role first, content deltas, a finish reason, the usage chunk, then [DONE].
    let response = client
        .post(server.url("/v1/chat/completions"))
        .json(
            &json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Name three colors."}],
                      "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 20, "temperature": 0}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = response.text().await.unwrap();
    let events: Vec<&str> = body.lines().filter_map(|line| line.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert!(!streamed.trim().is_empty());
    assert!(chunks.iter().any(|c| {
        c["choices"]
            .get(0)
            .is_some_and(|choice| choice["finish_reason"].is_string())
    }));
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert!(usage_chunk["usage"]["completion_tokens"].as_u64().unwrap() >= 1);

    // Embeddings: one string, a list, base64.
    let (status, one) = post(
        &server,
        "/v1/embeddings",
        json!({"model": EMBEDDING_MODEL, "input": "a velvet sofa"}),
    )
    .await;
    assert_eq!(status, 200, "{one}");
    let vector = one["data"][0]["embedding"].as_array().unwrap();
    assert_eq!(vector.len(), 384);
    let norm: f64 = vector.iter().map(|v| v.as_f64().unwrap().powi(2)).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    let (_, many) = post(
        &server,
        "/v1/embeddings",
        json!({"model": EMBEDDING_MODEL, "input": ["couch", "sofa", "lamp"], "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(many["data"].as_array().unwrap().len(), 3);
    assert!(many["data"][2]["embedding"].is_string());
    assert!(many["usage"]["prompt_tokens"].as_u64().unwrap() >= 3);

    // Models.
    let models: Value = client
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&CHAT_MODEL) && ids.contains(&EMBEDDING_MODEL), "{models}");

    bad_inputs_get_openai_errors(&server).await;

    // Health and metrics.
    assert_eq!(client.get(server.url("/healthz")).send().await.unwrap().status(), 200);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("flywheel_http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("flywheel_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "flywheel_model_tokens_total{{model=\"{CHAT_MODEL}\",direction=\"output\"}}"
    )));
    // The embedded engine's own series, sampled once a second from the moment the model is loaded.
    for series in [
        "flywheel_engine_running_requests",
        "flywheel_engine_tokens_decoded_total",
    ] {
        assert!(
            metrics.contains(&format!("{series}{{model=\"{CHAT_MODEL}\"}}")),
            "{series}: {metrics}"
        );
    }

    // Clean shutdown, then every call is in the ledger.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let db = server.database().await;
    let rows: Vec<(String, String, String, i64, i64, String)> = sqlx::query_as(
        "SELECT tenant, model, endpoint, prompt_tokens, completion_tokens, status FROM usage_ledger ORDER BY id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let ok_chat = rows.iter().filter(|r| r.2 == "chat.completions" && r.5 == "ok").count();
    let ok_embeddings = rows.iter().filter(|r| r.2 == "embeddings" && r.5 == "ok").count();
    assert_eq!((ok_chat, ok_embeddings), (4, 2), "{rows:?}");
    assert!(rows.iter().all(|r| r.0 == "public"));
    assert!(
        rows.iter().any(|r| r.5 == "model_not_found" && r.1 == "no-such-model"),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.5 == "context_length_exceeded"), "{rows:?}");
    let first = &rows[0];
    assert_eq!(
        (first.3, first.4),
        (
            usage["prompt_tokens"].as_i64().unwrap(),
            usage["completion_tokens"].as_i64().unwrap()
        )
    );
}

async fn bad_inputs_get_openai_errors(server: &Server) {
    let client = common::http_client();
    let chat = server.url("/v1/chat/completions");
    let send_raw = |body: &'static str, content_type: &'static str| {
        client
            .post(&chat)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let response = send_raw("{\"model\": ", "application/json").await.unwrap();
    let status = response.status().as_u16();
    assert_openai_error(status, &response.json().await.unwrap(), 400, "invalid_request");

    let response = send_raw("{\"model\": \"x\"}", "application/json").await.unwrap();
    let status = response.status().as_u16();
    assert_openai_error(status, &response.json().await.unwrap(), 400, "invalid_request");

    let response = send_raw("{}", "text/plain").await.unwrap();
    let status = response.status().as_u16();
    assert_openai_error(status, &response.json().await.unwrap(), 415, "unsupported_media_type");

    let invalid_utf8 = client
        .post(&chat)
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    let status = invalid_utf8.status().as_u16();
    assert_openai_error(status, &invalid_utf8.json().await.unwrap(), 400, "invalid_request");

    let huge = "x".repeat(5 * 1024 * 1024);
    let response = client
        .post(&chat)
        .json(&json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": huge}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_openai_error(status, &response.json().await.unwrap(), 413, "body_too_large");

    let user = |content: &str| json!([{"role": "user", "content": content}]);
    for (body, status, code) in [
        (
            json!({"model": "no-such-model", "messages": user("hi")}),
            404,
            "model_not_found",
        ),
        (json!({"model": CHAT_MODEL, "messages": []}), 400, "invalid_request"),
        (
            json!({"model": CHAT_MODEL, "messages": user("hi"), "max_tokens": 0}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": CHAT_MODEL, "messages": user("hi"), "max_tokens": 1_000_000}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": CHAT_MODEL, "messages": user("hi"), "temperature": 9}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": CHAT_MODEL, "messages": user("hi"), "bogus_field": 1}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": CHAT_MODEL, "messages": user(&"lorem ipsum ".repeat(3000))}),
            400,
            "context_length_exceeded",
        ),
        (
            json!({"model": EMBEDDING_MODEL, "messages": user("hi")}),
            400,
            "wrong_model_kind",
        ),
    ] {
        let (got_status, got) = post(server, "/v1/chat/completions", body).await;
        assert_openai_error(got_status, &got, status, code);
    }
    let (status, body) = post(server, "/v1/embeddings", json!({"model": EMBEDDING_MODEL, "input": []})).await;
    assert_openai_error(status, &body, 400, "invalid_request");

    let response = client.get(server.url("/v1/nope")).send().await.unwrap();
    let status = response.status().as_u16();
    assert_openai_error(status, &response.json().await.unwrap(), 404, "unknown_url");

    // Still serving after all of that.
    let (status, _) = post(
        server,
        "/v1/chat/completions",
        json!({"model": CHAT_MODEL, "messages": user("Say hi."), "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_recorded_as_cancelled() {
    let mut server = Server::start().await;
    let mut body = server.stream_chat(CHAT_MODEL, "Tell me a long story.", 400).await;
    let mut seen = 0;
    while let Some(chunk) = body.next().await {
        seen += chunk.unwrap().len();
        if seen > 600 {
            break;
        }
    }
    drop(body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.terminate().success());
    let db = server.database().await;
    let (status, completion_tokens): (String, i64) =
        sqlx::query_as("SELECT status, completion_tokens FROM usage_ledger")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(status, "cancelled");
    assert!((1..400).contains(&completion_tokens), "{completion_tokens}");
}

#[tokio::test]
async fn missing_models_name_the_fetch_command() {
    let data_dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .args(["up", "--listen", "127.0.0.1:0", "--models-dir", "/nonexistent/models"])
        .arg("--data-dir")
        .arg(data_dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scripts/fetch-models /nonexistent/models"), "{stderr}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_stream_finish_and_keeps_its_ledger_row() {
    let mut server = Server::start().await;
    let mut body = server.stream_chat(CHAT_MODEL, "Describe a sofa.", 40).await;
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let pid = server.pid();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        String::from_utf8_lossy(&rest).contains("data: [DONE]"),
        "the stream was cut off"
    );
    assert!(server.wait().success());
    let db = server.database().await;
    let (status, completion_tokens): (String, i64) =
        sqlx::query_as("SELECT status, completion_tokens FROM usage_ledger")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(status, "ok");
    assert!(completion_tokens >= 1);
}
