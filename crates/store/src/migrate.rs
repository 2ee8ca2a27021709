//! The migrations runner. Each crate owns a component name and numbers its migrations from 1; the runner records
//! `(component, version)` so crates never collide and each only ever sees its own history.

use sqlx::SqlitePool;

use crate::StoreError;

/// One schema change owned by a crate.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Position in the component's history, starting at 1.
    pub version: u32,
    /// What the migration does, recorded with it.
    pub description: &'static str,
    /// The SQL to run; may hold several statements.
    pub sql: &'static str,
}

pub(crate) async fn run(pool: &SqlitePool, component: &str, migrations: &[Migration]) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS flywheel_migrations (
            component TEXT NOT NULL,
            version INTEGER NOT NULL,
            description TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            PRIMARY KEY (component, version)
        )",
    )
    .execute(pool)
    .await?;

    let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM flywheel_migrations WHERE component = ?")
        .bind(component)
        .fetch_one(pool)
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
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sql))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query("INSERT INTO flywheel_migrations (component, version, description) VALUES (?, ?, ?)")
            .bind(component)
            .bind(migration.version)
            .bind(migration.description)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Database;

    const FIRST: Migration = Migration {
        version: 1,
        description: "create things",
        sql: "CREATE TABLE things (id INTEGER PRIMARY KEY); CREATE INDEX things_id ON things (id);",
    };
    const SECOND: Migration = Migration {
        version: 2,
        description: "add name",
        sql: "ALTER TABLE things ADD COLUMN name TEXT",
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
            sql: "CREATE TABLE others (id INTEGER)",
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
            sql: "CREATE TABLE t (id INTEGER); SELEC oops",
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
