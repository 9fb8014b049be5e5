//! Notification: tells the owner how an order ended, and closes the failure path.
//!
//! On the failure path the task may not have a terminal status yet (a step timed out, the payment
//! provider stayed unavailable): the notification records FAILED with the reason named by the
//! caught error first, so every order ends with a clear status even if the notice cannot be sent.
//! The notice itself is stored under an owner-scoped key; sending it again writes the same key.

pub mod notifier;

use async_trait::async_trait;
use chrono::Utc;
use notifier::{Notice, Notifier};
use taskflow_contracts::{errors, NotificationResult, NotificationWork, Outcome, Reason, StepFailure, TaskStatus};
use taskflow_shared::driver::{Attempt, StepError, TaskWorker};
use taskflow_shared::tasks::{Change, Note, StoreError, TaskStore, Transitioned};

pub struct Notification<S, N> {
    pub tasks: S,
    pub notifier: N,
}

/// The task's reason for a failure the state machine caught.
pub fn reason_for(failure: Option<&StepFailure>) -> Reason {
    match failure.map(|f| f.error.as_str()) {
        Some(errors::PAYMENT_DECLINED) => Reason::PaymentDeclined,
        Some(errors::PAYMENT_UNAVAILABLE) => Reason::PaymentUnavailable,
        // The emulator reports an expired heartbeat as States.Timeout, AWS as HeartbeatTimeout.
        Some("States.Timeout" | "States.HeartbeatTimeout") => Reason::TimedOut,
        Some("RefundNotAvailable") => Reason::RefundNotAvailable,
        _ => Reason::WorkflowError,
    }
}

const OPEN: [TaskStatus; 2] = [TaskStatus::Received, TaskStatus::Charging];

fn store_error(e: StoreError) -> StepError {
    StepError::retry("TaskStoreUnavailable", e.to_string())
}

#[async_trait]
impl<S: TaskStore, N: Notifier> TaskWorker for Notification<S, N> {
    type Work = NotificationWork;
    type Output = NotificationResult;

    async fn perform(&self, work: &NotificationWork, _attempt: Attempt) -> Result<NotificationResult, StepError> {
        let Some(mut task) = self.tasks.get(&work.order_id).await.map_err(store_error)? else {
            return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "no task for this order"));
        };
        if work.outcome == Outcome::Failed && !task.status.is_terminal() {
            let reason = reason_for(work.failure.as_ref());
            let detail = work.failure.as_ref().map(|f| match &f.cause {
                Some(cause) => format!("{}: {cause}", f.error),
                None => f.error.clone(),
            });
            let change = Change::to(TaskStatus::Failed, Utc::now()).because(reason, detail);
            task = match self.tasks.transition(&work.order_id, &OPEN, &change).await.map_err(store_error)? {
                Transitioned::Applied(task) | Transitioned::Conflict(task) => *task,
                Transitioned::Missing => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "task vanished")),
            };
        }
        let notice = Notice::for_task(&task);
        let notice_key = self
            .notifier
            .send(&notice)
            .await
            .map_err(|e| StepError::retry("NotificationUnavailable", e.to_string()))?;
        if task.notice_key.as_deref() != Some(notice_key.as_str()) {
            self.tasks.note(&work.order_id, &Note::Notice(notice_key.clone())).await.map_err(store_error)?;
        }
        Ok(NotificationResult { notice_key })
    }
}

#[cfg(test)]
mod tests;
