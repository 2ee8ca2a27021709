//! The customer-service evaluation: each task's customer talks to the service agent through the real runtime
//! (journal, policy, tools); the task passes when the store afterwards equals the store after replaying the
//! task's gold actions, and every fact the agent had to communicate was said. pass^k is the share of tasks that
//! pass in all of k independent trials.
//!
//! Two players of each part: the agent's model is the gateway's (any model) or a script that plays the gold
//! actions by the policy (authenticate, ask before each change, wait for yes), which checks the runtime and the
//! tools deterministically; the customer is a script (says why they came, says yes when asked to confirm) or a
//! model given the task's scenario.

mod scripted;

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use gateway::openai::{ChatCompletionRequest, ChatMessage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AgentError;
use crate::journal::{Event, Journal};
use crate::model::ModelClient;
use crate::retail::{self, RetailDb, RetailToolset};
use crate::runtime::Runtime;
use crate::tool::ToolEffect;

pub use scripted::ScriptedAgent;

/// One task of a task file (the fields the evaluation uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    /// Its id.
    pub id: String,
    /// The customer's side.
    pub user_scenario: UserScenario,
    /// What must be true at the end.
    pub evaluation_criteria: Criteria,
}

/// The simulated customer's scenario.
#[derive(Debug, Clone, Deserialize)]
pub struct UserScenario {
    /// Their instructions.
    pub instructions: Instructions,
}

/// What the customer wants and knows.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct Instructions {
    #[serde(default)]
    pub task_instructions: String,
    #[serde(default)]
    pub reason_for_call: String,
    #[serde(default)]
    pub known_info: String,
    #[serde(default)]
    pub unknown_info: Option<String>,
}

/// The task's gold outcome.
#[derive(Debug, Clone, Deserialize)]
pub struct Criteria {
    /// The actions whose replay gives the gold store.
    #[serde(default)]
    pub actions: Option<Vec<Action>>,
    /// Facts the agent must say.
    #[serde(default)]
    pub communicate_info: Option<Vec<String>>,
}

/// A tool call of the gold outcome.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    /// The tool.
    pub name: String,
    /// Its arguments.
    pub arguments: Value,
}

impl Task {
    /// The gold actions.
    pub fn actions(&self) -> &[Action] {
        self.evaluation_criteria.actions.as_deref().unwrap_or(&[])
    }

    /// The facts the agent must say.
    pub fn facts(&self) -> &[String] {
        self.evaluation_criteria.communicate_info.as_deref().unwrap_or(&[])
    }
}

/// Reads a task file (a JSON array in the format of `tasks_train.json`).
pub fn load_tasks(path: &Path) -> Result<Vec<Task>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{} is not a task file: {error}", path.display()))
}

/// Who the customer of a task is: the user its gold actions act for.
pub fn task_customer(db: &RetailDb, task: &Task) -> Option<String> {
    task.actions().iter().find_map(|action| {
        let arguments = &action.arguments;
        if let Some(user) = arguments.get("user_id").and_then(Value::as_str) {
            return Some(user.to_owned());
        }
        if let Some(order) = arguments.get("order_id").and_then(Value::as_str) {
            return db.orders.get(order).map(|order| order.user_id.clone());
        }
        if action.name == "find_user_id_by_email" {
            let email = arguments.get("email").and_then(Value::as_str)?;
            return db
                .users
                .values()
                .find(|u| u.email.eq_ignore_ascii_case(email))
                .map(|u| u.user_id.clone());
        }
        if action.name == "find_user_id_by_name_zip" {
            let first = arguments.get("first_name").and_then(Value::as_str)?.to_lowercase();
            let last = arguments.get("last_name").and_then(Value::as_str)?.to_lowercase();
            let zip = arguments.get("zip").and_then(Value::as_str)?;
            return db
                .users
                .values()
                .find(|u| {
                    u.name.first_name.to_lowercase() == first
                        && u.name.last_name.to_lowercase() == last
                        && u.address.zip == zip
                })
                .map(|u| u.user_id.clone());
        }
        None
    })
}

