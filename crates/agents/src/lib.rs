//! Agents: specs in TOML, a runtime loop whose every step is journaled before the next begins (so a session
//! resumes where it stopped after the process died), tools behind one trait with a policy in front of them
//! (allow-lists, argument rules, confirmation by the user, approval by a person), the `/v1/agents` API, and the
//! retail customer-service agent with its evaluation.
//!
//! Invariant: a tool call runs at most once. Its start is journaled before it runs; a call found started but
//! unfinished after a restart is reported to the model as interrupted, never run again.

mod context;
pub mod eval;
mod http;
pub mod journal;
mod mcp;
mod model;
pub mod retail;
mod runtime;
pub mod spec;
pub mod tool;

pub use http::router;
pub use journal::{Decision, Event, Journal, Recorded, SessionInfo, SessionStatus};
pub use mcp::router as mcp_router;
pub use model::{GatewayModels, ModelClient};
pub use runtime::{RunOutcome, Runtime, StepEvent, Toolset};
pub use spec::{AgentSpec, Limits, Policy, SpecError};
pub use tool::{Tool, ToolEffect, ToolError, ToolSpec, Toolbox};

/// What can go wrong in the agents layer, mapped to HTTP statuses at the edge.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No agent by that name.
    #[error("no agent named {0:?}")]
    UnknownAgent(String),
    /// No session by that id (or not the caller's).
    #[error("no session {0:?}")]
    UnknownSession(String),
    /// The request cannot be done in the session's state (a run in progress, an approval pending).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The agent's spec names something that does not exist (a toolset, a tool).
    #[error("agent {agent}: {message}")]
    Misconfigured {
        /// The agent.
        agent: String,
        /// What is wrong.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A query failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}
