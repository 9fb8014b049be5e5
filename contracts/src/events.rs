//! Events on the bus: the EventBridge envelope as a rule target receives it, and
//! `TaskStatusChanged` v1, announced once for every status change of a task.

use crate::order::OrderKind;
use crate::status::TaskStatus;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An EventBridge event as a rule delivers it to a target (e.g. an SQS message body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventEnvelope<D> {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub time: Option<String>,
    pub detail: D,
}

/// The `detail` of a `TaskStatusChanged` event (source `taskflow.tasks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatusChanged {
    pub schema_version: u32,
    /// `{taskId}#{sequence}` (`taskId` as derived by `keys::task_id` from owner and order id, so
    /// two owners' orders with one order id never share an event id): the same change always has
    /// the same id, so consumers can drop the duplicates that at-least-once delivery brings.
    /// Treat it as opaque.
    /// A task id is 34 characters (`keys::DIGEST_HEX` + a two-character prefix); the sequence a
    /// few digits.
    #[schemars(length(min = 3, max = 64))]
    pub event_id: String,
    /// A rejected order's id is recorded as sent, up to `limits::MAX_RECORDED_ORDER_ID_BYTES`;
    /// every other order's is at most `limits::MAX_ORDER_ID_CHARS`.
    #[schemars(length(min = 1, max = crate::limits::MAX_RECORDED_ORDER_ID_BYTES))]
    pub order_id: String,
    /// Empty only for a rejected order that named no owner; a rejected order's owner is recorded
    /// cut to `limits::MAX_OWNER_BYTES`.
    #[schemars(length(max = crate::limits::MAX_OWNER_BYTES))]
    pub owner: String,
    /// `null` only for a rejected order whose kind could not be read.
    pub kind: Option<OrderKind>,
    pub status: TaskStatus,
    /// `null` for the first status of a task.
    pub previous_status: Option<TaskStatus>,
    /// Set for REJECTED and FAILED (see `Reason` for the names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub reason: Option<String>,
    /// Position of this change in the task's history, from 1.
    pub sequence: u32,
    pub occurred_at: DateTime<Utc>,
}

impl TaskStatusChanged {
    /// The event id of the `sequence`th change of the task keyed `task_id`.
    pub fn event_id_for(task_id: &str, sequence: u32) -> String {
        format!("{task_id}#{sequence}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_reads_an_eventbridge_delivery() {
        let body = r#"{"version":"0","id":"e-1","detail-type":"TaskStatusChanged",
            "source":"taskflow.tasks","account":"123456789012","time":"2026-01-01T00:00:00Z",
            "region":"us-east-1","resources":[],"detail":{"schemaVersion":1,"eventId":"o-1#2",
            "orderId":"o-1","owner":"alice","kind":"purchase","status":"CHARGING",
            "previousStatus":"RECEIVED","sequence":2,"occurredAt":"2026-01-01T00:00:00.123Z"}}"#;
        let event: EventEnvelope<TaskStatusChanged> = serde_json::from_str(body).unwrap();
        assert_eq!(event.detail.status, TaskStatus::Charging);
        assert_eq!(event.detail.previous_status, Some(TaskStatus::Received));
        assert_eq!(event.detail.event_id, TaskStatusChanged::event_id_for("o-1", 2));
    }
}
