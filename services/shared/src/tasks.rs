//! The task record — one per order, keyed by its task id (`taskflow_contracts::keys::task_id`
//! of the owner and the order id, so order ids are scoped per owner) — and the port every
//! service records through. Status changes are conditional on the current status, so a duplicate or late message
//! can never move a task backwards, and each change appends to the history the publisher turns
//! into exactly one `TaskStatusChanged` event (the table is the outbox).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use taskflow_contracts::{limits, ApprovalDecision, Attachment, Money, OrderItem, OrderKind, Reason, TaskStatus};
use thiserror::Error;

/// One status change in a task's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub status: TaskStatus,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// A task as stored in the task table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// The table's partition key (`taskId`): `keys::task_id(owner, orderId)` for an order, or a
    /// `c-`/`r-` id for a rejection that must not occupy an owner's order id (see `keys`).
    pub task_id: String,
    /// The submitter's order id, as sent (unique per owner, not across owners).
    pub order_id: String,
    /// Empty only for a rejected order that named no owner; then not stored at all, because an
    /// index key (the `byOwner` index) may not be an empty string.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// `None` only for a rejected order whose kind could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<OrderKind>,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Free text beside the named reason (e.g. which field was malformed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_detail: Option<String>,
    #[serde(default)]
    pub currency: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<OrderItem>,
    /// Purchase total or refund amount, in minor units (0 when rejected before it was known).
    #[serde(default)]
    pub amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_of: Option<String>,
    pub history: Vec<HistoryEntry>,
    /// Noted only on records written before the execution ARN was derived (read it through
    /// `executions::WorkflowArns::execution_of`, which derives it from the workflow of the task's
    /// kind and the task id, the execution's name): the intake no longer writes it (one write unit
    /// a task saved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_id: Option<String>,
    /// A purchase's charge hold (`chargeHeldUntil`): the purchase delivery that moved the task to
    /// CHARGING (or took the charge over) may charge until then. Set by that same conditional
    /// write, so it costs no write of its own; longer than the function timeout
    /// (`IDEMPOTENCY_HOLD_SECONDS`), so a holder past it is dead (Lambda ends an invocation at
    /// its timeout). A compensation waits it out after fencing the task (refund's `compensate`).
    /// Absent: no delivery holds the charge (or the task is from before the hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_held_until: Option<DateTime<Utc>>,
    /// Money sent back on this task: a refund order's refund, or a compensated purchase's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    #[serde(default)]
    pub refunded: Money,
    /// Receipts and notices stored for the owner (S3 keys in the task bucket).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<String>,
    /// The order's X-Ray trace id (`1-…`), set by the intake: `taskflow trace` starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The trace header of the work that made the latest change: the publisher's segment for
    /// that change's status event becomes its child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
    /// What the order asked for (`keys::fingerprint` of its detail): an owner reusing the order
    /// id for other content is told `ORDER_ID_CONFLICT` (absent on records from before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// What the owner attached to the task, in the order recorded (each once; at most the
    /// attachments function's `MAX_ATTACHMENTS_PER_TASK`). The attachment ids are also kept in
    /// the string set `attachmentIds`, which the conditional write that records one tests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,

    /// An operator's decision on a refund above the approval threshold: who, when, why (see
    /// `taskflow_contracts::approval`). Never the task token: that stays with the approval path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDecision>,
    /// A refund's: the attachments of its original order it names (checked by intake to be on
    /// that order of the same owner).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refund_attachments: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the task went in flight (its creation), present only while its status is not
    /// terminal: the sort key of the sparse index `inflight` the sweeper reads (a terminal change
    /// removes it, so the index holds only tasks in flight and is never scanned). Absent on
    /// records written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflight_since: Option<DateTime<Utc>>,
    /// The `inflight` index's partition key, present exactly when `inflight_since` is: one of
    /// [`INFLIGHT_SHARDS`] values from the task id, so in-flight writes spread over several index
    /// partitions instead of one hot key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflight_shard: Option<String>,
    /// The partition key of the sparse index `closed` ([`CLOSED_INDEX`]), set once when the task
    /// reaches a terminal status: [`closed_key`] of that status and the task id
    /// (`"{STATUS}#{shard}"`). Absent while in flight and on records written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_key: Option<String>,
    /// The `closed` index's sort key: when the task reached its terminal status (the `at` of
    /// that change), present exactly when `closed_key` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// Set by the sweeper when it could not finish a stuck task: when, and why an operator must.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<String>,
}

/// What the task table's three indexes (`byOwner`, `closed`, `inflight`) project:
/// `KEYS_ONLY` (infra/template.yaml). A write to a task then writes an index only when it adds,
/// changes or removes that index's key attributes, never because another attribute changed
/// (DynamoDB bills index writes that way:
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes>),
/// and a query of an index gives task ids, whose tasks are read by key (`dynamo::batch_get`).
pub const TASK_INDEX_PROJECTION: &str = "KEYS_ONLY";

