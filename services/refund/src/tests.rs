use super::*;
use taskflow_contracts::{OrderItem, OrderKind, PaymentToken, TaskToken};
use taskflow_shared::fakes::{InMemoryInventory, InMemoryLedger, InMemoryPayments, InMemoryTaskStore};

type Subject = Refunds<InMemoryTaskStore, InMemoryPayments, InMemoryLedger, InMemoryInventory>;

fn entry(order_id: &str, owner: &str, status: EntryStatus, completed_days_ago: i64) -> LedgerEntry {
    LedgerEntry {
        task_id: taskflow_contracts::keys::task_id(owner, order_id),
        order_id: order_id.into(),
        owner: owner.into(),
        currency: "EUR".into(),
        charge_id: format!("ch_{order_id}"),
        charged: 10_000,
        refunded: 0,
        refunds: Default::default(),
        items: vec![OrderItem { sku: "BOOK-1".into(), quantity: 2, unit_price: Some(5_000) }],
        status,
        stock: None,
        shards: Vec::new(),
        charged_at: Utc::now() - Duration::days(completed_days_ago),
        completed_at: (status == EntryStatus::Completed).then(|| Utc::now() - Duration::days(completed_days_ago)),
    }
}

fn refund_order(id: &str, owner: &str, of: &str, amount: Option<Money>) -> OrderSubmitted {
    OrderSubmitted {
        schema_version: 1,
        order_id: id.into(),
        owner: owner.into(),
        kind: OrderKind::Refund,
        items: vec![],
        currency: "EUR".into(),
        payment_token: None,
        refund_of: Some(of.into()),
        amount,
        attachments: Vec::new(),
    }
}

fn received(order: &OrderSubmitted) -> TaskRecord {
    let mut t = TaskRecord::new(&order.order_id, &order.owner, TaskStatus::Received, None, Utc::now());
    t.kind = Some(order.kind);
    t.currency = "EUR".into();
    t.amount = order.amount.unwrap_or(0);
    t
}

fn subject(orders: &[&OrderSubmitted], entries: Vec<LedgerEntry>) -> Subject {
    let ledger = InMemoryLedger::default();
    ledger.entries.lock().unwrap().extend(entries.into_iter().map(|e| (e.task_id.clone(), e)));
    Refunds {
        tasks: InMemoryTaskStore::with(orders.iter().map(|o| received(o))),
        payments: InMemoryPayments::default(),
        // A reservation completes the ledger entry, as the adapter's transaction does.
        inventory: InMemoryInventory::with(&[("BOOK-1", 10)]).completing(&ledger),
        ledger,
        window: Duration::days(30),
        once: Box::new(taskflow_shared::idempotency::InMemoryIdempotency::default()),
        approval_thresholds: ApprovalThresholds::default(),
    }
}

fn work(order: &OrderSubmitted, purpose: RefundPurpose) -> RefundWork {
    RefundWork { schema_version: 1, task_token: TaskToken::new("t"), purpose, order: order.clone(), failure: None, trace_header: None }
}

const FIRST: Attempt = Attempt { number: 1, last: false };

#[tokio::test]
async fn a_full_refund_completes_once_and_uses_up_the_order() {
    let r = refund_order("r-1", "alice", "p-1", None);
    let s = subject(&[&r], vec![entry("p-1", "alice", EntryStatus::Completed, 1)]);
    let result = s.perform(&work(&r, RefundPurpose::Refund), FIRST).await.unwrap();
    assert_eq!(result.amount, 10_000);
    let again = s.perform(&work(&r, RefundPurpose::Refund), FIRST).await.unwrap();
    assert_eq!(again, result, "a duplicate answers the stored refund");
    assert_eq!(s.payments.issued("/refund"), 1);
    let task = s.tasks.snapshot("r-1").unwrap();
    assert_eq!(task.history.iter().map(|h| h.status).collect::<Vec<_>>(), [TaskStatus::Received, TaskStatus::Refunding, TaskStatus::Completed]);
    assert_eq!((task.amount, task.refunded), (10_000, 10_000));
    assert_eq!(s.ledger.of("alice", "p-1").unwrap().refunded, 10_000);
}

