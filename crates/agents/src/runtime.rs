//! The loop: model → tool calls (in parallel) → results → model, until an answer or a limit. Each step reads the
//! session's journal and writes its outcome there before the next one, so the loop has no state of its own: a
//! run that died is continued by running the loop again.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gateway::openai::{ChatCompletionRequest, ChatMessage, ToolCall};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::AgentError;
use crate::context;
use crate::journal::{Decision, Event, Journal, Recorded, SessionInfo, SessionStatus};
use crate::model::ModelClient;
use crate::spec::AgentSpec;
use crate::tool::{Tool, ToolEffect, ToolError, Toolbox};

/// A source of tools, such as the store's service tools or an MCP server's. Tools may keep per-session state
/// (who the customer is), so a toolbox is asked for per session.
pub trait Toolset: Send + Sync {
    /// The tools for session `session_id`.
    fn tools(&self, session_id: &str) -> Vec<Arc<dyn Tool>>;
}

/// What a run streams: each journaled event as it happens, then how the run ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepEvent {
    /// An event, already on disk.
    Event(Recorded),
    /// The run is over.
    Done(RunOutcome),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOutcome {
    /// Where the session stands now.
    pub status: SessionStatus,
    /// The agent's last words, when it answered.
    pub answer: Option<String>,
    /// The call waiting for approval, when one is.
    pub pending_approval: Option<ToolCall>,
    /// Why the run stopped early (a limit, a failure).
    pub stopped: Option<String>,
}

struct Inner {
    journal: Journal,
    models: Arc<dyn ModelClient>,
    toolsets: RwLock<BTreeMap<String, Arc<dyn Toolset>>>,
    agents: RwLock<BTreeMap<String, Arc<AgentSpec>>>,
    /// Sessions with a run in progress in this process: one run per session at a time.
    running: Mutex<HashSet<String>>,
}

/// The agents runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// How many times one run halves the context's room after the model says the prompt is too long.
const MAX_SHRINKS: u32 = 6;

/// Frees a session's run slot however the run ends.
struct RunSlot {
    inner: Arc<Inner>,
    session: String,
}

impl Drop for RunSlot {
    fn drop(&mut self) {
        self.inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.session);
    }
}

/// A tool call the model made, read from its JSON arguments.
struct PendingCall {
    call: ToolCall,
    arguments: Result<Value, String>,
}

