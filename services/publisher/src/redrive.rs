//! Publishing again what the publisher's dead-letter queue holds, from the task record
//! (`taskflow dlq redrive publisher`).
//!
//! The queue holds two shapes:
//! - the publisher's own [`UnpublishedChange`] notes (a record it could not read): the task's
//!   table key and the history positions the change added;
//! - Lambda's on-failure records for stream batches it gave up on after `MaximumRetryAttempts`
//!   (`DDBStreamBatchInfo`: shard, first and last sequence number — no record contents; AWS
//!   Lambda developer guide, "Retain discarded records for a DynamoDB event source"). Those
//!   records are read back from the stream while it still retains them (24 hours, DynamoDB
//!   developer guide, "Change data capture for DynamoDB Streams") for their keys and positions.
//!
//! Either way the events are built from the task record as it is now, read by its table key,
//! with the ids the publisher gives them (`{orderId}#{sequence}`), so consumers that saw some of
//! them already drop the repeats. A message is done only when every event in it was published.

use crate::bus::{EventBus, PublishError};
use crate::dead::{UnpublishedChange, UNPUBLISHED_CHANGE};
use crate::{event_at, history_len};
use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use serde::{Deserialize, Serialize};
use taskflow_shared::tasks::TaskRecord;
use taskflow_shared::telemetry;
use thiserror::Error;
use tracing::Instrument;

/// Lambda's description of a discarded stream batch (the `DDBStreamBatchInfo` of its on-failure
/// record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamBatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
    #[serde(default)]
    pub batch_size: Option<u64>,
}

/// One message of the publisher's dead-letter queue, read.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadLetter {
    /// The publisher's own note.
    Change(UnpublishedChange),
    /// Lambda's on-failure record for a stream batch.
    Batch(StreamBatchInfo),
}

impl DeadLetter {
    /// Reads a message body. Errors: [`RedriveError::NotADeadLetter`] for anything else.
    pub fn read(body: &str) -> Result<DeadLetter, RedriveError> {
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| RedriveError::NotADeadLetter(e.to_string()))?;
        if let Some(info) = value.get("DDBStreamBatchInfo") {
            return serde_json::from_value(info.clone()).map(DeadLetter::Batch).map_err(|e| RedriveError::NotADeadLetter(format!("DDBStreamBatchInfo: {e}")));
        }
        if value.get("kind").and_then(|k| k.as_str()) == Some(UNPUBLISHED_CHANGE) {
            return serde_json::from_value(value).map(DeadLetter::Change).map_err(|e| RedriveError::NotADeadLetter(format!("{UNPUBLISHED_CHANGE}: {e}")));
        }
        Err(RedriveError::NotADeadLetter("neither an UnpublishedStatusChange nor a DDBStreamBatchInfo record".into()))
    }
}

/// History positions of one task to publish again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Republish {
    /// The task's primary key (DynamoDB JSON), as in the stream record.
    pub table_key: serde_dynamo::Item,
    /// First position (1-based event `sequence`).
    pub first: u32,
    /// Last position; `None`: to the end of the history as it is now.
    pub last: Option<u32>,
}

impl From<&UnpublishedChange> for Republish {
    fn from(change: &UnpublishedChange) -> Self {
        Republish { table_key: change.table_key.clone(), first: change.first_sequence, last: change.last_sequence }
    }
}

/// The status changes stream records carried, in order: each write's new history positions
/// (counted from the raw images, so unreadable records count too). Removals and writes that
/// added no entry carry none.
pub fn changes_in(records: &[EventRecord]) -> Vec<Republish> {
    records
        .iter()
        .filter(|r| r.event_name != "REMOVE" && !r.change.new_image.is_empty())
        .filter_map(|r| {
            let seen = history_len(&r.change.old_image).unwrap_or(0);
            let last = history_len(&r.change.new_image);
            if last.is_some_and(|n| n <= seen) {
                return None;
            }
            Some(Republish { table_key: r.change.keys.clone(), first: seen as u32 + 1, last: last.map(|n| n as u32) })
        })
        .collect()
}

