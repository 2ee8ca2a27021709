//! Search relevance on the public WANDS queries: mean nDCG@10 of `SearchIndex` over the vendored catalog, with
//! the judgments kept in `shared/data/wands/public/`. Gains: Exact 2, Partial 1, Irrelevant and unjudged 0;
//! log2 discount; the ideal ranking is taken over every judged product of the query.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use commerce::{Catalog, SearchIndex, SearchQuery};

/// A plain BM25 over name + class + category path reaches 0.690 on these queries (see the data README).
const MIN_NDCG_AT_10: f64 = 0.65;
const K: usize = 10;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read_tsv(path: &Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .from_path(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    reader.records().map(Result::unwrap).collect()
}

fn gain(label: &str) -> f64 {
    match label {
        "Exact" => 2.0,
        "Partial" => 1.0,
        _ => 0.0,
    }
}

fn dcg(gains: impl Iterator<Item = f64>) -> f64 {
    gains
        .enumerate()
        .map(|(rank, gain)| gain / (rank as f64 + 2.0).log2())
        .sum()
}

#[test]
fn ndcg_at_10_on_public_wands_queries() {
    let (catalog, report) = Catalog::load_wands(&manifest_path("../../data/wands/product.csv")).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let index = SearchIndex::build(&catalog).unwrap();

    let public = manifest_path("../../../shared/data/wands/public");
    let mut gains_by_query: HashMap<String, HashMap<String, f64>> = HashMap::new();
    for row in read_tsv(&public.join("label.csv")) {
        gains_by_query
            .entry(row[0].to_owned())
            .or_default()
            .insert(row[1].to_owned(), gain(&row[2]));
    }
    let queries = read_tsv(&public.join("query.csv"));
    assert_eq!(queries.len(), 31);

    let mut total_ndcg = 0.0;
    let mut search_time = std::time::Duration::ZERO;
    for query in &queries {
        let judged = gains_by_query.get(&query[0]).expect("every public query has judgments");
        let started = Instant::now();
        let results = index
            .search(&SearchQuery {
                text: query[1].to_owned(),
                limit: K,
                offset: 0,
            })
            .unwrap();
        search_time += started.elapsed();
        let actual = dcg(results
            .hits
            .iter()
            .map(|hit| judged.get(&hit.id).copied().unwrap_or(0.0)));
        let mut ideal_gains: Vec<f64> = judged.values().copied().collect();
        ideal_gains.sort_by(|a, b| b.total_cmp(a));
        let ideal = dcg(ideal_gains.into_iter().take(K));
        total_ndcg += if ideal > 0.0 { actual / ideal } else { 0.0 };
    }
    let ndcg = total_ndcg / queries.len() as f64;
    println!(
        "WANDS public queries: nDCG@10 = {ndcg:.3} over {} queries (reference BM25: 0.690); mean search {:.3} ms",
        queries.len(),
        search_time.as_secs_f64() * 1e3 / queries.len() as f64
    );
    assert!(ndcg >= MIN_NDCG_AT_10, "nDCG@10 = {ndcg:.3} is below {MIN_NDCG_AT_10}");
}
