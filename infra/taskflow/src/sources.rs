//! Event source mappings, as Lambda runs them: poll a queue or a stream, invoke the function with
//! a batch in the Lambda event format, and settle the batch from the outcome.
//!
//! - SQS: on success the batch is deleted, except the items the function reported in
//!   `batchItemFailures` (with `ReportBatchItemFailures`); on an error nothing is deleted, so the
//!   messages come back after their visibility timeout and reach the DLQ after `maxReceiveCount`.
//! - DynamoDB stream: as Lambda does ([`after_stream_invoke`]): with `ReportBatchItemFailures`
//!   the records before the lowest reported sequence number are done and the rest is retried;
//!   a function error (or an unreadable answer) splits the batch in halves with
//!   `BisectBatchOnFunctionError`, else retries it; after `MaximumRetryAttempts` the part still
//!   failing is described (Lambda's `DDBStreamBatchInfo`) to the on-failure destination and
//!   skipped, and the records after it are delivered.

use crate::host::{Function, Outcome};
use crate::plan::EventSourceSpec;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
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
    let spec = Arc::new(spec);
    // As many batches at once as the function has environments: Lambda's SQS pollers run
    // several batches concurrently (five at first), each in its own environment.
    let batches = Arc::new(tokio::sync::Semaphore::new(function.environments()));
    while !*shutdown.borrow() {
        let permit = tokio::select! {
            permit = batches.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = crate::process::stopped(&mut shutdown) => return,
        };
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
        let (spec, function, clients, queue_url) = (spec.clone(), function.clone(), clients.clone(), queue_url.clone());
        tokio::spawn(async move {
            run_batch(&spec, &function, &clients, &queue_url, messages).await;
            drop(permit);
        });
    }
}

/// Invokes the function with one batch and deletes what it handled.
async fn run_batch(spec: &EventSourceSpec, function: &Arc<Function>, clients: &Clients, queue_url: &str, messages: Vec<aws_sdk_sqs::types::Message>) {
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
            None => return,
        },
        Outcome::Response(_) => Vec::new(),
        // Nothing is deleted: the whole batch comes back after its visibility timeout.
        Outcome::Error(_) | Outcome::Crashed(_) => return,
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
        if let Err(e) = clients.sqs.delete_message_batch().queue_url(queue_url).set_entries(Some(entries.collect())).send().await {
            eprintln!("host: deleting from {}: {}", spec.source_arn, aws_sdk_sqs::error::DisplayErrorContext(&e));
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

/// How a stream event source mapping treats failures (its template properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRetry {
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// `BisectBatchOnFunctionError`.
    pub bisect: bool,
    /// `MaximumRetryAttempts` (-1, "until the record expires", capped at [`MAX_STREAM_RETRIES`]).
    pub max_retries: i64,
}

impl StreamRetry {
    pub fn of(spec: &EventSourceSpec) -> Self {
        StreamRetry {
            report_batch_item_failures: spec.report_batch_item_failures,
            bisect: spec.bisect_batch_on_function_error,
            max_retries: if spec.maximum_retry_attempts < 0 { MAX_STREAM_RETRIES } else { spec.maximum_retry_attempts },
        }
    }
}

/// A run of the records read from a shard (`start..end`), and how many times it has been retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub start: usize,
    pub end: usize,
    pub retries: i64,
}

/// What the function made of a part.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// It returned this body.
    Response(&'a [u8]),
    /// It returned an error, crashed or timed out.
    Failed,
}

/// What comes after one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Deliver these parts, in this order (none: every record of the part is done).
    Deliver(Vec<Part>),
    /// Give up on this part: describe it to the on-failure destination and go on past it.
    Discard(Part),
}

/// How far a stream partial batch response lets the batch go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Every record is done.
    Done,
    /// The records before this index are done; it and the rest are retried.
    RetryFrom(usize),
    /// The whole batch failed.
    Failed,
}

