//! Full-text product search: a tantivy index held in RAM, built once from a `Catalog`, ranked by BM25 over the
//! product name (boosted), classes and category path. User text is never parsed as query syntax: it is run
//! through the index's own analyzer and becomes an OR of term queries, so no input can make a search fail.

use std::collections::HashSet;

use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TantivyDocument, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Score, TantivyError, Term};

use crate::{Catalog, CommerceError};

/// Name under which the analyzer is registered with the index.
const ANALYZER_NAME: &str = "product_en";
/// A term found in the name says more about what the product *is* than one found in its category path.
const NAME_BOOST: Score = 2.0;
/// Distinct query terms beyond this are ignored, so that a pasted essay costs no more than a long query.
const MAX_QUERY_TERMS: usize = 32;
/// Tokens longer than this are noise (hashes, run-together junk) and are dropped at index and query time.
const MAX_TOKEN_CHARS: usize = 40;
/// Indexing memory; tantivy needs at least 15 MB per indexing thread.
const WRITER_MEMORY_BYTES: usize = 32_000_000;

/// A search request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// What the shopper typed; any text is accepted.
    pub text: String,
    /// How many hits to return, 1 to [`SearchQuery::MAX_LIMIT`].
    pub limit: usize,
    /// How many of the best hits to skip, for paging.
    pub offset: usize,
}

impl SearchQuery {
    /// The largest page a search returns.
    pub const MAX_LIMIT: usize = 100;
    /// How deep paging may go (`offset + limit`): ranking costs grow with it and nobody reads that far.
    pub const MAX_RESULT_WINDOW: usize = 10_000;

    fn validate(&self) -> Result<(), CommerceError> {
        if !(1..=Self::MAX_LIMIT).contains(&self.limit) {
            return Err(CommerceError::InvalidRequest(format!(
                "limit must be between 1 and {}, got {}",
                Self::MAX_LIMIT,
                self.limit
            )));
        }
        if self.offset.saturating_add(self.limit) > Self::MAX_RESULT_WINDOW {
            return Err(CommerceError::InvalidRequest(format!(
                "offset + limit must be at most {}, got offset {} and limit {}",
                Self::MAX_RESULT_WINDOW,
                self.offset,
                self.limit
            )));
        }
        Ok(())
    }
}

/// One ranked product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The product id.
    pub id: String,
    /// The BM25 score; only comparable within one search.
    pub score: f32,
}

/// One page of ranked products.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchResults {
    /// How many products match at least one query term.
    pub total: usize,
    /// The requested page, best first.
    pub hits: Vec<SearchHit>,
}

/// The indexed fields.
struct Fields {
    id: Field,
    name: Field,
    class: Field,
    category: Field,
}

/// A BM25 index over a catalog's products, held in RAM.
pub struct SearchIndex {
    reader: IndexReader,
    fields: Fields,
    analyzer: TextAnalyzer,
}

impl SearchIndex {
    /// Indexes every product of the catalog.
    pub fn build(catalog: &Catalog) -> Result<SearchIndex, CommerceError> {
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER_NAME)
                // Without positions: queries are bags of terms, never phrases.
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let mut schema = Schema::builder();
        let fields = Fields {
            id: schema.add_text_field("id", STRING | STORED),
            name: schema.add_text_field("name", text.clone()),
            class: schema.add_text_field("class", text.clone()),
            category: schema.add_text_field("category", text),
        };
        let index = Index::create_in_ram(schema.build());
        let analyzer = product_analyzer();
        index.tokenizers().register(ANALYZER_NAME, analyzer.clone());

        // One indexing thread keeps documents in catalog order, so equal scores rank the same way every run.
        let mut writer: IndexWriter = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        for product in catalog.products() {
            let mut document = TantivyDocument::default();
            document.add_text(fields.id, &product.id);
            document.add_text(fields.name, &product.name);
            for class in &product.class {
                document.add_text(fields.class, class);
            }
            for category in &product.category_path {
                document.add_text(fields.category, category);
            }
            writer.add_document(document)?;
        }
        writer.commit()?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(SearchIndex {
            reader,
            fields,
            analyzer,
        })
    }

    /// The products matching any term of the query, best BM25 score first.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults, CommerceError> {
        query.validate()?;
        let terms = self.query_terms(&query.text);
        if terms.is_empty() {
            return Ok(SearchResults::default());
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 3);
        for term in &terms {
            let term_query = |field| {
                Box::new(TermQuery::new(
                    Term::from_field_text(field, term),
                    IndexRecordOption::WithFreqs,
                ))
            };
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(term_query(self.fields.name), NAME_BOOST)),
            ));
            clauses.push((Occur::Should, term_query(self.fields.class)));
            clauses.push((Occur::Should, term_query(self.fields.category)));
        }
        let searcher = self.reader.searcher();
        let collector = (
            TopDocs::with_limit(query.limit)
                .and_offset(query.offset)
                .order_by_score(),
            Count,
        );
        let (top, total) = searcher.search(&BooleanQuery::new(clauses), &collector)?;
        let hits = top
            .into_iter()
            .map(|(score, address)| {
                let document: TantivyDocument = searcher.doc(address)?;
                let id = document
                    .get_first(self.fields.id)
                    .and_then(|value| value.as_str())
                    .ok_or_else(|| TantivyError::InternalError(format!("document {address:?} has no stored id")))?;
                Ok(SearchHit {
                    id: id.to_owned(),
                    score,
                })
            })
            .collect::<Result<Vec<_>, TantivyError>>()?;
        Ok(SearchResults { total, hits })
    }

    /// The distinct analyzed terms of the user's text, in order of first appearance.
    fn query_terms(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut seen = HashSet::new();
        let mut terms = Vec::new();
        while terms.len() < MAX_QUERY_TERMS && stream.advance() {
            let token = &stream.token().text;
            if seen.insert(token.clone()) {
                terms.push(token.clone());
            }
        }
        terms
    }
}

