//! The Responses translation: requests become the chat requests they mean (or a 400 naming the field), a chat
//! answer streamed in chunks cut anywhere ends as the same response object as the whole answer, and the event
//! sequence is always well-formed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::translate::{EventTranslator, completion_to_response, request_to_chat};
use super::wire::{CreateResponse, OutputContent, OutputItem, SequencedEvent, StreamEvent};
use crate::GatewayError;
use crate::anthropic::tests::{chunks_of, completion};
use crate::openai::{ChatCompletion, MessageContent};

fn request(body: Value) -> CreateResponse {
    serde_json::from_value(body).unwrap()
}

fn chat_of(body: Value) -> crate::openai::ChatCompletionRequest {
    request_to_chat(request(body)).unwrap().0
}

fn refused_param(body: Value) -> String {
    match request_to_chat(request(body)) {
        Err(GatewayError::UnsupportedParameter { param, .. }) => param,
        Err(GatewayError::InvalidRequest { param, .. }) => param.unwrap_or_default(),
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn a_string_input_is_one_user_message_after_the_instructions() {
    let chat = chat_of(json!({"model": "m", "input": "Hi", "instructions": "Be brief.", "max_output_tokens": 20}));
    let messages: Vec<(String, String)> = chat
        .messages
        .iter()
        .map(|message| (message.role.clone(), message.text_content()))
        .collect();
    assert_eq!(
        messages,
        [("system".into(), "Be brief.".into()), ("user".into(), "Hi".into())]
    );
    assert_eq!(chat.max_tokens, Some(20));
    assert!(!chat.stream);
}

#[test]
fn a_tool_conversation_becomes_chat_messages() {
    let chat = chat_of(json!({
        "model": "m",
        "stream": true,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}",
             "id": "fc_1", "status": "completed"},
            {"type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "noon"}]}
        ],
        "tools": [{"type": "function", "name": "weather", "description": "d",
                   "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "weather"},
        "parallel_tool_calls": false,
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}}
    }));
    let roles: Vec<&str> = chat.messages.iter().map(|message| message.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool"]);
    let assistant = &chat.messages[1];
    assert_eq!(assistant.text_content(), "Let me check.");
    let calls = assistant.tool_calls.as_ref().unwrap();
    assert_eq!(
        calls.iter().map(|call| call.id.as_str()).collect::<Vec<_>>(),
        ["call_1", "call_2"]
    );
    assert_eq!(chat.messages[2].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(chat.messages[3].text_content(), "noon");
    assert_eq!(chat.tools.as_ref().unwrap()[0].function.name, "weather");
    assert_eq!(
        chat.tool_choice,
        Some(json!({"type": "function", "function": {"name": "weather"}}))
    );
    assert_eq!(chat.parallel_tool_calls, Some(false));
    assert_eq!(
        chat.response_format,
        Some(
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
        )
    );
    assert!(chat.stream && chat.stream_options.unwrap().include_usage);
    crate::chat::validate(&chat_of(json!({"model": "m", "input": "x"})), None).unwrap();
}

#[test]
fn images_become_image_url_parts() {
    let chat = chat_of(json!({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
    ]}]}));
    let Some(MessageContent::Parts(parts)) = &chat.messages[0].content else {
        panic!("parts expected");
    };
    assert_eq!(parts[1].kind, "image_url");
    assert_eq!(
        parts[1].other["image_url"],
        json!({"url": "data:image/png;base64,AAAA", "detail": "low"})
    );
}

#[test]
fn what_a_stateless_gateway_cannot_do_is_refused_by_name() {
    let cases = [
        (
            json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"model": "m", "input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (json!({"model": "m", "input": "x", "background": true}), "background"),
        (
            json!({"model": "m", "input": "x", "reasoning": {"effort": "high"}}),
            "reasoning",
        ),
        (
            json!({"model": "m", "input": "x", "include": ["reasoning.encrypted_content"]}),
            "include",
        ),
        (json!({"model": "m", "input": "x", "truncation": "auto"}), "truncation"),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}),
            "text.format.name",
        ),
        (json!({"model": "m", "input": "x", "temperature": 3}), "temperature"),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": []}), "input"),
        (
            json!({"model": "m", "input": [{"type": "reasoning", "summary": []}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0].type",
        ),
    ];
    for (body, param) in cases {
        assert_eq!(refused_param(body.clone()), param, "{body}");
    }
    let unknown: Result<CreateResponse, _> = serde_json::from_value(json!({"model": "m", "input": "x", "inptu": 1}));
    assert!(unknown.unwrap_err().to_string().contains("inptu"));
}

