//! Event source mappings, as Lambda runs them: poll a queue or a stream, invoke the function with
//! a batch in the Lambda event format, and settle the batch from the outcome.
//!
//! - SQS: on success the batch is deleted, except the items the function reported in
//!   `batchItemFailures` (with `ReportBatchItemFailures`); on an error nothing is deleted, so the
//!   messages come back after their visibility timeout and reach the DLQ after `maxReceiveCount`.
//! - DynamoDB stream: a failed batch is retried up to `MaximumRetryAttempts`, then described in a
//!   message to the on-failure destination and skipped, like Lambda does.

use crate::host::{Function, Outcome};
use crate::plan::EventSourceSpec;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The clients an event source polls with: signed with the function's own credentials, since
/// Lambda reads the queue or stream, and sends to the on-failure destination, with the function's
/// execution role (Lambda Developer Guide: "Using Lambda with Amazon SQS", execution role
/// permissions sqs:ReceiveMessage / DeleteMessage / GetQueueAttributes; "Using Lambda with
/// DynamoDB", dynamodb:DescribeStream / GetRecords / GetShardIterator / ListStreams and the
/// on-failure destination's sqs:SendMessage — all in the function's execution role).
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub region: String,
    /// Fault injection: deliver every SQS batch twice.
    pub duplicate_deliveries: bool,
}

impl Clients {
    /// Clients of `aws` (endpoint, region) signed with `function`'s credentials.
    pub fn of(aws: &aws_config::SdkConfig, function: &crate::plan::FunctionSpec, region: &str, duplicate_deliveries: bool) -> Clients {
        let credentials = aws_sdk_sqs::config::Credentials::new(&function.access_key_id, &function.secret_access_key, None, None, "taskflow-local-function");
        let config = aws.to_builder().credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(credentials)).build();
        Clients {
            sqs: aws_sdk_sqs::Client::new(&config),
            streams: aws_sdk_dynamodbstreams::Client::new(&config),
            region: region.to_string(),
            duplicate_deliveries,
        }
    }
}

/// A queue's URL from its ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`), as Lambda addresses the queue
/// of a mapping without a GetQueueUrl call (which the role does not grant).
pub fn queue_url(arn: &str) -> String {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        [_, _, _, region, account, name] => format!("https://sqs.{region}.amazonaws.com/{account}/{name}"),
        _ => arn.to_string(),
    }
}

/// Starts the poller for one mapping.
pub fn start(spec: EventSourceSpec, function: Arc<Function>, clients: Arc<Clients>, shutdown: watch::Receiver<bool>) {
    if spec.source_arn.starts_with("arn:aws:sqs:") {
        tokio::spawn(poll_queue(spec, function, clients, shutdown));
    } else {
        tokio::spawn(poll_stream(spec, function, clients, shutdown));
    }
}

/// The queue name is the last part of its ARN.
pub fn queue_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

async fn poll_queue(spec: EventSourceSpec, function: Arc<Function>, clients: Arc<Clients>, mut shutdown: watch::Receiver<bool>) {
    let queue_url = queue_url(&spec.source_arn);
    while !*shutdown.borrow() {
        let received = tokio::select! {
            r = clients.sqs.receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(spec.batch_size.clamp(1, 10) as i32)
                .wait_time_seconds(1)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send() => r,
            _ = crate::process::stopped(&mut shutdown) => return,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                if !*shutdown.borrow() {
                    eprintln!("host: receiving from {}: {}", spec.source_arn, aws_sdk_sqs::error::DisplayErrorContext(&e));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let event = json!({ "Records": messages.iter().map(|m| sqs_record(m, &spec.source_arn, &clients.region)).collect::<Vec<_>>() });
        let payload = serde_json::to_vec(&event).expect("events serialise");
        let outcome = function.invoke(payload.clone()).await;
        if clients.duplicate_deliveries {
            // At-least-once, made visible: the same messages again, before they are deleted.
            function.invoke(payload).await;
        }
        let keep: Vec<String> = match &outcome {
            Outcome::Response(body) if spec.report_batch_item_failures => match failed_items(body) {
                Some(ids) => ids,
                None => continue,
            },
            Outcome::Response(_) => Vec::new(),
            // Nothing is deleted: the whole batch comes back after its visibility timeout.
            Outcome::Error(_) | Outcome::Crashed(_) => continue,
        };
        let done: Vec<_> = messages
            .iter()
            .filter(|m| !keep.iter().any(|k| Some(k.as_str()) == m.message_id.as_deref()))
            .collect();
        for chunk in done.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, m)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .build()
                    .expect("id and receipt handle are set")
            });
            if let Err(e) = clients.sqs.delete_message_batch().queue_url(&queue_url).set_entries(Some(entries.collect())).send().await {
                eprintln!("host: deleting from {}: {}", spec.source_arn, aws_sdk_sqs::error::DisplayErrorContext(&e));
            }
        }
    }
}

