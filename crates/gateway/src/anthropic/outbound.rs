//! The gateway → an Anthropic upstream: an OpenAI chat request becomes a Messages request (system messages
//! pulled out, same-role messages merged, tool messages as user `tool_result` blocks), and the Anthropic answer
//! becomes an OpenAI completion (whole) or OpenAI chunks ending with a usage chunk (streamed).

use std::collections::HashMap;

use super::wire::{
    BlockDelta, ContentBlock, ContentBlockParam, ImageSource, InputMessage, MessageUsage, MessagesRequest,
    MessagesResponse, Metadata, Role, StopReason, StreamEvent, TextOrBlocks, Tool, ToolChoice,
};
use super::{arguments_of, finish_reason_for, upstream_error};
use crate::GatewayError;
use crate::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, ChunkChoice,
    ContentPart, Delta, FunctionCall, FunctionCallDelta, MessageContent, ToolCall, ToolCallDelta, Usage,
};

/// `max_tokens` for requests that set none: Anthropic requires one, and every current model can produce this.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// An OpenAI chat request as a Messages request. Parameters Anthropic has no equivalent for are refused by name
/// (rather than silently dropped) when they would change the answer; `seed`, `store`, `metadata` and other
/// bookkeeping fields are dropped.
pub(crate) fn request_from_openai(request: ChatCompletionRequest) -> Result<MessagesRequest, GatewayError> {
    refuse_unsupported(&request)?;
    let max_tokens = match request.max_completion_tokens.or(request.max_tokens) {
        None => DEFAULT_MAX_TOKENS,
        Some(n) => u32::try_from(n).map_err(|_| GatewayError::invalid("max_tokens", "'max_tokens' is out of range"))?,
    };
    let (system, messages) = messages_from_openai(request.messages)?;
    let tools = request.tools.map(|tools| {
        tools
            .into_iter()
            .map(|tool| Tool {
                name: tool.function.name,
                description: tool.function.description,
                // Anthropic requires a schema; a function without parameters takes an empty object.
                input_schema: tool
                    .function
                    .parameters
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
                kind: None,
                cache_control: None,
            })
            .collect()
    });
    Ok(MessagesRequest {
        model: request.model,
        messages,
        max_tokens,
        system,
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request
            .top_k
            .map(|top_k| u32::try_from(top_k).map_err(|_| GatewayError::invalid("top_k", "'top_k' must be at least 1")))
            .transpose()?,
        stop_sequences: request.stop.map(crate::openai::StopSequences::into_vec),
        stream: request.stream,
        tools,
        tool_choice: tool_choice_from_openai(request.tool_choice, request.parallel_tool_calls)?,
        metadata: request.user.map(|user| Metadata { user_id: Some(user) }),
        thinking: None,
        cache_control: None,
        service_tier: None,
    })
}

fn refuse_unsupported(request: &ChatCompletionRequest) -> Result<(), GatewayError> {
    let unsupported = |param: &str, reason: &str| GatewayError::UnsupportedParameter {
        param: param.to_owned(),
        model: request.model.clone(),
        reason: reason.to_owned(),
    };
    if request.n.is_some_and(|n| n > 1) {
        return Err(unsupported("n", "Anthropic models give one choice per request"));
    }
    if request.logprobs == Some(true) || request.top_logprobs.is_some() {
        return Err(unsupported(
            "logprobs",
            "Anthropic models do not return log probabilities",
        ));
    }
    if request
        .logit_bias
        .as_ref()
        .is_some_and(|bias| bias.as_object().is_none_or(|map| !map.is_empty()))
    {
        return Err(unsupported("logit_bias", "Anthropic models take no logit bias"));
    }
    for (param, value) in [
        ("frequency_penalty", request.frequency_penalty),
        ("presence_penalty", request.presence_penalty),
        (
            "repetition_penalty",
            request.repetition_penalty.map(|penalty| penalty - 1.0),
        ),
    ] {
        if value.is_some_and(|v| v != 0.0) {
            return Err(unsupported(param, "Anthropic models take no penalties"));
        }
    }
    if request.min_p.is_some_and(|min_p| min_p > 0.0) {
        return Err(unsupported("min_p", "Anthropic models take top_p and top_k, not min_p"));
    }
    if request.temperature.is_some_and(|t| t > 1.0) {
        return Err(unsupported(
            "temperature",
            "Anthropic models take a temperature between 0 and 1",
        ));
    }
    if let Some(format) = &request.response_format
        && format.get("type").and_then(|t| t.as_str()) != Some("text")
    {
        return Err(unsupported(
            "response_format",
            "JSON response formats are not translated to Anthropic; describe the format in the prompt",
        ));
    }
    let named = [
        (
            "functions",
            request.functions.is_some() || request.function_call.is_some(),
        ),
        ("audio", request.audio.is_some()),
        ("prediction", request.prediction.is_some()),
        ("web_search_options", request.web_search_options.is_some()),
        ("reasoning_effort", request.reasoning_effort.is_some()),
    ];
    if let Some((param, _)) = named.into_iter().find(|(_, present)| *present) {
        return Err(unsupported(
            param,
            "this parameter has no Anthropic equivalent in the gateway",
        ));
    }
    Ok(())
}

