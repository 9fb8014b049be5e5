//! Refund approvals on the real local stack: a refund above the threshold (100.00 EUR, the
//! template default) waits AWAITING_APPROVAL for an operator; approved it completes, denied it
//! ends REJECTED `REFUND_DENIED`, unanswered it ends REJECTED `APPROVAL_EXPIRED` (deadline
//! shortened through the template parameters: reminder after 6 s, deadline 6 s later). Only the
//! `operators` group may decide or query by status; a second decision is refused. Refunds under
//! the threshold still complete without waiting.

use serde_json::{json, Value};
use std::time::Duration;
use taskflow_contracts::{keys, Decision, Reason, TaskStatus};
use taskflow_e2e::{http, iam_denials, operator_token, order_id, purchase, refund, stack_with, statuses, token, Run};

const REMINDER_SECONDS: u64 = 6;
const FINAL_SECONDS: u64 = 6;

async fn run() -> Run {
    stack_with(|options| {
        options.parameters.insert("ApprovalReminderSeconds".into(), REMINDER_SECONDS.to_string());
        options.parameters.insert("ApprovalFinalSeconds".into(), FINAL_SECONDS.to_string());
    });
    Run::new().await
}

/// A completed purchase of `owner` of 150.00 EUR (above the threshold), on a sku of its own.
async fn bought(run: &Run, owner: &str) -> String {
    let sku = run.new_sku("APPR", 5, 15_000).await;
    let id = order_id("bought");
    run.submit(purchase(&id, owner, &[(&sku, 1, 15_000)], "tok_approve")).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(events.last().unwrap().status, TaskStatus::Completed, "{events:?}");
    id
}

