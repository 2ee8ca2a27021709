//! The agents API under `/v1/agents`: list agents, open sessions, post messages and decide approvals, each run
//! streamed as server-sent events (one `event:` per journaled step, then `done`) or answered as one JSON document
//! with `"stream": false`. Sessions belong to the caller's tenant; approvals are for the master key (or anyone
//! while auth is off). Every failure is a `{"error":{"code","message"}}` body with its status.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use gateway::{ADMIN_TENANT, Caller, Gateway, PUBLIC_TENANT};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::AgentError;
use crate::journal::SessionInfo;
use crate::runtime::{Runtime, StepEvent};

#[derive(Clone)]
struct ApiState {
    runtime: Runtime,
    gateway: Gateway,
}

/// The `/v1/agents` routes.
pub fn router(runtime: Runtime, gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/sessions", get(list_sessions))
        .route("/v1/agents/sessions/{id}", get(get_session))
        .route("/v1/agents/sessions/{id}/messages", post(post_message))
        .route("/v1/agents/sessions/{id}/approvals", post(post_approval))
        .route("/v1/agents/{agent}/sessions", post(create_session))
        .with_state(ApiState { runtime, gateway })
}

impl AgentError {
    fn status(&self) -> StatusCode {
        match self {
            AgentError::UnknownAgent(_) | AgentError::UnknownSession(_) => StatusCode::NOT_FOUND,
            AgentError::Conflict(_) => StatusCode::CONFLICT,
            AgentError::Invalid(_) => StatusCode::BAD_REQUEST,
            AgentError::Misconfigured { .. }
            | AgentError::Store(_)
            | AgentError::Database(_)
            | AgentError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AgentError::UnknownAgent(_) => "unknown_agent",
            AgentError::UnknownSession(_) => "unknown_session",
            AgentError::Conflict(_) => "conflict",
            AgentError::Invalid(_) => "invalid_request",
            AgentError::Misconfigured { .. } => "misconfigured_agent",
            AgentError::Store(_) | AgentError::Database(_) => "database_error",
            AgentError::Internal(_) => "internal_error",
        }
    }
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, "agents request failed");
        }
        (
            status,
            Json(json!({ "error": { "code": self.code(), "message": self.to_string() } })),
        )
            .into_response()
    }
}

fn invalid(message: impl std::fmt::Display) -> Response {
    AgentError::Invalid(message.to_string()).into_response()
}

/// The caller, or the gateway's 401 response.
async fn caller(state: &ApiState, headers: &HeaderMap) -> Result<Caller, Response> {
    state
        .gateway
        .authenticate_headers(headers)
        .await
        .map_err(IntoResponse::into_response)
}

fn tenant(caller: &Caller) -> &str {
    match caller {
        Caller::Anonymous => PUBLIC_TENANT,
        Caller::Admin => ADMIN_TENANT,
        Caller::Key(key) => &key.tenant,
    }
}

/// The session, if the caller may see it: the master key (or anyone while auth is off) sees all.
async fn owned_session(state: &ApiState, caller: &Caller, id: &str) -> Result<SessionInfo, Response> {
    let session = state
        .runtime
        .journal()
        .session(id)
        .await
        .map_err(IntoResponse::into_response)?
        .ok_or_else(|| AgentError::UnknownSession(id.to_owned()).into_response())?;
    let visible = caller.require_admin().is_ok() || session.subject == tenant(caller);
    if !visible {
        return Err(AgentError::UnknownSession(id.to_owned()).into_response());
    }
    Ok(session)
}

