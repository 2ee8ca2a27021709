//! The gateway's tables, as migrations: the usage ledger, then tenants' virtual keys.

use store::{Database, Migration, StoreError};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "usage ledger",
        sql: "CREATE TABLE usage_ledger (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            tenant TEXT NOT NULL,
            model TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            ttft_ms REAL,
            status TEXT NOT NULL
        );
        CREATE INDEX usage_ledger_tenant_time ON usage_ledger (tenant, created_at);
        CREATE INDEX usage_ledger_model_time ON usage_ledger (model, created_at);",
    },
    Migration {
        version: 2,
        description: "virtual keys",
        sql: "CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            name TEXT,
            key_hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            models TEXT,
            rpm INTEGER,
            tpm INTEGER,
            budget_micros INTEGER,
            expires_at INTEGER,
            metadata TEXT,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        );
        CREATE INDEX api_keys_tenant ON api_keys (tenant);
        ALTER TABLE usage_ledger ADD COLUMN key_id TEXT;",
    },
];

/// Brings the gateway's tables up to date.
pub(crate) async fn migrate(db: &Database) -> Result<(), StoreError> {
    db.migrate("gateway", MIGRATIONS).await
}
