//! Whether a valid order fits what AWS takes, checked before the calls that would refuse it.
//!
//! Each field of an order is bounded (`taskflow_contracts::limits`), and the bounds are chosen so
//! that the largest valid order fits everywhere with room to spare (the tests below build it and
//! measure). This check is the guard for the whole: an order whose execution input or task
//! record would not fit is REJECTED `ORDER_TOO_LARGE`, never retried into a dead-letter queue.

use crate::validate::{reject, Rejection};
use taskflow_contracts::limits::{MAX_EXECUTION_INPUT_BYTES, MAX_NEW_TASK_RECORD_BYTES};
use taskflow_contracts::Reason;
use taskflow_shared::tasks::TaskRecord;

/// `Ok` when `input` (the execution input, UTF-8) is at most
/// [`MAX_EXECUTION_INPUT_BYTES`] (Step Functions takes 256 KiB; the rest is the room the
/// workflow's state needs) and `task` (the RECEIVED record) at most
/// [`MAX_NEW_TASK_RECORD_BYTES`] as DynamoDB counts it (400 KB, less the room its life adds);
/// else `ORDER_TOO_LARGE` saying which and by how much.
pub fn fits(task: &TaskRecord, input: &str) -> Result<(), Rejection> {
    if input.len() > MAX_EXECUTION_INPUT_BYTES {
        return Err(reject(
            Reason::OrderTooLarge,
            format!("its execution input would be {} bytes; at most {MAX_EXECUTION_INPUT_BYTES} (Step Functions takes 256 KiB)", input.len()),
        ));
    }
    let size = task.stored_size();
    if size > MAX_NEW_TASK_RECORD_BYTES {
        return Err(reject(
            Reason::OrderTooLarge,
            format!("its task record would be {size} bytes; at most {MAX_NEW_TASK_RECORD_BYTES} (DynamoDB takes 400 KB)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{execution_input, received, validate};
    use chrono::Utc;
    use serde_json::json;
    use taskflow_contracts::limits::*;
    use taskflow_contracts::{PurchaseWork, TaskStatus, TaskToken};

    /// The largest order `validate` accepts: every field at its bound, in 4-byte characters where
    /// a field takes any character.
    fn largest_valid_order() -> serde_json::Value {
        let wide = |n: usize| "𝄞".repeat(n);
        json!({
            "schemaVersion": 1,
            "orderId": "o".repeat(MAX_ORDER_ID_CHARS),
            // A valid owner at its bound: two-byte letters (`OwnerId::parse`).
            "owner": "é".repeat(MAX_OWNER_BYTES / 2),
            "kind": "purchase",
            "currency": "EUR",
            "paymentToken": wide(MAX_PAYMENT_TOKEN_CHARS),
            "items": (0..MAX_ITEMS).map(|i| json!({
                "sku": format!("{i:02}{}", wide(MAX_SKU_CHARS - 2)),
                "quantity": 1_000_000,
                "unitPrice": 1,
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn the_largest_valid_order_fits_every_aws_limit_with_room() {
        let detail = largest_valid_order();
        let order = validate(&detail).unwrap_or_else(|r| panic!("the largest order must be valid: {r:?}"));
        let trace = format!("Root=1-{}-{};Parent={};Sampled=1", "a".repeat(8), "b".repeat(24), "c".repeat(16));
        let input = execution_input(&order, &trace);
        let task = received(&order, &trace, Utc::now());
        assert_eq!(fits(&task, &input), Ok(()));
        // Far from the limits, not just under them: a quarter of each.
        assert!(input.len() < SFN_PAYLOAD_MAX_BYTES / 4, "execution input {} bytes", input.len());

        // Its record at the end of its longest life (every status, the longest reason detail,
        // ids, an execution ARN, a receipt per status) stays far under DynamoDB's item limit.
        let mut full = task.clone();
        for status in [TaskStatus::Charging, TaskStatus::Refunding, TaskStatus::Failed] {
            taskflow_shared::tasks::Change::to(status, Utc::now())
                .because(taskflow_contracts::Reason::WorkflowError, Some(wide_text(MAX_REASON_DETAIL_CHARS * 2)))
                .with_charge("c".repeat(MAX_ID_CHARS))
                .with_refund("r".repeat(MAX_ID_CHARS), 1)
                .apply(&mut full);
        }
        full.execution_arn = Some(format!("arn:aws:states:us-east-1:123456789012:execution:{}:{}", "m".repeat(80), order.order_id));
        full.receipts = (0..6).map(|_| "k".repeat(MAX_S3_KEY_BYTES)).collect();
        assert!(full.stored_size() < DYNAMODB_ITEM_MAX_BYTES / 4, "task record {} bytes", full.stored_size());

        // Its work message, with a task token at its longest, is far under SQS's 1 MiB and under
        // the state limit.
        let work = PurchaseWork { schema_version: 1, task_token: TaskToken::new("t".repeat(TASK_TOKEN_MAX_CHARS)), order, trace_header: Some(trace) };
        let body = serde_json::to_string(&work).unwrap();
        assert!(body.len() < MAX_EXECUTION_INPUT_BYTES, "work message {} bytes", body.len());
    }

    fn wide_text(n: usize) -> String {
        "𝄞".repeat(n)
    }

    #[test]
    fn an_order_too_large_for_aws_is_rejected_by_name() {
        let order = validate(&largest_valid_order()).unwrap();
        let trace = "Root=1-00000000-000000000000000000000000;Sampled=1";
        let task = received(&order, trace, Utc::now());

        let input = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_EXECUTION_INPUT_BYTES));
        let rejection = fits(&task, &input).unwrap_err();
        assert_eq!(rejection.reason, Reason::OrderTooLarge);
        assert!(rejection.detail.contains("execution input"), "{}", rejection.detail);

        let mut big = task.clone();
        big.refund_of = Some("x".repeat(MAX_NEW_TASK_RECORD_BYTES));
        let rejection = fits(&big, &execution_input(&order, trace)).unwrap_err();
        assert_eq!(rejection.reason, Reason::OrderTooLarge);
        assert!(rejection.detail.contains("task record"), "{}", rejection.detail);
    }
}
