//! Database access for every crate: the connection pool (SQLite, the embedded default) and a migrations runner
//! that lets each crate own its tables without colliding with the others.
//!
//! This crate knows nothing of the tables themselves; the crates that own them pass their migrations in.

mod migrate;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use migrate::Migration;

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
    /// The database could not be opened.
    #[error("cannot open database {location}: {source}")]
    Open {
        /// The file or URL that was being opened.
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

/// A handle to flywheel's database. Cheap to clone: clones share one pool.
#[derive(Clone, Debug)]
pub struct Database {
    pool: SqlitePool,
    location: String,
}

impl Database {
    /// Opens (creating if needed) the SQLite database `flywheel.db` inside `data_dir`.
    ///
    /// WAL journaling with `synchronous=NORMAL`: a committed transaction survives a crash of the process.
    pub async fn open_in_data_dir(data_dir: &Path) -> Result<Database, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("flywheel.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        Self::connect(options, path.display().to_string(), 8).await
    }

    /// Opens a private in-memory database, for tests and throwaway runs.
    pub async fn open_in_memory() -> Result<Database, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(|source| StoreError::Open {
            location: "sqlite::memory:".to_owned(),
            source,
        })?;
        // One connection: every in-memory connection would otherwise be a separate database.
        Self::connect(options.foreign_keys(true), "sqlite::memory:".to_owned(), 1).await
    }

    async fn connect(
        options: SqliteConnectOptions,
        location: String,
        max_connections: u32,
    ) -> Result<Database, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                location: location.clone(),
                source,
            })?;
        Ok(Database { pool, location })
    }

    /// The connection pool, for the crates that own tables.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Where the database lives (a file path, or `sqlite::memory:`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Applies `component`'s migrations that are not applied yet, each in its own transaction, in version order.
    pub async fn migrate(&self, component: &str, migrations: &[Migration]) -> Result<(), StoreError> {
        migrate::run(&self.pool, component, migrations).await
    }

    /// Waits for in-use connections to be returned, then closes the pool (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