#[tokio::test]
async fn partial_refunds_add_up_and_the_one_that_does_not_fit_is_rejected() {
    let a = refund_order("r-a", "alice", "p-1", Some(3_000));
    let b = refund_order("r-b", "alice", "p-1", Some(6_000));
    let c = refund_order("r-c", "alice", "p-1", Some(2_000));
    let s = subject(&[&a, &b, &c], vec![entry("p-1", "alice", EntryStatus::Completed, 1)]);
    s.perform(&work(&a, RefundPurpose::Refund), FIRST).await.unwrap();
    s.perform(&work(&b, RefundPurpose::Refund), FIRST).await.unwrap();
    let err = s.perform(&work(&c, RefundPurpose::Refund), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::REFUND_REJECTED));
    let rejected = s.tasks.snapshot("r-c").unwrap();
    assert_eq!((rejected.status, rejected.reason), (TaskStatus::Rejected, Some(Reason::AmountExceedsRefundable)));
    let e = s.ledger.of("alice", "p-1").unwrap();
    assert_eq!((e.refunded, e.refundable()), (9_000, 1_000));
    assert_eq!(s.payments.issued("/refund"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_never_exceed_the_order() {
    let orders: Vec<_> = (0..6).map(|i| refund_order(&format!("r-{i}"), "alice", "p-1", Some(4_000))).collect();
    let s = std::sync::Arc::new(subject(&orders.iter().collect::<Vec<_>>(), vec![entry("p-1", "alice", EntryStatus::Completed, 1)]));
    let handles: Vec<_> = orders
        .iter()
        .map(|o| {
            let (s, w) = (s.clone(), work(o, RefundPurpose::Refund));
            tokio::spawn(async move { s.perform(&w, FIRST).await })
        })
        .collect();
    let mut completed = 0;
    for h in handles {
        completed += usize::from(h.await.unwrap().is_ok());
    }
    assert_eq!(completed, 2, "4000 fits twice into 10000");
    assert_eq!(s.ledger.of("alice", "p-1").unwrap().refunded, 8_000);
    assert_eq!(s.payments.issued("/refund"), 2);
}

#[test]
fn each_broken_rule_has_its_reason() {
    let now = Utc::now();
    let window = Duration::days(30);
    let order = refund_order("r", "alice", "p", Some(500));
    let done = entry("p", "alice", EntryStatus::Completed, 1);
    assert_eq!(check(&order, Some(&done), window, now), Ok(500));
    assert_eq!(check(&order, None, window, now), Err(Reason::OrderNotFound));
    assert_eq!(check(&order, Some(&entry("p", "bob", EntryStatus::Completed, 1)), window, now), Err(Reason::NotOwner));
    assert_eq!(check(&order, Some(&entry("p", "alice", EntryStatus::Charged, 1)), window, now), Err(Reason::NotRefundable));
    assert_eq!(check(&order, Some(&entry("p", "alice", EntryStatus::Compensated, 1)), window, now), Err(Reason::NotRefundable));
    assert_eq!(check(&order, Some(&entry("p", "alice", EntryStatus::Completed, 31)), window, now), Err(Reason::WindowExpired));
    let mut dollars = order.clone();
    dollars.currency = "USD".into();
    assert_eq!(check(&dollars, Some(&done), window, now), Err(Reason::CurrencyMismatch));
    let too_much = refund_order("r", "alice", "p", Some(10_001));
    assert_eq!(check(&too_much, Some(&done), window, now), Err(Reason::AmountExceedsRefundable));
    let mut used_up = done.clone();
    used_up.refunded = used_up.charged;
    assert_eq!(check(&refund_order("r", "alice", "p", None), Some(&used_up), window, now), Err(Reason::NotRefundable));
}

#[tokio::test]
async fn a_refund_of_someone_elses_order_is_not_found_in_the_refunders_scope_and_pays_nothing() {
    // Order ids are scoped per owner: mallory's `refundOf: p-1` names her own p-1, which does
    // not exist; alice's p-1 is not hers to see (not even as NOT_OWNER, which would reveal it).
    let r = refund_order("r-x", "mallory", "p-1", None);
    let s = subject(&[&r], vec![entry("p-1", "alice", EntryStatus::Completed, 1)]);
    let err = s.perform(&work(&r, RefundPurpose::Refund), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::REFUND_REJECTED));
    assert_eq!(s.tasks.snapshot("r-x").unwrap().reason, Some(Reason::OrderNotFound));
    assert_eq!(s.payments.issued("/refund"), 0);
    assert_eq!(s.ledger.of("alice", "p-1").unwrap().refunded, 0);
}

#[tokio::test]
async fn compensation_refunds_the_whole_charge_releases_stock_and_fails_the_purchase() {
    let purchase = OrderSubmitted {
        kind: OrderKind::Purchase,
        items: vec![OrderItem { sku: "BOOK-1".into(), quantity: 2, unit_price: Some(5_000) }],
        payment_token: Some(PaymentToken::new("tok_approve")),
        refund_of: None,
        amount: None,
        ..refund_order("p-9", "alice", "", None)
    };
    let s = subject(&[], vec![entry("p-9", "alice", EntryStatus::Charged, 0)]);
    let mut task = received(&purchase);
    task.amount = 10_000;
    Change::to(TaskStatus::Charging, Utc::now()).apply(&mut task);
    Change::to(TaskStatus::Refunding, Utc::now()).because(Reason::OutOfStock, Some("BOOK-1".into())).with_charge("ch_p-9").apply(&mut task);
    let s = Refunds { tasks: InMemoryTaskStore::with([task]), ..s };
    charge(&s, "p-9", 10_000).await;
    // Say a reservation did happen before (a partial failure elsewhere): it must come back.
    let entry = s.ledger.of("alice", "p-9").unwrap();
    s.inventory.reserve(&entry, &purchase.items).await.unwrap();
    assert_eq!(s.inventory.available("BOOK-1"), 8);

    let result = s.perform(&work(&purchase, RefundPurpose::Compensation), FIRST).await.unwrap();
    assert_eq!(result.amount, 10_000);
    assert_eq!(s.inventory.available("BOOK-1"), 10);
    let done = s.tasks.snapshot("p-9").unwrap();
    assert_eq!((done.status, done.reason, done.refunded), (TaskStatus::Failed, Some(Reason::OutOfStock), 10_000));
    let e = s.ledger.of("alice", "p-9").unwrap();
    assert_eq!((e.status, e.refunded), (EntryStatus::Compensated, 10_000));
    // Delivered again: nothing moves twice.
    assert_eq!(s.perform(&work(&purchase, RefundPurpose::Compensation), FIRST).await.unwrap(), result);
    assert_eq!(s.inventory.available("BOOK-1"), 10);
    assert_eq!(s.payments.issued("/compensation"), 1);
}

fn purchase_order(id: &str) -> OrderSubmitted {
    OrderSubmitted {
        kind: OrderKind::Purchase,
        items: vec![OrderItem { sku: "BOOK-1".into(), quantity: 2, unit_price: Some(5_000) }],
        payment_token: Some(PaymentToken::new("tok_approve")),
        refund_of: None,
        amount: None,
        ..refund_order(id, "alice", "", None)
    }
}

/// The provider charges `order_id` under its charge key, as a purchase does.
async fn charge(s: &Subject, order_id: &str, amount: Money) {
    let request = taskflow_shared::payments::ChargeRequest {
        idempotency_key: taskflow_shared::payments::charge_key(&tid(order_id)),
        order_id: order_id.into(),
        amount,
        currency: "EUR".into(),
        payment_token: PaymentToken::new("tok_approve"),
    };
    s.payments.charge(&request).await.unwrap();
}

/// How long a purchase delivery holds the charge in these tests.
const HOLD: Duration = Duration::seconds(15);

/// A purchase task stopped in CHARGING (its delivery died, or its retries ran out): the hold of
/// its last delivery on the charge has passed.
fn charging(order: &OrderSubmitted) -> TaskRecord {
    let at = Utc::now() - HOLD - Duration::seconds(1);
    held_since(order, at)
}

/// A purchase task a delivery moved to CHARGING at `at`, holding the charge for `HOLD` from then.
fn held_since(order: &OrderSubmitted, at: DateTime<Utc>) -> TaskRecord {
    let mut task = received(order);
    task.amount = 10_000;
    Change::to(TaskStatus::Charging, at).holding_charge_until(at + HOLD).apply(&mut task);
    task
}

fn compensation(order: &OrderSubmitted, error: &str) -> RefundWork {
    RefundWork { failure: Some(StepFailure { error: error.into(), cause: None }), ..work(order, RefundPurpose::Compensation) }
}

#[tokio::test]
async fn a_purchase_that_died_after_charging_is_refunded_though_it_wrote_no_ledger_entry() {
    let purchase = purchase_order("p-dead");
    let s = Refunds { tasks: InMemoryTaskStore::with([charging(&purchase)]), ..subject(&[], vec![]) };
    charge(&s, "p-dead", 10_000).await;

    let result = s.perform(&compensation(&purchase, "States.Timeout"), FIRST).await.unwrap();
    assert_eq!(result.amount, 10_000);
    let done = s.tasks.snapshot("p-dead").unwrap();
    assert_eq!((done.status, done.reason, done.refunded), (TaskStatus::Failed, Some(Reason::TimedOut), 10_000));
    let e = s.ledger.of("alice", "p-dead").unwrap();
    assert_eq!((e.status, e.charged, e.refunded), (EntryStatus::Compensated, 10_000, 10_000));
    assert_eq!(s.payments.issued("/compensation"), 1);
    assert_eq!(s.inventory.available("BOOK-1"), 10, "nothing was reserved, nothing moves");
    // And a purchase delivery arriving late can take nothing: the stock is closed.
    assert_eq!(s.inventory.reserve(&e, &purchase.items).await.unwrap(), taskflow_shared::inventory::Reserved::Fenced);
    assert_eq!(s.inventory.available("BOOK-1"), 10);
}

#[tokio::test]
async fn a_purchase_that_charged_nothing_fails_with_its_reason_and_can_charge_no_more() {
    let purchase = purchase_order("p-none");
    let s = Refunds { tasks: InMemoryTaskStore::with([charging(&purchase)]), ..subject(&[], vec![]) };

    let result = s.perform(&compensation(&purchase, errors::PAYMENT_UNAVAILABLE), FIRST).await.unwrap();
    assert_eq!(result.amount, 0);
    let done = s.tasks.snapshot("p-none").unwrap();
    assert_eq!((done.status, done.reason, done.refund_id), (TaskStatus::Failed, Some(Reason::PaymentUnavailable), None));
    assert_eq!(s.payments.issued("/compensation"), 0);
    // A purchase delivery arriving late finds the charge closed, not free to charge: the task
    // cannot go to CHARGING again, nor can its charge be held anew.
    let id = tid("p-none");
    let again = Change::to(TaskStatus::Charging, Utc::now()).holding_charge_until(Utc::now() + HOLD);
    assert!(matches!(s.tasks.transition(&id, &[TaskStatus::Received], &again).await.unwrap(), Transitioned::Conflict(_)));
    let held = s.tasks.by_key(&id).unwrap().charge_held_until;
    assert!(matches!(s.tasks.hold_charge(&id, held, Utc::now() + HOLD).await.unwrap(), Transitioned::Conflict(_)));
}

#[tokio::test]
async fn a_compensation_waits_for_a_charge_in_progress() {
    let purchase = purchase_order("p-busy");
    // A live purchase delivery moved the task to CHARGING a moment ago: it holds the charge.
    let s = Refunds { tasks: InMemoryTaskStore::with([held_since(&purchase, Utc::now())]), ..subject(&[], vec![]) };

    let err = s.perform(&compensation(&purchase, "States.Timeout"), FIRST).await.unwrap_err();
    match &err {
        StepError::Retry { error, after: Some(after), .. } => {
            assert_eq!(error, errors::CHARGE_IN_PROGRESS);
            assert!((1..=HOLD.num_seconds() as u32 + 1).contains(after), "retried once the hold is over: {after}");
        }
        other => panic!("{other:?}"),
    }
    // Fenced meanwhile: the task is REFUNDING, so no purchase delivery starts anything new.
    let fenced = s.tasks.snapshot("p-busy").unwrap();
    assert_eq!(fenced.status, TaskStatus::Refunding);
    assert_eq!(s.payments.issued("/compensation"), 0, "nothing refunded while the charge may still happen");
    // Delivered again while the hold lasts: still waiting, the fence kept.
    let again = s.perform(&compensation(&purchase, "States.Timeout"), FIRST).await.unwrap_err();
    assert!(matches!(again, StepError::Retry { ref error, .. } if error == errors::CHARGE_IN_PROGRESS), "{again:?}");

    // The holder charges (and can record nothing: the task is fenced), then its hold passes.
    charge(&s, "p-busy", 10_000).await;
    let mut later = fenced;
    later.charge_held_until = Some(Utc::now() - Duration::seconds(1));
    let s = Refunds { tasks: InMemoryTaskStore::with([later]), ..s };
    // The next delivery of the compensation finds the charge and refunds it.
    let result = s.perform(&compensation(&purchase, "States.Timeout"), FIRST).await.unwrap();
    assert_eq!(result.amount, 10_000);
    assert_eq!(s.tasks.snapshot("p-busy").unwrap().status, TaskStatus::Failed);
    assert_eq!(s.payments.issued("/compensation"), 1);
}

#[tokio::test]
async fn a_task_moved_to_charging_before_the_charge_hold_existed_is_held_from_its_charging_time() {
    // Written by older code: CHARGING, but no `chargeHeldUntil` on the record.
    let purchase = purchase_order("p-old");
    let mut recent = held_since(&purchase, Utc::now());
    recent.charge_held_until = None;
    let s = Refunds { tasks: InMemoryTaskStore::with([recent]), ..subject(&[], vec![]) };
    let err = s.perform(&compensation(&purchase, "States.Timeout"), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Retry { ref error, after: Some(_), .. } if error == errors::CHARGE_IN_PROGRESS), "{err:?}");
    assert_eq!(s.payments.issued("/compensation"), 0, "a delivery of the old code may still be charging");

    // Moved to CHARGING longer than a hold ago: its delivery is past its timeout.
    let mut old = charging(&purchase);
    old.charge_held_until = None;
    let s = Refunds { tasks: InMemoryTaskStore::with([old]), ..s };
    charge(&s, "p-old", 10_000).await;
    let result = s.perform(&compensation(&purchase, "States.Timeout"), FIRST).await.unwrap();
    assert_eq!(result.amount, 10_000);
    assert_eq!(s.payments.issued("/compensation"), 1);
}

