//! Where the loop's figures come from: the gateway's ledger and the store's shopper events, read through their
//! public APIs and handed to `insights`, with the fleet the forecast is planned on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::fleet_advisor::FleetAdvisor;
use anyhow::Context as _;
use gateway::{Gateway, UsageDimension};
use insights::{InsightsError, LedgerHour, LoopInput, LoopOptions, LoopReport, ShopperHour};

/// The storefront's fleet and the price series it names, built in and copied into the data directory on first
/// use, where an operator may edit them.
const STOREFRONT_FLEET: &[(&str, &str)] = &[
    ("storefront.toml", include_str!("../../../data/fleet/storefront.toml")),
    (
        "prices/US-MIDA-PJM_2023-11.csv",
        include_str!("../../../data/fleet/prices/US-MIDA-PJM_2023-11.csv"),
    ),
    (
        "prices/CA-ON_2023-11.csv",
        include_str!("../../../data/fleet/prices/CA-ON_2023-11.csv"),
    ),
    (
        "prices/DE-LU_2023-11.csv",
        include_str!("../../../data/fleet/prices/DE-LU_2023-11.csv"),
    ),
    (
        "prices/LICENSE_MIT",
        include_str!("../../../data/fleet/prices/LICENSE_MIT"),
    ),
];

/// The fleet the loop plans on: `configured` when given, else the storefront's fleet in `<data_dir>/fleet`
/// (written there first if absent).
pub fn loop_fleet(configured: Option<&Path>, data_dir: &Path) -> anyhow::Result<fleet::Fleet> {
    let path = match configured {
        Some(path) => path.to_path_buf(),
        None => seed_storefront_fleet(data_dir)?,
    };
    Ok(fleet::Fleet::read(&path)?)
}

