//! The gateway's one error type and the single place that turns each variant into an HTTP status and an
//! OpenAI-style error body `{"error":{"message","type","param","code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Everything a gateway call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The request is malformed or has an invalid value.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, for the client.
        message: String,
        /// The offending parameter, when there is one.
        param: Option<String>,
    },
    /// The request uses a parameter that the model's provider cannot honour.
    #[error("'{param}' is not supported by model '{model}': {reason}")]
    UnsupportedParameter {
        /// The parameter.
        param: String,
        /// The model asked for.
        model: String,
        /// Why, or what to do instead.
        reason: String,
    },
    /// No model of that name is configured.
    #[error("the model '{0}' does not exist; GET /v1/models lists the available models")]
    ModelNotFound(String),
    /// The model exists but cannot serve that kind of request (e.g. chat on an embedding model).
    #[error("the model '{model}' does not support {endpoint}")]
    WrongModelKind {
        /// The model asked for.
        model: String,
        /// The endpoint it was asked on.
        endpoint: &'static str,
    },
    /// The model is configured but still loading.
    #[error("the model '{0}' is still loading; retry shortly")]
    ModelLoading(String),
    /// The model failed to load; it will not serve until the server is restarted with a fix.
    #[error("the model '{model}' failed to load: {reason}")]
    ModelUnavailable {
        /// The model asked for.
        model: String,
        /// The load error.
        reason: String,
    },
    /// The prompt does not fit the model's context window.
    #[error(
        "this model's maximum context length is {context_length} tokens, but the messages have {prompt_tokens} tokens; shorten the messages"
    )]
    ContextLengthExceeded {
        /// Tokens in the rendered prompt.
        prompt_tokens: u32,
        /// The model's context window.
        context_length: u32,
    },
    /// The engine's queue is full.
    #[error("the model '{0}' is overloaded; retry shortly")]
    Overloaded(String),
    /// The request body is larger than the configured limit.
    #[error("request body is larger than the limit of {limit_bytes} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit_bytes: usize,
    },
    /// The request body is not `application/json`.
    #[error("expected a request with 'Content-Type: application/json'")]
    UnsupportedMediaType,
    /// No such route.
    #[error("unknown endpoint {method} {path}")]
    RouteNotFound {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The provider failed while serving the request.
    #[error("the model provider failed: {0}")]
    Provider(String),
    /// The request carries no valid key.
    #[error("{0}")]
    Unauthorized(String),
    /// The key may not call this model.
    #[error("this API key may not use the model '{0}'")]
    ModelNotAllowed(String),
    /// The admin API needs the master key.
    #[error("the admin API needs the master key")]
    AdminOnly,
    /// No virtual key has this id.
    #[error("no key has the id '{0}'")]
    KeyNotFound(String),
    /// Fleet placement was asked about, but no fleet is configured.
    #[error("no fleet is configured: start flywheel with --fleet FILE (or fleet = \"FILE\" in flywheel.toml)")]
    NoFleet,
    /// The change conflicts with the resource's state (a revoked key cannot change).
    #[error("{0}")]
    Conflict(String),
    /// The key is over one of its rate limits.
    #[error("rate limit reached: this key may make {limit} {what} per minute; retry in {retry_after_secs} s")]
    RateLimited {
        /// `requests` or `tokens`.
        what: &'static str,
        /// The limit per minute.
        limit: u32,
        /// When a retry can succeed.
        retry_after_secs: u64,
    },
    /// An upstream provider failed: it could not be reached, timed out, broke the stream, sent something that is
    /// not the protocol, or answered with an error status.
    #[error("the upstream failed ({}): {message}", failure.describe())]
    Upstream {
        /// How it failed.
        failure: UpstreamFailure,
        /// What it said, or what went wrong.
        message: String,
    },
    /// Every deployment that could serve the model is failing; the circuit breakers are open.
    #[error("no deployment of '{0}' is available right now (all are failing); retry shortly")]
    NoHealthyDeployment(String),
    /// The counters shared with other instances (Redis) cannot be reached, so limits and budgets cannot be
    /// checked; the request is refused rather than let through unchecked.
    #[error("limits and budgets cannot be checked right now (shared state unavailable: {0}); retry shortly")]
    SharedStateUnavailable(String),
    /// The request would take the key or tenant over its budget.
    #[error(
        "budget exhausted: this {scope} has spent {spent_usd:.6} of its {budget_usd:.6} USD {period} budget and this request may cost up to {request_usd:.6} USD"
    )]
    BudgetExceeded {
        /// `key` or `tenant`.
        scope: &'static str,
        /// `total`, `daily` or `monthly`.
        period: &'static str,
        /// The budget.
        budget_usd: f64,
        /// Spent plus reserved by requests in flight.
        spent_usd: f64,
        /// This request's reservation.
        request_usd: f64,
    },
    /// A guardrail refused the prompt or the response.
    #[error("blocked by a guardrail ({rule}): {detail}")]
    Blocked {
        /// The rule, e.g. `pii`, `denied_topic`, `prompt_injection`.
        rule: String,
        /// Why, without repeating the offending content.
        detail: String,
    },
    /// Something on our side failed (the database, most likely).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::KeyError> for GatewayError {
    fn from(error: crate::KeyError) -> Self {
        match error {
            crate::KeyError::Invalid(message) => GatewayError::InvalidRequest { message, param: None },
            crate::KeyError::NotFound(id) => GatewayError::KeyNotFound(id),
            revoked @ crate::KeyError::Revoked(_) => GatewayError::Conflict(revoked.to_string()),
            crate::KeyError::Store(error) => GatewayError::Internal(error.to_string()),
        }
    }
}

