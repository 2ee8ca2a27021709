//! Properties of the translation, over random conversations and answers: requests survive a round trip through
//! the other protocol (modulo the normalisations in the module docs, which the generators avoid and unit tests
//! cover), a streamed answer cut into chunks anywhere ends as the same message as the whole answer, and the
//! Anthropic event sequence is always well-formed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::wire::{
    BlockDelta, ContentBlock, ContentBlockParam, DeltaUsage, ImageSource, InputMessage, MessageDelta, MessageUsage,
    MessagesRequest, MessagesResponse, Metadata, Role, StopReason, StreamEvent, TextOrBlocks, Tool, ToolChoice,
};
use super::{inbound, input_of, outbound};
use crate::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, ChunkChoice,
    ContentPart, Delta, FunctionCall, FunctionCallDelta, FunctionDefinition, MessageContent, StopSequences, ToolCall,
    ToolCallDelta, ToolDefinition, Usage,
};
use crate::provider::CompletionBuilder;

// ---------------------------------------------------------------------------------------------------------------
// Generators

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.!?\n\"{}é漢🙂]{1,24}"
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(|n| json!(n)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Numbers in [0, 1] with two decimals: serde_json's default float parsing is exact for these (not for every
/// f64), and the properties compare what went through JSON.
fn unit_interval() -> impl Strategy<Value = f64> {
    (0u32..=100).prop_map(|n| f64::from(n) / 100.0)
}

pub(crate) fn json_object() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map("[a-z_]{1,6}", json_value(), 0..4)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

pub(crate) fn tool_id() -> impl Strategy<Value = String> {
    "(call|toolu)_[a-zA-Z0-9]{4,10}"
}

pub(crate) fn tool_name() -> impl Strategy<Value = String> {
    "[a-z][a-z_]{0,11}"
}

fn image_source() -> impl Strategy<Value = ImageSource> {
    prop_oneof![
        ("image/(png|jpeg|webp)", "[A-Za-z0-9+/]{4,16}")
            .prop_map(|(media_type, data)| ImageSource::Base64 { media_type, data }),
        "https://images\\.invalid/[a-z]{1,8}\\.png".prop_map(|url| ImageSource::Url { url }),
    ]
}

fn user_block() -> impl Strategy<Value = ContentBlockParam> {
    prop_oneof![
        3 => text().prop_map(ContentBlockParam::text),
        1 => image_source().prop_map(|source| ContentBlockParam::Image { source, cache_control: None }),
    ]
}

fn text_or_text_blocks() -> impl Strategy<Value = TextOrBlocks> {
    prop_oneof![
        text().prop_map(TextOrBlocks::Text),
        vec(text().prop_map(ContentBlockParam::text), 1..3).prop_map(TextOrBlocks::Blocks),
    ]
}

/// One Anthropic exchange: what the user says, and the assistant's answer (text, or tool calls with the results
/// that the next user message carries).
#[derive(Debug, Clone)]
struct Exchange {
    user: TextOrBlocks,
    answer_text: Option<String>,
    tool_calls: Vec<(String, String, Value, TextOrBlocks)>,
}

fn exchange() -> impl Strategy<Value = Exchange> {
    let user = prop_oneof![
        text().prop_map(TextOrBlocks::Text),
        vec(user_block(), 1..3).prop_map(TextOrBlocks::Blocks),
    ];
    let call = (tool_id(), tool_name(), json_object(), text_or_text_blocks());
    (user, option::of(text()), vec(call, 0..3)).prop_map(|(user, answer_text, mut tool_calls)| {
        // Ids must be unique within an answer.
        for (index, call) in tool_calls.iter_mut().enumerate() {
            call.0 = format!("{}{index}", call.0);
        }
        let answer_text = if tool_calls.is_empty() {
            Some(answer_text.unwrap_or_else(|| "ok".to_owned()))
        } else {
            answer_text
        };
        Exchange {
            user,
            answer_text,
            tool_calls,
        }
    })
}

fn anthropic_messages(exchanges: Vec<Exchange>, end_with_user: bool) -> Vec<InputMessage> {
    let mut messages = Vec::new();
    let mut pending_results: Vec<ContentBlockParam> = Vec::new();
    for exchange in exchanges {
        let user = if pending_results.is_empty() {
            exchange.user
        } else {
            let mut blocks = std::mem::take(&mut pending_results);
            match exchange.user {
                TextOrBlocks::Text(text) => blocks.push(ContentBlockParam::text(text)),
                TextOrBlocks::Blocks(more) => blocks.extend(more),
            }
            TextOrBlocks::Blocks(blocks)
        };
        messages.push(InputMessage {
            role: Role::User,
            content: user,
        });
        let assistant = if exchange.tool_calls.is_empty() {
            TextOrBlocks::Text(exchange.answer_text.unwrap_or_default())
        } else {
            let mut blocks: Vec<ContentBlockParam> =
                exchange.answer_text.into_iter().map(ContentBlockParam::text).collect();
            for (id, name, input, result) in exchange.tool_calls {
                blocks.push(ContentBlockParam::ToolUse {
                    id: id.clone(),
                    name,
                    input,
                    cache_control: None,
                });
                pending_results.push(ContentBlockParam::ToolResult {
                    tool_use_id: id,
                    content: Some(result),
                    is_error: None,
                    cache_control: None,
                });
            }
            TextOrBlocks::Blocks(blocks)
        };
        messages.push(InputMessage {
            role: Role::Assistant,
            content: assistant,
        });
    }
    if end_with_user || !pending_results.is_empty() {
        let mut blocks = pending_results;
        blocks.push(ContentBlockParam::text("and now?"));
        messages.push(InputMessage {
            role: Role::User,
            content: TextOrBlocks::Blocks(blocks),
        });
    }
    messages
}

fn anthropic_tool_choice() -> impl Strategy<Value = ToolChoice> {
    let disable = option::of(any::<bool>());
    prop_oneof![
        disable.clone().prop_map(|disable_parallel_tool_use| ToolChoice::Auto {
            disable_parallel_tool_use
        }),
        disable.clone().prop_map(|disable_parallel_tool_use| ToolChoice::Any {
            disable_parallel_tool_use
        }),
        (tool_name(), disable).prop_map(|(name, disable_parallel_tool_use)| ToolChoice::Tool {
            name,
            disable_parallel_tool_use
        }),
        Just(ToolChoice::None),
    ]
}

prop_compose! {
    fn anthropic_request()(
        system in option::of(text_or_text_blocks()),
        exchanges in vec(exchange(), 1..4),
        end_with_user in any::<bool>(),
        max_tokens in 1u32..5000,
        temperature in option::of(unit_interval()),
        top_p in option::of(unit_interval()),
        stop_sequences in option::of(vec(text(), 0..3)),
        stream in any::<bool>(),
        tools in option::of(vec((tool_name(), option::of(text()), json_object()), 0..3)),
        tool_choice in option::of(anthropic_tool_choice()),
        user_id in option::of(text()),
    ) -> MessagesRequest {
        MessagesRequest {
            model: "m".to_owned(),
            messages: anthropic_messages(exchanges, end_with_user),
            max_tokens,
            system,
            temperature,
            top_p,
            top_k: None,
            stop_sequences,
            stream,
            tools: tools.map(|tools| tools.into_iter().map(|(name, description, input_schema)| Tool {
                name, description, input_schema, kind: None, cache_control: None,
            }).collect()),
            tool_choice,
            metadata: user_id.map(|user_id| Metadata { user_id: Some(user_id) }),
            thinking: None,
            cache_control: None,
            service_tier: None,
        }
    }
}

fn openai_content() -> impl Strategy<Value = MessageContent> {
    let part = prop_oneof![
        3 => text().prop_map(ContentPart::text),
        1 => image_source().prop_map(|source| {
            let url = match source {
                ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
                ImageSource::Url { url } => url,
            };
            let mut other = serde_json::Map::new();
            other.insert("image_url".to_owned(), json!({ "url": url }));
            ContentPart { kind: "image_url".to_owned(), text: None, other }
        }),
    ];
    prop_oneof![
        text().prop_map(MessageContent::Text),
        vec(part, 1..3).prop_map(MessageContent::Parts),
    ]
}

fn openai_text_content() -> impl Strategy<Value = MessageContent> {
    prop_oneof![
        text().prop_map(MessageContent::Text),
        vec(text().prop_map(ContentPart::text), 1..3).prop_map(MessageContent::Parts),
    ]
}

fn message(role: &str, content: Option<MessageContent>) -> ChatMessage {
    ChatMessage {
        content,
        ..ChatMessage::text(role, "")
    }
}

/// One OpenAI exchange: a user message and either an answer or tool calls, their results, and an answer.
fn openai_exchange() -> impl Strategy<Value = Vec<ChatMessage>> {
    let call = (tool_id(), tool_name(), json_object(), openai_text_content());
    (openai_content(), text(), option::of(text()), vec(call, 0..3)).prop_map(|(user, answer, preamble, calls)| {
        let mut messages = vec![message("user", Some(user))];
        if !calls.is_empty() {
            let tool_calls = calls
                .iter()
                .enumerate()
                .map(|(index, (id, name, arguments, _))| ToolCall {
                    id: format!("{id}{index}"),
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: name.clone(),
                        arguments: serde_json::to_string(arguments).unwrap(),
                    },
                })
                .collect::<Vec<_>>();
            messages.push(ChatMessage {
                tool_calls: Some(tool_calls.clone()),
                ..message("assistant", preamble.map(MessageContent::Text))
            });
            for (call, (_, _, _, result)) in tool_calls.iter().zip(calls) {
                messages.push(ChatMessage {
                    tool_call_id: Some(call.id.clone()),
                    ..message("tool", Some(result))
                });
            }
        }
        messages.push(ChatMessage::text("assistant", answer));
        messages
    })
}

