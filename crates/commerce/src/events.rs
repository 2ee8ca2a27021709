//! Shopper events and what the store learns from them without anyone asking: searches become autocomplete
//! suggestions, product views and orders within a shopping session become "customers also viewed / bought".
//! Events are queued and written in batches by one task, so recording costs a request a channel send; a full
//! queue drops the event (they are signals, not records of money).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use store::{Database, Migration};
use tokio::sync::mpsc;

use crate::CommerceError;

const SCHEMA: &str = "CREATE TABLE commerce_events (
        id TEXT PRIMARY KEY,
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        session TEXT NOT NULL,
        query TEXT,
        product_id TEXT
    );
    CREATE INDEX commerce_events_product ON commerce_events (kind, product_id);
    CREATE INDEX commerce_events_session ON commerce_events (session);
    CREATE INDEX commerce_events_at ON commerce_events (at);";

const MIGRATIONS: &[Migration] = &[Migration::portable(1, "shopper events", SCHEMA)];

/// Events waiting for the writer; past this, new ones are dropped.
const QUEUE_CAPACITY: usize = 65_536;
/// Rows per write.
const BATCH_ROWS: usize = 256;
/// How long the writer waits after a batch's first event for more.
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// A query is suggested only once this many different sessions searched it (and found something): one
/// shopper's typing is never shown to another.
const MIN_SUGGESTION_SESSIONS: usize = 2;
/// Past searches read back at start.
const REMEMBERED_SEARCHES: i64 = 200_000;
/// Distinct queries kept for suggestions.
const MAX_SUGGESTION_QUERIES: usize = 100_000;
/// The longest query remembered.
const MAX_QUERY_CHARS: usize = 100;
/// The longest session id accepted.
pub const MAX_SESSION_CHARS: usize = 100;

/// What a shopper did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Searched (and the search found something).
    Search,
    /// Opened a product.
    View,
    /// Put a product in the cart.
    Cart,
    /// Bought a product.
    Order,
    /// Asked an assistant (the shopping assistant, or a question on a product page); recorded by the store
    /// itself, never posted by a client.
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

    /// The kind named `name`: search, view, cart or order.
    pub fn parse(name: &str) -> Result<EventKind, CommerceError> {
        match name {
            "search" => Ok(EventKind::Search),
            "view" => Ok(EventKind::View),
            "cart" => Ok(EventKind::Cart),
            "order" => Ok(EventKind::Order),
            other => Err(CommerceError::InvalidRequest(format!(
                "kind must be search, view, cart or order, got '{other}'"
            ))),
        }
    }
}

/// One shopper event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopperEvent {
    /// What happened.
    pub kind: EventKind,
    /// The shopping session (a cookie or the client's own id).
    pub session: String,
    /// The search text, for searches.
    pub query: Option<String>,
    /// The product, for views, carts and orders.
    pub product_id: Option<String>,
}

/// A suggested completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    /// The text to search.
    pub text: String,
    /// How many sessions searched it.
    pub sessions: usize,
}

/// A product related to another by what shoppers did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    /// The related product.
    pub product_id: String,
    /// Sessions that did both.
    pub sessions: i64,
}

/// The event log and the suggestions learned from it.
pub struct ShopperEvents {
    db: Database,
    queue: mpsc::Sender<ShopperEvent>,
    /// Normalized past queries and the sessions that asked each.
    searches: Mutex<BTreeMap<String, HashSet<String>>>,
}

