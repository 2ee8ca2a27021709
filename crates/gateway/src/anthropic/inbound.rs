//! Anthropic clients → the gateway: a Messages request becomes an OpenAI chat request, and the OpenAI answer
//! becomes an Anthropic message (whole) or the exact Anthropic event sequence (streamed).

use std::collections::HashSet;

use super::wire::{
    BlockDelta, ContentBlock, ContentBlockParam, DeltaUsage, ImageSource, InputMessage, MessageDelta, MessagesRequest,
    MessagesResponse, Role, StreamEvent, TextOrBlocks, Tool, ToolChoice,
};
use super::{input_of, stop_reason_for, usage_of};
use crate::GatewayError;
use crate::openai::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, ContentPart,
    FunctionCall, FunctionDefinition, MessageContent, StopSequences, StreamOptions, ToolCall, ToolCallDelta,
    ToolDefinition, Usage,
};
use crate::provider::estimate_tokens;

/// What a tool result flagged `is_error` starts with once it is an OpenAI tool message, which has no flag: the
/// model still learns that the tool failed.
pub(crate) const TOOL_ERROR_PREFIX: &str = "Error: ";

/// A Messages request as an OpenAI chat request (`top_k` under the name vLLM and llama.cpp take). Refuses what
/// has no OpenAI equivalent (extended thinking, server tools, images inside tool results) with an error naming
/// the field.
pub(crate) fn request_to_openai(request: MessagesRequest) -> Result<ChatCompletionRequest, GatewayError> {
    let MessagesRequest {
        model,
        messages,
        max_tokens,
        system,
        temperature,
        top_p,
        top_k,
        stop_sequences,
        stream,
        tools,
        tool_choice,
        metadata,
        thinking,
        cache_control: _,
        service_tier: _,
    } = request;
    let thinking_type = thinking
        .as_ref()
        .map(|thinking| thinking.get("type").and_then(|kind| kind.as_str()).unwrap_or_default());
    if thinking_type.is_some_and(|kind| kind != "disabled") {
        return Err(GatewayError::UnsupportedParameter {
            param: "thinking".to_owned(),
            model,
            reason: "extended thinking is not available through this gateway; remove 'thinking'".to_owned(),
        });
    }
    if temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(GatewayError::invalid(
            "temperature",
            "'temperature' must be between 0 and 1",
        ));
    }
    let (tool_choice, parallel_tool_calls) = match tool_choice {
        None => (None, None),
        Some(choice) => {
            let (value, disable) = tool_choice_to_openai(choice);
            (Some(value), disable.map(|disable| !disable))
        }
    };
    let tools = match tools {
        None => None,
        Some(tools) => Some(
            tools
                .into_iter()
                .enumerate()
                .map(|(index, tool)| tool_to_openai(index, tool))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(ChatCompletionRequest {
        messages: conversation_to_openai(system, messages)?,
        stream,
        // The usage chunk becomes the usage of `message_delta`.
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
            include_obfuscation: None,
        }),
        max_tokens: Some(i64::from(max_tokens)),
        temperature,
        top_p,
        top_k: top_k.map(i64::from),
        stop: stop_sequences.map(StopSequences::Many),
        user: metadata.and_then(|metadata| metadata.user_id),
        tools,
        tool_choice,
        parallel_tool_calls,
        model,
        ..ChatCompletionRequest::default()
    })
}

/// Anthropic's tool choice as OpenAI's, with `disable_parallel_tool_use` beside it.
fn tool_choice_to_openai(choice: ToolChoice) -> (serde_json::Value, Option<bool>) {
    match choice {
        ToolChoice::Auto {
            disable_parallel_tool_use,
        } => (serde_json::json!("auto"), disable_parallel_tool_use),
        ToolChoice::Any {
            disable_parallel_tool_use,
        } => (serde_json::json!("required"), disable_parallel_tool_use),
        ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        } => (
            serde_json::json!({"type": "function", "function": {"name": name}}),
            disable_parallel_tool_use,
        ),
        ToolChoice::None => (serde_json::json!("none"), None),
    }
}

