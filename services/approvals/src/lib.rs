//! Approvals: the consumer of the approvals queue, where the refund workflow's approval steps
//! put their task tokens (`ApprovalWork`). What it does for each purpose:
//!
//! - **request** (a refund above the threshold; the refund service has made the task
//!   AWAITING_APPROVAL with its amount): records the pending approval — amount, deadline
//!   (`now + reminder + final`), the task token — in the approvals table, which only the
//!   approval path reads. The token is **not answered**: an operator's decision answers it.
//! - **remind** (the first wait ran out undecided): keeps the new token and announces an
//!   `ApprovalReminder` on the bus (`taskflow.tasks`, event id `{taskId}#approval-reminder`, so
//!   consumers drop a duplicate). A decision that was recorded while the first token was
//!   ending is delivered with this one instead.
//! - **expire** (the deadline passed): the task AWAITING_APPROVAL → REJECTED `APPROVAL_EXPIRED`,
//!   the record EXPIRED, and the step answered with the failure `ApprovalExpired` (the workflow
//!   then tells the owner).
//!
//! Every effect is conditional, so a duplicate delivery changes nothing: opening an existing
//! record, renewing to a round already reached, a status already changed.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use taskflow_contracts::{errors, keys, ApprovalPurpose, ApprovalWork, Reason, TaskStatus};
use taskflow_shared::approvals::{deliver, record_on_task, ApprovalState, ApprovalStore, PendingApproval, Written};
use taskflow_shared::callback::{CallbackError, TaskCallback};
use taskflow_shared::driver::StepError;
use taskflow_shared::tasks::{Change, TaskStore, Transitioned};

/// Where reminders go: the task bus.
#[async_trait]
pub trait Reminders: Send + Sync {
    async fn remind(&self, approval: &PendingApproval) -> Result<(), String>;
}

pub struct Approvals<S, A, C, R> {
    pub tasks: S,
    pub approvals: A,
    pub callback: C,
    pub reminders: R,
    /// The first wait (`ApprovalReminderSeconds`): the reminder goes when it runs out.
    pub reminder_after: Duration,
    /// The second wait (`ApprovalFinalSeconds`): the deadline is this long after the reminder.
    pub final_after: Duration,
}

