//! Setting a stream record aside: the note the publisher leaves in its dead-letter queue for a
//! change it cannot announce, and the port (and SQS adapter) it leaves it through.

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The value of [`UnpublishedChange::kind`]: how a redrive tells the publisher's own notes from
/// Lambda's on-failure records in the same queue.
pub const UNPUBLISHED_CHANGE: &str = "UnpublishedStatusChange";

/// A task-table change whose status events were not published: what it takes to publish them
/// again from the task record. One SQS message body (JSON, camelCase), e.g.
///
/// ```json
/// {"kind": "UnpublishedStatusChange", "orderId": "ord-1", "tableKey": {"orderId": {"S": "ord-1"}},
///  "firstSequence": 1, "lastSequence": 1, "reason": "CorruptTaskRecord: …",
///  "eventId": "…", "eventName": "INSERT", "sequenceNumber": "…", "streamArn": "…",
///  "at": "2026-11-29T19:00:00Z"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpublishedChange {
    /// Always [`UNPUBLISHED_CHANGE`].
    pub kind: String,
    /// The order id, when the record's key names one as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The task's primary key as the stream gave it (`Keys`, DynamoDB JSON): what the redrive
    /// reads the task record by.
    pub table_key: serde_dynamo::Item,
    /// The first history position (1-based, the event's `sequence`) the change added.
    pub first_sequence: u32,
    /// The last history position the change added (below `first_sequence` when it added none:
    /// then there is nothing to publish, only a record to mend); `None` when the new image's
    /// history could not be counted (then every position from `first_sequence` on is published).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sequence: Option<u32>,
    /// Why it was set aside (a named error, e.g. `CorruptTaskRecord: …`).
    pub reason: String,
    /// The stream record's `eventID`, `eventName` and `dynamodb.SequenceNumber`, and the stream.
    pub event_id: String,
    pub event_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    /// When it was set aside.
    pub at: DateTime<Utc>,
}

impl UnpublishedChange {
    /// The note for `record`, whose old image held `seen` history entries.
    pub fn of(record: &EventRecord, seen: usize, reason: &str) -> Self {
        let change = &record.change;
        let order_id = match change.keys.get("orderId").or_else(|| change.new_image.get("orderId")) {
            Some(serde_dynamo::AttributeValue::S(id)) => Some(id.clone()),
            _ => None,
        };
        let last = crate::history_len(&change.new_image).map(|n| n as u32);
        UnpublishedChange {
            kind: UNPUBLISHED_CHANGE.to_string(),
            order_id,
            table_key: change.keys.clone(),
            first_sequence: seen as u32 + 1,
            last_sequence: last,
            reason: reason.to_string(),
            event_id: record.event_id.clone(),
            event_name: record.event_name.clone(),
            sequence_number: change.sequence_number.clone(),
            stream_arn: record.event_source_arn.clone(),
            at: Utc::now(),
        }
    }
}

#[derive(Debug, Error)]
#[error("{0}")]
pub struct DeadLetterError(pub String);

/// Where changes that cannot be published are set aside.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn set_aside(&self, change: &UnpublishedChange) -> Result<(), DeadLetterError>;
}

/// The publisher's dead-letter queue (`PUBLISHER_DLQ_URL`; the same queue is the stream event
/// source's on-failure destination). Calls `sqs:SendMessage` on it. Only a change that could not be
/// published goes there, so its SQS client is built on the first one, not at init
/// (`taskflow_shared::on_first_use`).
pub struct SqsDeadLetters {
    client: taskflow_shared::on_first_use::OnFirstUse<aws_sdk_sqs::Client>,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, queue_url: impl Into<String>) -> Self {
        Self { client: aws.sqs_on_first_use(), queue_url: queue_url.into() }
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn set_aside(&self, change: &UnpublishedChange) -> Result<(), DeadLetterError> {
        self.client
            .get()
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::to_string(change).expect("notes always serialise"))
            .send()
            .await
            .map_err(|e| DeadLetterError(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}
