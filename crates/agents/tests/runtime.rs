//! The runtime over a real SQLite journal: the retail evaluation with the scripted agent, the policy in front of
//! writes, approvals and interrupted runs that survive a restart, and context that never overflows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use agents::eval::{self, AgentPlayer, CustomerPlayer};
use agents::retail::{self, RetailDb, RetailToolset};
use agents::{AgentSpec, Event, Journal, ModelClient, Runtime, SessionStatus};
use futures::future::BoxFuture;
use gateway::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionRequest, FunctionCall, ToolCall, Usage,
};
use serde_json::json;

fn store() -> RetailDb {
    serde_json::from_str(retail::DEMO_STORE).unwrap()
}

async fn journal_in(dir: &std::path::Path) -> Journal {
    Journal::open(store::Database::open_in_data_dir(dir).await.unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripted_agent_passes_every_training_task_through_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_in(dir.path()).await;
    let tasks: Vec<eval::Task> = serde_json::from_str(retail::TRAIN_TASKS).unwrap();
    assert_eq!(tasks.len(), 74);
    let base = store();
    let report = eval::evaluate(
        &journal,
        &base,
        &tasks,
        1,
        &AgentPlayer::Scripted,
        &CustomerPlayer::Scripted,
        |_| {},
    )
    .await
    .unwrap();
    let failed: Vec<_> = report.trials.iter().filter(|trial| !trial.passed).collect();
    assert!(failed.is_empty(), "failed trials: {failed:#?}");
    assert_eq!(report.pass_hat, vec![1.0]);
    // The writes really happened: most tasks change the store.
    let changed = tasks
        .iter()
        .filter(|task| {
            task.actions().iter().any(|a| {
                a.name.starts_with("cancel")
                    || a.name.starts_with("modify")
                    || a.name.starts_with("return")
                    || a.name.starts_with("exchange")
            })
        })
        .count();
    assert!(changed > 60, "{changed}");
}

/// A model that answers from a queue, recording every request it was sent.
#[derive(Default)]
struct QueuedModel {
    answers: Mutex<VecDeque<AssistantMessage>>,
    requests: Mutex<Vec<ChatCompletionRequest>>,
}

impl QueuedModel {
    fn new(answers: Vec<AssistantMessage>) -> Arc<QueuedModel> {
        Arc::new(QueuedModel {
            answers: Mutex::new(answers.into()),
            requests: Mutex::new(Vec::new()),
        })
    }
}

fn say(text: &str) -> AssistantMessage {
    AssistantMessage {
        role: "assistant".into(),
        content: Some(text.into()),
        refusal: None,
        tool_calls: None,
    }
}

fn call(id: &str, name: &str, arguments: serde_json::Value) -> AssistantMessage {
    AssistantMessage {
        role: "assistant".into(),
        content: None,
        refusal: None,
        tool_calls: Some(vec![ToolCall {
            id: id.into(),
            kind: "function".into(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.to_string(),
            },
        }]),
    }
}

impl ModelClient for QueuedModel {
    fn chat(&self, _agent: &str, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, String>> {
        self.requests.lock().unwrap().push(request.clone());
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| say("(no more answers)"));
        Box::pin(async move {
            Ok(ChatCompletion {
                id: "queued".into(),
                object: "chat.completion".into(),
                created: 0,
                model: request.model,
                choices: vec![ChatChoice {
                    index: 0,
                    message: answer,
                    finish_reason: Some("stop".into()),
                    logprobs: None,
                }],
                usage: Some(Usage::new(10, 5)),
                system_fingerprint: None,
            })
        })
    }

    fn context_window(&self, _model: &str) -> Option<u32> {
        Some(4096)
    }
}

fn runtime(journal: Journal, model: Arc<QueuedModel>, db: retail::SharedRetailDb, spec: AgentSpec) -> Runtime {
    let runtime = Runtime::new(journal, model);
    runtime.add_toolset(retail::TOOLSET, Arc::new(RetailToolset::new(db)));
    runtime.add_agent(spec).unwrap();
    runtime
}

const CUSTOMER_EMAIL: &str = "noah.brown7922@example.com";
const CUSTOMER_ORDER: &str = "#W7678072";

fn spec(policy: &str) -> AgentSpec {
    AgentSpec::parse(&format!(
        "name = \"service\"\nmodel = \"m\"\ntoolsets = [\"retail\"]\n[policy]\n{policy}"
    ))
    .unwrap()
}

#[tokio::test]
async fn a_write_without_the_users_yes_is_refused_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Mutex::new(store()));
    let before = db.lock().unwrap().clone();
    let pending = before
        .orders
        .values()
        .find(|o| o.status == retail::db::OrderStatus::Pending)
        .unwrap()
        .clone();
    let email = before.users[&pending.user_id].email.clone();
    let model = QueuedModel::new(vec![
        call("c1", "find_user_id_by_email", json!({"email": email})),
        call(
            "c2",
            "cancel_pending_order",
            json!({"order_id": pending.order_id, "reason": "no longer needed"}),
        ),
        say("I need your confirmation first."),
    ]);
    let runtime = runtime(
        journal_in(dir.path()).await,
        model.clone(),
        db.clone(),
        spec("confirm = [\"writes\"]"),
    );
    let session = runtime.create_session("service", "tester").await.unwrap();
    let (events, outcome) = Runtime::collect(runtime.send(&session, "cancel my order".into()).await.unwrap()).await;
    assert_eq!(
        outcome.unwrap().answer.as_deref(),
        Some("I need your confirmation first.")
    );
    assert_eq!(*db.lock().unwrap(), before);
    let refusal = events
        .iter()
        .find_map(|r| match &r.event {
            Event::ToolResult {
                call_id,
                ok: false,
                output,
                ..
            } if call_id == "c2" => Some(output.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(refusal.contains("confirm"), "{refusal}");

    // Another customer's order is refused even with a yes.
    let model2 = QueuedModel::new(vec![
        call("c3", "get_order_details", json!({"order_id": CUSTOMER_ORDER})),
        say("done"),
    ]);
    let runtime = self::runtime(journal_in(dir.path()).await, model2, db.clone(), spec(""));
    let other = runtime.create_session("service", "tester").await.unwrap();
    let (events, _) = Runtime::collect(runtime.send(&other, "yes".into()).await.unwrap()).await;
    let refused = events.iter().any(|r| matches!(&r.event, Event::ToolResult { ok: false, output, .. } if output.to_string().contains("authenticate")));
    assert!(refused, "{events:#?}");
}

#[tokio::test]
async fn an_approval_survives_a_restart_and_the_call_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Mutex::new(store()));
    let address = json!({
        "user_id": "noah_brown_6181", "address1": "1 New Street", "address2": "", "city": "Austin",
        "state": "TX", "country": "USA", "zip": "73301"
    });
    let first = QueuedModel::new(vec![
        call("c1", "find_user_id_by_email", json!({"email": CUSTOMER_EMAIL})),
        call("c2", "modify_user_address", address.clone()),
    ]);
    let session = {
        let runtime = runtime(
            journal_in(dir.path()).await,
            first,
            db.clone(),
            spec("approval = [\"writes\"]"),
        );
        let session = runtime.create_session("service", "tester").await.unwrap();
        let (_, outcome) = Runtime::collect(runtime.send(&session, "move me to Austin".into()).await.unwrap()).await;
        let outcome = outcome.unwrap();
        assert_eq!(outcome.status, SessionStatus::AwaitingApproval);
        assert_eq!(outcome.pending_approval.unwrap().id, "c2");
        // A message while the approval waits is refused.
        assert!(runtime.send(&session, "hello?".into()).await.is_err());
        session
    };
    assert_eq!(db.lock().unwrap().users["noah_brown_6181"].address.city, "Denver");

    // A new process: the same journal, a new runtime, the identity rebuilt from the journal.
    let second = QueuedModel::new(vec![say("Your address is updated.")]);
    let runtime = runtime(
        journal_in(dir.path()).await,
        second,
        db.clone(),
        spec("approval = [\"writes\"]"),
    );
    let session = runtime.journal().session(&session.id).await.unwrap().unwrap();
    assert_eq!(session.status, SessionStatus::AwaitingApproval);
    assert!(runtime.decide(&session, "nope", true, "ops").await.is_err());
    let (_, outcome) = Runtime::collect(runtime.decide(&session, "c2", true, "ops").await.unwrap()).await;
    assert_eq!(outcome.unwrap().answer.as_deref(), Some("Your address is updated."));
    assert_eq!(db.lock().unwrap().users["noah_brown_6181"].address.city, "Austin");
    let events = runtime.journal().events(&session.id).await.unwrap();
    let runs = events
        .iter()
        .filter(|r| matches!(&r.event, Event::ToolStarted { call_id, .. } if call_id == "c2"))
        .count();
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn an_interrupted_run_resumes_and_never_repeats_a_started_call() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Mutex::new(store()));
    let journal = journal_in(dir.path()).await;
    let session = journal.create("service", "tester").await.unwrap();
    // What a process that died mid-call leaves: the call started, no result, the session running.
    journal
        .append(
            &session.id,
            &Event::User {
                content: "cancel it".into(),
            },
        )
        .await
        .unwrap();
    let cancel = call(
        "c9",
        "cancel_pending_order",
        json!({"order_id": "#W2611340", "reason": "no longer needed"}),
    );
    journal
        .append(
            &session.id,
            &Event::Assistant {
                content: None,
                tool_calls: cancel.tool_calls.clone().unwrap(),
                prompt_tokens: 1,
                completion_tokens: 1,
            },
        )
        .await
        .unwrap();
    journal
        .append(
            &session.id,
            &Event::ToolStarted {
                call_id: "c9".into(),
                tool: "cancel_pending_order".into(),
            },
        )
        .await
        .unwrap();
    journal.set_status(&session.id, SessionStatus::Running).await.unwrap();

    let model = QueuedModel::new(vec![say("Let me check the order first.")]);
    let runtime = runtime(journal_in(dir.path()).await, model.clone(), db.clone(), spec(""));
    assert_eq!(runtime.resume_interrupted().await.unwrap(), 1);
    for _ in 0..100 {
        if runtime.journal().session(&session.id).await.unwrap().unwrap().status == SessionStatus::Idle {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let events = runtime.journal().events(&session.id).await.unwrap();
    let interrupted = events.iter().any(|r| matches!(&r.event, Event::ToolResult { call_id, ok: false, output, .. } if call_id == "c9" && output.to_string().contains("interrupted")));
    assert!(interrupted, "{events:#?}");
    assert!(
        matches!(&events.last().unwrap().event, Event::Assistant { content: Some(text), .. } if text.contains("check"))
    );
    assert_eq!(*db.lock().unwrap(), store());
}

#[tokio::test]
async fn a_long_conversation_is_trimmed_to_the_window_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Mutex::new(store()));
    let turns = 40;
    let mut answers = Vec::new();
    for i in 0..turns {
        answers.push(call(&format!("p{i}"), "list_all_product_types", json!({})));
        answers.push(say(&format!("answer {i}")));
    }
    let model = QueuedModel::new(answers);
    let spec = AgentSpec::parse("name = \"service\"\nmodel = \"m\"\ninstructions = \"Help.\"\ntoolsets = [\"retail\"]\n[limits]\ncontext_tokens = 3000\nmax_output_tokens = 200").unwrap();
    let runtime = runtime(journal_in(dir.path()).await, model.clone(), db, spec);
    let session = runtime.create_session("service", "tester").await.unwrap();
    for i in 0..turns {
        let (_, outcome) = Runtime::collect(runtime.send(&session, format!("question {i}")).await.unwrap()).await;
        assert_eq!(outcome.unwrap().answer, Some(format!("answer {i}")));
    }
    let last = model.requests.lock().unwrap().last().unwrap().clone();
    let chars: usize = last.messages.iter().map(|m| m.text_chars()).sum();
    assert!(chars / 4 < 3000, "{chars} characters sent");
    assert!(last.messages[0].text_content().contains("left out"));
    assert!(
        runtime
            .journal()
            .events(&session.id)
            .await
            .unwrap()
            .iter()
            .any(|r| matches!(r.event, Event::Trimmed { .. }))
    );
}

