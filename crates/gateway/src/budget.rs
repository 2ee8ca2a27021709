//! Budgets in micro-dollars per key and per tenant, over a period (all time, the UTC day or the UTC month).
//!
//! A request reserves its worst-case cost before it runs and settles to its real cost when it ends. Admission
//! counts spent plus reserved, so concurrent requests cannot jointly overspend: the only overshoot possible is a
//! request whose real cost exceeds its reservation. Spend is loaded from the ledger the first time a scope is
//! checked in a period and kept in memory after that, so checking costs no query. With Redis the spend and the
//! reservations live there instead, shared by every instance (see [`crate::shared`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::GatewayError;
use crate::ledger::UsageLedger;
use crate::shared::{Held, SharedState};

/// The period a budget covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// For the life of the key or tenant.
    #[default]
    Total,
    /// Each UTC day.
    Daily,
    /// Each UTC calendar month.
    Monthly,
}

impl BudgetPeriod {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Total => "total",
            BudgetPeriod::Daily => "daily",
            BudgetPeriod::Monthly => "monthly",
        }
    }

    /// Parses the stored name; unknown names are treated as `total`, the strictest reading.
    pub fn parse(name: &str) -> BudgetPeriod {
        match name {
            "daily" => BudgetPeriod::Daily,
            "monthly" => BudgetPeriod::Monthly,
            _ => BudgetPeriod::Total,
        }
    }

    /// The start of the period containing `now`, as the ledger's timestamp text (UTC, sortable).
    fn start(self, now: jiff::Timestamp) -> String {
        let date = jiff::tz::TimeZone::UTC.to_datetime(now).date();
        match self {
            BudgetPeriod::Total => "0000-01-01T00:00:00.000Z".to_owned(),
            BudgetPeriod::Daily => format!("{date}T00:00:00.000Z"),
            BudgetPeriod::Monthly => format!("{:04}-{:02}-01T00:00:00.000Z", date.year(), date.month()),
        }
    }
}

/// Whose money a budget limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    Key(String),
    Tenant(String),
}

impl Scope {
    fn label(&self) -> &'static str {
        match self {
            Scope::Key(_) => "key",
            Scope::Tenant(_) => "tenant",
        }
    }

    /// A name unique across scopes, for shared counters.
    fn shared_name(&self) -> String {
        match self {
            Scope::Key(id) => format!("key:{id}"),
            Scope::Tenant(name) => format!("tenant:{name}"),
        }
    }
}

/// One budget that applies to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BudgetLimit {
    pub(crate) scope: Scope,
    pub(crate) budget_micros: i64,
    pub(crate) period: BudgetPeriod,
}

#[derive(Debug)]
struct Spend {
    period_start: String,
    spent: i64,
    reserved: i64,
}

/// Money held for one request until it settles.
#[derive(Debug)]
pub(crate) struct Reservation {
    holds: Vec<(Scope, String)>,
    amount: i64,
    /// With shared budgets: the budgets' Redis keys and the hold's id.
    shared: Option<(Vec<String>, i64)>,
}

pub(crate) struct Budgets {
    ledger: UsageLedger,
    spends: Mutex<HashMap<Scope, Spend>>,
    shared: Option<Arc<SharedState>>,
}

fn micros_to_usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

impl Budgets {
    /// Budgets kept in this process (`shared` is `None`) or in Redis.
    pub(crate) fn new(ledger: UsageLedger, shared: Option<Arc<SharedState>>) -> Budgets {
        Budgets {
            ledger,
            spends: Mutex::new(HashMap::new()),
            shared,
        }
    }

