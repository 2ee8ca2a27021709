//! Choosing where a request runs: the order in which a model's deployments (then its fallback models') are
//! tried, circuit breakers that take failing deployments out of rotation, and backoff between retries.
//!
//! Pure decisions over plain data plus a little shared state per deployment (in-flight count, latency average,
//! breaker); this module never performs IO.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How a model picks among its deployments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingStrategy {
    /// At random in proportion to the weights.
    #[default]
    Weighted,
    /// The one with the fewest requests in flight.
    LeastBusy,
    /// The one with the lowest recent latency (untried ones first, to learn theirs).
    LowestLatency,
    /// The cheapest, by the deployment's prices.
    LowestCost,
    /// Ask the placement advisor (the fleet planner: energy price, carbon and load per site); weighted when
    /// none is installed.
    Fleet,
}

/// Retries, backoff and circuit breaking, the same for every model (`[routing]` in flywheel.toml).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Extra attempts after the first when an attempt fails with a retryable error; every deployment in the
    /// plan is tried at least once regardless.
    pub retries: u32,
    /// First backoff before trying a deployment again; doubles each pass, with full jitter.
    pub backoff_ms: u64,
    /// Longest backoff.
    pub max_backoff_ms: u64,
    /// Consecutive failures that open a deployment's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps the deployment out before one trial request is let through.
    pub breaker_cooldown_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            retries: 2,
            backoff_ms: 100,
            max_backoff_ms: 5_000,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

impl RoutingConfig {
    /// The wait before pass `pass` (1 for the first repeat) over the plan: full jitter over an exponential cap.
    pub(crate) fn backoff(&self, pass: u32) -> Duration {
        let cap = self
            .backoff_ms
            .saturating_mul(1u64 << pass.saturating_sub(1).min(20))
            .min(self.max_backoff_ms);
        Duration::from_millis(fastrand::u64(cap / 2..=cap.max(1)))
    }
}

/// What the placement advisor sees of one candidate deployment.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The deployment's name.
    pub deployment: String,
    /// Its site, if configured.
    pub site: Option<String>,
    /// Requests in flight on it from this gateway.
    pub in_flight: u32,
    /// Its recent latency, if it has served anything.
    pub latency_ms: Option<f64>,
}

/// What the placement advisor knows of the request: from its body and the `x-flywheel-region` and
/// `x-flywheel-slo` headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlacementQuery {
    /// The model asked for (the catalog id).
    pub model: String,
    /// The user's region, when the caller says.
    pub region: Option<String>,
    /// The SLO class, when the caller says.
    pub slo: Option<String>,
    /// Prompt tokens, estimated from the text.
    pub prompt_tokens: u32,
    /// Output tokens expected (the request's limit, or a typical answer's length).
    pub output_tokens: u32,
}

/// The advisor's answer: an order and why its first choice is first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ranking {
    /// The candidates' indices, best first. Indices left out are tried last, in their original order.
    pub order: Vec<usize>,
    /// Why the first is best, in one line (it goes into the `x-flywheel-route` header).
    pub reason: Option<String>,
}

/// Ranks deployments by where it is best to run now; implemented by the fleet router.
pub trait PlacementAdvisor: Send + Sync {
    /// Ranks `candidates` for `query`.
    fn rank(&self, query: &PlacementQuery, candidates: &[Candidate]) -> Ranking;

    /// Every candidate's scores for `query`, for people (`GET /admin/placement`).
    fn explain(&self, query: &PlacementQuery) -> Result<serde_json::Value, String>;
}

/// Live state of one deployment.
#[derive(Default)]
pub(crate) struct DeploymentHealth {
    in_flight: AtomicU32,
    /// Exponentially weighted latency in microseconds; 0 until the first success.
    latency_ewma_us: AtomicU64,
    breaker: Mutex<Breaker>,
}

#[derive(Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// A trial request is out while half-open; others keep away until it reports.
    probing: bool,
}

