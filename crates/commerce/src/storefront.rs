//! The storefront: the shared handle that the API and the pages serve from. It owns the catalog's lifecycle
//! (loading, ready, failed) and joins search hits with their products; it never blocks on a load in progress.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use serde::Serialize;

use crate::{
    Catalog, CategoryCount, CommerceError, ImportReport, Product, ProductAnswer, ProductAssistant, SearchIndex,
    SearchQuery,
};

/// The demo catalog (the WANDS subset in `data/wands/`), built into the binary so that the store works with
/// no files around.
const DEMO_CATALOG: &[u8] = include_bytes!("../../../data/wands/product.csv");
const DEMO_CATALOG_NAME: &str = "the built-in demo catalog";

/// What a successful load did; each rejected row is also logged with its line and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LoadSummary {
    /// Products imported and indexed.
    pub products: usize,
    /// Rows skipped.
    pub rejected: usize,
}

/// A search hit joined with its product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductHit {
    /// The product.
    #[serde(flatten)]
    pub product: Product,
    /// The BM25 score; only comparable within one search.
    pub score: f32,
}

/// One page of search results, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage {
    /// The text searched for, as given.
    pub query: String,
    /// How many products match.
    pub total: usize,
    /// Time spent searching and joining, in milliseconds.
    pub took_ms: f64,
    /// The requested page, best first.
    pub hits: Vec<ProductHit>,
}

/// A loaded catalog and its index; replaced whole, never mutated.
struct LoadedCatalog {
    catalog: Catalog,
    index: SearchIndex,
}

#[derive(Default)]
enum CatalogState {
    #[default]
    Loading,
    Ready(Arc<LoadedCatalog>),
    Failed(String),
}

/// The shared storefront handle; cheap to clone. It starts out loading and serves once [`Storefront::load`]
/// has finished.
#[derive(Clone, Default)]
pub struct Storefront {
    state: Arc<RwLock<CatalogState>>,
    assistant: Option<Arc<ProductAssistant>>,
}

impl Storefront {
    /// A storefront whose catalog is still loading.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same storefront, answering product questions with `assistant`.
    pub fn with_assistant(self, assistant: ProductAssistant) -> Self {
        Storefront {
            assistant: Some(Arc::new(assistant)),
            ..self
        }
    }

    /// Answers a shopper's question about the product `product_id`.
    pub async fn ask(&self, product_id: &str, question: &str) -> Result<ProductAnswer, CommerceError> {
        let product = self.product(product_id)?;
        let question = crate::assistant::validate_question(question)?;
        let assistant = self.assistant.as_ref().ok_or(CommerceError::AssistantUnavailable)?;
        assistant.answer(&product, question).await
    }

    /// Parses and indexes the WANDS catalog at `catalog_path`, then starts serving it. This blocks for as long
    /// as that takes: run it on a blocking thread. Searches during the load answer
    /// [`CommerceError::CatalogLoading`]. A failed first load is remembered and answered as
    /// [`CommerceError::CatalogUnavailable`]; a failed reload keeps serving the catalog already loaded.
    pub fn load(&self, catalog_path: &Path) -> Result<LoadSummary, CommerceError> {
        self.install(Catalog::load_wands(catalog_path), &catalog_path.display().to_string())
    }

    /// Like [`Storefront::load`], with the demo catalog built into the binary.
    pub fn load_demo(&self) -> Result<LoadSummary, CommerceError> {
        self.install(Catalog::read_wands(DEMO_CATALOG, DEMO_CATALOG_NAME), DEMO_CATALOG_NAME)
    }

    fn install(
        &self,
        imported: Result<(Catalog, ImportReport), CommerceError>,
        catalog_name: &str,
    ) -> Result<LoadSummary, CommerceError> {
        let indexed = imported.and_then(|(catalog, report)| Ok((SearchIndex::build(&catalog)?, catalog, report)));
        // The lock is taken only once the slow work is done, so searches keep answering meanwhile.
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match indexed {
            Ok((index, catalog, report)) => {
                *state = CatalogState::Ready(Arc::new(LoadedCatalog { catalog, index }));
                drop(state);
                for row in &report.rejected {
                    tracing::warn!(catalog = catalog_name, line = row.line, reason = %row.reason, "catalog row skipped");
                }
                Ok(LoadSummary {
                    products: report.imported,
                    rejected: report.rejected.len(),
                })
            }
            Err(error) => {
                if !matches!(*state, CatalogState::Ready(_)) {
                    *state = CatalogState::Failed(error.to_string());
                }
                Err(error)
            }
        }
    }

