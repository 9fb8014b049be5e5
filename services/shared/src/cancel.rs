//! Cancelling a purchase: what `OrderCancelled` (intake) and `DELETE /orders/{orderId}` (the API)
//! both do.
//!
//! A purchase can be cancelled only while nothing can have been charged: its task is RECEIVED
//! (the purchase service moves RECEIVED → CHARGING before it charges). The cancel moves it
//! RECEIVED → CANCELLED by a conditional write — the same fence compensation uses — so a cancel
//! racing the charge has exactly one winner: the cancel (the purchase delivery then finds
//! CANCELLED and charges nothing, `OrderCancelled`) or the charge (the cancel is refused
//! `OrderAlreadyCharged`; the owner asks for a refund instead). Then the execution is stopped
//! (`StopExecution`), so no step of it runs on. No stock is held: stock is reserved only after the
//! charge.
//!
//! Idempotent: cancelling a CANCELLED task answers `AlreadyCancelled` (and stops its execution
//! again, in case an earlier attempt stopped before it could).

use crate::executions::{execution_arn, ExecutionError, Executions};
use crate::tasks::{Change, StoreError, TaskRecord, TaskStore, Transitioned};
use chrono::{DateTime, Utc};
use taskflow_contracts::{errors, keys, OrderKind, Reason, TaskStatus};
use thiserror::Error;

/// A cancel that took effect, now or before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// This cancel moved the task to CANCELLED.
    Now(Box<TaskRecord>),
    /// It was CANCELLED already (a repeated cancel).
    Already(Box<TaskRecord>),
}

impl Cancelled {
    pub fn task(&self) -> &TaskRecord {
        match self {
            Cancelled::Now(task) | Cancelled::Already(task) => task,
        }
    }
}