fn openai_tool_choice() -> impl Strategy<Value = (Option<Value>, Option<bool>)> {
    let parallel = option::of(any::<bool>());
    prop_oneof![
        Just((None, None)),
        Just((Some(json!("none")), None)),
        (
            prop_oneof![Just(json!("auto")), Just(json!("required"))],
            parallel.clone()
        )
            .prop_map(|(choice, parallel)| (Some(choice), parallel)),
        (tool_name(), parallel)
            .prop_map(|(name, p)| (Some(json!({"type": "function", "function": {"name": name}})), p)),
    ]
}

prop_compose! {
    fn openai_request()(
        system in option::of(openai_text_content()),
        exchanges in vec(openai_exchange(), 1..4),
        max_tokens in 1i64..5000,
        temperature in option::of(unit_interval()),
        top_p in option::of(unit_interval()),
        stop in option::of(vec(text(), 0..3)),
        user in option::of(text()),
        tools in option::of(vec((tool_name(), option::of(text()), json_object()), 0..3)),
        (tool_choice, parallel_tool_calls) in openai_tool_choice(),
    ) -> ChatCompletionRequest {
        let mut messages: Vec<ChatMessage> = system.map(|s| message("system", Some(s))).into_iter().collect();
        messages.extend(exchanges.into_iter().flatten());
        ChatCompletionRequest {
            model: "m".to_owned(),
            messages,
            max_tokens: Some(max_tokens),
            temperature,
            top_p,
            stop: stop.map(StopSequences::Many),
            user,
            tools: tools.map(|tools| tools.into_iter().map(|(name, description, parameters)| ToolDefinition {
                kind: "function".to_owned(),
                function: FunctionDefinition { name, description, parameters: Some(parameters), strict: None },
            }).collect()),
            tool_choice,
            parallel_tool_calls,
            ..ChatCompletionRequest::default()
        }
    }
}

