//! Responses API ↔ chat completions: a `POST /v1/responses` request becomes one chat request, and the chat answer
//! becomes the response object (whole) or the Responses event sequence (streamed).

use super::wire::{
    CreateResponse, IncompleteDetails, Input, InputItem, InputPart, InputTokensDetails, MessageInput, OutputContent,
    OutputItem, OutputTokensDetails, ResponseError, ResponseObject, ResponseUsage, SequencedEvent, StreamEvent,
    TextFormat, Tool, ToolChoice,
};
use crate::GatewayError;
use crate::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, ContentPart, FunctionCall,
    FunctionDefinition, MessageContent, StreamOptions, ToolCall, ToolDefinition, Usage,
};

/// What a response object repeats of its request, kept from the request before it is translated.
#[derive(Debug, Clone)]
pub(crate) struct RequestEcho {
    instructions: Option<String>,
    max_output_tokens: Option<i64>,
    parallel_tool_calls: bool,
    temperature: Option<f64>,
    top_p: Option<f64>,
    tool_choice: serde_json::Value,
    tools: Vec<Tool>,
    text: serde_json::Value,
    metadata: serde_json::Map<String, serde_json::Value>,
    user: Option<String>,
}

impl RequestEcho {
    fn of(request: &CreateResponse) -> RequestEcho {
        let format = request
            .text
            .as_ref()
            .and_then(|text| text.format.as_ref())
            .and_then(|format| serde_json::to_value(format).ok())
            .unwrap_or_else(|| serde_json::json!({"type": "text"}));
        RequestEcho {
            instructions: request.instructions.clone(),
            max_output_tokens: request.max_output_tokens,
            parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
            temperature: request.temperature,
            top_p: request.top_p,
            tool_choice: request
                .tool_choice
                .as_ref()
                .and_then(|choice| serde_json::to_value(choice).ok())
                .unwrap_or_else(|| serde_json::json!("auto")),
            tools: request.tools.clone().unwrap_or_default(),
            text: serde_json::json!({ "format": format }),
            metadata: request.metadata.clone().unwrap_or_default(),
            user: request.user.clone(),
        }
    }

    /// The response object with this request's echoed fields.
    fn object(&self, ids: &ResponseIds, created_at: i64, model: &str, outcome: Outcome) -> ResponseObject {
        let (status, usage, incomplete_details, error, output) = outcome.into_parts();
        ResponseObject {
            id: ids.response(),
            object: "response".to_owned(),
            created_at,
            status: status.to_owned(),
            error,
            incomplete_details,
            instructions: self.instructions.clone(),
            max_output_tokens: self.max_output_tokens,
            model: model.to_owned(),
            output,
            parallel_tool_calls: self.parallel_tool_calls,
            temperature: self.temperature,
            top_p: self.top_p,
            tool_choice: self.tool_choice.clone(),
            tools: self.tools.clone(),
            text: self.text.clone(),
            truncation: "disabled".to_owned(),
            usage,
            metadata: self.metadata.clone(),
            store: false,
            user: self.user.clone(),
        }
    }
}

/// Where a response stands, with what its object shows for it.
enum Outcome {
    InProgress,
    Finished {
        output: Vec<OutputItem>,
        usage: Option<Usage>,
        incomplete: Option<String>,
    },
    Failed {
        output: Vec<OutputItem>,
        error: ResponseError,
    },
}

type OutcomeParts = (
    &'static str,
    Option<ResponseUsage>,
    Option<IncompleteDetails>,
    Option<ResponseError>,
    Vec<OutputItem>,
);

impl Outcome {
    fn into_parts(self) -> OutcomeParts {
        match self {
            Outcome::InProgress => ("in_progress", None, None, None, Vec::new()),
            Outcome::Finished {
                output,
                usage,
                incomplete,
            } => (
                if incomplete.is_some() {
                    "incomplete"
                } else {
                    "completed"
                },
                usage.map(usage_of),
                incomplete.map(|reason| IncompleteDetails { reason }),
                None,
                output,
            ),
            Outcome::Failed { output, error } => ("failed", None, None, Some(error), output),
        }
    }
}

