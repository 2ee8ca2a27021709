//! The Anthropic protocol over real HTTP, both ways: Anthropic clients on `/v1/messages` (whole and streamed,
//! tool use round trips through an OpenAI-style upstream, errors as Anthropic error bodies, `count_tokens`), and
//! the `anthropic` provider against an in-test Anthropic-style upstream (whole, streamed, and a 529 that falls
//! back to another model).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use common::Server;
use serde_json::{Value, json};

const MASTER: &str = "anthropic-test-master-key";
const UPSTREAM_KEY: &str = "upstream-secret";

/// Requests the in-test upstreams received, newest last.
type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

fn sse(events: &[Value], named: bool) -> String {
    events
        .iter()
        .map(|event| {
            if named {
                format!("event: {}\ndata: {event}\n\n", event["type"].as_str().unwrap())
            } else {
                format!("data: {event}\n\n")
            }
        })
        .collect()
}

/// An OpenAI-style upstream that calls `get_weather` when offered tools, and answers from the tool's result once
/// the conversation has one.
fn openai_answer(body: &Value) -> Response {
    let messages = body["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    let streaming = body["stream"].as_bool().unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "up", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let usage = json!({"id": "up", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                       "choices": [], "usage": {"prompt_tokens": 21, "completion_tokens": 6, "total_tokens": 27}});
    if last["role"] == "tool" {
        let text = format!("It is {} in Oslo.", last["content"].as_str().unwrap());
        if streaming {
            let events = [
                chunk(json!({"role": "assistant", "content": text}), Value::Null),
                chunk(json!({}), json!("stop")),
                usage,
            ];
            return Response::new(Body::from(format!("{}data: [DONE]\n\n", sse(&events, false))));
        }
        return Response::new(Body::from(
            json!({"id": "up", "object": "chat.completion", "created": 1, "model": body["model"],
                   "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                   "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}})
            .to_string(),
        ));
    }
    assert!(body["tools"].is_array(), "{body}");
    if streaming {
        let events = [
            chunk(json!({"role": "assistant", "content": null}), Value::Null),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                                        "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"Oslo\"}"}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
            usage,
        ];
        return Response::new(Body::from(format!("{}data: [DONE]\n\n", sse(&events, false))));
    }
    Response::new(Body::from(
        json!({"id": "up", "object": "chat.completion", "created": 1, "model": body["model"],
               "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                   "tool_calls": [{"id": "call_7", "type": "function",
                                   "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}}],
               "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}})
        .to_string(),
    ))
}

/// An Anthropic-style upstream: `ok` answers "Hello from Claude" (whole or streamed), `overloaded` answers 529.
fn anthropic_answer(mode: &str, headers: &HeaderMap, body: &Value) -> Response {
    let key_ok = headers.get("x-api-key").is_some_and(|key| key == UPSTREAM_KEY);
    if !key_ok || headers.get("anthropic-version").is_none() {
        let error = json!({"type": "error", "error": {"type": "authentication_error", "message": "bad key"}});
        return Response::builder()
            .status(401)
            .body(Body::from(error.to_string()))
            .unwrap();
    }
    if mode == "overloaded" {
        let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        return Response::builder()
            .status(529)
            .body(Body::from(error.to_string()))
            .unwrap();
    }
    let message = |content: Value, stop: Value, output: u32| {
        json!({"id": "msg_up", "type": "message", "role": "assistant", "model": body["model"], "content": content,
               "stop_reason": stop, "stop_sequence": null,
               "usage": {"input_tokens": 11, "output_tokens": output, "cache_read_input_tokens": 4}})
    };
    if !body["stream"].as_bool().unwrap_or(false) {
        let answer = message(
            json!([{"type": "text", "text": "Hello from Claude"}]),
            json!("end_turn"),
            4,
        );
        return Response::new(Body::from(answer.to_string()));
    }
    let events = [
        json!({"type": "message_start", "message": message(json!([]), Value::Null, 1)}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "from Claude"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 4}}),
        json!({"type": "message_stop"}),
    ];
    Response::new(Body::from(sse(&events, true)))
}