/// How an upstream failed; decides both the status the client sees and whether another deployment may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// It could not be reached (refused, DNS, TLS).
    Connect,
    /// It did not answer in time.
    Timeout,
    /// The connection or stream broke mid-way.
    Reset,
    /// It answered with something that is not the protocol.
    Malformed,
    /// It answered with this HTTP error status.
    Status(u16),
}

impl UpstreamFailure {
    fn describe(&self) -> String {
        match self {
            UpstreamFailure::Connect => "unreachable".to_owned(),
            UpstreamFailure::Timeout => "timed out".to_owned(),
            UpstreamFailure::Reset => "connection reset".to_owned(),
            UpstreamFailure::Malformed => "malformed response".to_owned(),
            UpstreamFailure::Status(status) => format!("HTTP {status}"),
        }
    }
}

impl GatewayError {
    pub(crate) fn upstream_connect(message: impl Into<String>) -> GatewayError {
        GatewayError::Upstream {
            failure: UpstreamFailure::Connect,
            message: message.into(),
        }
    }

    pub(crate) fn upstream_timeout(message: impl Into<String>) -> GatewayError {
        GatewayError::Upstream {
            failure: UpstreamFailure::Timeout,
            message: message.into(),
        }
    }

    pub(crate) fn upstream_reset(message: impl Into<String>) -> GatewayError {
        GatewayError::Upstream {
            failure: UpstreamFailure::Reset,
            message: message.into(),
        }
    }

    pub(crate) fn upstream_malformed(message: impl Into<String>) -> GatewayError {
        GatewayError::Upstream {
            failure: UpstreamFailure::Malformed,
            message: message.into(),
        }
    }

    pub(crate) fn upstream_status(status: u16, message: impl Into<String>) -> GatewayError {
        GatewayError::Upstream {
            failure: UpstreamFailure::Status(status),
            message: message.into(),
        }
    }

    /// Whether another attempt (on this or another deployment) may succeed: overload, timeouts, broken
    /// connections and the upstream's 408/409/429/5xx. A request the upstream found invalid will not get better.
    pub fn is_retryable(&self) -> bool {
        match self {
            GatewayError::Upstream { failure, .. } => match failure {
                UpstreamFailure::Status(status) => matches!(status, 408 | 409 | 429) || *status >= 500,
                _ => true,
            },
            GatewayError::Overloaded(_)
            | GatewayError::ModelLoading(_)
            | GatewayError::ModelUnavailable { .. }
            | GatewayError::NoHealthyDeployment(_)
            | GatewayError::Provider(_) => true,
            _ => false,
        }
    }

