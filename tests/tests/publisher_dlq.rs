//! Status events: one bad record never costs its neighbours theirs. A task record the publisher
//! cannot read is set aside in its dead-letter queue with its key; the records around it are
//! published; `taskflow dlq redrive publisher` publishes it again from the task record — from
//! the publisher's own note and from Lambda's on-failure shape alike.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use taskflow_contracts::{keys, OrderKind, TaskStatus, TaskStatusChanged};
use taskflow_e2e::{log_dir, order_id, stack, Run};
use taskflow_publisher::dead::UnpublishedChange;
use taskflow_shared::tasks::TaskRecord;

/// Both tests use the one publisher dead-letter queue: one at a time.
static QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn item(task: &TaskRecord) -> HashMap<String, AttributeValue> {
    serde_dynamo::to_item(task).unwrap()
}

/// The task id (the table key) of the backfill owner's order `id`.
fn tid(id: &str) -> String {
    keys::task_id("backfill", id)
}

fn good(id: &str) -> TaskRecord {
    let mut task = TaskRecord::new(id, "backfill", TaskStatus::Received, None, chrono::Utc::now());
    task.kind = Some(OrderKind::Purchase);
    task
}

/// What a backfill script might write: a status no version of the publisher knows.
fn backfilled(id: &str) -> HashMap<String, AttributeValue> {
    let mut bad = item(&good(id));
    bad.insert("status".into(), AttributeValue::S("ARCHIVED".into()));
    let AttributeValue::L(history) = bad["history"].clone() else { panic!("history is a list") };
    let mut entry = history[0].as_m().unwrap().clone();
    entry.insert("status".into(), AttributeValue::S("ARCHIVED".into()));
    bad.insert("history".into(), AttributeValue::L(vec![AttributeValue::M(entry)]));
    bad
}

/// Status events of `ids` until each has `want` distinct event ids (or `wait` passes), every
/// delivery kept (duplicates too).
async fn events_of(run: &Run, ids: &[&str], want: usize, wait: Duration) -> HashMap<String, Vec<TaskStatusChanged>> {
    let deadline = Instant::now() + wait;
    let mut seen: HashMap<String, Vec<TaskStatusChanged>> = ids.iter().map(|id| (id.to_string(), Vec::new())).collect();
    let enough = |seen: &HashMap<String, Vec<TaskStatusChanged>>| {
        seen.values().all(|events| events.iter().map(|e| &e.event_id).collect::<std::collections::HashSet<_>>().len() >= want)
    };
    while !enough(&seen) && Instant::now() < deadline {
        for event in run.feed.next(Duration::from_secs(1)).await.unwrap() {
            if let Some(events) = seen.get_mut(&event.order_id) {
                events.push(event);
            }
        }
    }
    seen
}

async fn publisher_dlq(run: &Run) -> (aws_sdk_sqs::Client, String) {
    (aws_sdk_sqs::Client::new(&run.aws), taskflow::dlq::find(stack(), "publisher").unwrap().url)
}

/// The publisher DLQ's message bodies (looked at, left in place).
async fn dead_letters(run: &Run) -> Vec<String> {
    let (sqs, url) = publisher_dlq(run).await;
    let mut bodies = Vec::new();
    taskflow::dlq::drain(&sqs, &url, false, 100, |dead, _| {
        bodies.push(dead.body);
        async { Ok(()) }
    })
    .await
    .unwrap();
    bodies
}

/// Empties the publisher DLQ, so a test starts from what it puts there itself (and a failed
/// test's leftovers do not fail the next one).
async fn empty_dlq(run: &Run) {
    let (sqs, url) = publisher_dlq(run).await;
    taskflow::dlq::drain(&sqs, &url, true, 100, |_, _| async { Ok(()) }).await.unwrap();
}