/// Reads a partial batch response for stream records with these `sequence_numbers` (AWS Lambda
/// developer guide, "Configuring partial batch response with DynamoDB and Lambda", success and
/// failure conditions): an empty or null `batchItemFailures`, an empty or null response are a
/// complete success; Lambda checkpoints at the lowest sequence number reported and retries from
/// it; an unreadable response, an `itemIdentifier` that is empty, null, not a string, under
/// another key name, or not a sequence number of the batch fail the whole batch.
pub fn stream_checkpoint(body: &[u8], sequence_numbers: &[String]) -> Checkpoint {
    let text = String::from_utf8_lossy(body);
    let response: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => return Checkpoint::Failed,
        }
    };
    let failures = match &response {
        Value::Null => return Checkpoint::Done,
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => return Checkpoint::Done,
            Some(Value::Array(items)) => items,
            Some(_) => return Checkpoint::Failed,
        },
        _ => return Checkpoint::Failed,
    };
    let mut lowest: Option<usize> = None;
    for item in failures {
        let Some(id) = item.get("itemIdentifier").and_then(Value::as_str).filter(|id| !id.is_empty()) else {
            return Checkpoint::Failed;
        };
        let Some(at) = sequence_numbers.iter().position(|s| s == id) else { return Checkpoint::Failed };
        lowest = Some(lowest.map_or(at, |l| l.min(at)));
    }
    lowest.map_or(Checkpoint::Done, Checkpoint::RetryFrom)
}

/// What Lambda does after invoking the function with `part` of the records whose sequence
/// numbers are `sequence_numbers` (AWS Lambda developer guide: "Configuring partial batch response
/// with DynamoDB and Lambda", "Retain discarded records for a DynamoDB event source"):
/// - a response, without `ReportBatchItemFailures`: done;
/// - a partial batch response: done up to its checkpoint; the rest is retried (with
///   `BisectBatchOnFunctionError` too: "the batch is bisected at the returned sequence number
///   and Lambda retries only the remaining records");
/// - a function error (or an answer that fails the whole batch): with `BisectBatchOnFunctionError`
///   a part of two or more records is split in halves, each delivered — "splitting a batch does
///   not count towards the retry quota" — else the part is retried;
/// - a retry beyond `MaximumRetryAttempts` is not made: the failing part is discarded (to the
///   on-failure destination), and only it.
pub fn after_stream_invoke(policy: StreamRetry, part: Part, sequence_numbers: &[String], answer: Answer<'_>) -> Next {
    let failed_from = match answer {
        Answer::Response(_) if !policy.report_batch_item_failures => return Next::Deliver(Vec::new()),
        Answer::Response(body) => match stream_checkpoint(body, &sequence_numbers[part.start..part.end]) {
            Checkpoint::Done => return Next::Deliver(Vec::new()),
            Checkpoint::RetryFrom(at) => Some(part.start + at),
            Checkpoint::Failed => None,
        },
        Answer::Failed => None,
    };
    let failing = match failed_from {
        Some(from) => Part { start: from, ..part },
        None if policy.bisect && part.end - part.start > 1 => {
            let middle = part.start + (part.end - part.start).div_ceil(2);
            return Next::Deliver(vec![Part { end: middle, ..part }, Part { start: middle, ..part }]);
        }
        None => part,
    };
    if failing.retries >= policy.max_retries {
        Next::Discard(failing)
    } else {
        Next::Deliver(vec![Part { retries: failing.retries + 1, ..failing }])
    }
}

/// Lambda's on-failure record for a discarded part of a stream batch (AWS Lambda developer
/// guide, "Retain discarded records for a DynamoDB event source": batch metadata only, no
/// record contents).
pub fn on_failure_record(function_arn: &str, stream_arn: &str, shard_id: &str, records: &[Record], invokes: i64, function_error: bool) -> Value {
    let seq = |r: &Record| r.dynamodb.as_ref().and_then(|d| d.sequence_number.clone());
    let arrival = |r: &Record| {
        r.dynamodb
            .as_ref()
            .and_then(|d| d.approximate_creation_date_time)
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let mut response = json!({ "statusCode": 200, "executedVersion": "$LATEST" });
    if function_error {
        response["functionError"] = json!("Unhandled");
    }
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(), "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted", "approximateInvokeCount": invokes,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records.first().and_then(seq), "endSequenceNumber": records.last().and_then(seq),
            "approximateArrivalOfFirstRecord": records.first().and_then(arrival),
            "approximateArrivalOfLastRecord": records.last().and_then(arrival),
            "batchSize": records.len(), "streamArn": stream_arn,
        },
    })
}

