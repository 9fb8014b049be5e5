//! Task logs: a closed task's audit log, written once to S3 as one JSON Lines object.
//!
//! # What a log holds
//!
//! One JSON object a line (`application/x-ndjson`), each tagged by `record`, in this order:
//!
//! ```text
//! {"record":"task", "schemaVersion":1, "taskId", "orderId", "owner", "kind", "status", "reason",
//!  "reasonDetail", "currency", "amount", "refundOf", "executionArn", "traceId", "createdAt", "closedAt"}
//! {"record":"transition", "sequence":1, "at", "status", "previousStatus", "reason", "eventId"}   one per status change, in order
//! {"record":"charge", "chargeId", "amount", "currency"}                                          if charged
//! {"record":"refund", "refundId", "amount", "currency"}                                          if money went back
//! {"record":"receipts", "keys": [...]}                                                            always (may be empty)
//! {"record":"attachments", "attachments": [...]}                                                  always (empty if none)
//! ```
//!
//! Amounts are minor units; times RFC 3339 UTC; `eventId` is the id of the `TaskStatusChanged`
//! event the publisher announced for that change (`{taskId}#{sequence}`, the same id on every
//! redelivery). The log is rendered from the task record alone ([`render`]), so rendering the
//! same record again gives the same bytes.
//!
//! # When, and by whom
//!
//! The **publisher** writes it (see `taskflow_publisher`): it sees every write to the task table
//! on the stream, including the tasks no workflow ever touches (an order REJECTED at intake never
//! reaches the notification step). A task's log is written from the first image that is
//! [`ready`]: terminal, and — if a workflow ran for it (its history starts `RECEIVED`) — with
//! the receipt of its terminal status recorded, which the notification step does last. So the
//! log has the receipt, and nothing the workflow does afterwards is missing from it.
//!
//! # Once
//!
//! [`TaskLogs::write_once`] is a conditional PutObject (`If-None-Match: *`, S3 conditional
//! writes): the first write creates the object and every later one — a redelivered stream
//! record, a later image of the same closed task — is refused with 412 and changes nothing. So a
//! task has one log object, and a redelivery never produces a different log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use taskflow_contracts::{keys, Money, OrderKind, OwnerId, Reason, TaskStatus, TaskStatusChanged};
use thiserror::Error;

use crate::tasks::TaskRecord;

/// One line of a task log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum LogLine {
    Task {
        schema_version: u32,
        task_id: String,
        order_id: String,
        owner: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<OrderKind>,
        status: TaskStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason_detail: Option<String>,
        currency: String,
        amount: Money,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund_of: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        execution_arn: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_id: Option<String>,
        created_at: DateTime<Utc>,
        closed_at: DateTime<Utc>,
    },
    Transition {
        sequence: u32,
        at: DateTime<Utc>,
        status: TaskStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_status: Option<TaskStatus>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
        /// The `TaskStatusChanged` event announced for this change.
        event_id: String,
    },
    Charge {
        charge_id: String,
        amount: Money,
        currency: String,
    },
    Refund {
        refund_id: String,
        amount: Money,
        currency: String,
    },
    Receipts {
        keys: Vec<String>,
    },
    /// The task's attachments, as recorded on the task by the attachments function (empty if
    /// none).
    Attachments {
        attachments: Vec<taskflow_contracts::Attachment>,
    },
}

/// The version of the log's shape (`schemaVersion` of its `task` line).
pub const LOG_SCHEMA_VERSION: u32 = 1;

/// The receipt key of `task`'s current status, if its owner and order id can be part of a key.
fn terminal_receipt_key(task: &TaskRecord) -> Option<String> {
    let owner = OwnerId::parse(&task.owner).ok()?;
    keys::object_key("receipts", &owner, &task.order_id, &format!("{}.txt", task.status)).ok()
}

/// True when `task` is closed for good and its log can be written: a terminal status, and, when
/// a workflow ran for it (its first status is `RECEIVED`), the receipt of that status recorded
/// (the notification step's last write). A task left `REFUNDING` (money owed) has no log yet. A
/// `CANCELLED` task is closed at once: its workflow is stopped before any notification step
/// (`cancel`), so no receipt of that status ever comes.
pub fn ready(task: &TaskRecord) -> bool {
    if !task.status.is_terminal() {
        return false;
    }
    let workflow_ran = task.history.first().is_some_and(|h| h.status == TaskStatus::Received);
    if !workflow_ran || task.status == TaskStatus::Cancelled {
        return true;
    }
    terminal_receipt_key(task).is_some_and(|key| task.receipts.contains(&key))
}

/// The S3 key of `task`'s log (`keys::task_log_key`).
pub fn key(task: &TaskRecord) -> Result<String, keys::KeyError> {
    keys::task_log_key(&task.owner, &task.order_id, &task.task_id)
}