/// Redrives the publisher DLQ as `taskflow dlq redrive publisher` does: (published, left with
/// their errors).
async fn redrive() -> (usize, Vec<String>) {
    let mut left = Vec::new();
    let published = taskflow::dlq::redrive(stack(), "publisher", false, |dead| left.extend(dead.error.clone())).await.unwrap();
    (published, left)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_stream_record_costs_its_neighbours_nothing_and_is_published_again_once_mended() {
    let _queue = QUEUE.lock().await;
    let run = Run::new().await;
    empty_dlq(&run).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&run.aws);
    let table = stack().output("TaskTableName").unwrap().to_string();
    let (first, second, bad, third) = (order_id("nbr-a"), order_id("nbr-b"), order_id("backfilled"), order_id("nbr-c"));

    // One request, so one stream batch: two good records, the bad one, a good one after it.
    let put = |item: HashMap<String, AttributeValue>| WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build();
    dynamodb
        .batch_write_item()
        .request_items(&table, vec![put(item(&good(&first))), put(item(&good(&second))), put(backfilled(&bad)), put(item(&good(&third)))])
        .send()
        .await
        .unwrap();

    // Every good record announced, the one after the bad record too.
    let events = events_of(&run, &[&first, &second, &third], 1, Duration::from_secs(30)).await;
    for id in [&first, &second, &third] {
        let ids: Vec<&str> = events[id.as_str()].iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, [format!("{}#1", tid(id))], "{id}: {events:?}");
        assert_eq!(events[id.as_str()][0].status, TaskStatus::Received);
    }
    // They were one batch, and the publisher set one record of it aside. The publisher logs its
    // summary once the batch's last event is published, so the line can land in the log after the
    // test has seen that event: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(log_dir().join("publisher.log")).unwrap_or_default();
        let batch = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["set_aside"] == 1 && l["records"].as_u64().is_some_and(|n| n >= 4));
        if batch.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no batch of 4+ records with one set aside in the publisher's log:\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The bad one is in the publisher's DLQ with its key and history positions.
    let deadline = Instant::now() + Duration::from_secs(20);
    let note = loop {
        let notes: Vec<UnpublishedChange> =
            dead_letters(&run).await.iter().filter_map(|b| serde_json::from_str::<UnpublishedChange>(b).ok()).filter(|n| n.order_id.as_deref() == Some(bad.as_str())).collect();
        if let Some(note) = notes.first() {
            assert_eq!(notes.len(), 1, "set aside once: {notes:?}");
            break note.clone();
        }
        assert!(Instant::now() < deadline, "{bad} not in the publisher's dead-letter queue");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(serde_json::to_value(&note.table_key).unwrap(), serde_json::json!({"taskId": {"S": tid(&bad)}}));
    assert_eq!((note.first_sequence, note.last_sequence), (1, Some(1)));
    assert!(note.reason.starts_with("CorruptTaskRecord") && note.reason.contains("ARCHIVED"), "{}", note.reason);

    // A dry run reads what the redrive would and says the same: not publishable yet.
    let mut said = Vec::new();
    let would = taskflow::dlq::redrive(stack(), "publisher", true, |dead| said.extend(dead.error.clone())).await.unwrap();
    assert_eq!(would, 0, "a dry run does not promise what the redrive cannot do: {said:?}");
    assert!(said.iter().any(|e| e.starts_with("CorruptTaskRecord")), "{said:?}");

    // Redriven as it is: still unreadable, nothing published, the message stays.
    let (published, left) = redrive().await;
    assert_eq!(published, 0);
    assert!(left.iter().any(|e| e.starts_with("CorruptTaskRecord") && e.contains(&tid(&bad))), "{left:?}");
    assert_eq!(dead_letters(&run).await.len(), 1);

    // Mended by an operator. The mending write announces nothing by itself…
    dynamodb
        .update_item()
        .table_name(&table)
        .key("taskId", AttributeValue::S(tid(&bad)))
        .update_expression("SET #s = :s, history[0].#s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", AttributeValue::S("RECEIVED".into()))
        .send()
        .await
        .unwrap();
    let early = events_of(&run, &[&bad], 1, Duration::from_secs(3)).await;
    assert!(early[bad.as_str()].is_empty(), "the mending write announced {:?}", early[bad.as_str()]);

    // …the redrive publishes the set-aside event, with the id the publisher would have given it.
    let (published, left) = redrive().await;
    assert_eq!((published, left), (1, vec![]));
    let events = events_of(&run, &[&bad], 1, Duration::from_secs(20)).await;
    let events = &events[bad.as_str()];
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].event_id.clone(), events[0].status, events[0].sequence), (format!("{}#1", tid(&bad)), TaskStatus::Received, 1));
    let (sqs, url) = publisher_dlq(&run).await;
    assert_eq!(taskflow::dlq::depth(&sqs, &url).await.unwrap(), 0, "the redrive emptied the queue");
    run.close().await;
}

