//! The shopping assistant: a conversation about the catalog that stays grounded in it. Each turn is read for
//! what the shopper wants (find, compare, decide, or confirm adding to the cart; a budget such as "under $200"),
//! products are retrieved through the store's own search, and their facts alone go to the model. What the
//! shopper sees first needs no model: the products found (and, to compare, a table of their facts). The model's
//! prose follows sentence by sentence, and a checker lets through only sentences whose cited ids are among the
//! products retrieved and whose numbers appear in their facts or the shopper's words.

use std::collections::HashSet;

use futures::StreamExt;
use futures::stream::BoxStream;
use gateway::GatewayClient;
use gateway::openai::{ChatCompletionRequest, ChatMessage};
use serde::{Deserialize, Serialize};

use crate::assistant::product_facts;
use crate::{CommerceError, Filter, Product, SearchMode, SearchQuery, Storefront};

/// Turns of conversation accepted per request; older ones are the client's to drop.
const MAX_TURNS: usize = 20;
/// Characters per turn.
const MAX_TURN_CHARS: usize = 2_000;
/// Products retrieved for a "find" turn.
const FOUND: usize = 4;
/// Products a comparison holds, at most.
const MAX_COMPARED: usize = 4;
/// Products of the kind a need names, considered before ranking them by the whole need.
const HEAD_CANDIDATES: usize = 20;
/// The model's prose is a few sentences.
const MAX_PROSE_TOKENS: i64 = 160;

const INSTRUCTIONS: &str = "You are the flywheel store's shopping assistant. Use only the product facts below. \
Pick the product id that best fits the shopper and give the reason in one short sentence taken from its facts. \
Never mention a product, price, size or number that is not in the facts.";

/// One turn of the conversation, as the client keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: String,
}

/// What the shopper wants from this turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Find products for a need.
    Find,
    /// Compare products side by side.
    Compare,
    /// Weigh products' trade-offs to choose one.
    Decide,
    /// Yes to the product the assistant offered to add to the cart.
    ConfirmAddToCart,
}

/// What the assistant sends, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AssistantEvent {
    /// What the turn was understood as, and the products it is about.
    Products {
        /// The intent read from the turn.
        intent: Intent,
        /// The budget read from the turn, if any.
        max_price: Option<f64>,
        /// The products, best first.
        products: Vec<Product>,
    },
    /// The products' facts side by side, as a Markdown table.
    Table {
        /// The table.
        markdown: String,
    },
    /// Checked text to show.
    Text {
        /// The text.
        text: String,
    },
    /// Something the client should do or show: a product offered for the cart (`offer_add_to_cart`) or added.
    Action {
        /// `offer_add_to_cart` or `added_to_cart`.
        action: &'static str,
        /// The product.
        product_id: String,
    },
    /// The end of the answer.
    Done {
        /// The product ids the text cites, all of them among the products sent.
        cited: Vec<String>,
        /// Sentences of the model's that the checker held back.
        withheld_sentences: usize,
        /// The model that wrote the prose, if one did.
        model: Option<String>,
    },
}