/// One page of shard `shard` (0..[`INFLIGHT_SHARDS`]) of the [`INFLIGHT_INDEX`]: the ids of its
/// tasks, longest in flight first, only those in flight since before `before` when given, from
/// `start` (a page's last evaluated key; `None` for the first), and where the next page starts
/// (`None` after the last). The index projects keys only: read the tasks by key
/// (`dynamo::batch_get`). Errors: `StoreError::Unavailable` with the SDK error.
pub async fn inflight_page(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    shard: u32,
    before: Option<chrono::DateTime<chrono::Utc>>,
    start: Option<HashMap<String, AttributeValue>>,
) -> Result<(Vec<String>, Option<HashMap<String, AttributeValue>>), StoreError> {
    let mut query = client
        .query()
        .table_name(table)
        .index_name(INFLIGHT_INDEX)
        .expression_attribute_values(":shard", AttributeValue::S(shard.to_string()))
        .set_exclusive_start_key(start);
    query = match before {
        Some(cutoff) => query
            .key_condition_expression("inflightShard = :shard AND inflightSince < :cutoff")
            .expression_attribute_values(":cutoff", serde_dynamo::to_attribute_value::<_, AttributeValue>(cutoff).expect("times serialise")),
        None => query.key_condition_expression("inflightShard = :shard"),
    };
    let out = query.send().await.map_err(DynamoTaskStore::unavailable)?;
    Ok((DynamoTaskStore::ids(out.items.unwrap_or_default()), out.last_evaluated_key))
}

/// The sparse index of tasks in flight (partition `inflightShard`, sort `inflightSince`).
pub const INFLIGHT_INDEX: &str = "inflight";
/// How many partitions the in-flight index spreads over: a sweep queries each.
pub const INFLIGHT_SHARDS: u32 = 4;

/// The in-flight index partition of a task id (`"0"`..`"3"`).
pub fn inflight_shard(task_id: &str) -> String {
    (shard_hash(task_id) % INFLIGHT_SHARDS).to_string()
}

/// A task id's hash, from which its index shards are taken (stable across builds and machines).
fn shard_hash(task_id: &str) -> u32 {
    task_id.bytes().fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(u32::from(b)))
}

/// The sparse index of closed tasks (partition `closedKey`, sort `closedAt`): a task enters it
/// once, with the change that gives it a terminal status (COMPLETED, FAILED, REJECTED,
/// CANCELLED: `TaskStatus::is_terminal`), so a purchase writes it once (1 write unit) instead of
/// moving a `status` key on every transition (2 each). Operators' queries of a terminal status
/// read it; queries of a status in flight read the `inflight` index (see
/// [`TaskStore::list_by_status`]).
pub const CLOSED_INDEX: &str = "closed";
/// How many partitions each terminal status spreads over in the `closed` index: one status's
/// writes go to that many index partitions (DynamoDB: 1000 write units/s per partition,
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>),
/// so 4 carry 4000 closes/s of one status; a query of a status reads each shard.
pub const STATUS_INDEX_SHARDS: u32 = 4;

/// The `closed` index's partition key of a task id closed with `status`: `"{STATUS}#{shard}"`,
/// shard `0..STATUS_INDEX_SHARDS` from the task id.
pub fn closed_key(status: TaskStatus, task_id: &str) -> String {
    format!("{}#{}", status.as_str(), shard_hash(task_id) % STATUS_INDEX_SHARDS)
}

impl TaskRecord {
    /// Until when the purchase's charge is held: `charge_held_until`; or, for a task moved to
    /// CHARGING by code older than the charge hold (no `chargeHeldUntil` on the record), its
    /// last CHARGING transition plus `hold` — a delivery holding it longer is past its function
    /// timeout. `None`: nothing holds a charge — the task was never CHARGING, or it records its
    /// charge id (the purchase got past its charge).
    pub fn charge_hold(&self, hold: chrono::Duration) -> Option<DateTime<Utc>> {
        self.charge_held_until.or_else(|| {
            if self.charge_id.is_some() {
                return None;
            }
            self.history.iter().rev().find(|h| h.status == TaskStatus::Charging).map(|h| h.at + hold)
        })
    }

    /// The record's size as DynamoDB counts it against its 400 KB item limit (see
    /// [`crate::dynamo::item_size`]).
    pub fn stored_size(&self) -> usize {
        crate::dynamo::item_size(&serde_dynamo::to_item(self).expect("task records always serialise"))
    }