/// The stream shard holding `order_id`'s INSERT, and its sequence number, read as an outside
/// client would (DescribeTable → the stream, TRIM_HORIZON → GetRecords).
async fn stream_position(run: &Run, order_id: &str) -> (String, String, String) {
    let dynamodb = aws_sdk_dynamodb::Client::new(&run.aws);
    let streams = aws_sdk_dynamodbstreams::Client::new(&run.aws);
    let table = dynamodb.describe_table().table_name(stack().output("TaskTableName").unwrap()).send().await.unwrap();
    let stream_arn = table.table.unwrap().latest_stream_arn.unwrap();
    let shards = streams.describe_stream().stream_arn(&stream_arn).send().await.unwrap().stream_description.unwrap().shards.unwrap_or_default();
    for shard in shards {
        let shard_id = shard.shard_id.unwrap();
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(&shard_id)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(current) = iterator.take() {
            let out = streams.get_records().shard_iterator(current).limit(1000).send().await.unwrap();
            let records = out.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            for record in records {
                let change = record.dynamodb.unwrap();
                if change.keys.as_ref().and_then(|k| k.get("taskId")).and_then(|v| v.as_s().ok()) == Some(&tid(order_id)) {
                    return (stream_arn, shard_id, change.sequence_number.unwrap());
                }
            }
            iterator = out.next_shard_iterator;
        }
    }
    panic!("{order_id} not in the task table's stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_lambda_gave_up_on_is_published_again_from_the_stream_and_the_task_record() {
    let _queue = QUEUE.lock().await;
    let run = Run::new().await;
    empty_dlq(&run).await;
    let id = order_id("gave-up");
    aws_sdk_dynamodb::Client::new(&run.aws)
        .put_item()
        .table_name(stack().output("TaskTableName").unwrap())
        .set_item(Some(item(&good(&id))))
        .send()
        .await
        .unwrap();
    assert_eq!(events_of(&run, &[&id], 1, Duration::from_secs(30)).await[id.as_str()].len(), 1);

    // What Lambda sends its on-failure destination when it gives up on a stream batch: batch
    // metadata only (AWS Lambda developer guide, "Retain discarded records for a DynamoDB event
    // source").
    let (stream_arn, shard_id, sequence) = stream_position(&run, &id).await;
    let on_failure = |start: &str, end: &str| {
        serde_json::json!({
            "requestContext": {"requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:taskflow-local-publisher",
                "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0", "timestamp": "2026-11-29T00:13:49.717Z",
            "DDBStreamBatchInfo": {"shardId": shard_id, "startSequenceNumber": start, "endSequenceNumber": end,
                "approximateArrivalOfFirstRecord": "2026-11-29T00:13:19Z", "approximateArrivalOfLastRecord": "2026-11-29T00:13:19Z",
                "batchSize": 1, "streamArn": stream_arn}
        })
        .to_string()
    };
    let (sqs, url) = publisher_dlq(&run).await;
    sqs.send_message().queue_url(&url).message_body(on_failure(&sequence, &sequence)).send().await.unwrap();
    // And one for records the stream does not have (past its end here; on AWS, past 24 hours).
    let beyond = format!("{}", sequence.parse::<u128>().unwrap() + 1_000_000);
    sqs.send_message().queue_url(&url).message_body(on_failure(&beyond, &beyond)).send().await.unwrap();

    let (published, left) = redrive().await;
    assert_eq!(published, 1, "{left:?}");
    assert!(left.len() == 1 && left[0].starts_with("StreamRecordsGone"), "{left:?}");
    // The event again, same id (a consumer drops it as a repeat).
    let again = events_of(&run, &[&id], 1, Duration::from_secs(20)).await;
    assert_eq!(again[id.as_str()].iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), [format!("{}#1", tid(&id))]);
    // What could not be published stays; nothing else does.
    let bodies = dead_letters(&run).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].contains(&beyond));
    taskflow::dlq::drain(&sqs, &url, true, 10, |_, _| async { Ok(()) }).await.unwrap();
    run.close().await;
}
