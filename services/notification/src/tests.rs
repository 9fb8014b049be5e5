use super::*;
use notifier::DeliveryError;
use receipt::Receipt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use taskflow_contracts::{OrderKind, TaskToken};
use taskflow_shared::fakes::InMemoryTaskStore;
use taskflow_shared::tasks::TaskRecord;

#[derive(Default)]
struct FakeMail {
    stored: Mutex<Vec<Receipt>>,
    sent: Mutex<Vec<Notice>>,
    down: AtomicBool,
}

#[async_trait]
impl ReceiptStore for &FakeMail {
    async fn store(&self, receipt: &Receipt) -> Result<(), DeliveryError> {
        self.stored.lock().unwrap().push(receipt.clone());
        Ok(())
    }
}

#[async_trait]
impl Notifier for &FakeMail {
    async fn send(&self, notice: &Notice) -> Result<(), DeliveryError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(DeliveryError("smtp down".into()));
        }
        self.sent.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

fn task(status: TaskStatus) -> TaskRecord {
    let mut t = TaskRecord::new("o-1", "alice", TaskStatus::Received, None, Utc::now());
    t.kind = Some(OrderKind::Purchase);
    t.amount = 2500;
    t.currency = "EUR".into();
    if status != TaskStatus::Received {
        Change::to(status, Utc::now()).apply(&mut t);
    }
    t
}

fn work(outcome: Outcome, error: Option<&str>) -> NotificationWork {
    NotificationWork {
        schema_version: 1,
        task_token: TaskToken::new("t"),
        order_id: "o-1".into(),
        owner: "alice".into(),
        kind: OrderKind::Purchase,
        outcome,
        failure: error.map(|e| StepFailure { error: e.into(), cause: None }),
        trace_header: None,
    }
}

const FIRST: Attempt = Attempt { number: 1, last: false };

fn subject(mail: &FakeMail, t: TaskRecord) -> Notification<InMemoryTaskStore, &FakeMail, &FakeMail> {
    Notification {
        tasks: InMemoryTaskStore::with([t]),
        receipts: mail,
        notifier: mail,
        once: Box::new(taskflow_shared::idempotency::InMemoryIdempotency::default()),
    }
}

#[tokio::test]
async fn a_completed_order_gets_a_receipt_and_a_notice_recorded_on_its_task() {
    let mail = FakeMail::default();
    let n = subject(&mail, task(TaskStatus::Completed));
    let result = n.perform(&work(Outcome::Completed, None), FIRST).await.unwrap();
    assert_eq!(result.receipt_key, "receipts/YWxpY2U/o-1/COMPLETED.txt");
    let stored = n.tasks.snapshot("o-1").unwrap();
    assert_eq!(stored.receipts, vec!["receipts/YWxpY2U/o-1/COMPLETED.txt".to_string()]);
    assert_eq!(stored.status, TaskStatus::Completed, "notifying never changes the outcome");
    let sent = mail.sent.lock().unwrap().clone();
    assert_eq!((sent[0].to.as_str(), sent[0].receipt_key.as_str()), ("alice", "receipts/YWxpY2U/o-1/COMPLETED.txt"));
    // Again (a duplicate delivery): the same receipt, recorded once, and no second notice.
    n.perform(&work(Outcome::Completed, None), FIRST).await.unwrap();
    assert_eq!(n.tasks.snapshot("o-1").unwrap().receipts.len(), 1);
    assert_eq!(mail.sent.lock().unwrap().len(), 1, "the owner is told once");
    let stored = mail.stored.lock().unwrap().clone();
    assert_eq!(stored[0], stored[1]);
}

#[tokio::test]
async fn the_failure_path_records_failed_with_the_reason_of_the_caught_error() {
    for (error, reason) in [
        ("States.Timeout", Reason::TimedOut),
        ("States.HeartbeatTimeout", Reason::TimedOut),
        (errors::PAYMENT_UNAVAILABLE, Reason::PaymentUnavailable),
        ("UnsupportedKind", Reason::UnsupportedKind),
        ("Something.Unexpected", Reason::WorkflowError),
    ] {
        let mail = FakeMail::default();
        let n = subject(&mail, task(TaskStatus::Charging));
        n.perform(&work(Outcome::Failed, Some(error)), FIRST).await.unwrap();
        let stored = n.tasks.snapshot("o-1").unwrap();
        assert_eq!((stored.status, stored.reason), (TaskStatus::Failed, Some(reason)), "{error}");
        assert!(mail.sent.lock().unwrap()[0].subject.contains(reason.as_str()));
    }
}

