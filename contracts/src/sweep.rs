//! `TaskSwept` v1: what the sweeper did about a task it found in flight too long (bus source
//! `taskflow.sweeper`). One event per task it finished or handed to operators; tasks it left
//! alone (their workflow is running within its time, or their status has its own deadline) are
//! only counted.

use crate::{OrderKind, TaskStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// EventBridge `Source` of the sweeper's events.
pub const SWEEPER_SOURCE: &str = "taskflow.sweeper";
/// EventBridge `DetailType` of [`TaskSwept`].
pub const TASK_SWEPT: &str = "TaskSwept";

/// What the sweeper did with one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SweepOutcome {
    /// Not stuck (or not the sweeper's to fix): untouched.
    LeftAlone,
    /// Its compensation (purchase) or refund (refund order) was retried through the refund
    /// service's idempotent path and the task ended.
    Finished,
    /// The retry could not finish it: an operator must (alarm `SweepUnresolved`).
    HandedToOperators,
}

/// The `detail` of a `TaskSwept` event, and one line of a sweep's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSwept {
    pub schema_version: u32,
    pub order_id: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<OrderKind>,
    /// The task's status when the sweeper found it. A status this version does not know reads
    /// as an error; consumers should treat the field as a string.
    pub status: TaskStatus,
    pub outcome: SweepOutcome,
    /// The task's status after the retry (for `finished` and `handedToOperators`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_after: Option<TaskStatus>,
    /// Why it was judged so, and for `handedToOperators` what failed.
    pub reason: String,
    /// Seconds since the task went in flight.
    pub age_seconds: i64,
    /// RFC 3339, UTC.
    pub swept_at: chrono::DateTime<chrono::Utc>,
}