/// Splits on anything that is not a letter or digit, then lowercases, folds accents ("décor" finds "decor"),
/// drops English stop words and stems ("chairs" finds "chair").
fn product_analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_CHARS))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter);
    match StopWordFilter::new(Language::English) {
        Some(stop_words) => builder
            .filter(stop_words)
            .filter(Stemmer::new(Language::English))
            .build(),
        // Only when tantivy is built without its default `stopwords` feature.
        None => builder.filter(Stemmer::new(Language::English)).build(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    fn demo_index() -> (Catalog, SearchIndex) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/wands/product.csv");
        let (catalog, _) = Catalog::load_wands(&path).unwrap();
        let index = SearchIndex::build(&catalog).unwrap();
        (catalog, index)
    }

    fn query(text: &str) -> SearchQuery {
        SearchQuery {
            text: text.to_owned(),
            limit: 10,
            offset: 0,
        }
    }

    #[test]
    fn finds_products_by_name_class_and_category() {
        let (catalog, index) = demo_index();
        let results = index.search(&query("king poster bed")).unwrap();
        assert!(results.total > 10);
        assert_eq!(results.hits.len(), 10);
        let top = catalog.get(&results.hits[0].id).unwrap();
        assert!(top.name.contains("bed"), "{top:?}");
        assert!(results.hits.windows(2).all(|pair| pair[0].score >= pair[1].score));
    }

    #[test]
    fn stemming_and_accent_folding_match_variants() {
        let (catalog, index) = demo_index();
        for text in ["Chairs", "chair", "WALL DECOR", "wall décor"] {
            let results = index.search(&query(text)).unwrap();
            assert!(!results.hits.is_empty(), "{text}");
            let top = catalog.get(&results.hits[0].id).unwrap();
            let words = format!("{} {} {}", top.name, top.class.join(" "), top.category_path.join(" ")).to_lowercase();
            assert!(
                words.contains("chair") || words.contains("décor") || words.contains("decor"),
                "{text}: {top:?}"
            );
        }
    }

    #[test]
    fn odd_inputs_never_fail() {
        let (_, index) = demo_index();
        let long = "bed ".repeat(10_000) + &"x".repeat(100_000);
        let odd = [
            "\"unbalanced quote",
            "name:bed",
            "(((bed",
            "bed)) AND OR NOT",
            "-bed +chair ~ ^2 * ? [1 TO 5] {a}",
            "😀 椅子 كرسي",
            "28.5 '' bar stool",
            "\\ / | & ! \0",
            &long,
        ];
        for text in odd {
            index.search(&query(text)).unwrap();
        }
        assert!(!index.search(&query("name:bed")).unwrap().hits.is_empty());
    }

    #[test]
    fn text_without_terms_matches_nothing() {
        let (_, index) = demo_index();
        for text in ["", "   ", "the and of", "!!! ??? ..."] {
            assert_eq!(
                index.search(&query(text)).unwrap(),
                SearchResults::default(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn repeated_words_count_once() {
        let (_, index) = demo_index();
        assert_eq!(
            index.search(&query("bed bed bed")).unwrap(),
            index.search(&query("bed")).unwrap()
        );
    }

    #[test]
    fn offset_pages_through_the_same_ranking() {
        let (_, index) = demo_index();
        let first = index
            .search(&SearchQuery {
                limit: 20,
                ..query("oak table")
            })
            .unwrap();
        let second = index
            .search(&SearchQuery {
                limit: 10,
                offset: 10,
                ..query("oak table")
            })
            .unwrap();
        assert_eq!(first.total, second.total);
        assert_eq!(first.hits[10..], second.hits[..]);
    }

    #[test]
    fn limits_and_windows_are_validated() {
        let (_, index) = demo_index();
        let too_many = SearchQuery {
            limit: 101,
            ..query("bed")
        };
        let none = SearchQuery {
            limit: 0,
            ..query("bed")
        };
        let too_deep = SearchQuery {
            offset: usize::MAX,
            ..query("bed")
        };
        for bad in [too_many, none, too_deep] {
            assert_eq!(index.search(&bad).unwrap_err().code(), "invalid_request", "{bad:?}");
        }
    }
}
