//! Search relevance, measured: nDCG@10 of each search method over judged queries (the WANDS query and label
//! files). Gains are Exact 2, Partial 1, Irrelevant and unjudged 0, with a log2 discount; the ideal ranking is
//! taken over every judged product of the query.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::{CommerceError, SearchMode, SearchQuery, Storefront};

/// The rank cut-off of the metric.
pub const NDCG_DEPTH: usize = 10;

/// A query and the gain of each product judged for it.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedQuery {
    /// The query's id in the judgment files.
    pub id: String,
    /// What the shopper typed.
    pub text: String,
    /// Gain per judged product id.
    pub gains: HashMap<String, u8>,
}

/// A search configuration under evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchMethod {
    /// How it is named in the report.
    pub name: &'static str,
    /// How candidates are found.
    pub mode: SearchMode,
    /// Whether typos are corrected.
    pub typo_tolerance: bool,
    /// Whether the category-intent rerank runs.
    pub rerank: bool,
}

/// Every method the report compares, the plain baseline first.
pub const SEARCH_METHODS: [SearchMethod; 5] = [
    SearchMethod {
        name: "bm25",
        mode: SearchMode::Keyword,
        typo_tolerance: false,
        rerank: false,
    },
    SearchMethod {
        name: "bm25 + typos",
        mode: SearchMode::Keyword,
        typo_tolerance: true,
        rerank: false,
    },
    SearchMethod {
        name: "dense",
        mode: SearchMode::Dense,
        typo_tolerance: true,
        rerank: false,
    },
    SearchMethod {
        name: "hybrid",
        mode: SearchMode::Hybrid,
        typo_tolerance: true,
        rerank: false,
    },
    SearchMethod {
        name: "hybrid + rerank",
        mode: SearchMode::Hybrid,
        typo_tolerance: true,
        rerank: true,
    },
];

/// One method's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodScore {
    /// The method's name.
    pub method: String,
    /// Mean nDCG@10 over the queries.
    pub ndcg_at_10: f64,
    /// Mean time per search, in milliseconds, query embedding included.
    pub mean_search_ms: f64,
    /// nDCG@10 per query id, in file order.
    pub per_query: Vec<(String, f64)>,
}

/// Reads a WANDS `query.csv` (query_id, query, ...) and `label.csv` (query_id, product_id, label), both
/// tab-separated with a header. Queries without any judgment are kept: they score 0 for every method.
pub fn read_wands_judgments(queries: &Path, labels: &Path) -> Result<Vec<JudgedQuery>, CommerceError> {
    let mut judged: Vec<JudgedQuery> = Vec::new();
    for record in read_tsv(queries, &["query_id", "query"])? {
        judged.push(JudgedQuery {
            id: record[0].clone(),
            text: record[1].clone(),
            gains: HashMap::new(),
        });
    }
    let position: HashMap<String, usize> = judged
        .iter()
        .enumerate()
        .map(|(index, query)| (query.id.clone(), index))
        .collect();
    for (line, record) in read_tsv(labels, &["query_id", "product_id", "label"])?
        .into_iter()
        .enumerate()
    {
        let gain = match record[2].as_str() {
            "Exact" => 2,
            "Partial" => 1,
            "Irrelevant" => 0,
            other => {
                return Err(judgment_error(
                    labels,
                    format!(
                        "line {}: unknown label '{other}' (expected Exact, Partial or Irrelevant)",
                        line + 2
                    ),
                ));
            }
        };
        if let Some(&index) = position.get(&record[0]) {
            judged[index].gains.insert(record[1].clone(), gain);
        }
    }
    if judged.is_empty() {
        return Err(judgment_error(queries, "it holds no queries".to_owned()));
    }
    Ok(judged)
}

