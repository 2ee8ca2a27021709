//! Tenants and virtual keys: creation, listing, rotation and revocation, and resolving a presented secret to the
//! key it belongs to. Secrets are shown once, at creation or rotation, and stored only as SHA-256 hashes: they
//! are 256-bit random values, so a fast hash is as safe as a slow one and keeps authentication cheap.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::{Database, StoreError};

use crate::budget::BudgetPeriod;
use crate::cache::CachePolicy;
use crate::chat::unix_seconds;
use crate::guardrails::{GuardrailPolicy, PiiAction};

/// Every secret starts with this, so leaked keys are easy to recognise and scan for.
const SECRET_PREFIX: &str = "fw-";
/// How much of the secret is kept in clear to tell keys apart in listings.
const SHOWN_PREFIX_CHARS: usize = 10;

/// What a new key may do; `None` means no restriction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// The tenant the key spends for; created on first use.
    pub tenant: String,
    /// A label for people.
    pub name: Option<String>,
    /// Models the key may call; absent means all.
    pub models: Option<Vec<String>>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens (prompt + completion) per minute.
    pub tpm: Option<u32>,
    /// Spending limit in micro-dollars.
    pub budget_micros: Option<i64>,
    /// The period the budget covers; default `total`.
    #[serde(default)]
    pub budget_period: BudgetPeriod,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Free-form metadata kept with the key.
    pub metadata: Option<serde_json::Value>,
    /// Guardrails applied to this key's requests.
    pub guardrails: Option<GuardrailPolicy>,
    /// Response caching for this key's requests.
    pub cache: Option<CachePolicy>,
}

/// Changes to a key's limits: a field left out stays as it is, a field set to `null` lifts that restriction.
/// The tenant cannot change: what a key spent stays with the tenant it spent for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    /// A label for people.
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    /// Models the key may call.
    #[serde(default, deserialize_with = "present")]
    pub models: Option<Option<Vec<String>>>,
    /// Requests per minute.
    #[serde(default, deserialize_with = "present")]
    pub rpm: Option<Option<u32>>,
    /// Tokens per minute.
    #[serde(default, deserialize_with = "present")]
    pub tpm: Option<Option<u32>>,
    /// Spending limit in micro-dollars.
    #[serde(default, deserialize_with = "present")]
    pub budget_micros: Option<Option<i64>>,
    /// The period the budget covers.
    pub budget_period: Option<BudgetPeriod>,
    /// Expiry, Unix seconds.
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<i64>>,
    /// Metadata, replaced whole.
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<Option<serde_json::Value>>,
    /// Guardrails applied to this key's requests.
    #[serde(default, deserialize_with = "present")]
    pub guardrails: Option<Option<GuardrailPolicy>>,
    /// Response caching for this key's requests.
    #[serde(default, deserialize_with = "present")]
    pub cache: Option<Option<CachePolicy>>,
}

/// A field that is present, as `null` or a value (serde leaves absent fields at their default, `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A key's JSON-valued column (models, metadata, guardrails, cache) as stored.
fn json_column<T: Serialize>(value: Option<&T>) -> Option<String> {
    value.map(|value| serde_json::to_string(value).unwrap_or_default())
}

/// The checks every key's limits pass, when it is created and whenever they change.
fn check_limits(
    models: Option<&[String]>,
    budget_micros: Option<i64>,
    expires_at: Option<i64>,
    guardrails: Option<&GuardrailPolicy>,
    cache: Option<&CachePolicy>,
) -> Result<(), KeyError> {
    if let Some(models) = models
        && (models.is_empty() || models.iter().any(|model| model.trim().is_empty()))
    {
        return Err(KeyError::Invalid(
            "'models' must list at least one non-empty model id".to_owned(),
        ));
    }
    if budget_micros.is_some_and(|budget| budget < 0) {
        return Err(KeyError::Invalid("'budget' must not be negative".to_owned()));
    }
    if let Some(policy) = guardrails {
        policy.validate().map_err(KeyError::Invalid)?;
    }
    if let Some(policy) = cache {
        policy.validate().map_err(KeyError::Invalid)?;
    }
    if expires_at.is_some_and(|at| at <= unix_seconds()) {
        return Err(KeyError::Invalid("'expires_at' must be in the future".to_owned()));
    }
    Ok(())
}

/// A key as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyInfo {
    /// Stable id (`key_...`), used to rotate and revoke.
    pub id: String,
    /// The tenant it spends for.
    pub tenant: String,
    /// The label.
    pub name: Option<String>,
    /// The first characters of the secret.
    pub prefix: String,
    /// Models it may call; `None` means all.
    pub models: Option<Vec<String>>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u32>,
    /// Spending limit in micro-dollars.
    pub budget_micros: Option<i64>,
    /// The period the budget covers.
    pub budget_period: BudgetPeriod,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Metadata.
    pub metadata: Option<serde_json::Value>,
    /// Guardrails applied to this key's requests.
    pub guardrails: Option<GuardrailPolicy>,
    /// Response caching for this key's requests.
    pub cache: Option<CachePolicy>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Revocation time, Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

