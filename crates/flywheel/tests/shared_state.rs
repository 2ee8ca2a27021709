//! Two gateway instances sharing one PostgreSQL (keys, tenants, the ledger) and one Redis (rate limits, budgets):
//! a key made on one works on the other, a revocation reaches both, the ledger holds both instances' requests,
//! and limits and budgets hold across the two under concurrent load.
//!
//! Needs `FLYWHEEL_TEST_DATABASE_URL` (a PostgreSQL database the tests may create databases from) and
//! `FLYWHEEL_TEST_REDIS_URL`; `scripts/test` starts both servers and sets them. Without them these tests are
//! skipped, except under CI, where a skip would hide a failure and so fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, chat_request};
use futures::StreamExt as _;
use serde_json::{Value, json};
use sqlx::Connection as _;

const MASTER: &str = "sk-master-shared-state-tests";

const CONFIG: &str = r#"embedded_models = false

[[models]]
id = "steady"
input_usd_per_mtok = 1000.0
output_usd_per_mtok = 2000.0
[[models.deployments]]
provider = "fault"

[[models]]
id = "slow"
input_usd_per_mtok = 1000.0
output_usd_per_mtok = 2000.0
[[models.deployments]]
provider = "fault"
fault = { latency_ms = 300 }
"#;

/// The servers' URLs, or `None` to skip (outside CI).
fn services() -> Option<(String, String)> {
    match (
        std::env::var("FLYWHEEL_TEST_DATABASE_URL"),
        std::env::var("FLYWHEEL_TEST_REDIS_URL"),
    ) {
        (Ok(database), Ok(redis)) => Some((database, redis)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must run these tests: set FLYWHEEL_TEST_DATABASE_URL and FLYWHEEL_TEST_REDIS_URL")
        }
        _ => {
            eprintln!(
                "skipped: FLYWHEEL_TEST_DATABASE_URL and FLYWHEEL_TEST_REDIS_URL are not set (scripts/test sets them)"
            );
            None
        }
    }
}

