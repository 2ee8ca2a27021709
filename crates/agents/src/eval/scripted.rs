//! A deterministic agent model for the evaluation: it plays a task's gold actions as tool calls, by the policy.
//! It authenticates first (by the customer's email when the gold actions do not), asks for a yes before each
//! change and makes it only after one, then states the facts the task requires. It knows the answer, so it
//! checks everything but the model: the runtime's loop, journal and policy, and the tools' arguments and effects.

use futures::future::BoxFuture;
use gateway::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionRequest, ChatMessage, FunctionCall, ToolCall, Usage,
};
use serde_json::{Value, json};

use super::{Task, task_customer};
use crate::model::ModelClient;
use crate::retail::RetailDb;

/// The names of the store's tools that change it.
const WRITES: [&str; 7] = [
    "cancel_pending_order",
    "exchange_delivered_order_items",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
];

struct Step {
    name: String,
    arguments: Value,
}

/// A task's gold actions, played as a model.
pub struct ScriptedAgent {
    steps: Vec<Step>,
    closing: String,
}

const CONFIRM_MARK: &str = "Shall I proceed (yes/no)?";

impl ScriptedAgent {
    /// The script of `task` on the store `db`.
    pub fn new(db: &RetailDb, task: &Task) -> ScriptedAgent {
        let mut steps = Vec::new();
        let authenticates = task
            .actions()
            .first()
            .is_some_and(|action| action.name.starts_with("find_user_id_by"));
        if !authenticates
            && let Some(email) = task_customer(db, task)
                .and_then(|user| db.users.get(&user))
                .map(|user| user.email.clone())
        {
            steps.push(Step {
                name: "find_user_id_by_email".to_owned(),
                arguments: json!({ "email": email }),
            });
        }
        steps.extend(task.actions().iter().map(|action| Step {
            name: action.name.clone(),
            arguments: action.arguments.clone(),
        }));
        let mut closing = String::new();
        if !task.facts().is_empty() {
            closing.push_str(&format!("Here is what you asked about: {}. ", task.facts().join(", ")));
        }
        if task
            .actions()
            .iter()
            .any(|action| action.name == "transfer_to_human_agents")
        {
            closing.push_str("YOU ARE BEING TRANSFERRED TO A HUMAN AGENT. PLEASE HOLD ON.");
        } else {
            closing.push_str("Is there anything else I can help you with?");
        }
        ScriptedAgent { steps, closing }
    }

    fn next(&self, messages: &[ChatMessage]) -> AssistantMessage {
        let done = messages
            .iter()
            .filter(|m| m.role == "assistant" && m.tool_calls.is_some())
            .count();
        let Some(step) = self.steps.get(done) else {
            return text(&self.closing);
        };
        if WRITES.contains(&step.name.as_str()) {
            let asked = messages
                .iter()
                .rev()
                .find(|m| m.role != "user")
                .is_some_and(|m| m.role == "assistant" && m.text_content().ends_with(CONFIRM_MARK));
            let answered = messages.last().is_some_and(|m| m.role == "user");
            if !(asked && answered) {
                return text(&format!(
                    "I will call {} with {}. {CONFIRM_MARK}",
                    step.name, step.arguments
                ));
            }
        }
        AssistantMessage {
            role: "assistant".to_owned(),
            content: None,
            refusal: None,
            tool_calls: Some(vec![ToolCall {
                id: format!("call_{done}"),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: step.name.clone(),
                    arguments: step.arguments.to_string(),
                },
            }]),
        }
    }
}

fn text(content: &str) -> AssistantMessage {
    AssistantMessage {
        role: "assistant".to_owned(),
        content: Some(content.to_owned()),
        refusal: None,
        tool_calls: None,
    }
}

impl ModelClient for ScriptedAgent {
    fn chat(&self, _agent: &str, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, String>> {
        let message = self.next(&request.messages);
        Box::pin(async move {
            Ok(ChatCompletion {
                id: "scripted".to_owned(),
                object: "chat.completion".to_owned(),
                created: 0,
                model: request.model,
                choices: vec![ChatChoice {
                    index: 0,
                    finish_reason: Some(
                        if message.tool_calls.is_some() {
                            "tool_calls"
                        } else {
                            "stop"
                        }
                        .to_owned(),
                    ),
                    message,
                    logprobs: None,
                }],
                usage: Some(Usage::new(0, 0)),
                system_fingerprint: None,
            })
        })
    }

    fn context_window(&self, _model: &str) -> Option<u32> {
        Some(1_000_000)
    }
}
