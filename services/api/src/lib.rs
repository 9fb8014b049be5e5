//! The HTTP API: what an authenticated caller may do with orders and tasks.
//!
//! The caller is the token's subject (`sub`), checked before this code runs (API Gateway's JWT
//! authorizer on AWS, the local gateway in `taskflow up`). That subject is the owner, and must be
//! a valid owner id (`OwnerId::parse`): any other subject gets 403 `InvalidOwner` on every route,
//! before anything is read or submitted.
//! - `POST /orders` submits an order as the caller. The body is an `OrderSubmitted` detail; its
//!   `owner` is the caller (a body naming someone else is refused), `orderId` is made up if
//!   absent, and must follow the order id rule (else 400 `InvalidOrderId`). Order ids are the
//!   caller's own (scoped per owner, `keys::task_id`): if the caller already has an order with
//!   this id and other content (`keys::order_fingerprint`), the answer is 409
//!   `OrderIdConflict` and nothing is submitted; the same order again is 202 (idempotent).
//!   Otherwise the order goes onto the bus like any other, and the intake validates it: the
//!   answer is 202 with where to read the task.
//! - `GET /tasks/{orderId}`: the caller's task, read under the caller's own key only. Another
//!   owner's task with this order id is never read: 404, exactly as a task that does not exist.
//! - `GET /tasks/{orderId}/log`: the caller's task's audit log (`taskflow_shared::tasklog`), read
//!   from the caller's own key only: `{"orderId", "key", "lines": [ … one object per log line … ]}`.
//!   Another owner's task or none: 404 `NotFound`; the caller's task not closed yet: 404
//!   `NoTaskLog` (with its status).
//! - `GET /tasks`: the caller's tasks, newest first (with any REJECTED `ORDER_ID_CONFLICT`
//!   record of a reuse the API could not see coming, such as two submissions at once).
//! - `DELETE /orders/{orderId}`: the caller cancels a purchase not yet charged ([`cancel`]).
//!
//! The operators' routes (`GET /approvals`, `POST /approvals/{orderId}/approve|deny`, and
//! `GET /tasks?status=…`) are in [`operators`], open only to the `operators` group.

pub mod attachments;
pub mod bus;
pub mod operators;
pub mod cancel;
pub mod on_first_use;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use taskflow_contracts::{keys, OrderItem, OrderKind, OwnerId, Reason, TaskStatus, ORDER_SUBMITTED, SCHEMA_VERSION};
use taskflow_shared::tasklog::{self, TaskLogs};
use taskflow_shared::tasks::{HistoryEntry, TaskRecord, TaskStore};
use thiserror::Error;

/// A route of the API, as API Gateway names it (`routeKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    SubmitOrder,
    ReadTask(String),
    ListTasks,
    ReadTaskLog(String),
}

impl Route {
    /// The route for an API Gateway `routeKey` and its path parameters.
    pub fn from_key(route_key: &str, order_id: Option<&str>) -> Option<Route> {
        match route_key {
            "POST /orders" => Some(Route::SubmitOrder),
            "GET /tasks/{orderId}" => order_id.map(|id| Route::ReadTask(id.to_string())),
            "GET /tasks" => Some(Route::ListTasks),
            "GET /tasks/{orderId}/log" => order_id.map(|id| Route::ReadTaskLog(id.to_string())),
            _ => None,
        }
    }
}

/// An answer: status code and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn error(status: u16, error: &str, message: impl Into<String>) -> Answer {
        Answer { status, body: json!({"error": error, "message": message.into()}) }
    }
}

#[derive(Debug, Error)]
#[error("the order bus is unavailable: {0}")]
pub struct BusError(pub String);

/// Where submitted orders go: the event bus the intake listens to.
#[async_trait]
pub trait OrderBus: Send + Sync {
    async fn submit(&self, detail: &Value) -> Result<(), BusError>;
}

