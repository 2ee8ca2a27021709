//! Anthropic Messages API wire types: the request, the response, the streamed events and the error body.
//!
//! Requests from clients reject what they do not understand (`deny_unknown_fields`), as the rest of the gateway
//! does, except `cache_control` and `service_tier`, which Anthropic clients send routinely and which cannot change
//! an answer. Responses and events are read leniently (unknown block and event types become `Other`), because an
//! upstream that adds a field or a block type must not break requests that do not use it.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `POST /v1/messages` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // field names are Anthropic's, documented there
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<InputMessage>,
    pub max_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<TextOrBlocks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Extended thinking: only `{"type": "disabled"}` is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// Accepted and ignored: caching is an upstream optimisation that does not change the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    /// Accepted and ignored: the gateway has one service tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
}

/// `POST /v1/messages/count_tokens` request body: a messages request without the generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CountTokensRequest {
    pub model: String,
    pub messages: Vec<InputMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<TextOrBlocks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

impl CountTokensRequest {
    /// The same conversation as a messages request; `max_tokens` does not change the prompt's size.
    pub fn into_messages_request(self) -> MessagesRequest {
        MessagesRequest {
            model: self.model,
            messages: self.messages,
            max_tokens: 1,
            system: self.system,
            temperature: None,
            top_p: None,
            top_k: None,
            stop_sequences: None,
            stream: false,
            tools: self.tools,
            tool_choice: self.tool_choice,
            metadata: None,
            thinking: self.thinking,
            cache_control: self.cache_control,
            service_tier: None,
        }
    }
}

/// `POST /v1/messages/count_tokens` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountTokensResponse {
    /// Tokens of the prompt, as the model's estimate.
    pub input_tokens: u32,
}

/// Who speaks a message. Anthropic has no system or tool roles: the system prompt is a top-level field and
/// tool results are blocks of a user message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Role {
    User,
    Assistant,
}

/// One message of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct InputMessage {
    pub role: Role,
    pub content: TextOrBlocks,
}

/// Content that is either a plain string or a list of blocks (`content`, `system`, a tool result's `content`).
/// Deserialized by hand so that a wrong block reports its own error instead of "did not match any variant".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TextOrBlocks {
    /// A string.
    Text(String),
    /// Blocks.
    Blocks(Vec<ContentBlockParam>),
}

impl<'de> Deserialize<'de> for TextOrBlocks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(TextOrBlocks::Text(text)),
            blocks @ Value::Array(_) => serde_json::from_value(blocks)
                .map(TextOrBlocks::Blocks)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom("expected a string or a list of content blocks")),
        }
    }
}

/// A block of a request message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)]
pub enum ContentBlockParam {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
        /// Citations an earlier answer carried; they do not change the prompt's text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        citations: Option<Value>,
    },
    Image {
        source: ImageSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<TextOrBlocks>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
}

impl ContentBlockParam {
    /// A plain text block.
    pub fn text(text: impl Into<String>) -> ContentBlockParam {
        ContentBlockParam::Text {
            text: text.into(),
            cache_control: None,
            citations: None,
        }
    }

    /// The block's `type`, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ContentBlockParam::Text { .. } => "text",
            ContentBlockParam::Image { .. } => "image",
            ContentBlockParam::ToolUse { .. } => "tool_use",
            ContentBlockParam::ToolResult { .. } => "tool_result",
        }
    }
}

/// Where an image block's bytes are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

/// A tool the model may call (client tools only; Anthropic's server tools are refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
    /// `custom` when present.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

/// How the model may use the tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)]
pub enum ToolChoice {
    /// The model decides.
    Auto {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call some tool.
    Any {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call this tool.
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must not call tools.
    None,
}

/// `metadata` of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// An opaque id of the end user, for abuse detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// `POST /v1/messages` response, and the `message` of a `message_start` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MessagesResponse {
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: String,
    pub content: Vec<ContentBlock>,
    pub model: String,
    pub stop_reason: Option<StopReason>,
    pub stop_sequence: Option<String>,
    pub usage: MessageUsage,
}

/// A block of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// A block this gateway does not translate (thinking, server tools); skipped.
    #[serde(other)]
    Other,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    PauseTurn,
    Refusal,
    ModelContextWindowExceeded,
    /// A reason newer than this gateway.
    #[serde(other)]
    Other,
}

/// Token counts of an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MessageUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u32>,
}

impl MessageUsage {
    /// Every prompt token, cached or not: Anthropic counts cache reads and writes apart from `input_tokens`.
    pub fn prompt_tokens(&self) -> u32 {
        self.input_tokens
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
    }
}