/// The ids a function reported in `batchItemFailures`; `None` when the response cannot be read,
/// which fails the whole batch, as on Lambda.
pub fn failed_items(body: &[u8]) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(rename = "itemIdentifier")]
        item_identifier: String,
    }
    #[derive(serde::Deserialize)]
    struct Response {
        #[serde(rename = "batchItemFailures", default)]
        batch_item_failures: Vec<Item>,
    }
    match serde_json::from_slice::<Option<Response>>(body) {
        Ok(Some(r)) => Some(r.batch_item_failures.into_iter().map(|i| i.item_identifier).collect()),
        Ok(None) => Some(Vec::new()),
        Err(_) => None,
    }
}

fn sqs_record(m: &aws_sdk_sqs::types::Message, source_arn: &str, region: &str) -> Value {
    let attributes: Map<String, Value> = m
        .attributes
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone())))
        .collect();
    let message_attributes: Map<String, Value> = m
        .message_attributes
        .iter()
        .flatten()
        .map(|(k, v)| {
            (k.clone(), json!({
                "stringValue": v.string_value,
                "binaryValue": v.binary_value.as_ref().map(|b| aws_smithy_types::base64::encode(b.as_ref())),
                "stringListValues": [], "binaryListValues": [],
                "dataType": v.data_type,
            }))
        })
        .collect();
    json!({
        "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
        "attributes": attributes, "messageAttributes": message_attributes, "md5OfBody": m.md5_of_body,
        "eventSource": "aws:sqs", "eventSourceARN": source_arn, "awsRegion": region,
    })
}

/// Beyond this many retries the host gives up even when the template says "forever" (-1).
const MAX_STREAM_RETRIES: i64 = 10_000;

