//! `OrderCancelled` events (same bus, source and queue as orders): an owner cancels a purchase
//! not yet charged (`taskflow_shared::cancel`).
//!
//! - A detail that is not a valid cancel (`OrderCancelled::parse`: schema version, owner, order
//!   id) fails by name, like an event that is not an order, and reaches the dead-letter queue.
//! - An order not (yet) found is retried with backoff: its `OrderSubmitted` may still be on the
//!   queue behind it. After `maxReceiveCount` deliveries it is in the dead-letter queue.
//! - Cancelled now, or already: done (idempotent). Too late (`OrderAlreadyCharged`) or nothing
//!   to cancel (`NotCancellable`): done too, logged with the name and counted
//!   (`CancelsRefused`); the order's own status events tell the owner how it ended.

use chrono::{DateTime, Utc};
use serde_json::Value;
use taskflow_contracts::{EventEnvelope, OrderCancelled, ORDER_CANCELLED};
use taskflow_shared::cancel::{cancel, CancelError, Cancelled};
use taskflow_shared::executions::Executions;
use taskflow_shared::tasks::TaskStore;

use crate::IntakeError;

/// What became of one cancel event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelHandled {
    Cancelled { order_id: String },
    AlreadyCancelled { order_id: String },
    /// Refused for good, by name (`OrderAlreadyCharged`, `NotCancellable`).
    Refused { order_id: String, error: &'static str, detail: String },
}

/// Whether an SQS body from the intake rule is an `OrderCancelled` event.
pub fn is_cancel(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|event| event["detail-type"] == ORDER_CANCELLED)
}

/// Handles one `OrderCancelled` event body.
pub async fn handle(tasks: &dyn TaskStore, executions: &dyn Executions, purchase_workflow: &str, body: &str, now: DateTime<Utc>) -> Result<CancelHandled, IntakeError> {
    let event: EventEnvelope<Value> = serde_json::from_str(body).map_err(|e| IntakeError::NotAnOrder(format!("not an EventBridge event: {e}")))?;
    let request = OrderCancelled::parse(&event.detail).map_err(|e| IntakeError::NotAnOrder(e.to_string()))?;
    let order_id = request.order_id.clone();
    match cancel(tasks, executions, purchase_workflow, &request.owner, &request.order_id, now).await {
        Ok(Cancelled::Now(_)) => Ok(CancelHandled::Cancelled { order_id }),
        Ok(Cancelled::Already(_)) => Ok(CancelHandled::AlreadyCancelled { order_id }),
        Err(e @ CancelError::NotFound(_)) => Err(IntakeError::CancelPending(e.to_string())),
        Err(e) if e.transient() => Err(IntakeError::CancelPending(e.to_string())),
        Err(e) => {
            taskflow_shared::metrics::count("CancelsRefused", &[("Reason", e.name())]);
            Ok(CancelHandled::Refused { order_id, error: e.name(), detail: e.to_string() })
        }
    }
}
