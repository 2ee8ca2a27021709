//! Chat completions: the checks every request gets whatever serves it, and the two ways a served request comes
//! back to the client (whole, or as a stream of chunks). A [`ChatRecord`] owns each request's ledger row, so a
//! completed, failed or abandoned request is recorded exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};

use crate::GatewayError;
use crate::budget::Reservation;
use crate::dispatch::InFlight;
use crate::ledger::{Account, UsageRecord, UsageSink};
use crate::metrics;
use crate::models::{Deployment, Price};
use crate::openai::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, MessageContent, Usage};
use crate::provider::{ChunkStream, CompletionBuilder, estimate_tokens, estimate_tokens_of_chars};
use crate::routing::RoutingConfig;

pub(crate) const ENDPOINT: &str = "chat.completions";
const MAX_STOP_SEQUENCES: usize = 4;
const MAX_CHOICES: i64 = 128;
/// The completion budget reserved for a request that sets no `max_tokens` on a model with a large window.
const DEFAULT_RESERVED_COMPLETION_TOKENS: u32 = 4096;

/// A streamed chat completion: chunks in order, ending after the chunk with a `finish_reason` (and the usage
/// chunk when asked for), or with one error.
pub type ChatCompletionStream = std::pin::Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk, GatewayError>> + Send>>;

/// Checks a request against what the OpenAI API allows; what a particular provider cannot do is its own check.
pub(crate) fn validate(request: &ChatCompletionRequest, context_length: Option<u32>) -> Result<(), GatewayError> {
    if request.messages.is_empty() {
        return Err(GatewayError::invalid(
            "messages",
            "'messages' must contain at least one message",
        ));
    }
    for (index, message) in request.messages.iter().enumerate() {
        let param = format!("messages[{index}]");
        match message.role.as_str() {
            "system" | "developer" | "user" => {
                if message.content.is_none() {
                    return Err(GatewayError::invalid(
                        &format!("{param}.content"),
                        "'content' is required",
                    ));
                }
            }
            "assistant" => {}
            "tool" => {
                if message.tool_call_id.is_none() {
                    return Err(GatewayError::invalid(
                        &format!("{param}.tool_call_id"),
                        "a tool message needs the 'tool_call_id' it answers",
                    ));
                }
            }
            "function" => {}
            other => {
                return Err(GatewayError::invalid(
                    &format!("{param}.role"),
                    format!("unknown role '{other}'; expected system, developer, user, assistant or tool"),
                ));
            }
        }
        if let Some(MessageContent::Parts(parts)) = &message.content
            && parts.iter().any(|part| part.kind == "text" && part.text.is_none())
        {
            return Err(GatewayError::invalid(
                &param,
                "a 'text' content part needs a 'text' field",
            ));
        }
    }
    if let Some(tools) = &request.tools {
        for (index, tool) in tools.iter().enumerate() {
            if tool.kind != "function" {
                return Err(GatewayError::invalid(
                    &format!("tools[{index}].type"),
                    format!("unknown tool type '{}'; expected 'function'", tool.kind),
                ));
            }
            let name = &tool.function.name;
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(GatewayError::invalid(
                    &format!("tools[{index}].function.name"),
                    "a function name has 1 to 64 letters, digits, '_' or '-'",
                ));
            }
        }
    }
    for (param, value) in [
        ("frequency_penalty", request.frequency_penalty),
        ("presence_penalty", request.presence_penalty),
    ] {
        if value.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
            return Err(GatewayError::invalid(
                param,
                format!("'{param}' must be between -2 and 2"),
            ));
        }
    }
    if request.n.is_some_and(|n| !(1..=MAX_CHOICES).contains(&n)) {
        return Err(GatewayError::invalid("n", "'n' must be between 1 and 128"));
    }
    if request.top_logprobs.is_some_and(|n| !(0..=20).contains(&n)) {
        return Err(GatewayError::invalid(
            "top_logprobs",
            "'top_logprobs' must be between 0 and 20",
        ));
    }
    if request.stream_options.is_some() && !request.stream {
        return Err(GatewayError::invalid(
            "stream_options",
            "'stream_options' is only allowed when 'stream' is true",
        ));
    }
    if let Some(n) = request.max_completion_tokens.or(request.max_tokens) {
        let limit = context_length.map_or(i64::from(u32::MAX), i64::from);
        if n < 1 || n > limit {
            let param = if request.max_completion_tokens.is_some() {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            let bound = context_length.map_or_else(
                || "at least 1".to_owned(),
                |length| format!("between 1 and the model's context length, {length}"),
            );
            return Err(GatewayError::invalid(param, format!("'{param}' must be {bound}")));
        }
    }
    if request.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(GatewayError::invalid(
            "temperature",
            "'temperature' must be between 0 and 2",
        ));
    }
    if request.top_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
        return Err(GatewayError::invalid("top_p", "'top_p' must be between 0 and 1"));
    }
    if let Some(stop) = &request.stop {
        let stop = stop.as_slice();
        if stop.len() > MAX_STOP_SEQUENCES {
            return Err(GatewayError::invalid("stop", "'stop' takes at most 4 sequences"));
        }
        if stop.iter().any(String::is_empty) {
            return Err(GatewayError::invalid("stop", "stop sequences must not be empty"));
        }
    }
    if let Some(format) = &request.response_format {
        match format.get("type").and_then(|t| t.as_str()) {
            Some("text" | "json_object") => {}
            Some("json_schema") if format.get("json_schema").is_some_and(|s| s.get("name").is_some()) => {}
            Some("json_schema") => {
                return Err(GatewayError::invalid(
                    "response_format",
                    "'json_schema' needs a 'json_schema' object with a 'name'",
                ));
            }
            _ => {
                return Err(GatewayError::invalid(
                    "response_format.type",
                    "expected 'text', 'json_object' or 'json_schema'",
                ));
            }
        }
    }
    Ok(())
}

