use super::*;
use std::sync::atomic::Ordering::SeqCst;
use taskflow_shared::ledger::{EntryStatus, StockState};
use taskflow_contracts::{OrderItem, OrderKind, OrderSubmitted, PaymentToken, TaskToken};
use taskflow_shared::fakes::{InMemoryInventory, InMemoryLedger, InMemoryPayments, InMemoryTaskStore};

type Subject = Purchase<InMemoryTaskStore, InMemoryPayments, InMemoryLedger, InMemoryInventory>;

fn order(order_id: &str, token: &str) -> OrderSubmitted {
    OrderSubmitted {
        schema_version: 1,
        order_id: order_id.into(),
        owner: "alice".into(),
        kind: OrderKind::Purchase,
        items: vec![OrderItem { sku: "BOOK-1".into(), quantity: 2, unit_price: Some(1250) }],
        currency: "EUR".into(),
        payment_token: Some(PaymentToken::new(token)),
        refund_of: None,
        amount: None,
        attachments: Vec::new(),
    }
}

fn received(order: &OrderSubmitted) -> TaskRecord {
    let mut task = TaskRecord::new(&order.order_id, &order.owner, TaskStatus::Received, None, Utc::now());
    task.kind = Some(order.kind);
    task.amount = order.items_total().unwrap();
    task.currency = order.currency.clone();
    task
}

/// How long a delivery holds the charge in these tests.
const HOLD: chrono::Duration = chrono::Duration::seconds(15);

fn purchase_of(order: &OrderSubmitted, stock: u64) -> Subject {
    let ledger = InMemoryLedger::default();
    Purchase {
        tasks: InMemoryTaskStore::with([received(order)]),
        payments: InMemoryPayments::default(),
        // The reservation writes the ledger entry, as the adapter's transaction does.
        inventory: InMemoryInventory::with(&[("BOOK-1", stock)]).completing(&ledger),
        ledger,
        charge_hold: HOLD,
    }
}

fn work(order: &OrderSubmitted) -> PurchaseWork {
    PurchaseWork { schema_version: 1, task_token: TaskToken::new("t"), order: order.clone(), trace_header: None }
}

const FIRST: Attempt = Attempt { number: 1, last: false };

fn statuses(p: &Subject, id: &str) -> Vec<TaskStatus> {
    p.tasks.snapshot(id).unwrap().history.iter().map(|h| h.status).collect()
}

#[tokio::test]
async fn an_approved_purchase_is_charged_once_reserved_and_completed() {
    let o = order("o-1", "tok_approve");
    let p = purchase_of(&o, 10);
    let result = p.perform(&work(&o), FIRST).await.unwrap();
    assert_eq!(result, PurchaseResult { charge_id: "ch_o-1".into(), amount: 2500, currency: "EUR".into() });
    assert_eq!(statuses(&p, "o-1"), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Completed]);
    assert_eq!(p.tasks.snapshot("o-1").unwrap().charge_id.as_deref(), Some("ch_o-1"));
    assert_eq!(p.payments.issued("/charge"), 1);
    assert_eq!(p.inventory.available("BOOK-1"), 8);
    let entry = p.ledger.of("alice", "o-1").unwrap();
    assert_eq!((entry.charged, entry.refunded, entry.status), (2500, 0, EntryStatus::Completed));
    assert_eq!((entry.charge_id.as_str(), entry.stock), ("ch_o-1", Some(StockState::Reserved)));
    assert!(entry.completed_at.is_some());
    // The entry's one write is the reservation's (write units: issue 17): no separate record.
    assert_eq!(p.ledger.record_charges.load(SeqCst), 0);
}

#[tokio::test]
async fn a_duplicate_delivery_answers_the_stored_charge_without_charging_or_reserving_again() {
    let o = order("o-2", "tok_approve");
    let p = purchase_of(&o, 10);
    let first = p.perform(&work(&o), FIRST).await.unwrap();
    let second = p.perform(&work(&o), FIRST).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(p.payments.requests(&charge_key(&tid("o-2"))), 1, "the provider saw one request");
    assert_eq!(p.inventory.available("BOOK-1"), 8, "reserved once");
    assert_eq!(statuses(&p, "o-2").len(), 3, "no second history entry");
}