    /// Shorthand for an invalid request about one parameter.
    pub fn invalid(param: &str, message: impl Into<String>) -> GatewayError {
        GatewayError::InvalidRequest {
            message: message.into(),
            param: Some(param.to_owned()),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::InvalidRequest { .. }
            | GatewayError::UnsupportedParameter { .. }
            | GatewayError::WrongModelKind { .. }
            | GatewayError::ContextLengthExceeded { .. } => StatusCode::BAD_REQUEST,
            GatewayError::ModelNotFound(_)
            | GatewayError::RouteNotFound { .. }
            | GatewayError::KeyNotFound(_)
            | GatewayError::NoFleet => StatusCode::NOT_FOUND,
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Conflict(_) => StatusCode::CONFLICT,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::ModelNotAllowed(_) | GatewayError::AdminOnly => StatusCode::FORBIDDEN,
            GatewayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatewayError::ModelLoading(_) | GatewayError::ModelUnavailable { .. } | GatewayError::Overloaded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::Provider(_) | GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::NoHealthyDeployment(_) | GatewayError::SharedStateUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::BudgetExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            GatewayError::Blocked { .. } => StatusCode::BAD_REQUEST,
            GatewayError::Upstream { failure, .. } => match failure {
                UpstreamFailure::Timeout => StatusCode::GATEWAY_TIMEOUT,
                // The upstream found the request itself wrong: the client's to fix.
                UpstreamFailure::Status(status @ (400 | 404 | 413 | 422)) => {
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
                }
                UpstreamFailure::Status(429) => StatusCode::TOO_MANY_REQUESTS,
                // 401/403 from an upstream means our credentials for it are wrong, not the client's.
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// The OpenAI error `type`.
    pub fn kind(&self) -> &'static str {
        match self.status() {
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::PAYMENT_REQUIRED => "insufficient_quota",
            status if status.is_client_error() => "invalid_request_error",
            _ => "server_error",
        }
    }

    /// A stable machine-readable code; also what the usage ledger records as the status of a failed request.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::InvalidRequest { .. } => "invalid_request",
            GatewayError::UnsupportedParameter { .. } => "unsupported_parameter",
            GatewayError::ModelNotFound(_) => "model_not_found",
            GatewayError::WrongModelKind { .. } => "wrong_model_kind",
            GatewayError::ModelLoading(_) => "model_loading",
            GatewayError::ModelUnavailable { .. } => "model_unavailable",
            GatewayError::ContextLengthExceeded { .. } => "context_length_exceeded",
            GatewayError::Overloaded(_) => "overloaded",
            GatewayError::BodyTooLarge { .. } => "body_too_large",
            GatewayError::UnsupportedMediaType => "unsupported_media_type",
            GatewayError::RouteNotFound { .. } => "unknown_url",
            GatewayError::Provider(_) => "provider_error",
            GatewayError::Unauthorized(_) => "invalid_api_key",
            GatewayError::ModelNotAllowed(_) => "model_not_allowed",
            GatewayError::AdminOnly => "admin_required",
            GatewayError::KeyNotFound(_) => "key_not_found",
            GatewayError::NoFleet => "fleet_not_configured",
            GatewayError::Conflict(_) => "conflict",
            GatewayError::Internal(_) => "internal_error",
            GatewayError::RateLimited { .. } => "rate_limit_exceeded",
            GatewayError::NoHealthyDeployment(_) => "no_healthy_deployment",
            GatewayError::SharedStateUnavailable(_) => "shared_state_unavailable",
            GatewayError::BudgetExceeded { .. } => "budget_exceeded",
            GatewayError::Blocked { .. } => "content_blocked",
            GatewayError::Upstream { failure, .. } => match failure {
                UpstreamFailure::Connect => "upstream_unreachable",
                UpstreamFailure::Timeout => "upstream_timeout",
                UpstreamFailure::Reset => "upstream_reset",
                UpstreamFailure::Malformed => "upstream_malformed",
                UpstreamFailure::Status(429) => "upstream_rate_limited",
                UpstreamFailure::Status(status) if *status < 500 => "upstream_rejected",
                UpstreamFailure::Status(_) => "upstream_error",
            },
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            GatewayError::InvalidRequest { param, .. } => param.as_deref(),
            GatewayError::UnsupportedParameter { param, .. } => Some(param),
            GatewayError::ModelNotFound(_) | GatewayError::WrongModelKind { .. } | GatewayError::ModelNotAllowed(_) => {
                Some("model")
            }
            GatewayError::ContextLengthExceeded { .. } => Some("messages"),
            _ => None,
        }
    }

    /// The OpenAI-style error body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.to_string(),
                kind: self.kind(),
                param: self.param().map(str::to_owned),
                code: self.code(),
            },
        }
    }
}

/// `{"error": {...}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The inside of an OpenAI error body.
#[derive(Debug, Serialize)]
pub struct ErrorObject {
    /// Human-readable explanation.
    pub message: String,
    /// OpenAI's error type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The offending parameter, if any.
    pub param: Option<String>,
    /// Stable machine-readable code.
    pub code: &'static str,
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        let retry_after = match self {
            GatewayError::RateLimited { retry_after_secs, .. } => Some(retry_after_secs),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}
