//! Chat generation against the real SmolLM2-135M-Instruct GGUF from `$FLYWHEEL_MODELS_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use inference::{
    ChatMessage, ChatModel, ChatModelOptions, FinishReason, GenerationEvent, GenerationRequest, GenerationSummary,
    InferenceError, OutputFormat,
};

const CHAT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn load(context_length: u32, max_sequences: usize, max_queue: usize) -> ChatModel {
    let path = common::models_dir().join(CHAT_MODEL_FILE);
    let options = ChatModelOptions {
        threads: 2,
        context_length,
        max_sequences,
        max_queue,
        ..ChatModelOptions::default()
    };
    ChatModel::load(&path, options).expect("chat model loads")
}

/// Tests that generate take turns: llama.cpp's threads spin-wait and collapse when they outnumber free cores, and
/// the shared model serves one request at a time anyway.
fn take_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The model most tests share; its worker serves their requests one after another.
fn model() -> &'static ChatModel {
    static MODEL: OnceLock<ChatModel> = OnceLock::new();
    MODEL.get_or_init(|| load(4096, 8, 64))
}

fn user(content: &str) -> Vec<ChatMessage> {
    vec![ChatMessage {
        role: "user".to_owned(),
        content: content.to_owned(),
    }]
}

fn greedy(content: &str, max_tokens: u32) -> GenerationRequest {
    GenerationRequest {
        messages: user(content),
        max_tokens: Some(max_tokens),
        temperature: 0.0,
        ..Default::default()
    }
}

/// A finished generation.
struct Outcome {
    prompt_tokens_at_start: u32,
    text: String,
    summary: GenerationSummary,
}

/// Runs `request` to the end, checking that events arrive in the documented order.
fn run(model: &ChatModel, request: GenerationRequest) -> Outcome {
    collect(model.generate(request).expect("request accepted"))
}

/// Reads a generation's events to the end, checking that they arrive in the documented order.
fn collect(mut events: UnboundedReceiver<GenerationEvent>) -> Outcome {
    let mut started = None;
    let mut text = String::new();
    while let Some(event) = events.blocking_recv() {
        match event {
            GenerationEvent::Started { prompt_tokens } => {
                assert!(started.is_none() && text.is_empty(), "Started must come first, once");
                started = Some(prompt_tokens);
            }
            GenerationEvent::Text(piece) => {
                assert!(started.is_some(), "text before Started");
                assert!(!piece.is_empty(), "empty text event");
                text.push_str(&piece);
            }
            GenerationEvent::Done(summary) => {
                assert!(events.blocking_recv().is_none(), "events after Done");
                let prompt_tokens_at_start = started.expect("Started before Done");
                return Outcome {
                    prompt_tokens_at_start,
                    text,
                    summary,
                };
            }
            GenerationEvent::Failed(error) => panic!("generation failed: {error}"),
        }
    }
    panic!("the stream ended without Done");
}

