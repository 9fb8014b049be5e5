//! The statuses a task goes through.
//!
//! ```text
//! purchase:  RECEIVED ──▶ CHARGING ──▶ COMPLETED
//!                            ├──────▶ FAILED                 (declined, provider unavailable)
//!                            └──────▶ REFUNDING ──▶ FAILED   (OUT_OF_STOCK after the charge: refunded)
//! refund:    RECEIVED ──▶ REFUNDING ──▶ COMPLETED
//!               └────────────┴──────▶ REJECTED               (checks against the ledger)
//!            RECEIVED ──▶ AWAITING_APPROVAL ──▶ REFUNDING    (above the approval threshold: an
//!                              └──────────────▶ REJECTED      operator approves; REFUND_DENIED,
//!                                                             APPROVAL_EXPIRED)
//! any:       (invalid order) ───────▶ REJECTED;  RECEIVED/CHARGING/REFUNDING ──▶ FAILED (timed out)
//! purchase:  RECEIVED ──▶ CANCELLED                          (its owner cancelled it before the charge)
//! ```
//! COMPLETED, FAILED, REJECTED and CANCELLED are terminal. AWAITING_APPROVAL is not: the workflow
//! waits for an operator until the approval deadline, after which the task ends REJECTED
//! `APPROVAL_EXPIRED` (a sweeper must leave it alone until then). A consumer must treat a status
//! it does not know as "some other status" (statuses are added in v1).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Accepted by intake; the workflow is started.
    Received,
    /// The purchase service is charging the payment method and reserving the stock.
    Charging,
    /// Money is going back: a refund order, or a purchase compensated after its charge.
    Refunding,
    /// Done: charged and reserved, or refunded.
    Completed,
    /// Ended without doing what was asked; `reason` says why.
    Failed,
    /// Never started: the order was invalid; `reason` says why.
    Rejected,
    /// A refund above the approval threshold waits for an operator's decision (not terminal: it
    /// ends REFUNDING, or REJECTED `REFUND_DENIED` / `APPROVAL_EXPIRED` at the deadline).
    AwaitingApproval,
    /// Cancelled by its owner before anything was charged (`OrderCancelled`, `DELETE /orders/{id}`):
    /// nothing charged, no stock held, the execution stopped.
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 8] = [
        TaskStatus::Received,
        TaskStatus::Charging,
        TaskStatus::Refunding,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Rejected,
        TaskStatus::AwaitingApproval,
        TaskStatus::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Rejected | TaskStatus::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Received => "RECEIVED",
            TaskStatus::Charging => "CHARGING",
            TaskStatus::Refunding => "REFUNDING",
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Rejected => "REJECTED",
            TaskStatus::AwaitingApproval => "AWAITING_APPROVAL",
            TaskStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_as_str() {
        for status in TaskStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
        }
        assert!(TaskStatus::Rejected.is_terminal() && !TaskStatus::Charging.is_terminal());
        assert!(!TaskStatus::AwaitingApproval.is_terminal());
    }
}