fn tool_choice_from_openai(
    choice: Option<serde_json::Value>,
    parallel_tool_calls: Option<bool>,
) -> Result<Option<ToolChoice>, GatewayError> {
    let disable_parallel_tool_use = parallel_tool_calls.map(|parallel| !parallel);
    let Some(choice) = choice else {
        // Anthropic carries the parallel switch on the tool choice; `auto` is the default choice.
        return Ok(disable_parallel_tool_use.map(|disable| ToolChoice::Auto {
            disable_parallel_tool_use: Some(disable),
        }));
    };
    let named = choice
        .get("function")
        .and_then(|function| function.get("name"))
        .and_then(|name| name.as_str());
    match (choice.as_str(), named) {
        (Some("auto"), _) => Ok(Some(ToolChoice::Auto {
            disable_parallel_tool_use,
        })),
        (Some("required"), _) => Ok(Some(ToolChoice::Any {
            disable_parallel_tool_use,
        })),
        (Some("none"), _) => Ok(Some(ToolChoice::None)),
        (None, Some(name)) => Ok(Some(ToolChoice::Tool {
            name: name.to_owned(),
            disable_parallel_tool_use,
        })),
        _ => Err(GatewayError::invalid(
            "tool_choice",
            "expected 'auto', 'required', 'none' or {\"type\": \"function\", \"function\": {\"name\": ...}}",
        )),
    }
}

