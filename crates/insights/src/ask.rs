//! Ask-your-data: a question in plain language about the platform's own data becomes a [`Question`] (a metric,
//! up to two groupings, a period, an order and a limit), which becomes one read-only SQL query over the
//! documented tables (`docs/ask.md`), run with a timeout and a row limit.
//!
//! The question is read either by rules ([`read_by_rules`], deterministic) or by a model constrained to
//! [`question_schema`]; either way the SQL comes from fixed templates, never from the question's text, so a
//! question cannot write, read another table or run long. What the templates cannot answer is said plainly.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use store::{Backend, Database};

use crate::InsightsError;

/// The most rows an answer holds.
pub const MAX_ROWS: u32 = 50;

/// How long a query may run.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Model calls.
    Requests,
    /// Prompt plus output tokens.
    Tokens,
    /// Prompt tokens.
    PromptTokens,
    /// Output tokens.
    OutputTokens,
    /// What model calls cost, USD.
    CostUsd,
    /// Model calls that did not end `ok`.
    FailedRequests,
    /// Mean latency of model calls, ms.
    MeanLatencyMs,
    /// Shopper events (searches, views, carts, orders).
    ShopperEvents,
    /// The question is not about any of these.
    Unanswerable,
}

/// A grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The model (model calls only).
    Model,
    /// The tenant (model calls only).
    Tenant,
    /// The product feature that made the call (model calls only).
    Feature,
    /// The UTC day.
    Day,
    /// The UTC hour.
    Hour,
    /// The kind of shopper event (shopper events only).
    EventKind,
}

/// The time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Since midnight UTC.
    Today,
    /// The previous UTC day.
    Yesterday,
    /// The last 24 hours.
    #[serde(rename = "last_24_hours")]
    Last24Hours,
    /// The last 7 days.
    #[serde(rename = "last_7_days")]
    Last7Days,
    /// The last 30 days.
    #[serde(rename = "last_30_days")]
    Last30Days,
    /// Everything recorded.
    AllTime,
}

/// Largest or smallest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Largest first.
    Most,
    /// Smallest first.
    Least,
}

/// A kind of shopper event, to count only those: the `kind` values docs/ask.md documents for `commerce_events`
/// (this crate reads the table through its documented columns and does not depend on `commerce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Searches.
    Search,
    /// Product views.
    View,
    /// Adds to cart.
    Cart,
    /// Orders.
    Order,
    /// Turns with the shopping assistant and questions on product pages.
    Assistant,
}

impl EventKind {
    fn name(self) -> &'static str {
        match self {
            EventKind::Search => "search",
            EventKind::View => "view",
            EventKind::Cart => "cart",
            EventKind::Order => "order",
            EventKind::Assistant => "assistant",
        }
    }
}

/// A question, read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// What is measured.
    pub metric: Metric,
    /// Only this kind of shopper event.
    #[serde(default)]
    pub event_kind: Option<EventKind>,
    /// Up to two groupings.
    #[serde(default)]
    pub group_by: Vec<GroupBy>,
    /// The range.
    pub period: Period,
    /// Largest or smallest first.
    pub order: Order,
    /// Rows, 1 to [`MAX_ROWS`].
    pub limit: u32,
}

/// The JSON Schema a model's reading of a question must follow (for `response_format: json_schema`).
pub fn question_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "metric": {"enum": ["requests", "tokens", "prompt_tokens", "output_tokens", "cost_usd",
                "failed_requests", "mean_latency_ms", "shopper_events", "unanswerable"]},
            "event_kind": {"enum": ["search", "view", "cart", "order", "assistant", null]},
            "group_by": {"type": "array", "maxItems": 2,
                "items": {"enum": ["model", "tenant", "feature", "day", "hour", "event_kind"]}},
            "period": {"enum": ["today", "yesterday", "last_24_hours", "last_7_days", "last_30_days", "all_time"]},
            "order": {"enum": ["most", "least"]},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS}
        },
        "required": ["metric", "event_kind", "group_by", "period", "order", "limit"],
        "additionalProperties": false
    })
}

