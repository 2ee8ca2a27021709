//! The flywheel loop, measured: shopper events and model calls become hourly demand series (`demand.rs`), a
//! forecaster projects each model's load over the coming hours (`forecast.rs`), and the fleet planner turns the
//! forecast peak into replicas, megawatts, energy cost and carbon per site (`report.rs`).
//!
//! This crate reads nothing itself: the binary hands it the ledger's and the store's hourly counts through their
//! owners' public APIs, so it depends only on the fleet's planner.

pub mod ask;
mod demand;
pub mod forecast;
pub mod replay;
mod report;

pub use demand::{LedgerHour, ShopperHour, hour_label, unix_hour};
pub use forecast::{Backtest, Fitted, ForecastPoint, Method};
pub use report::{
    Conversion, FeatureSeries, GatewayFigures, LoopInput, LoopOptions, LoopReport, ModelForecast, PlanFigures,
    PlannedDemand, ShareOfTotal, ShopperFigures, SiteFigures, UNATTRIBUTED, UsageShare, build_report,
};

/// What building the loop's figures can fail with.
#[derive(Debug, thiserror::Error)]
pub enum InsightsError {
    /// A series holds a value that is not a finite number.
    #[error("value {index} of the series is not a finite number")]
    NotFinite {
        /// Its position.
        index: usize,
    },
    /// The time range asked for is empty or reversed.
    #[error("the time range is empty: 'from' must be before 'to'")]
    EmptyRange,
    /// A time could not be read.
    #[error("'{text}' is not a time this report reads (RFC 3339, or YYYY-MM-DDTHH:00Z)")]
    BadTime {
        /// What was given.
        text: String,
    },
    /// An option is out of its range.
    #[error("{0}")]
    InvalidOption(String),
    /// A question the documented tables cannot answer, and why.
    #[error("{0}")]
    Unanswerable(String),
    /// A query failed or ran too long.
    #[error("the query failed: {0}")]
    Query(String),
}
