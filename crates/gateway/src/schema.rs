//! The gateway's tables, as migrations: the usage ledger, tenants' virtual keys, tenants' own limits.

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
    Migration {
        version: 3,
        description: "routing, cost, cache and guardrails in the ledger; budget periods; tenants",
        sql: "ALTER TABLE usage_ledger ADD COLUMN deployment TEXT;
        ALTER TABLE usage_ledger ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE usage_ledger ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE usage_ledger ADD COLUMN cache TEXT;
        ALTER TABLE usage_ledger ADD COLUMN guardrail TEXT;
        CREATE INDEX usage_ledger_key_time ON usage_ledger (key_id, created_at);
        ALTER TABLE api_keys ADD COLUMN budget_period TEXT NOT NULL DEFAULT 'total';
        ALTER TABLE api_keys ADD COLUMN guardrails TEXT;
        ALTER TABLE api_keys ADD COLUMN cache TEXT;
        CREATE TABLE tenants (
            name TEXT PRIMARY KEY,
            rpm INTEGER,
            tpm INTEGER,
            budget_micros INTEGER,
            budget_period TEXT NOT NULL DEFAULT 'total',
            updated_at INTEGER NOT NULL
        );",
    },
];

/// Brings the gateway's tables up to date.
pub(crate) async fn migrate(db: &Database) -> Result<(), StoreError> {
    db.migrate("gateway", MIGRATIONS).await
}
