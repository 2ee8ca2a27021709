//! The Anthropic Messages protocol, both ways. Inbound, Anthropic clients call `POST /v1/messages` and
//! `/v1/messages/count_tokens`: their requests are translated once into the OpenAI types the rest of the gateway
//! speaks, served by [`crate::GatewayClient`] like any chat request (same limits, budgets and ledger), and the
//! answers translated back. Outbound, the `anthropic` provider sends OpenAI requests to an Anthropic-compatible
//! upstream and translates its answers.
//!
//! This module owns only translation and the two HTTP handlers; it must never decide routing, limits or
//! accounting, which stay in the one path every request takes.
//!
//! Documented normalisations (what a round trip through the other protocol does not preserve):
//! - assistant text blocks are joined into one text, placed before the message's tool calls;
//! - a tool result's `is_error` becomes an `Error: ` prefix on its text (OpenAI tool messages have no flag);
//! - `stop_sequence` becomes `end_turn`: OpenAI's `stop` does not say whether a stop sequence matched;
//! - OpenAI system and developer messages are pulled out and joined with a blank line; consecutive messages of
//!   the same Anthropic role are merged into one; tool call arguments are re-encoded as compact JSON.

pub(crate) mod http;
pub(crate) mod inbound;
pub(crate) mod outbound;
pub mod wire;

#[cfg(test)]
pub(crate) mod tests;

use crate::{GatewayError, UpstreamFailure, openai};

pub use wire::ErrorBody;

/// The Anthropic error `type` for a gateway error. Statuses stay those of [`GatewayError::status`]; the type is
/// what the Anthropic SDKs show next to the message. Budgets use `billing_error`, Anthropic's own type for
/// running out of credit (the SDK raises it as a payment-required error, with our message).
pub fn error_type(error: &GatewayError) -> &'static str {
    match error {
        GatewayError::BudgetExceeded { .. } => "billing_error",
        GatewayError::Overloaded(_)
        | GatewayError::NoHealthyDeployment(_)
        | GatewayError::SharedStateUnavailable(_)
        | GatewayError::ModelLoading(_) => "overloaded_error",
        GatewayError::Upstream {
            failure: UpstreamFailure::Status(529),
            ..
        } => "overloaded_error",
        _ => match error.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            504 => "timeout_error",
            status if (400..500).contains(&status) => "invalid_request_error",
            _ => "api_error",
        },
    }
}

/// The Anthropic error body for a gateway error.
pub fn error_body(error: &GatewayError) -> ErrorBody {
    ErrorBody {
        kind: "error".to_owned(),
        error: wire::ErrorDetail {
            kind: error_type(error).to_owned(),
            message: error.to_string(),
        },
    }
}

/// The gateway error an Anthropic upstream's error type stands for, with the status Anthropic uses for it, so
/// that retries and fallbacks treat it like the same failure over HTTP (`overloaded_error` is 529).
pub(crate) fn upstream_error(detail: &wire::ErrorDetail) -> GatewayError {
    let status = match detail.kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    };
    GatewayError::upstream_status(status, detail.message.clone())
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`. `stop` is always `end_turn`: OpenAI does not say whether a
/// stop sequence matched.
pub(crate) fn stop_reason_for(finish_reason: Option<&str>) -> wire::StopReason {
    match finish_reason {
        Some("length") => wire::StopReason::MaxTokens,
        Some("tool_calls" | "function_call") => wire::StopReason::ToolUse,
        Some("content_filter") => wire::StopReason::Refusal,
        _ => wire::StopReason::EndTurn,
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub(crate) fn finish_reason_for(stop_reason: Option<wire::StopReason>) -> Option<String> {
    let reason = match stop_reason? {
        wire::StopReason::EndTurn
        | wire::StopReason::StopSequence
        | wire::StopReason::PauseTurn
        | wire::StopReason::Other => "stop",
        wire::StopReason::MaxTokens | wire::StopReason::ModelContextWindowExceeded => "length",
        wire::StopReason::ToolUse => "tool_calls",
        wire::StopReason::Refusal => "content_filter",
    };
    Some(reason.to_owned())
}

/// A tool call's input as OpenAI's JSON-string arguments.
pub(crate) fn arguments_of(input: &serde_json::Value) -> String {
    serde_json::to_string(input).unwrap_or_else(|_| "{}".to_owned())
}

/// OpenAI's JSON-string arguments as an Anthropic tool input. Empty arguments are an empty object; text that is
/// not JSON is kept as a JSON string, so nothing the model wrote is lost.
pub(crate) fn input_of(arguments: &str) -> serde_json::Value {
    if arguments.trim().is_empty() {
        return serde_json::Value::Object(serde_json::Map::new());
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| serde_json::Value::String(arguments.to_owned()))
}

/// OpenAI usage → Anthropic usage.
pub(crate) fn usage_of(usage: openai::Usage) -> wire::MessageUsage {
    wire::MessageUsage {
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        cache_creation_input_tokens: None,
        cache_read_input_tokens: None,
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn errors_keep_their_status_and_get_the_anthropic_type() {
        for (error, status, kind) in [
            (GatewayError::invalid("max_tokens", "bad"), 400, "invalid_request_error"),
            (
                GatewayError::Unauthorized("no key".to_owned()),
                401,
                "authentication_error",
            ),
            (GatewayError::ModelNotAllowed("m".to_owned()), 403, "permission_error"),
            (GatewayError::ModelNotFound("m".to_owned()), 404, "not_found_error"),
            (
                GatewayError::RateLimited {
                    what: "requests",
                    limit: 1,
                    retry_after_secs: 1,
                },
                429,
                "rate_limit_error",
            ),
            (
                GatewayError::BudgetExceeded {
                    scope: "key",
                    period: "total",
                    budget_usd: 1.0,
                    spent_usd: 1.0,
                    request_usd: 0.1,
                },
                402,
                "billing_error",
            ),
            (GatewayError::Overloaded("m".to_owned()), 503, "overloaded_error"),
            (GatewayError::upstream_timeout("slow"), 504, "timeout_error"),
            (GatewayError::upstream_status(500, "boom"), 502, "api_error"),
            (GatewayError::Internal("db".to_owned()), 500, "api_error"),
        ] {
            assert_eq!(error.status(), status, "{error}");
            let body = error_body(&error);
            assert_eq!(
                (body.kind.as_str(), body.error.kind.as_str()),
                ("error", kind),
                "{error}"
            );
            assert_eq!(body.error.message, error.to_string());
        }
        let upstream = upstream_error(&wire::ErrorDetail {
            kind: "rate_limit_error".to_owned(),
            message: "slow down".to_owned(),
        });
        assert_eq!((upstream.status().as_u16(), upstream.is_retryable()), (429, true));
    }
}
