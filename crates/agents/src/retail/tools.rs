//! The store's fifteen service tools, with the behaviour and refusals the domain's reference specifies, and one
//! rule it leaves to the agent: a conversation serves one authenticated customer, so tools about users and orders
//! refuse until a lookup has identified them, and refuse anyone else's records afterwards.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::db::{Address, Cents, Order, OrderStatus, Payment, PaymentMethod, RetailDb, TransactionType, User};
use crate::tool::{Tool, ToolEffect, ToolError, ToolSpec};

/// A store shared by every conversation that works on it.
pub type SharedRetailDb = Arc<Mutex<RetailDb>>;

/// One conversation's view of the store: who it has authenticated.
pub struct RetailSession {
    db: SharedRetailDb,
    customer: Mutex<Option<String>>,
    /// Where the store is saved after every change; `None` keeps it in memory (evaluations).
    file: Option<Arc<std::path::Path>>,
}

impl RetailSession {
    /// A conversation on `db` with nobody authenticated yet.
    pub fn new(db: SharedRetailDb, file: Option<Arc<std::path::Path>>) -> Arc<RetailSession> {
        Arc::new(RetailSession {
            db,
            customer: Mutex::new(None),
            file,
        })
    }

    /// The authenticated customer's user id.
    pub fn customer(&self) -> Option<String> {
        self.customer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Treats `user_id` as authenticated, as when replaying a conversation's actions.
    pub fn assume(&self, user_id: &str) {
        *self.customer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(user_id.to_owned());
    }

    fn authenticate(&self, user_id: &str) -> Result<(), ToolError> {
        let mut customer = self.customer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match customer.as_deref() {
            Some(current) if current != user_id => Err(ToolError::Failed(format!(
                "this conversation already serves {current}; only one customer can be helped per conversation"
            ))),
            _ => {
                *customer = Some(user_id.to_owned());
                Ok(())
            }
        }
    }

    fn require_customer(&self, user_id: &str) -> Result<(), ToolError> {
        match self.customer().as_deref() {
            None => Err(ToolError::Failed(
                "authenticate the customer first (find_user_id_by_email or find_user_id_by_name_zip)".to_owned(),
            )),
            Some(current) if current != user_id => Err(ToolError::Failed(format!(
                "that record belongs to another customer; this conversation serves {current}"
            ))),
            Some(_) => Ok(()),
        }
    }
}

/// The store's tools for one conversation.
pub fn tools(session: &Arc<RetailSession>) -> Vec<Arc<dyn Tool>> {
    RetailToolKind::ALL
        .iter()
        .map(|kind| {
            Arc::new(RetailTool {
                spec: kind.spec(),
                kind: *kind,
                session: session.clone(),
            }) as Arc<dyn Tool>
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetailToolKind {
    Calculate,
    CancelPendingOrder,
    ExchangeDeliveredOrderItems,
    FindUserIdByEmail,
    FindUserIdByNameZip,
    GetItemDetails,
    GetOrderDetails,
    GetProductDetails,
    GetUserDetails,
    ListAllProductTypes,
    ModifyPendingOrderAddress,
    ModifyPendingOrderItems,
    ModifyPendingOrderPayment,
    ModifyUserAddress,
    ReturnDeliveredOrderItems,
    TransferToHumanAgents,
}

const ORDER_ID: &str = "The order id, with its leading '#', such as '#W0000000'.";
const ITEM_IDS: &str = "Item ids (variant ids, not product ids); an id appears once per unit.";
const PAYMENT_ID: &str = "A payment method id from the user's profile, such as 'gift_card_0000000'.";

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn strings(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": description})
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn address_properties(owner: (&str, Value)) -> Value {
    json!({
        owner.0: owner.1,
        "address1": string("First address line, such as '123 Main St'."),
        "address2": string("Second address line, such as 'Apt 1', or ''."),
        "city": string("City."),
        "state": string("State, such as 'CA'."),
        "country": string("Country, such as 'USA'."),
        "zip": string("Zip code, such as '12345'."),
    })
}

const ADDRESS_FIELDS: [&str; 6] = ["address1", "address2", "city", "state", "country", "zip"];

impl RetailToolKind {
    const ALL: [RetailToolKind; 16] = [
        RetailToolKind::Calculate,
        RetailToolKind::CancelPendingOrder,
        RetailToolKind::ExchangeDeliveredOrderItems,
        RetailToolKind::FindUserIdByEmail,
        RetailToolKind::FindUserIdByNameZip,
        RetailToolKind::GetItemDetails,
        RetailToolKind::GetOrderDetails,
        RetailToolKind::GetProductDetails,
        RetailToolKind::GetUserDetails,
        RetailToolKind::ListAllProductTypes,
        RetailToolKind::ModifyPendingOrderAddress,
        RetailToolKind::ModifyPendingOrderItems,
        RetailToolKind::ModifyPendingOrderPayment,
        RetailToolKind::ModifyUserAddress,
        RetailToolKind::ReturnDeliveredOrderItems,
        RetailToolKind::TransferToHumanAgents,
    ];

    fn spec(self) -> ToolSpec {
        use RetailToolKind as K;
        let (name, effect, description, parameters) = match self {
            K::Calculate => (
                "calculate",
                ToolEffect::Generic,
                "Evaluate arithmetic (numbers, + - * /, parentheses); the result is rounded to 2 decimals.",
                object(
                    json!({"expression": string("Such as '(19.99 + 5) * 2'.")}),
                    &["expression"],
                ),
            ),
            K::CancelPendingOrder => (
                "cancel_pending_order",
                ToolEffect::Write,
                "Cancel a pending order and refund its payments (gift cards at once, other methods in 5-7 business \
                 days). Only after the customer confirmed the order and the reason.",
                object(
                    json!({
                        "order_id": string(ORDER_ID),
                        "reason": {"type": "string", "enum": ["no longer needed", "ordered by mistake"]},
                    }),
                    &["order_id", "reason"],
                ),
            ),
            K::ExchangeDeliveredOrderItems => (
                "exchange_delivered_order_items",
                ToolEffect::Write,
                "Exchange items of a delivered order for other available variants of the same products; the price \
                 difference is paid or refunded with the given method. Once per order, after confirmation.",
                object(
                    json!({
                        "order_id": string(ORDER_ID),
                        "item_ids": strings(ITEM_IDS),
                        "new_item_ids": strings("The new item ids, position by position."),
                        "payment_method_id": string(PAYMENT_ID),
                    }),
                    &["order_id", "item_ids", "new_item_ids", "payment_method_id"],
                ),
            ),
            K::FindUserIdByEmail => (
                "find_user_id_by_email",
                ToolEffect::Read,
                "Authenticate the customer by email; returns their user id.",
                object(json!({"email": string("Such as 'someone@example.com'.")}), &["email"]),
            ),
            K::FindUserIdByNameZip => (
                "find_user_id_by_name_zip",
                ToolEffect::Read,
                "Authenticate the customer by first name, last name and zip code, when they cannot give an email.",
                object(
                    json!({
                        "first_name": string("Such as 'John'."),
                        "last_name": string("Such as 'Doe'."),
                        "zip": string("Such as '12345'."),
                    }),
                    &["first_name", "last_name", "zip"],
                ),
            ),
            K::GetItemDetails => (
                "get_item_details",
                ToolEffect::Read,
                "Options, availability and price of one item (variant).",
                object(
                    json!({"item_id": string("An item id, not a product id.")}),
                    &["item_id"],
                ),
            ),
            K::GetOrderDetails => (
                "get_order_details",
                ToolEffect::Read,
                "Status, items, fulfillments and payments of one of the customer's orders.",
                object(json!({"order_id": string(ORDER_ID)}), &["order_id"]),
            ),
            K::GetProductDetails => (
                "get_product_details",
                ToolEffect::Read,
                "A product type and all its variants with options, availability and price.",
                object(
                    json!({"product_id": string("A product id, not an item id.")}),
                    &["product_id"],
                ),
            ),
            K::GetUserDetails => (
                "get_user_details",
                ToolEffect::Read,
                "The customer's profile: address, email, payment methods (with gift card balances) and order ids.",
                object(json!({"user_id": string("Such as 'sara_doe_496'.")}), &["user_id"]),
            ),
            K::ListAllProductTypes => (
                "list_all_product_types",
                ToolEffect::Read,
                "Every product type's name and product id.",
                object(json!({}), &[]),
            ),
            K::ModifyPendingOrderAddress => (
                "modify_pending_order_address",
                ToolEffect::Write,
                "Change the shipping address of a pending order, after confirmation.",
                object(
                    address_properties(("order_id", string(ORDER_ID))),
                    &with_address("order_id"),
                ),
            ),
            K::ModifyPendingOrderItems => (
                "modify_pending_order_items",
                ToolEffect::Write,
                "Swap items of a pending order for other available variants of the same products; the difference \
                 is paid or refunded with the given method. Once per order, after confirmation.",
                object(
                    json!({
                        "order_id": string(ORDER_ID),
                        "item_ids": strings(ITEM_IDS),
                        "new_item_ids": strings("The new item ids, position by position."),
                        "payment_method_id": string(PAYMENT_ID),
                    }),
                    &["order_id", "item_ids", "new_item_ids", "payment_method_id"],
                ),
            ),
            K::ModifyPendingOrderPayment => (
                "modify_pending_order_payment",
                ToolEffect::Write,
                "Pay a pending order with another of the customer's methods; the old one is refunded. After \
                 confirmation.",
                object(
                    json!({"order_id": string(ORDER_ID), "payment_method_id": string(PAYMENT_ID)}),
                    &["order_id", "payment_method_id"],
                ),
            ),
            K::ModifyUserAddress => (
                "modify_user_address",
                ToolEffect::Write,
                "Change the customer's default address, after confirmation.",
                object(
                    address_properties(("user_id", string("Such as 'sara_doe_496'."))),
                    &with_address("user_id"),
                ),
            ),
            K::ReturnDeliveredOrderItems => (
                "return_delivered_order_items",
                ToolEffect::Write,
                "Request the return of items of a delivered order, refunded to the original payment method or a \
                 gift card. Once per order, after confirmation.",
                object(
                    json!({
                        "order_id": string(ORDER_ID),
                        "item_ids": strings(ITEM_IDS),
                        "payment_method_id": string(PAYMENT_ID),
                    }),
                    &["order_id", "item_ids", "payment_method_id"],
                ),
            ),
            K::TransferToHumanAgents => (
                "transfer_to_human_agents",
                ToolEffect::Generic,
                "Hand the customer to a person, with a summary, when they ask for one or the request is outside \
                 what these tools and the policy allow.",
                object(json!({"summary": string("The customer's issue.")}), &["summary"]),
            ),
        };
        ToolSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            parameters,
            effect,
        }
    }
}

fn with_address(owner: &'static str) -> [&'static str; 7] {
    let mut fields = [owner; 7];
    fields[1..].copy_from_slice(&ADDRESS_FIELDS);
    fields
}

struct RetailTool {
    spec: ToolSpec,
    kind: RetailToolKind,
    session: Arc<RetailSession>,
}

impl Tool for RetailTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<Value, ToolError>> {
        Box::pin(async move { self.run(arguments) })
    }

    fn observe(&self, _arguments: &Value, result: &Value) {
        // A lookup that succeeded earlier in a resumed conversation authenticated its customer.
        if matches!(
            self.kind,
            RetailToolKind::FindUserIdByEmail | RetailToolKind::FindUserIdByNameZip
        ) && let Some(user_id) = result.as_str()
        {
            let _ = self.session.authenticate(user_id);
        }
    }
}

fn parse<T: DeserializeOwned>(arguments: Value) -> Result<T, ToolError> {
    serde_json::from_value(arguments).map_err(|error| ToolError::InvalidArguments(error.to_string()))
}

fn failed(message: impl Into<String>) -> ToolError {
    ToolError::Failed(message.into())
}

fn to_value(value: &impl serde::Serialize) -> Result<Value, ToolError> {
    serde_json::to_value(value).map_err(|error| failed(error.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressArgs {
    address1: String,
    address2: String,
    city: String,
    state: String,
    country: String,
    zip: String,
}

impl AddressArgs {
    fn into_address(self) -> Address {
        Address {
            address1: self.address1,
            address2: self.address2,
            city: self.city,
            country: self.country,
            state: self.state,
            zip: self.zip,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapArgs {
    order_id: String,
    item_ids: Vec<String>,
    new_item_ids: Vec<String>,
    payment_method_id: String,
}

impl RetailTool {
    fn run(&self, arguments: Value) -> Result<Value, ToolError> {
        let session = &self.session;
        let mut db = session.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = self.run_locked(&mut db, arguments)?;
        if self.spec.effect == ToolEffect::Write
            && let Some(file) = &session.file
        {
            // The change is on disk before the model hears it happened.
            super::save(&db, file).map_err(|error| failed(format!("the change could not be saved: {error}")))?;
        }
        Ok(result)
    }

    fn run_locked(&self, db: &mut RetailDb, arguments: Value) -> Result<Value, ToolError> {
        use RetailToolKind as K;
        let session = &self.session;
        match self.kind {
            K::Calculate => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    expression: String,
                }
                let args: Args = parse(arguments)?;
                super::arithmetic::evaluate(&args.expression)
                    .map(|value| Value::String(super::arithmetic::format_rounded(value)))
                    .map_err(failed)
            }
            K::FindUserIdByEmail => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    email: String,
                }
                let args: Args = parse(arguments)?;
                let user_id = db
                    .users
                    .values()
                    .find(|user| user.email.eq_ignore_ascii_case(&args.email))
                    .map(|user| user.user_id.clone())
                    .ok_or_else(|| failed("User not found"))?;
                session.authenticate(&user_id)?;
                Ok(Value::String(user_id))
            }
            K::FindUserIdByNameZip => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    first_name: String,
                    last_name: String,
                    zip: String,
                }
                let args: Args = parse(arguments)?;
                let user_id = db
                    .users
                    .values()
                    .find(|user| {
                        user.name.first_name.to_lowercase() == args.first_name.to_lowercase()
                            && user.name.last_name.to_lowercase() == args.last_name.to_lowercase()
                            && user.address.zip == args.zip
                    })
                    .map(|user| user.user_id.clone())
                    .ok_or_else(|| failed("User not found"))?;
                session.authenticate(&user_id)?;
                Ok(Value::String(user_id))
            }
            K::GetUserDetails => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    user_id: String,
                }
                let args: Args = parse(arguments)?;
                let user = user(db, &args.user_id)?;
                session.require_customer(&user.user_id)?;
                to_value(user)
            }
            K::GetOrderDetails => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    order_id: String,
                }
                let args: Args = parse(arguments)?;
                let order = order(db, &args.order_id)?;
                session.require_customer(&order.user_id)?;
                to_value(order)
            }
            K::GetProductDetails => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    product_id: String,
                }
                let args: Args = parse(arguments)?;
                let product = db
                    .products
                    .get(&args.product_id)
                    .ok_or_else(|| failed("Product not found"))?;
                to_value(product)
            }
            K::GetItemDetails => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    item_id: String,
                }
                let args: Args = parse(arguments)?;
                let item = db
                    .products
                    .values()
                    .find_map(|product| product.variants.get(&args.item_id))
                    .ok_or_else(|| failed("Item not found"))?;
                to_value(item)
            }
            K::ListAllProductTypes => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {}
                let _: Args = parse(arguments)?;
                let names: std::collections::BTreeMap<&str, &str> = db
                    .products
                    .values()
                    .map(|product| (product.name.as_str(), product.product_id.as_str()))
                    .collect();
                to_value(&names)
            }
            K::CancelPendingOrder => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    order_id: String,
                    reason: String,
                }
                let args: Args = parse(arguments)?;
                let owner = order(db, &args.order_id)?.user_id.clone();
                session.require_customer(&owner)?;
                cancel_pending_order(db, &args.order_id, &args.reason)
            }
            K::ModifyPendingOrderAddress => {
                #[derive(Deserialize)]
                struct Args {
                    order_id: String,
                    #[serde(flatten)]
                    address: AddressArgs,
                }
                let args: Args = parse(arguments)?;
                let order = order_mut(db, &args.order_id)?;
                session.require_customer(&order.user_id)?;
                if !order.status.is_pending() {
                    return Err(failed("Non-pending order cannot be modified"));
                }
                order.address = args.address.into_address();
                to_value(order)
            }
            K::ModifyUserAddress => {
                #[derive(Deserialize)]
                struct Args {
                    user_id: String,
                    #[serde(flatten)]
                    address: AddressArgs,
                }
                let args: Args = parse(arguments)?;
                session.require_customer(&user(db, &args.user_id)?.user_id)?;
                let user = db
                    .users
                    .get_mut(&args.user_id)
                    .ok_or_else(|| failed("User not found"))?;
                user.address = args.address.into_address();
                to_value(user)
            }
            K::ModifyPendingOrderItems => {
                let args: SwapArgs = parse(arguments)?;
                session.require_customer(&order(db, &args.order_id)?.user_id)?;
                modify_pending_order_items(db, args)
            }
            K::ModifyPendingOrderPayment => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    order_id: String,
                    payment_method_id: String,
                }
                let args: Args = parse(arguments)?;
                session.require_customer(&order(db, &args.order_id)?.user_id)?;
                modify_pending_order_payment(db, &args.order_id, &args.payment_method_id)
            }
            K::ExchangeDeliveredOrderItems => {
                let args: SwapArgs = parse(arguments)?;
                session.require_customer(&order(db, &args.order_id)?.user_id)?;
                exchange_delivered_order_items(db, args)
            }
            K::ReturnDeliveredOrderItems => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    order_id: String,
                    item_ids: Vec<String>,
                    payment_method_id: String,
                }
                let args: Args = parse(arguments)?;
                session.require_customer(&order(db, &args.order_id)?.user_id)?;
                return_delivered_order_items(db, &args.order_id, args.item_ids, &args.payment_method_id)
            }
            K::TransferToHumanAgents => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    #[serde(rename = "summary")]
                    _summary: String,
                }
                let _: Args = parse(arguments)?;
                Ok(Value::String("Transfer successful".to_owned()))
            }
        }
    }
}

