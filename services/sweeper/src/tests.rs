use super::*;
use std::collections::HashMap;
use std::sync::Mutex;
use taskflow_shared::executions::ExecutionError;
use taskflow_shared::fakes::InMemoryTaskStore;
use taskflow_shared::tasks::Change;

const PM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:p";
const RM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:r";

fn task(order_id: &str, kind: OrderKind, status: TaskStatus, age_seconds: i64) -> TaskRecord {
    let mut task = TaskRecord::new(order_id, "alice", TaskStatus::Received, None, Utc::now() - Duration::seconds(age_seconds));
    task.kind = Some(kind);
    task.status = status;
    task
}

/// The one store, shared by the sweeper and the fake repair.
struct Shared<'a>(&'a InMemoryTaskStore);
#[async_trait]
impl TaskStore for Shared<'_> {
    async fn get(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.0.get(id).await
    }
    async fn create(&self, task: &TaskRecord) -> Result<taskflow_shared::tasks::Created, StoreError> {
        self.0.create(task).await
    }
    async fn transition(&self, id: &str, from: &[TaskStatus], change: &Change) -> Result<taskflow_shared::tasks::Transitioned, StoreError> {
        self.0.transition(id, from, change).await
    }
    async fn note(&self, id: &str, note: &Note) -> Result<(), StoreError> {
        self.0.note(id, note).await
    }
    async fn list_by_owner(&self, owner: &str) -> Result<Vec<TaskRecord>, StoreError> {
        self.0.list_by_owner(owner).await
    }
    async fn add_attachment(&self, task_id: &str, owner: &str, attachment: &taskflow_contracts::Attachment, max: usize) -> Result<taskflow_shared::tasks::AttachmentRecorded, StoreError> {
        self.0.add_attachment(task_id, owner, attachment, max).await
    }
    async fn hold_charge(&self, id: &str, held: Option<DateTime<Utc>>, until: DateTime<Utc>) -> Result<taskflow_shared::tasks::Transitioned, StoreError> {
        self.0.hold_charge(id, held, until).await
    }
    async fn list_by_status(
        &self,
        status: TaskStatus,
        since: DateTime<Utc>,
        limit: u32,
        page: Option<taskflow_shared::tasks::Page>,
    ) -> Result<(Vec<TaskRecord>, Option<taskflow_shared::tasks::Page>), StoreError> {
        self.0.list_by_status(status, since, limit, page).await
    }
}

struct Index(Vec<TaskRecord>);
#[async_trait]
impl InFlight for Index {
    async fn since_before(&self, cutoff: DateTime<Utc>, limit: usize) -> Result<Vec<TaskRecord>, StoreError> {
        Ok(self.0.iter().filter(|t| t.inflight_since.is_some_and(|s| s < cutoff)).take(limit).cloned().collect())
    }
}

struct States(HashMap<String, ExecutionState>);
#[async_trait]
impl Executions for States {
    async fn stop(&self, _: &str, _: &str, _: &str) -> Result<(), ExecutionError> {
        Ok(())
    }
    async fn state(&self, arn: &str) -> Result<ExecutionState, ExecutionError> {
        Ok(self.0.get(arn).copied().unwrap_or(ExecutionState::Missing))
    }
}