/// Why a question cannot be answered, or `Ok` when it can.
pub fn check(question: &Question) -> Result<(), String> {
    if question.metric == Metric::Unanswerable {
        return Err(
            "I can answer questions about model calls (requests, tokens, cost, failures, latency per model, \
                    tenant, feature, day or hour) and shopper events (searches, views, carts, orders, assistant turns per kind, day or hour)."
                .to_owned(),
        );
    }
    let shopper = question.metric == Metric::ShopperEvents;
    for group in &question.group_by {
        match (group, shopper) {
            (GroupBy::Model | GroupBy::Tenant | GroupBy::Feature, true) => {
                return Err(
                    "shopper events have no model, tenant or feature; group them by kind, day or hour".to_owned(),
                );
            }
            (GroupBy::EventKind, false) => {
                return Err("model calls have no event kind; group them by model, tenant, day or hour".to_owned());
            }
            _ => {}
        }
    }
    if question.event_kind.is_some() && !shopper {
        return Err("an event kind only narrows shopper events".to_owned());
    }
    if question.group_by.len() > 2 || (question.group_by.len() == 2 && question.group_by[0] == question.group_by[1]) {
        return Err("group by at most two different things".to_owned());
    }
    if !(1..=MAX_ROWS).contains(&question.limit) {
        return Err(format!("the limit must be 1 to {MAX_ROWS}"));
    }
    Ok(())
}

/// One row of an answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerRow {
    /// The group's values, in `group_by` order (empty without grouping).
    pub labels: Vec<String>,
    /// The metric.
    pub value: f64,
}

/// A question's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// How the question was read.
    pub question: Question,
    /// The query that ran (its bounds bound as parameters).
    pub sql: String,
    /// Column names: the groupings, then the metric.
    pub columns: Vec<String>,
    /// The rows, in the asked order.
    pub rows: Vec<AnswerRow>,
    /// One sentence.
    pub summary: String,
}

/// Reads a question by keyword rules: deterministic, and what the evaluation runs in CI.
pub fn read_by_rules(text: &str) -> Question {
    let text = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|word| text.contains(word));
    let event_kind = if has(&[
        "assistant turn",
        "asked the assistant",
        "assistant question",
        "questions to the assistant",
    ]) {
        Some(EventKind::Assistant)
    } else if has(&["search"]) {
        Some(EventKind::Search)
    } else if has(&["view", "looked at"]) {
        Some(EventKind::View)
    } else if has(&["cart"]) {
        Some(EventKind::Cart)
    } else if has(&["order", "purchase", "bought"]) {
        Some(EventKind::Order)
    } else {
        None
    };
    let metric = if has(&["cost", "spend", "spent", "expensive", "dollar", "money", "cheap"]) {
        Metric::CostUsd
    } else if has(&["prompt token", "input token"]) {
        Metric::PromptTokens
    } else if has(&["output token", "completion token", "generated"]) {
        Metric::OutputTokens
    } else if has(&["token"]) {
        Metric::Tokens
    } else if has(&["fail", "error"]) {
        Metric::FailedRequests
    } else if has(&["latency", "slow", "fast", "response time"]) {
        Metric::MeanLatencyMs
    } else if event_kind.is_some() || has(&["shopper", "event", "shopping"]) {
        Metric::ShopperEvents
    } else if has(&["request", "call", "traffic", "usage", "busy"]) {
        Metric::Requests
    } else {
        Metric::Unanswerable
    };
    // A grouping needs a cue ("per model", "which tenant", "daily"), and groupings keep the order they are named in.
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect();
    let cue = |index: usize| index > 0 && ["per", "by", "each", "which", "what", "every"].contains(&words[index - 1]);
    let mut named: Vec<(usize, GroupBy)> = Vec::new();
    for (index, word) in words.iter().enumerate() {
        let by = match *word {
            "model" | "models" if cue(index) => Some(GroupBy::Model),
            "tenant" | "tenants" | "customer" | "customers" | "team" | "teams" if cue(index) => Some(GroupBy::Tenant),
            "feature" | "features" if cue(index) => Some(GroupBy::Feature),
            "day" if cue(index) => Some(GroupBy::Day),
            "daily" => Some(GroupBy::Day),
            "hour" if cue(index) => Some(GroupBy::Hour),
            "hourly" => Some(GroupBy::Hour),
            "kind" | "type" if cue(index) => Some(GroupBy::EventKind),
            _ => None,
        };
        if let Some(by) = by
            && !named.iter().any(|(_, known)| *known == by)
        {
            named.push((index, by));
        }
    }
    let group_by: Vec<GroupBy> = named.into_iter().take(2).map(|(_, by)| by).collect();
    let period = if has(&["yesterday"]) {
        Period::Yesterday
    } else if has(&["today"]) {
        Period::Today
    } else if has(&["24 hours", "last day", "past day"]) {
        Period::Last24Hours
    } else if has(&["week", "7 days", "seven days"]) {
        Period::Last7Days
    } else if has(&["month", "30 days", "thirty days"]) {
        Period::Last30Days
    } else {
        Period::AllTime
    };
    let order = if words
        .iter()
        .any(|word| ["least", "lowest", "fewest", "smallest", "cheapest", "fastest"].contains(word))
    {
        Order::Least
    } else {
        Order::Most
    };
    let single = has(&["which ", "what model", "what tenant", "top "]) && !has(&["per ", "each", "by "]);
    Question {
        metric,
        event_kind: if metric == Metric::ShopperEvents {
            event_kind
        } else {
            None
        },
        group_by,
        period,
        order,
        limit: if single { 1 } else { 10 },
    }
}