fn tool_to_openai(index: usize, tool: Tool) -> Result<ToolDefinition, GatewayError> {
    if let Some(kind) = tool.kind.as_deref().filter(|kind| *kind != "custom") {
        return Err(GatewayError::invalid(
            &format!("tools[{index}].type"),
            format!("tool type '{kind}' is a server tool, which this gateway does not run; only client tools"),
        ));
    }
    Ok(ToolDefinition {
        kind: "function".to_owned(),
        function: FunctionDefinition {
            name: tool.name,
            description: tool.description,
            parameters: Some(tool.input_schema),
            strict: None,
        },
    })
}

/// The system prompt and messages as OpenAI messages: the system prompt first, each tool result its own `tool`
/// message (in place), user text and images one user message per run of them.
fn conversation_to_openai(
    system: Option<TextOrBlocks>,
    messages: Vec<InputMessage>,
) -> Result<Vec<ChatMessage>, GatewayError> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    match system {
        None => {}
        Some(TextOrBlocks::Text(text)) => out.push(ChatMessage::text("system", text)),
        Some(TextOrBlocks::Blocks(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (index, block) in blocks.into_iter().enumerate() {
                match block {
                    ContentBlockParam::Text { text, .. } => parts.push(ContentPart::text(text)),
                    other => {
                        return Err(GatewayError::invalid(
                            &format!("system[{index}]"),
                            format!("the system prompt takes text blocks, not '{}'", other.kind()),
                        ));
                    }
                }
            }
            out.push(with_content("system", MessageContent::Parts(parts)));
        }
    }
    for (index, message) in messages.into_iter().enumerate() {
        match message.role {
            Role::User => user_to_openai(index, message.content, &mut out)?,
            Role::Assistant => out.push(assistant_to_openai(index, message.content)?),
        }
    }
    Ok(out)
}

fn with_content(role: &str, content: MessageContent) -> ChatMessage {
    ChatMessage {
        content: Some(content),
        ..ChatMessage::text(role, "")
    }
}

fn user_to_openai(index: usize, content: TextOrBlocks, out: &mut Vec<ChatMessage>) -> Result<(), GatewayError> {
    let blocks = match content {
        TextOrBlocks::Text(text) => {
            out.push(ChatMessage::text("user", text));
            return Ok(());
        }
        TextOrBlocks::Blocks(blocks) => blocks,
    };
    let mut parts: Vec<ContentPart> = Vec::new();
    let flush = |parts: &mut Vec<ContentPart>, out: &mut Vec<ChatMessage>| {
        if !parts.is_empty() {
            out.push(with_content("user", MessageContent::Parts(std::mem::take(parts))));
        }
    };
    let empty = blocks.is_empty();
    for (block_index, block) in blocks.into_iter().enumerate() {
        let param = format!("messages[{index}].content[{block_index}]");
        match block {
            ContentBlockParam::Text { text, .. } => parts.push(ContentPart::text(text)),
            ContentBlockParam::Image { source, .. } => parts.push(image_part(source)),
            ContentBlockParam::ToolResult {
                tool_use_id,
                content,
                is_error,
                ..
            } => {
                flush(&mut parts, out);
                out.push(ChatMessage {
                    tool_call_id: Some(tool_use_id),
                    ..with_content("tool", tool_result_content(&param, content, is_error == Some(true))?)
                });
            }
            ContentBlockParam::ToolUse { .. } => {
                return Err(GatewayError::invalid(
                    &param,
                    "'tool_use' blocks belong in assistant messages",
                ));
            }
        }
    }
    flush(&mut parts, out);
    if empty {
        // Kept, so that the model sees the message the client sent rather than a conversation with a gap.
        out.push(with_content("user", MessageContent::Parts(Vec::new())));
    }
    Ok(())
}

fn image_part(source: ImageSource) -> ContentPart {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url,
    };
    let mut other = serde_json::Map::new();
    other.insert("image_url".to_owned(), serde_json::json!({ "url": url }));
    ContentPart {
        kind: "image_url".to_owned(),
        text: None,
        other,
    }
}