/// The prompt's size in tokens, estimated from its text; used for budget reservations and for requests that
/// end before the provider reports usage.
pub(crate) fn estimate_prompt_tokens(request: &ChatCompletionRequest) -> u32 {
    let mut tokens = 0u32;
    for message in &request.messages {
        // Role markers and separators cost a few tokens per message in every chat template.
        tokens = tokens
            .saturating_add(4)
            .saturating_add(estimate_tokens_of_chars(message.text_chars()));
        for call in message.tool_calls.iter().flatten() {
            tokens = tokens.saturating_add(estimate_tokens(&call.function.arguments));
        }
    }
    if let Some(tools) = &request.tools {
        let schema = serde_json::to_string(tools).unwrap_or_default();
        tokens = tokens.saturating_add(estimate_tokens(&schema));
    }
    tokens
}

/// The most a request can cost: its prompt (`prompt` tokens, from [`estimate_prompt_tokens`]) plus its completion
/// limit (or a default cap), at `price`, for every choice it asks for.
pub(crate) fn worst_case_cost(
    request: &ChatCompletionRequest,
    prompt: u32,
    context_length: Option<u32>,
    price: Price,
) -> i64 {
    let room = context_length.map_or(DEFAULT_RESERVED_COMPLETION_TOKENS, |length| {
        length.saturating_sub(prompt)
    });
    let completion = request
        .max_completion_tokens
        .or(request.max_tokens)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(|| room.min(DEFAULT_RESERVED_COMPLETION_TOKENS));
    let choices = request.n.and_then(|n| u64::try_from(n).ok()).unwrap_or(1).max(1);
    price.cost_micros(u64::from(prompt), u64::from(completion) * choices)
}

/// Now, in whole seconds since the Unix epoch (UTC): the gateway's one clock for ids, expiries and `created`.
pub fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A new request id: time-ordered (UUID version 7), so the ledger's unique index on it grows at its end instead
/// of dirtying a random page per row.
pub(crate) fn new_request_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Owns one request's ledger row and budget reservation. Finishing writes the row and settles the money;
/// dropping it unfinished (the client went away) writes it as `cancelled` from a spawned task, with the tokens
/// generated so far.
pub(crate) struct ChatRecord {
    sink: UsageSink,
    pending: Option<UsageRecord>,
    reservation: Option<Reservation>,
    started: Instant,
    first_token: Option<Instant>,
    prompt_estimate: u32,
    price: Price,
    /// Characters of text generated so far: all that estimating its tokens needs.
    generated_chars: usize,
}

impl ChatRecord {
    pub(crate) fn new(
        sink: UsageSink,
        account: &Account,
        model: &str,
        started: Instant,
        prompt_estimate: u32,
        reservation: Option<Reservation>,
    ) -> ChatRecord {
        ChatRecord {
            sink,
            pending: Some(UsageRecord::pending(
                new_request_id("chatcmpl"),
                account,
                model,
                ENDPOINT,
            )),
            reservation,
            started,
            first_token: None,
            prompt_estimate,
            price: Price::default(),
            generated_chars: 0,
        }
    }