/// Ends the task FAILED (as a finished compensation does), or fails while `down`.
struct FakeRepair<'a> {
    tasks: &'a InMemoryTaskStore,
    down: bool,
    calls: Mutex<Vec<String>>,
}
#[async_trait]
impl Repair for &FakeRepair<'_> {
    async fn finish(&self, task: &TaskRecord) -> Result<(), String> {
        self.calls.lock().unwrap().push(task.order_id.clone());
        if self.down {
            return Err("PaymentUnavailable: provider down".into());
        }
        let change = Change::to(TaskStatus::Failed, Utc::now());
        self.tasks.transition(&task.task_id, &[task.status], &change).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[derive(Default)]
struct Published(Mutex<Vec<TaskSwept>>);
#[async_trait]
impl Reports for &Published {
    async fn publish(&self, swept: &[TaskSwept]) -> Result<(), String> {
        self.0.lock().unwrap().extend_from_slice(swept);
        Ok(())
    }
}

fn arn(t: &TaskRecord) -> String {
    execution_arn(if t.kind == Some(OrderKind::Refund) { RM } else { PM }, &t.task_id)
}

#[tokio::test]
async fn stuck_tasks_are_finished_healthy_and_foreign_ones_left_alone() {
    let budgets = Budgets::from_callback_timeout(100, 10); // purchase 310 s, refund 210 s
    let owed = task("owed", OrderKind::Purchase, TaskStatus::Refunding, 120); // workflow ended
    let healthy = task("healthy", OrderKind::Purchase, TaskStatus::Charging, 120); // running, within
    let hung = task("hung", OrderKind::Purchase, TaskStatus::Charging, 400); // running, over budget
    let young = task("young", OrderKind::Purchase, TaskStatus::Received, 5); // under min_age
    let mut waiting = task("waiting", OrderKind::Refund, TaskStatus::Received, 1000);
    // A status the sweeper does not repair stands in for one added later (AWAITING_APPROVAL).
    waiting.status = TaskStatus::Completed;
    waiting.inflight_since = Some(Utc::now() - Duration::seconds(1000));
    let all = vec![owed.clone(), healthy.clone(), hung.clone(), young.clone(), waiting.clone()];
    let store = InMemoryTaskStore::with(all.clone());
    let states = States(HashMap::from([
        (arn(&owed), ExecutionState::Ended),
        (arn(&healthy), ExecutionState::Running),
        (arn(&hung), ExecutionState::Running),
    ]));
    let repair = FakeRepair { tasks: &store, down: false, calls: Mutex::default() };
    let published = Published::default();
    let sweeper = Sweeper {
        in_flight: Index(all),
        tasks: Shared(&store),
        executions: states,
        repair: &repair,
        reports: &published,
        budgets,
        min_age: Duration::seconds(60),
        max_tasks: 100,
        purchase_workflow: PM.into(),
        refund_workflow: RM.into(),
    };
    let report = sweeper.sweep(Utc::now()).await.unwrap();
    assert_eq!((report.looked_at, report.finished, report.left_alone, report.handed_to_operators), (4, 2, 2, 0), "{report:#?}");
    let mut repaired = repair.calls.lock().unwrap().clone();
    repaired.sort();
    assert_eq!(repaired, ["hung", "owed"]);
    assert_eq!(store.get(&healthy.task_id).await.unwrap().unwrap().status, TaskStatus::Charging, "healthy: untouched");
    assert_eq!(published.0.lock().unwrap().len(), 2, "one event per task acted on");
    assert!(published.0.lock().unwrap().iter().all(|s| s.outcome == SweepOutcome::Finished && s.status_after == Some(TaskStatus::Failed)));
}

#[tokio::test]
async fn what_the_retry_cannot_finish_is_handed_to_operators_and_noted() {
    let owed = task("owed", OrderKind::Purchase, TaskStatus::Refunding, 120);
    let store = InMemoryTaskStore::with([owed.clone()]);
    let repair = FakeRepair { tasks: &store, down: true, calls: Mutex::default() };
    let published = Published::default();
    let sweeper = Sweeper {
        in_flight: Index(vec![owed.clone()]),
        tasks: Shared(&store),
        executions: States(HashMap::from([(arn(&owed), ExecutionState::Ended)])),
        repair: &repair,
        reports: &published,
        budgets: Budgets::from_callback_timeout(100, 10),
        min_age: Duration::seconds(60),
        max_tasks: 100,
        purchase_workflow: PM.into(),
        refund_workflow: RM.into(),
    };
    let report = sweeper.sweep(Utc::now()).await.unwrap();
    assert_eq!(report.handed_to_operators, 1);
    let line = published.0.lock().unwrap()[0].clone();
    assert_eq!((line.outcome, line.status_after), (SweepOutcome::HandedToOperators, Some(TaskStatus::Refunding)));
    assert!(line.reason.contains("provider down"), "{}", line.reason);
    let noted = store.get(&owed.task_id).await.unwrap().unwrap();
    assert!(noted.attention.as_deref().is_some_and(|a| a.contains("provider down")));
    assert_eq!(noted.status, TaskStatus::Refunding, "still owed, still visible");
}

#[test]
fn the_budgets_count_the_callback_steps_on_each_workflows_longest_path() {
    // Longest chain of waitForTaskToken states from StartAt, following Next and Catch.
    fn longest(states: &serde_json::Map<String, serde_json::Value>, name: &str) -> i32 {
        let state = &states[name];
        let own = i32::from(state["Resource"].as_str().is_some_and(|r| r.ends_with(".waitForTaskToken")));
        let mut next: Vec<&str> = state["Next"].as_str().into_iter().collect();
        next.extend(state["Catch"].as_array().into_iter().flatten().filter_map(|c| c["Next"].as_str()));
        // The waits for an operator are not the sweeper's to judge (the task is AWAITING_APPROVAL
        // then, and its clock restarts at the decision: `judge`), and they loop back to Refund.
        next.retain(|n| !n.starts_with("AwaitApproval") && !n.starts_with("ExpireApproval"));
        own + next.into_iter().map(|n| longest(states, n)).max().unwrap_or(0)
    }
    for (file, expected) in [("purchase", PURCHASE_CALLBACK_STEPS), ("refund", REFUND_CALLBACK_STEPS)] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../statemachine/{file}.asl.json"));
        // The placeholders are unquoted numbers: stand-ins make the text JSON.
        let mut text = std::fs::read_to_string(path).unwrap();
        while let Some(start) = text.find("${") {
            let end = start + text[start..].find('}').unwrap();
            text.replace_range(start..=end, "1");
        }
        let asl: serde_json::Value = serde_json::from_str(&text).unwrap();
        let states = asl["States"].as_object().unwrap();
        assert_eq!(longest(states, asl["StartAt"].as_str().unwrap()), expected, "{file}");
    }
}

