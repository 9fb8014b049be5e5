//! The operators' routes: open only to callers in the `operators` group (the token's
//! `cognito:groups` claim; a Cognito user pool group on AWS, `taskflow token --operator NAME`
//! locally). Anyone else gets 403 `NotAnOperator` and nothing is read or changed.
//!
//! - `GET /approvals` — refunds waiting for a decision (tasks AWAITING_APPROVAL of every owner,
//!   newest first; `limit`, `next` as below).
//! - `POST /approvals/{orderId}/approve` and `POST /approvals/{orderId}/deny` — body
//!   `{"owner": OWNER, "reason": TEXT}` (`reason` required to deny, at most
//!   `limits::MAX_REASON_DETAIL_CHARS`). The decision (who: the token's `sub`; when; why) is
//!   recorded on the approval record and on the task, then answers the workflow's task token.
//!   200 with the decision; 409 `AlreadyDecided` (a second decision, whichever it is: the first
//!   stands); 410 `ApprovalExpired` (past the deadline); 404 `NoPendingApproval`; 409
//!   `ApprovalNotReady` (the task waits but its token is not recorded yet: try again in a
//!   moment); 503 when Step Functions could not be told — the decision is recorded, and the same
//!   request again delivers it.
//! - `GET /tasks?status=STATUS&since=SINCE[&kind=purchase|refund][&limit=N][&next=TOKEN]` —
//!   tasks of every owner whose status is STATUS and whose latest change is within SINCE (`90s`,
//!   `30m`, `1h`, `2d`, or an RFC 3339 time; for a terminal status, the change that closed the
//!   task), newest first: a terminal status from the sparse `closed` index (one Query per shard),
//!   one in flight from the sparse `inflight` index (`TaskStore::list_by_status`), never a Scan. `limit` 1–1000 (default 50); `next` is the token of
//!   the previous page. `kind` filters each page (a page may hold fewer than `limit`).

use crate::{Answer, TaskView};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use taskflow_contracts::{keys, limits, ApprovalDecision, Decision, OrderKind, OwnerId, TaskStatus};
use taskflow_shared::approvals::{deliver, record_on_task, ApprovalState, ApprovalStore, PendingApproval, Written};
use taskflow_shared::callback::{CallbackError, TaskCallback};
use taskflow_shared::tasks::{Page, TaskStore};
use tracing::Instrument;

/// The group whose members may use these routes.
pub const OPERATORS_GROUP: &str = "operators";

/// The groups a `cognito:groups` claim names. API Gateway's HTTP API JWT authorizer passes an
/// array claim as a string, `[a b]` (the local gateway as JSON text, `["a","b"]`); both are read,
/// as is a JSON array.
pub fn groups(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(text)) => {
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) {
                return items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
            }
            text.trim().trim_start_matches('[').trim_end_matches(']').split([' ', ',']).filter(|g| !g.is_empty()).map(str::to_string).collect()
        }
        _ => Vec::new(),
    }
}

/// An operator route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorRoute {
    ListApprovals,
    Decide(String, Decision),
    QueryTasks,
}

impl OperatorRoute {
    /// The route for an API Gateway `routeKey` (and its query), if it is an operator's.
    pub fn from_key(route_key: &str, order_id: Option<&str>, query: &Value) -> Option<OperatorRoute> {
        match route_key {
            "GET /approvals" => Some(OperatorRoute::ListApprovals),
            "POST /approvals/{orderId}/approve" => order_id.map(|id| OperatorRoute::Decide(id.to_string(), Decision::Approved)),
            "POST /approvals/{orderId}/deny" => order_id.map(|id| OperatorRoute::Decide(id.to_string(), Decision::Denied)),
            // `GET /tasks` is the caller's own tasks; with `status` it is the operators' query.
            "GET /tasks" if query.get("status").is_some() => Some(OperatorRoute::QueryTasks),
            _ => None,
        }
    }
}

/// `1h`, `30m`, `90s`, `2d` or an RFC 3339 time → the earliest time asked for.
pub fn since(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let unit = text.chars().last()?;
    let number: i64 = text[..text.len() - unit.len_utf8()].parse().ok().filter(|n| *n >= 0)?;
    let span = match unit {
        's' => Duration::try_seconds(number)?,
        'm' => Duration::try_minutes(number)?,
        'h' => Duration::try_hours(number)?,
        'd' => Duration::try_days(number)?,
        _ => return None,
    };
    now.checked_sub_signed(span)
}

