//! Seller tools: a listing written from a seller's rough notes, and a quality score with its reasons. The
//! listing is decoded under a JSON schema through the gateway, so it always parses and validates; its category
//! is one of the catalog's own, chosen among those of the products the notes find, never invented.

use std::collections::BTreeMap;

use gateway::GatewayClient;
use gateway::openai::{ChatCompletionRequest, ChatMessage};
use serde::{Deserialize, Serialize};

use crate::shopping::numbers;
use crate::{CommerceError, SearchMode, SearchQuery, Storefront};

/// Longest notes accepted, in characters.
pub const MAX_NOTES_CHARS: usize = 2_000;
/// Category paths offered to the model, from the products the notes find.
const CATEGORY_CHOICES: usize = 8;
/// Enough tokens for a title, five bullets, a description and a few attributes.
const MAX_LISTING_TOKENS: i64 = 400;
/// Words that make a claim no listing can back.
const PROMOTIONAL: [&str; 8] = [
    "best",
    "cheapest",
    "#1",
    "guaranteed",
    "miracle",
    "amazing",
    "perfect",
    "free",
];

const INSTRUCTIONS: &str = "You write product listings for an online furniture and home store. From the seller's \
notes, write a clear title (the product type and its key features), three to five short feature bullets, a \
description of two or three sentences, and attributes such as material, colour and size, using only what the \
notes say. Choose the category that fits from the list given.";

const EXAMPLE_NOTES: &str = "Seller's notes: grey velvet armchair, wooden legs, 80 cm wide";
const EXAMPLE_LISTING: &str = r#"{"title": "Grey velvet armchair with wooden legs", "bullets": ["Soft grey velvet upholstery", "Solid wooden legs", "80 cm wide: fits a reading corner"], "description": "A compact armchair covered in soft grey velvet and raised on wooden legs. At 80 cm wide it suits a bedroom or a reading corner.", "attributes": {"material": "velvet, wood", "colour": "grey", "size": "80 cm wide"}, "category": "Furniture / Living Room Furniture / Chairs & Seating / Accent Chairs"}"#;

/// A structured product listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// The product title.
    pub title: String,
    /// Feature bullets.
    pub bullets: Vec<String>,
    /// The description.
    pub description: String,
    /// Facts by name.
    pub attributes: BTreeMap<String, String>,
    /// The category path, top level first: one the catalog has.
    pub category: Vec<String>,
}

/// How good a listing is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListingQuality {
    /// 0 to 100.
    pub score: u32,
    /// What costs points, one reason per problem; empty for a perfect listing.
    pub reasons: Vec<String>,
}

