//! Intake: turns an `OrderSubmitted` event into a task and starts its workflow.
//!
//! - A valid order is recorded RECEIVED under its task id (`keys::task_id` of owner and order
//!   id: order ids are scoped per owner) by a conditional write — the first event for an
//!   owner's order id wins — and its execution is started with the task id as name, so a
//!   re-published event can neither create a second task nor start a second execution.
//! - The same owner reusing the order id for other content (a different `keys::fingerprint`)
//!   changes nothing of the first order: the new one is recorded REJECTED `ORDER_ID_CONFLICT`
//!   under its own key (`keys::conflict_task_id`), and its status event tells the owner.
//! - An invalid order is recorded REJECTED with a named [`Reason`]; it never starts a workflow.
//!   Its owner is checked first (`OwnerId::parse`), before anything else is read; one without a
//!   valid owner or order id is keyed by its raw text (`keys::unowned_task_id`).
//! - A purchase is priced from the [`Catalogue`] (see [`pricing`]): every line's price is the
//!   catalogue's, the task's amount is the total at catalogue prices, and a price the submitter
//!   states only has to match it (`PRICE_MISMATCH` otherwise). Unknown and inactive skus are
//!   REJECTED (`UNKNOWN_SKU`, `SKU_INACTIVE`). A catalogue that cannot be read leaves the order on
//!   the queue to be retried, unjudged. The content fingerprint is of the order as submitted
//!   (before pricing), so a redelivery after a price change is the same order, not a conflict.
//! - An `OrderCancelled` event cancels a purchase not yet charged (see [`cancellation`]).
//! - An event that is not an order at all (not JSON, another detail-type, no order id) has nothing
//!   to record: it fails by name and stays on the queue until SQS moves it to the dead-letter queue.

pub mod cancellation;
pub mod pricing;
pub mod size;
pub mod validate;
pub mod workflows;

use chrono::{DateTime, Utc};
use serde_json::Value;
use taskflow_contracts::{keys, EventEnvelope, OrderKind, OrderSubmitted, OwnerId, Reason, TaskStatus, ORDER_SUBMITTED};
use taskflow_shared::catalogue::{Catalogue, CatalogueError};
use taskflow_shared::tasks::{Created, StoreError, TaskRecord, TaskStore};
use taskflow_shared::telemetry;
use thiserror::Error;
pub use validate::{validate, Rejection};
pub use workflows::{Started, WorkflowError, Workflows};

/// What became of one order event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new task; its execution is running.
    Started { order_id: String, execution_arn: String },
    /// The order was invalid and is recorded REJECTED.
    Rejected { order_id: String, reason: Reason },
    /// The order id was seen before; nothing new happened (beyond making sure its workflow runs).
    Duplicate { order_id: String, status: TaskStatus },
}