pub struct Operators<S, A, C> {
    pub tasks: S,
    pub approvals: A,
    pub callback: C,
}

fn error(status: u16, error: &str, message: impl Into<String>) -> Answer {
    Answer { status, body: json!({"error": error, "message": message.into()}) }
}

impl<S: TaskStore, A: ApprovalStore, C: TaskCallback> Operators<S, A, C> {
    /// Answers `route` for `caller` (the token's `sub`) in `groups`; `query` is the query string
    /// parameters (a JSON object of strings), `body` the request body.
    pub async fn handle(&self, route: OperatorRoute, caller: &str, groups: &[String], query: &Value, body: Option<&str>) -> Answer {
        if caller.is_empty() {
            return error(401, "Unauthorized", "no caller identity");
        }
        if !groups.iter().any(|g| g == OPERATORS_GROUP) {
            return error(403, "NotAnOperator", format!("only members of the {OPERATORS_GROUP} group may do this"));
        }
        // As on every other route: the subject is recorded as who decided, so it must be a valid
        // id (OwnerId's rule), else 403 InvalidOwner.
        if let Err(e) = OwnerId::parse(caller) {
            return error(403, "InvalidOwner", format!("the token's subject is not a valid id: {e}"));
        }
        match route {
            OperatorRoute::ListApprovals => {
                let mut query = query.clone();
                query["status"] = Value::from(TaskStatus::AwaitingApproval.as_str());
                query["since"] = Value::from("1970-01-01T00:00:00Z");
                self.query(&query).await
            }
            OperatorRoute::QueryTasks => self.query(query).await,
            OperatorRoute::Decide(order_id, decision) => self.decide(caller, &order_id, decision, body.unwrap_or_default()).await,
        }
    }

    async fn query(&self, query: &Value) -> Answer {
        let text = |name: &str| query.get(name).and_then(Value::as_str);
        let Some(status) = text("status").and_then(TaskStatus::parse) else {
            return error(400, "InvalidStatus", format!("status must be one of {}", TaskStatus::ALL.map(|s| s.as_str()).join(", ")));
        };
        let Some(since) = text("since").and_then(|s| since(s, Utc::now())) else {
            return error(400, "InvalidSince", "since must be like 90s, 30m, 1h, 2d, or an RFC 3339 time");
        };
        let kind = match text("kind") {
            None => None,
            Some("purchase") => Some(OrderKind::Purchase),
            Some("refund") => Some(OrderKind::Refund),
            Some(_) => return error(400, "InvalidKind", "kind must be purchase or refund"),
        };
        let limit = match text("limit").map(str::parse::<u32>) {
            None => 50,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            Some(_) => return error(400, "InvalidLimit", "limit must be 1-1000"),
        };
        let page = match text("next") {
            None => None,
            Some(token) => match Page::parse(token).filter(|p| p.status == status) {
                Some(page) => Some(page),
                None => return error(400, "InvalidNextToken", "next must be the token of the previous page of this query"),
            },
        };
        match self.tasks.list_by_status(status, since, limit, page).await {
            Ok((tasks, next)) => {
                let tasks: Vec<TaskView> = tasks.into_iter().filter(|t| kind.is_none() || t.kind == kind).map(TaskView::from).collect();
                Answer { status: 200, body: json!({"tasks": tasks, "next": next.map(|p| p.token())}) }
            }
            Err(e) => error(503, "TaskStoreUnavailable", e.to_string()),
        }
    }

