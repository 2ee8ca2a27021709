//! Structured output: text that always parses as JSON and validates against the request's schema. llguidance
//! compiles the schema (or "any JSON object") into a parser that, at every step, masks the tokens that cannot
//! continue a valid document; the model picks among the rest, so even a 135M model's answer validates, and the
//! only token left once the document is complete is end-of-generation.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};

use crate::InferenceError;

/// What the generated text must be.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum OutputFormat {
    /// Free text.
    #[default]
    Text,
    /// A JSON object (held, while generating, to the shape [`any_object`] describes).
    JsonObject,
    /// A JSON document valid against this JSON Schema.
    JsonSchema(serde_json::Value),
}

/// The longest a string the schema leaves unbounded may grow while generating. A small model can ramble inside
/// an open string (a pattern such as `[a-z]+@...` it never finds its way out of) until the token limit cuts
/// the document short; with a bound, the constraint steers it to close the string, so the answer still
/// validates. Long enough not to matter for real fields.
const OPEN_STRING_LIMIT: u64 = 256;

/// What "any JSON object" means while generating: up to 16 members named like identifiers, each a scalar, a
/// list of up to 16 scalars, or an object of up to 16 scalars. Unbounded nesting lets a small model keep opening members until the token
/// limit cuts the document short; this shape holds what a JSON-mode answer is used for, and always closes.
fn any_object() -> serde_json::Value {
    let scalar = serde_json::json!({"type": ["string", "number", "boolean", "null"]});
    let members = |value: serde_json::Value| {
        serde_json::json!({
            "type": "object",
            "maxProperties": 16,
            // Names are identifiers: a free-text name is where a small model writes its whole answer.
            "patternProperties": {MEMBER_NAME: value},
            "additionalProperties": false,
        })
    };
    members(serde_json::json!({"anyOf": [
        scalar,
        {"type": "array", "maxItems": 16, "items": scalar},
        members(scalar.clone()),
    ]}))
}

/// The names of a JSON-mode object's members while generating.
const MEMBER_NAME: &str = "^[A-Za-z_][A-Za-z0-9_]{0,39}$";

/// Bounds a schema for generation, in place, through every nested schema, so the document closes within the
/// token limit; whatever it generates still validates against the original:
/// - every string schema without a `maxLength` (and without an `enum`, `const` or `format`, which bound it
///   already) gets the generation limit;
/// - an object schema that lists `properties` but says nothing of others gets `additionalProperties: false`:
///   left open, a small model keeps inventing members (`"colour": "red", "color": ...`) until it is cut off,
///   and generating only the declared members is always valid.
fn bound_for_generation(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(object) => {
            let open_object = object.contains_key("properties")
                && !object.contains_key("additionalProperties")
                && !object.contains_key("patternProperties")
                && !object.contains_key("unevaluatedProperties");
            if open_object {
                object.insert("additionalProperties".to_owned(), serde_json::Value::Bool(false));
            }
            let is_string = match object.get("type") {
                Some(serde_json::Value::String(kind)) => kind == "string",
                Some(serde_json::Value::Array(kinds)) => kinds.iter().any(|kind| kind == "string"),
                _ => false,
            };
            let bounded = ["maxLength", "enum", "const", "format"]
                .iter()
                .any(|key| object.contains_key(*key));
            if is_string && !bounded {
                object.insert("maxLength".to_owned(), serde_json::json!(OPEN_STRING_LIMIT));
            }
            for (key, value) in object.iter_mut() {
                // Literal values, not schemas.
                if !matches!(key.as_str(), "enum" | "const" | "default" | "examples") {
                    bound_for_generation(value);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(bound_for_generation),
        _ => {}
    }
}

/// Compiles output formats into samplers for one model's vocabulary. Building it walks the whole vocabulary
/// (a fraction of a second), so each model builds it once, on its worker thread while loading.
pub(crate) struct Grammars {
    factory: ParserFactory,
}

impl Grammars {
    pub(crate) fn new(model: &LlamaModel) -> Result<Grammars, InferenceError> {
        let tokens = LlamaSampler::llguidance_tok_env(model);
        let mut factory = ParserFactory::new_simple(&tokens)
            .map_err(|error| InferenceError::Backend(format!("structured output: {error}")))?;
        // Problems with a schema are the client's and reach it as errors, not as lines on our stderr.
        factory.quiet();
        Ok(Grammars { factory })
    }

    /// The sampler that keeps the output in `format`; `None` for free text. A schema llguidance cannot use
    /// (invalid, or with features it does not support) is the client's error, with llguidance's reason.
    pub(crate) fn sampler(&self, format: &OutputFormat) -> Result<Option<LlamaSampler>, InferenceError> {
        let mut schema = match format {
            OutputFormat::Text => return Ok(None),
            OutputFormat::JsonObject => any_object(),
            OutputFormat::JsonSchema(schema) => schema.clone(),
        };
        bound_for_generation(&mut schema);
        // Compact JSON on one line: whitespace a small model could ramble in costs tokens and proves nothing. A
        // schema that sets its own `x-guidance` options keeps them.
        if let Some(object) = schema.as_object_mut() {
            object.entry("x-guidance").or_insert_with(
                || serde_json::json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
            );
        }
        let invalid =
            |reason: String| InferenceError::InvalidRequest(format!("the JSON schema cannot be used: {reason}"));
        let parser = self
            .factory
            .create_parser(TopLevelGrammar::from_json_schema(schema))
            .map_err(|error| invalid(error.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(error) = matcher.get_error() {
            return Err(invalid(error));
        }
        Ok(Some(LlamaSampler::from(matcher)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn objects_with_declared_properties_generate_only_those() {
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {"colour": {"enum": ["red"]}, "inner": {"type": "object", "properties": {}}},
            "required": ["colour"]
        });
        bound_for_generation(&mut schema);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["inner"]["additionalProperties"], false);
        let mut open =
            serde_json::json!({"type": "object", "properties": {}, "additionalProperties": {"type": "integer"}});
        bound_for_generation(&mut open);
        assert_eq!(open["additionalProperties"], serde_json::json!({"type": "integer"}));
    }

    #[test]
    fn open_strings_get_the_generation_limit_and_bounded_ones_keep_theirs() {
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {
                "email": {"type": ["string", "null"], "pattern": "^[a-z]+@[a-z]+\\.com$"},
                "name": {"type": "string", "maxLength": 10},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "when": {"type": "string", "format": "date"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "label": {"const": {"type": "string"}}
            },
            "$defs": {"note": {"type": "string"}}
        });
        bound_for_generation(&mut schema);
        let limit = serde_json::json!(OPEN_STRING_LIMIT);
        assert_eq!(schema["properties"]["email"]["maxLength"], limit);
        assert_eq!(schema["properties"]["name"]["maxLength"], 10);
        assert!(schema["properties"]["kind"].get("maxLength").is_none());
        assert!(schema["properties"]["when"].get("maxLength").is_none());
        assert_eq!(schema["properties"]["tags"]["items"]["maxLength"], limit);
        assert!(schema["properties"]["label"]["const"].get("maxLength").is_none());
        assert_eq!(schema["$defs"]["note"]["maxLength"], limit);
    }
}