/// The log's lines, from the record alone.
pub fn lines(task: &TaskRecord) -> Vec<LogLine> {
    let mut lines = vec![LogLine::Task {
        schema_version: LOG_SCHEMA_VERSION,
        task_id: task.task_id.clone(),
        order_id: task.order_id.clone(),
        owner: task.owner.clone(),
        kind: task.kind,
        status: task.status,
        reason: task.reason,
        reason_detail: task.reason_detail.clone(),
        currency: task.currency.clone(),
        amount: task.amount,
        refund_of: task.refund_of.clone(),
        execution_arn: task.execution_arn.clone(),
        trace_id: task.trace_id.clone(),
        created_at: task.created_at,
        closed_at: task.history.last().map_or(task.updated_at, |h| h.at),
    }];
    for (i, entry) in task.history.iter().enumerate() {
        let sequence = i as u32 + 1;
        lines.push(LogLine::Transition {
            sequence,
            at: entry.at,
            status: entry.status,
            previous_status: i.checked_sub(1).map(|p| task.history[p].status),
            reason: entry.reason,
            event_id: TaskStatusChanged::event_id_for(&task.task_id, sequence),
        });
    }
    if let Some(charge_id) = &task.charge_id {
        lines.push(LogLine::Charge { charge_id: charge_id.clone(), amount: task.amount, currency: task.currency.clone() });
    }
    if let Some(refund_id) = &task.refund_id {
        lines.push(LogLine::Refund { refund_id: refund_id.clone(), amount: task.refunded, currency: task.currency.clone() });
    }
    lines.push(LogLine::Receipts { keys: task.receipts.clone() });
    // Attachments are recorded on the task by the attachments function.
    lines.push(LogLine::Attachments { attachments: task.attachments.clone() });
    lines
}

/// The log as JSON Lines: each line one JSON object, each ended by `\n`.
pub fn render(task: &TaskRecord) -> String {
    lines(task).iter().map(|line| serde_json::to_string(line).expect("log lines serialise") + "\n").collect()
}

/// A log read back, line by line.
///
/// Errors: a line that is not a log line (with its number, from 1).
pub fn parse(text: &str) -> Result<Vec<LogLine>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// This call created the log.
    Created,
    /// A log was there already (S3 answered 412 to `If-None-Match: *`): nothing changed.
    AlreadyThere,
}

#[derive(Debug, Error)]
#[error("task log store unavailable: {0}")]
pub struct LogStoreError(pub String);

/// Where task logs are kept.
#[async_trait]
pub trait TaskLogs: Send + Sync {
    /// Creates the object at `key` unless one exists (never overwrites).
    async fn write_once(&self, key: &str, body: &str) -> Result<Written, LogStoreError>;
    /// The log at `key`, or `None` if none was written.
    async fn read(&self, key: &str) -> Result<Option<String>, LogStoreError>;
}

/// The task bucket's `logs/` prefix, SSE-S3 (AES-256) like its other objects.
pub struct S3TaskLogs {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3TaskLogs {
    pub fn new(aws: &impl crate::clients::ClientSource, bucket: impl Into<String>) -> Self {
        Self { client: aws.s3(), bucket: bucket.into() }
    }
}

#[async_trait]
impl TaskLogs for S3TaskLogs {
    async fn write_once(&self, key: &str, body: &str) -> Result<Written, LogStoreError> {
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            // S3 conditional writes: create only (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
            .if_none_match("*")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Created),
            // 412 PreconditionFailed: the object exists. (409 ConditionalRequestConflict — a
            // concurrent write of the same key in flight — is an error: retried, it finds 412.)
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(Written::AlreadyThere),
            Err(e) => Err(LogStoreError(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())),
        }
    }

    async fn read(&self, key: &str) -> Result<Option<String>, LogStoreError> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| LogStoreError(e.to_string()))?.into_bytes();
                String::from_utf8(bytes.to_vec()).map(Some).map_err(|e| LogStoreError(format!("{key}: not UTF-8: {e}")))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(LogStoreError(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())),
        }
    }
}

