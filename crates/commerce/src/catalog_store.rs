//! The catalog's home in the database: products stored as JSON documents keyed by id, in first-import order,
//! and a version number that every change bumps, so that a server notices imports made by another process
//! (`flywheel catalog import` with the server up) and reloads.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use store::{Database, Migration};

use crate::{CommerceError, Product};

/// The same DDL reads right in both dialects.
const SCHEMA: &str = "CREATE TABLE commerce_products (
        id TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        document TEXT NOT NULL
    );
    CREATE TABLE commerce_catalog (
        singleton BIGINT PRIMARY KEY CHECK (singleton = 1),
        version BIGINT NOT NULL
    );
    INSERT INTO commerce_catalog (singleton, version) VALUES (1, 0);";

const MIGRATIONS: &[Migration] = &[Migration::portable(1, "products and the catalog version", SCHEMA)];

/// Rows per statement: 3 parameters each, far under both backends' limits.
const ROWS_PER_STATEMENT: usize = 256;

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Products that were not in the catalog.
    pub inserted: usize,
    /// Products whose record changed.
    pub updated: usize,
    /// Products imported exactly as they were.
    pub unchanged: usize,
    /// Products removed because the file did not have them (only when replacing).
    pub removed: usize,
    /// The catalog's version after the import; it moves only when something changed.
    pub version: i64,
}

/// The products in the database.
#[derive(Clone, Debug)]
pub struct CatalogStore {
    db: Database,
}

impl CatalogStore {
    /// The catalog in `db`, creating its tables on first use.
    pub async fn open(db: Database) -> Result<CatalogStore, CommerceError> {
        db.migrate("commerce", MIGRATIONS).await?;
        Ok(CatalogStore { db })
    }

    /// The catalog's version: it grows with every import that changes something.
    pub async fn version(&self) -> Result<i64, CommerceError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT version FROM commerce_catalog WHERE singleton = 1")
                .fetch_one(self.db.pool())
                .await?,
        )
    }

    /// How many products the catalog holds.
    pub async fn count(&self) -> Result<usize, CommerceError> {
        let count: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM commerce_products")
            .fetch_one(self.db.pool())
            .await?;
        Ok(usize::try_from(count).unwrap_or_default())
    }

    /// Every product with the catalog's version, in the order they were first imported.
    pub async fn products(&self) -> Result<(Vec<Product>, i64), CommerceError> {
        let mut transaction = self.db.pool().begin().await?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM commerce_catalog WHERE singleton = 1")
            .fetch_one(&mut *transaction)
            .await?;
        let documents: Vec<(String, String)> =
            sqlx::query_as("SELECT id, document FROM commerce_products ORDER BY position")
                .fetch_all(&mut *transaction)
                .await?;
        transaction.commit().await?;
        let mut products = Vec::with_capacity(documents.len());
        for (id, document) in documents {
            match serde_json::from_str(&document) {
                Ok(product) => products.push(product),
                Err(error) => tracing::error!(id, %error, "a stored product cannot be read; it is left out"),
            }
        }
        Ok((products, version))
    }

    /// Adds the products that are new, rewrites those that changed and leaves the rest; with `replace`, also
    /// removes the products `products` does not have. All in one transaction: a failed import changes nothing.
    pub async fn import(&self, products: &[Product], replace: bool) -> Result<ImportSummary, CommerceError> {
        let mut transaction = self.db.pool().begin().await?;
        // Taking the write lock first makes concurrent imports queue instead of computing from the same state.
        sqlx::query("UPDATE commerce_catalog SET version = version WHERE singleton = 1")
            .execute(&mut *transaction)
            .await?;
        let stored: Vec<(String, String)> = sqlx::query_as("SELECT id, document FROM commerce_products")
            .fetch_all(&mut *transaction)
            .await?;
        let next_position: Option<i64> =
            sqlx::query_scalar("SELECT CAST(MAX(position) AS BIGINT) FROM commerce_products")
                .fetch_one(&mut *transaction)
                .await?;
        let mut next_position = next_position.map_or(0, |position| position + 1);
        let stored: HashMap<String, String> = stored.into_iter().collect();

        let mut summary = ImportSummary::default();
        let mut writes: Vec<(&str, i64, String)> = Vec::new();
        let mut changed_existing: Vec<(&str, String)> = Vec::new();
        for product in products {
            let document =
                serde_json::to_string(product).map_err(|error| CommerceError::Database(error.to_string()))?;
            match stored.get(&product.id) {
                None => {
                    summary.inserted += 1;
                    writes.push((&product.id, next_position, document));
                    next_position += 1;
                }
                Some(old) if *old == document => summary.unchanged += 1,
                Some(_) => {
                    summary.updated += 1;
                    changed_existing.push((&product.id, document));
                }
            }
        }
        for chunk in writes.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO commerce_products (id, position, document) VALUES {}",
                self.db.backend().values_placeholders(chunk.len(), 3)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, position, document) in chunk {
                query = query.bind(*id).bind(*position).bind(document.as_str());
            }
            query.execute(&mut *transaction).await?;
        }
        for (id, document) in &changed_existing {
            sqlx::query("UPDATE commerce_products SET document = $1 WHERE id = $2")
                .bind(document.as_str())
                .bind(*id)
                .execute(&mut *transaction)
                .await?;
        }
        if replace {
            let kept: HashSet<&str> = products.iter().map(|product| product.id.as_str()).collect();
            for id in stored.keys().filter(|id| !kept.contains(id.as_str())) {
                sqlx::query("DELETE FROM commerce_products WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *transaction)
                    .await?;
                summary.removed += 1;
            }
        }
        if summary.inserted + summary.updated + summary.removed > 0 {
            sqlx::query("UPDATE commerce_catalog SET version = version + 1 WHERE singleton = 1")
                .execute(&mut *transaction)
                .await?;
        }
        summary.version = sqlx::query_scalar("SELECT version FROM commerce_catalog WHERE singleton = 1")
            .fetch_one(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn product(id: &str, name: &str) -> Product {
        Product {
            id: id.to_owned(),
            name: name.to_owned(),
            class: vec!["Chairs".to_owned()],
            category_path: vec![],
            rating: None,
            review_count: 0,
            description: None,
            price: Some(10.0),
            features: vec![],
            attributes: Default::default(),
        }
    }

    #[tokio::test]
    async fn re_importing_updates_in_place_and_keeps_the_order() {
        let store = CatalogStore::open(Database::open_in_memory().await.unwrap())
            .await
            .unwrap();
        assert_eq!(store.version().await.unwrap(), 0);
        let first = store
            .import(&[product("a", "chair"), product("b", "stool")], false)
            .await
            .unwrap();
        assert_eq!((first.inserted, first.version), (2, 1));

        let second = store
            .import(
                &[product("b", "bar stool"), product("c", "bench"), product("a", "chair")],
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            (second.inserted, second.updated, second.unchanged, second.version),
            (1, 1, 1, 2)
        );
        let (products, version) = store.products().await.unwrap();
        let names: Vec<&str> = products.iter().map(|product| product.name.as_str()).collect();
        assert_eq!(names, ["chair", "bar stool", "bench"]);
        assert_eq!(version, 2);

        let same = store.import(&[product("a", "chair")], false).await.unwrap();
        assert_eq!((same.unchanged, same.version), (1, 2));

        let replaced = store.import(&[product("c", "bench")], true).await.unwrap();
        assert_eq!((replaced.removed, replaced.unchanged, replaced.version), (2, 1, 3));
        assert_eq!(store.count().await.unwrap(), 1);
    }
}
