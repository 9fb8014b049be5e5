//! `OrderCancelled` v1: an owner cancels one of their purchases (bus source `taskflow.orders`,
//! detail-type `OrderCancelled`; the HTTP API's `DELETE /orders/{orderId}` does the same).
//!
//! A purchase can be cancelled while nothing has been charged: its task is RECEIVED. Then it
//! ends CANCELLED (reason `CANCELLED_BY_OWNER`), its execution is stopped, nothing is charged and
//! no stock is held. Once the purchase service has begun charging (CHARGING, or any later
//! status) the cancel is refused (`OrderAlreadyCharged`, HTTP 409): the owner asks for a refund
//! instead. Both moves are conditional on RECEIVED, so a cancel racing the charge has exactly one
//! winner.

use crate::owner::OwnerId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `detail` of an `OrderCancelled` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    pub schema_version: u32,
    /// The order to cancel: one of `owner`'s own order ids (order ids are per owner).
    #[schemars(length(min = 1, max = crate::limits::MAX_ORDER_ID_CHARS), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub order_id: String,
    /// Who cancels: only the order's owner can (another owner's order of that id is not found).
    #[schemars(length(min = 1, max = crate::limits::MAX_OWNER_BYTES))]
    pub owner: String,
}

/// Why an `OrderCancelled` detail is not one (checked at the boundary, before anything is read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelRefused {
    #[error("MalformedCancel: {0}")]
    Malformed(String),
    #[error("UnsupportedSchemaVersion: {0}")]
    SchemaVersion(u32),
    #[error("InvalidOwner: {0}")]
    InvalidOwner(String),
    #[error("InvalidOrderId: orderId must be 1-{} of [A-Za-z0-9_-]", crate::limits::MAX_ORDER_ID_CHARS)]
    InvalidOrderId,
}

impl CancelRefused {
    /// The error's name (`MalformedCancel`, `InvalidOwner`, …).
    pub fn name(&self) -> &'static str {
        match self {
            CancelRefused::Malformed(_) => "MalformedCancel",
            CancelRefused::SchemaVersion(_) => "UnsupportedSchemaVersion",
            CancelRefused::InvalidOwner(_) => "InvalidOwner",
            CancelRefused::InvalidOrderId => "InvalidOrderId",
        }
    }
}

impl OrderCancelled {
    /// Reads and checks a detail as OrderSubmitted's are checked: a `schemaVersion` of 1, an
    /// owner by `OwnerId::parse`, an order id by `keys::order_id_ok`.
    pub fn parse(detail: &Value) -> Result<OrderCancelled, CancelRefused> {
        let cancel: OrderCancelled = serde_json::from_value(detail.clone()).map_err(|e| CancelRefused::Malformed(e.to_string()))?;
        if cancel.schema_version != crate::SCHEMA_VERSION {
            return Err(CancelRefused::SchemaVersion(cancel.schema_version));
        }
        OwnerId::parse(&cancel.owner).map_err(|e| CancelRefused::InvalidOwner(e.to_string()))?;
        if !crate::keys::order_id_ok(&cancel.order_id) {
            return Err(CancelRefused::InvalidOrderId);
        }
        Ok(cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cancel_is_checked_at_the_boundary() {
        let ok = OrderCancelled::parse(&json!({"schemaVersion": 1, "orderId": "ord-1", "owner": "alice"})).unwrap();
        assert_eq!((ok.order_id.as_str(), ok.owner.as_str()), ("ord-1", "alice"));
        let name = |d| OrderCancelled::parse(&d).unwrap_err().name();
        assert_eq!(name(json!({"schemaVersion": 1, "orderId": "ord-1"})), "MalformedCancel");
        assert_eq!(name(json!({"schemaVersion": 2, "orderId": "ord-1", "owner": "alice"})), "UnsupportedSchemaVersion");
        assert_eq!(name(json!({"schemaVersion": 1, "orderId": "ord-1", "owner": "a/b"})), "InvalidOwner");
        assert_eq!(name(json!({"schemaVersion": 1, "orderId": "ord 1", "owner": "alice"})), "InvalidOrderId");
    }
}