impl DeploymentHealth {
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn latency_ms(&self) -> Option<f64> {
        match self.latency_ewma_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(us as f64 / 1e3),
        }
    }

    /// Whether the breaker is closed (the deployment is in rotation).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().open_until.is_none()
    }

    /// Whether a request may go to this deployment now; a half-open breaker lets exactly one through.
    pub(crate) fn try_acquire(&self, now: Instant) -> bool {
        let mut breaker = self.lock();
        match breaker.open_until {
            None => true,
            Some(until) if now >= until && !breaker.probing => {
                breaker.probing = true;
                true
            }
            Some(_) => false,
        }
    }

    /// Counts a request in flight; pair with [`DeploymentHealth::end`].
    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn record_success(&self, latency: Duration) {
        let sample = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.latency_ewma_us.load(Ordering::Relaxed);
        let new = if old == 0 { sample } else { (old * 4 + sample) / 5 };
        self.latency_ewma_us.store(new.max(1), Ordering::Relaxed);
        let mut breaker = self.lock();
        *breaker = Breaker::default();
    }

    pub(crate) fn record_failure(&self, now: Instant, config: &RoutingConfig) {
        let mut breaker = self.lock();
        breaker.consecutive_failures += 1;
        if breaker.probing || breaker.consecutive_failures >= config.breaker_failures.max(1) {
            breaker.open_until = Some(now + Duration::from_millis(config.breaker_cooldown_ms));
            breaker.probing = false;
        }
    }

    /// A request that ended without telling anything about the deployment's health (e.g. the client left).
    pub(crate) fn record_neutral(&self) {
        self.lock().probing = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The breaker's fields are plain values; a panic elsewhere cannot leave them inconsistent.
        self.breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What ordering needs to know of one deployment, borrowed from it: only `fleet` routing makes owned
/// [`Candidate`]s, for the advisor.
#[derive(Debug, Clone)]
pub(crate) struct RouteOption<'a> {
    pub(crate) deployment: &'a str,
    pub(crate) site: Option<&'a str>,
    pub(crate) weight: u32,
    pub(crate) in_flight: u32,
    pub(crate) latency_ms: Option<f64>,
    pub(crate) cost_micros_per_mtok: u64,
}

impl RouteOption<'_> {
    fn candidate(&self) -> Candidate {
        Candidate {
            deployment: self.deployment.to_owned(),
            site: self.site.map(str::to_owned),
            in_flight: self.in_flight,
            latency_ms: self.latency_ms,
        }
    }
}

/// The order in which to try one model's deployments, and the advisor's reason when it ranked them.
pub(crate) fn order(
    strategy: RoutingStrategy,
    query: &PlacementQuery,
    options: &[RouteOption],
    advisor: Option<&dyn PlacementAdvisor>,
) -> (Vec<usize>, Option<String>) {
    let mut indices: Vec<usize> = (0..options.len()).collect();
    match strategy {
        RoutingStrategy::Weighted => weighted_order(options, &mut indices),
        RoutingStrategy::LeastBusy => indices.sort_by_key(|&i| (options[i].in_flight, u32::MAX - options[i].weight)),
        RoutingStrategy::LowestLatency => indices.sort_by(|&a, &b| {
            let key = |i: usize| options[i].latency_ms.unwrap_or(0.0);
            key(a).total_cmp(&key(b))
        }),
        RoutingStrategy::LowestCost => indices.sort_by_key(|&i| options[i].cost_micros_per_mtok),
        RoutingStrategy::Fleet => match advisor {
            Some(advisor) => {
                let candidates: Vec<Candidate> = options.iter().map(RouteOption::candidate).collect();
                let ranking = advisor.rank(query, &candidates);
                let mut ranked: Vec<usize> = Vec::with_capacity(options.len());
                for index in ranking.order {
                    if index < options.len() && !ranked.contains(&index) {
                        ranked.push(index);
                    }
                }
                for index in indices {
                    if !ranked.contains(&index) {
                        ranked.push(index);
                    }
                }
                return (ranked, ranking.reason);
            }
            None => weighted_order(options, &mut indices),
        },
    }
    (indices, None)
}