    async fn decide(&self, operator: &str, order_id: &str, decision: Decision, body: &str) -> Answer {
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(if body.is_empty() { "{}" } else { body }) else {
            return error(400, "NotADecision", r#"the body must be a JSON object: {"owner": …, "reason": …}"#);
        };
        let Some(owner) = body.get("owner").and_then(Value::as_str) else {
            return error(400, "InvalidOwner", "owner (whose order it is) is required");
        };
        if let Err(e) = OwnerId::parse(owner) {
            return error(400, "InvalidOwner", e.to_string());
        }
        if !keys::order_id_ok(order_id) {
            return error(400, "InvalidOrderId", format!("orderId must be 1-{} of [A-Za-z0-9_-]", keys::MAX_ORDER_ID_CHARS));
        }
        let reason = match body.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) if r.chars().count() > limits::MAX_REASON_DETAIL_CHARS => {
                return error(400, "FieldTooLong", format!("reason is over {} characters", limits::MAX_REASON_DETAIL_CHARS));
            }
            Some(Value::String(r)) if !r.trim().is_empty() => Some(r.clone()),
            Some(Value::String(_)) => None,
            Some(_) => return error(400, "NotADecision", "reason must be a string"),
        };
        if decision == Decision::Denied && reason.is_none() {
            return error(400, "ReasonRequired", "a denial needs a reason");
        }
        let task_id = keys::task_id(owner, order_id);
        let id = task_id.as_str();
        let record = match self.approvals.get(id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                return match self.tasks.get(id).await {
                    Ok(Some(task)) if task.status == TaskStatus::AwaitingApproval => {
                        error(409, "ApprovalNotReady", "the refund is being handed to the approval path; try again in a moment")
                    }
                    Ok(_) => error(404, "NoPendingApproval", format!("{owner} has no refund {order_id} waiting for approval")),
                    Err(e) => error(503, "TaskStoreUnavailable", e.to_string()),
                };
            }
            Err(e) => return error(503, "ApprovalStoreUnavailable", e.to_string()),
        };
        let now = Utc::now();
        let wanted = ApprovalDecision { decision, by: operator.to_string(), at: now, reason, amount: record.amount };
        let record = match record.state {
            // The same decision again while the workflow has not been told: tell it (a retry).
            ApprovalState::Decided if !record.delivered && record.decision.as_ref().is_some_and(|d| d.decision == decision) => record,
            ApprovalState::Pending if now < record.deadline => match self.approvals.decide(id, &wanted).await {
                Ok(Written::Applied(record)) => *record,
                Ok(Written::Conflict(Some(record))) => return refused(&record, now),
                Ok(Written::Conflict(None)) => return error(404, "NoPendingApproval", format!("{owner} has no refund {order_id} waiting for approval")),
                Err(e) => return error(503, "ApprovalStoreUnavailable", e.to_string()),
            },
            _ => return refused(&record, now),
        };
        let decided = record.decision.clone().unwrap_or(wanted);
        // The decision's calls (the task write, SendTask*) belong to the order's trace, not to
        // the operator's request: continue the trace the task carries (one trace per order).
        let trace_header = match self.tasks.get(id).await {
            Ok(Some(task)) => task.trace_header,
            _ => None,
        };
        let span = taskflow_shared::telemetry::continue_trace("api", trace_header.as_deref());
        span.record("order_id", order_id);
        self.deliver_decision(id, order_id, owner, record, decided).instrument(span).await
    }

    /// Records `decided` on the task and answers the workflow's approval step with it.
    async fn deliver_decision(&self, id: &str, order_id: &str, owner: &str, record: PendingApproval, decided: ApprovalDecision) -> Answer {
        // On the task too (again, harmlessly, on a retry whose first try stopped before it).
        if let Err(e) = record_on_task(&self.tasks, id, &decided).await {
            return error(503, "TaskStoreUnavailable", format!("the decision is recorded; send it again: {e}"));
        }
        let answer = |status: u16, note: &str| Answer {
            status,
            body: json!({"orderId": order_id, "owner": owner, "approval": decided, "note": note}),
        };
        match deliver(&self.callback, &record).await {
            Ok(()) => {
                let _ = self.approvals.delivered(id).await;
                answer(200, match decided.decision {
                    Decision::Approved => "approved: the refund goes on",
                    Decision::Denied => "denied: the refund ends REJECTED REFUND_DENIED",
                })
            }
            // The first wait ended as we answered: the reminder's wait carries the decision.
            Err(CallbackError::TokenSpent(_)) if record.round < 2 && Utc::now() < record.deadline => answer(202, "recorded; the workflow takes it at its reminder"),
            Err(CallbackError::TokenSpent(_)) => error(410, "ApprovalExpired", "the deadline passed while deciding"),
            Err(CallbackError::Unavailable(e)) => error(503, "StepFunctionsUnavailable", format!("the decision is recorded; send it again to deliver it: {e}")),
        }
    }
}

