//! Applying a key's guardrails to chat traffic: the texts of a request's messages on the way in (redacting them
//! in place when the policy says so), and the answer on the way out.

use crate::GatewayError;
use crate::chat::{ChatCompletionStream, ChatRecord};
use crate::guardrails::{self, GuardrailPolicy, Verdict};
use crate::openai::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta, MessageContent};

/// Checks (and possibly redacts) every text of the request's messages.
pub(crate) fn check_request(policy: &GuardrailPolicy, request: &mut ChatCompletionRequest) -> Verdict {
    let mut texts = Vec::new();
    for message in &request.messages {
        match &message.content {
            Some(MessageContent::Text(text)) => texts.push(text.clone()),
            Some(MessageContent::Parts(parts)) => texts.extend(parts.iter().filter_map(|part| part.text.clone())),
            None => {}
        }
    }
    let verdict = guardrails::check_input(policy, &mut texts);
    if matches!(verdict, Verdict::Redacted { .. }) {
        let mut redacted = texts.into_iter();
        for message in &mut request.messages {
            match &mut message.content {
                Some(MessageContent::Text(text)) => {
                    if let Some(new) = redacted.next() {
                        *text = new;
                    }
                }
                Some(MessageContent::Parts(parts)) => {
                    for part in parts.iter_mut().filter(|part| part.text.is_some()) {
                        part.text = redacted.next();
                    }
                }
                None => {}
            }
        }
    }
    verdict
}

/// Checks each choice of an answer; redacts in place or refuses it. The verdict goes into the ledger row.
pub(crate) fn check_completion(
    policy: &GuardrailPolicy,
    completion: &mut ChatCompletion,
    record: &mut ChatRecord,
) -> Result<(), GatewayError> {
    if !policy.check_output {
        return Ok(());
    }
    let mut worst = Verdict::Allow;
    for choice in &mut completion.choices {
        let Some(content) = &mut choice.message.content else {
            continue;
        };
        match guardrails::check_output(policy, content) {
            Verdict::Blocked { rule, detail } => {
                if let Some(row) = record.row_mut() {
                    row.guardrail = Some(format!("blocked:{rule}"));
                }
                return Err(GatewayError::Blocked { rule, detail });
            }
            redacted @ Verdict::Redacted { .. } => worst = redacted,
            Verdict::Allow => {}
        }
    }
    if let Some(row) = record.row_mut()
        && (matches!(worst, Verdict::Redacted { .. }) || row.guardrail.is_none())
    {
        row.guardrail = Some(worst.label());
    }
    Ok(())
}

/// A checked, whole answer replayed as a stream for a client that asked for one.
pub(crate) fn completion_as_stream(completion: ChatCompletion, include_usage: bool) -> ChatCompletionStream {
    let chunk = |choices: Vec<ChunkChoice>| ChatCompletionChunk {
        id: completion.id.clone(),
        object: "chat.completion.chunk".to_owned(),
        created: completion.created,
        model: completion.model.clone(),
        choices,
        usage: include_usage.then_some(None),
        system_fingerprint: None,
    };
    let mut chunks = Vec::new();
    for choice in &completion.choices {
        let role = Delta {
            role: Some("assistant".to_owned()),
            content: Some(String::new()),
            ..Delta::default()
        };
        let body = Delta {
            content: choice.message.content.clone(),
            refusal: choice.message.refusal.clone(),
            tool_calls: choice.message.tool_calls.as_ref().map(|calls| {
                calls
                    .iter()
                    .enumerate()
                    .map(|(index, call)| crate::openai::ToolCallDelta {
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        id: Some(call.id.clone()),
                        kind: Some(call.kind.clone()),
                        function: Some(crate::openai::FunctionCallDelta {
                            name: Some(call.function.name.clone()),
                            arguments: Some(call.function.arguments.clone()),
                        }),
                    })
                    .collect()
            }),
            ..Delta::default()
        };
        for (delta, finish_reason) in [
            (role, None),
            (body, None),
            (Delta::default(), choice.finish_reason.clone()),
        ] {
            chunks.push(Ok(chunk(vec![ChunkChoice {
                index: choice.index,
                delta,
                finish_reason,
                logprobs: None,
            }])));
        }
    }
    if include_usage {
        let mut last = chunk(Vec::new());
        last.usage = Some(completion.usage);
        chunks.push(Ok(last));
    }
    Box::pin(futures::stream::iter(chunks))
}