fn seed_storefront_fleet(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let directory = data_dir.join("fleet");
    for (name, text) in STOREFRONT_FLEET {
        let path = directory.join(name);
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(directory.join("storefront.toml"))
}

/// Reads the loop's inputs and computes its figures.
#[derive(Clone)]
pub struct LoopSource {
    db: store::Database,
    gateway: Gateway,
    events: Arc<commerce::ShopperEvents>,
    fleet: Option<Arc<fleet::Fleet>>,
    /// The gateway's fleet router, when fleet routing is on: the plan is put in service there.
    router: Option<Arc<FleetAdvisor>>,
    /// Sponsored products, whose impressions and clicks are shopper events too.
    ads: Option<Arc<commerce::ads::Ads>>,
}

/// How often the live plan is recomputed.
const REPLAN_INTERVAL: Duration = Duration::from_secs(300);

/// The history the live plan's forecast is fitted on, hours.
const REPLAN_HISTORY_HOURS: i64 = 7 * 24;

impl LoopSource {
    /// A source over `gateway`'s ledger and `events`, planning on `fleet`; questions are asked of `db`.
    pub fn new(
        db: store::Database,
        gateway: Gateway,
        events: Arc<commerce::ShopperEvents>,
        fleet: Option<fleet::Fleet>,
    ) -> LoopSource {
        LoopSource {
            db,
            gateway,
            events,
            fleet: fleet.map(Arc::new),
            router: None,
            ads: None,
        }
    }

    /// Counts `ads`' impressions and clicks among the shopper events.
    pub fn with_ads(mut self, ads: Arc<commerce::ads::Ads>) -> LoopSource {
        self.ads = Some(ads);
        self
    }

    /// Puts each new plan in service on `router` (see [`LoopSource::keep_router_on_plan`]).
    pub fn with_router(mut self, router: Arc<FleetAdvisor>) -> LoopSource {
        self.router = Some(router);
        self
    }

    /// Closes the loop: now and every [`REPLAN_INTERVAL`], forecasts the last week's demand, plans its peak
    /// on the fleet and hands the placement to the router, which routes over it from the next request on.
    /// Runs until the process ends; returns at once without a router.
    pub async fn keep_router_on_plan(self) {
        let Some(router) = self.router.clone() else {
            return;
        };
        loop {
            let now_hour = jiff::Timestamp::now().as_second().div_euclid(3600);
            match self
                .report(now_hour - REPLAN_HISTORY_HOURS, now_hour + 1, &LoopOptions::default())
                .await
            {
                Ok(report) => match report.plan {
                    insights::PlanFigures::Planned { placements, demand, .. } => {
                        let peak: Vec<String> = demand
                            .iter()
                            .map(|row| format!("{} {:.4} req/s", row.model, row.requests_per_s))
                            .collect();
                        let basis = format!(
                            "the forecast peak of the next {} h (90% upper bound): {}; planned at {}",
                            LoopOptions::default().horizon_hours,
                            peak.join(", "),
                            jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%MZ")
                        );
                        match router.adopt(&placements, &basis) {
                            Ok(true) => tracing::info!(
                                replicas = placements.iter().map(|placement| placement.replicas).sum::<u32>(),
                                %basis,
                                "the router now routes over the plan's placement"
                            ),
                            Ok(false) => {}
                            Err(error) => {
                                tracing::warn!(%error, "the plan cannot be put in service; the router keeps its placement")
                            }
                        }
                    }
                    insights::PlanFigures::NotPlanned { reason, .. } => {
                        tracing::debug!(%reason, "no plan to put in service; the router keeps its placement");
                    }
                },
                Err(error) => tracing::warn!(error = %format!("{error:#}"), "cannot compute the loop's plan"),
            }
            tokio::time::sleep(REPLAN_INTERVAL).await;
        }
    }

    /// The fleet it plans on.
    pub fn fleet(&self) -> Option<&fleet::Fleet> {
        self.fleet.as_deref()
    }

    /// The figures for `[from_hour, to_hour)`.
    pub async fn report(&self, from_hour: i64, to_hour: i64, options: &LoopOptions) -> anyhow::Result<LoopReport> {
        self.report_in_steps(from_hour, to_hour, options, |_| {}).await
    }

    /// [`LoopSource::report`], telling `on_step` which of the [`REPORT_STEPS`] it starts, in order.
    pub async fn report_in_steps(
        &self,
        from_hour: i64,
        to_hour: i64,
        options: &LoopOptions,
        on_step: impl Fn(&'static str),
    ) -> anyhow::Result<LoopReport> {
        on_step(REPORT_STEPS[0]);
        let bound = |hour: i64| -> anyhow::Result<String> {
            let start = jiff::Timestamp::from_second(hour.saturating_mul(3600)).context("an hour out of range")?;
            Ok(gateway::parse_bound("hour", &start.to_string())?)
        };
        let groups = self
            .gateway
            .ledger()
            .report(
                &[
                    UsageDimension::Model,
                    UsageDimension::Tenant,
                    UsageDimension::Feature,
                    UsageDimension::Hour,
                ],
                Some(&bound(from_hour)?),
                Some(&bound(to_hour)?),
            )
            .await
            .context("reading the usage ledger")?;
        let mut ledger = Vec::with_capacity(groups.len());
        for group in groups {
            let text = |name: &str| {
                group
                    .group
                    .get(name)
                    .and_then(|value| value.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            ledger.push(LedgerHour {
                hour: insights::unix_hour(&text("hour"))?,
                model: text("model"),
                tenant: text("tenant"),
                feature: text("feature"),
                requests: group.requests,
                failed: group.failed,
                prompt_tokens: group.prompt_tokens,
                completion_tokens: group.completion_tokens,
                cost_micros: group.cost_micros,
            });
        }
        on_step(REPORT_STEPS[1]);
        let since_ms = from_hour.saturating_mul(3_600_000);
        let mut counts = self
            .events
            .hourly_counts(since_ms)
            .await
            .context("reading shopper events")?;
        if let Some(ads) = &self.ads {
            counts.extend(
                ads.hourly_counts(since_ms)
                    .await
                    .context("reading ad impressions and clicks")?,
            );
        }
        let shoppers: Vec<ShopperHour> = counts
            .into_iter()
            .map(|(kind, hour, events)| ShopperHour { hour, kind, events })
            .collect();
        let input = LoopInput {
            from_hour,
            to_hour,
            ledger: &ledger,
            shoppers: &shoppers,
            current_hour: Some(jiff::Timestamp::now().as_second().div_euclid(3600)),
        };
        on_step(REPORT_STEPS[2]);
        Ok(insights::build_report(&input, self.fleet(), options)?)
    }
}

/// What computing a report does, in order: the long steps a progress bar shows.
pub const REPORT_STEPS: [&str; 3] = [
    "reading the usage ledger",
    "reading shopper and ad events",
    "forecasting and planning the fleet",
];

/// The most calls one replay takes from the ledger (the newest).
const MAX_REPLAY_CALLS: u32 = 20_000;

impl LoopSource {
    /// Replays the ledger's calls of `[from_hour, to_hour)` through the fleet (see [`insights::replay`]).
    pub async fn replay(
        &self,
        from_hour: i64,
        to_hour: i64,
        load_scale: u32,
        plan: Option<Vec<fleet::Placement>>,
    ) -> Result<insights::replay::ReplayComparison, InsightsError> {
        let Some(fleet) = self.fleet.clone() else {
            return Err(InsightsError::Unanswerable("no fleet is configured".to_owned()));
        };
        let bound = |hour: i64| -> Result<String, InsightsError> {
            let start = jiff::Timestamp::from_second(hour.saturating_mul(3600))
                .map_err(|_| InsightsError::InvalidOption("an hour out of range".to_owned()))?;
            gateway::parse_bound("hour", &start.to_string())
                .map_err(|error| InsightsError::InvalidOption(error.to_string()))
        };
        let calls = self
            .gateway
            .ledger()
            .calls(&bound(from_hour)?, &bound(to_hour)?, MAX_REPLAY_CALLS)
            .await
            .map_err(|error| InsightsError::Query(format!("reading the usage ledger: {error}")))?;
        let calls: Vec<insights::replay::Call> = calls
            .into_iter()
            .filter_map(|call| {
                let at: jiff::Timestamp = call.created_at.parse().ok()?;
                Some(insights::replay::Call {
                    unix_s: at.as_millisecond() as f64 / 1e3,
                    model: call.model,
                    prompt_tokens: call.prompt_tokens,
                    output_tokens: call.completion_tokens,
                })
            })
            .collect();
        let options = insights::replay::ReplayOptions { load_scale };
        tokio::task::spawn_blocking(move || insights::replay::compare(&fleet, &calls, plan.as_deref(), options))
            .await
            .map_err(|error| InsightsError::Query(format!("the replay stopped: {error}")))?
    }
}

impl web::LoopFigures for LoopSource {
    fn report(&self, from_hour: i64, to_hour: i64, options: LoopOptions) -> web::FiguresFuture<'_> {
        Box::pin(async move {
            LoopSource::report(self, from_hour, to_hour, &options)
                .await
                .map_err(|error| format!("{error:#}"))
        })
    }

    fn fleet(&self) -> Option<&fleet::Fleet> {
        LoopSource::fleet(self)
    }

    fn live_placement(&self) -> Option<fleet::LivePlacement> {
        self.router.as_ref().map(|router| router.placement())
    }

    fn replay(
        &self,
        from_hour: i64,
        to_hour: i64,
        load_scale: u32,
        plan: Option<Vec<fleet::Placement>>,
    ) -> web::ReplayFuture<'_> {
        Box::pin(async move { LoopSource::replay(self, from_hour, to_hour, load_scale, plan).await })
    }

    fn ask(&self, question: insights::ask::Question) -> web::AnswerFuture<'_> {
        Box::pin(async move {
            insights::ask::answer(&self.db, &question, jiff::Timestamp::now())
                .await
                .map_err(|error| error.to_string())
        })
    }
}
