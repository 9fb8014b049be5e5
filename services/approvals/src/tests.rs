use super::*;
use taskflow_contracts::{ApprovalDecision, Decision, OrderKind, OrderSubmitted, TaskToken};
use taskflow_shared::approvals::InMemoryApprovalStore;
use taskflow_shared::fakes::{Answer, InMemoryTaskStore, RecordingCallback};
use taskflow_shared::tasks::TaskRecord;

#[derive(Default)]
struct Bus(std::sync::Mutex<Vec<serde_json::Value>>);

#[async_trait]
impl Reminders for Bus {
    async fn remind(&self, approval: &PendingApproval) -> Result<(), String> {
        self.0.lock().unwrap().push(reminder_detail(approval));
        Ok(())
    }
}

fn order() -> OrderSubmitted {
    OrderSubmitted {
        schema_version: 1,
        order_id: "r-1".into(),
        owner: "alice".into(),
        kind: OrderKind::Refund,
        items: vec![],
        currency: "EUR".into(),
        payment_token: None,
        refund_of: Some("p-1".into()),
        amount: Some(20_000),
        attachments: vec![],
    }
}

fn subject() -> Approvals<InMemoryTaskStore, InMemoryApprovalStore, RecordingCallback, Bus> {
    let mut task = TaskRecord::new("r-1", "alice", TaskStatus::Received, None, Utc::now());
    task.amount = 20_000;
    task.currency = "EUR".into();
    Change::to(TaskStatus::AwaitingApproval, Utc::now()).apply(&mut task);
    Approvals {
        tasks: InMemoryTaskStore::with([task]),
        approvals: InMemoryApprovalStore::default(),
        callback: RecordingCallback::default(),
        reminders: Bus::default(),
        reminder_after: Duration::hours(48),
        final_after: Duration::hours(24),
    }
}

fn work(purpose: ApprovalPurpose, token: &str) -> ApprovalWork {
    ApprovalWork { schema_version: 1, task_token: TaskToken::new(token), purpose, order: order(), trace_header: None }
}

fn id() -> String {
    keys::task_id("alice", "r-1").as_str().to_string()
}

#[tokio::test]
async fn a_request_keeps_its_token_unanswered_with_a_deadline_and_a_duplicate_changes_nothing() {
    let s = subject();
    let now = Utc::now();
    s.handle(&work(ApprovalPurpose::Request, "tok-1"), now).await.unwrap();
    s.handle(&work(ApprovalPurpose::Request, "tok-1"), now + Duration::seconds(5)).await.unwrap();
    let record = s.approvals.get(&id()).await.unwrap().unwrap();
    assert_eq!((record.amount, record.round, record.state, record.task_token.expose()), (20_000, 1, ApprovalState::Pending, "tok-1"));
    assert_eq!(record.deadline, now + Duration::hours(72));
    assert!(s.callback.answers().is_empty(), "the token waits for an operator");
    let task = s.tasks.snapshot("r-1").unwrap();
    assert!(!serde_json::to_string(&task).unwrap().contains("tok-1"), "the token is never on the task");
}

#[tokio::test]
async fn the_reminder_renews_the_token_and_announces_once_per_delivery_without_the_token() {
    let s = subject();
    s.handle(&work(ApprovalPurpose::Request, "tok-1"), Utc::now()).await.unwrap();
    s.handle(&work(ApprovalPurpose::Remind, "tok-2"), Utc::now()).await.unwrap();
    let record = s.approvals.get(&id()).await.unwrap().unwrap();
    assert_eq!((record.round, record.task_token.expose()), (2, "tok-2"));
    let sent = s.reminders.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["eventId"], format!("{}#approval-reminder", id()));
    assert!(!sent[0].to_string().contains("tok-"));
}

#[tokio::test]
async fn a_decision_recorded_as_the_first_wait_ended_is_delivered_with_the_reminders_token() {
    let s = subject();
    s.handle(&work(ApprovalPurpose::Request, "tok-1"), Utc::now()).await.unwrap();
    let decision = ApprovalDecision { decision: Decision::Denied, by: "olga".into(), at: Utc::now(), reason: Some("fraud".into()), amount: 20_000 };
    s.approvals.decide(&id(), &decision).await.unwrap();
    s.handle(&work(ApprovalPurpose::Remind, "tok-2"), Utc::now()).await.unwrap();
    assert!(matches!(&s.callback.answers()[..], [(t, Answer::Failure { error, .. })] if t == "tok-2" && error == errors::REFUND_DENIED));
    assert!(s.approvals.get(&id()).await.unwrap().unwrap().delivered);
}

