//! The work messages the state machine puts on each service's queue, each with the task token
//! the service answers, and the results the services answer with.
//!
//! Their shape is fixed by the `MessageBody` of the matching state in
//! `statemachine/*.asl.json`; a test in `services/shared` reads the ASL to keep them in step.

use crate::order::{Money, OrderKind, OrderSubmitted};
use crate::secret::TaskToken;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// On the purchase queue: charge this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseWork {
    pub schema_version: u32,
    pub task_token: TaskToken,
    pub order: OrderSubmitted,
    /// The order's X-Ray trace header (`Root=…;Parent=…;Sampled=…`), so the service's work joins
    /// the order's one trace. Absent (older producers): the service starts a new trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::MAX_TRACE_HEADER_CHARS))]
    pub trace_header: Option<String>,
}

/// What the purchase service answers on success; the state machine keeps it at `$.purchase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseResult {
    #[schemars(length(min = 1, max = crate::limits::MAX_ID_CHARS))]
    pub charge_id: String,
    pub amount: Money,
    #[schemars(length(min = 3, max = crate::limits::MAX_CURRENCY_CHARS))]
    pub currency: String,
}

/// Why the refund service is asked to give money back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefundPurpose {
    /// A refund order (`order.kind` is refund): checked against the ledger first.
    Refund,
    /// A purchase that was charged but could not be completed (`order` is the purchase): its
    /// whole charge goes back and its stock is released.
    Compensation,
}

/// On the refund queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundWork {
    pub schema_version: u32,
    pub task_token: TaskToken,
    pub purpose: RefundPurpose,
    pub order: OrderSubmitted,
    /// For a compensation: what made the purchase fail (the state machine's caught error), which
    /// becomes the task's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StepFailure>,
    /// The order's X-Ray trace header (`Root=…;Parent=…;Sampled=…`), so the service's work joins
    /// the order's one trace. Absent (older producers): the service starts a new trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::MAX_TRACE_HEADER_CHARS))]
    pub trace_header: Option<String>,
}

/// What the refund service answers on success; the state machine keeps it at `$.refund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundResult {
    #[schemars(length(max = crate::limits::MAX_ID_CHARS))]
    pub refund_id: String,
    pub amount: Money,
    #[schemars(length(max = crate::limits::MAX_CURRENCY_CHARS))]
    pub currency: String,
}

/// How the order ended, as far as the owner is to be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Completed,
    Failed,
}

/// A caught error as Step Functions hands it to the failure path (`$.failure`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StepFailure {
    /// At most 256 characters (Step Functions API reference, SendTaskFailure `error`).
    #[serde(rename = "Error")]
    #[schemars(length(max = crate::limits::SFN_ERROR_MAX_CHARS))]
    pub error: String,
    /// At most 32768 characters (SendTaskFailure `cause`); taskflow's workers send at most
    /// `limits::MAX_FAILURE_CAUSE_CHARS`.
    #[serde(rename = "Cause", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::SFN_CAUSE_MAX_CHARS))]
    pub cause: Option<String>,
}

/// On the notification queue: tell the owner how the order ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationWork {
    pub schema_version: u32,
    pub task_token: TaskToken,
    #[schemars(length(min = 1, max = crate::limits::MAX_ORDER_ID_CHARS))]
    pub order_id: String,
    #[schemars(length(min = 1, max = crate::limits::MAX_OWNER_BYTES))]
    pub owner: String,
    pub kind: OrderKind,
    pub outcome: Outcome,
    /// Set when `outcome` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StepFailure>,
    /// The order's X-Ray trace header (`Root=…;Parent=…;Sampled=…`), so the service's work joins
    /// the order's one trace. Absent (older producers): the service starts a new trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::MAX_TRACE_HEADER_CHARS))]
    pub trace_header: Option<String>,
}

/// What the notification service answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationResult {
    /// Where the receipt is stored (S3 key in the task bucket).
    #[schemars(length(min = 1, max = crate::limits::MAX_S3_KEY_BYTES))]
    pub receipt_key: String,
}