#[test]
fn info_reflects_the_gguf() {
    let info = model().info();
    assert_eq!(info.name, "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(info.context_length, 4096);
    assert_eq!(info.train_context_length, 8192);
    assert!(info.has_template);
}

#[test]
fn the_gguf_header_says_what_the_model_is() {
    let summary = inference::GgufSummary::read(&common::models_dir().join(CHAT_MODEL_FILE)).unwrap();
    assert_eq!(summary.architecture, "llama");
    assert_eq!(summary.quantization, "Q4_1");
    assert_eq!(summary.context_length, Some(8192));
    assert!(summary.has_chat_template);
    assert!(summary.tensors > 100, "{summary:?}");
}

#[test]
fn greedy_generation_is_deterministic_and_non_empty() {
    let _turn = take_turn();
    let request = greedy("What is the capital of France?", 24);
    let first = run(model(), request.clone());
    let second = run(model(), request);
    assert!(!first.text.trim().is_empty());
    assert_eq!(first.text, second.text);
    assert_eq!(first.summary, second.summary);
    assert!(first.summary.completion_tokens >= 1 && first.summary.completion_tokens <= 24);
}

#[test]
fn max_tokens_ends_generation_with_length() {
    let _turn = take_turn();
    let outcome = run(model(), greedy("Tell me a long story about a dragon.", 5));
    assert_eq!(outcome.summary.completion_tokens, 5);
    assert_eq!(outcome.summary.finish_reason, FinishReason::Length);
    assert_eq!(FinishReason::Length.as_str(), "length");
    assert!(!outcome.text.is_empty());
}

#[test]
fn a_stop_string_ends_the_text_right_before_it() {
    let _turn = take_turn();
    let request = greedy("Tell me a long story about a dragon.", 48);
    let full = run(model(), request.clone()).text;
    // Pick a stop string from the middle of the greedy text, so the same decoding must hit it.
    let mut start = full.len() / 2;
    while !full.is_char_boundary(start) {
        start += 1;
    }
    let stop: String = full[start..].chars().take(4).collect();
    assert_eq!(stop.chars().count(), 4, "the greedy text is too short: {full:?}");
    let expected = &full[..full.find(&stop).unwrap()];

    let outcome = run(
        model(),
        GenerationRequest {
            stop: vec!["never appears".to_owned(), stop.clone()],
            ..request
        },
    );
    assert_eq!(outcome.text, expected, "stop string {stop:?}");
    assert_eq!(outcome.summary.finish_reason, FinishReason::Stop);
    assert!(outcome.summary.completion_tokens < 48);
}

#[test]
fn a_prompt_longer_than_the_context_is_rejected() {
    let long = "word ".repeat(5000);
    match model().generate(greedy(&long, 10)) {
        Err(InferenceError::ContextOverflow {
            prompt_tokens,
            context_length,
        }) => {
            assert!(prompt_tokens > 4096, "{prompt_tokens}");
            assert_eq!(context_length, 4096);
        }
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let _turn = take_turn();
    let request = |seed| GenerationRequest {
        messages: user("Write a short poem about the sea."),
        max_tokens: Some(32),
        temperature: 1.0,
        top_p: 0.95,
        seed: Some(seed),
        ..GenerationRequest::default()
    };
    let first = run(model(), request(1234));
    let again = run(model(), request(1234));
    assert_eq!(first.text, again.text);
    assert!(!first.text.is_empty());
    let mut texts: Vec<String> = (1..=4).map(|seed| run(model(), request(seed)).text).collect();
    texts.dedup();
    assert!(texts.len() > 1, "four seeds gave the same text: {texts:?}");
}

#[test]
fn token_counts_agree_with_the_rendered_prompt() {
    let _turn = take_turn();
    let model = model();
    let hello = model.count_tokens("Hello, world!").unwrap();
    assert!((2..=6).contains(&hello), "{hello} tokens");
    assert_eq!(
        model.count_tokens("<|im_start|>").unwrap(),
        1,
        "special-token markup is one token"
    );
    assert_eq!(model.count_tokens("").unwrap(), 0);

    let messages = user("How many tokens is this?");
    let prompt = model.render_prompt(&messages).unwrap();
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt:?}");
    // SmolLM2 adds no BOS token, so the prompt is exactly its rendered text.
    let expected = u32::try_from(model.count_tokens(&prompt).unwrap()).unwrap();
    let outcome = run(
        model,
        GenerationRequest {
            messages,
            max_tokens: Some(1),
            ..Default::default()
        },
    );
    assert_eq!(outcome.prompt_tokens_at_start, expected);
    assert_eq!(outcome.summary.prompt_tokens, expected);
}

#[test]
fn invalid_requests_are_rejected_before_queueing() {
    let model = model();
    let invalid = |request: GenerationRequest| {
        let result = model.generate(request);
        assert!(matches!(result, Err(InferenceError::InvalidRequest(_))), "{result:?}");
    };
    invalid(GenerationRequest {
        messages: Vec::new(),
        ..greedy("", 5)
    });
    invalid(GenerationRequest {
        messages: vec![ChatMessage {
            role: "wizard".to_owned(),
            content: "hi".to_owned(),
        }],
        ..greedy("", 5)
    });
    invalid(greedy("hi", 0));
    invalid(GenerationRequest {
        temperature: -1.0,
        ..greedy("hi", 5)
    });
    invalid(GenerationRequest {
        top_p: 0.0,
        temperature: 0.7,
        ..greedy("hi", 5)
    });
    assert!(matches!(
        model.render_prompt(&[]),
        Err(InferenceError::InvalidRequest(_))
    ));
}

#[test]
fn a_small_context_caps_the_reply_and_bounds_the_prompt() {
    let _turn = take_turn();
    let model = load(200, 4, 4);
    let context_length = model.info().context_length;
    assert_eq!(context_length, 200);

    // No max_tokens: the reply may fill the context and ends with Length when it does.
    let outcome = run(
        &model,
        GenerationRequest {
            max_tokens: None,
            ..greedy("Tell me a long story about a dragon.", 0)
        },
    );
    assert_eq!(
        outcome.summary.finish_reason,
        FinishReason::Length,
        "{:?}",
        outcome.text
    );
    assert_eq!(
        outcome.summary.prompt_tokens + outcome.summary.completion_tokens,
        context_length
    );

    // A max_tokens beyond the room left is capped to it.
    let outcome = run(&model, greedy("Tell me a long story about a dragon.", 1000));
    assert_eq!(
        outcome.summary.prompt_tokens + outcome.summary.completion_tokens,
        context_length
    );

    // The longest prompt allowed leaves room for exactly one token; one more token overflows.
    let prompt_tokens = |words: usize| {
        let prompt = model.render_prompt(&user(&"a ".repeat(words))).unwrap();
        model.count_tokens(&prompt).unwrap()
    };
    let words = (0..400).find(|&words| prompt_tokens(words) >= 199).unwrap();
    assert_eq!(prompt_tokens(words), 199, "one word, one token");
    let outcome = run(&model, greedy(&"a ".repeat(words), 10));
    assert_eq!(outcome.summary.prompt_tokens, 199);
    assert!(outcome.summary.completion_tokens <= 1);
    let result = model.generate(greedy(&"a ".repeat(words + 1), 10));
    assert!(
        matches!(
            result,
            Err(InferenceError::ContextOverflow {
                prompt_tokens: 200,
                context_length: 200
            })
        ),
        "{result:?}"
    );
}

#[test]
fn a_full_queue_refuses_requests_and_an_abandoned_request_stops() {
    let _turn = take_turn();
    let model = load(4096, 1, 1);
    let long = || GenerationRequest {
        max_tokens: None,
        ..greedy("Write a very long essay about the history of Rome.", 0)
    };

    let mut running = model.generate(long()).unwrap();
    assert!(matches!(running.blocking_recv(), Some(GenerationEvent::Started { .. })));
    let waiting = model.generate(greedy("Say hi.", 5)).unwrap();
    match model.generate(greedy("Say hi.", 5)) {
        Err(error @ InferenceError::Overloaded { max_queue: 1 }) => {
            assert!(error.to_string().contains("busy"), "{error}");
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }

    // Dropping the receivers abandons both; the worker must notice at its next token and take new work at once.
    drop(running);
    drop(waiting);
    let started = Instant::now();
    let accepted = loop {
        match model.generate(greedy("Say hi.", 5)) {
            Ok(events) => break events,
            Err(InferenceError::Overloaded { .. }) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("the worker did not stop the abandoned request: {error}"),
        }
    };
    let outcome = collect(accepted);
    assert_eq!(outcome.summary.completion_tokens, 5);
}

#[test]
fn a_missing_model_file_says_how_to_fetch_it() {
    let path = common::models_dir().join("no-such-model.gguf");
    let error = ChatModel::load(&path, ChatModelOptions::default())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(&error, InferenceError::ModelMissing { path: missing } if missing == &path));
    let message = error.to_string();
    assert!(
        message.contains("no-such-model.gguf") && message.contains("run scripts/fetch-models"),
        "{message}"
    );
}

#[test]
fn a_corrupt_model_file_is_reported_as_such() {
    let dir = std::env::temp_dir().join(format!("flywheel-inference-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("corrupt.gguf");
    std::fs::write(&path, b"GGUF but not really").unwrap();
    let error = ChatModel::load(&path, ChatModelOptions::default())
        .map(|_| ())
        .unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        matches!(&error, InferenceError::ModelCorrupt { path: corrupt, .. } if corrupt == &path),
        "{error}"
    );
    assert!(error.to_string().contains("run scripts/fetch-models"), "{error}");
}

#[test]
fn a_schema_holds_the_output_to_valid_json() {
    let _turn = take_turn();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "colour": {"enum": ["red", "green", "blue"]},
            "seats": {"type": "integer", "minimum": 2, "maximum": 6},
            "sku": {"type": "string", "pattern": "^SKU-[0-9]{4}$"}
        },
        "required": ["colour", "seats", "sku"],
        "additionalProperties": false
    });
    let outcome = run(
        model(),
        GenerationRequest {
            format: OutputFormat::JsonSchema(schema),
            ..greedy("Describe a sofa.", 120)
        },
    );
    assert_eq!(outcome.summary.finish_reason, FinishReason::Stop, "{}", outcome.text);
    let value: serde_json::Value = serde_json::from_str(&outcome.text).expect("the output is JSON");
    assert!(["red", "green", "blue"].contains(&value["colour"].as_str().unwrap()));
    assert!((2..=6).contains(&value["seats"].as_i64().unwrap()));
    let sku = value["sku"].as_str().unwrap();
    assert!(sku.len() == 8 && sku.starts_with("SKU-") && sku[4..].bytes().all(|b| b.is_ascii_digit()));
}