/// Why a cancel did not take effect. Each has a name (`name()`) and an HTTP status.
#[derive(Debug, Error)]
pub enum CancelError {
    /// No order of this id among the caller's own (another owner's is not found either).
    #[error("OrderNotFound: no order {0}")]
    NotFound(String),
    /// The purchase service has begun charging (or finished): too late to cancel; ask for a refund.
    #[error("OrderAlreadyCharged: order {order_id} is {status}; ask for a refund instead")]
    AlreadyCharged { order_id: String, status: TaskStatus },
    /// The order ended without a charge (REJECTED, FAILED) or is not a purchase: nothing to cancel.
    #[error("NotCancellable: order {order_id} is {status} ({why})")]
    NotCancellable { order_id: String, status: TaskStatus, why: &'static str },
    /// Transient: the task store could not be read or written; try again.
    #[error("TaskStoreUnavailable: {0}")]
    Store(#[from] StoreError),
    /// Transient: the task is CANCELLED but its execution could not be stopped yet; cancelling
    /// again stops it (and any step it runs meanwhile finds CANCELLED and charges nothing).
    #[error("{0}")]
    Execution(#[from] ExecutionError),
}

impl CancelError {
    pub fn name(&self) -> &'static str {
        match self {
            CancelError::NotFound(_) => "OrderNotFound",
            CancelError::AlreadyCharged { .. } => "OrderAlreadyCharged",
            CancelError::NotCancellable { .. } => "NotCancellable",
            CancelError::Store(_) => "TaskStoreUnavailable",
            CancelError::Execution(_) => "ExecutionsUnavailable",
        }
    }

    /// 404, 409 or 503.
    pub fn http_status(&self) -> u16 {
        match self {
            CancelError::NotFound(_) => 404,
            CancelError::AlreadyCharged { .. } | CancelError::NotCancellable { .. } => 409,
            CancelError::Store(_) | CancelError::Execution(_) => 503,
        }
    }

    /// Whether trying again later can change the answer.
    pub fn transient(&self) -> bool {
        matches!(self, CancelError::Store(_) | CancelError::Execution(_))
    }
}

/// Cancels `owner`'s purchase `order_id` (see the module's documentation). `purchase_workflow`
/// is the purchase state machine's ARN: the execution is named by the task id, so its ARN is
/// known even before intake has noted it on the task.
pub async fn cancel(
    tasks: &dyn TaskStore,
    executions: &dyn Executions,
    purchase_workflow: &str,
    owner: &str,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<Cancelled, CancelError> {
    let task_id = keys::task_id(owner, order_id);
    let task = match tasks.get(&task_id).await? {
        Some(task) if task.owner == owner => task,
        _ => return Err(CancelError::NotFound(order_id.to_string())),
    };
    if task.kind != Some(OrderKind::Purchase) {
        return Err(CancelError::NotCancellable { order_id: order_id.to_string(), status: task.status, why: "only a purchase can be cancelled" });
    }
    let outcome = match task.status {
        TaskStatus::Cancelled => Cancelled::Already(Box::new(task)),
        TaskStatus::Received => {
            let change = Change::to(TaskStatus::Cancelled, now).because(Reason::CancelledByOwner, Some("cancelled by its owner before the charge".into()));
            match tasks.transition(&task_id, &[TaskStatus::Received], &change).await? {
                Transitioned::Applied(task) => Cancelled::Now(task),
                Transitioned::Conflict(task) if task.status == TaskStatus::Cancelled => Cancelled::Already(task),
                // The charge won the race.
                Transitioned::Conflict(task) => return Err(refused(order_id, task.status)),
                Transitioned::Missing => return Err(CancelError::NotFound(order_id.to_string())),
            }
        }
        status => return Err(refused(order_id, status)),
    };
    let arn = outcome.task().execution_arn.clone().unwrap_or_else(|| execution_arn(purchase_workflow, &task_id));
    executions.stop(&arn, errors::ORDER_CANCELLED, "cancelled by its owner before the charge").await?;
    Ok(outcome)
}

/// Why a cancel of `order_id`, a purchase now in `status`, is refused (what [`cancel`] answers).
pub fn refused(order_id: &str, status: TaskStatus) -> CancelError {
    match status {
        TaskStatus::Rejected | TaskStatus::Failed => CancelError::NotCancellable { order_id: order_id.to_string(), status, why: "it has ended" },
        // CHARGING, REFUNDING, COMPLETED: the charge has begun or happened. Any status added later
        // is refused the same way (never cancelled by default).
        _ => CancelError::AlreadyCharged { order_id: order_id.to_string(), status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::InMemoryTaskStore;
    use crate::executions::ExecutionState;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Stops(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl Executions for Stops {
        async fn stop(&self, arn: &str, _error: &str, _cause: &str) -> Result<(), ExecutionError> {
            self.0.lock().unwrap().push(arn.to_string());
            Ok(())
        }
        async fn state(&self, _arn: &str) -> Result<ExecutionState, ExecutionError> {
            Ok(ExecutionState::Running)
        }
    }

    const SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:taskflow-local-purchase";

    fn purchase(status: TaskStatus) -> TaskRecord {
        let mut task = TaskRecord::new("o-1", "alice", TaskStatus::Received, None, Utc::now());
        task.kind = Some(OrderKind::Purchase);
        task.status = status;
        task
    }

    #[tokio::test]
    async fn a_received_purchase_is_cancelled_once_and_its_execution_stopped() {
        let store = InMemoryTaskStore::with([purchase(TaskStatus::Received)]);
        let stops = Stops::default();
        let first = cancel(&store, &stops, SM, "alice", "o-1", Utc::now()).await.unwrap();
        assert!(matches!(first, Cancelled::Now(_)));
        let task = first.task();
        assert_eq!((task.status, task.reason), (TaskStatus::Cancelled, Some(Reason::CancelledByOwner)));
        assert!(task.inflight_since.is_none() && task.inflight_shard.is_none(), "a cancelled task leaves the in-flight index");
        let again = cancel(&store, &stops, SM, "alice", "o-1", Utc::now()).await.unwrap();
        assert!(matches!(again, Cancelled::Already(_)));
        assert_eq!(store.get(&task.task_id).await.unwrap().unwrap().history.len(), 2, "one CANCELLED entry");
        let arn = execution_arn(SM, &task.task_id);
        assert_eq!(*stops.0.lock().unwrap(), vec![arn.clone(), arn]);
    }

    #[tokio::test]
    async fn a_charging_or_ended_order_is_refused_by_name_and_another_owners_is_not_found() {
        for (status, name) in [
            (TaskStatus::Charging, "OrderAlreadyCharged"),
            (TaskStatus::Completed, "OrderAlreadyCharged"),
            (TaskStatus::Refunding, "OrderAlreadyCharged"),
            (TaskStatus::Failed, "NotCancellable"),
        ] {
            let store = InMemoryTaskStore::with([purchase(status)]);
            let stops = Stops::default();
            let err = cancel(&store, &stops, SM, "alice", "o-1", Utc::now()).await.unwrap_err();
            assert_eq!((err.name(), err.http_status()), (name, 409), "{status}");
            assert!(stops.0.lock().unwrap().is_empty());
            assert_eq!(store.get(&keys::task_id("alice", "o-1")).await.unwrap().unwrap().status, status, "unchanged");
        }
        let store = InMemoryTaskStore::with([purchase(TaskStatus::Received)]);
        let err = cancel(&store, &Stops::default(), SM, "bob", "o-1", Utc::now()).await.unwrap_err();
        assert_eq!((err.name(), err.http_status()), ("OrderNotFound", 404));
        let err = cancel(&store, &Stops::default(), SM, "alice", "o-2", Utc::now()).await.unwrap_err();
        assert_eq!(err.name(), "OrderNotFound");
    }

    #[tokio::test]
    async fn a_refund_order_cannot_be_cancelled() {
        let mut refund = purchase(TaskStatus::Received);
        refund.kind = Some(OrderKind::Refund);
        let store = InMemoryTaskStore::with([refund]);
        let err = cancel(&store, &Stops::default(), SM, "alice", "o-1", Utc::now()).await.unwrap_err();
        assert_eq!(err.name(), "NotCancellable");
    }
}
