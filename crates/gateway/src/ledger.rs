//! The usage ledger: one row per model request (completed, failed or cancelled), written by the gateway and by
//! nobody else. It is how every token spent anywhere in flywheel becomes measured demand.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use store::{Database, StoreError};

use crate::limits::RateLimiter;

/// One ledger row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UsageRecord {
    /// The id returned to the client (`chatcmpl-...`, `embd-...`).
    pub request_id: String,
    /// Who spent the tokens.
    pub tenant: String,
    /// The virtual key used, if any.
    pub key_id: Option<String>,
    /// The model as the client named it.
    pub model: String,
    /// `chat.completions` or `embeddings`.
    pub endpoint: String,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// From the request's arrival to its last byte (or its failure).
    pub latency_ms: f64,
    /// Time to the first generated token, for chat.
    pub ttft_ms: Option<f64>,
    /// `ok`, `cancelled`, or the error code of a failed request.
    pub status: String,
}

/// Who a request is accounted to: a tenant, and the virtual key it came with (none for in-process callers and
/// for HTTP without auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) tenant: String,
    pub(crate) key_id: Option<String>,
}

/// Where finished requests go: the ledger row, and the tokens counted against the key's rate limits.
#[derive(Clone)]
pub(crate) struct UsageSink {
    pub(crate) ledger: UsageLedger,
    pub(crate) limiter: Arc<RateLimiter>,
}

impl UsageSink {
    /// Records one finished request; a failed write is logged, never surfaced to the client who was served.
    pub(crate) async fn write(&self, row: UsageRecord) {
        if let Some(key_id) = &row.key_id {
            let tokens = u32::try_from(row.prompt_tokens + row.completion_tokens).unwrap_or(u32::MAX);
            self.limiter.record_tokens(key_id, tokens, Instant::now());
        }
        if let Err(error) = self.ledger.record(&row).await {
            tracing::error!(request_id = row.request_id, %error, "failed to write the usage ledger");
        }
    }
}

/// Writes and reads the ledger table.
#[derive(Clone, Debug)]
pub struct UsageLedger {
    db: Database,
}

impl UsageLedger {
    /// The ledger on `db`; the gateway's migrations must have run (see [`crate::Gateway::open`]).
    pub(crate) fn new(db: Database) -> UsageLedger {
        UsageLedger { db }
    }

    /// Appends one row; a request id is recorded at most once, so a retry of the write cannot charge twice.
    pub async fn record(&self, row: &UsageRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO usage_ledger
                (request_id, tenant, key_id, model, endpoint, prompt_tokens, completion_tokens, latency_ms, ttft_ms,
                 status)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(&row.request_id)
        .bind(&row.tenant)
        .bind(&row.key_id)
        .bind(&row.model)
        .bind(&row.endpoint)
        .bind(row.prompt_tokens)
        .bind(row.completion_tokens)
        .bind(row.latency_ms)
        .bind(row.ttft_ms)
        .bind(&row.status)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &sqlx::SqlitePool {
        self.db.pool()
    }

    /// The newest rows first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<UsageRecord>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT request_id, tenant, key_id, model, endpoint, prompt_tokens, completion_tokens, latency_ms, ttft_ms, status
             FROM usage_ledger ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(id: &str) -> UsageRecord {
        UsageRecord {
            request_id: id.to_owned(),
            tenant: "t".to_owned(),
            key_id: None,
            model: "m".to_owned(),
            endpoint: "chat.completions".to_owned(),
            prompt_tokens: 10,
            completion_tokens: 5,
            latency_ms: 12.5,
            ttft_ms: Some(3.0),
            status: "ok".to_owned(),
        }
    }

    #[tokio::test]
    async fn records_each_request_once() {
        let db = Database::open_in_memory().await.unwrap();
        crate::schema::migrate(&db).await.unwrap();
        let ledger = UsageLedger::new(db);
        ledger.record(&row("a")).await.unwrap();
        ledger.record(&row("a")).await.unwrap();
        ledger.record(&row("b")).await.unwrap();
        let rows = ledger.recent(10).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(rows[1].ttft_ms, Some(3.0));
    }
}