#[tokio::test]
async fn a_crash_after_charging_resumes_with_the_same_key_one_charge_one_reservation() {
    let o = order("o-3", "tok_approve");
    let p = purchase_of(&o, 10);
    // The first delivery charged and reserved, then died before recording COMPLETED; its hold
    // on the charge has passed (it was past its function timeout).
    let died = Utc::now() - HOLD - chrono::Duration::seconds(1);
    p.tasks.transition(&tid("o-3"), &[TaskStatus::Received], &Change::to(TaskStatus::Charging, died).holding_charge_until(died + HOLD)).await.unwrap();
    let request = ChargeRequest {
        idempotency_key: charge_key(&tid("o-3")),
        order_id: "o-3".into(),
        amount: 2500,
        currency: "EUR".into(),
        payment_token: PaymentToken::new("tok_approve"),
    };
    p.payments.charge(&request).await.unwrap();
    p.inventory.reserve(&LedgerEntry::charged(&p.tasks.by_key(&tid("o-3")).unwrap(), "ch_o-3", &o.items), &o.items).await.unwrap();
    let result = p.perform(&work(&o), Attempt { number: 2, last: false }).await.unwrap();
    assert_eq!(result.charge_id, "ch_o-3");
    let task = p.tasks.by_key(&tid("o-3")).unwrap();
    assert!(task.charge_held_until.unwrap() > Utc::now(), "the redelivery took the charge over before charging");
    assert_eq!(p.ledger.of("alice", "o-3").unwrap().status, EntryStatus::Completed);
    assert_eq!(p.payments.issued("/charge"), 1);
    assert_eq!(p.inventory.available("BOOK-1"), 8);
    assert_eq!(p.tasks.snapshot("o-3").unwrap().status, TaskStatus::Completed);
}

#[tokio::test]
async fn a_crash_between_the_charge_and_the_reservation_leaves_no_entry_and_the_redelivery_writes_it_once() {
    let o = order("o-3b", "tok_approve");
    let p = purchase_of(&o, 10);
    // The first delivery charged, then died before its reservation (which writes the ledger
    // entry): a charge without an entry, no stock taken. Its hold has passed.
    let died = Utc::now() - HOLD - chrono::Duration::seconds(1);
    p.tasks.transition(&tid("o-3b"), &[TaskStatus::Received], &Change::to(TaskStatus::Charging, died).holding_charge_until(died + HOLD)).await.unwrap();
    let request = ChargeRequest {
        idempotency_key: charge_key(&tid("o-3b")),
        order_id: "o-3b".into(),
        amount: 2500,
        currency: "EUR".into(),
        payment_token: PaymentToken::new("tok_approve"),
    };
    p.payments.charge(&request).await.unwrap();
    assert!(p.ledger.of("alice", "o-3b").is_none());
    let result = p.perform(&work(&o), Attempt { number: 2, last: false }).await.unwrap();
    assert_eq!(result.charge_id, "ch_o-3b", "the provider's first charge, by its key");
    assert_eq!(p.payments.issued("/charge"), 1, "charged once");
    assert_eq!(p.inventory.available("BOOK-1"), 8, "reserved once");
    let entry = p.ledger.of("alice", "o-3b").unwrap();
    assert_eq!((entry.charge_id.as_str(), entry.charged, entry.status), ("ch_o-3b", 2500, EntryStatus::Completed));
    assert_eq!(p.ledger.record_charges.load(SeqCst), 0);
    assert_eq!(p.tasks.snapshot("o-3b").unwrap().status, TaskStatus::Completed);
}

