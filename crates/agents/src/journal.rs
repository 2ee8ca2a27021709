//! The session journal: every step of every session, written before the next step begins. A session's state is
//! its events; rebuilding the conversation from them is how a session resumes after the process died.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{Database, Migration};

use gateway::openai::ToolCall;

use crate::AgentError;

const SCHEMA: &str = "CREATE TABLE agent_session (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        subject TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE agent_event (
        session_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (session_id, seq)
    );";

const MIGRATIONS: &[Migration] = &[Migration::portable(1, "agent sessions and their events", SCHEMA)];

/// One step of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The user said something.
    User {
        /// What they said.
        content: String,
    },
    /// The model answered: text, tool calls, or both.
    Assistant {
        /// Its text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        /// The tools it called.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        /// Tokens read and written.
        prompt_tokens: u32,
        /// Tokens written.
        completion_tokens: u32,
    },
    /// What the policy decided about a tool call, before it ran (or instead).
    Policy {
        /// The call.
        call_id: String,
        /// The tool.
        tool: String,
        /// `allow`, `deny` or `approval_required`.
        decision: Decision,
        /// Why, in words.
        reason: String,
    },
    /// A person decided a call that waited for approval.
    Approval {
        /// The call.
        call_id: String,
        /// Whether it may run.
        approved: bool,
        /// Who decided.
        by: String,
    },
    /// A tool call began: a call with no result after a restart did not finish, and is not run twice.
    ToolStarted {
        /// The call.
        call_id: String,
        /// The tool.
        tool: String,
    },
    /// A tool call's result, as the model sees it.
    ToolResult {
        /// The call.
        call_id: String,
        /// The tool.
        tool: String,
        /// Whether it succeeded.
        ok: bool,
        /// The result, or the error the model is told.
        output: Value,
        /// How long it took.
        millis: u64,
    },
    /// Older turns were left out of the model's context to fit its window.
    Trimmed {
        /// How many messages were left out.
        messages: usize,
    },
    /// A run stopped at a limit.
    Limit {
        /// Which, and its value.
        reason: String,
    },
    /// A run failed (the model's call failed for good).
    Failed {
        /// Why.
        message: String,
    },
}

/// A policy decision about one tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// It runs.
    Allow,
    /// It is refused; the model is told why.
    Deny,
    /// It waits for a person.
    ApprovalRequired,
}

impl Event {
    fn kind(&self) -> &'static str {
        match self {
            Event::User { .. } => "user",
            Event::Assistant { .. } => "assistant",
            Event::Policy { .. } => "policy",
            Event::Approval { .. } => "approval",
            Event::ToolStarted { .. } => "tool_started",
            Event::ToolResult { .. } => "tool_result",
            Event::Trimmed { .. } => "trimmed",
            Event::Limit { .. } => "limit",
            Event::Failed { .. } => "failed",
        }
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Waiting for the user.
    Idle,
    /// A run is in progress (or was, when the process died).
    Running,
    /// A tool call waits for a person's approval.
    AwaitingApproval,
}

impl SessionStatus {
    fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Idle => "idle",
            SessionStatus::Running => "running",
            SessionStatus::AwaitingApproval => "awaiting_approval",
        }
    }

    fn parse(text: &str) -> SessionStatus {
        match text {
            "running" => SessionStatus::Running,
            "awaiting_approval" => SessionStatus::AwaitingApproval,
            _ => SessionStatus::Idle,
        }
    }
}

/// A session's header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    /// Its id.
    pub id: String,
    /// The agent it talks to.
    pub agent: String,
    /// Who it is for (the caller's tenant, or a user id they gave).
    pub subject: String,
    /// Where it stands.
    pub status: SessionStatus,
    /// Created, Unix milliseconds.
    pub created_at: i64,
    /// Last changed, Unix milliseconds.
    pub updated_at: i64,
}

/// An event with its position and time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    /// Position in the session, from 1.
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Sessions and their events in the database.
#[derive(Clone, Debug)]
pub struct Journal {
    db: Database,
}

pub(crate) fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Journal {
    /// The journal in `db`, creating its tables on first use.
    pub async fn open(db: Database) -> Result<Journal, AgentError> {
        db.migrate("agents_journal", MIGRATIONS).await?;
        Ok(Journal { db })
    }

    /// Starts a session.
    pub async fn create(&self, agent: &str, subject: &str) -> Result<SessionInfo, AgentError> {
        let now = unix_millis();
        let id = format!("sess_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO agent_session (id, agent, subject, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(agent)
        .bind(subject)
        .bind(SessionStatus::Idle.as_str())
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(SessionInfo {
            id,
            agent: agent.to_owned(),
            subject: subject.to_owned(),
            status: SessionStatus::Idle,
            created_at: now,
            updated_at: now,
        })
    }

    /// A session's header; `None` when there is no such session.
    pub async fn session(&self, id: &str) -> Result<Option<SessionInfo>, AgentError> {
        let row: Option<(String, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, agent, subject, status, created_at, updated_at FROM agent_session WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(
            row.map(|(id, agent, subject, status, created_at, updated_at)| SessionInfo {
                id,
                agent,
                subject,
                status: SessionStatus::parse(&status),
                created_at,
                updated_at,
            }),
        )
    }

    /// The newest sessions first, at most `limit`, optionally of one agent.
    pub async fn sessions(&self, agent: Option<&str>, limit: i64) -> Result<Vec<SessionInfo>, AgentError> {
        let rows: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, agent, subject, status, created_at, updated_at FROM agent_session \
             WHERE ($1 = '' OR agent = $1) ORDER BY updated_at DESC, id LIMIT $2",
        )
        .bind(agent.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, agent, subject, status, created_at, updated_at)| SessionInfo {
                id,
                agent,
                subject,
                status: SessionStatus::parse(&status),
                created_at,
                updated_at,
            })
            .collect())
    }

    /// Sets a session's status.
    pub async fn set_status(&self, id: &str, status: SessionStatus) -> Result<(), AgentError> {
        sqlx::query("UPDATE agent_session SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(unix_millis())
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Appends an event; it is on disk when this returns.
    pub async fn append(&self, id: &str, event: &Event) -> Result<Recorded, AgentError> {
        let body = serde_json::to_string(event).map_err(|error| AgentError::Internal(error.to_string()))?;
        let now = unix_millis();
        // One statement picks the next position, so two writers to one session cannot take the same one.
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO agent_event (session_id, seq, kind, body, at) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM agent_event WHERE session_id = $1 \
             RETURNING seq",
        )
        .bind(id)
        .bind(event.kind())
        .bind(&body)
        .bind(now)
        .fetch_one(self.db.pool())
        .await?;
        sqlx::query("UPDATE agent_session SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(Recorded {
            seq,
            at: now,
            event: event.clone(),
        })
    }

    /// A session's events in order.
    pub async fn events(&self, id: &str) -> Result<Vec<Recorded>, AgentError> {
        let rows: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT seq, at, body FROM agent_event WHERE session_id = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(self.db.pool())
                .await?;
        rows.into_iter()
            .map(|(seq, at, body)| {
                serde_json::from_str(&body)
                    .map(|event| Recorded { seq, at, event })
                    .map_err(|error| AgentError::Internal(format!("event {seq} of {id} is unreadable: {error}")))
            })
            .collect()
    }
}