fn user<'a>(db: &'a RetailDb, user_id: &str) -> Result<&'a User, ToolError> {
    db.users.get(user_id).ok_or_else(|| failed("User not found"))
}

fn order<'a>(db: &'a RetailDb, order_id: &str) -> Result<&'a Order, ToolError> {
    db.orders.get(order_id).ok_or_else(|| failed("Order not found"))
}

fn order_mut<'a>(db: &'a mut RetailDb, order_id: &str) -> Result<&'a mut Order, ToolError> {
    db.orders.get_mut(order_id).ok_or_else(|| failed("Order not found"))
}

fn payment_method<'a>(db: &'a RetailDb, user_id: &str, method_id: &str) -> Result<&'a PaymentMethod, ToolError> {
    user(db, user_id)?
        .payment_methods
        .get(method_id)
        .ok_or_else(|| failed("Payment method not found"))
}

/// Adds `delta` to a gift card's balance; other methods are settled outside the store.
fn credit_gift_card(db: &mut RetailDb, user_id: &str, method_id: &str, delta: Cents) {
    if let Some(PaymentMethod::GiftCard { balance, .. }) = db
        .users
        .get_mut(user_id)
        .and_then(|user| user.payment_methods.get_mut(method_id))
    {
        balance.0 += delta.0;
    }
}

