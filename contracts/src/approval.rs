//! Refund approval — the human-in-the-loop task-token pattern.
//!
//! A refund above the approval threshold (`RefundApprovalThresholds`, minor units per currency)
//! is not refunded until an operator decides. The refund workflow's approval steps put an
//! [`ApprovalWork`] with a task token on the approvals queue; the approvals function records the
//! pending approval and the token in the approvals table (readable only by the approval path:
//! the approvals function and the HTTP API's operator routes), never in the task record, never in
//! a log. An operator's decision answers that token; nobody's decision before the deadline ends
//! the task REJECTED `APPROVAL_EXPIRED`.

use crate::order::{Money, OrderSubmitted};
use crate::secret::TaskToken;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which approval step sent the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalPurpose {
    /// The refund waits for an operator: record it (task AWAITING_APPROVAL) and keep the token.
    Request,
    /// The first wait ran out (`ApprovalReminderSeconds`): keep the new token, announce an
    /// `ApprovalReminder`; the deadline is `ApprovalFinalSeconds` away.
    Remind,
    /// The deadline passed: the task ends REJECTED `APPROVAL_EXPIRED` (answered as the failure
    /// `ApprovalExpired`).
    Expire,
}

/// On the approvals queue, from the refund workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalWork {
    pub schema_version: u32,
    pub task_token: TaskToken,
    pub purpose: ApprovalPurpose,
    /// The refund order (the workflow's state).
    pub order: OrderSubmitted,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::MAX_TRACE_HEADER_CHARS))]
    pub trace_header: Option<String>,
}

/// What an operator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    Approved,
    Denied,
}

/// A decision as recorded on the task (`approval`) and answered to the workflow: who, when, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDecision {
    pub decision: Decision,
    /// The operator (the token's `sub`).
    #[schemars(length(min = 1, max = crate::limits::MAX_OWNER_BYTES))]
    pub by: String,
    pub at: DateTime<Utc>,
    /// Why (required to deny), at most `limits::MAX_REASON_DETAIL_CHARS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::MAX_REASON_DETAIL_CHARS))]
    pub reason: Option<String>,
    /// The refund amount approved or denied, minor units.
    pub amount: Money,
}