impl ShopperEvents {
    /// Opens the event log in `db` (creating its table), reads back recent searches for suggestions, and starts
    /// the writer task.
    pub async fn open(db: Database) -> Result<Arc<ShopperEvents>, CommerceError> {
        db.migrate("commerce_events", MIGRATIONS).await?;
        let recent: Vec<(String, String)> = sqlx::query_as(
            "SELECT query, session FROM commerce_events WHERE kind = 'search' AND query IS NOT NULL \
             ORDER BY at DESC LIMIT $1",
        )
        .bind(REMEMBERED_SEARCHES)
        .fetch_all(db.pool())
        .await?;
        let mut searches: BTreeMap<String, HashSet<String>> = BTreeMap::new();
        for (query, session) in recent {
            if searches.len() < MAX_SUGGESTION_QUERIES || searches.contains_key(&query) {
                searches.entry(query).or_default().insert(session);
            }
        }
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_events(db.clone(), receiver));
        Ok(Arc::new(ShopperEvents {
            db,
            queue,
            searches: Mutex::new(searches),
        }))
    }

    /// Records an event; never waits. Searches also feed suggestions at once.
    pub fn record(&self, mut event: ShopperEvent) {
        event.session = event.session.chars().take(MAX_SESSION_CHARS).collect();
        if let Some(query) = event.query.take() {
            let query = normalize(&query);
            if query.is_empty() {
                return;
            }
            if event.kind == EventKind::Search {
                let mut searches = self.searches.lock().unwrap_or_else(PoisonError::into_inner);
                if searches.len() < MAX_SUGGESTION_QUERIES || searches.contains_key(&query) {
                    searches.entry(query.clone()).or_default().insert(event.session.clone());
                }
            }
            event.query = Some(query);
        }
        if self.queue.try_send(event).is_err() {
            tracing::warn!("the shopper event queue is full; an event was dropped");
        }
    }

    /// Past queries starting with `prefix` (normalized), most sessions first, that enough sessions asked.
    pub fn suggest(&self, prefix: &str, limit: usize) -> Vec<Suggestion> {
        let prefix = normalize(prefix);
        if prefix.is_empty() {
            return Vec::new();
        }
        let searches = self.searches.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found: Vec<Suggestion> = searches
            .range(prefix.clone()..)
            .take_while(|(query, _)| query.starts_with(&prefix))
            .filter(|(_, sessions)| sessions.len() >= MIN_SUGGESTION_SESSIONS)
            .map(|(query, sessions)| Suggestion {
                text: query.clone(),
                sessions: sessions.len(),
            })
            .collect();
        found.sort_by(|a, b| b.sessions.cmp(&a.sessions).then_with(|| a.text.cmp(&b.text)));
        found.truncate(limit);
        found
    }

    /// Products that sessions which did `kind` on `product_id` also did `kind` on, most sessions first.
    pub async fn also(&self, kind: EventKind, product_id: &str, limit: usize) -> Result<Vec<Related>, CommerceError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT other.product_id, CAST(COUNT(DISTINCT other.session) AS BIGINT) AS sessions \
             FROM commerce_events AS this JOIN commerce_events AS other \
               ON other.session = this.session AND other.kind = this.kind AND other.product_id <> this.product_id \
             WHERE this.kind = $1 AND this.product_id = $2 \
             GROUP BY other.product_id ORDER BY sessions DESC, other.product_id LIMIT $3",
        )
        .bind(kind.name())
        .bind(product_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(product_id, sessions)| Related { product_id, sessions })
            .collect())
    }

    /// Events per kind and hour (unix hour) since `since_ms`: the demand the store generates.
    pub async fn hourly_counts(&self, since_ms: i64) -> Result<Vec<(String, i64, i64)>, CommerceError> {
        Ok(sqlx::query_as(
            "SELECT kind, CAST(at / 3600000 AS BIGINT) AS hour, CAST(COUNT(*) AS BIGINT) FROM commerce_events \
             WHERE at >= $1 GROUP BY kind, hour ORDER BY hour, kind",
        )
        .bind(since_ms)
        .fetch_all(self.db.pool())
        .await?)
    }
}

/// Lowercased, whitespace collapsed, bounded: the form queries are remembered and matched in.
fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .chars()
        .take(MAX_QUERY_CHARS)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

async fn write_events(db: Database, mut receiver: mpsc::Receiver<ShopperEvent>) {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < BATCH_ROWS {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(event)) => batch.push(event),
                _ => break,
            }
        }
        if let Err(error) = write_batch(&db, &batch).await {
            tracing::error!(%error, events = batch.len(), "could not write shopper events");
        }
        batch.clear();
    }
}

async fn write_batch(db: &Database, events: &[ShopperEvent]) -> Result<(), sqlx::Error> {
    let at = crate::unix_millis();
    let sql = format!(
        "INSERT INTO commerce_events (id, at, kind, session, query, product_id) VALUES {}",
        db.backend().values_placeholders(events.len(), 6)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for event in events {
        query = query
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .bind(at)
            .bind(event.kind.name())
            .bind(&event.session)
            .bind(&event.query)
            .bind(&event.product_id);
    }
    query.execute(db.pool()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn event(kind: EventKind, session: &str, query: Option<&str>, product: Option<&str>) -> ShopperEvent {
        ShopperEvent {
            kind,
            session: session.to_owned(),
            query: query.map(str::to_owned),
            product_id: product.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn suggestions_need_two_sessions_and_rank_by_sessions() {
        let events = ShopperEvents::open(Database::open_in_memory().await.unwrap())
            .await
            .unwrap();
        for (session, query) in [
            ("a", "Velvet  Sofa"),
            ("b", "velvet sofa"),
            ("c", "velvet sofa"),
            ("a", "velvet chair"),
            ("b", "velvet chair"),
            ("a", "velvet secret"),
            ("a", "velvet secret"),
        ] {
            events.record(event(EventKind::Search, session, Some(query), None));
        }
        let suggestions: Vec<(String, usize)> = events
            .suggest("VEL", 5)
            .into_iter()
            .map(|suggestion| (suggestion.text, suggestion.sessions))
            .collect();
        assert_eq!(
            suggestions,
            [("velvet sofa".to_owned(), 3), ("velvet chair".to_owned(), 2)],
            "one session's query is never suggested"
        );
        assert!(events.suggest("", 5).is_empty());
        assert!(events.suggest("zebra", 5).is_empty());
    }

    #[tokio::test]
    async fn sessions_that_viewed_a_product_say_what_else_they_viewed() {
        let events = ShopperEvents::open(Database::open_in_memory().await.unwrap())
            .await
            .unwrap();
        for (session, product) in [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2"), ("b", "3"), ("c", "3")] {
            events.record(event(EventKind::View, session, None, Some(product)));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let related = loop {
            let related = events.also(EventKind::View, "1", 5).await.unwrap();
            if related.len() == 2 || tokio::time::Instant::now() > deadline {
                break related;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            related,
            [
                Related {
                    product_id: "2".to_owned(),
                    sessions: 2
                },
                Related {
                    product_id: "3".to_owned(),
                    sessions: 1
                }
            ]
        );
        let hourly = events.hourly_counts(0).await.unwrap();
        assert_eq!(hourly.iter().map(|(_, _, count)| count).sum::<i64>(), 6);
    }
}
