//! Named reasons a task is REJECTED or FAILED. They appear as `reason` on the task record and on
//! `TaskStatusChanged`; consumers may branch on them. New reasons are additive (v1): a consumer
//! must treat an unknown reason as "some other reason", which is why the event field is a string.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum Reason {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        impl Reason {
            pub const ALL: &[Reason] = &[$(Reason::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $name,)* }
            }

            pub fn parse(s: &str) -> Option<Reason> {
                match s { $($name => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reasons! {
    // Why an order is REJECTED (found by intake, before any work starts).
    /// The detail is not an order: a field is missing or has the wrong type.
    MalformedOrder => "MALFORMED_ORDER",
    /// `schemaVersion` is not one this taskflow reads.
    UnsupportedSchemaVersion => "UNSUPPORTED_SCHEMA_VERSION",
    /// `orderId` is empty, too long or has characters an execution name cannot carry.
    InvalidOrderId => "INVALID_ORDER_ID",
    /// `owner` is not a valid owner id (`OwnerId::parse`: 1–254 bytes of letters, digits and
    /// email punctuation, no `/`, `\`, whitespace or control characters, no leading or trailing
    /// `.`, in NFC).
    InvalidOwner => "INVALID_OWNER",
    /// The owner already used this `orderId` for an order with other content. The first order
    /// stands; this one is recorded REJECTED under its own key and announced to the owner.
    OrderIdConflict => "ORDER_ID_CONFLICT",
    /// A purchase without items.
    NoItems => "NO_ITEMS",
    /// More lines than one order may have.
    TooManyItems => "TOO_MANY_ITEMS",
    /// An item with quantity 0 or an empty sku.
    InvalidItem => "INVALID_ITEM",
    /// An item whose stated `unitPrice` is 0.
    InvalidPrice => "INVALID_PRICE",
    /// A stated `unitPrice` (or a purchase's stated `amount`) is not what the catalogue charges
    /// at acceptance: the catalogue is the only source of prices.
    PriceMismatch => "PRICE_MISMATCH",
    /// A sku the catalogue does not have.
    UnknownSku => "UNKNOWN_SKU",
    /// A sku the catalogue has but no longer sells (`active` false).
    SkuInactive => "SKU_INACTIVE",
    /// The same sku on two lines.
    DuplicateSku => "DUPLICATE_SKU",
    /// The total does not fit the amount type or is above the per-order limit.
    AmountTooLarge => "AMOUNT_TOO_LARGE",
    /// A refund amount of 0.
    InvalidAmount => "INVALID_AMOUNT",
    /// A currency taskflow does not take.
    UnsupportedCurrency => "UNSUPPORTED_CURRENCY",
    /// A purchase without a payment token.
    MissingPaymentToken => "MISSING_PAYMENT_TOKEN",
    /// A refund that does not say which order it refunds.
    MissingRefundOf => "MISSING_REFUND_OF",
    /// A free-text field longer than its bound (`contracts::limits`; `reasonDetail` names the
    /// field). Fields with a reason of their own keep it: a long `orderId` is `INVALID_ORDER_ID`,
    /// a long `owner` `INVALID_OWNER`, a long sku `INVALID_ITEM`.
    FieldTooLong => "FIELD_TOO_LONG",
    /// The order, though each field is within its bound, would make an execution input or a task
    /// record larger than AWS takes (Step Functions 256 KiB, DynamoDB 400 KB; the margins are in
    /// `contracts::limits`).
    OrderTooLarge => "ORDER_TOO_LARGE",

    // Why a task FAILED (after its workflow started).
    /// The payment provider declined the charge.
    PaymentDeclined => "PAYMENT_DECLINED",
    /// The payment provider kept failing until the retry budget ran out.
    PaymentUnavailable => "PAYMENT_UNAVAILABLE",
    /// A step got no answer in time (its service was down or too slow).
    TimedOut => "TIMED_OUT",
    /// The stock could not be reserved after the charge; the charge was refunded.
    OutOfStock => "OUT_OF_STOCK",

    // Why a refund is REJECTED (checked against the ledger by the refund service).
    /// The order to refund is not in the ledger.
    OrderNotFound => "ORDER_NOT_FOUND",
    /// The order to refund belongs to another owner.
    NotOwner => "NOT_OWNER",
    /// The order to refund did not complete (or was already compensated).
    NotRefundable => "NOT_REFUNDABLE",
    /// The order to refund completed longer ago than the refund window.
    WindowExpired => "WINDOW_EXPIRED",
    /// The amount is more than what is still refundable on the order.
    AmountExceedsRefundable => "AMOUNT_EXCEEDS_REFUNDABLE",
    /// The order's currency is not the one its money is in: a refund's is not its original
    /// order's (refund service), or a purchase's is not the catalogue currency of one of its skus
    /// (intake, REJECTED before any work starts).
    CurrencyMismatch => "CURRENCY_MISMATCH",
    /// The order to refund has had `contracts::limits::MAX_REFUNDS_PER_ORDER` refunds already
    /// (its ledger entry must stay under DynamoDB's item limit).
    TooManyRefunds => "TOO_MANY_REFUNDS",
    /// A refund above the approval threshold that an operator denied (`reasonDetail` is the
    /// operator's reason; the task's `approval` records who and when).
    RefundDenied => "REFUND_DENIED",
    /// A refund above the approval threshold that no operator decided before its deadline
    /// (template parameters `ApprovalReminderSeconds` + `ApprovalFinalSeconds`, 72 h by default).
    ApprovalExpired => "APPROVAL_EXPIRED",
    /// A refund names an attachment (`attachments`) that is not on its original order of the
    /// same owner, or is not an attachment id.
    UnknownAttachment => "UNKNOWN_ATTACHMENT",
    /// A kind of order the workflow has no path for.
    UnsupportedKind => "UNSUPPORTED_KIND",
    /// Anything the workflow did not expect; the execution history has the details.
    WorkflowError => "WORKFLOW_ERROR",
    /// The owner cancelled the purchase before it was charged (task CANCELLED).
    CancelledByOwner => "CANCELLED_BY_OWNER",
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_by_name() {
        for &reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
        assert_eq!(Reason::parse("NO_SUCH_REASON"), None);
    }
}