fn finish_reason() -> impl Strategy<Value = Option<String>> {
    option::of(prop_oneof![
        Just("stop".to_owned()),
        Just("length".to_owned()),
        Just("tool_calls".to_owned()),
        Just("content_filter".to_owned()),
    ])
}

prop_compose! {
    pub(crate) fn completion()(
        content in option::of("[a-zA-Z0-9 ,.é漢🙂]{0,40}"),
        calls in vec((tool_id(), tool_name(), json_object()), 0..3),
        finish_reason in finish_reason(),
        prompt in 0u32..10_000,
        output in 0u32..10_000,
    ) -> ChatCompletion {
        let tool_calls: Vec<ToolCall> = calls.into_iter().enumerate().map(|(index, (id, name, arguments))| ToolCall {
            id: format!("{id}{index}"),
            kind: "function".to_owned(),
            function: FunctionCall { name, arguments: serde_json::to_string(&arguments).unwrap() },
        }).collect();
        ChatCompletion {
            id: "chatcmpl-0123abcd".to_owned(),
            object: "chat.completion".to_owned(),
            created: 1,
            model: "m".to_owned(),
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".to_owned(),
                    content,
                    refusal: None,
                    tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                },
                finish_reason,
                logprobs: None,
            }],
            usage: Some(Usage::new(prompt, output)),
            system_fingerprint: None,
        }
    }
}