/// The store after replaying the task's gold actions on `base`; an error names an action that is no tool.
pub async fn gold_db(base: &RetailDb, task: &Task) -> Result<RetailDb, String> {
    let db = Arc::new(Mutex::new(base.clone()));
    let customer = task_customer(base, task).unwrap_or_default();
    let toolbox = retail::toolbox_for(db.clone(), &customer);
    for action in task.actions() {
        let tool = toolbox
            .get(&action.name)
            .ok_or_else(|| format!("task {}: gold action {} is not a store tool", task.id, action.name))?;
        // A gold write the store refuses (one task's gift card cannot cover its exchange) leaves the store as
        // it was, as it does for the agent: the gold store is what the actions achieve.
        if tool.spec().effect == ToolEffect::Write
            && let Err(error) = tool.call(action.arguments.clone()).await
        {
            tracing::debug!(task = %task.id, action = %action.name, %error, "gold action refused");
        }
    }
    let gold = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    Ok(gold)
}

/// The simulated customer.
pub trait Customer: Send {
    /// The next message, given the agent's last one (`None` at the start); `None` ends the conversation.
    fn reply<'a>(&'a mut self, agent: Option<&'a str>) -> BoxFuture<'a, Option<String>>;
}

/// A customer that states why they came and what they know, and says yes when asked to confirm.
pub struct ScriptedCustomer {
    opening: String,
    known: String,
    turns: usize,
    idle_replies: usize,
}

impl ScriptedCustomer {
    /// The customer of `task`.
    pub fn new(task: &Task) -> ScriptedCustomer {
        let instructions = &task.user_scenario.instructions;
        ScriptedCustomer {
            opening: format!("{} {}", instructions.reason_for_call, instructions.known_info)
                .trim()
                .to_owned(),
            known: instructions.known_info.clone(),
            turns: 0,
            idle_replies: 0,
        }
    }
}

/// Most messages a customer sends before giving up.
const MAX_CUSTOMER_TURNS: usize = 30;

impl Customer for ScriptedCustomer {
    fn reply<'a>(&'a mut self, agent: Option<&'a str>) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            self.turns += 1;
            if self.turns > MAX_CUSTOMER_TURNS {
                return None;
            }
            let Some(agent) = agent else {
                return Some(self.opening.clone());
            };
            let lower = agent.to_lowercase();
            if lower.contains("transferred to a human") || lower.contains("anything else") {
                return None;
            }
            if lower.contains("yes/no") || lower.contains("confirm") || lower.contains("proceed") {
                self.idle_replies = 0;
                return Some("Yes, please proceed.".to_owned());
            }
            self.idle_replies += 1;
            (self.idle_replies <= 2).then(|| self.known.clone())
        })
    }
}

/// A customer played by a model, given the task's scenario; it ends the conversation by saying `###STOP###`.
pub struct ModelCustomer {
    models: Arc<dyn ModelClient>,
    model: String,
    system: String,
    transcript: Vec<ChatMessage>,
    turns: usize,
}

impl ModelCustomer {
    /// The customer of `task`, played by `model`.
    pub fn new(models: Arc<dyn ModelClient>, model: &str, task: &Task) -> ModelCustomer {
        let i = &task.user_scenario.instructions;
        let system = format!(
            "You are a customer writing to a store's customer service. Write only your own short messages, one \
             or two sentences, as the customer. Reason for contacting: {}\nWhat you know: {}\nWhat you do not \
             know: {}\nHow you behave: {}\nGive information only when asked. When your request is handled or \
             cannot be, write ###STOP###.",
            i.reason_for_call,
            i.known_info,
            i.unknown_info.as_deref().unwrap_or("nothing in particular"),
            i.task_instructions
        );
        ModelCustomer {
            models,
            model: model.to_owned(),
            system,
            transcript: Vec::new(),
            turns: 0,
        }
    }
}