    /// A new task of `owner`'s order `order_id` (keyed by their task id) whose first status is
    /// `status`.
    pub fn new(order_id: impl Into<String>, owner: impl Into<String>, status: TaskStatus, reason: Option<Reason>, at: DateTime<Utc>) -> Self {
        let (order_id, owner) = (order_id.into(), owner.into());
        let task_id = taskflow_contracts::keys::task_id(&owner, &order_id);
        let inflight = !status.is_terminal();
        TaskRecord {
            inflight_since: inflight.then_some(at),
            inflight_shard: inflight.then(|| inflight_shard(&task_id)),
            closed_key: (!inflight).then(|| closed_key(status, &task_id)),
            closed_at: (!inflight).then_some(at),
            attention: None,
            task_id,
            order_id,
            owner,
            kind: None,
            status,
            reason,
            reason_detail: None,
            currency: String::new(),
            items: Vec::new(),
            amount: 0,
            refund_of: None,
            history: vec![HistoryEntry { status, at, reason }],
            execution_arn: None,
            charge_id: None,
            charge_held_until: None,
            refund_id: None,
            refunded: 0,
            receipts: Vec::new(),
            trace_id: None,
            trace_header: None,
            fingerprint: None,
            attachments: Vec::new(),
            approval: None,
            refund_attachments: Vec::new(),
            created_at: at,
            updated_at: at,
        }
    }
}

/// Free text recorded beside a reason, cut to `limits::MAX_REASON_DETAIL_CHARS`, so that no
/// input, however large, can make a task record too large to write.
pub fn bounded_detail(detail: &str) -> String {
    limits::truncate(detail, limits::MAX_REASON_DETAIL_CHARS)
}

/// A status change and the facts recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub to: TaskStatus,
    pub reason: Option<Reason>,
    pub reason_detail: Option<String>,
    pub charge_id: Option<String>,
    /// A refund sent with this change, and how much.
    pub refund: Option<(String, Money)>,
    /// The task's amount, when this change settles it (a full refund's amount, say).
    pub amount: Option<Money>,
    /// An operator's decision recorded with this change (a denied refund).
    pub approval: Option<ApprovalDecision>,
    /// The purchase's charge hold set with this change (`TaskRecord::charge_held_until`): the
    /// move to CHARGING holds the charge; a purchase ending its own charge sets it to now.
    pub charge_held_until: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

impl Change {
    pub fn to(to: TaskStatus, at: DateTime<Utc>) -> Self {
        Change { to, reason: None, reason_detail: None, charge_id: None, refund: None, amount: None, approval: None, charge_held_until: None, at }
    }
    /// The change's reason, and free text beside it cut to
    /// `limits::MAX_REASON_DETAIL_CHARS` (it may quote a caller or a provider).
    pub fn because(mut self, reason: Reason, detail: Option<String>) -> Self {
        self.reason = Some(reason);
        self.reason_detail = detail.map(|d| bounded_detail(&d));
        self
    }
    pub fn with_charge(mut self, charge_id: impl Into<String>) -> Self {
        self.charge_id = Some(charge_id.into());
        self
    }
    pub fn with_refund(mut self, refund_id: impl Into<String>, amount: Money) -> Self {
        self.refund = Some((refund_id.into(), amount));
        self
    }
    pub fn with_amount(mut self, amount: Money) -> Self {
        self.amount = Some(amount);
        self
    }
    pub fn with_approval(mut self, approval: ApprovalDecision) -> Self {
        self.approval = Some(approval);
        self
    }
    /// Sets the task's charge hold to `until` (`TaskRecord::charge_held_until`).
    pub fn holding_charge_until(mut self, until: DateTime<Utc>) -> Self {
        self.charge_held_until = Some(until);
        self
    }

    /// The change applied to a record (what the store does, written once for the fakes and tests).
    pub fn apply(&self, record: &mut TaskRecord) {
        record.status = self.to;
        record.history.push(HistoryEntry { status: self.to, at: self.at, reason: self.reason });
        record.updated_at = self.at;
        if self.reason.is_some() {
            record.reason = self.reason;
            record.reason_detail = self.reason_detail.clone();
        }
        if let Some(charge_id) = &self.charge_id {
            record.charge_id = Some(charge_id.clone());
        }
        if let Some((refund_id, amount)) = &self.refund {
            record.refund_id = Some(refund_id.clone());
            record.refunded = *amount;
        }
        if let Some(amount) = self.amount {
            record.amount = amount;
        }
        if let Some(approval) = &self.approval {
            record.approval = Some(approval.clone());
        }
        if let Some(until) = self.charge_held_until {
            record.charge_held_until = Some(until);
        }
        if self.to.is_terminal() {
            record.inflight_since = None;
            record.inflight_shard = None;
            record.closed_key = Some(closed_key(self.to, &record.task_id));
            record.closed_at = Some(self.at);
        }
    }
}