/// One server-sent event of a streamed answer; the SSE `event:` line carries [`StreamEvent::name`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum StreamEvent {
    MessageStart {
        message: MessagesResponse,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDelta,
        usage: DeltaUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorDetail,
    },
    /// An event newer than this gateway; skipped.
    #[serde(other)]
    Other,
}

impl StreamEvent {
    /// The event's type, which is also its SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
            StreamEvent::Other => "other",
        }
    }
}

/// The change a `content_block_delta` brings to its block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum BlockDelta {
    TextDelta {
        text: String,
    },
    /// A piece of a tool call's input, as JSON text; the pieces of a block joined are the whole input.
    InputJsonDelta {
        partial_json: String,
    },
    /// A delta this gateway does not translate (thinking, signatures, citations); skipped.
    #[serde(other)]
    Other,
}

/// The top-level changes of a `message_delta` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MessageDelta {
    pub stop_reason: Option<StopReason>,
    pub stop_sequence: Option<String>,
}

/// The usage of a `message_delta` event: totals so far, not increments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DeltaUsage {
    pub output_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u32>,
}

/// `{"type":"error","error":{"type","message"}}`: an error response body, and the data of an `error` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an Anthropic error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `rate_limit_error`, `billing_error`, `timeout_error`, `api_error` or `overloaded_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Human-readable explanation.
    pub message: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_the_sdk_sends() {
        let request: MessagesRequest = serde_json::from_value(json!({
            "model": "m", "max_tokens": 64, "stream": true,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat", "is_error": false}]}],
            "tools": [{"name": "look", "description": "Looks", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "metadata": {"user_id": "u1"}, "stop_sequences": ["END"], "temperature": 0.5,
        }))
        .unwrap();
        assert!(request.stream);
        assert_eq!(request.messages.len(), 3);
        assert!(matches!(&request.system, Some(TextOrBlocks::Blocks(blocks)) if blocks.len() == 1));
        assert_eq!(
            request.tool_choice,
            Some(ToolChoice::Auto {
                disable_parallel_tool_use: Some(true)
            })
        );
    }

    #[test]
    fn refuses_unknown_fields_and_missing_max_tokens_with_a_useful_message() {
        let typo = serde_json::from_value::<MessagesRequest>(
            json!({"model": "m", "max_tokens": 1, "messages": [], "temprature": 1}),
        );
        assert!(typo.unwrap_err().to_string().contains("temprature"));
        let missing = serde_json::from_value::<MessagesRequest>(json!({"model": "m", "messages": []}));
        assert!(missing.unwrap_err().to_string().contains("max_tokens"));
        // A bad block names its problem instead of "did not match any variant".
        let bad_block = serde_json::from_value::<MessagesRequest>(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "txt": "hi"}]}]}));
        let message = bad_block.unwrap_err().to_string();
        assert!(message.contains("txt"), "{message}");
        let unknown_block = serde_json::from_value::<MessagesRequest>(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}));
        assert!(unknown_block.unwrap_err().to_string().contains("document"));
        let number = serde_json::from_value::<MessagesRequest>(
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 5}]}),
        );
        assert!(number.unwrap_err().to_string().contains("a string or a list"));
    }

    #[test]
    fn writes_anthropic_shapes() {
        let event = StreamEvent::ContentBlockDelta {
            index: 1,
            delta: BlockDelta::InputJsonDelta {
                partial_json: "{\"a\":".to_owned(),
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}})
        );
        assert_eq!(event.name(), "content_block_delta");
        assert_eq!(
            serde_json::to_value(StreamEvent::MessageStop).unwrap(),
            json!({"type": "message_stop"})
        );
        let delta = StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(StopReason::ToolUse),
                stop_sequence: None,
            },
            usage: DeltaUsage {
                output_tokens: 3,
                ..DeltaUsage::default()
            },
        };
        assert_eq!(
            serde_json::to_value(&delta).unwrap(),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                   "usage": {"output_tokens": 3}})
        );
    }

    #[test]
    fn reads_upstream_answers_leniently() {
        let response: MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "Hi", "citations": null}],
            "stop_reason": "brand_new_reason", "stop_sequence": null,
            "usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 2, "service_tier": "standard"}
        }))
        .unwrap();
        assert_eq!(response.content[0], ContentBlock::Other);
        assert_eq!(response.stop_reason, Some(StopReason::Other));
        assert_eq!(response.usage.prompt_tokens(), 5);
        let event: StreamEvent = serde_json::from_value(json!({"type": "brand_new_event", "x": 1})).unwrap();
        assert_eq!(event, StreamEvent::Other);
        let delta: StreamEvent = serde_json::from_value(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}),
        )
        .unwrap();
        assert!(matches!(
            delta,
            StreamEvent::ContentBlockDelta {
                delta: BlockDelta::Other,
                ..
            }
        ));
    }
}