    pub(crate) fn request_id(&self) -> &str {
        self.pending.as_ref().map_or("", |row| row.request_id.as_str())
    }

    pub(crate) fn row_mut(&mut self) -> Option<&mut UsageRecord> {
        self.pending.as_mut()
    }

    /// The prompt's size in tokens, estimated from its text when the request was admitted.
    pub(crate) fn prompt_estimate(&self) -> u32 {
        self.prompt_estimate
    }

    /// Notes a cache miss in the ledger row, passing the lookup through.
    pub(crate) fn cache_missed<T>(&mut self, lookup: T) -> T {
        if let Some(row) = &mut self.pending {
            row.cache = Some("miss".to_owned());
        }
        lookup
    }

    /// Notes where the request is being served and at what price.
    pub(crate) fn served_by(&mut self, deployment: &Deployment, attempts: u32) {
        self.price = deployment.price;
        if let Some(row) = &mut self.pending {
            row.served_by(deployment, attempts);
        }
    }

    fn observe_text(&mut self, text: &str) {
        if self.first_token.is_none() && !text.is_empty() {
            let now = Instant::now();
            self.first_token = Some(now);
            if let Some(row) = &self.pending {
                metrics::record_time_to_first_token(&row.model, (now - self.started).as_secs_f64());
            }
        }
        self.generated_chars += text.chars().count();
    }

    fn complete(&mut self, status: &str, usage: Usage) -> Option<UsageRecord> {
        let mut row = self.pending.take()?;
        row.status = status.to_owned();
        row.prompt_tokens = i64::from(usage.prompt_tokens);
        row.completion_tokens = i64::from(usage.completion_tokens);
        row.latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        row.ttft_ms = self.first_token.map(|at| (at - self.started).as_secs_f64() * 1e3);
        row.cost_micros = self
            .price
            .cost_micros(u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens));
        Some(row)
    }

    /// The cost of the request as finished now (for storing with a cached answer).
    pub(crate) fn cost_of(&self, usage: Usage) -> i64 {
        self.price
            .cost_micros(u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens))
    }

    /// Finishes a request answered from the cache, charged `cost_micros`.
    pub(crate) async fn finish_cached(mut self, usage: Usage, cost_micros: i64, deployment: Option<String>) {
        if let Some(mut row) = self.complete("ok", usage) {
            row.cost_micros = cost_micros;
            row.cache = Some("hit".to_owned());
            row.deployment = deployment;
            self.sink.write(row, self.reservation.take()).await;
        }
    }

    /// The usage of a request that ended before the provider reported it: the estimated prompt (when anything
    /// was generated, the provider did read it) and the text generated so far.
    fn usage_so_far(&self) -> Usage {
        if self.generated_chars == 0 {
            return Usage::new(0, 0);
        }
        Usage::new(self.prompt_estimate, estimate_tokens_of_chars(self.generated_chars))
    }

    pub(crate) async fn finish(mut self, status: &str, usage: Usage) {
        if let Some(row) = self.complete(status, usage) {
            self.sink.write(row, self.reservation.take()).await;
        }
    }

    pub(crate) async fn fail(mut self, error: &GatewayError) {
        let usage = self.usage_so_far();
        if let Some(row) = self.complete(error.code(), usage) {
            self.sink.write(row, self.reservation.take()).await;
        }
    }
}

impl Drop for ChatRecord {
    fn drop(&mut self) {
        if self.pending.is_none() {
            return;
        }
        let usage = self.usage_so_far();
        if let Some(row) = self.complete("cancelled", usage) {
            let sink = self.sink.clone();
            let reservation = self.reservation.take();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { sink.write(row, reservation).await });
            } else {
                tracing::error!(
                    request_id = row.request_id,
                    "no runtime to record a cancelled request in the ledger"
                );
            }
        }
    }
}

