//! Embeddings: validating an OpenAI embeddings request, running it on the provider and encoding the vectors as
//! floats or base64 (little-endian f32, as OpenAI's SDKs decode it).

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;

use crate::GatewayError;
use crate::budget::BudgetLimit;
use crate::chat::new_request_id;
use crate::dispatch::Dispatcher;
use crate::ledger::{Account, UsageRecord, UsageSink};
use crate::models::{Backend, ModelEntry};
use crate::openai::{
    EmbeddingData, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EmbeddingVector,
};
use crate::provider::estimate_tokens;

pub(crate) const ENDPOINT: &str = "embeddings";
/// OpenAI's own limit on inputs per request.
const MAX_INPUTS: usize = 2048;

enum Encoding {
    Float,
    Base64,
}

struct ValidatedEmbedding {
    count: usize,
    encoding: Encoding,
}

fn validate(request: &EmbeddingRequest, dimensions: Option<usize>) -> Result<ValidatedEmbedding, GatewayError> {
    let inputs = match &request.input {
        EmbeddingInput::One(text) => std::slice::from_ref(text),
        EmbeddingInput::Many(texts) => texts.as_slice(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
            return Err(GatewayError::UnsupportedParameter {
                param: "input".to_owned(),
                model: request.model.clone(),
                reason: "token-id input is not accepted; send text".to_owned(),
            });
        }
    };
    if inputs.is_empty() {
        return Err(GatewayError::invalid("input", "'input' must not be an empty list"));
    }
    if inputs.len() > MAX_INPUTS {
        return Err(GatewayError::invalid(
            "input",
            format!("'input' takes at most {MAX_INPUTS} items"),
        ));
    }
    if let Some(index) = inputs.iter().position(String::is_empty) {
        return Err(GatewayError::invalid(
            "input",
            format!("input[{index}] is empty; every input must have text"),
        ));
    }
    let encoding = match request.encoding_format.as_deref() {
        None | Some("float") => Encoding::Float,
        Some("base64") => Encoding::Base64,
        Some(other) => {
            return Err(GatewayError::invalid(
                "encoding_format",
                format!("unknown encoding_format '{other}'; expected 'float' or 'base64'"),
            ));
        }
    };
    if let (Some(asked), Some(dimensions)) = (request.dimensions, dimensions)
        && usize::try_from(asked).ok() != Some(dimensions)
    {
        return Err(GatewayError::UnsupportedParameter {
            param: "dimensions".to_owned(),
            model: request.model.clone(),
            reason: format!("this model produces {dimensions}-dimensional vectors only"),
        });
    }
    Ok(ValidatedEmbedding {
        count: inputs.len(),
        encoding,
    })
}