#[tokio::test]
async fn a_compensation_after_the_hold_refunds_what_the_dead_holder_charged_at_once() {
    let purchase = purchase_order("p-after");
    // The delivery that held the charge died after charging; its hold has passed.
    let s = Refunds { tasks: InMemoryTaskStore::with([charging(&purchase)]), ..subject(&[], vec![]) };
    charge(&s, "p-after", 10_000).await;
    let result = s.perform(&compensation(&purchase, "States.Timeout"), FIRST).await.unwrap();
    assert_eq!(result.amount, 10_000);
    assert_eq!(s.tasks.snapshot("p-after").unwrap().status, TaskStatus::Failed);
    assert_eq!(s.payments.issued("/compensation"), 1);
}

#[tokio::test]
async fn a_compensation_after_out_of_stock_need_not_wait_for_the_purchase_that_ended_its_charge() {
    let purchase = purchase_order("p-oos");
    let mut task = held_since(&purchase, Utc::now());
    // The purchase charged, found no stock, and handed the order over, ending its hold.
    let now = Utc::now();
    Change::to(TaskStatus::Refunding, now).because(Reason::OutOfStock, None).with_charge("ch_p-oos").holding_charge_until(now).apply(&mut task);
    let s = Refunds { tasks: InMemoryTaskStore::with([task]), ..subject(&[], vec![]) };
    charge(&s, "p-oos", 10_000).await;
    let result = s.perform(&compensation(&purchase, errors::OUT_OF_STOCK), FIRST).await.unwrap();
    assert_eq!(result.amount, 10_000);
    let done = s.tasks.snapshot("p-oos").unwrap();
    assert_eq!((done.status, done.reason), (TaskStatus::Failed, Some(Reason::OutOfStock)));
}