#[derive(Debug, Error)]
pub enum IntakeError {
    /// Permanent: there is no order in this message to record or reject.
    #[error("NotAnOrder: {0}")]
    NotAnOrder(String),
    #[error("TaskStoreUnavailable: {0}")]
    Store(#[from] StoreError),
    #[error("WorkflowUnavailable: {0}")]
    Workflow(#[from] WorkflowError),
    #[error("CatalogueUnavailable: {0}")]
    Catalogue(#[from] CatalogueError),
    /// A cancel that may succeed later: its order is not found yet, or a store or Step Functions
    /// call failed (see `cancellation`).
    #[error("CancelPending: {0}")]
    CancelPending(String),
}

pub struct Intake<S, W, C> {
    pub tasks: S,
    pub workflows: W,
    /// Where every purchase's prices come from.
    pub catalogue: C,
}

impl<S: TaskStore, W: Workflows, C: Catalogue> Intake<S, W, C> {
    /// Handles one SQS message body: an EventBridge event delivered by the intake rule.
    pub async fn accept(&self, body: &str, now: DateTime<Utc>) -> Result<Accepted, IntakeError> {
        let event: EventEnvelope<Value> = match serde_json::from_str(body) {
            Ok(event) => event,
            Err(e) => return self.unreadable(body, e, now).await,
        };
        if event.detail_type != ORDER_SUBMITTED {
            return Err(IntakeError::NotAnOrder(format!("detail-type {:?} is not {ORDER_SUBMITTED}", event.detail_type)));
        }
        let detail = &event.detail;
        let order_id = match detail.get("orderId") {
            Some(Value::String(id)) if !id.is_empty() && id.len() <= validate::MAX_KEY_BYTES => id.clone(),
            _ => return Err(IntakeError::NotAnOrder("the order has no usable orderId to record it under".into())),
        };

        let order = match validate(detail) {
            Ok(order) => order,
            Err(rejection) => return self.reject(&order_id, detail, rejection, keys::order_fingerprint(detail), None, now).await,
        };
        // Of the order as submitted, before the catalogue's prices are put on it.
        let fingerprint = keys::order_fingerprint(&serde_json::to_value(&order).expect("orders always serialise"));
        match self.price(order).await? {
            Ok(order) => self.receive(order, fingerprint, now).await,
            Err((order, rejection)) => self.reject(&order_id, detail, rejection, fingerprint, Some(order), now).await,
        }
    }

    /// A valid order with the catalogue's prices on every line and its total as `amount`, or why
    /// it cannot be sold (with the order as submitted). A refund is of its original order's
    /// money: lines on it mean nothing, and are dropped so that no caller's price is recorded.
    #[allow(clippy::type_complexity)]
    async fn price(&self, mut order: OrderSubmitted) -> Result<Result<OrderSubmitted, (OrderSubmitted, Rejection)>, IntakeError> {
        if order.kind != OrderKind::Purchase {
            order.items.clear();
            // The attachments a refund names must be on its original order, of the same owner
            // (read under the owner's own key: another owner's order is not found).
            if !order.attachments.is_empty() {
                let original = match order.refund_of.as_deref() {
                    Some(of) if keys::order_id_ok(of) => self.tasks.get(&keys::task_id(&order.owner, of)).await?.filter(|t| t.owner == order.owner),
                    _ => None,
                };
                let on_original = |id: &String| original.as_ref().is_some_and(|t| t.attachments.iter().any(|a| &a.id == id));
                if let Some(missing) = order.attachments.iter().find(|id| !on_original(id)) {
                    let rejection = validate::reject(Reason::UnknownAttachment, format!("attachment {missing} is not on order {}", order.refund_of.as_deref().unwrap_or_default()));
                    return Ok(Err((order, rejection)));
                }
            }
            return Ok(Ok(order));
        }
        let skus: Vec<&str> = order.items.iter().map(|i| i.sku.as_str()).collect();
        let entries = self.catalogue.entries(&skus).await?;
        Ok(match pricing::price(&order, &entries) {
            Ok((priced, _total)) => Ok(priced),
            Err(rejection) => Err((order, rejection)),
        })
    }

    /// A body serde_json cannot read as a value, though EventBridge took it: JSON nested deeper
    /// than serde_json's 128 levels (EventBridge takes 1000 and more). If the order's id can still
    /// be read (its fields are read shallowly, skipping the deep ones), the order is REJECTED
    /// `MALFORMED_ORDER`; otherwise there is no order in it.
    async fn unreadable(&self, body: &str, error: serde_json::Error, now: DateTime<Utc>) -> Result<Accepted, IntakeError> {
        #[derive(serde::Deserialize)]
        struct Shallow {
            #[serde(rename = "detail-type")]
            detail_type: String,
            detail: ShallowDetail,
        }
        #[derive(serde::Deserialize)]
        struct ShallowDetail {
            #[serde(rename = "orderId")]
            order_id: Option<Value>,
            owner: Option<Value>,
            kind: Option<Value>,
        }
        let not_an_order = || IntakeError::NotAnOrder(format!("not an EventBridge event: {error}"));
        let shallow: Shallow = serde_json::from_str(body).map_err(|_| not_an_order())?;
        match shallow.detail.order_id {
            Some(Value::String(id)) if shallow.detail_type == ORDER_SUBMITTED && !id.is_empty() && id.len() <= validate::MAX_KEY_BYTES => {
                let detail = serde_json::json!({"owner": shallow.detail.owner, "kind": shallow.detail.kind});
                let rejection = validate::reject(Reason::MalformedOrder, format!("the order cannot be read: {error}"));
                self.reject(&id, &detail, rejection, keys::order_fingerprint(&detail), None, now).await
            }
            _ => Err(not_an_order()),
        }
    }

    /// `order` is priced (purchases) and valid: record it RECEIVED and start its workflow.
    /// `fingerprint` is of the order as submitted.
    async fn receive(&self, order: OrderSubmitted, fingerprint: String, now: DateTime<Utc>) -> Result<Accepted, IntakeError> {
        let trace = telemetry::current_header_or_new();
        let mut task = received(&order, &trace, now);
        task.fingerprint = Some(fingerprint.clone());
        // Checked before the calls that would fail on it: an order too large for AWS is
        // rejected by name rather than retried into a dead-letter queue.
        if let Err(rejection) = size::fits(&task, &execution_input(&order, &trace)) {
            let detail = serde_json::to_value(&order).expect("orders always serialise");
            return self.reject(&order.order_id, &detail, rejection, fingerprint, None, now).await;
        }

        match self.tasks.create(&task).await? {
            Created::Created => self.start(order, &task.task_id, trace).await,
            Created::Exists(existing) if !same_content(&existing, &fingerprint) => {
                self.conflict(&order.order_id, &order.owner, Some(order.kind), &fingerprint, &existing, now).await
            }
            // RECEIVED means a previous attempt may have stopped before starting the execution:
            // start it (again); the execution name makes that a no-op if it runs already.
            Created::Exists(existing) if existing.status == TaskStatus::Received => {
                self.start(as_recorded(order, &existing), &existing.task_id, trace).await
            }
            Created::Exists(existing) => Ok(Accepted::Duplicate { order_id: order.order_id, status: existing.status }),
        }
    }

    /// Starts the workflow of a RECEIVED order (task `task_id`). Its execution ARN is not noted on
    /// the task: readers derive it (`executions::WorkflowArns::execution_of`).
    async fn start(&self, order: OrderSubmitted, task_id: &str, trace: String) -> Result<Accepted, IntakeError> {
        // The execution carries the trace into every message it sends (`$.traceHeader`).
        let input = execution_input(&order, &trace);
        // Named by the task id, not the order id: two owners' orders with one order id are two
        // executions, and the name is always a valid one (`keys`).
        let (execution_arn, new) = match self.workflows.start(order.kind, task_id, &input, Some(&trace)).await? {
            Started::New(arn) => (arn, true),
            Started::Existing(arn) => (arn, false),
        };
        Ok(if new {
            Accepted::Started { order_id: order.order_id, execution_arn }
        } else {
            Accepted::Duplicate { order_id: order.order_id, status: TaskStatus::Received }
        })
    }

    /// The owner already has an order with this id and other content: the first stands, and this
    /// one is recorded REJECTED `ORDER_ID_CONFLICT` under its own key (`keys::conflict_task_id`),
    /// so its status event tells the owner; the same conflicting event again changes nothing.
    async fn conflict(&self, order_id: &str, owner: &str, kind: Option<OrderKind>, fingerprint: &str, existing: &TaskRecord, now: DateTime<Utc>) -> Result<Accepted, IntakeError> {
        let mut task = TaskRecord::new(order_id, owner, TaskStatus::Rejected, Some(Reason::OrderIdConflict), now);
        task.task_id = keys::conflict_task_id(owner, order_id, fingerprint);
        task.kind = kind;
        task.fingerprint = Some(fingerprint.to_string());
        task.reason_detail = Some(format!("orderId {order_id:?} is already used by another of your orders (created {}); choose another orderId", existing.created_at.format("%Y-%m-%dT%H:%M:%SZ")));
        let trace = telemetry::current_header_or_new();
        task.trace_id = telemetry::trace_id_in(&trace).map(str::to_string);
        task.trace_header = Some(trace);
        match self.tasks.create(&task).await? {
            Created::Created => Ok(Accepted::Rejected { order_id: order_id.to_string(), reason: Reason::OrderIdConflict }),
            Created::Exists(existing) => Ok(Accepted::Duplicate { order_id: order_id.to_string(), status: existing.status }),
        }
    }

    /// Records an invalid order REJECTED. With a valid owner and order id it takes the owner's
    /// order id like any order (first come wins, a different reuse is a conflict); without, it is
    /// keyed by its raw text (`keys::unowned_task_id`), so it can never occupy an owner's id.
    /// `valid` is the order when only its pricing failed: if the same order was accepted before
    /// (a redelivery after the catalogue changed, of an order whose workflow may not have
    /// started), it goes on at the price it was accepted at.
    async fn reject(&self, order_id: &str, detail: &Value, rejection: Rejection, fingerprint: String, valid: Option<OrderSubmitted>, now: DateTime<Utc>) -> Result<Accepted, IntakeError> {
        let raw_owner = detail.get("owner").and_then(Value::as_str).unwrap_or_default();
        let owned = OwnerId::parse(raw_owner).is_ok() && keys::order_id_ok(order_id);
        // The owner as sent (bounded) is what the status event is addressed to, valid or not.
        let owner = truncate(raw_owner, validate::MAX_OWNER_BYTES);
        let mut task = TaskRecord::new(order_id, owner, TaskStatus::Rejected, Some(rejection.reason), now);
        if !owned {
            task.task_id = keys::unowned_task_id(raw_owner, order_id, &fingerprint);
        }
        task.kind = detail.get("kind").and_then(|k| serde_json::from_value(k.clone()).ok());
        task.reason_detail = Some(taskflow_shared::tasks::bounded_detail(&rejection.detail));
        task.fingerprint = Some(fingerprint.clone());
        let trace = telemetry::current_header_or_new();
        task.trace_id = telemetry::trace_id_in(&trace).map(str::to_string);
        task.trace_header = Some(trace);
        match self.tasks.create(&task).await? {
            Created::Created => Ok(Accepted::Rejected { order_id: order_id.to_string(), reason: rejection.reason }),
            Created::Exists(existing) if owned && !same_content(&existing, &fingerprint) => {
                self.conflict(order_id, raw_owner, task.kind, &fingerprint, &existing, now).await
            }
            Created::Exists(existing) => match valid {
                Some(order) if existing.status == TaskStatus::Received && existing.owner == order.owner => {
                    let trace = task.trace_header.unwrap_or_default();
                    self.start(as_recorded(order, &existing), &existing.task_id, trace).await
                }
                _ => Ok(Accepted::Duplicate { order_id: order_id.to_string(), status: existing.status }),
            },
        }
    }
}

/// `order` with the lines and amount its task was recorded with: an order is charged what it
/// was accepted at, whatever the catalogue says by the time a redelivery comes.
fn as_recorded(mut order: OrderSubmitted, task: &TaskRecord) -> OrderSubmitted {
    if order.kind == OrderKind::Purchase {
        order.items = task.items.clone();
        order.amount = Some(task.amount);
    }
    order
}

/// The stored task is this content (records from before fingerprints count as the same).
fn same_content(existing: &TaskRecord, fingerprint: &str) -> bool {
    existing.fingerprint.as_deref().is_none_or(|f| f == fingerprint)
}

/// `text` if it has at most `max` bytes; else its first bytes (cut at a character boundary) and
/// `…`, at most `max` bytes in all. `…` is no owner id character, so a cut owner is never
/// mistaken for (nor listed as) the valid owner its first bytes may spell.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The task of a valid order, RECEIVED.
pub fn received(order: &OrderSubmitted, trace: &str, now: DateTime<Utc>) -> TaskRecord {
    let mut task = TaskRecord::new(&order.order_id, &order.owner, TaskStatus::Received, None, now);
    task.trace_id = telemetry::trace_id_in(trace).map(str::to_string);
    task.trace_header = Some(trace.to_string());
    task.kind = Some(order.kind);
    task.currency = order.currency.clone();
    task.items = order.items.clone();
    // A purchase's amount is the total at catalogue prices (intake's pricing put it there); a
    // refund's is the amount asked for (absent: all that is left, settled by the refund service).
    task.amount = order.amount.unwrap_or(0);
    task.refund_of = order.refund_of.clone();
    task.refund_attachments = order.attachments.clone();
    task
}

/// The execution input of a valid order: the order, and the trace header the workflow passes on
/// in every work message (`$.traceHeader`).
pub fn execution_input(order: &OrderSubmitted, trace: &str) -> String {
    let mut input = serde_json::to_value(order).expect("orders always serialise");
    input["traceHeader"] = Value::from(trace);
    input.to_string()
}

#[cfg(test)]
mod tests;
