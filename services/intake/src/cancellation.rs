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

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_contracts::{OrderKind, TaskStatus};
    use taskflow_shared::executions::{ExecutionError, ExecutionState};
    use taskflow_shared::fakes::InMemoryTaskStore;
    use taskflow_shared::tasks::TaskRecord;

    struct NoOp;
    #[async_trait::async_trait]
    impl Executions for NoOp {
        async fn stop(&self, _: &str, _: &str, _: &str) -> Result<(), taskflow_shared::executions::ExecutionError> {
            Ok(())
        }
        async fn state(&self, _: &str) -> Result<ExecutionState, ExecutionError> {
            Ok(ExecutionState::Running)
        }
    }

    fn event(detail: serde_json::Value) -> String {
        serde_json::json!({"version": "0", "id": "e-1", "detail-type": ORDER_CANCELLED, "source": "taskflow.orders", "account": "1",
                           "time": "2026-11-29T00:00:00Z", "region": "us-east-1", "resources": [], "detail": detail})
        .to_string()
    }

    #[tokio::test]
    async fn a_cancel_event_is_checked_retried_until_its_order_exists_and_idempotent() {
        let mut task = TaskRecord::new("o-1", "alice", TaskStatus::Received, None, Utc::now());
        task.kind = Some(OrderKind::Purchase);
        let mut charged = TaskRecord::new("o-2", "alice", TaskStatus::Received, None, Utc::now());
        charged.kind = Some(OrderKind::Purchase);
        charged.status = TaskStatus::Completed;
        let store = InMemoryTaskStore::with([task, charged]);
        let sm = "arn:aws:states:us-east-1:123456789012:stateMachine:p";
        let cancel = |order: &str, owner: &str| event(serde_json::json!({"schemaVersion": 1, "orderId": order, "owner": owner}));
        assert!(is_cancel(&cancel("o-1", "alice")));

        let bad = handle(&store, &NoOp, sm, &event(serde_json::json!({"schemaVersion": 1, "orderId": "o-1", "owner": "a/b"})), Utc::now()).await;
        assert!(matches!(bad, Err(IntakeError::NotAnOrder(ref e)) if e.starts_with("InvalidOwner")), "{bad:?}");
        let unknown = handle(&store, &NoOp, sm, &cancel("o-9", "alice"), Utc::now()).await;
        assert!(matches!(unknown, Err(IntakeError::CancelPending(_))), "not found yet: retried");
        let others = handle(&store, &NoOp, sm, &cancel("o-1", "bob"), Utc::now()).await;
        assert!(matches!(others, Err(IntakeError::CancelPending(_))), "another owner's order is not theirs to find");

        assert_eq!(handle(&store, &NoOp, sm, &cancel("o-1", "alice"), Utc::now()).await.unwrap(), CancelHandled::Cancelled { order_id: "o-1".into() });
        assert_eq!(handle(&store, &NoOp, sm, &cancel("o-1", "alice"), Utc::now()).await.unwrap(), CancelHandled::AlreadyCancelled { order_id: "o-1".into() });
        let refused = handle(&store, &NoOp, sm, &cancel("o-2", "alice"), Utc::now()).await.unwrap();
        assert!(matches!(refused, CancelHandled::Refused { error: "OrderAlreadyCharged", .. }), "{refused:?}");
        assert_eq!(store.of("alice", "o-2").unwrap().status, TaskStatus::Completed);
    }
}