    /// Whether a catalog is loaded and being served.
    pub fn is_ready(&self) -> bool {
        matches!(
            *self.state.read().unwrap_or_else(PoisonError::into_inner),
            CatalogState::Ready(_)
        )
    }

    /// Searches the catalog and joins each hit with its product.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchPage, CommerceError> {
        let started = Instant::now();
        let loaded = self.loaded()?;
        let results = loaded.index.search(query)?;
        let hits = results
            .hits
            .into_iter()
            // The index is built from this very catalog, so every hit has its product.
            .filter_map(|hit| {
                loaded.catalog.get(&hit.id).map(|product| ProductHit {
                    product: product.clone(),
                    score: hit.score,
                })
            })
            .collect();
        Ok(SearchPage {
            query: query.text.clone(),
            total: results.total,
            took_ms: started.elapsed().as_secs_f64() * 1e3,
            hits,
        })
    }

    /// The product with this id.
    pub fn product(&self, id: &str) -> Result<Product, CommerceError> {
        self.loaded()?
            .catalog
            .get(id)
            .cloned()
            .ok_or_else(|| CommerceError::ProductNotFound(id.to_owned()))
    }

    /// The catalog's top-level categories, most products first.
    pub fn top_level_categories(&self) -> Result<Vec<CategoryCount>, CommerceError> {
        Ok(self.loaded()?.catalog.top_level_categories().to_vec())
    }

    /// How many products the loaded catalog holds.
    pub fn product_count(&self) -> Result<usize, CommerceError> {
        Ok(self.loaded()?.catalog.len())
    }

    fn loaded(&self) -> Result<Arc<LoadedCatalog>, CommerceError> {
        match &*self.state.read().unwrap_or_else(PoisonError::into_inner) {
            CatalogState::Ready(loaded) => Ok(Arc::clone(loaded)),
            CatalogState::Loading => Err(CommerceError::CatalogLoading),
            CatalogState::Failed(reason) => Err(CommerceError::CatalogUnavailable(reason.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::*;

    fn demo_catalog() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/wands/product.csv")
    }

    fn query(text: &str) -> SearchQuery {
        SearchQuery {
            text: text.to_owned(),
            limit: 5,
            offset: 0,
        }
    }

    #[test]
    fn serves_only_once_loaded() {
        let storefront = Storefront::new();
        assert!(!storefront.is_ready());
        assert_eq!(storefront.search(&query("bed")).unwrap_err().code(), "catalog_loading");
        assert_eq!(storefront.product("13").unwrap_err().code(), "catalog_loading");

        // Loading through a clone readies every handle: they share one state.
        let summary = storefront.clone().load(&demo_catalog()).unwrap();
        assert_eq!(
            summary,
            LoadSummary {
                products: 6_482,
                rejected: 0
            }
        );
        assert!(storefront.is_ready());
        assert_eq!(storefront.product_count().unwrap(), 6_482);
    }

    #[test]
    fn search_hits_carry_their_products() {
        let storefront = Storefront::new();
        storefront.load(&demo_catalog()).unwrap();
        let page = storefront.search(&query("king poster bed")).unwrap();
        assert_eq!(page.query, "king poster bed");
        assert_eq!(page.hits.len(), 5);
        for hit in &page.hits {
            assert_eq!(storefront.product(&hit.product.id).unwrap(), hit.product);
        }
        assert_eq!(
            storefront.product("no-such-id").unwrap_err().code(),
            "product_not_found"
        );
        assert_eq!(storefront.top_level_categories().unwrap()[0].name, "Furniture");
    }

    #[test]
    fn the_built_in_demo_is_the_vendored_catalog() {
        let storefront = Storefront::new();
        assert_eq!(
            storefront.load_demo().unwrap(),
            LoadSummary {
                products: 6_482,
                rejected: 0
            }
        );
        assert_eq!(
            storefront.product("13").unwrap().name,
            "king tufted low profile standard bed"
        );
    }

    #[test]
    fn a_failed_load_is_unavailable_but_a_failed_reload_keeps_serving() {
        let storefront = Storefront::new();
        storefront.load(Path::new("/nonexistent/product.csv")).unwrap_err();
        assert_eq!(
            storefront.search(&query("bed")).unwrap_err().code(),
            "catalog_unavailable"
        );

        storefront.load(&demo_catalog()).unwrap();
        storefront.load(Path::new("/nonexistent/product.csv")).unwrap_err();
        assert!(storefront.is_ready());
        assert!(!storefront.search(&query("bed")).unwrap().hits.is_empty());
    }
}