    async fn spent_since(&self, scope: &Scope, start: &str) -> Result<i64, GatewayError> {
        match scope {
            Scope::Key(id) => self.ledger.spent_by_key_since(id, start).await,
            Scope::Tenant(name) => self.ledger.spent_by_tenant_since(name, start).await,
        }
        .map_err(|error| GatewayError::Internal(format!("reading spend from the ledger: {error}")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Scope, Spend>> {
        // Every update leaves the map consistent before it can panic, so a poisoned lock is still sound.
        self.spends.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `amount` against every limit, or refuses with the first limit it would break.
    pub(crate) async fn reserve(&self, limits: &[BudgetLimit], amount: i64) -> Result<Reservation, GatewayError> {
        if let Some(shared) = &self.shared {
            return self.reserve_shared(shared, limits, amount).await;
        }
        let now = jiff::Timestamp::now();
        for limit in limits {
            let start = limit.period.start(now);
            let known = self
                .lock()
                .get(&limit.scope)
                .is_some_and(|spend| spend.period_start == start);
            if !known {
                let spent = self.spent_since(&limit.scope, &start).await?;
                let mut spends = self.lock();
                let spend = spends.entry(limit.scope.clone()).or_insert_with(|| Spend {
                    period_start: start.clone(),
                    spent,
                    reserved: 0,
                });
                if spend.period_start != start {
                    spend.period_start = start;
                    spend.spent = spent;
                }
            }
        }
        let mut spends = self.lock();
        for limit in limits {
            let (spent, reserved) = spends
                .get(&limit.scope)
                .map_or((0, 0), |spend| (spend.spent, spend.reserved));
            let exhausted = spent >= limit.budget_micros;
            if exhausted || (amount > 0 && spent + reserved + amount > limit.budget_micros) {
                return Err(exceeded(limit, spent + reserved, amount));
            }
        }
        let mut holds = Vec::with_capacity(limits.len());
        for limit in limits {
            if let Some(spend) = spends.get_mut(&limit.scope) {
                spend.reserved += amount;
                holds.push((limit.scope.clone(), spend.period_start.clone()));
            }
        }
        Ok(Reservation {
            holds,
            amount,
            shared: None,
        })
    }

    async fn reserve_shared(
        &self,
        shared: &SharedState,
        limits: &[BudgetLimit],
        amount: i64,
    ) -> Result<Reservation, GatewayError> {
        let now = jiff::Timestamp::now();
        let starts: Vec<String> = limits.iter().map(|limit| limit.period.start(now)).collect();
        let keys: Vec<String> = limits
            .iter()
            .zip(&starts)
            .flat_map(|(limit, start)| shared.budget_keys(&limit.scope.shared_name(), start))
            .collect();
        let budgets: Vec<i64> = limits.iter().map(|limit| limit.budget_micros).collect();
        let hold_id = fastrand::i64(1..i64::MAX);
        let unavailable = |error: store::SharedError| GatewayError::SharedStateUnavailable(error.to_string());
        // Each pass either ends or loads one more budget's spend, so this ends.
        for _ in 0..=limits.len() {
            match shared
                .reserve(&keys, &budgets, amount, hold_id)
                .await
                .map_err(unavailable)?
            {
                Held::Yes => {
                    return Ok(Reservation {
                        holds: Vec::new(),
                        amount,
                        shared: Some((keys, hold_id)),
                    });
                }
                Held::Refused { index, committed } => {
                    let Some(limit) = limits.get(index) else { break };
                    return Err(exceeded(limit, committed, amount));
                }
                Held::Unloaded { index } => {
                    let (Some(limit), Some(start), Some(key)) =
                        (limits.get(index), starts.get(index), keys.get(2 * index))
                    else {
                        break;
                    };
                    let spent = self.spent_since(&limit.scope, start).await?;
                    shared.load_spend(key, spent).await.map_err(unavailable)?;
                }
            }
        }
        Err(GatewayError::SharedStateUnavailable(
            "the shared budgets answered out of turn".to_owned(),
        ))
    }

    /// Releases a reservation and books the request's real cost to every scope being tracked for `key_id` and
    /// `tenant` (tracked scopes must see all spend, even of requests that reserved nothing).
    pub(crate) async fn settle(&self, reservation: Option<Reservation>, key_id: Option<&str>, tenant: &str, cost: i64) {
        if let Some(shared) = &self.shared {
            // Shared budgets book cost only through reservations: a scope with a budget always reserves, and
            // one loaded later reads its spend from the ledger.
            if let Some((keys, hold_id)) = reservation.and_then(|reservation| reservation.shared)
                && let Err(error) = shared.settle(&keys, hold_id, cost).await
            {
                tracing::error!(%error, "could not settle a shared budget reservation; it expires by itself");
            }
            return;
        }
        let mut spends = self.lock();
        if let Some(reservation) = reservation {
            for (scope, _) in &reservation.holds {
                if let Some(spend) = spends.get_mut(scope) {
                    spend.reserved -= reservation.amount;
                }
            }
        }
        if cost == 0 {
            return;
        }
        let scopes = key_id
            .map(|id| Scope::Key(id.to_owned()))
            .into_iter()
            .chain(std::iter::once(Scope::Tenant(tenant.to_owned())));
        for scope in scopes {
            if let Some(spend) = spends.get_mut(&scope) {
                spend.spent += cost;
            }
        }
    }
}

fn exceeded(limit: &BudgetLimit, committed: i64, amount: i64) -> GatewayError {
    crate::metrics::record_limit_rejection("budget");
    GatewayError::BudgetExceeded {
        scope: limit.scope.label(),
        period: limit.period.as_str(),
        budget_usd: micros_to_usd(limit.budget_micros),
        spent_usd: micros_to_usd(committed),
        request_usd: micros_to_usd(amount),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use store::Database;

    use super::*;

    async fn budgets() -> Budgets {
        let db = Database::open_in_memory().await.unwrap();
        crate::schema::migrate(&db).await.unwrap();
        Budgets::new(UsageLedger::new(db), None)
    }

    fn key_limit(budget: i64) -> BudgetLimit {
        BudgetLimit {
            scope: Scope::Key("k".to_owned()),
            budget_micros: budget,
            period: BudgetPeriod::Total,
        }
    }

    #[tokio::test]
    async fn reservations_stop_concurrent_overspend() {
        let budgets = budgets().await;
        let limits = [key_limit(100)];
        let first = budgets.reserve(&limits, 60).await.unwrap();
        let second = budgets.reserve(&limits, 60).await;
        assert_eq!(second.err().unwrap().code(), "budget_exceeded");
        budgets.settle(Some(first), Some("k"), "t", 30).await;
        let third = budgets.reserve(&limits, 60).await.unwrap();
        budgets.settle(Some(third), Some("k"), "t", 60).await;
        let error = budgets.reserve(&limits, 11).await.err().unwrap();
        assert_eq!(error.status(), 402);
        assert!(error.to_string().contains("0.000090"), "{error}");
    }

    #[tokio::test]
    async fn free_requests_pass_until_the_budget_is_spent() {
        let budgets = budgets().await;
        let limits = [key_limit(10)];
        let free = budgets.reserve(&limits, 0).await.unwrap();
        budgets.settle(Some(free), Some("k"), "t", 10).await;
        assert!(budgets.reserve(&limits, 0).await.is_err());
    }

    #[test]
    fn periods_start_at_utc_boundaries() {
        let now: jiff::Timestamp = "2026-11-25T15:30:00Z".parse().unwrap();
        assert_eq!(BudgetPeriod::Daily.start(now), "2026-11-25T00:00:00.000Z");
        assert_eq!(BudgetPeriod::Monthly.start(now), "2026-11-01T00:00:00.000Z");
        assert_eq!(BudgetPeriod::parse("weekly"), BudgetPeriod::Total);
    }
}