/// The system prompt (every system and developer message, wherever it stands) and the other messages, with
/// consecutive messages of the same Anthropic role merged (tool results are user messages to Anthropic).
fn messages_from_openai(messages: Vec<ChatMessage>) -> Result<(Option<TextOrBlocks>, Vec<InputMessage>), GatewayError> {
    let mut system = Vec::new();
    let mut out: Vec<InputMessage> = Vec::with_capacity(messages.len());
    for (index, message) in messages.into_iter().enumerate() {
        let param = format!("messages[{index}]");
        match message.role.as_str() {
            "system" | "developer" => system.push(message),
            "user" => {
                let content = user_content(&param, message.content)?;
                push_merged(&mut out, Role::User, content);
            }
            "assistant" => {
                let content = assistant_content(&param, message)?;
                push_merged(&mut out, Role::Assistant, content);
            }
            "tool" => {
                let content = match message.content {
                    None => TextOrBlocks::Text(String::new()),
                    Some(MessageContent::Text(text)) => TextOrBlocks::Text(text),
                    Some(MessageContent::Parts(parts)) => TextOrBlocks::Blocks(
                        parts
                            .into_iter()
                            .map(|part| match (part.kind.as_str(), part.text) {
                                ("text", Some(text)) => Ok(ContentBlockParam::text(text)),
                                (kind, _) => Err(GatewayError::invalid(
                                    &format!("{param}.content"),
                                    format!("a tool message takes text parts, not '{kind}'"),
                                )),
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                };
                let block = ContentBlockParam::ToolResult {
                    tool_use_id: message.tool_call_id.unwrap_or_default(),
                    content: Some(content),
                    is_error: None,
                    cache_control: None,
                };
                push_merged(&mut out, Role::User, TextOrBlocks::Blocks(vec![block]));
            }
            other => {
                return Err(GatewayError::invalid(
                    &format!("{param}.role"),
                    format!("role '{other}' cannot be sent to an Anthropic model"),
                ));
            }
        }
    }
    Ok((system_prompt(system)?, out))
}

fn system_prompt(mut messages: Vec<ChatMessage>) -> Result<Option<TextOrBlocks>, GatewayError> {
    if messages.len() > 1 {
        let joined: Vec<String> = messages.iter().map(ChatMessage::text_content).collect();
        return Ok(Some(TextOrBlocks::Text(joined.join("\n\n"))));
    }
    let Some(message) = messages.pop() else {
        return Ok(None);
    };
    Ok(Some(match message.content {
        None => TextOrBlocks::Text(String::new()),
        Some(MessageContent::Text(text)) => TextOrBlocks::Text(text),
        Some(MessageContent::Parts(parts)) => TextOrBlocks::Blocks(
            parts
                .into_iter()
                .map(|part| match (part.kind.as_str(), part.text) {
                    ("text", Some(text)) => Ok(ContentBlockParam::text(text)),
                    (kind, _) => Err(GatewayError::invalid(
                        "messages",
                        format!("a system message takes text parts, not '{kind}'"),
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
    }))
}

/// Appends a message, merging it into the previous one when both have the same role: Anthropic wants turns to
/// alternate. Empty text is dropped when merging (Anthropic refuses empty text blocks).
fn push_merged(out: &mut Vec<InputMessage>, role: Role, content: TextOrBlocks) {
    fn blocks(content: TextOrBlocks) -> Vec<ContentBlockParam> {
        match content {
            TextOrBlocks::Text(text) if text.is_empty() => Vec::new(),
            TextOrBlocks::Text(text) => vec![ContentBlockParam::text(text)],
            TextOrBlocks::Blocks(blocks) => blocks,
        }
    }
    match out.last_mut() {
        Some(last) if last.role == role => {
            let previous = std::mem::replace(&mut last.content, TextOrBlocks::Blocks(Vec::new()));
            let mut merged = blocks(previous);
            merged.extend(blocks(content));
            last.content = TextOrBlocks::Blocks(merged);
        }
        _ => out.push(InputMessage { role, content }),
    }
}

fn user_content(param: &str, content: Option<MessageContent>) -> Result<TextOrBlocks, GatewayError> {
    match content {
        None => Ok(TextOrBlocks::Text(String::new())),
        Some(MessageContent::Text(text)) => Ok(TextOrBlocks::Text(text)),
        Some(MessageContent::Parts(parts)) => parts
            .into_iter()
            .map(|part| part_to_block(param, part))
            .collect::<Result<_, _>>()
            .map(TextOrBlocks::Blocks),
    }
}

fn part_to_block(param: &str, part: ContentPart) -> Result<ContentBlockParam, GatewayError> {
    match part.kind.as_str() {
        "text" => Ok(ContentBlockParam::text(part.text.unwrap_or_default())),
        "image_url" => {
            let url = part
                .other
                .get("image_url")
                .and_then(|image| image.get("url"))
                .and_then(|url| url.as_str())
                .ok_or_else(|| GatewayError::invalid(param, "an 'image_url' part needs 'image_url.url'"))?;
            let source = match url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
                Some((media_type, data)) => ImageSource::Base64 {
                    media_type: media_type.to_owned(),
                    data: data.to_owned(),
                },
                None if url.starts_with("http://") || url.starts_with("https://") => {
                    ImageSource::Url { url: url.to_owned() }
                }
                None => {
                    return Err(GatewayError::invalid(
                        param,
                        "an image must be an http(s) URL or a base64 data URL",
                    ));
                }
            };
            Ok(ContentBlockParam::Image {
                source,
                cache_control: None,
            })
        }
        kind => Err(GatewayError::invalid(
            param,
            format!("'{kind}' content parts cannot be sent to an Anthropic model"),
        )),
    }
}

fn assistant_content(param: &str, message: ChatMessage) -> Result<TextOrBlocks, GatewayError> {
    let text = message.text_content();
    let Some(calls) = message.tool_calls.filter(|calls| !calls.is_empty()) else {
        return Ok(TextOrBlocks::Text(text));
    };
    let mut blocks = Vec::with_capacity(calls.len() + 1);
    if !text.is_empty() {
        blocks.push(ContentBlockParam::text(text));
    }
    for (index, call) in calls.into_iter().enumerate() {
        let arguments = call.function.arguments.trim();
        let input = if arguments.is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str::<serde_json::Value>(arguments)
                .ok()
                .filter(serde_json::Value::is_object)
                .ok_or_else(|| {
                    GatewayError::invalid(
                        &format!("{param}.tool_calls[{index}].function.arguments"),
                        "tool call arguments must be a JSON object for an Anthropic model",
                    )
                })?
        };
        blocks.push(ContentBlockParam::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
            cache_control: None,
        });
    }
    Ok(TextOrBlocks::Blocks(blocks))
}

/// The text and tool calls of Anthropic blocks, in OpenAI's shape (text joined; no text with tool calls is
/// `None`, as OpenAI sends it).
fn text_and_calls(content: Vec<ContentBlock>) -> (Option<String>, Option<Vec<ToolCall>>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in content {
        match block {
            ContentBlock::Text { text: piece } => text.push_str(&piece),
            ContentBlock::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: arguments_of(&input),
                },
            }),
            ContentBlock::Other => {}
        }
    }
    let text = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(text)
    };
    (text, (!calls.is_empty()).then_some(calls))
}

fn openai_usage(usage: &MessageUsage) -> Usage {
    Usage::new(usage.prompt_tokens(), usage.output_tokens)
}

/// A whole Anthropic answer as an OpenAI completion.
pub(crate) fn response_to_completion(response: MessagesResponse) -> ChatCompletion {
    let usage = openai_usage(&response.usage);
    let (content, tool_calls) = text_and_calls(response.content);
    ChatCompletion {
        id: response.id,
        object: "chat.completion".to_owned(),
        created: crate::unix_seconds(),
        model: response.model,
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".to_owned(),
                content,
                refusal: None,
                tool_calls,
            },
            finish_reason: finish_reason_for(response.stop_reason),
            logprobs: None,
        }],
        usage: Some(usage),
        system_fingerprint: None,
    }
}