#[test]
fn a_schema_that_cannot_be_used_fails_before_the_generation_starts() {
    let mut events = model()
        .generate(GenerationRequest {
            format: OutputFormat::JsonSchema(serde_json::json!({"type": "no-such-type"})),
            ..greedy("hi", 5)
        })
        .expect("queued");
    match events.blocking_recv() {
        Some(GenerationEvent::Failed(InferenceError::InvalidRequest(message))) => {
            assert!(message.contains("schema"), "{message}");
        }
        other => panic!("expected a failure first, got {other:?}"),
    }
}

/// Reads events until the first text arrives; panics if the stream ends first.
fn first_text(events: &mut UnboundedReceiver<GenerationEvent>) {
    while let Some(event) = events.blocking_recv() {
        match event {
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Text(_) => return,
            other => panic!("expected text, got {other:?}"),
        }
    }
    panic!("the stream ended before any text");
}

/// Reads a stream whose first text was already read through to its summary.
fn rest(mut events: UnboundedReceiver<GenerationEvent>) -> GenerationSummary {
    while let Some(event) = events.blocking_recv() {
        match event {
            GenerationEvent::Text(_) => {}
            GenerationEvent::Done(summary) => return summary,
            other => panic!("expected text or the summary, got {other:?}"),
        }
    }
    panic!("the stream ended without Done");
}