/// A model whose window is smaller than the runtime thinks: it refuses prompts over `limit_chars`.
struct NarrowModel {
    limit_chars: usize,
    refusals: Mutex<usize>,
}

impl ModelClient for NarrowModel {
    fn chat(&self, _agent: &str, request: ChatCompletionRequest) -> BoxFuture<'_, Result<ChatCompletion, String>> {
        let chars: usize = request.messages.iter().map(|m| m.text_chars()).sum();
        let last_user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.text_content());
        Box::pin(async move {
            if chars > self.limit_chars {
                *self.refusals.lock().unwrap() += 1;
                return Err(format!(
                    "this model's maximum context length is 100 tokens, but the messages have {} tokens",
                    chars / 4
                ));
            }
            Ok(ChatCompletion {
                id: "narrow".into(),
                object: "chat.completion".into(),
                created: 0,
                model: request.model,
                choices: vec![ChatChoice {
                    index: 0,
                    message: say(&format!("re: {}", last_user.unwrap_or_default())),
                    finish_reason: Some("stop".into()),
                    logprobs: None,
                }],
                usage: Some(Usage::new(1, 1)),
                system_fingerprint: None,
            })
        })
    }

    fn context_window(&self, _model: &str) -> Option<u32> {
        Some(100_000)
    }
}

#[tokio::test]
async fn a_prompt_the_model_finds_too_long_is_fitted_tighter_and_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let model = Arc::new(NarrowModel {
        limit_chars: 3_000,
        refusals: Mutex::new(0),
    });
    let runtime = Runtime::new(journal_in(dir.path()).await, model.clone());
    runtime
        .add_agent(AgentSpec::parse("name = \"chatty\"\nmodel = \"m\"").unwrap())
        .unwrap();
    let session = runtime.create_session("chatty", "tester").await.unwrap();
    for i in 0..20 {
        let message = format!("message {i} {}", "words ".repeat(50));
        let (_, outcome) = Runtime::collect(runtime.send(&session, message.clone()).await.unwrap()).await;
        assert_eq!(outcome.unwrap().answer, Some(format!("re: {message}")));
    }
    assert!(*model.refusals.lock().unwrap() > 0);
}