impl AssistantEvent {
    /// The text of an answer's events, joined and trimmed: what the assistant said.
    pub fn text_of(events: &[AssistantEvent]) -> String {
        let text: String = events
            .iter()
            .filter_map(|event| match event {
                AssistantEvent::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        text.trim().to_owned()
    }
}

/// Reads a turn's intent and budget.
fn understand(text: &str) -> (Intent, Option<f64>) {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|character: char| !character.is_alphanumeric() && character != '.' && character != '$')
        .filter(|word| !word.is_empty())
        .collect();
    let intent = if [
        "yes",
        "yes please",
        "add it",
        "add it to my cart",
        "add to cart",
        "sure",
        "ok",
        "please do",
    ]
    .iter()
    .any(|yes| lower.trim().trim_end_matches(['.', '!']) == *yes)
    {
        Intent::ConfirmAddToCart
    } else if words
        .iter()
        .any(|word| matches!(*word, "compare" | "vs" | "versus" | "difference" | "differences"))
    {
        Intent::Compare
    } else if lower.contains("help me decide") || lower.contains("which should") || lower.contains("which one") {
        Intent::Decide
    } else {
        Intent::Find
    };
    let max_price = BUDGET_PHRASES.iter().find_map(|phrase| {
        let at = lower.find(phrase)?;
        let rest = lower[at + phrase.len()..].trim_start().trim_start_matches('$');
        let number: String = rest
            .chars()
            .take_while(|character| character.is_ascii_digit() || *character == '.' || *character == ',')
            .filter(|character| *character != ',')
            .collect();
        number
            .trim_end_matches('.')
            .parse::<f64>()
            .ok()
            .filter(|price| *price > 0.0)
    });
    (intent, max_price)
}

/// The budget phrases `understand` reads.
const BUDGET_PHRASES: [&str; 7] = ["under", "below", "less than", "up to", "max", "cheaper than", "within"];

/// The text without its budget ("a rug under $200" → "a rug").
fn without_budget(text: &str) -> String {
    // ASCII lowercasing keeps every byte offset, so positions found in it cut the original text.
    let lower = text.to_ascii_lowercase();
    for phrase in BUDGET_PHRASES {
        if let Some(at) = lower.find(phrase) {
            let rest = &lower[at + phrase.len()..];
            let amount = rest.len()
                - rest
                    .trim_start()
                    .trim_start_matches('$')
                    .trim_start_matches(|character: char| {
                        character.is_ascii_digit() || character == '.' || character == ','
                    })
                    .len();
            if amount > 0 && rest[..amount].chars().any(|character| character.is_ascii_digit()) {
                return format!("{}{}", &text[..at], &text[at + phrase.len() + amount..]);
            }
        }
    }
    text.to_owned()
}

/// Product ids written in square brackets, in order, without repeats.
fn cited_ids(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else { break };
        let id = rest[open + 1..open + close].trim();
        if !id.is_empty() && id.len() <= 64 && !ids.iter().any(|seen: &String| seen == id) {
            ids.push(id.to_owned());
        }
        rest = &rest[open + close + 1..];
    }
    ids
}

/// The numbers written in a text, as they read ("70.87", "200"; "1,299" as "1299").
pub(crate) fn numbers(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current = String::new();
    for character in text.chars().chain(std::iter::once(' ')) {
        if character.is_ascii_digit() || (character == '.' && !current.is_empty()) {
            current.push(character);
        } else if character == ',' && !current.is_empty() {
            // A thousands separator: 1,299 reads as 1299.
        } else {
            let number = current.trim_end_matches('.');
            if !number.is_empty() {
                found.push(number.to_owned());
            }
            current.clear();
        }
    }
    found
}

/// The checker: a sentence passes if every id it cites is among `allowed_ids` and every number in it (outside
/// the citations) is among `allowed_numbers` or a small count.
fn sentence_is_grounded(sentence: &str, allowed_ids: &HashSet<String>, allowed_numbers: &HashSet<String>) -> bool {
    let cited = cited_ids(sentence);
    if cited.iter().any(|id| !allowed_ids.contains(id)) {
        return false;
    }
    let mut without_citations = sentence.to_owned();
    for id in &cited {
        without_citations = without_citations.replace(&format!("[{id}]"), " ");
    }
    numbers(&without_citations).iter().all(|number| {
        allowed_numbers.contains(number) || number.parse::<u32>().is_ok_and(|count| count <= MAX_COMPARED as u32)
    })
}

/// The products' facts side by side: a column per product, a row per fact any of them has.
fn comparison_table(products: &[Product]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = vec![
        (
            "id".to_owned(),
            products.iter().map(|product| product.id.clone()).collect(),
        ),
        (
            "type".to_owned(),
            products.iter().map(|product| product.class.join(", ")).collect(),
        ),
        (
            "category".to_owned(),
            products
                .iter()
                .map(|product| product.category_path.join(" > "))
                .collect(),
        ),
        (
            "price".to_owned(),
            products
                .iter()
                .map(|product| product.price.map(|price| format!("{price:.2}")).unwrap_or_default())
                .collect(),
        ),
        (
            "rating".to_owned(),
            products
                .iter()
                .map(|product| {
                    product
                        .rating
                        .map(|rating| format!("{rating:.1} ({} reviews)", product.review_count))
                        .unwrap_or_default()
                })
                .collect(),
        ),
    ];
    let mut attribute_names: Vec<&String> = products.iter().flat_map(|product| product.attributes.keys()).collect();
    attribute_names.sort();
    attribute_names.dedup();
    for name in attribute_names {
        rows.push((
            name.clone(),
            products
                .iter()
                .map(|product| product.attributes.get(name).cloned().unwrap_or_default())
                .collect(),
        ));
    }
    let cell = |text: &str| {
        if text.is_empty() {
            "—".to_owned()
        } else {
            text.replace('|', "/")
        }
    };
    let mut table = format!(
        "| | {} |\n|---|{}\n",
        products
            .iter()
            .map(|product| cell(&product.name))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(products.len())
    );
    for (name, values) in rows {
        if values.iter().all(String::is_empty) {
            continue;
        }
        table.push_str(&format!(
            "| {name} | {} |\n",
            values.iter().map(|value| cell(value)).collect::<Vec<_>>().join(" | ")
        ));
    }
    table
}

