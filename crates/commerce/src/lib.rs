//! The commerce layer: the product catalog, its importers (WANDS, CSV, JSON Lines) and its table in the database,
//! catalog administration, sponsored products (`ads`), the BM25 search index, filters, facets and sort orders, typo correction, product vectors and rank fusion, the `Storefront`
//! handle that serves them once loaded, the product assistant, and the storefront's JSON API under `/api`.

mod admin;
pub mod ads;
mod api;
mod assistant;
mod cart;
mod catalog;
mod catalog_store;
mod error;
mod events;
mod facets;
mod import;
mod listing;
mod merchandising;
mod ranking;
pub mod relevance;
mod search;
mod seller;
mod shopping;
mod spelling;
mod storefront;
mod understanding;
mod vectors;

pub use admin::{CatalogImport, admin_routes, import_catalog};
pub use api::router;
pub use assistant::{ProductAnswer, ProductAssistant};
pub use cart::{CartLine, Carts, MAX_QUANTITY};
pub use catalog::{Catalog, CategoryCount, ImportReport, Product};
pub use catalog_store::{CatalogStore, ImportSummary};
pub use error::CommerceError;
pub use events::{EventKind, Related, ShopperEvent, ShopperEvents, Suggestion};
pub use facets::{Facet, FacetField, FacetValue, Filter, SortOrder, parse_facets};
pub use import::{CatalogFormat, FieldMapping, ProductField, ProductFile, RejectedRow, read_products};
pub use listing::{Listing, ListingQuality, ListingWriter, score_listing};
pub use merchandising::{Merchandising, Pin, Rule, SynonymSet};
pub use search::{KeywordMatches, SearchIndex};
pub use seller::seller_router;
pub use shopping::{AssistantEvent, Intent, ShoppingAssistant, Turn};
pub use spelling::{Correction, Speller};
pub use storefront::{
    DEMO_CATALOG, LoadSummary, ProductHit, SearchMode, SearchPage, SearchQuery, Storefront, Suggestions, VectorSummary,
};
pub use understanding::{QueryAttributes, understand_query};
pub use vectors::{ProductVectors, TextEmbedder};

/// Now, in milliseconds since the Unix epoch (UTC): how events, impressions and carts are stamped.
pub(crate) fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}
