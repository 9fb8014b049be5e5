use super::*;
use async_trait::async_trait;
use serde_json::json;
use std::sync::Mutex;
use taskflow_contracts::OrderKind;
use taskflow_shared::fakes::InMemoryTaskStore;

/// Step Functions' naming rule in memory: one execution per name.
#[derive(Default)]
struct FakeWorkflows {
    executions: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Workflows for FakeWorkflows {
    async fn start(&self, kind: OrderKind, name: &str, input: &str, _trace_header: Option<&str>) -> Result<Started, WorkflowError> {
        let mut executions = self.executions.lock().unwrap();
        let workflow = match kind {
            OrderKind::Purchase => "purchase",
            OrderKind::Refund => "refund",
        };
        let arn = format!("arn:aws:states:us-east-1:123456789012:execution:{workflow}:{name}");
        if executions.iter().any(|(n, _)| n == name) {
            return Ok(Started::Existing(arn));
        }
        executions.push((name.to_string(), input.to_string()));
        Ok(Started::New(arn))
    }
}

fn intake() -> Intake<InMemoryTaskStore, FakeWorkflows> {
    Intake { tasks: InMemoryTaskStore::default(), workflows: FakeWorkflows::default() }
}

fn purchase(order_id: &str) -> serde_json::Value {
    json!({
        "schemaVersion": 1, "orderId": order_id, "owner": "alice", "kind": "purchase",
        "items": [{"sku": "BOOK-1", "quantity": 2, "unitPrice": 1250}, {"sku": "PEN-1", "quantity": 1, "unitPrice": 199}],
        "currency": "EUR", "paymentToken": "tok_approve"
    })
}

fn event(detail: &serde_json::Value) -> String {
    json!({"version": "0", "id": "e-1", "detail-type": "OrderSubmitted", "source": "taskflow.orders",
           "time": "2026-01-01T00:00:00Z", "detail": detail})
    .to_string()
}

fn now() -> DateTime<Utc> {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn a_valid_purchase_is_received_and_its_workflow_started_under_the_order_id() {
    let intake = intake();
    let accepted = intake.accept(&event(&purchase("o-1")), now()).await.unwrap();
    assert!(matches!(accepted, Accepted::Started { ref order_id, .. } if order_id == "o-1"));
    let task = intake.tasks.snapshot("o-1").unwrap();
    assert_eq!(task.status, TaskStatus::Received);
    assert_eq!(task.amount, 2 * 1250 + 199);
    assert_eq!(task.owner, "alice");
    assert!(task.execution_arn.unwrap().ends_with(":execution:purchase:o-1"), "the purchase workflow");
    let executions = intake.workflows.executions.lock().unwrap().clone();
    assert_eq!(executions.len(), 1);
    let input: OrderSubmitted = serde_json::from_str(&executions[0].1).unwrap();
    assert_eq!(input.payment_token.unwrap().expose(), "tok_approve");
}

#[tokio::test]
async fn a_refund_starts_the_refund_workflow() {
    let intake = intake();
    let refund = json!({"schemaVersion": 1, "orderId": "r-1", "owner": "alice", "kind": "refund", "currency": "EUR", "refundOf": "o-1"});
    let accepted = intake.accept(&event(&refund), now()).await.unwrap();
    assert!(matches!(accepted, Accepted::Started { ref execution_arn, .. } if execution_arn.ends_with(":execution:refund:r-1")), "{accepted:?}");
}

#[tokio::test]
async fn the_same_order_event_twice_gives_one_task_and_one_execution() {
    let intake = intake();
    intake.accept(&event(&purchase("o-2")), now()).await.unwrap();
    let again = intake.accept(&event(&purchase("o-2")), now()).await.unwrap();
    assert_eq!(again, Accepted::Duplicate { order_id: "o-2".into(), status: TaskStatus::Received });
    assert_eq!(intake.tasks.len(), 1);
    assert_eq!(intake.tasks.snapshot("o-2").unwrap().history.len(), 1);
    assert_eq!(intake.workflows.executions.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_duplicate_of_a_finished_order_does_not_touch_the_workflow() {
    let mut done = TaskRecord::new("o-3", "alice", TaskStatus::Completed, None, now());
    done.kind = Some(taskflow_contracts::OrderKind::Purchase);
    let intake = Intake { tasks: InMemoryTaskStore::with([done]), workflows: FakeWorkflows::default() };
    let accepted = intake.accept(&event(&purchase("o-3")), now()).await.unwrap();
    assert_eq!(accepted, Accepted::Duplicate { order_id: "o-3".into(), status: TaskStatus::Completed });
    assert!(intake.workflows.executions.lock().unwrap().is_empty());
}

#[tokio::test]
async fn every_broken_rule_rejects_with_its_own_reason_and_starts_nothing() {
    let cases: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>, Reason)> = vec![
        ("version", Box::new(|d| d["schemaVersion"] = json!(2)), Reason::UnsupportedSchemaVersion),
        ("no-version", Box::new(|d| { d.as_object_mut().unwrap().remove("schemaVersion"); }), Reason::MalformedOrder),
        ("no-owner", Box::new(|d| { d.as_object_mut().unwrap().remove("owner"); }), Reason::MalformedOrder),
        ("typed", Box::new(|d| d["items"][0]["quantity"] = json!("two")), Reason::MalformedOrder),
        ("negative", Box::new(|d| d["items"][0]["unitPrice"] = json!(-5)), Reason::MalformedOrder),
        ("kind", Box::new(|d| d["kind"] = json!("gift")), Reason::MalformedOrder),
        ("bad id", Box::new(|d| d["orderId"] = json!("has spaces")), Reason::InvalidOrderId),
        ("blank owner", Box::new(|d| d["owner"] = json!("  ")), Reason::InvalidOwner),
        ("currency", Box::new(|d| d["currency"] = json!("XXX")), Reason::UnsupportedCurrency),
        ("empty", Box::new(|d| d["items"] = json!([])), Reason::NoItems),
        ("zero qty", Box::new(|d| d["items"][0]["quantity"] = json!(0)), Reason::InvalidItem),
        ("zero price", Box::new(|d| d["items"][0]["unitPrice"] = json!(0)), Reason::InvalidPrice),
        ("too many", Box::new(|d| d["items"] = json!((0..51).map(|i| json!({"sku": format!("S{i}"), "quantity": 1, "unitPrice": 1})).collect::<Vec<_>>())), Reason::TooManyItems),
        ("dup sku", Box::new(|d| d["items"][1]["sku"] = json!("BOOK-1")), Reason::DuplicateSku),
        ("overflow", Box::new(|d| d["items"][0]["unitPrice"] = json!(u64::MAX)), Reason::AmountTooLarge),
        ("too large", Box::new(|d| d["items"][0]["unitPrice"] = json!(MAX_ORDER_AMOUNT)), Reason::AmountTooLarge),
        ("no token", Box::new(|d| { d.as_object_mut().unwrap().remove("paymentToken"); }), Reason::MissingPaymentToken),
        ("refund without target", Box::new(|d| d["kind"] = json!("refund")), Reason::MissingRefundOf),
    ];
    for (i, (name, mutate, reason)) in cases.into_iter().enumerate() {
        let intake = intake();
        let mut detail = purchase(&format!("r-{i}"));
        mutate(&mut detail);
        let order_id = detail["orderId"].as_str().unwrap().to_string();
        let accepted = intake.accept(&event(&detail), now()).await.unwrap();
        assert_eq!(accepted, Accepted::Rejected { order_id: order_id.clone(), reason }, "case {name}");
        let task = intake.tasks.snapshot(&order_id).unwrap();
        assert_eq!((task.status, task.reason), (TaskStatus::Rejected, Some(reason)), "case {name}");
        assert!(task.reason_detail.is_some_and(|d| !d.is_empty()), "case {name} names what was wrong");
        assert!(intake.workflows.executions.lock().unwrap().is_empty(), "case {name}");
    }
}

use crate::validate::MAX_ORDER_AMOUNT;

#[tokio::test]
async fn a_rejected_order_published_again_stays_one_rejection() {
    let intake = intake();
    let mut detail = purchase("o-4");
    detail["currency"] = json!("XXX");
    intake.accept(&event(&detail), now()).await.unwrap();
    let again = intake.accept(&event(&detail), now()).await.unwrap();
    assert_eq!(again, Accepted::Duplicate { order_id: "o-4".into(), status: TaskStatus::Rejected });
    assert_eq!(intake.tasks.snapshot("o-4").unwrap().history.len(), 1);
}

#[tokio::test]
async fn what_is_not_an_order_is_an_error_not_a_silent_drop() {
    let intake = intake();
    let not_json = intake.accept("{{{", now()).await;
    assert!(matches!(not_json, Err(IntakeError::NotAnOrder(_))));
    let other = json!({"detail-type": "SomethingElse", "source": "x", "detail": purchase("o-5")}).to_string();
    assert!(matches!(intake.accept(&other, now()).await, Err(IntakeError::NotAnOrder(_))));
    let mut no_id = purchase("o-6");
    no_id.as_object_mut().unwrap().remove("orderId");
    assert!(matches!(intake.accept(&event(&no_id), now()).await, Err(IntakeError::NotAnOrder(_))));
    assert!(intake.tasks.is_empty());
}

#[tokio::test]
async fn oversized_fields_are_rejected_by_name_and_the_rejection_record_stays_small() {
    use taskflow_contracts::limits::{MAX_OWNER_CHARS, MAX_REASON_DETAIL_CHARS};
    let huge = "x".repeat(300 * 1024);
    let cases: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>, Reason)> = vec![
        ("10 KB owner", Box::new(|d| d["owner"] = json!("o".repeat(10 * 1024))), Reason::InvalidOwner),
        ("long payment token", Box::new(|d| d["paymentToken"] = json!("t".repeat(10 * 1024))), Reason::FieldTooLong),
        ("long refundOf", Box::new(|d| { d["kind"] = json!("refund"); d["refundOf"] = json!("r".repeat(81)); }), Reason::FieldTooLong),
        ("300 KB quantity text", Box::new(|d| d["items"][0]["quantity"] = json!("x".repeat(300 * 1024))), Reason::MalformedOrder),
        ("300 KB currency", Box::new(|d| d["currency"] = json!("E".repeat(300 * 1024))), Reason::UnsupportedCurrency),
        ("300 KB sku", Box::new(|d| d["items"][0]["sku"] = json!("S".repeat(300 * 1024))), Reason::InvalidItem),
        ("1000-byte order id", Box::new(|d| d["orderId"] = json!(format!("{}-{}", d["orderId"].as_str().unwrap(), "i".repeat(990)))), Reason::InvalidOrderId),
    ];
    for (i, (name, mutate, reason)) in cases.into_iter().enumerate() {
        let intake = intake();
        let mut detail = purchase(&format!("big-{i}"));
        detail["unknownButHuge"] = json!(huge); // ignored, as unknown fields are
        mutate(&mut detail);
        let order_id = detail["orderId"].as_str().unwrap().to_string();
        let accepted = intake.accept(&event(&detail), now()).await.unwrap();
        assert_eq!(accepted, Accepted::Rejected { order_id: order_id.clone(), reason }, "case {name}");
        let task = intake.tasks.snapshot(&order_id).unwrap();
        assert_eq!((task.status, task.reason), (TaskStatus::Rejected, Some(reason)), "case {name}");
        assert!(task.owner.chars().count() <= MAX_OWNER_CHARS, "case {name}: owner as recorded is bounded");
        assert!(task.reason_detail.as_ref().is_some_and(|d| d.chars().count() <= MAX_REASON_DETAIL_CHARS), "case {name}");
        assert!(task.stored_size() < 8 * 1024, "case {name}: rejection record is {} bytes", task.stored_size());
        assert!(intake.workflows.executions.lock().unwrap().is_empty(), "case {name}");
    }

    // Unknown fields, however large, are ignored: the order goes ahead, its execution input small.
    let intake = intake();
    let mut detail = purchase("big-ok");
    detail["unknownButHuge"] = json!(huge);
    assert!(matches!(intake.accept(&event(&detail), now()).await.unwrap(), Accepted::Started { .. }));
    assert!(intake.workflows.executions.lock().unwrap()[0].1.len() < 1024);
}

#[tokio::test]
async fn an_order_nested_deeper_than_serde_json_reads_is_rejected_not_dead_lettered() {
    let intake = intake();
    // EventBridge takes JSON nested 1000 levels and more; serde_json's Value stops at 128.
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let body = event(&purchase("deep-1")).replace("\"kind\":\"purchase\"", &format!("\"kind\":\"purchase\",\"extra\":{deep}"));
    assert!(body.contains(&deep));
    let accepted = intake.accept(&body, now()).await.unwrap();
    assert_eq!(accepted, Accepted::Rejected { order_id: "deep-1".into(), reason: Reason::MalformedOrder });
    let task = intake.tasks.snapshot("deep-1").unwrap();
    assert_eq!((task.owner.as_str(), task.kind), ("alice", Some(OrderKind::Purchase)));
    // Without a readable order id it is still not an order.
    let body = body.replace("\"orderId\":\"deep-1\"", "\"orderId\":7");
    assert!(matches!(intake.accept(&body, now()).await, Err(IntakeError::NotAnOrder(_))));
}