/// Waits until `owner`'s refund `id` is AWAITING_APPROVAL.
async fn awaiting(run: &Run, owner: &str, id: &str) {
    for _ in 0..100 {
        if run.task_of(owner, id).await.is_some_and(|t| t.status == TaskStatus::AwaitingApproval) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{id} never became AWAITING_APPROVAL: {:?}", run.task_of(owner, id).await);
}

/// A decision over the HTTP API, retried while the approval path is still recording the token.
async fn decide(bearer: &str, id: &str, what: &str, body: Value) -> (u16, Value) {
    for _ in 0..50 {
        let answer = http("POST", &format!("/approvals/{id}/{what}"), Some(bearer), Some(&body.to_string())).await;
        if answer.1["error"] != "ApprovalNotReady" {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the approval of {id} was never recorded");
}

/// The approvals table's record, read as an admin would (only the approval path's roles may).
async fn approval_record(run: &Run, owner: &str, id: &str) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    aws_sdk_dynamodb::Client::new(&run.aws)
        .get_item()
        .table_name(taskflow_e2e::stack().output("ApprovalTableName").unwrap())
        .key("taskId", aws_sdk_dynamodb::types::AttributeValue::S(keys::task_id(owner, id).as_str().to_string()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_refund_completes_and_only_an_operator_decides_once() {
    let run = run().await;
    let original = bought(&run, "amelie").await;
    let id = order_id("approve");
    run.submit(refund(&id, "amelie", &original, None)).await;
    awaiting(&run, "amelie", &id).await;

    // Not an operator (the owner herself): refused, and nothing changes.
    let (status, body) = http("POST", &format!("/approvals/{id}/approve"), Some(&token("amelie", 300)), Some(r#"{"owner":"amelie"}"#)).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("NotAnOperator")), "{body}");
    let task = run.task_of("amelie", &id).await.unwrap();
    assert_eq!((task.status, task.approval.is_none()), (TaskStatus::AwaitingApproval, true));
    assert_eq!(run.provider(&original).await.2, 0, "nothing refunded while waiting");

    let olga = operator_token("olga");
    let (status, body) = decide(&olga, &id, "approve", json!({"owner": "amelie", "reason": "long-standing customer"})).await;
    assert!(status == 200 || status == 202, "{status} {body}");
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::AwaitingApproval, TaskStatus::Refunding, TaskStatus::Completed]);
    let task = run.task_of("amelie", &id).await.unwrap();
    let approval = task.approval.clone().unwrap();
    assert_eq!((approval.decision, approval.by.as_str(), approval.reason.as_deref()), (Decision::Approved, "olga", Some("long-standing customer")));
    assert_eq!((task.amount, task.refunded), (15_000, 15_000));
    run.assert_balanced(&original).await;

    // Deciding twice: refused, the first decision stands.
    let (status, body) = decide(&operator_token("piotr"), &id, "deny", json!({"owner": "amelie", "reason": "too late"})).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("AlreadyDecided")), "{body}");
    assert_eq!(run.task_of("amelie", &id).await.unwrap().status, TaskStatus::Completed);

    // The token is kept by the approval path only: never on the task record that is published.
    let record = approval_record(&run, "amelie", &id).await.expect("the approval is recorded");
    let token_value = record["taskToken"].as_s().unwrap().clone();
    assert!(!serde_json::to_string(&task).unwrap().contains(&token_value));
    // Nor in any function's log (the approvals function, the API, the refund service, …).
    for file in std::fs::read_dir(taskflow_e2e::log_dir()).unwrap() {
        let path = file.unwrap().path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("moto")) {
            continue; // the emulator's own request log, not a function's
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
        assert!(!text.contains(&token_value), "the task token is in {}", path.display());
    }
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_refund_ends_refund_denied_with_nothing_refunded() {
    let run = run().await;
    let original = bought(&run, "bruno").await;
    let id = order_id("deny");
    run.submit(refund(&id, "bruno", &original, Some(12_000))).await;
    awaiting(&run, "bruno", &id).await;
    let olga = operator_token("olga");
    let (status, body) = decide(&olga, &id, "deny", json!({"owner": "bruno"})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("ReasonRequired")), "a denial needs a reason");
    let (status, body) = decide(&olga, &id, "deny", json!({"owner": "bruno", "reason": "the goods never came back"})).await;
    assert!(status == 200 || status == 202, "{status} {body}");
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::AwaitingApproval, TaskStatus::Rejected]);
    assert_eq!(events.last().unwrap().reason.as_deref(), Some(Reason::RefundDenied.as_str()));
    let task = run.task_of("bruno", &id).await.unwrap();
    assert_eq!(task.reason_detail.as_deref(), Some("the goods never came back"));
    assert_eq!(task.approval.unwrap().decision, Decision::Denied);
    assert_eq!(run.provider(&original).await.2, 0, "nothing refunded");
    assert_eq!(run.ledger(&original).await.unwrap().refundable(), 15_000);
    run.close().await;
}

/// A subscriber of `ApprovalReminder` events: its own queue and rule on the task bus.
struct Reminders {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    name: String,
    queue_url: String,
}

impl Reminders {
    async fn open(run: &Run) -> Reminders {
        let (sqs, events) = (aws_sdk_sqs::Client::new(&run.aws), aws_sdk_eventbridge::Client::new(&run.aws));
        let bus = taskflow_e2e::stack().output("EventBusName").unwrap().to_string();
        let name = format!("e2e-reminders-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let queue_url = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let arn = attributes[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
        let pattern = json!({"source": ["taskflow.tasks"], "detail-type": ["ApprovalReminder"]});
        events.put_rule().name(&name).event_bus_name(&bus).event_pattern(pattern.to_string()).send().await.unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder().id("reminders").arn(arn).build().unwrap();
        events.put_targets().rule(&name).event_bus_name(&bus).targets(target).send().await.unwrap();
        Reminders { sqs, events, name, queue_url }
    }

    /// Every reminder detail received within `wait`.
    async fn received(&self, wait: Duration) -> Vec<Value> {
        let (mut details, deadline) = (Vec::new(), tokio::time::Instant::now() + wait);
        while tokio::time::Instant::now() < deadline {
            let out = self.sqs.receive_message().queue_url(&self.queue_url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
            for message in out.messages.unwrap_or_default() {
                let event: Value = serde_json::from_str(message.body.as_deref().unwrap_or("{}")).unwrap();
                details.push(event["detail"].clone());
            }
        }
        details
    }

    async fn close(self) {
        let bus = taskflow_e2e::stack().output("EventBusName").unwrap().to_string();
        let _ = self.events.remove_targets().rule(&self.name).event_bus_name(&bus).ids("reminders").send().await;
        let _ = self.events.delete_rule().name(&self.name).event_bus_name(&bus).send().await;
        let _ = self.sqs.delete_queue().queue_url(&self.queue_url).send().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_refund_is_reminded_then_expires_and_cannot_be_decided_after() {
    let run = run().await;
    let reminders = Reminders::open(&run).await;
    let original = bought(&run, "chiara").await;
    let id = order_id("expire");
    run.submit(refund(&id, "chiara", &original, None)).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::AwaitingApproval, TaskStatus::Rejected]);
    assert_eq!(events.last().unwrap().reason.as_deref(), Some(Reason::ApprovalExpired.as_str()));
    let waited = events[2].occurred_at - events[1].occurred_at;
    assert!(waited >= chrono::Duration::seconds((REMINDER_SECONDS + FINAL_SECONDS) as i64), "expired after {waited}");
    // The reminder's wait took over the token (round 2) before the deadline.
    let record = approval_record(&run, "chiara", &id).await.unwrap();
    assert_eq!((record["round"].as_n().unwrap().as_str(), record["state"].as_s().unwrap().as_str()), ("2", "EXPIRED"));
    // The reminder was announced, before the deadline, without the token.
    let token_value = record["taskToken"].as_s().unwrap().clone();
    let mine: Vec<Value> = reminders.received(Duration::from_secs(3)).await.into_iter().filter(|d| d["orderId"] == id.as_str()).collect();
    assert!(!mine.is_empty(), "no ApprovalReminder for {id}");
    assert_eq!((mine[0]["owner"].as_str(), mine[0]["amount"].as_u64()), (Some("chiara"), Some(15_000)));
    assert!(mine.iter().all(|d| !d.to_string().contains(&token_value)));
    reminders.close().await;
    let (status, body) = http("POST", &format!("/approvals/{id}/approve"), Some(&operator_token("olga")), Some(r#"{"owner":"chiara"}"#)).await;
    assert_eq!((status, body["error"].as_str()), (410, Some("ApprovalExpired")), "{body}");
    assert_eq!(run.provider(&original).await.2, 0, "nothing refunded");
    // Every call of the approval path was allowed by its role (the emulator enforces IAM).
    assert_eq!(iam_denials().await, Vec::<Value>::new());
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refund_under_the_threshold_completes_without_waiting_and_queries_by_status_find_each() {
    let run = run().await;
    let original = bought(&run, "dora").await;
    let small = order_id("small");
    run.submit(refund(&small, "dora", &original, Some(5_000))).await;
    let events = run.events_until_terminal(&small).await;
    assert_eq!(statuses(&events), [TaskStatus::Received, TaskStatus::Refunding, TaskStatus::Completed]);

    let big = order_id("waiting");
    run.submit(refund(&big, "dora", &original, Some(10_000))).await;
    // 10_000 is the threshold itself: not above it.
    assert_eq!(statuses(&run.events_until_terminal(&big).await), [TaskStatus::Received, TaskStatus::Refunding, TaskStatus::Completed]);
    let other = bought(&run, "dora").await;
    let waiting = order_id("waiting");
    run.submit(refund(&waiting, "dora", &other, None)).await;
    awaiting(&run, "dora", &waiting).await;

    let olga = operator_token("olga");
    let found = |answer: &Value, id: &str| answer["tasks"].as_array().unwrap().iter().any(|t| t["orderId"] == id);
    let (status, answer) = http("GET", "/tasks?status=AWAITING_APPROVAL&since=5m", Some(&olga), None).await;
    assert_eq!(status, 200, "{answer}");
    assert!(found(&answer, &waiting), "{answer}");
    let (_, answer) = http("GET", "/approvals", Some(&olga), None).await;
    assert!(found(&answer, &waiting), "{answer}");
    let (_, answer) = http("GET", "/tasks?status=COMPLETED&since=5m&kind=refund&limit=1000", Some(&olga), None).await;
    assert!(found(&answer, &small) && found(&answer, &big), "{answer}");
    assert!(answer["tasks"].as_array().unwrap().iter().all(|t| t["kind"] == "refund"));
    let (_, answer) = http("GET", "/tasks?status=COMPLETED&since=5m&kind=purchase&limit=1000", Some(&olga), None).await;
    assert!(found(&answer, &original) && !found(&answer, &small), "{answer}");

    // Paged: one at a time, following `next`, reaches every completed refund of this test.
    let (mut seen, mut next) = (Vec::new(), None::<String>);
    for _ in 0..200 {
        let path = match &next {
            Some(token) => format!("/tasks?status=COMPLETED&since=5m&limit=1&next={token}"),
            None => "/tasks?status=COMPLETED&since=5m&limit=1".to_string(),
        };
        let (status, answer) = http("GET", &path, Some(&olga), None).await;
        assert_eq!(status, 200, "{answer}");
        seen.extend(answer["tasks"].as_array().unwrap().iter().map(|t| t["orderId"].as_str().unwrap().to_string()));
        match answer["next"].as_str() {
            Some(token) => next = Some(token.to_string()),
            None => break,
        }
    }
    assert!(seen.contains(&small) && seen.contains(&big), "{seen:?}");

    // Not an operator: refused.
    let (status, answer) = http("GET", "/tasks?status=FAILED&since=1h", Some(&token("dora", 300)), None).await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("NotAnOperator")));
    // The owner's own list is unchanged.
    let (status, answer) = http("GET", "/tasks", Some(&token("dora", 300)), None).await;
    assert_eq!(status, 200);
    assert!(found(&answer, &waiting));

    // Leave nothing waiting: deny it (unless its short deadline passed meanwhile).
    let (status, body) = decide(&olga, &waiting, "deny", json!({"owner": "dora", "reason": "test over"})).await;
    assert!([200, 202, 410].contains(&status), "{status} {body}");
    run.events_until_terminal(&waiting).await;
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_message_with_no_order_in_it_ends_in_the_approval_dead_letter_queue() {
    let run = run().await;
    let sqs = aws_sdk_sqs::Client::new(&run.aws);
    let marker = order_id("poison");
    let queue = taskflow_e2e::stack().output("ApprovalQueueUrl").unwrap().to_string();
    sqs.send_message().queue_url(&queue).message_body(json!({"purpose": "request", "m": marker}).to_string()).send().await.unwrap();
    let dlq = taskflow::dlq::queues(taskflow_e2e::stack()).into_iter().find(|q| q.name == "approval").expect("the approval DLQ is listed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut found = 0;
        taskflow::dlq::drain(&sqs, &dlq.url, false, 100, |dead, _| {
            found += usize::from(dead.body.contains(&marker));
            async { Ok(()) }
        })
        .await
        .unwrap();
        if found == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the poison message never reached the approval DLQ");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    run.close().await;
}
