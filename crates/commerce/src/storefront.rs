//! The storefront: the shared handle that the API and the pages serve from. It owns the catalog's lifecycle
//! (loading, ready, failed), runs the search pipeline (typo correction, keyword and vector candidates, fusion,
//! category-intent rerank, paging) and joins hits with their products; it never blocks on a load in progress.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::ads::{Ads, SponsoredHit};
use crate::cart::{CartLine, Carts};
use crate::events::{EventKind, ShopperEvent, ShopperEvents, Suggestion};
use crate::facets::{Facet, FacetField, Filter, SortOrder, count_facets};
use crate::listing::{Listing, ListingWriter};
use crate::merchandising::Merchandising;
use crate::ranking::{RRF_K, reciprocal_rank_fusion, rerank_by_category_intent};
use crate::shopping::{AssistantEvent, ShoppingAssistant, Turn};
use crate::spelling::{Correction, Speller};
use crate::understanding::{QueryAttributes, understand_query};
use crate::vectors::{ProductVectors, TextEmbedder, embed_all, embedding_text, fingerprint};
use crate::{
    Catalog, CatalogStore, CategoryCount, CommerceError, ImportReport, Product, ProductAnswer, ProductAssistant,
    SearchIndex,
};
use futures::stream::BoxStream;

/// How many candidates each retriever contributes before fusion, at least: deep enough that a product ranked
/// low by one retriever but high by the other still makes the first page.
const CANDIDATE_DEPTH: usize = 100;
/// Nearest products a filtered, faceted or sorted search takes from the vectors: every product is *some*
/// distance away, so vector candidates stop at the closest.
const DENSE_FILTER_DEPTH: usize = 1_000;
/// Keyword matches a filtered, faceted or sorted search considers, best first: as deep as paging goes. On a
/// broad query over a large catalog, facet counts and the filtered total are over these best matches (ranking
/// every one of 200K matches cost 100 ms per query; these cost a few).
const KEYWORD_FILTER_DEPTH: usize = SearchQuery::MAX_RESULT_WINDOW;
/// The least share of the best keyword score a match needs to be filtered, counted in facets or sorted.
const RELEVANT_SHARE_OF_BEST: f32 = 0.5;
/// The file, in the vector cache directory, holding the product vectors of the last catalog embedded.
const VECTOR_FILE: &str = "product-vectors.bin";

/// How a search finds its candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// BM25 over the product's words.
    Keyword,
    /// Nearest product vectors to the query's embedding.
    Dense,
    /// Both, fused by reciprocal rank; keyword alone while the product vectors are still being built.
    #[default]
    Hybrid,
}

impl SearchMode {
    /// The mode named `name` (`keyword`, `dense` or `hybrid`).
    pub fn parse(name: &str) -> Result<SearchMode, CommerceError> {
        match name {
            "keyword" => Ok(SearchMode::Keyword),
            "dense" => Ok(SearchMode::Dense),
            "hybrid" => Ok(SearchMode::Hybrid),
            other => Err(CommerceError::InvalidRequest(format!(
                "mode must be keyword, dense or hybrid, got '{other}'"
            ))),
        }
    }
}

/// A search request.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// What the shopper typed; any text is accepted.
    pub text: String,
    /// How many hits to return, 1 to [`SearchQuery::MAX_LIMIT`].
    pub limit: usize,
    /// How many of the best hits to skip, for paging.
    pub offset: usize,
    /// How candidates are found.
    pub mode: SearchMode,
    /// Whether words the catalog does not know are corrected to ones it does.
    pub typo_tolerance: bool,
    /// Whether the ranking is adjusted toward the category the best candidates agree on.
    pub rerank: bool,
    /// Which products may be hits.
    pub filter: Filter,
    /// Which fields to count matches by.
    pub facets: Vec<FacetField>,
    /// How hits are ordered.
    pub sort: SortOrder,
    /// Whether sponsored products are auctioned for the page (when the store runs ads).
    pub sponsored: bool,
    /// The shopping session searching, if known: its searches teach autocomplete.
    pub session: Option<String>,
    /// Whether hits carry their name with the matched words marked.
    pub highlight: bool,
}

