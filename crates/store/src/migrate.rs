//! The migrations runner. Each crate owns a component name and numbers its migrations from 1; the runner records
//! `(component, version)` so crates never collide and each only ever sees its own history.

use sqlx::AnyConnection;
use sqlx::Connection as _;

use crate::{Backend, Database, StoreError};

/// One schema change owned by a crate, written for each backend (their DDL differs: types, auto-increment).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Position in the component's history, starting at 1.
    pub version: u32,
    /// What the migration does, recorded with it.
    pub description: &'static str,
    /// The SQL for SQLite; may hold several statements.
    pub sqlite: &'static str,
    /// The SQL for PostgreSQL; may hold several statements.
    pub postgres: &'static str,
}

impl Migration {
    /// A migration whose SQL both backends read the same way.
    pub const fn portable(version: u32, description: &'static str, sql: &'static str) -> Migration {
        Migration {
            version,
            description,
            sqlite: sql,
            postgres: sql,
        }
    }

    fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// Any constant both sides agree on: the PostgreSQL advisory lock that serializes migrations of instances
/// starting together.
const MIGRATION_LOCK: i64 = 0x666c_7977_6865_656c;

pub(crate) async fn run(db: &Database, component: &str, migrations: &[Migration]) -> Result<(), StoreError> {
    let mut connection = db.pool().acquire().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *connection)
            .await?;
    }
    let outcome = run_locked(&mut connection, db.backend(), component, migrations).await;
    if db.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *connection)
            .await?;
    }
    outcome
}

async fn run_locked(
    connection: &mut AnyConnection,
    backend: Backend,
    component: &str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS flywheel_migrations (
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            description TEXT NOT NULL,
            applied_at TEXT NOT NULL,
            PRIMARY KEY (component, version)
        )",
    )
    .execute(&mut *connection)
    .await?;

    let applied: Option<i64> =
        sqlx::query_scalar("SELECT CAST(MAX(version) AS BIGINT) FROM flywheel_migrations WHERE component = $1")
            .bind(component)
            .fetch_one(&mut *connection)
            .await?;
    let applied = u32::try_from(applied.unwrap_or(0)).unwrap_or(0);
    let latest = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    if applied > latest {
        return Err(StoreError::FromTheFuture {
            component: component.to_owned(),
            version: applied,
            latest,
        });
    }

    let mut pending: Vec<&Migration> = migrations.iter().filter(|m| m.version > applied).collect();
    pending.sort_by_key(|m| m.version);
    for migration in pending {
        let failed = |source| StoreError::Migration {
            component: component.to_owned(),
            version: migration.version,
            description: migration.description.to_owned(),
            source,
        };
        let mut tx = connection.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sql(backend)))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query(
            "INSERT INTO flywheel_migrations (component, version, description, applied_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(component)
        .bind(i64::from(migration.version))
        .bind(migration.description)
        .bind(applied_at())
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(
            component,
            version = migration.version,
            description = migration.description,
            "applied migration"
        );
    }
    Ok(())
}

/// Now, as Unix seconds with milliseconds.
fn applied_at() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const FIRST: Migration = Migration {
        version: 1,
        description: "create things",
        sqlite: "CREATE TABLE things (id INTEGER PRIMARY KEY); CREATE INDEX things_id ON things (id);",
        postgres: "",
    };
    const SECOND: Migration = Migration {
        version: 2,
        description: "add name",
        sqlite: "ALTER TABLE things ADD COLUMN name TEXT",
        postgres: "",
    };

    #[tokio::test]
    async fn applies_once_and_in_order() {
        let db = Database::open_in_memory().await.unwrap();
        db.migrate("a", &[SECOND, FIRST]).await.unwrap();
        db.migrate("a", &[FIRST, SECOND]).await.unwrap();
        sqlx::query("INSERT INTO things (id, name) VALUES (1, 'x')")
            .execute(db.pool())
            .await
            .unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flywheel_migrations")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn components_do_not_collide() {
        let db = Database::open_in_memory().await.unwrap();
        db.migrate("a", &[FIRST]).await.unwrap();
        let other = Migration {
            version: 1,
            description: "other",
            sqlite: "CREATE TABLE others (id INTEGER)",
            postgres: "",
        };
        db.migrate("b", &[other]).await.unwrap();
        sqlx::query("SELECT id FROM others").fetch_all(db.pool()).await.unwrap();
    }

    #[tokio::test]
    async fn failed_migration_leaves_nothing_behind() {
        let db = Database::open_in_memory().await.unwrap();
        let broken = Migration {
            version: 1,
            description: "broken",
            sqlite: "CREATE TABLE t (id INTEGER); SELEC oops",
            postgres: "",
        };
        let err = db.migrate("a", &[broken]).await.unwrap_err();
        assert!(err.to_string().contains("a/1 (broken)"), "{err}");
        assert!(sqlx::query("SELECT id FROM t").fetch_all(db.pool()).await.is_err());
    }

    #[tokio::test]
    async fn refuses_a_newer_database() {
        let db = Database::open_in_memory().await.unwrap();
        db.migrate("a", &[FIRST, SECOND]).await.unwrap();
        let err = db.migrate("a", &[FIRST]).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::FromTheFuture {
                    version: 2,
                    latest: 1,
                    ..
                }
            ),
            "{err}"
        );
    }
}