fn retry(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> StepError {
    move |e| StepError::retry(what, e.to_string())
}

impl<S: TaskStore, A: ApprovalStore, C: TaskCallback, R: Reminders> Approvals<S, A, C, R> {
    /// Handles one message. `Ok` means done (delete it); a `Retry` leaves it on the queue; a
    /// `Failed` has been answered to the token where there was one to answer.
    pub async fn handle(&self, work: &ApprovalWork, now: DateTime<Utc>) -> Result<(), StepError> {
        let task_id = keys::task_id(&work.order.owner, &work.order.order_id);
        let id = task_id.as_str();
        match work.purpose {
            ApprovalPurpose::Request => self.request(id, work, now).await,
            ApprovalPurpose::Remind => self.remind(id, work).await,
            ApprovalPurpose::Expire => self.expire(id, work, now).await,
        }
    }

    async fn fail(&self, work: &ApprovalWork, error: &str, cause: &str) -> Result<(), StepError> {
        match self.callback.fail(&work.task_token, error, cause).await {
            Ok(()) | Err(CallbackError::TokenSpent(_)) => Err(StepError::failed(error, cause)),
            Err(CallbackError::Unavailable(e)) => Err(StepError::retry("StepFunctionsUnavailable", e)),
        }
    }

    /// Opens the record of `id`'s approval at `round` with `work`'s token; `Ok(None)` when the
    /// task is not waiting for approval (the step has been failed then).
    async fn open(&self, id: &str, work: &ApprovalWork, round: u8, deadline: DateTime<Utc>, now: DateTime<Utc>) -> Result<Written, StepError> {
        let task = self.tasks.get(id).await.map_err(|e| retry("TaskStoreUnavailable")(&e))?;
        let Some(task) = task.filter(|t| t.status == TaskStatus::AwaitingApproval) else {
            return self.fail(work, errors::TASK_STATE_CONFLICT, "no task awaiting approval").await.map(|_| Written::Conflict(None));
        };
        let record = PendingApproval {
            task_id: id.to_string(),
            order_id: task.order_id.clone(),
            owner: task.owner.clone(),
            amount: task.amount,
            currency: task.currency.clone(),
            requested_at: now,
            deadline,
            round,
            state: ApprovalState::Pending,
            task_token: work.task_token.clone(),
            decision: None,
            delivered: false,
        };
        self.approvals.open(&record).await.map_err(|e| retry("ApprovalStoreUnavailable")(&e))
    }

    async fn request(&self, id: &str, work: &ApprovalWork, now: DateTime<Utc>) -> Result<(), StepError> {
        // Opened, or a duplicate delivery of this request: either way the token is kept.
        self.open(id, work, 1, now + self.reminder_after + self.final_after, now).await.map(|_| ())
    }

    async fn remind(&self, id: &str, work: &ApprovalWork) -> Result<(), StepError> {
        let record = match self.approvals.renew(id, &work.task_token, 2).await.map_err(|e| retry("ApprovalStoreUnavailable")(&e))? {
            Written::Applied(record) => *record,
            Written::Conflict(Some(record)) if record.task_token == work.task_token => *record,
            Written::Conflict(Some(_)) => return self.fail(work, errors::TASK_STATE_CONFLICT, "the approval is at a later wait").await,
            // The request never got recorded (its message dead-lettered, say): the task still
            // waits, so this wait is the one operators answer, until the deadline.
            Written::Conflict(None) => {
                let now = Utc::now();
                match self.open(id, work, 2, now + self.final_after, now).await? {
                    Written::Applied(record) => *record,
                    Written::Conflict(Some(record)) if record.task_token == work.task_token => *record,
                    Written::Conflict(_) => return Ok(()),
                }
            }
        };
        match record.state {
            ApprovalState::Pending => self.reminders.remind(&record).await.map_err(|e| StepError::retry("BusUnavailable", e)),
            // Decided while the first wait was ending: this token carries the decision.
            ApprovalState::Decided if !record.delivered => {
                if let Some(decision) = &record.decision {
                    record_on_task(&self.tasks, id, decision).await.map_err(|e| retry("TaskStoreUnavailable")(&e))?;
                }
                match deliver(&self.callback, &record).await {
                Ok(()) | Err(CallbackError::TokenSpent(_)) => {
                    self.approvals.delivered(id).await.map_err(|e| retry("ApprovalStoreUnavailable")(&e))?;
                    Ok(())
                }
                Err(CallbackError::Unavailable(e)) => Err(StepError::retry("StepFunctionsUnavailable", e)),
                }
            }
            ApprovalState::Decided => Ok(()),
            ApprovalState::Expired => self.fail(work, errors::APPROVAL_EXPIRED, "the approval deadline passed").await,
        }
    }

    async fn expire(&self, id: &str, work: &ApprovalWork, now: DateTime<Utc>) -> Result<(), StepError> {
        self.approvals.expire(id).await.map_err(|e| retry("ApprovalStoreUnavailable")(&e))?;
        let change = Change::to(TaskStatus::Rejected, now).because(Reason::ApprovalExpired, Some("no operator decided before the deadline".into()));
        match self.tasks.transition(id, &[TaskStatus::AwaitingApproval], &change).await.map_err(|e| retry("TaskStoreUnavailable")(&e))? {
            Transitioned::Applied(_) | Transitioned::Conflict(_) | Transitioned::Missing => {}
        }
        self.fail(work, errors::APPROVAL_EXPIRED, "the approval deadline passed").await
    }
}

/// The reminders adapter: `ApprovalReminder` events on the task bus.
pub struct EventBridgeReminders {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

/// EventBridge `DetailType` of a reminder that a refund still waits for an operator.
pub const APPROVAL_REMINDER: &str = "ApprovalReminder";

impl EventBridgeReminders {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, bus_name: impl Into<String>) -> Self {
        Self { client: aws_sdk_eventbridge::Client::new(aws.sdk_config()), bus_name: bus_name.into() }
    }
}

/// The reminder's detail: no token, nothing only the approval path may read.
pub fn reminder_detail(approval: &PendingApproval) -> serde_json::Value {
    json!({
        "schemaVersion": taskflow_contracts::SCHEMA_VERSION,
        "eventId": format!("{}#approval-reminder", approval.task_id),
        "orderId": approval.order_id,
        "owner": approval.owner,
        "amount": approval.amount,
        "currency": approval.currency,
        "requestedAt": approval.requested_at,
        "deadline": approval.deadline,
    })
}

#[async_trait]
impl Reminders for EventBridgeReminders {
    async fn remind(&self, approval: &PendingApproval) -> Result<(), String> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(taskflow_contracts::TASK_SOURCE)
            .detail_type(APPROVAL_REMINDER)
            .detail(reminder_detail(approval).to_string())
            .set_trace_header(taskflow_shared::telemetry::current_header())
            .build();
        let out = self.client.put_events().entries(entry).send().await.map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string())?;
        if out.failed_entry_count > 0 {
            return Err(out.entries().first().and_then(|e| e.error_message()).unwrap_or("rejected").to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