/// The shopping assistant of a storefront.
#[derive(Clone)]
pub struct ShoppingAssistant {
    client: GatewayClient,
    model: String,
}

impl ShoppingAssistant {
    /// An assistant writing with `model` through `client` (whose tenant pays).
    pub fn new(client: GatewayClient, model: impl Into<String>) -> ShoppingAssistant {
        ShoppingAssistant {
            client,
            model: model.into(),
        }
    }

    /// Answers the conversation's last turn as a stream of events. `session` is the shopper's, needed to add to
    /// a cart. Bad conversations fail before anything is sent.
    pub async fn converse(
        &self,
        storefront: &Storefront,
        turns: &[Turn],
        session: Option<&str>,
    ) -> Result<BoxStream<'static, AssistantEvent>, CommerceError> {
        validate(turns)?;
        let last = &turns[turns.len() - 1].content;
        let (intent, max_price) = understand(last);
        let previous_assistant = turns.iter().rev().skip(1).find(|turn| turn.role == "assistant");
        let mut events = Vec::new();

        if intent == Intent::ConfirmAddToCart {
            let offered = previous_assistant.and_then(|turn| offered_product(&turn.content));
            let (Some(product_id), Some(session)) = (offered, session) else {
                events.push(AssistantEvent::Text {
                    text: "There is nothing waiting to be added to your cart. Which product would you like?".to_owned(),
                });
                events.push(done(Vec::new(), 0, None));
                return Ok(futures::stream::iter(events).boxed());
            };
            let product = storefront.product(&product_id)?;
            storefront.add_to_cart(session, &product.id, 1).await?;
            events.push(AssistantEvent::Products {
                intent,
                max_price: None,
                products: vec![product.clone()],
            });
            events.push(AssistantEvent::Action {
                action: "added_to_cart",
                product_id: product.id.clone(),
            });
            events.push(AssistantEvent::Text {
                text: format!("Added {} [{}] to your cart.", product.name, product.id),
            });
            events.push(done(vec![product.id], 0, None));
            return Ok(futures::stream::iter(events).boxed());
        }

        let products = self
            .retrieve(storefront, turns, intent, max_price, previous_assistant)
            .await?;
        events.push(AssistantEvent::Products {
            intent,
            max_price,
            products: products.clone(),
        });
        if products.is_empty() {
            events.push(AssistantEvent::Text {
                text: "I could not find products in the catalog for that. Could you describe it another way?"
                    .to_owned(),
            });
            events.push(done(Vec::new(), 0, None));
            return Ok(futures::stream::iter(events).boxed());
        }
        if matches!(intent, Intent::Compare | Intent::Decide) && products.len() > 1 {
            events.push(AssistantEvent::Table {
                markdown: comparison_table(&products),
            });
        }
        if max_price.is_some() && products.iter().all(|product| product.price.is_none()) {
            events.push(AssistantEvent::Text {
                text: "This catalog lists no prices, so I could not check the budget. ".to_owned(),
            });
        }

