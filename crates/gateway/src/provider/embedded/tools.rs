//! Function calling on the embedded engine. Small chat models have no tool format of their own, so the gateway
//! describes the request's tools in the system prompt and decodes the answer under a JSON Schema: with
//! `tool_choice` `required` or a named function, the answer is one call (`{"name": ..., "arguments": ...}`, the
//! arguments held to the tool's own parameter schema); with `auto`, it is either such a call or
//! `{"answer": "..."}`, the model's text. Either way it parses, so it becomes OpenAI `tool_calls` (or content)
//! every time. The answer is read whole before any of it is streamed, since its first token does not yet say
//! which of the two it is.

use crate::GatewayError;
use crate::openai::{ChatCompletionRequest, ChatMessage, ToolDefinition};

/// Whether the model must call a tool or may answer in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolMode {
    /// `required`, or a named function: the answer is a call.
    Call,
    /// `auto`: a call, or text.
    Auto,
}

/// What the answer of a tool-enabled request may be, and how to ask the model for it.
#[derive(Debug, Clone)]
pub(super) struct ToolPlan {
    /// The JSON Schema the answer is decoded under.
    pub(super) schema: serde_json::Value,
    /// The system prompt's description of the tools and of the answer's shape.
    pub(super) instructions: String,
}

/// The plan for `request`'s tools; `None` when it has none or forbids them (`tool_choice: "none"`).
pub(super) fn plan(request: &ChatCompletionRequest) -> Result<Option<ToolPlan>, GatewayError> {
    let Some(tools) = request.tools.as_ref().filter(|tools| !tools.is_empty()) else {
        return Ok(None);
    };
    let (mode, offered): (ToolMode, Vec<&ToolDefinition>) = match &request.tool_choice {
        None => (ToolMode::Auto, tools.iter().collect()),
        Some(choice) => match choice.as_str() {
            Some("none") => return Ok(None),
            Some("auto") => (ToolMode::Auto, tools.iter().collect()),
            Some("required") => (ToolMode::Call, tools.iter().collect()),
            Some(_) => {
                return Err(GatewayError::invalid(
                    "tool_choice",
                    "'tool_choice' must be 'none', 'auto', 'required' or a named function",
                ));
            }
            None => {
                let name = choice.pointer("/function/name").and_then(serde_json::Value::as_str);
                let Some(tool) = name.and_then(|name| tools.iter().find(|tool| tool.function.name == name)) else {
                    return Err(GatewayError::invalid(
                        "tool_choice",
                        "'tool_choice' names a function that is not in 'tools'",
                    ));
                };
                (ToolMode::Call, vec![tool])
            }
        },
    };
    let calls: Vec<serde_json::Value> = offered
        .iter()
        .map(|tool| {
            serde_json::json!({
                "type": "object",
                "properties": {
                    "name": {"const": tool.function.name},
                    "arguments": tool.function.parameters.clone().unwrap_or_else(|| serde_json::json!({"type": "object"})),
                },
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let mut instructions = String::from("You can call these functions:\n");
    for tool in &offered {
        let parameters = tool
            .function
            .parameters
            .as_ref()
            .map_or_else(|| "{}".to_owned(), serde_json::Value::to_string);
        instructions.push_str(&format!(
            "- {}: {} Parameters (JSON Schema): {parameters}\n",
            tool.function.name,
            tool.function.description.as_deref().unwrap_or("")
        ));
    }
    let schema = match mode {
        ToolMode::Call => {
            instructions.push_str(r#"Answer with the call as JSON: {"name": "<function>", "arguments": {...}}."#);
            serde_json::json!({"anyOf": calls})
        }
        ToolMode::Auto => {
            instructions.push_str(
                r#"To call a function, answer {"name": "<function>", "arguments": {...}}. Otherwise answer {"answer": "<your reply>"}."#,
            );
            let mut choices = calls;
            choices.push(serde_json::json!({
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
                "additionalProperties": false,
            }));
            serde_json::json!({"anyOf": choices})
        }
    };
    Ok(Some(ToolPlan { schema, instructions }))
}

/// A tool-related message of the conversation as text the model's template can hold: an assistant's calls as
/// the JSON it would have answered, a tool's result as a user turn naming the call it answers.
pub(super) fn message_as_text(message: &ChatMessage) -> Option<(&'static str, String)> {
    if message.role == "tool" {
        let call = message.tool_call_id.as_deref().unwrap_or("a call");
        return Some(("user", format!("Result of {call}: {}", message.text_content())));
    }
    let calls = message.tool_calls.as_ref().filter(|calls| !calls.is_empty())?;
    let written: Vec<String> = calls
        .iter()
        .map(|call| {
            let arguments: serde_json::Value =
                serde_json::from_str(&call.function.arguments).unwrap_or_else(|_| serde_json::json!({}));
            serde_json::json!({"name": call.function.name, "arguments": arguments}).to_string()
        })
        .collect();
    Some(("assistant", written.join("\n")))
}

/// What a tool-mode answer says.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ToolAnswer {
    /// Call this function with these arguments (compact JSON).
    Call { name: String, arguments: String },
    /// Text for the user.
    Text(String),
}

/// Reads the answer decoded under the plan's schema. It fails only if the answer was cut short by the token
/// limit before the JSON closed.
pub(super) fn read_answer(text: &str) -> Result<ToolAnswer, GatewayError> {
    let cut_short = || {
        GatewayError::Provider(
            "the embedded model's function call was cut off by max_tokens; raise max_tokens".to_owned(),
        )
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| cut_short())?;
    if let Some(answer) = value.get("answer").and_then(serde_json::Value::as_str) {
        return Ok(ToolAnswer::Text(answer.to_owned()));
    }
    match (
        value.get("name").and_then(serde_json::Value::as_str),
        value.get("arguments"),
    ) {
        (Some(name), Some(arguments)) => Ok(ToolAnswer::Call {
            name: name.to_owned(),
            arguments: arguments.to_string(),
        }),
        _ => Err(cut_short()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(tool_choice: Option<serde_json::Value>) -> ChatCompletionRequest {
        serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": "Weather in Oslo?"}],
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "The weather.",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "time"}}
            ],
            "tool_choice": tool_choice,
        }))
        .unwrap()
    }

    #[test]
    fn the_choice_decides_what_the_answer_may_be() {
        let auto = plan(&request(None)).unwrap().unwrap();
        assert_eq!(auto.schema["anyOf"].as_array().unwrap().len(), 3);
        assert!(auto.instructions.contains("weather: The weather."));
        let required = plan(&request(Some(serde_json::json!("required")))).unwrap().unwrap();
        assert!(!required.instructions.contains("answer\": "));
        assert_eq!(required.schema["anyOf"].as_array().unwrap().len(), 2);
        let named = plan(&request(Some(
            serde_json::json!({"type": "function", "function": {"name": "time"}}),
        )))
        .unwrap()
        .unwrap();
        assert_eq!(named.schema["anyOf"][0]["properties"]["name"]["const"], "time");
        assert!(plan(&request(Some(serde_json::json!("none")))).unwrap().is_none());
        assert!(
            plan(&request(Some(
                serde_json::json!({"type": "function", "function": {"name": "nope"}})
            )))
            .is_err()
        );
    }

    #[test]
    fn answers_read_as_calls_or_text() {
        assert_eq!(
            read_answer(r#"{"name": "weather", "arguments": {"city": "Oslo"}}"#).unwrap(),
            ToolAnswer::Call {
                name: "weather".to_owned(),
                arguments: r#"{"city":"Oslo"}"#.to_owned()
            }
        );
        assert_eq!(
            read_answer(r#"{"answer": "Hi"}"#).unwrap(),
            ToolAnswer::Text("Hi".to_owned())
        );
        assert!(read_answer(r#"{"name": "weather", "argu"#).is_err());
    }
}
