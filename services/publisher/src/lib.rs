//! Publisher: the outbox relay. Every write to the task table comes through its stream; each new
//! history entry becomes exactly one `TaskStatusChanged` event, with an id derived from the task
//! id (unique across owners, unlike the order id) and the entry's position, so a record delivered twice announces the same event ids again
//! and consumers deduplicate on them. No service writes the table and the bus separately.

pub mod bus;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use bus::{EventBus, PublishError};
use taskflow_contracts::{TaskStatus, TaskStatusChanged, SCHEMA_VERSION};
use taskflow_shared::tasks::TaskRecord;
use taskflow_shared::{metrics, telemetry};
use tracing::Instrument;
use thiserror::Error;

/// The status events for one write: the history entries `new` has beyond `old`.
pub fn announcements(old: Option<&TaskRecord>, new: &TaskRecord) -> Vec<TaskStatusChanged> {
    let seen = old.map_or(0, |o| o.history.len());
    new.history
        .iter()
        .enumerate()
        .skip(seen)
        .map(|(i, entry)| {
            let sequence = i as u32 + 1;
            TaskStatusChanged {
                schema_version: SCHEMA_VERSION,
                event_id: TaskStatusChanged::event_id_for(&new.task_id, sequence),
                order_id: new.order_id.clone(),
                owner: new.owner.clone(),
                kind: new.kind,
                status: entry.status,
                previous_status: i.checked_sub(1).map(|p| new.history[p].status),
                reason: entry.reason.map(|r| r.as_str().to_string()),
                sequence,
                occurred_at: entry.at,
            }
        })
        .collect()
}

/// Orders that ended, by how and by kind (metrics `OrdersCompleted`, `OrdersFailed`,
/// `OrdersRejected`). A redelivered stream record counts again: the metric is for operators'
/// rates, the events (deduplicated by id) are the record.
fn count_outcome(event: &TaskStatusChanged) {
    let name = match event.status {
        TaskStatus::Completed => "OrdersCompleted",
        TaskStatus::Failed => "OrdersFailed",
        TaskStatus::Rejected => "OrdersRejected",
        _ => return,
    };
    let kind = event.kind.map_or("unknown", |k| k.as_str());
    metrics::count(name, &[("Kind", kind)]);
}

#[derive(Debug, Error)]
pub enum RelayError {
    /// A stream record that is not a task record: retried, then sent to the stream's failure
    /// destination by the event source mapping.
    #[error("CorruptTaskRecord: {0}")]
    Corrupt(String),
    #[error("EventBusUnavailable: {0}")]
    Bus(#[from] PublishError),
}

pub struct Publisher<B> {
    pub bus: B,
}

impl<B: EventBus> Publisher<B> {
    /// Publishes the status events of a batch of stream records, in order; returns how many.
    /// Each record's events are published in its order's trace, as a child of the work that
    /// made the change (the header stored with it).
    pub async fn relay(&self, event: &StreamEvent) -> Result<usize, RelayError> {
        let mut published = 0;
        for record in &event.records {
            if record.event_name == "REMOVE" || record.change.new_image.is_empty() {
                continue;
            }
            let decode = |item: &serde_dynamo::Item| -> Result<TaskRecord, RelayError> {
                serde_dynamo::from_item(item.clone()).map_err(|e| RelayError::Corrupt(format!("{}: {e}", record.event_id)))
            };
            let new = decode(&record.change.new_image)?;
            let old = if record.change.old_image.is_empty() { None } else { Some(decode(&record.change.old_image)?) };
            let events = announcements(old.as_ref(), &new);
            if events.is_empty() {
                continue;
            }
            let span = telemetry::continue_trace("publisher", new.trace_header.as_deref());
            span.record("order_id", new.order_id.as_str());
            self.bus.publish(&events).instrument(span).await?;
            for event in &events {
                count_outcome(event);
            }
            published += events.len();
        }
        Ok(published)
    }
}

#[cfg(test)]
mod tests;
