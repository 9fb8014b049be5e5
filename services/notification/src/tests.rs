use super::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use taskflow_contracts::{OrderKind, TaskToken};
use taskflow_shared::fakes::InMemoryTaskStore;
use taskflow_shared::tasks::TaskRecord;

#[derive(Default)]
struct FakeNotifier {
    sent: Mutex<Vec<Notice>>,
    down: AtomicBool,
}

#[async_trait]
impl Notifier for FakeNotifier {
    async fn send(&self, notice: &Notice) -> Result<String, notifier::NotifyError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(notifier::NotifyError("smtp down".into()));
        }
        self.sent.lock().unwrap().push(notice.clone());
        Ok(notice.key())
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
    }
}

const FIRST: Attempt = Attempt { number: 1, last: false };

#[tokio::test]
async fn a_completed_order_gets_an_owner_scoped_notice_recorded_on_its_task() {
    let n = Notification { tasks: InMemoryTaskStore::with([task(TaskStatus::Completed)]), notifier: FakeNotifier::default() };
    let result = n.perform(&work(Outcome::Completed, None), FIRST).await.unwrap();
    assert_eq!(result.notice_key, "notices/alice/o-1/COMPLETED.json");
    let stored = n.tasks.snapshot("o-1").unwrap();
    assert_eq!(stored.notice_key.as_deref(), Some("notices/alice/o-1/COMPLETED.json"));
    assert_eq!(stored.status, TaskStatus::Completed, "notifying never changes the outcome");
    assert!(n.notifier.sent.lock().unwrap()[0].subject.contains("complete"));
}

#[tokio::test]
async fn the_failure_path_records_failed_with_the_reason_of_the_caught_error() {
    for (error, reason) in [
        ("States.Timeout", Reason::TimedOut),
        ("States.HeartbeatTimeout", Reason::TimedOut),
        (errors::PAYMENT_UNAVAILABLE, Reason::PaymentUnavailable),
        ("RefundNotAvailable", Reason::RefundNotAvailable),
        ("Something.Unexpected", Reason::WorkflowError),
    ] {
        let n = Notification { tasks: InMemoryTaskStore::with([task(TaskStatus::Charging)]), notifier: FakeNotifier::default() };
        n.perform(&work(Outcome::Failed, Some(error)), FIRST).await.unwrap();
        let stored = n.tasks.snapshot("o-1").unwrap();
        assert_eq!((stored.status, stored.reason), (TaskStatus::Failed, Some(reason)), "{error}");
        assert_eq!(n.notifier.sent.lock().unwrap()[0].reason.as_deref(), Some(reason.as_str()));
    }
}

#[tokio::test]
async fn a_failure_already_recorded_is_kept_not_overwritten() {
    let mut declined = task(TaskStatus::Charging);
    Change::to(TaskStatus::Failed, Utc::now()).because(Reason::PaymentDeclined, Some("card_declined".into())).apply(&mut declined);
    let n = Notification { tasks: InMemoryTaskStore::with([declined]), notifier: FakeNotifier::default() };
    n.perform(&work(Outcome::Failed, Some(errors::PAYMENT_DECLINED)), FIRST).await.unwrap();
    let stored = n.tasks.snapshot("o-1").unwrap();
    assert_eq!(stored.reason, Some(Reason::PaymentDeclined));
    assert_eq!(stored.history.len(), 3);
}

#[tokio::test]
async fn a_notifier_outage_is_retried_and_the_failure_is_recorded_first() {
    let n = Notification { tasks: InMemoryTaskStore::with([task(TaskStatus::Received)]), notifier: FakeNotifier::default() };
    n.notifier.down.store(true, Ordering::SeqCst);
    let err = n.perform(&work(Outcome::Failed, Some("States.Timeout")), FIRST).await.unwrap_err();
    assert!(matches!(err, StepError::Retry { .. }));
    assert_eq!(n.tasks.snapshot("o-1").unwrap().status, TaskStatus::Failed);
    n.notifier.down.store(false, Ordering::SeqCst);
    n.perform(&work(Outcome::Failed, Some("States.Timeout")), Attempt { number: 2, last: false }).await.unwrap();
    let stored = n.tasks.snapshot("o-1").unwrap();
    assert_eq!(stored.history.len(), 2, "the retry adds no second FAILED");
    assert_eq!(n.notifier.sent.lock().unwrap().len(), 1);
}
