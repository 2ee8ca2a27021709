//! Full-text product search: a tantivy index held in RAM, built once from a `Catalog`, ranked by BM25 over the
//! product name (boosted), classes and category path. User text is never parsed as query syntax: it is run
//! through the index's own analyzer and becomes an OR of term queries, so no input can make a search fail.

use std::collections::HashSet;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TantivyDocument, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Score, TantivyError, Term};

use crate::vectors::best_first;
use crate::{Catalog, CommerceError};

/// Name under which the analyzer is registered with the index.
const ANALYZER_NAME: &str = "product_en";
/// A term found in the name says more about what the product *is* than one found in its category path.
const NAME_BOOST: Score = 2.0;
/// Distinct query terms beyond this are ignored, so that a pasted essay costs no more than a long query.
const MAX_QUERY_TERMS: usize = 32;
/// Tokens longer than this are noise (hashes, run-together junk) and are dropped at index and query time.
const MAX_TOKEN_CHARS: usize = 40;
/// The fast field holding each document's row in the catalog.
const ROW_FIELD: &str = "row";
/// Indexing memory; tantivy needs at least 15 MB per indexing thread.
const WRITER_MEMORY_BYTES: usize = 32_000_000;

/// The products a keyword search matched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeywordMatches {
    /// How many products match at least one query term.
    pub total: usize,
    /// The best of them as (catalog row, BM25 score), best first.
    pub rows: Vec<(usize, f32)>,
}

/// The indexed fields.
struct Fields {
    row: Field,
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
            row: schema.add_u64_field(ROW_FIELD, FAST),
            name: schema.add_text_field("name", text.clone()),
            class: schema.add_text_field("class", text.clone()),
            category: schema.add_text_field("category", text),
        };
        let index = Index::create_in_ram(schema.build());
        let analyzer = product_analyzer();
        index.tokenizers().register(ANALYZER_NAME, analyzer.clone());

        // One indexing thread keeps documents in catalog order, so equal scores rank the same way every run.
        let mut writer: IndexWriter = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        for (row, product) in catalog.products().iter().enumerate() {
            let mut document = TantivyDocument::default();
            document.add_u64(fields.row, row as u64);
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

    /// The products matching any term of `text`, the best `depth` of them by BM25 score (`usize::MAX` for all).
    /// Ties keep catalog order, so a search ranks the same way every run.
    pub fn search(&self, text: &str, depth: usize) -> Result<KeywordMatches, CommerceError> {
        let terms = self.query_terms(text);
        if terms.is_empty() || depth == 0 {
            return Ok(KeywordMatches::default());
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
        // A depth past the catalog's size asks for every match.
        let depth = depth
            .min(usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX))
            .max(1);
        let collector = (TopDocs::with_limit(depth).order_by_score(), Count);
        let (top, total) = searcher.search(&BooleanQuery::new(clauses), &collector)?;
        let mut rows = Vec::with_capacity(top.len());
        // Opening a fast-field column costs more than reading from it: once per segment, not per hit.
        let mut columns = std::collections::HashMap::new();
        for (score, address) in top {
            let column = match columns.entry(address.segment_ord) {
                std::collections::hash_map::Entry::Occupied(open) => open.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => slot.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64(ROW_FIELD)?,
                ),
            };
            let row = column
                .first(address.doc_id)
                .ok_or_else(|| TantivyError::InternalError(format!("document {address:?} has no catalog row")))?;
            rows.push((usize::try_from(row).unwrap_or(usize::MAX), score));
        }
        rows.sort_by(best_first);
        Ok(KeywordMatches { total, rows })
    }

    /// `text` HTML-escaped, with the words whose analyzed form is among `terms` wrapped in `<em>`.
    pub(crate) fn highlight(&self, text: &str, terms: &HashSet<String>) -> String {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut marked = String::with_capacity(text.len() + 16);
        let mut written = 0;
        while stream.advance() {
            let token = stream.token();
            if terms.contains(&token.text)
                && token.offset_from >= written
                && text.is_char_boundary(token.offset_from)
                && text.is_char_boundary(token.offset_to)
            {
                marked.push_str(&escape_html(&text[written..token.offset_from]));
                marked.push_str("<em>");
                marked.push_str(&escape_html(&text[token.offset_from..token.offset_to]));
                marked.push_str("</em>");
                written = token.offset_to;
            }
        }
        marked.push_str(&escape_html(&text[written..]));
        marked
    }

    /// The distinct analyzed terms of the user's text, in order of first appearance: the words the index
    /// matches on.
    pub(crate) fn query_terms(&self, text: &str) -> Vec<String> {
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

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
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

    #[test]
    fn finds_products_by_name_class_and_category() {
        let (catalog, index) = demo_index();
        let results = index.search("king poster bed", 10).unwrap();
        assert!(results.total > 10);
        assert_eq!(results.rows.len(), 10);
        let top = &catalog.products()[results.rows[0].0];
        assert!(top.name.contains("bed"), "{top:?}");
        assert!(results.rows.windows(2).all(|pair| pair[0].1 >= pair[1].1));
    }

    #[test]
    fn stemming_and_accent_folding_match_variants() {
        let (catalog, index) = demo_index();
        for text in ["Chairs", "chair", "WALL DECOR", "wall décor"] {
            let results = index.search(text, 10).unwrap();
            assert!(!results.rows.is_empty(), "{text}");
            let top = &catalog.products()[results.rows[0].0];
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
            index.search(text, 10).unwrap();
        }
        assert!(!index.search("name:bed", 10).unwrap().rows.is_empty());
    }

    #[test]
    fn text_without_terms_matches_nothing() {
        let (_, index) = demo_index();
        for text in ["", "   ", "the and of", "!!! ??? ..."] {
            assert_eq!(index.search(text, 10).unwrap(), KeywordMatches::default(), "{text:?}");
        }
    }

    #[test]
    fn highlights_mark_matched_words_and_escape_the_rest() {
        let (_, index) = demo_index();
        let terms: HashSet<String> = index.query_terms("Oak chairs").into_iter().collect();
        assert_eq!(
            index.highlight("<b>oak</b> chair & OAK's stool", &terms),
            "&lt;b&gt;<em>oak</em>&lt;/b&gt; <em>chair</em> &amp; <em>OAK</em>&#39;s stool"
        );
        assert_eq!(index.highlight("pine bench", &terms), "pine bench");
    }

    #[test]
    fn repeated_words_count_once() {
        let (_, index) = demo_index();
        assert_eq!(
            index.search("bed bed bed", 10).unwrap(),
            index.search("bed", 10).unwrap()
        );
    }

    #[test]
    fn a_deeper_search_extends_the_same_ranking() {
        let (_, index) = demo_index();
        let shallow = index.search("oak table", 10).unwrap();
        let deep = index.search("oak table", 20).unwrap();
        assert_eq!(shallow.total, deep.total);
        assert_eq!(deep.rows[..10], shallow.rows[..]);
    }
}