#[tokio::test]
async fn the_deadline_rejects_the_task_approval_expired_and_answers_the_step() {
    let s = subject();
    s.handle(&work(ApprovalPurpose::Request, "tok-1"), Utc::now()).await.unwrap();
    let err = s.handle(&work(ApprovalPurpose::Expire, "tok-3"), Utc::now()).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::APPROVAL_EXPIRED));
    let task = s.tasks.snapshot("r-1").unwrap();
    assert_eq!((task.status, task.reason), (TaskStatus::Rejected, Some(Reason::ApprovalExpired)));
    assert_eq!(s.approvals.get(&id()).await.unwrap().unwrap().state, ApprovalState::Expired);
    // A late decision finds it expired.
    let decision = ApprovalDecision { decision: Decision::Approved, by: "olga".into(), at: Utc::now(), reason: None, amount: 20_000 };
    assert!(matches!(s.approvals.decide(&id(), &decision).await.unwrap(), Written::Conflict(Some(_))));
}

#[tokio::test]
async fn duplicate_deliveries_of_every_step_change_nothing_more() {
    let s = subject();
    let now = Utc::now();
    for _ in 0..2 {
        s.handle(&work(ApprovalPurpose::Request, "tok-1"), now).await.unwrap();
    }
    for _ in 0..2 {
        s.handle(&work(ApprovalPurpose::Remind, "tok-2"), now).await.unwrap();
    }
    let record = s.approvals.get(&id()).await.unwrap().unwrap();
    assert_eq!((record.round, record.task_token.expose()), (2, "tok-2"));
    // A reminder delivered twice is announced twice under one event id: consumers drop the copy.
    let sent = s.reminders.0.lock().unwrap().clone();
    assert!(sent.iter().all(|e| e["eventId"] == sent[0]["eventId"]));
    for _ in 0..2 {
        let err = s.handle(&work(ApprovalPurpose::Expire, "tok-3"), now).await.unwrap_err();
        assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::APPROVAL_EXPIRED));
    }
    let task = s.tasks.snapshot("r-1").unwrap();
    assert_eq!(task.history.iter().filter(|h| h.status == TaskStatus::Rejected).count(), 1, "one status change");
    assert_eq!(s.callback.answers().len(), 1, "the expiry answered once (the copy finds its token spent)");
}

#[tokio::test]
async fn a_decision_delivered_at_the_reminder_is_on_the_task_even_if_the_api_stopped_before_writing_it() {
    let s = subject();
    s.handle(&work(ApprovalPurpose::Request, "tok-1"), Utc::now()).await.unwrap();
    let decision = ApprovalDecision { decision: Decision::Approved, by: "olga".into(), at: Utc::now(), reason: None, amount: 20_000 };
    s.approvals.decide(&id(), &decision).await.unwrap();
    s.handle(&work(ApprovalPurpose::Remind, "tok-2"), Utc::now()).await.unwrap();
    assert_eq!(s.tasks.snapshot("r-1").unwrap().approval.unwrap().by, "olga");
    assert!(matches!(&s.callback.answers()[..], [(t, Answer::Success(_))] if t == "tok-2"));
}

#[tokio::test]
async fn a_request_that_was_never_recorded_is_recorded_at_the_reminder() {
    let s = subject();
    s.handle(&work(ApprovalPurpose::Remind, "tok-2"), Utc::now()).await.unwrap();
    let record = s.approvals.get(&id()).await.unwrap().unwrap();
    assert_eq!((record.round, record.state, record.task_token.expose()), (2, ApprovalState::Pending, "tok-2"));
    assert!(record.deadline <= Utc::now() + Duration::hours(24));
    assert_eq!(s.reminders.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_request_for_a_task_not_waiting_is_failed_by_name() {
    let s = subject();
    let id = id();
    s.tasks.transition(&id, &[TaskStatus::AwaitingApproval], &Change::to(TaskStatus::Rejected, Utc::now())).await.unwrap();
    let err = s.handle(&work(ApprovalPurpose::Request, "tok-1"), Utc::now()).await.unwrap_err();
    assert!(matches!(err, StepError::Failed { ref error, .. } if error == errors::TASK_STATE_CONFLICT));
    assert!(s.approvals.get(&id).await.unwrap().is_none());
}