#[test]
fn concurrent_requests_decode_together() {
    let _turn = take_turn();
    let model = model();
    let long = |topic: &str| GenerationRequest {
        max_tokens: Some(40),
        ..greedy(&format!("Write a long essay about {topic}."), 0)
    };
    let steps_before = model.stats().steps;
    let mut streams: Vec<_> = ["Rome", "the sea", "volcanoes", "bread"]
        .into_iter()
        .map(|topic| model.generate(long(topic)).unwrap())
        .collect();
    // Served one after another, the last request would see no text before the first had finished: every
    // stream producing text before any finishes shows they run at once.
    for stream in &mut streams {
        first_text(stream);
    }
    for summary in streams.into_iter().map(rest) {
        assert_eq!(summary.completion_tokens, 40);
    }
    // 160 tokens generated in about 40 batches, not 160.
    let steps = model.stats().steps - steps_before;
    assert!(steps < 100, "{steps} steps for 4 × 40 tokens");
    assert_eq!(model.stats().running, 0);
}

#[test]
fn a_shared_system_prompt_is_read_from_the_cache() {
    let _turn = take_turn();
    let model = model();
    let system = ChatMessage {
        role: "system".to_owned(),
        content: "You are the help desk of a furniture shop. Answer in one short sentence, politely, and never \
                  make up a product. Our shop sells sofas, tables, chairs, rugs and lamps."
            .to_owned(),
    };
    let ask = |question: &str| GenerationRequest {
        messages: vec![
            system.clone(),
            ChatMessage {
                role: "user".to_owned(),
                content: question.to_owned(),
            },
        ],
        ..greedy("", 8)
    };
    run(model, ask("Do you sell beds?"));
    let before = model.stats();
    let outcome = run(model, ask("Do you sell lamps?"));
    let reused = model.stats().prompt_tokens_reused - before.prompt_tokens_reused;
    let system_tokens = model
        .count_tokens(&model.render_prompt(std::slice::from_ref(&system)).unwrap())
        .unwrap();
    assert!(
        reused as usize >= system_tokens.saturating_sub(8),
        "{reused} of {} prompt tokens reused; the system prompt alone is {system_tokens}",
        outcome.summary.prompt_tokens
    );
}

#[test]
fn a_full_cache_suspends_and_resumes_requests_without_losing_any() {
    let _turn = take_turn();
    let path = common::models_dir().join(CHAT_MODEL_FILE);
    // Four requests of about 40 + 200 tokens need about 960 cells: twice what this cache holds.
    let model = ChatModel::load(
        &path,
        ChatModelOptions {
            threads: 2,
            context_length: 512,
            max_sequences: 4,
            kv_cache_tokens: 512,
            max_queue: 4,
        },
    )
    .unwrap();
    assert_eq!(model.info().kv_cache_tokens, 512);
    let streams: Vec<_> = ["Rome", "the sea", "volcanoes", "bread"]
        .into_iter()
        .map(|topic| {
            model
                .generate(GenerationRequest {
                    max_tokens: Some(200),
                    ..greedy(&format!("Write a very long essay about {topic}, in great detail."), 0)
                })
                .unwrap()
        })
        .collect();
    for outcome in streams.into_iter().map(collect) {
        assert_eq!(outcome.summary.finish_reason, FinishReason::Length, "{}", outcome.text);
        assert_eq!(outcome.summary.completion_tokens, 200);
    }
    assert!(model.stats().suspensions > 0, "{:?}", model.stats());
}

#[test]
fn an_abandoned_request_leaves_the_others_running() {
    let _turn = take_turn();
    let model = model();
    let mut kept = model.generate(greedy("Write a long essay about bread.", 30)).unwrap();
    let mut dropped = model.generate(greedy("Write a long essay about Rome.", 200)).unwrap();
    first_text(&mut kept);
    first_text(&mut dropped);
    drop(dropped);
    assert_eq!(rest(kept).completion_tokens, 30);
    let started = Instant::now();
    while model.stats().running + model.stats().waiting > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the abandoned request still runs"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
