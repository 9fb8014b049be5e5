//! The one crate of what crosses a taskflow boundary: the order event that starts work, the status
//! event every change of a task announces, and the work messages the state machine hands to each
//! service with its task token.
//!
//! Versioning (VERSIONING.md): every type here is version 1 (`schemaVersion: 1`). Adding an
//! optional field is a v1 change and old consumers keep working (unknown fields are ignored on
//! purpose: no type here denies them). Removing or changing the meaning of a field is a v2, read
//! by consumers through an upcaster ([`v2`] sketches one).

pub mod attachment;
pub mod approval;
pub mod cancel;
pub mod events;
pub mod keys;
pub mod limits;
pub mod order;
pub mod owner;
pub mod reasons;
pub mod schemas;
pub mod secret;
pub mod status;
pub mod sweep;
pub mod v2;
pub mod work;

pub use attachment::{Attachment, AttachmentRefusal, TaskAttachmentAdded, TASK_ATTACHMENT_ADDED};
pub use cancel::OrderCancelled;
pub use events::{EventEnvelope, TaskStatusChanged};
pub use order::{Money, OrderItem, OrderKind, OrderSubmitted};
pub use owner::{OwnerId, OwnerIdError};
pub use reasons::Reason;
pub use secret::{PaymentToken, TaskToken};
pub use status::TaskStatus;
pub use sweep::{SweepOutcome, TaskSwept};
pub use work::{
    NotificationResult, NotificationWork, Outcome, PurchaseResult, PurchaseWork, RefundPurpose, RefundResult, RefundWork, StepFailure,
};
pub use approval::{ApprovalDecision, ApprovalPurpose, ApprovalWork, Decision};

/// The schema version of every v1 message and event.
pub const SCHEMA_VERSION: u32 = 1;

/// EventBridge `Source` of orders submitted to taskflow.
pub const ORDER_SOURCE: &str = "taskflow.orders";
/// EventBridge `DetailType` of an order submitted to taskflow.
pub const ORDER_SUBMITTED: &str = "OrderSubmitted";
/// EventBridge `DetailType` of an owner's cancellation of an order (source `taskflow.orders`).
pub const ORDER_CANCELLED: &str = "OrderCancelled";
/// EventBridge `Source` of the events taskflow publishes about its tasks.
pub const TASK_SOURCE: &str = "taskflow.tasks";
/// EventBridge `DetailType` of a task's status change.
pub const TASK_STATUS_CHANGED: &str = "TaskStatusChanged";

/// Error names the services answer a task token with. The state machine's Catch clauses match on
/// these exact strings, so they are part of the contract.
pub mod errors {
    /// The payment provider declined the charge (a business outcome, never retried).
    pub const PAYMENT_DECLINED: &str = "PaymentDeclined";
    /// The payment provider kept failing transiently until the retry budget ran out.
    pub const PAYMENT_UNAVAILABLE: &str = "PaymentUnavailable";
    /// The work message carried a token but its payload could not be read.
    pub const INVALID_WORK_MESSAGE: &str = "InvalidWorkMessage";
    /// The stock could not be reserved after the charge: the state machine compensates.
    pub const OUT_OF_STOCK: &str = "OutOfStock";
    /// The refund failed its checks; the task is REJECTED with the reason.
    pub const REFUND_REJECTED: &str = "RefundRejected";
    /// The task record the work refers to does not exist or is in an unexpected state.
    pub const TASK_STATE_CONFLICT: &str = "TaskStateConflict";
    /// Another delivery of the same step holds it right now: it, not this one, answers.
    pub const STEP_IN_PROGRESS: &str = "StepInProgress";
    /// A compensation found the purchase's charge still claimed by a delivery: it waits for that
    /// claim to end (completed, or expired with its dead holder) before it looks.
    pub const CHARGE_IN_PROGRESS: &str = "ChargeInProgress";
    /// The step's result is larger than Step Functions takes as task output
    /// ([`crate::limits::SFN_PAYLOAD_MAX_BYTES`]): the step fails by this name instead.
    pub const OUTPUT_TOO_LARGE: &str = "OutputTooLarge";
    /// The refund is above the approval threshold and not approved yet: the workflow hands it
    /// to the approval path (not a failure of the order).
    pub const APPROVAL_REQUIRED: &str = "ApprovalRequired";
    /// An operator denied the refund; the task is REJECTED `REFUND_DENIED`.
    pub const REFUND_DENIED: &str = "RefundDenied";
    /// Nobody decided before the deadline; the task is REJECTED `APPROVAL_EXPIRED`.
    pub const APPROVAL_EXPIRED: &str = "ApprovalExpired";
    /// The purchase was cancelled by its owner before the charge: nothing was charged. Its
    /// execution is normally stopped first; if a purchase step still runs, it answers this, and
    /// the compensation finds the task CANCELLED and has nothing to undo.
    pub const ORDER_CANCELLED: &str = "OrderCancelled";

    /// The task's reason for a step failure the state machine caught (by its error name).
    pub fn reason_for(error: Option<&str>) -> crate::Reason {
        use crate::Reason;
        match error {
            Some(PAYMENT_DECLINED) => Reason::PaymentDeclined,
            Some(PAYMENT_UNAVAILABLE) => Reason::PaymentUnavailable,
            Some(OUT_OF_STOCK) => Reason::OutOfStock,
            // The emulator reports an expired heartbeat as States.Timeout, AWS as HeartbeatTimeout.
            Some("States.Timeout" | "States.HeartbeatTimeout") => Reason::TimedOut,
            Some("UnsupportedKind") => Reason::UnsupportedKind,
            Some(ORDER_CANCELLED) => Reason::CancelledByOwner,
            _ => Reason::WorkflowError,
        }
    }
}