#[test]
fn a_completion_becomes_a_message_then_function_calls() {
    let completion: ChatCompletion = serde_json::from_value(json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 7, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    }))
    .unwrap();
    let (_, echo) = request_to_chat(request(json!({"model": "m", "input": "x", "metadata": {"k": "v"}}))).unwrap();
    let response = serde_json::to_value(completion_to_response(completion, &echo)).unwrap();
    assert_eq!(response["id"], "resp_abc");
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["type"], "message");
    assert_eq!(response["output"][0]["content"][0]["text"], "Checking.");
    assert_eq!(response["output"][1]["type"], "function_call");
    assert_eq!(response["output"][1]["call_id"], "call_9");
    assert_eq!(response["usage"]["input_tokens"], 5);
    assert_eq!(response["usage"]["output_tokens"], 3);
    assert_eq!(response["metadata"], json!({"k": "v"}));
    assert_eq!(response["store"], false);
}

/// Checks the Responses event grammar and returns the final response's JSON: numbered from 0; created and
/// in_progress first; every item added once and done once, with deltas only between; the deltas of a part or
/// call add up to its done text; one terminal event, last.
fn check_well_formed(events: &[SequencedEvent]) -> Result<Value, String> {
    let mut open = BTreeSet::new();
    let mut closed = BTreeSet::new();
    let mut texts: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let mut arguments: BTreeMap<usize, String> = BTreeMap::new();
    let mut done_items = Vec::new();
    for (at, sequenced) in events.iter().enumerate() {
        if sequenced.sequence_number != at as u64 {
            return Err(format!("event {at} numbered {}", sequenced.sequence_number));
        }
        let event = &sequenced.event;
        let terminal = matches!(
            event,
            StreamEvent::Completed { .. } | StreamEvent::Incomplete { .. } | StreamEvent::Failed { .. }
        );
        if (at == 0) != matches!(event, StreamEvent::Created { .. })
            || (at == 1) != matches!(event, StreamEvent::InProgress { .. })
            || (at == events.len() - 1) != terminal
        {
            return Err(format!("event {at} out of place: {}", event.name()));
        }
        let in_open = |index: &usize| open.contains(index);
        match event {
            StreamEvent::OutputItemAdded { output_index, .. } => {
                let in_order = *output_index == open.len() + closed.len();
                if !in_order || !open.insert(*output_index) {
                    return Err(format!("item {output_index} added out of order"));
                }
            }
            StreamEvent::OutputItemDone { output_index, item } => {
                if !open.remove(output_index) || !closed.insert(*output_index) {
                    return Err(format!("item {output_index} done without being open"));
                }
                done_items.push((*output_index, item.clone()));
            }
            StreamEvent::OutputTextDelta {
                output_index,
                content_index,
                delta,
                ..
            }
            | StreamEvent::RefusalDelta {
                output_index,
                content_index,
                delta,
                ..
            } => {
                if !in_open(output_index) {
                    return Err(format!("delta for closed item {output_index}"));
                }
                texts
                    .entry((*output_index, *content_index))
                    .or_default()
                    .push_str(delta);
            }
            StreamEvent::OutputTextDone {
                output_index,
                content_index,
                text,
                ..
            }
            | StreamEvent::RefusalDone {
                output_index,
                content_index,
                refusal: text,
                ..
            } => {
                let streamed = texts.get(&(*output_index, *content_index)).cloned().unwrap_or_default();
                if &streamed != text {
                    return Err(format!("deltas {streamed:?} but done {text:?}"));
                }
            }
            StreamEvent::FunctionCallArgumentsDelta {
                output_index, delta, ..
            } => {
                if !in_open(output_index) {
                    return Err(format!("arguments for closed item {output_index}"));
                }
                arguments.entry(*output_index).or_default().push_str(delta);
            }
            StreamEvent::FunctionCallArgumentsDone {
                output_index,
                arguments: done,
                ..
            } => {
                let streamed = arguments.get(output_index).map_or("", String::as_str);
                if streamed != done {
                    return Err(format!("arguments of {output_index} do not add up"));
                }
            }
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err(format!("items left open: {open:?}"));
    }
    let Some(last) = events.last() else {
        return Err("no events".to_owned());
    };
    let (StreamEvent::Completed { response } | StreamEvent::Incomplete { response } | StreamEvent::Failed { response }) =
        &last.event
    else {
        return Err("no terminal event".to_owned());
    };
    done_items.sort_by_key(|(index, _)| *index);
    let done: Vec<OutputItem> = done_items.into_iter().map(|(_, item)| item).collect();
    if done != response.output {
        return Err("the done items differ from the final output".to_owned());
    }
    Ok(serde_json::to_value(response).unwrap())
}

fn stream_events(completion: &ChatCompletion, cuts: &[usize]) -> Vec<SequencedEvent> {
    let (_, echo) = request_to_chat(request(json!({"model": "m", "input": "x", "stream": true}))).unwrap();
    let mut translator = EventTranslator::new(echo, "m".to_owned());
    let mut events = Vec::new();
    for chunk in chunks_of(completion, cuts) {
        events.extend(translator.push(&chunk));
    }
    events.extend(translator.finish());
    events
}

#[test]
fn an_error_mid_stream_fails_the_response_with_its_items_closed() {
    let (_, echo) = request_to_chat(request(json!({"model": "m", "input": "x", "stream": true}))).unwrap();
    let completion: ChatCompletion = serde_json::from_value(json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 7, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Half an answer"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    }))
    .unwrap();
    let mut translator = EventTranslator::new(echo, "m".to_owned());
    let mut events = Vec::new();
    for chunk in chunks_of(&completion, &[3]).into_iter().take(3) {
        events.extend(translator.push(&chunk));
    }
    events.extend(translator.fail(&GatewayError::Upstream {
        failure: crate::UpstreamFailure::Timeout,
        message: "the upstream stalled".to_owned(),
    }));
    let response = check_well_formed(&events).unwrap();
    assert_eq!(response["status"], "failed");
    assert_eq!(response["error"]["code"], "upstream_timeout");
    assert_eq!(response["output"][0]["status"], "incomplete");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A chat answer streamed in chunks cut anywhere gives well-formed events whose final response is the one
    /// the whole answer gives.
    #[test]
    fn a_streamed_answer_ends_as_the_whole_answer(completion in completion(), cuts in vec(0usize..64, 0..6)) {
        let events = stream_events(&completion, &cuts);
        let streamed = check_well_formed(&events).map_err(TestCaseError::fail)?;
        let (_, echo) = request_to_chat(request(json!({"model": "m", "input": "x", "stream": true}))).unwrap();
        let whole = serde_json::to_value(completion_to_response(completion, &echo)).unwrap();
        prop_assert_eq!(streamed, whole);
    }

    /// Any conversation of user and assistant text, function calls and their outputs becomes a valid chat
    /// request with the same texts in the same order, and every call answered by its own tool message.
    #[test]
    fn conversations_become_valid_chat_requests(turns in vec((
        "[a-zA-Z0-9 .,é漢]{1,16}",
        "[a-zA-Z0-9 .,é漢]{0,16}",
        0usize..3,
    ), 1..5)) {
        let mut items = Vec::new();
        let mut expected_texts = Vec::new();
        let mut call_ids = Vec::new();
        for (turn, (user, assistant, calls)) in turns.iter().enumerate() {
            items.push(json!({"role": "user", "content": [{"type": "input_text", "text": user}]}));
            expected_texts.push(user.clone());
            if !assistant.is_empty() {
                items.push(json!({"type": "message", "role": "assistant",
                                  "content": [{"type": "output_text", "text": assistant, "annotations": []}]}));
                expected_texts.push(assistant.clone());
            }
            for call in 0..*calls {
                let call_id = format!("call_{turn}_{call}");
                items.push(json!({"type": "function_call", "call_id": call_id, "name": "f", "arguments": "{}"}));
                call_ids.push(call_id);
            }
            for call in 0..*calls {
                let call_id = format!("call_{turn}_{call}");
                items.push(json!({"type": "function_call_output", "call_id": call_id, "output": "ok"}));
            }
        }
        let chat = chat_of(json!({"model": "m", "input": items}));
        crate::chat::validate(&chat, None).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let texts: Vec<String> = chat.messages.iter()
            .filter(|message| message.role != "tool")
            .map(|message| message.text_content())
            .filter(|text| !text.is_empty())
            .collect();
        prop_assert_eq!(texts, expected_texts);
        let called: Vec<String> = chat.messages.iter()
            .flat_map(|message| message.tool_calls.iter().flatten().map(|call| call.id.clone()))
            .collect();
        let answered: Vec<String> = chat.messages.iter().filter_map(|message| message.tool_call_id.clone()).collect();
        prop_assert_eq!(&called, &call_ids);
        prop_assert_eq!(&answered, &call_ids);
    }
}

#[test]
fn an_empty_answer_is_one_empty_message() {
    let completion: ChatCompletion = serde_json::from_value(json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 7, "model": "m",
        "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": null}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}
    }))
    .unwrap();
    let events = stream_events(&completion, &[]);
    let response = check_well_formed(&events).unwrap();
    assert_eq!(response["status"], "incomplete");
    assert_eq!(response["incomplete_details"]["reason"], "max_output_tokens");
    assert!(matches!(events.last().unwrap().event, StreamEvent::Incomplete { .. }));
    let OutputItem::Message { content, .. } = serde_json::from_value(response["output"][0].clone()).unwrap() else {
        panic!("a message expected");
    };
    assert_eq!(
        content,
        [OutputContent::Text {
            text: String::new(),
            annotations: vec![],
            logprobs: vec![]
        }]
    );
}