#[test]
fn judging_by_execution_state_and_age() {
    let b = Budgets::from_callback_timeout(100, 0);
    let now = Utc::now();
    let t = task("t", OrderKind::Refund, TaskStatus::Refunding, 250);
    assert!(matches!(judge(&t, ExecutionState::Running, now, &b), Verdict::Repair(_)), "refund budget 200 s");
    assert!(matches!(judge(&t, ExecutionState::Missing, now, &b), Verdict::Repair(_)));
    let t = task("t", OrderKind::Purchase, TaskStatus::Refunding, 250);
    assert!(matches!(judge(&t, ExecutionState::Running, now, &b), Verdict::Leave(_)), "purchase budget 300 s");
    assert!(matches!(judge(&t, ExecutionState::Missing, now, &b), Verdict::Leave(_)));
    assert!(matches!(judge(&t, ExecutionState::Ended, now, &b), Verdict::Repair(_)));
}

#[test]
fn a_refund_approved_after_a_long_wait_is_judged_from_the_decision() {
    let b = Budgets::from_callback_timeout(100, 0);
    let now = Utc::now();
    // In flight for two days (it waited for an operator), approved 10 s ago, refunding now.
    let mut t = task("t", OrderKind::Refund, TaskStatus::Refunding, 2 * 86_400);
    assert!(matches!(judge(&t, ExecutionState::Running, now, &b), Verdict::Repair(_)), "without a decision: past its budget");
    t.approval = Some(taskflow_contracts::ApprovalDecision {
        decision: taskflow_contracts::approval::Decision::Approved,
        by: "olga".into(),
        at: now - Duration::seconds(10),
        reason: None,
        amount: 20_000,
    });
    assert!(matches!(judge(&t, ExecutionState::Running, now, &b), Verdict::Leave(_)), "its workflow resumed 10 s ago");
    assert!(matches!(judge(&t, ExecutionState::Running, now + Duration::seconds(300), &b), Verdict::Repair(_)), "and has its refund budget from there");
}
