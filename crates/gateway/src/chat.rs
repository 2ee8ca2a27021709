//! Chat completions: validating an OpenAI request into a provider request, and running it as one stream of
//! chunks that both the HTTP layer and in-process callers consume. The stream owns the request's ledger row, so
//! a completed, failed or abandoned request is recorded exactly once.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};

use crate::GatewayError;
use crate::ledger::{Account, UsageRecord, UsageSink};
use crate::metrics;
use crate::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta,
    MessageContent, Usage,
};
use crate::provider::{ChatProvider, ProviderChatRequest, ProviderEvent, ProviderMessage};

pub(crate) const ENDPOINT: &str = "chat.completions";
const MAX_STOP_SEQUENCES: usize = 4;

/// A streamed chat completion: chunks in order, ending after the chunk with a `finish_reason` (and the usage
/// chunk when asked for), or with one error.
pub type ChatCompletionStream = std::pin::Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk, GatewayError>> + Send>>;

pub(crate) struct ValidatedChat {
    pub(crate) request: ProviderChatRequest,
    pub(crate) include_usage: bool,
}

/// Checks a request against what the OpenAI API allows and what the provider can honour.
pub(crate) fn validate(request: ChatCompletionRequest, context_length: u32) -> Result<ValidatedChat, GatewayError> {
    let model = request.model.clone();
    let unsupported = |param: &str, reason: &str| GatewayError::UnsupportedParameter {
        param: param.to_owned(),
        model: model.clone(),
        reason: reason.to_owned(),
    };
    if request.messages.is_empty() {
        return Err(GatewayError::invalid(
            "messages",
            "'messages' must contain at least one message",
        ));
    }
    if request.tools.is_some() || request.functions.is_some() {
        return Err(unsupported("tools", "tool calling is not available on this model yet"));
    }
    if let Some(format) = &request.response_format
        && format.get("type").and_then(|t| t.as_str()) != Some("text")
    {
        return Err(unsupported(
            "response_format",
            "only the 'text' response format is available on this model yet",
        ));
    }
    if request.logprobs == Some(true) || request.top_logprobs.is_some() {
        return Err(unsupported(
            "logprobs",
            "log probabilities are not available on this model yet",
        ));
    }
    if request
        .logit_bias
        .as_ref()
        .is_some_and(|bias| bias.as_object().is_none_or(|map| !map.is_empty()))
    {
        return Err(unsupported(
            "logit_bias",
            "logit bias is not available on this model yet",
        ));
    }
    if request.audio.is_some() {
        return Err(unsupported("audio", "this is a text model"));
    }
    for (param, value) in [
        ("frequency_penalty", request.frequency_penalty),
        ("presence_penalty", request.presence_penalty),
    ] {
        match value {
            Some(v) if !(-2.0..=2.0).contains(&v) => {
                return Err(GatewayError::invalid(
                    param,
                    format!("'{param}' must be between -2 and 2"),
                ));
            }
            Some(v) if v != 0.0 => return Err(unsupported(param, "penalties are not available on this model yet")),
            _ => {}
        }
    }
    match request.n {
        None | Some(1) => {}
        Some(n) if n < 1 => return Err(GatewayError::invalid("n", "'n' must be at least 1")),
        Some(_) => {
            return Err(unsupported(
                "n",
                "only one choice per request (n=1) is available on this model",
            ));
        }
    }
    if request.stream_options.is_some() && !request.stream {
        return Err(GatewayError::invalid(
            "stream_options",
            "'stream_options' is only allowed when 'stream' is true",
        ));
    }

    let mut messages = Vec::with_capacity(request.messages.len());
    for (index, message) in request.messages.into_iter().enumerate() {
        let param = format!("messages[{index}]");
        let role = match message.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" | "function" => {
                return Err(unsupported(
                    &param,
                    "tool messages need tool calling, not available yet",
                ));
            }
            other => {
                return Err(GatewayError::invalid(
                    &format!("{param}.role"),
                    format!("unknown role '{other}'; expected system, developer, user or assistant"),
                ));
            }
        };
        if message.tool_calls.is_some() {
            return Err(unsupported(&param, "tool calls need tool calling, not available yet"));
        }
        let content = match message.content {
            Some(MessageContent::Text(text)) => text,
            Some(MessageContent::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(part_text)) => text.push_str(&part_text),
                        ("text", None) => {
                            return Err(GatewayError::invalid(
                                &param,
                                "a 'text' content part needs a 'text' field",
                            ));
                        }
                        (kind, _) => {
                            return Err(unsupported(
                                &param,
                                &format!("'{kind}' content parts: this is a text model"),
                            ));
                        }
                    }
                }
                text
            }
            None if role == "assistant" => String::new(),
            None => {
                return Err(GatewayError::invalid(
                    &format!("{param}.content"),
                    "'content' is required",
                ));
            }
        };
        messages.push(ProviderMessage {
            role: role.to_owned(),
            content,
        });
    }

    let max_tokens = match request.max_completion_tokens.or(request.max_tokens) {
        None => None,
        Some(n) if n >= 1 && n <= i64::from(context_length) => u32::try_from(n).ok(),
        Some(_) => {
            let param = if request.max_completion_tokens.is_some() {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            return Err(GatewayError::invalid(
                param,
                format!("'{param}' must be between 1 and the model's context length, {context_length}"),
            ));
        }
    };
    let temperature = request.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(GatewayError::invalid(
            "temperature",
            "'temperature' must be between 0 and 2",
        ));
    }
    let top_p = request.top_p.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&top_p) {
        return Err(GatewayError::invalid("top_p", "'top_p' must be between 0 and 1"));
    }
    let stop = request.stop.map(|stop| stop.into_vec()).unwrap_or_default();
    if stop.len() > MAX_STOP_SEQUENCES {
        return Err(GatewayError::invalid("stop", "'stop' takes at most 4 sequences"));
    }
    if stop.iter().any(String::is_empty) {
        return Err(GatewayError::invalid("stop", "stop sequences must not be empty"));
    }
    // top_p = 0 keeps only the most likely token: the same as greedy decoding.
    let (temperature, top_p) = if top_p == 0.0 {
        (0.0, 1.0)
    } else {
        (temperature as f32, top_p)
    };
    Ok(ValidatedChat {
        request: ProviderChatRequest {
            messages,
            max_tokens,
            temperature,
            top_p: top_p as f32,
            // Seeds are opaque bits: a negative seed is as good as any other.
            seed: request.seed.map(|seed| seed as u64),
            stop,
        },
        include_usage: request.stream_options.is_some_and(|options| options.include_usage),
    })
}