async fn list_agents(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    caller(&state, &headers).await?;
    let data: Vec<_> = state
        .runtime
        .agents()
        .iter()
        .map(|spec| {
            let tools: Vec<String> = state
                .runtime
                .toolbox(spec, "list")
                .map(|toolbox| toolbox.specs().map(|tool| tool.name.clone()).collect())
                .unwrap_or_default();
            json!({
                "name": spec.name,
                "description": spec.description,
                "model": spec.model,
                "tools": tools,
                "limits": spec.limits,
                "policy": spec.policy,
            })
        })
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsParams {
    agent: Option<String>,
    limit: Option<i64>,
}

async fn list_sessions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Result<Query<SessionsParams>, QueryRejection>,
) -> Result<Response, Response> {
    let caller = caller(&state, &headers).await?;
    let Query(params) = params.map_err(invalid)?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(invalid("limit must be between 1 and 1000"));
    }
    let sessions = state
        .runtime
        .journal()
        .sessions(params.agent.as_deref(), limit)
        .await
        .map_err(IntoResponse::into_response)?;
    let admin = caller.require_admin().is_ok();
    let data: Vec<_> = sessions
        .into_iter()
        .filter(|s| admin || s.subject == tenant(&caller))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })).into_response())
}

async fn create_session(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(agent): Path<String>,
) -> Result<Response, Response> {
    let caller = caller(&state, &headers).await?;
    let session = state
        .runtime
        .create_session(&agent, tenant(&caller))
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

async fn get_session(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let caller = caller(&state, &headers).await?;
    let session = owned_session(&state, &caller, &id).await?;
    let events = state
        .runtime
        .journal()
        .events(&id)
        .await
        .map_err(IntoResponse::into_response)?;
    let awaiting = crate::runtime::awaiting_approval(&events.iter().map(|r| r.event.clone()).collect::<Vec<_>>());
    Ok(Json(json!({ "session": session, "awaiting_approval": awaiting, "events": events })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    content: String,
    /// Server-sent events as the run goes (the default), or one JSON document at the end.
    stream: Option<bool>,
}

async fn post_message(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<MessageBody>, JsonRejection>,
) -> Result<Response, Response> {
    let caller = caller(&state, &headers).await?;
    let Json(body) = body.map_err(|rejection| invalid(rejection.body_text()))?;
    let session = owned_session(&state, &caller, &id).await?;
    let events = state
        .runtime
        .send(&session, body.content)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(respond(events, body.stream.unwrap_or(true)).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalBody {
    call_id: String,
    approved: bool,
    by: Option<String>,
    stream: Option<bool>,
}

async fn post_approval(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ApprovalBody>, JsonRejection>,
) -> Result<Response, Response> {
    let caller = caller(&state, &headers).await?;
    caller.require_admin().map_err(IntoResponse::into_response)?;
    let Json(body) = body.map_err(|rejection| invalid(rejection.body_text()))?;
    let session = owned_session(&state, &caller, &id).await?;
    let by = body.by.unwrap_or_else(|| tenant(&caller).to_owned());
    let events = state
        .runtime
        .decide(&session, &body.call_id, body.approved, &by)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(respond(events, body.stream.unwrap_or(true)).await)
}

async fn respond(events: mpsc::Receiver<StepEvent>, stream: bool) -> Response {
    if stream {
        let events = tokio_stream_of(events).map(|step| {
            let name = match &step {
                StepEvent::Event(recorded) => serde_json::to_value(&recorded.event)
                    .ok()
                    .and_then(|value| value["type"].as_str().map(str::to_owned))
                    .unwrap_or_default(),
                StepEvent::Done(_) => "done".to_owned(),
            };
            let data = match &step {
                StepEvent::Event(recorded) => serde_json::to_value(recorded),
                StepEvent::Done(outcome) => serde_json::to_value(outcome),
            };
            SseEvent::default().event(name).json_data(data.unwrap_or_default())
        });
        return Sse::new(events).keep_alive(KeepAlive::default()).into_response();
    }
    let (events, outcome) = Runtime::collect(events).await;
    Json(json!({ "outcome": outcome, "events": events })).into_response()
}

fn tokio_stream_of(mut receiver: mpsc::Receiver<StepEvent>) -> impl futures::Stream<Item = StepEvent> {
    async_stream::stream! {
        while let Some(step) = receiver.recv().await {
            yield step;
        }
    }
}