fn gift_card_balance(method: &PaymentMethod) -> Option<Cents> {
    match method {
        PaymentMethod::GiftCard { balance, .. } => Some(*balance),
        _ => None,
    }
}

/// Every id in `wanted` is in `have` at least as many times as it is wanted.
fn all_present(wanted: &[String], have: &[&str]) -> Option<String> {
    wanted
        .iter()
        .find(|id| {
            wanted.iter().filter(|other| other == id).count()
                > have.iter().filter(|other| **other == id.as_str()).count()
        })
        .cloned()
}

fn cancel_pending_order(db: &mut RetailDb, order_id: &str, reason: &str) -> Result<Value, ToolError> {
    let order = order(db, order_id)?;
    if order.status != OrderStatus::Pending {
        return Err(failed("Non-pending order cannot be cancelled"));
    }
    if reason != "no longer needed" && reason != "ordered by mistake" {
        return Err(failed("Invalid reason"));
    }
    let user_id = order.user_id.clone();
    let payments = order.payment_history.clone();
    for payment in &payments {
        payment_method(db, &user_id, &payment.payment_method_id)?;
    }
    for payment in &payments {
        credit_gift_card(db, &user_id, &payment.payment_method_id, payment.amount);
    }
    let order = order_mut(db, order_id)?;
    order.status = OrderStatus::Cancelled;
    order.cancel_reason = Some(reason.to_owned());
    order
        .payment_history
        .extend(payments.into_iter().map(|payment| Payment {
            transaction_type: TransactionType::Refund,
            ..payment
        }));
    to_value(order)
}

