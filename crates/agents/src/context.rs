//! The model's context: the conversation rebuilt from the journal, then fitted into the window. Whole old turns
//! go first (a turn starts at a user message, so a tool call never loses its result); if the latest turn alone
//! is still too long, its longest tool results are shortened. A call never fails for overflow.

use gateway::openai::ChatMessage;
use serde_json::Value;

use crate::journal::Event;

/// Rough tokens of a text: four characters each, as the gateway's own estimate counts.
pub(crate) fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// Per-message framing (role markers, separators).
const MESSAGE_OVERHEAD: usize = 4;

/// The note that says how much of a result was cut, in tokens, with room to spare.
const CUT_NOTE_TOKENS: usize = 20;

fn message_tokens(message: &ChatMessage) -> usize {
    let calls: usize = message
        .tool_calls
        .iter()
        .flatten()
        .map(|call| estimate_tokens(&call.function.name) + estimate_tokens(&call.function.arguments) + 4)
        .sum();
    MESSAGE_OVERHEAD + estimate_tokens(&message.text_content()) + calls
}

/// Rough tokens of a conversation.
pub(crate) fn tokens(messages: &[ChatMessage]) -> usize {
    messages.iter().map(message_tokens).sum()
}

/// A tool result as the model reads it: strings as they are, anything else as JSON.
pub(crate) fn result_text(ok: bool, output: &Value) -> String {
    let text = match output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if ok { text } else { format!("Error: {text}") }
}

/// The conversation the events record, without the system message.
pub(crate) fn messages(events: &[Event]) -> Vec<ChatMessage> {
    let mut messages = Vec::new();
    for event in events {
        match event {
            Event::User { content } => messages.push(ChatMessage::text("user", content.clone())),
            Event::Assistant {
                content, tool_calls, ..
            } => {
                let mut message = ChatMessage::text("assistant", content.clone().unwrap_or_default());
                if content.is_none() {
                    message.content = None;
                }
                if !tool_calls.is_empty() {
                    message.tool_calls = Some(tool_calls.clone());
                }
                messages.push(message);
            }
            Event::ToolResult {
                call_id, ok, output, ..
            } => {
                let mut message = ChatMessage::text("tool", result_text(*ok, output));
                message.tool_call_id = Some(call_id.clone());
                messages.push(message);
            }
            _ => {}
        }
    }
    messages
}

/// What fitting did: how many messages were left out, how many shortened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Fitted {
    pub(crate) dropped: usize,
    pub(crate) shortened: usize,
}

/// Fits `messages` into `budget` tokens (the system message's and the tools' share already taken out).
pub(crate) fn fit(messages: &mut Vec<ChatMessage>, budget: usize) -> Fitted {
    let mut fitted = Fitted::default();
    let total = |messages: &[ChatMessage]| messages.iter().map(message_tokens).sum::<usize>();
    while total(messages) > budget {
        // The second user message starts the oldest turn that can go while a newer one stays.
        let Some(next_turn) = messages
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, m)| m.role == "user")
            .map(|(i, _)| i)
        else {
            break;
        };
        messages.drain(..next_turn);
        fitted.dropped += next_turn;
    }
    // Then the longest tool results, each cut once to what the budget leaves it (its note of what was cut
    // counted in).
    let mut cut = std::collections::HashSet::new();
    while total(messages) > budget {
        let Some((index, tokens)) = messages
            .iter()
            .enumerate()
            .filter(|(i, m)| m.role == "tool" && !cut.contains(i))
            .map(|(i, m)| (i, message_tokens(m)))
            .max_by_key(|(_, tokens)| *tokens)
        else {
            break;
        };
        cut.insert(index);
        let excess = total(messages) - budget;
        let keep_chars = tokens
            .saturating_sub(excess + MESSAGE_OVERHEAD + CUT_NOTE_TOKENS)
            .max(16)
            * 4;
        let text = messages[index].text_content();
        let length = text.chars().count();
        if length <= keep_chars {
            continue;
        }
        let kept: String = text.chars().take(keep_chars).collect();
        messages[index].content = Some(gateway::openai::MessageContent::Text(format!(
            "{kept}… [{} more characters left out to fit the context]",
            length - keep_chars
        )));
        fitted.shortened += 1;
    }
    fitted
}

/// The message text of the latest user event, and whether a tool that needs confirmation already ran since.
pub(crate) fn latest_user_message(events: &[Event]) -> Option<(usize, &str)> {
    events.iter().enumerate().rev().find_map(|(i, event)| match event {
        Event::User { content } => Some((i, content.as_str())),
        _ => None,
    })
}

/// Whether a user's message confirms what the agent proposed.
pub(crate) fn confirms(message: &str) -> bool {
    let lower = message.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|word| !word.is_empty())
        .collect();
    let negated = words.iter().any(|word| {
        matches!(
            *word,
            "no" | "not" | "don't" | "dont" | "cancel" | "stop" | "wait" | "nope"
        )
    });
    let affirmed = words.iter().any(|word| {
        matches!(
            *word,
            "yes" | "yeah" | "yep" | "y" | "confirm" | "confirmed" | "proceed" | "sure" | "ok" | "okay" | "correct"
        )
    }) || lower.contains("go ahead")
        || lower.contains("please do");
    affirmed && !negated
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use gateway::openai::{FunctionCall, ToolCall};

    fn call(id: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            kind: "function".into(),
            function: FunctionCall {
                name: "get_order_details".into(),
                arguments: "{}".into(),
            },
        }
    }

    fn turn(n: usize, result: &str) -> Vec<Event> {
        vec![
            Event::User {
                content: format!("question {n}"),
            },
            Event::Assistant {
                content: None,
                tool_calls: vec![call(&format!("c{n}"))],
                prompt_tokens: 0,
                completion_tokens: 0,
            },
            Event::ToolResult {
                call_id: format!("c{n}"),
                tool: "get_order_details".into(),
                ok: true,
                output: Value::String(result.into()),
                millis: 0,
            },
            Event::Assistant {
                content: Some(format!("answer {n}")),
                tool_calls: vec![],
                prompt_tokens: 0,
                completion_tokens: 0,
            },
        ]
    }

    #[test]
    fn old_turns_go_whole_and_every_call_keeps_its_result() {
        let events: Vec<Event> = (0..50).flat_map(|n| turn(n, &"x".repeat(400))).collect();
        let mut messages = messages(&events);
        let fitted = fit(&mut messages, 1_000);
        assert!(fitted.dropped > 0);
        assert_eq!(messages[0].role, "user");
        assert!(messages.iter().map(message_tokens).sum::<usize>() <= 1_000);
        for (i, message) in messages.iter().enumerate() {
            if message.tool_calls.is_some() {
                assert_eq!(messages[i + 1].role, "tool");
            }
        }
        assert_eq!(messages.last().unwrap().text_content(), "answer 49");
    }

    #[test]
    fn a_single_huge_result_is_shortened_to_fit() {
        let events = turn(0, &"y".repeat(100_000));
        let mut messages = messages(&events);
        let fitted = fit(&mut messages, 2_000);
        assert_eq!(fitted.shortened, 1);
        assert!(messages.iter().map(message_tokens).sum::<usize>() <= 2_000);
        assert!(messages[2].text_content().contains("left out to fit"));
    }

    #[test]
    fn confirmation_is_read_from_plain_words() {
        assert!(confirms("Yes, please."));
        assert!(confirms("ok go ahead"));
        assert!(confirms("That's correct, proceed"));
        assert!(!confirms("No, don't do that"));
        assert!(!confirms("What is my order status?"));
        assert!(!confirms("yes... wait, no"));
    }
}
