//! Publisher: the outbox relay. Every write to the task table comes through its stream; each new
//! history entry becomes exactly one `TaskStatusChanged` event, with an id derived from the order
//! id and the entry's position, so a record delivered twice announces the same event ids again
//! and consumers deduplicate on them. No service writes the table and the bus separately.

pub mod bus;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use bus::{EventBus, PublishError};
use taskflow_contracts::{TaskStatusChanged, SCHEMA_VERSION};
use taskflow_shared::tasks::TaskRecord;
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
                event_id: TaskStatusChanged::event_id_for(&new.order_id, sequence),
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
    pub async fn relay(&self, event: &StreamEvent) -> Result<usize, RelayError> {
        let mut events = Vec::new();
        for record in &event.records {
            if record.event_name == "REMOVE" || record.change.new_image.is_empty() {
                continue;
            }
            let decode = |item: &serde_dynamo::Item| -> Result<TaskRecord, RelayError> {
                serde_dynamo::from_item(item.clone()).map_err(|e| RelayError::Corrupt(format!("{}: {e}", record.event_id)))
            };
            let new = decode(&record.change.new_image)?;
            let old = if record.change.old_image.is_empty() { None } else { Some(decode(&record.change.old_image)?) };
            events.extend(announcements(old.as_ref(), &new));
        }
        self.bus.publish(&events).await?;
        Ok(events.len())
    }
}

#[cfg(test)]
mod tests;
