//! Query understanding beyond words: the colour, size, material and dimensions a shopper typed, read by rules
//! from fixed lexicons (no model, microseconds). Search reports them so a page can offer them as filters, and
//! the assistant can read them; they never change the ranking on their own.

use serde::Serialize;

const COLOURS: [&str; 40] = [
    "black",
    "white",
    "grey",
    "gray",
    "silver",
    "gold",
    "brass",
    "bronze",
    "copper",
    "red",
    "burgundy",
    "pink",
    "orange",
    "yellow",
    "mustard",
    "green",
    "sage",
    "olive",
    "teal",
    "turquoise",
    "blue",
    "navy",
    "aqua",
    "purple",
    "lavender",
    "brown",
    "tan",
    "beige",
    "cream",
    "ivory",
    "taupe",
    "charcoal",
    "espresso",
    "walnut",
    "natural",
    "rust",
    "coral",
    "mint",
    "blush",
    "khaki",
];
const MATERIALS: [&str; 24] = [
    "oak", "pine", "teak", "maple", "cherry", "acacia", "bamboo", "wood", "wooden", "metal", "steel", "iron",
    "aluminum", "glass", "marble", "stone", "velvet", "linen", "leather", "wool", "cotton", "jute", "rattan", "wicker",
];
/// Sizes as furniture and bedding name them; longer phrases first so "california king" wins over "king".
const SIZES: [&str; 11] = [
    "california king",
    "king",
    "queen",
    "full",
    "twin xl",
    "twin",
    "double",
    "single",
    "small",
    "large",
    "oversized",
];

/// What a query says about the product beyond its kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueryAttributes {
    /// A colour named in the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    /// A material named in the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub material: Option<String>,
    /// A size word (king, queen, small...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Dimensions as written, like "5x8" or "60 inch".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<String>,
}

impl QueryAttributes {
    /// Whether the query named none of them.
    pub fn is_empty(&self) -> bool {
        self == &QueryAttributes::default()
    }
}

/// Reads the attributes of a query.
pub fn understand_query(text: &str) -> QueryAttributes {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '.' && c != '\'' && c != '"')
        .filter(|word| !word.is_empty())
        .collect();
    let joined = format!(" {} ", words.join(" "));
    let first_of = |lexicon: &[&str]| {
        lexicon
            .iter()
            .find(|entry| joined.contains(&format!(" {entry} ")))
            .map(|entry| (*entry).to_owned())
    };
    QueryAttributes {
        colour: first_of(&COLOURS).map(|colour| if colour == "gray" { "grey".to_owned() } else { colour }),
        material: first_of(&MATERIALS),
        size: first_of(&SIZES),
        dimensions: dimensions(&words),
    }
}

/// "5x8", "5 x 8", "60 inch", "60in", "120 cm", "28''".
fn dimensions(words: &[&str]) -> Option<String> {
    let is_number = |word: &str| !word.is_empty() && word.trim_end_matches('.').parse::<f64>().is_ok();
    for (index, word) in words.iter().enumerate() {
        if let Some((a, b)) = word.split_once('x')
            && is_number(a)
            && is_number(b)
        {
            return Some((*word).to_owned());
        }
        if is_number(word) {
            let next = words.get(index + 1).copied().unwrap_or_default();
            if next == "x" && words.get(index + 2).is_some_and(|after| is_number(after)) {
                return Some(format!("{word}x{}", words[index + 2]));
            }
            if matches!(
                next,
                "inch" | "inches" | "in" | "cm" | "ft" | "feet" | "mm" | "''" | "\""
            ) {
                return Some(format!("{word} {next}"));
            }
        }
        for unit in ["inch", "in", "cm", "ft", "mm", "''", "\""] {
            if let Some(number) = word.strip_suffix(unit)
                && is_number(number)
            {
                return Some(format!("{number} {unit}"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn colour_material_size_and_dimensions_are_read() {
        let read = understand_query("Gray velvet King bed 60 inch");
        assert_eq!(read.colour.as_deref(), Some("grey"));
        assert_eq!(read.material.as_deref(), Some("velvet"));
        assert_eq!(read.size.as_deref(), Some("king"));
        assert_eq!(read.dimensions.as_deref(), Some("60 inch"));
        assert_eq!(
            understand_query("california king frame").size.as_deref(),
            Some("california king")
        );
        assert_eq!(understand_query("rug 5x8 navy").dimensions.as_deref(), Some("5x8"));
        assert_eq!(understand_query("rug 5 x 8").dimensions.as_deref(), Some("5x8"));
        assert_eq!(understand_query("desk 120cm").dimensions.as_deref(), Some("120 cm"));
        assert!(understand_query("coffee table").is_empty());
        assert!(understand_query("redwood bench").colour.is_none(), "whole words only");
    }

    proptest! {
        #[test]
        fn any_text_is_read_without_failing(text in ".{0,120}") {
            let _ = understand_query(&text);
        }
    }
}
