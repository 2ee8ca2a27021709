//! Search relevance on the public WANDS queries, through the storefront's own search with the real embedded
//! embedder behind a real gateway: nDCG@10 per method (see `commerce::relevance`), judgments from
//! `data/wands/public/`. Hybrid search must beat plain BM25 by at least 0.05.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use commerce::relevance::{self, SEARCH_METHODS};
use commerce::{Storefront, TextEmbedder};

/// A plain BM25 over name + class + category path reaches 0.690 on these queries (see the data README).
const MIN_BM25_NDCG: f64 = 0.65;
/// What hybrid search must add to plain BM25.
const MIN_HYBRID_GAIN: f64 = 0.05;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn models_dir() -> PathBuf {
    std::env::var_os("FLYWHEEL_MODELS_DIR")
        .map(PathBuf::from)
        .expect("set FLYWHEEL_MODELS_DIR to the directory scripts/fetch-models fills")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_search_beats_bm25_on_public_wands_queries() {
    let public = manifest_path("../../data/wands/public");
    let queries = relevance::read_wands_judgments(&public.join("query.csv"), &public.join("label.csv")).unwrap();
    assert_eq!(queries.len(), 31);

    let embedder = inference::Embedder::load(&models_dir().join("all-MiniLM-L6-v2"), Default::default()).unwrap();
    let gateway = gateway::Gateway::open(store::Database::open_in_memory().await.unwrap(), None)
        .await
        .unwrap();
    gateway.serve_embedded_embedder("all-minilm-l6-v2", embedder);
    let storefront =
        Storefront::new().with_embedder(TextEmbedder::new(gateway.client("relevance"), "all-minilm-l6-v2"));
    let (loader, catalog) = (storefront.clone(), manifest_path("../../data/wands/product.csv"));
    let summary = tokio::task::spawn_blocking(move || loader.load(&catalog))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.rejected, 0);

    // Until the vectors are built, hybrid search answers keyword-only and dense search is refused.
    let early = storefront
        .search(&commerce::SearchQuery::new("king bed"))
        .await
        .unwrap();
    assert_eq!(early.mode, commerce::SearchMode::Keyword);
    let dense = commerce::SearchQuery {
        mode: commerce::SearchMode::Dense,
        ..commerce::SearchQuery::new("king bed")
    };
    assert_eq!(
        storefront.search(&dense).await.unwrap_err().code(),
        "vectors_unavailable"
    );

    // Cached where the test scripts keep them (or under the target dir), so that later runs read the vectors.
    let cache = std::env::var_os("FLYWHEEL_VECTOR_CACHE_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wands-vectors"),
        PathBuf::from,
    );
    let built = storefront.build_vectors(Some(&cache), |_, _| {}).await.unwrap();
    assert_eq!((built.products, built.dimensions), (6_482, 384));
    let again = storefront.build_vectors(Some(&cache), |_, _| {}).await.unwrap();
    assert!(again.from_cache);

    let scores = relevance::evaluate(&storefront, &queries, &SEARCH_METHODS)
        .await
        .unwrap();
    for score in &scores {
        println!(
            "{:<18} nDCG@10 {:.3}  {:.2} ms/query",
            score.method, score.ndcg_at_10, score.mean_search_ms
        );
    }
    let ndcg = |method: &str| scores.iter().find(|score| score.method == method).unwrap().ndcg_at_10;
    assert!(ndcg("bm25") >= MIN_BM25_NDCG, "bm25 {:.3}", ndcg("bm25"));
    assert!(
        ndcg("hybrid") >= ndcg("bm25") + MIN_HYBRID_GAIN,
        "hybrid {:.3} vs bm25 {:.3}",
        ndcg("hybrid"),
        ndcg("bm25")
    );
    assert!(ndcg("hybrid + rerank") >= ndcg("hybrid") - 0.01);

    // Typos are corrected and reported; the corrected text is what was searched.
    let page = storefront
        .search(&commerce::SearchQuery::new("foutains with brick look"))
        .await
        .unwrap();
    assert_eq!(page.mode, commerce::SearchMode::Hybrid);
    assert_eq!(page.corrected_query.as_deref(), Some("fountains with brick look"));
}