/// Everything needed to run one chat request and account for it.
pub(crate) struct ChatRun {
    pub(crate) sink: UsageSink,
    pub(crate) account: Account,
    pub(crate) model: String,
    pub(crate) provider: Arc<dyn ChatProvider>,
    pub(crate) validated: ValidatedChat,
    pub(crate) started: Instant,
}

/// Starts the provider and returns the chunk stream; fails before any chunk when the provider refuses.
pub(crate) async fn start(run: ChatRun) -> Result<ChatCompletionStream, GatewayError> {
    let ChatRun {
        sink,
        account,
        model,
        provider,
        validated,
        started,
    } = run;
    let include_usage = validated.include_usage;
    let mut tracker = UsageTracker::new(sink, account, model.clone(), "chatcmpl", started, Arc::clone(&provider));
    let mut events = match provider.start(validated.request).await {
        Ok(events) => events,
        Err(error) => {
            tracker.finish(error.code(), 0, 0).await;
            return Err(error);
        }
    };
    // A provider may only discover that it cannot serve the request (e.g. the prompt overflows the context) once
    // it starts; wait for its first event so such failures are a proper error status, not a broken stream.
    let first = events.next().await;
    if let Some(Err(error)) = first {
        tracker.finish(error.code(), 0, 0).await;
        return Err(error);
    }
    let mut events = futures::stream::iter(first).chain(events);
    let id = tracker.request_id().to_owned();
    let created = unix_seconds();
    let chunk = move |delta: Delta, finish_reason: Option<String>, usage: Option<Option<Usage>>| ChatCompletionChunk {
        id: id.clone(),
        object: "chat.completion.chunk",
        created,
        model: model.clone(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason,
            logprobs: None,
        }],
        usage,
        system_fingerprint: None,
    };
    let usage_slot = move || if include_usage { Some(None) } else { None };

    let stream = async_stream::stream! {
        yield Ok(chunk(Delta { role: Some("assistant"), content: Some(String::new()) }, None, usage_slot()));
        while let Some(event) = events.next().await {
            match event {
                Ok(ProviderEvent::Started { prompt_tokens }) => tracker.prompt_tokens = prompt_tokens,
                Ok(ProviderEvent::Text(text)) => {
                    tracker.observe_text(&text);
                    yield Ok(chunk(Delta { role: None, content: Some(text) }, None, usage_slot()));
                }
                Ok(ProviderEvent::Done { prompt_tokens, completion_tokens, finish_reason }) => {
                    yield Ok(chunk(Delta::default(), Some(finish_reason), usage_slot()));
                    if include_usage {
                        let mut last = chunk(Delta::default(), None, Some(Some(Usage::new(prompt_tokens, completion_tokens))));
                        last.choices.clear();
                        yield Ok(last);
                    }
                    tracker.finish("ok", prompt_tokens, completion_tokens).await;
                    return;
                }
                Err(error) => {
                    let (prompt, completion) = tracker.tokens_so_far();
                    tracker.finish(error.code(), prompt, completion).await;
                    yield Err(error);
                    return;
                }
            }
        }
        let (prompt, completion) = tracker.tokens_so_far();
        tracker.finish("provider_error", prompt, completion).await;
        yield Err(GatewayError::Provider("the model stopped without finishing its answer".to_owned()));
    };
    Ok(Box::pin(stream))
}