/// A fact recorded on a task without changing its status (so no event is announced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A receipt or notice stored for the owner; recorded once however often it is noted.
    Receipt(String),
    /// An operator approved the refund (recorded only while the task is AWAITING_APPROVAL and
    /// has no decision yet).
    Approval(ApprovalDecision),
    /// Why an operator must look at the task (the sweeper could not finish it); replaces any
    /// earlier one.
    Attention(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created,
    /// A task with this task id already exists (as it is now).
    Exists(Box<TaskRecord>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transitioned {
    Applied(Box<TaskRecord>),
    /// The task was not in one of the expected statuses; here it is as it is.
    Conflict(Box<TaskRecord>),
    Missing,
}

/// What recording an attachment on a task came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentRecorded {
    /// Recorded now (its `TaskAttachmentAdded` event follows from the stream).
    Added,
    /// Already on the task (a duplicate delivery): nothing changed.
    AlreadyThere,
    /// The task has `max` attachments already: not recorded.
    Full,
    /// No task with this task id and owner.
    Missing,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("task store unavailable: {0}")]
    Unavailable(String),
    #[error("task record {task_id} cannot be read: {message}")]
    Corrupt { task_id: String, message: String },
}

#[async_trait]
pub trait TaskStore: Send + Sync {
    /// The task whose task id is `task_id` (never looked up by a raw order id: see `keys`).
    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError>;
    /// Writes `task` unless a task with its task id exists.
    async fn create(&self, task: &TaskRecord) -> Result<Created, StoreError>;
    /// Applies `change` if the task's status is one of `from` and its history has fewer than
    /// `limits::MAX_HISTORY_ENTRIES` entries (else `Conflict`, so the record can never grow past
    /// DynamoDB's item limit; statuses only move forward, so a task never gets near it).
    async fn transition(&self, task_id: &str, from: &[TaskStatus], change: &Change) -> Result<Transitioned, StoreError>;
    async fn note(&self, task_id: &str, note: &Note) -> Result<(), StoreError>;
    /// An owner's tasks, newest first.
    async fn list_by_owner(&self, owner: &str) -> Result<Vec<TaskRecord>, StoreError>;
    /// Appends `attachment` to the task keyed `task_id` if that task is `owner`'s, does not have
    /// it yet (by id) and has fewer than `max` attachments: one conditional write, so duplicate
    /// and concurrent deliveries record it once and never past `max`. Changes no status.
    async fn add_attachment(&self, task_id: &str, owner: &str, attachment: &Attachment, max: usize) -> Result<AttachmentRecorded, StoreError>;

    /// Tasks (of every owner) whose status is `status` and whose latest change is at or after
    /// `since`, newest first, at most `limit` (1-1000) of them from `page` on. For operators;
    /// Queries, never a Scan: a terminal status reads the sparse `closed` index (keyed
    /// [`closed_key`] + `closedAt`, one Query per shard of [`STATUS_INDEX_SHARDS`], merged), a
    /// status in flight reads the sparse `inflight` index whole (one Query per shard of
    /// [`INFLIGHT_SHARDS`]: what is in flight, not the table) and keeps the tasks of that status.
    async fn list_by_status(&self, status: TaskStatus, since: DateTime<Utc>, limit: u32, page: Option<Page>) -> Result<(Vec<TaskRecord>, Option<Page>), StoreError>;

    /// Moves a purchase's charge hold (`TaskRecord::charge_held_until`) from `held` (`None`: none
    /// recorded) to `until`, if the task is CHARGING and its hold is still `held`: one
    /// conditional write, no status change, no history entry. A redelivery takes over the charge
    /// of a dead holder with it (`until` = now + hold: of two deliveries finding the same expired
    /// hold, one wins), and a holder gives the charge up with it (`until` = now). `Applied` with
    /// the task as it is now; `Conflict` with the task as it is (not CHARGING, or held anew).
    async fn hold_charge(&self, task_id: &str, held: Option<DateTime<Utc>>, until: DateTime<Utc>) -> Result<Transitioned, StoreError>;
}

/// Where a paged query goes on: the last task it gave (`taskId`, `status`, and in `updatedAt`
/// the time it was ordered by: `closedAt` for a terminal status, else `updatedAt`), as an opaque
/// token for callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub task_id: String,
    pub status: TaskStatus,
    pub updated_at: String,
}

impl Page {
    /// The page as an opaque token (base64url of its JSON).
    pub fn token(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("pages serialise"))
    }
    /// A token back into a page; `None` for anything that is not one of ours.
    pub fn parse(token: &str) -> Option<Page> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.as_bytes()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The task table in DynamoDB (partition key `taskId`).
