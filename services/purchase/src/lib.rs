//! Purchase: charges an order through the payment port and records the outcome on its task.
//!
//! What a purchase does, in order:
//! 1. Read the task. Already COMPLETED → answer with the stored charge (a duplicate delivery);
//!    already FAILED → answer with the recorded failure. Nothing is charged again.
//! 2. RECEIVED → CHARGING (conditional: only one delivery moves it).
//! 3. Charge the order total with the order id as idempotency key: the provider returns the same
//!    charge for the same key, so a retry after a crash never charges twice.
//! 4. Approved → COMPLETED with the charge id. Declined → FAILED `PAYMENT_DECLINED`, answered as
//!    `PaymentDeclined`. Provider unavailable → retried by redelivery; when retries run out the
//!    step fails as `PaymentUnavailable` and the failure path records it.

pub mod payments;

use async_trait::async_trait;
use chrono::Utc;
use payments::{ChargeRequest, PaymentError, PaymentProvider};
use taskflow_contracts::{errors, PurchaseResult, PurchaseWork, Reason, TaskStatus};
use taskflow_shared::driver::{Attempt, StepError, TaskWorker};
use taskflow_shared::tasks::{Change, StoreError, TaskRecord, TaskStore, Transitioned};
use tracing::info;

pub struct Purchase<S, P> {
    pub tasks: S,
    pub payments: P,
}

const STORE_UNAVAILABLE: &str = "TaskStoreUnavailable";

fn store_error(e: StoreError) -> StepError {
    StepError::retry(STORE_UNAVAILABLE, e.to_string())
}

/// The idempotency key of an order's charge: derived from the task, never from the message.
pub fn charge_key(order_id: &str) -> String {
    format!("{order_id}/charge")
}

impl<S: TaskStore, P: PaymentProvider> Purchase<S, P> {
    /// The answer for a task that is already past charging.
    fn settled(task: &TaskRecord) -> Result<PurchaseResult, StepError> {
        match (task.status, task.reason) {
            (TaskStatus::Completed, _) => Ok(PurchaseResult {
                charge_id: task.charge_id.clone().unwrap_or_default(),
                amount: task.amount,
                currency: task.currency.clone(),
            }),
            (TaskStatus::Failed, Some(Reason::PaymentDeclined)) => Err(StepError::failed(
                errors::PAYMENT_DECLINED,
                task.reason_detail.clone().unwrap_or_default(),
            )),
            (status, _) => Err(StepError::failed(errors::TASK_STATE_CONFLICT, format!("task is {status}"))),
        }
    }
}

#[async_trait]
impl<S: TaskStore, P: PaymentProvider> TaskWorker for Purchase<S, P> {
    type Work = PurchaseWork;
    type Output = PurchaseResult;

    async fn perform(&self, work: &PurchaseWork, _attempt: Attempt) -> Result<PurchaseResult, StepError> {
        let order = &work.order;
        let task = match self.tasks.get(&order.order_id).await.map_err(store_error)? {
            Some(task) => task,
            None => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "no task for this order")),
        };
        match task.status {
            TaskStatus::Received => {
                let change = Change::to(TaskStatus::Charging, Utc::now());
                match self.tasks.transition(&order.order_id, &[TaskStatus::Received], &change).await.map_err(store_error)? {
                    Transitioned::Applied(_) => {}
                    // Another delivery got there first; if it is still charging, carry on with
                    // the same idempotency key, else answer what it recorded.
                    Transitioned::Conflict(current) if current.status == TaskStatus::Charging => {}
                    Transitioned::Conflict(current) => return Self::settled(&current),
                    Transitioned::Missing => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "task vanished")),
                }
            }
            TaskStatus::Charging => info!(order_id = %order.order_id, "resuming a charge that did not finish"),
            _ => return Self::settled(&task),
        }

        let amount = task.amount;
        let request = ChargeRequest {
            idempotency_key: charge_key(&order.order_id),
            order_id: order.order_id.clone(),
            amount,
            currency: task.currency.clone(),
            payment_token: order.payment_token.clone().unwrap_or_else(|| taskflow_contracts::PaymentToken::new("")),
        };
        match self.payments.charge(&request).await {
            Ok(charge) => {
                let change = Change::to(TaskStatus::Completed, Utc::now()).with_charge(&charge.charge_id);
                match self.tasks.transition(&order.order_id, &[TaskStatus::Charging], &change).await.map_err(store_error)? {
                    Transitioned::Applied(_) => {}
                    Transitioned::Conflict(current) => return Self::settled(&current),
                    Transitioned::Missing => return Err(StepError::failed(errors::TASK_STATE_CONFLICT, "task vanished")),
                }
                Ok(PurchaseResult { charge_id: charge.charge_id, amount, currency: task.currency })
            }
            Err(PaymentError::Declined { code }) => {
                let change = Change::to(TaskStatus::Failed, Utc::now()).because(Reason::PaymentDeclined, Some(code.clone()));
                self.tasks.transition(&order.order_id, &[TaskStatus::Charging], &change).await.map_err(store_error)?;
                Err(StepError::failed(errors::PAYMENT_DECLINED, code))
            }
            Err(PaymentError::Unavailable(cause)) => Err(StepError::retry(errors::PAYMENT_UNAVAILABLE, cause)),
        }
    }
}

#[cfg(test)]
mod tests;