/// Why a decision is refused, from the record as it is.
fn refused(record: &PendingApproval, now: DateTime<Utc>) -> Answer {
    match (&record.state, &record.decision) {
        (ApprovalState::Decided, Some(d)) => Answer {
            status: 409,
            body: json!({"error": "AlreadyDecided", "message": format!("already {} by {} at {}", match d.decision { Decision::Approved => "approved", Decision::Denied => "denied" }, d.by, d.at), "approval": d}),
        },
        (ApprovalState::Expired, _) => error(410, "ApprovalExpired", format!("the deadline was {}", record.deadline)),
        _ if now >= record.deadline => error(410, "ApprovalExpired", format!("the deadline was {}", record.deadline)),
        _ => error(409, "AlreadyDecided", "the approval is no longer pending"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_shared::approvals::InMemoryApprovalStore;
    use taskflow_shared::fakes::{Answer as Answered, InMemoryTaskStore, RecordingCallback};
    use taskflow_contracts::Reason;
    use taskflow_shared::tasks::{Change, TaskRecord};

    fn subject(deadline_in: Duration) -> Operators<InMemoryTaskStore, InMemoryApprovalStore, RecordingCallback> {
        let mut task = TaskRecord::new("r-1", "alice", TaskStatus::Received, None, Utc::now());
        task.kind = Some(OrderKind::Refund);
        task.amount = 20_000;
        Change::to(TaskStatus::AwaitingApproval, Utc::now()).apply(&mut task);
        let approvals = InMemoryApprovalStore::default();
        approvals.records.lock().unwrap().insert(
            task.task_id.clone(),
            PendingApproval {
                task_id: task.task_id.clone(),
                order_id: "r-1".into(),
                owner: "alice".into(),
                amount: 20_000,
                currency: "EUR".into(),
                requested_at: Utc::now(),
                deadline: Utc::now() + deadline_in,
                round: 1,
                state: ApprovalState::Pending,
                task_token: taskflow_contracts::TaskToken::new("tok-1"),
                decision: None,
                delivered: false,
            },
        );
        Operators { tasks: InMemoryTaskStore::with([task]), approvals, callback: RecordingCallback::default() }
    }

    const OPS: &[&str] = &["operators"];

    async fn decide(s: &Operators<InMemoryTaskStore, InMemoryApprovalStore, RecordingCallback>, who: &str, groups: &[&str], d: Decision, body: &str) -> Answer {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        s.handle(OperatorRoute::Decide("r-1".into(), d), who, &groups, &json!({}), Some(body)).await
    }

    #[tokio::test]
    async fn only_operators_decide_and_a_refusal_changes_nothing() {
        let s = subject(Duration::hours(1));
        let answer = decide(&s, "alice", &["owners"], Decision::Approved, r#"{"owner":"alice"}"#).await;
        assert_eq!((answer.status, answer.body["error"].as_str()), (403, Some("NotAnOperator")));
        assert!(s.callback.answers().is_empty());
        assert_eq!(s.tasks.of("alice", "r-1").unwrap().approval, None);
    }

    #[tokio::test]
    async fn an_operator_whose_subject_is_not_a_valid_id_is_refused_and_nothing_is_decided() {
        let s = subject(Duration::hours(1));
        let answer = decide(&s, "<i>olga</i>", OPS, Decision::Approved, r#"{"owner":"alice"}"#).await;
        assert_eq!((answer.status, answer.body["error"].as_str()), (403, Some("InvalidOwner")));
        assert!(s.callback.answers().is_empty());
        assert_eq!(s.tasks.of("alice", "r-1").unwrap().approval, None);
    }

    #[tokio::test]
    async fn an_approval_is_recorded_answered_once_and_a_second_decision_is_refused() {
        let s = subject(Duration::hours(1));
        let answer = decide(&s, "olga", OPS, Decision::Approved, r#"{"owner":"alice","reason":"known customer"}"#).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        let task = s.tasks.of("alice", "r-1").unwrap();
        let approval = task.approval.unwrap();
        assert_eq!((approval.decision, approval.by.as_str(), approval.reason.as_deref()), (Decision::Approved, "olga", Some("known customer")));
        assert!(matches!(&s.callback.answers()[..], [(t, Answered::Success(_))] if t == "tok-1"));
        let again = decide(&s, "piotr", OPS, Decision::Denied, r#"{"owner":"alice","reason":"no"}"#).await;
        assert_eq!((again.status, again.body["error"].as_str()), (409, Some("AlreadyDecided")));
        assert_eq!(s.callback.answers().len(), 1);
    }

    #[tokio::test]
    async fn a_denial_needs_a_reason_and_rejects_the_task_refund_denied() {
        let s = subject(Duration::hours(1));
        assert_eq!(decide(&s, "olga", OPS, Decision::Denied, r#"{"owner":"alice"}"#).await.status, 400);
        let answer = decide(&s, "olga", OPS, Decision::Denied, r#"{"owner":"alice","reason":"looks like fraud"}"#).await;
        assert_eq!(answer.status, 200);
        let task = s.tasks.of("alice", "r-1").unwrap();
        assert_eq!((task.status, task.reason, task.reason_detail.as_deref()), (TaskStatus::Rejected, Some(Reason::RefundDenied), Some("looks like fraud")));
        assert!(matches!(&s.callback.answers()[..], [(_, Answered::Failure { error, .. })] if error == "RefundDenied"));
    }

    #[tokio::test]
    async fn past_the_deadline_is_gone_and_unknown_is_not_found() {
        let s = subject(Duration::seconds(-1));
        let answer = decide(&s, "olga", OPS, Decision::Approved, r#"{"owner":"alice"}"#).await;
        assert_eq!((answer.status, answer.body["error"].as_str()), (410, Some("ApprovalExpired")));
        let answer = decide(&s, "olga", OPS, Decision::Approved, r#"{"owner":"bob"}"#).await;
        assert_eq!(answer.status, 404);
        assert!(s.callback.answers().is_empty());
    }

    #[test]
    fn groups_and_since_are_read_in_every_shape_they_come_in() {
        assert_eq!(groups(Some(&json!("[operators admins]"))), ["operators", "admins"]);
        assert_eq!(groups(Some(&json!(r#"["operators"]"#))), ["operators"]);
        assert_eq!(groups(Some(&json!(["operators"]))), ["operators"]);
        assert!(groups(None).is_empty());
        let now = Utc::now();
        assert_eq!(since("1h", now), Some(now - Duration::hours(1)));
        assert_eq!(since("90s", now), Some(now - Duration::seconds(90)));
        assert!(since("2026-11-29T10:00:00Z", now).is_some());
        assert_eq!(since("1y", now), None);
        assert_eq!(since("-1h", now), None);
    }

    #[tokio::test]
    async fn queries_by_status_are_for_operators_and_check_their_parameters() {
        let s = subject(Duration::hours(1));
        let ops: Vec<String> = vec!["operators".into()];
        let answer = s.handle(OperatorRoute::QueryTasks, "olga", &ops, &json!({"status": "AWAITING_APPROVAL", "since": "1h"}), None).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["tasks"].as_array().unwrap().len(), 1);
        let refunds_only = s.handle(OperatorRoute::QueryTasks, "olga", &ops, &json!({"status": "AWAITING_APPROVAL", "since": "1h", "kind": "purchase"}), None).await;
        assert_eq!(refunds_only.body["tasks"].as_array().unwrap().len(), 0);
        for bad in [json!({"status": "DONE", "since": "1h"}), json!({"status": "FAILED", "since": "soon"}), json!({"status": "FAILED", "since": "1h", "limit": "0"}), json!({"status": "FAILED", "since": "1h", "next": "x"})] {
            assert_eq!(s.handle(OperatorRoute::QueryTasks, "olga", &ops, &bad, None).await.status, 400, "{bad}");
        }
        assert_eq!(s.handle(OperatorRoute::QueryTasks, "alice", &[], &json!({"status": "FAILED", "since": "1h"}), None).await.status, 403);
    }
}