/// Rewrites a provider's completion as this gateway's answer: our request id, the model name the client used.
pub(crate) async fn finish_completion(
    mut completion: ChatCompletion,
    mut record: ChatRecord,
    requested_model: &str,
) -> ChatCompletion {
    completion.id = record.request_id().to_owned();
    completion.model = requested_model.to_owned();
    completion.object = "chat.completion".to_owned();
    completion.created = unix_seconds();
    let text: String = completion
        .choices
        .iter()
        .filter_map(|choice| choice.message.content.as_deref())
        .collect();
    record.observe_text(&text);
    let usage = match completion.usage {
        Some(usage) => usage,
        None => Usage::new(record.prompt_estimate, estimate_tokens(&text)),
    };
    completion.usage = Some(usage);
    record.finish("ok", usage).await;
    completion
}

/// What the client-facing stream needs besides the provider's chunks.
pub(crate) struct StreamContext {
    pub(crate) record: ChatRecord,
    pub(crate) deployment: Arc<Deployment>,
    pub(crate) in_flight: InFlight,
    pub(crate) routing: RoutingConfig,
    pub(crate) requested_model: String,
    pub(crate) include_usage: bool,
    /// Called with the whole answer and its cost when the stream completes (to cache it).
    pub(crate) on_complete: Option<Box<dyn FnOnce(ChatCompletion, i64) + Send>>,
}