        let facts: Vec<String> = products.iter().map(product_facts).collect();
        let allowed_ids: HashSet<String> = products.iter().map(|product| product.id.clone()).collect();
        let mut allowed_numbers: HashSet<String> = facts.iter().flat_map(|facts| numbers(facts)).collect();
        allowed_numbers.extend(
            turns
                .iter()
                .filter(|turn| turn.role == "user")
                .flat_map(|turn| numbers(&turn.content)),
        );
        for product in &products {
            if let Some(price) = product.price {
                allowed_numbers.insert(format!("{price:.2}"));
                allowed_numbers.insert(format!("{price}"));
            }
        }
        let offer = (intent == Intent::Find && session.is_some()).then(|| products[0].clone());
        let request = ChatCompletionRequest {
            model: self.model.clone(),
            messages: self.prompt(turns, &facts, intent),
            temperature: Some(0.0),
            max_tokens: Some(MAX_PROSE_TOKENS),
            response_format: Some(answer_format(&products, intent)),
            ..ChatCompletionRequest::default()
        };
        let client = self.client.clone();
        let grounding = Grounding {
            ids: allowed_ids,
            numbers: allowed_numbers,
        };
        // The products are out before the model starts; its answer follows once written and checked.
        let written = futures::stream::once(async move {
            let completion = client.chat(request).await;
            futures::stream::iter(written_answer(completion, &products, &grounding, offer))
        })
        .flatten();
        Ok(futures::stream::iter(events).chain(written).boxed())
    }

    fn prompt(&self, turns: &[Turn], facts: &[String], intent: Intent) -> Vec<ChatMessage> {
        let task = match intent {
            Intent::Compare => "Compare these products for the shopper, fact by fact.",
            Intent::Decide => "Help the shopper decide: give each product's trade-off, then suggest one.",
            _ => "Recommend the product that best fits the shopper's need, and say why.",
        };
        let mut messages = vec![ChatMessage::text(
            "system",
            format!("{INSTRUCTIONS} {task}\n\nProducts:\n{}", facts.join("\n\n")),
        )];
        // The last few turns carry the conversation; the facts carry the catalog.
        for turn in turns.iter().rev().take(4).rev() {
            messages.push(ChatMessage::text(&turn.role, turn.content.clone()));
        }
        messages
    }

    async fn retrieve(
        &self,
        storefront: &Storefront,
        turns: &[Turn],
        intent: Intent,
        max_price: Option<f64>,
        previous_assistant: Option<&Turn>,
    ) -> Result<Vec<Product>, CommerceError> {
        let last = &turns[turns.len() - 1].content;
        if matches!(intent, Intent::Compare | Intent::Decide) {
            // Products named by id in this turn, else the ones the assistant just showed.
            let mut ids = cited_ids(last);
            ids.extend(numbers(last).into_iter().filter(|id| storefront.product(id).is_ok()));
            if ids.len() < 2
                && let Some(previous) = previous_assistant
            {
                ids.extend(cited_ids(&previous.content));
            }
            let mut seen = HashSet::new();
            let products: Vec<Product> = ids
                .into_iter()
                .filter(|id| seen.insert(id.clone()))
                .filter_map(|id| storefront.product(&id).ok())
                .take(MAX_COMPARED)
                .collect();
            if products.len() >= 2 {
                return Ok(products);
            }
        }
        // A short follow-up ("in oak?") is read with the turn before it; a budget is a filter, not words to match.
        let mut text = without_budget(last);
        if last.split_whitespace().count() < 4
            && let Some(before) = turns.iter().rev().skip(1).find(|turn| turn.role == "user")
        {
            text = format!("{} {last}", before.content);
        }
        let filter = match max_price {
            Some(price) if storefront_has_prices(storefront, &text).await => {
                Filter::parse(&format!("price:..{price}"))?
            }
            _ => Filter::default(),
        };
        let wanted = if intent == Intent::Find { FOUND } else { MAX_COMPARED };
        let search = |text: String, limit: usize| {
            let query = SearchQuery {
                limit,
                filter: filter.clone(),
                mode: SearchMode::Hybrid,
                ..SearchQuery::new(&text)
            };
            async move { Ok::<_, CommerceError>(storefront.search(&query).await?.hits) }
        };
        // "A rug for a small dining room" wants a rug: what comes before "for" says what the product is, the
        // rest which of those fits best. Searching the whole need would rank dining chairs first.
        let lower = text.to_ascii_lowercase();
        let Some(split) = lower.find(" for ").filter(|&at| at > 0) else {
            return Ok(search(text, wanted).await?.into_iter().map(|hit| hit.product).collect());
        };
        let kind = search(text[..split].to_owned(), HEAD_CANDIDATES).await?;
        let fit = search(text.clone(), HEAD_CANDIDATES * 2).await?;
        let fit_rank = |id: &str| fit.iter().position(|hit| hit.product.id == id).unwrap_or(usize::MAX);
        let mut products: Vec<(usize, usize, Product)> = kind
            .into_iter()
            .enumerate()
            .map(|(rank, hit)| (fit_rank(&hit.product.id), rank, hit.product))
            .collect();
        products.sort_by_key(|(fit, rank, _)| (*fit, *rank));
        Ok(products
            .into_iter()
            .take(wanted)
            .map(|(_, _, product)| product)
            .collect())
    }
}