pub struct DynamoTaskStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoTaskStore {
    pub fn new(aws: &impl crate::clients::ClientSource, table: impl Into<String>) -> Self {
        Self { client: aws.dynamodb(), table: table.into() }
    }

    fn unavailable<E: std::error::Error + 'static>(err: aws_sdk_dynamodb::error::SdkError<E>) -> StoreError {
        StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string())
    }

    fn decode(task_id: &str, item: HashMap<String, AttributeValue>) -> Result<TaskRecord, StoreError> {
        serde_dynamo::from_item(item)
            .map_err(|e| StoreError::Corrupt { task_id: task_id.to_string(), message: e.to_string() })
    }

    /// The task ids of index entries, in their order.
    fn ids(items: Vec<HashMap<String, AttributeValue>>) -> Vec<String> {
        items.into_iter().filter_map(|item| item.get("taskId").and_then(|v| v.as_s().ok()).cloned()).collect()
    }

    fn key(task_id: &str) -> (String, AttributeValue) {
        ("taskId".to_string(), AttributeValue::S(task_id.to_string()))
    }

    /// Every task whose submitter's order id is `order_id`, whoever owns it: a Scan with a
    /// filter, for operators (the CLI) and tests only — services read by task id.
    pub async fn find_by_order_id(&self, order_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let mut tasks = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("orderId = :id")
                .expression_attribute_values(":id", AttributeValue::S(order_id.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(Self::unavailable)?;
            // The index projects keys only (`TASK_INDEX_PROJECTION`): the tasks are read by key.
            let ids = Self::ids(out.items.unwrap_or_default());
            for item in crate::dynamo::batch_get(&self.client, &self.table, "taskId", &ids).await.map_err(StoreError::Unavailable)? {
                let id = item.get("taskId").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                tasks.push(Self::decode(&id, item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(tasks);
            }
        }
    }
}

fn to_attribute<T: Serialize>(value: &T) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).expect("task fields always serialise")
}