/// nDCG@10 of `ranked` product ids against `gains`.
pub fn ndcg_at_10(ranked: &[&str], gains: &HashMap<String, u8>) -> f64 {
    let discounted = |rank: usize, gain: u8| f64::from(gain) / (rank as f64 + 2.0).log2();
    let actual: f64 = ranked
        .iter()
        .take(NDCG_DEPTH)
        .enumerate()
        .map(|(rank, id)| discounted(rank, gains.get(*id).copied().unwrap_or(0)))
        .sum();
    let mut ideal: Vec<u8> = gains.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let ideal: f64 = ideal
        .into_iter()
        .take(NDCG_DEPTH)
        .enumerate()
        .map(|(rank, gain)| discounted(rank, gain))
        .sum();
    if ideal > 0.0 { actual / ideal } else { 0.0 }
}

/// Scores each method on every judged query through `storefront`'s own search.
pub async fn evaluate(
    storefront: &Storefront,
    queries: &[JudgedQuery],
    methods: &[SearchMethod],
) -> Result<Vec<MethodScore>, CommerceError> {
    let mut scores = Vec::with_capacity(methods.len());
    for method in methods {
        let mut per_query = Vec::with_capacity(queries.len());
        let mut elapsed = 0.0;
        for query in queries {
            let search = SearchQuery {
                limit: NDCG_DEPTH,
                mode: method.mode,
                typo_tolerance: method.typo_tolerance,
                rerank: method.rerank,
                ..SearchQuery::new(&query.text)
            };
            let started = Instant::now();
            let page = storefront.search(&search).await?;
            elapsed += started.elapsed().as_secs_f64() * 1e3;
            let ranked: Vec<&str> = page.hits.iter().map(|hit| hit.product.id.as_str()).collect();
            per_query.push((query.id.clone(), ndcg_at_10(&ranked, &query.gains)));
        }
        let count = per_query.len().max(1) as f64;
        scores.push(MethodScore {
            method: method.name.to_owned(),
            ndcg_at_10: per_query.iter().map(|(_, ndcg)| ndcg).sum::<f64>() / count,
            mean_search_ms: elapsed / count,
            per_query,
        });
    }
    Ok(scores)
}

fn judgment_error(path: &Path, reason: String) -> CommerceError {
    CommerceError::CatalogFormat {
        catalog: path.display().to_string(),
        reason,
    }
}

/// The named columns of a tab-separated file with a header, row by row.
fn read_tsv(path: &Path, columns: &[&str]) -> Result<Vec<Vec<String>>, CommerceError> {
    let file = File::open(path).map_err(|cause| CommerceError::CatalogRead {
        catalog: path.display().to_string(),
        cause,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .flexible(true)
        .from_reader(file);
    let header = reader
        .headers()
        .map_err(|error| judgment_error(path, format!("unreadable header: {error}")))?
        .clone();
    let positions = columns
        .iter()
        .map(|column| {
            header
                .iter()
                .position(|field| field.trim() == *column)
                .ok_or_else(|| judgment_error(path, format!("the header has no '{column}' column")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|error| judgment_error(path, format!("line {}: {error}", line + 2)))?;
        let row = positions
            .iter()
            .map(|&position| record.get(position).map(|field| field.trim().to_owned()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| judgment_error(path, format!("line {}: missing fields", line + 2)))?;
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ndcg_is_one_for_the_ideal_order_and_zero_without_gains() {
        let gains: HashMap<String, u8> = [("a", 2), ("b", 1), ("c", 0)]
            .into_iter()
            .map(|(id, gain)| (id.to_owned(), gain))
            .collect();
        assert!((ndcg_at_10(&["a", "b", "c"], &gains) - 1.0).abs() < 1e-12);
        let swapped = ndcg_at_10(&["b", "a"], &gains);
        let expected = (1.0 + 2.0 / 3f64.log2()) / (2.0 + 1.0 / 3f64.log2());
        assert!((swapped - expected).abs() < 1e-12);
        assert_eq!(ndcg_at_10(&["x", "y"], &gains), 0.0);
        assert_eq!(ndcg_at_10(&["a"], &HashMap::new()), 0.0);
    }
}