/// The ids of one response and its items, all derived from the ledger's request id, so a response can be
/// found in the ledger by its id.
#[derive(Debug, Clone)]
struct ResponseIds {
    base: String,
}

impl ResponseIds {
    fn from_request_id(request_id: &str) -> ResponseIds {
        ResponseIds {
            base: request_id.strip_prefix("chatcmpl-").unwrap_or(request_id).to_owned(),
        }
    }

    fn response(&self) -> String {
        format!("resp_{}", self.base)
    }

    fn message(&self) -> String {
        format!("msg_{}", self.base)
    }

    fn function_call(&self, position: usize) -> String {
        format!("fc_{}_{position}", self.base)
    }
}

fn usage_of(usage: Usage) -> ResponseUsage {
    ResponseUsage {
        input_tokens: usage.prompt_tokens,
        input_tokens_details: InputTokensDetails { cached_tokens: 0 },
        output_tokens: usage.completion_tokens,
        output_tokens_details: OutputTokensDetails { reasoning_tokens: 0 },
        total_tokens: usage.total_tokens,
    }
}

/// Why a response with this chat finish reason is incomplete, if it is.
fn incomplete_reason(finish_reason: Option<&str>) -> Option<String> {
    match finish_reason {
        Some("length") => Some("max_output_tokens".to_owned()),
        Some("content_filter") => Some("content_filter".to_owned()),
        _ => None,
    }
}

fn unsupported(param: &str, model: &str, reason: &str) -> GatewayError {
    GatewayError::UnsupportedParameter {
        param: param.to_owned(),
        model: model.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A Responses request as a chat request, and what its answer must repeat of it. Refuses, naming the field,
/// what a chat model behind the gateway cannot do: stored state (`previous_response_id`, `conversation`,
/// `prompt`), background runs, hosted tools, reasoning settings, and log probabilities.
pub(crate) fn request_to_chat(request: CreateResponse) -> Result<(ChatCompletionRequest, RequestEcho), GatewayError> {
    let echo = RequestEcho::of(&request);
    let model = request.model.as_str();
    let stateless = "responses are not stored by this gateway; send the whole conversation in 'input'";
    if request.previous_response_id.is_some() {
        return Err(unsupported("previous_response_id", model, stateless));
    }
    if request.conversation.is_some() {
        return Err(unsupported("conversation", model, stateless));
    }
    if request.prompt.is_some() {
        return Err(unsupported(
            "prompt",
            model,
            "stored prompts are not available; send 'instructions' and 'input'",
        ));
    }
    if request.background == Some(true) {
        return Err(unsupported(
            "background",
            model,
            "background responses are not available; use 'stream' for long answers",
        ));
    }
    if request.max_tool_calls.is_some() {
        return Err(unsupported(
            "max_tool_calls",
            model,
            "the gateway runs no tools itself; limit calls in your own loop",
        ));
    }
    if request.top_logprobs.is_some() {
        return Err(unsupported(
            "top_logprobs",
            model,
            "log probabilities are available through /v1/chat/completions",
        ));
    }
    if let Some(include) = request.include.as_ref().filter(|include| !include.is_empty()) {
        return Err(unsupported(
            "include",
            model,
            &format!("nothing extra can be included here (asked for {})", include.join(", ")),
        ));
    }
    let effort = request.reasoning.as_ref().and_then(|reasoning| reasoning.get("effort"));
    if effort.is_some_and(|effort| !effort.is_null() && effort.as_str() != Some("none")) {
        return Err(unsupported(
            "reasoning",
            model,
            "reasoning settings are not available through this gateway; remove 'reasoning'",
        ));
    }
    match request.truncation.as_deref() {
        None | Some("disabled") => {}
        Some("auto") => {
            return Err(unsupported(
                "truncation",
                model,
                "the gateway never drops input items; use 'disabled' and trim the input yourself",
            ));
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "truncation",
                "'truncation' must be 'auto' or 'disabled'",
            ));
        }
    }
    if request.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(GatewayError::invalid(
            "temperature",
            "'temperature' must be between 0 and 2",
        ));
    }
    if request.max_output_tokens.is_some_and(|tokens| tokens < 1) {
        return Err(GatewayError::invalid(
            "max_output_tokens",
            "'max_output_tokens' must be at least 1",
        ));
    }
    let tools = request
        .tools
        .map(|tools| {
            tools
                .into_iter()
                .enumerate()
                .map(|(index, tool)| tool_to_chat(index, tool, model))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let tool_choice = request
        .tool_choice
        .map(|choice| tool_choice_to_chat(choice, model))
        .transpose()?;
    let text = request.text.unwrap_or_default();
    let response_format = text.format.map(format_to_chat).transpose()?.flatten();
    let mut messages = Vec::new();
    if let Some(instructions) = request.instructions {
        messages.push(ChatMessage::text("system", instructions));
    }
    match request.input {
        None => return Err(GatewayError::invalid("input", "'input' is required")),
        Some(Input::Text(text)) => messages.push(ChatMessage::text("user", text)),
        Some(Input::Items(items)) => {
            for (index, item) in items.into_iter().enumerate() {
                push_item(&mut messages, index, item)?;
            }
        }
    }
    if !messages.iter().any(|message| message.role != "system") {
        return Err(GatewayError::invalid(
            "input",
            "'input' must hold at least one message or function call output",
        ));
    }
    let stream = request.stream;
    let chat = ChatCompletionRequest {
        model: request.model,
        messages,
        stream,
        // The usage chunk becomes the usage of `response.completed`.
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
            include_obfuscation: None,
        }),
        max_tokens: request.max_output_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        user: request.user,
        tools,
        tool_choice,
        parallel_tool_calls: request.parallel_tool_calls,
        response_format,
        service_tier: request.service_tier,
        verbosity: text.verbosity,
        prompt_cache_key: request.prompt_cache_key,
        safety_identifier: request.safety_identifier,
        ..ChatCompletionRequest::default()
    };
    Ok((chat, echo))
}