/// Weighted random order: each next pick is drawn among the rest in proportion to weight (zero-weight
/// deployments only serve as a last resort).
fn weighted_order(options: &[RouteOption], indices: &mut Vec<usize>) {
    let mut remaining = std::mem::take(indices);
    while !remaining.is_empty() {
        let total: u64 = remaining.iter().map(|&i| u64::from(options[i].weight)).sum();
        let position = if total == 0 {
            0
        } else {
            let mut ticket = fastrand::u64(0..total);
            remaining
                .iter()
                .position(|&i| {
                    let weight = u64::from(options[i].weight);
                    if ticket < weight {
                        true
                    } else {
                        ticket -= weight;
                        false
                    }
                })
                .unwrap_or(0)
        };
        indices.push(remaining.remove(position));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn query() -> PlacementQuery {
        PlacementQuery {
            model: "m".to_owned(),
            ..PlacementQuery::default()
        }
    }

    fn option(weight: u32, in_flight: u32, latency_ms: Option<f64>, cost: u64) -> RouteOption<'static> {
        RouteOption {
            deployment: "",
            site: None,
            weight,
            in_flight,
            latency_ms,
            cost_micros_per_mtok: cost,
        }
    }

    #[test]
    fn strategies_order_as_named() {
        let options = [
            option(1, 5, Some(30.0), 300),
            option(1, 1, Some(10.0), 100),
            option(1, 3, None, 200),
        ];
        assert_eq!(order(RoutingStrategy::LeastBusy, &query(), &options, None).0, [1, 2, 0]);
        assert_eq!(
            order(RoutingStrategy::LowestLatency, &query(), &options, None).0,
            [2, 1, 0]
        );
        assert_eq!(
            order(RoutingStrategy::LowestCost, &query(), &options, None).0,
            [1, 2, 0]
        );
    }

    #[test]
    fn weighted_order_follows_the_weights() {
        let options = [option(1, 0, None, 0), option(3, 0, None, 0), option(0, 0, None, 0)];
        let mut first = [0u32; 3];
        for _ in 0..4000 {
            let ordered = order(RoutingStrategy::Weighted, &query(), &options, None).0;
            first[ordered[0]] += 1;
            assert_eq!(ordered[2], 2, "a zero weight goes last");
        }
        assert_eq!(first[2], 0);
        let share = f64::from(first[1]) / 4000.0;
        assert!((0.70..0.80).contains(&share), "{share}");
    }

    struct PreferLast;
    impl PlacementAdvisor for PreferLast {
        fn rank(&self, _query: &PlacementQuery, candidates: &[Candidate]) -> Ranking {
            Ranking {
                order: vec![candidates.len() - 1, 99],
                reason: Some("the last is best".to_owned()),
            }
        }

        fn explain(&self, _query: &PlacementQuery) -> Result<serde_json::Value, String> {
            Ok(serde_json::Value::Null)
        }
    }

    #[test]
    fn the_advisor_ranks_fleet_routing_and_nothing_is_lost() {
        let options = [option(1, 0, None, 0), option(1, 0, None, 0), option(1, 0, None, 0)];
        assert_eq!(
            order(RoutingStrategy::Fleet, &query(), &options, Some(&PreferLast)),
            (vec![2, 0, 1], Some("the last is best".to_owned()))
        );
    }

    #[test]
    fn a_breaker_opens_after_failures_and_lets_one_trial_through_after_the_cooldown() {
        let config = RoutingConfig {
            breaker_failures: 2,
            breaker_cooldown_ms: 1000,
            ..RoutingConfig::default()
        };
        let health = DeploymentHealth::default();
        let now = Instant::now();
        health.record_failure(now, &config);
        assert!(health.try_acquire(now));
        health.record_failure(now, &config);
        assert!(!health.try_acquire(now));
        let later = now + Duration::from_millis(1001);
        assert!(health.try_acquire(later));
        assert!(!health.try_acquire(later), "only one trial while half-open");
        health.record_failure(later, &config);
        assert!(!health.try_acquire(later + Duration::from_millis(10)));
        let much_later = later + Duration::from_millis(2000);
        assert!(health.try_acquire(much_later));
        health.record_success(Duration::from_millis(5));
        assert!(health.is_closed());
        assert!(health.try_acquire(much_later));
    }

    proptest! {
        /// Every strategy tries each deployment exactly once.
        #[test]
        fn orders_are_permutations(
            specs in proptest::collection::vec((0u32..5, 0u32..10, proptest::option::of(0.0f64..100.0), 0u64..1000), 0..8),
            strategy in prop_oneof![
                Just(RoutingStrategy::Weighted), Just(RoutingStrategy::LeastBusy),
                Just(RoutingStrategy::LowestLatency), Just(RoutingStrategy::LowestCost), Just(RoutingStrategy::Fleet)],
        ) {
            let options: Vec<RouteOption> = specs.into_iter().map(|(w, f, l, c)| option(w, f, l, c)).collect();
            let mut ordered = order(strategy, &query(), &options, None).0;
            ordered.sort_unstable();
            prop_assert_eq!(ordered, (0..options.len()).collect::<Vec<_>>());
        }

        #[test]
        fn backoff_stays_within_its_cap(pass in 1u32..40) {
            let config = RoutingConfig::default();
            let wait = config.backoff(pass);
            prop_assert!(wait <= Duration::from_millis(config.max_backoff_ms));
        }
    }
}