async fn upstreams(seen: Seen) -> String {
    let openai_seen = seen.clone();
    let app = Router::new()
        .route(
            "/openai/v1/chat/completions",
            post(move |axum::Json(body): axum::Json<Value>| {
                let seen = openai_seen.clone();
                async move {
                    seen.lock().unwrap().push((HeaderMap::new(), body.clone()));
                    openai_answer(&body)
                }
            }),
        )
        .route(
            "/{mode}/v1/messages",
            post(
                move |axum::extract::Path(mode): axum::extract::Path<String>,
                      headers: HeaderMap,
                      axum::Json(body): axum::Json<Value>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push((headers.clone(), body.clone()));
                        anthropic_answer(&mode, &headers, &body)
                    }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn config(upstream: &str) -> String {
    format!(
        r#"embedded_models = false

[[models]]
id = "fast"
context_length = 4096
[[models.deployments]]
provider = "fault"

[[models]]
id = "tools"
[[models.deployments]]
provider = "openai"
base_url = "{upstream}/openai/v1"

[[models]]
id = "claude"
[[models.deployments]]
provider = "anthropic"
base_url = "{upstream}/ok/v1"
api_key_env = "FLYWHEEL_TEST_ANTHROPIC_KEY"
upstream_model = "claude-upstream-name"

[[models]]
id = "claude-flaky"
fallbacks = ["claude"]
[[models.deployments]]
provider = "anthropic"
base_url = "{upstream}/overloaded/v1"
api_key_env = "FLYWHEEL_TEST_ANTHROPIC_KEY"
"#
    )
}

async fn start(upstream: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flywheel.toml");
    std::fs::write(&path, config(upstream)).unwrap();
    let server = Server::start_with_env(
        &["--config", path.to_str().unwrap(), "--master-key", MASTER],
        &[("FLYWHEEL_TEST_ANTHROPIC_KEY", UPSTREAM_KEY)],
    )
    .await;
    (server, dir)
}

/// Posts as the Anthropic SDK does: `x-api-key`, `anthropic-version`, and a beta header to be ignored.
async fn post_anthropic(server: &Server, key: &str, path: &str, body: &Value) -> (u16, String) {
    let response = common::http_client()
        .post(server.url(path))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "tools-2024-04-04")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn messages(server: &Server, body: &Value) -> (u16, Value) {
    let (status, text) = post_anthropic(server, MASTER, "/v1/messages", body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A streamed answer's events, checking that each SSE `event:` name is the `type` of its data.
async fn stream(server: &Server, body: &Value) -> Vec<Value> {
    let (status, text) = post_anthropic(server, MASTER, "/v1/messages", body).await;
    assert_eq!(status, 200, "{text}");
    text.split("\n\n")
        .filter(|frame| frame.contains("data:"))
        .map(|frame| {
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {frame:?}"))
                    .trim()
                    .to_owned()
            };
            let data: Value = serde_json::from_str(&field("data:")).unwrap();
            assert_eq!(data["type"].as_str().unwrap(), field("event:"), "{frame}");
            data
        })
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|event| event["type"].as_str().unwrap()).collect()
}

/// The text a client gets from streamed events, and the tool inputs (JSON pieces joined per block).
fn accumulate(events: &[Value]) -> (String, Vec<(String, Value)>) {
    let mut text = String::new();
    let mut tools: Vec<(String, String)> = Vec::new();
    for event in events {
        match event["type"].as_str().unwrap() {
            "content_block_start" if event["content_block"]["type"] == "tool_use" => {
                tools.push((
                    event["content_block"]["name"].as_str().unwrap().to_owned(),
                    String::new(),
                ));
            }
            "content_block_delta" => match event["delta"]["type"].as_str().unwrap() {
                "text_delta" => text.push_str(event["delta"]["text"].as_str().unwrap()),
                "input_json_delta" => tools
                    .last_mut()
                    .unwrap()
                    .1
                    .push_str(event["delta"]["partial_json"].as_str().unwrap()),
                other => panic!("unexpected delta {other}"),
            },
            _ => {}
        }
    }
    let tools = tools
        .into_iter()
        .map(|(name, json)| (name, serde_json::from_str(&json).unwrap()))
        .collect();
    (text, tools)
}

fn weather_tool() -> Value {
    json!([{"name": "get_weather", "description": "Weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

#[tokio::test]
async fn anthropic_clients_and_the_anthropic_provider_work_over_http() {
    let seen: Seen = Arc::default();
    let upstream = upstreams(seen.clone()).await;
    let (server, _dir) = start(&upstream).await;
    let hello = json!({"model": "fast", "max_tokens": 64, "system": "Be brief.",
                       "messages": [{"role": "user", "content": "Hello there"}]});

    // A whole message from the fault model.
    let (status, body) = messages(&server, &hello).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"), "{body}");
    assert_eq!(
        (body["type"].as_str(), body["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert_eq!(body["model"], "fast");
    assert_eq!(body["content"][0]["type"], "text");
    assert!(
        body["content"][0]["text"].as_str().unwrap().contains("fault provider"),
        "{body}"
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 0);

    // The response cache works as on /v1/chat/completions.
    let mut cache_states = Vec::new();
    for _ in 0..2 {
        let response = common::http_client()
            .post(server.url("/v1/messages"))
            .header("x-api-key", MASTER)
            .header("x-flywheel-cache", "exact")
            .json(&hello)
            .send()
            .await
            .unwrap();
        cache_states.push(response.headers()["x-flywheel-cache"].to_str().unwrap().to_owned());
        let cached: Value = response.json().await.unwrap();
        assert_eq!(cached["content"], body["content"]);
    }
    assert_eq!(cache_states, ["miss", "hit"]);

    // The same, streamed: Anthropic's exact event sequence.
    let mut streamed = hello.clone();
    streamed["stream"] = json!(true);
    let events = stream(&server, &streamed).await;
    let kinds = types(&events);
    assert_eq!(
        kinds[..3],
        ["message_start", "ping", "content_block_start"],
        "{kinds:?}"
    );
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"],
        "{kinds:?}"
    );
    assert!(
        kinds[3..kinds.len() - 3]
            .iter()
            .all(|kind| *kind == "content_block_delta")
    );
    let (text, _) = accumulate(&events);
    assert_eq!(text, body["content"][0]["text"].as_str().unwrap());
    let delta = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], body["usage"]["output_tokens"]);

    // Tool use round trip through an OpenAI-style upstream: the call, then the answer from its result.
    let ask = json!({"role": "user", "content": "Weather in Oslo?"});
    let (status, body) = messages(
        &server,
        &json!({"model": "tools", "max_tokens": 64, "tools": weather_tool(), "tool_choice": {"type": "auto"},
                "messages": [ask.clone()]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(
        body["content"],
        json!([{"type": "tool_use", "id": "call_7", "name": "get_weather", "input": {"city": "Oslo"}}])
    );
    let up = seen.lock().unwrap().last().unwrap().1.clone();
    assert_eq!(up["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(up["tool_choice"], "auto");
    let follow_up = json!({"model": "tools", "max_tokens": 64, "tools": weather_tool(), "messages": [
        ask.clone(),
        {"role": "assistant", "content": body["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_7", "content": "12 C"}]},
    ]});
    let (status, answer) = messages(&server, &follow_up).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["content"][0]["text"], "It is 12 C in Oslo.");
    let up = seen.lock().unwrap().last().unwrap().1.clone();
    assert_eq!(
        up["messages"][1]["tool_calls"][0]["function"],
        json!({"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"})
    );
    assert_eq!(
        up["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_7", "content": "12 C"})
    );

    // The tool call streamed: a tool_use block whose JSON pieces add up to the input.
    let mut streamed_tools = json!({"model": "tools", "max_tokens": 64, "tools": weather_tool(), "stream": true,
                                    "messages": [{"role": "user", "content": "Weather in Oslo?"}]});
    let events = stream(&server, &streamed_tools).await;
    let (text, tools) = accumulate(&events);
    assert_eq!(text, "");
    assert_eq!(tools, [("get_weather".to_owned(), json!({"city": "Oslo"}))]);
    let delta = events.iter().find(|event| event["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"], json!({"output_tokens": 6, "input_tokens": 21}));
    streamed_tools["messages"] = follow_up["messages"].clone();
    let (text, _) = accumulate(&stream(&server, &streamed_tools).await);
    assert_eq!(text, "It is 12 C in Oslo.");

    // Errors are Anthropic error bodies with the gateway's statuses.
    for (key, body, status, kind) in [
        (
            MASTER,
            json!({"model": "nope", "max_tokens": 5, "messages": [ask.clone()]}),
            404,
            "not_found_error",
        ),
        (
            MASTER,
            json!({"model": "fast", "messages": [ask.clone()]}),
            400,
            "invalid_request_error",
        ),
        (
            MASTER,
            json!({"model": "fast", "max_tokens": 5, "messages": [ask.clone()], "temprature": 1}),
            400,
            "invalid_request_error",
        ),
        (
            MASTER,
            json!({"model": "fast", "max_tokens": 5, "messages": [ask.clone()],
                   "thinking": {"type": "enabled", "budget_tokens": 1024}}),
            400,
            "invalid_request_error",
        ),
        ("wrong-key", hello.clone(), 401, "authentication_error"),
    ] {
        let (got, text) = post_anthropic(&server, key, "/v1/messages", &body).await;
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(got, status, "{text}");
        assert_eq!(error["type"], "error", "{text}");
        assert_eq!(error["error"]["type"], kind, "{text}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    let (_, text) = post_anthropic(
        &server,
        MASTER,
        "/v1/messages",
        &json!({"model": "fast", "messages": [ask.clone()]}),
    )
    .await;
    assert!(text.contains("max_tokens"), "{text}");

    // count_tokens: the model's estimate, without calling it.
    let (status, text) = post_anthropic(
        &server,
        MASTER,
        "/v1/messages/count_tokens",
        &json!({"model": "fast", "system": "Be brief.", "messages": [{"role": "user", "content": "Hello there, how are you?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let count: Value = serde_json::from_str(&text).unwrap();
    assert!(count["input_tokens"].as_u64().unwrap() > 5, "{count}");
    let (status, text) = post_anthropic(
        &server,
        MASTER,
        "/v1/messages/count_tokens",
        &json!({"model": "nope", "messages": [ask.clone()]}),
    )
    .await;
    assert_eq!(status, 404, "{text}");

    // The anthropic provider: an OpenAI client, served by an Anthropic-style upstream.
    let client = common::http_client();
    let chat = json!({"model": "claude", "max_tokens": 32, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]});
    let response = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Hello from Claude");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        completion["usage"],
        json!({"prompt_tokens": 15, "completion_tokens": 4, "total_tokens": 19})
    );
    let (headers, up) = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(up["model"], "claude-upstream-name");
    assert_eq!(up["system"], "Be brief.");
    assert_eq!(up["messages"], json!([{"role": "user", "content": "Hi"}]));
    assert_eq!(up["max_tokens"], 32);

    // Streamed, as OpenAI chunks with usage.
    let mut streamed_chat = chat.clone();
    streamed_chat["stream"] = json!(true);
    streamed_chat["stream_options"] = json!({"include_usage": true});
    let text = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&streamed_chat)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from Claude");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 15);

    // Anthropic client → gateway → Anthropic upstream, streamed both ways.
    let events = stream(
        &server,
        &json!({"model": "claude", "max_tokens": 32, "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(accumulate(&events).0, "Hello from Claude");
    assert_eq!(*types(&events).last().unwrap(), "message_stop");

    // An overloaded (529) upstream falls back to the next model.
    let before = seen.lock().unwrap().len();
    let (status, body) = messages(
        &server,
        &json!({"model": "claude-flaky", "max_tokens": 32, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"][0]["text"], "Hello from Claude");
    assert_eq!(body["model"], "claude-flaky");
    let seen = seen.lock().unwrap();
    let models: Vec<&str> = seen[before..]
        .iter()
        .map(|(_, body)| body["model"].as_str().unwrap())
        .collect();
    let (last, tried) = models.split_last().unwrap();
    assert_eq!(*last, "claude-upstream-name", "{models:?}");
    assert!(
        !tried.is_empty() && tried.iter().all(|model| *model == "claude-flaky"),
        "{models:?}"
    );
}