#[derive(Debug, Error)]
pub enum RedriveError {
    #[error("NotADeadLetter: {0}")]
    NotADeadLetter(String),
    /// No task under the key (deleted since).
    #[error("TaskNotFound: no task record under {0}")]
    TaskNotFound(String),
    /// The task record still cannot be read: mend it, then redrive again.
    #[error("CorruptTaskRecord: {0}")]
    Corrupt(String),
    /// The positions to publish are not (or no longer) in the task's history.
    #[error("NotInHistory: {0}")]
    NotInHistory(String),
    /// The stream no longer has (or never had) the batch's records.
    #[error("StreamRecordsGone: {0}")]
    StreamRecordsGone(String),
    #[error("TaskTableUnavailable: {0}")]
    Table(String),
    #[error("StreamUnavailable: {0}")]
    Stream(String),
    #[error("EventBusUnavailable: {0}")]
    Bus(#[from] PublishError),
}

/// Reads task-table items by primary key (strongly consistent).
#[async_trait]
pub trait TaskItems: Send + Sync {
    async fn item(&self, key: &serde_dynamo::Item) -> Result<Option<serde_dynamo::Item>, RedriveError>;
}

/// Reads a range of a stream shard back, in the Lambda event's record shape.
#[async_trait]
pub trait StreamRecords: Send + Sync {
    /// The records from `start_sequence_number` through `end_sequence_number` of the shard.
    async fn between(&self, batch: &StreamBatchInfo) -> Result<Vec<EventRecord>, RedriveError>;
}

fn key_text(key: &serde_dynamo::Item) -> String {
    serde_json::to_string(key).unwrap_or_default()
}

/// Publishes `what` again from the task record as it is now; returns how many events.
pub async fn republish(items: &impl TaskItems, bus: &impl EventBus, what: &Republish) -> Result<usize, RedriveError> {
    let key = key_text(&what.table_key);
    let item = items.item(&what.table_key).await?.ok_or_else(|| RedriveError::TaskNotFound(key.clone()))?;
    let task: TaskRecord = serde_dynamo::from_item(item).map_err(|e| RedriveError::Corrupt(format!("{key}: {e}")))?;
    if what.last.is_some_and(|last| last < what.first) {
        // The change added no history entry: readable now, nothing to announce.
        return Ok(0);
    }
    let len = task.history.len();
    let last = what.last.map_or(len, |l| l as usize);
    if what.first == 0 || what.first as usize > last || last > len {
        return Err(RedriveError::NotInHistory(format!("{key}: positions {}..={last} of a history of {len}", what.first)));
    }
    let events: Vec<_> = (what.first as usize - 1..last).map(|i| event_at(&task, i)).collect();
    let span = telemetry::continue_trace("publisher", task.trace_header.as_deref());
    span.record("order_id", task.order_id.as_str());
    bus.publish(&events).instrument(span).await?;
    Ok(events.len())
}

/// Publishes again what one dead-letter message describes; returns how many events. The message
/// may be deleted only on `Ok`.
pub async fn redrive(body: &str, items: &impl TaskItems, stream: &impl StreamRecords, bus: &impl EventBus) -> Result<usize, RedriveError> {
    match DeadLetter::read(body)? {
        DeadLetter::Change(change) => republish(items, bus, &Republish::from(&change)).await,
        DeadLetter::Batch(batch) => {
            let records = stream.between(&batch).await?;
            if records.is_empty() {
                return Err(RedriveError::StreamRecordsGone(format!(
                    "{} {}..{} of {}",
                    batch.shard_id, batch.start_sequence_number, batch.end_sequence_number, batch.stream_arn
                )));
            }
            let mut published = 0;
            for change in changes_in(&records) {
                published += republish(items, bus, &change).await?;
            }
            Ok(published)
        }
    }
}