/// A task as its owner sees it: the record without the workflow's internals.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub order_id: String,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<OrderKind>,
    pub status: TaskStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_detail: Option<String>,
    pub amount: u64,
    pub currency: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<OrderItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_of: Option<String>,
    pub refunded: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<String>,
    pub history: Vec<HistoryEntry>,
    /// An operator's decision on a refund above the approval threshold (who, when, why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<taskflow_contracts::ApprovalDecision>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TaskRecord> for TaskView {
    fn from(t: TaskRecord) -> Self {
        TaskView {
            order_id: t.order_id,
            owner: t.owner,
            kind: t.kind,
            status: t.status,
            reason: t.reason,
            reason_detail: t.reason_detail,
            amount: t.amount,
            currency: t.currency,
            items: t.items,
            refund_of: t.refund_of,
            refunded: t.refunded,
            receipts: t.receipts,
            history: t.history,
            approval: t.approval,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// Largest order body taken: far above the largest valid order, far below what the bus takes
/// (`taskflow_contracts::limits::EVENTBRIDGE_ENTRY_MAX_BYTES`).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct Api<S, B, L = taskflow_shared::tasklog::InMemoryTaskLogs> {
    pub tasks: S,
    pub bus: B,
    /// Where closed tasks' logs are (the task bucket's `logs/` prefix).
    pub logs: L,
}

impl<S: TaskStore, B: OrderBus, L: TaskLogs> Api<S, B, L> {
    /// Answers `route` for the authenticated `caller`.
    pub async fn handle(&self, route: Route, caller: &str, body: Option<&str>) -> Answer {
        if caller.is_empty() {
            return Answer::error(401, "Unauthorized", "no caller identity");
        }
        if let Err(e) = OwnerId::parse(caller) {
            return Answer::error(403, "InvalidOwner", format!("the token's subject cannot own orders: {e}"));
        }
        match route {
            Route::SubmitOrder => self.submit(caller, body.unwrap_or_default()).await,
            // The caller's own key only: another owner's order of this id is never read.
            Route::ReadTask(order_id) => match self.tasks.get(&keys::task_id(caller, &order_id)).await {
                // Not yours is not found: nothing about another owner's task leaks.
                Ok(Some(task)) if task.owner == caller => Answer { status: 200, body: json!(TaskView::from(task)) },
                Ok(_) => Answer::error(404, "NotFound", format!("no task {order_id}")),
                Err(e) => Answer::error(503, "TaskStoreUnavailable", e.to_string()),
            },
            Route::ListTasks => match self.tasks.list_by_owner(caller).await {
                Ok(tasks) => {
                    let tasks: Vec<TaskView> = tasks.into_iter().filter(|t| t.owner == caller).map(TaskView::from).collect();
                    Answer { status: 200, body: json!({"tasks": tasks}) }
                }
                Err(e) => Answer::error(503, "TaskStoreUnavailable", e.to_string()),
            },
            Route::ReadTaskLog(order_id) => self.task_log(caller, &order_id).await,
        }
    }

    async fn task_log(&self, caller: &str, order_id: &str) -> Answer {
        // The caller's own key only, exactly as `GET /tasks/{orderId}`.
        let task = match self.tasks.get(&keys::task_id(caller, order_id)).await {
            Ok(Some(task)) if task.owner == caller => task,
            Ok(_) => return Answer::error(404, "NotFound", format!("no task {order_id}")),
            Err(e) => return Answer::error(503, "TaskStoreUnavailable", e.to_string()),
        };
        let Ok(key) = tasklog::key(&task) else {
            return Answer::error(404, "NoTaskLog", format!("task {order_id} has no log"));
        };
        match self.logs.read(&key).await {
            Ok(Some(text)) => match tasklog::parse(&text) {
                Ok(lines) => Answer { status: 200, body: json!({"orderId": order_id, "key": key, "lines": lines}) },
                Err(e) => Answer::error(500, "TaskLogUnreadable", e),
            },
            Ok(None) => Answer::error(404, "NoTaskLog", format!("task {order_id} is {} and has no log yet (a log is written once the task is closed)", task.status)),
            Err(e) => Answer::error(503, "TaskLogUnavailable", e.to_string()),
        }
    }

    async fn submit(&self, caller: &str, body: &str) -> Answer {
        if body.len() > MAX_BODY_BYTES {
            return Answer::error(413, "OrderTooLarge", format!("the order is over {MAX_BODY_BYTES} bytes"));
        }
        let Ok(Value::Object(mut detail)) = serde_json::from_str::<Value>(body) else {
            return Answer::error(400, "NotAnOrder", "the body must be a JSON object: an OrderSubmitted detail");
        };
        match detail.get("owner") {
            None => {}
            Some(Value::String(owner)) if owner == caller => {}
            Some(_) => return Answer::error(403, "NotYourOrder", "an order can only be submitted by its owner"),
        }
        detail.insert("owner".into(), Value::from(caller));
        detail.entry("schemaVersion").or_insert(Value::from(SCHEMA_VERSION));
        let order_id = match detail.get("orderId") {
            Some(Value::String(id)) if keys::order_id_ok(id) => id.clone(),
            Some(Value::String(_)) => {
                return Answer::error(400, "InvalidOrderId", format!("orderId must be 1-{} of [A-Za-z0-9_-]", keys::MAX_ORDER_ID_CHARS));
            }
            Some(_) => return Answer::error(400, "NotAnOrder", "orderId must be a non-empty string"),
            None => {
                let id = format!("ord-{}", uuid::Uuid::new_v4().simple());
                detail.insert("orderId".into(), Value::from(id.as_str()));
                id
            }
        };
        let detail = Value::Object(detail);
        // The caller's own reuse of an order id for something else: refused here, before the bus.
        match self.tasks.get(&keys::task_id(caller, &order_id)).await {
            Ok(Some(existing)) if existing.owner == caller && existing.fingerprint.as_deref().is_some_and(|f| f != keys::order_fingerprint(&detail)) => {
                return Answer::error(409, "OrderIdConflict", format!("you already have an order {order_id} with other content; choose another orderId"));
            }
            Ok(_) => {}
            Err(e) => return Answer::error(503, "TaskStoreUnavailable", e.to_string()),
        }
        // Everything else is the intake's to judge: an invalid order is recorded REJECTED with
        // its reason, where the caller reads it.
        match self.bus.submit(&detail).await {
            Ok(()) => Answer {
                status: 202,
                body: json!({"orderId": order_id, "submitted": ORDER_SUBMITTED, "task": format!("/tasks/{order_id}")}),
            },
            Err(e) => Answer::error(503, "OrderBusUnavailable", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
