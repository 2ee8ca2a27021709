//! Usage reports over the ledger: requests, tokens, failures and latency, grouped by any of tenant, key, model,
//! endpoint, status, feature, day or hour, over a time range. Grouping columns come from a fixed list, never from the
//! request text, so a report query cannot be steered into arbitrary SQL.

use std::str::FromStr;

use serde::Serialize;
use store::StoreError;

use crate::GatewayError;
use crate::ledger::UsageLedger;

/// A column to group usage by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageDimension {
    /// The tenant that paid.
    Tenant,
    /// The virtual key used.
    Key,
    /// The model.
    Model,
    /// `chat.completions` or `embeddings`.
    Endpoint,
    /// `ok`, `cancelled` or an error code.
    Status,
    /// The product feature that made the call (empty when not told).
    Feature,
    /// The UTC day, `YYYY-MM-DD`.
    Day,
    /// The UTC hour, `YYYY-MM-DDTHH:00Z`.
    Hour,
}

impl UsageDimension {
    fn name(self) -> &'static str {
        match self {
            UsageDimension::Tenant => "tenant",
            UsageDimension::Key => "key",
            UsageDimension::Model => "model",
            UsageDimension::Endpoint => "endpoint",
            UsageDimension::Status => "status",
            UsageDimension::Feature => "feature",
            UsageDimension::Day => "day",
            UsageDimension::Hour => "hour",
        }
    }

    fn column(self) -> &'static str {
        match self {
            UsageDimension::Tenant => "tenant",
            UsageDimension::Key => "COALESCE(key_id, '')",
            UsageDimension::Model => "model",
            UsageDimension::Endpoint => "endpoint",
            UsageDimension::Status => "status",
            UsageDimension::Feature => "COALESCE(feature, '')",
            UsageDimension::Day => "substr(created_at, 1, 10)",
            UsageDimension::Hour => "substr(created_at, 1, 13) || ':00Z'",
        }
    }
}

impl FromStr for UsageDimension {
    type Err = GatewayError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            UsageDimension::Tenant,
            UsageDimension::Key,
            UsageDimension::Model,
            UsageDimension::Endpoint,
            UsageDimension::Status,
            UsageDimension::Feature,
            UsageDimension::Day,
            UsageDimension::Hour,
        ]
        .into_iter()
        .find(|dimension| dimension.name() == name)
        .ok_or_else(|| {
            GatewayError::invalid(
                "group_by",
                format!("cannot group by '{name}'; use tenant, key, model, endpoint, status, feature, day or hour"),
            )
        })
    }
}

/// One group of a usage report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageGroup {
    /// The group's value for each grouping column, by name.
    #[serde(flatten)]
    pub group: serde_json::Map<String, serde_json::Value>,
    /// Requests, whatever their outcome.
    pub requests: i64,
    /// Requests that did not end `ok`.
    pub failed: i64,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Mean latency, milliseconds.
    pub mean_latency_ms: f64,
    /// What the requests cost, micro-dollars.
    pub cost_micros: i64,
}

/// Parses a report bound: an RFC 3339 timestamp or a UTC date, into the ledger's timestamp text.
pub fn parse_bound(param: &str, text: &str) -> Result<String, GatewayError> {
    let timestamp = jiff::Timestamp::from_str(text)
        .or_else(|_| {
            jiff::civil::Date::from_str(text)
                .and_then(|date| jiff::tz::TimeZone::UTC.to_timestamp(date.to_datetime(jiff::civil::Time::midnight())))
        })
        .map_err(|_| {
            GatewayError::invalid(
                param,
                format!("'{param}' must be an RFC 3339 time or a date (YYYY-MM-DD), not '{text}'"),
            )
        })?;
    Ok(format!(
        "{}.{:03}Z",
        timestamp.strftime("%Y-%m-%dT%H:%M:%S"),
        timestamp.subsec_millisecond()
    ))
}

