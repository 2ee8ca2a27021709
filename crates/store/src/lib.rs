//! Database access for every crate: the connection pool (SQLite, the embedded default, or PostgreSQL, which lets
//! several flywheel instances share one state), a migrations runner that lets each crate own its tables without
//! colliding with the others, and the Redis connection for counters that instances share.
//!
//! This crate knows nothing of the tables themselves; the crates that own them pass their migrations in. Queries
//! go through sqlx's `Any` driver so that one query text serves both backends: write them in the SQL the two
//! share, with `$1`-style placeholders (SQLite reads them too), and cast aggregates to the type wanted
//! (`CAST(SUM(x) AS BIGINT)`: PostgreSQL's `SUM` of integers is `NUMERIC`).

mod migrate;
mod shared;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _};

pub use migrate::Migration;
pub use shared::{SharedCounters, SharedError, SharedScript};

/// What can go wrong opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// The underlying IO error.
        source: std::io::Error,
    },
    /// The database URL names a database this build cannot talk to.
    #[error("unsupported database URL '{0}': use postgres://... or sqlite://...")]
    UnsupportedUrl(String),
    /// The database could not be opened.
    #[error("cannot open database {location}: {source}")]
    Open {
        /// The file or URL (without its password) that was being opened.
        location: String,
        /// The underlying driver error.
        source: sqlx::Error,
    },
    /// A migration failed; the database is left at the previous version of that component.
    #[error("migration {component}/{version} ({description}) failed: {source}")]
    Migration {
        /// The crate that owns the migration.
        component: String,
        /// The migration's version number within its component.
        version: u32,
        /// What the migration does.
        description: String,
        /// The underlying driver error.
        source: sqlx::Error,
    },
    /// The database has a migration applied that this build does not know: it was written by a newer flywheel.
    #[error(
        "database has {component} migration {version} applied, newer than this build knows (latest {latest}); upgrade flywheel"
    )]
    FromTheFuture {
        /// The crate that owns the migration.
        component: String,
        /// The applied version.
        version: u32,
        /// The latest version this build knows.
        latest: u32,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Which database server is behind a [`Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file (or memory) private to this process: the embedded default.
    Sqlite,
    /// A server several flywheel instances can share.
    Postgres,
}

impl Backend {
    /// `(…), (…), …` for a multi-row `INSERT ... VALUES`: `rows` groups of `columns` placeholders. PostgreSQL
    /// needs numbered ones (`$1`); SQLite gets anonymous ones (`?`), because binding a numbered one looks its
    /// name up in a list as long as the statement's parameters, which made a 128-row statement cost more than
    /// the rows themselves.
    pub fn values_placeholders(self, rows: usize, columns: usize) -> String {
        let mut sql = String::with_capacity(rows * (columns * 4 + 4));
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..columns {
                if column > 0 {
                    sql.push_str(", ");
                }
                match self {
                    Backend::Sqlite => sql.push('?'),
                    Backend::Postgres => {
                        sql.push('$');
                        sql.push_str(&(row * columns + column + 1).to_string());
                    }
                }
            }
            sql.push(')');
        }
        sql
    }
}

/// A handle to flywheel's database. Cheap to clone: clones share one pool.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    location: String,
    backend: Backend,
}

/// Per-connection SQLite settings: WAL with `synchronous=NORMAL` means a committed transaction survives a crash
/// of the process (only a power cut can lose the last commits), and readers never block the writer. Statement
/// journals stay in memory (`temp_store`): a multi-row INSERT would otherwise create and delete a file per batch.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
     PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;";

impl Database {
    /// Opens (creating if needed) the SQLite database `flywheel.db` inside `data_dir`.
    pub async fn open_in_data_dir(data_dir: &Path) -> Result<Database, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("flywheel.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url, path.display().to_string(), Backend::Sqlite, 8).await
    }

    /// Opens a private in-memory database, for tests and throwaway runs.
    pub async fn open_in_memory() -> Result<Database, StoreError> {
        // One connection: every in-memory connection would otherwise be a separate database.
        Self::connect("sqlite::memory:", "sqlite::memory:".to_owned(), Backend::Sqlite, 1).await
    }

    /// Opens the database at `url`: `postgres://user:password@host/db` for a shared server, or
    /// `sqlite://path` for a file.
    pub async fn open_url(url: &str) -> Result<Database, StoreError> {
        let location = without_password(url);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect(url, location, Backend::Postgres, 16).await
        } else if url.starts_with("sqlite:") {
            Self::connect(url, location, Backend::Sqlite, 8).await
        } else {
            Err(StoreError::UnsupportedUrl(location))
        }
    }

    async fn connect(
        url: &str,
        location: String,
        backend: Backend,
        max_connections: u32,
    ) -> Result<Database, StoreError> {
        sqlx::any::install_default_drivers();
        let open_failed = |source| StoreError::Open {
            location: location.clone(),
            source,
        };
        let options: AnyConnectOptions = url.parse().map_err(open_failed)?;
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            pool_options = pool_options.after_connect(|connection, _| {
                Box::pin(async move {
                    connection.execute(SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options.connect_with(options).await.map_err(open_failed)?;
        Ok(Database {
            pool,
            location,
            backend,
        })
    }

    /// The connection pool, for the crates that own tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where the database lives (a file path, `sqlite::memory:`, or a URL without its password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Which server this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether other processes may be writing to this database too, so that in-memory copies of its tables go
    /// stale and must be refreshed.
    pub fn is_shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Applies `component`'s migrations that are not applied yet, each in its own transaction, in version order.
    pub async fn migrate(&self, component: &str, migrations: &[Migration]) -> Result<(), StoreError> {
        migrate::run(self, component, migrations).await
    }

    /// Waits for in-use connections to be returned, then closes the pool (checkpointing SQLite's WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The URL with any password replaced, for messages and logs.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split_once(':').map_or(credentials, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            without_password("postgres://fly:s3cret@db:5432/flywheel"),
            "postgres://fly:***@db:5432/flywheel"
        );
        assert_eq!(without_password("postgres://db/flywheel"), "postgres://db/flywheel");
        assert_eq!(without_password("sqlite://a/b.db"), "sqlite://a/b.db");
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused() {
        let error = Database::open_url("mysql://u:p@h/db").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "unsupported database URL 'mysql://u:***@h/db': use postgres://... or sqlite://..."
        );
    }

    #[tokio::test]
    async fn files_are_opened_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_in_data_dir(dir.path()).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        db.close().await;
    }
}