impl SearchQuery {
    /// The largest page a search returns.
    pub const MAX_LIMIT: usize = 100;
    /// How deep paging may go (`offset + limit`): ranking costs grow with it and nobody reads that far.
    pub const MAX_RESULT_WINDOW: usize = 10_000;

    /// A first page of 10 hits for `text`, with every default: hybrid, typo tolerance and rerank on.
    pub fn new(text: &str) -> SearchQuery {
        SearchQuery {
            text: text.to_owned(),
            limit: 10,
            offset: 0,
            mode: SearchMode::default(),
            typo_tolerance: true,
            rerank: true,
            filter: Filter::default(),
            facets: Vec::new(),
            sort: SortOrder::Relevance,
            sponsored: false,
            session: None,
            highlight: false,
        }
    }

    /// Whether the search needs every match rather than the best few: to filter, count or reorder them.
    fn needs_all_matches(&self) -> bool {
        !self.filter.is_empty() || !self.facets.is_empty() || self.sort != SortOrder::Relevance
    }

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

/// The demo catalog (the WANDS subset in `data/wands/`), built into the binary so that the store works with
/// no files around.
pub const DEMO_CATALOG: &[u8] = include_bytes!("../../../data/wands/product.csv");
const DEMO_CATALOG_NAME: &str = "the built-in demo catalog";

/// The session assistant turns are recorded under when the shopper sent none.
const ANONYMOUS_SESSION: &str = "anonymous";

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
    /// The ranking score (BM25, cosine or fused, by mode); only comparable within one search.
    pub score: f32,
    /// The name with the words the query matched in `<em>` (the rest HTML-escaped), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highlighted_name: Option<String>,
}

/// One page of search results, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage {
    /// The text searched for, as given.
    pub query: String,
    /// The text actually searched when typos were corrected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected_query: Option<String>,
    /// The words corrected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub corrections: Vec<Correction>,
    /// The mode that ran: a hybrid search is keyword-only until the product vectors are built.
    pub mode: SearchMode,
    /// How many products match (for vector modes, how many candidates were ranked).
    pub total: usize,
    /// Time spent searching and joining, in milliseconds.
    pub took_ms: f64,
    /// The requested page, best first.
    pub hits: Vec<ProductHit>,
    /// The counts asked for, in the order asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub facets: Vec<Facet>,
    /// The colour, material, size and dimensions the query names, for pages to offer as filters.
    #[serde(skip_serializing_if = "QueryAttributes::is_empty")]
    pub understood: QueryAttributes,
    /// The merchandising rules that changed this ranking.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules_applied: Vec<String>,
    /// Sponsored products won at auction for this query, shown apart from the hits and labelled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sponsored: Vec<SponsoredHit>,
}

/// What a shopper's typing may complete to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestions {
    /// Past queries of other shoppers, most asked first.
    pub queries: Vec<Suggestion>,
    /// Classes and categories of the catalog.
    pub categories: Vec<String>,
}

/// A loaded catalog and its indexes; replaced whole, never mutated except that its vectors arrive once built.
struct LoadedCatalog {
    catalog: Catalog,
    index: SearchIndex,
    speller: Speller,
    vectors: OnceLock<ProductVectors>,
    /// The database's catalog version this was loaded from; `None` for a file.
    version: Option<i64>,
    /// Every class and category name, lowercased, with the original and how many products have it; sorted, for
    /// completions.
    category_names: Vec<(String, String, usize)>,
    /// The catalog this one replaced, until its vectors have been reused for the products that did not change.
    predecessor: Mutex<Option<Arc<LoadedCatalog>>>,
}

