//! The fleet: where models run and what it costs the planet and the budget.
//!
//! Sites with power caps, PUE and hourly energy price and grid carbon; accelerator profiles; replicas of
//! models on them ([`Fleet`]); a pure router that picks a replica per request under six policies
//! ([`Router`]); a placement and capacity planner ([`plan`]); a discrete-event simulator that replays request
//! traces ([`simulate`]); SVG charts of its results; and Kubernetes manifests from the same description.
//! Nothing here performs network IO: files in, numbers and manifests out.

mod accelerators;
mod chart;
mod demand;
mod error;
mod health;
mod k8s;
mod placement;
mod plan;
mod router;
mod series;
mod sim;
mod spec;
mod trace;

pub use accelerators::{Accelerator, AcceleratorCatalog, ModelClass, ServingProfile};
pub use chart::write_simulation_charts;
pub use demand::{Demand, DemandRow};
pub use error::FleetError;
pub use health::ServerMetrics;
pub use k8s::{K8sOptions, Manifest, kubernetes_manifests, write_kubernetes_manifests};
pub use placement::{LivePlacement, PlacedReplicas};
pub use plan::{
    CapacityStep, Flow, Inventory, Placement, Plan, PlanOptions, PlanTotals, Sensitivity, SiteCapacity, SitePlan,
    capacity, plan, sensitivity,
};
pub use router::{CandidateScore, Choice, Explanation, FleetState, Policy, ReplicaLoad, RouteRequest, Router};
pub use series::{HourlySeries, NegativePrices, SeriesKind};
pub use sim::{SimulationOptions, SimulationReport, SiteReport, simulate};
pub use spec::{Fleet, Model, Replica, Site, Slo, UserRegion, estimated_rtt_ms};
pub use trace::{Trace, TraceRequest};
