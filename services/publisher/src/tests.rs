use super::*;
use async_trait::async_trait;
use chrono::Utc;
use std::sync::Mutex;
use taskflow_contracts::{OrderKind, Reason, TaskStatus};
use taskflow_shared::tasks::Change;

#[derive(Default)]
struct FakeBus(Mutex<Vec<TaskStatusChanged>>);

#[async_trait]
impl EventBus for FakeBus {
    async fn publish(&self, events: &[TaskStatusChanged]) -> Result<(), PublishError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

fn received() -> TaskRecord {
    let mut t = TaskRecord::new("o-1", "alice", TaskStatus::Received, None, Utc::now());
    t.kind = Some(OrderKind::Purchase);
    t
}

fn record(name: &str, old: Option<&TaskRecord>, new: &TaskRecord) -> serde_json::Value {
    let image = |t: &TaskRecord| serde_json::to_value(serde_dynamo::to_item::<_, serde_dynamo::Item>(t).unwrap()).unwrap();
    let mut change = serde_json::json!({"Keys": {"orderId": {"S": "o-1"}}, "NewImage": image(new),
        "SequenceNumber": "1", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES",
        "ApproximateCreationDateTime": 1_700_000_000.0});
    if let Some(old) = old {
        change["OldImage"] = image(old);
    }
    serde_json::json!({"eventID": "e1", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1", "dynamodb": change, "eventSourceARN": "arn:stream"})
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
    let publisher = Publisher { bus: FakeBus::default() };
    let event = stream(vec![
        record("INSERT", None, &first),
        record("MODIFY", Some(&first), &charging),
        record("REMOVE", Some(&charging), &TaskRecord { history: vec![], ..charging.clone() }),
    ]);
    assert_eq!(publisher.relay(&event).await.unwrap(), 2);
    let sent = publisher.bus.0.lock().unwrap().clone();
    assert_eq!(sent.iter().map(|e| e.status).collect::<Vec<_>>(), [TaskStatus::Received, TaskStatus::Charging]);
}

#[tokio::test]
async fn a_record_that_is_not_a_task_is_a_named_error() {
    let publisher = Publisher { bus: FakeBus::default() };
    let mut bad = record("INSERT", None, &received());
    bad["dynamodb"]["NewImage"]["status"] = serde_json::json!({"S": "LOST"});
    let err = publisher.relay(&stream(vec![bad])).await.unwrap_err();
    assert!(err.to_string().starts_with("CorruptTaskRecord"));
    assert!(publisher.bus.0.lock().unwrap().is_empty());
}
