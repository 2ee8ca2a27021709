//! The usage ledger: one row per model request (completed, failed or cancelled), written by the gateway and by
//! nobody else. It is how every token spent anywhere in flywheel becomes measured demand.

use std::sync::Arc;

use serde::Serialize;
use store::{Backend, Database, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::budget::{Budgets, Reservation};
use crate::limits::Limiter;
use crate::traces::{SpanExporter, SpanFacts};

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
    /// The deployment that served it (the last one tried, for a failure); none when refused before routing.
    pub deployment: Option<String>,
    /// What it cost, in micro-dollars (integers: money is never a float here).
    pub cost_micros: i64,
    /// Attempts made across deployments (1 when the first succeeded).
    pub attempts: i64,
    /// `hit` or `miss` when the response cache was consulted.
    pub cache: Option<String>,
    /// The guardrails' verdict, when guardrails ran: `allow`, `redacted` or `blocked:<rule>`.
    pub guardrail: Option<String>,
    /// The product feature that made the call (`shopping-assistant`, `search`, an agent's name, or what an
    /// HTTP caller's `x-flywheel-feature` says), when known.
    pub feature: Option<String>,
    /// What the call's trace span needs; not stored.
    #[sqlx(skip)]
    #[serde(skip)]
    pub(crate) trace: SpanFacts,
}

impl UsageRecord {
    /// A row for a request starting now, to be completed when it ends.
    pub(crate) fn pending(request_id: String, account: &Account, model: &str, endpoint: &str) -> UsageRecord {
        UsageRecord {
            request_id,
            tenant: account.tenant.clone(),
            key_id: account.key_id.clone(),
            model: model.to_owned(),
            endpoint: endpoint.to_owned(),
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: 0.0,
            ttft_ms: None,
            status: String::new(),
            deployment: None,
            cost_micros: 0,
            attempts: 0,
            cache: None,
            guardrail: None,
            feature: account.feature.clone(),
            trace: SpanFacts {
                parent: account.trace_parent.clone(),
                ..SpanFacts::default()
            },
        }
    }

    /// Notes the deployment that served (or last failed) the call.
    pub(crate) fn served_by(&mut self, deployment: &crate::models::Deployment, attempts: u32) {
        self.deployment = Some(deployment.name.clone());
        self.attempts = i64::from(attempts);
        self.trace.provider = Some(deployment.provider);
        self.trace.upstream_model = Some(deployment.upstream_model.clone());
    }
}

/// Who a request is accounted to: a tenant, and the virtual key it came with (none for in-process callers and
/// for HTTP without auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) tenant: String,
    pub(crate) key_id: Option<String>,
    /// The product feature its calls are recorded under.
    pub(crate) feature: Option<String>,
    /// The caller's span, which the call's span joins.
    pub(crate) trace_parent: Option<opentelemetry::trace::SpanContext>,
}

/// Where finished requests go: the ledger row, the metrics, the tokens counted against the key's rate limits,
/// and the cost booked against budgets.
#[derive(Clone)]
pub(crate) struct UsageSink {
    pub(crate) ledger: UsageLedger,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) budgets: Arc<Budgets>,
    pub(crate) spans: SpanExporter,
}

impl UsageSink {
    /// Records one finished request; a failed write is logged, never surfaced to the client who was served.
    pub(crate) async fn write(&self, row: UsageRecord, reservation: Option<Reservation>) {
        self.account(&row, reservation).await;
        self.spans.export(&row);
        log_request(&row);
        self.ledger.record_soon(row).await;
    }

    /// The counters' side of finishing a request: limits, budgets and metrics, updated before the ledger row is
    /// queued so that the next request sees them even before the row is on disk.
    async fn account(&self, row: &UsageRecord, reservation: Option<Reservation>) {
        let tokens = u32::try_from(row.prompt_tokens + row.completion_tokens).unwrap_or(u32::MAX);
        if let Some(key_id) = &row.key_id {
            self.limiter.record_tokens(key_id, tokens).await;
        }
        self.limiter
            .record_tokens(&crate::limits::tenant_scope(&row.tenant), tokens)
            .await;
        self.budgets
            .settle(reservation, row.key_id.as_deref(), &row.tenant, row.cost_micros)
            .await;
        crate::metrics::record_model_request(row);
    }
}