impl Customer for ModelCustomer {
    fn reply<'a>(&'a mut self, agent: Option<&'a str>) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            self.turns += 1;
            if self.turns > MAX_CUSTOMER_TURNS {
                return None;
            }
            // The customer's model sees the agent as the user and itself as the assistant.
            let agent_text = agent.unwrap_or("Hello, how can I help you today?");
            self.transcript.push(ChatMessage::text("user", agent_text));
            let mut messages = vec![ChatMessage::text("system", self.system.clone())];
            messages.extend(self.transcript.iter().cloned());
            let request = ChatCompletionRequest {
                model: self.model.clone(),
                messages,
                max_tokens: Some(160),
                temperature: Some(0.0),
                ..ChatCompletionRequest::default()
            };
            let completion = self.models.chat("retail-customer", request).await.ok()?;
            let text = completion
                .choices
                .into_iter()
                .next()?
                .message
                .content
                .unwrap_or_default();
            self.transcript.push(ChatMessage::text("assistant", text.clone()));
            if text.contains("###STOP###") || text.trim().is_empty() {
                return None;
            }
            Some(text)
        })
    }
}

/// One trial of one task.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// The task.
    pub task: String,
    /// Whether it passed.
    pub passed: bool,
    /// Whether the store matched the gold store.
    pub db_matches: bool,
    /// The facts the agent did not say.
    pub missing_facts: Vec<String>,
    /// Where the store differs from the gold one (a few lines).
    pub differences: Vec<String>,
    /// Messages the customer sent.
    pub customer_turns: usize,
    /// Tool calls the agent made.
    pub tool_calls: usize,
    /// Why the conversation stopped early, if it did.
    pub stopped: Option<String>,
}

/// Runs one conversation of `task` on a fresh copy of `base` and scores it.
pub async fn run_trial(
    journal: Journal,
    models: Arc<dyn ModelClient>,
    agent: crate::spec::AgentSpec,
    base: &RetailDb,
    task: &Task,
    customer: &mut dyn Customer,
) -> Result<Trial, AgentError> {
    let db = Arc::new(Mutex::new(base.clone()));
    let runtime = Runtime::new(journal, models);
    runtime.add_toolset(retail::TOOLSET, Arc::new(RetailToolset::new(db.clone())));
    let agent_name = agent.name.clone();
    runtime.add_agent(agent)?;
    let session = runtime
        .create_session(&agent_name, &format!("task-{}", task.id))
        .await?;
    let mut said = Vec::new();
    let mut last_answer: Option<String> = None;
    let mut stopped = None;
    let mut customer_turns = 0;
    while let Some(message) = customer.reply(last_answer.as_deref()).await {
        customer_turns += 1;
        let events = runtime.send(&session, message).await?;
        let (_, outcome) = Runtime::collect(events).await;
        let Some(outcome) = outcome else {
            stopped = Some("the run ended without an outcome".to_owned());
            break;
        };
        if let Some(reason) = outcome.stopped {
            stopped = Some(reason);
            break;
        }
        if let Some(answer) = &outcome.answer {
            said.push(answer.clone());
        }
        last_answer = outcome.answer;
    }
    let events: Vec<Event> = runtime
        .journal()
        .events(&session.id)
        .await?
        .into_iter()
        .map(|r| r.event)
        .collect();
    let tool_calls = events
        .iter()
        .filter(|event| matches!(event, Event::ToolStarted { .. }))
        .count();
    let gold = gold_db(base, task).await.map_err(AgentError::Invalid)?;
    let actual = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let db_matches = actual == gold;
    let spoken = normalise(&said.join("\n"));
    let missing_facts: Vec<String> = task
        .facts()
        .iter()
        .filter(|fact| !spoken.contains(&normalise(fact)))
        .cloned()
        .collect();
    Ok(Trial {
        task: task.id.clone(),
        passed: db_matches && missing_facts.is_empty(),
        db_matches,
        missing_facts,
        differences: actual.differences(&gold, 5),
        customer_turns,
        tool_calls,
        stopped,
    })
}

