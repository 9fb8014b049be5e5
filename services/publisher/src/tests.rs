use super::*;
use crate::dead::DeadLetterError;
use crate::redrive::{changes_in, redrive, DeadLetter, RedriveError, Republish, StreamBatchInfo, StreamRecords, TaskItems};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Mutex;
use taskflow_contracts::{OrderKind, Reason, TaskStatus};
use taskflow_shared::tasklog::InMemoryTaskLogs;
use taskflow_shared::tasks::Change;

/// A bus that records what it is sent, and fails for the orders in `down`.
#[derive(Default)]
struct FakeBus {
    sent: Mutex<Vec<TaskStatusChanged>>,
    attached: Mutex<Vec<taskflow_contracts::TaskAttachmentAdded>>,
    down: Vec<String>,
}

#[async_trait]
impl EventBus for FakeBus {
    async fn publish(&self, events: &[TaskStatusChanged]) -> Result<(), PublishError> {
        if events.iter().any(|e| self.down.contains(&e.order_id)) {
            return Err(PublishError("1 of 1 entries failed".into()));
        }
        self.sent.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
    async fn publish_attachments(&self, events: &[taskflow_contracts::TaskAttachmentAdded]) -> Result<(), PublishError> {
        if events.iter().any(|e| self.down.contains(&e.order_id)) {
            return Err(PublishError("1 of 1 entries failed".into()));
        }
        self.attached.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

impl FakeBus {
    fn ids(&self) -> Vec<String> {
        self.sent.lock().unwrap().iter().map(|e| e.event_id.clone()).collect()
    }
}

#[derive(Default)]
struct FakeDeadLetters {
    notes: Mutex<Vec<UnpublishedChange>>,
    down: bool,
}

#[async_trait]
impl DeadLetters for FakeDeadLetters {
    async fn set_aside(&self, change: &UnpublishedChange) -> Result<(), DeadLetterError> {
        if self.down {
            return Err(DeadLetterError("queue unavailable".into()));
        }
        self.notes.lock().unwrap().push(change.clone());
        Ok(())
    }
}

fn publisher() -> Publisher<FakeBus, FakeDeadLetters> {
    Publisher { bus: FakeBus::default(), dead_letters: FakeDeadLetters::default(), logs: InMemoryTaskLogs::default(), workflows: None }
}

/// The event id of alice's order `order_id`'s status `sequence` (`{taskId}#{sequence}`).
fn ev(order_id: &str, sequence: u32) -> String {
    format!("{}#{sequence}", taskflow_contracts::keys::task_id("alice", order_id))
}

fn task(id: &str) -> TaskRecord {
    let mut t = TaskRecord::new(id, "alice", TaskStatus::Received, None, Utc::now());
    t.kind = Some(OrderKind::Purchase);
    t
}

fn received() -> TaskRecord {
    task("o-1")
}

fn image(t: &TaskRecord) -> serde_json::Value {
    serde_json::to_value(serde_dynamo::to_item::<_, serde_dynamo::Item>(t).unwrap()).unwrap()
}

/// A stream record as Lambda delivers it, with sequence number `seq`.
fn record_at(seq: &str, name: &str, old: Option<serde_json::Value>, new: serde_json::Value) -> serde_json::Value {
    let id = new["orderId"].clone();
    let mut change = serde_json::json!({"Keys": {"orderId": id}, "NewImage": new,
        "SequenceNumber": seq, "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES",
        "ApproximateCreationDateTime": 1_700_000_000.0});
    if let Some(old) = old {
        change["OldImage"] = old;
    }
    serde_json::json!({"eventID": format!("e{seq}"), "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1", "dynamodb": change, "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/s"})
}

fn record(name: &str, old: Option<&TaskRecord>, new: &TaskRecord) -> serde_json::Value {
    record_at("1", name, old.map(image), image(new))
}

/// A task record a backfill script wrote with a status the publisher does not know.
fn backfilled(id: &str) -> serde_json::Value {
    let mut bad = image(&task(id));
    bad["status"] = serde_json::json!({"S": "ARCHIVED"});
    bad["history"]["L"][0]["M"]["status"] = serde_json::json!({"S": "ARCHIVED"});
    bad
}

fn stream(records: Vec<serde_json::Value>) -> StreamEvent {
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

#[test]
fn each_new_history_entry_is_one_event_with_a_deterministic_id() {
    let first = received();
    let mut charging = first.clone();
    Change::to(TaskStatus::Charging, Utc::now()).apply(&mut charging);
    let mut failed = charging.clone();
    Change::to(TaskStatus::Failed, Utc::now()).because(Reason::PaymentDeclined, None).apply(&mut failed);

    let created = announcements(None, &first);
    assert_eq!(created.len(), 1);
    assert_eq!((created[0].status, created[0].previous_status), (TaskStatus::Received, None));
    assert_eq!(created[0].event_id, format!("{}#1", first.task_id));
    assert_eq!(created[0].order_id, "o-1", "the order id stays the submitter's");

    let ended = announcements(Some(&charging), &failed);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].event_id, format!("{}#3", first.task_id));
    assert_eq!(ended[0].previous_status, Some(TaskStatus::Charging));
    assert_eq!(ended[0].reason.as_deref(), Some("PAYMENT_DECLINED"));
    assert_eq!(announcements(Some(&charging), &failed), ended, "the same write announces the same ids");

    // Another owner's order with the same order id announces other event ids.
    let other = TaskRecord::new("o-1", "bob", TaskStatus::Received, None, Utc::now());
    assert_ne!(announcements(None, &other)[0].event_id, created[0].event_id);
    assert_eq!(announcements(None, &other)[0].owner, "bob");
}

#[test]
fn a_write_that_changes_no_status_announces_nothing() {
    let task = received();
    let mut noted = task.clone();
    noted.receipts.push("receipts/YWxpY2U/o-1/RECEIVED.txt".into());
    assert!(announcements(Some(&task), &noted).is_empty());
}

#[tokio::test]
async fn relays_stream_records_in_order_and_skips_removals() {
    let first = received();
    let mut charging = first.clone();
    Change::to(TaskStatus::Charging, Utc::now()).apply(&mut charging);
    let publisher = publisher();
    let event = stream(vec![
        record("INSERT", None, &first),
        record("MODIFY", Some(&first), &charging),
        record("REMOVE", Some(&charging), &TaskRecord { history: vec![], ..charging.clone() }),
    ]);
    let relayed = publisher.relay(&event).await.unwrap();
    assert_eq!((relayed.published, relayed.set_aside), (2, 0));
    assert_eq!(relayed.response, StreamBatchResponse::default(), "all done");
    let sent = publisher.bus.sent.lock().unwrap().clone();
    assert_eq!(sent.iter().map(|e| e.status).collect::<Vec<_>>(), [TaskStatus::Received, TaskStatus::Charging]);
}

#[tokio::test]
async fn an_unreadable_record_is_set_aside_with_its_key_and_its_neighbours_are_published() {
    let publisher = publisher();
    let event = stream(vec![
        record_at("101", "INSERT", None, image(&task("good-1"))),
        record_at("102", "INSERT", None, image(&task("good-2"))),
        record_at("103", "INSERT", None, backfilled("backfilled")),
        record_at("104", "INSERT", None, image(&task("good-3"))),
    ]);
    let relayed = publisher.relay(&event).await.unwrap();
    assert_eq!((relayed.published, relayed.set_aside), (3, 1));
    assert!(relayed.response.batch_item_failures.is_empty(), "retrying an unreadable record cannot help: {:?}", relayed.response);
    assert_eq!(publisher.bus.ids(), [ev("good-1", 1), ev("good-2", 1), ev("good-3", 1)]);

    let notes = publisher.dead_letters.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 1);
    let note = &notes[0];
    assert_eq!(note.kind, dead::UNPUBLISHED_CHANGE);
    assert_eq!(note.order_id.as_deref(), Some("backfilled"));
    assert_eq!(serde_json::to_value(&note.table_key).unwrap(), serde_json::json!({"orderId": {"S": "backfilled"}}));
    assert_eq!((note.first_sequence, note.last_sequence), (1, Some(1)));
    assert_eq!((note.sequence_number.as_deref(), note.event_name.as_str()), (Some("103"), "INSERT"));
    assert!(note.reason.starts_with("CorruptTaskRecord: e103: "), "{}", note.reason);
    assert!(note.reason.contains("ARCHIVED"), "the reason names what could not be read: {}", note.reason);
}

#[tokio::test]
async fn a_record_missing_a_field_is_set_aside_too() {
    let publisher = publisher();
    let mut missing = image(&task("no-status"));
    missing.as_object_mut().unwrap().remove("status");
    let relayed = publisher.relay(&stream(vec![record_at("7", "INSERT", None, missing)])).await.unwrap();
    assert_eq!((relayed.published, relayed.set_aside), (0, 1));
    let notes = publisher.dead_letters.notes.lock().unwrap().clone();
    assert!(notes[0].reason.starts_with("CorruptTaskRecord") && notes[0].reason.contains("status"), "{}", notes[0].reason);
}

#[tokio::test]
async fn a_bus_failure_reports_that_record_and_leaves_the_rest_for_the_retry() {
    let publisher = Publisher { bus: FakeBus { down: vec!["second".into()], ..Default::default() }, dead_letters: FakeDeadLetters::default(), logs: InMemoryTaskLogs::default(), workflows: None };
    let event = stream(vec![
        record_at("11", "INSERT", None, image(&task("first"))),
        record_at("12", "INSERT", None, image(&task("second"))),
        record_at("13", "INSERT", None, image(&task("third"))),
    ]);
    let relayed = publisher.relay(&event).await.unwrap();
    assert_eq!(relayed.published, 1);
    assert_eq!(serde_json::to_value(&relayed.response).unwrap(), serde_json::json!({"batchItemFailures": [{"itemIdentifier": "12"}]}));
    // Not published out of order: Lambda retries from 12, which includes 13.
    assert_eq!(publisher.bus.ids(), [ev("first", 1)]);
}

#[tokio::test]
async fn an_unreadable_record_that_cannot_be_set_aside_is_retried() {
    let publisher = Publisher { bus: FakeBus::default(), dead_letters: FakeDeadLetters { down: true, ..Default::default() }, logs: InMemoryTaskLogs::default(), workflows: None };
    let event = stream(vec![record_at("21", "INSERT", None, backfilled("bad")), record_at("22", "INSERT", None, image(&task("after")))]);
    let relayed = publisher.relay(&event).await.unwrap();
    assert_eq!(relayed.response.batch_item_failures, [BatchItemFailure { item_identifier: "21".into() }]);
    assert!(publisher.bus.ids().is_empty());
}

#[tokio::test]
async fn a_failed_record_without_a_sequence_number_fails_the_whole_batch() {
    let publisher = Publisher { bus: FakeBus { down: vec!["o-1".into()], ..Default::default() }, dead_letters: FakeDeadLetters::default(), logs: InMemoryTaskLogs::default(), workflows: None };
    let mut r = record("INSERT", None, &received());
    r["dynamodb"].as_object_mut().unwrap().remove("SequenceNumber");
    let err = publisher.relay(&stream(vec![r])).await.unwrap_err();
    assert!(err.to_string().starts_with("UnidentifiedRecord"), "{err}");
}

#[tokio::test]
async fn mending_an_unreadable_record_announces_nothing_twice() {
    // The fix is a MODIFY whose old image is the unreadable record: its one entry is the one in
    // the dead-letter queue; the redrive, not this write, publishes it.
    let publisher = publisher();
    let mended = task("backfilled");
    let relayed = publisher.relay(&stream(vec![record_at("31", "MODIFY", Some(backfilled("backfilled")), image(&mended))])).await.unwrap();
    assert_eq!((relayed.published, relayed.set_aside), (0, 0));
    // An old image with no readable history: everything is announced again (same ids).
    let mut no_history = image(&mended);
    no_history["history"] = serde_json::json!({"S": "?"});
    let relayed = publisher.relay(&stream(vec![record_at("32", "MODIFY", Some(no_history), image(&mended))])).await.unwrap();
    assert_eq!(relayed.published, 1);
    assert_eq!(publisher.bus.ids(), [ev("backfilled", 1)]);
}

#[test]
fn history_is_counted_from_the_raw_image() {
    let item = |v: serde_json::Value| serde_json::from_value::<serde_dynamo::Item>(v).unwrap();
    assert_eq!(history_len(&serde_dynamo::Item::default()), Some(0));
    assert_eq!(history_len(&item(backfilled("x"))), Some(1));
    assert_eq!(history_len(&item(serde_json::json!({"orderId": {"S": "x"}}))), None);
}

// ---- redrive -----------------------------------------------------------------------------

#[derive(Default)]
struct FakeTable(Mutex<HashMap<String, serde_dynamo::Item>>);

impl FakeTable {
    fn put(&self, item: serde_json::Value) {
        let item: serde_dynamo::Item = serde_json::from_value(item).unwrap();
        let serde_dynamo::AttributeValue::S(id) = item["orderId"].clone() else { panic!() };
        self.0.lock().unwrap().insert(id, item);
    }
}

#[async_trait]
impl TaskItems for FakeTable {
    async fn item(&self, key: &serde_dynamo::Item) -> Result<Option<serde_dynamo::Item>, RedriveError> {
        let serde_dynamo::AttributeValue::S(id) = key["orderId"].clone() else { panic!("keyed by orderId") };
        Ok(self.0.lock().unwrap().get(&id).cloned())
    }
}

struct FakeStream(Vec<serde_json::Value>);

#[async_trait]
impl StreamRecords for FakeStream {
    async fn between(&self, batch: &StreamBatchInfo) -> Result<Vec<EventRecord>, RedriveError> {
        let n = |s: &str| s.parse::<u64>().unwrap();
        Ok(self
            .0
            .iter()
            .filter(|r| (n(&batch.start_sequence_number)..=n(&batch.end_sequence_number)).contains(&n(r["dynamodb"]["SequenceNumber"].as_str().unwrap())))
            .map(|r| serde_json::from_value(r.clone()).unwrap())
            .collect())
    }
}

/// Lambda's on-failure record for a stream batch, as the AWS Lambda developer guide shows it.
fn lambda_on_failure(start: &str, end: &str) -> String {
    serde_json::json!({
        "requestContext": {"requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:publisher",
            "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2019-11-14T00:13:49.717Z",
        "DDBStreamBatchInfo": {"shardId": "shardId-00000001573689847184-864758bb", "startSequenceNumber": start, "endSequenceNumber": end,
            "approximateArrivalOfFirstRecord": "2019-11-14T00:13:19Z", "approximateArrivalOfLastRecord": "2019-11-14T00:13:19Z",
            "batchSize": 1, "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2019-11-14T00:04:06.388"}
    })
    .to_string()
}

#[test]
fn both_shapes_of_dead_letter_are_read_and_anything_else_is_named() {
    let note = UnpublishedChange::of(&serde_json::from_value(record_at("5", "INSERT", None, backfilled("b"))).unwrap(), 0, "CorruptTaskRecord: x");
    let body = serde_json::to_string(&note).unwrap();
    assert_eq!(DeadLetter::read(&body).unwrap(), DeadLetter::Change(note));
    match DeadLetter::read(&lambda_on_failure("100", "104")).unwrap() {
        DeadLetter::Batch(b) => assert_eq!((b.start_sequence_number.as_str(), b.end_sequence_number.as_str(), b.batch_size), ("100", "104", Some(1))),
        other => panic!("{other:?}"),
    }
    for body in ["", "{}", "[1]", r#"{"kind":"Other"}"#, r#"{"DDBStreamBatchInfo":{}}"#, r#"{"kind":"UnpublishedStatusChange"}"#] {
        assert!(matches!(DeadLetter::read(body), Err(RedriveError::NotADeadLetter(_))), "{body:?}");
    }
}

#[tokio::test]
async fn a_set_aside_change_is_published_again_from_the_mended_task_record_with_the_same_ids() {
    let publisher = publisher();
    publisher.relay(&stream(vec![record_at("103", "INSERT", None, backfilled("backfilled"))])).await.unwrap();
    let body = serde_json::to_string(&publisher.dead_letters.notes.lock().unwrap()[0]).unwrap();
    let (table, bus, no_stream) = (FakeTable::default(), FakeBus::default(), FakeStream(vec![]));

    // Still unreadable: nothing published, the message stays.
    table.put(backfilled("backfilled"));
    let err = redrive(&body, &table, &no_stream, &bus).await.unwrap_err();
    assert!(matches!(err, RedriveError::Corrupt(_)), "{err}");
    assert!(bus.ids().is_empty());

    // Mended: the event the publisher would have sent.
    let mended = task("backfilled");
    table.put(image(&mended));
    assert_eq!(redrive(&body, &table, &no_stream, &bus).await.unwrap(), 1);
    assert_eq!(*bus.sent.lock().unwrap(), announcements(None, &mended));

    // Gone: named.
    table.0.lock().unwrap().clear();
    assert!(matches!(redrive(&body, &table, &no_stream, &bus).await, Err(RedriveError::TaskNotFound(_))));
}

#[tokio::test]
async fn an_unreadable_write_that_added_no_status_is_set_aside_and_cleared_once_readable() {
    // A backfill rewrote a field of a task without a new status, making it unreadable.
    let publisher = publisher();
    let before = task("rewritten");
    let mut after = image(&before);
    after["status"] = serde_json::json!({"S": "ARCHIVED"});
    publisher.relay(&stream(vec![record_at("41", "MODIFY", Some(image(&before)), after.clone())])).await.unwrap();
    let note = publisher.dead_letters.notes.lock().unwrap()[0].clone();
    assert_eq!((note.first_sequence, note.last_sequence), (2, Some(1)), "nothing added, but not silently dropped");
    let body = serde_json::to_string(&note).unwrap();
    let (table, bus, no_stream) = (FakeTable::default(), FakeBus::default(), FakeStream(vec![]));
    table.put(after);
    assert!(matches!(redrive(&body, &table, &no_stream, &bus).await, Err(RedriveError::Corrupt(_))), "still unreadable: stays");
    table.put(image(&before));
    assert_eq!(redrive(&body, &table, &no_stream, &bus).await.unwrap(), 0, "mended: done, nothing to announce");
    assert!(bus.ids().is_empty());
}

#[tokio::test]
async fn positions_no_longer_in_the_history_are_not_invented() {
    let (table, bus) = (FakeTable::default(), FakeBus::default());
    table.put(image(&task("short")));
    let what = Republish { table_key: serde_json::from_value(serde_json::json!({"orderId": {"S": "short"}})).unwrap(), first: 2, last: Some(3) };
    assert!(matches!(redrive::republish(&table, &bus, &what).await, Err(RedriveError::NotInHistory(_))));
    let open_ended = Republish { first: 1, last: None, ..what };
    assert_eq!(redrive::republish(&table, &bus, &open_ended).await.unwrap(), 1);
}

#[tokio::test]
async fn a_discarded_batch_in_lambdas_shape_is_published_again_from_the_stream_and_the_task_records() {
    let first = received();
    let mut charging = first.clone();
    Change::to(TaskStatus::Charging, Utc::now()).apply(&mut charging);
    let mut completed = charging.clone();
    Change::to(TaskStatus::Completed, Utc::now()).apply(&mut completed);
    let records = vec![
        record_at("200", "INSERT", None, image(&first)),
        record_at("201", "MODIFY", Some(image(&first)), image(&charging)),
        record_at("202", "MODIFY", Some(image(&charging)), image(&charging)), // no status change
        record_at("203", "INSERT", None, image(&task("other"))),
    ];
    assert_eq!(
        changes_in(&records.iter().map(|r| serde_json::from_value(r.clone()).unwrap()).collect::<Vec<_>>())
            .iter()
            .map(|c| (c.first, c.last))
            .collect::<Vec<_>>(),
        [(1, Some(1)), (2, Some(2)), (1, Some(1))]
    );
    let (table, bus) = (FakeTable::default(), FakeBus::default());
    table.put(image(&completed)); // the task has moved on since: positions 2..=2 are still CHARGING
    table.put(image(&task("other")));
    let published = redrive(&lambda_on_failure("201", "203"), &table, &FakeStream(records.clone()), &bus).await.unwrap();
    assert_eq!(published, 2);
    assert_eq!(bus.ids(), [ev("o-1", 2), ev("other", 1)]);
    assert_eq!(bus.sent.lock().unwrap()[0].status, TaskStatus::Charging);

    // Trimmed from the stream (older than 24 hours): named, nothing published.
    let err = redrive(&lambda_on_failure("900", "901"), &table, &FakeStream(records), &bus).await.unwrap_err();
    assert!(matches!(err, RedriveError::StreamRecordsGone(_)), "{err}");
}

#[test]
fn the_batch_response_is_lambdas_shape() {
    assert_eq!(serde_json::to_string(&StreamBatchResponse::default()).unwrap(), r#"{"batchItemFailures":[]}"#);
}

/// alice's purchase `id` through `statuses`, as the workflow writes it (a receipt noted last).
fn closed(id: &str, end: TaskStatus, reason: Option<Reason>) -> Vec<TaskRecord> {
    let mut images = vec![task(id)];
    let mut t = task(id);
    t.execution_arn = Some(format!("arn:aws:states:us-east-1:1:execution:purchase:{}", t.task_id));
    Change::to(TaskStatus::Charging, Utc::now()).apply(&mut t);
    images.push(t.clone());
    let mut change = Change::to(end, Utc::now()).with_charge("ch_1");
    if let Some(reason) = reason {
        change = change.because(reason, None);
    }
    change.apply(&mut t);
    images.push(t.clone());
    t.receipts.push(format!("receipts/YWxpY2U/{id}/{end}.txt"));
    images.push(t);
    images
}

fn writes(images: &[TaskRecord]) -> Vec<serde_json::Value> {
    images
        .iter()
        .enumerate()
        .map(|(i, t)| record_at(&(i + 1).to_string(), if i == 0 { "INSERT" } else { "MODIFY" }, i.checked_sub(1).map(|p| image(&images[p])), image(t)))
        .collect()
}

#[tokio::test]
async fn a_closed_task_gets_one_log_after_its_receipt_with_every_event_announced_even_when_redelivered() {
    let images = closed("o-7", TaskStatus::Completed, None);
    let publisher = publisher();
    // Before the receipt is noted: events, no log.
    publisher.relay(&stream(writes(&images)[..3].to_vec())).await.unwrap();
    assert!(publisher.logs.objects.lock().unwrap().is_empty(), "no log before the notification step closed the task");
    // The receipt's write, then the whole batch again (a redelivery).
    publisher.relay(&stream(writes(&images)[3..].to_vec())).await.unwrap();
    publisher.relay(&stream(writes(&images))).await.unwrap();
    let objects = publisher.logs.objects.lock().unwrap().clone();
    assert_eq!(objects.len(), 1, "one log object");
    let (key, text) = objects.into_iter().next().unwrap();
    assert_eq!(key, taskflow_shared::tasklog::key(&images[3]).unwrap());
    assert_eq!(text, taskflow_shared::tasklog::render(&images[3]));
    let logged: Vec<String> = taskflow_shared::tasklog::parse(&text)
        .unwrap()
        .into_iter()
        .filter_map(|l| match l {
            taskflow_shared::tasklog::LogLine::Transition { event_id, .. } => Some(event_id),
            _ => None,
        })
        .collect();
    let mut announced = publisher.bus.ids();
    announced.dedup();
    announced.sort();
    announced.dedup();
    let mut expected = logged.clone();
    expected.sort();
    assert_eq!(announced, expected, "the log lists exactly the events announced");
    assert_eq!(logged, [ev("o-7", 1), ev("o-7", 2), ev("o-7", 3)], "in order");
}

#[tokio::test]
async fn a_closed_tasks_log_names_its_execution_derived_from_the_workflows() {
    // The intake notes no execution ARN: the publisher derives it for the log.
    let mut images = closed("o-8", TaskStatus::Completed, None);
    for image in &mut images {
        image.execution_arn = None;
    }
    let workflows = taskflow_shared::executions::WorkflowArns {
        purchase: "arn:aws:states:us-east-1:1:stateMachine:purchase".into(),
        refund: "arn:aws:states:us-east-1:1:stateMachine:refund".into(),
    };
    let publisher = Publisher { workflows: Some(workflows), ..publisher() };
    publisher.relay(&stream(writes(&images))).await.unwrap();
    let objects = publisher.logs.objects.lock().unwrap().clone();
    let text = objects.values().next().expect("the log").clone();
    let lines = taskflow_shared::tasklog::parse(&text).unwrap();
    let taskflow_shared::tasklog::LogLine::Task { execution_arn, task_id, .. } = &lines[0] else { panic!("{:?}", lines[0]) };
    assert_eq!(execution_arn.as_deref(), Some(format!("arn:aws:states:us-east-1:1:execution:purchase:{task_id}").as_str()));
}

#[tokio::test]
async fn a_task_rejected_at_intake_is_logged_at_once() {
    let rejected = TaskRecord::new("o-8", "alice", TaskStatus::Rejected, Some(Reason::UnknownSku), Utc::now());
    let publisher = publisher();
    publisher.relay(&stream(vec![record("INSERT", None, &rejected)])).await.unwrap();
    let objects = publisher.logs.objects.lock().unwrap().clone();
    assert_eq!(objects.keys().cloned().collect::<Vec<_>>(), [format!("logs/YWxpY2U/o-8/{}.jsonl", rejected.task_id)]);
}

#[tokio::test]
async fn a_log_that_cannot_be_written_fails_its_record_for_a_retry() {
    let images = closed("o-9", TaskStatus::Failed, Some(Reason::PaymentDeclined));
    let publisher = publisher();
    publisher.logs.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let relayed = publisher.relay(&stream(writes(&images))).await.unwrap();
    assert_eq!(relayed.response.batch_item_failures, [BatchItemFailure { item_identifier: "4".into() }]);
    publisher.logs.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let relayed = publisher.relay(&stream(writes(&images)[3..].to_vec())).await.unwrap();
    assert!(relayed.response.batch_item_failures.is_empty());
    assert_eq!(publisher.logs.objects.lock().unwrap().len(), 1);
}

fn attachment(id: &str) -> taskflow_contracts::Attachment {
    taskflow_contracts::Attachment {
        id: id.to_string(),
        name: "note.pdf".into(),
        size: 9,
        content_type: "application/pdf".into(),
        checksum: format!("sha256:{}", "0".repeat(64)),
        uploaded_at: Utc::now(),
    }
}

#[tokio::test]
async fn each_recorded_attachment_is_one_task_attachment_added_event_and_no_status_event() {
    let before = received();
    let mut one = before.clone();
    one.attachments.push(attachment(&format!("a-{}", "1".repeat(32))));
    let mut two = one.clone();
    two.attachments.push(attachment(&format!("a-{}", "2".repeat(32))));
    let p = publisher();
    // The write that records the first, delivered twice; then the second.
    let batch = stream(vec![record_at("1", "MODIFY", Some(image(&before)), image(&one)), record_at("2", "MODIFY", Some(image(&before)), image(&one)), record_at("3", "MODIFY", Some(image(&one)), image(&two))]);
    let relayed = p.relay(&batch).await.unwrap();
    assert_eq!(relayed.published, 3);
    assert!(p.bus.ids().is_empty(), "recording an attachment changes no status");
    let attached = p.bus.attached.lock().unwrap().clone();
    let ids: Vec<String> = attached.iter().map(|e| e.event_id.clone()).collect();
    let first = format!("{}@a-{}", before.task_id, "1".repeat(32));
    assert_eq!(ids, vec![first.clone(), first, format!("{}@a-{}", before.task_id, "2".repeat(32))], "a duplicate delivery repeats the same id");
    assert_eq!((attached[2].position, attached[2].owner.as_str(), attached[2].order_id.as_str()), (2, "alice", "o-1"));
}

#[tokio::test]
async fn an_attachment_the_bus_refuses_is_retried_from_its_record() {
    let before = received();
    let mut one = before.clone();
    one.attachments.push(attachment(&format!("a-{}", "1".repeat(32))));
    let p = Publisher { bus: FakeBus { down: vec!["o-1".into()], ..FakeBus::default() }, dead_letters: FakeDeadLetters::default(), logs: InMemoryTaskLogs::default(), workflows: None };
    let relayed = p.relay(&stream(vec![record_at("7", "MODIFY", Some(image(&before)), image(&one))])).await.unwrap();
    assert_eq!(relayed.response.batch_item_failures, vec![BatchItemFailure { item_identifier: "7".into() }]);
}