#[async_trait]
impl TaskStore for DynamoTaskStore {
    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let item = crate::dynamo::get(&self.client, &self.table, "taskId", task_id).await.map_err(Self::unavailable)?;
        item.map(|item| Self::decode(task_id, item)).transpose()
    }

    async fn create(&self, task: &TaskRecord) -> Result<Created, StoreError> {
        let item = serde_dynamo::to_item(task).expect("task records always serialise");
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(taskId)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::Created),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                match self.get(&task.task_id).await? {
                    Some(existing) => Ok(Created::Exists(Box::new(existing))),
                    None => Err(StoreError::Unavailable("task vanished after a conflicting write".into())),
                }
            }
            Err(err) => Err(Self::unavailable(err)),
        }
    }

    async fn transition(&self, task_id: &str, from: &[TaskStatus], change: &Change) -> Result<Transitioned, StoreError> {
        let entry = HistoryEntry { status: change.to, at: change.at, reason: change.reason };
        let mut sets = vec!["#status = :to", "history = list_append(history, :entry)", "updatedAt = :at"];
        let (k, v) = Self::key(task_id);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(k, v)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", to_attribute(&change.to))
            .expression_attribute_values(":entry", AttributeValue::L(vec![to_attribute(&entry)]))
            .expression_attribute_values(":at", to_attribute(&change.at))
            .expression_attribute_values(":maxHistory", AttributeValue::N(limits::MAX_HISTORY_ENTRIES.to_string()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(reason) = change.reason {
            sets.push("reason = :reason");
            request = request.expression_attribute_values(":reason", to_attribute(&reason));
        }
        if let Some(detail) = &change.reason_detail {
            sets.push("reasonDetail = :detail");
            request = request.expression_attribute_values(":detail", AttributeValue::S(detail.clone()));
        }
        if let Some(charge_id) = &change.charge_id {
            sets.push("chargeId = :charge");
            request = request.expression_attribute_values(":charge", AttributeValue::S(charge_id.clone()));
        }
        if let Some((refund_id, refunded)) = &change.refund {
            sets.push("refundId = :refund, refunded = :refunded");
            request = request
                .expression_attribute_values(":refund", AttributeValue::S(refund_id.clone()))
                .expression_attribute_values(":refunded", to_attribute(refunded));
        }
        if let Some(header) = crate::telemetry::current_header() {
            sets.push("traceHeader = :trace");
            request = request.expression_attribute_values(":trace", AttributeValue::S(header));
        }
        if let Some(amount) = change.amount {
            sets.push("amount = :amount");
            request = request.expression_attribute_values(":amount", to_attribute(&amount));
        }
        if let Some(approval) = &change.approval {
            sets.push("approval = :approval");
            request = request.expression_attribute_values(":approval", to_attribute(approval));
        }
        if let Some(until) = &change.charge_held_until {
            sets.push("chargeHeldUntil = :held");
            request = request.expression_attribute_values(":held", to_attribute(until));
        }
        let mut allowed = Vec::with_capacity(from.len());
        for (i, status) in from.iter().enumerate() {
            let name = format!(":from{i}");
            request = request.expression_attribute_values(&name, to_attribute(status));
            allowed.push(name);
        }
        // Leaving flight leaves the sparse in-flight index and enters the sparse closed index (the
        // only index writes a transition makes; one in flight changes no index key).
        let removes = if change.to.is_terminal() {
            sets.push("closedKey = :closedKey, closedAt = :at");
            request = request.expression_attribute_values(":closedKey", AttributeValue::S(closed_key(change.to, task_id)));
            " REMOVE inflightSince, inflightShard"
        } else {
            ""
        };
        let result = request
            .update_expression(format!("SET {}{removes}", sets.join(", ")))
            .condition_expression(format!("attribute_exists(taskId) AND #status IN ({}) AND size(history) < :maxHistory", allowed.join(", ")))
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                Ok(Transitioned::Applied(Box::new(Self::decode(task_id, item)?)))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                // Read the current state rather than trusting the failure's payload: the emulator
                // does not always return it.
                match self.get(task_id).await? {
                    Some(current) => Ok(Transitioned::Conflict(Box::new(current))),
                    None => Ok(Transitioned::Missing),
                }
            }
            Err(err) => Err(Self::unavailable(err)),
        }
    }

    async fn note(&self, task_id: &str, note: &Note) -> Result<(), StoreError> {
        let (k, v) = Self::key(task_id);
        let request = self.client.update_item().table_name(&self.table).key(k, v);
        let request = match note {
            Note::Receipt(key) => request
                .update_expression("SET receipts = list_append(if_not_exists(receipts, :none), :key)")
                .condition_expression("attribute_exists(taskId) AND NOT contains(receipts, :one)")
                .expression_attribute_values(":none", AttributeValue::L(vec![]))
                .expression_attribute_values(":key", AttributeValue::L(vec![AttributeValue::S(key.clone())]))
                .expression_attribute_values(":one", AttributeValue::S(key.clone())),
            Note::Approval(approval) => request
                .update_expression("SET approval = :approval")
                .condition_expression("attribute_exists(taskId) AND #status = :awaiting AND attribute_not_exists(approval)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":awaiting", to_attribute(&TaskStatus::AwaitingApproval))
                .expression_attribute_values(":approval", to_attribute(approval)),
            Note::Attention(text) => request
                .update_expression("SET attention = :text")
                .condition_expression("attribute_exists(taskId)")
                .expression_attribute_values(":text", AttributeValue::S(bounded_detail(text))),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            // Already noted (or no such task, which the caller found out before).
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(Self::unavailable(err)),
        }
    }

    /// An owner's tasks, newest first (the `byOwner` index).
    async fn list_by_owner(&self, owner: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let mut tasks = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("byOwner")
                .key_condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(Self::unavailable)?;
            // The index projects keys only (`TASK_INDEX_PROJECTION`): the tasks are read by key.
            let ids = Self::ids(out.items.unwrap_or_default());
            for item in crate::dynamo::batch_get(&self.client, &self.table, "taskId", &ids).await.map_err(StoreError::Unavailable)? {
                let id = item.get("taskId").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                tasks.push(Self::decode(&id, item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(tasks);
            }
        }
    }

    async fn add_attachment(&self, task_id: &str, owner: &str, attachment: &Attachment, max: usize) -> Result<AttachmentRecorded, StoreError> {
        let (k, v) = Self::key(task_id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(k, v)
            .update_expression("SET attachments = list_append(if_not_exists(attachments, :none), :one) ADD attachmentIds :ids")
            .condition_expression("attribute_exists(taskId) AND #owner = :owner AND (attribute_not_exists(attachments) OR size(attachments) < :max) AND NOT contains(attachmentIds, :id)")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":none", AttributeValue::L(vec![]))
            .expression_attribute_values(":one", AttributeValue::L(vec![to_attribute(attachment)]))
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![attachment.id.clone()]))
            .expression_attribute_values(":id", AttributeValue::S(attachment.id.clone()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .expression_attribute_values(":max", AttributeValue::N(max.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(AttachmentRecorded::Added),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                // Which condition failed: read the task as it is now.
                Ok(match self.get(task_id).await? {
                    Some(task) if task.owner != owner => AttachmentRecorded::Missing,
                    Some(task) if task.attachments.iter().any(|a| a.id == attachment.id) => AttachmentRecorded::AlreadyThere,
                    Some(_) => AttachmentRecorded::Full,
                    None => AttachmentRecorded::Missing,
                })
            }
            Err(err) => Err(Self::unavailable(err)),
        }
    }

    async fn hold_charge(&self, task_id: &str, held: Option<DateTime<Utc>>, until: DateTime<Utc>) -> Result<Transitioned, StoreError> {
        let (k, v) = Self::key(task_id);
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(k, v)
            .update_expression("SET chargeHeldUntil = :until")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":charging", to_attribute(&TaskStatus::Charging))
            .expression_attribute_values(":until", to_attribute(&until))
            .return_values(ReturnValue::AllNew);
        let request = match held {
            Some(held) => request
                .condition_expression("attribute_exists(taskId) AND #status = :charging AND chargeHeldUntil = :held")
                .expression_attribute_values(":held", to_attribute(&held)),
            None => request.condition_expression("attribute_exists(taskId) AND #status = :charging AND attribute_not_exists(chargeHeldUntil)"),
        };
        match request.send().await {
            Ok(out) => Ok(Transitioned::Applied(Box::new(Self::decode(task_id, out.attributes.unwrap_or_default())?))),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => match self.get(task_id).await? {
                Some(current) => Ok(Transitioned::Conflict(Box::new(current))),
                None => Ok(Transitioned::Missing),
            },
            Err(err) => Err(Self::unavailable(err)),
        }
    }

    async fn list_by_status(&self, status: TaskStatus, since: DateTime<Utc>, limit: u32, page: Option<Page>) -> Result<(Vec<TaskRecord>, Option<Page>), StoreError> {
        let limit = limit.clamp(1, 1000) as usize;
        let since_text = serde_json::to_value(since).expect("times serialise").as_str().unwrap_or_default().to_string();
        // Entries (sort key as stored, task id), newest first; those at or before the page's
        // cursor are dropped.
        let after = |e: &(String, String)| page.as_ref().is_none_or(|p| (e.0.as_str(), e.1.as_str()) < (p.updated_at.as_str(), p.task_id.as_str()));
        let (entries, more) = if status.is_terminal() {
            // The `closed` index: each shard read newest first until it has `limit` entries past
            // the cursor and no tie with the last of them is left unread.
            let upto = page.as_ref().map(|p| p.updated_at.clone());
            let mut entries = Vec::new();
            let mut more = false;
            // A cursor older than `since` (a relative `since` moves on between pages): nothing left,
            // and DynamoDB refuses a BETWEEN whose bounds are the wrong way round.
            let shards = if upto.as_ref().is_some_and(|u| u.as_str() < since_text.as_str()) { 0 } else { STATUS_INDEX_SHARDS };
            for shard in 0..shards {
                let key = format!("{}#{shard}", status.as_str());
                let mut got: Vec<(String, String)> = Vec::new();
                let mut start = None;
                loop {
                    let mut query = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name(CLOSED_INDEX)
                        .expression_attribute_values(":key", AttributeValue::S(key.clone()))
                        .expression_attribute_values(":since", AttributeValue::S(since_text.clone()))
                        .scan_index_forward(false)
                        .limit(limit as i32 + 1)
                        .set_exclusive_start_key(start);
                    query = match &upto {
                        Some(upto) => query
                            .key_condition_expression("closedKey = :key AND closedAt BETWEEN :since AND :upto")
                            .expression_attribute_values(":upto", AttributeValue::S(upto.clone())),
                        None => query.key_condition_expression("closedKey = :key AND closedAt >= :since"),
                    };
                    let out = query.send().await.map_err(Self::unavailable)?;
                    for item in out.items.unwrap_or_default() {
                        let at = item.get("closedAt").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                        let id = item.get("taskId").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                        let entry = (at, id);
                        if after(&entry) {
                            got.push(entry);
                        }
                    }
                    start = out.last_evaluated_key;
                    let Some(last_read) = start.as_ref().and_then(|k| k.get("closedAt")).and_then(|v| v.as_s().ok()) else { break };
                    got.sort_by(|x, y| y.cmp(x));
                    if got.len() >= limit && last_read.as_str() < got[limit - 1].0.as_str() {
                        more = true;
                        break;
                    }
                }
                entries.extend(got);
            }
            // Merged newest first: only the page's tasks are read.
            entries.sort_by(|x, y| y.cmp(x));
            let more = more || entries.len() > limit;
            entries.truncate(limit);
            (entries, more)
        } else {
            // In flight: the `inflight` index holds every task in flight (its sort key is when
            // the task went in flight, not its latest change), read whole and filtered on the
            // tasks' status and latest change below.
            let mut entries = Vec::new();
            for shard in 0..INFLIGHT_SHARDS {
                let mut start = None;
                loop {
                    let (ids, next) = inflight_page(&self.client, &self.table, shard, None, start).await?;
                    entries.extend(ids.into_iter().map(|id| (String::new(), id)));
                    start = next;
                    if start.is_none() {
                        break;
                    }
                }
            }
            (entries, false)
        };
        // The indexes project keys only (`TASK_INDEX_PROJECTION`): the tasks are read by key; one
        // that moved on since its index entry was read is not of this status any more.
        let ids: Vec<String> = entries.into_iter().map(|(_, id)| id).collect();
        let mut found = Vec::new();
        for item in crate::dynamo::batch_get(&self.client, &self.table, "taskId", &ids).await.map_err(StoreError::Unavailable)? {
            let id = item.get("taskId").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let task = Self::decode(&id, item)?;
            let at = if status.is_terminal() { task.closed_at } else { Some(task.updated_at) };
            if let Some(at) = at.filter(|at| task.status == status && *at >= since) {
                let at_text = serde_json::to_value(at).expect("times serialise").as_str().unwrap_or_default().to_string();
                if after(&(at_text.clone(), task.task_id.clone())) {
                    found.push((at_text, task));
                }
            }
        }
        found.sort_by(|(a, x), (b, y)| (b, &y.task_id).cmp(&(a, &x.task_id)));
        let more = more || found.len() > limit;
        found.truncate(limit);
        let next = more.then(|| found.last().map(|(at, t)| Page { task_id: t.task_id.clone(), status, updated_at: at.clone() })).flatten();
        Ok((found.into_iter().map(|(_, t)| t).collect(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::InMemoryTaskStore;

    #[tokio::test]
    async fn a_task_history_stops_growing_at_its_bound_as_a_conflict() {
        let now = Utc::now();
        let store = InMemoryTaskStore::default();
        let task = TaskRecord::new("o-1", "alice", TaskStatus::Received, None, now);
        store.create(&task).await.unwrap();
        // No service moves a task to a status it has (statuses only move forward); a bug that
        // did would be stopped here rather than grow the record past DynamoDB's item limit.
        let mut applied = 1;
        loop {
            match store.transition(&task.task_id, &[TaskStatus::Received], &Change::to(TaskStatus::Received, now)).await.unwrap() {
                Transitioned::Applied(_) => applied += 1,
                Transitioned::Conflict(task) => {
                    assert_eq!(task.history.len(), limits::MAX_HISTORY_ENTRIES);
                    break;
                }
                Transitioned::Missing => unreachable!(),
            }
        }
        assert_eq!(applied, limits::MAX_HISTORY_ENTRIES);
    }

    #[test]
    fn a_task_enters_the_closed_index_once_with_its_terminal_status_and_never_moves_in_flight_keys() {
        let t0 = Utc::now();
        let mut task = TaskRecord::new("o-1", "alice", TaskStatus::Received, None, t0);
        let (since, shard) = (task.inflight_since, task.inflight_shard.clone());
        assert!(since.is_some() && shard.is_some() && task.closed_key.is_none() && task.closed_at.is_none());
        // A change in flight moves no index key.
        Change::to(TaskStatus::Charging, t0 + chrono::Duration::seconds(1)).apply(&mut task);
        assert_eq!((task.inflight_since, task.inflight_shard.clone(), task.closed_key.clone()), (since, shard, None));
        let closed = t0 + chrono::Duration::seconds(2);
        Change::to(TaskStatus::Completed, closed).apply(&mut task);
        assert!(task.inflight_since.is_none() && task.inflight_shard.is_none());
        assert_eq!((task.closed_key.as_deref(), task.closed_at), (Some(closed_key(TaskStatus::Completed, &task.task_id).as_str()), Some(closed)));
        // A task created terminal (a rejection) is in the closed index from its first write.
        let rejected = TaskRecord::new("o-2", "alice", TaskStatus::Rejected, Some(Reason::NoItems), t0);
        assert_eq!((rejected.closed_key, rejected.closed_at, rejected.inflight_shard), (Some(closed_key(TaskStatus::Rejected, &rejected.task_id)), Some(t0), None));
    }

    #[test]
    fn closed_keys_spread_one_status_over_its_shards() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let key = closed_key(TaskStatus::Completed, &taskflow_contracts::keys::task_id("alice", &format!("o-{i}")));
            let (status, shard) = key.split_once('#').unwrap();
            assert_eq!(status, "COMPLETED");
            assert!(shard.parse::<u32>().unwrap() < STATUS_INDEX_SHARDS);
            seen.insert(key);
        }
        assert_eq!(seen.len(), STATUS_INDEX_SHARDS as usize, "every shard used: {seen:?}");
    }

    #[test]
    fn a_reason_detail_is_bounded() {
        let change = Change::to(TaskStatus::Failed, Utc::now()).because(Reason::WorkflowError, Some("x".repeat(1_000_000)));
        assert_eq!(change.reason_detail.unwrap().chars().count(), limits::MAX_REASON_DETAIL_CHARS);
    }
}