/// Whether the products matching `text` carry prices at all, so a budget can be applied rather than empty the
/// results.
async fn storefront_has_prices(storefront: &Storefront, text: &str) -> bool {
    let probe = SearchQuery {
        limit: 20,
        mode: SearchMode::Keyword,
        ..SearchQuery::new(text)
    };
    storefront
        .search(&probe)
        .await
        .is_ok_and(|page| page.hits.iter().any(|hit| hit.product.price.is_some()))
}

/// The product the assistant last offered to add to the cart: the id in its "add ... to your cart?" sentence.
fn offered_product(assistant_text: &str) -> Option<String> {
    assistant_text
        .split_inclusive(['.', '?', '!'])
        .rfind(|sentence| sentence.contains("to your cart?"))
        .and_then(|sentence| cited_ids(sentence).pop())
}

fn done(cited: Vec<String>, withheld_sentences: usize, model: Option<String>) -> AssistantEvent {
    AssistantEvent::Done {
        cited,
        withheld_sentences,
        model,
    }
}

fn validate(turns: &[Turn]) -> Result<(), CommerceError> {
    let invalid = |reason: String| Err(CommerceError::InvalidRequest(reason));
    if turns.is_empty() || turns.len() > MAX_TURNS {
        return invalid(format!(
            "messages must hold 1 to {MAX_TURNS} turns, got {}",
            turns.len()
        ));
    }
    for (index, turn) in turns.iter().enumerate() {
        if turn.role != "user" && turn.role != "assistant" {
            return invalid(format!(
                "messages[{index}].role must be user or assistant, got '{}'",
                turn.role
            ));
        }
        if turn.content.chars().count() > MAX_TURN_CHARS {
            return invalid(format!("messages[{index}] is longer than {MAX_TURN_CHARS} characters"));
        }
    }
    let last = &turns[turns.len() - 1];
    if last.role != "user" || last.content.trim().is_empty() {
        return invalid("the last message must be the shopper's, and not empty".to_owned());
    }
    Ok(())
}

/// What the checker lets through: ids of the products retrieved, numbers of their facts and the shopper's words.
struct Grounding {
    ids: HashSet<String>,
    numbers: HashSet<String>,
}

/// The shape the model answers in, enforced while it decodes: a pick among the retrieved products and a short
/// reason (and, to compare or decide, a note per product). The text shown is built from the catalog around
/// those fields, so a model cannot name a product that was not retrieved.
fn answer_format(products: &[Product], intent: Intent) -> serde_json::Value {
    let ids: Vec<&str> = products.iter().map(|product| product.id.as_str()).collect();
    let mut properties = serde_json::json!({
        "pick": {"type": "string", "enum": ids},
        "reason": {"type": "string", "maxLength": 200},
    });
    let mut required = vec!["pick", "reason"];
    if matches!(intent, Intent::Compare | Intent::Decide) {
        properties["notes"] = serde_json::json!({
            "type": "array",
            "minItems": products.len(),
            "maxItems": products.len(),
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "enum": ids},
                    "note": {"type": "string", "maxLength": 120}
                },
                "required": ["id", "note"],
                "additionalProperties": false
            }
        });
        required.push("notes");
    }
    serde_json::json!({
        "type": "json_schema",
        "json_schema": {
            "name": "shopping_answer",
            "strict": true,
            "schema": {"type": "object", "properties": properties, "required": required, "additionalProperties": false}
        }
    })
}