/// One answered model call, as a simulator replays it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerCall {
    /// When it was made (ledger timestamp text, RFC 3339 in UTC).
    pub created_at: String,
    /// The model asked for.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Completion tokens.
    pub completion_tokens: u32,
}

impl UsageLedger {
    /// The newest `limit` successful calls a model answered (not the cache) in `[from, to)`, oldest first.
    pub async fn calls(&self, from: &str, to: &str, limit: u32) -> Result<Vec<LedgerCall>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT created_at, model, prompt_tokens, completion_tokens FROM usage_ledger \
             WHERE status = 'ok' AND (cache IS NULL OR cache <> 'hit') AND created_at >= $1 AND created_at < $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(from)
        .bind(to)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let tokens = |count: i64| u32::try_from(count.max(0)).unwrap_or(u32::MAX);
        Ok(rows
            .into_iter()
            .rev()
            .map(|(created_at, model, prompt, completion)| LedgerCall {
                created_at,
                model,
                prompt_tokens: tokens(prompt),
                completion_tokens: tokens(completion),
            })
            .collect())
    }

    /// Usage grouped by `group_by` for rows created in `[from, to)` (ledger timestamp text; see [`parse_bound`]),
    /// most requests first.
    pub async fn report(
        &self,
        group_by: &[UsageDimension],
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<UsageGroup>, StoreError> {
        let columns: Vec<String> = group_by
            .iter()
            .enumerate()
            .map(|(index, dimension)| format!("{} AS g{index}", dimension.column()))
            .collect();
        let select_groups = if columns.is_empty() {
            String::new()
        } else {
            format!("{}, ", columns.join(", "))
        };
        let group_clause = if group_by.is_empty() {
            String::new()
        } else {
            format!(
                "GROUP BY {}",
                (0..group_by.len())
                    .map(|index| format!("g{index}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut bounds = Vec::new();
        if let Some(from) = from {
            bounds.push((">=", from));
        }
        if let Some(to) = to {
            bounds.push(("<", to));
        }
        let where_clause = if bounds.is_empty() {
            String::new()
        } else {
            let conditions: Vec<String> = bounds
                .iter()
                .enumerate()
                .map(|(index, (comparison, _))| format!("created_at {comparison} ${}", index + 1))
                .collect();
            format!("WHERE {}", conditions.join(" AND "))
        };
        // Sums are cast back to integers: PostgreSQL sums integers as NUMERIC.
        let sql = format!(
            "SELECT {select_groups} COUNT(*) AS requests,
                    CAST(SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS failed,
                    CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens,
                    CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens,
                    CAST(AVG(latency_ms) AS DOUBLE PRECISION) AS mean_latency_ms,
                    CAST(SUM(cost_micros) AS BIGINT) AS cost_micros
             FROM usage_ledger
             {where_clause}
             {group_clause}
             HAVING COUNT(*) > 0
             ORDER BY requests DESC"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, bound) in bounds {
            query = query.bind(bound);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut groups = Vec::with_capacity(rows.len());
        for row in rows {
            use sqlx::Row as _;
            let mut group = serde_json::Map::new();
            for (index, dimension) in group_by.iter().enumerate() {
                let value: String = row.try_get(index)?;
                group.insert(dimension.name().to_owned(), serde_json::Value::String(value));
            }
            groups.push(UsageGroup {
                group,
                requests: row.try_get("requests")?,
                failed: row.try_get::<Option<i64>, _>("failed")?.unwrap_or(0),
                prompt_tokens: row.try_get::<Option<i64>, _>("prompt_tokens")?.unwrap_or(0),
                completion_tokens: row.try_get::<Option<i64>, _>("completion_tokens")?.unwrap_or(0),
                mean_latency_ms: row.try_get::<Option<f64>, _>("mean_latency_ms")?.unwrap_or(0.0),
                cost_micros: row.try_get::<Option<i64>, _>("cost_micros")?.unwrap_or(0),
            });
        }
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ledger::UsageRecord;

    fn row(id: &str, tenant: &str, model: &str, status: &str) -> UsageRecord {
        UsageRecord {
            request_id: id.to_owned(),
            tenant: tenant.to_owned(),
            key_id: None,
            model: model.to_owned(),
            endpoint: "chat.completions".to_owned(),
            prompt_tokens: 10,
            completion_tokens: 5,
            latency_ms: 20.0,
            ttft_ms: None,
            status: status.to_owned(),
            deployment: None,
            cost_micros: 3,
            attempts: 1,
            cache: None,
            guardrail: None,
            feature: None,
            trace: crate::traces::SpanFacts::default(),
        }
    }

    #[tokio::test]
    async fn groups_and_ranges() {
        let db = store::Database::open_in_memory().await.unwrap();
        crate::schema::migrate(&db).await.unwrap();
        let ledger = UsageLedger::new(db);
        for (id, tenant, model, status) in [
            ("1", "a", "m", "ok"),
            ("2", "a", "m", "ok"),
            ("3", "a", "n", "invalid_request"),
            ("4", "b", "m", "ok"),
        ] {
            ledger.record(&row(id, tenant, model, status)).await.unwrap();
        }
        let by_tenant = ledger.report(&[UsageDimension::Tenant], None, None).await.unwrap();
        assert_eq!(by_tenant.len(), 2);
        assert_eq!(
            (
                by_tenant[0].group["tenant"].as_str(),
                by_tenant[0].requests,
                by_tenant[0].failed
            ),
            (Some("a"), 3, 1)
        );
        assert_eq!(by_tenant[0].prompt_tokens, 30);
        let by_both = ledger
            .report(&[UsageDimension::Tenant, UsageDimension::Model], None, None)
            .await
            .unwrap();
        assert_eq!(by_both.len(), 3);
        let total = ledger.report(&[], None, None).await.unwrap();
        assert_eq!(total[0].requests, 4);
        let future = parse_bound("from", "2999-01-01").unwrap();
        assert!(
            ledger
                .report(&[UsageDimension::Day], Some(&future), None)
                .await
                .unwrap()
                .is_empty()
        );
        let past = parse_bound("from", "2000-01-01T00:00:00Z").unwrap();
        assert_eq!(past, "2000-01-01T00:00:00.000Z");
        assert_eq!(
            ledger.report(&[], Some(&past), Some(&future)).await.unwrap()[0].requests,
            4
        );
    }

    #[tokio::test]
    async fn calls_are_the_answered_ones_oldest_first() {
        let db = store::Database::open_in_memory().await.unwrap();
        crate::schema::migrate(&db).await.unwrap();
        let ledger = UsageLedger::new(db);
        let mut hit = row("3", "a", "m", "ok");
        hit.cache = Some("hit".to_owned());
        for record in [
            row("1", "a", "m", "ok"),
            row("2", "a", "n", "upstream_error"),
            hit,
            row("4", "b", "n", "ok"),
        ] {
            ledger.record(&record).await.unwrap();
        }
        let from = parse_bound("from", "2000-01-01").unwrap();
        let to = parse_bound("to", "2999-01-01").unwrap();
        let calls = ledger.calls(&from, &to, 10).await.unwrap();
        assert_eq!(
            calls.iter().map(|call| call.model.as_str()).collect::<Vec<_>>(),
            ["m", "n"]
        );
        assert!(calls[0].created_at <= calls[1].created_at);
        assert_eq!(
            ledger.calls(&from, &to, 1).await.unwrap()[0].model,
            "n",
            "the newest are kept"
        );
    }

    #[test]
    fn bad_dimensions_and_bounds_are_400s() {
        assert_eq!("tenant".parse::<UsageDimension>().unwrap(), UsageDimension::Tenant);
        assert_eq!("user".parse::<UsageDimension>().unwrap_err().status(), 400);
        assert_eq!(parse_bound("to", "yesterday").unwrap_err().status(), 400);
    }
}