/// Scores a listing by the rules shoppers and search engines reward: a descriptive title of sensible length
/// that names the kind of product, three to five concise and distinct bullets, a real description that does not
/// repeat itself, several attributes, a category, no shouting or claims, and (given the seller's `notes`) no
/// numbers the notes do not have.
pub fn score_listing(listing: &Listing, notes: Option<&str>) -> ListingQuality {
    let mut reasons = Vec::new();
    let mut penalty = 0u32;
    let mut fault = |points: u32, reason: String| {
        penalty += points;
        reasons.push(reason);
    };
    let title_chars = listing.title.chars().count();
    if title_chars < 20 {
        fault(
            20,
            format!("the title is short ({title_chars} characters; aim for 20 to 150)"),
        );
    } else if title_chars > 150 {
        fault(
            10,
            format!("the title is long ({title_chars} characters; aim for 20 to 150)"),
        );
    }
    if !(3..=5).contains(&listing.bullets.len()) {
        fault(
            15,
            format!("{} bullets; three to five read best", listing.bullets.len()),
        );
    }
    if let Some(long) = listing.bullets.iter().find(|bullet| bullet.chars().count() > 200) {
        fault(
            5,
            format!(
                "a bullet is over 200 characters: \"{}…\"",
                long.chars().take(40).collect::<String>()
            ),
        );
    }
    let description_chars = listing.description.chars().count();
    if description_chars < 100 {
        fault(
            15,
            format!("the description is thin ({description_chars} characters; aim for at least 100)"),
        );
    }
    if listing.attributes.len() < 3 {
        fault(
            15,
            format!(
                "{} attributes; material, colour and size help shoppers filter",
                listing.attributes.len()
            ),
        );
    }
    if listing.category.is_empty() {
        fault(15, "no category".to_owned());
    }
    let distinct: std::collections::HashSet<String> = listing.bullets.iter().map(|bullet| normalized(bullet)).collect();
    if distinct.len() < listing.bullets.len() {
        fault(15, "bullets repeat each other".to_owned());
    }
    let sentences: Vec<String> = listing
        .description
        .split(['.', '!', '?'])
        .map(normalized)
        .filter(|sentence| !sentence.is_empty())
        .collect();
    let distinct_sentences: std::collections::HashSet<&String> = sentences.iter().collect();
    if distinct_sentences.len() < sentences.len() {
        fault(15, "the description repeats itself".to_owned());
    }
    if let Some(kind) = listing.category.last() {
        let title = normalized(&listing.title);
        let names_kind = normalized(kind)
            .split_whitespace()
            .any(|word| word.len() >= 3 && title.contains(word.trim_end_matches('s')));
        if !names_kind {
            fault(
                10,
                format!("the title does not say what the product is (a kind of {kind})"),
            );
        }
    }
    if let Some(notes) = notes {
        let known: std::collections::HashSet<String> = numbers(notes).into_iter().collect();
        let text = format!(
            "{} {} {} {}",
            listing.title,
            listing.bullets.join(" "),
            listing.description,
            listing.attributes.values().cloned().collect::<Vec<_>>().join(" ")
        );
        let mut seen = std::collections::HashSet::new();
        let invented: Vec<String> = numbers(&text)
            .into_iter()
            .filter(|number| !known.contains(number) && seen.insert(number.clone()))
            .collect();
        if !invented.is_empty() {
            fault(20, format!("numbers the notes do not give: {}", invented.join(", ")));
        }
        let notes_words = normalized(notes);
        let unsupported: Vec<String> = listing
            .attributes
            .iter()
            .filter(|(_, value)| {
                !normalized(value)
                    .split_whitespace()
                    .any(|word| word.len() >= 3 && notes_words.contains(word))
            })
            .map(|(name, value)| format!("{name} {value}"))
            .collect();
        if !unsupported.is_empty() {
            fault(
                10,
                format!("attributes the notes do not give: {}", unsupported.join(", ")),
            );
        }
    }
    let text = format!(
        "{} {} {}",
        listing.title,
        listing.bullets.join(" "),
        listing.description
    );
    let shouted = text
        .split_whitespace()
        .filter(|word| word.chars().filter(|c| c.is_alphabetic()).count() >= 4)
        .filter(|word| word.chars().all(|c| !c.is_lowercase()))
        .count();
    if shouted > 0 {
        fault(5, format!("{shouted} words in capitals"));
    }
    let lower = text.to_lowercase();
    let claims: Vec<&str> = PROMOTIONAL
        .iter()
        .copied()
        .filter(|word| {
            lower
                .split(|c: char| !c.is_alphanumeric() && c != '#')
                .any(|token| token == *word)
        })
        .collect();
    if !claims.is_empty() {
        fault(10, format!("promotional claims: {}", claims.join(", ")));
    }
    ListingQuality {
        score: 100u32.saturating_sub(penalty),
        reasons,
    }
}