impl KeyInfo {
    /// Whether this key may call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        model_allowed(self.models.as_deref(), model)
    }

    /// Why the key cannot be used now (revoked or expired), if it cannot.
    pub fn rejection(&self) -> Option<Rejection> {
        if self.revoked_at.is_some() {
            Some(Rejection::Revoked)
        } else if self.expires_at.is_some_and(|at| at <= unix_seconds()) {
            Some(Rejection::Expired)
        } else {
            None
        }
    }
}

/// A key with its secret, returned only when the secret is made.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedKey {
    /// The secret to hand to the client; not stored anywhere.
    pub key: String,
    /// The key's stored record.
    #[serde(flatten)]
    pub info: KeyInfo,
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The request to create a key is not valid.
    #[error("{0}")]
    Invalid(String),
    /// No key has that id.
    #[error("no key has the id '{0}'")]
    NotFound(String),
    /// The key is revoked, so it cannot change.
    #[error("the key '{0}' is revoked and cannot change")]
    Revoked(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for KeyError {
    fn from(error: sqlx::Error) -> Self {
        KeyError::Store(StoreError::Sql(error))
    }
}

/// Why a presented secret was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No key has this secret.
    Unknown,
    /// The key was revoked.
    Revoked,
    /// The key has expired.
    Expired,
}

/// The keys table, with a short-lived cache of recently authenticated keys so that a busy key costs a hash
/// and a map lookup per request instead of a query. Revoking or rotating through this store clears the cache at
/// once; a change made by another process (the CLI, another instance) is seen within [`AUTH_CACHE_TTL`].
#[derive(Clone, Debug)]
pub struct KeyStore {
    db: Database,
    recent: Arc<Mutex<HashMap<String, (KeyInfo, Instant)>>>,
}

/// How long an authenticated key is trusted without asking the database again.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(1);
/// Keys kept in the cache at most; beyond that it starts over (an attack with random keys must not grow it).
const AUTH_CACHE_KEYS: usize = 10_000;

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    tenant: String,
    name: Option<String>,
    prefix: String,
    models: Option<String>,
    rpm: Option<i64>,
    tpm: Option<i64>,
    budget_micros: Option<i64>,
    budget_period: String,
    expires_at: Option<i64>,
    metadata: Option<String>,
    guardrails: Option<String>,
    cache: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

const KEY_COLUMNS: &str = "id, tenant, name, prefix, models, rpm, tpm, budget_micros, budget_period, expires_at, \
    metadata, guardrails, cache, created_at, revoked_at";

