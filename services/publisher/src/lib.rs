//! Publisher: the outbox relay. Every write to the task table comes through its stream; each new
//! history entry becomes exactly one `TaskStatusChanged` event, with an id derived from the task
//! id (unique across owners, unlike the order id) and the entry's position, so a record delivered twice announces the same event ids again
//! and consumers deduplicate on them. No service writes the table and the bus separately.
//!
//! One bad record never costs its neighbours their events:
//! - A record that can never be announced as it is (a task record the publisher cannot read: a
//!   status it does not know, a missing field — e.g. written by a backfill script) is set aside:
//!   an [`UnpublishedChange`](dead::UnpublishedChange) naming its table key and history positions
//!   goes to the publisher's dead-letter queue, and the batch goes on. Retrying it could not help.
//! - A record that fails for a reason that may pass (the bus or the queue unavailable) is
//!   reported in the partial batch response ([`StreamBatchResponse`]) and nothing after it is
//!   tried: Lambda retries from it, so a task's events keep their order.
//!
//! `taskflow dlq redrive publisher` publishes a set-aside change again from the task record
//! ([`redrive`]), with the same event ids.
//!
//! # Task logs are written here
//!
//! When a task is closed ([`tasklog::ready`]: terminal, and its receipt recorded if a workflow
//! ran for it) the publisher writes its audit log to S3 (`logs/{owner segment}/{orderId}/{taskId}.jsonl`,
//! [`taskflow_shared::tasklog`]), once (`If-None-Match: *`). Here rather than in the notification
//! step because the stream is the one place that sees every task's every write: orders REJECTED
//! at intake never reach a notification step, and the status events the log lists are the ones
//! published here, from the same image, with the same ids. A log that cannot be written yet
//! fails its record like an unavailable bus (retried from it; its events are announced again
//! with the same ids, which consumers drop), so no closed task goes without its log.

pub mod bus;
pub mod dead;
pub mod redrive;

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use bus::{EventBus, PublishError};
use dead::{DeadLetters, UnpublishedChange};
use serde::{Deserialize, Serialize};
use taskflow_contracts::{TaskAttachmentAdded, TaskStatus, TaskStatusChanged, SCHEMA_VERSION};
use taskflow_shared::tasklog::{self, TaskLogs};
use taskflow_shared::tasks::TaskRecord;
use taskflow_shared::{metrics, telemetry};
use thiserror::Error;
use tracing::{error, warn, Instrument};

/// The status events for one write: the history entries `new` has beyond `old`.
pub fn announcements(old: Option<&TaskRecord>, new: &TaskRecord) -> Vec<TaskStatusChanged> {
    events_after(new, old.map_or(0, |o| o.history.len()))
}

/// The status events of `task`'s history entries after the first `seen` (sequence `seen + 1`
/// onwards).
pub fn events_after(task: &TaskRecord, seen: usize) -> Vec<TaskStatusChanged> {
    (seen..task.history.len()).map(|i| event_at(task, i)).collect()
}

/// The status event of `task`'s history entry at `index` (sequence `index + 1`).
///
/// Panics if `index` is not in the history.
pub fn event_at(task: &TaskRecord, index: usize) -> TaskStatusChanged {
    let entry = &task.history[index];
    let sequence = index as u32 + 1;
    TaskStatusChanged {
        schema_version: SCHEMA_VERSION,
        event_id: TaskStatusChanged::event_id_for(&task.task_id, sequence),
        order_id: task.order_id.clone(),
        owner: task.owner.clone(),
        kind: task.kind,
        status: entry.status,
        previous_status: index.checked_sub(1).map(|p| task.history[p].status),
        reason: entry.reason.map(|r| r.as_str().to_string()),
        sequence,
        occurred_at: entry.at,
    }
}

/// The `TaskAttachmentAdded` events of `task`'s attachments after the first `seen` (attachments
/// are only ever appended, so an image's count is what was announced up to it).
pub fn attachments_after(task: &TaskRecord, seen: usize) -> Vec<TaskAttachmentAdded> {
    task.attachments
        .iter()
        .enumerate()
        .skip(seen)
        .map(|(i, attachment)| TaskAttachmentAdded {
            schema_version: SCHEMA_VERSION,
            event_id: TaskAttachmentAdded::event_id_for(&task.task_id, &attachment.id),
            order_id: task.order_id.clone(),
            owner: task.owner.clone(),
            attachment: attachment.clone(),
            position: i as u32 + 1,
        })
        .collect()
}