fn tool_to_chat(index: usize, tool: Tool, model: &str) -> Result<ToolDefinition, GatewayError> {
    if tool.kind != "function" {
        return Err(unsupported(
            &format!("tools[{index}].type"),
            model,
            &format!(
                "'{}' tools run on OpenAI's servers; only 'function' tools reach a model through this gateway",
                tool.kind
            ),
        ));
    }
    let Some(name) = tool.name.filter(|name| !name.is_empty()) else {
        return Err(GatewayError::invalid(
            &format!("tools[{index}].name"),
            "a function tool needs a 'name'",
        ));
    };
    Ok(ToolDefinition {
        kind: "function".to_owned(),
        function: FunctionDefinition {
            name,
            description: tool.description,
            parameters: tool.parameters,
            strict: tool.strict,
        },
    })
}

fn tool_choice_to_chat(choice: ToolChoice, model: &str) -> Result<serde_json::Value, GatewayError> {
    match choice {
        ToolChoice::Mode(mode) if matches!(mode.as_str(), "none" | "auto" | "required") => Ok(serde_json::json!(mode)),
        ToolChoice::Mode(_) => Err(GatewayError::invalid(
            "tool_choice",
            "'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", \"name\": ...}",
        )),
        ToolChoice::Named { kind, name: Some(name) } if kind == "function" => {
            Ok(serde_json::json!({"type": "function", "function": {"name": name}}))
        }
        ToolChoice::Named { kind, .. } if kind == "function" => Err(GatewayError::invalid(
            "tool_choice.name",
            "a function tool choice needs a 'name'",
        )),
        ToolChoice::Named { kind, .. } => Err(unsupported(
            "tool_choice",
            model,
            &format!("tool choice '{kind}' is not available; name a function or use 'auto' or 'required'"),
        )),
    }
}

