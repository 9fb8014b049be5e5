//! `DELETE /orders/{orderId}`: the caller cancels one of their purchases not yet charged
//! (`taskflow_shared::cancel`, the same logic as an `OrderCancelled` event).
//!
//! | answer | when |
//! |---|---|
//! | 200 `{"orderId","status":"CANCELLED","cancelled":true}` | cancelled now |
//! | 200 `{…,"cancelled":false}` | it was cancelled already (idempotent) |
//! | 404 `OrderNotFound` | no such order among the caller's (another owner's is the same 404), or not yet: an order `POST`ed a moment ago is recorded by intake asynchronously, so retry once its task can be read |
//! | 409 `OrderAlreadyCharged` | the charge has begun or happened: ask for a refund |
//! | 409 `NotCancellable` | the order ended without a charge, or is a refund |
//! | 400 `InvalidOrderId` | the id breaks the order id rule |
//! | 503 | the task store or Step Functions is unavailable: try again |

use crate::Answer;
use serde_json::json;
use taskflow_contracts::{keys, OwnerId};
use taskflow_shared::cancel::{cancel, Cancelled};
use taskflow_shared::executions::Executions;
use taskflow_shared::tasks::TaskStore;

/// The API Gateway route key of a cancel.
pub const ROUTE: &str = "DELETE /orders/{orderId}";

pub struct Cancels<S, E> {
    pub tasks: S,
    pub executions: E,
    /// The purchase state machine's ARN (executions are named by task id).
    pub purchase_workflow: String,
}

impl<S: TaskStore, E: Executions> Cancels<S, E> {
    /// Answers a cancel of `order_id` by the authenticated `caller`.
    pub async fn handle(&self, caller: &str, order_id: &str) -> Answer {
        if caller.is_empty() {
            return error(401, "Unauthorized", "no caller identity".into());
        }
        if let Err(e) = OwnerId::parse(caller) {
            return error(403, "InvalidOwner", format!("the token's subject cannot own orders: {e}"));
        }
        if !keys::order_id_ok(order_id) {
            return error(400, "InvalidOrderId", format!("orderId must be 1-{} of [A-Za-z0-9_-]", keys::MAX_ORDER_ID_CHARS));
        }
        match cancel(&self.tasks, &self.executions, &self.purchase_workflow, caller, order_id, chrono::Utc::now()).await {
            Ok(outcome) => {
                let now = matches!(outcome, Cancelled::Now(_));
                Answer { status: 200, body: json!({"orderId": order_id, "status": outcome.task().status, "cancelled": now}) }
            }
            Err(e) => error(e.http_status(), e.name(), e.to_string()),
        }
    }
}

fn error(status: u16, name: &str, message: String) -> Answer {
    Answer { status, body: json!({"error": name, "message": message}) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use taskflow_contracts::{OrderKind, TaskStatus};
    use taskflow_shared::executions::{ExecutionError, ExecutionState};
    use taskflow_shared::fakes::InMemoryTaskStore;
    use taskflow_shared::tasks::TaskRecord;

    struct NoOp;
    #[async_trait::async_trait]
    impl Executions for NoOp {
        async fn stop(&self, _: &str, _: &str, _: &str) -> Result<(), ExecutionError> {
            Ok(())
        }
        async fn state(&self, _: &str) -> Result<ExecutionState, ExecutionError> {
            Ok(ExecutionState::Ended)
        }
    }

    fn purchase(order_id: &str, owner: &str, status: TaskStatus) -> TaskRecord {
        let mut task = TaskRecord::new(order_id, owner, TaskStatus::Received, None, Utc::now());
        task.kind = Some(OrderKind::Purchase);
        task.status = status;
        task
    }

    #[tokio::test]
    async fn the_owner_cancels_once_others_get_404_and_a_charged_order_409() {
        let cancels = Cancels {
            tasks: InMemoryTaskStore::with([purchase("o-1", "alice", TaskStatus::Received), purchase("o-2", "alice", TaskStatus::Completed)]),
            executions: NoOp,
            purchase_workflow: "arn:aws:states:us-east-1:123456789012:stateMachine:p".into(),
        };
        assert_eq!(cancels.handle("bob", "o-1").await.status, 404);
        let first = cancels.handle("alice", "o-1").await;
        assert_eq!((first.status, &first.body["status"], &first.body["cancelled"]), (200, &json!("CANCELLED"), &json!(true)));
        let again = cancels.handle("alice", "o-1").await;
        assert_eq!((again.status, &again.body["cancelled"]), (200, &json!(false)));
        let charged = cancels.handle("alice", "o-2").await;
        assert_eq!((charged.status, &charged.body["error"]), (409, &json!("OrderAlreadyCharged")));
        assert_eq!(cancels.handle("alice", "o 1").await.status, 400);
        assert_eq!(cancels.handle("a/b", "o-1").await.status, 403);
    }
}
