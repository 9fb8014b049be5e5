//! The one place that bounds what crosses a taskflow boundary: every free-text field of the
//! contracts, every list that grows, and the AWS limits those bounds are chosen to respect.
//!
//! The bounds keep the largest valid order far inside every AWS limit it meets on its way: its
//! execution input and state (Step Functions, 256 KiB), its work messages (SQS, 1 MiB), its task
//! record and ledger entry (DynamoDB, 400 KB), its status events (EventBridge, 1 MB). A test
//! (`services/intake`) builds that largest order and measures each. The JSON Schemas in
//! `contracts/schemas` carry the field bounds as `maxLength` / `maxItems`.
//!
//! Lengths of text are in Unicode characters (`str::chars().count()`) unless they say bytes.

// --- AWS limits ----------------------------------------------------------------------------------

/// Step Functions: the largest execution input, task output (`SendTaskSuccess`) and state data,
/// in UTF-8 bytes. "Maximum input or output size for a task, state, or execution: 256 KiB of data
/// as a UTF-8 encoded string" (Step Functions service quotas,
/// <https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html>; StartExecution
/// `input` and SendTaskSuccess `output`: maximum length 262144 in the API reference).
pub const SFN_PAYLOAD_MAX_BYTES: usize = 262_144;
/// Step Functions `SendTaskFailure` `error`: 0–256 characters (API reference, SendTaskFailure).
pub const SFN_ERROR_MAX_CHARS: usize = 256;
/// Step Functions `SendTaskFailure` `cause`: 0–32768 characters (API reference, SendTaskFailure).
pub const SFN_CAUSE_MAX_CHARS: usize = 32_768;
/// Step Functions task tokens: 1–2048 characters (API reference, SendTaskSuccess `taskToken`).
pub const TASK_TOKEN_MAX_CHARS: usize = 2048;
/// Step Functions execution names: 1–80 characters (API reference, StartExecution `name`).
pub const EXECUTION_NAME_MAX_CHARS: usize = 80;
/// DynamoDB: the largest item, counted as attribute names plus values ("The maximum item size in
/// DynamoDB is 400 KB, which includes both attribute name binary length (UTF-8 length) and
/// attribute value lengths", DynamoDB quotas,
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html>; how
/// a value is counted: "DynamoDB item sizes and formats",
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>).
pub const DYNAMODB_ITEM_MAX_BYTES: usize = 400 * 1024;
/// DynamoDB: the largest partition key value, 2048 bytes (DynamoDB quotas, "Partition key length").
pub const DYNAMODB_PARTITION_KEY_MAX_BYTES: usize = 2048;
/// DynamoDB: the most operations one TransactWriteItems may hold ("TransactItems … Maximum number
/// of 100 items", API reference, TransactWriteItems:
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html>).
/// A reservation is one: its stock updates (one per sku shard it takes from) and the ledger mark.
pub const DYNAMODB_TRANSACT_MAX_ITEMS: usize = 100;
/// SQS: the largest message, body and attributes, 1 MiB since 2025-08-04 (API reference,
/// SendMessage `MessageBody`: "The maximum size is 1 MiB or 1,048,576 bytes").
pub const SQS_MESSAGE_MAX_BYTES: usize = 1_048_576;
/// EventBridge: the largest PutEvents entry (Time 14 bytes + Source + DetailType + Detail +
/// Resources, UTF-8; "Calculating Amazon EventBridge PutEvents event entry size",
/// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html>), 1 MB since
/// 2026-01-29 (256 KB before).
pub const EVENTBRIDGE_ENTRY_MAX_BYTES: usize = 1_048_576;

// --- taskflow's bounds ---------------------------------------------------------------------------

