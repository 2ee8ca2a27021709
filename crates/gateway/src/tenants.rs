//! Tenants' own limits: requests and tokens per minute and a budget that hold across all of a tenant's keys
//! (and its in-process clients). Tenants need no creating; a tenant without a row here has no limits of its
//! own. The table is small and read on every request, so it lives in memory and is written through.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use store::{Database, StoreError};

use crate::budget::BudgetPeriod;
use crate::chat::unix_seconds;

/// A tenant's limits; `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    /// Requests per minute over all its keys.
    pub rpm: Option<u32>,
    /// Tokens per minute over all its keys.
    pub tpm: Option<u32>,
    /// Spending limit in micro-dollars.
    pub budget_micros: Option<i64>,
    /// The period the budget covers.
    #[serde(default)]
    pub budget_period: BudgetPeriod,
}

/// The tenants table and its in-memory copy.
#[derive(Clone)]
pub(crate) struct TenantStore {
    db: Database,
    limits: Arc<RwLock<HashMap<String, TenantLimits>>>,
}

type TenantRow = (String, Option<i64>, Option<i64>, Option<i64>, String);

impl TenantStore {
    /// Loads every tenant's limits.
    pub(crate) async fn load(db: Database) -> Result<TenantStore, StoreError> {
        let limits = read_all(&db).await?;
        Ok(TenantStore {
            db,
            limits: Arc::new(RwLock::new(limits)),
        })
    }

    /// Re-reads the table every `period`, for as long as the store is in use, so that changes made by other
    /// instances sharing the database show up here.
    pub(crate) fn refresh_every(&self, period: std::time::Duration) {
        let db = self.db.clone();
        let limits = Arc::downgrade(&self.limits);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(limits) = limits.upgrade() else { return };
                match read_all(&db).await {
                    Ok(fresh) => *limits.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh,
                    Err(error) => tracing::warn!(%error, "could not refresh tenants' limits"),
                }
            }
        });
    }

    pub(crate) fn get(&self, tenant: &str) -> Option<TenantLimits> {
        self.limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
            .cloned()
    }

    pub(crate) fn list(&self) -> Vec<(String, TenantLimits)> {
        let limits = self.limits.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all: Vec<(String, TenantLimits)> = limits
            .iter()
            .map(|(name, limits)| (name.clone(), limits.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Sets a tenant's limits (replacing any before).
    pub(crate) async fn set(&self, tenant: &str, limits: TenantLimits) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (name, rpm, tpm, budget_micros, budget_period, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET rpm = excluded.rpm, tpm = excluded.tpm,
                 budget_micros = excluded.budget_micros, budget_period = excluded.budget_period,
                 updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(limits.rpm.map(i64::from))
        .bind(limits.tpm.map(i64::from))
        .bind(limits.budget_micros)
        .bind(limits.budget_period.as_str())
        .bind(unix_seconds())
        .execute(self.db.pool())
        .await?;
        self.limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tenant.to_owned(), limits);
        Ok(())
    }

    /// Removes a tenant's limits; returns whether it had any.
    pub(crate) async fn remove(&self, tenant: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(tenant)
            .execute(self.db.pool())
            .await?;
        self.limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(tenant);
        Ok(deleted.rows_affected() > 0)
    }
}

async fn read_all(db: &Database) -> Result<HashMap<String, TenantLimits>, StoreError> {
    let rows: Vec<TenantRow> = sqlx::query_as("SELECT name, rpm, tpm, budget_micros, budget_period FROM tenants")
        .fetch_all(db.pool())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, rpm, tpm, budget_micros, period)| {
            let limits = TenantLimits {
                rpm: rpm.and_then(|n| u32::try_from(n).ok()),
                tpm: tpm.and_then(|n| u32::try_from(n).ok()),
                budget_micros,
                budget_period: BudgetPeriod::parse(&period),
            };
            (name, limits)
        })
        .collect())
}