/// Bounds of `period` ending at `now`: (unix ms from, unix ms to).
fn bounds(period: Period, now: jiff::Timestamp) -> (i64, i64) {
    let now_ms = now.as_millisecond();
    const DAY_MS: i64 = 86_400_000;
    let midnight = now_ms - now_ms.rem_euclid(DAY_MS);
    match period {
        Period::Today => (midnight, now_ms + 1),
        Period::Yesterday => (midnight - DAY_MS, midnight),
        Period::Last24Hours => (now_ms - DAY_MS, now_ms + 1),
        Period::Last7Days => (now_ms - 7 * DAY_MS, now_ms + 1),
        Period::Last30Days => (now_ms - 30 * DAY_MS, now_ms + 1),
        Period::AllTime => (0, i64::MAX / 2),
    }
}

/// The ledger's timestamp text for unix milliseconds.
fn ledger_time(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms.min(253_402_300_799_000)).map_or_else(
        |_| "9999-12-31T23:59:59.999Z".to_owned(),
        |at| format!("{}.{:03}Z", at.strftime("%Y-%m-%dT%H:%M:%S"), at.subsec_millisecond()),
    )
}

fn group_column(group: GroupBy, backend: Backend) -> &'static str {
    match (group, backend) {
        (GroupBy::Model, _) => "model",
        (GroupBy::Tenant, _) => "tenant",
        (GroupBy::Feature, _) => "''",
        (GroupBy::EventKind, _) => "kind",
        (GroupBy::Day, Backend::Sqlite) => "strftime('%Y-%m-%d', at / 1000, 'unixepoch')",
        (GroupBy::Day, Backend::Postgres) => "to_char(to_timestamp(at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        (GroupBy::Hour, Backend::Sqlite) => "strftime('%Y-%m-%dT%H:00Z', at / 1000, 'unixepoch')",
        (GroupBy::Hour, Backend::Postgres) => {
            "to_char(to_timestamp(at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00\"Z\"')"
        }
    }
}

fn ledger_group_column(group: GroupBy) -> &'static str {
    match group {
        GroupBy::Day => "substr(created_at, 1, 10)",
        GroupBy::Hour => "substr(created_at, 1, 13) || ':00Z'",
        GroupBy::Model => "model",
        GroupBy::Tenant => "tenant",
        GroupBy::Feature => "COALESCE(feature, '')",
        GroupBy::EventKind => "''",
    }
}

