//! What makes an order valid. Every rule has a named [`Reason`]; the first broken rule wins.

use serde_json::Value;
use std::collections::HashSet;
use taskflow_contracts::limits::{self, MAX_PAYMENT_TOKEN_CHARS, MAX_REFUND_OF_CHARS};
use taskflow_contracts::{keys, Money, OrderKind, OrderSubmitted, OwnerId, Reason, SCHEMA_VERSION};

// The bounds live in `taskflow_contracts::limits`, beside the AWS limits they serve.
pub use taskflow_contracts::limits::{MAX_ITEMS, MAX_ORDER_ID_CHARS, MAX_SKU_CHARS};
/// Beyond this even a rejection cannot be recorded under the id (DynamoDB key limit, with margin).
pub const MAX_KEY_BYTES: usize = limits::MAX_RECORDED_ORDER_ID_BYTES;
/// Longest owner id, in bytes (`OwnerId::MAX_BYTES`, `limits::MAX_OWNER_BYTES`).
pub const MAX_OWNER_BYTES: usize = OwnerId::MAX_BYTES;
/// The largest order taskflow takes, in minor units (one million in a two-decimal currency).
pub const MAX_ORDER_AMOUNT: Money = 100_000_000;
/// ISO 4217 codes taskflow takes.
pub const CURRENCIES: [&str; 8] = ["EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    /// For people: which field and why (at most `limits::MAX_REASON_DETAIL_CHARS`: it may quote
    /// the caller's input).
    pub detail: String,
}

pub(crate) fn reject(reason: Reason, detail: impl Into<String>) -> Rejection {
    Rejection { reason, detail: limits::truncate(&detail.into(), limits::MAX_REASON_DETAIL_CHARS) }
}

/// `FIELD_TOO_LONG` when `value` has more than `max` characters.
fn bounded(field: &str, value: Option<&str>, max: usize) -> Result<(), Rejection> {
    match value {
        Some(value) if value.chars().count() > max => {
            Err(reject(Reason::FieldTooLong, format!("{field} is {} characters; at most {max}", value.chars().count())))
        }
        _ => Ok(()),
    }
}

/// Reads and checks the `detail` of an `OrderSubmitted` event.
pub fn validate(detail: &Value) -> Result<OrderSubmitted, Rejection> {
    // Read the version first: a later version may not even have this version's shape.
    match detail.get("schemaVersion") {
        Some(v) if v.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
        Some(v) => return Err(reject(Reason::UnsupportedSchemaVersion, format!("schemaVersion {v} is not {SCHEMA_VERSION}"))),
        None => return Err(reject(Reason::MalformedOrder, "missing field `schemaVersion`")),
    }
    let order: OrderSubmitted =
        serde_json::from_value(detail.clone()).map_err(|e| reject(Reason::MalformedOrder, e.to_string()))?;

    // The owner first: nothing about an order whose owner is not valid is worth reading.
    if let Err(e) = OwnerId::parse(&order.owner) {
        return Err(reject(Reason::InvalidOwner, e.to_string()));
    }
    if !keys::order_id_ok(&order.order_id) {
        return Err(reject(Reason::InvalidOrderId, format!("orderId must be 1-{MAX_ORDER_ID_CHARS} of [A-Za-z0-9_-]")));
    }
    if !CURRENCIES.contains(&order.currency.as_str()) {
        return Err(reject(Reason::UnsupportedCurrency, format!("currency {:?} is not one of {CURRENCIES:?}", order.currency)));
    }
    match order.kind {
        OrderKind::Purchase => check_purchase(&order)?,
        OrderKind::Refund => check_refund(&order)?,
    }
    Ok(order)
}

fn check_purchase(order: &OrderSubmitted) -> Result<(), Rejection> {
    if !order.attachments.is_empty() {
        return Err(reject(Reason::MalformedOrder, "attachments: only a refund names attachments (of its original order)"));
    }
    if order.items.is_empty() {
        return Err(reject(Reason::NoItems, "a purchase needs at least one item"));
    }
    if order.items.len() > MAX_ITEMS {
        return Err(reject(Reason::TooManyItems, format!("at most {MAX_ITEMS} lines, got {}", order.items.len())));
    }
    let mut skus = HashSet::new();
    for item in &order.items {
        if item.sku.trim().is_empty() || item.sku.chars().count() > MAX_SKU_CHARS || item.quantity == 0 {
            return Err(reject(Reason::InvalidItem, format!("item {:?}: sku must be 1-{MAX_SKU_CHARS} characters and quantity at least 1", item.sku)));
        }
        // A stated price is only compared with the catalogue's (see `pricing`); 0 is never one.
        if item.unit_price == Some(0) {
            return Err(reject(Reason::InvalidPrice, format!("item {:?}: unitPrice must be at least 1", item.sku)));
        }
        if !skus.insert(item.sku.as_str()) {
            return Err(reject(Reason::DuplicateSku, format!("sku {:?} appears on more than one line", item.sku)));
        }
    }
    // The total of the prices the submitter states (if any): beyond the limit it is refused
    // before the catalogue is read. What is charged is the total at catalogue prices (`pricing`).
    let stated = order.items.iter().filter_map(|i| i.unit_price.map(|p| p.checked_mul(u64::from(i.quantity)))).try_fold(0u64, |total, line| total.checked_add(line?));
    match stated {
        Some(total) if total <= MAX_ORDER_AMOUNT => {}
        _ => return Err(reject(Reason::AmountTooLarge, format!("the total is above {MAX_ORDER_AMOUNT}"))),
    }
    match &order.payment_token {
        Some(token) if !token.expose().trim().is_empty() => bounded("paymentToken", Some(token.expose()), MAX_PAYMENT_TOKEN_CHARS),
        _ => Err(reject(Reason::MissingPaymentToken, "a purchase needs a paymentToken")),
    }
}

fn check_refund(order: &OrderSubmitted) -> Result<(), Rejection> {
    if order.attachments.len() > taskflow_contracts::attachment::DEFAULT_MAX_PER_TASK {
        return Err(reject(Reason::UnknownAttachment, format!("a refund names at most {} attachments", taskflow_contracts::attachment::DEFAULT_MAX_PER_TASK)));
    }
    if let Some(bad) = order.attachments.iter().find(|id| !taskflow_contracts::attachment::is_attachment_id(id)) {
        return Err(reject(Reason::UnknownAttachment, format!("{:?} is not an attachment id", limits::truncate(bad, 40))));
    }
    if order.refund_of.as_deref().is_none_or(|id| id.trim().is_empty()) {
        return Err(reject(Reason::MissingRefundOf, "a refund needs refundOf (the order to refund)"));
    }
    bounded("refundOf", order.refund_of.as_deref(), MAX_REFUND_OF_CHARS)?;
    match order.amount {
        Some(0) => Err(reject(Reason::InvalidAmount, "a refund amount must be at least 1")),
        Some(amount) if amount > MAX_ORDER_AMOUNT => Err(reject(Reason::AmountTooLarge, format!("the amount is above {MAX_ORDER_AMOUNT}"))),
        _ => Ok(()),
    }
}
