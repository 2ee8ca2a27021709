//! Merchandising: what the store's people decide over the ranking. Synonym sets make words find each other
//! ("couch" finds sofas); rules change the results of matching queries: pin a product at a position, boost
//! products matching a filter ahead of the rest, bury others at the end. Both are kept in the database and
//! applied from memory.

use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use store::{Database, Migration};

use crate::facets::Filter;
use crate::{CommerceError, Product};

const SCHEMA: &str = "CREATE TABLE commerce_merchandising (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        document TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );";

const MIGRATIONS: &[Migration] = &[Migration::portable(1, "synonym sets and merchandising rules", SCHEMA)];

/// Words per synonym set, and sets and rules per store: made by people, so bounded generously.
const MAX_WORDS: usize = 20;
const MAX_ENTRIES: usize = 10_000;

/// Words that mean the same to shoppers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynonymSet {
    /// The set's id.
    #[serde(default)]
    pub id: String,
    /// The words, each finding the others.
    pub words: Vec<String>,
}

/// A product pinned at a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The product.
    pub product_id: String,
    /// Its place in the results, 1 first.
    pub position: usize,
}

/// A merchandising rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The rule's id.
    #[serde(default)]
    pub id: String,
    /// The rule applies to queries containing all these words (case and spacing aside).
    pub query: String,
    /// Products put at fixed positions.
    #[serde(default)]
    pub pin: Vec<Pin>,
    /// Filters (in the search filter syntax) whose products go ahead of the others.
    #[serde(default)]
    pub boost: Vec<String>,
    /// Filters whose products go after the others.
    #[serde(default)]
    pub bury: Vec<String>,
}

/// A rule with its filters parsed, as applied.
struct CompiledRule {
    rule: Rule,
    words: Vec<String>,
    boost: Vec<Filter>,
    bury: Vec<Filter>,
}

/// The store's synonym sets and rules.
pub struct Merchandising {
    db: Database,
    synonyms: RwLock<Arc<Vec<SynonymSet>>>,
    rules: RwLock<Arc<Vec<CompiledRule>>>,
}

fn words_of(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_lowercase).collect()
}