/// Drains a chunk stream into one non-streaming completion.
pub(crate) async fn collect(mut stream: ChatCompletionStream) -> Result<ChatCompletion, GatewayError> {
    let mut content = String::new();
    let mut finish_reason = None;
    let mut first: Option<ChatCompletionChunk> = None;
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if let Some(Some(u)) = chunk.usage {
            usage = Some(u);
        }
        for choice in &chunk.choices {
            if let Some(text) = &choice.delta.content {
                content.push_str(text);
            }
            if choice.finish_reason.is_some() {
                finish_reason.clone_from(&choice.finish_reason);
            }
        }
        first.get_or_insert(chunk);
    }
    let (Some(first), Some(finish_reason), Some(usage)) = (first, finish_reason, usage) else {
        return Err(GatewayError::Provider(
            "the model stopped without finishing its answer".to_owned(),
        ));
    };
    Ok(ChatCompletion {
        id: first.id,
        object: "chat.completion".to_owned(),
        created: first.created,
        model: first.model,
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".to_owned(),
                content,
                refusal: None,
            },
            finish_reason,
            logprobs: None,
        }],
        usage,
        system_fingerprint: None,
    })
}

/// Now, in whole seconds since the Unix epoch (UTC): the gateway's one clock for ids, expiries and `created`.
pub fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) fn new_request_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Owns one request's ledger row. Finishing writes it; dropping it unfinished (the client went away) writes it
/// as `cancelled` from a spawned task, with the tokens generated so far.
pub(crate) struct UsageTracker {
    sink: UsageSink,
    pending: Option<UsageRecord>,
    started: Instant,
    first_token: Option<Instant>,
    provider: Arc<dyn ChatProvider>,
    generated: String,
    prompt_tokens: u32,
}

impl UsageTracker {
    pub(crate) fn new(
        sink: UsageSink,
        account: Account,
        model: String,
        id_prefix: &str,
        started: Instant,
        provider: Arc<dyn ChatProvider>,
    ) -> UsageTracker {
        UsageTracker {
            sink,
            pending: Some(UsageRecord {
                request_id: new_request_id(id_prefix),
                tenant: account.tenant,
                key_id: account.key_id,
                model,
                endpoint: ENDPOINT.to_owned(),
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms: 0.0,
                ttft_ms: None,
                status: String::new(),
            }),
            started,
            first_token: None,
            provider,
            generated: String::new(),
            prompt_tokens: 0,
        }
    }

    fn request_id(&self) -> &str {
        self.pending.as_ref().map_or("", |row| row.request_id.as_str())
    }

    fn observe_text(&mut self, text: &str) {
        if self.first_token.is_none() {
            let now = Instant::now();
            self.first_token = Some(now);
            if let Some(row) = &self.pending {
                metrics::record_time_to_first_token(&row.model, (now - self.started).as_secs_f64());
            }
        }
        self.generated.push_str(text);
    }