/// The SQL for a checked question: the period's bounds are `$1` and `$2`, the event kind `$3`.
fn sql(question: &Question, backend: Backend) -> String {
    let shopper = question.metric == Metric::ShopperEvents;
    let groups: Vec<String> = question
        .group_by
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let column = if shopper {
                group_column(*group, backend)
            } else {
                ledger_group_column(*group)
            };
            format!("CAST({column} AS TEXT) AS g{index}")
        })
        .collect();
    let aggregate = match question.metric {
        Metric::Requests | Metric::ShopperEvents | Metric::Unanswerable => "COUNT(*)",
        Metric::Tokens => "SUM(prompt_tokens + completion_tokens)",
        Metric::PromptTokens => "SUM(prompt_tokens)",
        Metric::OutputTokens => "SUM(completion_tokens)",
        Metric::CostUsd => "SUM(cost_micros) / 1000000.0",
        Metric::FailedRequests => "SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END)",
        Metric::MeanLatencyMs => "AVG(latency_ms)",
    };
    let (table, range) = if shopper {
        ("commerce_events", "at >= $1 AND at < $2")
    } else {
        ("usage_ledger", "created_at >= $1 AND created_at < $2")
    };
    let kind = if shopper && question.event_kind.is_some() {
        " AND kind = $3"
    } else {
        ""
    };
    let select_groups = groups.iter().map(|group| format!("{group}, ")).collect::<String>();
    let group_clause = if groups.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = (0..groups.len()).map(|index| format!("g{index}")).collect();
        format!(" GROUP BY {}", names.join(", "))
    };
    let direction = match question.order {
        Order::Most => "DESC",
        Order::Least => "ASC",
    };
    format!(
        "SELECT {select_groups}CAST(COALESCE({aggregate}, 0) AS DOUBLE PRECISION) AS value FROM {table} \
         WHERE {range}{kind}{group_clause} ORDER BY value {direction} LIMIT {}",
        question.limit
    )
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Requests => "requests",
        Metric::Tokens => "tokens",
        Metric::PromptTokens => "prompt tokens",
        Metric::OutputTokens => "output tokens",
        Metric::CostUsd => "cost (USD)",
        Metric::FailedRequests => "failed requests",
        Metric::MeanLatencyMs => "mean latency (ms)",
        Metric::ShopperEvents => "shopper events",
        Metric::Unanswerable => "",
    }
}

fn group_name(group: GroupBy) -> &'static str {
    match group {
        GroupBy::Model => "model",
        GroupBy::Tenant => "tenant",
        GroupBy::Feature => "feature",
        GroupBy::Day => "day",
        GroupBy::Hour => "hour",
        GroupBy::EventKind => "event kind",
    }
}

/// Runs a checked question against `db` as of `now`, read-only (in a transaction that is rolled back), within
/// a timeout.
pub async fn answer(db: &Database, question: &Question, now: jiff::Timestamp) -> Result<Answer, InsightsError> {
    check(question).map_err(InsightsError::Unanswerable)?;
    let backend = db.backend();
    let sql = sql(question, backend);
    let (from_ms, to_ms) = bounds(question.period, now);
    let run = async {
        let mut transaction = db.pool().begin().await?;
        if backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION READ ONLY")
                .execute(&mut *transaction)
                .await?;
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
        query = if question.metric == Metric::ShopperEvents {
            query.bind(from_ms).bind(to_ms)
        } else {
            query.bind(ledger_time(from_ms)).bind(ledger_time(to_ms))
        };
        if let (Metric::ShopperEvents, Some(kind)) = (question.metric, question.event_kind) {
            query = query.bind(kind.name());
        }
        let rows = query.fetch_all(&mut *transaction).await?;
        transaction.rollback().await?;
        Ok::<_, sqlx::Error>(rows)
    };
    let rows = tokio::time::timeout(QUERY_TIMEOUT, run)
        .await
        .map_err(|_| InsightsError::Query(format!("the query ran past {} s", QUERY_TIMEOUT.as_secs())))?
        .map_err(|error| InsightsError::Query(error.to_string()))?;
    let mut answer_rows = Vec::with_capacity(rows.len());
    for row in rows {
        let mut labels = Vec::with_capacity(question.group_by.len());
        for index in 0..question.group_by.len() {
            let label: Option<String> = row
                .try_get(index)
                .map_err(|error| InsightsError::Query(error.to_string()))?;
            labels.push(label.unwrap_or_default());
        }
        let value: f64 = row
            .try_get("value")
            .map_err(|error| InsightsError::Query(error.to_string()))?;
        answer_rows.push(AnswerRow { labels, value });
    }
    // Without grouping an aggregate over no rows is still one row (0); with grouping, no rows means nothing.
    let summary = summary(question, &answer_rows);
    let mut columns: Vec<String> = question
        .group_by
        .iter()
        .map(|group| group_name(*group).to_owned())
        .collect();
    columns.push(metric_name(question.metric).to_owned());
    Ok(Answer {
        question: question.clone(),
        sql,
        columns,
        rows: answer_rows,
        summary,
    })
}