/// The delivery of the records read from a shard at once: which part goes next, and what
/// becomes of each after its invocation ([`after_stream_invoke`]).
#[derive(Debug)]
pub struct StreamDelivery {
    policy: StreamRetry,
    sequence_numbers: Vec<String>,
    parts: VecDeque<Part>,
}

impl StreamDelivery {
    /// Delivery of records with these sequence numbers, in order, all at first.
    pub fn new(policy: StreamRetry, sequence_numbers: Vec<String>) -> Self {
        let all = Part { start: 0, end: sequence_numbers.len(), retries: 0 };
        StreamDelivery { policy, sequence_numbers, parts: VecDeque::from([all]) }
    }

    /// The part to invoke the function with next; `None` when the batch is through.
    pub fn next_part(&mut self) -> Option<Part> {
        self.parts.pop_front()
    }

    /// Settles `part` after its invocation: what follows it is queued first (in order), so the
    /// shard's records are still delivered in order. Returns what was decided.
    pub fn settle(&mut self, part: Part, answer: Answer<'_>) -> Next {
        let next = after_stream_invoke(self.policy, part, &self.sequence_numbers, answer);
        if let Next::Deliver(parts) = &next {
            for p in parts.iter().rev() {
                self.parts.push_front(*p);
            }
        }
        next
    }
}

async fn deliver_stream_batch(
    spec: &EventSourceSpec,
    function: &Arc<Function>,
    clients: &Clients,
    shard_id: &str,
    records: &[Record],
    shutdown: &watch::Receiver<bool>,
) {
    let sequence_numbers = records.iter().map(|r| r.dynamodb.as_ref().and_then(|d| d.sequence_number.clone()).unwrap_or_default()).collect();
    let mut delivery = StreamDelivery::new(StreamRetry::of(spec), sequence_numbers);
    while let Some(part) = delivery.next_part() {
        if *shutdown.borrow() {
            return;
        }
        let slice = &records[part.start..part.end];
        let event = json!({ "Records": slice.iter().map(|r| stream_record(r, &spec.source_arn, &clients.region)).collect::<Vec<_>>() });
        let outcome = function.invoke(serde_json::to_vec(&event).expect("events serialise")).await;
        let answer = match &outcome {
            Outcome::Response(body) => Answer::Response(body),
            Outcome::Error(_) | Outcome::Crashed(_) => Answer::Failed,
        };
        match delivery.settle(part, answer) {
            Next::Deliver(next) => {
                if let Some(retry) = next.first().filter(|p| p.retries > part.retries) {
                    // A retry (not a split) waits a little, longer each time.
                    let delay = Duration::from_millis(100).saturating_mul(1 << retry.retries.min(6)).min(Duration::from_secs(5));
                    tokio::time::sleep(delay).await;
                }
            }
            Next::Discard(failing) => {
                let discarded = &records[failing.start..failing.end];
                eprintln!(
                    "host: {} gave up on {} of {} stream records after {} retries: {outcome:?}",
                    function.spec.name,
                    discarded.len(),
                    records.len(),
                    failing.retries
                );
                let Some(destination) = &spec.on_failure_arn else { continue };
                let function_arn = format!("arn:aws:lambda:{}:123456789012:function:{}", clients.region, function.spec.name);
                let note = on_failure_record(&function_arn, &spec.source_arn, shard_id, discarded, failing.retries + 1, matches!(answer, Answer::Failed));
                if let Err(e) = clients.sqs.send_message().queue_url(queue_url(destination)).message_body(note.to_string()).send().await {
                    eprintln!("host: {} could not send to its on-failure destination {destination}: {}", function.spec.name, aws_sdk_sqs::error::DisplayErrorContext(&e));
                }
            }
        }
    }
}