/// Task logs in memory, for unit tests: `write_once` keeps the first body of a key.
#[derive(Default)]
pub struct InMemoryTaskLogs {
    pub objects: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// Writes tried, including refused ones.
    pub writes: std::sync::atomic::AtomicUsize,
    pub down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl TaskLogs for InMemoryTaskLogs {
    async fn write_once(&self, key: &str, body: &str) -> Result<Written, LogStoreError> {
        use std::sync::atomic::Ordering;
        if self.down.load(Ordering::SeqCst) {
            return Err(LogStoreError("bucket down".into()));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(key) {
            return Ok(Written::AlreadyThere);
        }
        objects.insert(key.to_string(), body.to_string());
        Ok(Written::Created)
    }

    async fn read(&self, key: &str) -> Result<Option<String>, LogStoreError> {
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Change;
    use chrono::Duration;

    fn purchase(now: DateTime<Utc>) -> TaskRecord {
        let mut t = TaskRecord::new("o-1", "alice", TaskStatus::Received, None, now);
        t.kind = Some(OrderKind::Purchase);
        t.currency = "EUR".into();
        t.amount = 2500;
        t.execution_arn = Some("arn:aws:states:us-east-1:123456789012:execution:purchase:t-1".into());
        t.trace_id = Some("1-5759e988-bd862e3fe1be46a994272793".into());
        t
    }

    fn note_receipt(t: &mut TaskRecord) {
        // What the notification step's `Note::Receipt` records.
        let key = terminal_receipt_key(t).unwrap();
        t.receipts.push(key);
    }

    #[test]
    fn a_workflow_task_is_logged_once_closed_and_its_receipt_recorded() {
        let now = Utc::now();
        let mut t = purchase(now);
        assert!(!ready(&t));
        Change::to(TaskStatus::Charging, now + Duration::seconds(1)).apply(&mut t);
        Change::to(TaskStatus::Completed, now + Duration::seconds(2)).with_charge("ch_1").apply(&mut t);
        assert!(!ready(&t), "the notification step has not recorded the receipt yet");
        t.receipts.push("receipts/YWxpY2U/o-1/CHARGING.txt".into());
        assert!(!ready(&t), "only the receipt of the terminal status counts");
        note_receipt(&mut t);
        assert!(ready(&t));
    }

    #[test]
    fn a_task_rejected_at_intake_is_logged_at_once_and_money_owed_is_not_closed() {
        let now = Utc::now();
        let t = TaskRecord::new("o-2", "alice", TaskStatus::Rejected, Some(Reason::UnknownSku), now);
        assert!(ready(&t));
        let mut owed = purchase(now);
        Change::to(TaskStatus::Charging, now).apply(&mut owed);
        Change::to(TaskStatus::Refunding, now).because(Reason::OutOfStock, None).apply(&mut owed);
        assert!(!ready(&owed));
    }

    #[test]
    fn a_cancelled_purchase_is_logged_at_once_its_workflow_having_been_stopped() {
        let now = Utc::now();
        let mut t = purchase(now);
        Change::to(TaskStatus::Cancelled, now + Duration::seconds(1)).because(Reason::CancelledByOwner, None).apply(&mut t);
        assert!(ready(&t), "no notification step runs for it: no receipt will come");
    }

    #[test]
    fn the_log_lists_every_transition_with_its_event_id_then_money_receipts_and_attachments() {
        let now = Utc::now();
        let mut t = purchase(now);
        Change::to(TaskStatus::Charging, now + Duration::seconds(1)).apply(&mut t);
        Change::to(TaskStatus::Refunding, now + Duration::seconds(2)).because(Reason::OutOfStock, None).with_charge("ch_1").apply(&mut t);
        Change::to(TaskStatus::Failed, now + Duration::seconds(3)).because(Reason::OutOfStock, Some("MUG-1".into())).with_refund("re_1", 2500).apply(&mut t);
        note_receipt(&mut t);
        let text = render(&t);
        assert_eq!(text, render(&t), "rendering is repeatable");
        assert!(text.ends_with('\n') && text.lines().count() == 1 + 4 + 1 + 1 + 1 + 1);
        let lines = parse(&text).unwrap();
        let LogLine::Task { status, reason, execution_arn, trace_id, .. } = &lines[0] else { panic!("{:?}", lines[0]) };
        assert_eq!((*status, *reason), (TaskStatus::Failed, Some(Reason::OutOfStock)));
        assert!(execution_arn.is_some() && trace_id.is_some());
        let transitions: Vec<(u32, TaskStatus, Option<TaskStatus>, String)> = lines
            .iter()
            .filter_map(|l| match l {
                LogLine::Transition { sequence, status, previous_status, event_id, .. } => Some((*sequence, *status, *previous_status, event_id.clone())),
                _ => None,
            })
            .collect();
        let statuses: Vec<TaskStatus> = transitions.iter().map(|t| t.1).collect();
        assert_eq!(statuses, [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Refunding, TaskStatus::Failed]);
        assert_eq!(transitions[3].3, format!("{}#4", t.task_id));
        assert_eq!(transitions[3].2, Some(TaskStatus::Refunding));
        assert!(lines.contains(&LogLine::Charge { charge_id: "ch_1".into(), amount: 2500, currency: "EUR".into() }));
        assert!(lines.contains(&LogLine::Refund { refund_id: "re_1".into(), amount: 2500, currency: "EUR".into() }));
        assert_eq!(lines[lines.len() - 2], LogLine::Receipts { keys: vec!["receipts/YWxpY2U/o-1/FAILED.txt".into()] });
        assert_eq!(lines[lines.len() - 1], LogLine::Attachments { attachments: vec![] });
        assert_eq!(key(&t).unwrap(), format!("logs/YWxpY2U/o-1/{}.jsonl", t.task_id));
    }

    #[test]
    fn a_log_line_that_is_not_one_is_named() {
        assert!(parse("{\"record\":\"task\"}\n").unwrap_err().starts_with("line 1"));
        assert!(parse("").unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_first_write_wins() {
        let logs = InMemoryTaskLogs::default();
        assert_eq!(logs.write_once("k", "a").await.unwrap(), Written::Created);
        assert_eq!(logs.write_once("k", "b").await.unwrap(), Written::AlreadyThere);
        assert_eq!(logs.read("k").await.unwrap().as_deref(), Some("a"));
        assert_eq!(logs.read("other").await.unwrap(), None);
    }
}