fn normalized(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes listings with one chat model.
#[derive(Clone)]
pub struct ListingWriter {
    client: GatewayClient,
    model: String,
}

impl ListingWriter {
    /// A writer asking `model` through `client` (whose tenant pays).
    pub fn new(client: GatewayClient, model: impl Into<String>) -> ListingWriter {
        ListingWriter {
            client,
            model: model.into(),
        }
    }

    /// A listing from `notes` (keywords, features or a rough description), its category among those of the
    /// catalog products the notes find.
    pub async fn write(&self, storefront: &Storefront, notes: &str) -> Result<Listing, CommerceError> {
        let notes = notes.trim();
        if notes.is_empty() || notes.chars().count() > MAX_NOTES_CHARS {
            return Err(CommerceError::InvalidRequest(format!(
                "notes must be 1 to {MAX_NOTES_CHARS} characters"
            )));
        }
        let query = SearchQuery {
            limit: 30,
            mode: SearchMode::Hybrid,
            ..SearchQuery::new(notes)
        };
        let mut categories: Vec<String> = Vec::new();
        for hit in storefront.search(&query).await?.hits {
            let path = hit.product.category_path.join(" / ");
            if !path.is_empty() && !categories.contains(&path) && categories.len() < CATEGORY_CHOICES {
                categories.push(path);
            }
        }
        if categories.is_empty() {
            categories = storefront
                .top_level_categories()?
                .into_iter()
                .take(CATEGORY_CHOICES)
                .map(|category| category.name)
                .collect();
        }
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "title": {"type": "string", "minLength": 10, "maxLength": 150},
                "bullets": {"type": "array", "minItems": 3, "maxItems": 5,
                            "items": {"type": "string", "minLength": 5, "maxLength": 160}},
                "description": {"type": "string", "minLength": 40, "maxLength": 600},
                "attributes": {"type": "object",
                               "properties": {"material": {"type": "string", "maxLength": 40},
                                              "colour": {"type": "string", "maxLength": 40},
                                              "size": {"type": "string", "maxLength": 40}},
                               "required": ["material", "colour", "size"], "additionalProperties": false},
                "category": {"type": "string", "enum": categories}
            },
            "required": ["title", "bullets", "description", "attributes", "category"],
            "additionalProperties": false
        });
        let request = ChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![
                ChatMessage::text(
                    "system",
                    format!("{INSTRUCTIONS}\n\nCategories:\n- {}", categories.join("\n- ")),
                ),
                // One worked example: a small model follows a shown listing far better than a described one.
                ChatMessage::text("user", EXAMPLE_NOTES.to_owned()),
                ChatMessage::text("assistant", EXAMPLE_LISTING.to_owned()),
                ChatMessage::text("user", format!("Seller's notes: {notes}")),
            ],
            temperature: Some(0.0),
            repetition_penalty: Some(1.15),
            max_tokens: Some(MAX_LISTING_TOKENS),
            response_format: Some(serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": "listing", "strict": true, "schema": schema}
            })),
            ..ChatCompletionRequest::default()
        };
        let completion = self.client.chat(request).await.map_err(CommerceError::Assistant)?;
        let content = completion
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .unwrap_or_default();
        #[derive(Deserialize)]
        struct Written {
            title: String,
            bullets: Vec<String>,
            description: String,
            attributes: BTreeMap<String, String>,
            category: String,
        }
        let written: Written = serde_json::from_str(&content).map_err(|error| {
            CommerceError::Assistant(gateway::GatewayError::Internal(format!(
                "the model's listing did not parse ({error}); it may have been cut off"
            )))
        })?;
        Ok(Listing {
            title: written.title.trim().to_owned(),
            bullets: written
                .bullets
                .into_iter()
                .map(|bullet| bullet.trim().to_owned())
                .collect(),
            description: written.description.trim().to_owned(),
            attributes: written
                .attributes
                .into_iter()
                .map(|(name, value)| (name, value.trim().to_owned()))
                .filter(|(_, value)| !value.is_empty())
                .collect(),
            category: written.category.split(" / ").map(str::to_owned).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn good() -> Listing {
        Listing {
            title: "Solid oak writing desk with two drawers".to_owned(),
            bullets: vec![
                "Solid oak top".to_owned(),
                "Two soft-close drawers".to_owned(),
                "Fits small rooms".to_owned(),
            ],
            description: "A compact writing desk in solid oak with two drawers for papers and pens. It suits a \
                          study or a bedroom corner."
                .to_owned(),
            attributes: [
                ("material".to_owned(), "oak".to_owned()),
                ("colour".to_owned(), "natural".to_owned()),
                ("size".to_owned(), "120 x 60 cm".to_owned()),
            ]
            .into(),
            category: vec![
                "Furniture".to_owned(),
                "Office Furniture".to_owned(),
                "Desks".to_owned(),
            ],
        }
    }

    #[test]
    fn a_complete_listing_scores_full_marks() {
        assert_eq!(
            score_listing(&good(), Some("natural oak writing desk, two drawers, 120 x 60 cm")),
            ListingQuality {
                score: 100,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn repetition_invented_numbers_and_a_vague_title_cost_points() {
        let rambling = Listing {
            title: "Seller's notes: a furniture for a business".to_owned(),
            bullets: vec!["Made well".to_owned(), "made  WELL".to_owned(), "Made well.".to_owned()],
            description: "It is nice. It is very good for homes and offices alike. It is nice.".to_owned(),
            attributes: [("size".to_owned(), "22.5 cm".to_owned())].into(),
            ..good()
        };
        let reasons = score_listing(&rambling, Some("oak desk, 120 cm")).reasons;
        for expected in [
            "attributes the notes do not give: size 22.5 cm",
            "bullets repeat each other",
            "the description repeats itself",
            "the title does not say what the product is (a kind of Desks)",
            "numbers the notes do not give: 22.5",
        ] {
            assert!(
                reasons.iter().any(|reason| reason == expected),
                "{expected}: {reasons:?}"
            );
        }
    }

    #[test]
    fn each_problem_costs_points_with_its_reason() {
        let poor = Listing {
            title: "DESK".to_owned(),
            bullets: vec!["the BEST desk".to_owned()],
            description: "Nice.".to_owned(),
            attributes: BTreeMap::new(),
            category: vec![],
        };
        let quality = score_listing(&poor, None);
        assert!(quality.score < 30, "{quality:?}");
        assert_eq!(quality.reasons.len(), 7, "{quality:?}");
        assert!(
            quality
                .reasons
                .iter()
                .any(|reason| reason.contains("promotional claims: best"))
        );
        assert!(quality.reasons.iter().any(|reason| reason.contains("capitals")));
    }
}