/// The task id of alice's order `order_id` (every key of an order derives from it).
fn tid(order_id: &str) -> String {
    taskflow_contracts::keys::task_id("alice", order_id)
}

#[tokio::test]
async fn two_owners_with_one_order_id_each_refund_their_own() {
    let (a, b) = (refund_order("r-a", "alice", "p-1", Some(1_000)), refund_order("r-b", "bob", "p-1", Some(2_000)));
    let s = subject(&[&a, &b], vec![entry("p-1", "alice", EntryStatus::Completed, 1), entry("p-1", "bob", EntryStatus::Completed, 1)]);
    s.perform(&work(&a, RefundPurpose::Refund), FIRST).await.unwrap();
    s.perform(&work(&b, RefundPurpose::Refund), FIRST).await.unwrap();
    assert_eq!(s.ledger.of("alice", "p-1").unwrap().refunded, 1_000);
    assert_eq!(s.ledger.of("bob", "p-1").unwrap().refunded, 2_000);
}

#[tokio::test]
async fn refunds_of_one_order_stop_at_the_bound_with_a_named_reason() {
    use taskflow_contracts::limits::MAX_REFUNDS_PER_ORDER;
    let last = refund_order("r-last", "alice", "p-1", Some(1));
    let over = refund_order("r-over", "alice", "p-1", Some(1));
    let mut original = entry("p-1", "alice", EntryStatus::Completed, 1);
    // MAX - 1 small refunds already applied.
    for i in 0..MAX_REFUNDS_PER_ORDER - 1 {
        original.refunds.insert(format!("r-{i}"), 1);
        original.refunded += 1;
    }
    let s = subject(&[&last, &over], vec![original]);
    s.perform(&work(&last, RefundPurpose::Refund), FIRST).await.unwrap();
    let err = s.perform(&work(&over, RefundPurpose::Refund), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::REFUND_REJECTED));
    let rejected = s.tasks.snapshot("r-over").unwrap();
    assert_eq!((rejected.status, rejected.reason), (TaskStatus::Rejected, Some(Reason::TooManyRefunds)));
    let e = s.ledger.entries.lock().unwrap()[&tid("p-1")].clone();
    assert_eq!(e.refunds.len(), MAX_REFUNDS_PER_ORDER);
    assert_eq!(s.payments.issued("/refund"), 1, "the refused refund paid nothing");

    // The ledger holds the bound under concurrency too (check passed, then another refund won),
    // and never refuses a compensation for it.
    assert_eq!(s.ledger.apply_refund(&tid("p-1"), "r-late", RefundAmount::Exactly(1), EntryStatus::Completed, EntryStatus::Completed).await.unwrap(), Applied::TooManyRefunds);
    assert_eq!(s.ledger.apply_refund(&tid("p-1"), COMPENSATION, RefundAmount::Exactly(1), EntryStatus::Completed, EntryStatus::Compensated).await.unwrap(), Applied::Applied { amount: 1 });
}