/// The request log: one structured event per model call, with what the ledger row holds (never a secret or a
/// prompt). Target `requests`, so a log filter can turn it on or off by itself.
fn log_request(row: &UsageRecord) {
    tracing::info!(
        target: "requests",
        request_id = row.request_id,
        tenant = row.tenant,
        key_id = row.key_id.as_deref(),
        model = row.model,
        endpoint = row.endpoint,
        status = row.status,
        deployment = row.deployment.as_deref(),
        prompt_tokens = row.prompt_tokens,
        completion_tokens = row.completion_tokens,
        cost_micros = row.cost_micros,
        latency_ms = row.latency_ms,
        ttft_ms = row.ttft_ms,
        attempts = row.attempts,
        cache = row.cache.as_deref(),
        guardrail = row.guardrail.as_deref(),
        "model call"
    );
}

/// Writes and reads the ledger table. Finished requests are queued and written by one background task in
/// batches (one transaction per batch), so recording a request costs the request path a channel send, and a
/// burst of thousands of requests costs a handful of commits.
#[derive(Clone, Debug)]
pub struct UsageLedger {
    db: Database,
    queue: mpsc::Sender<Queued>,
}

#[derive(Debug)]
enum Queued {
    Row(Box<UsageRecord>),
    /// Answered once every row queued before it is on disk.
    Flush(oneshot::Sender<()>),
}

/// Rows waiting to be written before `record_soon` starts to wait for room.
const QUEUE_CAPACITY: usize = 65_536;
/// Rows per transaction at most.
const BATCH_ROWS: usize = 512;
/// How long the writer waits for more rows after the first of a batch: the longest a row sits in memory.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

impl UsageLedger {
    /// The ledger on `db`; the gateway's migrations must have run (see [`crate::Gateway::open`]). Starts the
    /// writer task, so it must be called inside a Tokio runtime.
    pub(crate) fn new(db: Database) -> UsageLedger {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_queued(db.clone(), receiver));
        UsageLedger { db, queue }
    }

    /// Appends one row now; a request id is recorded at most once, so a retry of the write cannot charge twice.
    pub async fn record(&self, row: &UsageRecord) -> Result<(), StoreError> {
        write_batch(&self.db, &[row]).await?;
        Ok(())
    }

    /// Queues one row for the writer task.
    pub(crate) async fn record_soon(&self, row: UsageRecord) {
        let queued = match self.queue.try_send(Queued::Row(Box::new(row))) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(queued)) => self.queue.send(queued).await.err(),
            Err(mpsc::error::TrySendError::Closed(queued)) => Some(mpsc::error::SendError(queued)),
        };
        // The writer is gone (shutting down): write this row directly rather than lose it.
        if let Some(mpsc::error::SendError(Queued::Row(row))) = queued
            && let Err(error) = self.record(&row).await
        {
            tracing::error!(request_id = row.request_id, %error, "failed to write the usage ledger");
        }
    }

    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        self.db.pool()
    }

    /// Waits until every row queued so far is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Queued::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Micro-dollars spent with a key since `since` (the ledger's UTC timestamp text).
    pub(crate) async fn spent_by_key_since(&self, key_id: &str, since: &str) -> Result<i64, StoreError> {
        let (spent,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage_ledger WHERE key_id = $1 AND created_at >= $2",
        )
        .bind(key_id)
        .bind(since)
        .fetch_one(self.db.pool())
        .await?;
        Ok(spent)
    }

    /// Micro-dollars spent by a tenant since `since`.
    pub(crate) async fn spent_by_tenant_since(&self, tenant: &str, since: &str) -> Result<i64, StoreError> {
        let (spent,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage_ledger WHERE tenant = $1 AND created_at >= $2",
        )
        .bind(tenant)
        .bind(since)
        .fetch_one(self.db.pool())
        .await?;
        Ok(spent)
    }

    /// The newest rows first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<UsageRecord>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT request_id, tenant, key_id, model, endpoint, prompt_tokens, completion_tokens, latency_ms, ttft_ms, status,
                    deployment, cost_micros, attempts, cache, guardrail, feature
             FROM usage_ledger ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows)
    }
}