fn encode(vector: Vec<f32>, encoding: &Encoding) -> EmbeddingVector {
    match encoding {
        Encoding::Float => EmbeddingVector::Float(vector),
        Encoding::Base64 => {
            let bytes: Vec<u8> = vector.iter().flat_map(|value| value.to_le_bytes()).collect();
            EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// One embeddings request on its way through the gateway.
pub(crate) struct EmbeddingRun<'a> {
    pub(crate) sink: &'a UsageSink,
    pub(crate) account: &'a Account,
    pub(crate) dispatcher: Dispatcher<'a>,
    pub(crate) entry: Arc<ModelEntry>,
    pub(crate) budgets: &'a [BudgetLimit],
    pub(crate) request: EmbeddingRequest,
    pub(crate) started: Instant,
}

fn input_tokens(request: &EmbeddingRequest) -> u32 {
    match &request.input {
        EmbeddingInput::One(text) => estimate_tokens(text),
        EmbeddingInput::Many(texts) => texts.iter().map(|text| estimate_tokens(text)).sum(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => 0,
    }
}

pub(crate) async fn run(run: EmbeddingRun<'_>) -> Result<EmbeddingResponse, GatewayError> {
    let EmbeddingRun {
        sink,
        account,
        dispatcher,
        entry,
        budgets,
        request,
        started,
    } = run;
    let model = request.model.clone();
    let mut row = UsageRecord::pending(new_request_id("embd"), account, &model, ENDPOINT);
    let mut reservation = None;
    let dimensions = entry
        .deployments
        .first()
        .and_then(|deployment| match dispatcher.catalog.backend(deployment) {
            Ok(Backend::Embedding(provider)) => provider.dimensions(),
            _ => None,
        });
    let outcome = match validate(&request, dimensions) {
        Err(error) => Err(error),
        Ok(validated) => {
            let worst_case = entry.price.cost_micros(u64::from(input_tokens(&request)) * 2, 0);
            let reserved = if budgets.is_empty() {
                Ok(None)
            } else {
                sink.budgets.reserve(budgets, worst_case).await.map(Some)
            };
            match reserved {
                Err(error) => Err(error),
                Ok(held) => {
                    reservation = held;
                    let served = dispatcher
                        .run(&entry, |backend, deployment| {
                            let mut request = request.clone();
                            async move {
                                let Backend::Embedding(provider) = backend else {
                                    return Err(GatewayError::Internal(
                                        "an embedding model has a non-embedding deployment".to_owned(),
                                    ));
                                };
                                request.model.clone_from(&deployment.upstream_model);
                                provider.embed(request).await
                            }
                        })
                        .await;
                    match served {
                        Ok(served) => {
                            row.served_by(&served.deployment, served.attempts);
                            row.cost_micros = served
                                .deployment
                                .price
                                .cost_micros(u64::from(served.value.prompt_tokens), 0);
                            if served.value.vectors.len() == validated.count {
                                Ok((served.value, validated.encoding))
                            } else {
                                Err(GatewayError::upstream_malformed(format!(
                                    "the upstream returned {} vectors for {} inputs",
                                    served.value.vectors.len(),
                                    validated.count
                                )))
                            }
                        }
                        Err(unserved) => {
                            row.deployment = unserved.deployment;
                            row.attempts = i64::from(unserved.attempts);
                            Err(unserved.error)
                        }
                    }
                }
            }
        }
    };
    let (status, prompt_tokens) = match &outcome {
        Ok((output, _)) => ("ok", output.prompt_tokens),
        Err(error) => (error.code(), 0),
    };
    row.prompt_tokens = i64::from(prompt_tokens);
    row.latency_ms = started.elapsed().as_secs_f64() * 1e3;
    row.status = status.to_owned();
    if outcome.is_err() {
        row.cost_micros = 0;
    }
    sink.write(row, reservation).await;
    let (output, encoding) = outcome?;
    Ok(EmbeddingResponse {
        object: "list".to_owned(),
        data: output
            .vectors
            .into_iter()
            .enumerate()
            .map(|(index, vector)| EmbeddingData {
                object: "embedding".to_owned(),
                index,
                embedding: encode(vector, &encoding),
            })
            .collect(),
        model,
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(json: serde_json::Value) -> EmbeddingRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let EmbeddingVector::Base64(text) = encode(vec![1.0, -2.5], &Encoding::Base64) else {
            unreachable!("asked for base64")
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
        assert_eq!(bytes, [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat());
    }

    #[test]
    fn rejects_bad_inputs() {
        for json in [
            serde_json::json!({"model": "m", "input": []}),
            serde_json::json!({"model": "m", "input": ""}),
            serde_json::json!({"model": "m", "input": ["a", ""]}),
            serde_json::json!({"model": "m", "input": "a", "encoding_format": "hex"}),
        ] {
            assert_eq!(
                validate(&request(json.clone()), Some(4)).err().unwrap().status(),
                400,
                "{json}"
            );
        }
        let tokens = request(serde_json::json!({"model": "m", "input": [1, 2, 3]}));
        assert_eq!(
            validate(&tokens, Some(4)).err().unwrap().code(),
            "unsupported_parameter"
        );
        let dims = request(serde_json::json!({"model": "m", "input": "a", "dimensions": 3}));
        assert_eq!(validate(&dims, Some(4)).err().unwrap().code(), "unsupported_parameter");
        assert!(
            validate(
                &request(serde_json::json!({"model": "m", "input": ["a", "b"], "dimensions": 4})),
                Some(4)
            )
            .is_ok()
        );
    }
}