#[tokio::test]
async fn a_failure_already_recorded_is_kept_and_money_still_going_back_is_not_hidden() {
    let mut declined = task(TaskStatus::Charging);
    Change::to(TaskStatus::Failed, Utc::now()).because(Reason::PaymentDeclined, Some("card_declined".into())).apply(&mut declined);
    let mail = FakeMail::default();
    let n = subject(&mail, declined);
    n.perform(&work(Outcome::Failed, Some(errors::PAYMENT_DECLINED)), FIRST).await.unwrap();
    let stored = n.tasks.snapshot("o-1").unwrap();
    assert_eq!((stored.reason, stored.history.len()), (Some(Reason::PaymentDeclined), 3));

    let mut refunding = task(TaskStatus::Charging);
    Change::to(TaskStatus::Refunding, Utc::now()).because(Reason::OutOfStock, None).apply(&mut refunding);
    let n = subject(&mail, refunding);
    n.perform(&work(Outcome::Failed, Some("States.Timeout")), FIRST).await.unwrap();
    assert_eq!(n.tasks.snapshot("o-1").unwrap().status, TaskStatus::Refunding);
}

#[tokio::test]
async fn a_notifier_outage_is_retried_and_the_failure_is_recorded_first() {
    let mail = FakeMail::default();
    let n = subject(&mail, task(TaskStatus::Received));
    mail.down.store(true, Ordering::SeqCst);
    let err = n.perform(&work(Outcome::Failed, Some("States.Timeout")), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Retry { .. }));
    assert_eq!(n.tasks.snapshot("o-1").unwrap().status, TaskStatus::Failed);
    mail.down.store(false, Ordering::SeqCst);
    n.perform(&work(Outcome::Failed, Some("States.Timeout")), Attempt { number: 2, last: false }).await.unwrap();
    let stored = n.tasks.snapshot("o-1").unwrap();
    assert_eq!(stored.history.len(), 2, "the retry adds no second FAILED");
    assert_eq!(mail.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_notice_in_flight_elsewhere_is_not_sent_and_one_whose_sender_died_is_sent_by_the_next_delivery() {
    use taskflow_shared::idempotency::{Idempotency, InMemoryIdempotency};
    let key = format!("{}/notice/COMPLETED", taskflow_contracts::keys::task_id("alice", "o-1"));
    // Another delivery holds the notice right now (it may be sending): this one sends nothing
    // and comes back later.
    let mail = FakeMail::default();
    let n = subject(&mail, task(TaskStatus::Completed));
    n.once.claim(&key, Utc::now(), chrono::Duration::seconds(60)).await.unwrap();
    let err = n.perform(&work(Outcome::Completed, None), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Retry { .. }), "{err:?}");
    assert!(mail.sent.lock().unwrap().is_empty());
    // Its holder died (the claim expired without being completed): the next delivery sends it,
    // once, whatever comes after. (Had the holder died after SES accepted its message, this is a
    // second copy: see email.rs, "Once".)
    let fresh = InMemoryIdempotency::default();
    fresh.claim(&key, Utc::now() - chrono::Duration::hours(1), chrono::Duration::seconds(15)).await.unwrap();
    let n = Notification { once: Box::new(fresh), ..n };
    n.perform(&work(Outcome::Completed, None), FIRST).await.unwrap();
    n.perform(&work(Outcome::Completed, None), FIRST).await.unwrap();
    assert_eq!(mail.sent.lock().unwrap().len(), 1);
}

/// A notifier that is idempotent itself (as the outbox is, by its conditional put): one notice
/// per key however often it is sent.
#[derive(Default)]
struct Outbox(Mutex<std::collections::BTreeMap<String, usize>>);

#[async_trait]
impl Notifier for &Outbox {
    async fn send(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let mut sent = self.0.lock().unwrap();
        // If-None-Match: * — only the first put of a key writes.
        sent.entry(notice.receipt_key.clone()).or_insert(1);
        Ok(())
    }
    fn idempotent(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn an_idempotent_notifier_needs_no_idempotency_record_and_redelivery_sends_one_notice() {
    let mail = FakeMail::default();
    let outbox = Outbox::default();
    let once = std::sync::Arc::new(taskflow_shared::idempotency::InMemoryIdempotency::default());
    struct Shared(std::sync::Arc<taskflow_shared::idempotency::InMemoryIdempotency>);
    #[async_trait]
    impl Idempotency for Shared {
        async fn claim(&self, key: &str, now: chrono::DateTime<Utc>, hold: chrono::Duration) -> Result<taskflow_shared::idempotency::Claim, taskflow_shared::idempotency::IdempotencyError> {
            self.0.claim(key, now, hold).await
        }
        async fn complete(&self, key: &str, result: &str, now: chrono::DateTime<Utc>) -> Result<(), taskflow_shared::idempotency::IdempotencyError> {
            self.0.complete(key, result, now).await
        }
        async fn release(&self, key: &str) -> Result<(), taskflow_shared::idempotency::IdempotencyError> {
            self.0.release(key).await
        }
    }
    let n = Notification { tasks: InMemoryTaskStore::with([task(TaskStatus::Completed)]), receipts: &mail, notifier: &outbox, once: Box::new(Shared(once.clone())) };
    for _ in 0..3 {
        n.perform(&work(Outcome::Completed, None), FIRST).await.unwrap();
    }
    assert_eq!(outbox.0.lock().unwrap().values().sum::<usize>(), 1, "one notice");
    assert!(once.records.lock().unwrap().is_empty(), "no idempotency record written");
    assert_eq!(n.tasks.snapshot("o-1").unwrap().receipts.len(), 1);
}