/// `text.format` as a chat `response_format`; `text` needs none.
fn format_to_chat(format: TextFormat) -> Result<Option<serde_json::Value>, GatewayError> {
    match format.kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(serde_json::json!({"type": "json_object"}))),
        "json_schema" => {
            let Some(schema) = format.schema else {
                return Err(GatewayError::invalid(
                    "text.format.schema",
                    "a 'json_schema' format needs a 'schema'",
                ));
            };
            let Some(name) = format.name.filter(|name| !name.is_empty()) else {
                return Err(GatewayError::invalid(
                    "text.format.name",
                    "a 'json_schema' format needs a 'name'",
                ));
            };
            let mut json_schema = serde_json::json!({"name": name, "schema": schema});
            if let Some(strict) = format.strict {
                json_schema["strict"] = serde_json::json!(strict);
            }
            if let Some(description) = format.description {
                json_schema["description"] = serde_json::json!(description);
            }
            Ok(Some(
                serde_json::json!({"type": "json_schema", "json_schema": json_schema}),
            ))
        }
        other => Err(GatewayError::invalid(
            "text.format.type",
            format!("'text.format.type' must be 'text', 'json_object' or 'json_schema', not '{other}'"),
        )),
    }
}

/// Adds one input item to the chat conversation. Function calls join the assistant message before them, as
/// chat requests carry them.
fn push_item(messages: &mut Vec<ChatMessage>, index: usize, item: InputItem) -> Result<(), GatewayError> {
    let param = format!("input[{index}]");
    match item.kind.as_deref() {
        None | Some("message") => {
            let role = item.role.unwrap_or_default();
            let content = item
                .content
                .ok_or_else(|| GatewayError::invalid(&format!("{param}.content"), "a message needs 'content'"))?;
            match role.as_str() {
                "user" | "system" | "developer" => {
                    let content = user_content(&param, content)?;
                    messages.push(ChatMessage {
                        content: Some(content),
                        ..ChatMessage::text(&role, "")
                    });
                }
                "assistant" => {
                    let (text, refusal) = assistant_content(&param, content)?;
                    messages.push(ChatMessage {
                        content: (!text.is_empty()).then_some(MessageContent::Text(text)),
                        refusal,
                        ..ChatMessage::text("assistant", "")
                    });
                }
                _ => {
                    return Err(GatewayError::invalid(
                        &format!("{param}.role"),
                        "a message's 'role' must be 'user', 'assistant', 'system' or 'developer'",
                    ));
                }
            }
        }
        Some("function_call") => {
            let call_id = required(item.call_id, &param, "call_id")?;
            let name = required(item.name, &param, "name")?;
            let call = ToolCall {
                id: call_id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: item.arguments.unwrap_or_else(|| "{}".to_owned()),
                },
            };
            match messages.last_mut() {
                Some(last) if last.role == "assistant" => last.tool_calls.get_or_insert_with(Vec::new).push(call),
                _ => messages.push(ChatMessage {
                    content: None,
                    tool_calls: Some(vec![call]),
                    ..ChatMessage::text("assistant", "")
                }),
            }
        }
        Some("function_call_output") => {
            let call_id = required(item.call_id, &param, "call_id")?;
            let output = match item.output {
                Some(MessageInput::Text(text)) => text,
                Some(MessageInput::Parts(parts)) => parts.into_iter().filter_map(|part| part.text).collect(),
                None => {
                    return Err(GatewayError::invalid(
                        &format!("{param}.output"),
                        "a function call output needs 'output'",
                    ));
                }
            };
            messages.push(ChatMessage {
                tool_call_id: Some(call_id),
                ..ChatMessage::text("tool", output)
            });
        }
        Some(other) => {
            return Err(GatewayError::invalid(
                &format!("{param}.type"),
                format!(
                    "input items of type '{other}' are not available here; send messages, function_call and \
                     function_call_output items"
                ),
            ));
        }
    }
    Ok(())
}

fn required(value: Option<String>, param: &str, field: &str) -> Result<String, GatewayError> {
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| GatewayError::invalid(&format!("{param}.{field}"), format!("this item needs '{field}'")))
}

