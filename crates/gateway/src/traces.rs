//! OpenTelemetry traces of model calls: one span per ledger row, named and attributed by the GenAI semantic
//! conventions (`chat {model}`, `embeddings {model}`, `gen_ai.*` attributes), plus flywheel's own accounting
//! (`flywheel.*`: tenant, key, deployment, cost, cache, guardrail). A span is built from the finished row, so
//! refused, failed and cancelled calls are traced exactly like served ones, and prompts never enter a span.
//!
//! Spans go to the process's global tracer provider (the binary installs an OTLP exporter when one is
//! configured); with traces off nothing here runs.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue, global};

use crate::ProviderKind;
use crate::ledger::UsageRecord;

/// Attribute names of the OpenTelemetry GenAI semantic conventions (kept here: the conventions' crate marks its
/// copies deprecated since they moved to their own repository).
mod semconv {
    pub(super) const ERROR_TYPE: &str = "error.type";
    pub(super) const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
    pub(super) const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
    pub(super) const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
    pub(super) const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
    pub(super) const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
    pub(super) const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    pub(super) const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
}

/// What a row's span needs beyond the row itself; never stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpanFacts {
    /// The caller's span (from a W3C `traceparent` header), so the model call joins the caller's trace.
    pub(crate) parent: Option<SpanContext>,
    /// The provider that served the call (`gen_ai.provider.name`).
    pub(crate) provider: Option<ProviderKind>,
    /// The model name the upstream was asked for (`gen_ai.response.model`).
    pub(crate) upstream_model: Option<String>,
}

/// Exports model-call spans when traces are on.
#[derive(Clone)]
pub(crate) struct SpanExporter {
    tracer: Option<std::sync::Arc<global::BoxedTracer>>,
}

impl SpanExporter {
    /// Exports to the global tracer provider when `enabled`, else does nothing.
    pub(crate) fn new(enabled: bool) -> SpanExporter {
        SpanExporter {
            tracer: enabled.then(|| std::sync::Arc::new(global::tracer("flywheel-gateway"))),
        }
    }

    /// Exports the span of the call `row` records, which ended just now after `row.latency_ms`.
    pub(crate) fn export(&self, row: &UsageRecord) {
        let Some(tracer) = &self.tracer else {
            return;
        };
        let ended = SystemTime::now();
        let started = ended
            .checked_sub(Duration::from_secs_f64(row.latency_ms.max(0.0) / 1e3))
            .unwrap_or(ended);
        let operation = operation_name(&row.endpoint);
        let kind = match row.trace.provider {
            Some(ProviderKind::Embedded) | None => SpanKind::Internal,
            Some(_) => SpanKind::Client,
        };
        let parent = row
            .trace
            .parent
            .clone()
            .map_or_else(Context::new, |parent| Context::new().with_remote_span_context(parent));
        let mut span = tracer
            .span_builder(format!("{operation} {}", row.model))
            .with_kind(kind)
            .with_start_time(started)
            .with_attributes(attributes(row, operation))
            .start_with_context(tracer.as_ref(), &parent);
        if !matches!(row.status.as_str(), "ok" | "cancelled") {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, row.status.clone()));
            span.set_status(Status::error(row.status.clone()));
        }
        span.end_with_timestamp(ended);
    }
}

/// `gen_ai.operation.name` for a ledger endpoint.
fn operation_name(endpoint: &str) -> &'static str {
    match endpoint {
        crate::embeddings::ENDPOINT => "embeddings",
        _ => "chat",
    }
}

fn attributes(row: &UsageRecord, operation: &'static str) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new(semconv::GEN_AI_OPERATION_NAME, operation),
        KeyValue::new(semconv::GEN_AI_PROVIDER_NAME, provider_name(row.trace.provider)),
        KeyValue::new(semconv::GEN_AI_REQUEST_MODEL, row.model.clone()),
        KeyValue::new(semconv::GEN_AI_RESPONSE_ID, row.request_id.clone()),
        KeyValue::new(semconv::GEN_AI_USAGE_INPUT_TOKENS, row.prompt_tokens),
        KeyValue::new("flywheel.tenant", row.tenant.clone()),
        KeyValue::new("flywheel.endpoint", row.endpoint.clone()),
        KeyValue::new("flywheel.status", row.status.clone()),
        KeyValue::new("flywheel.cost_micros", row.cost_micros),
        KeyValue::new("flywheel.attempts", row.attempts),
    ];
    if operation == "chat" {
        attributes.push(KeyValue::new(
            semconv::GEN_AI_USAGE_OUTPUT_TOKENS,
            row.completion_tokens,
        ));
    }
    if let Some(model) = &row.trace.upstream_model {
        attributes.push(KeyValue::new(semconv::GEN_AI_RESPONSE_MODEL, model.clone()));
    }
    let optional = [
        ("flywheel.key_id", &row.key_id),
        ("flywheel.deployment", &row.deployment),
        ("flywheel.cache", &row.cache),
        ("flywheel.guardrail", &row.guardrail),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            attributes.push(KeyValue::new(name, value.clone()));
        }
    }
    if let Some(ttft_ms) = row.ttft_ms {
        attributes.push(KeyValue::new("flywheel.time_to_first_token_ms", ttft_ms));
    }
    attributes
}

/// `gen_ai.provider.name`: the conventions' well-known names where they apply, flywheel's own otherwise.
fn provider_name(provider: Option<ProviderKind>) -> &'static str {
    match provider {
        Some(ProviderKind::Openai) => "openai",
        Some(ProviderKind::Anthropic) => "anthropic",
        Some(ProviderKind::Embedded) => "flywheel.embedded",
        Some(ProviderKind::Fault) => "flywheel.fault",
        // Refused before any provider was chosen: the gateway itself answered.
        None => "flywheel",
    }
}

/// The caller's span from a W3C `traceparent` header (`00-<trace id>-<span id>-<flags>`), if it is valid.
pub(crate) fn parse_traceparent(header: &str) -> Option<SpanContext> {
    let mut fields = header.trim().split('-');
    let version = fields.next()?;
    let trace_id = fields.next()?;
    let span_id = fields.next()?;
    let flags = fields.next()?;
    // Version 00 has exactly four fields; later versions may append more, which we ignore.
    if version.len() != 2 || version == "ff" || (version == "00" && fields.next().is_some()) {
        return None;
    }
    if trace_id.len() != 32 || span_id.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::NONE,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn traceparent_headers_parse_only_when_valid() {
        let parsed = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            parsed.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(parsed.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
        assert!(parsed.is_sampled());
        assert!(parsed.is_remote());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        // A later version may carry more fields.
        assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more").is_some());
    }

    #[test]
    fn operations_and_providers_follow_the_conventions() {
        assert_eq!(operation_name("chat.completions"), "chat");
        assert_eq!(operation_name("messages"), "chat");
        assert_eq!(operation_name("embeddings"), "embeddings");
        assert_eq!(provider_name(Some(ProviderKind::Openai)), "openai");
        assert_eq!(provider_name(Some(ProviderKind::Embedded)), "flywheel.embedded");
        assert_eq!(provider_name(None), "flywheel");
    }
}