fn tool_result_content(
    param: &str,
    content: Option<TextOrBlocks>,
    is_error: bool,
) -> Result<MessageContent, GatewayError> {
    let content = match content {
        None => MessageContent::Text(String::new()),
        Some(TextOrBlocks::Text(text)) => MessageContent::Text(text),
        Some(TextOrBlocks::Blocks(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for block in blocks {
                match block {
                    ContentBlockParam::Text { text, .. } => parts.push(ContentPart::text(text)),
                    other => {
                        return Err(GatewayError::invalid(
                            &format!("{param}.content"),
                            format!(
                                "tool results here take text, not '{}' blocks (OpenAI tool messages are text)",
                                other.kind()
                            ),
                        ));
                    }
                }
            }
            MessageContent::Parts(parts)
        }
    };
    if !is_error {
        return Ok(content);
    }
    let text = match content {
        MessageContent::Text(text) => text,
        MessageContent::Parts(parts) => parts.into_iter().filter_map(|part| part.text).collect(),
    };
    Ok(MessageContent::Text(format!("{TOOL_ERROR_PREFIX}{text}")))
}

fn assistant_to_openai(index: usize, content: TextOrBlocks) -> Result<ChatMessage, GatewayError> {
    let blocks = match content {
        TextOrBlocks::Text(text) => return Ok(ChatMessage::text("assistant", text)),
        TextOrBlocks::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (block_index, block) in blocks.into_iter().enumerate() {
        match block {
            ContentBlockParam::Text { text: piece, .. } => text.push_str(&piece),
            ContentBlockParam::ToolUse { id, name, input, .. } => calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: super::arguments_of(&input),
                },
            }),
            other => {
                return Err(GatewayError::invalid(
                    &format!("messages[{index}].content[{block_index}]"),
                    format!(
                        "assistant messages take text and tool_use blocks, not '{}'",
                        other.kind()
                    ),
                ));
            }
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(MessageContent::Text(text))
    };
    Ok(ChatMessage {
        content,
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..ChatMessage::text("assistant", "")
    })
}

/// The Anthropic message id of a gateway request id (`chatcmpl-<uuid>` → `msg_<uuid>`), so a message can be
/// found in the ledger.
pub(crate) fn message_id(request_id: &str) -> String {
    let id = request_id.strip_prefix("chatcmpl-").unwrap_or(request_id);
    if id.is_empty() {
        format!("msg_{}", uuid::Uuid::new_v4().simple())
    } else {
        format!("msg_{id}")
    }
}

/// A tool call's id, or a fresh one for upstreams that send none: clients need it to answer the call.
fn tool_use_id(id: Option<&str>) -> String {
    match id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("toolu_{}", uuid::Uuid::new_v4().simple()),
    }
}

/// A whole OpenAI completion as an Anthropic message: text first (one block, when there is any), then one
/// `tool_use` block per tool call.
pub(crate) fn completion_to_response(completion: ChatCompletion) -> MessagesResponse {
    let usage = completion.usage.unwrap_or_default();
    let (content, finish_reason) = match completion.choices.into_iter().next() {
        Some(choice) => (blocks_of(choice.message), choice.finish_reason),
        None => (Vec::new(), None),
    };
    MessagesResponse {
        id: message_id(&completion.id),
        kind: "message".to_owned(),
        role: "assistant".to_owned(),
        content,
        model: completion.model,
        stop_reason: Some(stop_reason_for(finish_reason.as_deref())),
        stop_sequence: None,
        usage: usage_of(usage),
    }
}

fn blocks_of(message: AssistantMessage) -> Vec<ContentBlock> {
    let mut blocks = Vec::new();
    let text = message.content.unwrap_or_default() + message.refusal.as_deref().unwrap_or_default();
    if !text.is_empty() {
        blocks.push(ContentBlock::Text { text });
    }
    for call in message.tool_calls.into_iter().flatten() {
        blocks.push(ContentBlock::ToolUse {
            id: tool_use_id(Some(&call.id)),
            name: call.function.name,
            input: input_of(&call.function.arguments),
        });
    }
    blocks
}