#[tokio::test]
async fn a_decline_fails_the_task_with_its_reason_and_touches_no_stock() {
    let o = order("o-4", "tok_insufficient_funds");
    let p = purchase_of(&o, 10);
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert_eq!(err, StepError::failed(errors::PAYMENT_DECLINED, "insufficient_funds"));
    let task = p.tasks.snapshot("o-4").unwrap();
    assert_eq!((task.status, task.reason), (TaskStatus::Failed, Some(Reason::PaymentDeclined)));
    assert_eq!(p.perform(&work(&o), FIRST).await.unwrap_err(), err, "delivered again: same answer");
    assert_eq!(statuses(&p, "o-4"), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Failed]);
    assert_eq!(p.inventory.available("BOOK-1"), 10);
    assert!(p.ledger.entries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn out_of_stock_after_the_charge_hands_the_order_to_compensation() {
    let o = order("o-5", "tok_approve");
    let p = purchase_of(&o, 1);
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::OUT_OF_STOCK));
    let task = p.tasks.snapshot("o-5").unwrap();
    assert_eq!((task.status, task.reason), (TaskStatus::Refunding, Some(Reason::OutOfStock)));
    assert_eq!(task.charge_id.as_deref(), Some("ch_o-5"), "the charge to refund is recorded");
    assert_eq!(p.inventory.available("BOOK-1"), 1, "nothing reserved");
    let entry = p.ledger.of("alice", "o-5").unwrap();
    assert_eq!((entry.status, entry.charge_id.as_str(), entry.stock), (EntryStatus::Charged, "ch_o-5", None), "the charge's entry alone, for the compensation");
    assert_eq!(p.ledger.record_charges.load(SeqCst), 1);
    assert!(task.charge_held_until.unwrap() <= Utc::now(), "the charge is over: a compensation need not wait out the hold");
    assert_eq!(p.perform(&work(&o), FIRST).await.unwrap_err(), err, "delivered again: same answer, no second charge");
    assert_eq!(p.payments.requests(&charge_key(&tid("o-5"))), 1);
}

#[tokio::test]
async fn an_unavailable_provider_is_retried_and_then_charges_once() {
    let o = order("o-6", "tok_flaky");
    let p = purchase_of(&o, 10);
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Retry { ref error, .. } if error == errors::PAYMENT_UNAVAILABLE));
    let task = p.tasks.snapshot("o-6").unwrap();
    assert_eq!(task.status, TaskStatus::Charging);
    assert!(task.charge_held_until.unwrap() <= Utc::now(), "the failed delivery gave its hold up: the next one need not wait");
    let result = p.perform(&work(&o), Attempt { number: 2, last: false }).await.unwrap();
    assert_eq!(result.charge_id, "ch_o-6");
    assert_eq!(p.payments.issued("/charge"), 1);
}

#[tokio::test]
async fn work_for_an_unknown_task_is_a_named_conflict() {
    let o = order("o-7", "tok_approve");
    let p: Subject = Purchase {
        tasks: InMemoryTaskStore::default(),
        payments: InMemoryPayments::default(),
        ledger: InMemoryLedger::default(),
        inventory: InMemoryInventory::default(),
        charge_hold: HOLD,
    };
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::TASK_STATE_CONFLICT));
    assert_eq!(p.payments.issued("/charge"), 0);
}

#[tokio::test]
async fn what_is_charged_and_recorded_is_the_tasks_catalogue_priced_amount_not_the_messages() {
    let o = order("o-price", "tok_approve");
    let p = purchase_of(&o, 10);
    let mut task = p.tasks.snapshot("o-price").unwrap();
    task.items = o.items.clone();
    let p = Subject { tasks: InMemoryTaskStore::with([task]), ..p };
    // A message whose order says one cent a unit and a one-cent amount.
    let mut cheap = o.clone();
    cheap.items[0].unit_price = Some(1);
    cheap.amount = Some(1);
    let result = p.perform(&work(&cheap), FIRST).await.unwrap();
    assert_eq!(result.amount, 2500);
    assert_eq!(p.payments.ledger.lock().unwrap()[&charge_key(&tid("o-price"))].2, 2500, "the provider was asked for the task's amount");
    let entry = p.ledger.entries.lock().unwrap()[&tid("o-price")].clone();
    assert_eq!((entry.charged, entry.items[0].unit_price), (2500, Some(1250)));
}

/// The task id of alice's order `order_id` (every key of an order derives from it).
fn tid(order_id: &str) -> String {
    taskflow_contracts::keys::task_id("alice", order_id)
}

#[tokio::test]
async fn a_purchase_its_owner_cancelled_is_never_charged() {
    let o = order("o-cx", "tok_approve");
    let p = purchase_of(&o, 10);
    let id = taskflow_contracts::keys::task_id(&o.owner, &o.order_id);
    let cancel = Change::to(TaskStatus::Cancelled, Utc::now()).because(Reason::CancelledByOwner, None);
    assert!(matches!(p.tasks.transition(&id, &[TaskStatus::Received], &cancel).await.unwrap(), Transitioned::Applied(_)));
    for _ in 0..2 {
        let err = p.perform(&work(&o), FIRST).await.unwrap_err();
        assert!(matches!(&err, StepError::Failed { error, .. } if error == errors::ORDER_CANCELLED), "{err:?}");
    }
    assert_eq!(p.payments.issued("/charge"), 0);
    assert_eq!(p.inventory.available("BOOK-1"), 10);
    assert_eq!(p.tasks.by_key(&id).unwrap().status, TaskStatus::Cancelled);
}