/// How many attachments a stream image holds, read from its raw form (`attachments` as a
/// list; absent or unreadable: none, so the new image's are all announced, with their stable ids).
pub fn attachments_len(image: &serde_dynamo::Item) -> usize {
    match image.get("attachments") {
        Some(serde_dynamo::AttributeValue::L(entries)) => entries.len(),
        _ => 0,
    }
}

/// How many history entries a stream image holds, read from its raw DynamoDB form (`history`
/// as a list), so that it can be known of an image that is not a readable task record. An absent
/// image holds none; `None` when the image has no readable `history` list.
pub fn history_len(image: &serde_dynamo::Item) -> Option<usize> {
    if image.is_empty() {
        return Some(0);
    }
    match image.get("history") {
        Some(serde_dynamo::AttributeValue::L(entries)) => Some(entries.len()),
        _ => None,
    }
}

/// Orders that ended, by how and by kind (metrics `OrdersCompleted`, `OrdersFailed`,
/// `OrdersRejected`, `OrdersCancelled`). A redelivered stream record counts again: the metric is for operators'
/// rates, the events (deduplicated by id) are the record.
fn count_outcome(event: &TaskStatusChanged) {
    let name = match event.status {
        TaskStatus::Completed => "OrdersCompleted",
        TaskStatus::Failed => "OrdersFailed",
        TaskStatus::Rejected => "OrdersRejected",
        TaskStatus::Cancelled => "OrdersCancelled",
        _ => return,
    };
    let kind = event.kind.map_or("unknown", |k| k.as_str());
    metrics::count(name, &[("Kind", kind)]);
}

/// The partial batch response of a function fed by a DynamoDB stream with
/// `FunctionResponseTypes: [ReportBatchItemFailures]`: `{"batchItemFailures": [{"itemIdentifier":
/// "<SequenceNumber>"}]}`. Lambda retries from the lowest sequence number listed (the records
/// before it are done); an empty list is a complete success (AWS Lambda developer guide,
/// "Configuring partial batch response with DynamoDB and Lambda").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamBatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// The failed record's `dynamodb.SequenceNumber`.
    pub item_identifier: String,
}

/// What one batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Status events published.
    pub published: usize,
    /// Records set aside in the dead-letter queue (unreadable: retrying cannot help).
    pub set_aside: usize,
    /// What to answer Lambda: the record to retry from, if one failed for a reason that may pass.
    pub response: StreamBatchResponse,
}

/// Why a record was not relayed.
#[derive(Debug, Error)]
pub enum RelayError {
    /// A stream record that is not a readable task record: set aside in the dead-letter queue.
    #[error("CorruptTaskRecord: {0}")]
    Corrupt(String),
    #[error("EventBusUnavailable: {0}")]
    Bus(#[from] PublishError),
    #[error("DeadLetterQueueUnavailable: {0}")]
    DeadLetters(String),
    /// The task log of a closed task could not be written (the bucket unavailable).
    #[error("TaskLogUnavailable: {0}")]
    TaskLog(String),
    /// A record failed and has no sequence number to report it by: the whole batch is retried.
    #[error("UnidentifiedRecord: {0}")]
    Unidentified(String),
}

pub struct Publisher<B, D, L = tasklog::InMemoryTaskLogs> {
    pub bus: B,
    pub dead_letters: D,
    /// Where closed tasks' logs are written (the task bucket's `logs/` prefix).
    pub logs: L,
    /// The workflows, from which a log's `executionArn` is derived (the task does not note it);
    /// `None`: logs name no execution.
    pub workflows: Option<taskflow_shared::executions::WorkflowArns>,
}

impl<B: EventBus, D: DeadLetters, L: TaskLogs> Publisher<B, D, L> {
    /// Publishes the status events of a batch of stream records, in order.
    ///
    /// Each record's events are published in its order's trace, as a child of the work that made
    /// the change (the header stored with it). An unreadable record is set aside (see the crate
    /// docs) and the batch goes on; the first record that fails otherwise is reported in
    /// [`Relayed::response`] and the records after it are left for Lambda's retry.
    ///
    /// Errors: only [`RelayError::Unidentified`] — a record failed and carries no
    /// `SequenceNumber` to report it by (Lambda then retries the whole batch).
    pub async fn relay(&self, event: &StreamEvent) -> Result<Relayed, RelayError> {
        let mut relayed = Relayed::default();
        for record in &event.records {
            match self.relay_record(record).await {
                Ok(Outcome::Published(n)) => relayed.published += n,
                Ok(Outcome::SetAside) => relayed.set_aside += 1,
                Err(e) => {
                    let Some(sequence) = record.change.sequence_number.clone().filter(|s| !s.is_empty()) else {
                        return Err(RelayError::Unidentified(format!("{}: {e}", record.event_id)));
                    };
                    error!(error = %e, sequence_number = sequence.as_str(), "stream record not relayed; retried from here");
                    relayed.response.batch_item_failures.push(BatchItemFailure { item_identifier: sequence });
                    break;
                }
            }
        }
        Ok(relayed)
    }