fn summary(question: &Question, rows: &[AnswerRow]) -> String {
    let metric = match question.event_kind {
        Some(EventKind::Search) => "searches",
        Some(EventKind::View) => "product views",
        Some(EventKind::Cart) => "adds to cart",
        Some(EventKind::Order) => "orders",
        Some(EventKind::Assistant) => "assistant turns",
        None => metric_name(question.metric),
    };
    let period = serde_json::to_value(question.period)
        .ok()
        .and_then(|value| value.as_str().map(|text| text.replace('_', " ")))
        .unwrap_or_default();
    match rows.first() {
        None => format!("Nothing was recorded ({period})."),
        Some(row) if row.labels.is_empty() => format!("{metric}, {period}: {}", figure(row.value)),
        Some(row) => {
            let superlative = match question.order {
                Order::Most => "most",
                Order::Least => "least",
            };
            format!(
                "{} had the {superlative} {metric} ({period}): {}",
                row.labels.join(" / "),
                figure(row.value)
            )
        }
    }
}

fn figure(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.4}")
    }
}

/// One question of an evaluation set, with the reading its answer needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalItem {
    /// The question.
    pub question: String,
    /// The reading, or the string `"unanswerable"`.
    pub expected: Expected,
}

/// What a question should be read as.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    /// This reading.
    Reading(Question),
    /// Nothing the tables hold (the string `"unanswerable"`).
    Unanswerable(String),
}

/// How a reader did on a question set.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Questions.
    pub total: usize,
    /// Read as expected (or refused when they should be).
    pub correct: usize,
    /// The others: the question and what the reader made of it.
    pub misses: Vec<(String, String)>,
}

impl Evaluation {
    /// `correct / total`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }
}

/// Scores the readings `read` gives: a question is right when read exactly as expected, or, when it should be
/// unanswerable, when its reading is refused by [`check`].
pub fn evaluate(items: &[EvalItem], mut read: impl FnMut(&str) -> Question) -> Evaluation {
    let mut evaluation = Evaluation {
        total: items.len(),
        correct: 0,
        misses: Vec::new(),
    };
    for item in items {
        let reading = read(&item.question);
        let right = match &item.expected {
            Expected::Reading(expected) => &reading == expected,
            Expected::Unanswerable(_) => check(&reading).is_err(),
        };
        if right {
            evaluation.correct += 1;
        } else {
            let shown = serde_json::to_string(&reading).unwrap_or_default();
            evaluation.misses.push((item.question.clone(), shown));
        }
    }
    evaluation
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_example_question_is_read_as_cost_per_model_and_tenant_last_week() {
        let question = read_by_rules("Which model cost most last week per tenant?");
        assert_eq!(question.metric, Metric::CostUsd);
        assert_eq!(question.group_by, vec![GroupBy::Model, GroupBy::Tenant]);
        assert_eq!(question.period, Period::Last7Days);
        assert_eq!(question.order, Order::Most);
        assert!(check(&question).is_ok());
    }

    #[test]
    fn questions_about_other_things_are_unanswerable() {
        let question = read_by_rules("What will the weather be tomorrow?");
        assert_eq!(question.metric, Metric::Unanswerable);
        assert!(check(&question).is_err());
        let question = read_by_rules("How many searches per model?");
        assert!(check(&question).unwrap_err().contains("no model"));
    }

    #[test]
    fn the_sql_is_one_select_from_fixed_parts() {
        let question = read_by_rules("How many orders per day this month?");
        let text = sql(&question, Backend::Sqlite);
        assert!(text.starts_with("SELECT "), "{text}");
        assert!(
            text.contains("FROM commerce_events") && text.contains("kind = $3"),
            "{text}"
        );
        assert!(!text.contains(';'));
    }

    #[test]
    fn the_rule_reader_reads_the_question_set() {
        let items: Vec<EvalItem> = serde_json::from_str(include_str!("../../../data/ask/questions.json")).unwrap();
        let evaluation = evaluate(&items, read_by_rules);
        assert!(evaluation.accuracy() >= 0.9, "{evaluation:#?}");
    }

    #[test]
    fn the_schema_names_every_metric_and_period() {
        let schema = question_schema();
        assert_eq!(schema["properties"]["metric"]["enum"].as_array().unwrap().len(), 9);
        let question: Question = serde_json::from_value(serde_json::json!({
            "metric": "tokens", "event_kind": null, "group_by": ["hour"], "period": "today",
            "order": "least", "limit": 3
        }))
        .unwrap();
        assert!(check(&question).is_ok());
    }
}