#[test]
fn approval_thresholds_read_per_currency_and_refuse_what_is_not_one() {
    let t = ApprovalThresholds::parse("EUR=10000, USD=5000").unwrap();
    assert!(!t.requires_approval("EUR", 10_000) && t.requires_approval("EUR", 10_001));
    assert!(t.requires_approval("USD", 5_001) && !t.requires_approval("GBP", 1_000_000));
    assert_eq!(ApprovalThresholds::parse("").unwrap(), ApprovalThresholds::default());
    for bad in ["EUR", "eur=1", "EUR=1.50", "EURO=1", "EUR=-1"] {
        assert!(ApprovalThresholds::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_refund_above_the_threshold_waits_for_an_approval_recorded_on_its_task() {
    let r = refund_order("r-big", "alice", "p-1", None);
    let mut s = subject(&[&r], vec![entry("p-1", "alice", EntryStatus::Completed, 1)]);
    s.approval_thresholds = ApprovalThresholds::parse("EUR=5000").unwrap();
    let err = s.perform(&work(&r, RefundPurpose::Refund), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::APPROVAL_REQUIRED), "{err:?}");
    assert_eq!(s.payments.issued("/refund"), 0, "nothing refunded before the decision");
    let waiting = s.tasks.snapshot("r-big").unwrap();
    assert_eq!((waiting.status, waiting.amount), (TaskStatus::AwaitingApproval, 10_000));

    // A duplicate delivery, or a message claiming approval, is not enough: only the task's record.
    let id = tid_of("alice", "r-big");
    let err = s.perform(&work(&r, RefundPurpose::Refund), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::APPROVAL_REQUIRED), "{err:?}");

    let decision = taskflow_contracts::ApprovalDecision { decision: Decision::Approved, by: "olga".into(), at: Utc::now(), reason: None, amount: 10_000 };
    s.tasks.note(&id, &taskflow_shared::tasks::Note::Approval(decision)).await.unwrap();
    let result = s.perform(&work(&r, RefundPurpose::Refund), FIRST).await.unwrap();
    assert_eq!(result.amount, 10_000);
    let task = s.tasks.snapshot("r-big").unwrap();
    assert_eq!(
        task.history.iter().map(|h| h.status).collect::<Vec<_>>(),
        [TaskStatus::Received, TaskStatus::AwaitingApproval, TaskStatus::Refunding, TaskStatus::Completed]
    );
    assert_eq!(task.approval.unwrap().by, "olga");
}

fn tid_of(owner: &str, order_id: &str) -> String {
    keys::task_id(owner, order_id).as_str().to_string()
}

#[tokio::test]
async fn a_late_compensation_of_a_cancelled_purchase_has_nothing_to_undo() {
    let purchase = OrderSubmitted {
        kind: OrderKind::Purchase,
        items: vec![OrderItem { sku: "BOOK-1".into(), quantity: 2, unit_price: Some(5_000) }],
        payment_token: Some(PaymentToken::new("tok_approve")),
        refund_of: None,
        amount: None,
        ..refund_order("p-cx", "alice", "", None)
    };
    let mut task = received(&purchase);
    Change::to(TaskStatus::Cancelled, Utc::now()).because(Reason::CancelledByOwner, None).apply(&mut task);
    let s = Refunds { tasks: InMemoryTaskStore::with([task]), ..subject(&[], vec![]) };
    let result = s.perform(&compensation(&purchase, taskflow_contracts::errors::ORDER_CANCELLED), FIRST).await.unwrap();
    assert_eq!(result.amount, 0);
    assert_eq!(s.payments.issued("/compensation"), 0);
    assert_eq!(s.inventory.available("BOOK-1"), 10);
    assert_eq!(s.tasks.snapshot("p-cx").unwrap().status, TaskStatus::Cancelled, "stays CANCELLED");
}

/// The in-memory ledger, where a partial refund of the same order (`r-part`, applied straight to
/// the ledger) lands right after the first read of the original's entry: a refund processed at
/// the same moment as the one under test, between its check and its ledger write.
struct RefundedMeanwhile {
    inner: InMemoryLedger,
    partial: std::sync::Mutex<Option<(String, Money)>>,
}

#[async_trait]
impl Ledger for RefundedMeanwhile {
    async fn get(&self, order_id: &str) -> Result<Option<LedgerEntry>, taskflow_shared::ledger::LedgerError> {
        let entry = self.inner.get(order_id).await?;
        let partial = self.partial.lock().unwrap().take_if(|(of, _)| of == order_id);
        if let Some((of, amount)) = partial {
            let applied = self.inner.apply_refund(&of, "r-part", RefundAmount::Exactly(amount), EntryStatus::Completed, EntryStatus::Completed).await?;
            assert_eq!(applied, Applied::Applied { amount });
        }
        Ok(entry)
    }
    async fn record_charge(&self, entry: &LedgerEntry) -> Result<(), taskflow_shared::ledger::LedgerError> {
        self.inner.record_charge(entry).await
    }
    async fn complete(&self, order_id: &str, at: DateTime<Utc>) -> Result<(), taskflow_shared::ledger::LedgerError> {
        self.inner.complete(order_id, at).await
    }
    async fn apply_refund(&self, order_id: &str, refund_id: &str, amount: RefundAmount, allowed: EntryStatus, then: EntryStatus) -> Result<Applied, taskflow_shared::ledger::LedgerError> {
        self.inner.apply_refund(order_id, refund_id, amount, allowed, then).await
    }
}

/// `subject`, with a partial refund of `partial` landing on `p-1` between the check and the
/// ledger write of the refund performed.
fn with_partial_refund_meanwhile(s: Subject, partial: Money) -> Refunds<InMemoryTaskStore, InMemoryPayments, RefundedMeanwhile, InMemoryInventory> {
    let Refunds { tasks, payments, ledger, inventory, window, once, approval_thresholds } = s;
    let partial = std::sync::Mutex::new(Some((tid("p-1"), partial)));
    Refunds { tasks, payments, ledger: RefundedMeanwhile { inner: ledger, partial }, inventory, window, once, approval_thresholds }
}

#[tokio::test]
async fn a_refund_without_an_amount_takes_what_is_left_when_it_is_applied_not_when_it_was_checked() {
    let all = refund_order("r-all", "alice", "p-1", None);
    let s = with_partial_refund_meanwhile(subject(&[&all], vec![entry("p-1", "alice", EntryStatus::Completed, 1)]), 3_000);
    let result = s.perform(&work(&all, RefundPurpose::Refund), FIRST).await.expect("what is left is refunded, not rejected");
    assert_eq!(result.amount, 7_000);
    let task = s.tasks.snapshot("r-all").unwrap();
    assert_eq!((task.status, task.amount, task.refunded), (TaskStatus::Completed, 7_000, 7_000));
    let e = s.ledger.inner.of("alice", "p-1").unwrap();
    assert_eq!((e.refunded, e.refunds.get(&tid("r-all")).copied()), (10_000, Some(7_000)), "never more than was charged");
    assert_eq!(s.payments.ledger.lock().unwrap()[&format!("{}/refund", tid("r-all"))].2, 7_000, "the provider refunds what the ledger applied");

    // At-least-once: a redelivery refunds nothing more.
    let again = s.perform(&work(&all, RefundPurpose::Refund), FIRST).await.unwrap();
    assert_eq!(again, result);
    assert_eq!(s.ledger.inner.of("alice", "p-1").unwrap().refunded, 10_000);
    assert_eq!(s.payments.issued("/refund"), 1);
}

#[tokio::test]
async fn a_refund_without_an_amount_that_finds_nothing_left_is_rejected_by_name_and_pays_nothing() {
    let all = refund_order("r-all", "alice", "p-1", None);
    let s = with_partial_refund_meanwhile(subject(&[&all], vec![entry("p-1", "alice", EntryStatus::Completed, 1)]), 10_000);
    let err = s.perform(&work(&all, RefundPurpose::Refund), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::REFUND_REJECTED), "{err:?}");
    let task = s.tasks.snapshot("r-all").unwrap();
    assert_eq!((task.status, task.reason), (TaskStatus::Rejected, Some(Reason::NotRefundable)));
    assert_eq!(task.amount, 0, "it refunds nothing; not the balance its check had found");
    assert_eq!(s.ledger.inner.of("alice", "p-1").unwrap().refunded, 10_000);
    assert_eq!(s.payments.issued("/refund"), 0);
}

#[tokio::test]
async fn the_ledger_applies_a_balance_once_and_answers_a_repeat_with_the_amount_it_applied() {
    let s = subject(&[], vec![entry("p-1", "alice", EntryStatus::Completed, 1)]);
    let (completed, key) = (EntryStatus::Completed, tid("p-1"));
    assert_eq!(s.ledger.apply_refund(&key, "r-part", RefundAmount::Exactly(2_500), completed, completed).await.unwrap(), Applied::Applied { amount: 2_500 });
    assert_eq!(s.ledger.apply_refund(&key, "r-all", RefundAmount::Balance, completed, completed).await.unwrap(), Applied::Applied { amount: 7_500 });
    assert_eq!(s.ledger.apply_refund(&key, "r-all", RefundAmount::Balance, completed, completed).await.unwrap(), Applied::AlreadyApplied { amount: 7_500 });
    assert_eq!(s.ledger.apply_refund(&key, "r-more", RefundAmount::Balance, completed, completed).await.unwrap(), Applied::NothingRefundable);
    assert_eq!(s.ledger.of("alice", "p-1").unwrap().refunded, 10_000);
}
