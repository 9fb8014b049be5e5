//! A sketch of what a breaking change looks like under the versioning policy (VERSIONING.md):
//! `TaskStatusChanged` v2 replaces the free-text `reason` with a structured one and makes `kind`
//! always present. Consumers that move to v2 read both versions through [`read_status_event`]:
//! v1 events are upcast, so producers can switch at their own pace.
//!
//! Not published by anything yet; it exists to prove the policy works.

use crate::events::TaskStatusChanged;
use crate::status::TaskStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasonV2 {
    pub code: String,
    /// `true` when the consumer can expect a retry of the same order to behave differently.
    pub retryable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatusChangedV2 {
    pub schema_version: u32,
    pub event_id: String,
    pub order_id: String,
    pub owner: String,
    /// `"unknown"` where v1 had none.
    pub kind: String,
    pub status: TaskStatus,
    pub previous_status: Option<TaskStatus>,
    pub reason: Option<ReasonV2>,
    pub sequence: u32,
    pub occurred_at: DateTime<Utc>,
}

/// v1 → v2, losing nothing.
pub fn upcast(v1: TaskStatusChanged) -> TaskStatusChangedV2 {
    TaskStatusChangedV2 {
        schema_version: 2,
        event_id: v1.event_id,
        order_id: v1.order_id,
        owner: v1.owner,
        kind: v1.kind.map_or("unknown", |k| k.as_str()).to_string(),
        status: v1.status,
        previous_status: v1.previous_status,
        reason: v1.reason.map(|code| ReasonV2 {
            retryable: matches!(code.as_str(), "PAYMENT_UNAVAILABLE" | "TIMED_OUT" | "OUT_OF_STOCK"),
            code,
        }),
        sequence: v1.sequence,
        occurred_at: v1.occurred_at,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not a TaskStatusChanged: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("schemaVersion {0} is newer than this consumer")]
    UnknownVersion(u64),
}

/// Reads a `TaskStatusChanged` detail of any known version as v2.
pub fn read_status_event(detail: &serde_json::Value) -> Result<TaskStatusChangedV2, ReadError> {
    match detail.get("schemaVersion").and_then(serde_json::Value::as_u64) {
        Some(1) => Ok(upcast(serde_json::from_value(detail.clone())?)),
        Some(2) => Ok(serde_json::from_value(detail.clone())?),
        Some(other) => Err(ReadError::UnknownVersion(other)),
        None => Err(ReadError::Malformed(serde::de::Error::missing_field("schemaVersion"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v1_detail() -> serde_json::Value {
        json!({"schemaVersion": 1, "eventId": "o-1#3", "orderId": "o-1", "owner": "alice", "kind": "purchase",
               "status": "FAILED", "previousStatus": "CHARGING", "reason": "PAYMENT_UNAVAILABLE", "sequence": 3,
               "occurredAt": "2026-11-25T10:00:00Z"})
    }

    #[test]
    fn todays_consumer_accepts_a_v1_event_with_fields_added_later() {
        let mut detail = v1_detail();
        detail["addedInV1_3"] = json!({"anything": [1, 2]});
        detail["traceId"] = json!("1-abc");
        let event: TaskStatusChanged = serde_json::from_value(detail).unwrap();
        assert_eq!(event.status, TaskStatus::Failed);
        assert_eq!(event.reason.as_deref(), Some("PAYMENT_UNAVAILABLE"));
    }

    #[test]
    fn a_v1_event_upcasts_to_v2_without_loss() {
        let v2 = read_status_event(&v1_detail()).unwrap();
        assert_eq!(v2.schema_version, 2);
        assert_eq!(v2.kind, "purchase");
        assert_eq!(v2.reason, Some(ReasonV2 { code: "PAYMENT_UNAVAILABLE".into(), retryable: true }));
        assert_eq!((v2.sequence, v2.previous_status), (3, Some(TaskStatus::Charging)));
        // A v2 event reads as itself.
        let again = read_status_event(&serde_json::to_value(&v2).unwrap()).unwrap();
        assert_eq!(again, v2);
    }

    #[test]
    fn a_version_from_the_future_is_a_named_error_not_a_guess() {
        let mut detail = v1_detail();
        detail["schemaVersion"] = json!(3);
        assert!(matches!(read_status_event(&detail), Err(ReadError::UnknownVersion(3))));
    }
}