impl KeyStore {
    /// The key store on `db`; the gateway's migrations must have run (see [`crate::Gateway::open`]). Public so
    /// that the CLI can manage keys with the server down.
    pub fn new(db: Database) -> KeyStore {
        KeyStore {
            db,
            recent: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn forget_recent(&self) {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Creates a key and returns it with its secret.
    pub async fn create(&self, new: NewKey) -> Result<IssuedKey, KeyError> {
        let tenant = new.tenant.trim();
        if tenant.is_empty() || tenant.len() > 128 {
            return Err(KeyError::Invalid("'tenant' must be 1 to 128 characters".to_owned()));
        }
        check_limits(
            new.models.as_deref(),
            new.budget_micros,
            new.expires_at,
            new.guardrails.as_ref(),
            new.cache.as_ref(),
        )?;
        let id = format!("key_{}", uuid::Uuid::new_v4().simple());
        let secret = new_secret();
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, name, key_hash, prefix, models, rpm, tpm, budget_micros, budget_period,
                                   expires_at, metadata, guardrails, cache, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(&new.name)
        .bind(hash_secret(&secret))
        .bind(shown_prefix(&secret))
        .bind(json_column(new.models.as_ref()))
        .bind(new.rpm.map(i64::from))
        .bind(new.tpm.map(i64::from))
        .bind(new.budget_micros)
        .bind(new.budget_period.as_str())
        .bind(new.expires_at)
        .bind(json_column(new.metadata.as_ref()))
        .bind(json_column(new.guardrails.as_ref()))
        .bind(json_column(new.cache.as_ref()))
        .bind(unix_seconds())
        .execute(self.db.pool())
        .await?;
        Ok(IssuedKey {
            key: secret,
            info: self.get(&id).await?,
        })
    }

    /// Every key, newest first, without secrets.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id"
        )))
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.into_iter().map(key_info).collect())
    }

    /// One key by id.
    pub async fn get(&self, id: &str) -> Result<KeyInfo, KeyError> {
        let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(key_info).ok_or_else(|| KeyError::NotFound(id.to_owned()))
    }

    /// Gives the key a new secret; the old one stops working at once.
    pub async fn rotate(&self, id: &str) -> Result<IssuedKey, KeyError> {
        let secret = new_secret();
        let updated =
            sqlx::query("UPDATE api_keys SET key_hash = $1, prefix = $2 WHERE id = $3 AND revoked_at IS NULL")
                .bind(hash_secret(&secret))
                .bind(shown_prefix(&secret))
                .bind(id)
                .execute(self.db.pool())
                .await?;
        self.forget_recent();
        if updated.rows_affected() == 0 {
            return Err(KeyError::NotFound(id.to_owned()));
        }
        Ok(IssuedKey {
            key: secret,
            info: self.get(id).await?,
        })
    }

    /// Changes a key's limits (see [`KeyUpdate`]); they apply to its next request. A revoked key cannot change.
    pub async fn update(&self, id: &str, update: KeyUpdate) -> Result<KeyInfo, KeyError> {
        let mut key = self.get(id).await?;
        if key.revoked_at.is_some() {
            return Err(KeyError::Revoked(id.to_owned()));
        }
        if let Some(name) = update.name {
            key.name = name;
        }
        if let Some(models) = update.models {
            key.models = models;
        }
        if let Some(rpm) = update.rpm {
            key.rpm = rpm;
        }
        if let Some(tpm) = update.tpm {
            key.tpm = tpm;
        }
        if let Some(budget_micros) = update.budget_micros {
            key.budget_micros = budget_micros;
        }
        if let Some(period) = update.budget_period {
            key.budget_period = period;
        }
        if let Some(expires_at) = update.expires_at {
            key.expires_at = expires_at;
        }
        if let Some(metadata) = update.metadata {
            key.metadata = metadata;
        }
        if let Some(guardrails) = update.guardrails {
            key.guardrails = guardrails;
        }
        if let Some(cache) = update.cache {
            key.cache = cache;
        }
        check_limits(
            key.models.as_deref(),
            key.budget_micros,
            key.expires_at,
            key.guardrails.as_ref(),
            key.cache.as_ref(),
        )?;
        let updated = sqlx::query(
            "UPDATE api_keys SET name = $1, models = $2, rpm = $3, tpm = $4, budget_micros = $5, budget_period = $6,
                                 expires_at = $7, metadata = $8, guardrails = $9, cache = $10
             WHERE id = $11 AND revoked_at IS NULL",
        )
        .bind(&key.name)
        .bind(json_column(key.models.as_ref()))
        .bind(key.rpm.map(i64::from))
        .bind(key.tpm.map(i64::from))
        .bind(key.budget_micros)
        .bind(key.budget_period.as_str())
        .bind(key.expires_at)
        .bind(json_column(key.metadata.as_ref()))
        .bind(json_column(key.guardrails.as_ref()))
        .bind(json_column(key.cache.as_ref()))
        .bind(id)
        .execute(self.db.pool())
        .await?;
        self.forget_recent();
        if updated.rows_affected() == 0 {
            // Revoked between the read and the write.
            return Err(KeyError::Revoked(id.to_owned()));
        }
        self.get(id).await
    }

    /// Revokes the key; revoking twice is harmless.
    pub async fn revoke(&self, id: &str) -> Result<KeyInfo, KeyError> {
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(unix_seconds())
            .bind(id)
            .execute(self.db.pool())
            .await?;
        self.forget_recent();
        self.get(id).await
    }

    /// The key a client presented, if it is valid now.
    pub async fn authenticate(&self, secret: &str) -> Result<Result<KeyInfo, Rejection>, KeyError> {
        let hash = hash_secret(secret);
        let cached = {
            let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            recent
                .get(&hash)
                .filter(|(_, at)| at.elapsed() < AUTH_CACHE_TTL)
                .map(|(key, _)| key.clone())
        };
        let key = match cached {
            Some(key) => key,
            None => {
                let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
                )))
                .bind(&hash)
                .fetch_optional(self.db.pool())
                .await?;
                let Some(key) = row.map(key_info) else {
                    return Ok(Err(Rejection::Unknown));
                };
                let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
                if recent.len() >= AUTH_CACHE_KEYS {
                    recent.clear();
                }
                recent.insert(hash, (key.clone(), Instant::now()));
                key
            }
        };
        Ok(match key.rejection() {
            Some(rejection) => Err(rejection),
            None => Ok(key),
        })
    }
}