    fn tokens_so_far(&self) -> (u32, u32) {
        (self.prompt_tokens, self.provider.count_tokens(&self.generated))
    }

    fn complete(&mut self, status: &str, prompt_tokens: u32, completion_tokens: u32) -> Option<UsageRecord> {
        let mut row = self.pending.take()?;
        let elapsed = self.started.elapsed();
        row.status = status.to_owned();
        row.prompt_tokens = i64::from(prompt_tokens);
        row.completion_tokens = i64::from(completion_tokens);
        row.latency_ms = elapsed.as_secs_f64() * 1e3;
        row.ttft_ms = self.first_token.map(|at| (at - self.started).as_secs_f64() * 1e3);
        metrics::record_model_request(
            &row.model,
            ENDPOINT,
            status,
            prompt_tokens,
            completion_tokens,
            elapsed.as_secs_f64(),
        );
        Some(row)
    }

    async fn finish(&mut self, status: &str, prompt_tokens: u32, completion_tokens: u32) {
        if let Some(row) = self.complete(status, prompt_tokens, completion_tokens) {
            self.sink.write(row).await;
        }
    }
}

impl Drop for UsageTracker {
    fn drop(&mut self) {
        if self.pending.is_none() {
            return;
        }
        let (prompt, completion) = self.tokens_so_far();
        if let Some(row) = self.complete("cancelled", prompt, completion) {
            let sink = self.sink.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { sink.write(row).await });
            } else {
                tracing::error!(
                    request_id = row.request_id,
                    "no runtime to record a cancelled request in the ledger"
                );
            }
        }
    }
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
    fn accepts_a_plain_request_with_openai_defaults() {
        let validated = validate(request(base()), 100).unwrap();
        assert_eq!(validated.request.temperature, 1.0);
        assert_eq!(validated.request.max_tokens, None);
        assert_eq!(validated.request.messages[0].content, "hi");
    }

    #[test]
    fn top_p_zero_means_greedy() {
        let validated = validate(with("top_p", serde_json::json!(0)), 100).unwrap();
        assert_eq!((validated.request.temperature, validated.request.top_p), (0.0, 1.0));
    }

    #[test]
    fn joins_text_parts_and_maps_developer_to_system() {
        let json = serde_json::json!({"model": "m", "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": "q"}]});
        let validated = validate(request(json), 100).unwrap();
        assert_eq!(validated.request.messages[0].role, "system");
        assert_eq!(validated.request.messages[0].content, "ab");
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
            (
                "stream_options",
                serde_json::json!({"include_usage": true}),
                "stream_options",
            ),
        ] {
            let error = validate(with(field, value), 100).err().unwrap();
            assert_eq!(error.status(), 400, "{field}");
            assert_eq!(error.body().error.param.as_deref(), Some(param), "{field}");
        }
    }

    #[test]
    fn refuses_what_the_model_cannot_do_with_a_clear_code() {
        for (field, value) in [
            (
                "tools",
                serde_json::json!([{"type": "function", "function": {"name": "f"}}]),
            ),
            ("response_format", serde_json::json!({"type": "json_object"})),
            ("logprobs", serde_json::json!(true)),
            ("n", serde_json::json!(2)),
            ("presence_penalty", serde_json::json!(0.5)),
        ] {
            let error = validate(with(field, value), 100).err().unwrap();
            assert_eq!(error.code(), "unsupported_parameter", "{field}");
        }
        assert!(validate(with("presence_penalty", serde_json::json!(0)), 100).is_ok());
        assert!(validate(with("response_format", serde_json::json!({"type": "text"})), 100).is_ok());
    }

    #[test]
    fn rejects_empty_messages_and_unknown_roles() {
        let empty = request(serde_json::json!({"model": "m", "messages": []}));
        assert_eq!(validate(empty, 100).err().unwrap().code(), "invalid_request");
        let odd = request(serde_json::json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}));
        let error = validate(odd, 100).err().unwrap();
        assert_eq!(error.body().error.param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn unknown_fields_are_rejected_by_the_wire_type() {
        let mut json = base();
        json["temprature"] = serde_json::json!(0.5);
        assert!(serde_json::from_value::<ChatCompletionRequest>(json).is_err());
    }
}