/// The price difference of swapping `args.item_ids` for `args.new_item_ids` within their products, checking
/// each new item exists in the same product and is available.
fn swap_difference(db: &RetailDb, order: &Order, args: &SwapArgs, refuse_same: bool) -> Result<Cents, ToolError> {
    if args.item_ids.len() != args.new_item_ids.len() {
        return Err(failed("The number of items to be exchanged should match"));
    }
    let mut difference = 0;
    for (item_id, new_item_id) in args.item_ids.iter().zip(&args.new_item_ids) {
        if refuse_same && item_id == new_item_id {
            return Err(failed("The new item id should be different from the old item id"));
        }
        let item = order
            .items
            .iter()
            .find(|item| &item.item_id == item_id)
            .ok_or_else(|| failed(format!("Item {item_id} not found")))?;
        let product = db
            .products
            .get(&item.product_id)
            .ok_or_else(|| failed("Product not found"))?;
        let variant = product
            .variants
            .get(new_item_id)
            .ok_or_else(|| failed("Variant not found"))?;
        if !variant.available {
            return Err(failed(format!("New item {new_item_id} not found or available")));
        }
        difference += variant.price.0 - item.price.0;
    }
    Ok(Cents(difference))
}

fn modify_pending_order_items(db: &mut RetailDb, args: SwapArgs) -> Result<Value, ToolError> {
    let order = order(db, &args.order_id)?;
    if order.status != OrderStatus::Pending {
        return Err(failed("Non-pending order cannot be modified"));
    }
    let have: Vec<&str> = order.items.iter().map(|item| item.item_id.as_str()).collect();
    if let Some(missing) = all_present(&args.item_ids, &have) {
        return Err(failed(format!("{missing} not found")));
    }
    let difference = swap_difference(db, order, &args, true)?;
    let method = payment_method(db, &order.user_id, &args.payment_method_id)?;
    if gift_card_balance(method).is_some_and(|balance| balance < difference) {
        return Err(failed("Insufficient gift card balance to pay for the new item"));
    }
    let user_id = order.user_id.clone();
    credit_gift_card(db, &user_id, &args.payment_method_id, Cents(-difference.0));
    let new_variants: Vec<_> = {
        let order = self::order(db, &args.order_id)?;
        args.item_ids
            .iter()
            .zip(&args.new_item_ids)
            .filter_map(|(old, new)| {
                let item = order.items.iter().find(|item| &item.item_id == old)?;
                db.products.get(&item.product_id)?.variants.get(new).cloned()
            })
            .collect()
    };
    let order = order_mut(db, &args.order_id)?;
    order.payment_history.push(Payment {
        transaction_type: if difference.0 > 0 {
            TransactionType::Payment
        } else {
            TransactionType::Refund
        },
        amount: Cents(difference.0.abs()),
        payment_method_id: args.payment_method_id.clone(),
    });
    // Each swapped unit takes its own new variant's price and options.
    for (old, variant) in args.item_ids.iter().zip(new_variants) {
        if let Some(item) = order.items.iter_mut().find(|item| &item.item_id == old) {
            item.item_id = variant.item_id;
            item.price = variant.price;
            item.options = variant.options;
        }
    }
    order.status = OrderStatus::PendingItemModified;
    to_value(order)
}

