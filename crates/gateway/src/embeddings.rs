//! Embeddings: validating an OpenAI embeddings request, running it on the provider and encoding the vectors as
//! floats or base64 (little-endian f32, as OpenAI's SDKs decode it).

use std::time::Instant;

use base64::Engine as _;

use crate::GatewayError;
use crate::chat::new_request_id;
use crate::ledger::{Account, UsageRecord, UsageSink};
use crate::metrics;
use crate::openai::{
    EmbeddingData, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EmbeddingVector,
};
use crate::provider::EmbeddingProvider;

pub(crate) const ENDPOINT: &str = "embeddings";
/// OpenAI's own limit on inputs per request.
const MAX_INPUTS: usize = 2048;

enum Encoding {
    Float,
    Base64,
}

struct ValidatedEmbedding {
    inputs: Vec<String>,
    encoding: Encoding,
}

fn validate(request: EmbeddingRequest, dimensions: usize) -> Result<ValidatedEmbedding, GatewayError> {
    let inputs = match request.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
            return Err(GatewayError::UnsupportedParameter {
                param: "input".to_owned(),
                model: request.model,
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
    if let Some(asked) = request.dimensions
        && usize::try_from(asked).ok() != Some(dimensions)
    {
        return Err(GatewayError::UnsupportedParameter {
            param: "dimensions".to_owned(),
            model: request.model,
            reason: format!("this model produces {dimensions}-dimensional vectors only"),
        });
    }
    Ok(ValidatedEmbedding { inputs, encoding })
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

pub(crate) async fn run(
    sink: &UsageSink,
    account: &Account,
    provider: &dyn EmbeddingProvider,
    request: EmbeddingRequest,
) -> Result<EmbeddingResponse, GatewayError> {
    let started = Instant::now();
    let model = request.model.clone();
    let outcome = match validate(request, provider.dimensions()) {
        Ok(validated) => provider
            .embed(validated.inputs)
            .await
            .map(|output| (output, validated.encoding)),
        Err(error) => Err(error),
    };
    let (status, prompt_tokens) = match &outcome {
        Ok((output, _)) => ("ok", output.prompt_tokens),
        Err(error) => (error.code(), 0),
    };
    let elapsed = started.elapsed();
    metrics::record_model_request(&model, ENDPOINT, status, prompt_tokens, 0, elapsed.as_secs_f64());
    let row = UsageRecord {
        request_id: new_request_id("embd"),
        tenant: account.tenant.clone(),
        key_id: account.key_id.clone(),
        model: model.clone(),
        endpoint: ENDPOINT.to_owned(),
        prompt_tokens: i64::from(prompt_tokens),
        completion_tokens: 0,
        latency_ms: elapsed.as_secs_f64() * 1e3,
        ttft_ms: None,
        status: status.to_owned(),
    };
    sink.write(row).await;
    let (output, encoding) = outcome?;
    Ok(EmbeddingResponse {
        object: "list",
        data: output
            .vectors
            .into_iter()
            .enumerate()
            .map(|(index, vector)| EmbeddingData {
                object: "embedding",
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
                validate(request(json.clone()), 4).err().unwrap().status(),
                400,
                "{json}"
            );
        }
        let tokens = request(serde_json::json!({"model": "m", "input": [1, 2, 3]}));
        assert_eq!(validate(tokens, 4).err().unwrap().code(), "unsupported_parameter");
        let dims = request(serde_json::json!({"model": "m", "input": "a", "dimensions": 3}));
        assert_eq!(validate(dims, 4).err().unwrap().code(), "unsupported_parameter");
        assert!(
            validate(
                request(serde_json::json!({"model": "m", "input": ["a", "b"], "dimensions": 4})),
                4
            )
            .is_ok()
        );
    }
}