fn stop_reason() -> impl Strategy<Value = StopReason> {
    prop_oneof![
        Just(StopReason::EndTurn),
        Just(StopReason::MaxTokens),
        Just(StopReason::StopSequence),
        Just(StopReason::ToolUse),
        Just(StopReason::Refusal),
    ]
}

prop_compose! {
    fn anthropic_response()(
        blocks in vec(prop_oneof![
            text().prop_map(|text| ContentBlock::Text { text }),
            (tool_id(), tool_name(), json_object()).prop_map(|(id, name, input)| ContentBlock::ToolUse { id, name, input }),
        ], 0..4),
        stop_reason in stop_reason(),
        input_tokens in 0u32..10_000,
        output_tokens in 0u32..10_000,
        cache_read in option::of(0u32..1000),
    ) -> MessagesResponse {
        MessagesResponse {
            id: "msg_0123".to_owned(),
            kind: "message".to_owned(),
            role: "assistant".to_owned(),
            content: blocks,
            model: "m".to_owned(),
            stop_reason: Some(stop_reason),
            stop_sequence: None,
            usage: MessageUsage {
                input_tokens,
                output_tokens,
                cache_creation_input_tokens: None,
                cache_read_input_tokens: cache_read,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// Cuts `text` into pieces at the (char-aligned) positions picked from `cuts`.
pub(crate) fn split(text: &str, cuts: &[usize]) -> Vec<String> {
    let boundaries: Vec<usize> = (1..text.len()).filter(|at| text.is_char_boundary(*at)).collect();
    let mut points: Vec<usize> = if boundaries.is_empty() {
        Vec::new()
    } else {
        cuts.iter().map(|cut| boundaries[cut % boundaries.len()]).collect()
    };
    points.sort_unstable();
    points.dedup();
    let mut pieces = Vec::new();
    let mut last = 0;
    for point in points {
        pieces.push(text[last..point].to_owned());
        last = point;
    }
    pieces.push(text[last..].to_owned());
    pieces
}

fn chunk(id: &str, delta: Delta, finish_reason: Option<String>) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: id.to_owned(),
        object: "chat.completion.chunk".to_owned(),
        created: 1,
        model: "m".to_owned(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason,
            logprobs: None,
        }],
        usage: None,
        system_fingerprint: None,
    }
}

/// A completion as the chunks a provider could stream it in, cut at `cuts`.
pub(crate) fn chunks_of(completion: &ChatCompletion, cuts: &[usize]) -> Vec<ChatCompletionChunk> {
    let choice = &completion.choices[0];
    let id = completion.id.as_str();
    let mut chunks = vec![chunk(
        id,
        Delta {
            role: Some("assistant".to_owned()),
            content: Some(String::new()),
            ..Delta::default()
        },
        None,
    )];
    for piece in split(choice.message.content.as_deref().unwrap_or_default(), cuts) {
        chunks.push(chunk(
            id,
            Delta {
                content: Some(piece),
                ..Delta::default()
            },
            None,
        ));
    }
    for (index, call) in choice.message.tool_calls.iter().flatten().enumerate() {
        for (piece_index, piece) in split(&call.function.arguments, cuts).into_iter().enumerate() {
            let first = piece_index == 0;
            let delta = ToolCallDelta {
                index: u32::try_from(index).unwrap(),
                id: first.then(|| call.id.clone()),
                kind: first.then(|| "function".to_owned()),
                function: Some(FunctionCallDelta {
                    name: first.then(|| call.function.name.clone()),
                    arguments: Some(piece),
                }),
            };
            chunks.push(chunk(
                id,
                Delta {
                    tool_calls: Some(vec![delta]),
                    ..Delta::default()
                },
                None,
            ));
        }
    }
    chunks.push(chunk(id, Delta::default(), choice.finish_reason.clone()));
    let mut usage = chunk(id, Delta::default(), None);
    usage.choices.clear();
    usage.usage = Some(completion.usage);
    chunks.push(usage);
    chunks
}

/// Checks the Anthropic event grammar: `message_start`, blocks opened, streamed and closed one at a time with
/// indexes 0, 1, 2…, one `message_delta`, then `message_stop` last. Pings may come anywhere after the start.
pub(super) fn check_well_formed(events: &[StreamEvent]) -> Result<(), String> {
    let mut started = false;
    let mut open: Option<u32> = None;
    let mut next_index = 0u32;
    let mut delta_seen = false;
    let mut stopped = false;
    for (at, event) in events.iter().enumerate() {
        if stopped {
            return Err(format!("event {at} after message_stop: {event:?}"));
        }
        if !started && !matches!(event, StreamEvent::MessageStart { .. }) {
            return Err(format!("event {at} before message_start: {event:?}"));
        }
        match event {
            StreamEvent::MessageStart { .. } if started => return Err(format!("second message_start at {at}")),
            StreamEvent::MessageStart { message } => {
                started = true;
                if !message.content.is_empty() || message.stop_reason.is_some() {
                    return Err("message_start must carry an empty message".to_owned());
                }
            }
            StreamEvent::ContentBlockStart { index, content_block } => {
                if open.is_some() || delta_seen || *index != next_index {
                    return Err(format!("block {index} opened out of order at {at}"));
                }
                let empty = match content_block {
                    ContentBlock::Text { text } => text.is_empty(),
                    ContentBlock::ToolUse { input, .. } => input == &json!({}),
                    ContentBlock::Other => false,
                };
                if !empty {
                    return Err(format!("block {index} must start empty"));
                }
                open = Some(*index);
                next_index += 1;
            }
            StreamEvent::ContentBlockDelta { index, .. } if open != Some(*index) => {
                return Err(format!("delta for block {index} that is not open at {at}"));
            }
            StreamEvent::ContentBlockStop { index } if open != Some(*index) => {
                return Err(format!("stop for block {index} that is not open at {at}"));
            }
            StreamEvent::ContentBlockStop { .. } => open = None,
            StreamEvent::MessageDelta { .. } if open.is_some() || delta_seen => {
                return Err(format!("message_delta with a block open or twice at {at}"));
            }
            StreamEvent::MessageDelta { .. } => delta_seen = true,
            StreamEvent::MessageStop if !delta_seen => return Err("message_stop before message_delta".to_owned()),
            StreamEvent::MessageStop => stopped = true,
            StreamEvent::Error { .. } | StreamEvent::Other => return Err(format!("unexpected {event:?}")),
            StreamEvent::ContentBlockDelta { .. } | StreamEvent::Ping => {}
        }
    }
    if stopped {
        Ok(())
    } else {
        Err("no message_stop".to_owned())
    }
}

/// What a client ends with after applying the events, as the Anthropic SDKs accumulate them.
pub(super) fn accumulate(events: &[StreamEvent]) -> MessagesResponse {
    let mut message: Option<MessagesResponse> = None;
    let mut json: Vec<String> = Vec::new();
    for event in events {
        match event {
            StreamEvent::MessageStart { message: start } => message = Some(start.clone()),
            StreamEvent::ContentBlockStart { content_block, .. } => {
                message.as_mut().unwrap().content.push(content_block.clone());
                json.push(String::new());
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let block = &mut message.as_mut().unwrap().content[*index as usize];
                match (block, delta) {
                    (ContentBlock::Text { text }, BlockDelta::TextDelta { text: piece }) => text.push_str(piece),
                    (ContentBlock::ToolUse { .. }, BlockDelta::InputJsonDelta { partial_json }) => {
                        json[*index as usize].push_str(partial_json);
                    }
                    (block, delta) => panic!("{delta:?} on {block:?}"),
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                if let ContentBlock::ToolUse { input, .. } = &mut message.as_mut().unwrap().content[*index as usize] {
                    *input = input_of(&json[*index as usize]);
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                let message = message.as_mut().unwrap();
                message.stop_reason = delta.stop_reason;
                message.stop_sequence.clone_from(&delta.stop_sequence);
                message.usage.output_tokens = usage.output_tokens;
                if let Some(input) = usage.input_tokens {
                    message.usage.input_tokens = input;
                }
            }
            _ => {}
        }
    }
    message.unwrap()
}

/// An Anthropic answer as the events an upstream could stream it in, cut at `cuts`, with pings sprinkled in.
fn events_of(response: &MessagesResponse, cuts: &[usize], pings: bool) -> Vec<StreamEvent> {
    let mut start = response.clone();
    start.content.clear();
    start.stop_reason = None;
    start.usage.output_tokens = 1;
    let mut events = vec![StreamEvent::MessageStart { message: start }];
    for (index, block) in response.content.iter().enumerate() {
        let index = u32::try_from(index).unwrap();
        if pings {
            events.push(StreamEvent::Ping);
        }
        let (empty, pieces) = match block {
            ContentBlock::Text { text } => (
                ContentBlock::Text { text: String::new() },
                split(text, cuts)
                    .into_iter()
                    .map(|text| BlockDelta::TextDelta { text })
                    .collect::<Vec<_>>(),
            ),
            ContentBlock::ToolUse { id, name, input } => (
                ContentBlock::ToolUse {
                    id: id.clone(),
                    name: name.clone(),
                    input: json!({}),
                },
                split(&serde_json::to_string(input).unwrap(), cuts)
                    .into_iter()
                    .map(|partial_json| BlockDelta::InputJsonDelta { partial_json })
                    .collect(),
            ),
            ContentBlock::Other => continue,
        };
        events.push(StreamEvent::ContentBlockStart {
            index,
            content_block: empty,
        });
        for delta in pieces {
            events.push(StreamEvent::ContentBlockDelta { index, delta });
        }
        events.push(StreamEvent::ContentBlockStop { index });
    }
    events.push(StreamEvent::MessageDelta {
        delta: MessageDelta {
            stop_reason: response.stop_reason,
            stop_sequence: None,
        },
        usage: DeltaUsage {
            output_tokens: response.usage.output_tokens,
            ..DeltaUsage::default()
        },
    });
    events.push(StreamEvent::MessageStop);
    events
}

fn as_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Anthropic → OpenAI → Anthropic gives the request back.
    #[test]
    fn anthropic_requests_survive_the_openai_round_trip(request in anthropic_request()) {
        let openai = inbound::request_to_openai(request.clone()).unwrap();
        crate::chat::validate(&openai, None).unwrap();
        let back = outbound::request_from_openai(openai).unwrap();
        prop_assert_eq!(as_json(&back), as_json(&request));
    }

    /// OpenAI → Anthropic → OpenAI gives the request back.
    #[test]
    fn openai_requests_survive_the_anthropic_round_trip(request in openai_request()) {
        let anthropic = outbound::request_from_openai(request.clone()).unwrap();
        // What an Anthropic client would send is what the server accepts.
        let wire = serde_json::to_string(&anthropic).unwrap();
        let parsed: MessagesRequest = serde_json::from_str(&wire).unwrap();
        let back = inbound::request_to_openai(parsed).unwrap();
        prop_assert_eq!(as_json(&back), as_json(&request));
    }

    /// An Anthropic answer → OpenAI → Anthropic keeps its blocks (one text first, then tool calls), usage and
    /// stop reason (except `stop_sequence`, which becomes `end_turn`).
    #[test]
    fn anthropic_answers_survive_the_openai_round_trip(mut response in anthropic_response()) {
        // The shape an OpenAI completion can express: at most one text block, before the tool calls.
        let text: String = response.content.iter().filter_map(|block| match block {
            ContentBlock::Text { text } => Some(text.as_str()),
            _ => None,
        }).collect();
        response.content.retain(|block| matches!(block, ContentBlock::ToolUse { .. }));
        if !text.is_empty() {
            response.content.insert(0, ContentBlock::Text { text });
        }
        response.usage.cache_read_input_tokens = None;
        let back = inbound::completion_to_response(outbound::response_to_completion(response.clone()));
        let mut expected = response;
        expected.id = back.id.clone();
        if expected.stop_reason == Some(StopReason::StopSequence) {
            expected.stop_reason = Some(StopReason::EndTurn);
        }
        prop_assert_eq!(back, expected);
    }

    /// However a completion is cut into chunks, the events are well-formed and add up to the same message as the
    /// whole completion.
    #[test]
    fn streamed_answers_match_whole_ones(completion in completion(), cuts in vec(0usize..64, 0..6)) {
        let whole = inbound::completion_to_response(completion.clone());
        let mut translator = inbound::EventTranslator::new("m", 7);
        let mut events = Vec::new();
        for chunk in chunks_of(&completion, &cuts) {
            events.extend(translator.push(&chunk).unwrap());
        }
        events.extend(translator.finish());
        check_well_formed(&events).map_err(TestCaseError::fail)?;
        prop_assert_eq!(accumulate(&events), whole);
    }

    /// However an Anthropic upstream cuts its stream, the chunks add up to the same completion as its whole
    /// answer, usage included.
    #[test]
    fn upstream_streams_match_whole_answers(
        response in anthropic_response(),
        cuts in vec(0usize..64, 0..6),
        pings in any::<bool>(),
    ) {
        let events = events_of(&response, &cuts, pings);
        check_well_formed(&events).map_err(TestCaseError::fail)?;
        let mut translator = outbound::ChunkTranslator::new("m");
        let mut builder = CompletionBuilder::default();
        for event in events {
            for chunk in translator.push(event).unwrap() {
                builder.push(&chunk);
            }
        }
        prop_assert!(translator.is_finished());
        let streamed = builder.finish(|_| 0).unwrap();
        let whole = outbound::response_to_completion(response);
        prop_assert_eq!(as_json(&streamed.choices[0].message), as_json(&whole.choices[0].message));
        prop_assert_eq!(&streamed.choices[0].finish_reason, &whole.choices[0].finish_reason);
        prop_assert_eq!(streamed.usage, whole.usage);
    }
}