impl Runtime {
    /// A runtime journaling into `journal` and thinking with `models`.
    pub fn new(journal: Journal, models: Arc<dyn ModelClient>) -> Runtime {
        Runtime {
            inner: Arc::new(Inner {
                journal,
                models,
                toolsets: RwLock::new(BTreeMap::new()),
                agents: RwLock::new(BTreeMap::new()),
                running: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.inner.journal
    }

    /// Makes a toolset available to agents under `name`.
    pub fn add_toolset(&self, name: &str, toolset: Arc<dyn Toolset>) {
        self.inner
            .toolsets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), toolset);
    }

    /// Adds (or replaces) an agent, checking that its toolsets and tools exist.
    pub fn add_agent(&self, spec: AgentSpec) -> Result<(), AgentError> {
        spec.check().map_err(|message| AgentError::Misconfigured {
            agent: spec.name.clone(),
            message,
        })?;
        self.toolbox(&spec, "check")?;
        self.inner
            .agents
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(spec.name.clone(), Arc::new(spec));
        Ok(())
    }

    /// Every agent, by name.
    pub fn agents(&self) -> Vec<Arc<AgentSpec>> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The agent called `name`.
    pub fn agent(&self, name: &str) -> Result<Arc<AgentSpec>, AgentError> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| AgentError::UnknownAgent(name.to_owned()))
    }

    /// The tools `spec` may use in session `session_id`.
    pub fn toolbox(&self, spec: &AgentSpec, session_id: &str) -> Result<Toolbox, AgentError> {
        let toolsets = self
            .inner
            .toolsets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut toolbox = Toolbox::new();
        for name in &spec.toolsets {
            let toolset = toolsets.get(name).ok_or_else(|| AgentError::Misconfigured {
                agent: spec.name.clone(),
                message: format!(
                    "toolset {name:?} does not exist (known: {})",
                    toolsets.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })?;
            for tool in toolset.tools(session_id) {
                toolbox.insert(tool);
            }
        }
        if spec.tools.is_empty() {
            return Ok(toolbox);
        }
        toolbox.only(&spec.tools).map_err(|missing| AgentError::Misconfigured {
            agent: spec.name.clone(),
            message: format!("its toolsets have no tool named {}", missing.join(", ")),
        })
    }

    /// Every tool of every toolset, for session `session_id` (the MCP server's view).
    pub fn all_tools(&self, session_id: &str) -> Toolbox {
        let toolsets = self
            .inner
            .toolsets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut toolbox = Toolbox::new();
        for toolset in toolsets.values() {
            for tool in toolset.tools(session_id) {
                toolbox.insert(tool);
            }
        }
        toolbox
    }

    /// Starts a session with `agent` for `subject`.
    pub async fn create_session(&self, agent: &str, subject: &str) -> Result<SessionInfo, AgentError> {
        self.agent(agent)?;
        self.inner.journal.create(agent, subject).await
    }

    /// Posts the user's `message` and runs the agent; the run's events arrive on the receiver. The run goes on
    /// to its end even if the receiver is dropped.
    pub async fn send(&self, session: &SessionInfo, message: String) -> Result<mpsc::Receiver<StepEvent>, AgentError> {
        if message.trim().is_empty() {
            return Err(AgentError::Invalid("the message is empty".to_owned()));
        }
        let slot = self.claim(session).await?;
        if session_status(&self.inner.journal, &session.id).await? == SessionStatus::AwaitingApproval {
            return Err(AgentError::Conflict(
                "a tool call is waiting for approval; decide it before sending a message".to_owned(),
            ));
        }
        let posted = self
            .inner
            .journal
            .append(&session.id, &Event::User { content: message })
            .await?;
        Ok(self.spawn(slot, session.clone(), Some(posted)))
    }

    /// Approves or refuses the call waiting for approval, and continues the run.
    pub async fn decide(
        &self,
        session: &SessionInfo,
        call_id: &str,
        approved: bool,
        by: &str,
    ) -> Result<mpsc::Receiver<StepEvent>, AgentError> {
        let slot = self.claim(session).await?;
        let events: Vec<Event> = self
            .inner
            .journal
            .events(&session.id)
            .await?
            .into_iter()
            .map(|r| r.event)
            .collect();
        let waiting = awaiting_approval(&events);
        if !waiting.iter().any(|id| id == call_id) {
            return Err(AgentError::Conflict(if waiting.is_empty() {
                "no tool call is waiting for approval".to_owned()
            } else {
                format!(
                    "call {call_id:?} is not waiting for approval (waiting: {})",
                    waiting.join(", ")
                )
            }));
        }
        let decision = self
            .inner
            .journal
            .append(
                &session.id,
                &Event::Approval {
                    call_id: call_id.to_owned(),
                    approved,
                    by: by.to_owned(),
                },
            )
            .await?;
        Ok(self.spawn(slot, session.clone(), Some(decision)))
    }

    /// Continues every session whose run was cut short by the process dying; how many.
    pub async fn resume_interrupted(&self) -> Result<usize, AgentError> {
        let mut resumed = 0;
        for session in self.inner.journal.sessions(None, 10_000).await? {
            if session.status != SessionStatus::Running || self.agent(&session.agent).is_err() {
                continue;
            }
            let Ok(slot) = self.claim(&session).await else {
                continue;
            };
            tracing::info!(session = %session.id, agent = %session.agent, "resuming an interrupted run");
            drop(self.spawn(slot, session, None));
            resumed += 1;
        }
        Ok(resumed)
    }

    /// Runs to the end and returns the outcome with the events written on the way.
    pub async fn collect(mut events: mpsc::Receiver<StepEvent>) -> (Vec<Recorded>, Option<RunOutcome>) {
        let mut recorded = Vec::new();
        while let Some(step) = events.recv().await {
            match step {
                StepEvent::Event(event) => recorded.push(event),
                StepEvent::Done(outcome) => return (recorded, Some(outcome)),
            }
        }
        (recorded, None)
    }

    async fn claim(&self, session: &SessionInfo) -> Result<RunSlot, AgentError> {
        self.agent(&session.agent)?;
        let fresh = self
            .inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(session.id.clone());
        if !fresh {
            return Err(AgentError::Conflict(
                "the agent is still working on this session".to_owned(),
            ));
        }
        Ok(RunSlot {
            inner: self.inner.clone(),
            session: session.id.clone(),
        })
    }

    /// Runs the session's loop in a task; `first` is the event that started the run, streamed first.
    fn spawn(&self, slot: RunSlot, session: SessionInfo, first: Option<Recorded>) -> mpsc::Receiver<StepEvent> {
        let (sender, receiver) = mpsc::channel(64);
        let runtime = self.clone();
        tokio::spawn(async move {
            if let Some(first) = first {
                let _ = sender.send(StepEvent::Event(first)).await;
            }
            let outcome = match runtime.run(&session, &sender).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::error!(session = %session.id, %error, "agent run failed");
                    let message = error.to_string();
                    if let Ok(recorded) = runtime
                        .inner
                        .journal
                        .append(
                            &session.id,
                            &Event::Failed {
                                message: message.clone(),
                            },
                        )
                        .await
                    {
                        let _ = sender.send(StepEvent::Event(recorded)).await;
                    }
                    let _ = runtime.inner.journal.set_status(&session.id, SessionStatus::Idle).await;
                    RunOutcome {
                        status: SessionStatus::Idle,
                        answer: None,
                        pending_approval: None,
                        stopped: Some(message),
                    }
                }
            };
            drop(slot);
            let _ = sender.send(StepEvent::Done(outcome)).await;
        });
        receiver
    }

    async fn record(&self, session: &str, event: Event, sender: &mpsc::Sender<StepEvent>) -> Result<(), AgentError> {
        let recorded = self.inner.journal.append(session, &event).await?;
        // A client that went away does not stop the run.
        let _ = sender.send(StepEvent::Event(recorded)).await;
        Ok(())
    }

    async fn run(&self, session: &SessionInfo, sender: &mpsc::Sender<StepEvent>) -> Result<RunOutcome, AgentError> {
        let spec = self.agent(&session.agent)?;
        let toolbox = self.toolbox(&spec, &session.id)?;
        let journal = &self.inner.journal;
        journal.set_status(&session.id, SessionStatus::Running).await?;
        let started = Instant::now();
        let deadline = Duration::from_secs(spec.limits.max_seconds);
        let mut events: Vec<Event> = journal
            .events(&session.id)
            .await?
            .into_iter()
            .map(|r| r.event)
            .collect();
        replay_observations(&toolbox, &events);
        let mut steps = 0;
        let mut shrinks = 0;
        let mut room = None;
        let stop = |reason: String| RunOutcome {
            status: SessionStatus::Idle,
            answer: None,
            pending_approval: None,
            stopped: Some(reason),
        };
        loop {
            let calls = unanswered_calls(&events);
            if !calls.is_empty() {
                if let Some(waiting) = self
                    .answer_calls(&spec, &toolbox, session, &events, calls, sender)
                    .await?
                {
                    journal.set_status(&session.id, SessionStatus::AwaitingApproval).await?;
                    return Ok(RunOutcome {
                        status: SessionStatus::AwaitingApproval,
                        answer: None,
                        pending_approval: Some(waiting),
                        stopped: None,
                    });
                }
                events = journal
                    .events(&session.id)
                    .await?
                    .into_iter()
                    .map(|r| r.event)
                    .collect();
                continue;
            }
            if let Some(Event::Assistant {
                content, tool_calls, ..
            }) = events.last()
                && tool_calls.is_empty()
            {
                journal.set_status(&session.id, SessionStatus::Idle).await?;
                return Ok(RunOutcome {
                    status: SessionStatus::Idle,
                    answer: content.clone(),
                    pending_approval: None,
                    stopped: None,
                });
            }
            let spent: u64 = events
                .iter()
                .map(|event| match event {
                    Event::Assistant {
                        prompt_tokens,
                        completion_tokens,
                        ..
                    } => u64::from(*prompt_tokens) + u64::from(*completion_tokens),
                    _ => 0,
                })
                .sum();
            let limit = if steps >= spec.limits.max_steps {
                Some(format!("the run reached limits.max_steps = {}", spec.limits.max_steps))
            } else if started.elapsed() >= deadline {
                Some(format!(
                    "the run reached limits.max_seconds = {}",
                    spec.limits.max_seconds
                ))
            } else if spent >= spec.limits.max_session_tokens {
                Some(format!(
                    "the session reached limits.max_session_tokens = {}",
                    spec.limits.max_session_tokens
                ))
            } else {
                None
            };
            if let Some(reason) = limit {
                self.record(&session.id, Event::Limit { reason: reason.clone() }, sender)
                    .await?;
                journal.set_status(&session.id, SessionStatus::Idle).await?;
                return Ok(stop(reason));
            }
            steps += 1;
            let (request, sent_tokens) = self
                .model_request(&spec, &toolbox, &events, session, sender, room)
                .await?;
            let remaining = deadline.saturating_sub(started.elapsed());
            let answer = tokio::time::timeout(remaining, self.inner.models.chat(&spec.name, request)).await;
            let completion = match answer {
                Ok(Ok(completion)) => completion,
                // The provider counts the prompt its own way (a template, tools described in text): when it is
                // still too long, fit the conversation into half of what was sent and ask again.
                Ok(Err(message)) if message.contains("maximum context length") && shrinks < MAX_SHRINKS => {
                    tracing::debug!(session = %session.id, sent_tokens, "the prompt overflowed the model's window; fitting it tighter");
                    shrinks += 1;
                    room = Some(sent_tokens / 2);
                    steps -= 1;
                    continue;
                }
                Ok(Err(message)) => {
                    let message = format!("the model call failed: {message}");
                    self.record(
                        &session.id,
                        Event::Failed {
                            message: message.clone(),
                        },
                        sender,
                    )
                    .await?;
                    journal.set_status(&session.id, SessionStatus::Idle).await?;
                    return Ok(stop(message));
                }
                Err(_) => {
                    let reason = format!("the run reached limits.max_seconds = {}", spec.limits.max_seconds);
                    self.record(&session.id, Event::Limit { reason: reason.clone() }, sender)
                        .await?;
                    journal.set_status(&session.id, SessionStatus::Idle).await?;
                    return Ok(stop(reason));
                }
            };
            let usage = completion.usage.unwrap_or_default();
            let message = completion
                .choices
                .into_iter()
                .next()
                .map(|choice| choice.message)
                .unwrap_or_default();
            let mut tool_calls = message.tool_calls.unwrap_or_default();
            for (index, call) in tool_calls.iter_mut().enumerate() {
                if call.id.is_empty() {
                    call.id = format!("call_{steps}_{index}");
                }
            }
            let content = message.content.filter(|text| !text.trim().is_empty());
            let content = if content.is_none() && tool_calls.is_empty() {
                Some(String::new())
            } else {
                content
            };
            let event = Event::Assistant {
                content,
                tool_calls,
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            };
            self.record(&session.id, event.clone(), sender).await?;
            events.push(event);
        }
    }

    async fn model_request(
        &self,
        spec: &AgentSpec,
        toolbox: &Toolbox,
        events: &[Event],
        session: &SessionInfo,
        sender: &mpsc::Sender<StepEvent>,
        room: Option<usize>,
    ) -> Result<(ChatCompletionRequest, usize), AgentError> {
        let tools: Vec<_> = toolbox.specs().map(|tool| tool.definition()).collect();
        let tools_tokens: usize = tools
            .iter()
            .map(|tool| context::estimate_tokens(&serde_json::to_string(tool).unwrap_or_default()))
            .sum();
        let window = match spec.limits.context_tokens {
            0 => self.inner.models.context_window(&spec.model).unwrap_or(8_192),
            tokens => tokens,
        } as usize;
        let budget = window
            .saturating_sub(spec.limits.max_output_tokens as usize)
            .saturating_sub(context::estimate_tokens(&spec.instructions) + tools_tokens + 16);
        let mut history = context::messages(events);
        let budget = room.map_or(budget.max(256), |room| room.min(budget).max(32));
        let fitted = context::fit(&mut history, budget);
        let sent_tokens = context::tokens(&history);
        let already = events.iter().rev().find_map(|event| match event {
            Event::Trimmed { messages } => Some(*messages),
            _ => None,
        });
        if fitted.dropped > 0 && already != Some(fitted.dropped) {
            self.record(
                &session.id,
                Event::Trimmed {
                    messages: fitted.dropped,
                },
                sender,
            )
            .await?;
        }
        let mut messages = Vec::with_capacity(history.len() + 1);
        if !spec.instructions.is_empty() {
            let mut system = spec.instructions.clone();
            if fitted.dropped > 0 {
                system.push_str(&format!(
                    "\n\n({} earlier messages of this conversation are left out to fit the context.)",
                    fitted.dropped
                ));
            }
            messages.push(ChatMessage::text("system", system));
        }
        messages.extend(history);
        let request = ChatCompletionRequest {
            model: spec.model.clone(),
            messages,
            max_tokens: Some(i64::from(spec.limits.max_output_tokens)),
            temperature: spec.temperature,
            tools: (!tools.is_empty()).then_some(tools),
            user: Some(session.subject.clone()),
            ..ChatCompletionRequest::default()
        };
        Ok((request, sent_tokens))
    }

    /// Decides and runs the unanswered calls of the latest model step. Returns the call that now waits for a
    /// person, if one does (the others that may run have run).
    async fn answer_calls(
        &self,
        spec: &AgentSpec,
        toolbox: &Toolbox,
        session: &SessionInfo,
        events: &[Event],
        calls: Vec<PendingCall>,
        sender: &mpsc::Sender<StepEvent>,
    ) -> Result<Option<ToolCall>, AgentError> {
        let id = &session.id;
        let too_many = calls.len() > spec.limits.max_tool_calls_per_step as usize;
        let mut confirmation_used = confirmation_consumed(spec, toolbox, events);
        let mut runnable = Vec::new();
        let mut waiting = None;
        for pending in calls {
            let call = &pending.call;
            let name = &call.function.name;
            let started = events
                .iter()
                .any(|event| matches!(event, Event::ToolStarted { call_id, .. } if call_id == &call.id));
            if started {
                let output = Value::String(
                    "the call was interrupted by a restart before it finished; check the current state before \
                     calling it again"
                        .to_owned(),
                );
                self.record(id, tool_result(call, false, output, 0), sender).await?;
                continue;
            }
            let decided = policy_decision(events, &call.id);
            let decision = match decided {
                Some(decision) => decision,
                None => {
                    let (decision, reason) = if too_many {
                        (
                            Decision::Deny,
                            format!(
                                "more than limits.max_tool_calls_per_step = {} calls in one step",
                                spec.limits.max_tool_calls_per_step
                            ),
                        )
                    } else {
                        self.decide_call(spec, toolbox, events, &pending, &mut confirmation_used)
                    };
                    self.record(
                        id,
                        Event::Policy {
                            call_id: call.id.clone(),
                            tool: name.clone(),
                            decision,
                            reason: reason.clone(),
                        },
                        sender,
                    )
                    .await?;
                    if decision == Decision::Deny {
                        self.record(id, tool_result(call, false, Value::String(reason), 0), sender)
                            .await?;
                        continue;
                    }
                    decision
                }
            };
            match decision {
                Decision::Deny => {
                    let reason = "refused by the agent's policy".to_owned();
                    self.record(id, tool_result(call, false, Value::String(reason), 0), sender)
                        .await?;
                }
                Decision::ApprovalRequired => match approval(events, &call.id) {
                    Some((true, _)) => runnable.push(pending),
                    Some((false, by)) => {
                        let output = Value::String(format!("{by} did not approve this call; do not retry it"));
                        self.record(id, tool_result(call, false, output, 0), sender).await?;
                    }
                    None => {
                        if waiting.is_none() {
                            waiting = Some(call.clone());
                        }
                    }
                },
                Decision::Allow => runnable.push(pending),
            }
        }
        for pending in &runnable {
            self.record(
                id,
                Event::ToolStarted {
                    call_id: pending.call.id.clone(),
                    tool: pending.call.function.name.clone(),
                },
                sender,
            )
            .await?;
        }
        let results = futures::future::join_all(runnable.iter().map(|pending| async move {
            let began = Instant::now();
            let outcome = match (&pending.arguments, toolbox.get(&pending.call.function.name)) {
                (Err(message), _) => Err(ToolError::InvalidArguments(message.clone())),
                (Ok(_), None) => Err(ToolError::Failed(format!(
                    "there is no tool named {}",
                    pending.call.function.name
                ))),
                (Ok(arguments), Some(tool)) => tool.call(arguments.clone()).await,
            };
            (pending, outcome, began.elapsed())
        }))
        .await;
        for (pending, outcome, took) in results {
            let millis = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
            let event = match outcome {
                Ok(output) => tool_result(&pending.call, true, output, millis),
                Err(error) => tool_result(&pending.call, false, Value::String(error.to_string()), millis),
            };
            self.record(id, event, sender).await?;
        }
        Ok(waiting)
    }

    fn decide_call(
        &self,
        spec: &AgentSpec,
        toolbox: &Toolbox,
        events: &[Event],
        pending: &PendingCall,
        confirmation_used: &mut bool,
    ) -> (Decision, String) {
        let name = &pending.call.function.name;
        let Some(tool) = toolbox.get(name) else {
            return (Decision::Deny, format!("{name} is not one of this agent's tools"));
        };
        let arguments = match &pending.arguments {
            Ok(arguments) => arguments,
            Err(message) => {
                return (
                    Decision::Allow,
                    format!("arguments do not parse ({message}); the tool says so"),
                );
            }
        };
        if let Some(reason) = spec.policy.refuses_arguments(name, arguments) {
            return (Decision::Deny, reason);
        }
        let writes = tool.spec().effect == ToolEffect::Write;
        if spec.policy.needs_confirmation(name, writes) {
            let confirmed = context::latest_user_message(events).is_some_and(|(_, text)| context::confirms(text));
            if !confirmed || *confirmation_used {
                return (
                    Decision::Deny,
                    format!(
                        "{name} changes the customer's records: describe exactly what will be done and ask the user \
                         to confirm (yes/no) first"
                    ),
                );
            }
            *confirmation_used = true;
        }
        if spec.policy.needs_approval(name, writes) {
            return (
                Decision::ApprovalRequired,
                format!("{name} waits for a person's approval"),
            );
        }
        (Decision::Allow, "allowed".to_owned())
    }
}