/// The model's answer as checked text: each free-text part is shown only if the checker passes it; what is
/// held back is counted. Without a usable answer, the products found are listed from their facts.
fn written_answer(
    completion: Result<gateway::openai::ChatCompletion, gateway::GatewayError>,
    products: &[Product],
    grounding: &Grounding,
    offer: Option<Product>,
) -> Vec<AssistantEvent> {
    #[derive(Deserialize)]
    struct Note {
        id: String,
        note: String,
    }
    #[derive(Deserialize)]
    struct Answer {
        pick: String,
        reason: String,
        #[serde(default)]
        notes: Vec<Note>,
    }
    let name_of = |id: &str| {
        products
            .iter()
            .find(|product| product.id == id)
            .map(|product| product.name.clone())
    };
    let mut texts = Vec::new();
    let mut withheld = 0;
    let mut cited: Vec<String> = Vec::new();
    let mut model = None;
    let answer = match completion {
        Ok(completion) => {
            model = Some(completion.model.clone());
            completion
                .choices
                .into_iter()
                .next()
                .and_then(|choice| choice.message.content)
                .and_then(|content| serde_json::from_str::<Answer>(&content).ok())
        }
        Err(error) => {
            tracing::warn!(%error, "the shopping assistant's model could not answer; listing the products found");
            None
        }
    };
    let mut checked = |text: String, texts: &mut Vec<String>| {
        // A reason has words: a bare number or a fragment says nothing the facts do not already show.
        let words = text
            .split_whitespace()
            .filter(|word| word.chars().any(char::is_alphabetic))
            .count();
        if words >= 3 && sentence_is_grounded(&text, &grounding.ids, &grounding.numbers) {
            texts.push(text);
        } else {
            withheld += 1;
        }
    };
    match answer
        .as_ref()
        .and_then(|answer| Some((answer, name_of(&answer.pick)?)))
    {
        Some((answer, pick_name)) => {
            let mut noted = HashSet::new();
            for note in answer.notes.iter().filter(|note| noted.insert(note.id.clone())) {
                if let Some(name) = name_of(&note.id) {
                    checked(format!("{name} [{}]: {} ", note.id, sentence(&note.note)), &mut texts);
                    cited.push(note.id.clone());
                }
            }
            texts.push(format!("My pick: {pick_name} [{}]. ", answer.pick));
            cited.push(answer.pick.clone());
            if !answer.reason.trim().is_empty() {
                checked(format!("{} ", sentence(&answer.reason)), &mut texts);
            }
        }
        None => {
            let names: Vec<String> = products
                .iter()
                .map(|product| format!("{} [{}]", product.name, product.id))
                .collect();
            texts.push(format!("Here is what I found: {}. ", names.join("; ")));
            cited.extend(products.iter().map(|product| product.id.clone()));
        }
    }
    let mut events: Vec<AssistantEvent> = texts.into_iter().map(|text| AssistantEvent::Text { text }).collect();
    // The product offered for the cart is the one recommended.
    let offer = offer.map(|fallback| {
        answer
            .as_ref()
            .and_then(|answer| products.iter().find(|product| product.id == answer.pick))
            .cloned()
            .unwrap_or(fallback)
    });
    if let Some(product) = offer {
        events.push(AssistantEvent::Text {
            text: format!(
                "Would you like me to add {} [{}] to your cart?",
                product.name, product.id
            ),
        });
        events.push(AssistantEvent::Action {
            action: "offer_add_to_cart",
            product_id: product.id.clone(),
        });
        cited.push(product.id);
    }
    let mut seen = HashSet::new();
    cited.retain(|id| seen.insert(id.clone()));
    events.push(done(cited, withheld, model));
    events
}