/// A user, system or developer message's content: text parts and images.
fn user_content(param: &str, content: MessageInput) -> Result<MessageContent, GatewayError> {
    let parts = match content {
        MessageInput::Text(text) => return Ok(MessageContent::Text(text)),
        MessageInput::Parts(parts) => parts,
    };
    parts
        .into_iter()
        .enumerate()
        .map(|(index, part)| input_part(&format!("{param}.content[{index}]"), part))
        .collect::<Result<Vec<_>, _>>()
        .map(MessageContent::Parts)
}

fn input_part(param: &str, part: InputPart) -> Result<ContentPart, GatewayError> {
    match part.kind.as_str() {
        "input_text" | "output_text" | "text" => Ok(ContentPart::text(part.text.unwrap_or_default())),
        "input_image" => {
            let Some(url) = part.image_url else {
                return Err(GatewayError::invalid(
                    &format!("{param}.image_url"),
                    "images are sent by 'image_url' (a URL or a data URL); there is no file store for 'file_id'",
                ));
            };
            let mut image = serde_json::json!({ "url": url });
            if let Some(detail) = part.detail {
                image["detail"] = serde_json::json!(detail);
            }
            let mut other = serde_json::Map::new();
            other.insert("image_url".to_owned(), image);
            Ok(ContentPart {
                kind: "image_url".to_owned(),
                text: None,
                other,
            })
        }
        other => Err(GatewayError::invalid(
            &format!("{param}.type"),
            format!("content parts of type '{other}' are not available here; send 'input_text' or 'input_image'"),
        )),
    }
}

/// A replayed assistant message's text and refusal.
fn assistant_content(param: &str, content: MessageInput) -> Result<(String, Option<String>), GatewayError> {
    let parts = match content {
        MessageInput::Text(text) => return Ok((text, None)),
        MessageInput::Parts(parts) => parts,
    };
    let mut text = String::new();
    let mut refusal: Option<String> = None;
    for (index, part) in parts.into_iter().enumerate() {
        match part.kind.as_str() {
            "output_text" | "input_text" | "text" => text.push_str(part.text.as_deref().unwrap_or_default()),
            "refusal" => refusal
                .get_or_insert_with(String::new)
                .push_str(part.refusal.as_deref().unwrap_or_default()),
            other => {
                return Err(GatewayError::invalid(
                    &format!("{param}.content[{index}].type"),
                    format!("an assistant message's parts are 'output_text' or 'refusal', not '{other}'"),
                ));
            }
        }
    }
    Ok((text, refusal))
}

/// A chat completion as the response object: the assistant's message (when it has text or a refusal, or
/// nothing else was produced), then one `function_call` item per tool call.
pub(crate) fn completion_to_response(completion: ChatCompletion, echo: &RequestEcho) -> ResponseObject {
    let ids = ResponseIds::from_request_id(&completion.id);
    let choice = completion.choices.into_iter().next();
    let finish_reason = choice.as_ref().and_then(|choice| choice.finish_reason.clone());
    let incomplete = incomplete_reason(finish_reason.as_deref());
    let item_status = if incomplete.is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let mut output = Vec::new();
    if let Some(choice) = choice {
        let message = choice.message;
        let mut content = Vec::new();
        if let Some(text) = message.content.filter(|text| !text.is_empty()) {
            content.push(output_text(text));
        }
        if let Some(refusal) = message.refusal {
            content.push(OutputContent::Refusal { refusal });
        }
        let calls = message.tool_calls.unwrap_or_default();
        if !content.is_empty() || calls.is_empty() {
            if content.is_empty() {
                content.push(output_text(String::new()));
            }
            // Text that tool calls follow was finished before they began, as a stream shows it.
            let status = if calls.is_empty() { item_status } else { "completed" };
            output.push(OutputItem::Message {
                id: ids.message(),
                status: status.to_owned(),
                role: "assistant".to_owned(),
                content,
            });
        }
        for (position, call) in calls.into_iter().enumerate() {
            output.push(OutputItem::FunctionCall {
                id: ids.function_call(position),
                call_id: call.id,
                name: call.function.name,
                arguments: call.function.arguments,
                status: item_status.to_owned(),
            });
        }
    } else {
        output.push(empty_message(&ids, item_status));
    }
    echo.object(
        &ids,
        completion.created,
        &completion.model,
        Outcome::Finished {
            output,
            usage: completion.usage,
            incomplete,
        },
    )
}