fn modify_pending_order_payment(db: &mut RetailDb, order_id: &str, method_id: &str) -> Result<Value, ToolError> {
    let order = order(db, order_id)?;
    if !order.status.is_pending() {
        return Err(failed("Non-pending order cannot be modified"));
    }
    let method = payment_method(db, &order.user_id, method_id)?;
    let [first] = order.payment_history.as_slice() else {
        return Err(failed("There should be exactly one payment for a pending order"));
    };
    if first.transaction_type != TransactionType::Payment {
        return Err(failed("There should be exactly one payment for a pending order"));
    }
    if first.payment_method_id == method_id {
        return Err(failed(
            "The new payment method should be different from the current one",
        ));
    }
    let amount = first.amount;
    if gift_card_balance(method).is_some_and(|balance| balance < amount) {
        return Err(failed("Insufficient gift card balance to pay for the order"));
    }
    let old_method = first.payment_method_id.clone();
    let user_id = order.user_id.clone();
    payment_method(db, &user_id, &old_method)?;
    credit_gift_card(db, &user_id, method_id, Cents(-amount.0));
    credit_gift_card(db, &user_id, &old_method, amount);
    let order = order_mut(db, order_id)?;
    order.payment_history.push(Payment {
        transaction_type: TransactionType::Payment,
        amount,
        payment_method_id: method_id.to_owned(),
    });
    order.payment_history.push(Payment {
        transaction_type: TransactionType::Refund,
        amount,
        payment_method_id: old_method,
    });
    to_value(order)
}

