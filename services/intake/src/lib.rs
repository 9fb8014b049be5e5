//! Intake: turns an `OrderSubmitted` event into a task and starts its workflow.
//!
//! - A valid order is recorded RECEIVED (a conditional write: the first event for an order id
//!   wins) and its execution is started under the order id as name, so a re-published event can
//!   neither create a second task nor start a second execution.
//! - An invalid order is recorded REJECTED with a named [`Reason`]; it never starts a workflow.
//! - An event that is not an order at all (not JSON, another detail-type, no order id) has nothing
//!   to record: it fails by name and stays on the queue until SQS moves it to the dead-letter queue.

pub mod size;
pub mod validate;
pub mod workflows;

use chrono::{DateTime, Utc};
use serde_json::Value;
use taskflow_contracts::{EventEnvelope, OrderSubmitted, Reason, TaskStatus, ORDER_SUBMITTED};
use taskflow_shared::tasks::{Created, Note, StoreError, TaskRecord, TaskStore};
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
}

pub struct Intake<S, W> {
    pub tasks: S,
    pub workflows: W,
}

impl<S: TaskStore, W: Workflows> Intake<S, W> {
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

        match validate(detail) {
            Ok(order) => self.receive(order, now).await,
            Err(rejection) => self.reject(&order_id, detail, rejection, now).await,
        }
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
                self.reject(&id, &detail, rejection, now).await
            }
            _ => Err(not_an_order()),
        }
    }

    async fn receive(&self, order: OrderSubmitted, now: DateTime<Utc>) -> Result<Accepted, IntakeError> {
        let trace = telemetry::current_header_or_new();
        let task = received(&order, &trace, now);
        // The execution carries the trace into every message it sends (`$.traceHeader`).
        let input = execution_input(&order, &trace);
        // Checked before the calls that would fail on it: an order too large for AWS is
        // rejected by name rather than retried into a dead-letter queue.
        if let Err(rejection) = size::fits(&task, &input) {
            let detail = serde_json::to_value(&order).expect("orders always serialise");
            return self.reject(&order.order_id, &detail, rejection, now).await;
        }

        match self.tasks.create(&task).await? {
            Created::Created => {}
            // RECEIVED means a previous attempt may have stopped before starting the execution:
            // start it (again); the execution name makes that a no-op if it runs already.
            Created::Exists(existing) if existing.status == TaskStatus::Received => {}
            Created::Exists(existing) => {
                return Ok(Accepted::Duplicate { order_id: order.order_id, status: existing.status });
            }
        }
        let (execution_arn, new) = match self.workflows.start(order.kind, &order.order_id, &input, Some(&trace)).await? {
            Started::New(arn) => (arn, true),
            Started::Existing(arn) => (arn, false),
        };
        self.tasks.note(&order.order_id, &Note::Execution(execution_arn.clone())).await?;
        Ok(if new {
            Accepted::Started { order_id: order.order_id, execution_arn }
        } else {
            Accepted::Duplicate { order_id: order.order_id, status: TaskStatus::Received }
        })
    }

    async fn reject(&self, order_id: &str, detail: &Value, rejection: Rejection, now: DateTime<Utc>) -> Result<Accepted, IntakeError> {
        let owner = detail.get("owner").and_then(Value::as_str).unwrap_or_default();
        let mut task = TaskRecord::new(order_id, owner.chars().take(validate::MAX_OWNER_CHARS).collect::<String>(), TaskStatus::Rejected, Some(rejection.reason), now);
        task.kind = detail.get("kind").and_then(|k| serde_json::from_value(k.clone()).ok());
        task.reason_detail = Some(taskflow_shared::tasks::bounded_detail(&rejection.detail));
        let trace = telemetry::current_header_or_new();
        task.trace_id = telemetry::trace_id_in(&trace).map(str::to_string);
        task.trace_header = Some(trace);
        match self.tasks.create(&task).await? {
            Created::Created => Ok(Accepted::Rejected { order_id: order_id.to_string(), reason: rejection.reason }),
            Created::Exists(existing) => Ok(Accepted::Duplicate { order_id: order_id.to_string(), status: existing.status }),
        }
    }
}

/// The task of a valid order, RECEIVED.
pub fn received(order: &OrderSubmitted, trace: &str, now: DateTime<Utc>) -> TaskRecord {
    let mut task = TaskRecord::new(&order.order_id, &order.owner, TaskStatus::Received, None, now);
    task.trace_id = telemetry::trace_id_in(trace).map(str::to_string);
    task.trace_header = Some(trace.to_string());
    task.kind = Some(order.kind);
    task.currency = order.currency.clone();
    task.items = order.items.clone();
    task.amount = order.amount.or_else(|| order.items_total()).unwrap_or(0);
    task.refund_of = order.refund_of.clone();
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