fn output_text(text: String) -> OutputContent {
    OutputContent::Text {
        text,
        annotations: Vec::new(),
        logprobs: Vec::new(),
    }
}

fn empty_message(ids: &ResponseIds, status: &str) -> OutputItem {
    OutputItem::Message {
        id: ids.message(),
        status: status.to_owned(),
        role: "assistant".to_owned(),
        content: vec![output_text(String::new())],
    }
}

/// Turns the chunks of one chat stream into the Responses events, keeping the response's snapshot as it goes.
/// `push` each chunk, then `finish` (or `fail` on an error); the last event carries the whole response.
pub(crate) struct EventTranslator {
    echo: RequestEcho,
    model: String,
    created_at: i64,
    ids: Option<ResponseIds>,
    next_sequence: u64,
    output: Vec<OutputItem>,
    /// The open message's output index, with the content indexes of its text and refusal parts.
    message: Option<OpenMessage>,
    /// Function calls still open: the chat tool call index, and the output index of its item.
    calls: Vec<(u32, usize)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

#[derive(Debug, Clone, Copy)]
struct OpenMessage {
    output_index: usize,
    text: Option<usize>,
    refusal: Option<usize>,
}

impl EventTranslator {
    pub(crate) fn new(echo: RequestEcho, model: String) -> EventTranslator {
        EventTranslator {
            echo,
            model,
            created_at: crate::chat::unix_seconds(),
            ids: None,
            next_sequence: 0,
            output: Vec::new(),
            message: None,
            calls: Vec::new(),
            finish_reason: None,
            usage: None,
        }
    }