    async fn relay_record(&self, record: &EventRecord) -> Result<Outcome, RelayError> {
        let change = &record.change;
        if record.event_name == "REMOVE" || change.new_image.is_empty() {
            return Ok(Outcome::Published(0));
        }
        // What the reader had already been told: the old image's entries. Counted from the raw
        // image, so that mending an unreadable record (old image unreadable, new image fine)
        // announces nothing twice and nothing is lost.
        let seen = history_len(&change.old_image);
        let new = match serde_dynamo::from_item::<_, TaskRecord>(change.new_image.clone()) {
            Ok(new) => new,
            Err(e) => {
                let reason = RelayError::Corrupt(format!("{}: {e}", record.event_id));
                let note = UnpublishedChange::of(record, seen.unwrap_or(0), &reason.to_string());
                warn!(error = %reason, order_id = note.order_id.as_deref().unwrap_or_default(), "unreadable task record set aside in the dead-letter queue");
                self.dead_letters.set_aside(&note).await.map_err(|e| RelayError::DeadLetters(e.to_string()))?;
                metrics::count("UnpublishedChanges", &[]);
                return Ok(Outcome::SetAside);
            }
        };
        // An old image without a readable history: announce the whole history again (the same
        // ids: consumers drop what they saw) rather than guess.
        let events = events_after(&new, seen.unwrap_or(0).min(new.history.len()));
        let attached = attachments_after(&new, attachments_len(&change.old_image).min(new.attachments.len()));
        if events.is_empty() && attached.is_empty() && !tasklog::ready(&new) {
            return Ok(Outcome::Published(0));
        }
        let span = telemetry::continue_trace("publisher", new.trace_header.as_deref());
        span.record("order_id", new.order_id.as_str());
        if !events.is_empty() || !attached.is_empty() {
            if !events.is_empty() {
                self.bus.publish(&events).instrument(span.clone()).await?;
            }
            for event in &events {
                count_outcome(event);
            }
            if !attached.is_empty() {
                self.bus.publish_attachments(&attached).instrument(span.clone()).await?;
            }
        }
        // After its events: a log never lists an event that was not announced. In the order's
        // trace too, like every other call made for it.
        self.write_log(&new).instrument(span).await?;
        Ok(Outcome::Published(events.len() + attached.len()))
    }

    /// Writes `task`'s log if it is closed ([`tasklog::ready`]); once, whatever the deliveries.
    async fn write_log(&self, task: &TaskRecord) -> Result<(), RelayError> {
        if !tasklog::ready(task) {
            return Ok(());
        }
        let key = match tasklog::key(task) {
            Ok(key) => key,
            Err(e) => {
                // Only a record written outside taskflow has no derived task id.
                warn!(error = %e, order_id = task.order_id.as_str(), "closed task has no log key; no log written");
                return Ok(());
            }
        };
        // The log names the task's execution, derived (the task notes none since it is derivable).
        let mut task = task.clone();
        if let Some(workflows) = &self.workflows {
            task.execution_arn = workflows.execution_of(&task);
        }
        let task = &task;
        let written = self.logs.write_once(&key, &tasklog::render(task)).await.map_err(|e| RelayError::TaskLog(e.to_string()))?;
        if written == tasklog::Written::Created {
            tracing::info!(order_id = task.order_id.as_str(), key = key.as_str(), status = task.status.as_str(), "task log written");
        }
        Ok(())
    }
}

enum Outcome {
    Published(usize),
    SetAside,
}

#[cfg(test)]
mod tests;