/// The block being streamed.
#[derive(Debug, Clone, Copy)]
enum OpenBlock {
    Text { index: u32 },
    Tool { index: u32, call: u32 },
}

/// Turns OpenAI chunks into Anthropic events: `message_start`, then each block opened, streamed and closed in
/// turn (text and tool calls may interleave: each switch closes one block and opens the next), then one
/// `message_delta` with the stop reason and usage, and `message_stop`. Push every chunk, then call
/// [`EventTranslator::finish`] once when the chunks end.
pub(crate) struct EventTranslator {
    model: String,
    input_tokens_estimate: u32,
    started: bool,
    next_index: u32,
    open: Option<OpenBlock>,
    /// OpenAI tool call indexes that have had a block, so a call cannot be reopened after it was closed.
    tool_calls_seen: HashSet<u32>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    /// Text and arguments generated, for estimating output tokens when no usage arrives.
    generated: String,
}

impl EventTranslator {
    /// A translator for an answer of `model`; `input_tokens_estimate` is `message_start`'s input count (the
    /// real count arrives with `message_delta`).
    pub(crate) fn new(model: impl Into<String>, input_tokens_estimate: u32) -> EventTranslator {
        EventTranslator {
            model: model.into(),
            input_tokens_estimate,
            started: false,
            next_index: 0,
            open: None,
            tool_calls_seen: HashSet::new(),
            finish_reason: None,
            usage: None,
            generated: String::new(),
        }
    }

