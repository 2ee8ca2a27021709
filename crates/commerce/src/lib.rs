//! The commerce layer: the product catalog and its WANDS importer, the BM25 search index, the `Storefront`
//! handle that serves them once loaded, the product assistant, and the storefront's JSON API under `/api`.

mod api;
mod assistant;
mod catalog;
mod error;
mod search;
mod storefront;

pub use api::router;
pub use assistant::{ProductAnswer, ProductAssistant};
pub use catalog::{Catalog, CategoryCount, ImportReport, Product, RejectedRow};
pub use error::CommerceError;
pub use search::{SearchHit, SearchIndex, SearchQuery, SearchResults};
pub use storefront::{LoadSummary, ProductHit, SearchPage, Storefront};