async fn poll_stream(spec: EventSourceSpec, function: Arc<Function>, clients: Arc<Clients>, shutdown: watch::Receiver<bool>) {
    let start_at = match spec.starting_position.as_deref() {
        Some("LATEST") => ShardIteratorType::Latest,
        _ => ShardIteratorType::TrimHorizon,
    };
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    while !*shutdown.borrow() {
        // New shards appear over time on AWS; pick them up as they come.
        if let Ok(out) = clients.streams.describe_stream().stream_arn(&spec.source_arn).send().await {
            for shard in out.stream_description.and_then(|d| d.shards).unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                if iterators.contains_key(&id) {
                    continue;
                }
                let iterator = clients
                    .streams
                    .get_shard_iterator()
                    .stream_arn(&spec.source_arn)
                    .shard_id(&id)
                    .shard_iterator_type(start_at.clone())
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.shard_iterator);
                iterators.insert(id, iterator);
            }
        }
        let mut any = false;
        for (shard_id, iterator) in iterators.iter_mut() {
            let Some(current) = iterator.clone() else { continue };
            let out = match clients.streams.get_records().shard_iterator(&current).limit(spec.batch_size as i32).send().await {
                Ok(out) => out,
                Err(e) => {
                    eprintln!("host: reading {}: {}", spec.source_arn, aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e));
                    continue;
                }
            };
            *iterator = out.next_shard_iterator;
            let records = out.records.unwrap_or_default();
            if records.is_empty() {
                continue;
            }
            any = true;
            deliver_stream_batch(&spec, &function, &clients, shard_id, &records, &shutdown).await;
        }
        if !any {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn deliver_stream_batch(
    spec: &EventSourceSpec,
    function: &Function,
    clients: &Clients,
    shard_id: &str,
    records: &[Record],
    shutdown: &watch::Receiver<bool>,
) {
    let event = json!({ "Records": records.iter().map(|r| stream_record(r, &spec.source_arn, &clients.region)).collect::<Vec<_>>() });
    let payload = serde_json::to_vec(&event).expect("events serialise");
    let retries = if spec.maximum_retry_attempts < 0 { MAX_STREAM_RETRIES } else { spec.maximum_retry_attempts };
    let mut delay = Duration::from_millis(100);
    for attempt in 0..=retries {
        match function.invoke(payload.clone()).await {
            Outcome::Response(_) => return,
            outcome if attempt == retries || *shutdown.borrow() => {
                eprintln!("host: {} gave up on a stream batch of {} records: {outcome:?}", function.spec.name, records.len());
                let Some(destination) = &spec.on_failure_arn else { return };
                let seq = |r: &Record| r.dynamodb.as_ref().and_then(|d| d.sequence_number.clone());
                let note = json!({
                    "requestContext": { "functionArn": function.spec.name, "condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempt + 1 },
                    "DDBStreamBatchInfo": {
                        "shardId": shard_id, "streamArn": spec.source_arn, "batchSize": records.len(),
                        "startSequenceNumber": records.first().and_then(seq), "endSequenceNumber": records.last().and_then(seq),
                    },
                });
                if let Err(e) = clients.sqs.send_message().queue_url(queue_url(destination)).message_body(note.to_string()).send().await {
                    eprintln!("host: {} could not send to its on-failure destination {destination}: {}", function.spec.name, aws_sdk_sqs::error::DisplayErrorContext(&e));
                }
                return;
            }
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn stream_record(r: &Record, source_arn: &str, region: &str) -> Value {
    let change = r.dynamodb.as_ref();
    let image = |m: Option<&HashMap<String, AttributeValue>>| m.map(|m| Value::Object(item_json(m)));
    json!({
        "eventID": r.event_id, "eventName": r.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": r.event_version, "eventSource": "aws:dynamodb", "awsRegion": region,
        "eventSourceARN": source_arn,
        "dynamodb": {
            "ApproximateCreationDateTime": change.and_then(|c| c.approximate_creation_date_time).map(|t| t.as_secs_f64()),
            "Keys": image(change.and_then(|c| c.keys.as_ref())),
            "NewImage": image(change.and_then(|c| c.new_image.as_ref())),
            "OldImage": image(change.and_then(|c| c.old_image.as_ref())),
            "SequenceNumber": change.and_then(|c| c.sequence_number.clone()),
            "SizeBytes": change.and_then(|c| c.size_bytes),
            "StreamViewType": change.and_then(|c| c.stream_view_type.as_ref()).map(|v| v.as_str()),
        },
    })
}

fn item_json(item: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    item.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect()
}

/// DynamoDB JSON (`{"S": "x"}`), as Lambda hands stream images to functions.
pub fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |b: &aws_smithy_types::Blob| Value::String(aws_smithy_types::base64::encode(b.as_ref()));
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item_json(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_item_failures_are_read_and_an_unreadable_answer_fails_everything() {
        assert_eq!(failed_items(br#"{"batchItemFailures":[{"itemIdentifier":"m2"}]}"#), Some(vec!["m2".to_string()]));
        assert_eq!(failed_items(br#"{"batchItemFailures":[]}"#), Some(vec![]));
        assert_eq!(failed_items(b"null"), Some(vec![]));
        assert_eq!(failed_items(b"garbage"), None);
    }

    #[test]
    fn a_queue_is_addressed_by_the_url_of_its_arn() {
        assert_eq!(queue_url("arn:aws:sqs:us-east-1:123456789012:taskflow-local-purchase"), "https://sqs.us-east-1.amazonaws.com/123456789012/taskflow-local-purchase");
    }

    #[test]
    fn stream_images_are_dynamodb_json() {
        let value = AttributeValue::M(HashMap::from([
            ("n".to_string(), AttributeValue::N("5".into())),
            ("l".to_string(), AttributeValue::L(vec![AttributeValue::S("x".into()), AttributeValue::Bool(true)])),
        ]));
        assert_eq!(attribute_json(&value), json!({"M": {"n": {"N": "5"}, "l": {"L": [{"S": "x"}, {"BOOL": true}]}}}));
    }
}
