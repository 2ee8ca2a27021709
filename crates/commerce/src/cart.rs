//! Shopping carts, one per shopping session, kept in the database so a restart loses none.

use serde::Serialize;
use store::{Database, Migration};

use crate::CommerceError;

const SCHEMA: &str = "CREATE TABLE commerce_cart (
        session TEXT NOT NULL,
        product_id TEXT NOT NULL,
        quantity BIGINT NOT NULL,
        added_at BIGINT NOT NULL,
        PRIMARY KEY (session, product_id)
    );";

const MIGRATIONS: &[Migration] = &[Migration::portable(1, "shopping carts", SCHEMA)];

/// The most of one product a cart holds.
pub const MAX_QUANTITY: i64 = 99;

/// A line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CartLine {
    /// The product.
    pub product_id: String,
    /// How many.
    pub quantity: i64,
}

/// The carts of every session.
#[derive(Clone, Debug)]
pub struct Carts {
    db: Database,
}

impl Carts {
    /// The carts in `db`, creating their table on first use.
    pub async fn open(db: Database) -> Result<Carts, CommerceError> {
        db.migrate("commerce_cart", MIGRATIONS).await?;
        Ok(Carts { db })
    }

    /// Adds `quantity` of a product to the session's cart (up to [`MAX_QUANTITY`] in all) and returns the cart.
    pub async fn add(&self, session: &str, product_id: &str, quantity: i64) -> Result<Vec<CartLine>, CommerceError> {
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(CommerceError::InvalidRequest(format!(
                "quantity must be between 1 and {MAX_QUANTITY}, got {quantity}"
            )));
        }
        let now = crate::unix_millis();
        sqlx::query(
            "INSERT INTO commerce_cart (session, product_id, quantity, added_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (session, product_id) DO UPDATE SET \
             quantity = CASE WHEN commerce_cart.quantity + excluded.quantity > $5 THEN $5 \
                        ELSE commerce_cart.quantity + excluded.quantity END",
        )
        .bind(session)
        .bind(product_id)
        .bind(quantity)
        .bind(now)
        .bind(MAX_QUANTITY)
        .execute(self.db.pool())
        .await?;
        self.lines(session).await
    }

    /// Takes a product out of the session's cart; whether it was there.
    pub async fn remove(&self, session: &str, product_id: &str) -> Result<bool, CommerceError> {
        let removed = sqlx::query("DELETE FROM commerce_cart WHERE session = $1 AND product_id = $2")
            .bind(session)
            .bind(product_id)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        Ok(removed > 0)
    }

    /// The session's cart, in the order products were first added.
    pub async fn lines(&self, session: &str) -> Result<Vec<CartLine>, CommerceError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT product_id, quantity FROM commerce_cart WHERE session = $1 ORDER BY added_at, product_id",
        )
        .bind(session)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(product_id, quantity)| CartLine { product_id, quantity })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn adding_again_adds_up_within_the_cap_and_removing_removes() {
        let carts = Carts::open(Database::open_in_memory().await.unwrap()).await.unwrap();
        carts.add("s", "13", 2).await.unwrap();
        carts.add("s", "4", 1).await.unwrap();
        let lines = carts.add("s", "13", 98).await.unwrap();
        assert_eq!(
            lines,
            [
                CartLine {
                    product_id: "13".to_owned(),
                    quantity: MAX_QUANTITY
                },
                CartLine {
                    product_id: "4".to_owned(),
                    quantity: 1
                }
            ]
        );
        assert!(carts.lines("other").await.unwrap().is_empty());
        assert!(carts.remove("s", "13").await.unwrap());
        assert!(!carts.remove("s", "13").await.unwrap());
        assert_eq!(carts.add("s", "4", 0).await.unwrap_err().code(), "invalid_request");
    }
}