/// What building the product vectors did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VectorSummary {
    /// Products with a vector.
    pub products: usize,
    /// The vectors' length.
    pub dimensions: usize,
    /// Whether they were read from the cache file instead of embedded.
    pub from_cache: bool,
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
    /// Held while loading from the database, so that concurrent syncs load each version once.
    sync_lock: Arc<tokio::sync::Mutex<()>>,
    assistant: Option<Arc<ProductAssistant>>,
    embedder: Option<Arc<TextEmbedder>>,
    ads: Option<Arc<Ads>>,
    events: Option<Arc<ShopperEvents>>,
    carts: Option<Carts>,
    shopping: Option<Arc<ShoppingAssistant>>,
    merchandising: Option<Arc<Merchandising>>,
    listing_writer: Option<ListingWriter>,
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

    /// The same storefront, auctioning sponsored products from `ads` on searches that ask for them.
    pub fn with_ads(self, ads: Arc<Ads>) -> Self {
        Storefront { ads: Some(ads), ..self }
    }

    /// The same storefront, recording shoppers' searches, views and orders in `events` and learning from them.
    pub fn with_events(self, events: Arc<ShopperEvents>) -> Self {
        Storefront {
            events: Some(events),
            ..self
        }
    }

    /// The same storefront, applying `merchandising`'s synonyms and rules to searches.
    pub fn with_merchandising(self, merchandising: Arc<Merchandising>) -> Self {
        Storefront {
            merchandising: Some(merchandising),
            ..self
        }
    }

    /// The same storefront, writing sellers' listings with `writer`.
    pub fn with_listing_writer(self, writer: ListingWriter) -> Self {
        Storefront {
            listing_writer: Some(writer),
            ..self
        }
    }

    /// A listing written from a seller's notes, its category one of this catalog's.
    pub async fn write_listing(&self, notes: &str) -> Result<Listing, CommerceError> {
        let writer = self
            .listing_writer
            .as_ref()
            .ok_or(CommerceError::AssistantUnavailable)?;
        writer.write(self, notes).await
    }

    /// The store's synonyms and rules, if it has them.
    pub fn merchandising(&self) -> Option<Arc<Merchandising>> {
        self.merchandising.clone()
    }

    /// The same storefront, keeping shoppers' carts in `carts`.
    pub fn with_carts(self, carts: Carts) -> Self {
        Storefront {
            carts: Some(carts),
            ..self
        }
    }

    /// The same storefront, with a shopping assistant for conversations about the catalog.
    pub fn with_shopping_assistant(self, assistant: ShoppingAssistant) -> Self {
        Storefront {
            shopping: Some(Arc::new(assistant)),
            ..self
        }
    }

    /// Answers the last turn of a shopping conversation, as a stream of events.
    pub async fn converse(
        &self,
        turns: &[Turn],
        session: Option<&str>,
    ) -> Result<BoxStream<'static, AssistantEvent>, CommerceError> {
        let assistant = self.shopping.as_ref().ok_or(CommerceError::AssistantUnavailable)?;
        let answer = assistant.converse(self, turns, session).await?;
        self.record(EventKind::Assistant, session.unwrap_or(ANONYMOUS_SESSION), None, None);
        Ok(answer)
    }

    fn carts(&self) -> Result<&Carts, CommerceError> {
        self.carts
            .as_ref()
            .ok_or_else(|| CommerceError::Database("this store keeps no carts".to_owned()))
    }

    /// Adds a catalog product to the session's cart.
    pub async fn add_to_cart(
        &self,
        session: &str,
        product_id: &str,
        quantity: i64,
    ) -> Result<Vec<CartLine>, CommerceError> {
        self.product(product_id)?;
        let lines = self.carts()?.add(session, product_id, quantity).await?;
        self.record(EventKind::Cart, session, Some(product_id), None);
        Ok(lines)
    }

    /// Takes a product out of the session's cart; whether it was there.
    pub async fn remove_from_cart(&self, session: &str, product_id: &str) -> Result<bool, CommerceError> {
        self.carts()?.remove(session, product_id).await
    }

    /// The session's cart.
    pub async fn cart(&self, session: &str) -> Result<Vec<CartLine>, CommerceError> {
        self.carts()?.lines(session).await
    }

    /// Records what a shopping session did (when the store keeps events).
    pub fn record(&self, kind: EventKind, session: &str, product_id: Option<&str>, query: Option<&str>) {
        if let Some(events) = &self.events {
            events.record(ShopperEvent {
                kind,
                session: session.to_owned(),
                query: query.map(str::to_owned),
                product_id: product_id.map(str::to_owned),
            });
        }
    }

    /// Completions for what a shopper is typing: past queries other shoppers asked, then product classes and
    /// categories of the catalog that start the same way.
    pub fn suggest(&self, prefix: &str, limit: usize) -> Result<Suggestions, CommerceError> {
        let loaded = self.loaded()?;
        let queries = self
            .events
            .as_ref()
            .map(|events| events.suggest(prefix, limit))
            .unwrap_or_default();
        let wanted = prefix.trim().to_lowercase();
        let categories = if wanted.is_empty() {
            Vec::new()
        } else {
            let start = loaded
                .category_names
                .partition_point(|(lower, _, _)| lower.as_str() < wanted.as_str());
            let mut matching: Vec<&(String, String, usize)> = loaded.category_names[start..]
                .iter()
                .take_while(|(lower, _, _)| lower.starts_with(&wanted))
                .collect();
            // The categories with the most products first: what most shoppers typing this mean.
            matching.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
            matching
                .into_iter()
                .take(limit)
                .map(|(_, name, _)| name.clone())
                .collect()
        };
        Ok(Suggestions { queries, categories })
    }

    /// The products that shopping sessions which viewed (or bought, by `kind`) `product_id` also viewed (or
    /// bought), most sessions first.
    pub async fn also(&self, kind: EventKind, product_id: &str, limit: usize) -> Result<Vec<Product>, CommerceError> {
        let loaded = self.loaded()?;
        if loaded.catalog.get(product_id).is_none() {
            return Err(CommerceError::ProductNotFound(product_id.to_owned()));
        }
        let Some(events) = &self.events else {
            return Ok(Vec::new());
        };
        let related = events.also(kind, product_id, limit).await?;
        Ok(related
            .iter()
            .filter_map(|related| loaded.catalog.get(&related.product_id).cloned())
            .collect())
    }

    /// The text with the synonyms of its words added, for the keyword index to match any of them.
    fn with_synonyms(&self, text: &str) -> String {
        let Some(merchandising) = &self.merchandising else {
            return text.to_owned();
        };
        let mut expanded = text.to_owned();
        for word in text.split_whitespace() {
            for synonym in merchandising.synonyms_of(word) {
                expanded.push(' ');
                expanded.push_str(&synonym);
            }
        }
        expanded
    }

    /// The store's ads, if it runs them.
    pub fn ads(&self) -> Option<Arc<Ads>> {
        self.ads.clone()
    }

    /// The same storefront, embedding products and queries with `embedder` for dense and hybrid search.
    pub fn with_embedder(self, embedder: TextEmbedder) -> Self {
        Storefront {
            embedder: Some(Arc::new(embedder)),
            ..self
        }
    }

    /// Embeds every product of the loaded catalog, or reads the vectors from `cache_dir` when they were built
    /// for this very catalog and model, and serves dense and hybrid search from then on. Progress is reported
    /// as (done, total) products.
    pub async fn build_vectors(
        &self,
        cache_dir: Option<&Path>,
        progress: impl FnMut(usize, usize),
    ) -> Result<VectorSummary, CommerceError> {
        let embedder = self
            .embedder
            .as_ref()
            .ok_or_else(|| CommerceError::VectorsUnavailable("this store has no embedding model".to_owned()))?;
        let loaded = self.loaded()?;
        let texts: Vec<String> = loaded.catalog.products().iter().map(embedding_text).collect();
        let key = fingerprint(embedder.model(), texts.iter().map(String::as_str));
        let path = cache_dir.map(|dir| dir.join(VECTOR_FILE));
        let cached = path
            .as_deref()
            .and_then(|path| ProductVectors::load(path, &key))
            .filter(|vectors| vectors.len() == texts.len());
        let from_cache = cached.is_some();
        let vectors = match cached {
            Some(vectors) => vectors,
            None => {
                // Products whose text is unchanged since the catalog this one replaced keep their vectors.
                let predecessor = loaded.predecessor.lock().unwrap_or_else(PoisonError::into_inner).take();
                let mut known: HashMap<String, Vec<f32>> = HashMap::new();
                if let Some(previous) = &predecessor
                    && let Some(previous_vectors) = previous.vectors.get()
                {
                    for (row, product) in previous.catalog.products().iter().enumerate() {
                        if let Some(vector) = previous_vectors.row(row) {
                            known.insert(embedding_text(product), vector.to_vec());
                        }
                    }
                }
                drop(predecessor);
                let vectors = embed_all(embedder, &texts, known, progress).await?;
                if let Some(path) = &path
                    && let Err(error) = vectors.save(path, &key)
                {
                    tracing::warn!(path = %path.display(), %error, "could not save the product vectors; they will be embedded again on restart");
                }
                vectors
            }
        };
        let summary = VectorSummary {
            products: vectors.len(),
            dimensions: vectors.dimensions(),
            from_cache,
        };
        // A catalog swapped in meanwhile keeps keyword search until its own vectors are built.
        let _ = loaded.vectors.set(vectors);
        Ok(summary)
    }

    /// Whether dense and hybrid search are served (the product vectors are built).
    pub fn has_vectors(&self) -> bool {
        self.loaded().is_ok_and(|loaded| loaded.vectors.get().is_some())
    }

    /// Answers a shopper's question about the product `product_id`.
    pub async fn ask(&self, product_id: &str, question: &str) -> Result<ProductAnswer, CommerceError> {
        let product = self.product(product_id)?;
        let question = crate::assistant::validate_question(question)?;
        let assistant = self.assistant.as_ref().ok_or(CommerceError::AssistantUnavailable)?;
        let answer = assistant.answer(&product, question).await?;
        self.record(EventKind::Assistant, ANONYMOUS_SESSION, Some(product_id), None);
        Ok(answer)
    }

    /// Serves the database's catalog: when its version differs from the one served (or none is), reads and
    /// indexes its products, then serves them; `None` when already current. Hybrid search runs keyword-only
    /// until [`Storefront::build_vectors`] has run for the new catalog.
    pub async fn sync(&self, store: &CatalogStore) -> Result<Option<LoadSummary>, CommerceError> {
        let _syncing = self.sync_lock.lock().await;
        let version = store.version().await?;
        if self.loaded().is_ok_and(|loaded| loaded.version == Some(version)) {
            return Ok(None);
        }
        let (products, version) = store.products().await?;
        let storefront = self.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let imported = products.len();
            storefront.install(
                Ok((
                    Catalog::from_products(products),
                    ImportReport {
                        imported,
                        rejected: Vec::new(),
                    },
                )),
                "the catalog database",
                Some(version),
            )
        })
        .await
        .map_err(|error| CommerceError::Database(format!("indexing the catalog stopped: {error}")))??;
        Ok(Some(loaded))
    }

    /// The database catalog version being served, if the catalog came from the database.
    pub fn catalog_version(&self) -> Option<i64> {
        self.loaded().ok().and_then(|loaded| loaded.version)
    }

    /// Parses and indexes the WANDS catalog at `catalog_path`, then starts serving it. This blocks for as long
    /// as that takes: run it on a blocking thread. Searches during the load answer
    /// [`CommerceError::CatalogLoading`]. A failed first load is remembered and answered as
    /// [`CommerceError::CatalogUnavailable`]; a failed reload keeps serving the catalog already loaded.
    pub fn load(&self, catalog_path: &Path) -> Result<LoadSummary, CommerceError> {
        self.install(
            Catalog::load_wands(catalog_path),
            &catalog_path.display().to_string(),
            None,
        )
    }

    /// Like [`Storefront::load`], with the demo catalog built into the binary.
    pub fn load_demo(&self) -> Result<LoadSummary, CommerceError> {
        self.install(
            Catalog::read_wands(DEMO_CATALOG, DEMO_CATALOG_NAME),
            DEMO_CATALOG_NAME,
            None,
        )
    }

    fn install(
        &self,
        imported: Result<(Catalog, ImportReport), CommerceError>,
        catalog_name: &str,
        version: Option<i64>,
    ) -> Result<LoadSummary, CommerceError> {
        let indexed = imported.and_then(|(catalog, report)| Ok((SearchIndex::build(&catalog)?, catalog, report)));
        let indexed = indexed.map(|(index, catalog, report)| {
            let speller = Speller::new(catalog.products().iter().flat_map(|product| {
                std::iter::once(product.name.as_str())
                    .chain(product.class.iter().map(String::as_str))
                    .chain(product.category_path.iter().map(String::as_str))
            }));
            let mut counts: HashMap<String, (String, usize)> = HashMap::new();
            for name in catalog
                .products()
                .iter()
                .flat_map(|product| product.class.iter().chain(&product.category_path))
            {
                counts.entry(name.to_lowercase()).or_insert_with(|| (name.clone(), 0)).1 += 1;
            }
            let mut category_names: Vec<(String, String, usize)> = counts
                .into_iter()
                .map(|(lower, (name, count))| (lower, name, count))
                .collect();
            category_names.sort_unstable();
            (
                LoadedCatalog {
                    catalog,
                    index,
                    speller,
                    vectors: OnceLock::new(),
                    version,
                    category_names,
                    predecessor: Mutex::new(self.vectors_to_reuse()),
                },
                report,
            )
        });
        // The lock is taken only once the slow work is done, so searches keep answering meanwhile.
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match indexed {
            Ok((loaded, report)) => {
                *state = CatalogState::Ready(Arc::new(loaded));
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

    /// The latest catalog with vectors among the one served and the one it replaced: at most one is kept.
    fn vectors_to_reuse(&self) -> Option<Arc<LoadedCatalog>> {
        let current = self.loaded().ok()?;
        if current.vectors.get().is_some() {
            return Some(current);
        }
        current
            .predecessor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Records that the catalog could not be loaded: served as [`CommerceError::CatalogUnavailable`] unless a
    /// catalog is already being served.
    pub fn fail(&self, reason: String) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*state, CatalogState::Ready(_)) {
            *state = CatalogState::Failed(reason);
        }
    }

    /// Whether a catalog is loaded and being served.
    pub fn is_ready(&self) -> bool {
        matches!(
            *self.state.read().unwrap_or_else(PoisonError::into_inner),
            CatalogState::Ready(_)
        )
    }

    /// Searches the catalog and joins each hit with its product. A dense search before the product vectors
    /// are built is refused with [`CommerceError::VectorsUnavailable`]; a hybrid one runs keyword-only.
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchPage, CommerceError> {
        let started = Instant::now();
        query.validate()?;
        let loaded = self.loaded()?;
        let (text, corrections) = if query.typo_tolerance {
            loaded.speller.correct(&query.text)
        } else {
            (query.text.clone(), Vec::new())
        };
        let all_matches = query.needs_all_matches();
        let depth = CANDIDATE_DEPTH.max(query.offset + query.limit);
        let vectors = loaded.vectors.get().zip(self.embedder.as_ref());
        let mode = match (query.mode, vectors) {
            (SearchMode::Dense, None) => {
                return Err(CommerceError::VectorsUnavailable(
                    "the product vectors are not built yet; search with mode=keyword meanwhile".to_owned(),
                ));
            }
            (SearchMode::Hybrid, None) => SearchMode::Keyword,
            (mode, _) => mode,
        };
        let products = loaded.catalog.products();
        let keyword_text = self.with_synonyms(&text);
        let mut keyword = match mode {
            SearchMode::Dense => Default::default(),
            SearchMode::Keyword | SearchMode::Hybrid => loaded
                .index
                .search(&keyword_text, if all_matches { KEYWORD_FILTER_DEPTH } else { depth })?,
        };
        if all_matches && let Some(&(_, best)) = keyword.rows.first() {
            // Any one word matches, so "grey velvet sofa" matches every grey thing; what is filtered, counted
            // and sorted is what matches about as well as the best does.
            keyword
                .rows
                .retain(|(_, score)| *score >= best * RELEVANT_SHARE_OF_BEST);
        }
        let query_vector = match (mode, vectors) {
            (SearchMode::Dense | SearchMode::Hybrid, Some((_, embedder))) if !text.trim().is_empty() => {
                Some(embedder.embed_query(&text).await?)
            }
            _ => None,
        };
        let dense = match (loaded.vectors.get(), &query_vector) {
            (Some(vectors), Some(query_vector)) => vectors.nearest(
                query_vector,
                if all_matches {
                    DENSE_FILTER_DEPTH.max(depth)
                } else {
                    depth
                },
            ),
            _ => Vec::new(),
        };
        // Facets count the query's matches before the filter (each facet then applies the other fields' clauses).
        let facets = if query.facets.is_empty() {
            Vec::new()
        } else {
            let mut candidates: Vec<usize> = keyword.rows.iter().chain(&dense).map(|(row, _)| *row).collect();
            candidates.sort_unstable();
            candidates.dedup();
            count_facets(
                &query.facets,
                candidates.iter().filter_map(|&row| products.get(row)),
                &query.filter,
            )
        };
        let passes = |row: &(usize, f32)| products.get(row.0).is_some_and(|product| query.filter.matches(product));
        let (keyword_rows, dense) = if query.filter.is_empty() {
            (keyword.rows, dense)
        } else {
            (
                keyword.rows.into_iter().filter(passes).collect(),
                dense.into_iter().filter(passes).collect(),
            )
        };
        let total = if all_matches {
            let mut rows: Vec<usize> = keyword_rows.iter().chain(&dense).map(|(row, _)| *row).collect();
            rows.sort_unstable();
            rows.dedup();
            rows.len()
        } else {
            keyword.total.max(dense.len())
        };
        // The auction scores ads by their keyword match when the query has no vector.
        let wants_ads = self.ads.is_some() && query.sponsored;
        let keyword_for_ads = if wants_ads { keyword_rows.clone() } else { Vec::new() };
        let mut ranked = match mode {
            SearchMode::Keyword if !query.rerank => keyword_rows,
            SearchMode::Dense if !query.rerank => dense,
            SearchMode::Keyword => reciprocal_rank_fusion(&[&keyword_rows]),
            SearchMode::Dense => reciprocal_rank_fusion(&[&dense]),
            SearchMode::Hybrid => reciprocal_rank_fusion(&[&keyword_rows, &dense]),
        };
        if query.rerank {
            rerank_by_category_intent(
                &mut ranked,
                |row| products.get(row).map_or(&[][..], |product| product.class.as_slice()),
                1.0 / (RRF_K + 1.0),
            );
        }
        let sponsored = match &self.ads {
            Some(ads) if wants_ads && !ranked.is_empty() => sponsor(
                ads,
                &loaded,
                &text,
                query_vector.as_deref().map(Vec::as_slice),
                &keyword_for_ads,
                &ranked,
            ),
            _ => Vec::new(),
        };
        let rules_applied = match &self.merchandising {
            Some(merchandising) if query.sort == SortOrder::Relevance => merchandising.apply(
                &text,
                &mut ranked,
                |row| {
                    products
                        .get(row)
                        .filter(|product| query.filter.matches(product))
                        .cloned()
                },
                |id| loaded.catalog.row_of(id),
            ),
            _ => Vec::new(),
        };
        query.sort.apply(&mut ranked, |row| products.get(row));
        let highlight_terms: HashSet<String> = if query.highlight {
            loaded.index.query_terms(&keyword_text).into_iter().collect()
        } else {
            HashSet::new()
        };
        let hits = ranked
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            // Rows come from indexes built from this very catalog, so every one has its product.
            .filter_map(|(row, score)| {
                products.get(row).map(|product| ProductHit {
                    highlighted_name: query
                        .highlight
                        .then(|| loaded.index.highlight(&product.name, &highlight_terms)),
                    product: product.clone(),
                    score,
                })
            })
            .collect();
        if let Some(session) = &query.session
            && total > 0
        {
            self.record(EventKind::Search, session, None, Some(&query.text));
        }
        let understood = understand_query(&text);
        let corrected_query = (!corrections.is_empty()).then_some(text);
        Ok(SearchPage {
            query: query.text.clone(),
            corrected_query,
            corrections,
            mode,
            total,
            took_ms: started.elapsed().as_secs_f64() * 1e3,
            hits,
            facets,
            understood,
            rules_applied,
            sponsored,
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

/// How many of the best hits say which category the shopper is in, for category targets.
const CATEGORY_CONTEXT_HITS: usize = 10;

/// Auctions the sponsored slots of a results page. An ad's relevance is its product's cosine similarity to the
/// query when the query was embedded, else its BM25 score relative to the best match (0 when it does not match).
fn sponsor(
    ads: &Ads,
    loaded: &LoadedCatalog,
    text: &str,
    query_vector: Option<&[f32]>,
    keyword_rows: &[(usize, f32)],
    ranked: &[(usize, f32)],
) -> Vec<SponsoredHit> {
    let products = loaded.catalog.products();
    let query_terms = loaded.index.query_terms(text);
    let context: Vec<&Product> = ranked
        .iter()
        .take(CATEGORY_CONTEXT_HITS)
        .filter_map(|(row, _)| products.get(*row))
        .collect();
    let in_category = |name: &str| {
        context.iter().any(|product| {
            product
                .category_path
                .iter()
                .chain(&product.class)
                .any(|level| level.eq_ignore_ascii_case(name))
        })
    };
    let best_keyword = keyword_rows.first().map_or(0.0, |(_, score)| *score);
    let keyword_scores: HashMap<usize, f32> = keyword_rows.iter().copied().collect();
    let relevance = |row: usize| -> f64 {
        match (query_vector, loaded.vectors.get().and_then(|vectors| vectors.row(row))) {
            (Some(query), Some(vector)) => {
                f64::from(query.iter().zip(vector).map(|(a, b)| a * b).sum::<f32>()).max(0.0)
            }
            _ if best_keyword > 0.0 => f64::from(keyword_scores.get(&row).copied().unwrap_or(0.0) / best_keyword),
            _ => 0.0,
        }
    };
    let bids = ads.bids(
        &query_terms,
        |keyword| loaded.index.query_terms(keyword),
        in_category,
        |id| loaded.catalog.row_of(id),
        relevance,
    );
    let product_id = |row: usize| products.get(row).map(|product| product.id.clone()).unwrap_or_default();
    ads.serve(&bids, text, product_id)
        .into_iter()
        .filter_map(|(placement, impression_id)| {
            products.get(placement.product_row).map(|product| SponsoredHit {
                product: product.clone(),
                label: "Sponsored",
                campaign_id: placement.campaign_id,
                impression_id,
                slot: placement.slot,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::*;

    fn demo_catalog() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/wands/product.csv")
    }

    fn search(storefront: &Storefront, text: &str) -> Result<SearchPage, CommerceError> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(storefront.search(&query(text)))
    }

    fn query(text: &str) -> SearchQuery {
        SearchQuery {
            limit: 5,
            ..SearchQuery::new(text)
        }
    }

    #[test]
    fn serves_only_once_loaded() {
        let storefront = Storefront::new();
        assert!(!storefront.is_ready());
        assert_eq!(search(&storefront, "bed").unwrap_err().code(), "catalog_loading");
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
        let page = search(&storefront, "king poster bed").unwrap();
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
        assert_eq!(search(&storefront, "bed").unwrap_err().code(), "catalog_unavailable");

        storefront.load(&demo_catalog()).unwrap();
        storefront.load(Path::new("/nonexistent/product.csv")).unwrap_err();
        assert!(storefront.is_ready());
        assert!(!search(&storefront, "bed").unwrap().hits.is_empty());
    }
}