/// A model's fragment as a sentence: trimmed, capitalized, ending in a full stop.
fn sentence(text: &str) -> String {
    let text = text.trim();
    let mut characters = text.chars();
    let mut sentence: String = match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    };
    if !sentence.ends_with(['.', '!', '?']) {
        sentence.push('.');
    }
    sentence
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn turns_are_read_for_intent_and_budget() {
        assert_eq!(
            understand("A rug for a small dining room under $200"),
            (Intent::Find, Some(200.0))
        );
        assert_eq!(understand("compare the first two"), (Intent::Compare, None));
        assert_eq!(
            understand("Oak vs walnut, less than 1,299.50?"),
            (Intent::Compare, Some(1299.5))
        );
        assert_eq!(understand("help me decide between these"), (Intent::Decide, None));
        assert_eq!(understand("Yes please!"), (Intent::ConfirmAddToCart, None));
        assert_eq!(understand("yes, but in blue"), (Intent::Find, None));
    }

    #[test]
    fn budgets_are_filters_not_search_words() {
        assert_eq!(without_budget("A rug under $200 for a hall"), "A rug  for a hall");
        assert_eq!(without_budget("rugs below 1,200.50"), "rugs ");
        assert_eq!(without_budget("under the stairs storage"), "under the stairs storage");
    }

    #[test]
    fn the_checker_passes_only_grounded_sentences() {
        let ids: HashSet<String> = ["13".to_owned(), "4".to_owned()].into();
        let facts: HashSet<String> = ["70.87".to_owned(), "249.00".to_owned()].into();
        assert!(sentence_is_grounded(
            "The king bed [13] is 70.87 inches wide.",
            &ids,
            &facts
        ));
        assert!(sentence_is_grounded("Both [13] and [4] suit 2 people.", &ids, &facts));
        assert!(
            !sentence_is_grounded("Try the sofa [99].", &ids, &facts),
            "an id not retrieved"
        );
        assert!(
            !sentence_is_grounded("It costs 199 dollars [13].", &ids, &facts),
            "a number not in the facts"
        );
        assert_eq!(cited_ids("a [13] b [4] c [13] [] [x"), ["13", "4"]);
        assert_eq!(numbers("1,299.00 and 70.87. Then 5"), ["1299.00", "70.87", "5"]);
    }

    #[test]
    fn the_cart_offer_is_read_back_from_the_assistants_turn() {
        assert_eq!(
            offered_product("Here is what I found. Would you like me to add oak bed [13] to your cart?"),
            Some("13".to_owned())
        );
        assert_eq!(offered_product("The bed [13] is oak."), None);
    }

    #[test]
    fn comparison_tables_have_a_column_per_product_and_skip_empty_rows() {
        let product = |id: &str, price: Option<f64>| Product {
            id: id.to_owned(),
            name: format!("desk {id}"),
            class: vec!["Desks".to_owned()],
            category_path: vec![],
            rating: None,
            review_count: 0,
            description: None,
            price,
            features: vec![],
            attributes: [("colour".to_owned(), "oak".to_owned())].into(),
        };
        let table = comparison_table(&[product("1", Some(10.0)), product("2", None)]);
        assert!(table.starts_with("| | desk 1 | desk 2 |\n|---|---|---|\n"), "{table}");
        assert!(table.contains("| price | 10.00 | — |"), "{table}");
        assert!(table.contains("| colour | oak | oak |"), "{table}");
        assert!(!table.contains("| rating"), "no product is rated: {table}");
    }

    #[test]
    fn bad_conversations_are_refused() {
        let turn = |role: &str, content: &str| Turn {
            role: role.to_owned(),
            content: content.to_owned(),
        };
        assert!(validate(&[]).is_err());
        assert!(validate(&[turn("system", "x")]).is_err());
        assert!(validate(&[turn("user", "x"), turn("assistant", "y")]).is_err());
        assert!(validate(&[turn("user", " ")]).is_err());
        assert!(validate(&[turn("user", &"x".repeat(MAX_TURN_CHARS + 1))]).is_err());
        assert!(validate(&[turn("user", "a desk")]).is_ok());
    }

    proptest! {
        #[test]
        fn the_checker_never_passes_an_id_it_was_not_given(id in "[0-9]{1,6}", filler in "[a-z ]{0,30}") {
            let allowed: HashSet<String> = ["13".to_owned()].into();
            let sentence = format!("{filler} [{id}] {filler}.");
            prop_assert_eq!(sentence_is_grounded(&sentence, &allowed, &HashSet::new()), id == "13");
        }

        #[test]
        fn reading_any_turn_never_fails(text in ".{0,200}") {
            let _ = understand(&text);
            let _ = without_budget(&text);
            let _ = cited_ids(&text);
            let _ = numbers(&text);
        }
    }
}