async fn session_status(journal: &Journal, id: &str) -> Result<SessionStatus, AgentError> {
    Ok(journal
        .session(id)
        .await?
        .ok_or_else(|| AgentError::UnknownSession(id.to_owned()))?
        .status)
}

fn tool_result(call: &ToolCall, ok: bool, output: Value, millis: u64) -> Event {
    Event::ToolResult {
        call_id: call.id.clone(),
        tool: call.function.name.clone(),
        ok,
        output,
        millis,
    }
}

/// The calls of the latest model step that have no result yet.
fn unanswered_calls(events: &[Event]) -> Vec<PendingCall> {
    let Some(position) = events
        .iter()
        .rposition(|event| matches!(event, Event::Assistant { .. }))
    else {
        return Vec::new();
    };
    let Event::Assistant { tool_calls, .. } = &events[position] else {
        return Vec::new();
    };
    let answered: HashSet<&str> = events[position..]
        .iter()
        .filter_map(|event| match event {
            Event::ToolResult { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
        .collect();
    tool_calls
        .iter()
        .filter(|call| !answered.contains(call.id.as_str()))
        .map(|call| PendingCall {
            call: call.clone(),
            arguments: parse_arguments(&call.function.arguments),
        })
        .collect()
}

fn parse_arguments(text: &str) -> Result<Value, String> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(other) => Err(format!("the arguments must be a JSON object, not {other}")),
        Err(error) => Err(format!("the arguments are not JSON: {error}")),
    }
}

fn policy_decision(events: &[Event], id: &str) -> Option<Decision> {
    events.iter().rev().find_map(|event| match event {
        Event::Policy { call_id, decision, .. } if call_id == id => Some(*decision),
        _ => None,
    })
}

fn approval(events: &[Event], id: &str) -> Option<(bool, String)> {
    events.iter().rev().find_map(|event| match event {
        Event::Approval { call_id, approved, by } if call_id == id => Some((*approved, by.clone())),
        _ => None,
    })
}

/// The calls that wait for a person: required, not decided, no result.
pub(crate) fn awaiting_approval(events: &[Event]) -> Vec<String> {
    unanswered_calls(events)
        .into_iter()
        .map(|pending| pending.call.id)
        .filter(|id| policy_decision(events, id) == Some(Decision::ApprovalRequired) && approval(events, id).is_none())
        .collect()
}

/// Whether a call that needed the user's confirmation was already allowed since their latest message: one yes
/// confirms one change.
fn confirmation_consumed(spec: &AgentSpec, toolbox: &Toolbox, events: &[Event]) -> bool {
    let Some((position, _)) = context::latest_user_message(events) else {
        return false;
    };
    events[position..].iter().any(|event| match event {
        Event::Policy {
            tool,
            decision: Decision::Allow | Decision::ApprovalRequired,
            ..
        } => {
            let writes = toolbox
                .get(tool)
                .is_some_and(|tool| tool.spec().effect == ToolEffect::Write);
            spec.policy.needs_confirmation(tool, writes)
        }
        _ => false,
    })
}

/// Shows tools the successful calls of the session so far, so per-session tool state survives a restart.
fn replay_observations(toolbox: &Toolbox, events: &[Event]) {
    let mut arguments: BTreeMap<&str, Value> = BTreeMap::new();
    for event in events {
        match event {
            Event::Assistant { tool_calls, .. } => {
                for call in tool_calls {
                    if let Ok(value) = parse_arguments(&call.function.arguments) {
                        arguments.insert(call.id.as_str(), value);
                    }
                }
            }
            Event::ToolResult {
                call_id,
                tool,
                ok: true,
                output,
                ..
            } => {
                if let (Some(tool), Some(arguments)) = (toolbox.get(tool), arguments.get(call_id.as_str())) {
                    tool.observe(arguments, output);
                }
            }
            _ => {}
        }
    }
}