/// Turns Anthropic stream events into OpenAI chunks: a role chunk at `message_start`, text and tool call deltas
/// (each `tool_use` block becomes the next tool call index), a finish chunk at `message_delta`, and a usage chunk
/// at `message_stop`. An `error` event is the upstream's error.
pub(crate) struct ChunkTranslator {
    id: String,
    model: String,
    created: i64,
    /// Block index → OpenAI tool call index, for the blocks that are tool calls.
    tool_calls: HashMap<u32, u32>,
    usage: MessageUsage,
    finished: bool,
}

impl ChunkTranslator {
    /// A translator for an answer of `model` (the name the upstream knows it by).
    pub(crate) fn new(model: &str) -> ChunkTranslator {
        ChunkTranslator {
            id: String::new(),
            model: model.to_owned(),
            created: crate::unix_seconds(),
            tool_calls: HashMap::new(),
            usage: MessageUsage::default(),
            finished: false,
        }
    }

    /// Whether `message_stop` has arrived: the answer is complete.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The chunks one event brings (often none).
    pub(crate) fn push(&mut self, event: StreamEvent) -> Result<Vec<ChatCompletionChunk>, GatewayError> {
        let chunk = match event {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.usage = message.usage;
                self.chunk(
                    Delta {
                        role: Some("assistant".to_owned()),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                )
            }
            StreamEvent::ContentBlockStart { index, content_block } => match content_block {
                ContentBlock::Text { text } if !text.is_empty() => self.text(text),
                ContentBlock::ToolUse { id, name, input } => {
                    let call = u32::try_from(self.tool_calls.len()).unwrap_or(u32::MAX);
                    self.tool_calls.insert(index, call);
                    // Streams start tool blocks with an empty input and send it in deltas.
                    let arguments = match &input {
                        serde_json::Value::Object(map) if map.is_empty() => String::new(),
                        input => arguments_of(input),
                    };
                    self.tool_delta(call, Some(id), Some(name), arguments)
                }
                _ => return Ok(Vec::new()),
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => self.text(text),
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    match self.tool_calls.get(&index) {
                        Some(&call) => self.tool_delta(call, None, None, partial_json),
                        None => return Ok(Vec::new()),
                    }
                }
                _ => return Ok(Vec::new()),
            },
            StreamEvent::MessageDelta { delta, usage } => {
                // Usage on `message_delta` is a running total; absent fields keep `message_start`'s values.
                self.usage.output_tokens = usage.output_tokens;
                if let Some(input) = usage.input_tokens {
                    self.usage.input_tokens = input;
                }
                if let Some(tokens) = usage.cache_creation_input_tokens {
                    self.usage.cache_creation_input_tokens = Some(tokens);
                }
                if let Some(tokens) = usage.cache_read_input_tokens {
                    self.usage.cache_read_input_tokens = Some(tokens);
                }
                self.chunk(
                    Delta::default(),
                    finish_reason_for(delta.stop_reason.or(Some(StopReason::EndTurn))),
                )
            }
            StreamEvent::MessageStop => {
                self.finished = true;
                let mut chunk = self.chunk(Delta::default(), None);
                chunk.choices.clear();
                chunk.usage = Some(Some(openai_usage(&self.usage)));
                chunk
            }
            StreamEvent::Error { error } => return Err(upstream_error(&error)),
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping | StreamEvent::Other => return Ok(Vec::new()),
        };
        Ok(vec![chunk])
    }

    fn text(&self, text: String) -> ChatCompletionChunk {
        self.chunk(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )
    }

    fn tool_delta(
        &self,
        call: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    ) -> ChatCompletionChunk {
        let kind = id.as_ref().map(|_| "function".to_owned());
        self.chunk(
            Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index: call,
                    id,
                    kind,
                    function: Some(FunctionCallDelta {
                        name,
                        arguments: Some(arguments),
                    }),
                }]),
                ..Delta::default()
            },
            None,
        )
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<String>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::super::wire::{DeltaUsage, ErrorDetail, MessageDelta};
    use super::*;

    fn anthropic(body: serde_json::Value) -> Result<serde_json::Value, GatewayError> {
        let request: ChatCompletionRequest = serde_json::from_value(body).unwrap();
        request_from_openai(request).map(|request| serde_json::to_value(request).unwrap())
    }

    #[test]
    fn pulls_out_system_messages_merges_roles_and_turns_tool_messages_into_results() {
        let body = anthropic(json!({"model": "claude", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather?"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "developer", "content": "Use metric units."},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}},
                {"id": "t2", "type": "function", "function": {"name": "time", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "12 C"},
            {"role": "tool", "tool_call_id": "t2", "content": "noon"},
        ], "parallel_tool_calls": false, "user": "u", "stop": "END"}))
        .unwrap();
        assert_eq!(body["system"], "Be brief.\n\nUse metric units.");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["metadata"], json!({"user_id": "u"}));
        assert_eq!(body["stop_sequences"], json!(["END"]));
        assert_eq!(
            body["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "t2", "name": "time", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "12 C"},
                    {"type": "tool_result", "tool_use_id": "t2", "content": "noon"}]},
            ])
        );
    }

    #[test]
    fn refuses_what_anthropic_cannot_do() {
        let base = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
        for (field, value, param) in [
            ("n", json!(2), "n"),
            ("logprobs", json!(true), "logprobs"),
            ("frequency_penalty", json!(0.5), "frequency_penalty"),
            ("temperature", json!(1.5), "temperature"),
            ("response_format", json!({"type": "json_object"}), "response_format"),
            ("tool_choice", json!({"type": "function"}), "tool_choice"),
        ] {
            let mut body = base.clone();
            body[field] = value;
            let error = anthropic(body).unwrap_err();
            assert_eq!(error.status(), 400, "{field}");
            assert_eq!(error.body().error.param.as_deref(), Some(param), "{error}");
        }
        let bad_arguments = json!({"model": "claude", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]});
        let error = anthropic(bad_arguments).unwrap_err();
        assert_eq!(
            error.body().error.param.as_deref(),
            Some("messages[0].tool_calls[0].function.arguments")
        );
        // Bookkeeping fields are dropped, not refused.
        let mut quiet = base;
        quiet["seed"] = json!(1);
        quiet["store"] = json!(false);
        assert!(anthropic(quiet).is_ok());
    }

    #[test]
    fn answers_and_events_become_openai() {
        let response: MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Sure."}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 4, "output_tokens": 2, "cache_read_input_tokens": 10}
        }))
        .unwrap();
        let completion = response_to_completion(response);
        let choice = &completion.choices[0];
        assert_eq!(choice.message.content.as_deref(), Some("Sure."));
        assert_eq!(
            choice.message.tool_calls.as_ref().unwrap()[0].function.arguments,
            "{\"a\":1}"
        );
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(completion.usage, Some(Usage::new(14, 2)));

        let mut translator = ChunkTranslator::new("claude");
        let delta = StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(StopReason::MaxTokens),
                stop_sequence: None,
            },
            usage: DeltaUsage {
                output_tokens: 9,
                input_tokens: Some(3),
                ..DeltaUsage::default()
            },
        };
        let chunks = translator.push(delta).unwrap();
        assert_eq!(chunks[0].choices[0].finish_reason.as_deref(), Some("length"));
        let usage = translator.push(StreamEvent::MessageStop).unwrap();
        assert_eq!(usage[0].usage, Some(Some(Usage::new(3, 9))));
        assert!(translator.is_finished());

        let overloaded = StreamEvent::Error {
            error: ErrorDetail {
                kind: "overloaded_error".to_owned(),
                message: "Overloaded".to_owned(),
            },
        };
        let error = ChunkTranslator::new("claude").push(overloaded).unwrap_err();
        assert!(
            error.is_retryable(),
            "an overloaded upstream lets the next deployment try"
        );
        assert_eq!(error.status(), 502);
        assert_eq!(super::super::error_type(&error), "overloaded_error");
    }
}
