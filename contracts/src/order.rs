//! `OrderSubmitted` v1: the event that starts work.

use crate::secret::PaymentToken;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An amount in the currency's minor units (cents), never floating point.
pub type Money = u64;

/// What an order asks taskflow to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    Purchase,
    Refund,
}

impl OrderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Purchase => "purchase",
            OrderKind::Refund => "refund",
        }
    }
}

/// One line of a purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    #[schemars(length(min = 1, max = crate::limits::MAX_SKU_CHARS))]
    pub sku: String,
    pub quantity: u32,
    /// Price of one unit in minor units, as the catalogue has it. Optional in an order (v1,
    /// additive): the catalogue is the only source of what is charged, so a submitter may leave it
    /// out (`null` is the same); when present it must equal the catalogue's price at acceptance, or the order is
    /// REJECTED `PRICE_MISMATCH`. In what intake passes on (the execution input, work messages,
    /// the task record) it is always present and always the catalogue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Money>,
}

/// The `detail` of an `OrderSubmitted` event (source `taskflow.orders`).
///
/// A purchase carries `items` and a `paymentToken`; a refund carries `refundOf` (the order to
/// refund) and optionally `amount` (absent means the whole order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderSubmitted {
    pub schema_version: u32,
    /// Chosen by the submitter and unique per order: it names the task and its execution, which is
    /// what makes a re-published event harmless.
    #[schemars(length(min = 1, max = crate::limits::MAX_ORDER_ID_CHARS), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub order_id: String,
    #[schemars(length(min = 1, max = crate::limits::MAX_OWNER_BYTES))]
    pub owner: String,
    pub kind: OrderKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::MAX_ITEMS))]
    pub items: Vec<OrderItem>,
    /// ISO 4217 code, upper case.
    #[schemars(length(min = 3, max = crate::limits::MAX_CURRENCY_CHARS))]
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_token: Option<PaymentToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = crate::limits::MAX_REFUND_OF_CHARS))]
    pub refund_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// Refunds only (v1, additive): ids of attachments of the original order (`refundOf`) of the
    /// same owner that the refund is about — the photo of the damaged item, say. Each must be on
    /// that order, or the refund is REJECTED `UNKNOWN_ATTACHMENT`; a purchase naming any is
    /// REJECTED `MALFORMED_ORDER`. Recorded on the refund's task as `refundAttachments`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::attachment::DEFAULT_MAX_PER_TASK))]
    pub attachments: Vec<String>,
}

impl OrderSubmitted {
    /// The total of the lines' unit prices × quantities, in minor units; `None` when a line has
    /// no `unitPrice` or the total does not fit in `Money`. Only meaningful on an order whose
    /// prices intake took from the catalogue: a submitter's prices are never charged.
    pub fn items_total(&self) -> Option<Money> {
        self.items.iter().try_fold(0u64, |total, item| {
            item.unit_price?
                .checked_mul(u64::from(item.quantity))
                .and_then(|line| total.checked_add(line))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(items: Vec<OrderItem>) -> OrderSubmitted {
        OrderSubmitted {
            schema_version: 1,
            order_id: "o-1".into(),
            owner: "alice".into(),
            kind: OrderKind::Purchase,
            items,
            currency: "EUR".into(),
            payment_token: Some(PaymentToken::new("tok_approve")),
            refund_of: None,
            amount: None,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn total_adds_lines_and_detects_overflow() {
        let item = |q, p| OrderItem { sku: "A".into(), quantity: q, unit_price: Some(p) };
        assert_eq!(order(vec![item(2, 1250), item(1, 99)]).items_total(), Some(2599));
        assert_eq!(order(vec![item(2, u64::MAX / 2 + 1)]).items_total(), None);
        let unpriced = OrderItem { sku: "B".into(), quantity: 1, unit_price: None };
        assert_eq!(order(vec![item(1, 99), unpriced]).items_total(), None, "an unpriced line has no total");
    }

    #[test]
    fn camel_case_wire_form_round_trips_and_ignores_unknown_fields() {
        let json = r#"{"schemaVersion":1,"orderId":"o-9","owner":"bob","kind":"purchase",
            "items":[{"sku":"BOOK","quantity":1,"unitPrice":500}],"currency":"EUR",
            "paymentToken":"tok_approve","addedLater":true}"#;
        let parsed: OrderSubmitted = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.order_id, "o-9");
        assert_eq!(parsed.items[0].unit_price, Some(500));
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back["paymentToken"], "tok_approve");
        assert!(back.get("refundOf").is_none());
    }

    #[test]
    fn unit_price_is_optional_and_stays_absent_when_absent() {
        let json = r#"{"schemaVersion":1,"orderId":"o-9","owner":"bob","kind":"purchase",
            "items":[{"sku":"BOOK","quantity":1}],"currency":"EUR","paymentToken":"tok_approve"}"#;
        let parsed: OrderSubmitted = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.items[0].unit_price, None);
        let back = serde_json::to_value(&parsed).unwrap();
        assert!(back["items"][0].get("unitPrice").is_none(), "{back}");
        let null: OrderSubmitted = serde_json::from_str(&json.replace(r#""quantity":1}"#, r#""quantity":1,"unitPrice":null}"#)).unwrap();
        assert_eq!(null.items[0].unit_price, None, "null is the same as absent");
    }
}
