//! Function calling on the embedded engine. Small chat models have no tool format of their own, so the gateway
//! describes the request's tools in the system prompt and decodes the answer under a JSON Schema. The answer is
//! `{"calls": [{"name": ..., "arguments": ...}, ...]}`, each call's arguments held to its tool's own parameter
//! schema, or (with `tool_choice` `auto`) `{"answer": "..."}`, the model's text. Several independent calls come
//! in one answer (up to [`MAX_PARALLEL_CALLS`]) unless `parallel_tool_calls` is false or a named function is
//! forced, when the list holds exactly one. Either way it parses, so it becomes OpenAI `tool_calls` (or content)
//! every time. The answer is read whole before any of it is streamed, since its first token does not yet say
//! which of the two it is.

use crate::GatewayError;
use crate::openai::{ChatCompletionRequest, ChatMessage, ToolDefinition};

/// The most calls one answer may hold: enough for independent lookups, few enough that a small model that keeps
/// repeating a call stops soon.
const MAX_PARALLEL_CALLS: u64 = 4;

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
    let forced_one = matches!(&request.tool_choice, Some(choice) if choice.is_object());
    let most_calls = if forced_one || request.parallel_tool_calls == Some(false) {
        1
    } else {
        MAX_PARALLEL_CALLS
    };
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
    instructions.push_str(if most_calls == 1 {
        r#"To call a function, answer {"calls": [{"name": "<function>", "arguments": {...}}]}."#
    } else {
        r#"To call functions, answer {"calls": [{"name": "<function>", "arguments": {...}}]}, listing several calls when they are independent."#
    });
    let call_list = serde_json::json!({
        "type": "object",
        "properties": {
            "calls": {"type": "array", "items": {"anyOf": calls}, "minItems": 1, "maxItems": most_calls},
        },
        "required": ["calls"],
        "additionalProperties": false,
    });
    let schema = match mode {
        ToolMode::Call => call_list,
        ToolMode::Auto => {
            instructions.push_str(r#" Otherwise answer {"answer": "<your reply>"}."#);
            serde_json::json!({"anyOf": [call_list, {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
                "additionalProperties": false,
            }]})
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
    let written: Vec<serde_json::Value> = calls
        .iter()
        .map(|call| {
            let arguments: serde_json::Value =
                serde_json::from_str(&call.function.arguments).unwrap_or_else(|_| serde_json::json!({}));
            serde_json::json!({"name": call.function.name, "arguments": arguments})
        })
        .collect();
    Some(("assistant", serde_json::json!({ "calls": written }).to_string()))
}

/// What a tool-mode answer says.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ToolAnswer {
    /// Call these functions, in this order.
    Calls(Vec<ToolCall>),
    /// Text for the user.
    Text(String),
}

/// One call of a tool-mode answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolCall {
    pub(super) name: String,
    /// The arguments, as compact JSON.
    pub(super) arguments: String,
}

/// Reads the answer decoded under the plan's schema. The same call twice in one answer is kept once: a small
/// model tends to repeat itself, and a repeat is never a second independent call. An answer the token limit cut
/// off keeps the calls it completed (each whole and valid); it fails only if it completed none.
pub(super) fn read_answer(text: &str) -> Result<ToolAnswer, GatewayError> {
    let cut_short = || {
        GatewayError::Provider(
            "the embedded model's function call was cut off by max_tokens; raise max_tokens".to_owned(),
        )
    };
    let calls: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => {
            if let Some(answer) = value.get("answer").and_then(serde_json::Value::as_str) {
                return Ok(ToolAnswer::Text(answer.to_owned()));
            }
            value
                .get("calls")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        Err(_) => match cut_off_answer(text) {
            Some(answer) => return Ok(ToolAnswer::Text(answer)),
            None => completed_calls(text),
        },
    };
    let mut read: Vec<ToolCall> = Vec::new();
    for call in &calls {
        let (Some(name), Some(arguments)) = (
            call.get("name").and_then(serde_json::Value::as_str),
            call.get("arguments"),
        ) else {
            return Err(cut_short());
        };
        let call = ToolCall {
            name: name.to_owned(),
            arguments: arguments.to_string(),
        };
        if !read.contains(&call) {
            read.push(call);
        }
    }
    if read.is_empty() {
        return Err(cut_short());
    }
    Ok(ToolAnswer::Calls(read))
}

