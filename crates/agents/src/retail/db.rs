//! The retail store's database: users, orders and products, read from the `db.json` shape. Money is held in
//! integer cents (the data's prices have two decimals), so refunds and balances add up exactly.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money in cents, written as dollars (`536.65`) on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cents(pub i64);

impl Cents {
    /// The amount as dollars.
    pub fn dollars(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl std::fmt::Display for Cents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:02}", self.0.abs() / 100, self.0.abs() % 100)
    }
}

impl Serialize for Cents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.dollars())
    }
}

impl<'de> Deserialize<'de> for Cents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cents, D::Error> {
        let dollars = f64::deserialize(deserializer)?;
        if !dollars.is_finite() || dollars.abs() > 1e12 {
            return Err(serde::de::Error::custom(format!("{dollars} is not an amount of money")));
        }
        Ok(Cents((dollars * 100.0).round() as i64))
    }
}

/// One sellable variant of a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Variant {
    pub item_id: String,
    pub options: BTreeMap<String, String>,
    pub available: bool,
    pub price: Cents,
}

/// A product type and its variants by item id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Product {
    pub name: String,
    pub product_id: String,
    pub variants: BTreeMap<String, Variant>,
}

/// A person's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct UserName {
    pub first_name: String,
    pub last_name: String,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Address {
    pub address1: String,
    pub address2: String,
    pub city: String,
    pub country: String,
    pub state: String,
    pub zip: String,
}

/// A way a user pays: a gift card carries a balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)]
pub enum PaymentMethod {
    CreditCard {
        id: String,
        brand: String,
        last_four: String,
    },
    Paypal {
        id: String,
    },
    GiftCard {
        id: String,
        balance: Cents,
    },
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct User {
    pub user_id: String,
    pub name: UserName,
    pub address: Address,
    pub email: String,
    pub payment_methods: BTreeMap<String, PaymentMethod>,
    pub orders: Vec<String>,
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct OrderItem {
    pub name: String,
    pub product_id: String,
    pub item_id: String,
    pub price: Cents,
    pub options: BTreeMap<String, String>,
}

/// A shipment of some of an order's items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Fulfillment {
    pub tracking_id: Vec<String>,
    pub item_ids: Vec<String>,
}

/// Money moving for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Payment {
    pub transaction_type: TransactionType,
    pub amount: Cents,
    pub payment_method_id: String,
}

/// Whether money went to the store or back to the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum TransactionType {
    Payment,
    Refund,
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum OrderStatus {
    #[serde(rename = "pending")]
    Pending,
    #[serde(rename = "pending (item modified)")]
    PendingItemModified,
    #[serde(rename = "processed")]
    Processed,
    #[serde(rename = "delivered")]
    Delivered,
    #[serde(rename = "cancelled")]
    Cancelled,
    #[serde(rename = "exchange requested")]
    ExchangeRequested,
    #[serde(rename = "return requested")]
    ReturnRequested,
}

impl OrderStatus {
    /// Both pending states: the address and payment may still change.
    pub fn is_pending(self) -> bool {
        matches!(self, OrderStatus::Pending | OrderStatus::PendingItemModified)
    }
}

/// An order, with what was requested of it since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Order {
    pub order_id: String,
    pub user_id: String,
    pub address: Address,
    pub items: Vec<OrderItem>,
    pub status: OrderStatus,
    pub fulfillments: Vec<Fulfillment>,
    pub payment_history: Vec<Payment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_items: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_new_items: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_payment_method_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_price_difference: Option<Cents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_items: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_payment_method_id: Option<String>,
}

/// The whole store. Two databases are equal exactly when every user, order and product is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RetailDb {
    pub products: BTreeMap<String, Product>,
    pub users: BTreeMap<String, User>,
    pub orders: BTreeMap<String, Order>,
}

/// Why a store file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RetailDbError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a store in the expected shape.
    #[error("{path} is not a retail database: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Where and why.
        source: serde_json::Error,
    },
}

impl RetailDb {
    /// Reads a store from a `db.json` file.
    pub fn load(path: &Path) -> Result<RetailDb, RetailDbError> {
        let text = std::fs::read_to_string(path).map_err(|source| RetailDbError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| RetailDbError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// The differences from `other`, one line per user, order or product that differs (at most `limit`).
    pub fn differences(&self, other: &RetailDb, limit: usize) -> Vec<String> {
        fn compare<T: PartialEq>(
            kind: &str,
            left: &BTreeMap<String, T>,
            right: &BTreeMap<String, T>,
            out: &mut Vec<String>,
        ) {
            for (id, value) in left {
                match right.get(id) {
                    Some(other) if other == value => {}
                    Some(_) => out.push(format!("{kind} {id} differs")),
                    None => out.push(format!("{kind} {id} is missing from the other")),
                }
            }
            for id in right.keys().filter(|id| !left.contains_key(*id)) {
                out.push(format!("{kind} {id} is only in the other"));
            }
        }
        let mut out = Vec::new();
        compare("user", &self.users, &other.users, &mut out);
        compare("order", &self.orders, &other.orders, &mut out);
        compare("product", &self.products, &other.products, &mut out);
        out.truncate(limit);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn cents_round_trip_through_dollars() {
        let amount: Cents = serde_json::from_str("536.65").unwrap();
        assert_eq!(amount, Cents(53665));
        assert_eq!(serde_json::to_string(&amount).unwrap(), "536.65");
        assert_eq!(Cents(-5).to_string(), "-0.05");
        assert_eq!(Cents(1200).to_string(), "12.00");
    }

    #[test]
    fn payment_methods_are_tagged_by_source() {
        let card: PaymentMethod =
            serde_json::from_str(r#"{"source":"gift_card","id":"gift_card_1","balance":60.0}"#).unwrap();
        assert_eq!(
            card,
            PaymentMethod::GiftCard {
                id: "gift_card_1".into(),
                balance: Cents(6000)
            }
        );
        assert!(serde_json::from_str::<PaymentMethod>(r#"{"source":"cheque","id":"x"}"#).is_err());
    }
}