    /// The events one chunk gives; the first chunk also opens the response.
    pub(crate) fn push(&mut self, chunk: &ChatCompletionChunk) -> Vec<SequencedEvent> {
        let mut events = Vec::new();
        if self.ids.is_none() {
            self.created_at = chunk.created;
            self.open(&chunk.id, &mut events);
        }
        if let Some(Some(usage)) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.first() else {
            return events;
        };
        let delta = &choice.delta;
        if let Some(text) = delta.content.as_deref().filter(|text| !text.is_empty()) {
            self.text_delta(text, false, &mut events);
        }
        if let Some(refusal) = delta.refusal.as_deref().filter(|refusal| !refusal.is_empty()) {
            self.text_delta(refusal, true, &mut events);
        }
        for call in delta.tool_calls.iter().flatten() {
            let function = call.function.as_ref();
            let output_index = match self.calls.iter().find(|(index, _)| *index == call.index) {
                Some(&(_, output_index)) => output_index,
                None => {
                    self.close_message(&mut events);
                    let position = self
                        .output
                        .iter()
                        .filter(|item| matches!(item, OutputItem::FunctionCall { .. }))
                        .count();
                    let ids = self.ids();
                    let item = OutputItem::FunctionCall {
                        id: ids.function_call(position),
                        call_id: call
                            .id
                            .clone()
                            .unwrap_or_else(|| format!("call_{}_{position}", ids.base)),
                        name: String::new(),
                        arguments: String::new(),
                        status: "in_progress".to_owned(),
                    };
                    let output_index = self.output.len();
                    self.output.push(item.clone());
                    self.calls.push((call.index, output_index));
                    self.emit(&mut events, StreamEvent::OutputItemAdded { output_index, item });
                    output_index
                }
            };
            let name_piece = function
                .and_then(|function| function.name.as_deref())
                .unwrap_or_default();
            let arguments_piece = function
                .and_then(|function| function.arguments.as_deref())
                .unwrap_or_default();
            let Some(OutputItem::FunctionCall {
                id, name, arguments, ..
            }) = self.output.get_mut(output_index)
            else {
                continue;
            };
            name.push_str(name_piece);
            arguments.push_str(arguments_piece);
            if !arguments_piece.is_empty() {
                let item_id = id.clone();
                self.emit(
                    &mut events,
                    StreamEvent::FunctionCallArgumentsDelta {
                        item_id,
                        output_index,
                        delta: arguments_piece.to_owned(),
                    },
                );
            }
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
        events
    }

    /// The events that end a stream that finished: every open item closed, then `response.completed` (or
    /// `response.incomplete` when the model stopped at `max_output_tokens`).
    pub(crate) fn finish(mut self) -> Vec<SequencedEvent> {
        let mut events = Vec::new();
        if self.ids.is_none() {
            self.open(&crate::chat::new_request_id("chatcmpl"), &mut events);
        }
        let incomplete = incomplete_reason(self.finish_reason.as_deref());
        if self.output.is_empty() {
            self.text_delta("", false, &mut events);
        }
        self.close_all(incomplete.is_some(), &mut events);
        let ids = self.ids();
        let response = Box::new(self.echo.object(
            &ids,
            self.created_at,
            &self.model,
            Outcome::Finished {
                output: std::mem::take(&mut self.output),
                usage: self.usage,
                incomplete: incomplete.clone(),
            },
        ));
        let last = if incomplete.is_some() {
            StreamEvent::Incomplete { response }
        } else {
            StreamEvent::Completed { response }
        };
        self.emit(&mut events, last);
        events
    }

    /// The events that end a stream that failed: open items closed as incomplete, then `response.failed` with
    /// the error.
    pub(crate) fn fail(mut self, error: &GatewayError) -> Vec<SequencedEvent> {
        let mut events = Vec::new();
        if self.ids.is_none() {
            self.open(&crate::chat::new_request_id("chatcmpl"), &mut events);
        }
        self.close_all(true, &mut events);
        let ids = self.ids();
        let response = Box::new(self.echo.object(
            &ids,
            self.created_at,
            &self.model,
            Outcome::Failed {
                output: std::mem::take(&mut self.output),
                error: ResponseError {
                    code: error.code().to_owned(),
                    message: error.to_string(),
                },
            },
        ));
        self.emit(&mut events, StreamEvent::Failed { response });
        events
    }

    fn ids(&self) -> ResponseIds {
        self.ids
            .clone()
            .unwrap_or_else(|| ResponseIds::from_request_id(&crate::chat::new_request_id("chatcmpl")))
    }

    fn open(&mut self, request_id: &str, events: &mut Vec<SequencedEvent>) {
        let ids = ResponseIds::from_request_id(request_id);
        let response = self
            .echo
            .object(&ids, self.created_at, &self.model, Outcome::InProgress);
        self.ids = Some(ids);
        self.emit(
            events,
            StreamEvent::Created {
                response: Box::new(response.clone()),
            },
        );
        self.emit(
            events,
            StreamEvent::InProgress {
                response: Box::new(response),
            },
        );
    }

    fn emit(&mut self, events: &mut Vec<SequencedEvent>, event: StreamEvent) {
        events.push(SequencedEvent {
            sequence_number: self.next_sequence,
            event,
        });
        self.next_sequence += 1;
    }

    /// Text (or refusal) for the assistant's message, opening the message and the part as needed.
    fn text_delta(&mut self, piece: &str, refusal: bool, events: &mut Vec<SequencedEvent>) {
        self.close_calls(false, events);
        let ids = self.ids();
        let mut message = match self.message {
            Some(message) => message,
            None => {
                let output_index = self.output.len();
                let item = OutputItem::Message {
                    id: ids.message(),
                    status: "in_progress".to_owned(),
                    role: "assistant".to_owned(),
                    content: Vec::new(),
                };
                self.output.push(item.clone());
                self.emit(events, StreamEvent::OutputItemAdded { output_index, item });
                OpenMessage {
                    output_index,
                    text: None,
                    refusal: None,
                }
            }
        };
        let output_index = message.output_index;
        let slot = if refusal { message.refusal } else { message.text };
        let content_index = match slot {
            Some(content_index) => content_index,
            None => {
                let part = if refusal {
                    OutputContent::Refusal { refusal: String::new() }
                } else {
                    output_text(String::new())
                };
                let Some(OutputItem::Message { content, .. }) = self.output.get_mut(output_index) else {
                    return;
                };
                let content_index = content.len();
                content.push(part.clone());
                if refusal {
                    message.refusal = Some(content_index);
                } else {
                    message.text = Some(content_index);
                }
                self.emit(
                    events,
                    StreamEvent::ContentPartAdded {
                        item_id: ids.message(),
                        output_index,
                        content_index,
                        part,
                    },
                );
                content_index
            }
        };
        self.message = Some(message);
        if let Some(OutputItem::Message { content, .. }) = self.output.get_mut(output_index) {
            match content.get_mut(content_index) {
                Some(OutputContent::Text { text, .. }) => text.push_str(piece),
                Some(OutputContent::Refusal { refusal }) => refusal.push_str(piece),
                None => {}
            }
        }
        if piece.is_empty() {
            return;
        }
        let item_id = ids.message();
        let delta = piece.to_owned();
        let event = if refusal {
            StreamEvent::RefusalDelta {
                item_id,
                output_index,
                content_index,
                delta,
            }
        } else {
            StreamEvent::OutputTextDelta {
                item_id,
                output_index,
                content_index,
                delta,
                logprobs: Vec::new(),
            }
        };
        self.emit(events, event);
    }

    fn close_all(&mut self, incomplete: bool, events: &mut Vec<SequencedEvent>) {
        if incomplete {
            self.close_message_as("incomplete", events);
        } else {
            self.close_message(events);
        }
        self.close_calls(incomplete, events);
    }

    fn close_message(&mut self, events: &mut Vec<SequencedEvent>) {
        self.close_message_as("completed", events);
    }

    /// Ends the open message: each part's `done`, then the item's.
    fn close_message_as(&mut self, status: &str, events: &mut Vec<SequencedEvent>) {
        let Some(message) = self.message.take() else {
            return;
        };
        let output_index = message.output_index;
        let Some(OutputItem::Message {
            id,
            status: item_status,
            content,
            ..
        }) = self.output.get_mut(output_index)
        else {
            return;
        };
        *item_status = status.to_owned();
        let item_id = id.clone();
        let parts = content.clone();
        let item = self.output[output_index].clone();
        for (content_index, part) in parts.into_iter().enumerate() {
            let done = match &part {
                OutputContent::Text { text, .. } => StreamEvent::OutputTextDone {
                    item_id: item_id.clone(),
                    output_index,
                    content_index,
                    text: text.clone(),
                    logprobs: Vec::new(),
                },
                OutputContent::Refusal { refusal } => StreamEvent::RefusalDone {
                    item_id: item_id.clone(),
                    output_index,
                    content_index,
                    refusal: refusal.clone(),
                },
            };
            self.emit(events, done);
            self.emit(
                events,
                StreamEvent::ContentPartDone {
                    item_id: item_id.clone(),
                    output_index,
                    content_index,
                    part,
                },
            );
        }
        self.emit(events, StreamEvent::OutputItemDone { output_index, item });
    }

    /// Ends the open function calls, in the order they began.
    fn close_calls(&mut self, incomplete: bool, events: &mut Vec<SequencedEvent>) {
        for (_, output_index) in std::mem::take(&mut self.calls) {
            let Some(OutputItem::FunctionCall {
                id,
                name,
                arguments,
                status,
                ..
            }) = self.output.get_mut(output_index)
            else {
                continue;
            };
            *status = if incomplete { "incomplete" } else { "completed" }.to_owned();
            let done = StreamEvent::FunctionCallArgumentsDone {
                item_id: id.clone(),
                output_index,
                name: name.clone(),
                arguments: arguments.clone(),
            };
            let item = self.output[output_index].clone();
            self.emit(events, done);
            self.emit(events, StreamEvent::OutputItemDone { output_index, item });
        }
    }
}