/// The writer task: takes what is queued, up to a batch, and writes it in one transaction.
async fn write_queued(db: Database, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        // Linger briefly so that a steady trickle of requests shares one commit instead of waking the database
        // thread once per request; when a full batch is already waiting (the writer is behind), write at once.
        if !matches!(batch[0], Queued::Flush(_)) && receiver.len() + 1 < BATCH_ROWS {
            tokio::time::sleep(LINGER).await;
        }
        while batch.len() < BATCH_ROWS {
            match receiver.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let rows: Vec<&UsageRecord> = batch
            .iter()
            .filter_map(|queued| match queued {
                Queued::Row(row) => Some(row.as_ref()),
                Queued::Flush(_) => None,
            })
            .collect();
        if let Err(error) = write_batch(&db, &rows).await {
            tracing::error!(%error, rows = rows.len(), "failed to write a ledger batch; writing its rows one by one");
            for row in rows {
                if let Err(error) = write_batch(&db, &[row]).await {
                    tracing::error!(request_id = row.request_id, %error, "failed to write the usage ledger");
                }
            }
        }
        for queued in batch.drain(..) {
            if let Queued::Flush(done) = queued {
                let _ = done.send(());
            }
        }
    }
}

/// Columns written per row.
const COLUMNS: usize = 16;
/// Rows per INSERT statement: 2,048 parameters, well under SQLite's limit of 32,766 and PostgreSQL's of 65,535.
const ROWS_PER_STATEMENT: usize = 128;

/// `INSERT ... VALUES (...), (...) ...` for `rows` rows.
fn insert_statement(rows: usize, backend: Backend) -> String {
    format!(
        "INSERT INTO usage_ledger (request_id, tenant, key_id, model, endpoint, prompt_tokens, completion_tokens, \
         latency_ms, ttft_ms, status, deployment, cost_micros, attempts, cache, guardrail, feature) VALUES {} \
         ON CONFLICT (request_id) DO NOTHING",
        backend.values_placeholders(rows, COLUMNS)
    )
}

/// Writes rows in one transaction, many per statement: each statement is a round trip to the database, so
/// fewer, larger statements are what make thousands of rows per second cheap.
async fn write_batch(db: &Database, rows: &[&UsageRecord]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut transaction = db.pool().begin().await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_statement(chunk.len(), db.backend());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = query
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
                .bind(&row.deployment)
                .bind(row.cost_micros)
                .bind(row.attempts)
                .bind(&row.cache)
                .bind(&row.guardrail)
                .bind(&row.feature);
        }
        query.execute(&mut *transaction).await?;
    }
    transaction.commit().await
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
            deployment: Some("d".to_owned()),
            cost_micros: 7,
            attempts: 1,
            cache: None,
            guardrail: None,
            feature: None,
            trace: crate::traces::SpanFacts::default(),
        }
    }

    #[tokio::test]
    async fn queued_rows_are_written_in_batches_once_each() {
        let db = Database::open_in_memory().await.unwrap();
        crate::schema::migrate(&db).await.unwrap();
        let ledger = UsageLedger::new(db);
        for index in 0..700 {
            ledger.record_soon(row(&format!("r{}", index % 600))).await;
        }
        ledger.flush().await;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM usage_ledger")
            .fetch_one(ledger.pool())
            .await
            .unwrap();
        assert_eq!(count, 600);
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