/// Who plays the agent's model.
#[derive(Clone)]
pub enum AgentPlayer {
    /// The gold actions, played by the policy ([`ScriptedAgent`]).
    Scripted,
    /// A gateway model.
    Model {
        /// How to reach it.
        models: Arc<dyn ModelClient>,
        /// Its name.
        model: String,
    },
}

/// Who plays the customer.
#[derive(Clone)]
pub enum CustomerPlayer {
    /// [`ScriptedCustomer`].
    Scripted,
    /// [`ModelCustomer`] on a gateway model.
    Model {
        /// How to reach it.
        models: Arc<dyn ModelClient>,
        /// Its name.
        model: String,
    },
}

/// The result of an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Tasks run.
    pub tasks: usize,
    /// Trials per task.
    pub k: usize,
    /// pass^1..pass^k.
    pub pass_hat: Vec<f64>,
    /// Every trial, task by task.
    pub trials: Vec<Trial>,
}

/// Runs every task `k` times and scores them; `progress` hears of each finished trial.
pub async fn evaluate(
    journal: &Journal,
    base: &RetailDb,
    tasks: &[Task],
    k: usize,
    agent: &AgentPlayer,
    customer: &CustomerPlayer,
    mut progress: impl FnMut(&Trial),
) -> Result<Report, AgentError> {
    let mut trials = Vec::with_capacity(tasks.len() * k);
    let mut successes = Vec::with_capacity(tasks.len());
    for task in tasks {
        let mut passed = 0;
        for _ in 0..k {
            let (models, model): (Arc<dyn ModelClient>, String) = match agent {
                AgentPlayer::Scripted => (Arc::new(ScriptedAgent::new(base, task)), "scripted".to_owned()),
                AgentPlayer::Model { models, model } => (models.clone(), model.clone()),
            };
            let mut player: Box<dyn Customer> = match customer {
                CustomerPlayer::Scripted => Box::new(ScriptedCustomer::new(task)),
                CustomerPlayer::Model { models, model } => Box::new(ModelCustomer::new(models.clone(), model, task)),
            };
            let spec = retail::service_agent(&model, retail::POLICY);
            let trial = run_trial(journal.clone(), models, spec, base, task, player.as_mut()).await?;
            passed += usize::from(trial.passed);
            progress(&trial);
            trials.push(trial);
        }
        successes.push(passed);
    }
    Ok(Report {
        tasks: tasks.len(),
        k,
        pass_hat: pass_hat(&successes, k),
        trials,
    })
}

/// Lower case, commas out: "1,288.65" and "1288.65" are the same fact.
fn normalise(text: &str) -> String {
    text.to_lowercase().replace(',', "")
}

/// pass^1..pass^k from each task's successes out of `k` trials: the chance that j trials drawn from the k all
/// passed, averaged over tasks.
pub fn pass_hat(successes: &[usize], k: usize) -> Vec<f64> {
    fn choose(n: usize, r: usize) -> f64 {
        if r > n {
            return 0.0;
        }
        (0..r).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
    }
    (1..=k)
        .map(|j| {
            if successes.is_empty() {
                return 0.0;
            }
            successes.iter().map(|&c| choose(c, j) / choose(k, j)).sum::<f64>() / successes.len() as f64
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn pass_hat_of_all_or_nothing() {
        assert_eq!(pass_hat(&[3, 0], 3), vec![0.5, 0.5, 0.5]);
        let mixed = pass_hat(&[2], 4);
        assert!((mixed[0] - 0.5).abs() < 1e-9);
        assert!((mixed[1] - 1.0 / 6.0).abs() < 1e-9);
        assert_eq!(mixed[2], 0.0);
    }

    #[test]
    fn facts_ignore_case_and_thousands_separators() {
        assert!(normalise("Your refund is $1,288.65").contains(&normalise("1288.65")));
    }
}