#[tokio::test]
async fn the_move_to_charging_holds_the_charge_for_the_delivery_in_the_same_write() {
    let o = order("o-hold", "tok_approve");
    let p = purchase_of(&o, 10);
    let before = Utc::now();
    p.perform(&work(&o), FIRST).await.unwrap();
    let task = p.tasks.snapshot("o-hold").unwrap();
    let held = task.charge_held_until.expect("the charge was held");
    assert!(held >= before + HOLD && held <= Utc::now() + HOLD, "{held}");
    assert_eq!(statuses(&p, "o-hold"), [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Completed]);
}

#[tokio::test]
async fn a_concurrent_delivery_finds_the_charge_held_and_is_told_to_come_back_without_charging() {
    let o = order("o-busy", "tok_approve");
    let p = purchase_of(&o, 10);
    // A live delivery moved the task to CHARGING a moment ago and is charging right now.
    let now = Utc::now();
    p.tasks.transition(&tid("o-busy"), &[TaskStatus::Received], &Change::to(TaskStatus::Charging, now).holding_charge_until(now + HOLD)).await.unwrap();
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Retry { ref error, .. } if error == errors::STEP_IN_PROGRESS), "{err:?}");
    assert_eq!(p.payments.requests(&charge_key(&tid("o-busy"))), 0, "nothing charged by the second delivery");
    assert_eq!(p.tasks.snapshot("o-busy").unwrap().charge_held_until, Some(now + HOLD), "the hold stays the live delivery's");
    assert_eq!(p.inventory.available("BOOK-1"), 10);
}

#[tokio::test]
async fn of_two_deliveries_finding_an_expired_hold_one_takes_the_charge_over() {
    let o = order("o-race", "tok_approve");
    let p = purchase_of(&o, 10);
    let died = Utc::now() - HOLD - chrono::Duration::seconds(1);
    let old = died + HOLD;
    p.tasks.transition(&tid("o-race"), &[TaskStatus::Received], &Change::to(TaskStatus::Charging, died).holding_charge_until(old)).await.unwrap();
    // Both read the expired hold; the take-over is conditional on it, so only one applies.
    let now = Utc::now();
    assert!(matches!(p.tasks.hold_charge(&tid("o-race"), Some(old), now + HOLD).await.unwrap(), Transitioned::Applied(_)));
    assert!(matches!(p.tasks.hold_charge(&tid("o-race"), Some(old), now + HOLD).await.unwrap(), Transitioned::Conflict(_)));
    // A delivery arriving now finds the winner's hold: busy, nothing charged.
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Retry { ref error, .. } if error == errors::STEP_IN_PROGRESS), "{err:?}");
    assert_eq!(p.payments.requests(&charge_key(&tid("o-race"))), 0);
    // No hold can be taken on a task that left CHARGING (a compensation fenced it).
    let fence = Change::to(TaskStatus::Refunding, Utc::now()).because(Reason::TimedOut, None);
    p.tasks.transition(&tid("o-race"), &[TaskStatus::Charging], &fence).await.unwrap();
    let held = p.tasks.by_key(&tid("o-race")).unwrap().charge_held_until;
    assert!(matches!(p.tasks.hold_charge(&tid("o-race"), held, Utc::now() + HOLD).await.unwrap(), Transitioned::Conflict(_)));
    assert!(p.perform(&work(&o), FIRST).await.is_err());
    assert_eq!(p.payments.requests(&charge_key(&tid("o-race"))), 0, "a fenced task is never charged");
}

#[tokio::test]
async fn a_delivery_after_a_compensation_fenced_the_task_charges_nothing() {
    let o = order("o-late", "tok_approve");
    let p = purchase_of(&o, 10);
    let fence = Change::to(TaskStatus::Refunding, Utc::now()).because(Reason::TimedOut, None);
    p.tasks.transition(&tid("o-late"), &[TaskStatus::Received], &fence).await.unwrap();
    let err = p.perform(&work(&o), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::TASK_STATE_CONFLICT), "{err:?}");
    assert_eq!(p.payments.requests(&charge_key(&tid("o-late"))), 0);
    assert_eq!(p.inventory.available("BOOK-1"), 10);
}