    /// The events one chunk brings. Only the first choice is translated (Anthropic has no `n`). A tool call
    /// that continues after another block has begun cannot be expressed in Anthropic's sequential blocks and
    /// fails the stream as a malformed upstream answer.
    pub(crate) fn push(&mut self, chunk: &ChatCompletionChunk) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut events = Vec::new();
        self.start(&chunk.id, &mut events);
        if let Some(Some(usage)) = chunk.usage {
            self.usage = Some(usage);
        }
        for choice in chunk.choices.iter().filter(|choice| choice.index == 0) {
            for text in [&choice.delta.content, &choice.delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    self.text(text, &mut events);
                }
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                self.tool_call(call, &mut events)?;
            }
            if choice.finish_reason.is_some() {
                self.finish_reason.clone_from(&choice.finish_reason);
            }
        }
        Ok(events)
    }

    /// The closing events: the open block's stop, `message_delta` and `message_stop`.
    pub(crate) fn finish(&mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.start("", &mut events);
        self.close(&mut events);
        let usage = self.usage.unwrap_or_else(|| {
            let output = if self.generated.is_empty() {
                0
            } else {
                estimate_tokens(&self.generated)
            };
            Usage::new(self.input_tokens_estimate, output)
        });
        events.push(StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop_reason_for(self.finish_reason.as_deref())),
                stop_sequence: None,
            },
            usage: DeltaUsage {
                output_tokens: usage.completion_tokens,
                input_tokens: Some(usage.prompt_tokens),
                cache_creation_input_tokens: None,
                cache_read_input_tokens: None,
            },
        });
        events.push(StreamEvent::MessageStop);
        events
    }

    fn start(&mut self, request_id: &str, events: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        events.push(StreamEvent::MessageStart {
            message: MessagesResponse {
                id: message_id(request_id),
                kind: "message".to_owned(),
                role: "assistant".to_owned(),
                content: Vec::new(),
                model: self.model.clone(),
                stop_reason: None,
                stop_sequence: None,
                usage: usage_of(Usage::new(self.input_tokens_estimate, 0)),
            },
        });
        // Anthropic sends a ping right after the start; clients skip it.
        events.push(StreamEvent::Ping);
    }

    fn open_block(&mut self, content_block: ContentBlock, events: &mut Vec<StreamEvent>) -> u32 {
        self.close(events);
        let index = self.next_index;
        self.next_index += 1;
        events.push(StreamEvent::ContentBlockStart { index, content_block });
        index
    }

    fn close(&mut self, events: &mut Vec<StreamEvent>) {
        if let Some(OpenBlock::Text { index } | OpenBlock::Tool { index, .. }) = self.open.take() {
            events.push(StreamEvent::ContentBlockStop { index });
        }
    }

    fn text(&mut self, text: &str, events: &mut Vec<StreamEvent>) {
        self.generated.push_str(text);
        let index = match self.open {
            Some(OpenBlock::Text { index }) => index,
            _ => {
                let index = self.open_block(ContentBlock::Text { text: String::new() }, events);
                self.open = Some(OpenBlock::Text { index });
                index
            }
        };
        events.push(StreamEvent::ContentBlockDelta {
            index,
            delta: BlockDelta::TextDelta { text: text.to_owned() },
        });
    }

    fn tool_call(&mut self, call: &ToolCallDelta, events: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        let function = call.function.as_ref();
        let index = match self.open {
            Some(OpenBlock::Tool { index, call: open }) if open == call.index => index,
            _ => {
                if !self.tool_calls_seen.insert(call.index) {
                    return Err(GatewayError::upstream_malformed(format!(
                        "tool call {} continued after another content block began",
                        call.index
                    )));
                }
                let name = function.and_then(|f| f.name.clone()).unwrap_or_default();
                self.generated.push_str(&name);
                let block = ContentBlock::ToolUse {
                    id: tool_use_id(call.id.as_deref()),
                    name,
                    input: serde_json::Value::Object(serde_json::Map::new()),
                };
                let index = self.open_block(block, events);
                self.open = Some(OpenBlock::Tool {
                    index,
                    call: call.index,
                });
                index
            }
        };
        if let Some(arguments) = function.and_then(|f| f.arguments.as_deref()).filter(|a| !a.is_empty()) {
            self.generated.push_str(arguments);
            events.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::InputJsonDelta {
                    partial_json: arguments.to_owned(),
                },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use serde_json::json;

    use super::super::tests::{accumulate, check_well_formed};
    use super::super::wire::StopReason;
    use super::*;
    use crate::openai::{ChunkChoice, Delta, FunctionCallDelta};

    fn request(body: serde_json::Value) -> Result<ChatCompletionRequest, GatewayError> {
        let mut full = json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
        for (key, value) in body.as_object().unwrap() {
            full[key] = value.clone();
        }
        request_to_openai(serde_json::from_value(full).unwrap())
    }

    #[test]
    fn maps_system_tools_and_settings() {
        let openai = request(json!({
            "system": "Be brief.", "stop_sequences": ["END"], "metadata": {"user_id": "u"}, "stream": true,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "thinking": {"type": "disabled"}, "cache_control": {"type": "ephemeral"}, "service_tier": "auto",
        }))
        .unwrap();
        let openai = serde_json::to_value(&openai).unwrap();
        assert_eq!(openai["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(openai["max_tokens"], 16);
        assert_eq!(openai["stop"], json!(["END"]));
        assert_eq!(openai["user"], "u");
        assert_eq!(openai["tool_choice"], "required");
        assert_eq!(openai["parallel_tool_calls"], false);
        assert_eq!(openai["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            openai["tools"][0],
            json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}})
        );
    }

    #[test]
    fn refuses_what_has_no_openai_equivalent() {
        for (body, param) in [
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
                "thinking",
            ),
            (json!({"temperature": 1.5}), "temperature"),
            (
                json!({"tools": [{"name": "s", "type": "web_search_20250305", "input_schema": {}}]}),
                "tools[0].type",
            ),
            (
                json!({"messages": [{"role": "user", "content": [
                    {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}),
                "messages[0].content[0]",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                    "content": [{"type": "image", "source": {"type": "url", "url": "https://x.invalid/a.png"}}]}]}]}),
                "messages[0].content[0].content",
            ),
        ] {
            let error = request(body).unwrap_err();
            assert_eq!(error.status(), 400, "{param}");
            let named = error.body().error.param;
            assert_eq!(named.as_deref(), Some(param), "{error}");
        }
    }

    #[test]
    fn tool_results_become_tool_messages_in_place_and_errors_say_so() {
        let openai = request(json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "timeout", "is_error": true},
                {"type": "text", "text": "try again"}]},
        ]}))
        .unwrap();
        let messages = serde_json::to_value(&openai.messages).unwrap();
        assert_eq!(
            messages[1],
            json!({"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "t1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]})
        );
        assert_eq!(
            messages[2],
            json!({"role": "tool", "tool_call_id": "t1", "content": "Error: timeout"})
        );
        assert_eq!(
            messages[3],
            json!({"role": "user", "content": [{"type": "text", "text": "try again"}]})
        );
        let image = request(json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]}))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&image.messages[0]).unwrap()["content"][0],
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})
        );
    }

    #[test]
    fn completions_become_messages() {
        let completion: ChatCompletion = serde_json::from_value(json!({
            "id": "chatcmpl-abc", "model": "m", "created": 1,
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        }))
        .unwrap();
        let message = completion_to_response(completion);
        assert_eq!(message.id, "msg_abc");
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        assert_eq!((message.usage.input_tokens, message.usage.output_tokens), (5, 2));
        let ContentBlock::ToolUse { id, input, .. } = &message.content[0] else {
            panic!("{message:?}")
        };
        assert!(
            id.starts_with("toolu_"),
            "an id is made up for upstreams that send none"
        );
        assert_eq!(input, &json!("not json"), "text that is not JSON is kept");
        assert_eq!(stop_reason_for(Some("length")), StopReason::MaxTokens);
        assert_eq!(stop_reason_for(Some("stop")), StopReason::EndTurn);
    }

    fn chunk(content: Option<&str>, call: Option<(u32, Option<&str>, &str)>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: "chatcmpl-1".to_owned(),
            object: String::new(),
            created: 0,
            model: "m".to_owned(),
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta {
                    content: content.map(str::to_owned),
                    tool_calls: call.map(|(index, name, arguments)| {
                        vec![ToolCallDelta {
                            index,
                            id: name.map(|name| format!("id-{name}")),
                            kind: None,
                            function: Some(FunctionCallDelta {
                                name: name.map(str::to_owned),
                                arguments: Some(arguments.to_owned()),
                            }),
                        }]
                    }),
                    ..Delta::default()
                },
                finish_reason: None,
                logprobs: None,
            }],
            usage: None,
            system_fingerprint: None,
        }
    }

    #[test]
    fn interleaved_text_and_tool_calls_become_blocks_in_order() {
        let mut translator = EventTranslator::new("m", 3);
        let mut events = Vec::new();
        for chunk in [
            chunk(Some("Let me look."), None),
            chunk(None, Some((0, Some("a"), "{\"x\""))),
            chunk(None, Some((0, None, ":1}"))),
            chunk(Some(" And"), None),
            chunk(None, Some((1, Some("b"), ""))),
        ] {
            events.extend(translator.push(&chunk).unwrap());
        }
        events.extend(translator.finish());
        check_well_formed(&events).unwrap();
        let message = accumulate(&events);
        assert_eq!(
            serde_json::to_value(&message.content).unwrap(),
            json!([{"type": "text", "text": "Let me look."},
                   {"type": "tool_use", "id": "id-a", "name": "a", "input": {"x": 1}},
                   {"type": "text", "text": " And"},
                   {"type": "tool_use", "id": "id-b", "name": "b", "input": {}}])
        );
        // Without a usage chunk, the output is estimated and the input is message_start's estimate.
        assert_eq!(message.usage.input_tokens, 3);
        assert!(message.usage.output_tokens > 0);
    }

    #[test]
    fn a_tool_call_reopened_after_another_block_fails_and_an_empty_stream_is_well_formed() {
        let mut translator = EventTranslator::new("m", 0);
        translator.push(&chunk(None, Some((0, Some("a"), "{")))).unwrap();
        translator.push(&chunk(Some("text"), None)).unwrap();
        let error = translator.push(&chunk(None, Some((0, None, "}")))).unwrap_err();
        assert_eq!(error.code(), "upstream_malformed");

        let events = EventTranslator::new("m", 0).finish();
        check_well_formed(&events).unwrap();
        assert!(accumulate(&events).id.starts_with("msg_"));
    }
}