fn key_info(row: KeyRow) -> KeyInfo {
    KeyInfo {
        id: row.id,
        tenant: row.tenant,
        name: row.name,
        prefix: row.prefix,
        models: row.models.and_then(|json| serde_json::from_str(&json).ok()),
        rpm: row.rpm.and_then(|n| u32::try_from(n).ok()),
        tpm: row.tpm.and_then(|n| u32::try_from(n).ok()),
        budget_micros: row.budget_micros,
        budget_period: BudgetPeriod::parse(&row.budget_period),
        expires_at: row.expires_at,
        metadata: row.metadata.and_then(|json| serde_json::from_str(&json).ok()),
        // A stored policy that no longer parses must not silently switch protection off: fail closed.
        guardrails: row.guardrails.map(|json| {
            serde_json::from_str(&json).unwrap_or_else(|error| {
                tracing::error!(%error, "a key's stored guardrail policy does not parse; applying the strictest one");
                GuardrailPolicy {
                    pii: PiiAction::Block,
                    prompt_injection: true,
                    check_output: true,
                    ..GuardrailPolicy::default()
                }
            })
        }),
        // An unreadable cache policy only loses caching, never protection.
        cache: row.cache.and_then(|json| serde_json::from_str(&json).ok()),
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

fn new_secret() -> String {
    // Two v4 UUIDs: 244 bits from the operating system's secure random source.
    format!(
        "{SECRET_PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn shown_prefix(secret: &str) -> String {
    secret.chars().take(SHOWN_PREFIX_CHARS).collect()
}

pub(crate) fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Whether a model list (`None`: every model) lets a caller use `model`.
pub(crate) fn model_allowed(models: Option<&[String]>, model: &str) -> bool {
    models.is_none_or(|models| models.iter().any(|allowed| allowed == model))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn store() -> KeyStore {
        let db = Database::open_in_memory().await.unwrap();
        crate::schema::migrate(&db).await.unwrap();
        KeyStore::new(db)
    }

    #[tokio::test]
    async fn secrets_are_shown_once_and_stored_hashed() {
        let keys = store().await;
        let issued = keys
            .create(NewKey {
                tenant: "acme".to_owned(),
                ..NewKey::default()
            })
            .await
            .unwrap();
        assert!(
            issued.key.starts_with("fw-") && issued.key.len() == 67,
            "{}",
            issued.key
        );
        let stored: Vec<(String,)> = sqlx::query_as("SELECT key_hash FROM api_keys")
            .fetch_all(keys.db.pool())
            .await
            .unwrap();
        assert_eq!(stored[0].0, hash_secret(&issued.key));
        assert!(!stored[0].0.contains(&issued.key[3..]));
        assert_eq!(keys.authenticate(&issued.key).await.unwrap().unwrap().tenant, "acme");
        assert_eq!(keys.authenticate("fw-wrong").await.unwrap(), Err(Rejection::Unknown));
    }

    #[tokio::test]
    async fn rotation_and_revocation_take_effect_at_once() {
        let keys = store().await;
        let issued = keys
            .create(NewKey {
                tenant: "acme".to_owned(),
                ..NewKey::default()
            })
            .await
            .unwrap();
        let rotated = keys.rotate(&issued.info.id).await.unwrap();
        assert_eq!(keys.authenticate(&issued.key).await.unwrap(), Err(Rejection::Unknown));
        assert!(keys.authenticate(&rotated.key).await.unwrap().is_ok());
        keys.revoke(&issued.info.id).await.unwrap();
        assert_eq!(keys.authenticate(&rotated.key).await.unwrap(), Err(Rejection::Revoked));
        assert!(matches!(keys.rotate(&issued.info.id).await, Err(KeyError::NotFound(_))));
        assert!(matches!(keys.revoke("key_nope").await, Err(KeyError::NotFound(_))));
    }

    #[tokio::test]
    async fn model_lists_and_bad_requests() {
        let keys = store().await;
        let issued = keys
            .create(NewKey {
                tenant: "t".to_owned(),
                models: Some(vec!["a".to_owned()]),
                ..NewKey::default()
            })
            .await
            .unwrap();
        assert!(issued.info.allows_model("a") && !issued.info.allows_model("b"));
        for bad in [
            NewKey {
                tenant: " ".to_owned(),
                ..NewKey::default()
            },
            NewKey {
                tenant: "t".to_owned(),
                models: Some(vec![]),
                ..NewKey::default()
            },
            NewKey {
                tenant: "t".to_owned(),
                budget_micros: Some(-1),
                ..NewKey::default()
            },
            NewKey {
                tenant: "t".to_owned(),
                expires_at: Some(1),
                ..NewKey::default()
            },
        ] {
            assert!(matches!(keys.create(bad).await, Err(KeyError::Invalid(_))));
        }
        assert_eq!(keys.list().await.unwrap().len(), 1);
    }
}