/// A new, empty database on the test server, so that each test sees only its own ledger.
async fn fresh_database(url: &str) -> String {
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    let name = format!("flywheel_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (server, _) = url.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

/// Two instances on one database and one Redis.
struct Pair {
    a: Server,
    b: Server,
    database_url: String,
    _config: tempfile::TempDir,
}

async fn start_pair() -> Option<Pair> {
    let (database, redis) = services()?;
    let database_url = fresh_database(&database).await;
    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("flywheel.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let args = ["--config", path.to_str().unwrap(), "--master-key", MASTER];
    let env = [
        ("FLYWHEEL_DATABASE_URL", database_url.as_str()),
        ("FLYWHEEL_REDIS_URL", redis.as_str()),
    ];
    // One after the other: the second finds the tables the first made.
    let a = Server::start_with_env(&args, &env).await;
    let b = Server::start_with_env(&args, &env).await;
    Some(Pair {
        a,
        b,
        database_url,
        _config: config,
    })
}

async fn create_key(server: &Server, body: Value) -> (String, String) {
    let (status, key) = server.call(Some(MASTER), "POST", "/admin/keys", Some(body)).await;
    assert_eq!(status, 201, "{key}");
    (
        key["key"].as_str().unwrap().to_owned(),
        key["id"].as_str().unwrap().to_owned(),
    )
}

/// Sends `count` chat requests at once, alternating between the instances; returns each status and body.
async fn burst(pair: &Pair, secret: &str, model: &str, count: usize) -> Vec<(u16, Value)> {
    let requests = (0..count).map(|index| {
        let server = if index % 2 == 0 { &pair.a } else { &pair.b };
        async move {
            server
                .call(Some(secret), "POST", "/v1/chat/completions", Some(chat_request(model)))
                .await
        }
    });
    futures::stream::iter(requests).buffer_unordered(count).collect().await
}

/// Micro-dollars the ledger holds for `key_id`, once it holds `rows` rows for it.
async fn ledger_spend(database_url: &str, key_id: &str, rows: i64) -> i64 {
    let mut connection = sqlx::PgConnection::connect(database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (count, spent): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage_ledger WHERE key_id = $1",
        )
        .bind(key_id)
        .fetch_one(&mut connection)
        .await
        .unwrap();
        if count >= rows {
            return spent;
        }
        assert!(Instant::now() < deadline, "the ledger has {count} of {rows} rows");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn limits_and_budgets_hold_across_two_instances() {
    let Some(pair) = start_pair().await else { return };

    // Requests per minute: 60 at once over both instances, exactly the limit gets through.
    let (limited, _) = create_key(&pair.a, json!({"tenant": "initech", "rpm": 20})).await;
    let outcomes = burst(&pair, &limited, "steady", 60).await;
    let ok = outcomes.iter().filter(|(status, _)| *status == 200).count();
    let refused: Vec<&Value> = outcomes
        .iter()
        .filter(|(status, _)| *status == 429)
        .map(|(_, body)| body)
        .collect();
    assert_eq!((ok, refused.len()), (20, 40), "{outcomes:?}");
    assert_eq!(refused[0]["error"]["code"], "rate_limit_exceeded");

    // Budgets: 30 concurrent requests over both instances, then one at a time until refused; the ledger (one
    // for both) never shows more spent than the budget. One request reserves about 0.05 USD and costs about
    // half that.
    let (secret, key_id) = create_key(&pair.b, json!({"tenant": "acme", "budget_usd": 0.2})).await;
    let outcomes = burst(&pair, &secret, "slow", 30).await;
    let ok = outcomes.iter().filter(|(status, _)| *status == 200).count();
    let over = outcomes.iter().filter(|(status, _)| *status == 402).count();
    assert!(ok >= 1, "{outcomes:?}");
    assert_eq!(ok + over, 30, "{outcomes:?}");
    let mut sequential = 0;
    for index in 0..20 {
        let server = if index % 2 == 0 { &pair.a } else { &pair.b };
        let (status, body) = server
            .call(
                Some(&secret),
                "POST",
                "/v1/chat/completions",
                Some(chat_request("slow")),
            )
            .await;
        sequential += 1;
        if status == 402 {
            assert_eq!(body["error"]["code"], "budget_exceeded");
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let spent = ledger_spend(&pair.database_url, &key_id, 30 + sequential).await;
    assert!(spent <= 200_000, "spent {spent} micro-dollars of a 200000 budget");
    assert!(spent > 150_000, "the budget was used: {spent}");

    // A tenant's limits set on one instance hold on the other once it has re-read them (within a second).
    let (status, body) = pair
        .a
        .call(Some(MASTER), "PUT", "/admin/tenants/globex", Some(json!({"rpm": 4})))
        .await;
    assert_eq!(status, 200, "{body}");
    let (first, _) = create_key(&pair.a, json!({"tenant": "globex"})).await;
    let (second, _) = create_key(&pair.b, json!({"tenant": "globex"})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut statuses = Vec::new();
    for (server, secret) in [(&pair.a, &first), (&pair.b, &second)].repeat(3) {
        statuses.push(
            server
                .call(
                    Some(secret),
                    "POST",
                    "/v1/chat/completions",
                    Some(chat_request("steady")),
                )
                .await
                .0,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn keys_and_the_ledger_are_shared() {
    let Some(pair) = start_pair().await else { return };
    let (secret, key_id) = create_key(&pair.a, json!({"tenant": "umbrella"})).await;
    for server in [&pair.a, &pair.b, &pair.b] {
        let (status, body) = server
            .call(
                Some(&secret),
                "POST",
                "/v1/chat/completions",
                Some(chat_request("steady")),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Both instances' requests are in the one ledger, and either instance reports them.
    ledger_spend(&pair.database_url, &key_id, 3).await;
    let (status, report) = pair
        .a
        .call(Some(MASTER), "GET", "/admin/usage?group_by=tenant,model", None)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["data"][0]["tenant"], "umbrella");
    assert_eq!(report["data"][0]["requests"], 3);
    let (_, listed) = pair.b.call(Some(MASTER), "GET", "/admin/keys", None).await;
    assert_eq!(listed["data"][0]["id"], key_id.as_str());

    // Revoked on one instance, refused by the other within its one-second key cache.
    let (status, _) = pair
        .b
        .call(Some(MASTER), "DELETE", &format!("/admin/keys/{key_id}"), None)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = pair
        .a
        .call(
            Some(&secret),
            "POST",
            "/v1/chat/completions",
            Some(chat_request("steady")),
        )
        .await;
    assert_eq!(status, 401, "{body}");
}