fn compile(rule: Rule) -> Result<CompiledRule, CommerceError> {
    let parse = |filters: &[String]| {
        filters
            .iter()
            .map(|text| Filter::parse(text))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(CompiledRule {
        words: words_of(&rule.query),
        boost: parse(&rule.boost)?,
        bury: parse(&rule.bury)?,
        rule,
    })
}

impl Merchandising {
    /// Opens the store's synonyms and rules in `db`, creating their table on first use.
    pub async fn open(db: Database) -> Result<Arc<Merchandising>, CommerceError> {
        db.migrate("commerce_merchandising", MIGRATIONS).await?;
        let merchandising = Merchandising {
            db,
            synonyms: RwLock::new(Arc::new(Vec::new())),
            rules: RwLock::new(Arc::new(Vec::new())),
        };
        merchandising.reload().await?;
        Ok(Arc::new(merchandising))
    }

    async fn reload(&self) -> Result<(), CommerceError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, document FROM commerce_merchandising ORDER BY created_at, id")
                .fetch_all(self.db.pool())
                .await?;
        let mut synonyms = Vec::new();
        let mut rules = Vec::new();
        for (kind, document) in rows {
            let loaded = match kind.as_str() {
                "synonyms" => serde_json::from_str(&document).map(|set| synonyms.push(set)),
                _ => serde_json::from_str::<Rule>(&document).map(|rule| {
                    if let Ok(rule) = compile(rule) {
                        rules.push(rule);
                    }
                }),
            };
            if let Err(error) = loaded {
                tracing::error!(%error, "a stored merchandising entry cannot be read; it is left out");
            }
        }
        *self.synonyms.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(synonyms);
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
        Ok(())
    }

    async fn insert(&self, kind: &str, id: &str, document: String) -> Result<(), CommerceError> {
        let count: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM commerce_merchandising")
            .fetch_one(self.db.pool())
            .await?;
        if count >= MAX_ENTRIES as i64 {
            return Err(CommerceError::InvalidRequest(format!(
                "a store holds at most {MAX_ENTRIES} synonym sets and rules"
            )));
        }
        sqlx::query("INSERT INTO commerce_merchandising (id, kind, document, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(kind)
            .bind(document)
            .bind(crate::unix_millis())
            .execute(self.db.pool())
            .await?;
        self.reload().await
    }

    /// Adds a synonym set of 2 to 20 words.
    pub async fn add_synonyms(&self, words: Vec<String>) -> Result<SynonymSet, CommerceError> {
        let mut words: Vec<String> = words
            .into_iter()
            .map(|word| word.trim().to_lowercase())
            .filter(|word| !word.is_empty())
            .collect();
        words.dedup();
        if !(2..=MAX_WORDS).contains(&words.len()) {
            return Err(CommerceError::InvalidRequest(format!(
                "a synonym set has 2 to {MAX_WORDS} different words, got {}",
                words.len()
            )));
        }
        let set = SynonymSet {
            id: format!("syn_{}", uuid::Uuid::new_v4().simple()),
            words,
        };
        let document = serde_json::to_string(&set).map_err(|error| CommerceError::Database(error.to_string()))?;
        self.insert("synonyms", &set.id, document).await?;
        Ok(set)
    }

    /// Adds a rule after checking its filters parse and its pins name catalog products (`exists`).
    pub async fn add_rule(&self, mut rule: Rule, exists: impl Fn(&str) -> bool) -> Result<Rule, CommerceError> {
        if words_of(&rule.query).is_empty() {
            return Err(CommerceError::InvalidRequest(
                "a rule's query must not be empty".to_owned(),
            ));
        }
        if rule.pin.is_empty() && rule.boost.is_empty() && rule.bury.is_empty() {
            return Err(CommerceError::InvalidRequest(
                "a rule needs at least one pin, boost or bury".to_owned(),
            ));
        }
        for pin in &rule.pin {
            if pin.position == 0 || pin.position > crate::SearchQuery::MAX_RESULT_WINDOW {
                return Err(CommerceError::InvalidRequest(format!(
                    "a pin's position is 1 to {}, got {}",
                    crate::SearchQuery::MAX_RESULT_WINDOW,
                    pin.position
                )));
            }
            if !exists(&pin.product_id) {
                return Err(CommerceError::InvalidRequest(format!(
                    "the catalog has no product '{}' to pin",
                    pin.product_id
                )));
            }
        }
        rule.id = format!("rule_{}", uuid::Uuid::new_v4().simple());
        let compiled = compile(rule)?;
        let document =
            serde_json::to_string(&compiled.rule).map_err(|error| CommerceError::Database(error.to_string()))?;
        self.insert("rule", &compiled.rule.id, document).await?;
        Ok(compiled.rule)
    }

    /// Removes a synonym set or rule; whether it existed.
    pub async fn remove(&self, id: &str) -> Result<bool, CommerceError> {
        let removed = sqlx::query("DELETE FROM commerce_merchandising WHERE id = $1")
            .bind(id)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        self.reload().await?;
        Ok(removed > 0)
    }

    /// Every synonym set.
    pub fn synonyms(&self) -> Arc<Vec<SynonymSet>> {
        Arc::clone(&self.synonyms.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every rule.
    pub fn rules(&self) -> Vec<Rule> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|compiled| compiled.rule.clone())
            .collect()
    }

    /// The other words of the synonym sets that hold `word`.
    pub(crate) fn synonyms_of(&self, word: &str) -> Vec<String> {
        let word = word.to_lowercase();
        self.synonyms()
            .iter()
            .filter(|set| set.words.contains(&word))
            .flat_map(|set| set.words.iter().filter(|other| **other != word).cloned())
            .collect()
    }

    /// Applies the rules whose words `text` contains to `ranked` (best first); returns the ids applied.
    pub(crate) fn apply(
        &self,
        text: &str,
        ranked: &mut Vec<(usize, f32)>,
        product: impl Fn(usize) -> Option<Product>,
        row_of: impl Fn(&str) -> Option<usize>,
    ) -> Vec<String> {
        let query_words = words_of(text);
        let rules = Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner));
        let mut applied = Vec::new();
        for compiled in rules
            .iter()
            .filter(|rule| rule.words.iter().all(|word| query_words.contains(word)))
        {
            let matches = |filters: &[Filter], row: usize| {
                product(row).is_some_and(|product| filters.iter().any(|filter| filter.matches(&product)))
            };
            if !compiled.boost.is_empty() {
                // A stable sort keeps the ranking within each side.
                ranked.sort_by_key(|(row, _)| !matches(&compiled.boost, *row));
            }
            if !compiled.bury.is_empty() {
                ranked.sort_by_key(|(row, _)| matches(&compiled.bury, *row));
            }
            let mut pins: Vec<&Pin> = compiled.rule.pin.iter().collect();
            pins.sort_by_key(|pin| pin.position);
            for pin in pins {
                let Some(row) = row_of(&pin.product_id) else { continue };
                let score = ranked
                    .iter()
                    .find(|(other, _)| *other == row)
                    .map_or(0.0, |(_, score)| *score);
                ranked.retain(|(other, _)| *other != row);
                ranked.insert((pin.position - 1).min(ranked.len()), (row, score));
            }
            applied.push(compiled.rule.id.clone());
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn product(id: &str, colour: &str) -> Product {
        Product {
            id: id.to_owned(),
            name: id.to_owned(),
            class: vec![],
            category_path: vec![],
            rating: None,
            review_count: 0,
            description: None,
            price: None,
            features: vec![],
            attributes: [("colour".to_owned(), colour.to_owned())].into(),
        }
    }

    #[tokio::test]
    async fn rules_pin_boost_and_bury_for_matching_queries_only() {
        let merchandising = Merchandising::open(Database::open_in_memory().await.unwrap())
            .await
            .unwrap();
        let products = [
            product("a", "red"),
            product("b", "blue"),
            product("c", "red"),
            product("d", "green"),
        ];
        let row_of = |id: &str| products.iter().position(|product| product.id == id);
        let rule = Rule {
            id: String::new(),
            query: "Sofa".to_owned(),
            pin: vec![Pin {
                product_id: "d".to_owned(),
                position: 1,
            }],
            boost: vec!["colour:blue".to_owned()],
            bury: vec!["colour:red".to_owned()],
        };
        let rule = merchandising.add_rule(rule, |id| row_of(id).is_some()).await.unwrap();
        let mut ranked: Vec<(usize, f32)> = (0..4).map(|row| (row, 1.0)).collect();
        let applied = merchandising.apply("grey SOFA", &mut ranked, |row| products.get(row).cloned(), row_of);
        assert_eq!(applied, std::slice::from_ref(&rule.id));
        let order: Vec<&str> = ranked.iter().map(|(row, _)| products[*row].id.as_str()).collect();
        assert_eq!(order, ["d", "b", "a", "c"]);

        let mut untouched: Vec<(usize, f32)> = (0..4).map(|row| (row, 1.0)).collect();
        assert!(
            merchandising
                .apply("chair", &mut untouched, |row| products.get(row).cloned(), row_of)
                .is_empty()
        );

        assert!(
            merchandising
                .add_rule(
                    Rule {
                        boost: vec!["price:cheap".to_owned()],
                        ..rule.clone()
                    },
                    |_| true
                )
                .await
                .is_err()
        );
        assert!(
            merchandising
                .add_rule(
                    Rule {
                        pin: vec![Pin {
                            product_id: "zz".to_owned(),
                            position: 1
                        }],
                        ..rule.clone()
                    },
                    |id| row_of(id).is_some()
                )
                .await
                .is_err()
        );
        assert!(merchandising.remove(&rule.id).await.unwrap());
        assert!(merchandising.rules().is_empty());
    }

    #[tokio::test]
    async fn synonym_sets_find_each_other() {
        let merchandising = Merchandising::open(Database::open_in_memory().await.unwrap())
            .await
            .unwrap();
        merchandising
            .add_synonyms(vec!["Sofa".to_owned(), "couch".to_owned(), "settee".to_owned()])
            .await
            .unwrap();
        assert_eq!(merchandising.synonyms_of("couch"), ["sofa", "settee"]);
        assert!(merchandising.synonyms_of("chair").is_empty());
        assert!(merchandising.add_synonyms(vec!["one".to_owned()]).await.is_err());
    }
}
