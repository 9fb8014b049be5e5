use super::*;
use async_trait::async_trait;
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use taskflow_contracts::{OrderKind, OwnerId};
use taskflow_shared::catalogue::CatalogueEntry;
use taskflow_shared::fakes::{InMemoryCatalogue, InMemoryTaskStore};

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

fn entry(sku: &str, unit_price: u64, currency: &str, active: bool) -> CatalogueEntry {
    CatalogueEntry { sku: sku.into(), name: format!("the {sku}"), unit_price, currency: currency.into(), active, stock_shards: 1 }
}

fn catalogue() -> InMemoryCatalogue {
    InMemoryCatalogue::with([
        entry("BOOK-1", 1250, "EUR", true),
        entry("PEN-1", 199, "EUR", true),
        entry("CAP-US", 1500, "USD", true),
        entry("OLD-1", 500, "EUR", false),
    ])
}

fn intake() -> Intake<InMemoryTaskStore, FakeWorkflows, InMemoryCatalogue> {
    Intake { tasks: InMemoryTaskStore::default(), workflows: FakeWorkflows::default(), catalogue: catalogue() }
}

/// The order the workflow of `name` was started with.
fn execution_input(intake: &Intake<InMemoryTaskStore, FakeWorkflows, InMemoryCatalogue>, order_id: &str) -> OrderSubmitted {
    // Executions are named by the task id of (owner, order id); these orders are alice's.
    let name = taskflow_contracts::keys::task_id("alice", order_id);
    let name = name.as_str();
    let executions = intake.workflows.executions.lock().unwrap().clone();
    let (_, input) = executions.iter().find(|(n, _)| n == name).expect("an execution of this order");
    serde_json::from_str(input).unwrap()
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
async fn a_valid_purchase_is_received_and_its_workflow_started_under_its_task_id() {
    let intake = intake();
    let accepted = intake.accept(&event(&purchase("o-1")), now()).await.unwrap();
    assert!(matches!(accepted, Accepted::Started { ref order_id, .. } if order_id == "o-1"));
    let Accepted::Started { execution_arn, .. } = &accepted else { unreachable!() };
    let task = intake.tasks.snapshot("o-1").unwrap();
    assert_eq!(task.status, TaskStatus::Received);
    assert_eq!(task.amount, 2 * 1250 + 199);
    assert_eq!(task.owner, "alice");
    assert_eq!(task.task_id, taskflow_contracts::keys::task_id("alice", "o-1"));
    assert!(execution_arn.ends_with(&format!(":execution:purchase:{}", task.task_id)), "the purchase workflow");
    // Not written on the task: derived from the workflow and the task id.
    assert_eq!(task.execution_arn, None);
    let workflows = taskflow_shared::executions::WorkflowArns {
        purchase: execution_arn.rsplit_once(':').unwrap().0.replacen(":execution:", ":stateMachine:", 1),
        refund: String::new(),
    };
    assert_eq!(workflows.execution_of(&task).as_deref(), Some(execution_arn.as_str()));
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
    let name = taskflow_contracts::keys::task_id("alice", "r-1");
    assert!(matches!(accepted, Accepted::Started { ref execution_arn, .. } if execution_arn.ends_with(&format!(":execution:refund:{name}"))), "{accepted:?}");
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
    let intake = Intake { tasks: InMemoryTaskStore::with([done]), workflows: FakeWorkflows::default(), catalogue: catalogue() };
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

fn unpriced(order_id: &str) -> serde_json::Value {
    let mut detail = purchase(order_id);
    for item in detail["items"].as_array_mut().unwrap() {
        item.as_object_mut().unwrap().remove("unitPrice");
    }
    detail
}

fn purchase_of(owner: &str, order_id: &str) -> serde_json::Value {
    let mut detail = purchase(order_id);
    detail["owner"] = json!(owner);
    detail
}

#[tokio::test]
async fn an_order_without_prices_is_charged_the_catalogues() {
    let intake = intake();
    let accepted = intake.accept(&event(&unpriced("p-1")), now()).await.unwrap();
    assert!(matches!(accepted, Accepted::Started { .. }), "{accepted:?}");
    let task = intake.tasks.snapshot("p-1").unwrap();
    assert_eq!(task.amount, 2 * 1250 + 199);
    let prices: Vec<_> = task.items.iter().map(|i| (i.sku.as_str(), i.unit_price)).collect();
    assert_eq!(prices, [("BOOK-1", Some(1250)), ("PEN-1", Some(199))]);
    // What the workflow (and so the purchase service) gets is priced by the catalogue too.
    let input = execution_input(&intake, "p-1");
    assert_eq!(input.items, task.items);
    assert_eq!(input.amount, Some(2 * 1250 + 199));
}

#[tokio::test]
async fn a_stated_price_equal_to_the_catalogues_is_accepted_and_one_line_may_omit_it() {
    let intake = intake();
    let mut detail = purchase("p-2");
    detail["items"][1].as_object_mut().unwrap().remove("unitPrice");
    let accepted = intake.accept(&event(&detail), now()).await.unwrap();
    assert!(matches!(accepted, Accepted::Started { .. }), "{accepted:?}");
    assert_eq!(intake.tasks.snapshot("p-2").unwrap().amount, 2 * 1250 + 199);
}

#[tokio::test]
async fn every_catalogue_rule_rejects_with_its_own_reason_and_charges_nothing() {
    let cases: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>, Reason)> = vec![
        ("price below the catalogue's", Box::new(|d| d["items"][0]["unitPrice"] = json!(1)), Reason::PriceMismatch),
        ("price above the catalogue's", Box::new(|d| d["items"][1]["unitPrice"] = json!(200)), Reason::PriceMismatch),
        ("purchase amount below the total", Box::new(|d| d["amount"] = json!(1)), Reason::PriceMismatch),
        ("purchase amount above the total", Box::new(|d| d["amount"] = json!(2 * 1250 + 199 + 1)), Reason::PriceMismatch),
        ("unknown sku", Box::new(|d| d["items"][1]["sku"] = json!("NOPE-1")), Reason::UnknownSku),
        ("sku differing only in case", Box::new(|d| d["items"][0]["sku"] = json!("book-1")), Reason::UnknownSku),
        ("inactive sku", Box::new(|d| d["items"][1] = json!({"sku": "OLD-1", "quantity": 1})), Reason::SkuInactive),
        ("inactive sku at its old price", Box::new(|d| d["items"][1] = json!({"sku": "OLD-1", "quantity": 1, "unitPrice": 500})), Reason::SkuInactive),
        ("order currency not the sku's", Box::new(|d| d["currency"] = json!("USD")), Reason::CurrencyMismatch),
        ("a dollar sku in a euro order", Box::new(|d| d["items"][1] = json!({"sku": "CAP-US", "quantity": 1})), Reason::CurrencyMismatch),
        ("quantity times the catalogue price too large", Box::new(|d| d["items"][0]["quantity"] = json!(4_000_000_000u32)), Reason::AmountTooLarge),
    ];
    for (i, (name, mutate, reason)) in cases.into_iter().enumerate() {
        let intake = intake();
        let mut detail = unpriced(&format!("c-{i}"));
        mutate(&mut detail);
        let order_id = detail["orderId"].as_str().unwrap().to_string();
        let accepted = intake.accept(&event(&detail), now()).await.unwrap();
        assert_eq!(accepted, Accepted::Rejected { order_id: order_id.clone(), reason }, "case {name}");
        let task = intake.tasks.snapshot(&order_id).unwrap();
        assert_eq!((task.status, task.reason, task.amount), (TaskStatus::Rejected, Some(reason), 0), "case {name}");
        assert!(task.reason_detail.is_some_and(|d| !d.is_empty()), "case {name} names what was wrong");
        assert!(intake.workflows.executions.lock().unwrap().is_empty(), "case {name}: nothing started, nothing charged");
    }
}

#[tokio::test]
async fn two_owners_with_one_order_id_get_two_tasks_and_two_executions() {
    let intake = intake();
    let a = intake.accept(&event(&purchase_of("alice", "cart-42")), now()).await.unwrap();
    let mut other = purchase_of("bob", "cart-42");
    other["items"][0]["quantity"] = json!(5);
    let b = intake.accept(&event(&other), now()).await.unwrap();
    assert!(matches!(a, Accepted::Started { .. }) && matches!(b, Accepted::Started { .. }), "{a:?} {b:?}");
    let (alice, bob) = (intake.tasks.of("alice", "cart-42").unwrap(), intake.tasks.of("bob", "cart-42").unwrap());
    assert_ne!(alice.task_id, bob.task_id);
    assert_eq!((alice.owner.as_str(), alice.amount), ("alice", 2 * 1250 + 199));
    assert_eq!((bob.owner.as_str(), bob.amount), ("bob", 5 * 1250 + 199));
    let executions = intake.workflows.executions.lock().unwrap().clone();
    assert_eq!(executions.len(), 2);
    assert_ne!(executions[0].0, executions[1].0);
}

#[tokio::test]
async fn an_owners_conflicting_reuse_is_rejected_under_its_own_key_once_and_the_first_order_stands() {
    let intake = intake();
    intake.accept(&event(&purchase("o-7")), now()).await.unwrap();
    let mut other = purchase("o-7");
    other["items"][0]["quantity"] = json!(3);
    let conflict = intake.accept(&event(&other), now()).await.unwrap();
    assert_eq!(conflict, Accepted::Rejected { order_id: "o-7".into(), reason: Reason::OrderIdConflict });
    let again = intake.accept(&event(&other), now()).await.unwrap();
    assert_eq!(again, Accepted::Duplicate { order_id: "o-7".into(), status: TaskStatus::Rejected });
    let first = intake.tasks.of("alice", "o-7").unwrap();
    assert_eq!((first.status, first.amount, first.history.len()), (TaskStatus::Received, 2 * 1250 + 199, 1));
    let tasks = intake.tasks.all();
    assert_eq!(tasks.len(), 2, "the order and one conflict record");
    let record = tasks.iter().find(|t| t.task_id != first.task_id).unwrap();
    assert!(record.task_id.starts_with("c-"));
    assert_eq!((record.order_id.as_str(), record.owner.as_str(), record.status, record.reason), ("o-7", "alice", TaskStatus::Rejected, Some(Reason::OrderIdConflict)));
    assert_eq!(intake.workflows.executions.lock().unwrap().len(), 1, "nothing started for the conflict");
    // The same order again (another payment token is not other content) is a plain duplicate.
    let mut same = purchase("o-7");
    same["paymentToken"] = json!("tok_decline");
    assert_eq!(intake.accept(&event(&same), now()).await.unwrap(), Accepted::Duplicate { order_id: "o-7".into(), status: TaskStatus::Received });
}

#[tokio::test]
async fn every_owner_rule_rejects_invalid_owner_before_anything_and_never_takes_a_valid_owners_id() {
    let long = "a".repeat(255);
    for owner in ["bob/x", "../admin", ".", "..", " ", "", "tab\tx", "a\\b", "zero\u{200b}w", "e\u{301}", long.as_str(), "x\u{0}"] {
        let intake = intake();
        let accepted = intake.accept(&event(&purchase_of(owner, "o-8")), now()).await.unwrap();
        assert_eq!(accepted, Accepted::Rejected { order_id: "o-8".into(), reason: Reason::InvalidOwner }, "{owner:?}");
        let task = intake.tasks.snapshot("o-8").unwrap();
        assert!(task.task_id.starts_with("r-"), "{owner:?}: keyed apart from every owner's order ids");
        assert!(intake.workflows.executions.lock().unwrap().is_empty());
    }
    // An owner one character too long, whose first 254 bytes are a valid owner: that owner's
    // order id stays free.
    let intake = intake();
    intake.accept(&event(&purchase_of(&long, "o-9")), now()).await.unwrap();
    let cut = intake.tasks.snapshot("o-9").unwrap().owner;
    assert!(cut.len() <= 254 && cut.ends_with('…') && OwnerId::parse(&cut).is_err(), "{cut}");
    let valid = "a".repeat(254);
    assert!(matches!(intake.accept(&event(&purchase_of(&valid, "o-9")), now()).await.unwrap(), Accepted::Started { .. }));
    for owner in ["alice+shop@example.com", "李雷", "o'brien@example.ie", "4f1c2b9e-8a7d-4c3b-9e2f-1a2b3c4d5e6f"] {
        assert!(matches!(intake.accept(&event(&purchase_of(owner, "o-10")), now()).await.unwrap(), Accepted::Started { .. }), "{owner:?}");
    }
}

#[tokio::test]
async fn the_first_broken_line_names_the_reason() {
    let intake = intake();
    let mut detail = unpriced("f-1");
    detail["items"] = json!([{"sku": "OLD-1", "quantity": 1}, {"sku": "NOPE-1", "quantity": 1}]);
    let accepted = intake.accept(&event(&detail), now()).await.unwrap();
    assert_eq!(accepted, Accepted::Rejected { order_id: "f-1".into(), reason: Reason::SkuInactive });
}

#[tokio::test]
async fn a_catalogue_that_cannot_be_read_leaves_the_order_unjudged_for_a_retry() {
    let intake = intake();
    intake.catalogue.unavailable.store(true, Ordering::SeqCst);
    let result = intake.accept(&event(&unpriced("u-1")), now()).await;
    assert!(matches!(result, Err(IntakeError::Catalogue(_))), "{result:?}");
    assert!(intake.tasks.is_empty(), "nothing recorded: the redelivery decides");
    intake.catalogue.unavailable.store(false, Ordering::SeqCst);
    let accepted = intake.accept(&event(&unpriced("u-1")), now()).await.unwrap();
    assert!(matches!(accepted, Accepted::Started { .. }), "{accepted:?}");
}

#[tokio::test]
async fn refunds_have_nothing_to_price_and_lines_sent_on_one_are_dropped() {
    let intake = intake();
    let refund = json!({"schemaVersion": 1, "orderId": "r-9", "owner": "alice", "kind": "refund", "currency": "EUR", "refundOf": "o-1", "amount": 300,
                        "items": [{"sku": "BOOK-1", "quantity": 1, "unitPrice": 99_999}]});
    intake.accept(&event(&refund), now()).await.unwrap();
    assert_eq!(intake.catalogue.reads.load(Ordering::SeqCst), 0);
    let task = intake.tasks.snapshot("r-9").unwrap();
    assert_eq!((task.amount, task.items.len()), (300, 0));
    assert!(execution_input(&intake, "r-9").items.is_empty(), "no caller's price reaches the refund workflow");
}

#[tokio::test]
async fn an_accepted_order_redelivered_after_a_price_change_goes_on_at_the_price_it_was_accepted_at() {
    // The first delivery recorded the task RECEIVED and stopped before starting the execution;
    // then the book's price went up.
    let intake = intake();
    let detail = purchase("pc-1");
    let first = Intake { tasks: InMemoryTaskStore::default(), workflows: FakeWorkflows::default(), catalogue: catalogue() };
    first.accept(&event(&detail), now()).await.unwrap();
    let recorded = first.tasks.snapshot("pc-1").unwrap();
    let intake = Intake { tasks: InMemoryTaskStore::with([TaskRecord { execution_arn: None, ..recorded }]), ..intake };
    intake.catalogue.put([entry("BOOK-1", 1500, "EUR", true)]);

    for detail in [detail.clone(), unpriced("pc-1")] {
        let accepted = intake.accept(&event(&detail), now()).await.unwrap();
        assert!(matches!(accepted, Accepted::Started { .. } | Accepted::Duplicate { status: TaskStatus::Received, .. }), "{accepted:?}");
        let task = intake.tasks.snapshot("pc-1").unwrap();
        assert_eq!((task.status, task.amount), (TaskStatus::Received, 2 * 1250 + 199), "not rejected, not repriced");
        let input = execution_input(&intake, "pc-1");
        assert_eq!((input.items[0].unit_price, input.amount), (Some(1250), Some(2 * 1250 + 199)));
    }
    // A new order of the same book pays the new price, and the old price is now a mismatch.
    intake.accept(&event(&unpriced("pc-2")), now()).await.unwrap();
    assert_eq!(intake.tasks.snapshot("pc-2").unwrap().amount, 2 * 1500 + 199);
    let stale = intake.accept(&event(&purchase("pc-3")), now()).await.unwrap();
    assert_eq!(stale, Accepted::Rejected { order_id: "pc-3".into(), reason: Reason::PriceMismatch });
}

#[tokio::test]
async fn an_invalid_order_holds_its_owners_id_and_a_different_one_after_it_is_a_conflict_told_once() {
    let intake = intake();
    let mut bad = purchase("o-11");
    bad["currency"] = json!("XXX");
    assert_eq!(intake.accept(&event(&bad), now()).await.unwrap(), Accepted::Rejected { order_id: "o-11".into(), reason: Reason::UnsupportedCurrency });
    assert_eq!(intake.tasks.of("alice", "o-11").unwrap().reason, Some(Reason::UnsupportedCurrency), "keyed as alice's o-11");
    let fixed = intake.accept(&event(&purchase("o-11")), now()).await.unwrap();
    assert_eq!(fixed, Accepted::Rejected { order_id: "o-11".into(), reason: Reason::OrderIdConflict });
    assert_eq!(intake.accept(&event(&purchase("o-11")), now()).await.unwrap(), Accepted::Duplicate { order_id: "o-11".into(), status: TaskStatus::Rejected });
    assert!(intake.workflows.executions.lock().unwrap().is_empty());
    let conflict = intake.tasks.all().into_iter().find(|t| t.task_id.starts_with("c-")).unwrap();
    assert_eq!(conflict.kind, Some(OrderKind::Purchase));
}

#[tokio::test]
async fn oversized_fields_are_rejected_by_name_and_the_rejection_record_stays_small() {
    use taskflow_contracts::limits::{MAX_OWNER_BYTES, MAX_REASON_DETAIL_CHARS};
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
        assert!(task.owner.len() <= MAX_OWNER_BYTES, "case {name}: owner as recorded is bounded");
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

fn with_attachment(owner: &str, order_id: &str, id: &str) -> TaskRecord {
    let mut task = TaskRecord::new(order_id, owner, TaskStatus::Completed, None, now());
    task.attachments.push(taskflow_contracts::Attachment {
        id: id.to_string(),
        name: "damage.jpg".into(),
        size: 10,
        content_type: "image/jpeg".into(),
        checksum: "sha256:00".into(),
        uploaded_at: now(),
    });
    task
}

#[tokio::test]
async fn a_refund_may_name_attachments_of_its_own_original_order_only() {
    let photo = format!("a-{}", "7".repeat(32));
    let intake = Intake {
        tasks: InMemoryTaskStore::with([with_attachment("alice", "o-1", &photo), with_attachment("bob", "o-2", &photo)]),
        workflows: FakeWorkflows::default(),
        catalogue: catalogue(),
    };
    let refund = |order_id: &str, of: &str, ids: &[&str]| {
        json!({"schemaVersion": 1, "orderId": order_id, "owner": "alice", "kind": "refund", "currency": "EUR", "refundOf": of, "attachments": ids})
    };
    // Named and on the original: accepted, and recorded on the refund's task.
    let accepted = intake.accept(&event(&refund("r-1", "o-1", &[&photo])), now()).await.unwrap();
    assert!(matches!(accepted, Accepted::Started { .. }), "{accepted:?}");
    assert_eq!(intake.tasks.of("alice", "r-1").unwrap().refund_attachments, vec![photo.clone()]);
    // Not on it, another owner's order (bob's o-2 has one of that id), not an id at all.
    let other = format!("a-{}", "8".repeat(32));
    for (order_id, of, id) in [("r-2", "o-1", other.as_str()), ("r-3", "o-2", photo.as_str()), ("r-4", "o-1", "../x")] {
        let accepted = intake.accept(&event(&refund(order_id, of, &[id])), now()).await.unwrap();
        assert!(matches!(accepted, Accepted::Rejected { reason: Reason::UnknownAttachment, .. }), "{order_id}: {accepted:?}");
    }
    // A purchase names none.
    let mut buy = purchase("o-9");
    buy["attachments"] = json!([photo]);
    let accepted = intake.accept(&event(&buy), now()).await.unwrap();
    assert!(matches!(accepted, Accepted::Rejected { reason: Reason::MalformedOrder, .. }), "{accepted:?}");
}
