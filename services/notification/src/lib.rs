//! Notification: tells the owner how an order ended, and closes the failure path.
//!
//! 1. On the failure path the task may not have a terminal status yet (a step timed out, the
//!    payment provider stayed unavailable): FAILED is recorded first, with the reason named by
//!    the caught error, so every order ends with a clear status even if no notice can be sent.
//!    A task still REFUNDING is left as it is: its money has not come back, which an operator must
//!    see, not a FAILED that hides it.
//! 2. The receipt (purchase, refund, or failure notice) is rendered from the task and stored
//!    under an owner-scoped key; the notice goes out through the notifier; the receipt's key is
//!    recorded on the task. Each of these is repeatable, so a retry never sends a different one,
//!    and none of them changes the business outcome.

pub mod email;
pub mod notifier;
pub mod receipt;

use async_trait::async_trait;
use chrono::Utc;
use notifier::{Notice, Notifier, ReceiptStore};
use taskflow_contracts::{errors, NotificationResult, NotificationWork, Outcome, Reason, StepFailure, TaskStatus};
use taskflow_shared::driver::{Attempt, StepError, TaskWorker};
use taskflow_shared::idempotency::{once, Idempotency};
use taskflow_shared::tasks::{Change, Note, StoreError, TaskStore, Transitioned};

pub struct Notification<S, R, N> {
    pub tasks: S,
    pub receipts: R,
    pub notifier: N,
    /// Guards the notice when the notifier is not idempotent itself (SES): an owner is told once
    /// per status, however often the step is delivered.
    pub once: Box<dyn Idempotency>,
}

/// The task's reason for a failure the state machine caught.
pub fn reason_for(failure: Option<&StepFailure>) -> Reason {
    errors::reason_for(failure.map(|f| f.error.as_str()))
}

/// Statuses the failure path may close as FAILED.
const CLOSABLE: [TaskStatus; 2] = [TaskStatus::Received, TaskStatus::Charging];

fn store_error(e: StoreError) -> StepError {
    StepError::retry("TaskStoreUnavailable", e.to_string())
}

#[async_trait]
impl<S: TaskStore, R: ReceiptStore, N: Notifier> TaskWorker for Notification<S, R, N> {
    type Work = NotificationWork;
    type Output = NotificationResult;

    async fn perform(&self, work: &NotificationWork, _attempt: Attempt) -> Result<NotificationResult, StepError> {
        // The task of this owner's order: order ids are scoped per owner (`keys::task_id`).
        let task_id = taskflow_contracts::keys::task_id(&work.owner, &work.order_id);
        let Some(mut task) = self.tasks.get(&task_id).await.map_err(store_error)? else {
            return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "no task for this order"));
        };
        if work.outcome == Outcome::Failed && CLOSABLE.contains(&task.status) {
            let reason = reason_for(work.failure.as_ref());
            let detail = work.failure.as_ref().map(|f| match &f.cause {
                Some(cause) => format!("{}: {cause}", f.error),
                None => f.error.clone(),
            });
            let change = Change::to(TaskStatus::Failed, Utc::now()).because(reason, detail);
            task = match self.tasks.transition(&task_id, &CLOSABLE, &change).await.map_err(store_error)? {
                Transitioned::Applied(task) | Transitioned::Conflict(task) => *task,
                Transitioned::Missing => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "task vanished")),
            };
        }
        if work.outcome == Outcome::Failed && task.status == TaskStatus::Refunding {
            // The compensation could not finish: money is owed. It stays REFUNDING, visible, and
            // counted, so the `RefundsOwed` alarm calls someone.
            tracing::error!(order_id = task.order_id.as_str(), "order failed with its compensation unfinished: a refund is owed");
            taskflow_shared::metrics::count("RefundsOwed", &[("Service", "notification")]);
        }
        let receipt = receipt::render(&task).map_err(|e| StepError::failed(errors::TASK_STATE_CONFLICT, format!("no receipt key: {e}")))?;
        let undelivered = |e: notifier::DeliveryError| StepError::retry("NotificationUnavailable", e.to_string());
        self.receipts.store(&receipt).await.map_err(undelivered)?;
        let notice = Notice {
            to: task.owner.clone(),
            order_id: task.order_id.clone(),
            subject: receipt.subject.clone(),
            receipt_key: receipt.key.clone(),
            body: receipt.body.clone(),
        };
        if self.notifier.idempotent() {
            // The outbox: one object per notice by a conditional put, repeats write nothing.
            self.notifier.send(&notice).await.map_err(undelivered)?;
        } else {
            // SES delivers every send: the idempotency record makes it one email per status.
            let key = format!("{task_id}/notice/{}", task.status);
            once(&*self.once, &key, self.notifier.send(&notice))
                .await
                .map_err(|e| StepError::from_once(e, undelivered))?;
        }
        if !task.receipts.contains(&receipt.key) {
            self.tasks.note(&task_id, &Note::Receipt(receipt.key.clone())).await.map_err(store_error)?;
        }
        Ok(NotificationResult { receipt_key: receipt.key })
    }
}

#[cfg(test)]
mod tests;