/// `orderId`: it names the order's execution, so Step Functions' name limit.
pub const MAX_ORDER_ID_CHARS: usize = EXECUTION_NAME_MAX_CHARS;
/// An `orderId` longer than this cannot even be recorded REJECTED under its own id (the task
/// table's partition key, with margin under DynamoDB's 2048 bytes); such an event has no order in
/// it and goes to the intake dead-letter queue.
pub const MAX_RECORDED_ORDER_ID_BYTES: usize = 1024;
/// `owner`, in UTF-8 bytes: the owner id rule's bound (`OwnerId::parse`; the longest email
/// address, RFC 5321's 254-octet path). A rejected order's owner is recorded cut to it.
pub const MAX_OWNER_BYTES: usize = 254;
/// `items[].sku`.
pub const MAX_SKU_CHARS: usize = 64;
/// Lines of one purchase: its stock is reserved in one DynamoDB transaction (100 operations).
pub const MAX_ITEMS: usize = 50;
/// The most stock shards (inventory items) one sku's stock may be split over (`stockShards` in
/// the catalogue, 1 by default). One item sustains about 500 reservations/s (1000 WCU/s per
/// partition, 2 WCU per transactional write), so 16 shards are ~8000/s on paper. A reservation
/// normally takes a line from one shard; it splits a line over several only when no single shard
/// has enough, and the whole order must still fit in one transaction
/// ([`DYNAMODB_TRANSACT_MAX_ITEMS`]).
pub const MAX_STOCK_SHARDS: u32 = 16;
// The largest order, every line on one shard, and its ledger mark: one transaction.
const _: () = assert!(MAX_ITEMS < DYNAMODB_TRANSACT_MAX_ITEMS);
/// `currency`: an ISO 4217 code.
pub const MAX_CURRENCY_CHARS: usize = 3;
/// `paymentToken`: a payment provider's token (Stripe's are under 100 characters).
pub const MAX_PAYMENT_TOKEN_CHARS: usize = 256;
/// `refundOf`: an order id.
pub const MAX_REFUND_OF_CHARS: usize = MAX_ORDER_ID_CHARS;
/// `reasonDetail` on a task (free text for people beside the named reason): longer text is cut
/// to this, so a rejection record of any input stays small.
pub const MAX_REASON_DETAIL_CHARS: usize = 1024;
/// `traceHeader` (X-Ray: `Root=1-…;Parent=…;Sampled=…`, about 80 characters).
pub const MAX_TRACE_HEADER_CHARS: usize = 256;
/// Ids taskflow and its payment provider make (`chargeId`, `refundId`).
pub const MAX_ID_CHARS: usize = 256;
/// S3 keys taskflow writes (`receiptKey`): S3's own limit is 1024 bytes.
pub const MAX_S3_KEY_BYTES: usize = 1024;
/// A task's history: one entry per status change. Statuses only move forward (no transition
/// leads back to a status the task had), so a task has at most one entry per status; the task
/// store refuses a change beyond this bound as a conflict.
pub const MAX_HISTORY_ENTRIES: usize = 16;
/// Refunds one order may have (each is one entry of its ledger entry's `refunds`): a refund order
/// beyond it is REJECTED `TOO_MANY_REFUNDS`. A compensation is never refused for it.
pub const MAX_REFUNDS_PER_ORDER: usize = 100;
/// The `cause` taskflow's workers answer a failed step with (`SendTaskFailure`; AWS takes up to
/// [`SFN_CAUSE_MAX_CHARS`]): longer causes are cut to this, because a caught failure, cause and
/// all, becomes part of the execution's state.
pub const MAX_FAILURE_CAUSE_CHARS: usize = 4096;
/// The largest execution input intake starts a workflow with: Step Functions' payload limit less
/// the room the workflow's state needs for what it adds to the order (each step's result, up to
/// three caught failures with their causes, the task token in each work message).
pub const MAX_EXECUTION_INPUT_BYTES: usize = SFN_PAYLOAD_MAX_BYTES - 96 * 1024;
/// The largest task record intake creates: DynamoDB's item limit less the room its life adds
/// (history, reason detail, execution ARN, charge and refund ids, receipts).
pub const MAX_NEW_TASK_RECORD_BYTES: usize = DYNAMODB_ITEM_MAX_BYTES - 64 * 1024;

/// `text` cut to at most `max_chars` characters (on a character boundary), with `…` as its last
/// character when it was cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some(_) => {
            let keep = max_chars.saturating_sub(1);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            format!("{}…", &text[..end])
        }
    }
}

/// `text` cut to at most `max_bytes` UTF-8 bytes, on a character boundary.
pub fn truncate_bytes(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly10!", 10), "exactly10!");
        let cut = truncate(&"é".repeat(2000), MAX_REASON_DETAIL_CHARS);
        assert_eq!(cut.chars().count(), MAX_REASON_DETAIL_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate_bytes("aé", 2), "a");
        assert_eq!(truncate_bytes("abc", 5), "abc");
    }

    #[test]
    fn bounds_sit_inside_the_aws_limits_they_serve() {
        assert!(MAX_ORDER_ID_CHARS <= EXECUTION_NAME_MAX_CHARS);
        assert!(MAX_RECORDED_ORDER_ID_BYTES < DYNAMODB_PARTITION_KEY_MAX_BYTES);
        // Three caught failures (causes of up to 4 bytes a character), a task token in each of
        // four work messages and 16 KiB of step results fit in the room the execution input leaves.
        assert!(MAX_FAILURE_CAUSE_CHARS <= SFN_CAUSE_MAX_CHARS);
        let room = 3 * (MAX_FAILURE_CAUSE_CHARS * 4 + SFN_ERROR_MAX_CHARS * 4) + 4 * TASK_TOKEN_MAX_CHARS + 16 * 1024;
        assert!(SFN_PAYLOAD_MAX_BYTES - MAX_EXECUTION_INPUT_BYTES >= room);
        assert!(MAX_NEW_TASK_RECORD_BYTES < DYNAMODB_ITEM_MAX_BYTES);
    }
}