/// The text of a `{"answer": "...` the token limit cut off, as far as it got (an escape sequence the cut split
/// is dropped).
fn cut_off_answer(text: &str) -> Option<String> {
    let rest = text.strip_prefix(r#"{"answer": ""#)?;
    // An escape is at most six characters (`\uXXXX`): dropping up to that many finds a whole string.
    (0..=6.min(rest.len())).find_map(|dropped| {
        let end = rest.len() - dropped;
        let kept = rest.get(..end)?;
        serde_json::from_str::<String>(&format!("\"{kept}\"")).ok()
    })
}

/// The calls a cut-off `{"calls": [...` answer completed: each item of the list that closed.
fn completed_calls(text: &str) -> Vec<serde_json::Value> {
    let Some(list) = text.find('[') else {
        return Vec::new();
    };
    let mut calls = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0usize, false, false, None);
    for (offset, byte) in text.bytes().enumerate().skip(list + 1) {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                if depth == 0 {
                    start = Some(offset);
                }
                depth += 1;
            }
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                if let (0, Some(begin)) = (depth, start) {
                    if let Ok(call) = serde_json::from_str(&text[begin..=offset]) {
                        calls.push(call);
                    }
                    start = None;
                }
            }
            _ => {}
        }
    }
    calls
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
        let calls_of = |list: &serde_json::Value| list["properties"]["calls"]["items"]["anyOf"].clone();
        let auto = plan(&request(None)).unwrap().unwrap();
        assert_eq!(auto.schema["anyOf"].as_array().unwrap().len(), 2, "calls or an answer");
        assert_eq!(calls_of(&auto.schema["anyOf"][0]).as_array().unwrap().len(), 2);
        assert!(auto.instructions.contains("weather: The weather."));
        let required = plan(&request(Some(serde_json::json!("required")))).unwrap().unwrap();
        assert!(!required.instructions.contains("answer\": "));
        assert_eq!(calls_of(&required.schema).as_array().unwrap().len(), 2);
        let named = plan(&request(Some(
            serde_json::json!({"type": "function", "function": {"name": "time"}}),
        )))
        .unwrap()
        .unwrap();
        assert_eq!(calls_of(&named.schema)[0]["properties"]["name"]["const"], "time");
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
            read_answer(
                r#"{"calls": [{"name": "weather", "arguments": {"city": "Oslo"}}, {"name": "time", "arguments": {}}]}"#
            )
            .unwrap(),
            ToolAnswer::Calls(vec![
                ToolCall {
                    name: "weather".to_owned(),
                    arguments: r#"{"city":"Oslo"}"#.to_owned()
                },
                ToolCall {
                    name: "time".to_owned(),
                    arguments: "{}".to_owned()
                },
            ])
        );
        assert_eq!(
            read_answer(r#"{"answer": "Hi"}"#).unwrap(),
            ToolAnswer::Text("Hi".to_owned())
        );
        assert!(read_answer(r#"{"calls": [{"name": "weather", "argu"#).is_err());
        assert!(read_answer(r#"{"calls": []}"#).is_err());
        // Cut off after one whole call (with a brace inside a string), and a repeated call: one call each.
        let cut = r#"{"calls": [{"name": "weather", "arguments": {"city": "O}slo \"x\""}}, {"name": "weath"#;
        assert_eq!(
            read_answer(cut).unwrap(),
            ToolAnswer::Calls(vec![ToolCall {
                name: "weather".to_owned(),
                arguments: r#"{"city":"O}slo \"x\""}"#.to_owned()
            }])
        );
        assert_eq!(
            read_answer(r#"{"answer": "It is cold \"#).unwrap(),
            ToolAnswer::Text("It is cold ".to_owned())
        );
        let repeated = r#"{"calls": [{"name": "time", "arguments": {}}, {"name": "time", "arguments": {}}]}"#;
        assert_eq!(
            read_answer(repeated).unwrap(),
            ToolAnswer::Calls(vec![ToolCall {
                name: "time".to_owned(),
                arguments: "{}".to_owned()
            }])
        );
    }

    #[test]
    fn parallel_calls_are_allowed_unless_turned_off_or_one_function_is_forced() {
        let most = |plan: ToolPlan| {
            let list = match plan.schema.get("anyOf") {
                Some(choices) => choices[0].clone(),
                None => plan.schema,
            };
            list["properties"]["calls"]["maxItems"].as_u64().unwrap()
        };
        assert_eq!(most(plan(&request(None)).unwrap().unwrap()), MAX_PARALLEL_CALLS);
        let mut sequential = request(Some(serde_json::json!("required")));
        sequential.parallel_tool_calls = Some(false);
        assert_eq!(most(plan(&sequential).unwrap().unwrap()), 1);
        let named = request(Some(
            serde_json::json!({"type": "function", "function": {"name": "time"}}),
        ));
        assert_eq!(most(plan(&named).unwrap().unwrap()), 1);
    }
}