/// A stream record in the Lambda event's shape (`Records[]` of a DynamoDB stream event).
pub fn stream_record(r: &Record, source_arn: &str, region: &str) -> Value {
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

    fn seqs(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{}", 1000 + i)).collect()
    }

    const PUBLISHER: StreamRetry = StreamRetry { report_batch_item_failures: true, bisect: true, max_retries: 10 };

    /// Runs a delivery of `n` records against a function that fails (as `fails` says) for
    /// some records; returns every part invoked and the parts discarded.
    fn deliver(policy: StreamRetry, n: usize, mut answer: impl FnMut(Part, &[String]) -> Result<Vec<u8>, ()>) -> (Vec<Part>, Vec<Part>) {
        let sequence_numbers = seqs(n);
        let mut delivery = StreamDelivery::new(policy, sequence_numbers.clone());
        let (mut invoked, mut discarded) = (Vec::new(), Vec::new());
        while let Some(part) = delivery.next_part() {
            invoked.push(part);
            assert!(invoked.len() < 10_000, "the delivery ends");
            let body = answer(part, &sequence_numbers[part.start..part.end]);
            let next = match &body {
                Ok(body) => delivery.settle(part, Answer::Response(body)),
                Err(()) => delivery.settle(part, Answer::Failed),
            };
            if let Next::Discard(p) = next {
                discarded.push(p);
            }
        }
        (invoked, discarded)
    }

    /// A publisher that reports the first record of `bad` it is given as a batch item failure
    /// (and so does not get to the rest).
    fn reports(bad: &'static [usize]) -> impl FnMut(Part, &[String]) -> Result<Vec<u8>, ()> {
        move |part, seqs| {
            let failures: Vec<_> = (part.start..part.end).filter(|i| bad.contains(i)).take(1).map(|i| json!({"itemIdentifier": seqs[i - part.start]})).collect();
            Ok(json!({ "batchItemFailures": failures }).to_string().into_bytes())
        }
    }

    #[test]
    fn partial_batch_responses_are_read_as_lambda_reads_them() {
        let seqs = seqs(4);
        for (body, expected) in [
            (r#"{"batchItemFailures":[]}"#, Checkpoint::Done),
            (r#"{"batchItemFailures":null}"#, Checkpoint::Done),
            ("{}", Checkpoint::Done),
            ("null", Checkpoint::Done),
            ("", Checkpoint::Done),
            (r#"{"batchItemFailures":[{"itemIdentifier":"1002"}]}"#, Checkpoint::RetryFrom(2)),
            // The lowest sequence number is the checkpoint, whatever the order listed.
            (r#"{"batchItemFailures":[{"itemIdentifier":"1003"},{"itemIdentifier":"1001"}]}"#, Checkpoint::RetryFrom(1)),
            // Complete failures: unreadable, empty / null / non-string / misnamed identifier, an
            // identifier that is not in the batch.
            ("garbage", Checkpoint::Failed),
            (r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, Checkpoint::Failed),
            (r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#, Checkpoint::Failed),
            (r#"{"batchItemFailures":[{"itemIdentifier":1002}]}"#, Checkpoint::Failed),
            (r#"{"batchItemFailures":[{"itemId":"1002"}]}"#, Checkpoint::Failed),
            (r#"{"batchItemFailures":[{"itemIdentifier":"999"}]}"#, Checkpoint::Failed),
            (r#"{"batchItemFailures":{"itemIdentifier":"1002"}}"#, Checkpoint::Failed),
            (r#"[1]"#, Checkpoint::Failed),
        ] {
            assert_eq!(stream_checkpoint(body.as_bytes(), &seqs), expected, "{body}");
        }
    }

    #[test]
    fn a_response_without_report_batch_item_failures_is_a_success_whatever_it_says() {
        let policy = StreamRetry { report_batch_item_failures: false, ..PUBLISHER };
        let (invoked, discarded) = deliver(policy, 4, reports(&[1]));
        assert_eq!((invoked.len(), discarded), (1, vec![]));
    }

    #[test]
    fn a_reported_failure_retries_from_it_and_discards_only_what_still_fails() {
        // Record 2 of 5 keeps failing: 0 and 1 are done at once; 2.. is retried 10 times, then
        // discarded from 2 on (what the function never got past).
        let (invoked, discarded) = deliver(PUBLISHER, 5, reports(&[2]));
        assert_eq!(invoked[0], Part { start: 0, end: 5, retries: 0 });
        assert!(invoked[1..].iter().all(|p| (p.start, p.end) == (2, 5)), "{invoked:?}");
        assert_eq!(invoked.len(), 1 + 10, "the first try and MaximumRetryAttempts retries");
        assert_eq!(discarded, [Part { start: 2, end: 5, retries: 10 }]);
    }

    #[test]
    fn a_failure_that_passes_is_retried_from_it_and_nothing_is_discarded() {
        let mut calls = 0;
        let (invoked, discarded) = deliver(PUBLISHER, 4, move |part, seqs| {
            calls += 1;
            // Record 1 fails on the first three tries, then goes through.
            let failures = if calls <= 3 { vec![json!({"itemIdentifier": seqs[1 - part.start]})] } else { vec![] };
            Ok(json!({ "batchItemFailures": failures }).to_string().into_bytes())
        });
        assert!(discarded.is_empty());
        assert_eq!(invoked.iter().map(|p| (p.start, p.retries)).collect::<Vec<_>>(), [(0, 0), (1, 1), (1, 2), (1, 3)]);
    }

    #[test]
    fn a_function_error_is_bisected_down_to_the_poison_record_and_only_it_is_discarded() {
        // A function that fails the whole batch whenever record 5 of 8 is in it.
        let (invoked, discarded) = deliver(PUBLISHER, 8, |part, _| if (part.start..part.end).contains(&5) { Err(()) } else { Ok(b"{}".to_vec()) });
        assert_eq!(discarded, [Part { start: 5, end: 6, retries: 10 }], "{invoked:?}");
        // Every other record was delivered in a part that succeeded, in order.
        let delivered: Vec<usize> = invoked.iter().filter(|p| !(p.start..p.end).contains(&5)).flat_map(|p| p.start..p.end).collect();
        assert_eq!(delivered, [0, 1, 2, 3, 4, 6, 7]);
        // Splits do not count as retries: the halves of 8, 4, 2 were each tried once, the poison
        // record 1 + 10 times.
        assert_eq!(invoked.iter().filter(|p| (p.start, p.end) == (5, 6)).count(), 11);
        assert_eq!(invoked.len(), 1 + 2 + 2 + 2 + 10, "{invoked:?}");
    }

    #[test]
    fn without_bisect_a_function_error_retries_the_batch_then_discards_it_whole() {
        let policy = StreamRetry { bisect: false, max_retries: 3, ..PUBLISHER };
        let (invoked, discarded) = deliver(policy, 4, |_, _| Err(()));
        assert_eq!(invoked.len(), 4);
        assert_eq!(discarded, [Part { start: 0, end: 4, retries: 3 }]);
    }

    #[test]
    fn an_unreadable_answer_or_an_unknown_id_fails_the_whole_batch() {
        let policy = StreamRetry { bisect: false, max_retries: 1, ..PUBLISHER };
        for body in ["garbage", r#"{"batchItemFailures":[{"itemIdentifier":"not-in-the-batch"}]}"#] {
            let (invoked, discarded) = deliver(policy, 3, |_, _| Ok(body.as_bytes().to_vec()));
            assert_eq!((invoked.len(), discarded), (2, vec![Part { start: 0, end: 3, retries: 1 }]), "{body}");
        }
    }

    #[test]
    fn the_on_failure_record_is_lambdas_shape() {
        let record = |seq: &str| {
            Record::builder()
                .dynamodb(aws_sdk_dynamodbstreams::types::StreamRecord::builder().sequence_number(seq).approximate_creation_date_time(aws_smithy_types::DateTime::from_secs(1_573_690_399)).build())
                .build()
        };
        let note = on_failure_record("arn:aws:lambda:us-east-1:123456789012:function:p", "arn:stream", "shard-1", &[record("300"), record("302")], 11, true);
        assert_eq!(note["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(note["requestContext"]["approximateInvokeCount"], 11);
        assert_eq!(note["responseContext"]["functionError"], "Unhandled");
        assert_eq!(
            note["DDBStreamBatchInfo"],
            json!({"shardId": "shard-1", "startSequenceNumber": "300", "endSequenceNumber": "302", "batchSize": 2, "streamArn": "arn:stream",
                   "approximateArrivalOfFirstRecord": "2019-11-14T00:13:19Z", "approximateArrivalOfLastRecord": "2019-11-14T00:13:19Z"})
        );
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
