//! The commerce layer: the product catalog and its WANDS importer, the BM25 search index, typo correction, product vectors and rank fusion, the `Storefront`
//! handle that serves them once loaded, the product assistant, and the storefront's JSON API under `/api`.

mod api;
mod assistant;
mod catalog;
mod error;
mod ranking;
pub mod relevance;
mod search;
mod spelling;
mod storefront;
mod vectors;

pub use api::router;
pub use assistant::{ProductAnswer, ProductAssistant};
pub use catalog::{Catalog, CategoryCount, ImportReport, Product, RejectedRow};
pub use error::CommerceError;
pub use search::{KeywordMatches, SearchIndex};
pub use spelling::{Correction, Speller};
pub use storefront::{LoadSummary, ProductHit, SearchMode, SearchPage, SearchQuery, Storefront, VectorSummary};
pub use vectors::{ProductVectors, TextEmbedder};