fn exchange_delivered_order_items(db: &mut RetailDb, args: SwapArgs) -> Result<Value, ToolError> {
    let order = order(db, &args.order_id)?;
    if order.status != OrderStatus::Delivered {
        return Err(failed("Non-delivered order cannot be exchanged"));
    }
    let have: Vec<&str> = order.items.iter().map(|item| item.item_id.as_str()).collect();
    if let Some(missing) = all_present(&args.item_ids, &have) {
        return Err(failed(format!("Number of {missing} not found.")));
    }
    let difference = swap_difference(db, order, &args, false)?;
    let method = payment_method(db, &order.user_id, &args.payment_method_id)?;
    if gift_card_balance(method).is_some_and(|balance| balance < difference) {
        return Err(failed("Insufficient gift card balance to pay for the price difference"));
    }
    let order = order_mut(db, &args.order_id)?;
    let mut old = args.item_ids;
    let mut new = args.new_item_ids;
    old.sort();
    new.sort();
    order.status = OrderStatus::ExchangeRequested;
    order.exchange_items = Some(old);
    order.exchange_new_items = Some(new);
    order.exchange_payment_method_id = Some(args.payment_method_id);
    order.exchange_price_difference = Some(difference);
    to_value(order)
}

fn return_delivered_order_items(
    db: &mut RetailDb,
    order_id: &str,
    mut item_ids: Vec<String>,
    method_id: &str,
) -> Result<Value, ToolError> {
    let order = order(db, order_id)?;
    if order.status != OrderStatus::Delivered {
        return Err(failed("Non-delivered order cannot be returned"));
    }
    let method = payment_method(db, &order.user_id, method_id)?;
    let original = order
        .payment_history
        .first()
        .map(|payment| payment.payment_method_id.as_str());
    if gift_card_balance(method).is_none() && original != Some(method_id) {
        return Err(failed("Payment method should be the original payment method"));
    }
    let have: Vec<&str> = order.items.iter().map(|item| item.item_id.as_str()).collect();
    if all_present(&item_ids, &have).is_some() {
        return Err(failed("Some item not found"));
    }
    let order = order_mut(db, order_id)?;
    item_ids.sort();
    order.status = OrderStatus::ReturnRequested;
    order.return_items = Some(item_ids);
    order.return_payment_method_id = Some(method_id.to_owned());
    to_value(order)
}