/// Turns a provider's chunks into the client's stream: our id and model name on every chunk, `usage` shaped
/// as the client asked, a deadline between chunks, and the ledger row written when the stream ends however it
/// ends (a client that goes away drops the stream, and the record's `Drop` books it as cancelled).
pub(crate) fn client_stream(mut chunks: ChunkStream, context: StreamContext) -> ChatCompletionStream {
    let StreamContext {
        mut record,
        deployment,
        in_flight,
        routing,
        requested_model,
        include_usage,
        on_complete,
    } = context;
    let id = record.request_id().to_owned();
    let created = unix_seconds();
    let idle_timeout: Duration = deployment.timeout;
    Box::pin(async_stream::stream! {
        let _in_flight = in_flight;
        let mut builder = CompletionBuilder::default();
        let mut usage = None;
        loop {
            let next = match tokio::time::timeout(idle_timeout, chunks.next()).await {
                Ok(next) => next,
                Err(_) => Some(Err(GatewayError::upstream_timeout(format!(
                    "deployment '{}' sent nothing for {} ms mid-stream", deployment.name, idle_timeout.as_millis()
                )))),
            };
            match next {
                Some(Ok(mut chunk)) => {
                    if let Some(Some(reported)) = chunk.usage {
                        usage = Some(reported);
                    }
                    for choice in &chunk.choices {
                        if let Some(text) = &choice.delta.content {
                            record.observe_text(text);
                        }
                    }
                    let is_usage_only = chunk.choices.is_empty();
                    chunk.id.clone_from(&id);
                    chunk.model.clone_from(&requested_model);
                    chunk.created = created;
                    chunk.object = "chat.completion.chunk".to_owned();
                    builder.push(&chunk);
                    if include_usage {
                        // OpenAI sends `usage: null` on every chunk but the last when usage was asked for.
                        chunk.usage = Some(if is_usage_only { usage } else { None });
                        if is_usage_only {
                            continue;
                        }
                        yield Ok(chunk);
                    } else if !is_usage_only {
                        chunk.usage = None;
                        yield Ok(chunk);
                    }
                }
                Some(Err(error)) => {
                    if error.is_retryable() {
                        deployment.health.record_failure(Instant::now(), &routing);
                    }
                    record.fail(&error).await;
                    yield Err(error);
                    return;
                }
                None => break,
            }
        }
        let text = builder.text_so_far();
        let finished = builder.finish(|_| 0);
        match finished {
            Ok(mut completion) => {
                let usage = usage.unwrap_or_else(|| Usage::new(record.prompt_estimate, estimate_tokens(&text)));
                if let Some(on_complete) = on_complete {
                    completion.usage = Some(usage);
                    on_complete(completion, record.cost_of(usage));
                }
                if include_usage {
                    yield Ok(ChatCompletionChunk {
                        id: id.clone(),
                        object: "chat.completion.chunk".to_owned(),
                        created,
                        model: requested_model.clone(),
                        choices: Vec::new(),
                        usage: Some(Some(usage)),
                        system_fingerprint: None,
                    });
                }
                record.finish("ok", usage).await;
            }
            Err(error) => {
                deployment.health.record_failure(Instant::now(), &routing);
                record.fail(&error).await;
                yield Err(error);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(json: serde_json::Value) -> ChatCompletionRequest {
        serde_json::from_value(json).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    }

    fn with(field: &str, value: serde_json::Value) -> ChatCompletionRequest {
        let mut json = base();
        json[field] = value;
        request(json)
    }

    #[test]
    fn accepts_plain_requests_tools_and_json_formats() {
        assert!(validate(&request(base()), Some(100)).is_ok());
        let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]);
        assert!(validate(&with("tools", tools), Some(100)).is_ok());
        assert!(
            validate(
                &with("response_format", serde_json::json!({"type": "json_object"})),
                None
            )
            .is_ok()
        );
        let schema = serde_json::json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}});
        assert!(validate(&with("response_format", schema), None).is_ok());
        assert!(validate(&with("n", serde_json::json!(3)), None).is_ok());
    }

    #[test]
    fn rejects_out_of_range_values() {
        for (field, value, param) in [
            ("max_tokens", serde_json::json!(0), "max_tokens"),
            ("max_tokens", serde_json::json!(101), "max_tokens"),
            ("max_completion_tokens", serde_json::json!(-5), "max_completion_tokens"),
            ("temperature", serde_json::json!(2.5), "temperature"),
            ("top_p", serde_json::json!(1.5), "top_p"),
            ("stop", serde_json::json!(["a", "b", "c", "d", "e"]), "stop"),
            ("stop", serde_json::json!(""), "stop"),
            ("n", serde_json::json!(0), "n"),
            ("presence_penalty", serde_json::json!(3), "presence_penalty"),
            (
                "response_format",
                serde_json::json!({"type": "xml"}),
                "response_format.type",
            ),
            (
                "tools",
                serde_json::json!([{"type": "function", "function": {"name": "has space"}}]),
                "tools[0].function.name",
            ),
            (
                "stream_options",
                serde_json::json!({"include_usage": true}),
                "stream_options",
            ),
        ] {
            let error = validate(&with(field, value), Some(100)).err().unwrap();
            assert_eq!(error.status(), 400, "{field}");
            assert_eq!(error.body().error.param.as_deref(), Some(param), "{field}");
        }
    }

    #[test]
    fn rejects_empty_messages_unknown_roles_and_orphan_tool_messages() {
        let empty = request(serde_json::json!({"model": "m", "messages": []}));
        assert_eq!(validate(&empty, None).err().unwrap().code(), "invalid_request");
        let odd = request(serde_json::json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}));
        let error = validate(&odd, None).err().unwrap();
        assert_eq!(error.body().error.param.as_deref(), Some("messages[0].role"));
        let tool = request(serde_json::json!({"model": "m", "messages": [{"role": "tool", "content": "42"}]}));
        let error = validate(&tool, None).err().unwrap();
        assert_eq!(error.body().error.param.as_deref(), Some("messages[0].tool_call_id"));
    }

    #[test]
    fn unknown_fields_are_rejected_and_requests_round_trip() {
        let mut json = base();
        json["temprature"] = serde_json::json!(0.5);
        assert!(serde_json::from_value::<ChatCompletionRequest>(json).is_err());
        let json = serde_json::json!({"model": "m", "messages": [
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto", "seed": 7});
        let parsed = request(json.clone());
        let mut back = serde_json::to_value(&parsed).unwrap();
        // `content: null` is kept as null: the OpenAI API accepts it on assistant messages with tool calls.
        assert_eq!(back["messages"][0]["content"], serde_json::Value::Null);
        back["messages"][0].as_object_mut().unwrap().remove("content");
        let mut expected = json;
        expected["messages"][0].as_object_mut().unwrap().remove("content");
        assert_eq!(back, expected);
    }

    #[test]
    fn worst_case_cost_covers_the_completion_limit_and_every_choice() {
        let price = Price {
            input_micros_per_mtok: 1_000_000,
            output_micros_per_mtok: 2_000_000,
        };
        let mut capped = with("max_tokens", serde_json::json!(10));
        let prompt = estimate_prompt_tokens(&capped);
        assert_eq!(
            worst_case_cost(&capped, prompt, Some(100), price),
            i64::from(prompt) + 20
        );
        capped.n = Some(3);
        assert_eq!(
            worst_case_cost(&capped, prompt, Some(100), price),
            i64::from(prompt) + 60
        );
        let open = request(base());
        assert_eq!(
            worst_case_cost(&open, prompt, None, price),
            i64::from(prompt) + 2 * 4096
        );
    }
}
