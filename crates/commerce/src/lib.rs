//! The commerce layer: the product catalog, its importers (WANDS, CSV, JSON Lines) and its table in the database,
//! catalog administration, sponsored products (`ads`), the BM25 search index, filters, facets and sort orders, typo correction, product vectors and rank fusion, the `Storefront`
//! handle that serves them once loaded, the product assistant, and the storefront's JSON API under `/api`.

mod admin;
pub mod ads;
mod api;
mod assistant;
mod catalog;
mod catalog_store;
mod error;
mod facets;
mod import;
mod ranking;
pub mod relevance;
mod search;
mod spelling;
mod storefront;
mod vectors;

pub use admin::{CatalogImport, admin_routes, import_catalog};
pub use api::router;
pub use assistant::{ProductAnswer, ProductAssistant};
pub use catalog::{Catalog, CategoryCount, ImportReport, Product};
pub use catalog_store::{CatalogStore, ImportSummary};
pub use error::CommerceError;
pub use facets::{Facet, FacetField, FacetValue, Filter, SortOrder, parse_facets};
pub use import::{CatalogFormat, FieldMapping, ProductField, ProductFile, RejectedRow, read_products};
pub use search::{KeywordMatches, SearchIndex};
pub use spelling::{Correction, Speller};
pub use storefront::{
    DEMO_CATALOG, LoadSummary, ProductHit, SearchMode, SearchPage, SearchQuery, Storefront, VectorSummary,
};
pub use vectors::{ProductVectors, TextEmbedder};
