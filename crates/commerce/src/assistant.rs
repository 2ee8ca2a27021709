//! The product assistant: answers a shopper's question about one product with a chat model, grounded only in
//! that product's catalog facts. It reaches the model solely through the gateway's in-process client, so every
//! answer is a row in the usage ledger under the storefront's tenant.

use gateway::GatewayClient;
use gateway::openai::{ChatCompletionRequest, ChatMessage};
use serde::Serialize;

use crate::{CommerceError, Product};

/// Longest question accepted, in characters: a shopper's question, not a document.
pub const MAX_QUESTION_CHARS: usize = 500;
/// Answers are meant to be read at a glance.
const MAX_ANSWER_TOKENS: i64 = 120;

const INSTRUCTIONS: &str = "You are the flywheel store's product assistant. Answer the shopper's question using \
only the product facts below. If the facts do not answer the question, say plainly that the listing does not say. \
Never invent features, sizes, materials or prices. Answer in one or two short sentences.";

/// Answers questions about products with one chat model.
#[derive(Clone)]
pub struct ProductAssistant {
    client: GatewayClient,
    model: String,
}

/// A question about a product and the assistant's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductAnswer {
    /// The product asked about.
    pub product_id: String,
    /// The question, trimmed.
    pub question: String,
    /// The model's answer.
    pub answer: String,
    /// The model that answered.
    pub model: String,
}

impl ProductAssistant {
    /// An assistant that asks `model` through `client` (whose tenant pays for the tokens).
    pub fn new(client: GatewayClient, model: impl Into<String>) -> ProductAssistant {
        ProductAssistant {
            client,
            model: model.into(),
        }
    }

    /// Answers `question` about `product` from the product's facts alone.
    pub async fn answer(&self, product: &Product, question: &str) -> Result<ProductAnswer, CommerceError> {
        let question = validate_question(question)?;
        let request = ChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![
                ChatMessage::text(
                    "system",
                    format!("{INSTRUCTIONS}\n\nProduct facts:\n{}", product_facts(product)),
                ),
                ChatMessage::text("user", question),
            ],
            temperature: Some(0.0),
            max_tokens: Some(MAX_ANSWER_TOKENS),
            ..ChatCompletionRequest::default()
        };
        let completion = self.client.chat(request).await.map_err(CommerceError::Assistant)?;
        let answer = completion
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .unwrap_or_default();
        Ok(ProductAnswer {
            product_id: product.id.clone(),
            question: question.to_owned(),
            answer: non_empty_answer(&answer),
            model: completion.model,
        })
    }
}

/// A model can end its turn at once; the shopper then gets a plain "can't tell" rather than an empty box.
fn non_empty_answer(answer: &str) -> String {
    match answer.trim() {
        "" => "Sorry, I can't tell that from this listing.".to_owned(),
        answer => answer.to_owned(),
    }
}

/// The trimmed question, or why it cannot be asked.
pub(crate) fn validate_question(question: &str) -> Result<&str, CommerceError> {
    let question = question.trim();
    if question.is_empty() {
        return Err(CommerceError::InvalidRequest(
            "the question must not be empty".to_owned(),
        ));
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(CommerceError::InvalidRequest(format!(
            "the question is too long; ask in at most {MAX_QUESTION_CHARS} characters"
        )));
    }
    Ok(question)
}

/// The facts the model may use, one per line; missing facts are said to be missing rather than left out, so the
/// model is not tempted to fill them in.
pub(crate) fn product_facts(product: &Product) -> String {
    let or_unknown = |parts: &[String], separator: &str| {
        if parts.is_empty() {
            "not listed".to_owned()
        } else {
            parts.join(separator)
        }
    };
    let rating = match product.rating {
        Some(rating) => format!("{rating:.1} out of 5 from {} reviews", product.review_count),
        None => "no ratings yet".to_owned(),
    };
    let mut facts = format!(
        "- product id: {}\n- name: {}\n- type: {}\n- category: {}\n- rating: {rating}",
        product.id,
        product.name,
        or_unknown(&product.class, ", "),
        or_unknown(&product.category_path, " > "),
    );
    // Only what the listing has: a fact left out is one the model cannot be tempted to restate wrongly.
    if let Some(price) = product.price {
        facts.push_str(&format!("\n- price: {price:.2}"));
    }
    for (name, value) in &product.attributes {
        facts.push_str(&format!("\n- {name}: {value}"));
    }
    if let Some(description) = &product.description {
        facts.push_str(&format!("\n- description: {description}"));
    }
    facts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn questions_are_trimmed_and_bounded() {
        assert_eq!(validate_question("  is it wood?  ").unwrap(), "is it wood?");
        assert_eq!(validate_question(" \n ").unwrap_err().code(), "invalid_request");
        assert!(validate_question(&"é".repeat(MAX_QUESTION_CHARS)).is_ok());
        assert_eq!(
            validate_question(&"é".repeat(MAX_QUESTION_CHARS + 1))
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn an_empty_answer_becomes_a_plain_cant_tell() {
        assert_eq!(non_empty_answer(" \n"), "Sorry, I can't tell that from this listing.");
        assert_eq!(non_empty_answer(" Yes. "), "Yes.");
    }

    #[test]
    fn facts_name_what_is_missing() {
        let product = Product {
            id: "7".to_owned(),
            name: "oak stool".to_owned(),
            class: vec![],
            category_path: vec!["Furniture".to_owned(), "Stools".to_owned()],
            rating: None,
            review_count: 0,
            description: None,
            price: None,
            features: vec![],
            attributes: Default::default(),
        };
        assert_eq!(
            product_facts(&product),
            "- product id: 7\n- name: oak stool\n- type: not listed\n- category: Furniture > Stools\n- rating: no ratings yet"
        );
        let listed = Product {
            price: Some(49.5),
            attributes: [("colour".to_owned(), "natural".to_owned())].into(),
            description: Some("Solid oak.".to_owned()),
            ..product
        };
        assert!(
            product_facts(&listed).ends_with("- price: 49.50\n- colour: natural\n- description: Solid oak."),
            "{}",
            product_facts(&listed)
        );
    }
}
